//! Event rules: every traced drop reason assigned to one cause (by reason, by protocol for
//! `SOCKET_RCVBUFF`, by location for reasons that say nothing), and the evidence of the events.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Benign, BenignId, CauseId, Explained,
    ctx::Ctx,
    taxonomy::{self, MEMORY_REASONS},
};
use crate::model::{Flow, FlowCount, NetnsId, ReasonCount};

/// Benign drops found while assigning, by (class, reason, location).
#[derive(Default)]
pub(super) struct BenignTally(BTreeMap<(BenignId, String, Option<String>), u64>);

impl BenignTally {
    fn add(&mut self, class: BenignId, reason: &str, location: Option<&str>, n: u64) {
        if n > 0 {
            *self.0.entry((class, reason.to_owned(), location.map(str::to_owned))).or_default() += n;
        }
    }

    /// The tally as the diagnosis shows it, largest first.
    pub(super) fn into_list(self) -> Vec<Benign> {
        let mut v: Vec<Benign> = self
            .0
            .into_iter()
            .map(|((class, reason, location), drops)| Benign {
                class,
                reason,
                location,
                drops,
                why: class.info().why.to_owned(),
            })
            .collect();
        v.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.class.cmp(&b.class)));
        v
    }
}

/// UDP receive functions where, before drop reasons (5.17), a broadcast nobody listens to and a
/// datagram to a closed port are freed alike: `Udp.IgnoredMulti` tells how many are the former.
const UDP_RCV: &[&str] = &[
    "__udp4_lib_rcv",
    "__udp4_lib_mcast_deliver",
    "udp_rcv",
    "__udp6_lib_rcv",
    "__udp6_lib_mcast_deliver",
    "udpv6_rcv",
];

/// Map every drop reason of the summary to a cause, or to a benign class (returned).
pub(super) fn assign_events(cx: &mut Ctx<'_>) -> BenignTally {
    let s = cx.input.summary;
    let mut benign = BenignTally::default();
    let mut ignored_multi = total_counter(cx, "Udp.IgnoredMulti") + total_counter(cx, "Udp6.IgnoredMulti");
    for r in &s.reasons {
        if r.count == 0 {
            continue;
        }
        if let Some(b) = taxonomy::benign_for_reason(&r.reason) {
            benign.add(b, &r.reason, None, r.count);
            continue;
        }
        // Benign by what the packets are (link chatter, multicast nobody joined), whatever
        // the location; the rest of the reason goes on.
        let mut by_flow: BTreeMap<&str, u64> = BTreeMap::new();
        for f in s.flows.iter().filter(|f| f.reason == r.reason) {
            if let Some(b) = taxonomy::benign_for_flow(f) {
                benign.add(b, &r.reason, (!f.location.is_empty()).then_some(f.location.as_str()), f.count);
                *by_flow.entry(f.location.as_str()).or_default() += f.count;
            }
        }
        let flow_benign: u64 = by_flow.values().sum::<u64>().min(r.count);
        let r = &ReasonCount { count: r.count - flow_benign, ..r.clone() };
        if r.count == 0 {
            continue;
        }
        let flows: Vec<_> = s.flows.iter().filter(|f| f.reason == r.reason).collect();
        match r.reason.as_str() {
            "SOCKET_RCVBUFF" => assign_rcvbuff(cx, r, &flows),
            "QDISC_DROP" => assign_qdisc(cx, r, &flows),
            "NETFILTER_DROP" => assign_netfilter(cx, r),
            reason => {
                if let Some(id) = taxonomy::cause_for_reason(reason) {
                    push_event(cx, id, reason, None, None, r.count);
                    continue;
                }
                assign_by_location(cx, r, &by_flow, &mut ignored_multi, &mut benign);
            }
        }
    }
    benign
}

/// A counter summed over the namespaces read.
fn total_counter(cx: &Ctx<'_>, key: &str) -> u64 {
    cx.input.deltas.iter().map(|d| d.counter(key)).sum::<u64>()
}

/// `SOCKET_RCVBUFF`, split by the flows' protocol (UDP => udp-rcvbuf-full, TCP =>
/// socket-memory-pressure); drops of no flow go with UDP unless only TCP could have them.
fn assign_rcvbuff(cx: &mut Ctx<'_>, r: &ReasonCount, flows: &[&FlowCount]) {
    let by = |p: &str| flows.iter().filter(|f| f.flow.proto == p).map(|f| f.count).sum::<u64>();
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

/// `QDISC_DROP`: a device without carrier (or down) holds the noop qdisc, which drops every
/// packet with `QDISC_DROP`: the interface is down, no queue is too short.
fn assign_qdisc(cx: &mut Ctx<'_>, r: &ReasonCount, flows: &[&FlowCount]) {
    let down: u64 = flows.iter().filter(|f| device_is_down(cx, f.flow.netns, f.ifindex)).map(|f| f.count).sum();
    let down = down.min(r.count);
    if down > 0 {
        push_event(cx, CauseId::InterfaceDown, &r.reason, None, None, down);
    }
    if r.count > down {
        push_event(cx, CauseId::QdiscDrop, &r.reason, None, None, r.count - down);
    }
}

/// `NETFILTER_DROP`: conntrack refusing new entries shows as `NETFILTER_DROP` too.
fn assign_netfilter(cx: &mut Ctx<'_>, r: &ReasonCount) {
    let ct: u64 = cx
        .input
        .deltas
        .iter()
        .filter_map(|d| d.conntrack.as_ref())
        .map(|c| c.stats.get("drop").copied().unwrap_or(0) + c.stats.get("insert_failed").copied().unwrap_or(0))
        .sum();
    let to_ct = ct.min(r.count);
    if to_ct > 0 {
        push_event(cx, CauseId::ConntrackTableFull, &r.reason, None, None, to_ct);
    }
    if r.count > to_ct {
        push_event(cx, CauseId::FirewallDrop, &r.reason, None, None, r.count - to_ct);
    }
}

/// A reason that names no cause (`NOT_SPECIFIED`, `TCP_DROP`, unknown ones): by drop location,
/// less the flows of each location already counted as benign (`by_flow`).
fn assign_by_location(
    cx: &mut Ctx<'_>,
    r: &ReasonCount,
    by_flow: &BTreeMap<&str, u64>,
    ignored_multi: &mut u64,
    benign: &mut BenignTally,
) {
    let s = cx.input.summary;
    let reason = r.reason.as_str();
    let mut left = r.count;
    let locs: Vec<_> = s.locations.iter().filter(|l| l.reason == reason && l.count > 0).collect();
    for l in locs {
        // The flows of this location already counted as benign.
        let taken = by_flow.get(l.symbol.as_str()).copied().unwrap_or(0);
        let n = l.count.saturating_sub(taken).min(left);
        if n == 0 {
            continue;
        }
        if let Some(b) = taxonomy::benign_for_location(reason, &l.symbol) {
            benign.add(b, reason, Some(&l.symbol), n);
            left -= n;
            continue;
        }
        // Before drop reasons, ignored broadcasts and closed ports are freed in
        // the same UDP functions: as many as Udp.IgnoredMulti counted are benign.
        let n = if reason == crate::decode::reasons::NO_REASON
            && UDP_RCV.contains(&crate::decode::symbols::function_of(&l.symbol))
        {
            let ignored = (*ignored_multi).min(n);
            *ignored_multi -= ignored;
            benign.add(BenignId::UnwantedBroadcast, reason, Some(&l.symbol), ignored);
            left -= ignored;
            n - ignored
        } else {
            n
        };
        if n == 0 {
            continue;
        }
        let id = taxonomy::cause_for_location(&l.symbol).unwrap_or(if reason == "TCP_DROP" {
            CauseId::TcpProtocol
        } else {
            CauseId::Unclassified
        });
        // Before drop reasons, a tc verdict is freed in the device core (its
        // `sch_handle_ingress` inlined there): where the flows' devices have a
        // clsact qdisc that dropped as much, these are its programs' drops.
        let tc = if id == CauseId::Unclassified { tc_verdicts(cx, reason, &l.symbol).min(n) } else { 0 };
        if tc > 0 {
            push_event(cx, CauseId::BpfOrTcProgram, reason, None, Some(l.symbol.clone()), tc);
        }
        if n > tc {
            push_event(cx, id, reason, None, Some(l.symbol.clone()), n - tc);
        }
        left -= n;
    }
    if left > 0 {
        let id = if reason == "TCP_DROP" { CauseId::TcpProtocol } else { CauseId::Unclassified };
        push_event(cx, id, reason, None, None, left);
    }
}

/// Functions of the device core that free a packet a tc program dropped, on kernels without
/// drop reasons (`sch_handle_ingress`/`sch_handle_egress` inlined into them).
const TC_CORE: &[&str] = &["__netif_receive_skb_core", "__dev_queue_xmit"];

/// Of the drops of `reason` at `symbol`, how many a clsact or ingress qdisc of their devices
/// counted (the verdicts of its tc programs): the smaller of the two.
fn tc_verdicts(cx: &Ctx<'_>, reason: &str, symbol: &str) -> u64 {
    if !TC_CORE.contains(&crate::decode::symbols::function_of(symbol)) {
        return 0;
    }
    let mut flows = 0;
    let mut devices = BTreeSet::new();
    for f in cx.input.summary.flows.iter().filter(|f| f.reason == reason && f.location == symbol) {
        flows += f.count;
        devices.insert((f.flow.netns, f.device.as_str()));
    }
    // A device of the flows' namespace by identity (`NetnsId::matches`): a device of the same
    // name in a namespace that had the inode before or after is another one; by inode alone
    // where the flow or the reading says no cookie (a kernel before 5.12).
    let verdicts: u64 = cx
        .input
        .deltas
        .iter()
        .flat_map(|d| d.qdiscs.iter().map(move |q| (d.netns, q)))
        .filter(|(ns, q)| q.runs_tc() && devices.iter().any(|(f, dev)| f.matches(*ns) && *dev == q.dev))
        .map(|(_, q)| q.drops)
        .sum();
    flows.min(verdicts)
}

/// Whether device `ifindex` of namespace `netns` was down or without carrier at the end of the
/// capture (its qdisc then is noop).
pub(super) fn device_is_down(cx: &Ctx<'_>, netns: NetnsId, ifindex: u32) -> bool {
    ifindex != 0
        && cx
            .input
            .deltas
            .iter()
            .filter(|d| d.netns.matches(netns))
            .flat_map(|d| &d.devices)
            .any(|x| x.ifindex == ifindex && !x.operstate.is_empty() && (!x.up || !x.lower_up || x.qdisc == "noop"))
}

pub(super) fn push_event(
    cx: &mut Ctx<'_>,
    id: CauseId,
    reason: &str,
    proto: Option<&'static str>,
    symbol: Option<String>,
    n: u64,
) {
    let flows_ns: Vec<NetnsId> = cx
        .input
        .summary
        .flows
        .iter()
        .filter(|f| {
            f.is(reason, symbol.as_deref()) && proto.is_none_or(|p| f.flow.proto == p) && f.flow.netns.inode != 0
        })
        .map(|f| f.flow.netns)
        .collect();
    let a = cx.a(id);
    a.event_drops += n;
    a.selected = true;
    for ns in flows_ns {
        a.in_netns(ns);
    }
    a.events.push(Explained {
        cause: id,
        reason: reason.to_owned(),
        proto: proto.map(str::to_owned),
        symbol,
        flows: Vec::new(),
        drops: n,
    });
}

/// TCP drop reasons of segments beyond the receive window. (Duplicates of data already received, `TCP_OLD_DATA`/`TCP_OLD_SEQUENCE`, are benign flow
/// control: never loss, never moved here.)
const WINDOW_REASONS: &[&str] =
    &["TCP_ZEROWINDOW", "TCP_OVERWINDOW", "TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE"];
/// Counters of the segments outside the receive window, and the reasons of the drops they count.
const WINDOW_COUNTERS: &[&str] = &["TcpExt.BeyondWindow", "TcpExt.TCPZeroWindowDrop"];
const COUNTED_WINDOW_REASONS: &[&str] = &["TCP_ZEROWINDOW", "TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE"];

/// A TCP receiver that runs out of receive memory drops data (`PROTO_MEM`) and closes its
/// window; the sender's retransmissions then land beyond that window and are dropped as
/// `TCP_INVALID_END_SEQUENCE` (`TCP_ZEROWINDOW`, ...), counted in `BeyondWindow`. On the
/// connections that had memory drops, those window drops are the same fault: they move from
/// tcp-protocol to socket-memory-pressure, events and counters both, so that no drop is counted
/// twice and the cause is named by what started it.
pub(super) fn memory_window(cx: &mut Ctx<'_>) {
    let s = cx.input.summary;
    let starved: BTreeSet<Flow> = s
        .flows
        .iter()
        .filter(|f| f.flow.proto == "tcp" && f.count > 0 && MEMORY_REASONS.contains(&f.reason.as_str()))
        .map(|f| f.flow.clone())
        .collect();
    if starved.is_empty() || cx.acc.get(&CauseId::SocketMemoryPressure).is_none_or(|a| a.event_drops == 0) {
        return;
    }
    // Window drops on those connections, by reason.
    let mut found: BTreeMap<&str, (u64, BTreeSet<Flow>)> = BTreeMap::new();
    for f in s.flows.iter().filter(|f| f.flow.proto == "tcp" && WINDOW_REASONS.contains(&f.reason.as_str())) {
        let c = f.flow.clone();
        if starved.contains(&c) {
            let e = found.entry(f.reason.as_str()).or_default();
            e.0 += f.count;
            e.1.insert(c);
        }
    }
    let Some(tp) = cx.acc.get_mut(&CauseId::TcpProtocol) else { return };
    let mut moved = Vec::new();
    for (reason, (n, conns)) in found {
        let Some(e) = tp.events.iter_mut().find(|e| e.reason == reason && e.symbol.is_none() && e.flows.is_empty())
        else {
            continue;
        };
        let k = n.min(e.drops);
        e.drops -= k;
        tp.event_drops -= k;
        if k > 0 {
            moved.push((reason, k, conns));
        }
    }
    tp.events.retain(|e| e.drops > 0);
    if moved.is_empty() {
        return;
    }
    // The same segments in the counters of their namespaces.
    let total: u64 = moved.iter().map(|m| m.1).sum();
    let mut ctr_lines = Vec::new();
    let mut ctr_moved = 0;
    // Counted window drops on the starved connections, by namespace (inode and cookie); inode
    // 0: a flow whose namespace the kernel did not give (a drop at the socket before 6.11 has
    // neither device nor `rx_sk`), whose counter may be any namespace's.
    let mut events: BTreeMap<NetnsId, u64> = BTreeMap::new();
    for f in s.flows.iter().filter(|f| COUNTED_WINDOW_REASONS.contains(&f.reason.as_str()) && starved.contains(&f.flow))
    {
        *events.entry(f.flow.netns).or_default() += f.count;
    }
    let mut unknown: u64 = events.iter().filter(|(id, _)| id.inode == 0).map(|(_, n)| *n).sum();
    events.retain(|id, _| id.inode != 0);
    for d in cx.input.deltas.iter().filter(|d| !d.no_baseline) {
        let ctr: u64 = WINDOW_COUNTERS.iter().map(|k| d.counter(k)).sum();
        // The drops of this namespace by identity (`NetnsId::matches`): a namespace that had
        // the inode before or after counted other segments; by inode alone where the flow or
        // the reading says no cookie, and then each drop is taken by one reading only.
        let mine = |id: &NetnsId| id.matches(d.netns);
        let known: u64 = events.iter().filter(|(id, _)| mine(id)).map(|(_, n)| *n).sum();
        if ctr == 0 || known + unknown == 0 {
            continue;
        }
        let from_known = ctr.min(known);
        let mut take = from_known;
        for (_, n) in events.iter_mut().filter(|(id, _)| mine(id)) {
            let t = take.min(*n);
            *n -= t;
            take -= t;
        }
        let from_unknown = (ctr - from_known).min(unknown);
        unknown -= from_unknown;
        let sub = from_known + from_unknown;
        ctr_moved += sub;
        let shown: Vec<String> =
            WINDOW_COUNTERS.iter().filter(|k| d.counter(k) > 0).map(|k| format!("{k} +{}", d.counter(k))).collect();
        ctr_lines.push(format!(
            "{} {}: {sub} of them are these segments outside the closed window",
            cx.tag_read(d.netns),
            shown.join(", ")
        ));
    }
    let tp = cx.a(CauseId::TcpProtocol);
    tp.counter_drops = tp.counter_drops.saturating_sub(ctr_moved);
    tp.score = tp.score.saturating_sub(ctr_moved);
    if tp.event_drops == 0 && tp.counter_drops == 0 {
        tp.selected = false;
    }
    let a = cx.a(CauseId::SocketMemoryPressure);
    a.counter_drops += ctr_moved;
    a.score += total;
    for (reason, k, conns) in moved {
        let n = conns.len();
        a.ev(format!(
            "events: {k} drops with reason {reason} on the {n} connection{} that ran out of receive memory: the sender's segments outside the window the receiver closed (the same fault, counted here and not as tcp-protocol)",
            if n == 1 { "" } else { "s" }
        ));
        a.event_drops += k;
        a.events.push(Explained {
            cause: CauseId::SocketMemoryPressure,
            reason: reason.to_owned(),
            proto: Some("tcp".to_owned()),
            symbol: None,
            flows: conns.into_iter().collect(),
            drops: k,
        });
    }
    for l in ctr_lines {
        a.ev(l);
    }
}

/// The (reason, connection) pairs that an assignment limited to connections took: an
/// assignment of the same reason without that limit does not show them.
pub(super) fn claimed(cx: &Ctx<'_>) -> BTreeSet<(String, Flow)> {
    cx.acc
        .values()
        .flat_map(|a| &a.events)
        .flat_map(|e| e.flows.iter().map(|c| (e.reason.clone(), c.clone())))
        .collect()
}

/// Whether flow `f` is among the drops of assignment `e`, and not taken by a narrower one.
pub(super) fn shows(e: &Explained, f: &FlowCount, claimed: &BTreeSet<(String, Flow)>) -> bool {
    e.covers(f) && (!e.flows.is_empty() || !claimed.contains(&(f.reason.name.clone(), f.flow.clone())))
}

/// Evidence lines for the events assigned to each cause: reason, location, top flows, processes.
pub(super) fn event_evidence(cx: &mut Ctx<'_>, taken: &BTreeSet<(String, Flow)>) {
    let s = cx.input.summary;
    let ids: Vec<CauseId> = cx.acc.keys().copied().collect();
    for id in ids {
        let events = cx.acc.get(&id).map(|a| a.events.clone()).unwrap_or_default();
        let mut lines = Vec::new();
        for e in &events {
            let (reason, proto, symbol, n) = (&e.reason, e.proto.as_deref(), &e.symbol, e.drops);
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
            if !e.flows.is_empty() {
                // Said by the rule that limited it to these connections.
            } else if reason == crate::decode::reasons::NO_REASON {
                lines.push(format!(
                    "events: {n} drops{on}{at}; this kernel gives no drop reasons (before 5.17): classified by the drop location"
                ));
            } else {
                lines.push(format!("events: {n} drops with reason {reason}{on}{at}"));
            }
            let mut flows: Vec<_> = s.flows.iter().filter(|f| shows(e, f, taken)).collect();
            flows.sort_by_key(|f| std::cmp::Reverse(f.count));
            for f in flows.iter().take(3) {
                let dev = if f.device.is_empty() { String::new() } else { format!(" dev {}", f.device) };
                let who = if f.pid == 0 { String::new() } else { format!(" process {}", f.process()) };
                lines.push(format!("{} flow {}{dev}{who}: {} drops", cx.tag_of(f.flow.netns), f.line(), f.count));
            }
            let procs: BTreeSet<String> = s
                .samples
                .iter()
                .filter(|x| &x.reason == reason && !x.comm.is_empty() && x.pid != 0)
                .filter(|x| {
                    reason != crate::decode::reasons::NO_REASON || symbol.as_ref().is_none_or(|sy| &x.symbol == sy)
                })
                .filter(|x| proto.is_none_or(|p| x.flow.proto == p))
                .map(|x| format!("{}[{}]", x.comm, x.pid))
                .take(3)
                .collect();
            if !procs.is_empty() && flows.iter().all(|f| f.pid == 0) {
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
