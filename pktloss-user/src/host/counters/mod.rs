//! Kernel counters and configuration, read inside each network namespace, and their deltas.
//!
//! [`gather`] reads them on a thread that joined the namespace (`setns`, see
//! [`crate::host::netns::run_in`]): /proc files parsed by [`parse`] (pure, unit-tested on
//! fixtures captured from a real 6.18 kernel), links, qdiscs, routes, neighbours, sockets and
//! conntrack statistics over netlink ([`netlink`]), NIC statistics and rings by ioctl
//! ([`ethtool`]), all into the plain serde types below. No other program is run, except the
//! firewall readers' tools.
//!
//! Nothing here changes the system. A missing tool or unreadable file is recorded in
//! `unavailable` as "what: why", never an error.
//!
//! Per-namespace vs host-wide: snmp/netstat/conntrack/devices/qdiscs/firewall/sockets and the
//! per-netns sysctls (somaxconn, `rp_filter`, `tcp_max_syn_backlog`, `tcp_syncookies`, ...) are read in
//! each namespace. `softnet_stat`, neighbour-table stats and the global sysctls (`netdev_max_backlog`,
//! `netdev_budget`, `tcp_mem`, `udp_mem`, `rmem_max` in a child netns on some kernels) are host-wide: a
//! child namespace does not have them and the diagnosis falls back to the host's value.
pub(in crate::host) mod ethtool;
pub(crate) mod gather;
pub(crate) mod lifecycle;
pub(in crate::host) mod netlink;
pub(crate) mod nft;
pub(crate) mod nic;
pub(crate) mod parse;
#[cfg(test)]
pub(crate) mod samples;
pub(crate) mod watch;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub(crate) use crate::host::sockets::TunReader;
use crate::{host::netns::NetnsLabel, model::NetnsId};

pub(crate) use gather::{config_checks, snapshot, snapshot_all};
pub(crate) use watch::{Counted, CounterWatch};

/// One CPU's line of `/proc/net/softnet_stat` (host-wide, the same in every namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SoftnetCpu {
    pub cpu: u32,
    pub processed: u64,
    /// Packets dropped because the CPU's input backlog was full (`netdev_max_backlog`).
    pub dropped: u64,
    /// `net_rx_action` ran out of budget (`netdev_budget` / `netdev_budget_usecs`) with work left.
    pub time_squeeze: u64,
    pub received_rps: u64,
    pub flow_limit_count: u64,
    /// Gauge: packets in the backlog when read.
    pub backlog_len: u64,
}

/// Counters of one network device (rtnetlink's link statistics, or /proc/net/dev as a fallback),
/// plus its drop/error ethtool statistics when the driver has them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceStats {
    pub name: String,
    pub ifindex: u32,
    #[serde(default)]
    pub operstate: String,
    #[serde(default)]
    pub up: bool,
    #[serde(default)]
    pub lower_up: bool,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default)]
    pub qdisc: String,
    #[serde(default)]
    pub txqlen: u32,
    /// Link kind (veth, bridge, ...) when `ip -d` reports it.
    #[serde(default)]
    pub kind: String,
    /// XDP program attached, if any.
    #[serde(default)]
    pub xdp: Option<String>,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_over_errors: u64,
    pub rx_crc_errors: u64,
    pub rx_frame_errors: u64,
    pub rx_fifo_errors: u64,
    pub rx_missed_errors: u64,
    pub rx_length_errors: u64,
    #[serde(default)]
    pub rx_nohandler: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_fifo_errors: u64,
    pub tx_carrier_errors: u64,
    pub carrier_changes: u64,
    /// Drop/error counters from `ethtool -S` (names as the driver spells them).
    #[serde(default)]
    pub ethtool: BTreeMap<String, u64>,
}

/// One qdisc with its statistics (rtnetlink; handles in `tc`'s form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QdiscStats {
    pub dev: String,
    pub kind: String,
    pub handle: String,
    /// "root", a parent handle, or "ffff:fff1" for ingress/clsact.
    pub parent: String,
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub requeues: u64,
    /// Gauges.
    pub backlog: u64,
    pub qlen: u64,
}

impl QdiscStats {
    /// A clsact or ingress qdisc: it queues nothing, its drops are the verdicts of the tc
    /// programs attached to it.
    pub(crate) fn runs_tc(&self) -> bool {
        matches!(self.kind.as_str(), "clsact" | "ingress")
    }
}

/// Connection tracking: table fill (gauges) and per-CPU stats summed (counters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConntrackStats {
    pub count: Option<u64>,
    pub max: Option<u64>,
    /// `insert_failed`, `drop`, `early_drop`, `invalid`, ...
    pub stats: BTreeMap<String, u64>,
}

/// The namespace of a reading ([`NetnsSnapshot`], [`NetnsDelta`], [`ConfigChecks`]) as JSON and
/// capture files hold it: `netns` (the inode) and `cookie` (left out when 0), the fields these
/// records have always had (not the `netns_cookie` of the summary's records).
mod netns_fields {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::NetnsId;

    #[derive(Serialize, Deserialize)]
    struct Fields {
        netns: u32,
        /// The namespace's cookie (`SO_NETNS_COOKIE` of a socket made in it when it was read:
        /// unique for the boot, never reused as inodes are); 0 where the kernel has none (before
        /// 5.14), where readings of one inode are told apart by inode only.
        #[serde(default, skip_serializing_if = "crate::model::is_zero64")]
        cookie: u64,
    }

    pub(super) fn serialize<S: Serializer>(id: &NetnsId, s: S) -> Result<S::Ok, S::Error> {
        Fields { netns: id.inode, cookie: id.cookie }.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NetnsId, D::Error> {
        let f = Fields::deserialize(d)?;
        Ok(NetnsId { inode: f.netns, cookie: f.cookie })
    }
}

/// Counters of one network namespace at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetnsSnapshot {
    /// The namespace it was read in: its inode and cookie (in JSON `netns` and `cookie`).
    #[serde(flatten, with = "netns_fields")]
    pub netns: NetnsId,
    pub label: NetnsLabel,
    #[serde(default)]
    pub is_self: bool,
    /// A process living in it when it was read, whose `/proc/PID/ns/net` entered it (0: a
    /// `/run/netns` name, our own, or gone).
    #[serde(default, skip_serializing_if = "crate::model::is_zero")]
    pub pid: u32,
    /// Seconds since the Unix epoch (fractional) when the snapshot was taken.
    #[serde(default)]
    pub taken_at: f64,
    /// /proc/net/snmp + snmp6: "Udp.RcvbufErrors", "Ip6.InNoRoutes", ...
    pub snmp: BTreeMap<String, i64>,
    /// /proc/net/netstat: "TcpExt.ListenOverflows", "IpExt.InCsumErrors", ...
    pub netstat: BTreeMap<String, i64>,
    /// Host-wide (the same in every namespace).
    pub softnet: Vec<SoftnetCpu>,
    pub devices: Vec<DeviceStats>,
    pub qdiscs: Vec<QdiscStats>,
    pub conntrack: Option<ConntrackStats>,
    /// Neighbour-table stats, host-wide (`init_net` only): `arp.unresolved_discards`,
    /// `ndisc.table_fulls`, ...
    #[serde(default)]
    pub neigh: BTreeMap<String, u64>,
    /// "net.core.somaxconn" => "4096"; only the keys readable in this namespace.
    pub sysctls: BTreeMap<String, String>,
    pub unavailable: Vec<String>,
    /// The namespace could not be found when it was to be read: nothing was read (`unavailable`
    /// says so). Known only live: a capture file's snapshots read back have it false.
    #[serde(skip)]
    pub not_found: bool,
    /// The namespace did not exist when the capture started: when it was first seen (Unix
    /// seconds). Its counters count from zero, from its birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeared_at: Option<f64>,
    /// The namespace was gone before the end: this is its last reading, and it was last seen
    /// at this time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at: Option<f64>,
}

impl NetnsSnapshot {
    /// The baseline of a namespace born during the capture: its counters were all zero at its
    /// birth; the host-wide ones (softnet, neighbour tables) are not its own and count from this
    /// reading.
    pub(crate) fn at_birth(&self) -> Self {
        Self {
            netns: self.netns,
            label: self.label.clone(),
            is_self: self.is_self,
            pid: self.pid,
            taken_at: self.appeared_at.unwrap_or(self.taken_at),
            // Every counter at zero (a key missing from a baseline reads as no change).
            snmp: self.snmp.keys().map(|k| (k.clone(), 0)).collect(),
            netstat: self.netstat.keys().map(|k| (k.clone(), 0)).collect(),
            softnet: self.softnet.clone(),
            neigh: self.neigh.clone(),
            conntrack: self
                .conntrack
                .as_ref()
                .map(|c| ConntrackStats { stats: c.stats.keys().map(|k| (k.clone(), 0)).collect(), ..c.clone() }),
            ..Self::default()
        }
    }
}

/// Counters of one device over the capture (after - before), gauges from `after`.
pub(crate) type DeviceDelta = DeviceStats;

/// What changed in one namespace between two snapshots.
///
/// Counters are `after - before` (saturating at 0, and only the non-zero ones are kept for
/// snmp/netstat); gauges (conntrack count/max, qdisc backlog, sysctls, device state) are from
/// `after`. When a namespace has no `before` snapshot, counters are left empty (`no_baseline`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetnsDelta {
    /// The namespace it was read in: its inode and cookie (in JSON `netns` and `cookie`).
    #[serde(flatten, with = "netns_fields")]
    pub netns: NetnsId,
    pub label: NetnsLabel,
    #[serde(default)]
    pub is_self: bool,
    /// A process living in it at the last reading ([`NetnsSnapshot::pid`]).
    #[serde(default, skip_serializing_if = "crate::model::is_zero")]
    pub pid: u32,
    /// Seconds between the two snapshots.
    pub seconds: f64,
    #[serde(default)]
    pub no_baseline: bool,
    pub snmp: BTreeMap<String, i64>,
    pub netstat: BTreeMap<String, i64>,
    pub softnet: Vec<SoftnetCpu>,
    pub devices: Vec<DeviceDelta>,
    pub qdiscs: Vec<QdiscStats>,
    pub conntrack: Option<ConntrackStats>,
    #[serde(default)]
    pub neigh: BTreeMap<String, u64>,
    pub sysctls: BTreeMap<String, String>,
    pub unavailable: Vec<String>,
    /// Born during the capture: seconds after its start when the namespace was first seen
    /// (its counters are from its birth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeared_after: Option<f64>,
    /// Gone before the end: seconds after the start when it was last seen (its counters are
    /// its last reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_after: Option<f64>,
}

impl NetnsDelta {
    /// A counter from snmp or netstat ("Udp.RcvbufErrors", "TcpExt.ListenOverflows"), 0 if absent.
    pub(crate) fn counter(&self, key: &str) -> u64 {
        let v = self.snmp.get(key).or_else(|| self.netstat.get(key)).copied().unwrap_or(0);
        u64::try_from(v).unwrap_or(0)
    }
}

/// A base chain whose policy drops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FirewallChain {
    /// "nft", "iptables" or "ip6tables".
    pub backend: String,
    pub family: String,
    pub table: String,
    pub chain: String,
    pub hook: String,
    pub policy: String,
    /// Packets that met the policy: the chain's own counters (iptables-nft and legacy iptables
    /// keep them; an nft chain has none).
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
}

/// A rule whose verdict is drop or reject.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FirewallRule {
    pub backend: String,
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    /// The rule rendered from its expressions, in nft syntax, or `-A CHAIN ...` as
    /// `iptables-save` prints it for iptables tables ([`nft`]).
    pub rule: String,
    /// "drop" or "reject".
    pub verdict: String,
    /// Cumulative counter, when the rule has one.
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    /// Packets matched during the capture (filled by [`finish`]).
    #[serde(default)]
    pub packets_delta: Option<u64>,
}

/// A listening TCP socket (`ss -ltnpmeH`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Listener {
    pub addr: String,
    pub port: u16,
    /// Recv-Q: connections waiting in the accept queue now.
    pub accept_queue: u64,
    /// Send-Q: the accept queue limit, min(`listen()` backlog, somaxconn).
    pub backlog: u64,
    /// This listener's drop counter (skmem d: `ListenDrops` on this socket), cumulative.
    pub drops: Option<u64>,
    #[serde(default)]
    pub drops_delta: Option<u64>,
    pub inode: Option<u64>,
    /// "comm[pid]" owners.
    pub process: String,
}

/// A UDP socket (`ss -uamnpeH`, or /proc/net/udp{,6}).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UdpSocket {
    pub addr: String,
    pub port: u16,
    pub peer: String,
    /// Bytes queued for the application.
    pub rx_queue: u64,
    pub tx_queue: u64,
    /// Effective `SO_RCVBUF` / `SO_SNDBUF` (skmem rb / tb).
    pub rcvbuf: Option<u64>,
    pub sndbuf: Option<u64>,
    /// Cumulative drops of this socket.
    pub drops: u64,
    #[serde(default)]
    pub drops_delta: Option<u64>,
    pub inode: Option<u64>,
    pub process: String,
}

/// Ring sizes of a device (`ethtool -g`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RingParams {
    pub dev: String,
    pub rx: Option<u32>,
    pub rx_max: Option<u32>,
    pub tx: Option<u32>,
    pub tx_max: Option<u32>,
}

/// A route that drops: blackhole, unreachable, prohibit (or throw).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RouteEntry {
    pub kind: String,
    pub dst: String,
    pub table: String,
}

/// RPS mask of one receive queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RpsQueue {
    pub dev: String,
    pub queue: String,
    pub mask: String,
}

/// Configuration of one namespace that can explain drops (read-only checks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigChecks {
    /// The namespace it was read in: its inode and cookie (in JSON `netns` and `cookie`).
    #[serde(flatten, with = "netns_fields")]
    pub netns: NetnsId,
    pub label: NetnsLabel,
    #[serde(default)]
    pub is_self: bool,
    pub drop_chains: Vec<FirewallChain>,
    pub drop_rules: Vec<FirewallRule>,
    pub listeners: Vec<Listener>,
    pub udp_sockets: Vec<UdpSocket>,
    /// "all", "default" and per-interface values of `net.ipv4.conf.*.rp_filter`.
    pub rp_filter: BTreeMap<String, u32>,
    pub rps: Vec<RpsQueue>,
    pub rings: Vec<RingParams>,
    pub drop_routes: Vec<RouteEntry>,
    /// Neighbour entries in FAILED/INCOMPLETE state ("10.0.0.9 dev eth0 FAILED").
    pub failed_neighbors: Vec<String>,
    /// The processes holding this namespace's TUN/TAP devices open (their readers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tun_readers: Vec<TunReader>,
    pub unavailable: Vec<String>,
}

/// Why a namespace has no reading: it could not be found when it was to be read.
const NOT_FOUND: &str = "netns: not found (no process or /run/netns entry holds it)";

impl NetnsSnapshot {
    /// The placeholder of namespace `inode`, not found when it was to be read at `taken_at`.
    pub(crate) fn not_found(inode: u32, taken_at: f64) -> Self {
        Self {
            netns: NetnsId { inode, cookie: 0 },
            label: NetnsLabel::Inode(inode),
            taken_at,
            unavailable: vec![NOT_FOUND.to_owned()],
            not_found: true,
            ..Self::default()
        }
    }
}

impl ConfigChecks {
    /// The placeholder of namespace `inode`, not found when it was to be read.
    pub(crate) fn not_found(inode: u32) -> Self {
        Self {
            netns: NetnsId { inode, cookie: 0 },
            label: NetnsLabel::Inode(inode),
            unavailable: vec![NOT_FOUND.to_owned()],
            ..Self::default()
        }
    }
}

/// Everything read at one instant: counters and configuration of each namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gathered {
    pub snapshots: Vec<NetnsSnapshot>,
    pub checks: Vec<ConfigChecks>,
}

/// Snapshot counters and configuration of these namespaces (plus pktloss's own).
pub(crate) fn gather(netns_inodes: &[u32]) -> Gathered {
    gather::gather(netns_inodes)
}

/// Deltas of every namespace in `after`, and `after`'s configuration with the firewall-rule,
/// listener and UDP-socket drop counters turned into deltas over the capture.
pub(crate) fn finish(before: Gathered, after: Gathered) -> (Vec<NetnsDelta>, Vec<ConfigChecks>) {
    // The capture's start: the first reading before it.
    let t0 = before.snapshots.iter().map(|s| s.taken_at).filter(|t| *t > 0.0).fold(f64::INFINITY, f64::min);
    let since_start = |t: Option<f64>| t.filter(|_| t0.is_finite()).map(|t| (t - t0).max(0.0));
    let deltas = after
        .snapshots
        .iter()
        .map(|a| {
            let mut d = match before.snapshots.iter().find(|b| b.netns.matches(a.netns)) {
                Some(b) => delta(b, a),
                // Born during the capture: its counters started at zero.
                None if a.appeared_at.is_some() => delta(&a.at_birth(), a),
                None => no_baseline(a),
            };
            d.appeared_after = since_start(a.appeared_at);
            d.gone_after = since_start(a.gone_at);
            d
        })
        .collect();
    let born: BTreeSet<NetnsId> = after.snapshots.iter().filter(|s| s.appeared_at.is_some()).map(|s| s.netns).collect();
    let checks = after
        .checks
        .into_iter()
        .map(|mut a| {
            if let Some(b) = before.checks.iter().find(|b| b.netns.matches(a.netns)) {
                checks_delta(b, &mut a);
            } else if born.contains(&a.netns) {
                // Born during the capture: its rules and sockets counted from zero.
                checks_delta(&ConfigChecks::default(), &mut a);
            }
            a
        })
        .collect();
    (deltas, checks)
}

fn checks_delta(before: &ConfigChecks, after: &mut ConfigChecks) {
    for r in &mut after.drop_rules {
        let prev = before.drop_rules.iter().find(|p| {
            p.backend == r.backend && p.family == r.family && p.table == r.table && p.chain == r.chain && {
                if r.handle.is_some() { p.handle == r.handle } else { p.rule == r.rule }
            }
        });
        // A rule added during the capture counts from zero.
        r.packets_delta = r.packets.map(|a| a.saturating_sub(prev.and_then(|p| p.packets).unwrap_or(0)));
    }
    for c in &mut after.drop_chains {
        if let (Some(a), Some(p)) = (
            c.packets,
            before
                .drop_chains
                .iter()
                .find(|p| p.backend == c.backend && p.table == c.table && p.chain == c.chain)
                .and_then(|p| p.packets),
        ) {
            // Policy counters of iptables chains: keep the capture's share only.
            c.packets = Some(a.saturating_sub(p));
        }
    }
    for l in &mut after.listeners {
        let prev = before.listeners.iter().find(|p| match (p.inode, l.inode) {
            (Some(a), Some(b)) => a == b,
            _ => p.addr == l.addr && p.port == l.port,
        });
        l.drops_delta = match (l.drops, prev.and_then(|p| p.drops)) {
            (Some(a), Some(b)) => Some(a.saturating_sub(b)),
            (Some(a), None) if prev.is_none() => Some(a),
            _ => None,
        };
    }
    for u in &mut after.udp_sockets {
        let prev = before.udp_sockets.iter().find(|p| match (p.inode, u.inode) {
            (Some(a), Some(b)) => a == b,
            _ => p.addr == u.addr && p.port == u.port,
        });
        u.drops_delta = Some(u.drops.saturating_sub(prev.map_or(0, |p| p.drops)));
    }
}

fn sub_map(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(k, a)| {
            let d = a.saturating_sub(before.get(k).copied().unwrap_or(*a)).max(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn sub_umap(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, a)| {
            let d = a.saturating_sub(before.get(k).copied().unwrap_or(*a));
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn device_delta(b: &DeviceStats, a: &DeviceStats) -> DeviceStats {
    DeviceStats {
        rx_bytes: a.rx_bytes.saturating_sub(b.rx_bytes),
        rx_packets: a.rx_packets.saturating_sub(b.rx_packets),
        rx_errors: a.rx_errors.saturating_sub(b.rx_errors),
        rx_dropped: a.rx_dropped.saturating_sub(b.rx_dropped),
        rx_over_errors: a.rx_over_errors.saturating_sub(b.rx_over_errors),
        rx_crc_errors: a.rx_crc_errors.saturating_sub(b.rx_crc_errors),
        rx_frame_errors: a.rx_frame_errors.saturating_sub(b.rx_frame_errors),
        rx_fifo_errors: a.rx_fifo_errors.saturating_sub(b.rx_fifo_errors),
        rx_missed_errors: a.rx_missed_errors.saturating_sub(b.rx_missed_errors),
        rx_length_errors: a.rx_length_errors.saturating_sub(b.rx_length_errors),
        rx_nohandler: a.rx_nohandler.saturating_sub(b.rx_nohandler),
        tx_bytes: a.tx_bytes.saturating_sub(b.tx_bytes),
        tx_packets: a.tx_packets.saturating_sub(b.tx_packets),
        tx_errors: a.tx_errors.saturating_sub(b.tx_errors),
        tx_dropped: a.tx_dropped.saturating_sub(b.tx_dropped),
        tx_fifo_errors: a.tx_fifo_errors.saturating_sub(b.tx_fifo_errors),
        tx_carrier_errors: a.tx_carrier_errors.saturating_sub(b.tx_carrier_errors),
        carrier_changes: a.carrier_changes.saturating_sub(b.carrier_changes),
        ethtool: sub_umap(&b.ethtool, &a.ethtool),
        ..a.clone()
    }
}

/// Counters over the capture: `after - before` (saturating), gauges from `after`.
pub(crate) fn delta(before: &NetnsSnapshot, after: &NetnsSnapshot) -> NetnsDelta {
    let softnet = after
        .softnet
        .iter()
        .map(|a| {
            let b = before.softnet.iter().find(|b| b.cpu == a.cpu).cloned().unwrap_or_else(|| a.clone());
            SoftnetCpu {
                cpu: a.cpu,
                processed: a.processed.saturating_sub(b.processed),
                dropped: a.dropped.saturating_sub(b.dropped),
                time_squeeze: a.time_squeeze.saturating_sub(b.time_squeeze),
                received_rps: a.received_rps.saturating_sub(b.received_rps),
                flow_limit_count: a.flow_limit_count.saturating_sub(b.flow_limit_count),
                backlog_len: a.backlog_len,
            }
        })
        .collect();
    let devices = after
        .devices
        .iter()
        .map(|a| match before.devices.iter().find(|b| b.name == a.name && b.ifindex == a.ifindex) {
            Some(b) => device_delta(b, a),
            // A device created during the capture counts from zero; its link coming up (the
            // carrier changes of its creation) is not a flap.
            None => DeviceStats { carrier_changes: 0, ..a.clone() },
        })
        .collect();
    let qdiscs = after
        .qdiscs
        .iter()
        .map(|a| {
            let b = before.qdiscs.iter().find(|b| b.dev == a.dev && b.handle == a.handle && b.parent == a.parent);
            match b {
                Some(b) => QdiscStats {
                    bytes: a.bytes.saturating_sub(b.bytes),
                    packets: a.packets.saturating_sub(b.packets),
                    drops: a.drops.saturating_sub(b.drops),
                    overlimits: a.overlimits.saturating_sub(b.overlimits),
                    requeues: a.requeues.saturating_sub(b.requeues),
                    ..a.clone()
                },
                None => a.clone(),
            }
        })
        .collect();
    let conntrack = after.conntrack.as_ref().map(|a| ConntrackStats {
        count: a.count,
        max: a.max,
        stats: match &before.conntrack {
            Some(b) => sub_umap(&b.stats, &a.stats),
            None => BTreeMap::new(),
        },
    });
    let mut unavailable: BTreeSet<String> = before.unavailable.iter().cloned().collect();
    unavailable.extend(after.unavailable.iter().cloned());
    NetnsDelta {
        netns: after.netns,
        label: after.label.clone(),
        is_self: after.is_self,
        pid: after.pid,
        seconds: (after.taken_at - before.taken_at).max(0.0),
        no_baseline: false,
        snmp: sub_map(&before.snmp, &after.snmp),
        netstat: sub_map(&before.netstat, &after.netstat),
        softnet,
        devices,
        qdiscs,
        conntrack,
        neigh: sub_umap(&before.neigh, &after.neigh),
        sysctls: after.sysctls.clone(),
        unavailable: unavailable.into_iter().collect(),
        appeared_after: None,
        gone_after: None,
    }
}

/// A namespace seen only at the end: gauges, no counters.
fn no_baseline(after: &NetnsSnapshot) -> NetnsDelta {
    let mut unavailable = after.unavailable.clone();
    unavailable.push("counters: no snapshot before the capture (namespace appeared during it)".to_owned());
    NetnsDelta {
        netns: after.netns,
        label: after.label.clone(),
        is_self: after.is_self,
        pid: after.pid,
        no_baseline: true,
        conntrack: after.conntrack.as_ref().map(|c| ConntrackStats { stats: BTreeMap::new(), ..c.clone() }),
        sysctls: after.sysctls.clone(),
        unavailable,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
