//! Configuration checks: evidence and concrete advice for the causes already selected (listeners,
//! firewall rules, buffers, queues, routes, neighbours, devices...), from each namespace's
//! configuration.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    CauseId, Verify,
    ctx::Ctx,
    taxonomy::{self, MEMORY_REASONS},
};
use crate::{
    host::counters::{ConfigChecks, nic::ring_full},
    model::NetnsId,
};

/// Configuration findings: evidence and specific advice for the selected causes.
pub(super) fn config_findings(cx: &mut Ctx<'_>) {
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

fn cfg_no_listener(cx: &mut Ctx<'_>) {
    let flows = cx.drop_flows(&["NO_SOCKET"]);
    let mut out = Vec::new();
    let mut resets = Vec::new();
    let mut seen = BTreeSet::new();
    for f in flows.iter().take(5) {
        if !seen.insert((f.flow.netns, f.flow.proto.clone(), f.flow.dport)) {
            continue;
        }
        let tag = cx.tag_of(f.flow.netns);
        if f.flow.proto == "tcp" {
            // Each SYN to a closed port is a NO_SOCKET drop here and a reset sent back.
            let rst: u64 = cx
                .input
                .summary
                .resets
                .flows
                .iter()
                .filter(|r| {
                    r.flow.netns.matches(f.flow.netns)
                        && r.flow.sport == f.flow.dport
                        && r.flow.src == f.flow.dst
                        && matches!(r.reason.as_str(), "NO_SOCKET" | crate::decode::reasons::NO_REASON)
                })
                .map(|r| r.count)
                .sum();
            if rst > 0 {
                resets.push(format!(
                    "{tag} {rst} TCP resets sent from {}:{} (tcp:tcp_send_reset): the clients saw connection refused",
                    f.flow.dst, f.flow.dport
                ));
            }
        }
        let elsewhere: Vec<String> = cx
            .input
            .checks
            .iter()
            .flat_map(|c| {
                let tcp = c
                    .listeners
                    .iter()
                    .filter(|l| f.flow.proto == "tcp" && l.port == f.flow.dport)
                    .map(|l| (l.addr.clone(), l.port));
                let udp = c
                    .udp_sockets
                    .iter()
                    .filter(|u| f.flow.proto == "udp" && u.port == f.flow.dport)
                    .map(|u| (u.addr.clone(), u.port));
                tcp.chain(udp).map(move |(a, p)| (c.netns, a, p)).collect::<Vec<_>>()
            })
            .map(|(ns, a, p)| format!("{a}:{p} in {}", cx.tag_read(ns)))
            .collect();
        // Its sockets could not be listed (the namespace could not be entered): say so, never
        // "nothing listens".
        let listed = cx.input.checks.iter().any(|c| c.netns.matches(f.flow.netns));
        if elsewhere.is_empty() && !listed {
            out.push((
                format!(
                    "{tag} whether anything listens on {} port {} is unavailable: its sockets could not be listed",
                    f.flow.proto, f.flow.dport
                ),
                format!(
                    "Check that a service listens on {} port {} in {tag}, or point the client ({}) at the port the service uses.",
                    f.flow.proto, f.flow.dport, f.flow.src
                ),
            ));
        } else if elsewhere.is_empty() {
            out.push((
                format!("{tag} nothing listens on {} port {} (packets to {})", f.flow.proto, f.flow.dport, f.flow.dst),
                format!(
                    "Start the service on {} port {} in {tag}, or point the client ({}) at the port the service uses.",
                    f.flow.proto, f.flow.dport, f.flow.src
                ),
            ));
        } else {
            out.push((
                format!("{tag} no {} socket for {}:{}; listeners on that port: {}", f.flow.proto, f.flow.dst, f.flow.dport, elsewhere.join(", ")),
                format!(
                    "A listener on port {} exists but not for {} in {tag}: bind it to 0.0.0.0/[::] or to {}, in the namespace that receives the traffic.",
                    f.flow.dport, f.flow.dst, f.flow.dst
                ),
            ));
        }
    }
    let (ev, adv) = out.into_iter().unzip();
    cx.add(CauseId::NoListener, ev, adv);
    cx.add(CauseId::NoListener, resets, Vec::new());
}

fn cfg_firewall(cx: &mut Ctx<'_>) {
    let checks = cx.checks_for(CauseId::FirewallDrop);
    let fw_events = cx.acc.get(&CauseId::FirewallDrop).map_or(0, |a| a.event_drops);
    let flows = cx.drop_flows(&["NETFILTER_DROP"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    // The chains the firewall probes saw drop, exact and read at the drop.
    for d in cx.input.summary.firewall.iter().take(5) {
        let how = if d.jumped { " (a jump target)" } else { "" };
        ev.push(format!(
            "{} {} dropped in chain {}{how}, hook {}",
            cx.tag_of(d.netns),
            if d.count == 1 { "1 packet".to_owned() } else { format!("{} packets", d.count) },
            d.label(),
            d.hook
        ));
    }
    for c in &checks {
        let tag = cx.tag_read(c.netns);
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
                .filter(|f| f.flow.netns.matches(c.netns) || f.flow.netns.inode == 0)
                .filter(|f| matches!(f.flow.proto.as_str(), "tcp" | "udp") && f.flow.dport != 0)
                .map(|f| (f.flow.proto.clone(), f.flow.dport))
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
                    "ip" => flows.is_empty() || flows.iter().any(|f| f.flow.family == 4),
                    "ip6" => flows.iter().any(|f| f.flow.family == 6),
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

fn cfg_conntrack(cx: &mut Ctx<'_>) {
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::ConntrackTableFull) {
        if let Some(ct) = &d.conntrack {
            let max = ct.max.unwrap_or(65536);
            // The limit is the host's: read-only inside a namespace, one value for all of them.
            let on = if d.is_self {
                String::new()
            } else {
                format!(" on the host (it is host-wide, read-only in {})", cx.tag_read(d.netns))
            };
            adv.push(format!(
                "{} raise the conntrack limit{on}: `sysctl -w net.netfilter.nf_conntrack_max={}` (now {max}, count {}), or shorten conntrack timeouts / add notrack rules for stateless traffic.",
                cx.tag_read(d.netns),
                max.saturating_mul(2),
                ct.count.map_or("?".to_owned(), |c| c.to_string())
            ));
        }
    }
    cx.add(CauseId::ConntrackTableFull, Vec::new(), adv);
}

fn cfg_rp_filter(cx: &mut Ctx<'_>) {
    let flows = cx.drop_flows(&["IP_RPFILTER"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.checks_for(CauseId::RpFilter) {
        let tag = cx.tag_read(c.netns);
        let pre = cx.in_ns(c.netns);
        let all = c.rp_filter.get("all").copied().unwrap_or(0);
        let devs: BTreeSet<String> = flows
            .iter()
            .filter(|f| f.flow.netns.matches(c.netns) && !f.device.is_empty())
            .map(|f| f.device.clone())
            .collect();
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

fn cfg_udp_rcvbuf(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let flows = cx.drop_flows(&["SOCKET_RCVBUFF"]);
    let ports: BTreeSet<(NetnsId, u16)> =
        flows.iter().filter(|f| f.flow.proto == "udp").map(|f| (f.flow.netns, f.flow.dport)).collect();
    let dropped_at = |ns: NetnsId, port: u16| ports.iter().any(|(n, p)| *p == port && n.matches(ns));
    for c in cx.checks_for(CauseId::UdpRcvbufFull) {
        let tag = cx.tag_read(c.netns);
        let pre = cx.in_ns(c.netns);
        let rmem_max = cx.sysctl_u64(c.netns, "net.core.rmem_max");
        let rmem_def = cx.sysctl_u64(c.netns, "net.core.rmem_default");
        let mut socks: Vec<_> =
            c.udp_sockets.iter().filter(|u| u.drops_delta.unwrap_or(0) > 0 || dropped_at(c.netns, u.port)).collect();
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
        if socks.is_empty()
            && cx.input.deltas.iter().any(|d| d.netns.matches(c.netns) && d.counter("Udp.RcvbufErrors") > 0)
        {
            ev.push(format!(
                "{tag} no UDP socket left with drops (the receiver may have exited); {}, {}",
                cx.sysctl_str(c.netns, "net.core.rmem_max"),
                cx.sysctl_str(c.netns, "net.core.rmem_default")
            ));
        }
    }
    cx.add(CauseId::UdpRcvbufFull, ev, adv);
}

fn cfg_udp_sndbuf(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::UdpSndbufFull) {
        let tag = cx.tag_read(d.netns);
        let pre = cx.in_ns(d.netns);
        let wmem_def = cx.sysctl_u64(d.netns, "net.core.wmem_default");
        ev.push(format!(
            "{tag} {}, {}",
            cx.sysctl_str(d.netns, "net.core.wmem_max"),
            cx.sysctl_str(d.netns, "net.core.wmem_default")
        ));
        let socks = cx.input.checks.iter().filter(|c| c.netns.matches(d.netns)).flat_map(|c| c.udp_sockets.iter());
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

fn cfg_accept_queue(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let ports: BTreeSet<u16> = cx.drop_flows(&["TCP_LISTEN_OVERFLOW"]).iter().map(|f| f.flow.dport).collect();
    for c in cx.checks_for(CauseId::TcpAcceptQueueFull) {
        let tag = cx.tag_read(c.netns);
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

fn cfg_syn_queue(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.deltas_for(CauseId::TcpSynQueueFull) {
        let tag = cx.tag_read(c.netns);
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

fn cfg_socket_mem(cx: &mut Ctx<'_>, id: CauseId) {
    let mut ev = Vec::new();
    for d in cx.deltas_for(id) {
        ev.push(format!(
            "{} {}; {}; {}; {}",
            cx.tag_read(d.netns),
            cx.sysctl_str(d.netns, "net.ipv4.tcp_rmem"),
            cx.sysctl_str(d.netns, "net.ipv4.tcp_mem"),
            cx.sysctl_str(d.netns, "net.ipv4.udp_mem"),
            cx.sysctl_str(d.netns, "net.core.rmem_max")
        ));
    }
    let mut adv = Vec::new();
    if id == CauseId::SocketMemoryPressure {
        // The TCP receivers that ran out of receive memory, by namespace and port, with the
        // process that owns the socket where the samples found it.
        // A drop at the socket has no namespace in its flow before 6.11 (no device, no
        // `rx_sk`): it is the one namespace whose counters show the cause, if there is one.
        let known: Vec<NetnsId> = cx
            .acc
            .get(&id)
            .map(|a| a.netns.iter().filter(|n| **n != 0).map(|n| a.id_of(*n)).collect())
            .unwrap_or_default();
        let resolve = |ns: NetnsId| match known.as_slice() {
            [one] if ns.inode == 0 => *one,
            _ => ns,
        };
        let mut receivers: BTreeMap<(NetnsId, u16), (u64, BTreeSet<String>)> = BTreeMap::new();
        for f in cx.drop_flows(MEMORY_REASONS).into_iter().filter(|f| f.flow.proto == "tcp") {
            receivers.entry((resolve(f.flow.netns), f.flow.dport)).or_default().0 += f.count;
        }
        for x in cx.input.summary.samples.iter().filter(|x| x.flow.proto == "tcp" && x.owner_pid != 0) {
            if let Some(r) = receivers.get_mut(&(resolve(x.flow.netns), x.flow.dport)) {
                r.1.insert(format!("{}[{}]", x.owner_comm, x.owner_pid));
            }
        }
        let mut top: Vec<_> = receivers.into_iter().collect();
        top.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
        for ((netns, port), (n, owners)) in top.iter().take(3) {
            let who = if owners.is_empty() {
                "the program".to_owned()
            } else {
                owners.iter().take(2).cloned().collect::<Vec<_>>().join(", ")
            };
            let rmem: Vec<u64> = cx
                .sysctl(*netns, "net.ipv4.tcp_rmem")
                .map(|(v, _)| v.split_whitespace().filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_default();
            let raise = match rmem.as_slice() {
                [min, def, max] if netns.inode != 0 => format!(
                    "; otherwise raise the maximum of tcp_rmem (`{}sysctl -w net.ipv4.tcp_rmem='{min} {def} {}'`)",
                    cx.in_ns(*netns),
                    max.saturating_mul(2)
                ),
                _ => String::new(),
            };
            adv.push(format!(
                "{} the receiver on tcp :{port} ({who}) ran out of receive memory ({n} drops): if it sets SO_RCVBUF, remove the setting (a fixed SO_RCVBUF turns off receive-buffer autotuning) or raise it{raise}; and have it read faster.",
                cx.tag_read(*netns),
            ));
        }
        if cx.input.deltas.iter().any(|d| d.counter("TcpExt.TCPMemoryPressures") > 0) {
            adv.push(format!(
                "TCP reached its host-wide memory limit (TcpExt.TCPMemoryPressures; {}): raise it on the host (`sysctl -w net.ipv4.tcp_mem='LOW PRESSURE HIGH'`, in pages) or find the sockets holding memory (`ss -tm`).",
                cx.sysctl_str(cx.host_id(), "net.ipv4.tcp_mem")
            ));
        }
    }
    cx.add(id, ev, adv);
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

fn cfg_softnet(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let host_ns = cx.host_id();
    ev.push(format!("[host-wide] {}", cx.sysctl_str(host_ns, "net.core.netdev_max_backlog")));
    let cur = cx.sysctl_u64(host_ns, "net.core.netdev_max_backlog").unwrap_or(1000);
    let mut any_rps = false;
    let mut host_off: Vec<String> = Vec::new();
    for c in cx.input.checks {
        let (on, off) = rps_summary(c);
        if !on.is_empty() {
            any_rps = true;
            ev.push(format!("{} RPS enabled on {}", cx.tag_read(c.netns), on.join(", ")));
        }
        if !off.is_empty() && c.is_self {
            ev.push(format!("{} RPS disabled (rps_cpus 0) on {}", cx.tag_read(c.netns), off.join(", ")));
            host_off.clone_from(&off);
        }
    }
    adv.push(format!(
        "Raise the per-CPU backlog: `sysctl -w net.core.netdev_max_backlog={}` (now {cur}; host-wide).",
        cur.saturating_mul(4).max(4096)
    ));
    if !any_rps {
        // A mask of every CPU the softnet counters list.
        let cpus = cx.host().map_or(0, |h| h.softnet.len()).clamp(1, 64);
        let mask = format!("{:x}", u64::MAX >> (64 - cpus));
        let cmds: Vec<String> = host_off
            .iter()
            .take(3)
            .map(|dev| format!("`echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus`"))
            .collect();
        if cmds.is_empty() {
            adv.push(
                "RPS is not enabled: spread receive processing over the CPUs (the rps_cpus mask of each receive queue of the busy device), and check whether the application makes soft interrupts uneven."
                    .to_owned(),
            );
        } else {
            adv.push(format!(
                "RPS is not enabled: spread receive processing over the {cpus} CPUs with {} (each receive queue has its own rps_cpus), and check whether the application makes soft interrupts uneven.",
                cmds.join(", ")
            ));
        }
    }
    cx.add(CauseId::SoftnetBacklogFull, ev, adv);
}

fn cfg_budget(cx: &mut Ctx<'_>) {
    let host_ns = cx.host_id();
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

/// A device without hardware: a veth, TUN/TAP, bridge, dummy, vxlan... (`ip -d` names its
/// link kind; a NIC's driver gives none), or the loopback.
fn is_virtual(x: &crate::host::counters::DeviceStats) -> bool {
    !x.kind.is_empty() || x.name == "lo"
}

/// Ring advice for drops on virtual devices (no ring to enlarge): for a TUN/TAP device, its
/// queue toward the process reading it, and that process. Returns the devices handled (by the
/// namespace their counters were read in).
fn cfg_virtual_rings(cx: &mut Ctx<'_>, id: CauseId) -> BTreeSet<(NetnsId, String)> {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let mut verify = Vec::new();
    let mut done = BTreeSet::new();
    let flows = cx.drop_flows(&["FULL_RING"]);
    let mut drops: BTreeMap<(NetnsId, String), u64> = BTreeMap::new();
    for f in flows.iter().filter(|f| !f.device.is_empty()) {
        *drops.entry((f.flow.netns, f.device.clone())).or_default() += f.count;
    }
    for ((flow_ns, dev), n) in drops {
        let Some((ns, x)) = cx
            .input
            .deltas
            .iter()
            .filter(|d| d.netns.matches(flow_ns))
            .flat_map(|d| d.devices.iter().map(move |x| (d.netns, x)))
            .find(|(_, x)| x.name == dev)
        else {
            continue;
        };
        if !is_virtual(x) {
            continue;
        }
        let tag = cx.tag_read(ns);
        let pre = cx.in_ns(ns);
        done.insert((ns, dev.clone()));
        let longer = x.txqlen.saturating_mul(10).clamp(1000, 10_000);
        if x.kind == "tun" {
            let readers: Vec<String> = cx
                .input
                .checks
                .iter()
                .filter(|c| c.netns.matches(ns))
                .flat_map(|c| &c.tun_readers)
                .filter(|r| r.dev == dev)
                .map(|r| format!("{}[{}]", r.comm, r.pid))
                .collect();
            ev.push(format!(
                "{tag} dev {dev} is a TUN/TAP device (virtual: no NIC ring): the kernel queues what it sends through {dev} for the process reading it, up to txqueuelen {} packets; {n} found the queue full",
                x.txqlen
            ));
            let reader = if readers.is_empty() {
                format!("the process reading {dev} (none holds it open now: it may have exited)")
            } else {
                ev.push(format!("{tag} {dev} is held open by {}", readers.join(", ")));
                format!("the process reading {dev}, {},", readers.join(", "))
            };
            adv.push(format!(
                "{tag} {reader} does not read it fast enough (stalled or too slow): find why it stops reading, or let the queue absorb bursts with `{pre}ip link set {dev} txqueuelen {longer}` (now {}).",
                x.txqlen
            ));
        } else {
            ev.push(format!(
                "{tag} dev {dev} is a virtual device ({}): it has no NIC ring; {n} packets found its queue full",
                if x.kind.is_empty() { "loopback" } else { &x.kind }
            ));
            adv.push(format!(
                "{tag} what drains {dev} does not keep up (for a veth, the receive path of its peer): lengthen the queue with `{pre}ip link set {dev} txqueuelen {longer}` (now {}), or spread the receiving load.",
                x.txqlen
            ));
        }
        verify.push(Verify::fix(format!("{pre}ip -s link show {dev}  # dropped stops increasing")));
    }
    let a = cx.a(id);
    for e in ev {
        a.ev(e);
    }
    for x in adv {
        a.adv(x);
    }
    if !done.is_empty() && a.counter_drops == 0 {
        a.verify = verify;
    }
    done
}

fn cfg_rings(cx: &mut Ctx<'_>, id: CauseId) {
    let virtual_devs = if id == CauseId::NicRingFull { cfg_virtual_rings(cx, id) } else { BTreeSet::new() };
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let devs: BTreeSet<(NetnsId, String)> = cx
        .input
        .deltas
        .iter()
        .flat_map(|d| {
            d.devices
                .iter()
                .filter(|x| x.rx_missed_errors + x.rx_fifo_errors + x.rx_over_errors > 0 || ring_full(x) > 0)
                .filter(|x| !is_virtual(x))
                .map(move |x| (d.netns, x.name.clone()))
        })
        .collect();
    for (ns, dev) in devs.iter().filter(|d| !virtual_devs.contains(d)) {
        let tag = cx.tag_read(*ns);
        let pre = cx.in_ns(*ns);
        let ring = cx
            .input
            .checks
            .iter()
            .filter(|c| c.netns.matches(*ns))
            .flat_map(|c| c.rings.iter())
            .find(|r| &r.dev == dev);
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

fn cfg_qdisc(cx: &mut Ctx<'_>) {
    let mut adv = Vec::new();
    for d in cx.deltas_for(CauseId::QdiscDrop) {
        let tag = cx.tag_read(d.netns);
        let pre = cx.in_ns(d.netns);
        for q in d.qdiscs.iter().filter(|q| q.drops > 0) {
            let txq = d.devices.iter().find(|x| x.name == q.dev).map_or(1000, |x| x.txqlen);
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

/// Whether an address is inside a prefix (`10.200.0.0/24`, `default`, `2001:db8::/64`).
pub(super) fn in_prefix(addr: &str, prefix: &str) -> bool {
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

fn cfg_routing(cx: &mut Ctx<'_>) {
    // The routing cause's reasons, but IPV6DISABLED: no route to add or remove for those.
    let reasons: Vec<&str> =
        taxonomy::info(CauseId::Routing).reasons.iter().copied().filter(|r| *r != "IPV6DISABLED").collect();
    let flows = cx.drop_flows(&reasons);
    // A forwarded packet that hits a blackhole route is dropped at ip_error with NOT_SPECIFIED
    // (assigned here by location): match those flows against the drop routes too.
    let by_location =
        cx.acc.get(&CauseId::Routing).is_some_and(|a| a.events.iter().any(|e| e.reason == "NOT_SPECIFIED"));
    let unspecified = if by_location { cx.drop_flows(&["NOT_SPECIFIED"]) } else { Vec::new() };
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let mut verify = Vec::new();
    // Packets to forward in a namespace whose forwarding is off are dropped as invalid
    // destinations (IP_INADDRERRORS at ip6_forward / ip_error): the route is there, the
    // forwarding sysctl of that namespace is the fix.
    let mut no_forwarding: BTreeSet<(NetnsId, String)> = BTreeSet::new();
    let mut fwd: BTreeMap<(NetnsId, &'static str), u64> = BTreeMap::new();
    for f in flows.iter().filter(|f| f.reason == "IP_INADDRERRORS") {
        let key = if f.flow.family == 6 { "net.ipv6.conf.all.forwarding" } else { "net.ipv4.ip_forward" };
        if matches!(cx.sysctl(f.flow.netns, key), Some((v, false)) if v == "0") {
            *fwd.entry((f.flow.netns, key)).or_default() += f.count;
            no_forwarding.insert((f.flow.netns, f.flow.dst.clone()));
        }
    }
    for ((ns, key), n) in fwd {
        let tag = cx.tag_read(ns);
        let pre = cx.in_ns(ns);
        let v = if key.contains("ipv6") { "IPv6" } else { "IPv4" };
        ev.push(format!(
            "{tag} {key} = 0: this namespace does not forward {v}; {n} packets it was to forward were dropped as invalid destinations"
        ));
        adv.push(format!(
            "{tag} the route exists but {v} forwarding is off in this namespace: turn it on where it routes, `{pre}sysctl -w {key}=1`."
        ));
        verify.push(Verify::fix(format!("{pre}sysctl {key}  # = 1")));
    }
    for c in cx.checks_for(CauseId::Routing) {
        let tag = cx.tag_read(c.netns);
        let pre = cx.in_ns(c.netns);
        for r in &c.drop_routes {
            let hit: Vec<&str> = flows
                .iter()
                .chain(unspecified.iter())
                .filter(|f| {
                    (f.flow.netns.matches(c.netns) || f.flow.netns.inode == 0) && in_prefix(&f.flow.dst, &r.dst)
                })
                .map(|f| f.flow.dst.as_str())
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
            .filter(|f| f.flow.netns.matches(c.netns) || f.flow.netns.inode == 0)
            .filter(|f| !no_forwarding.contains(&(f.flow.netns, f.flow.dst.clone())))
            .filter(|f| !f.flow.dst.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_multicast()))
            .map(|f| f.flow.dst.as_str())
            .take(3)
            .collect();
        for d in dsts {
            adv.push(format!("{tag} check the route to {d}: `{pre}ip route get {d}`, and add the missing route (`{pre}ip route add {d} via GATEWAY`)."));
        }
    }
    let all_forwarding = !no_forwarding.is_empty()
        && flows
            .iter()
            .chain(unspecified.iter())
            .filter(|f| !taxonomy::is_link_local_control(f))
            .filter(|f| !f.flow.dst.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_multicast()))
            .all(|f| no_forwarding.contains(&(f.flow.netns, f.flow.dst.clone())));
    cx.add(CauseId::Routing, ev, adv);
    let a = cx.a(CauseId::Routing);
    if all_forwarding && a.counter_drops <= a.event_drops {
        a.verify = verify;
    }
}

fn cfg_neigh(cx: &mut Ctx<'_>) {
    let flows = cx.drop_flows(&["NEIGH_FAILED", "NEIGH_QUEUEFULL", "NEIGH_DEAD", "NEIGH_CREATEFAIL"]);
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    for c in cx.checks_for(CauseId::NeighborFailure) {
        let tag = cx.tag_read(c.netns);
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

fn cfg_mtu(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    for d in cx.deltas_for(CauseId::MtuFragmentation) {
        let mtus: Vec<String> = d
            .devices
            .iter()
            .filter(|x| x.name != "lo" && x.mtu > 0)
            .map(|x| format!("{} mtu {}", x.name, x.mtu))
            .collect();
        if !mtus.is_empty() {
            ev.push(format!("{} {}", cx.tag_read(d.netns), mtus.join(", ")));
        }
    }
    cx.add(CauseId::MtuFragmentation, ev, Vec::new());
}

/// Drops by a socket's own filter (`SOCKET_FILTER`): the process that owns the socket attached
/// it. Returns whether those are all the cause's drops (no XDP or tc program involved).
fn cfg_socket_filter(cx: &mut Ctx<'_>) -> bool {
    let flows = cx.drop_flows(&["SOCKET_FILTER"]);
    if flows.is_empty() {
        return false;
    }
    let mut by: BTreeMap<(NetnsId, String, u16), u64> = BTreeMap::new();
    for f in &flows {
        *by.entry((f.flow.netns, f.flow.proto.clone(), f.flow.dport)).or_default() += f.count;
    }
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    let mut verify = Vec::new();
    let samples = &cx.input.summary.samples;
    for ((ns, proto, port), n) in by.into_iter().take(5) {
        let tag = cx.tag_read(ns);
        let pre = cx.in_ns(ns);
        // The socket's owner, from the samples (by the socket's inode), else from its flow
        // (which the session gives the owner when one of its samples has it).
        let owner = samples
            .iter()
            .filter(|x| {
                x.reason == "SOCKET_FILTER" && x.flow.netns.matches(ns) && x.flow.dport == port && x.owner_pid != 0
            })
            .map(|x| format!("{}[{}]", x.owner_comm, x.owner_pid))
            .next()
            .or_else(|| {
                // The socket as `ss -p` listed it in its namespace, while it lived.
                let checks = cx.input.checks.iter().filter(|c| c.netns.matches(ns));
                let mut procs = checks.flat_map(|c| {
                    let udp = c.udp_sockets.iter().filter(|u| u.port == port).map(|u| u.process.clone());
                    let tcp = c.listeners.iter().filter(|l| l.port == port).map(|l| l.process.clone());
                    udp.chain(tcp).collect::<Vec<_>>()
                });
                procs.find(|p| !p.is_empty())
            });
        let ss = if proto == "tcp" { "ss -tanp" } else { "ss -uanp" };
        let find = format!("`{pre}{ss} 'sport = :{port}'`");
        let who = owner.as_ref().map_or_else(
            || format!("the process that owns the {proto} socket on port {port} (find it with {find})"),
            |o| format!("process {o}, which owns the {proto} socket on port {port},"),
        );
        ev.push(format!(
            "{tag} {n} packets to {proto} port {port} were rejected by the socket's own filter (SO_ATTACH_FILTER/SO_ATTACH_BPF){}",
            owner.as_ref().map(|o| format!("; the socket is owned by {o}")).unwrap_or_default()
        ));
        adv.push(format!(
            "{tag} {who} attached a socket filter that rejects these packets: fix the filter it passes to setsockopt(SO_ATTACH_FILTER/SO_ATTACH_BPF), or have it detach it (SO_DETACH_FILTER). No XDP or tc program is involved."
        ));
        verify.push(Verify::fix(format!("{pre}{ss} 'sport = :{port}'  # the socket and its owner")));
    }
    let only = cx
        .acc
        .get(&CauseId::BpfOrTcProgram)
        .is_some_and(|a| a.counter_drops == 0 && a.events.iter().all(|e| e.reason == "SOCKET_FILTER"));
    let a = cx.a(CauseId::BpfOrTcProgram);
    for e in ev {
        a.ev(e);
    }
    for x in adv {
        a.adv(x);
    }
    if only {
        a.verify = verify;
    }
    only
}

fn cfg_bpf(cx: &mut Ctx<'_>) {
    if cfg_socket_filter(cx) {
        return;
    }
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    // The programs on the hooks of the tc drops, read while they dropped.
    for t in &cx.input.summary.tc_drops {
        let tag = cx.tag_of(t.netns);
        let progs: Vec<String> = t.programs.iter().map(|p| format!("{} (id {}, {})", p.name, p.id, p.attach)).collect();
        ev.push(format!(
            "{tag} {} {} drops on {} {}: {}{}",
            t.drops,
            t.reason,
            t.device,
            t.hook,
            if progs.is_empty() { String::new() } else { format!("{}; ", progs.join(", ")) },
            t.note
        ));
        if let Some(p) = t.programs.first() {
            adv.push(format!(
                "{tag} see what the program on {} {} drops: `bpftool prog dump xlated id {}`.",
                t.device, t.hook, p.id
            ));
        }
    }
    for x in &cx.input.summary.xdp_drops {
        let tag = cx.tag_of(x.netns);
        let prog =
            x.program.as_ref().map_or_else(String::new, |p| format!(" by {} (id {}, {})", p.name, p.id, p.attach));
        let drops = x.drops.map_or_else(|| "unavailable:".to_owned(), |n| n.to_string());
        ev.push(format!("{tag} {drops} XDP_DROP on {}{prog}: {}", x.device, x.note));
    }
    for d in cx.input.deltas {
        let tag = cx.tag_read(d.netns);
        let pre = cx.in_ns(d.netns);
        for x in d.devices.iter().filter(|x| x.xdp.is_some()) {
            ev.push(format!(
                "{tag} dev {} has an XDP program attached ({})",
                x.name,
                x.xdp.clone().unwrap_or_default()
            ));
            adv.push(format!("{tag} inspect the XDP program on {}: `{pre}bpftool net show dev {}`.", x.name, x.name));
        }
        for q in d.qdiscs.iter().filter(|q| q.runs_tc()) {
            ev.push(format!("{tag} dev {} has a {} qdisc (tc filters/BPF attached)", q.dev, q.kind));
            adv.push(format!(
                "{tag} list the tc programs on {}: `{pre}tc filter show dev {} ingress; {pre}tc filter show dev {} egress`.",
                q.dev, q.dev, q.dev
            ));
        }
    }
    cx.add(CauseId::BpfOrTcProgram, ev, adv);
}

fn cfg_ifdown(cx: &mut Ctx<'_>) {
    let mut ev = Vec::new();
    let mut adv = Vec::new();
    // The devices the drops went to: DEV_READY, and QDISC_DROP (a down device's noop qdisc).
    let flows = cx.drop_flows(&["DEV_READY", "QDISC_DROP"]);
    let flow_devs: BTreeSet<(NetnsId, String)> =
        flows.iter().filter(|f| !f.device.is_empty()).map(|f| (f.flow.netns, f.device.clone())).collect();
    let flow_ifs: BTreeSet<(NetnsId, u32)> =
        flows.iter().filter(|f| f.ifindex != 0).map(|f| (f.flow.netns, f.ifindex)).collect();
    for d in cx.input.deltas {
        let tag = cx.tag_read(d.netns);
        let pre = cx.in_ns(d.netns);
        for x in &d.devices {
            let dropped_to = flow_devs.iter().any(|(ns, name)| ns.matches(d.netns) && *name == x.name);
            let sent_to = flow_ifs.iter().any(|(ns, ifindex)| ns.matches(d.netns) && *ifindex == x.ifindex);
            let involved = dropped_to || (sent_to && !(x.up && x.lower_up)) || x.carrier_changes > 0;
            if !involved && (x.up && x.lower_up || x.name == "lo" || x.operstate.is_empty()) {
                continue;
            }
            if !involved && flow_devs.is_empty() && flow_ifs.is_empty() {
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

fn cfg_csum(cx: &mut Ctx<'_>) {
    let mut adv = Vec::new();
    for d in cx.input.deltas {
        for x in d.devices.iter().filter(|x| x.rx_crc_errors + x.rx_frame_errors > 0) {
            adv.push(format!(
                "{} CRC/frame errors on {}: check and replace the cable/transceiver and the switch port, then watch `ethtool -S {} | grep -i crc`.",
                cx.tag_read(d.netns),
                x.name,
                x.name
            ));
        }
    }
    cx.add(CauseId::ChecksumError, Vec::new(), adv);
}
