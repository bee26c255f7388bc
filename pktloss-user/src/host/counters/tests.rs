//! Tests of the /proc and firewall parsers on files captured from a real 6.18 kernel (namespace
//! `pktl-fx` with nft/iptables drop rules and a 1 KiB-rcvbuf UDP socket), of the netlink, ioctl and
//! sysfs readers against a namespace made for it, and a live check that a setns'd thread sees its
//! namespace's /proc and sysctls.
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
    let pd = parse::proc_net_dev(fx!("dev.txt"));
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].name, "pktl-v0");
    assert_eq!(pd[1].rx_packets, 42);
}

#[test]
fn ethtool_names() {
    assert!(parse::ethtool_key_is_interesting("rx_queue_0_drops"));
    assert!(parse::ethtool_key_is_interesting("alloc_rx_buff_failed"));
    assert!(!parse::ethtool_key_is_interesting("rx_kicks"), "non-drop counters are left out");
}

#[test]
fn conntrack_tables() {
    let t = parse::proc_stat_table(fx!("stat_nf_conntrack.txt"));
    assert_eq!(t["entries"], 4);
    assert_eq!(t["insert_failed"], 0);
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
fn proc_udp() {
    let pu = parse::proc_net_udp(fx!("udp.txt"));
    assert_eq!((pu[0].addr.as_str(), pu[0].port, pu[0].drops, pu[0].rx_queue), ("0.0.0.0", 5000, 199, 0x500));
    let pu6 = parse::proc_net_udp(fx!("udp6.txt"));
    assert_eq!((pu6[0].addr.as_str(), pu6[0].port), ("::", 5353));
}

#[test]
fn rps_masks() {
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
    let truncated: Vec<&str> = [fx!("snmp.txt"), fx!("netstat.txt"), fx!("udp.txt")]
        .iter()
        .flat_map(|f| [&f[..f.len() / 3], &f[..=(f.len() / 2)]])
        .collect();
    for t in inputs.iter().chain(truncated.iter()) {
        drop(parse::proc_pairs(t));
        drop(parse::snmp6(t));
        drop(parse::softnet_stat(t));
        drop(parse::proc_net_dev(t));
        drop(parse::proc_stat_table(t));
        drop(parse::proc_net_udp(t));
        drop(parse::iptables_save("iptables", t));
    }
}

/// Namespace `inode`, on a kernel without cookies.
fn ns(inode: u32) -> NetnsId {
    NetnsId { inode, cookie: 0 }
}

fn snap(snmp: &[(&str, i64)], t: f64) -> NetnsSnapshot {
    NetnsSnapshot {
        netns: ns(7),
        label: "x".into(),
        taken_at: t,
        snmp: snmp.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        softnet: vec![SoftnetCpu { cpu: 0, processed: 10, dropped: 1, time_squeeze: 2, ..Default::default() }],
        qdiscs: samples::qdiscs(),
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

/// A reading's namespace stays `netns` and `cookie` in JSON and capture files (the cookie left
/// out when 0), as before readings held a [`NetnsId`]; files without a cookie read as 0, and a
/// reading without `netns` is refused as it was.
#[test]
fn a_readings_namespace_keeps_its_json_fields() {
    let id = NetnsId { inode: 7, cookie: 9 };
    let json = serde_json::to_string(&NetnsSnapshot { netns: id, label: "x".into(), ..NetnsSnapshot::default() })
        .expect("json");
    assert!(json.starts_with(r#"{"netns":7,"cookie":9,"label":"x","#), "{json}");
    let json = serde_json::to_string(&ConfigChecks { netns: ns(7), ..ConfigChecks::default() }).expect("json");
    assert!(json.starts_with(r#"{"netns":7,"label":"#), "{json}");
    let d = NetnsDelta { netns: id, seconds: 2.0, ..NetnsDelta::default() };
    let back: NetnsDelta = serde_json::from_str(&serde_json::to_string(&d).expect("json")).expect("read back");
    assert_eq!(back, d);
    let old = r#"{"netns":7,"label":"netns:7","drop_chains":[],"drop_rules":[],"listeners":[],"udp_sockets":[],"rp_filter":{},"rps":[],"rings":[],"drop_routes":[],"failed_neighbors":[],"unavailable":[]}"#;
    let read: ConfigChecks = serde_json::from_str(old).expect("a file without cookies");
    assert_eq!(read.netns, ns(7));
    let none = serde_json::from_str::<ConfigChecks>(&old.replace(r#""netns":7,"#, "")).map(|_| ());
    assert!(none.as_ref().is_err_and(|e| e.to_string().contains("missing field `netns`")), "{none:?}");
}

#[test]
fn finish_turns_rule_and_socket_counters_into_deltas() {
    let (chains, rules) = parse::iptables_save("iptables", fx!("iptables_save.txt"));
    let before = Gathered {
        snapshots: vec![snap(&[], 0.0)],
        checks: vec![ConfigChecks {
            netns: ns(7),
            drop_chains: chains.clone(),
            drop_rules: rules.clone(),
            udp_sockets: samples::udp_sockets(),
            listeners: samples::listeners(),
            ..Default::default()
        }],
    };
    let mut after = before.clone();
    after.checks[0].drop_rules[0].packets = Some(105);
    after.checks[0].udp_sockets[0].drops += 300;
    after.checks[0].listeners[0].drops = Some(20);
    after.snapshots.push(NetnsSnapshot { netns: ns(9), ..snap(&[("Udp.NoPorts", 50)], 1.0) });
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
        netns: ns(1),
        softnet: vec![SoftnetCpu { cpu: 0, dropped: 5, ..SoftnetCpu::default() }],
        ..snap(&[], 100.0)
    };
    let mut old = snap(&[("Udp.NoPorts", 10)], 100.0);
    old.netns = ns(7);
    let before = Gathered { snapshots: vec![host.clone(), old.clone()], checks: vec![] };
    let mut born = snap(&[("Udp.NoPorts", 40), ("TcpExt.ListenOverflows", 3)], 104.0);
    born.netns = ns(9);
    born.appeared_at = Some(102.5);
    born.softnet = vec![SoftnetCpu { cpu: 0, dropped: 8, ..SoftnetCpu::default() }];
    let mut gone = snap(&[("Udp.NoPorts", 25)], 103.0);
    gone.netns = ns(7);
    gone.gone_at = Some(103.0);
    let after = Gathered { snapshots: vec![host, gone, born], checks: vec![] };
    let (deltas, _) = finish(before, after);
    let d = |n: u32| deltas.iter().find(|d| d.netns.inode == n).expect("delta");
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
    born.netns = ns(9);
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
        netns: ns(9),
        drop_rules: rules,
        udp_sockets: samples::udp_sockets(),
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
        assert_eq!(s.netns.inode, inode);
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

/// The netlink, ioctl and sysfs readers against a namespace made for it: a veth pair with a tbf
/// qdisc and an RPS mask, drop routes in two tables (IPv4 and IPv6), a FAILED and an
/// INCOMPLETE neighbour, a TCP listener of backlog 1 with a connection waiting, and a UDP
/// socket of a small buffer that dropped datagrams; what `ip`, `tc`, `ss` and `ethtool`
/// printed of the same is what the parsers made before. Needs root; deletes the namespace.
#[test]
fn live_readers_see_the_namespace() {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    let root = nix::unistd::Uid::effective().is_root() && run_tool("ip", &["-V"]).is_ok();
    if !crate::testdata::available("live_readers_see_the_namespace", "root and iproute2", root) {
        return;
    }
    let name = format!("pktl-rd-{}", std::process::id());
    run_tool("ip", &["netns", "add", &name]).expect("ip netns add");
    let result = std::panic::catch_unwind(|| {
        let ip = |args: &str| {
            let mut v = vec!["-n", name.as_str()];
            v.extend(args.split_whitespace());
            run_tool("ip", &v).unwrap_or_else(|e| panic!("ip {args}: {e}"));
        };
        ip("link set lo up");
        ip("link add rd0 type veth peer name rd1");
        ip("link set rd0 up");
        ip("link set rd1 up");
        ip("addr add 10.77.0.1/24 dev rd0");
        ip("route add blackhole 10.200.0.0/24");
        ip("route add unreachable 10.201.0.0/24 table 100");
        ip("-6 route add prohibit 2001:db8::/64");
        ip("neigh add 10.77.0.9 dev rd0 nud failed");
        ip("neigh add 10.77.0.8 dev rd0 nud incomplete");
        run_tool(
            "ip",
            &[
                "netns", "exec", &name, "tc", "qdisc", "add", "dev", "rd0", "root", "tbf", "rate", "1mbit", "burst",
                "1600", "latency", "100ms",
            ],
        )
        .expect("tc");
        run_tool("ip", &["netns", "exec", &name, "sh", "-c", "echo 1 > /sys/class/net/rd0/queues/rx-0/rps_cpus"])
            .expect("rps");
        let path = std::path::PathBuf::from(format!("/run/netns/{name}"));
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("stat")) as u32;
        let ns = crate::host::netns::NetnsRef { inode, path, name: Some(name.clone()), is_self: false };
        // Sockets made in the namespace, kept open by this thread while it is read.
        let socks = crate::host::netns::run_in(&ns, || {
            let l = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Stream,
                nix::sys::socket::SockFlag::empty(),
                None,
            )?;
            let a = nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 8080);
            nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&l), &a)?;
            nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(1)?)?;
            let l = TcpListener::from(l);
            let c1 = TcpStream::connect("127.0.0.1:8080")?;
            let u = UdpSocket::bind("0.0.0.0:5000")?;
            nix::sys::socket::setsockopt(&u, nix::sys::socket::sockopt::RcvBuf, &1024)?;
            let tx = UdpSocket::bind("127.0.0.1:0")?;
            for _ in 0..20 {
                tx.send_to(&[0u8; 1000], "127.0.0.1:5000")?;
            }
            Ok((l, c1, u))
        })
        .expect("sockets");
        let snap = snapshot(&ns);
        let rd0 = snap.devices.iter().find(|d| d.name == "rd0").unwrap_or_else(|| panic!("rd0: {snap:?}"));
        assert_eq!((rd0.kind.as_str(), rd0.qdisc.as_str(), rd0.operstate.as_str()), ("veth", "tbf", "UP"));
        assert!(rd0.up && rd0.lower_up && rd0.mtu == 1500 && rd0.ifindex > 1, "{rd0:?}");
        assert!(rd0.ethtool.contains_key("rx_queue_0_drops"), "veth's ethtool statistics: {:?}", rd0.ethtool);
        let lo = snap.devices.iter().find(|d| d.name == "lo").expect("lo");
        assert!(lo.rx_packets >= 21 && lo.rx_bytes > 20_000, "loopback statistics: {lo:?}");
        let tbf = snap.qdiscs.iter().find(|q| q.kind == "tbf").unwrap_or_else(|| panic!("tbf: {:?}", snap.qdiscs));
        assert_eq!((tbf.dev.as_str(), tbf.parent.as_str(), tbf.handle.ends_with(':')), ("rd0", "root", true));
        assert!(
            snap.qdiscs.iter().any(|q| q.dev == "lo" && q.kind == "noqueue" && q.handle == "0:"),
            "{:?}",
            snap.qdiscs
        );
        assert!(snap.unavailable.iter().all(|u| !u.contains("rtnetlink")), "{:?}", snap.unavailable);
        let checks = config_checks(&ns);
        let routes: Vec<String> =
            checks.drop_routes.iter().map(|r| format!("{} {} {}", r.kind, r.dst, r.table)).collect();
        for want in ["blackhole 10.200.0.0/24 main", "unreachable 10.201.0.0/24 100", "prohibit 2001:db8::/64 main"] {
            assert!(routes.iter().any(|r| r == want), "{want} in {routes:?}");
        }
        let mut neigh = checks.failed_neighbors.clone();
        neigh.sort();
        assert_eq!(neigh, ["10.77.0.8 dev rd0 INCOMPLETE", "10.77.0.9 dev rd0 FAILED"]);
        let me = format!("[{}]", std::process::id());
        let lis = checks.listeners.iter().find(|l| l.port == 8080).unwrap_or_else(|| panic!("{:?}", checks.listeners));
        assert_eq!((lis.addr.as_str(), lis.backlog, lis.accept_queue), ("127.0.0.1", 1, 1), "{lis:?}");
        assert!(lis.drops.is_some() && lis.inode.is_some_and(|i| i > 0) && lis.process.ends_with(&me), "{lis:?}");
        let udp =
            checks.udp_sockets.iter().find(|u| u.port == 5000).unwrap_or_else(|| panic!("{:?}", checks.udp_sockets));
        assert_eq!((udp.addr.as_str(), udp.peer.as_str()), ("0.0.0.0", "0.0.0.0:*"));
        assert!(udp.drops > 0 && udp.rcvbuf.is_some_and(|b| b < 8192) && udp.rx_queue > 0, "{udp:?}");
        assert!(udp.process.ends_with(&me), "{udp:?}");
        let rps: Vec<String> = checks.rps.iter().map(|q| format!("{} {} {}", q.dev, q.queue, q.mask)).collect();
        assert!(rps.iter().any(|r| r.starts_with("rd0 rx-0 ") && r.ends_with('1')), "{rps:?} {:?}", checks.unavailable);
        assert!(rps.iter().all(|r| !r.starts_with("lo ")), "{rps:?}");
        assert!(checks.rings.iter().all(|r| r.dev != "lo"), "{:?}", checks.rings);
        assert!(
            checks.unavailable.iter().all(|u| !u.contains("netlink") && !u.contains("sock_diag") && !u.contains("rps")),
            "{:?}",
            checks.unavailable
        );
        drop(socks);
    });
    drop(run_tool("ip", &["netns", "del", &name]));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
