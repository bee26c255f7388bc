//! Tests of the counter parsers on files captured from a real 6.18 kernel (namespace `pktl-fx`
//! with nft/iptables drop rules, a tbf qdisc, a backlog-1 listener and a 1 KiB-rcvbuf UDP socket),
//! plus a live check that a setns'd thread sees its namespace's /proc and sysctls.
use super::gather::{read_sysctl, run_tool};
use super::*;

macro_rules! fx {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

#[test]
fn snmp_and_netstat() {
    let snmp = parse::proc_pairs(fx!("snmp.txt"));
    assert_eq!(snmp["Udp.RcvbufErrors"], 199);
    assert_eq!(snmp["Udp.SndbufErrors"], 43);
    assert_eq!(snmp["Tcp.MaxConn"], -1);
    assert_eq!(snmp["Tcp.RetransSegs"], 4);
    assert_eq!(snmp["IcmpMsg.InType3"], 7);
    let ns = parse::proc_pairs(fx!("netstat.txt"));
    assert_eq!(ns["TcpExt.ListenOverflows"], 8);
    assert_eq!(ns["TcpExt.ListenDrops"], 8);
    assert!(ns.contains_key("IpExt.InCsumErrors"));
    assert!(ns.contains_key("MPTcpExt.MPCapableSYNRX"));
    let s6 = parse::snmp6(fx!("snmp6.txt"));
    assert_eq!(s6["Ip6.InReceives"], 8);
    assert!(s6.contains_key("Udp6.RcvbufErrors"));
    assert!(s6.contains_key("Icmp6.InCsumErrors"));
    assert!(s6.contains_key("UdpLite6.InDatagrams"));
}

#[test]
fn softnet() {
    let s = parse::softnet_stat(fx!("softnet_stat.txt"));
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].cpu, 1);
    assert!(s[1].processed > 0);
    // A hand-made line shaped like a loaded host: dropped and time_squeeze set, cpu 3.
    let line = "0a000000 00000010 00000020 00000000 00000000 00000000 00000000 00000000 00000000 \
                00000005 00000000 00000000 00000003 00000000 00000000\n";
    let s = parse::softnet_stat(line);
    assert_eq!((s[0].cpu, s[0].dropped, s[0].time_squeeze, s[0].received_rps), (3, 16, 32, 5));
    // Old kernels: 11 columns, no cpu column.
    let s = parse::softnet_stat("00000001 00000002 00000003 0 0 0 0 0 0 0 0\n");
    assert_eq!((s[0].cpu, s[0].dropped), (0, 2));
}

#[test]
fn devices() {
    let d = parse::ip_link_json(fx!("ip_link.json"));
    let v0 = d.iter().find(|d| d.name == "pktl-v0").expect("veth");
    assert_eq!(v0.qdisc, "tbf");
    assert!(v0.up && v0.rx_packets > 0);
    assert_eq!(v0.txqlen, 1000);
    let eth = parse::ip_link_json(fx!("ip_link_eth0.json"));
    assert_eq!(eth[0].carrier_changes, 2);
    let pd = parse::proc_net_dev(fx!("dev.txt"));
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].name, "pktl-v0");
    assert_eq!(pd[1].rx_packets, 42);
    // Shaped like a real NIC with a full ring and FIFO overruns (ixgbe-style ethtool names).
    let nic = parse::ip_link_json(fx!("ip_link_nic_errors.json"));
    assert_eq!(nic[0].rx_missed_errors, 1234);
    assert_eq!(nic[0].rx_fifo_errors, 56);
    assert_eq!(nic[0].rx_crc_errors, 7);
}

#[test]
fn ethtool() {
    let s = parse::ethtool_stats(fx!("ethtool_S_eth0.txt"));
    assert_eq!(s.get("rx_drops"), Some(&0));
    assert!(!s.contains_key("rx_kicks"), "non-drop counters are left out");
    let r = parse::ethtool_ring("eth0", fx!("ethtool_g_eth0.txt")).expect("ring");
    assert_eq!((r.rx, r.rx_max, r.tx, r.tx_max), (Some(256), Some(256), Some(256), Some(256)));
    assert!(parse::ethtool_ring("pktl-v0", fx!("ethtool_g_veth.txt")).is_none());
    let ix = parse::ethtool_stats(fx!("ethtool_S_ixgbe.txt"));
    assert_eq!(ix.get("rx_missed_errors"), Some(&1234));
    assert_eq!(ix.get("alloc_rx_buff_failed"), Some(&9));
}

#[test]
fn qdiscs() {
    let q = parse::tc_qdisc_json(fx!("tc_qdisc.json"));
    let tbf = q.iter().find(|q| q.kind == "tbf").expect("tbf");
    assert_eq!((tbf.dev.as_str(), tbf.parent.as_str(), tbf.drops, tbf.overlimits), ("pktl-v0", "root", 43, 59));
}

#[test]
fn conntrack_tables() {
    let t = parse::proc_stat_table(fx!("stat_nf_conntrack.txt"));
    assert_eq!(t["entries"], 4);
    assert_eq!(t["insert_failed"], 0);
    let s = parse::conntrack_s(fx!("conntrack_S.txt"));
    assert_eq!(s["drop"], 0);
    assert!(s.contains_key("insert_failed") && !s.contains_key("cpu"));
    let s = parse::conntrack_s("cpu=0 found=1 drop=3\ncpu=1 found=2 drop=4 garbage =x\n");
    assert_eq!((s["found"], s["drop"]), (3, 7));
    let arp = parse::proc_stat_table(fx!("stat_arp_cache.txt"));
    assert_eq!(arp["entries"], 5);
    assert_eq!(arp["allocs"], 5);
    assert_eq!(arp["periodic_gc_runs"], 0x26);
}

#[test]
fn firewall_iptables() {
    let (chains, rules) = parse::iptables_save("iptables", fx!("iptables_save.txt"));
    assert_eq!(chains.len(), 1);
    assert_eq!((chains[0].chain.as_str(), chains[0].packets), ("FORWARD", Some(0)));
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].rule, "-A INPUT -p udp -m udp --dport 7777 -j DROP");
    assert_eq!((rules[0].packets, rules[0].chain.as_str()), (Some(5), "INPUT"));
    assert_eq!(rules[1].verdict, "reject");
    let (chains, _) = parse::iptables_save("ip6tables", fx!("ip6tables_save.txt"));
    assert_eq!((chains[0].family.as_str(), chains[0].chain.as_str()), ("ip6", "INPUT"));
    // Without -c.
    let (_, rules) = parse::iptables_save("iptables", "*filter\n-A INPUT -s 10.0.0.1/32 -j DROP\nCOMMIT\n");
    assert_eq!((rules.len(), rules[0].packets), (1, None));
}

#[test]
fn sockets() {
    let l = parse::ss_listeners(fx!("ss_ltn.txt"));
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].addr.as_str(), l[0].port, l[0].accept_queue, l[0].backlog), ("127.0.0.1", 8080, 2, 1));
    assert_eq!(l[0].drops, Some(8));
    assert_eq!(l[0].inode, Some(18385));
    assert!(l[0].process.starts_with("python3["), "{}", l[0].process);
    assert_eq!((l[1].addr.as_str(), l[1].port), ("::1", 8443));
    let u = parse::ss_udp(fx!("ss_uamn.txt"));
    assert_eq!(u.len(), 2);
    assert_eq!((u[0].port, u[0].rcvbuf, u[0].drops, u[0].rx_queue), (5000, Some(2304), 199, 1280));
    assert_eq!(u[1].port, 5353);
    let pu = parse::proc_net_udp(fx!("udp.txt"));
    assert_eq!((pu[0].addr.as_str(), pu[0].port, pu[0].drops, pu[0].rx_queue), ("0.0.0.0", 5000, 199, 0x500));
    let pu6 = parse::proc_net_udp(fx!("udp6.txt"));
    assert_eq!((pu6[0].addr.as_str(), pu6[0].port), ("::", 5353));
}

#[test]
fn routes_and_neighbors() {
    let r = parse::ip_route_json(fx!("ip_route.json"));
    assert!(r.iter().any(|r| r.kind == "blackhole" && r.dst == "10.200.0.0/24"));
    assert!(r.iter().any(|r| r.kind == "unreachable"));
    let r6 = parse::ip_route_json(fx!("ip6_route.json"));
    assert!(r6.iter().any(|r| r.kind == "prohibit" && r.dst == "2001:db8::/64"));
    let n = parse::ip_neigh_failed(fx!("ip_neigh_host.json"));
    assert_eq!(n, ["fd00::1 dev eth0 FAILED"]);
}

#[test]
fn rps() {
    let r = parse::rps_lines("/sys/class/net/eth0/queues/rx-0/rps_cpus 00000000,0000000f\nbogus\n");
    assert_eq!(r, [("eth0".to_owned(), "rx-0".to_owned(), "00000000,0000000f".to_owned())]);
    assert!(parse::rps_mask_enabled("00000000,0000000f"));
    assert!(!parse::rps_mask_enabled("0"));
    assert!(!parse::rps_mask_enabled("00000000,00000000"));
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "\n\n",
        "Ip: a b c\n",
        "Ip: a b\nIp: 1\n",
        "Ip: 1 2\nTcp: 3 4\n",
        "::::\n[",
        "{\"nftables\": [{\"rule\": {\"expr\": [{\"drop\": null}]}}]}",
        "[{\"ifname\": 3}]",
        "[1, 2, null]",
        "users:((\"",
        "LISTEN x y",
        "LISTEN 1 2 :",
        "UNCONN 1 2 a b skmem:(rb",
        "   sl local\n 1: 0:0 0:0 07 x:y a b c d e f g h i j k l\n",
        "entries a\nzz yy\n",
        "*filter\n:INPUT DROP\n[1 -A X -j DROP\n-A\n[:] -A INPUT -j REJECT\n",
        "Pre-set maximums:\nRX:\nCurrent hardware settings:\nRX: n/a\n",
        "/sys/class/net/queues 1\n/x/queues\n",
    ];
    let truncated: Vec<&str> = [fx!("snmp.txt"), fx!("netstat.txt"), fx!("ip_link.json"), fx!("ss_uamn.txt")]
        .iter()
        .flat_map(|f| [&f[..f.len() / 3], &f[..=(f.len() / 2)]])
        .collect();
    for t in inputs.iter().chain(truncated.iter()) {
        drop(parse::proc_pairs(t));
        drop(parse::snmp6(t));
        drop(parse::softnet_stat(t));
        drop(parse::proc_net_dev(t));
        drop(parse::ip_link_json(t));
        drop(parse::ethtool_stats(t));
        drop(parse::ethtool_ring("x", t));
        drop(parse::tc_qdisc_json(t));
        drop(parse::proc_stat_table(t));
        drop(parse::conntrack_s(t));
        drop(parse::ss_listeners(t));
        drop(parse::ss_udp(t));
        drop(parse::proc_net_udp(t));
        drop(parse::iptables_save("iptables", t));
        drop(parse::ip_route_json(t));
        drop(parse::ip_neigh_failed(t));
        drop(parse::rps_lines(t));
        drop(parse::split_addr_port(t));
    }
}

fn snap(snmp: &[(&str, i64)], t: f64) -> NetnsSnapshot {
    NetnsSnapshot {
        netns: 7,
        label: "x".into(),
        taken_at: t,
        snmp: snmp.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        softnet: vec![SoftnetCpu { cpu: 0, processed: 10, dropped: 1, time_squeeze: 2, ..Default::default() }],
        qdiscs: parse::tc_qdisc_json(fx!("tc_qdisc.json")),
        conntrack: Some(ConntrackStats { count: Some(1), max: Some(10), stats: [("drop".to_owned(), 1)].into() }),
        ..Default::default()
    }
}

#[test]
#[expect(clippy::float_cmp, reason = "110.0 - 100.0 is exactly 10.0 in f64")]
fn deltas() {
    let b = snap(&[("Udp.RcvbufErrors", 10), ("Tcp.CurrEstab", 5), ("Udp.NoPorts", 3)], 100.0);
    let mut a = snap(&[("Udp.RcvbufErrors", 510), ("Tcp.CurrEstab", 2), ("Udp.NoPorts", 3), ("New.Key", 9)], 110.0);
    a.softnet[0].dropped = 5;
    a.qdiscs[1].drops += 7;
    a.conntrack = Some(ConntrackStats { count: Some(9), max: Some(10), stats: [("drop".to_owned(), 4)].into() });
    let d = delta(&b, &a);
    assert_eq!(d.seconds, 10.0);
    assert_eq!(d.counter("Udp.RcvbufErrors"), 500);
    assert!(!d.snmp.contains_key("Tcp.CurrEstab"), "decrease saturates to 0 and is dropped");
    assert!(!d.snmp.contains_key("Udp.NoPorts"));
    assert!(!d.snmp.contains_key("New.Key"), "a key absent before has no baseline");
    assert_eq!(d.softnet[0].dropped, 4);
    assert_eq!(d.qdiscs[1].drops, 7);
    let ct = d.conntrack.expect("ct");
    assert_eq!((ct.count, ct.stats["drop"]), (Some(9), 3));
    // Idle: identical snapshots give an empty delta.
    let d = delta(&b, &b);
    assert!(d.snmp.is_empty() && d.softnet[0].dropped == 0 && d.qdiscs.iter().all(|q| q.drops == 0));
}

#[test]
fn finish_turns_rule_and_socket_counters_into_deltas() {
    let (chains, rules) = parse::iptables_save("iptables", fx!("iptables_save.txt"));
    let before = Gathered {
        snapshots: vec![snap(&[], 0.0)],
        checks: vec![ConfigChecks {
            netns: 7,
            drop_chains: chains.clone(),
            drop_rules: rules.clone(),
            udp_sockets: parse::ss_udp(fx!("ss_uamn.txt")),
            listeners: parse::ss_listeners(fx!("ss_ltn.txt")),
            ..Default::default()
        }],
    };
    let mut after = before.clone();
    after.checks[0].drop_rules[0].packets = Some(105);
    after.checks[0].udp_sockets[0].drops += 300;
    after.checks[0].listeners[0].drops = Some(20);
    after.snapshots.push(NetnsSnapshot { netns: 9, ..snap(&[("Udp.NoPorts", 50)], 1.0) });
    let (deltas, checks) = finish(before, after);
    assert_eq!(checks[0].drop_rules[0].packets_delta, Some(100));
    assert_eq!(checks[0].drop_rules[1].packets_delta, Some(0));
    assert_eq!(checks[0].udp_sockets[0].drops_delta, Some(300));
    assert_eq!(checks[0].listeners[0].drops_delta, Some(12));
    assert_eq!(deltas.len(), 2);
    assert!(deltas[1].no_baseline && deltas[1].snmp.is_empty());
}

/// A namespace born during the capture counts from zero (its counters started at its birth,
/// host-wide softnet from its first reading); one gone before the end is its last reading;
/// both say when, in seconds since the capture started.
#[test]
fn born_and_gone_namespaces_keep_their_counters() {
    let host = NetnsSnapshot {
        netns: 1,
        softnet: vec![SoftnetCpu { cpu: 0, dropped: 5, ..SoftnetCpu::default() }],
        ..snap(&[], 100.0)
    };
    let mut old = snap(&[("Udp.NoPorts", 10)], 100.0);
    old.netns = 7;
    let before = Gathered { snapshots: vec![host.clone(), old.clone()], checks: vec![] };
    let mut born = snap(&[("Udp.NoPorts", 40), ("TcpExt.ListenOverflows", 3)], 104.0);
    born.netns = 9;
    born.appeared_at = Some(102.5);
    born.softnet = vec![SoftnetCpu { cpu: 0, dropped: 8, ..SoftnetCpu::default() }];
    let mut gone = snap(&[("Udp.NoPorts", 25)], 103.0);
    gone.netns = 7;
    gone.gone_at = Some(103.0);
    let after = Gathered { snapshots: vec![host, gone, born], checks: vec![] };
    let (deltas, _) = finish(before, after);
    let d = |n: u32| deltas.iter().find(|d| d.netns == n).expect("delta");
    let b = d(9);
    assert!(!b.no_baseline);
    assert_eq!((b.counter("Udp.NoPorts"), b.counter("TcpExt.ListenOverflows")), (40, 3), "from its birth");
    assert_eq!(b.softnet[0].dropped, 0, "host-wide softnet is not the new namespace's");
    assert_eq!(b.appeared_after, Some(2.5));
    let g = d(7);
    assert_eq!(g.counter("Udp.NoPorts"), 15, "its last reading against its baseline");
    assert_eq!(g.gone_after, Some(3.0));
}

/// The rules, sockets and devices of a namespace born during the capture count from zero, and
/// the carrier changes of a device's creation are not a flap.
#[test]
fn a_born_namespaces_rules_sockets_and_devices_count_from_zero() {
    let mut born = snap(&[], 104.0);
    born.netns = 9;
    born.appeared_at = Some(102.0);
    born.devices = vec![DeviceStats {
        name: "veth9".into(),
        ifindex: 2,
        carrier_changes: 2,
        rx_dropped: 4,
        ..DeviceStats::default()
    }];
    let (_, rules) = nft::firewall(&nft::decode(include_bytes!("fixtures/nft_dump.bin")));
    let checks = ConfigChecks {
        netns: 9,
        drop_rules: rules,
        udp_sockets: parse::ss_udp(fx!("ss_uamn.txt")),
        ..ConfigChecks::default()
    };
    let (deltas, checks) =
        finish(Gathered::default(), Gathered { snapshots: vec![born], checks: vec![checks.clone()] });
    assert_eq!(checks[0].drop_rules[0].packets_delta, checks[0].drop_rules[0].packets, "{:?}", checks[0].drop_rules[0]);
    assert_eq!(checks[0].udp_sockets[0].drops_delta, Some(checks[0].udp_sockets[0].drops));
    let dev = &deltas[0].devices[0];
    assert_eq!((dev.carrier_changes, dev.rx_dropped), (0, 4));
}

#[test]
fn serde_roundtrip() {
    let g = Gathered { snapshots: vec![snap(&[("Udp.NoPorts", 1)], 1.0)], checks: vec![ConfigChecks::default()] };
    let j = serde_json::to_string(&g).expect("ser");
    let back: Gathered = serde_json::from_str(&j).expect("de");
    assert_eq!(back, g);
}

/// A thread that joined another namespace sees that namespace's /proc/thread-self/net, its
/// /proc/sys/net sysctls and its devices through child processes. Needs root; creates and
/// deletes a namespace.
#[test]
fn live_namespace_view() {
    let root = nix::unistd::Uid::effective().is_root() && run_tool("ip", &["-V"]).is_ok();
    if !crate::testdata::available("live_namespace_view", "root and iproute2", root) {
        return;
    }
    let name = format!("pktl-ut-{}", std::process::id());
    run_tool("ip", &["netns", "add", &name]).expect("ip netns add");
    let result = std::panic::catch_unwind(|| {
        let path = std::path::PathBuf::from(format!("/run/netns/{name}"));
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat")) as u32;
        let ns = crate::host::netns::NetnsRef { inode, path, name: Some(name.clone()), is_self: false };
        // Set a sysctl inside the namespace only, to a value the host is unlikely to have.
        run_tool("ip", &["netns", "exec", &name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2"]).expect("sysctl");
        run_tool("ip", &["netns", "exec", &name, "sysctl", "-qw", "net.core.somaxconn=77"]).expect("sysctl");
        let s = snapshot(&ns);
        assert_eq!(s.netns, inode);
        assert_eq!(s.sysctls.get("net.core.somaxconn").map(String::as_str), Some("77"), "{:?}", s.sysctls);
        assert!(s.snmp.contains_key("Udp.RcvbufErrors"));
        assert!(s.netstat.contains_key("TcpExt.ListenOverflows"));
        let names: Vec<&str> = s.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lo"], "only the namespace's own devices: {:?}", s.unavailable);
        let c = config_checks(&ns);
        assert_eq!(c.rp_filter.get("all"), Some(&2));
        assert!(c.rp_filter.contains_key("lo"));
        assert!(c.listeners.is_empty());
        assert_ne!(read_sysctl("net.core.somaxconn").as_deref(), Some("77"), "host untouched");
    });
    drop(run_tool("ip", &["netns", "del", &name]));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
