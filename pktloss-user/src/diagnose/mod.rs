//! Diagnosis: classify a capture's drops into documented causes, with evidence and advice.
//!
//! [`classify`] is a pure function of the collected data (the [`Summary`] of the drop events plus
//! the per-namespace counter deltas and configuration checks from [`crate::host::counters`]), so it runs
//! the same on a live capture, in the TUI and on a saved capture. The causes and their texts live
//! in [`taxonomy`].
//!
//! How a cause is selected:
//! - Drop events: each reason maps to a cause ([`taxonomy::cause_for_reason`]); `SOCKET_RCVBUFF`
//!   is split by the flows' protocol (UDP => udp-rcvbuf-full, TCP => socket-memory-pressure);
//!   `NOT_SPECIFIED`/`TCP_DROP` go by drop location ([`taxonomy::LOCATION_HINTS`]); unknown reasons
//!   go to `unclassified` with the raw reason and location; [`taxonomy::BENIGN_REASONS`] (socket
//!   teardown) are not loss and only reported in the reconciliation.
//! - Counters alone also select causes (see `COUNTER_RULES`), e.g. `Udp.SndbufErrors`,
//!   `TcpExt.ListenOverflows` (SYNs freed with consume_skb leave no drop event), softnet dropped,
//!   device missed/FIFO/CRC errors, qdisc drops, conntrack drops, firewall rule counters.
//! - A cause's `drops` is max(events, counters) since both count the same packets; they are
//!   reconciled in the evidence.
//!
//! Noise thresholds (an idle host must give no cause): a counter that counts real drops selects
//! its cause from 1; signals that are not drops by themselves or that move on healthy hosts need
//! more — `time_squeeze` >= [`MIN_TIME_SQUEEZE`] over the capture, counter-only TCP protocol
//! drops (OFO, PAWS, window) >= [`MIN_TCP_PROTOCOL`], TCP retransmissions without a local drop >=
//! [`MIN_EXTERNAL_RETRANS`], conntrack fill >= [`CONNTRACK_FULL_RATIO`]. Configuration findings
//! (policy DROP chains, FAILED neighbours, blackhole routes, small buffers) never select a cause
//! on their own: they add evidence and advice to a cause selected by drops or counters.
pub mod taxonomy;

pub use taxonomy::CauseId;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    host::counters::{ConfigChecks, NetnsDelta},
    model::Summary,
};

/// Minimum time_squeeze increase (all CPUs, whole capture) for softirq-budget-exhausted.
pub const MIN_TIME_SQUEEZE: u64 = 10;
/// Minimum counter-only TCP protocol drops (TCPOFODrop, PAWSEstab, ...) for tcp-protocol.
pub const MIN_TCP_PROTOCOL: u64 = 10;
/// Minimum TCP retransmissions not explained by local drops for external-loss.
pub const MIN_EXTERNAL_RETRANS: u64 = 5;
/// Conntrack count / max at or above which the table counts as (nearly) full.
pub const CONNTRACK_FULL_RATIO: f64 = 0.9;

/// What the classification reads.
#[derive(Clone, Copy, Debug)]
pub struct DiagnosisInput<'a> {
    pub summary: &'a Summary,
    /// Counter deltas per namespace ([`crate::host::counters::finish`]).
    pub deltas: &'a [NetnsDelta],
    /// Configuration per namespace, with rule/socket counters as deltas.
    pub checks: &'a [ConfigChecks],
}

/// One diagnosed cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cause {
    /// Stable id from the taxonomy (CauseId::UdpRcvbufFull).
    pub id: CauseId,
    pub title: String,
    /// Drops this cause explains: max(traced drops, counter drops).
    pub drops: u64,
    /// Of which seen as drop events.
    #[serde(default)]
    pub event_drops: u64,
    /// Of which counted by kernel counters.
    #[serde(default)]
    pub counter_drops: u64,
    pub explanation: String,
    /// Facts, each naming the namespace it comes from.
    pub evidence: Vec<String>,
    /// What to do, most specific first.
    pub advice: Vec<String>,
    /// Commands that verify the fix.
    pub verify: Vec<String>,
    /// Namespaces involved (inodes).
    pub netns: Vec<u32>,
}

/// Which cause explains the traced drops of one reason (split by protocol or drop location where
/// the diagnosis split them): each drop's explanation as data, for the report and the pcapng
/// comments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explained {
    pub cause: CauseId,
    pub reason: String,
    /// Only these drops of the reason: one protocol ("udp").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Only these drops of the reason: one location (`function+0xoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub drops: u64,
}

/// The full diagnosis: ranked causes, which cause explains which drops, the reconciliation of
/// events and counters, and what could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    #[serde(default)]
    pub causes: Vec<Cause>,
    #[serde(default)]
    pub explained: Vec<Explained>,
    #[serde(default)]
    pub reconciliation: Vec<String>,
    #[serde(default)]
    pub unavailable: Vec<String>,
}

/// The function of a location (`function+0xoff`).
fn function(symbol: &str) -> &str {
    symbol.split('+').next().unwrap_or(symbol)
}

impl Diagnosis {
    /// The cause that explains a traced drop of `reason` (protocol `proto`, at `symbol`): the
    /// most specific assignment that matches (location by its function, then protocol, then the
    /// reason alone).
    pub fn cause_for_drop(&self, reason: &str, proto: &str, symbol: &str) -> Option<&Cause> {
        let e = self
            .explained
            .iter()
            .filter(|e| {
                e.reason == reason
                    && e.proto.as_deref().is_none_or(|p| p == proto)
                    && e.symbol.as_deref().is_none_or(|s| function(s) == function(symbol))
            })
            .max_by_key(|e| (e.symbol.is_some(), e.proto.is_some(), e.drops))?;
        self.causes.iter().find(|c| c.id == e.cause)
    }
}

/// Causes ranked by drops explained (then by counter evidence). Empty for an idle capture.
pub fn classify(input: &DiagnosisInput) -> Vec<Cause> {
    diagnose(input).causes
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Counts dropped packets: adds to the cause's counter drops.
    Drop,
    /// Selects the cause but is not a drop count.
    Select,
    /// Shown only when the cause is selected otherwise.
    Evidence,
}

struct CounterRule {
    cause: CauseId,
    key: &'static str,
    role: Role,
    min: u64,
}

const fn rule(cause: CauseId, key: &'static str, role: Role, min: u64) -> CounterRule {
    CounterRule { cause, key, role, min }
}

/// snmp/netstat counters that select causes (see the module doc for thresholds).
const COUNTER_RULES: &[CounterRule] = &[
    rule(CauseId::NoListener, "Udp.NoPorts", Role::Drop, 1),
    rule(CauseId::NoListener, "Udp6.NoPorts", Role::Drop, 1),
    rule(CauseId::RpFilter, "TcpExt.IPReversePathFilter", Role::Drop, 1),
    rule(CauseId::UdpRcvbufFull, "Udp.RcvbufErrors", Role::Drop, 1),
    rule(CauseId::UdpRcvbufFull, "Udp6.RcvbufErrors", Role::Drop, 1),
    rule(CauseId::UdpRcvbufFull, "UdpLite.RcvbufErrors", Role::Drop, 1),
    rule(CauseId::UdpRcvbufFull, "UdpLite6.RcvbufErrors", Role::Drop, 1),
    rule(CauseId::UdpSndbufFull, "Udp.SndbufErrors", Role::Drop, 1),
    rule(CauseId::UdpSndbufFull, "Udp6.SndbufErrors", Role::Drop, 1),
    rule(CauseId::UdpSndbufFull, "UdpLite.SndbufErrors", Role::Drop, 1),
    rule(CauseId::UdpSndbufFull, "UdpLite6.SndbufErrors", Role::Drop, 1),
    rule(CauseId::TcpAcceptQueueFull, "TcpExt.ListenOverflows", Role::Drop, 1),
    rule(CauseId::TcpAcceptQueueFull, "TcpExt.ListenDrops", Role::Evidence, 1),
    rule(CauseId::TcpAcceptQueueFull, "TcpExt.TCPFastOpenListenOverflow", Role::Evidence, 1),
    rule(CauseId::TcpSynQueueFull, "TcpExt.TCPReqQFullDrop", Role::Drop, 1),
    rule(CauseId::TcpSynQueueFull, "TcpExt.TCPReqQFullDoCookies", Role::Select, 1),
    rule(CauseId::TcpSynQueueFull, "TcpExt.SyncookiesSent", Role::Select, 1),
    rule(CauseId::TcpSynQueueFull, "TcpExt.SyncookiesFailed", Role::Evidence, 1),
    rule(CauseId::TcpBacklogOverflow, "TcpExt.TCPBacklogDrop", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.TCPRcvQDrop", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.RcvPruned", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.OfoPruned", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "Udp.MemErrors", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "Udp6.MemErrors", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.TCPMemoryPressures", Role::Select, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.TCPAbortOnMemory", Role::Select, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.PruneCalled", Role::Evidence, 1),
    rule(CauseId::ChecksumError, "Udp.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "Udp6.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "UdpLite.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "UdpLite6.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "Tcp.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "Icmp.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "Icmp6.InCsumErrors", Role::Drop, 1),
    rule(CauseId::ChecksumError, "IpExt.InCsumErrors", Role::Drop, 1),
    // IPv4 InNoRoutes is in /proc/net/netstat (IpExt), not in the Ip line of /proc/net/snmp.
    rule(CauseId::Routing, "IpExt.InNoRoutes", Role::Drop, 1),
    rule(CauseId::Routing, "Ip.OutNoRoutes", Role::Drop, 1),
    rule(CauseId::Routing, "Ip.InAddrErrors", Role::Drop, 1),
    rule(CauseId::Routing, "Ip6.InNoRoutes", Role::Drop, 1),
    rule(CauseId::Routing, "Ip6.OutNoRoutes", Role::Drop, 1),
    rule(CauseId::Routing, "Ip6.InAddrErrors", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip.FragFails", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip.ReasmFails", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip6.FragFails", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip6.ReasmFails", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip6.InTooBigErrors", Role::Drop, 1),
    rule(CauseId::MtuFragmentation, "Ip.ReasmTimeout", Role::Evidence, 1),
    rule(CauseId::TcpProtocol, "TcpExt.TCPOFODrop", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::TcpProtocol, "TcpExt.TCPZeroWindowDrop", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::TcpProtocol, "TcpExt.PAWSEstab", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::TcpProtocol, "TcpExt.BeyondWindow", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::MemoryPressure, "TcpExt.PFMemallocDrop", Role::Drop, 1),
];

/// Why counters can show drops that events do not.
fn counters_only_why(id: CauseId) -> &'static str {
    match id {
        CauseId::UdpSndbufFull => "sendmsg fails before an skb is queued, nothing is freed",
        CauseId::TcpAcceptQueueFull => {
            "the kernel frees SYNs dropped on a full accept queue with consume_skb, invisible to kfree_skb"
        }
        CauseId::TcpSynQueueFull => {
            "SYNs answered with cookies or dropped here leave no kfree_skb event on this kernel"
        }
        CauseId::NicRingFull | CauseId::NicFifoOverrun => "the NIC drops these frames before an skb exists",
        CauseId::ChecksumError => "frames with a bad CRC are dropped by the NIC before an skb exists",
        CauseId::QdiscDrop => "drops inside some qdiscs are freed in bulk without a per-packet reason",
        CauseId::FirewallDrop => "traced, they show as NETFILTER_DROP: the drop probe was inactive or missed them",
        CauseId::Routing => "a send with no route fails before an skb exists (the application gets ENETUNREACH)",
        CauseId::NeighborFailure => "the neighbour table counts discards in the whole host",
        _ => "the kernel counts these drops without a kfree_skb event, or they happened outside the traced probes",
    }
}

#[derive(Default)]
struct Acc {
    event_drops: u64,
    counter_drops: u64,
    /// Counter magnitude, for ranking causes with equal drops.
    score: u64,
    selected: bool,
    evidence: Vec<String>,
    advice: Vec<String>,
    netns: BTreeSet<u32>,
    /// (reason, protocol filter, symbol filter) of the events assigned here.
    events: Vec<(String, Option<&'static str>, Option<String>, u64)>,
    /// Counter keys seen (for reconciliation): counters for this cause were readable.
    counter_seen: bool,
}

impl Acc {
    /// Selects the cause by a counter: `drops` packets it counted (0 for a signal that is not a
    /// drop count) and `score` for ranking.
    fn select(&mut self, drops: u64, score: u64) {
        self.counter_drops += drops;
        self.selected = true;
        self.score += score;
    }
    fn ev(&mut self, s: String) {
        if !self.evidence.contains(&s) {
            self.evidence.push(s);
        }
    }
    fn adv(&mut self, s: String) {
        if !self.advice.contains(&s) {
            self.advice.push(s);
        }
    }
}

struct Ctx<'a> {
    input: &'a DiagnosisInput<'a>,
    labels: BTreeMap<u32, String>,
    acc: BTreeMap<CauseId, Acc>,
}

impl<'a> Ctx<'a> {
    fn tag(&self, netns: u32) -> String {
        match self.labels.get(&netns) {
            Some(l) if !l.starts_with("netns:") => format!("[netns {l} ({netns})]"),
            _ if netns == 0 => "[netns ?]".to_owned(),
            _ => format!("[netns {netns}]"),
        }
    }

    /// Shell prefix that runs a command in a namespace ("ip netns exec NAME ").
    fn in_ns(&self, netns: u32) -> String {
        let host = self.input.deltas.iter().any(|d| d.netns == netns && d.is_self)
            || self.input.checks.iter().any(|c| c.netns == netns && c.is_self);
        match self.labels.get(&netns) {
            _ if host => String::new(),
            Some(l) if !l.starts_with("netns:") && l != "host" => format!("ip netns exec {l} "),
            _ => format!("nsenter --net=/proc/<PID in netns {netns}>/ns/net "),
        }
    }

    fn a(&mut self, id: CauseId) -> &mut Acc {
        self.acc.entry(id).or_default()
    }

    /// Selects cause `id` by `drops` packets a counter in `netns` counted; returns it for evidence.
    fn counted(&mut self, id: CauseId, netns: u32, drops: u64) -> &mut Acc {
        let a = self.a(id);
        a.select(drops, drops);
        a.netns.insert(netns);
        a
    }

    /// Adds evidence and advice (in order, without repeats) to a cause.
    fn add(&mut self, id: CauseId, evidence: Vec<String>, advice: Vec<String>) {
        let a = self.a(id);
        for e in evidence {
            a.ev(e);
        }
        for x in advice {
            a.adv(x);
        }
    }

    /// The host's (our own namespace's) delta, for host-wide counters and sysctls.
    fn host(&self) -> Option<&'a NetnsDelta> {
        self.input.deltas.iter().find(|d| d.is_self).or_else(|| self.input.deltas.first())
    }

    /// A sysctl in a namespace, falling back to the host's value for host-wide ones.
    fn sysctl(&self, netns: u32, key: &str) -> Option<(String, bool)> {
        if let Some(v) = self.input.deltas.iter().find(|d| d.netns == netns).and_then(|d| d.sysctls.get(key)) {
            return Some((v.clone(), false));
        }
        self.host().and_then(|h| h.sysctls.get(key)).map(|v| (v.clone(), true))
    }

    fn sysctl_str(&self, netns: u32, key: &str) -> String {
        match self.sysctl(netns, key) {
            Some((v, false)) => format!("{key} = {v}"),
            Some((v, true)) => format!("{key} = {v} (host-wide)"),
            None => format!("{key} unknown"),
        }
    }

    fn sysctl_u64(&self, netns: u32, key: &str) -> Option<u64> {
        self.sysctl(netns, key).and_then(|(v, _)| v.split_whitespace().next().and_then(|x| x.parse().ok()))
    }

    fn checks_for(&self, id: CauseId) -> Vec<&'a ConfigChecks> {
        let ns = self.acc.get(&id).map(|a| a.netns.clone()).unwrap_or_default();
        self.input.checks.iter().filter(|c| ns.is_empty() || ns.contains(&c.netns)).collect()
    }

    fn deltas_for(&self, id: CauseId) -> Vec<&'a NetnsDelta> {
        let ns = self.acc.get(&id).map(|a| a.netns.clone()).unwrap_or_default();
        self.input.deltas.iter().filter(|d| ns.is_empty() || ns.contains(&d.netns)).collect()
    }
}

/// Classify, and also return the reconciliation and what could not be read.
pub fn diagnose(input: &DiagnosisInput) -> Diagnosis {
    let mut labels = BTreeMap::new();
    for d in input.deltas {
        labels.insert(d.netns, d.label.clone());
    }
    for c in input.checks {
        labels.entry(c.netns).or_insert_with(|| c.label.clone());
    }
    let mut cx = Ctx { input, labels, acc: BTreeMap::new() };
    let mut reconciliation = Vec::new();

    let benign = assign_events(&mut cx);
    counter_signals(&mut cx);
    external_loss(&mut cx);
    event_evidence(&mut cx);
    config_findings(&mut cx);

    // Which cause explains which traced drops.
    let mut assignments: Vec<Explained> = cx
        .acc
        .iter()
        .flat_map(|(id, a)| {
            a.events.iter().map(|(reason, proto, symbol, n)| Explained {
                cause: *id,
                reason: reason.clone(),
                proto: proto.map(str::to_owned),
                symbol: symbol.clone(),
                drops: *n,
            })
        })
        .collect();
    assignments.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.cause.cmp(&b.cause)));

    // Build, reconcile, rank.
    let mut causes = Vec::new();
    let ids: Vec<CauseId> = cx.acc.keys().copied().collect();
    for id in ids {
        let a = cx.acc.remove(&id).unwrap_or_default();
        let drops = a.event_drops.max(a.counter_drops);
        if drops == 0 && !a.selected {
            continue;
        }
        let info = taxonomy::info(id);
        let mut evidence = a.evidence;
        if a.event_drops > 0 && a.counter_drops > 0 {
            let line = match a.counter_drops.cmp(&a.event_drops) {
                std::cmp::Ordering::Equal => {
                    format!("reconcile: {} traced drops match the counters exactly", a.event_drops)
                }
                std::cmp::Ordering::Greater => format!(
                    "reconcile: counters show {} drops, events {}: {} not seen as events ({})",
                    a.counter_drops,
                    a.event_drops,
                    a.counter_drops - a.event_drops,
                    counters_only_why(id)
                ),
                std::cmp::Ordering::Less => format!(
                    "reconcile: events show {} drops, counters {}: {} not in the counters read (a namespace not read, or counted under another counter)",
                    a.event_drops,
                    a.counter_drops,
                    a.event_drops - a.counter_drops
                ),
            };
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        } else if a.counter_drops > 0 && a.event_drops == 0 {
            let line = format!(
                "reconcile: {} drops counted by the kernel, none traced as drop events ({})",
                a.counter_drops,
                counters_only_why(id)
            );
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        } else if a.event_drops > 0 && a.counter_drops == 0 && a.counter_seen {
            let line = format!(
                "reconcile: {} traced drops, the counters read show none (a namespace not read, or a path without a counter)",
                a.event_drops
            );
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        }
        let mut advice = a.advice;
        for r in info.remediation {
            let r = (*r).to_owned();
            if !advice.contains(&r) {
                advice.push(r);
            }
        }
        let mut verify: Vec<String> = info.verify.iter().map(|s| (*s).to_owned()).collect();
        verify.extend(info.checks.iter().map(|s| format!("check: {s}")));
        causes.push((
            a.score,
            Cause {
                id: id.to_owned(),
                title: info.title.to_owned(),
                drops,
                event_drops: a.event_drops,
                counter_drops: a.counter_drops,
                explanation: info.explanation.to_owned(),
                evidence,
                advice,
                verify,
                netns: a.netns.into_iter().filter(|n| *n != 0).collect(),
            },
        ));
    }
    causes.sort_by(|(sa, a), (sb, b)| {
        b.drops
            .cmp(&a.drops)
            .then(sb.cmp(sa))
            .then(b.evidence.len().cmp(&a.evidence.len()))
            .then(taxonomy::order(a.id).cmp(&taxonomy::order(b.id)))
    });
    let causes: Vec<Cause> = causes.into_iter().map(|(_, c)| c).collect();

    let s = input.summary;
    let explained: u64 = causes.iter().map(|c| c.event_drops).sum();
    if s.total_drops > 0 || benign > 0 {
        reconciliation.insert(
            0,
            format!(
                "traced drops: {} in total; {} assigned to causes; {} socket teardown or unjoined multicast (not loss: {}, NOT_SPECIFIED at {})",
                s.total_drops,
                explained,
                benign,
                taxonomy::BENIGN_REASONS.join(", "),
                taxonomy::BENIGN_LOCATIONS.join(", ")
            ),
        );
    }
    let mut unavailable = BTreeSet::new();
    for d in input.deltas {
        for u in &d.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag(d.netns)));
        }
    }
    for c in input.checks {
        for u in &c.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag(c.netns)));
        }
    }
    Diagnosis { causes, explained: assignments, reconciliation, unavailable: unavailable.into_iter().collect() }
}

/// Map every drop reason of the summary to a cause. Returns the benign (teardown) drops.
fn assign_events(cx: &mut Ctx) -> u64 {
    let s = cx.input.summary;
    let mut benign = 0;
    let total_counter = |cx: &Ctx, key: &str| cx.input.deltas.iter().map(|d| d.counter(key)).sum::<u64>();
    for r in &s.reasons {
        if r.count == 0 {
            continue;
        }
        if taxonomy::is_benign(&r.reason) {
            benign += r.count;
            continue;
        }
        let flows: Vec<_> = s.flows.iter().filter(|f| f.reason == r.reason).collect();
        match r.reason.as_str() {
            "SOCKET_RCVBUFF" => {
                let by = |p: &str| flows.iter().filter(|f| f.proto == p).map(|f| f.count).sum::<u64>();
                let (udp, tcp) = (by("udp"), by("tcp"));
                let rest = r.count.saturating_sub(udp + tcp);
                let udp_counters = total_counter(cx, "Udp.RcvbufErrors") + total_counter(cx, "Udp6.RcvbufErrors");
                let rest_to_tcp = tcp > udp && udp_counters == 0;
                let (udp, tcp) = if rest_to_tcp { (udp, tcp + rest) } else { (udp + rest, tcp) };
                if udp > 0 {
                    push_event(cx, CauseId::UdpRcvbufFull, &r.reason, Some("udp"), None, udp);
                }
                if tcp > 0 {
                    push_event(cx, CauseId::SocketMemoryPressure, &r.reason, Some("tcp"), None, tcp);
                }
            }
            "NETFILTER_DROP" => {
                // Conntrack refusing new entries shows as NETFILTER_DROP too.
                let ct: u64 = cx
                    .input
                    .deltas
                    .iter()
                    .filter_map(|d| d.conntrack.as_ref())
                    .map(|c| {
                        c.stats.get("drop").copied().unwrap_or(0) + c.stats.get("insert_failed").copied().unwrap_or(0)
                    })
                    .sum();
                let to_ct = ct.min(r.count);
                if to_ct > 0 {
                    push_event(cx, CauseId::ConntrackTableFull, &r.reason, None, None, to_ct);
                }
                if r.count > to_ct {
                    push_event(cx, CauseId::FirewallDrop, &r.reason, None, None, r.count - to_ct);
                }
            }
            reason => {
                if let Some(id) = taxonomy::cause_for_reason(reason) {
                    push_event(cx, id, reason, None, None, r.count);
                    continue;
                }
                // By location: NOT_SPECIFIED, TCP_DROP and unknown reasons.
                let mut left = r.count;
                let locs: Vec<_> = s.locations.iter().filter(|l| l.reason == reason && l.count > 0).collect();
                for l in locs {
                    let n = l.count.min(left);
                    if n == 0 {
                        break;
                    }
                    if taxonomy::is_benign_location(reason, &l.symbol) {
                        benign += n;
                        left -= n;
                        continue;
                    }
                    let id = taxonomy::cause_for_location(&l.symbol).unwrap_or(if reason == "TCP_DROP" {
                        CauseId::TcpProtocol
                    } else {
                        CauseId::Unclassified
                    });
                    push_event(cx, id, reason, None, Some(l.symbol.clone()), n);
                    left -= n;
                }
                if left > 0 {
                    let id = if reason == "TCP_DROP" { CauseId::TcpProtocol } else { CauseId::Unclassified };
                    push_event(cx, id, reason, None, None, left);
                }
            }
        }
    }
    benign
}

fn push_event(cx: &mut Ctx, id: CauseId, reason: &str, proto: Option<&'static str>, symbol: Option<String>, n: u64) {
    let flows_ns: Vec<u32> = cx
        .input
        .summary
        .flows
        .iter()
        .filter(|f| f.is(reason, symbol.as_deref()) && proto.is_none_or(|p| f.proto == p) && f.netns != 0)
        .map(|f| f.netns)
        .collect();
    let a = cx.a(id);
    a.event_drops += n;
    a.selected = true;
    a.netns.extend(flows_ns);
    a.events.push((reason.to_owned(), proto, symbol, n));
}

/// Evidence lines for the events assigned to each cause: reason, location, top flows, processes.
fn event_evidence(cx: &mut Ctx) {
    let s = cx.input.summary;
    let ids: Vec<CauseId> = cx.acc.keys().copied().collect();
    for id in ids {
        let events = cx.acc.get(&id).map(|a| a.events.clone()).unwrap_or_default();
        let mut lines = Vec::new();
        for (reason, proto, symbol, n) in &events {
            let locs: Vec<String> = s
                .locations
                .iter()
                .filter(|l| &l.reason == reason && symbol.as_ref().is_none_or(|sy| &l.symbol == sy))
                .take(2)
                .map(|l| l.symbol.clone())
                .collect();
            let at = if let Some(sy) = symbol {
                format!(" at {sy}")
            } else if locs.is_empty() {
                String::new()
            } else {
                format!(" at {}", locs.join(", "))
            };
            let on = proto.map(|p| format!(" on {p}")).unwrap_or_default();
            if reason == crate::decode::reasons::NO_REASON {
                lines.push(format!(
                    "events: {n} drops{on}{at}; this kernel gives no drop reasons (before 5.17): classified by the drop location"
                ));
            } else {
                lines.push(format!("events: {n} drops with reason {reason}{on}{at}"));
            }
            let mut flows: Vec<_> = s
                .flows
                .iter()
                .filter(|f| f.is(reason, symbol.as_deref()) && proto.is_none_or(|p| f.proto == p))
                .collect();
            flows.sort_by_key(|f| std::cmp::Reverse(f.count));
            for f in flows.iter().take(3) {
                let dev = if f.device.is_empty() { String::new() } else { format!(" dev {}", f.device) };
                let who = if f.process.is_empty() { String::new() } else { format!(" process {}", f.process) };
                lines.push(format!(
                    "{} flow {} {}:{} -> {}:{}{dev}{who}: {} drops",
                    cx.tag(f.netns),
                    f.proto,
                    f.src,
                    f.sport,
                    f.dst,
                    f.dport,
                    f.count
                ));
            }
            let procs: BTreeSet<String> = s
                .samples
                .iter()
                .filter(|x| &x.reason == reason && !x.comm.is_empty() && x.pid != 0)
                .filter(|x| {
                    reason != crate::decode::reasons::NO_REASON || symbol.as_ref().is_none_or(|sy| &x.symbol == sy)
                })
                .filter(|x| proto.is_none_or(|p| x.proto == p))
                .map(|x| format!("{}[{}]", x.comm, x.pid))
                .take(3)
                .collect();
            if !procs.is_empty() && flows.iter().all(|f| f.process.is_empty()) {
                lines.push(format!("processes on these drops: {}", procs.into_iter().collect::<Vec<_>>().join(", ")));
            }
        }
        let a = cx.a(id);
        for (i, l) in lines.into_iter().enumerate() {
            if !a.evidence.contains(&l) {
                a.evidence.insert(i.min(a.evidence.len()), l);
            }
        }
    }
}

/// Counters (snmp/netstat, softnet, devices, qdiscs, conntrack, neighbours, firewall counters).
fn counter_signals(cx: &mut Ctx) {
    let deltas = cx.input.deltas;
    for d in deltas.iter().filter(|d| !d.no_baseline) {
        let tag = cx.tag(d.netns);
        for r in COUNTER_RULES {
            let v = d.counter(r.key);
            let a = cx.a(r.cause);
            if d.snmp.contains_key(r.key) || d.netstat.contains_key(r.key) {
                a.counter_seen = true;
            }
            if v < r.min || v == 0 {
                continue;
            }
            match r.role {
                Role::Drop | Role::Select => {
                    a.select(if r.role == Role::Drop { v } else { 0 }, v);
                    a.netns.insert(d.netns);
                    a.ev(format!("{tag} {} +{v}", r.key));
                }
                Role::Evidence => {
                    a.score += v;
                    a.ev(format!("{tag} {} +{v}", r.key));
                }
            }
        }
        // Evidence-only counters shown for unselected causes would be noise: drop them later
        // (a cause with no drops and not selected is skipped when building the output).

        // Devices.
        for dev in &d.devices {
            let ring = dev.rx_missed_errors.max(ethtool_sum(dev, is_ring_counter));
            if ring > 0 {
                let a = cx.counted(CauseId::NicRingFull, d.netns, ring);
                a.ev(format!("{tag} dev {} rx_missed_errors +{}", dev.name, dev.rx_missed_errors));
                for (k, v) in dev.ethtool.iter().filter(|(k, v)| **v > 0 && is_ring_counter(k)) {
                    a.ev(format!("{tag} dev {} ethtool {k} +{v}", dev.name));
                }
                if dev.rx_dropped > 0 {
                    a.ev(format!("{tag} dev {} rx_dropped +{}", dev.name, dev.rx_dropped));
                }
            }
            let fifo = dev.rx_fifo_errors.max(dev.rx_over_errors);
            if fifo > 0 {
                let a = cx.counted(CauseId::NicFifoOverrun, d.netns, fifo);
                a.ev(format!(
                    "{tag} dev {} rx_fifo_errors +{} rx_over_errors +{}",
                    dev.name, dev.rx_fifo_errors, dev.rx_over_errors
                ));
            }
            let crc = dev.rx_crc_errors + dev.rx_frame_errors;
            if crc > 0 {
                let a = cx.counted(CauseId::ChecksumError, d.netns, crc);
                a.ev(format!(
                    "{tag} dev {} rx_crc_errors +{} rx_frame_errors +{} (link-layer corruption: cable, optics, NIC or switch port)",
                    dev.name, dev.rx_crc_errors, dev.rx_frame_errors
                ));
            }
            let alloc = ethtool_sum(dev, is_alloc_failure);
            if alloc > 0 {
                let a = cx.counted(CauseId::MemoryPressure, d.netns, alloc);
                for (k, v) in dev.ethtool.iter().filter(|(k, v)| **v > 0 && is_alloc_failure(k)) {
                    a.ev(format!("{tag} dev {} ethtool {k} +{v} (RX buffer allocation failed)", dev.name));
                }
            }
            if dev.carrier_changes > 0 {
                let a = cx.a(CauseId::InterfaceDown);
                a.select(0, dev.carrier_changes);
                a.netns.insert(d.netns);
                a.ev(format!(
                    "{tag} dev {} carrier_changes +{} (link went down/up during the capture; now {})",
                    dev.name,
                    dev.carrier_changes,
                    if dev.operstate.is_empty() { "?" } else { &dev.operstate }
                ));
            }
        }

        // Qdiscs: root (and ingress) qdiscs only, children are included in their root's stats.
        let has_root = d.qdiscs.iter().any(|q| q.parent == "root");
        for q in d.qdiscs.iter().filter(|q| !has_root || q.parent == "root" || q.parent.starts_with("ffff:")) {
            if q.drops == 0 {
                continue;
            }
            let txq = d.devices.iter().find(|x| x.name == q.dev).map(|x| x.txqlen);
            let a = cx.counted(CauseId::QdiscDrop, d.netns, q.drops);
            a.ev(format!(
                "{tag} qdisc {} {} on dev {}: dropped +{}, overlimits +{}, backlog {}b {}p{}",
                q.kind,
                q.handle,
                q.dev,
                q.drops,
                q.overlimits,
                q.backlog,
                q.qlen,
                txq.map(|t| format!(", txqueuelen {t}")).unwrap_or_default()
            ));
        }

        // A UDP send dropped by the local qdisc returns ENOBUFS, which UDP counts as a send
        // buffer error: those SndbufErrors are the qdisc's drops, not a full socket buffer.
        let qdisc_drops: u64 = d.qdiscs.iter().filter(|q| !has_root || q.parent == "root").map(|q| q.drops).sum();
        let sndbuf: u64 = ["Udp.SndbufErrors", "Udp6.SndbufErrors", "UdpLite.SndbufErrors", "UdpLite6.SndbufErrors"]
            .iter()
            .map(|k| d.counter(k))
            .sum();
        let by_qdisc = sndbuf.min(qdisc_drops);
        if by_qdisc > 0 {
            let a = cx.a(CauseId::UdpSndbufFull);
            a.counter_drops = a.counter_drops.saturating_sub(by_qdisc);
            a.selected = a.counter_drops > 0;
            a.ev(format!(
                "{tag} {by_qdisc} of the SndbufErrors are sends the local qdisc dropped (UDP counts its ENOBUFS as a send buffer error): see qdisc-drop"
            ));
            cx.a(CauseId::QdiscDrop).ev(format!(
                "{tag} Udp.SndbufErrors +{sndbuf}: {by_qdisc} of them are these qdisc drops (the sender got ENOBUFS)"
            ));
        }

        // Conntrack.
        if let Some(ct) = &d.conntrack {
            let drop = ct.stats.get("drop").copied().unwrap_or(0);
            let failed = ct.stats.get("insert_failed").copied().unwrap_or(0);
            let early = ct.stats.get("early_drop").copied().unwrap_or(0);
            let full = match (ct.count, ct.max) {
                (Some(c), Some(m)) if m > 0 => c as f64 / m as f64 >= CONNTRACK_FULL_RATIO,
                _ => false,
            };
            if drop + failed + early > 0 || full {
                let a = cx.a(CauseId::ConntrackTableFull);
                a.select(drop + failed, drop + failed + early + u64::from(full));
                a.netns.insert(d.netns);
                a.ev(format!(
                    "{tag} conntrack count {} of max {}; stats drop +{drop}, insert_failed +{failed}, early_drop +{early}",
                    ct.count.map_or("?".to_owned(), |c| c.to_string()),
                    ct.max.map_or("?".to_owned(), |c| c.to_string()),
                ));
            }
        }
    }

    // Host-wide: softnet_stat and the neighbour tables, read once (from our own namespace).
    if let Some(h) = cx.host() {
        let tag = "[host-wide softnet_stat]";
        let dropped: u64 = h.softnet.iter().map(|c| c.dropped).sum();
        if dropped > 0 {
            let per: Vec<String> =
                h.softnet.iter().filter(|c| c.dropped > 0).map(|c| format!("cpu{} +{}", c.cpu, c.dropped)).collect();
            let a = cx.a(CauseId::SoftnetBacklogFull);
            a.select(dropped, dropped);
            a.ev(format!("{tag} dropped +{dropped} ({})", per.join(", ")));
            let flow: u64 = h.softnet.iter().map(|c| c.flow_limit_count).sum();
            if flow > 0 {
                a.ev(format!("{tag} flow_limit_count +{flow} (flow limit dropped large flows first)"));
            }
        }
        if !h.softnet.is_empty() {
            cx.a(CauseId::SoftnetBacklogFull).counter_seen = true;
        }
        let squeeze: u64 = h.softnet.iter().map(|c| c.time_squeeze).sum();
        if squeeze >= MIN_TIME_SQUEEZE {
            let per: Vec<String> = h
                .softnet
                .iter()
                .filter(|c| c.time_squeeze > 0)
                .map(|c| format!("cpu{} +{}", c.cpu, c.time_squeeze))
                .collect();
            let a = cx.a(CauseId::SoftirqBudgetExhausted);
            a.select(0, squeeze);
            a.ev(format!("{tag} time_squeeze +{squeeze} ({})", per.join(", ")));
            let total: u64 = h.softnet.iter().map(|c| c.processed).sum();
            if let Some(top) = h.softnet.iter().max_by_key(|c| c.processed).filter(|_| total > 0 && h.softnet.len() > 1)
            {
                let share = top.processed as f64 * 100.0 / total as f64;
                let even = 100.0 / h.softnet.len() as f64;
                if share >= (2.0 * even).min(75.0) {
                    a.ev(format!(
                        "{tag} uneven load: cpu{} processed {share:.0}% of received packets ({} CPUs)",
                        top.cpu,
                        h.softnet.len()
                    ));
                }
            }
        }
        let neigh_tag = "[host-wide neighbour tables]";
        for (k, role) in [
            ("arp.unresolved_discards", Role::Drop),
            ("ndisc.unresolved_discards", Role::Drop),
            ("arp.table_fulls", Role::Select),
            ("ndisc.table_fulls", Role::Select),
        ] {
            let v = h.neigh.get(k).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let a = cx.a(CauseId::NeighborFailure);
            a.select(if role == Role::Drop { v } else { 0 }, v);
            a.ev(format!("{neigh_tag} {k} +{v}"));
        }
    }

    // Firewall rule and policy counters over the capture.
    for c in cx.input.checks {
        let tag = cx.tag(c.netns);
        for r in &c.drop_rules {
            let Some(n) = r.packets_delta.filter(|n| *n > 0) else { continue };
            let a = cx.counted(CauseId::FirewallDrop, c.netns, n);
            a.ev(format!(
                "{tag} {} rule `{}` ({} {} {}{}) matched {n} packets during the capture",
                r.backend,
                r.rule,
                r.family,
                r.table,
                r.chain,
                r.handle.map(|h| format!(" handle {h}")).unwrap_or_default()
            ));
        }
        for ch in &c.drop_chains {
            if let Some(n) = ch.packets.filter(|n| *n > 0) {
                let a = cx.counted(CauseId::FirewallDrop, c.netns, n);
                a.ev(format!(
                    "{tag} {} chain {} {} {} policy {}: {n} packets fell through to the policy",
                    ch.backend, ch.family, ch.table, ch.chain, ch.policy
                ));
            }
        }
    }
}

fn ethtool_sum(dev: &crate::host::counters::DeviceStats, f: fn(&str) -> bool) -> u64 {
    // Per-queue counters repeat the totals; take the largest matching one as the lower bound.
    dev.ethtool.iter().filter(|(k, _)| f(k)).map(|(_, v)| *v).max().unwrap_or(0)
}

/// ethtool counters that mean "no RX descriptor/buffer available" (ring full).
fn is_ring_counter(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n.contains("missed") && n.contains("rx"))
        || n.contains("no_buffer")
        || n.contains("nobuf")
        || n.contains("no_dma")
        || n.contains("out_of_buffer")
        || n.contains("rx_discards")
        || n.contains("rx_fw_discards")
        || (n.starts_with("rx") && n.ends_with("_drops") && !n.contains("xdp"))
        || n == "rx_dropped"
}

/// ethtool counters of failed RX buffer allocations.
fn is_alloc_failure(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("alloc") && (n.contains("fail") || n.contains("err"))
}

fn tcp_local_drops(cx: &Ctx) -> u64 {
    let mut n = 0;
    for id in [
        CauseId::TcpAcceptQueueFull,
        CauseId::TcpSynQueueFull,
        CauseId::TcpBacklogOverflow,
        CauseId::QdiscDrop,
        CauseId::NicRingFull,
        CauseId::NicFifoOverrun,
        CauseId::SoftnetBacklogFull,
        CauseId::NeighborFailure,
        CauseId::Routing,
        CauseId::InterfaceDown,
    ] {
        if let Some(a) = cx.acc.get(&id) {
            n += a.event_drops.max(a.counter_drops);
        }
    }
    n
}

/// TCP retransmissions with no local drop to explain them.
fn external_loss(cx: &mut Ctx) {
    let s = cx.input.summary;
    let counter_retrans: u64 = cx.input.deltas.iter().map(|d| d.counter("Tcp.RetransSegs")).sum();
    let total = s.retransmits.total.max(counter_retrans);
    if total < MIN_EXTERNAL_RETRANS {
        return;
    }
    // Retransmitted flows that have local drops on the same 4-tuple (either direction).
    let matched: u64 = s
        .retransmits
        .flows
        .iter()
        .filter(|r| {
            s.flows.iter().any(|f| {
                f.proto == "tcp"
                    && ((f.src == r.src && f.sport == r.sport && f.dst == r.dst && f.dport == r.dport)
                        || (f.src == r.dst && f.sport == r.dport && f.dst == r.src && f.dport == r.sport))
            })
        })
        .map(|r| r.count)
        .sum();
    // Local TCP drops on any tuple (NAT may hide the match) and drops at layers that do not
    // know the protocol (qdisc, NIC, backlog, ...) may explain retransmissions too.
    let tcp_flow_drops: u64 = s.flows.iter().filter(|f| f.proto == "tcp").map(|f| f.count).sum();
    let unexplained = total.saturating_sub(matched.max(tcp_flow_drops) + tcp_local_drops(cx));
    if unexplained < MIN_EXTERNAL_RETRANS {
        return;
    }
    let mut lines = vec![format!(
        "TCP retransmissions: {total} (events {}, Tcp.RetransSegs +{counter_retrans}); {unexplained} not explained by any local drop",
        s.retransmits.total
    )];
    let mut flows: Vec<_> = s.retransmits.flows.iter().collect();
    flows.sort_by_key(|f| std::cmp::Reverse(f.count));
    let mut nss = BTreeSet::new();
    for r in flows.iter().take(3) {
        lines.push(format!(
            "{} retransmits {}:{} -> {}:{}: {}",
            cx.tag(r.netns),
            r.src,
            r.sport,
            r.dst,
            r.dport,
            r.count
        ));
        nss.insert(r.netns);
    }
    for d in cx.input.deltas.iter().filter(|d| d.counter("Tcp.RetransSegs") > 0) {
        lines.push(format!("{} Tcp.RetransSegs +{}", cx.tag(d.netns), d.counter("Tcp.RetransSegs")));
        nss.insert(d.netns);
    }
    let peer = flows.first().map(|r| r.dst.clone()).unwrap_or_else(|| "PEER".to_owned());
    let a = cx.a(CauseId::ExternalLoss);
    a.select(unexplained, unexplained);
    a.netns.extend(nss);
    for l in lines {
        a.ev(l);
    }
    a.adv(format!(
        "No local drop explains these retransmissions: compare `sar -n DEV 2` with the instance's bandwidth/pps limits, and run `mtr -rwc 100 {peer}` to find the lossy hop."
    ));
}

/// Configuration findings: evidence and specific advice for the selected causes.
fn config_findings(cx: &mut Ctx) {
    let ids: Vec<CauseId> = cx.acc.iter().filter(|(_, a)| a.selected).map(|(k, _)| *k).collect();
    for id in ids {
        match id {
            CauseId::NoListener => cfg_no_listener(cx),
            CauseId::FirewallDrop => cfg_firewall(cx),
            CauseId::ConntrackTableFull => cfg_conntrack(cx),
            CauseId::RpFilter => cfg_rp_filter(cx),
            CauseId::UdpRcvbufFull => cfg_udp_rcvbuf(cx),
            CauseId::UdpSndbufFull => cfg_udp_sndbuf(cx),
            CauseId::TcpAcceptQueueFull => cfg_accept_queue(cx),
            CauseId::TcpSynQueueFull => cfg_syn_queue(cx),
            CauseId::TcpBacklogOverflow | CauseId::SocketMemoryPressure => cfg_socket_mem(cx, id),
            CauseId::SoftnetBacklogFull => cfg_softnet(cx),
            CauseId::SoftirqBudgetExhausted => cfg_budget(cx),
            CauseId::NicRingFull | CauseId::NicFifoOverrun => cfg_rings(cx, id),
            CauseId::QdiscDrop => cfg_qdisc(cx),
            CauseId::Routing => cfg_routing(cx),
            CauseId::NeighborFailure => cfg_neigh(cx),
            CauseId::MtuFragmentation => cfg_mtu(cx),
            CauseId::BpfOrTcProgram => cfg_bpf(cx),
            CauseId::InterfaceDown => cfg_ifdown(cx),
            CauseId::ChecksumError => cfg_csum(cx),
            CauseId::Unclassified => {
                let a = cx.a(CauseId::Unclassified);
                a.adv("Run again with --stacks to see the kernel stack of these drops.".to_owned());
            }
            _ => {}
        }
    }
}

/// The flows dropped with one of `reasons`, largest first; on a kernel without drop reasons,
/// the flows whose drop location points at the cause those reasons select.
fn drop_flows<'a>(cx: &Ctx<'a>, reasons: &[&str]) -> Vec<&'a crate::model::FlowCount> {
    let causes: Vec<CauseId> = reasons.iter().filter_map(|r| taxonomy::cause_for_reason(r)).collect();
    let by_location = |f: &crate::model::FlowCount| {
        f.reason == crate::decode::reasons::NO_REASON
            && !f.location.is_empty()
            && taxonomy::cause_for_location(&f.location).is_some_and(|c| causes.contains(&c))
    };
    let mut v: Vec<_> =
        cx.input.summary.flows.iter().filter(|f| reasons.contains(&f.reason.as_str()) || by_location(f)).collect();
    v.sort_by_key(|f| std::cmp::Reverse(f.count));
    v
}

fn cfg_no_listener(cx: &mut Ctx) {
    let flows = drop_flows(cx, &["NO_SOCKET"]);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for f in flows.iter().take(5) {
        if !seen.insert((f.netns, f.proto.clone(), f.dport)) {
            continue;
        }
        let tag = cx.tag(f.netns);
        let elsewhere: Vec<String> = cx
            .input
            .checks
            .iter()
            .flat_map(|c| {
                let tcp = c
                    .listeners
                    .iter()
                    .filter(|l| f.proto == "tcp" && l.port == f.dport)
                    .map(|l| (l.addr.clone(), l.port));
                let udp = c
                    .udp_sockets
                    .iter()
                    .filter(|u| f.proto == "udp" && u.port == f.dport)
                    .map(|u| (u.addr.clone(), u.port));
                tcp.chain(udp).map(move |(a, p)| (c.netns, a, p)).collect::<Vec<_>>()
            })
            .map(|(ns, a, p)| format!("{a}:{p} in {}", cx.tag(ns)))
            .collect();
        if elsewhere.is_empty() {
            out.push((
                format!("{tag} nothing listens on {} port {} (packets to {})", f.proto, f.dport, f.dst),
                format!(
                    "Start the service on {} port {} in {tag}, or point the client ({}) at the port the service uses.",
                    f.proto, f.dport, f.src
                ),
            ));
        } else {
            out.push((
                format!("{tag} no {} socket for {}:{}; listeners on that port: {}", f.proto, f.dst, f.dport, elsewhere.join(", ")),
                format!(
                    "A listener on port {} exists but not for {} in {tag}: bind it to 0.0.0.0/[::] or to {}, in the namespace that receives the traffic.",
                    f.dport, f.dst, f.dst
                ),
            ));
        }
    }
    let (ev, adv) = out.into_iter().unzip();
    cx.add(CauseId::NoListener, ev, adv);
}

fn cfg_firewall(cx: &mut Ctx) {
    let checks = cx.checks_for(CauseId::FirewallDrop);
    let fw_events = cx.acc.get(&CauseId::FirewallDrop).map_or(0, |a| a.event_drops);
    let flows = drop_flows(cx, &["NETFILTER_DROP"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in &checks {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        let mut rules: Vec<_> = c.drop_rules.iter().collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.packets_delta.unwrap_or(0)));
        for r in rules.iter().filter(|r| r.packets_delta.unwrap_or(0) > 0) {
            let del = match (r.backend.as_str(), r.handle) {
                ("nft", Some(h)) => format!("{pre}nft delete rule {} {} {} handle {h}", r.family, r.table, r.chain),
                ("nft", None) => format!("{pre}nft list ruleset (find the rule and delete it)"),
                (b, _) => format!("{pre}{b} -t {} {}", r.table, r.rule.replacen("-A ", "-D ", 1)),
            };
            adv.push(format!(
                "{tag} the {} rule `{}` dropped {} packets: remove or narrow it if that traffic is legitimate (`{del}`).",
                r.backend,
                r.rule,
                r.packets_delta.unwrap_or(0)
            ));
        }
        for ch in &c.drop_chains {
            ev.push(format!(
                "{tag} {} chain {} {} {} has policy {} (hook {}){}",
                ch.backend,
                ch.family,
                ch.table,
                ch.chain,
                ch.policy,
                ch.hook,
                ch.packets.filter(|p| *p > 0).map(|p| format!(", {p} packets hit the policy")).unwrap_or_default()
            ));
            // Accept rules for the dropped flows' ports, in the chain's syntax.
            let ports: BTreeSet<(String, u16)> = flows
                .iter()
                .filter(|f| f.netns == c.netns || f.netns == 0)
                .filter(|f| matches!(f.proto.as_str(), "tcp" | "udp") && f.dport != 0)
                .map(|f| (f.proto.clone(), f.dport))
                .take(3)
                .collect();
            if ch.hook == "input" || ch.hook == "forward" {
                let rule_drops: u64 = c.drop_rules.iter().filter_map(|r| r.packets_delta).sum();
                let ports =
                    if ch.packets.is_some_and(|p| p > 0) || fw_events > rule_drops { ports } else { BTreeSet::new() };
                for (p, port) in &ports {
                    adv.push(if ch.backend == "nft" {
                        format!(
                            "{tag} chain {} {} {} drops by policy: allow the traffic with `{pre}nft insert rule {} {} {} {p} dport {port} accept`.",
                            ch.family, ch.table, ch.chain, ch.family, ch.table, ch.chain
                        )
                    } else {
                        format!(
                            "{tag} chain {} drops by policy: allow the traffic with `{pre}{} -I {} -p {p} --dport {port} -j ACCEPT`.",
                            ch.chain, ch.backend, ch.chain
                        )
                    });
                }
                // Policy advice only when the policy itself (not a rule) plausibly dropped.
                let rule_drops: u64 = c.drop_rules.iter().filter_map(|r| r.packets_delta).sum();
                let family_seen = match ch.family.as_str() {
                    "ip" => flows.is_empty() || flows.iter().any(|f| f.family == 4),
                    "ip6" => flows.iter().any(|f| f.family == 6),
                    _ => true,
                };
                let policy_dropped = ch.packets.is_some_and(|p| p > 0) || (fw_events > rule_drops && family_seen);
                if policy_dropped && (ports.is_empty() || ch.backend != "nft") {
                    adv.push(if ch.backend == "nft" {
                        format!(
                            "{tag} if dropping by default is not intended: `{pre}nft chain {} {} {} '{{ policy accept; }}'`.",
                            ch.family, ch.table, ch.chain
                        )
                    } else {
                        format!(
                            "{tag} if dropping by default is not intended: `{pre}{} -P {} ACCEPT`.",
                            ch.backend, ch.chain
                        )
                    });
                }
            }
        }
        for r in rules.iter().filter(|r| r.packets_delta.unwrap_or(0) == 0).take(5) {
            ev.push(format!(
                "{tag} {} {} rule `{}` in {} {} {}{}",
                r.backend,
                r.verdict,
                r.rule,
                r.family,
                r.table,
                r.chain,
                r.packets.map(|p| format!(" ({p} packets in total)")).unwrap_or_default()
            ));
        }
    }
    cx.add(CauseId::FirewallDrop, ev, adv);
}

fn cfg_conntrack(cx: &mut Ctx) {
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::ConntrackTableFull) {
        if let Some(ct) = &d.conntrack {
            let pre = cx.in_ns(d.netns);
            let max = ct.max.unwrap_or(65536);
            adv.push(format!(
                "{} raise the conntrack limit: `{pre}sysctl -w net.netfilter.nf_conntrack_max={}` (now {max}, count {}), or shorten conntrack timeouts / add notrack rules for stateless traffic.",
                cx.tag(d.netns),
                max.saturating_mul(2),
                ct.count.map_or("?".to_owned(), |c| c.to_string())
            ));
        }
    }
    cx.add(CauseId::ConntrackTableFull, Vec::new(), adv);
}

fn cfg_rp_filter(cx: &mut Ctx) {
    let flows = drop_flows(cx, &["IP_RPFILTER"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.checks_for(CauseId::RpFilter) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        let all = c.rp_filter.get("all").copied().unwrap_or(0);
        let devs: BTreeSet<String> =
            flows.iter().filter(|f| f.netns == c.netns && !f.device.is_empty()).map(|f| f.device.clone()).collect();
        let strict: Vec<String> = c
            .rp_filter
            .iter()
            .filter(|(k, v)| **v == 1 && (devs.is_empty() || devs.contains(*k) || *k == "all"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if strict.is_empty() && all == 0 {
            continue;
        }
        ev.push(format!("{tag} rp_filter: {} (effective value per interface is max(all, interface))", {
            let v: Vec<String> =
                c.rp_filter.iter().filter(|(k, _)| *k != "lo").map(|(k, v)| format!("{k}={v}")).collect();
            v.join(" ")
        }));
        let mut cmd = vec![format!("net.ipv4.conf.all.rp_filter=2")];
        for d in &devs {
            cmd.push(format!("net.ipv4.conf.{d}.rp_filter=2"));
        }
        adv.push(format!(
            "{tag} strict reverse-path filtering ({}) drops these packets: use loose mode `{pre}sysctl -w {}` (or fix the routes so the reply leaves by the receiving interface).",
            strict.join(", "),
            cmd.join(" ")
        ));
    }
    cx.add(CauseId::RpFilter, ev, adv);
}

fn cfg_udp_rcvbuf(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let flows = drop_flows(cx, &["SOCKET_RCVBUFF"]);
    let ports: BTreeSet<(u32, u16)> = flows.iter().filter(|f| f.proto == "udp").map(|f| (f.netns, f.dport)).collect();
    for c in cx.checks_for(CauseId::UdpRcvbufFull) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        let rmem_max = cx.sysctl_u64(c.netns, "net.core.rmem_max");
        let rmem_def = cx.sysctl_u64(c.netns, "net.core.rmem_default");
        let mut socks: Vec<_> = c
            .udp_sockets
            .iter()
            .filter(|u| u.drops_delta.unwrap_or(0) > 0 || ports.contains(&(c.netns, u.port)))
            .collect();
        socks.sort_by_key(|u| std::cmp::Reverse(u.drops_delta.unwrap_or(0)));
        for u in socks.iter().take(5) {
            let who = if u.process.is_empty() { String::new() } else { format!(" owned by {}", u.process) };
            ev.push(format!(
                "{tag} udp socket {}:{}{who}: {} drops during the capture, SO_RCVBUF (skmem rb) {}, Recv-Q {} bytes; {}, {}",
                u.addr,
                u.port,
                u.drops_delta.unwrap_or(0),
                u.rcvbuf.map_or("?".to_owned(), |r| r.to_string()),
                u.rx_queue,
                cx.sysctl_str(c.netns, "net.core.rmem_max"),
                cx.sysctl_str(c.netns, "net.core.rmem_default"),
            ));
            let prog = if u.process.is_empty() { "the program".to_owned() } else { u.process.clone() };
            match (u.rcvbuf, rmem_def) {
                (Some(rb), Some(def)) if rb < def => adv.push(format!(
                    "{tag} {prog} sets SO_RCVBUF on udp :{} to {rb} bytes, below rmem_default {def}: raise the value it passes to setsockopt(SO_RCVBUF) (effective up to net.core.rmem_max{}).",
                    u.port,
                    rmem_max.map(|m| format!(" = {m}")).unwrap_or_default()
                )),
                _ => adv.push(format!(
                    "{tag} udp :{} ({prog}) buffer {} is full: raise `{pre}sysctl -w net.core.rmem_max=26214400 net.core.rmem_default=26214400` and restart {prog}, or have it read faster.",
                    u.port,
                    u.rcvbuf.map_or("?".to_owned(), |r| r.to_string())
                )),
            }
        }
        if socks.is_empty() && cx.input.deltas.iter().any(|d| d.netns == c.netns && d.counter("Udp.RcvbufErrors") > 0) {
            ev.push(format!(
                "{tag} no UDP socket left with drops (the receiver may have exited); {}, {}",
                cx.sysctl_str(c.netns, "net.core.rmem_max"),
                cx.sysctl_str(c.netns, "net.core.rmem_default")
            ));
        }
    }
    cx.add(CauseId::UdpRcvbufFull, ev, adv);
}

fn cfg_udp_sndbuf(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::UdpSndbufFull) {
        let tag = cx.tag(d.netns);
        let pre = cx.in_ns(d.netns);
        let wmem_def = cx.sysctl_u64(d.netns, "net.core.wmem_default");
        ev.push(format!(
            "{tag} {}, {}",
            cx.sysctl_str(d.netns, "net.core.wmem_max"),
            cx.sysctl_str(d.netns, "net.core.wmem_default")
        ));
        let socks = cx.input.checks.iter().filter(|c| c.netns == d.netns).flat_map(|c| c.udp_sockets.iter());
        for u in socks.filter(|u| u.tx_queue > 0 || matches!((u.sndbuf, wmem_def), (Some(t), Some(d)) if t < d)).take(5)
        {
            let prog = if u.process.is_empty() { "the program".to_owned() } else { u.process.clone() };
            ev.push(format!(
                "{tag} udp socket {}:{} ({prog}): SO_SNDBUF (skmem tb) {}, Send-Q {} bytes",
                u.addr,
                u.port,
                u.sndbuf.map_or("?".to_owned(), |t| t.to_string()),
                u.tx_queue
            ));
            if let Some((t, d)) = u.sndbuf.zip(wmem_def).filter(|(t, d)| t < d) {
                adv.push(format!(
                    "{tag} {prog} sets SO_SNDBUF on udp :{} to {t} bytes, below wmem_default {d}: raise the value it passes to setsockopt(SO_SNDBUF).",
                    u.port
                ));
            }
        }
        adv.push(format!(
            "{tag} raise the send buffer limits: `{pre}sysctl -w net.core.wmem_max=26214400 net.core.wmem_default=26214400`, then restart the sending program."
        ));
    }
    cx.add(CauseId::UdpSndbufFull, ev, adv);
}

fn cfg_accept_queue(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let ports: BTreeSet<u16> = drop_flows(cx, &["TCP_LISTEN_OVERFLOW"]).iter().map(|f| f.dport).collect();
    for c in cx.checks_for(CauseId::TcpAcceptQueueFull) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        let somax = cx.sysctl_u64(c.netns, "net.core.somaxconn");
        let mut ls: Vec<_> = c
            .listeners
            .iter()
            .filter(|l| l.drops_delta.unwrap_or(0) > 0 || l.accept_queue >= l.backlog || ports.contains(&l.port))
            .collect();
        ls.sort_by_key(|l| std::cmp::Reverse(l.drops_delta.unwrap_or(0)));
        for l in ls.iter().take(5) {
            let who = if l.process.is_empty() { String::new() } else { format!(" ({})", l.process) };
            let somax_s = somax.map_or("?".to_owned(), |s| s.to_string());
            ev.push(format!(
                "{tag} listener {}:{}{who}: backlog {} (somaxconn {somax_s}), accept queue {}/{}{}",
                l.addr,
                l.port,
                l.backlog,
                l.accept_queue,
                l.backlog,
                l.drops_delta.map(|d| format!(", {d} listen drops during the capture")).unwrap_or_default()
            ));
            let prog = if l.process.is_empty() { "the application".to_owned() } else { l.process.clone() };
            if somax.is_some_and(|s| l.backlog < s) {
                adv.push(format!(
                    "{tag} listener {}:{} backlog {} (somaxconn {somax_s}): raise the backlog {prog} passes to listen(), and accept() faster.",
                    l.addr, l.port, l.backlog
                ));
            } else {
                adv.push(format!(
                    "{tag} listener {}:{} backlog {} is capped by somaxconn {somax_s}: `{pre}sysctl -w net.core.somaxconn=65535` and raise the listen() backlog of {prog}, then restart it.",
                    l.addr, l.port, l.backlog
                ));
            }
        }
        if ls.is_empty() {
            ev.push(format!("{tag} {}", cx.sysctl_str(c.netns, "net.core.somaxconn")));
        }
    }
    cx.add(CauseId::TcpAcceptQueueFull, ev, adv);
}

fn cfg_syn_queue(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.deltas_for(CauseId::TcpSynQueueFull) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        ev.push(format!(
            "{tag} {}, {}, {}",
            cx.sysctl_str(c.netns, "net.ipv4.tcp_max_syn_backlog"),
            cx.sysctl_str(c.netns, "net.ipv4.tcp_syncookies"),
            cx.sysctl_str(c.netns, "net.core.somaxconn")
        ));
        let cur = cx.sysctl_u64(c.netns, "net.ipv4.tcp_max_syn_backlog").unwrap_or(1024);
        adv.push(format!(
            "{tag} raise the SYN queue: `{pre}sysctl -w net.ipv4.tcp_max_syn_backlog={}` together with the listen() backlog and somaxconn; keep net.ipv4.tcp_syncookies=1.",
            cur.saturating_mul(4).max(4096)
        ));
        if cx.sysctl_u64(c.netns, "net.ipv4.tcp_syncookies") == Some(0) {
            adv.push(format!("{tag} SYN cookies are off: `{pre}sysctl -w net.ipv4.tcp_syncookies=1`."));
        }
    }
    cx.add(CauseId::TcpSynQueueFull, ev, adv);
}

fn cfg_socket_mem(cx: &mut Ctx, id: CauseId) {
    let mut ev = Vec::new();
    for d in cx.deltas_for(id) {
        ev.push(format!(
            "{} {}; {}; {}; {}",
            cx.tag(d.netns),
            cx.sysctl_str(d.netns, "net.ipv4.tcp_rmem"),
            cx.sysctl_str(d.netns, "net.ipv4.tcp_mem"),
            cx.sysctl_str(d.netns, "net.ipv4.udp_mem"),
            cx.sysctl_str(d.netns, "net.core.rmem_max")
        ));
    }
    cx.add(id, ev, Vec::new());
}

fn rps_summary(c: &ConfigChecks) -> (Vec<String>, Vec<String>) {
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    for q in &c.rps {
        if crate::host::counters::parse::rps_mask_enabled(&q.mask) {
            on.insert(q.dev.clone());
        } else {
            off.insert(q.dev.clone());
        }
    }
    let off: Vec<String> = off.difference(&on).cloned().collect();
    (on.into_iter().collect(), off)
}

fn cfg_softnet(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let host_ns = cx.host().map(|h| h.netns).unwrap_or(0);
    ev.push(format!("[host-wide] {}", cx.sysctl_str(host_ns, "net.core.netdev_max_backlog")));
    let cur = cx.sysctl_u64(host_ns, "net.core.netdev_max_backlog").unwrap_or(1000);
    let mut any_rps = false;
    for c in cx.input.checks {
        let (on, off) = rps_summary(c);
        if !on.is_empty() {
            any_rps = true;
            ev.push(format!("{} RPS enabled on {}", cx.tag(c.netns), on.join(", ")));
        }
        if !off.is_empty() && c.is_self {
            ev.push(format!("{} RPS disabled (rps_cpus 0) on {}", cx.tag(c.netns), off.join(", ")));
        }
    }
    adv.push(format!(
        "Raise the per-CPU backlog: `sysctl -w net.core.netdev_max_backlog={}` (now {cur}; host-wide).",
        cur.saturating_mul(4).max(4096)
    ));
    if !any_rps {
        adv.push(
            "RPS is not enabled: spread receive processing over CPUs with `echo f > /sys/class/net/DEV/queues/rx-0/rps_cpus` (a CPU mask), and check whether the application makes soft interrupts uneven."
                .to_owned(),
        );
    }
    cx.add(CauseId::SoftnetBacklogFull, ev, adv);
}

fn cfg_budget(cx: &mut Ctx) {
    let host_ns = cx.host().map(|h| h.netns).unwrap_or(0);
    let ev = format!(
        "[host-wide] {}, {}",
        cx.sysctl_str(host_ns, "net.core.netdev_budget"),
        cx.sysctl_str(host_ns, "net.core.netdev_budget_usecs")
    );
    let budget = cx.sysctl_u64(host_ns, "net.core.netdev_budget").unwrap_or(300);
    let usecs = cx.sysctl_u64(host_ns, "net.core.netdev_budget_usecs").unwrap_or(2000);
    let a = cx.a(CauseId::SoftirqBudgetExhausted);
    a.ev(ev);
    a.adv(format!(
        "Give the receive softirq more budget: `sysctl -w net.core.netdev_budget={} net.core.netdev_budget_usecs={}`, and spread interrupts over CPUs (RSS queues, IRQ affinity, RPS).",
        budget.saturating_mul(2),
        usecs.saturating_mul(2)
    ));
}

fn cfg_rings(cx: &mut Ctx, id: CauseId) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let devs: BTreeSet<(u32, String)> = cx
        .input
        .deltas
        .iter()
        .flat_map(|d| {
            d.devices
                .iter()
                .filter(|x| {
                    x.rx_missed_errors + x.rx_fifo_errors + x.rx_over_errors > 0 || ethtool_sum(x, is_ring_counter) > 0
                })
                .map(move |x| (d.netns, x.name.clone()))
        })
        .collect();
    for (ns, dev) in &devs {
        let tag = cx.tag(*ns);
        let pre = cx.in_ns(*ns);
        let ring =
            cx.input.checks.iter().filter(|c| c.netns == *ns).flat_map(|c| c.rings.iter()).find(|r| &r.dev == dev);
        match ring {
            Some(r) => {
                ev.push(format!(
                    "{tag} dev {dev} RX ring {} of maximum {}",
                    r.rx.map_or("?".to_owned(), |v| v.to_string()),
                    r.rx_max.map_or("?".to_owned(), |v| v.to_string())
                ));
                match (r.rx, r.rx_max) {
                    (Some(cur), Some(max)) if cur < max => {
                        adv.push(format!("{tag} enlarge the RX ring of {dev}: `{pre}ethtool -G {dev} rx {max}` (now {cur})."))
                    }
                    _ => adv.push(format!(
                        "{tag} the RX ring of {dev} is already at its maximum: add queues/CPUs (`{pre}ethtool -L {dev} combined N`, IRQ affinity) and check coalescing (`ethtool -c {dev}`)."
                    )),
                }
            }
            None => adv.push(format!("{tag} check the ring size of {dev}: `{pre}ethtool -g {dev}`, and raise it with `ethtool -G {dev} rx MAX`.")),
        }
    }
    cx.add(id, ev, adv);
}

fn cfg_qdisc(cx: &mut Ctx) {
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::QdiscDrop) {
        let tag = cx.tag(d.netns);
        let pre = cx.in_ns(d.netns);
        for q in d.qdiscs.iter().filter(|q| q.drops > 0) {
            let txq = d.devices.iter().find(|x| x.name == q.dev).map(|x| x.txqlen).unwrap_or(1000);
            match q.kind.as_str() {
                "tbf" | "htb" | "hfsc" | "cbq" | "cake" | "police" => adv.push(format!(
                    "{tag} the {} qdisc on {} shapes traffic and dropped {} packets over its rate: raise its rate/burst (`{pre}tc qdisc show dev {}`) or send less.",
                    q.kind, q.dev, q.drops, q.dev
                )),
                "fq" | "fq_codel" | "codel" | "pie" | "red" | "sfq" => adv.push(format!(
                    "{tag} the {} qdisc on {} dropped {} packets (flow/AQM limits): raise its limit/flow_limit (`{pre}tc qdisc change dev {} root {} limit N`) if the drops are unwanted.",
                    q.kind, q.dev, q.drops, q.dev, q.kind
                )),
                _ => adv.push(format!(
                    "{tag} the {} queue on {} overflowed ({} drops): raise its length, `{pre}ip link set dev {} txqueuelen {}` (now {txq}), or the qdisc limit.",
                    q.kind,
                    q.dev,
                    q.drops,
                    q.dev,
                    txq.saturating_mul(10).max(10000)
                )),
            }
        }
    }
    cx.add(CauseId::QdiscDrop, Vec::new(), adv);
}

/// Whether an address is inside a prefix ("10.200.0.0/24", "default", "2001:db8::/64").
fn in_prefix(addr: &str, prefix: &str) -> bool {
    use std::net::IpAddr;
    let Ok(a) = addr.parse::<IpAddr>() else { return false };
    let (p, len) = match prefix.split_once('/') {
        Some((p, l)) => (p, l.parse::<u32>().unwrap_or(0)),
        None if prefix == "default" => return true,
        None => (prefix, if prefix.contains(':') { 128 } else { 32 }),
    };
    match (a, p.parse::<IpAddr>()) {
        (IpAddr::V4(a), Ok(IpAddr::V4(p))) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len.min(32)) };
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), Ok(IpAddr::V6(p))) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) };
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

fn cfg_routing(cx: &mut Ctx) {
    // The routing cause's reasons, but IPV6DISABLED: no route to add or remove for those.
    let reasons: Vec<&str> =
        taxonomy::info(CauseId::Routing).reasons.iter().copied().filter(|r| *r != "IPV6DISABLED").collect();
    let flows = drop_flows(cx, &reasons);
    // A forwarded packet that hits a blackhole route is dropped at ip_error with NOT_SPECIFIED
    // (assigned here by location): match those flows against the drop routes too.
    let by_location = cx.acc.get(&CauseId::Routing).is_some_and(|a| a.events.iter().any(|e| e.0 == "NOT_SPECIFIED"));
    let unspecified = if by_location { drop_flows(cx, &["NOT_SPECIFIED"]) } else { Vec::new() };
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.checks_for(CauseId::Routing) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        for r in &c.drop_routes {
            let hit: Vec<&str> = flows
                .iter()
                .chain(unspecified.iter())
                .filter(|f| (f.netns == c.netns || f.netns == 0) && in_prefix(&f.dst, &r.dst))
                .map(|f| f.dst.as_str())
                .collect();
            ev.push(format!(
                "{tag} {} route {} (table {}){}",
                r.kind,
                r.dst,
                r.table,
                if hit.is_empty() { String::new() } else { format!(" matches dropped destination {}", hit[0]) }
            ));
            if !hit.is_empty() {
                adv.push(format!(
                    "{tag} remove the {} route if unintended: `{pre}ip route del {} {}{}`.",
                    r.kind,
                    r.kind,
                    r.dst,
                    if r.table == "main" { String::new() } else { format!(" table {}", r.table) }
                ));
            }
        }
        // Multicast destinations (e.g. a DAD probe reaching a link before its multicast route
        // exists) are not routed via a gateway: no "add the route" advice for them.
        let dsts: BTreeSet<&str> = flows
            .iter()
            .filter(|f| f.netns == c.netns || f.netns == 0)
            .filter(|f| !f.dst.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_multicast()))
            .map(|f| f.dst.as_str())
            .take(3)
            .collect();
        for d in dsts {
            adv.push(format!("{tag} check the route to {d}: `{pre}ip route get {d}`, and add the missing route (`{pre}ip route add {d} via GATEWAY`)."));
        }
    }
    cx.add(CauseId::Routing, ev, adv);
}

fn cfg_neigh(cx: &mut Ctx) {
    let flows = drop_flows(cx, &["NEIGH_FAILED", "NEIGH_QUEUEFULL", "NEIGH_DEAD", "NEIGH_CREATEFAIL"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.checks_for(CauseId::NeighborFailure) {
        let tag = cx.tag(c.netns);
        let pre = cx.in_ns(c.netns);
        for n in c.failed_neighbors.iter().take(5) {
            ev.push(format!("{tag} neighbour {n}"));
            let ip = n.split_whitespace().next().unwrap_or("");
            let dev = n.split_whitespace().nth(2).unwrap_or("DEV");
            adv.push(format!(
                "{tag} next hop {ip} on {dev} does not answer ARP/NDP: check it is up and on this link (`{pre}ip neigh show {ip}`, `{pre}arping -I {dev} {ip}`)."
            ));
        }
    }
    if flows.iter().any(|f| f.reason == "NEIGH_QUEUEFULL") {
        adv.push("Packets queued for resolution overflowed: raise net.ipv4.neigh.DEV.unres_qlen_bytes.".to_owned());
    }
    if flows.iter().any(|f| f.reason == "NEIGH_CREATEFAIL")
        || cx.host().is_some_and(|h| h.neigh.keys().any(|k| k.ends_with("table_fulls") && h.neigh[k] > 0))
    {
        adv.push(
            "The neighbour table is full: raise net.ipv4.neigh.default.gc_thresh1/2/3 (and net.ipv6.neigh.default.*)."
                .to_owned(),
        );
    }
    cx.add(CauseId::NeighborFailure, ev, adv);
}

fn cfg_mtu(cx: &mut Ctx) {
    let mut ev = Vec::new();
    for d in cx.deltas_for(CauseId::MtuFragmentation) {
        let mtus: Vec<String> = d
            .devices
            .iter()
            .filter(|x| x.name != "lo" && x.mtu > 0)
            .map(|x| format!("{} mtu {}", x.name, x.mtu))
            .collect();
        if !mtus.is_empty() {
            ev.push(format!("{} {}", cx.tag(d.netns), mtus.join(", ")));
        }
    }
    cx.add(CauseId::MtuFragmentation, ev, Vec::new());
}

fn cfg_bpf(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for d in cx.input.deltas {
        let tag = cx.tag(d.netns);
        let pre = cx.in_ns(d.netns);
        for x in d.devices.iter().filter(|x| x.xdp.is_some()) {
            ev.push(format!(
                "{tag} dev {} has an XDP program attached ({})",
                x.name,
                x.xdp.clone().unwrap_or_default()
            ));
            adv.push(format!("{tag} inspect the XDP program on {}: `{pre}bpftool net show dev {}`.", x.name, x.name));
        }
        for q in d.qdiscs.iter().filter(|q| q.kind == "clsact" || q.kind == "ingress") {
            ev.push(format!("{tag} dev {} has a {} qdisc (tc filters/BPF attached)", q.dev, q.kind));
            adv.push(format!(
                "{tag} list the tc programs on {}: `{pre}tc filter show dev {} ingress; {pre}tc filter show dev {} egress`.",
                q.dev, q.dev, q.dev
            ));
        }
    }
    cx.add(CauseId::BpfOrTcProgram, ev, adv);
}

fn cfg_ifdown(cx: &mut Ctx) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let flow_devs: BTreeSet<(u32, String)> = drop_flows(cx, &["DEV_READY"])
        .iter()
        .filter(|f| !f.device.is_empty())
        .map(|f| (f.netns, f.device.clone()))
        .collect();
    for d in cx.input.deltas {
        let tag = cx.tag(d.netns);
        let pre = cx.in_ns(d.netns);
        for x in &d.devices {
            let involved = flow_devs.contains(&(d.netns, x.name.clone())) || x.carrier_changes > 0;
            if !involved && (x.up && x.lower_up || x.name == "lo" || x.operstate.is_empty()) {
                continue;
            }
            if !involved && flow_devs.is_empty() {
                // A down device nobody sent to is normal (spare NICs, ifb).
                continue;
            }
            ev.push(format!(
                "{tag} dev {} state {} ({}{})",
                x.name,
                x.operstate,
                if x.up { "UP" } else { "admin down" },
                if x.lower_up { ", carrier" } else { ", no carrier" }
            ));
            if !x.up {
                adv.push(format!("{tag} bring {} up: `{pre}ip link set {} up`.", x.name, x.name));
            } else if !x.lower_up {
                adv.push(format!(
                    "{tag} {} has no carrier: check the cable/peer (for a veth, bring its peer up).",
                    x.name
                ));
            }
        }
    }
    cx.add(CauseId::InterfaceDown, ev, adv);
}

fn cfg_csum(cx: &mut Ctx) {
    let mut adv = Vec::new();
    for d in cx.input.deltas {
        for x in d.devices.iter().filter(|x| x.rx_crc_errors + x.rx_frame_errors > 0) {
            adv.push(format!(
                "{} CRC/frame errors on {}: check and replace the cable/transceiver and the switch port, then watch `ethtool -S {} | grep -i crc`.",
                cx.tag(d.netns),
                x.name,
                x.name
            ));
        }
    }
    cx.add(CauseId::ChecksumError, Vec::new(), adv);
}

#[cfg(test)]
mod tests;
