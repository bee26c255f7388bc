//! Counter rules: kernel counters (snmp/netstat, softnet, devices, qdiscs, conntrack, firewall
//! rules) that select causes or add to their drops, and TCP retransmissions no local drop
//! explains (external loss).
use super::{
    CONNTRACK_FULL_RATIO, CauseId, MIN_EXTERNAL_RETRANS, MIN_TCP_PROTOCOL, MIN_TIME_SQUEEZE, ctx::Ctx, taxonomy,
};
use crate::host::counters::{
    NetnsDelta,
    nic::{NicCounter, ethtool_max, ring_full, xdp_drops},
};

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
    // TCPRcvQDrop and TCPOFODrop count the data TCP drops for want of receive memory (traced as
    // PROTO_MEM): in order and out of order.
    rule(CauseId::SocketMemoryPressure, "TcpExt.TCPRcvQDrop", Role::Drop, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.TCPOFODrop", Role::Drop, 1),
    // Prunes, not packets: a failed prune precedes a drop counted above (or traced as
    // TCP_OFO_QUEUE_PRUNE).
    rule(CauseId::SocketMemoryPressure, "TcpExt.RcvPruned", Role::Evidence, 1),
    rule(CauseId::SocketMemoryPressure, "TcpExt.OfoPruned", Role::Evidence, 1),
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
    rule(CauseId::TcpProtocol, "TcpExt.TCPZeroWindowDrop", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::TcpProtocol, "TcpExt.PAWSEstab", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::TcpProtocol, "TcpExt.BeyondWindow", Role::Drop, MIN_TCP_PROTOCOL),
    rule(CauseId::MemoryPressure, "TcpExt.PFMemallocDrop", Role::Drop, 1),
];

/// Why counters can show drops that events do not.
pub(super) fn counters_only_why(id: CauseId) -> &'static str {
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
        CauseId::HardwareTrap => {
            "the device dropped them itself: they never reached the kernel's stack, so no kfree_skb"
        }
        _ => "the kernel counts these drops without a kfree_skb event, or they happened outside the traced probes",
    }
}

/// Counters (snmp/netstat, softnet, devices, qdiscs, conntrack, neighbours, firewall counters).
pub(super) fn counter_signals(cx: &mut Ctx<'_>) {
    let deltas = cx.input.deltas;
    for d in deltas.iter().filter(|d| !d.no_baseline) {
        let tag = cx.tag_read(d.netns);
        snmp_signals(cx, d, &tag);
        device_signals(cx, d, &tag);
        qdisc_signals(cx, d, &tag);
        sndbuf_signals(cx, d, &tag);
        conntrack_signals(cx, d, &tag);
    }
    // Host-wide: softnet_stat and the neighbour tables, read once (from our own namespace).
    if let Some(h) = cx.host() {
        softnet_signals(cx, h);
        neighbour_signals(cx, h);
    }
    firewall_signals(cx);
}

/// The namespace's snmp/netstat counters, by [`COUNTER_RULES`].
fn snmp_signals<'a>(cx: &mut Ctx<'a>, d: &'a NetnsDelta, tag: &str) {
    for r in COUNTER_RULES {
        let mut v = d.counter(r.key);
        if r.key == "Ip6.InNoRoutes" {
            // The namespace's IPv6 start-up chatter, dropped for want of a route: not loss.
            let chatter: u64 = cx
                .input
                .summary
                .flows
                .iter()
                .filter(|f| {
                    f.flow.netns.matches(d.netns) && f.reason == "IP_INNOROUTES" && taxonomy::is_link_local_control(f)
                })
                .map(|f| f.count)
                .sum();
            v = v.saturating_sub(chatter);
        }
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
                a.in_netns(d.netns);
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
}

/// A namespace's devices: ring, FIFO, CRC, allocation failures, XDP drops, carrier changes.
fn device_signals<'a>(cx: &mut Ctx<'a>, d: &'a NetnsDelta, tag: &str) {
    // Devices.
    for dev in &d.devices {
        let ring = dev.rx_missed_errors.max(ring_full(dev));
        if ring > 0 {
            let a = cx.counted(CauseId::NicRingFull, d.netns, ring);
            a.ev(format!("{tag} dev {} rx_missed_errors +{}", dev.name, dev.rx_missed_errors));
            for (k, v) in
                dev.ethtool.iter().filter(|(k, v)| **v > 0 && NicCounter::of_ethtool(k) == NicCounter::RingFull)
            {
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
        let alloc = ethtool_max(dev, NicCounter::AllocFailure);
        if alloc > 0 {
            let a = cx.counted(CauseId::MemoryPressure, d.netns, alloc);
            for (k, v) in
                dev.ethtool.iter().filter(|(k, v)| **v > 0 && NicCounter::of_ethtool(k) == NicCounter::AllocFailure)
            {
                a.ev(format!("{tag} dev {} ethtool {k} +{v} (RX buffer allocation failed)", dev.name));
            }
        }
        // An XDP program's `XDP_DROP` verdicts, counted by the driver (veth frees them
        // with no reason at `veth_xdp_rcv_skb`): the program's drops, the same packets as
        // those events.
        let xdp = xdp_drops(dev);
        if xdp > 0 {
            let prog = dev.xdp.as_deref().map(|p| format!(" (XDP program attached: {p})")).unwrap_or_default();
            let a = cx.counted(CauseId::BpfOrTcProgram, d.netns, xdp);
            for (k, v) in
                dev.ethtool.iter().filter(|(k, v)| **v > 0 && NicCounter::of_ethtool(k) == NicCounter::XdpDrop)
            {
                a.ev(format!("{tag} dev {} ethtool {k} +{v}{prog}", dev.name));
            }
        }
        if dev.carrier_changes > 0 {
            let a = cx.a(CauseId::InterfaceDown);
            a.select(0, dev.carrier_changes);
            a.in_netns(d.netns);
            a.ev(format!(
                "{tag} dev {} carrier_changes +{} (link went down/up during the capture; now {})",
                dev.name,
                dev.carrier_changes,
                if dev.operstate.is_empty() { "?" } else { &dev.operstate }
            ));
        }
    }
}

/// A namespace's qdiscs.
fn qdisc_signals<'a>(cx: &mut Ctx<'a>, d: &'a NetnsDelta, tag: &str) {
    // Qdiscs: root (and ingress) qdiscs only, children are included in their root's stats.
    let has_root = d.qdiscs.iter().any(|q| q.parent == "root");
    for q in d.qdiscs.iter().filter(|q| !has_root || q.parent == "root" || q.parent.starts_with("ffff:")) {
        if q.drops == 0 {
            continue;
        }
        if q.runs_tc() {
            // These qdiscs queue nothing: their drops are the verdicts of the tc programs
            // attached to them, traced as TC_INGRESS/TC_EGRESS drops. The same packets,
            // counted once, under the program.
            let a = cx.counted(CauseId::BpfOrTcProgram, d.netns, q.drops);
            a.ev(format!(
                "{tag} qdisc {} on dev {}: dropped +{} (the verdicts of its tc programs)",
                q.kind, q.dev, q.drops
            ));
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
}

/// A namespace's UDP send buffer errors: the qdisc's or the neighbour table's drops.
fn sndbuf_signals<'a>(cx: &mut Ctx<'a>, d: &'a NetnsDelta, tag: &str) {
    // A UDP send dropped by the local qdisc returns ENOBUFS, which UDP counts as a send
    // buffer error: those SndbufErrors are the qdisc's drops, not a full socket buffer.
    let has_root = d.qdiscs.iter().any(|q| q.parent == "root");
    let qdisc_drops: u64 =
        d.qdiscs.iter().filter(|q| (!has_root || q.parent == "root") && !q.runs_tc()).map(|q| q.drops).sum();
    let sndbuf: u64 = ["Udp.SndbufErrors", "Udp6.SndbufErrors", "UdpLite.SndbufErrors", "UdpLite6.SndbufErrors"]
        .iter()
        .map(|k| d.counter(k))
        .sum();
    let by_qdisc = sndbuf.min(qdisc_drops);
    // A send that finds the neighbour table full fails with ENOBUFS too (the skb freed as
    // NEIGH_CREATEFAIL): those SndbufErrors are neighbour failures, counted there.
    let createfail: u64 = cx
        .input
        .summary
        .flows
        .iter()
        .filter(|f| {
            f.flow.netns.matches(d.netns)
                && f.reason == "NEIGH_CREATEFAIL"
                && matches!(f.flow.proto.as_str(), "udp" | "udplite")
        })
        .map(|f| f.count)
        .sum();
    let by_neigh = sndbuf.saturating_sub(by_qdisc).min(createfail);
    if by_neigh > 0 {
        let a = cx.a(CauseId::UdpSndbufFull);
        a.counter_drops = a.counter_drops.saturating_sub(by_neigh);
        a.score = a.score.saturating_sub(by_neigh);
        a.selected = a.counter_drops > 0;
        let n = cx.a(CauseId::NeighborFailure);
        n.in_netns(d.netns);
        n.ev(format!(
                "{tag} Udp.SndbufErrors +{sndbuf}: {by_neigh} of them are these sends the full neighbour table refused (NEIGH_CREATEFAIL; the sender got ENOBUFS), counted once, here"
            ));
    }
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
}

/// A namespace's conntrack table.
fn conntrack_signals<'a>(cx: &mut Ctx<'a>, d: &'a NetnsDelta, tag: &str) {
    // Conntrack.
    if let Some(ct) = &d.conntrack {
        let drop = ct.stats.get("drop").copied().unwrap_or(0);
        let failed = ct.stats.get("insert_failed").copied().unwrap_or(0);
        let early = ct.stats.get("early_drop").copied().unwrap_or(0);
        #[expect(
            clippy::cast_precision_loss,
            reason = "the conntrack fill ratio, compared with a threshold; entry counts are far below 2^53"
        )]
        let full = match (ct.count, ct.max) {
            (Some(c), Some(m)) if m > 0 => c as f64 / m as f64 >= CONNTRACK_FULL_RATIO,
            _ => false,
        };
        if drop + failed + early > 0 || full {
            let a = cx.a(CauseId::ConntrackTableFull);
            a.select(drop + failed, drop + failed + early + u64::from(full));
            a.in_netns(d.netns);
            a.ev(format!(
                "{tag} conntrack count {} of max {}; stats drop +{drop}, insert_failed +{failed}, early_drop +{early}",
                ct.count.map_or("?".to_owned(), |c| c.to_string()),
                ct.max.map_or("?".to_owned(), |c| c.to_string()),
            ));
        }
    }
}

/// The host's `softnet_stat`.
fn softnet_signals<'a>(cx: &mut Ctx<'a>, h: &'a NetnsDelta) {
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
        if let Some(top) = h.softnet.iter().max_by_key(|c| c.processed).filter(|_| total > 0 && h.softnet.len() > 1) {
            #[expect(
                clippy::cast_precision_loss,
                reason = "a CPU's share of the received packets, a percentage for the evidence line"
            )]
            let share = top.processed as f64 * 100.0 / total as f64;
            #[expect(clippy::cast_precision_loss, reason = "the even share of one CPU; a CPU count is exact in f64")]
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
}

/// The host's neighbour tables.
fn neighbour_signals<'a>(cx: &mut Ctx<'a>, h: &'a NetnsDelta) {
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

/// Firewall rule and policy counters over the capture.
fn firewall_signals(cx: &mut Ctx<'_>) {
    for c in cx.input.checks {
        let tag = cx.tag_read(c.netns);
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

pub(super) fn tcp_local_drops(cx: &Ctx<'_>) -> u64 {
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
    // TCP drops the kernel only counted (traced ones are in the TCP flows already): data
    // dropped for receive memory or outside the window, e.g. inside `tcp_drop()` on kernels
    // before 5.17, which frees without a `kfree_skb` event.
    for id in [CauseId::SocketMemoryPressure, CauseId::TcpProtocol] {
        if let Some(a) = cx.acc.get(&id) {
            n += a.counter_drops.saturating_sub(a.event_drops);
        }
    }
    n
}

/// TCP retransmissions with no local drop to explain them.
pub(super) fn external_loss(cx: &mut Ctx<'_>) {
    let s = cx.input.summary;
    // With a filter whose view the counters exceed, only the traced (filtered) retransmissions.
    let counter_retrans: u64 =
        if cx.counters_count { cx.input.deltas.iter().map(|d| d.counter("Tcp.RetransSegs")).sum() } else { 0 };
    let total = s.retransmits.total.max(counter_retrans);
    if total < MIN_EXTERNAL_RETRANS {
        return;
    }
    // Retransmissions that local drops on the same connection (either direction) explain: a
    // dropped segment explains its retransmission, not every retransmission of the connection.
    let conn = |a: &str, ap: u16, b: &str, bp: u16| {
        if (a, ap) <= (b, bp) { (a.to_owned(), ap, b.to_owned(), bp) } else { (b.to_owned(), bp, a.to_owned(), ap) }
    };
    let mut by_conn: std::collections::BTreeMap<_, (u64, u64)> = std::collections::BTreeMap::new();
    for r in &s.retransmits.flows {
        by_conn.entry(conn(&r.flow.src, r.flow.sport, &r.flow.dst, r.flow.dport)).or_default().0 += r.count;
    }
    for f in s.flows.iter().filter(|f| f.flow.proto == "tcp") {
        if let Some(e) = by_conn.get_mut(&conn(&f.flow.src, f.flow.sport, &f.flow.dst, f.flow.dport)) {
            e.1 += f.count;
        }
    }
    let matched: u64 = by_conn.values().map(|(retrans, dropped)| (*retrans).min(*dropped)).sum();
    // Local TCP drops on any tuple (NAT may hide the match) and drops at layers that do not
    // know the protocol (qdisc, NIC, backlog, ...) may explain retransmissions too.
    let tcp_flow_drops: u64 = s.flows.iter().filter(|f| f.flow.proto == "tcp").map(|f| f.count).sum();
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
    // The namespaces of the retransmissions, by identity where known. A retransmission record
    // says no cookie (the key of the `tcp:tcp_retransmit_skb` probe holds the inode only): it is
    // tagged and listed by inode, the documented fallback (`Ctx::tag_of`, `Acc::in_netns`);
    // the counters that counted retransmissions say their namespace's cookie, and then the
    // cause is that namespace's, not one that had the inode before or after.
    let mut nss = Vec::new();
    for r in flows.iter().take(3) {
        lines.push(format!(
            "{} retransmits {}:{} -> {}:{}: {}",
            cx.tag_of(r.flow.netns),
            r.flow.src,
            r.flow.sport,
            r.flow.dst,
            r.flow.dport,
            r.count
        ));
        nss.push(r.flow.netns);
    }
    for d in cx.input.deltas.iter().filter(|d| d.counter("Tcp.RetransSegs") > 0) {
        lines.push(format!("{} Tcp.RetransSegs +{}", cx.tag_read(d.netns), d.counter("Tcp.RetransSegs")));
        nss.push(d.netns);
    }
    let peer = flows.first().map_or_else(|| "PEER".to_owned(), |r| r.flow.dst.clone());
    let traced = !cx.counters_count;
    let a = cx.a(CauseId::ExternalLoss);
    a.select(unexplained, unexplained);
    a.traced = traced;
    for id in nss {
        a.in_netns(id);
    }
    for l in lines {
        a.ev(l);
    }
    a.adv(format!(
        "No local drop explains these retransmissions: compare `sar -n DEV 2` with the instance's bandwidth/pps limits, and run `mtr -rwc 100 {peer}` to find the lossy hop."
    ));
}
