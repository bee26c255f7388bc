//! Real-kernel tests of `pktloss diagnose`: each test reproduces one cause of packet loss in
//! network namespaces it creates, runs the real binary, and checks the top cause, its key advice
//! and, where the kernel makes it exact, the number of drops. Run with `--test-threads=1`.
//!
//! As on a host where containers come and go, the namespaces are born after `diagnose` starts
//! and deleted before it ends ([`diagnose_born`]): pktloss must count them from their birth and
//! keep their counters after they are gone.
//!
//! Timing: `Running::start` returns when pktloss logs "tracing" (after its "before" snapshot);
//! each test waits [`SETTLE`], builds its namespaces and makes its traffic, lets them live
//! [`LIVE`] (pktloss reads the namespaces with drops about once a second), deletes them, and
//! leaves the capture running a little after that.
use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use pktloss_tests::{Netns, Running, require_root, sh};
use serde_json::Value;

/// Time between "tracing" and the traffic, for the "before" snapshot.
const SETTLE: Duration = Duration::from_secs(1);

/// How long a scenario's namespaces live after its traffic, so that pktloss reads their
/// counters while they live.
const LIVE: Duration = Duration::from_secs(3);

/// Run `pktloss diagnose` for `secs` seconds with namespaces born and gone during it: after
/// [`SETTLE`], `scenario` creates its namespaces (handing them to the list it is given), makes
/// its fault and traffic, and returns what the assertions need; the namespaces live [`LIVE`]
/// longer, then are deleted before the capture ends, as a short-lived container's would be.
fn diagnose_born<T>(secs: u32, scenario: impl FnOnce(&mut Vec<Netns>) -> T) -> (Value, T) {
    // A slow machine (the kernel matrix's emulated guests) stretches every wait.
    let slow: u32 = std::env::var("PKTLOSS_TEST_SLOW").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let secs = secs * slow;
    let dur = format!("{secs}s");
    let p = Running::start(&["diagnose", "--duration", &dur, "--format", "json"]);
    let started = Instant::now();
    std::thread::sleep(SETTLE * slow);
    let mut nss = Vec::new();
    let out = scenario(&mut nss);
    std::thread::sleep(LIVE * slow);
    drop(nss);
    assert!(
        started.elapsed() + Duration::from_millis(500) < Duration::from_secs(secs.into()),
        "the scenario took {:?}: its namespaces must be gone before the {secs} s capture ends",
        started.elapsed()
    );
    let err = p.stderr();
    let (code, json) = p.finish();
    assert_eq!(code, Some(0), "pktloss diagnose failed: {err}\n{json}");
    (serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad JSON ({e}): {json}")), out)
}

/// A namespace of a scenario: created now, owned by the scenario's list.
fn born(nss: &mut Vec<Netns>, tag: &str) -> usize {
    nss.push(Netns::new(tag));
    nss.len() - 1
}

/// What a test needs of a namespace after it is gone: its name, inode and tag in the output.
struct Gone {
    name: String,
    inode: u64,
    tag: String,
}

impl Gone {
    fn of(ns: &Netns) -> Self {
        Self { name: ns.name.clone(), inode: ns.inode(), tag: ns_tag(ns) }
    }
}

fn causes(v: &Value) -> String {
    serde_json::to_string_pretty(&v["causes"]).unwrap_or_default()
}

/// The top cause, asserted to be `id`.
fn top<'a>(v: &'a Value, id: &str) -> &'a Value {
    let c = v["causes"].as_array().and_then(|a| a.first()).unwrap_or_else(|| panic!("no cause, expected {id}: {v:#}"));
    assert_eq!(c["id"], id, "top cause; causes: {}\nreconciliation: {:#}", causes(v), v["reconciliation"]);
    c
}

fn lines<'a>(c: &'a Value, field: &str) -> Vec<&'a str> {
    c[field].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Assert one advice line of the cause contains every phrase.
fn assert_advice(v: &Value, c: &Value, phrases: &[&str]) {
    assert!(
        lines(c, "advice").iter().any(|l| phrases.iter().all(|p| l.contains(p))),
        "no advice line of {} contains {phrases:?}; causes: {}",
        c["id"],
        causes(v)
    );
}

/// Assert one evidence line of the cause contains every phrase.
fn assert_evidence(v: &Value, c: &Value, phrases: &[&str]) {
    assert!(
        lines(c, "evidence").iter().any(|l| phrases.iter().all(|p| l.contains(p))),
        "no evidence line of {} contains {phrases:?}; causes: {}",
        c["id"],
        causes(v)
    );
}

fn drops(c: &Value) -> u64 {
    c["drops"].as_u64().unwrap_or(0)
}

fn ns_tag(ns: &Netns) -> String {
    format!("[netns {} ({})]", ns.name, ns.inode())
}

/// A veth pair between two namespaces, addressed and up. Names are `<tag>a<pid>`/`<tag>b<pid>`
/// (tag <= 3 characters). With `static_neigh`, each side gets a permanent neighbour entry for
/// the other, so no packet waits for ARP. The pair goes away with the namespaces.
fn veth(tag: &str, a: &Netns, b: &Netns, ip_a: &str, ip_b: &str, prefix: u8, static_neigh: bool) -> (String, String) {
    let pid = std::process::id();
    let (va, vb) = (format!("{tag}a{pid}"), format!("{tag}b{pid}"));
    sh(&["ip", "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name]);
    a.exec(&["ip", "addr", "add", &format!("{ip_a}/{prefix}"), "dev", &va]);
    b.exec(&["ip", "addr", "add", &format!("{ip_b}/{prefix}"), "dev", &vb]);
    a.exec(&["ip", "link", "set", &va, "up"]);
    b.exec(&["ip", "link", "set", &vb, "up"]);
    if static_neigh {
        let mac_a = a.exec(&["cat", &format!("/sys/class/net/{va}/address")]).trim().to_owned();
        let mac_b = b.exec(&["cat", &format!("/sys/class/net/{vb}/address")]).trim().to_owned();
        a.exec(&["ip", "neigh", "replace", ip_b, "lladdr", &mac_b, "dev", &va, "nud", "permanent"]);
        b.exec(&["ip", "neigh", "replace", ip_a, "lladdr", &mac_a, "dev", &vb, "nud", "permanent"]);
    }
    settle_links(&[a, b]);
    (va, vb)
}

/// A UDP socket bound inside a namespace (kept open by the caller).
fn udp_bound(ns: &Netns, addr: &str) -> UdpSocket {
    let addr: SocketAddr = addr.parse().expect("addr");
    ns.run(move || UdpSocket::bind(addr).expect("bind"))
}

fn setsockopt_int(fd: i32, level: i32, opt: i32, val: i32) {
    // SAFETY: valid fd and a pointer to an int of the given size.
    let rc = unsafe { libc::setsockopt(fd, level, opt, (&raw const val).cast(), size_of::<i32>() as libc::socklen_t) };
    assert_eq!(rc, 0, "setsockopt({level}, {opt}, {val}): {}", std::io::Error::last_os_error());
}

fn sockaddr_in(addr: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// A counter from /proc/net/netstat ("`TcpExt`", "`ListenOverflows`") inside the namespace.
fn netstat(ns: &Netns, table: &str, field: &str) -> u64 {
    let text = ns.exec(&["cat", "/proc/net/netstat"]);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("{table}:"))).collect();
    assert!(rows.len() >= 2, "no {table} in netstat");
    let i = rows[0].split_whitespace().position(|n| n == field).unwrap_or_else(|| panic!("no {table}.{field}"));
    rows[1].split_whitespace().nth(i).and_then(|v| v.parse().ok()).expect("number")
}

/// Wait until IPv6 duplicate address detection is over in the namespaces, so that the link
/// bring-up (DAD probes that can reach a peer before its multicast route exists) is not in the
/// capture.
fn settle_links(nss: &[&Netns]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for ns in nss {
        while !ns.exec(&["ip", "-6", "addr", "show", "tentative"]).trim().is_empty() {
            assert!(Instant::now() < deadline, "IPv6 DAD did not finish in {}", ns.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn idle_baseline_has_no_cause() {
    if !require_root("idle_baseline_has_no_cause") {
        return;
    }
    // Namespaces with a veth pair and a listener, all idle, created and deleted during the
    // capture as containers come and go: their start-up (IPv6 router and neighbour
    // solicitations, MLD reports) and configuration (sockets, addresses) must not select a
    // cause.
    let (v, ours) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "idlea"), born(nss, "idleb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        veth("idl", a, b, "10.231.9.1", "10.231.9.2", 30, false);
        let sock = udp_bound(b, "10.231.9.2:5353");
        std::thread::sleep(Duration::from_millis(500));
        drop(sock);
        [a.inode(), b.inode()]
    });
    let list = v["causes"].as_array().expect("causes array");
    // The capture is host-wide: a drop of the host's own (a VM agent's vsock packet, say) may
    // rightly select a cause. What must not happen is a cause without drops (configuration
    // alone) or one in the idle namespaces.
    for c in list {
        let in_ours = c["netns"].as_array().is_some_and(|n| n.iter().any(|i| ours.iter().any(|o| *i == *o)));
        assert!(
            drops(c) > 0 && !in_ours,
            "idle capture gave cause {} (drops {}, in the test's namespaces: {in_ours}): {}\nreconciliation: {:#}",
            c["id"],
            drops(c),
            causes(&v),
            v["reconciliation"]
        );
        println!("idle capture: host drop outside the test's namespaces, cause {} ({} drops)", c["id"], drops(c));
    }
}

#[test]
fn no_listener_is_the_top_cause_with_exact_drops() {
    if !require_root("no_listener") {
        return;
    }
    const N: usize = 150;
    let (v, (ns, noports)) = diagnose_born(9, |nss| {
        let i = born(nss, "dnolis");
        let ns = &nss[i];
        ns.send_udp("127.0.0.1:9911".parse().expect("addr"), N);
        (Gone::of(ns), ns.snmp("Udp", "NoPorts"))
    });
    assert_eq!(noports, N as u64, "kernel Udp.NoPorts of the new namespace");
    let c = top(&v, "no-listener");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_eq!(c["event_drops"].as_u64(), Some(N as u64), "{}", causes(&v));
    assert_eq!(c["counter_drops"].as_u64(), Some(N as u64), "counted from its birth: {}", causes(&v));
    assert!(c["netns"].as_array().is_some_and(|a| a.iter().any(|n| *n == ns.inode)), "{}", causes(&v));
    assert_evidence(&v, c, &[&ns.tag, "nothing listens on udp port 9911"]);
    assert_evidence(&v, c, &[&ns.tag, "Udp.NoPorts +150"]);
    assert_evidence(&v, c, &[&ns.tag, "appeared", "counters count from its birth"]);
    assert_evidence(&v, c, &[&ns.tag, "was gone", "its last reading"]);
    assert_advice(&v, c, &["Start the service on udp port 9911", &ns.tag]);
}

#[test]
fn firewall_drop_names_the_rule() {
    if !require_root("firewall_drop") {
        return;
    }
    const N: usize = 120;
    let (v, ns) = diagnose_born(9, |nss| {
        let i = born(nss, "dfw");
        let ns = &nss[i];
        ns.exec(&["nft", "add", "table", "inet", "pktldiag"]);
        ns.exec(&["nft", "add chain inet pktldiag input { type filter hook input priority 0 ; policy accept ; }"]);
        ns.exec(&["nft", "add rule inet pktldiag input udp dport 7788 counter drop"]);
        ns.send_udp("127.0.0.1:7788".parse().expect("addr"), N);
        Gone::of(ns)
    });
    let c = top(&v, "firewall-drop");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_evidence(&v, c, &[&ns.tag, "udp dport 7788", "inet pktldiag input", &format!("matched {N} packets")]);
    // The advice names the rule and says how to delete it, in the namespace.
    assert_advice(
        &v,
        c,
        &[
            &ns.tag,
            "udp dport 7788",
            &format!("dropped {N} packets"),
            &format!("ip netns exec {} nft delete rule inet pktldiag input handle", ns.name),
        ],
    );
}

#[test]
fn udp_rcvbuf_full_points_at_so_rcvbuf() {
    if !require_root("udp_rcvbuf_full") {
        return;
    }
    const N: usize = 200;
    let (v, (ns, errs, _sock)) = diagnose_born(9, |nss| {
        let i = born(nss, "drcvbuf");
        let ns = &nss[i];
        let sock = udp_bound(ns, "127.0.0.1:5544");
        setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1024);
        ns.send_udp("127.0.0.1:5544".parse().expect("addr"), N);
        // The socket lives until its namespace goes: pktloss reads it while it lives.
        (Gone::of(ns), ns.snmp("Udp", "RcvbufErrors"), sock)
    });
    assert!(errs >= N as u64 / 2, "Udp.RcvbufErrors +{errs}");
    let c = top(&v, "udp-rcvbuf-full");
    assert_eq!(drops(c), errs, "{}", causes(&v));
    assert_eq!(c["event_drops"].as_u64(), Some(errs), "{}", causes(&v));
    assert_evidence(
        &v,
        c,
        &[&ns.tag, "udp socket 127.0.0.1:5544", &format!("{errs} drops during the capture"), "rmem_max"],
    );
    assert_advice(&v, c, &[&ns.tag, "SO_RCVBUF on udp :5544", "rmem_max"]);
}

/// A non-blocking TCP connect from the current thread's namespace.
fn tcp_connect_nb(dst: std::net::SocketAddrV4) -> OwnedFd {
    // SAFETY: plain syscalls on a fresh fd, owned right away.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let sa = sockaddr_in(dst);
        let rc = libc::connect(fd, (&raw const sa).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t);
        let e = std::io::Error::last_os_error();
        assert!(rc == 0 || e.raw_os_error() == Some(libc::EINPROGRESS), "connect: {e}");
        owned
    }
}

#[test]
fn tcp_accept_queue_full_points_at_backlog() {
    if !require_root("tcp_accept_queue_full") {
        return;
    }
    const CONNECTS: usize = 20;
    let (v, (ns, overflows, _listener)) = diagnose_born(9, |nss| {
        let i = born(nss, "dacceptq");
        let ns = &nss[i];
        // listen(fd, 1) and never accept: the accept queue holds 2 connections.
        let listener = ns.run(|| {
            // SAFETY: plain syscalls on a fresh fd, owned right away.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0);
                let owned = OwnedFd::from_raw_fd(fd);
                let sa = sockaddr_in("127.0.0.1:6011".parse().expect("addr"));
                assert_eq!(
                    libc::bind(fd, (&raw const sa).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t),
                    0
                );
                assert_eq!(libc::listen(fd, 1), 0);
                owned
            }
        });
        ns.run(|| {
            let mut fds = Vec::new();
            for _ in 0..CONNECTS {
                fds.push(tcp_connect_nb("127.0.0.1:6011".parse().expect("addr")));
                std::thread::sleep(Duration::from_millis(5));
            }
            // Close before the SYN retransmission timer (1 s): one dropped SYN per connect.
            std::thread::sleep(Duration::from_millis(300));
            drop(fds);
        });
        let overflows = netstat(ns, "TcpExt", "ListenOverflows");
        // The listener stays until the namespace goes: the counters are read while it lives.
        (Gone::of(ns), overflows, listener)
    });
    assert!(overflows >= (CONNECTS - 3) as u64, "TcpExt.ListenOverflows +{overflows}");
    let c = top(&v, "tcp-accept-queue-full");
    assert_eq!(drops(c), overflows, "{}", causes(&v));
    assert_evidence(&v, c, &[&ns.tag, "TcpExt.ListenOverflows"]);
    assert_evidence(&v, c, &[&ns.tag, "listener 127.0.0.1:6011", "backlog 1"]);
    assert_advice(&v, c, &[&ns.tag, "listener 127.0.0.1:6011 backlog 1", "listen()"]);
}

#[test]
fn rp_filter_points_at_loose_mode() {
    if !require_root("rp_filter") {
        return;
    }
    const N: usize = 100;
    let (v, (b, vb, rpf)) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "drpa"), born(nss, "drpb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        let (va, vb) = veth("rpf", a, b, "10.231.11.1", "10.231.11.2", 30, true);
        // The sender also owns 10.231.12.1, which the receiver has no route back to.
        a.exec(&["ip", "addr", "add", "10.231.12.1/32", "dev", &va]);
        b.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
        b.exec(&["sysctl", "-qw", &format!("net.ipv4.conf.{vb}.rp_filter=1")]);
        let sender = a.run(|| UdpSocket::bind("10.231.12.1:0").expect("bind"));
        for i in 0..N {
            sender.send_to(format!("rpf {i}").as_bytes(), "10.231.11.2:9").expect("send");
        }
        std::thread::sleep(Duration::from_millis(200));
        (Gone::of(b), vb, netstat(b, "TcpExt", "IPReversePathFilter"))
    });
    assert_eq!(rpf, N as u64, "kernel IPReversePathFilter of the new namespace");
    let c = top(&v, "rp-filter");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_eq!(c["event_drops"].as_u64(), Some(N as u64), "IP_RPFILTER events: {}", causes(&v));
    assert_evidence(&v, c, &[&b.tag, "rp_filter", "all=1"]);
    assert_advice(
        &v,
        c,
        &[&b.tag, "rp_filter", &format!("net.ipv4.conf.{vb}.rp_filter=2"), &format!("ip netns exec {}", b.name)],
    );
}

#[test]
fn qdisc_drop_points_at_the_tbf_rate() {
    if !require_root("qdisc_drop") {
        return;
    }
    const N: usize = 200;
    let (v, (a, va, qd)) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "dqda"), born(nss, "dqdb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        let (va, _vb) = veth("qd", a, b, "10.231.13.1", "10.231.13.2", 30, true);
        a.exec(&["tc", "qdisc", "add", "dev", &va, "root", "tbf", "rate", "1mbit", "burst", "1600", "limit", "3000"]);
        // The datagrams that pass are received, so the only drops are the qdisc's.
        let rx = udp_bound(b, "10.231.13.2:5000");
        a.run(|| {
            let s = UdpSocket::bind("10.231.13.1:0").expect("bind");
            let payload = [0u8; 1000];
            for _ in 0..N {
                s.send_to(&payload, "10.231.13.2:5000").expect("send");
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(rx);
        let qd = a.exec(&["tc", "-s", "qdisc", "show", "dev", &va]);
        (Gone::of(a), va, qd)
    });
    let c = top(&v, "qdisc-drop");
    assert!(drops(c) >= N as u64 / 2, "{}\n{qd}", causes(&v));
    assert_evidence(&v, c, &[&a.tag, "qdisc tbf", &format!("on dev {va}"), &format!("dropped +{}", drops(c))]);
    assert_advice(&v, c, &[&a.tag, &format!("the tbf qdisc on {va} shapes traffic"), "rate"]);
    assert!(qd.contains(&format!("dropped {}", drops(c))), "tc disagrees: {qd}\n{}", causes(&v));
    // The sends the qdisc dropped are counted by UDP as SndbufErrors: not a second cause.
    assert!(v["causes"].as_array().is_some_and(|a| a.iter().all(|c| c["id"] != "udp-sndbuf-full")), "{}", causes(&v));
}

/// Sum of the "dropped" column of /`proc/net/softnet_stat` (host-wide).
fn softnet_dropped() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .expect("softnet_stat")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|v| u64::from_str_radix(v, 16).ok()))
        .sum()
}

/// Sets a host-wide sysctl and restores the old value on drop (also when the test panics).
struct SysctlGuard {
    key: String,
    old: String,
}

impl SysctlGuard {
    fn set(key: &str, value: &str) -> Self {
        let old = sh(&["sysctl", "-n", key]).trim().to_owned();
        let g = Self { key: key.to_owned(), old };
        sh(&["sysctl", "-qw", &format!("{key}={value}")]);
        g
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        drop(std::process::Command::new("sysctl").args(["-qw", &format!("{}={}", self.key, self.old)]).status());
    }
}

#[test]
fn softnet_backlog_full_points_at_netdev_max_backlog() {
    if !require_root("softnet_backlog_full") {
        return;
    }
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(64);
    assert!(ncpu >= 2, "softnet-backlog-full needs 2 CPUs to reproduce");
    const SENT: usize = 20_000;
    let before = softnet_dropped();
    let (v, ()) = {
        let _g = SysctlGuard::set("net.core.netdev_max_backlog", "1");
        diagnose_born(12, |nss| {
            let (ia, ib) = (born(nss, "dsna"), born(nss, "dsnb"));
            let (a, b) = (&nss[ia], &nss[ib]);
            let (_va, vb) = veth("sn", a, b, "10.231.14.1", "10.231.14.2", 30, true);
            // RPS steers the receive processing of the receiving veth to the last CPU; one
            // sender pinned to CPU 0 queues to that CPU's backlog faster than it drains it (on
            // the sender's own CPU each packet would be processed before the next one is sent,
            // and nothing would queue).
            let mask = format!("{:x}", 1u64 << (ncpu - 1));
            b.exec(&["sh", "-c", &format!("echo {mask} > /sys/class/net/{vb}/queues/rx-0/rps_cpus")]);
            // A receive buffer large enough for every datagram that gets through, so the only
            // drops are the backlog's (SO_RCVBUFFORCE: root may exceed rmem_max).
            let rx = udp_bound(b, "10.231.14.2:5000");
            setsockopt_int(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 256 << 20);
            a.run(|| {
                // SAFETY: a zeroed cpu_set_t is valid; pins only this thread.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(0, &mut set);
                    assert_eq!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set), 0);
                }
                let s = UdpSocket::bind("10.231.14.1:0").expect("bind");
                let deadline = Instant::now() + Duration::from_millis(1200);
                for _ in 0..SENT {
                    if Instant::now() >= deadline {
                        break;
                    }
                    drop(s.send_to(&[0u8; 16], "10.231.14.2:5000"));
                }
            });
            std::thread::sleep(Duration::from_millis(100));
            drop(rx);
        })
    };
    let kernel = softnet_dropped() - before;
    let c = top(&v, "softnet-backlog-full");
    assert!(drops(c) > 0 && drops(c) <= kernel, "{} drops, softnet_stat +{kernel}: {}", drops(c), causes(&v));
    assert_evidence(&v, c, &["[host-wide softnet_stat] dropped +"]);
    assert_evidence(&v, c, &["net.core.netdev_max_backlog = 1"]);
    assert_advice(&v, c, &["sysctl -w net.core.netdev_max_backlog=4096", "(now 1;"]);
}

#[test]
fn routing_no_route_on_a_router() {
    if !require_root("routing") {
        return;
    }
    const N: usize = 100;
    let (v, (r, noroutes)) = diagnose_born(12, |nss| {
        let (ia, ir) = (born(nss, "drta"), born(nss, "drtr"));
        let (a, r) = (&nss[ia], &nss[ir]);
        veth("rt", a, r, "10.231.15.1", "10.231.15.2", 30, true);
        a.exec(&["ip", "route", "add", "default", "via", "10.231.15.2"]);
        // The router forwards but has no route to 10.231.99.0/24.
        r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        a.send_udp("10.231.99.1:9".parse().expect("addr"), N);
        std::thread::sleep(Duration::from_millis(200));
        (Gone::of(r), netstat(r, "IpExt", "InNoRoutes"))
    });
    assert_eq!(noroutes, N as u64, "kernel IpExt.InNoRoutes of the new router");
    let c = top(&v, "routing");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_eq!(c["event_drops"].as_u64(), Some(N as u64), "IP_INNOROUTES events: {}", causes(&v));
    assert_evidence(&v, c, &[&r.tag, "IpExt.InNoRoutes +100"]);
    assert_evidence(&v, c, &["IP_INNOROUTES"]);
    assert_advice(&v, c, &[&r.tag, &format!("ip netns exec {} ip route get 10.231.99.1", r.name)]);
}

#[test]
fn routing_blackhole_route_is_named() {
    if !require_root("routing_blackhole") {
        return;
    }
    const N: usize = 50;
    let (v, r) = diagnose_born(12, |nss| {
        let (ia, ir) = (born(nss, "drtba"), born(nss, "drtbr"));
        let (a, r) = (&nss[ia], &nss[ir]);
        veth("rb", a, r, "10.231.16.1", "10.231.16.2", 30, true);
        a.exec(&["ip", "route", "add", "default", "via", "10.231.16.2"]);
        r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        r.exec(&["ip", "route", "add", "blackhole", "10.231.98.0/24"]);
        a.send_udp("10.231.98.7:9".parse().expect("addr"), N);
        std::thread::sleep(Duration::from_millis(200));
        Gone::of(r)
    });
    let c = top(&v, "routing");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_evidence(&v, c, &[&r.tag, "blackhole route 10.231.98.0/24"]);
    assert_advice(&v, c, &[&r.tag, "ip route del blackhole 10.231.98.0/24"]);
}

#[test]
fn neighbor_failure_names_the_next_hop() {
    if !require_root("neighbor_failure") {
        return;
    }
    const N: usize = 5;
    let (v, (a, va)) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "dnba"), born(nss, "dnbb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        let (va, _vb) = veth("nb", a, b, "10.231.5.1", "10.231.5.2", 29, false);
        // Fail ARP fast: one probe, 300 ms.
        a.exec(&["sysctl", "-qw", &format!("net.ipv4.neigh.{va}.mcast_solicit=1")]);
        a.exec(&["sysctl", "-qw", &format!("net.ipv4.neigh.{va}.retrans_time_ms=300")]);
        // Nobody owns 10.231.5.3: the datagrams wait for ARP, then are dropped.
        a.send_udp("10.231.5.3:9".parse().expect("addr"), N);
        std::thread::sleep(Duration::from_millis(1200));
        (Gone::of(a), va)
    });
    let c = top(&v, "neighbor-failure");
    assert_eq!(c["event_drops"].as_u64(), Some(N as u64), "NEIGH_FAILED events: {}", causes(&v));
    assert_evidence(&v, c, &["NEIGH_FAILED"]);
    assert_evidence(&v, c, &[&a.tag, "10.231.5.3", &va, "FAILED"]);
    assert_advice(&v, c, &[&a.tag, "next hop 10.231.5.3", "does not answer ARP"]);
}

/// An IPv4+UDP datagram with a wrong UDP checksum.
fn bad_csum_datagram(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut ip_sum: u32 = p.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while ip_sum > 0xffff {
        ip_sum = (ip_sum & 0xffff) + (ip_sum >> 16);
    }
    let ip_sum = !(ip_sum as u16);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&0x1234u16.to_be_bytes()); // wrong (and non-zero: zero means "no checksum")
    p.extend_from_slice(payload);
    p
}

#[test]
fn checksum_error_from_a_raw_sender() {
    if !require_root("checksum_error") {
        return;
    }
    const N: usize = 80;
    let (v, (b, csum)) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "dcsa"), born(nss, "dcsb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        veth("cs", a, b, "10.231.17.1", "10.231.17.2", 30, true);
        let rx = udp_bound(b, "10.231.17.2:5000");
        a.run(|| {
            // SAFETY: plain syscalls on a fresh fd, owned right away; buffers outlive the calls.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW);
                assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
                let _owned = OwnedFd::from_raw_fd(fd);
                let pkt = bad_csum_datagram([10, 231, 17, 1], [10, 231, 17, 2], 5000, b"corrupted payload");
                let sa = sockaddr_in("10.231.17.2:0".parse().expect("addr"));
                for _ in 0..N {
                    let n = libc::sendto(
                        fd,
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        0,
                        (&raw const sa).cast(),
                        size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    );
                    assert_eq!(n, pkt.len() as isize, "sendto: {}", std::io::Error::last_os_error());
                }
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(rx);
        (Gone::of(b), b.snmp("Udp", "InCsumErrors"))
    });
    assert_eq!(csum, N as u64, "kernel Udp.InCsumErrors of the new namespace");
    let c = top(&v, "checksum-error");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_eq!(c["event_drops"].as_u64(), Some(N as u64), "UDP_CSUM events: {}", causes(&v));
    assert_evidence(&v, c, &[&b.tag, "Udp.InCsumErrors +80"]);
    assert_evidence(&v, c, &["UDP_CSUM"]);
    // Concrete: the sender by its address, no template device.
    assert_advice(&v, c, &["checksums of packets from 10.231.17.1", "run on the sender"]);
}

#[test]
fn udp_sndbuf_full_points_at_so_sndbuf() {
    if !require_root("udp_sndbuf_full") {
        return;
    }
    const N: usize = 100;
    let (v, (a, port, errs, eagain, qd, _sender)) = diagnose_born(12, |nss| {
        let (ia, ib) = (born(nss, "dsba"), born(nss, "dsbb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        let (va, _vb) = veth("sb", a, b, "10.231.18.1", "10.231.18.2", 30, true);
        // A slow qdisc with a large limit: datagrams wait in it (charged to the socket's send
        // buffer) and are not dropped, so the socket's small SO_SNDBUF fills and sends get EAGAIN.
        a.exec(&["tc", "qdisc", "add", "dev", &va, "root", "tbf", "rate", "8kbit", "burst", "1600", "limit", "100000"]);
        let _rx = udp_bound(b, "10.231.18.2:5000");
        let sender = a.run(|| {
            let s = UdpSocket::bind("10.231.18.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        });
        setsockopt_int(sender.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
        let port = sender.local_addr().expect("addr").port();
        let mut eagain = 0u64;
        for _ in 0..N {
            match sender.send_to(&[7u8; 500], "10.231.18.2:5000") {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => eagain += 1,
                Err(e) => panic!("send: {e}"),
            }
        }
        let qd = a.exec(&["tc", "-s", "qdisc", "show", "dev", &va]);
        // The sender lives until its namespace goes: pktloss reads its socket while it lives.
        (Gone::of(a), port, a.snmp("Udp", "SndbufErrors"), eagain, qd, sender)
    });
    assert!(eagain >= N as u64 / 2, "EAGAIN {eagain}");
    assert_eq!(errs, eagain, "Udp.SndbufErrors vs EAGAIN");
    assert!(qd.contains("dropped 0"), "the qdisc should not drop: {qd}");
    let c = top(&v, "udp-sndbuf-full");
    assert_eq!(drops(c), errs, "{}", causes(&v));
    assert_evidence(&v, c, &[&a.tag, &format!("Udp.SndbufErrors +{errs}")]);
    assert_evidence(&v, c, &[&a.tag, &format!(":{port}"), "SO_SNDBUF"]);
    assert_advice(&v, c, &[&a.tag, &format!("SO_SNDBUF on udp :{port}")]);
    assert_advice(&v, c, &[&a.tag, "net.core.wmem_max"]);
}

/// Two causes at different volumes in two namespaces born during the capture: ranked by the
/// drops each explains, each counted exactly.
#[test]
fn mixed_causes_rank_by_drops() {
    if !require_root("mixed_causes") {
        return;
    }
    let (v, (nolis, fw)) = diagnose_born(9, |nss| {
        let (ia, ib) = (born(nss, "dmixa"), born(nss, "dmixb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        b.exec(&["nft", "add", "table", "inet", "pktlmix"]);
        b.exec(&["nft", "add chain inet pktlmix input { type filter hook input priority 0 ; policy accept ; }"]);
        b.exec(&["nft", "add rule inet pktlmix input udp dport 7799 counter drop"]);
        a.send_udp("127.0.0.1:9912".parse().expect("addr"), 90);
        b.send_udp("127.0.0.1:7799".parse().expect("addr"), 30);
        (Gone::of(a), Gone::of(b))
    });
    let list = v["causes"].as_array().expect("causes");
    let ours: Vec<(&str, u64)> = list
        .iter()
        .filter(|c| c["netns"].as_array().is_some_and(|n| n.iter().any(|i| *i == nolis.inode || *i == fw.inode)))
        .map(|c| (c["id"].as_str().unwrap_or_default(), drops(c)))
        .collect();
    assert_eq!(ours, [("no-listener", 90), ("firewall-drop", 30)], "{}", causes(&v));
}

/// A veth whose peer is down has no carrier: its qdisc is noop, which drops every packet sent
/// to it (`QDISC_DROP`). The cause is the interface, not a short queue.
#[test]
fn interface_down_names_the_device_without_carrier() {
    if !require_root("interface_down") {
        return;
    }
    const N: usize = 60;
    let (v, (a, va)) = diagnose_born(10, |nss| {
        let (ia, ib) = (born(nss, "difa"), born(nss, "difb"));
        let (a, b) = (&nss[ia], &nss[ib]);
        let (va, vb) = veth("if", a, b, "10.231.22.1", "10.231.22.2", 30, true);
        b.exec(&["ip", "link", "set", &vb, "down"]);
        a.run(|| {
            let s = UdpSocket::bind("10.231.22.1:0").expect("bind");
            for _ in 0..N {
                // The noop qdisc refuses them (ENOBUFS): that is the drop.
                drop(s.send_to(b"x", "10.231.22.2:5000"));
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        (Gone::of(a), va)
    });
    let c = top(&v, "interface-down");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_evidence(&v, c, &[&a.tag, &format!("dev {va}"), "no carrier"]);
    assert_advice(&v, c, &[&a.tag, &va, "no carrier"]);
    assert!(v["causes"].as_array().is_some_and(|l| l.iter().all(|c| c["id"] != "qdisc-drop")), "{}", causes(&v));
}

/// Datagrams with DF set that a router must forward onto a link with a smaller MTU: dropped
/// there (`PKT_TOO_BIG`, `Ip.FragFails`). The sender ignores the path MTU it learns
/// (`IP_PMTUDISC_PROBE`), as a host behind a filter that eats ICMP would.
#[test]
fn mtu_too_small_on_a_router_is_fragmentation() {
    if !require_root("mtu_fragmentation") {
        return;
    }
    const N: usize = 40;
    let (v, (r, fragfails)) = diagnose_born(12, |nss| {
        let (ia, ir, ib) = (born(nss, "dmta"), born(nss, "dmtr"), born(nss, "dmtb"));
        let (a, r, b) = (&nss[ia], &nss[ir], &nss[ib]);
        veth("ma", a, r, "10.231.23.1", "10.231.23.2", 30, true);
        let (rb, _) = veth("mb", r, b, "10.231.24.1", "10.231.24.2", 30, true);
        r.exec(&["ip", "link", "set", &rb, "mtu", "1000"]);
        r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        a.exec(&["ip", "route", "add", "default", "via", "10.231.23.2"]);
        let before = r.snmp("Ip", "FragFails");
        a.run(|| {
            let s = UdpSocket::bind("10.231.23.1:0").expect("bind");
            // DF on every datagram, whatever the path MTU says.
            setsockopt_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE);
            let payload = [0u8; 1400];
            for _ in 0..N {
                drop(s.send_to(&payload, "10.231.24.2:5000"));
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        let after = r.snmp("Ip", "FragFails");
        (Gone::of(r), after - before)
    });
    assert_eq!(fragfails, N as u64, "the router's Ip.FragFails");
    let c = top(&v, "mtu-fragmentation");
    assert_eq!(drops(c), N as u64, "{}", causes(&v));
    assert_evidence(&v, c, &[&r.tag, "mtu 1000"]);
}

/// Every verify command of a diagnosis runs where it says (`ip netns exec NAME ...` for the
/// namespace it concerns) and succeeds: advice that cannot be followed is a defect.
#[test]
fn verify_commands_run_where_they_say() {
    if !require_root("verify_commands") {
        return;
    }
    let ns = Netns::new("dverify");
    ns.exec(&["nft", "add", "table", "inet", "pktlverify"]);
    ns.exec(&["nft", "add chain inet pktlverify input { type filter hook input priority 0 ; policy accept ; }"]);
    ns.exec(&["nft", "add rule inet pktlverify input udp dport 7797 counter drop"]);
    let (v, ()) = diagnose_born(6, |_| {
        ns.send_udp("127.0.0.1:9913".parse().expect("addr"), 20);
        ns.send_udp("127.0.0.1:7797".parse().expect("addr"), 20);
    });
    let mut ran = 0;
    for id in ["no-listener", "firewall-drop"] {
        let c = v["causes"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no {id}: {}", causes(&v)));
        for line in lines(c, "verify").iter().filter(|l| !l.starts_with("check: ")) {
            assert!(line.contains(&format!("ip netns exec {} ", ns.name)) || !line.contains("ss "), "{id}: {line}");
            let out = std::process::Command::new("sh").args(["-c", line]).output().expect("sh");
            assert!(out.status.success(), "{id}: `{line}` failed: {}", String::from_utf8_lossy(&out.stderr));
            ran += 1;
        }
    }
    assert!(ran >= 3, "{}", causes(&v));
}
