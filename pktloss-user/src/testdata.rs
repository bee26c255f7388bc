//! Test data shared by the unit tests: one realistic capture (summary with reasons, locations,
//! stacks, flows, devices, retransmits, probes and samples with packet bytes; a diagnosis; the
//! capture file around them), built from plain values.
use serde_json::json;

/// Whether a test that needs `what` (root, the kernel's BTF, tracefs, a tool) can run: under
/// `CI=true` a missing one fails the test, elsewhere the test is skipped with a printed reason.
/// The one gate of every unit test that needs more than the code.
pub(crate) fn available(test: &str, what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: CI=true but {what} is missing");
    eprintln!("skipping {test}: needs {what}");
    false
}

use crate::{
    capture::{CaptureFile, Interface},
    diagnose::{Cause, CauseId, Diagnosis, Explained},
    model::*,
};

/// Adds the trap reports and devlink statistics of the netdevsim run in the 6.1 guest
/// (`tests/tests/sources.rs`, `matrix_netdevsim`: `blackhole_route` set to trap, the port up for
/// a second; netdevsim reports its exception and control traps too) to `s`, with the tracepoint
/// attached or, as on a kernel without it, the statistics alone.
pub(crate) fn add_netdevsim_traps(s: &mut Summary, tracepoint: bool) {
    s.hw_traps = serde_json::from_str(include_str!("host/counters/fixtures/netdevsim_hw_traps.json")).expect("fixture");
    s.probes.push(ProbeStatus {
        name: "devlink:devlink_trap_report".into(),
        attach: "tracepoint".into(),
        active: tracepoint,
        note: String::new(),
    });
    if !tracepoint {
        s.hw_traps.reported.clear();
    }
}

pub(crate) fn ipv4_udp() -> Vec<u8> {
    let mut p = vec![
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, // ver/ihl .. proto, csum
        10, 0, 0, 1, // src
        10, 0, 0, 2, // dst
        0x9c, 0x40, 0x27, 0x0f, 0x00, 0x0c, 0x00, 0x00, // udp 40000 -> 9999, len 12
    ];
    p.extend_from_slice(b"ping");
    p
}

pub(crate) fn ipv6_tcp() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0x00, 0x14, 6, 64];
    p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[
        0x01, 0xbb, 0xc7, 0x38, // 443 -> 51000
        0, 0, 0, 1, 0, 0, 0, 0, // seq, ack
        0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0, // doff 5, ACK, window, csum, urg
    ]);
    p
}

pub(crate) fn ether_ipv4() -> Vec<u8> {
    let mut p = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    p.extend(ipv4_udp());
    p
}

pub(crate) const NS: u32 = 4026532291;

pub(crate) fn sample_capture() -> CaptureFile {
    let sample = |t_ns,
                  reason: &str,
                  code,
                  symbol: &str,
                  proto: &str,
                  family,
                  src: &str,
                  sport,
                  dst: &str,
                  dport,
                  ifindex,
                  start: &str,
                  data: Vec<u8>| Sample {
        t_ns,
        reason: DropReason::new(code, reason),
        symbol: symbol.into(),
        flow: Flow {
            proto: proto.into(),
            family,
            src: src.into(),
            sport,
            dst: dst.into(),
            dport,
            netns: NetnsId { inode: NS, cookie: 4097 },
        },
        netns_name: "ns1".into(),
        ifindex,
        pid: 1234,
        tid: 1234,
        comm: "nc".into(),
        cpu: 1,
        skb_len: u32::try_from(data.len()).unwrap_or(0) + 100,
        has_rx_sk: start == "network" && proto == "tcp",
        sk_ino: if proto == "tcp" { 81_234 } else { 0 },
        owner_pid: if proto == "tcp" { 4321 } else { 0 },
        owner_comm: if proto == "tcp" { "nginx".into() } else { String::new() },
        tcp_state: if proto == "tcp" { "ESTABLISHED".into() } else { String::new() },
        tcp_flags: if proto == "tcp" { "ACK".into() } else { String::new() },
        stack_id: 3,
        data_start: start.into(),
        data: Packet::new(data),
        chain: String::new(),
        nat_original: String::new(),
    };
    let summary = Summary {
        hostname: "testhost".into(),
        kernel: "6.8.0-test".into(),
        started: "2024-05-01T10:00:00Z".into(),
        duration_secs: 30.0,
        total_drops: 3,
        filter: Some(FilterInfo {
            expr: "udp or tcp and not port 22".into(),
            drops_filtered_out: 12,
            retransmits_filtered_out: 1,
            scope: Default::default(),
        }),
        lost_events: 0,
        drops_per_sec: 0.1,
        drops_with_detail: 3,
        drops_without_detail: 0,
        reasons: vec![
            ReasonCount { reason: DropReason::new(3, "NO_SOCKET"), count: 2, description: "no socket found".into() },
            ReasonCount { reason: DropReason::new(10, "NETFILTER_DROP"), count: 1, description: String::new() },
        ],
        locations: vec![
            LocationCount {
                symbol: "__udp4_lib_rcv+0x5e3".into(),
                address: 0xffff_ffff_81a0_0000,
                reason: DropReason::new(3, "NO_SOCKET"),
                count: 2,
                stack: vec![
                    "kfree_skb_reason+0x0".into(),
                    "__udp4_lib_rcv+0x5e3".into(),
                    "ip_protocol_deliver_rcu+0x3c".into(),
                ],
            },
            LocationCount {
                symbol: "nf_hook_slow+0x91".into(),
                address: 1,
                reason: DropReason::new(10, "NETFILTER_DROP"),
                count: 1,
                stack: vec![],
            },
        ],
        flows: vec![FlowCount {
            flow: Flow {
                proto: "udp".into(),
                family: 4,
                src: "10.0.0.1".into(),
                sport: 40000,
                dst: "10.0.0.2".into(),
                dport: 9999,
                netns: NetnsId { inode: NS, cookie: 4097 },
            },
            netns_name: "ns1".into(),
            ifindex: 2,
            device: "veth0".into(),
            reason: DropReason::new(3, "NO_SOCKET"),
            location: String::new(),
            count: 2,
            comm: "nc".into(),
            pid: 1234,
            chain: String::new(),
            nat_original: String::new(),
        }],
        devices: vec![DeviceCount {
            ifindex: 2,
            name: "veth0".into(),
            netns: NS,
            tx_packets: 98,
            drops: 2,
            tx_unavailable: false,
        }],
        retransmits: Retransmits {
            total: 1,
            flows: vec![RetransCount {
                flow: Flow::tcp("fd00::1".into(), 443, "fd00::2".into(), 51000, NetnsId { inode: NS, cookie: 0 }),
                count: 1,
            }],
        },
        probes: vec![
            ProbeStatus { name: "skb:kfree_skb".into(), attach: "tp_btf".into(), active: true, note: String::new() },
            ProbeStatus {
                name: "tcp:tcp_drop".into(),
                attach: "kprobe".into(),
                active: false,
                note: "symbol not found".into(),
            },
        ],
        detail: DetailStats { delivered: 3, lost_budget: 0, lost_ringbuf: 0, budget_per_sec: Some(1000) },
        flow_table: FlowTableStats { capacity: 4096, live: 1, evicted: 0, drops_not_in_flows: 0 },
        warnings: vec![],
        firewall: vec![],
        hw_traps: HwTraps::default(),
        netns_drops: vec![
            NetnsDropCount {
                netns: NetnsId { inode: NS, cookie: 4097 },
                ifindex: 2,
                reason: DropReason::new(3, "NO_SOCKET"),
                count: 2,
            },
            NetnsDropCount {
                netns: NetnsId { inode: NS, cookie: 4097 },
                ifindex: 2,
                reason: DropReason::new(10, "NETFILTER_DROP"),
                count: 1,
            },
        ],
        resets: Resets::default(),
        tc_drops: Vec::new(),
        xdp_drops: Vec::new(),
        xdp_exceptions: Vec::new(),
        namespaces: vec![NamespaceInfo {
            netns: NetnsId { inode: NS, cookie: 0 },
            label: "ns1".into(),
            ip_netns: "ns1".into(),
            pod: Some(Pod {
                uid: "5d1c2f3a-4b5c-6d7e-8f90-123456789abc".into(),
                namespace: "shop".into(),
                name: "cart-7f9".into(),
            }),
            containers: vec![Container {
                runtime: "containerd".into(),
                id: "3f2a9c1b2d4e".into(),
                name: "cart".into(),
            }],
            containers_omitted: 1,
            ..NamespaceInfo::default()
        }],
        samples: vec![
            sample(
                1_000,
                "NO_SOCKET",
                3,
                "__udp4_lib_rcv+0x5e3",
                "udp",
                4,
                "10.0.0.1",
                40000,
                "10.0.0.2",
                9999,
                2,
                "network",
                ipv4_udp(),
            ),
            sample(
                2_500_000_000,
                "NETFILTER_DROP",
                10,
                "nf_hook_slow+0x91",
                "tcp",
                6,
                "fd00::1",
                443,
                "fd00::2",
                51000,
                3,
                "network",
                ipv6_tcp(),
            ),
            sample(
                3_000_000_000,
                "NO_SOCKET",
                3,
                "__udp4_lib_rcv+0x5e3",
                "udp",
                4,
                "10.0.0.1",
                40000,
                "10.0.0.2",
                9999,
                2,
                "data",
                ether_ipv4(),
            ),
        ],
    };
    CaptureFile {
        tool_version: "0.1.0".into(),
        created: "2024-05-01T10:00:31Z".into(),
        command_line: vec![
            "pktloss".into(),
            "capture".into(),
            "--duration".into(),
            "30s".into(),
            "-o".into(),
            "incident.pktloss".into(),
        ],
        options: json!({"duration_secs": 30, "snaplen": 128}),
        stopped_by: "duration".into(),
        hostname: "testhost".into(),
        kernel: "6.8.0-test".into(),
        kernel_version: "#1 SMP PREEMPT_DYNAMIC".into(),
        arch: "x86_64".into(),
        boot_id: "0f2c1d3e-1111-2222-3333-444455556666".into(),
        drop_reasons: vec![
            DropReason { code: 3, name: "NO_SOCKET".into() },
            DropReason { code: 10, name: "NETFILTER_DROP".into() },
        ],
        interfaces: vec![
            Interface {
                netns: NS,
                netns_name: "ns1".into(),
                ifindex: 2,
                name: "veth0".into(),
                arphrd: Some(1),
                mtu: Some(1500),
                mac: "02:00:00:00:00:02".into(),
            },
            Interface {
                netns: NS,
                netns_name: "ns1".into(),
                ifindex: 3,
                name: "veth1".into(),
                arphrd: Some(1),
                mtu: Some(1500),
                mac: String::new(),
            },
        ],
        summary,
        diagnosis: Diagnosis {
            causes: vec![
                Cause {
                    id: CauseId::NoListener,
                    title: "UDP datagrams to a port nobody listens on".into(),
                    drops: 2,
                    evidence: vec!["NO_SOCKET at __udp4_lib_rcv+0x5e3: 2 drops".into(), "Udp NoPorts +2".into()],
                    advice: vec!["start the service on udp/9999 or fix the client's destination port".into()],
                    ..Cause::default()
                },
                Cause {
                    id: CauseId::FirewallDrop,
                    title: "Dropped by a firewall rule".into(),
                    drops: 1,
                    evidence: vec!["events: 1 drops with reason NETFILTER_DROP at nf_hook_slow+0x91".into()],
                    advice: vec!["check `nft list ruleset`".into()],
                    ..Cause::default()
                },
            ],
            explained: vec![
                Explained { cause: CauseId::NoListener, reason: "NO_SOCKET".into(), drops: 2, ..Explained::default() },
                Explained {
                    cause: CauseId::FirewallDrop,
                    reason: "NETFILTER_DROP".into(),
                    drops: 1,
                    ..Explained::default()
                },
            ],
            ..Diagnosis::default()
        },
        ..CaptureFile::default()
    }
}
