//! pktloss's filters against tcpdump's on the same packets: a table of expressions, each
//! either refused by both or selecting the same packets of a pcap file written here.
//!
//! pktloss's side is the kernel's walk ([`pktloss_common::Filter::passes`]) on the words the
//! kernel programs build from each packet (`flow_key` in pktloss-ebpf, mirrored by
//! [`flow_key`] below). tcpdump's side is `tcpdump -r FILE -nn -tt EXPR`: each packet's
//! timestamp is its number.
//!
//! Left out, as the flow key does not have them: VLAN tags and other link-layer words,
//! IPv6 extension headers (the key's protocol is the first next-header), and the addresses
//! of ARP packets (tcpdump's `host`/`net` also match ARP's sender and target; pktloss's
//! never select ARP, so the ARP packet is not compared for expressions with addresses).
use std::{
    fmt::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
};

use pktloss_common::FlowKey;

use super::{
    FilterSpec,
    tests::{Fixed, words},
};

/// Packets as on the wire: ethertype and the bytes after the Ethernet header.
struct Packet {
    ethertype: u16,
    l3: Vec<u8>,
}

fn v4(s: &str) -> [u8; 4] {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.octets(),
        _ => panic!("not IPv4: {s}"),
    }
}

fn v6(s: &str) -> [u8; 16] {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => a.octets(),
        _ => panic!("not IPv6: {s}"),
    }
}

/// The first transport bytes: ports (TCP, UDP, SCTP) or type and code (ICMP), and 16 more.
fn l4(sport_or_type: u16, dport_or_code: u16, icmp: bool) -> Vec<u8> {
    let mut b = if icmp {
        vec![sport_or_type as u8, dport_or_code as u8, 0, 0]
    } else {
        let mut b = sport_or_type.to_be_bytes().to_vec();
        b.extend(dport_or_code.to_be_bytes());
        b
    };
    b.extend([0u8; 16]);
    b
}

/// An IPv4 packet; `options` words of IP options, `frag` the fragment offset (in 8 bytes).
fn ip4(proto: u8, src: &str, dst: &str, payload: &[u8], options: usize, frag: u16) -> Packet {
    let ihl = 5 + options;
    let total = u16::try_from(4 * ihl + payload.len()).expect("small");
    let mut p = vec![0x40 | ihl as u8, 0];
    p.extend(total.to_be_bytes());
    p.extend([0, 1]);
    p.extend(frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(v4(src));
    p.extend(v4(dst));
    p.extend(std::iter::repeat_n(1u8, 4 * options)); // NOPs
    p.extend(payload);
    Packet { ethertype: 0x0800, l3: p }
}

fn ip6(next: u8, src: &str, dst: &str, payload: &[u8]) -> Packet {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend(u16::try_from(payload.len()).expect("small").to_be_bytes());
    p.extend([next, 64]);
    p.extend(v6(src));
    p.extend(v6(dst));
    p.extend(payload);
    Packet { ethertype: 0x86dd, l3: p }
}

/// An ARP request: who has `target`, tell `sender`.
fn arp(sender: &str, target: &str) -> Packet {
    let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1];
    p.extend(v4(sender));
    p.extend([0; 6]);
    p.extend(v4(target));
    Packet { ethertype: 0x0806, l3: p }
}

fn packets() -> Vec<Packet> {
    let udp = |s, d| l4(s, d, false);
    vec![
        /* 0 */ ip4(17, "10.0.0.1", "10.0.0.2", &udp(5000, 53), 0, 0),
        /* 1 */ ip4(17, "10.0.0.2", "10.0.0.1", &udp(53, 5000), 0, 0),
        /* 2 */ ip4(6, "10.0.0.1", "192.168.1.1", &udp(40000, 80), 0, 0),
        /* 3 */ ip4(6, "192.168.1.1", "10.0.0.1", &udp(80, 40000), 0, 0),
        /* 4 */ ip4(6, "10.1.2.3", "172.16.0.5", &udp(22, 60022), 0, 0),
        /* 5 */ ip4(1, "10.0.0.1", "192.168.1.1", &l4(8, 0, true), 0, 0),
        /* 6 */ ip4(132, "10.0.0.3", "10.0.0.4", &udp(9, 2905), 0, 0),
        /* 7 */ ip4(17, "192.168.1.1", "10.0.0.2", &udp(123, 123), 0, 0),
        // A later fragment: its first bytes read as ports 53 -> 53, which they are not.
        /* 8 */
        ip4(17, "10.0.0.1", "10.0.0.2", &udp(53, 53), 0, 185),
        /* 9 */ ip4(17, "10.0.0.5", "10.0.0.6", &udp(67, 68), 1, 0),
        /* 10 */ ip4(2, "10.0.0.1", "224.0.0.1", &udp(0x1164, 0xee9b), 0, 0),
        /* 11 */ ip6(6, "fd00::1", "fd00::2", &udp(40000, 80)),
        /* 12 */ ip6(17, "fd00::2", "fd00::1", &udp(53, 5353)),
        /* 13 */ ip6(58, "fe80::1", "ff02::1", &l4(135, 0, true)),
        /* 14 */ ip6(17, "2001:db8::1", "fd00::2", &udp(123, 123)),
        /* 15 */ ip6(132, "fd00::3", "fd00::4", &udp(9, 2905)),
        /* 16 */ arp("10.0.0.1", "10.0.0.9"),
        /* 17 */ Packet { ethertype: 0x88cc, l3: vec![2, 7, 4, 2, 0, 0, 0, 0, 1, 4, 3, 3, 0, 0, 0, 0] },
        /* 18 */ ip4(6, "10.0.0.2", "10.0.0.1", &udp(53, 1053), 0, 0),
        /* 19 */ ip6(17, "::ffff:10.0.0.1", "fd00::2", &udp(1234, 53)),
    ]
}

const ARP: usize = 16;

/// The flow key the kernel programs build of this packet (pktloss-ebpf's `flow_key`).
fn flow_key(p: &Packet) -> FlowKey {
    let mut k = FlowKey { ethertype: p.ethertype, ifindex: 2, netns: 4_026_532_239, reason: 3, ..FlowKey::default() };
    let b = &p.l3;
    let ports = |l4: u8, at: usize| -> (u16, u16) {
        let Some(t) = b.get(at..at + 4) else { return (0, 0) };
        match l4 {
            6 | 17 | 132 | 136 => (u16::from_be_bytes([t[0], t[1]]), u16::from_be_bytes([t[2], t[3]])),
            1 | 58 => (u16::from(t[0]), u16::from(t[1])),
            _ => (0, 0),
        }
    };
    match b.first().map(|v| v >> 4) {
        Some(4) if b.len() >= 20 => {
            k.family = 4;
            k.l4proto = b[9];
            k.saddr[..4].copy_from_slice(&b[12..16]);
            k.daddr[..4].copy_from_slice(&b[16..20]);
            let frag = u16::from_be_bytes([b[6], b[7]]) & 0x1fff;
            if frag == 0 {
                (k.sport, k.dport) = ports(k.l4proto, usize::from(b[0] & 0xf) * 4);
            }
        }
        Some(6) if b.len() >= 40 => {
            k.family = 6;
            k.l4proto = b[6];
            k.saddr.copy_from_slice(&b[8..24]);
            k.daddr.copy_from_slice(&b[24..40]);
            (k.sport, k.dport) = ports(k.l4proto, 40);
        }
        _ => {}
    }
    k
}

/// A classic pcap file of the packets on Ethernet, packet `i` at second `i`.
fn write_pcap(path: &Path, packets: &[Packet]) {
    let mut f = Vec::new();
    f.extend(0xa1b2_c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(65_535u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        frame.extend(p.ethertype.to_be_bytes());
        frame.extend(&p.l3);
        let len = u32::try_from(frame.len()).expect("small");
        f.extend(u32::try_from(i).expect("few").to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(len.to_le_bytes());
        f.extend(len.to_le_bytes());
        f.extend(frame);
    }
    std::fs::write(path, f).expect("write pcap");
}

/// The packets tcpdump selects, or `None` if it refuses the expression.
fn tcpdump(tcpdump: &Path, file: &Path, expr: &str) -> Option<Vec<usize>> {
    let out = Command::new(tcpdump).args(["-r"]).arg(file).args(["-nn", "-tt", expr]).output().expect("run tcpdump");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().filter_map(|l| l.split_once('.').and_then(|(s, _)| s.parse::<usize>().ok())).collect())
}

/// The packets pktloss's filter selects, or `None` if it refuses the expression.
fn pktloss(expr: &str, keys: &[FlowKey]) -> Option<Vec<usize>> {
    let f = FilterSpec::from_words(&[expr.to_owned()]).ok()??.compile(&Fixed).ok()?;
    Some((0..keys.len()).filter(|&i| f.passes(&words(&keys[i], keys[i].reason, b"veth0"))).collect())
}

/// Both select the same packets.
const SAME: &[&str] = &[
    // and/or: one precedence, left to right; not binds tighter.
    "tcp or udp and port 53",
    "tcp || udp && port 53",
    "udp and port 53 or tcp",
    "tcp or udp and not port 53",
    "tcp or (udp and port 53)",
    "(tcp or udp) and (port 53 or port 80)",
    "not tcp and udp",
    "not tcp or udp",
    "! tcp && ! udp",
    "!tcp",
    "not not tcp",
    "not (tcp or udp)",
    "((tcp))",
    "tcp&&port 53",
    "udp and not (port 53 or 123)",
    "ip and not ip6",
    "not ip and not ip6",
    // A bare value takes the last qualifiers.
    "port 53 or 80",
    "port 53 or 80 and udp",
    "tcp port 80 or 53",
    "src port 53 or 80",
    "not port 53 or 80",
    "port 53 or not (80 or 123)",
    "port 53 or (80 or 123)",
    "port 53 or (80) and udp",
    "port (53 or 80)",
    "tcp port (80 or 22)",
    "udp port 53 or not not 123",
    "host 10.0.0.1 and 10.0.0.2",
    "host 10.0.0.1 and not 10.0.0.2",
    "host 10.0.0.1 or 10.0.0.2 and port 53",
    "net 10.0.0.0/8 or 192.168.0.0/16",
    "net 10.0.0.0/8 or 192.168.1.1",
    "dst port 53 or src host 10.0.0.1 or 10.0.0.2",
    "tcp portrange 50-100 or 22",
    "ip proto 6 or 17",
    "proto 6 or 17",
    // src and dst.
    "src host 10.0.0.1",
    "dst host 10.0.0.1",
    "src 10.0.0.1",
    "dst 10.0.0.2",
    "src or dst host 192.168.1.1",
    "src and dst net 10.0.0.0/8",
    "dst or src port 53",
    "src and dst port 123",
    "tcp src port 80",
    "tcp src or dst port 22",
    "ip src host 10.0.0.1",
    "ip dst 10.0.0.2",
    "ip6 src net fd00::/16",
    "dst net 192.168.0.0/16",
    // host and net.
    "host fd00::2",
    "host ::ffff:10.0.0.1",
    "ip6 host fd00::1",
    "ip host 10.0.0.1",
    "net 10.0.0.0/8",
    "net 10.0.0.0",
    "net 10.0.0.0/24",
    "net 224.0.0.0/4",
    "net 0.0.0.0/0",
    "net fd00::/16",
    "net fe80::/10",
    "net ::/0",
    "ip6 net fd00::/16",
    // port and portrange.
    "port 53",
    "port 0x35",
    "port 065",
    "port 8",
    "portrange 50-100",
    "portrange 100-50",
    "portrange 53",
    "portrange 010-030",
    "portrange 1-65535",
    "udp portrange 100-200",
    "udp dst portrange 1-1000",
    "sctp port 9",
    "port 22 or port 2905",
    // Protocols.
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "arp",
    "arp or icmp",
    "icmp or icmp6",
    "ip6 and icmp6",
    "proto 17",
    "proto 0x11",
    "proto 0",
    "proto 2",
    "proto \\udp",
    "proto \\igmp",
    "proto \\sctp",
    "ip proto \\tcp",
    "ip6 proto \\udp",
    "ip proto 58",
    "ip6 proto 58",
];

/// Both refuse.
const REFUSED: &[&str] = &[
    "proto udp",
    "ip proto udp",
    "proto \\icmp6",
    "proto esp",
    "tcp or 80",
    "port 53 and tcp or 80",
    "(port 53) or 80",
    "port 53 or (80 and tcp)",
    "port 53 or 10.0.0.1",
    "net 10.0.0.1/8",
    "net fd00::1/16",
    "net 10.0.0.0/33",
    "src 10.0.0.0/8",
    "host 10.0.0.1/32",
    "host 10.0.0.1 or 192.168.0.0/16",
    "ip host fd00::1",
    "ip6 host 10.0.0.1",
    "ip net fd00::/16",
    "icmp host 10.0.0.1",
    "udp host 10.0.0.1",
    "tcp net 10.0.0.0/8",
    "icmp port 5",
    "ip port 53",
    "ip6 port 53",
    "arp port 5",
    "port 08",
    "port 65536",
    "port -1",
    "portrange 0x10-0x20",
    "tcp and",
    "( tcp",
    "tcp )",
    "udp tcp",
];

/// tcpdump takes these, pktloss refuses them: words pktloss does not have (service names,
/// link-layer words, ARP addresses, classful networks, host numbers), or qualifiers libpcap
/// carries past a parenthesized expression.
const PKTLOSS_REFUSES: &[&str] = &[
    "arp host 10.0.0.1",
    "port domain",
    "net 10",
    "host 10.0.0.1 or 53",
    "host fd00::1/128",
    "proto 256",
    "portrange 1-2-3",
    "port 53 or (host 10.0.0.1) or 80",
    "ether host 02:00:00:00:00:01",
    "less 100",
    "vlan",
    "tcp[13] & 2 != 0",
];

fn tmp_pcap() -> PathBuf {
    std::env::temp_dir().join(format!("pktloss-filter-table-{}.pcap", std::process::id()))
}

#[test]
fn filters_select_what_tcpdump_selects() {
    let bin = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].into_iter().map(Path::new).find(|p| p.exists());
    if !crate::testdata::available("filters_select_what_tcpdump_selects", "tcpdump", bin.is_some()) {
        return;
    }
    let bin = bin.expect("checked");
    let packets = packets();
    let keys: Vec<FlowKey> = packets.iter().map(flow_key).collect();
    let file = tmp_pcap();
    write_pcap(&file, &packets);
    let mut bad = String::new();
    // Every packet is read: the indices are the packets.
    let all = tcpdump(bin, &file, "");
    for expr in SAME {
        let t = tcpdump(bin, &file, expr);
        let mut p = pktloss(expr, &keys);
        let mut t = t;
        if expr.contains(['.', ':']) {
            for v in [&mut t, &mut p].into_iter().flatten() {
                v.retain(|&i| i != ARP);
            }
        }
        if t.is_none() || t != p {
            writeln!(bad, "`{expr}`: tcpdump {t:?}, pktloss {p:?}").expect("string");
        }
    }
    for expr in REFUSED {
        let (t, p) = (tcpdump(bin, &file, expr), pktloss(expr, &keys));
        if t.is_some() || p.is_some() {
            writeln!(bad, "`{expr}` should be refused: tcpdump {t:?}, pktloss {p:?}").expect("string");
        }
    }
    for expr in PKTLOSS_REFUSES {
        let (t, p) = (tcpdump(bin, &file, expr), pktloss(expr, &keys));
        if t.is_none() || p.is_some() {
            writeln!(bad, "`{expr}`: tcpdump should take it, pktloss refuse it: tcpdump {t:?}, pktloss {p:?}")
                .expect("string");
        }
    }
    let anchor = tcpdump(bin, &file, "tcp or udp and port 53");
    drop(std::fs::remove_file(&file));
    assert_eq!(all, Some((0..packets.len()).collect()), "tcpdump reads every packet");
    // tcpdump's reading, spelled out: `(tcp or udp) and port 53`.
    assert_eq!(anchor, Some(vec![0, 1, 12, 18, 19]));
    assert!(bad.is_empty(), "{} expressions:\n{bad}", SAME.len() + REFUSED.len() + PKTLOSS_REFUSES.len());
}
