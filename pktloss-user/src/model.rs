//! The summary data model: what a capture produced, as plain serde types.
//!
//! Everything downstream of collection (text and JSON output, diagnosis, TUI, capture files)
//! reads these types only, so it can run on live data or on a saved capture.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One value of a kernel's `enum skb_drop_reason`: its number on that kernel and its name
/// without the `SKB_DROP_REASON_` prefix (`NO_SOCKET`). In JSON `code` and `name` (the
/// capture file's list); the `reasons` list writes `code` and `reason` ([`code_reason`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DropReason {
    pub code: u32,
    pub name: String,
}

impl DropReason {
    /// The reason `name` with number `code`.
    pub(crate) fn new(code: u32, name: impl Into<String>) -> Self {
        Self { code, name: name.into() }
    }

    /// Its name.
    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }
}

/// A reason by name alone (number 0), for the tests' fixtures.
#[cfg(test)]
impl From<&str> for DropReason {
    fn from(name: &str) -> Self {
        Self::new(0, name)
    }
}

/// A reason reads as its name (`r == "NO_SOCKET"`, `&r` where a `&str` is taken).
impl std::ops::Deref for DropReason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl PartialEq<str> for DropReason {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl PartialEq<&str> for DropReason {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

impl PartialEq<String> for DropReason {
    fn eq(&self, other: &String) -> bool {
        &self.name == other
    }
}

impl std::fmt::Display for DropReason {
    /// Its name (`NO_SOCKET`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// One value of a kernel's `enum sk_rst_reason` (6.10+), why TCP sent a reset: its number on
/// that kernel and its name without the `SK_RST_REASON_` prefix (`NO_SOCKET`); `UNKNOWN`,
/// number 0, before 6.10. Not a [`DropReason`]: another enum, whose numbers and names differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResetReason {
    pub code: u32,
    pub name: String,
}

impl ResetReason {
    /// The reset reason `name` with number `code`.
    pub(crate) fn new(code: u32, name: impl Into<String>) -> Self {
        Self { code, name: name.into() }
    }

    /// Its name.
    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for ResetReason {
    /// Its name (`TCP_ABORT_ON_CLOSE`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A value of a kernel enum held as its number and name ([`DropReason`], [`ResetReason`]):
/// what the records that hold one flattened write as `reason` and `code`.
pub(crate) trait CodeName: Sized {
    fn code(&self) -> u32;
    fn name(&self) -> &str;
    fn from_parts(code: u32, name: String) -> Self;
}

/// `CodeName` for structs of exactly `code: u32` and `name: String`.
macro_rules! code_name {
    ($($t:ty),+) => {$(
        impl CodeName for $t {
            fn code(&self) -> u32 {
                self.code
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn from_parts(code: u32, name: String) -> Self {
                Self { code, name }
            }
        }
    )+};
}

code_name!(DropReason, ResetReason);

/// `code` and `reason`, in that order, for a record that holds a reason flattened under those
/// keys (`#[serde(flatten, serialize_with = "code_reason")]`: the rows of `pktloss reasons`).
pub(crate) fn code_reason<S: serde::Serializer, R: CodeName>(r: &R, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut st = s.serialize_struct("Reason", 2)?;
    st.serialize_field("code", &r.code())?;
    st.serialize_field("reason", r.name())?;
    st.end()
}

/// A reason held flattened as `reason` (its name) and `code`, in that order: the form of the
/// records that hold one (`#[serde(flatten, with = "reason_code")]`: counts, flows, samples,
/// resets), as they always wrote it. Both are required when read.
pub(crate) mod reason_code {
    use serde::{Deserialize as _, Deserializer, Serializer, ser::SerializeStruct as _};

    use super::CodeName;

    pub(crate) fn serialize<S: Serializer, R: CodeName>(r: &R, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Reason", 2)?;
        st.serialize_field("reason", r.name())?;
        st.serialize_field("code", &r.code())?;
        st.end()
    }

    #[derive(serde::Deserialize)]
    struct ReasonCode {
        reason: String,
        code: u32,
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, R: CodeName>(d: D) -> Result<R, D::Error> {
        let r = ReasonCode::deserialize(d)?;
        Ok(R::from_parts(r.code, r.reason))
    }
}

/// Drops counted for one drop reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReasonCount {
    /// The reason (in JSON `reason`, its name without the `SKB_DROP_REASON_` prefix, and
    /// `code`, its number on the capturing kernel).
    #[serde(flatten, with = "reason_code")]
    pub reason: DropReason,
    pub count: u64,
    /// Short human description, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Drops counted for one (location, reason[, stack]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LocationCount {
    /// `function+0xoff` from /proc/kallsyms, or the hex address when unknown.
    pub symbol: String,
    /// Kernel address; in JSON a hex string ("0xffffffff81a004bc"): as a number, past 2^53 it
    /// would not survive JSON tools that read numbers as doubles (jq).
    #[serde(with = "hex_address")]
    pub address: u64,
    #[serde(flatten, with = "reason_code")]
    pub reason: DropReason,
    pub count: u64,
    /// Symbolized kernel stack (innermost first), when `--stacks` was on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<String>,
}

/// A network namespace's identity: its inode, and its cookie (unique for the boot, 5.12+; 0
/// when the kernel has none). Two namespaces that had the same inode one after the other differ
/// by the cookie. In JSON, `netns` and `netns_cookie` (left out when 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct NetnsId {
    #[serde(rename = "netns", default)]
    pub inode: u32,
    #[serde(rename = "netns_cookie", default, skip_serializing_if = "is_zero64")]
    pub cookie: u64,
}

/// `netns` and `netns_cookie`, the cookie written even when 0: the form of the records that
/// always wrote it (`TcDrops`, `XdpDrops`), kept so that their JSON does not change.
fn netns_with_cookie<S: serde::Serializer>(id: &NetnsId, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut st = s.serialize_struct("NetnsId", 2)?;
    st.serialize_field("netns", &id.inode)?;
    st.serialize_field("netns_cookie", &id.cookie)?;
    st.end()
}

impl NetnsId {
    /// Whether a record of `self` and one of `other` can be of one namespace: the same inode,
    /// and the same cookie where both say one; by inode alone where either says none (a kernel
    /// without cookies).
    pub(crate) fn matches(self, other: Self) -> bool {
        self.inode == other.inode && (self.cookie == 0 || other.cookie == 0 || self.cookie == other.cookie)
    }
}

impl std::fmt::Display for NetnsId {
    /// `4026531840`, or `4026531840/12` with a cookie.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cookie == 0 { write!(f, "{}", self.inode) } else { write!(f, "{}/{}", self.inode, self.cookie) }
    }
}

/// A flow's identity: protocol, family, endpoints and namespace. Every flow-shaped record
/// holds one (`#[serde(flatten)]`: its fields stay where they were in JSON and capture files).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Flow {
    /// "tcp", "udp", "icmp", "icmpv6", "sctp", "proto-N", or "eth-0xNNNN" when no IP header.
    pub proto: String,
    /// 4, 6, or 0 when not an IP packet / not decodable.
    pub family: u8,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    #[serde(flatten)]
    pub netns: NetnsId,
}

impl Flow {
    /// A TCP flow (the family from the addresses), as retransmissions and resets give them.
    pub(crate) fn tcp(src: String, sport: u16, dst: String, dport: u16, netns: NetnsId) -> Self {
        let family = if src.contains(':') { 6 } else { 4 };
        Self { proto: "tcp".to_owned(), family, src, sport, dst, dport, netns }
    }

    /// Whether the protocol has ports (else `sport`/`dport` are ICMP's type and code, or 0).
    pub(crate) fn ported(&self) -> bool {
        matches!(self.proto.as_str(), "tcp" | "udp" | "sctp" | "udplite")
    }

    /// One endpoint: `10.0.0.1:5000`, `[fd00::2]:9`, the bare address for a portless protocol,
    /// `-` for an unknown address.
    pub(crate) fn endpoint(&self, addr: &str, port: u16) -> String {
        if addr.is_empty() {
            return "-".to_owned();
        }
        let v6 = self.family == 6 || addr.contains(':');
        match (self.ported(), v6) {
            (false, _) => addr.to_owned(),
            (true, true) => format!("[{addr}]:{port}"),
            (true, false) => format!("{addr}:{port}"),
        }
    }

    /// The source endpoint ([`Flow::endpoint`]).
    pub(crate) fn source(&self) -> String {
        self.endpoint(&self.src, self.sport)
    }

    /// The destination endpoint ([`Flow::endpoint`]).
    pub(crate) fn destination(&self) -> String {
        self.endpoint(&self.dst, self.dport)
    }
}

impl std::fmt::Display for Flow {
    /// `udp 10.0.0.1:5000 -> [fd00::2]:9` (ICMP: type and code; no ports for portless
    /// protocols; `-` for an unknown address).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.proto, self.source(), self.destination())?;
        if self.proto.starts_with("icmp") {
            write!(f, " type {} code {}", self.sport, self.dport)?;
        }
        Ok(())
    }
}

/// Drops counted for one flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FlowCount {
    #[serde(flatten)]
    pub flow: Flow,
    /// The namespace's name ([`NamespaceInfo::label`]), when one is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_name: String,
    pub ifindex: u32,
    /// Device name in that netns, when it could be resolved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(flatten, with = "reason_code")]
    pub reason: DropReason,
    /// Where these drops happened (`function+0xoff`), for drops whose reason says nothing
    /// (`NOT_SPECIFIED`, or any drop on a kernel without reasons): their flows are counted apart
    /// by location (see `pktloss_common::Config::location_keyed_reason`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    pub count: u64,
    /// The process of this flow's drops, as the samples say it: the owner of the socket where
    /// one was found, else a task seen running at a drop (its name and process id; 0: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comm: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
    /// The firewall chain that dropped this flow's packets (`NETFILTER_DROP`), as
    /// [`FirewallDrop::label`] says it; the one with most drops when several did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
    /// The connection's original tuple before NAT (conntrack's original direction,
    /// `SRC:PORT -> DST:PORT`), when it is not the packet's own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nat_original: String,
}

/// Exact `NETFILTER_DROP` drops of one firewall chain (or rule) in one namespace, read at the
/// drop by the firewall probes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FirewallDrop {
    /// "nftables", "iptables" or "ip6tables" (`iptables-nft` rules are nftables chains).
    pub backend: String,
    /// nft table family ("ip", "ip6", "inet", "arp", "bridge", "netdev"); "ip"/"ip6" for
    /// `x_tables`.
    pub family: String,
    pub table: String,
    /// The chain: nft's chain name; for `x_tables` the built-in chain of the hook.
    pub chain: String,
    /// The hook ("input", "forward"...).
    pub hook: String,
    /// The nft rule handle of the `drop` verdict; 0 when not known (a chain policy, a verdict
    /// from a map or another expression, or a kernel before 5.17).
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub handle: u64,
    /// The chain is a jump target of the base chain the packet entered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jumped: bool,
    #[serde(flatten)]
    pub netns: NetnsId,
    pub count: u64,
}

impl FirewallDrop {
    /// `nftables inet filter input`, `nftables ip filter blocked rule 4`, `iptables filter INPUT`.
    pub(crate) fn label(&self) -> String {
        let mut s = if self.backend == "nftables" {
            format!("nftables {} {} {}", self.family, self.table, self.chain)
        } else {
            format!("{} {} {}", self.backend, self.table, self.chain)
        };
        if self.handle != 0 {
            let _ = std::fmt::Write::write_fmt(&mut s, format_args!(" rule {}", self.handle));
        }
        s
    }
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes the field by reference")]
pub(crate) fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes the field by reference")]
pub(crate) fn is_zero64(v: &u64) -> bool {
    *v == 0
}

impl FlowCount {
    /// Whether these are drops of `reason` (and, where the flow has a location because its
    /// reason says nothing, at `symbol` when one is given).
    pub(crate) fn is(&self, reason: &str, symbol: Option<&str>) -> bool {
        self.reason == reason && (self.location.is_empty() || symbol.is_none_or(|s| self.location == s))
    }

    /// The flow as one line ([`Flow`]'s `Display`).
    pub(crate) fn line(&self) -> String {
        self.flow.to_string()
    }

    /// The process as text, `comm[pid]`, empty when none was seen.
    pub(crate) fn process(&self) -> String {
        if self.pid == 0 && self.comm.is_empty() { String::new() } else { format!("{}[{}]", self.comm, self.pid) }
    }

    /// The flow's namespace as text: its name when one is known, else its inode.
    pub(crate) fn netns_text(&self) -> String {
        if self.netns_name.is_empty() { self.flow.netns.inode.to_string() } else { self.netns_name.clone() }
    }

    /// Whether `s` is a sampled drop of this flow.
    pub(crate) fn has_sample(&self, s: &Sample) -> bool {
        s.flow == self.flow && self.is(&s.reason, Some(&s.symbol))
    }

    /// What tells these drops apart: the reason, or the location where the kernel gives none.
    pub(crate) fn why(&self) -> &str {
        if self.location.is_empty() { &self.reason } else { &self.location }
    }
}

/// One network device seen transmitting or dropping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceCount {
    pub ifindex: u32,
    pub name: String,
    pub netns: u32,
    /// Packets transmitted: queued to the device (`net:net_dev_queue`, with `--tx-trace`), or by
    /// default the device's own `tx_packets` counter since the start.
    pub tx_packets: u64,
    /// Drops attributed to this device (from the flow counters).
    pub drops: u64,
    /// Its namespace could not be entered to read its counters (no `CAP_SYS_ADMIN`, or gone):
    /// `tx_packets` is unknown, not 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tx_unavailable: bool,
}

/// TCP retransmissions of one flow (its protocol `tcp`; no cookie: the kernel's key has the
/// inode alone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RetransCount {
    #[serde(flatten)]
    pub flow: Flow,
    pub count: u64,
}

/// Retransmissions seen during the capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Retransmits {
    pub total: u64,
    pub flows: Vec<RetransCount>,
}

/// TCP resets sent for one flow (the RST's own direction: `src` sent it) and reset reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResetCount {
    #[serde(flatten)]
    pub flow: Flow,
    /// The device the segment that caused it came in on (0: none known).
    #[serde(default)]
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    /// The reset reason (in JSON `reason` and `code`).
    #[serde(flatten, with = "reason_code")]
    pub reason: ResetReason,
    pub count: u64,
}

/// Resets sent per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResetReasonCount {
    /// In JSON `reason` and `code`.
    #[serde(flatten, with = "reason_code")]
    pub reason: ResetReason,
    pub count: u64,
}

/// TCP resets sent during the capture (`tcp:tcp_send_reset`), beside the drops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Resets {
    /// Every reset the probe saw that the filter passed (exact).
    pub total: u64,
    /// Per reason, largest first (exact while the flow table has not evicted).
    pub reasons: Vec<ResetReasonCount>,
    /// Per flow and reason, largest first (bounded).
    pub flows: Vec<ResetCount>,
    /// Flows evicted from the probe's 4096-entry table (their resets are in `total` only).
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub evicted: u64,
}

impl Resets {
    /// No reset seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0 && self.flows.is_empty()
    }
}

/// A BPF program attached to a tc hook of a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TcProgram {
    /// The kernel's program id (`bpftool prog show id N`).
    pub id: u32,
    /// The program's name.
    pub name: String,
    /// How it is attached (`tcx ingress`, `clsact ingress pref 49152 handle 0x1 bpf ...`).
    pub attach: String,
}

/// The tc drops (`TC_INGRESS`/`TC_EGRESS`) of one device and hook, with the programs attached
/// there when its drops were seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TcDrops {
    /// Its namespace (in JSON `netns` and `netns_cookie`, the cookie even when 0).
    #[serde(flatten, serialize_with = "netns_with_cookie")]
    pub netns: NetnsId,
    pub ifindex: u32,
    pub device: String,
    /// `ingress` or `egress`.
    pub hook: String,
    /// The drop reason (`TC_INGRESS`, `TC_EGRESS`), by name alone: on a kernel without drop
    /// reasons these drops are told by location and have no number (nor has the JSON one).
    pub reason: String,
    /// Exact drops of the device and reason.
    pub drops: u64,
    /// The programs on the hook, in the order they run.
    pub programs: Vec<TcProgram>,
    /// Which program dropped: the one attached, or the candidates and why it is not known.
    pub note: String,
}

impl TcProgram {
    /// `name (id N)`.
    pub(crate) fn label(&self) -> String {
        format!("{} (id {})", self.name, self.id)
    }

    /// Where it is attached, in short and bounded: the first two words of `attach`
    /// (`tcx ingress`, `clsact ingress`, `xdp native`...).
    pub(crate) fn attach_point(&self) -> String {
        self.attach.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }
}

/// The `XDP_DROP` drops of one device, with the XDP program attached to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct XdpDrops {
    /// Its namespace (in JSON `netns` and `netns_cookie`, the cookie even when 0).
    #[serde(flatten, serialize_with = "netns_with_cookie")]
    pub netns: NetnsId,
    pub ifindex: u32,
    pub device: String,
    /// Drops: on a veth exact while the flow table has not evicted their flows; on a NIC
    /// driver the growth of its XDP drop counter. `None` (JSON `null`): unavailable, the
    /// driver keeps no such counter (`note` says why).
    pub drops: Option<u64>,
    /// The program attached to the device when read (`attach`: its XDP mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<TcProgram>,
    /// What is known of the program, or why not.
    pub note: String,
}

/// Packets one devlink device trapped and reported for one trap and input port
/// (`devlink:devlink_trap_report`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HwTrap {
    /// The devlink device, `bus/device` (`pci/0000:03:00.0`, `netdevsim/netdevsim1`).
    pub device: String,
    /// The trap (`blackhole_route`, `tail_drop`...).
    pub trap: String,
    pub group: String,
    /// The input port's net device (`NULL` when the driver gave none).
    pub input_port: String,
    /// Reports seen (exact).
    pub count: u64,
}

/// A devlink trap's type (`DEVLINK_ATTR_TRAP_TYPE`; devlink-trap.rst, "Trap Types"). In JSON
/// and capture files its [`Display`](std::fmt::Display) word: `drop`, `exception`, `control`,
/// or `type N` for a number this pktloss does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TrapKind {
    /// The device dropped the packet (reported only while the trap's action is `trap`).
    Drop,
    /// The device could not forward the packet and handed it to the kernel.
    Exception,
    /// A control packet the kernel needs (ARP, IGMP, STP...): not loss.
    Control,
    /// A value devlink had none of these for (a newer kernel's), kept as its number.
    Other(u8),
}

impl TrapKind {
    /// The type of devlink's `enum devlink_trap_type` value `v`.
    pub(crate) fn from_devlink(v: u8) -> Self {
        match v {
            0 => Self::Drop,
            1 => Self::Exception,
            2 => Self::Control,
            n => Self::Other(n),
        }
    }
}

impl std::fmt::Display for TrapKind {
    /// `drop`, `exception`, `control`, `type N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Drop => f.write_str("drop"),
            Self::Exception => f.write_str("exception"),
            Self::Control => f.write_str("control"),
            Self::Other(n) => write!(f, "type {n}"),
        }
    }
}

impl std::str::FromStr for TrapKind {
    type Err = String;

    /// What [`Display`](std::fmt::Display) writes.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop" => Ok(Self::Drop),
            "exception" => Ok(Self::Exception),
            "control" => Ok(Self::Control),
            _ => s
                .strip_prefix("type ")
                .and_then(|n| n.parse().ok())
                .map(Self::Other)
                .ok_or_else(|| format!("unknown devlink trap type {s:?}")),
        }
    }
}

impl Serialize for TrapKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TrapKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Growth of one trap's devlink statistics (`devlink -s trap show`) during the capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrapStat {
    pub device: String,
    pub trap: String,
    /// Its group (`l3_drops`), as devlink says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The trap's type as devlink says it; `None` when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TrapKind>,
    /// Its action when read: `trap`, `drop` (reports nothing) or `mirror`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// `rx_packets` now minus at the start.
    pub packets: u64,
}

/// Hardware drops and traps: the tracepoint's reports and devlink's own statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HwTraps {
    /// Per device, trap and input port, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported: Vec<HwTrap>,
    /// Per device and trap, the traps that grew, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<TrapStat>,
    /// Why the statistics are missing, when they are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl HwTraps {
    /// Nothing trapped.
    pub(crate) fn is_empty(&self) -> bool {
        self.reported.is_empty() && self.stats.is_empty()
    }
}

/// XDP exceptions of one program, action and device (`xdp:xdp_exception`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct XdpException {
    pub prog_id: u32,
    /// The program's name when it was still loaded at the summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prog_name: String,
    /// `XDP_ABORTED`, or the unsupported action the driver met.
    pub action: String,
    pub ifindex: u32,
    pub count: u64,
}

/// State of one probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProbeStatus {
    /// e.g. `skb:kfree_skb`.
    pub name: String,
    /// e.g. `tp_btf`, `tracepoint`, `kprobe`.
    pub attach: String,
    pub active: bool,
    /// Why it was skipped, or a note on how it is attached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Accounting of the sampled per-drop detail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DetailStats {
    /// Detail events received by userspace.
    pub delivered: u64,
    /// Not delivered: the per-second budget was spent.
    pub lost_budget: u64,
    /// Not delivered: the ring buffer was full.
    pub lost_ringbuf: u64,
    /// Configured budget per second (all CPUs), 0 = detail off, null = unlimited.
    pub budget_per_sec: Option<u64>,
}

/// Accounting of the bounded flow table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FlowTableStats {
    pub capacity: u32,
    /// Flows present at the end of the capture.
    pub live: u64,
    /// Flows evicted by the LRU (inserted but no longer present).
    pub evicted: u64,
    /// Drops counted in flows that were evicted, or that could not be counted in a flow.
    pub drops_not_in_flows: u64,
}

/// A sampled drop (one detail event), decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// Nanoseconds since the start of the capture.
    pub t_ns: u64,
    #[serde(flatten, with = "reason_code")]
    pub reason: DropReason,
    pub symbol: String,
    #[serde(flatten)]
    pub flow: Flow,
    /// The namespace's name ([`NamespaceInfo::label`]), when one is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_name: String,
    pub ifindex: u32,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub cpu: u32,
    pub skb_len: u32,
    pub has_rx_sk: bool,
    /// Inode number of the drop's socket (the receiving socket, 6.11+, else the packet's own),
    /// 0 when none.
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub sk_ino: u64,
    /// The process that holds that socket open (from `/proc/*/fd`), when it could be found:
    /// whose drop this is, whichever task ran the softirq (`pid`, `comm`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub owner_pid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner_comm: String,
    /// TCP drops: the socket's state as `ss` names it, and the packet's flags.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tcp_state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tcp_flags: String,
    pub stack_id: i32,
    /// "network" (bytes start at the IP header), "data" (at skb->data) or "none".
    pub data_start: String,
    /// First bytes of the packet (in JSON `data_hex`).
    #[serde(rename = "data_hex", default, skip_serializing_if = "Packet::is_empty")]
    pub data: Packet,
    /// The firewall chain of its flow (see [`FlowCount::chain`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chain: String,
    /// The connection's original tuple before NAT (see [`FlowCount::nat_original`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nat_original: String,
}

impl Sample {
    /// Its namespace: "NAME (INODE)" when named, else the inode.
    pub(crate) fn netns_text(&self) -> String {
        if self.netns_name.is_empty() {
            self.flow.netns.inode.to_string()
        } else {
            format!("{} ({})", self.netns_name, self.flow.netns.inode)
        }
    }
}

/// Bytes of a captured packet, from where its sample's `data_start` says. In JSON and capture
/// files one lower-case hex string; text that is not hex reads as no bytes (a reader never
/// fails on it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packet(Vec<u8>);

impl Packet {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From hex (either case, no separators); `None` when malformed.
    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if !b.len().is_multiple_of(2) {
            return None;
        }
        let nib = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
        b.chunks_exact(2).map(|p| Some((nib(*p.first()?)? << 4) | nib(*p.get(1)?)?)).collect::<Option<_>>().map(Self)
    }
}

impl std::fmt::Display for Packet {
    /// Lower-case hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Packet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Packet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_hex(&String::deserialize(d)?).unwrap_or_default())
    }
}

/// A container, from the cgroup path of a process in a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Container {
    /// "docker", "containerd", "cri-o", "podman", or "container" (a cgroupfs path that does
    /// not say).
    pub runtime: String,
    /// The first 12 hex digits of its id.
    pub id: String,
    /// Its name, where the runtime keeps it in a local file (Docker's `config.v2.json`, the
    /// kubelet's `/var/log/containers` links).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A Kubernetes pod, from the kubepods cgroup path (and the kubelet's `/var/log/pods`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pod {
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// What a network namespace is, by name: its `ip netns` name, and whose processes live in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NamespaceInfo {
    /// Inode, as flows and samples give it, and cookie (see [`NetnsId`]): which of the
    /// namespaces that had this inode one after the other it is; cookie 0 when it could not be
    /// read.
    #[serde(flatten)]
    pub netns: NetnsId,
    /// The most specific name (see [`NamespaceInfo::make_label`]); empty when none is known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// `ip netns` name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_netns: String,
    /// The namespace pktloss runs in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_host: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Containers with processes in it (at most `host::names::MAX_CONTAINERS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// Containers left out of `containers`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub containers_omitted: u32,
    /// systemd service or scope of its processes, when they are in no container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// A process living in it when it was named (a container's, where it has one): where
    /// `nsenter --net=/proc/PID/ns/net` enters it. 0 when none was seen.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
}

/// Whether an `ip netns` name is one a container runtime made up (`netns-<uuid>` of Podman's
/// netavark, `cni-<uuid>` of CNI plugins), that says less than the pod or container names.
pub(crate) fn runtime_made_netns(name: &str) -> bool {
    let uuid = name.strip_prefix("netns-").or_else(|| name.strip_prefix("cni-")).unwrap_or("");
    uuid.len() == 36 && uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

impl NamespaceInfo {
    /// The `ip netns` name (unless a container runtime made it up and the namespace has a pod
    /// or container); else `pod:NAMESPACE/NAME` (or `pod:UID`); else `RUNTIME:NAME` (or
    /// `RUNTIME:ID`) of its first container; else its systemd unit; else "host" for pktloss's
    /// own; else empty.
    pub(crate) fn make_label(&self) -> String {
        let owned = self.pod.is_some() || !self.containers.is_empty();
        let made_up = owned && runtime_made_netns(&self.ip_netns);
        if !self.ip_netns.is_empty() && !made_up {
            return self.ip_netns.clone();
        }
        if let Some(p) = &self.pod {
            return if p.name.is_empty() {
                format!("pod:{}", p.uid)
            } else {
                format!("pod:{}/{}", p.namespace, p.name)
            };
        }
        if let Some(c) = self.containers.first() {
            return format!("{}:{}", c.runtime, if c.name.is_empty() { &c.id } else { &c.name });
        }
        if !self.unit.is_empty() {
            return self.unit.clone();
        }
        if self.is_host { "host".to_owned() } else { String::new() }
    }

    /// Whether `name` names this namespace, as a filter's `netns NAME` may: its label or `ip
    /// netns` name; a container's name, id or `RUNTIME:NAME`; the pod's `NAMESPACE/NAME`, name,
    /// `pod:NAMESPACE/NAME` or uid; its systemd unit.
    pub(crate) fn answers_to(&self, name: &str) -> bool {
        if name.is_empty() {
            return false;
        }
        if name == self.label || name == self.ip_netns || name == self.unit {
            return true;
        }
        let container = |c: &Container| {
            let (rt, rest) = name.split_once(':').unwrap_or(("", name));
            (rt.is_empty() || rt == c.runtime) && (rest == c.name || rest == c.id)
        };
        let pod = |p: &Pod| {
            let rest = name.strip_prefix("pod:").unwrap_or(name);
            let full = format!("{}/{}", p.namespace, p.name);
            (!p.name.is_empty() && (rest == full || rest == p.name)) || rest == p.uid
        };
        self.containers.iter().any(container) || self.pod.as_ref().is_some_and(pod)
    }
}

/// Exact drops of one (namespace, device, reason), from the kernel's per-namespace counts
/// (never evicted, unlike the flow table; absent when flows are off).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetnsDropCount {
    /// Its namespace: inode, as flows give it, and cookie (5.12+; 0 before): two namespaces
    /// that had one inode are two.
    #[serde(flatten)]
    pub netns: NetnsId,
    /// Device index in it (0: the drop had no device).
    pub ifindex: u32,
    /// In JSON `reason` and `code`.
    #[serde(flatten, with = "reason_code")]
    pub reason: DropReason,
    pub count: u64,
}

/// A namespace's exact drops (see [`Summary::drops_by_netns`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetnsTotal<'a> {
    pub netns: NetnsId,
    pub drops: u64,
    /// The reason with most of them.
    pub top_reason: &'a str,
}

/// The filter of a capture and what it left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FilterInfo {
    /// The expression as given.
    pub expr: String,
    /// Drops the filter left out (counted in the kernel, nowhere else).
    pub drops_filtered_out: u64,
    /// TCP retransmissions the filter left out.
    pub retransmits_filtered_out: u64,
    /// Which of the host's counters the filter's view covers (absent in older captures: then
    /// no counter is taken as the filter's).
    #[serde(default, skip_serializing_if = "FilterScope::is_unlimited")]
    pub scope: FilterScope,
}

/// Which of the host's counters a filter's view covers: the diagnosis of a filtered capture
/// reads no counter of a namespace or device the filter excludes, and takes a namespace's
/// counters as the filter's only when the filter selects every drop of it (see
/// docs/diagnosis.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FilterScope {
    /// The filter selects drops of these namespaces only (inodes); `None`: of any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Vec<u32>>,
    /// The filter selects drops on these devices only (names); `None`: on any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// The filter tests nothing but the namespace: every drop of its namespaces is selected,
    /// so their own counters count the filter's drops exactly.
    #[serde(default)]
    pub whole_netns: bool,
}

impl FilterScope {
    /// Limited to no namespace or device, and no namespace taken whole.
    pub(crate) fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }

    /// Whether counters of namespace `netns` may be read at all.
    pub(crate) fn has_netns(&self, netns: u32) -> bool {
        self.netns.as_ref().is_none_or(|n| n.contains(&netns))
    }

    /// Whether counters of device `name` may be read at all.
    pub(crate) fn has_device(&self, name: &str) -> bool {
        self.devices.as_ref().is_none_or(|d| d.iter().any(|x| x == name))
    }
}

/// The dropwatch-style summary of a capture.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub hostname: String,
    pub kernel: String,
    /// Wall-clock start, RFC 3339.
    pub started: String,
    pub duration_secs: f64,
    pub total_drops: u64,
    /// The filter, when the capture had one (`total_drops` is then of the drops it passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterInfo>,
    /// Detail events not delivered (budget + ring buffer).
    pub lost_events: u64,
    pub drops_per_sec: f64,
    /// Drops that produced a detail event / drops that did not.
    pub drops_with_detail: u64,
    pub drops_without_detail: u64,
    pub reasons: Vec<ReasonCount>,
    pub locations: Vec<LocationCount>,
    pub flows: Vec<FlowCount>,
    pub devices: Vec<DeviceCount>,
    pub retransmits: Retransmits,
    pub probes: Vec<ProbeStatus>,
    pub detail: DetailStats,
    pub flow_table: FlowTableStats,
    /// Counter anomalies (map-full conditions) that make some breakdown incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Sampled drops (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    /// The namespaces of the flows and samples, with their names (those named only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceInfo>,
    /// Exact drops per namespace, device and reason (largest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netns_drops: Vec<NetnsDropCount>,
    /// The tc programs of the `TC_INGRESS`/`TC_EGRESS` drops, per device and hook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tc_drops: Vec<TcDrops>,
    /// `XDP_DROP` drops per device and program: on a veth from `veth_xdp_rcv_skb`'s
    /// reason-less frees, on a NIC driver (native XDP, never an skb) from its XDP drop counter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp_drops: Vec<XdpDrops>,
    /// XDP exceptions per program, action and device (`xdp:xdp_exception`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp_exceptions: Vec<XdpException>,
    /// TCP resets sent, by reason and flow (`tcp:tcp_send_reset`).
    #[serde(default, skip_serializing_if = "Resets::is_empty")]
    pub resets: Resets,
    /// Exact `NETFILTER_DROP` drops per firewall chain and rule, read at the drop (largest
    /// first); empty where the firewall probes cannot attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall: Vec<FirewallDrop>,
    /// Hardware traps (`devlink:devlink_trap_report`) and devlink's trap statistics.
    #[serde(default, skip_serializing_if = "HwTraps::is_empty")]
    pub hw_traps: HwTraps,
}

impl Summary {
    /// Exact drops per namespace (inode, cookie), summed over devices and reasons, largest
    /// first, with the reason that has most of them.
    pub(crate) fn drops_by_netns(&self) -> Vec<NetnsTotal<'_>> {
        let mut by: std::collections::BTreeMap<NetnsId, NetnsTotal<'_>> = std::collections::BTreeMap::new();
        let mut reasons: std::collections::BTreeMap<(NetnsId, &str), u64> = std::collections::BTreeMap::new();
        for n in &self.netns_drops {
            let netns = n.netns;
            let e = by.entry(netns).or_insert(NetnsTotal { netns, drops: 0, top_reason: "" });
            e.drops += n.count;
            *reasons.entry((netns, n.reason.as_str())).or_default() += n.count;
        }
        let mut top: std::collections::BTreeMap<NetnsId, (u64, &str)> = std::collections::BTreeMap::new();
        for ((netns, reason), c) in reasons {
            let t = top.entry(netns).or_insert((0, ""));
            if c > t.0 {
                *t = (c, reason);
            }
        }
        let mut out: Vec<NetnsTotal<'_>> = by
            .into_iter()
            .map(|(id, mut t)| {
                t.top_reason = top.get(&id).map_or("", |r| r.1);
                t
            })
            .collect();
        out.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.netns.cmp(&b.netns)));
        out
    }

    /// Count the drops an XDP program's `XDP_DROP` verdict made on a veth (freed without a
    /// reason at `veth_xdp_rcv_skb`) as `XDP_DROP`, once: moved out of `NOT_SPECIFIED` in the
    /// reasons, locations, flows, samples and per-namespace counts, and listed per device in
    /// `xdp_drops` (its program filled in by the session).
    pub(crate) fn relabel_xdp_drops(&mut self) {
        use pktloss_common::{REASON_XDP_DROP, XDP_DROP};
        let is_xdp = |reason: &str, symbol: &str| reason == "NOT_SPECIFIED" && symbol.starts_with("veth_xdp_rcv");
        let mut moved = 0;
        let xdp = DropReason::new(REASON_XDP_DROP, XDP_DROP);
        for l in self.locations.iter_mut().filter(|l| is_xdp(&l.reason, &l.symbol)) {
            l.reason = xdp.clone();
            moved += l.count;
        }
        if moved == 0 {
            return;
        }
        if let Some(r) = self.reasons.iter_mut().find(|r| r.reason == "NOT_SPECIFIED") {
            r.count = r.count.saturating_sub(moved);
        }
        self.reasons.retain(|r| r.count > 0);
        self.reasons.push(ReasonCount {
            reason: xdp.clone(),
            count: moved,
            description: "an XDP program returned XDP_DROP (freed by veth_xdp_rcv_skb without a reason)".to_owned(),
        });
        self.reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.code.cmp(&b.reason.code)));
        for s in self.samples.iter_mut().filter(|s| is_xdp(&s.reason, &s.symbol)) {
            s.reason = xdp.clone();
        }
        let mut per_dev: std::collections::BTreeMap<(u32, u64, u32), u64> = std::collections::BTreeMap::new();
        for f in self.flows.iter_mut().filter(|f| is_xdp(&f.reason, &f.location)) {
            f.reason = xdp.clone();
            *per_dev.entry((f.flow.netns.inode, f.flow.netns.cookie, f.ifindex)).or_default() += f.count;
        }
        for (&(netns, cookie, ifindex), &count) in &per_dev {
            if let Some(n) = self.netns_drops.iter_mut().find(|n| {
                n.netns == NetnsId { inode: netns, cookie } && n.ifindex == ifindex && n.reason == "NOT_SPECIFIED"
            }) {
                let c = count.min(n.count);
                n.count -= c;
                self.netns_drops.push(NetnsDropCount {
                    netns: NetnsId { inode: netns, cookie },
                    ifindex,
                    reason: xdp.clone(),
                    count: c,
                });
            }
        }
        self.netns_drops.retain(|n| n.count > 0);
        self.netns_drops.sort_by_key(|n| std::cmp::Reverse(n.count));
        self.xdp_drops = per_dev
            .into_iter()
            .map(|((netns, cookie, ifindex), drops)| XdpDrops {
                netns: NetnsId { inode: netns, cookie },
                ifindex,
                device: self
                    .flows
                    .iter()
                    .find(|f| f.flow.netns.inode == netns && f.ifindex == ifindex)
                    .map(|f| f.device.clone())
                    .unwrap_or_default(),
                drops: Some(drops),
                program: None,
                note: String::new(),
            })
            .collect();
    }

    /// The BPF program behind drops of `reason` on device `ifindex` of namespace
    /// (`netns`, `cookie`; 0: any): for `TC_INGRESS`/`TC_EGRESS` the program on the device's tc
    /// hook (the candidates when several), for `XDP_DROP` the device's XDP program, as
    /// `name (id N)`; `None` for other reasons or when not known.
    pub(crate) fn program_of(&self, netns: u32, cookie: u64, ifindex: u32, reason: &str) -> Option<String> {
        let here = |n: NetnsId, i: u32| {
            n.inode == netns && (cookie == 0 || n.cookie == 0 || n.cookie == cookie) && i == ifindex
        };
        if reason == pktloss_common::XDP_DROP {
            let d = self.xdp_drops.iter().find(|d| here(d.netns, d.ifindex))?;
            return d.program.as_ref().map(TcProgram::label);
        }
        let t = self.tc_drops.iter().find(|t| t.reason == reason && here(t.netns, t.ifindex))?;
        match t.programs.as_slice() {
            [] => None,
            [p] => Some(p.label()),
            many => Some(format!("one of {}", many.iter().map(TcProgram::label).collect::<Vec<_>>().join(", "))),
        }
    }

    /// The name of the namespace of inode `netns` (a record that does not say its cookie) when
    /// one is known and the inode was one namespace's in this summary (see
    /// [`Summary::cookie_of`]), else its inode.
    pub(crate) fn netns_label(&self, netns: u32) -> String {
        self.namespace_of_inode(netns).map_or_else(|| netns.to_string(), |n| n.label.clone())
    }

    /// What was read of the namespace of inode `netns`, for a record that does not say its
    /// cookie: where the inode was one namespace's in this summary (see [`Summary::cookie_of`]).
    pub(crate) fn namespace_of_inode(&self, netns: u32) -> Option<&NamespaceInfo> {
        self.cookie_of(netns).and_then(|cookie| self.namespace(netns, cookie))
    }

    /// The name of namespace `id` when one was read for it (see [`Summary::namespace`]), else
    /// its inode.
    pub(crate) fn netns_name(&self, id: NetnsId) -> String {
        self.namespace(id.inode, id.cookie).map_or_else(|| id.inode.to_string(), |n| n.label.clone())
    }

    /// The cookie of the namespace that had inode `netns` in this summary's records that say
    /// it: 0 when none says one (a kernel without cookies); `None` when they say several (the
    /// inode was given to one namespace after another: which one a record without a cookie
    /// was of is not known).
    pub(crate) fn cookie_of(&self, netns: u32) -> Option<u64> {
        let ids = self
            .flows
            .iter()
            .map(|f| f.flow.netns)
            .chain(self.samples.iter().map(|s| s.flow.netns))
            .chain(self.netns_drops.iter().map(|n| n.netns))
            .chain(self.resets.flows.iter().map(|r| r.flow.netns))
            .chain(self.tc_drops.iter().map(|t| t.netns))
            .chain(self.xdp_drops.iter().map(|x| x.netns))
            .chain(self.firewall.iter().map(|d| d.netns))
            .chain(self.namespaces.iter().map(|n| n.netns));
        let cookies: std::collections::BTreeSet<u64> =
            ids.filter(|id| id.inode == netns && id.cookie != 0).map(|id| id.cookie).collect();
        match cookies.len() {
            0 => Some(0),
            1 => cookies.first().copied(),
            _ => None,
        }
    }

    /// What was read of the namespace `netns` with `cookie`: the one read with that cookie, or
    /// (where either has no cookie: a kernel without them) with that inode, the newest. A name
    /// read for another namespace that had the inode is never given.
    pub(crate) fn namespace(&self, netns: u32, cookie: u64) -> Option<&NamespaceInfo> {
        self.namespaces.iter().rev().find(|n| {
            n.netns.inode == netns
                && (cookie == 0 || n.netns.cookie == 0 || n.netns.cookie == cookie)
                && !n.label.is_empty()
        })
    }

    /// Give samples the owner of their socket (`owner` finds it by inode), and each flow the
    /// owner found in one of its samples (in place of the task that happened to run).
    pub(crate) fn name_socket_owners(&mut self, owner: &mut dyn FnMut(u64) -> Option<(u32, String)>) {
        for s in &mut self.samples {
            if s.sk_ino != 0
                && let Some((pid, comm)) = owner(s.sk_ino)
            {
                (s.owner_pid, s.owner_comm) = (pid, comm);
            }
        }
        // By flow first: a scan of every sample for each flow took a fifth of `serve`'s CPU
        // with 500 namespaces having drops (perf, `cargo xtask bench-serve --busy-netns 500`).
        let mut owned: HashMap<&Flow, Vec<&Sample>> = HashMap::new();
        for s in self.samples.iter().filter(|s| s.owner_pid != 0) {
            owned.entry(&s.flow).or_default().push(s);
        }
        for f in &mut self.flows {
            if let Some(s) = owned.get(&f.flow).and_then(|c| c.iter().find(|s| f.has_sample(s))) {
                (f.pid, f.comm) = (s.owner_pid, s.owner_comm.clone());
            }
        }
    }

    /// Name the namespaces of the flows and samples (`names` says what is known of one, by
    /// inode and cookie).
    pub(crate) fn name_namespaces(&mut self, names: &mut dyn FnMut(u32, u64) -> Option<NamespaceInfo>) {
        let mut seen: std::collections::BTreeMap<(u32, u64), Option<NamespaceInfo>> = std::collections::BTreeMap::new();
        let mut label = |ns: u32, cookie: u64| {
            seen.entry((ns, cookie))
                .or_insert_with(|| names(ns, cookie).filter(|i| !i.label.is_empty()))
                .as_ref()
                .map(|i| i.label.clone())
        };
        for f in &mut self.flows {
            f.netns_name = label(f.flow.netns.inode, f.flow.netns.cookie).unwrap_or_default();
        }
        for s in &mut self.samples {
            s.netns_name = label(s.flow.netns.inode, s.flow.netns.cookie).unwrap_or_default();
        }
        for n in &self.netns_drops {
            label(n.netns.inode, n.netns.cookie);
        }
        for r in &self.resets.flows {
            label(r.flow.netns.inode, r.flow.netns.cookie);
        }
        // Devices and retransmissions say no cookie: named as the one namespace the other
        // records say had the inode, none when they say several (a later namespace given the
        // inode is not the one before).
        let no_cookie: std::collections::BTreeSet<u32> = self
            .devices
            .iter()
            .map(|d| d.netns)
            .chain(self.retransmits.flows.iter().map(|r| r.flow.netns.inode))
            .collect();
        for ns in no_cookie {
            if let Some(cookie) = self.cookie_of(ns) {
                label(ns, cookie);
            }
        }
        let mut list: Vec<NamespaceInfo> = seen.into_values().flatten().collect();
        list.sort_by_key(|i| i.netns);
        list.dedup_by_key(|i| i.netns);
        self.namespaces = list;
    }
}

#[cfg(test)]
mod tests {
    use super::LocationCount;

    /// The records that hold a `NetnsId` write what they wrote with two fields: tc and XDP drops
    /// `netns_cookie` even when 0, namespaces not; and read it back.
    #[test]
    fn netns_ids_keep_their_json() {
        use super::{NamespaceInfo, NetnsId, TcDrops, XdpDrops};
        let id = |cookie| NetnsId { inode: 7, cookie };
        let tc = TcDrops { netns: id(0), ifindex: 2, drops: 1, ..TcDrops::default() };
        let json = serde_json::to_string(&tc).expect("json");
        assert_eq!(
            json,
            r#"{"netns":7,"netns_cookie":0,"ifindex":2,"device":"","hook":"","reason":"","drops":1,"programs":[],"note":""}"#
        );
        assert_eq!(serde_json::from_str::<TcDrops>(&json).expect("read"), tc);
        let xdp = XdpDrops { netns: id(9), ifindex: 3, drops: Some(0), ..XdpDrops::default() };
        let json = serde_json::to_string(&xdp).expect("json");
        assert_eq!(json, r#"{"netns":7,"netns_cookie":9,"ifindex":3,"device":"","drops":0,"note":""}"#);
        assert_eq!(serde_json::from_str::<XdpDrops>(&json).expect("read"), xdp);
        for (ns, want) in [
            (NamespaceInfo { netns: id(0), pid: 5, ..NamespaceInfo::default() }, r#"{"netns":7,"pid":5}"#),
            (NamespaceInfo { netns: id(9), ..NamespaceInfo::default() }, r#"{"netns":7,"netns_cookie":9}"#),
        ] {
            let json = serde_json::to_string(&ns).expect("json");
            assert_eq!(json, want);
            assert_eq!(serde_json::from_str::<NamespaceInfo>(&json).expect("read"), ns);
        }
    }

    /// A namespace gone before it was named, and a later one given its inode and named: the
    /// flows of the first are not named after the second, by cookie or by inode; records
    /// without a cookie (devices) are named only where the inode was one namespace's.
    #[test]
    fn a_name_is_only_the_namespace_it_was_read_for() {
        use super::{DeviceCount, Flow, FlowCount, NamespaceInfo, NetnsId, Summary};
        let (gone, next) = (NetnsId { inode: 9, cookie: 100 }, NetnsId { inode: 9, cookie: 200 });
        let flow = |netns, dport| FlowCount {
            flow: Flow { proto: "udp".into(), dport, netns, ..Flow::default() },
            count: 1,
            ..FlowCount::default()
        };
        let mut s = Summary {
            flows: vec![flow(gone, 1), flow(next, 2)],
            devices: vec![DeviceCount { netns: 9, ifindex: 1, ..DeviceCount::default() }],
            ..Summary::default()
        };
        let mut asked = Vec::new();
        s.name_namespaces(&mut |inode, cookie| {
            asked.push((inode, cookie));
            (cookie == 200).then(|| NamespaceInfo { netns: next, label: "b".into(), ..NamespaceInfo::default() })
        });
        assert_eq!(asked, [(9, 100), (9, 200)], "the device's namespace is not asked for by inode alone");
        let names: Vec<&str> = s.flows.iter().map(|f| f.netns_name.as_str()).collect();
        assert_eq!(names, ["", "b"]);
        assert_eq!((s.netns_name(gone), s.netns_name(next)), ("9".to_owned(), "b".to_owned()));
        assert_eq!(s.cookie_of(9), None);
        assert_eq!(s.netns_label(9), "9", "the inode was two namespaces'");
        s.flows.remove(0);
        assert_eq!(s.netns_label(9), "b", "the inode was one namespace's");
        // Without cookies (before 5.14) names are by inode, the newest.
        let old = Summary {
            namespaces: vec![NamespaceInfo {
                netns: NetnsId { inode: 9, cookie: 0 },
                label: "a".into(),
                ..NamespaceInfo::default()
            }],
            ..Summary::default()
        };
        assert_eq!((old.netns_label(9), old.netns_name(NetnsId { inode: 9, cookie: 0 })), ("a".into(), "a".into()));
    }

    /// Packet bytes are hex in JSON, written lower-case, read in either case; text that is not
    /// hex reads as none.
    #[test]
    fn packets_are_hex() {
        use super::Packet;
        let p = Packet::new(vec![0x45, 0x0a, 0xff]);
        assert_eq!(p.to_string(), "450aff");
        assert_eq!(serde_json::to_string(&p).expect("json"), r#""450aff""#);
        assert_eq!(serde_json::from_str::<Packet>(r#""450AfF""#).expect("read"), p);
        assert_eq!(Packet::from_hex("0aFf").map(|p| p.bytes().to_vec()), Some(vec![0x0a, 0xff]));
        for bad in ["0g", "abc"] {
            assert_eq!(Packet::from_hex(bad), None);
            assert!(serde_json::from_str::<Packet>(&format!("{bad:?}")).expect("read").is_empty());
        }
    }

    /// The records that hold a `DropReason` write `reason` and `code` where they wrote them,
    /// and read them back.
    #[test]
    fn drop_reasons_keep_their_json() {
        use super::{DropReason, ReasonCount, Sample};
        let r = ReasonCount { reason: DropReason::new(2, "NO_SOCKET"), count: 1, ..ReasonCount::default() };
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, r#"{"reason":"NO_SOCKET","code":2,"count":1}"#);
        assert_eq!(serde_json::from_str::<ReasonCount>(&json).expect("read"), r);
        let s = Sample { t_ns: 5, reason: DropReason::new(3, "NETFILTER_DROP"), ..Sample::default() };
        let json = serde_json::to_string(&s).expect("json");
        assert!(json.starts_with(r#"{"t_ns":5,"reason":"NETFILTER_DROP","code":3,"symbol":"#), "{json}");
        assert_eq!(serde_json::from_str::<Sample>(&json).expect("read"), s);
        assert!(serde_json::from_str::<ReasonCount>(r#"{"reason":"X","count":1}"#).is_err(), "no code");
    }

    /// Per-namespace drop counts hold a `DropReason` and write `reason` and `code` where they
    /// wrote them; a file written before reads field for field.
    #[test]
    fn netns_drop_counts_keep_their_json() {
        use super::{DropReason, NetnsDropCount, NetnsId};
        let old = r#"{"netns":7,"netns_cookie":9,"ifindex":3,"reason":"NO_SOCKET","code":2,"count":5}"#;
        let n: NetnsDropCount = serde_json::from_str(old).expect("read");
        assert_eq!(
            n,
            NetnsDropCount {
                netns: NetnsId { inode: 7, cookie: 9 },
                ifindex: 3,
                reason: DropReason::new(2, "NO_SOCKET"),
                count: 5
            }
        );
        assert_eq!(serde_json::to_string(&n).expect("json"), old);
        let no_cookie = NetnsDropCount { netns: NetnsId { inode: 7, cookie: 0 }, ..n };
        assert_eq!(
            serde_json::to_string(&no_cookie).expect("json"),
            r#"{"netns":7,"ifindex":3,"reason":"NO_SOCKET","code":2,"count":5}"#
        );
    }

    /// Resets hold a `ResetReason`: per reason and per flow they write `reason` and `code`
    /// where they wrote them, and files written before read field for field.
    #[test]
    fn reset_reasons_keep_their_json() {
        use super::{Flow, NetnsId, ResetCount, ResetReason, ResetReasonCount};
        let old = r#"{"reason":"TCP_ABORT_ON_CLOSE","code":11,"count":2}"#;
        let r: ResetReasonCount = serde_json::from_str(old).expect("read");
        assert_eq!(r, ResetReasonCount { reason: ResetReason::new(11, "TCP_ABORT_ON_CLOSE"), count: 2 });
        assert_eq!(serde_json::to_string(&r).expect("json"), old);
        assert_eq!(r.reason.to_string(), "TCP_ABORT_ON_CLOSE");
        let old = r#"{"proto":"tcp","family":4,"src":"127.0.0.1","sport":9,"dst":"127.0.0.1","dport":4000,"netns":7,"ifindex":1,"device":"lo","reason":"NO_SOCKET","code":1,"count":6}"#;
        let f: ResetCount = serde_json::from_str(old).expect("read");
        let netns = NetnsId { inode: 7, cookie: 0 };
        assert_eq!(
            f,
            ResetCount {
                flow: Flow::tcp("127.0.0.1".into(), 9, "127.0.0.1".into(), 4000, netns),
                ifindex: 1,
                device: "lo".into(),
                reason: ResetReason::new(1, "NO_SOCKET"),
                count: 6,
            }
        );
        assert_eq!(serde_json::to_string(&f).expect("json"), old);
        assert!(serde_json::from_str::<ResetReasonCount>(r#"{"reason":"X","count":1}"#).is_err(), "no code");
    }

    /// A trap's type is one `TrapKind`, written as the word devlink's reader wrote before
    /// (`drop`, `exception`, `control`, `type N`), left out when not known; a file written
    /// before reads field for field, and a word that is none of these is an error.
    #[test]
    fn trap_kinds_keep_their_json() {
        use super::{TrapKind, TrapStat};
        let old = r#"{"device":"netdevsim/netdevsim1","trap":"blackhole_route","group":"l3_drops","kind":"drop","action":"trap","packets":9}"#;
        let t: TrapStat = serde_json::from_str(old).expect("read");
        assert_eq!(t.kind, Some(TrapKind::Drop));
        assert_eq!((t.group.as_str(), t.action.as_str(), t.packets), ("l3_drops", "trap", 9));
        assert_eq!(serde_json::to_string(&t).expect("json"), old);
        for (v, kind, word) in [
            (0, TrapKind::Drop, "drop"),
            (1, TrapKind::Exception, "exception"),
            (2, TrapKind::Control, "control"),
            (7, TrapKind::Other(7), "type 7"),
        ] {
            assert_eq!(TrapKind::from_devlink(v), kind);
            assert_eq!(kind.to_string(), word);
            assert_eq!(serde_json::to_string(&kind).expect("json"), format!("{word:?}"));
            assert_eq!(serde_json::from_str::<TrapKind>(&format!("{word:?}")).expect("read"), kind);
        }
        let unsaid = r#"{"device":"d","trap":"t","packets":1}"#;
        let t: TrapStat = serde_json::from_str(unsaid).expect("read");
        assert_eq!(t.kind, None);
        assert_eq!(serde_json::to_string(&t).expect("json"), unsaid);
        for bad in ["\"dropped\"", "\"type x\"", "\"type 300\"", "3"] {
            let json = format!(r#"{{"device":"d","trap":"t","kind":{bad},"packets":1}}"#);
            assert!(serde_json::from_str::<TrapStat>(&json).is_err(), "{json}");
        }
    }

    #[test]
    fn xdp_drops_of_a_veth_are_moved_out_of_not_specified() {
        use super::{DropReason, FlowCount, NetnsDropCount, ReasonCount, Summary};
        let ns = |reason: &str, count| NetnsDropCount {
            netns: super::NetnsId { inode: 7, cookie: 9 },
            ifindex: 3,
            reason: DropReason::new(2, reason),
            count,
        };
        let mut s = Summary {
            reasons: vec![ReasonCount {
                reason: DropReason::new(2, "NOT_SPECIFIED"),
                count: 12,
                ..ReasonCount::default()
            }],
            locations: vec![
                LocationCount {
                    symbol: "veth_xdp_rcv_skb+0x2cc".into(),
                    reason: DropReason::new(2, "NOT_SPECIFIED"),
                    count: 10,
                    ..LocationCount::default()
                },
                LocationCount {
                    symbol: "ip6_mc_input+0x10".into(),
                    reason: DropReason::new(2, "NOT_SPECIFIED"),
                    count: 2,
                    ..LocationCount::default()
                },
            ],
            flows: vec![FlowCount {
                flow: super::Flow { netns: super::NetnsId { inode: 7, cookie: 9 }, ..super::Flow::default() },
                ifindex: 3,
                device: "vb".into(),
                reason: "NOT_SPECIFIED".into(),
                location: "veth_xdp_rcv_skb+0x2cc".into(),
                count: 10,
                ..FlowCount::default()
            }],
            netns_drops: vec![ns("NOT_SPECIFIED", 12)],
            ..Summary::default()
        };
        s.relabel_xdp_drops();
        let reasons: Vec<(&str, u64)> = s.reasons.iter().map(|r| (r.reason.as_str(), r.count)).collect();
        assert_eq!(reasons, [("XDP_DROP", 10), ("NOT_SPECIFIED", 2)]);
        assert_eq!((s.flows[0].reason.as_str(), s.locations[0].reason.as_str()), ("XDP_DROP", "XDP_DROP"));
        let by_ns: Vec<(&str, u64)> = s.netns_drops.iter().map(|n| (n.reason.as_str(), n.count)).collect();
        assert_eq!(by_ns, [("XDP_DROP", 10), ("NOT_SPECIFIED", 2)]);
        assert_eq!((s.xdp_drops.len(), s.xdp_drops[0].drops, s.xdp_drops[0].device.as_str()), (1, Some(10), "vb"));
        // Once only: a second pass finds nothing to move.
        let before = s.clone();
        s.relabel_xdp_drops();
        assert_eq!(s, before);
    }

    #[test]
    fn flow_lines_bracket_ipv6_and_drop_ports_where_there_are_none() {
        let f = |proto: &str, src: &str, dst: &str| super::FlowCount {
            flow: crate::model::Flow {
                proto: proto.into(),
                src: src.into(),
                sport: 5000,
                dst: dst.into(),
                dport: 53,
                ..crate::model::Flow::default()
            },
            ..super::FlowCount::default()
        };
        assert_eq!(f("udp", "fd00::1", "fd00::2").line(), "udp [fd00::1]:5000 -> [fd00::2]:53");
        assert_eq!(f("tcp", "10.0.0.1", "10.0.0.2").line(), "tcp 10.0.0.1:5000 -> 10.0.0.2:53");
        assert_eq!(f("icmp", "10.0.0.1", "").line(), "icmp 10.0.0.1 -> - type 5000 code 53");
    }

    #[test]
    fn addresses_are_hex_strings_and_numbers_still_read() {
        let l = LocationCount { address: 0xffff_ffff_81a0_04bc, ..LocationCount::default() };
        let v = serde_json::to_value(&l).expect("json");
        assert_eq!(v["address"], "0xffffffff81a004bc");
        let back: LocationCount = serde_json::from_value(v).expect("back");
        assert_eq!(back.address, l.address);
        let old: LocationCount = serde_json::from_str(
            r#"{"symbol":"x","address":18446744071589512380,"reason":"NO_SOCKET","code":2,"count":1}"#,
        )
        .expect("a number");
        assert_eq!(old.address, 18_446_744_071_589_512_380);
    }
}

/// A kernel address as a `0x` hex string; reads the numbers older files hold too.
mod hex_address {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    #[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's `serialize_with` passes the field by reference")]
    pub(super) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(n),
            Either::Text(t) => u64::from_str_radix(t.trim_start_matches("0x"), 16).map_err(D::Error::custom),
        }
    }
}
