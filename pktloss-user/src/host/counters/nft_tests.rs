//! Tests of the `nf_tables` reader: the decoder on dumps captured from a 6.18 kernel, and a live
//! read-back in a namespace made for it.
use super::*;

/// Writes this namespace's dump to `$PKTLOSS_NFT_CAPTURE` (how `fixtures/nft_dump.bin` was made,
/// see `fixtures/nft_dump.sh`); skipped unless asked for.
#[test]
#[ignore = "writes a fixture; run by fixtures/nft_dump.sh inside its namespace"]
fn capture_fixture() {
    let path = std::env::var("PKTLOSS_NFT_CAPTURE").expect("PKTLOSS_NFT_CAPTURE");
    std::fs::write(path, dump_here().expect("dump")).expect("write");
}

/// The captured dump: `fixtures/nft_dump.txt` is what `nft -a list ruleset` and `iptables-save
/// -c` showed of it.
fn fixture() -> Ruleset {
    decode(include_bytes!("fixtures/nft_dump.bin"))
}

#[test]
fn decodes_tables_chains_and_rules_of_a_captured_dump() {
    let rs = fixture();
    assert_eq!(rs.undecoded, 0);
    let tables: Vec<String> = rs.tables.iter().map(|t| format!("{} {} {}", t.family, t.name, t.dormant)).collect();
    assert_eq!(tables, ["inet filter false", "inet dormant true", "ip filter false", "ip6 filter false"]);
    let input = rs.chains.iter().find(|c| c.table == "filter" && c.name == "input").expect("input");
    assert_eq!(
        (input.hook.as_str(), input.priority, input.policy.as_deref(), input.counters),
        ("input", Some(0), Some("drop"), None)
    );
    let extra = rs.chains.iter().find(|c| c.name == "extra").expect("extra");
    assert_eq!((extra.hook.as_str(), extra.policy.as_deref()), ("", None));
    assert_eq!(rs.chains.iter().find(|c| c.table == "dormant").and_then(|c| c.priority), Some(10));
    // iptables-nft keeps counters on its base chains: 3 datagrams met the ip6 INPUT policy.
    let ip6 = rs.chains.iter().find(|c| c.family == "ip6").expect("ip6 INPUT");
    assert_eq!(ip6.counters, Some((3, 147)));
    let r = rs.rules.iter().find(|r| r.handle == 5 && r.family == "inet").expect("rule 5");
    assert_eq!(r.exprs.iter().filter(|e| matches!(e, Expr::Counter { packets: 20, bytes: 580 })).count(), 1);
    assert_eq!(r.exprs.last(), Some(&Expr::Verdict { code: 0, chain: None }));
    let jump = rs.rules.iter().find(|r| r.handle == 13).expect("rule 13");
    assert_eq!(jump.exprs.last(), Some(&Expr::Verdict { code: -3, chain: Some("extra".into()) }));
}

#[test]
fn drop_chains_and_rules_in_nft_and_iptables_syntax() {
    let (chains, rules) = firewall(&fixture());
    let chains: Vec<String> = chains
        .iter()
        .map(|c| format!("{} {} {} {} {} {:?}", c.backend, c.family, c.table, c.chain, c.hook, c.packets))
        .collect();
    // The dormant table's chain sees no packet: left out.
    assert_eq!(
        chains,
        [
            "nft inet filter input input None",
            "iptables ip filter FORWARD forward Some(0)",
            "ip6tables ip6 filter INPUT input Some(3)"
        ]
    );
    let rules: Vec<String> = rules
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?} {} {:?} [{}]",
                r.backend, r.family, r.table, r.chain, r.handle, r.verdict, r.packets, r.rule
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            "nft inet filter input Some(5) drop Some(20) [udp dport 9999 counter drop]",
            "nft inet filter input Some(6) reject Some(0) [tcp dport 8081 counter reject with tcp reset]",
            "nft inet filter input Some(9) drop None [ip saddr 10.0.0.0/8 udp dport 1000-2000 drop]",
            "nft inet filter input Some(10) reject None [iifname \"eth*\" ip6 daddr ::1 reject with icmpv6 port-unreachable]",
            "nft inet filter input Some(11) drop Some(0) [meta l4proto icmp counter drop]",
            "nft inet filter input Some(12) drop None [ip saddr @blocked drop]",
            "nft inet filter extra Some(14) drop None [ct state invalid drop]",
            "iptables ip filter INPUT Some(3) drop Some(5) [-A INPUT -p udp -m udp --dport 7777 -j DROP]",
            "iptables ip filter INPUT Some(4) reject Some(0) [-A INPUT -p tcp -m tcp --dport 7778 -j REJECT --reject-with icmp-port-unreachable]",
            "iptables ip filter INPUT Some(5) drop Some(0) [-A INPUT -i veth+ -s 192.0.2.0/24 -m conntrack --ctstate INVALID -j DROP]",
            "iptables ip filter INPUT Some(6) drop Some(0) [-A INPUT -p udp -m multiport --dports 5000,5001 -j DROP]",
        ]
    );
}

/// Cut, shifted or bit-flipped dumps decode to less, never panic.
#[test]
fn damaged_dumps_do_not_panic() {
    let bytes = include_bytes!("fixtures/nft_dump.bin");
    for cut in (0..bytes.len()).step_by(7) {
        drop(firewall(&decode(&bytes[..cut])));
        drop(decode(&bytes[cut..]));
    }
    let mut flipped = bytes.to_vec();
    for i in (0..flipped.len()).step_by(13) {
        flipped[i] ^= 0x5a;
    }
    drop(firewall(&decode(&flipped)));
}

/// A table, chain and counted rule made with `nft` in a namespace made for the test, and an
/// iptables-nft rule and chain policy, read back through netlink with their exact counters
/// after datagrams that hit them. Needs root, nft and iptables (nft backend).
#[test]
fn reads_back_a_rule_and_its_exact_counter_in_a_namespace() {
    use crate::host::counters::gather::run_tool;
    const N: u64 = 37;
    let root = nix::unistd::Uid::effective().is_root()
        && run_tool("nft", &["--version"]).is_ok()
        && run_tool("iptables", &["--version"]).is_ok_and(|v| v.contains("nf_tables"));
    if !crate::testdata::available(
        "reads_back_a_rule_and_its_exact_counter_in_a_namespace",
        "root, nft and iptables-nft",
        root,
    ) {
        return;
    }
    let name = format!("pktl-nftut-{}", std::process::id());
    run_tool("ip", &["netns", "add", &name]).expect("ip netns add");
    let result = std::panic::catch_unwind(|| {
        let x = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &name];
            a.extend_from_slice(args);
            run_tool("ip", &a).unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        x(&["ip", "link", "set", "lo", "up"]);
        x(&["nft", "add table inet pktlut"]);
        x(&["nft", "add chain inet pktlut input { type filter hook input priority 0 ; policy accept ; }"]);
        x(&["nft", "add rule inet pktlut input udp dport 7791 counter drop"]);
        x(&["iptables", "-A", "INPUT", "-p", "udp", "--dport", "7792", "-j", "DROP"]);
        x(&["ip6tables", "-P", "INPUT", "DROP"]);
        let path = std::path::PathBuf::from(format!("/run/netns/{name}"));
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat")) as u32;
        let ns = crate::host::netns::NetnsRef { inode, path, name: Some(name.clone()), is_self: false };
        let read = |ns: &crate::host::netns::NetnsRef| {
            crate::host::netns::run_in(ns, || read_here().map_err(anyhow::Error::msg)).expect("read")
        };
        let Firewall { rules, note, .. } = read(&ns);
        assert_eq!(note, None);
        let texts: Vec<(Option<u64>, &str)> = rules.iter().map(|r| (r.packets, r.rule.as_str())).collect();
        assert_eq!(
            texts,
            [(Some(0), "udp dport 7791 counter drop"), (Some(0), "-A INPUT -p udp -m udp --dport 7792 -j DROP")]
        );
        // N datagrams to the nft rule, N + 3 to the iptables rule and N + 5 to the ip6tables
        // policy, from sockets in the namespace.
        crate::host::netns::run_in(&ns, || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            let s6 = std::net::UdpSocket::bind("[::1]:0")?;
            for _ in 0..N {
                s.send_to(b"x", "127.0.0.1:7791")?;
            }
            for _ in 0..N + 3 {
                s.send_to(b"x", "127.0.0.1:7792")?;
            }
            for _ in 0..N + 5 {
                s6.send_to(b"x", "[::1]:7793")?;
            }
            Ok(())
        })
        .expect("send");
        let Firewall { chains, rules, .. } = read(&ns);
        let got: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {} {:?} {:?}",
                    r.backend, r.family, r.table, r.chain, r.verdict, r.packets, r.bytes
                )
            })
            .collect();
        // 29 bytes per IPv4 datagram (20 + 8 + 1), 49 per IPv6 one (40 + 8 + 1).
        assert_eq!(
            got,
            [
                format!("nft inet pktlut input drop Some({N}) Some({})", N * 29),
                format!("iptables ip filter INPUT drop Some({}) Some({})", N + 3, (N + 3) * 29),
            ]
        );
        let got: Vec<String> = chains
            .iter()
            .map(|c| {
                format!("{} {} {} {} {} {:?} {:?}", c.backend, c.family, c.table, c.chain, c.hook, c.packets, c.bytes)
            })
            .collect();
        assert_eq!(got, [format!("ip6tables ip6 filter INPUT input Some({}) Some({})", N + 5, (N + 5) * 49)]);
        // The host's own ruleset does not have it.
        let here = read_here().expect("host");
        assert!(!here.rules.iter().any(|r| r.table == "pktlut"));
    });
    drop(run_tool("ip", &["netns", "del", &name]));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A real host's tables as podman's netavark left them through iptables-nft (comment, addrtype
/// and mark matches, MARK and MASQUERADE targets, jumps to its own chains): all decoded, and
/// nothing in them drops.
#[test]
fn decodes_a_netavark_ruleset_with_no_drop() {
    let rs = decode(include_bytes!("fixtures/nft_dump_netavark.bin"));
    assert_eq!(rs.undecoded, 0);
    let tables: Vec<String> = rs.tables.iter().map(|t| format!("{} {}", t.family, t.name)).collect();
    assert_eq!(tables, ["ip nat", "ip filter"]);
    assert!(rs.rules.len() >= 5, "{:?}", rs.rules);
    let (chains, rules) = firewall(&rs);
    assert!(chains.is_empty() && rules.is_empty(), "{chains:?} {rules:?}");
    let masq = rs.rules.iter().find(|r| r.chain == "NETAVARK-HOSTPORT-MASQ").expect("masq rule");
    assert!(masq.exprs.iter().any(|e| matches!(e, Expr::XtTarget { name, .. } if name == "MASQUERADE")), "{masq:?}");
}
