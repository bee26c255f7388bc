//! Test fixtures: a deterministic capture whose cumulative updates grow with time.
use super::{CauseView, CounterRow, State, Update};
use crate::diagnose::CauseId;
use crate::model::{
    DetailStats, DeviceCount, DropReason, Flow, FlowCount, FlowTableStats, LocationCount, NetnsId, Packet, ProbeStatus,
    ReasonCount, RetransCount, Retransmits, Sample, Summary,
};

/// Drops in second `i` for a row with base rate `rate`, varying so trends have a shape.
fn per_sec(rate: u64, i: u64, phase: u64) -> u64 {
    const WAVE: [u64; 8] = [2, 3, 4, 6, 8, 5, 3, 1];
    rate * WAVE[((i + phase) % 8) as usize] / 4
}

/// Cumulative drops at time `t` (whole seconds).
fn cum(rate: u64, t: u64, phase: u64) -> u64 {
    (1..=t).map(|i| per_sec(rate, i, phase)).sum()
}

fn stack(frames: &[&str]) -> Vec<String> {
    frames.iter().map(ToString::to_string).collect()
}

#[expect(
    clippy::too_many_arguments,
    reason = "a fixture flow is one call with every field it sets, read like a table row"
)]
fn flow(
    proto: &str,
    family: u8,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    netns: u32,
    ifindex: u32,
    device: &str,
    reason: &str,
    code: u32,
    count: u64,
    process: &str,
) -> FlowCount {
    FlowCount {
        flow: Flow {
            proto: proto.into(),
            family,
            src: src.into(),
            sport,
            dst: dst.into(),
            dport,
            netns: NetnsId { inode: netns, cookie: 0 },
        },
        netns_name: String::new(),
        ifindex,
        device: device.into(),
        reason: DropReason::new(code, reason),
        location: String::new(),
        count,
        // "comm[pid]" as the fixtures write it.
        comm: process.split('[').next().unwrap_or_default().into(),
        pid: process.split('[').nth(1).and_then(|p| p.trim_end_matches(']').parse().ok()).unwrap_or(0),
        chain: String::new(),
        nat_original: String::new(),
    }
}

pub(super) const NS_HOST: u32 = 4026531840;
pub(super) const NS_TEST: u32 = 4026532301;

#[expect(
    clippy::too_many_arguments,
    reason = "a fixture sample is one call with every field it sets, read like a table row"
)]
fn sample(
    t_ms: u64,
    reason: &str,
    symbol: &str,
    proto: &str,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    netns: u32,
    ifindex: u32,
    comm: &str,
    pid: u32,
    cpu: u32,
) -> Sample {
    Sample {
        t_ns: t_ms * 1_000_000,
        reason: DropReason::new(0, reason),
        symbol: symbol.into(),
        flow: Flow {
            proto: proto.into(),
            family: if src.contains(':') { 6 } else { 4 },
            src: src.into(),
            sport,
            dst: dst.into(),
            dport,
            netns: NetnsId { inode: netns, cookie: 0 },
        },
        netns_name: String::new(),
        ifindex,
        pid,
        tid: pid,
        comm: comm.into(),
        cpu,
        skb_len: 84,
        has_rx_sk: false,
        sk_ino: 0,
        owner_pid: 0,
        owner_comm: String::new(),
        tcp_state: String::new(),
        tcp_flags: String::new(),
        stack_id: 1,
        data_start: "network".into(),
        data: Packet::from_hex("4500005400004000401126a80a0000010a000002a0120035004000000000").unwrap_or_default(),
        chain: String::new(),
        nat_original: String::new(),
    }
}

/// The summary at capture time `t` seconds (t >= 0).
#[expect(clippy::cast_precision_loss, reason = "test fixture: small counts and times, exact in f64")]
pub(super) fn summary_at(t: u64) -> Summary {
    let udp_nosock = cum(40, t, 0);
    let tcp_nosock = cum(6, t, 3);
    let rcvbuf = cum(25, t, 5);
    let nf = cum(4, t, 1);
    let otherhost = cum(2, t, 6);
    let qdisc = if t >= 10 { cum(3, t - 9, 2) } else { 0 };
    // Split the UDP NO_SOCKET drops over two stacks.
    let udp_a = udp_nosock * 3 / 4;
    let udp_b = udp_nosock - udp_a;
    let total = udp_nosock + tcp_nosock + rcvbuf + nf + otherhost + qdisc;
    let with_detail = total / 3;
    let mut locations = vec![
        LocationCount {
            symbol: "__udp4_lib_rcv+0x8b2".into(),
            address: 0xffffffff81c3e4b2,
            reason: DropReason::new(2, "NO_SOCKET"),
            count: udp_a,
            stack: stack(&[
                "kfree_skb_reason+0x4f",
                "__udp4_lib_rcv+0x8b2",
                "ip_protocol_deliver_rcu+0x3c",
                "ip_local_deliver_finish+0x77",
                "__netif_receive_skb_one_core+0x89",
                "process_backlog+0x91",
                "__napi_poll+0x2b",
                "net_rx_action+0x2fc",
            ]),
        },
        LocationCount {
            symbol: "__udp4_lib_rcv+0x8b2".into(),
            address: 0xffffffff81c3e4b2,
            reason: DropReason::new(2, "NO_SOCKET"),
            count: udp_b,
            stack: stack(&[
                "kfree_skb_reason+0x4f",
                "__udp4_lib_rcv+0x8b2",
                "ip_protocol_deliver_rcu+0x3c",
                "ip_local_deliver_finish+0x77",
                "ip_sublist_rcv_finish+0x6f",
                "ip_list_rcv+0x116",
            ]),
        },
        LocationCount {
            symbol: "__udp_enqueue_schedule_skb+0x1d3".into(),
            address: 0xffffffff81c3a1d3,
            reason: DropReason::new(5, "SOCKET_RCVBUFF"),
            count: rcvbuf,
            stack: stack(&[
                "kfree_skb_reason+0x4f",
                "udp_queue_rcv_one_skb+0x1e8",
                "udp_unicast_rcv_skb+0x76",
                "__udp4_lib_rcv+0x1a4",
            ]),
        },
        LocationCount {
            symbol: "tcp_v4_rcv+0x1a2".into(),
            address: 0xffffffff81c2b1a2,
            reason: DropReason::new(2, "NO_SOCKET"),
            count: tcp_nosock,
            stack: Vec::new(),
        },
        LocationCount {
            symbol: "nf_hook_slow+0xb6".into(),
            address: 0xffffffff81bf20b6,
            reason: DropReason::new(8, "NETFILTER_DROP"),
            count: nf,
            stack: Vec::new(),
        },
        LocationCount {
            symbol: "ip_rcv_core+0x2a5".into(),
            address: 0xffffffff81c0a2a5,
            reason: DropReason::new(16, "OTHERHOST"),
            count: otherhost,
            stack: Vec::new(),
        },
    ];
    if qdisc > 0 {
        locations.push(LocationCount {
            symbol: "__dev_queue_xmit+0x7c1".into(),
            address: 0xffffffff81b9a7c1,
            reason: DropReason::new(41, "QDISC_DROP"),
            count: qdisc,
            stack: Vec::new(),
        });
    }
    let reasons = vec![
        ReasonCount {
            reason: DropReason::new(2, "NO_SOCKET"),
            count: udp_nosock + tcp_nosock,
            description: "no socket found for the packet".into(),
        },
        ReasonCount {
            reason: DropReason::new(5, "SOCKET_RCVBUFF"),
            count: rcvbuf,
            description: "socket receive buffer full".into(),
        },
        ReasonCount {
            reason: DropReason::new(8, "NETFILTER_DROP"),
            count: nf,
            description: "dropped by netfilter".into(),
        },
    ];
    let flows = vec![
        flow(
            "udp",
            4,
            "10.0.0.1",
            41234,
            "10.0.0.2",
            53,
            NS_TEST,
            3,
            "veth0",
            "NO_SOCKET",
            2,
            udp_nosock * 2 / 3,
            "dig[4242]",
        ),
        flow(
            "udp",
            4,
            "10.0.0.1",
            41235,
            "10.0.0.2",
            5353,
            NS_TEST,
            3,
            "veth0",
            "NO_SOCKET",
            2,
            udp_nosock - udp_nosock * 2 / 3,
            "",
        ),
        flow(
            "udp",
            4,
            "192.168.1.10",
            5353,
            "224.0.0.251",
            5353,
            NS_HOST,
            2,
            "eth0",
            "SOCKET_RCVBUFF",
            5,
            rcvbuf,
            "avahi-daemon[812]",
        ),
        flow(
            "tcp",
            4,
            "10.0.0.1",
            50522,
            "10.0.0.2",
            8080,
            NS_TEST,
            3,
            "veth0",
            "NO_SOCKET",
            2,
            tcp_nosock,
            "curl[4300]",
        ),
        flow("tcp", 6, "2001:db8::1", 443, "2001:db8::2", 39000, NS_HOST, 2, "eth0", "NETFILTER_DROP", 8, nf, ""),
        flow("icmp", 4, "10.0.0.9", 0, "10.0.0.7", 0, NS_HOST, 2, "", "OTHERHOST", 16, otherhost, ""),
    ];
    let mut samples = Vec::new();
    if t > 0 {
        samples.push(sample(
            500,
            "NO_SOCKET",
            "__udp4_lib_rcv+0x8b2",
            "udp",
            "10.0.0.1",
            41234,
            "10.0.0.2",
            53,
            NS_TEST,
            3,
            "dig",
            4242,
            1,
        ));
        samples.push(sample(
            700,
            "SOCKET_RCVBUFF",
            "__udp_enqueue_schedule_skb+0x1d3",
            "udp",
            "192.168.1.10",
            5353,
            "224.0.0.251",
            5353,
            NS_HOST,
            2,
            "swapper/0",
            0,
            0,
        ));
    }
    if t > 2 {
        samples.push(sample(
            2300,
            "NO_SOCKET",
            "__udp4_lib_rcv+0x8b2",
            "udp",
            "10.0.0.1",
            41235,
            "10.0.0.2",
            5353,
            NS_TEST,
            3,
            "",
            0,
            3,
        ));
        samples.push(sample(
            2400,
            "NO_SOCKET",
            "tcp_v4_rcv+0x1a2",
            "tcp",
            "10.0.0.1",
            50522,
            "10.0.0.2",
            8080,
            NS_TEST,
            3,
            "curl",
            4300,
            2,
        ));
        samples.push(sample(
            2600,
            "NETFILTER_DROP",
            "nf_hook_slow+0xb6",
            "tcp",
            "2001:db8::1",
            443,
            "2001:db8::2",
            39000,
            NS_HOST,
            2,
            "",
            0,
            0,
        ));
    }
    Summary {
        hostname: "lab-7".into(),
        kernel: "6.8.0-45-generic".into(),
        started: "2025-01-15T10:20:30Z".into(),
        duration_secs: t as f64,
        total_drops: total,
        filter: Some(crate::model::FilterInfo {
            expr: "not port 22".into(),
            drops_filtered_out: 3 * t,
            retransmits_filtered_out: 0,
            scope: Default::default(),
        }),
        lost_events: total / 40,
        drops_per_sec: if t > 0 { total as f64 / t as f64 } else { 0.0 },
        drops_with_detail: with_detail,
        drops_without_detail: total - with_detail,
        reasons,
        locations,
        flows,
        devices: vec![
            DeviceCount {
                ifindex: 2,
                name: "eth0".into(),
                netns: NS_HOST,
                tx_packets: 100 * t,
                drops: 0,
                tx_unavailable: false,
            },
            DeviceCount {
                ifindex: 3,
                name: "veth0".into(),
                netns: NS_TEST,
                tx_packets: 10 * t,
                drops: 0,
                tx_unavailable: false,
            },
        ],
        retransmits: Retransmits {
            total: t * 2,
            flows: vec![RetransCount {
                flow: Flow::tcp(
                    "10.0.0.1".into(),
                    50522,
                    "10.0.0.2".into(),
                    8080,
                    NetnsId { inode: NS_TEST, cookie: 0 },
                ),
                count: t * 2,
            }],
        },
        probes: vec![
            ProbeStatus { name: "skb:kfree_skb".into(), attach: "tp_btf".into(), active: true, note: String::new() },
            ProbeStatus {
                name: "net:net_dev_queue".into(),
                attach: "tracepoint".into(),
                active: true,
                note: String::new(),
            },
            ProbeStatus {
                name: "tcp:tcp_retransmit_skb".into(),
                attach: "tracepoint".into(),
                active: true,
                note: String::new(),
            },
            ProbeStatus {
                name: "skb:consume_skb".into(),
                attach: String::new(),
                active: false,
                note: "not requested".into(),
            },
        ],
        detail: DetailStats {
            delivered: with_detail,
            lost_budget: total / 50,
            lost_ringbuf: total / 40 - total / 50,
            budget_per_sec: Some(1000),
        },
        flow_table: FlowTableStats { capacity: 4096, live: 6, evicted: 0, drops_not_in_flows: 0 },
        warnings: Vec::new(),
        samples,
        namespaces: Vec::new(),
        netns_drops: Vec::new(),
        resets: crate::model::Resets::default(),
        tc_drops: Vec::new(),
        xdp_drops: Vec::new(),
        xdp_exceptions: Vec::new(),
        firewall: Vec::new(),
        hw_traps: crate::model::HwTraps::default(),
    }
}

/// Causes at time `t`, consistent with [`summary_at`].
pub(super) fn causes_at(t: u64) -> Vec<CauseView> {
    vec![
        CauseView {
            id: CauseId::NoListener,
            title: "UDP to a port with no socket".into(),
            drops: cum(40, t, 0),
            evidence: vec![
                "NO_SOCKET at __udp4_lib_rcv: no socket bound to 10.0.0.2:53, :5353".into(),
                "sender dig[4242] in netns 4026532301".into(),
            ],
            advice: vec![
                "Start the service or fix the destination port".into(),
                "Check `ss -ulpn` in the receiving netns".into(),
            ],
            reasons: vec!["NO_SOCKET".into()],
            netns: vec![NS_TEST],
        },
        CauseView {
            id: CauseId::UdpRcvbufFull,
            title: "UDP receive buffer full".into(),
            drops: cum(25, t, 5),
            evidence: vec!["SOCKET_RCVBUFF on 224.0.0.251:5353 (avahi-daemon)".into()],
            advice: vec![
                "Raise SO_RCVBUF / net.core.rmem_max".into(),
                "Make the reader faster or add readers (SO_REUSEPORT)".into(),
            ],
            reasons: vec!["SOCKET_RCVBUFF".into()],
            netns: vec![NS_HOST],
        },
        CauseView {
            id: CauseId::FirewallDrop,
            title: "Dropped by a netfilter rule".into(),
            drops: cum(4, t, 1),
            evidence: vec!["NETFILTER_DROP in nf_hook_slow, tcp 443".into()],
            advice: vec!["Find the rule: nft list ruleset / iptables-save -c".into()],
            reasons: vec!["NETFILTER_DROP".into()],
            netns: vec![NS_HOST],
        },
    ]
}

/// Counters at time `t`.
pub(super) fn counters_at(t: u64) -> Vec<CounterRow> {
    vec![
        CounterRow { scope: "eth0 (netns host)".into(), counter: "rx_missed_errors".into(), total: cum(12, t, 4) },
        CounterRow { scope: "eth0 (netns host)".into(), counter: "rx_fifo_errors".into(), total: t / 3 },
        CounterRow { scope: "cpu0".into(), counter: "softnet dropped".into(), total: cum(3, t, 2) },
        CounterRow { scope: "cpu1".into(), counter: "time_squeeze".into(), total: cum(1, t, 7) },
        CounterRow { scope: "cpu2".into(), counter: "softnet dropped".into(), total: 0 },
    ]
}

pub(super) fn update_at(t: u64) -> Update {
    Update { summary: summary_at(t), causes: causes_at(t), counters: counters_at(t) }
}

/// A state that has ingested updates for t = 0..=`secs`.
pub(super) fn state_after(secs: u64) -> State {
    let mut s = State::new();
    for t in 0..=secs {
        s.ingest(update_at(t));
    }
    s
}

/// [`update_at`] with drops of a tc program (`TC_INGRESS` on eth0) and of an XDP program
/// (`XDP_DROP` on veth1 of the test namespace), each named in the summary.
pub(super) fn update_with_programs_at(t: u64) -> Update {
    let mut u = update_at(t);
    let s = &mut u.summary;
    let (tc, xdp) = (cum(7, t, 0), cum(11, t, 0));
    s.flows.push(flow("udp", 4, "198.51.100.7", 5353, "10.0.0.2", 9999, NS_HOST, 2, "eth0", "TC_INGRESS", 69, tc, ""));
    s.flows
        .push(flow("udp", 4, "10.9.0.1", 4000, "10.9.0.2", 7777, NS_TEST, 5, "veth1", "XDP_DROP", 0x3_0000, xdp, ""));
    s.flows.sort_by_key(|f| std::cmp::Reverse(f.count));
    let program =
        |id: u32, name: &str, attach: &str| crate::model::TcProgram { id, name: name.into(), attach: attach.into() };
    s.tc_drops.push(crate::model::TcDrops {
        netns: NetnsId { inode: NS_HOST, cookie: 0 },
        ifindex: 2,
        device: "eth0".into(),
        hook: "ingress".into(),
        reason: "TC_INGRESS".into(),
        drops: tc,
        programs: vec![program(412, "drop_port", "tcx ingress")],
        note: "the only BPF program on the hook".into(),
    });
    s.xdp_drops.push(crate::model::XdpDrops {
        netns: NetnsId { inode: NS_TEST, cookie: 0 },
        ifindex: 5,
        device: "veth1".into(),
        drops: Some(xdp),
        program: Some(program(413, "xdp_ddos", "xdp native")),
        note: "the XDP program attached to the device".into(),
    });
    u
}
