use std::net::IpAddr;

use pktloss_common::{FlowKey, derive_filter_words, filter_word};

use super::{FilterSpec, NetnsSpec, Resolve};

/// Resolves `uxb` to 4026532239 and a few reasons, as a host would.
pub(super) struct Fixed;

impl Resolve for Fixed {
    fn netns(&self, spec: &NetnsSpec) -> Result<u32, String> {
        match spec {
            NetnsSpec::Name(n) if n == "uxb" => Ok(4_026_532_239),
            NetnsSpec::Id(i) => Ok(*i),
            _ => Err("no such namespace".to_owned()),
        }
    }

    fn dev(&self, name: &str) -> Result<(), String> {
        if name == "nosuchdev" { Err("no device `nosuchdev` in any namespace".to_owned()) } else { Ok(()) }
    }

    fn reason(&self, name: &str) -> Result<u32, String> {
        match name.to_ascii_uppercase().trim_start_matches("SKB_DROP_REASON_") {
            "NOT_SPECIFIED" => Ok(2),
            "NO_SOCKET" => Ok(3),
            "NETFILTER_DROP" => Ok(11),
            _ => Err("not a drop reason of this kernel".to_owned()),
        }
    }

    fn cause(&self, id: &str) -> Result<Vec<(u32, Option<u8>)>, String> {
        match id {
            "no-listener" => Ok(vec![(3, None)]),
            "udp-rcvbuf-full" => Ok(vec![(13, Some(17))]),
            _ => Err("not a cause id".to_owned()),
        }
    }
}

/// The words the kernel programs test for a drop: as `flow_key` builds them, then derived.
pub(super) fn words(k: &FlowKey, reason: u32, dev: &[u8]) -> [u64; filter_word::COUNT as usize] {
    let w8 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let mut name = [0u8; 16];
    name[..dev.len()].copy_from_slice(dev);
    let mut w = [0u64; filter_word::COUNT as usize];
    w[0] = w8(&k.saddr[..8]);
    w[1] = w8(&k.saddr[8..]);
    w[2] = w8(&k.daddr[..8]);
    w[3] = w8(&k.daddr[8..]);
    w[4] = u64::from(k.netns) | u64::from(k.ifindex) << 32;
    w[5] = u64::from(k.reason) | u64::from(k.sport) << 32 | u64::from(k.dport) << 48;
    w[6] = u64::from(k.family) | u64::from(k.l4proto) << 8 | u64::from(k.ethertype) << 16;
    w[filter_word::REASON as usize] = u64::from(reason);
    w[filter_word::DEV_NAME_LO as usize] = w8(&name[..8]);
    w[filter_word::DEV_NAME_HI as usize] = w8(&name[8..]);
    derive_filter_words(&mut w);
    w
}

fn key(proto: &str, src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
    let mut k = FlowKey { netns: 4_026_532_239, ifindex: 2, reason: 3, sport, dport, ..FlowKey::default() };
    let put = |a: &str, out: &mut [u8; 16]| match a.parse::<IpAddr>().expect("address") {
        IpAddr::V4(v) => out[..4].copy_from_slice(&v.octets()),
        IpAddr::V6(v) => out.copy_from_slice(&v.octets()),
    };
    put(src, &mut k.saddr);
    put(dst, &mut k.daddr);
    let v6 = src.contains(':');
    k.family = if v6 { 6 } else { 4 };
    k.ethertype = if v6 { 0x86dd } else { 0x0800 };
    k.l4proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmp6" => 58,
        other => other.parse().expect("protocol number"),
    };
    k
}

fn compiled(expr: &str) -> pktloss_common::Filter {
    compiled_with(expr, &Fixed)
}

fn compiled_with(expr: &str, r: &dyn Resolve) -> pktloss_common::Filter {
    let words: Vec<String> = expr.split(' ').map(str::to_owned).collect();
    FilterSpec::from_words(&words).expect("parses").expect("not empty").compile(r).expect("compiles")
}

/// Resolves reasons as the capturing kernel numbered them.
struct Captured(Vec<(String, u32)>);

impl Resolve for Captured {
    fn netns(&self, _: &NetnsSpec) -> Result<u32, String> {
        Err("unused".to_owned())
    }

    fn dev(&self, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn reason(&self, name: &str) -> Result<u32, String> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, c)| *c).ok_or_else(|| "not in the capture".to_owned())
    }

    fn cause(&self, _: &str) -> Result<Vec<(u32, Option<u8>)>, String> {
        Err("unused".to_owned())
    }
}

fn passes(expr: &str, k: &FlowKey) -> bool {
    compiled(expr).passes(&words(k, k.reason, b"veth0"))
}

#[test]
fn tcpdump_primitives_select_what_tcpdump_would() {
    let udp4 = key("udp", "10.0.0.1", 5000, "10.0.0.2", 53);
    let tcp6 = key("tcp", "fd00::1", 40000, "fd00::2", 80);
    let icmp4 = key("icmp", "10.0.0.1", 8, "192.168.1.1", 0);
    let cases: &[(&str, [bool; 3])] = &[
        ("udp", [true, false, false]),
        ("tcp", [false, true, false]),
        ("icmp", [false, false, true]),
        ("ip", [true, false, true]),
        ("ip6", [false, true, false]),
        ("port 53", [true, false, false]),
        ("dst port 53", [true, false, false]),
        ("src port 53", [false, false, false]),
        ("port 80 or 53", [true, true, false]),
        ("tcp port 80 or 53", [false, true, false]),
        ("portrange 50-100", [true, true, false]),
        // ICMP type 8 is not a port.
        ("port 8", [false, false, false]),
        ("host 10.0.0.1", [true, false, true]),
        ("src host 10.0.0.2", [false, false, false]),
        ("dst 10.0.0.2", [true, false, false]),
        ("net 10.0.0.0/8", [true, false, true]),
        ("dst net 192.168.0.0/16", [false, false, true]),
        ("host fd00::2", [false, true, false]),
        ("net fd00::/16", [false, true, false]),
        ("src and dst net 10.0.0.0/8", [true, false, false]),
        ("src or dst host 192.168.1.1", [false, false, true]),
        ("not udp", [false, true, true]),
        ("! udp && ! tcp", [false, false, true]),
        ("(udp or icmp) and not dst host 192.168.1.1", [true, false, false]),
        ("proto 17", [true, false, false]),
        ("ip6 proto 6", [false, true, false]),
        ("ip proto \\tcp", [false, false, false]),
        ("netns uxb", [true, true, true]),
        ("netns 1", [false, false, false]),
        ("ifindex 2 and udp", [true, false, false]),
        ("dev veth0", [true, true, true]),
        ("dev veth", [false, false, false]),
        ("dev veth01", [false, false, false]),
        ("reason NO_SOCKET", [true, true, true]),
        ("not reason no_socket", [false, false, false]),
        ("reason SKB_DROP_REASON_NETFILTER_DROP or port 80", [false, true, false]),
        ("cause no-listener", [true, true, true]),
        ("cause udp-rcvbuf-full", [false, false, false]),
    ];
    for (expr, want) in cases {
        let got = [passes(expr, &udp4), passes(expr, &tcp6), passes(expr, &icmp4)];
        assert_eq!(&got, want, "{expr}");
    }
}

#[test]
fn a_cause_is_its_reasons_and_their_protocol() {
    let mut udp = key("udp", "10.0.0.1", 1, "10.0.0.2", 2);
    udp.reason = 13;
    let mut tcp = key("tcp", "10.0.0.1", 1, "10.0.0.2", 2);
    tcp.reason = 13;
    assert!(passes("cause udp-rcvbuf-full", &udp));
    assert!(!passes("cause udp-rcvbuf-full", &tcp));
    assert!(!passes("cause no-listener", &udp));
}

#[test]
fn an_ipv6_network_of_zeros_does_not_take_ipv4_drops() {
    // 10.0.0.1 in a key reads as the IPv6 address 0a00:0001:: would in its first word.
    let udp4 = key("udp", "10.0.0.1", 1, "10.0.0.2", 2);
    assert!(!passes("net ::/0", &udp4));
    assert!(!passes("src net a00:1::/32", &udp4));
    assert!(passes("src net 10.0.0.1/32", &udp4));
    let non_ip = FlowKey { ethertype: 0x0806, ..FlowKey::default() };
    assert!(!passes("host ::", &non_ip));
    assert!(passes("arp", &non_ip));
}

#[test]
fn a_device_name_is_matched_up_to_its_nul() {
    let k = key("udp", "10.0.0.1", 1, "10.0.0.2", 2);
    let f = compiled("dev eth0");
    assert!(f.passes(&words(&k, 3, b"eth0")));
    // What a renamed device leaves after its NUL does not matter.
    assert!(f.passes(&words(&k, 3, b"eth0\0ld-name")));
    assert!(!f.passes(&words(&k, 3, b"eth01")));
    let long = compiled("dev a-fifteen-byte");
    assert!(long.passes(&words(&k, 3, b"a-fifteen-byte")));
    assert!(!long.passes(&words(&k, 3, b"a-fifteen-bytf")));
}

#[test]
fn the_graph_jumps_forward_and_fits() {
    let f = compiled("(udp or tcp) and (port 53 or port 80) and not net 10.0.0.0/8");
    for (i, a) in f.atoms[..f.len as usize].iter().enumerate() {
        for t in [a.on_true, a.on_false] {
            assert!(usize::from(t) > i, "atom {i} jumps back to {t}");
        }
    }
    let many = (0..40).map(|p| format!("port {p}")).collect::<Vec<_>>().join(" or ");
    let words: Vec<String> = many.split(' ').map(str::to_owned).collect();
    let err = FilterSpec::from_words(&words).expect("parses").expect("some").compile(&Fixed).expect_err("too big");
    assert!(err.contains("needs 80 tests; the kernel program takes 64"), "{err}");
}

#[test]
fn errors_name_the_word_and_its_column() {
    let err = |s: &str| {
        let words: Vec<String> = s.split(' ').map(str::to_owned).collect();
        match FilterSpec::from_words(&words) {
            Err(e) => e,
            Ok(f) => f.expect("some").compile(&Fixed).expect_err("an error"),
        }
    };
    assert_eq!(
        err("udp and prot 53"),
        "bad filter `udp and prot 53`: `prot` (column 9): expected a primitive (host, net, port, portrange, tcp, udp, icmp, ip, ip6, netns, dev, reason, cause, ...)"
    );
    assert_eq!(err("port 70000"), "bad filter `port 70000`: `70000` (column 6): not a port number (0-65535)");
    assert_eq!(
        err("udp and"),
        "bad filter `udp and`: at its end: expected a primitive (host, net, port, portrange, tcp, udp, icmp, ip, ip6, netns, dev, reason, cause, ...)"
    );
    assert_eq!(err("( udp"), "bad filter `( udp`: `(` (column 1): this `(` is not closed");
    assert_eq!(err("udp tcp"), "bad filter `udp tcp`: `tcp` (column 5): expected `and` or `or`");
    assert_eq!(
        err("net 10.0.0.1/8"),
        "bad filter `net 10.0.0.1/8`: `10.0.0.1/8` (column 5): non-network bits set in this network"
    );
    assert_eq!(
        err("ip host fd00::1"),
        "bad filter `ip host fd00::1`: `fd00::1` (column 9): this address is not of the protocol before it"
    );
    assert_eq!(err("icmp port 5"), "bad filter `icmp port 5`: `5` (column 11): ports are of tcp, udp and sctp");
    assert_eq!(err("netns nope"), "bad filter `netns nope`: `netns nope` (column 1): no such namespace");
    assert_eq!(
        err("reason NOPE"),
        "bad filter `reason NOPE`: `reason NOPE` (column 1): not a drop reason of this kernel"
    );
    assert_eq!(
        err("host example.com"),
        "bad filter `host example.com`: `example.com` (column 6): not an IP address (host names are not resolved)"
    );
    assert_eq!(
        err("proto udp"),
        "bad filter `proto udp`: `udp` (column 7): tcpdump wants a protocol name escaped here (\\udp), or a number (0-255)"
    );
    assert_eq!(
        err("udp host 10.0.0.1"),
        "bad filter `udp host 10.0.0.1`: `10.0.0.1` (column 10): tcpdump takes only ip, ip6 or arp before host and net"
    );
    assert_eq!(
        err("src 10.0.0.0/8"),
        "bad filter `src 10.0.0.0/8`: `10.0.0.0/8` (column 5): a mask is for networks only (net ADDR/LEN), as in tcpdump"
    );
    assert_eq!(
        err("tcp or 80"),
        "bad filter `tcp or 80`: `80` (column 8): expected a primitive (host, net, port, portrange, tcp, udp, icmp, ip, ip6, netns, dev, reason, cause, ...)"
    );
    assert_eq!(err("tcp )"), "bad filter `tcp )`: `)` (column 5): this `)` closes nothing");
    assert_eq!(
        err("dev nosuchdev"),
        "bad filter `dev nosuchdev`: `dev nosuchdev` (column 1): no device `nosuchdev` in any namespace"
    );
    // The deepest a filter nests fits a test thread's stack.
    let udp = key("udp", "10.0.0.1", 1, "10.0.0.2", 2);
    assert!(passes(&format!("{}udp{}", "( ".repeat(255), " )".repeat(255)), &udp));
    assert!(!passes(&format!("{}udp", "not ".repeat(511)), &udp));
    let deep = format!("{}udp", "( ".repeat(30_000));
    assert_eq!(
        err(&deep),
        format!("bad filter `{deep}`: 30001 words; a filter takes at most 512 (and the kernel program 64 tests)")
    );
    assert!(FilterSpec::from_words(&[]).expect("empty is fine").is_none());
}

/// The flows of a real capture (`NO_SOCKET` and nft drops in namespaces), selected by filters:
/// each count is what a plain reading of the flow says.
#[test]
fn filters_select_the_flows_of_a_real_capture() {
    let file = crate::capture::read_bytes(include_bytes!("../export/fixtures/nosocket_nft.pktloss")).expect("fixture");
    let flows = &file.summary.flows;
    assert!(flows.len() >= 2);
    let resolver = Captured(file.summary.reasons.iter().map(|r| (r.reason.name.clone(), r.reason.code)).collect());
    let key_of = |f: &crate::model::FlowCount| {
        let proto = match f.flow.proto.as_str() {
            "tcp" | "udp" | "icmp" => f.flow.proto.clone(),
            "icmpv6" => "icmp6".to_owned(),
            p => p.strip_prefix("proto-").unwrap_or("0").to_owned(),
        };
        let mut k = key(
            &proto,
            if f.flow.src.is_empty() { "0.0.0.0" } else { &f.flow.src },
            f.flow.sport,
            if f.flow.dst.is_empty() { "0.0.0.0" } else { &f.flow.dst },
            f.flow.dport,
        );
        k.netns = f.flow.netns.inode;
        k.ifindex = f.ifindex;
        k.reason = f.reason.code;
        if f.flow.family == 0 {
            (k.family, k.ethertype, k.saddr, k.daddr) = (0, 0, [0; 16], [0; 16]);
        }
        k
    };
    for expr in ["udp", "ip6", "reason NO_SOCKET", "reason NETFILTER_DROP", "udp and dst port 9000", "not ip6"] {
        let f = compiled_with(expr, &resolver);
        let got: u64 = flows
            .iter()
            .filter(|fl| f.passes(&words(&key_of(fl), fl.reason.code, fl.device.as_bytes())))
            .map(|fl| fl.count)
            .sum();
        let want: u64 = flows
            .iter()
            .filter(|fl| match expr {
                "udp" => fl.flow.proto == "udp",
                "ip6" => fl.flow.family == 6,
                "reason NO_SOCKET" => fl.reason == "NO_SOCKET",
                "reason NETFILTER_DROP" => fl.reason == "NETFILTER_DROP",
                "udp and dst port 9000" => fl.flow.proto == "udp" && fl.flow.dport == 9000,
                _ => fl.flow.family != 6,
            })
            .map(|fl| fl.count)
            .sum();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn a_device_no_namespace_has_is_refused() {
    let reasons = crate::decode::reasons::ReasonTable::new(Vec::new());
    let host = super::HostResolver { reasons: &reasons, has_reasons: true };
    assert_eq!(host.dev("lo"), Ok(()));
    // Without root the other namespaces cannot be entered, and a name may be in one of them.
    let root = nix::unistd::geteuid().is_root();
    if !crate::testdata::available("a_device_no_namespace_has_is_refused", "root", root) {
        return;
    }
    assert_eq!(
        host.dev("nosuchdev0"),
        Err("no device `nosuchdev0` in any namespace (ip -all netns exec ip -br link)".to_owned())
    );
}

/// What a filter's view covers: the namespaces and devices it is limited to, and whether it
/// selects every drop of its namespaces (then their counters are its own).
#[test]
fn scope_names_the_namespaces_and_devices_a_filter_covers() {
    let scope =
        |text: &str| FilterSpec::from_words(&[text.to_owned()]).expect("parse").expect("a filter").scope(&Fixed);
    let uxb = 4_026_532_239;
    let s = scope("netns uxb");
    assert_eq!((s.netns, s.devices, s.whole_netns), (Some(vec![uxb]), None, true));
    let s = scope("netns uxb or netns 7");
    assert_eq!((s.netns, s.whole_netns), (Some(vec![7, uxb]), true));
    let s = scope("netns uxb and port 7777");
    assert_eq!((s.netns, s.whole_netns), (Some(vec![uxb]), false));
    let s = scope("netns uxb or port 7777");
    assert_eq!((s.netns, s.whole_netns), (None, false));
    let s = scope("port 7777");
    assert_eq!((s.netns, s.devices, s.whole_netns), (None, None, false));
    let s = scope("dev eth0 and udp");
    assert_eq!((s.netns, s.devices, s.whole_netns), (None, Some(vec!["eth0".to_owned()]), false));
    let s = scope("not netns uxb");
    assert_eq!((s.netns, s.whole_netns), (None, false));
}
