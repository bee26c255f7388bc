//! Foundation tests on the real kernel: exact drop counts, flows and netns, cleanup, errors.
//! Each test makes its own namespaces and real traffic; run with `--test-threads=1`.
use std::{net::SocketAddr, time::Duration};

use pktloss_tests::{
    End, NETNS_THREAD, Netns, Running, Veth, assert_nothing_attached, flow_count, kernel_has_reasons, kernel_version,
    loaded_pktloss_programs, nft_drop, reason_count, reason_name, require_root, root_test, run,
};

const N: usize = 200;

fn no_socket_case(tag: &str, dst: &str, extra: &[&str]) {
    no_socket_case_with(tag, dst, extra, &[]);
}

/// `NO_SOCKET` drops of `N` datagrams to `dst`, with `ip_options` in their IPv4 headers: exact
/// counts of the flow (ports included), the kernel's `NoPorts`, the location and the samples.
fn no_socket_case_with(tag: &str, dst: &str, extra: &[&str], ip_options: &[u8]) {
    if !require_root(tag) {
        return;
    }
    let ns = Netns::new(tag);
    let dst: SocketAddr = dst.parse().expect("addr");
    let v6 = dst.is_ipv6();
    let before = if v6 { ns.snmp("Udp6", "NoPorts") } else { ns.snmp("Udp", "NoPorts") };
    let mut args = vec!["capture", "--format", "json"];
    args.extend_from_slice(extra);
    let p = Running::start(&args);
    let src = ns.send_udp_with(dst, N, ip_options);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let after = if v6 { ns.snmp("Udp6", "NoPorts") } else { ns.snmp("Udp", "NoPorts") };
    let inode = ns.inode();
    let ip = dst.ip().to_string();
    let reason = reason_name("NO_SOCKET");
    let exact = flow_count(&s, |f| {
        f.netns == inode
            && f.proto == "udp"
            && f.reason == reason
            && f.src == ip.as_str()
            && f.sport == src.port()
            && f.dst == ip.as_str()
            && f.dport == dst.port()
            && f.family == if v6 { 6 } else { 4 }
            && f.device == "lo"
    });
    assert_eq!(exact, N as u64, "NO_SOCKET drops of our flow in netns {inode}: {s:#}");
    assert_eq!(after - before, N as u64, "kernel NoPorts delta");
    assert!(reason_count(&s, reason) >= N as u64);
    let sym = if v6 { "__udp6_lib_rcv" } else { "__udp4_lib_rcv" };
    assert!(
        s["locations"].as_array().expect("locations").iter().any(|l| l["reason"] == reason
            && l["symbol"].as_str().is_some_and(|x| x.starts_with(sym))
            && l["count"].as_u64() >= Some(N as u64)),
        "no {sym} location: {:#}",
        s["locations"]
    );
    let code =
        s["reasons"].as_array().and_then(|a| a.iter().find(|r| r["reason"] == reason)).expect("reason")["code"].clone();
    assert!(code.as_u64().is_some(), "reason code");
    assert!(
        s["probes"].as_array().expect("probes").iter().any(|p| p["name"] == "skb:kfree_skb" && p["active"] == true)
    );
    // With kernel BTF, the default is the tp_btf program: a verifier rejection would fall back
    // to the classic tracepoint silently and cost more per drop.
    if !extra.contains(&"--classic") && std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        let kfree =
            s["probes"].as_array().expect("probes").iter().find(|p| p["name"] == "skb:kfree_skb").expect("kfree");
        assert_eq!(kfree["attach"], "tp_btf", "{kfree:#}");
    }
    // With detail on, the samples of our flow name the sending thread and process.
    if !extra.contains(&"--no-detail") {
        let ours: Vec<&serde_json::Value> = s["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .filter(|x| x["netns"] == inode && x["sport"] == src.port())
            .collect();
        assert!(!ours.is_empty(), "no sample of our flow: {:#}", s["samples"]);
        for x in ours {
            if !ip_options.is_empty() && x["data_start"] == "network" {
                // Version 4, header length 5 words plus the options.
                let ihl = 5 + ip_options.len() / 4;
                let first = format!("4{ihl:x}");
                assert!(x["data_hex"].as_str().is_some_and(|h| h.starts_with(&first)), "{x:#}");
            }
            assert_sender_or_softirq(x);
        }
    }
}

/// A sample names the sending thread, or the kernel's softirq thread: a loopback receive runs
/// in the sender's context unless softirq work was deferred to `ksoftirqd` (a busy CPU).
fn assert_sender_or_softirq(x: &serde_json::Value) {
    if x["comm"].as_str().is_some_and(|c| c.starts_with("ksoftirqd/")) {
        return;
    }
    assert_eq!(x["comm"], NETNS_THREAD, "{x:#}");
    assert_eq!(x["pid"], u64::from(std::process::id()), "{x:#}");
}

/// Four NOPs of IPv4 options: the ports sit at byte 24, read apart from the header words.
const IP_NOPS: [u8; 4] = [1, 1, 1, 1];

#[test]
fn udp4_with_ip_options_exact() {
    no_socket_case_with("nosocko", "127.0.0.1:9995", &[], &IP_NOPS);
}

#[test]
fn udp4_with_ip_options_exact_classic_tracepoint() {
    no_socket_case_with("nosockoc", "127.0.0.1:9994", &["--classic"], &IP_NOPS);
}

root_test!(interleaved_flows_are_counted_apart, {
    let ns = Netns::new("mix");
    let p = Running::start(&["capture", "--format", "json", "--no-detail"]);
    let (a, b, c) = ns.run(|| {
        let sock = || std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (a, b, c) = (sock(), sock(), sock());
        for _ in 0..N {
            for (s, dst) in [(&a, "127.0.0.1:9"), (&a, "127.0.0.1:10"), (&a, "127.0.0.2:10"), (&b, "127.0.0.2:10")] {
                s.send_to(b"pktloss mix", dst).expect("send_to");
            }
            for ttl in [64, 65] {
                c.set_ttl(ttl).expect("ttl");
                c.send_to(b"pktloss mix", "127.0.0.1:11").expect("send_to");
            }
        }
        let port = |s: &std::net::UdpSocket| s.local_addr().expect("addr").port();
        (port(&a), port(&b), port(&c))
    });
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let inode = ns.inode();
    let count = |sport: u16, dst: &str, dport: u16| {
        flow_count(&s, |f| {
            f.netns == inode
                && f.proto == "udp"
                && f.reason == "NO_SOCKET"
                && f.src == "127.0.0.1"
                && f.sport == sport
                && f.dst == dst
                && f.dport == dport
        })
    };
    let n = N as u64;
    assert_eq!(count(a, "127.0.0.1", 9), n, "{:#}", s["flows"]);
    assert_eq!(count(a, "127.0.0.1", 10), n, "{:#}", s["flows"]);
    assert_eq!(count(a, "127.0.0.2", 10), n, "{:#}", s["flows"]);
    assert_eq!(count(b, "127.0.0.2", 10), n, "{:#}", s["flows"]);
    assert_eq!(count(c, "127.0.0.1", 11), 2 * n, "{:#}", s["flows"]);
    let ours = s["flows"].as_array().expect("flows").iter().filter(|f| f["netns"] == inode && f["dport"] == 11).count();
    assert_eq!(ours, 1, "the TTL split a flow: {:#}", s["flows"]);
});

// A spent detail budget comes back with the next budget epoch (once a second): drops sent
// from one CPU a second apart both get detail events, however many drops were over budget.
root_test!(detail_budget_comes_back_each_second, {
    let ns = Netns::new("refill");
    let p = Running::start(&["capture", "--format", "json", "--detail-budget", "1"]);
    let dst: SocketAddr = "127.0.0.1:12".parse().expect("addr");
    // The sending threads inherit this thread's CPU, so both bursts spend one CPU's budget.
    let pinned = PinnedHere::new();
    let cpu = pinned.cpu;
    let first = ns.send_udp(dst, 500);
    std::thread::sleep(Duration::from_millis(1300));
    let second = ns.send_udp(dst, 500);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let inode = ns.inode();
    let samples = |port: u16| {
        s["samples"].as_array().expect("samples").iter().filter(|x| x["netns"] == inode && x["sport"] == port).count()
    };
    assert!(samples(first.port()) >= 1, "no detail for the first burst (CPU {cpu}): {:#}", s["detail"]);
    assert!(samples(second.port()) >= 1, "no detail for the second burst (CPU {cpu}): {:#}", s["detail"]);
    assert!(s["detail"]["lost_budget"].as_u64().unwrap_or(0) >= 900, "{:#}", s["detail"]);
});

/// Keeps the calling thread on the CPU it runs on; the thread's CPUs come back on drop.
struct PinnedHere {
    cpu: usize,
    old: libc::cpu_set_t,
}

impl PinnedHere {
    fn new() -> Self {
        // SAFETY: cpu_set_t is plain old data; CPU_SET writes within it; the affinity calls
        // with pid 0 read and change only this thread's.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            let rc = libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut old);
            assert_eq!(rc, 0, "sched_getaffinity: {}", std::io::Error::last_os_error());
            let cpu = libc::sched_getcpu();
            assert!(cpu >= 0, "sched_getcpu: {}", std::io::Error::last_os_error());
            let cpu = cpu as usize;
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
            assert_eq!(rc, 0, "sched_setaffinity: {}", std::io::Error::last_os_error());
            Self { cpu, old }
        }
    }
}

impl Drop for PinnedHere {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const self.old) };
    }
}

root_test!(detail_accounting_adds_up, {
    let ns = Netns::new("budget");
    // A budget of 10/s cannot cover 2000 drops: every drop is either delivered or counted lost.
    let p = Running::start(&["capture", "--format", "json", "--detail-budget", "10"]);
    ns.send_udp("127.0.0.1:9".parse().expect("addr"), 2000);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let total = s["total_drops"].as_u64().expect("total");
    let with = s["drops_with_detail"].as_u64().expect("with");
    let without = s["drops_without_detail"].as_u64().expect("without");
    let d = &s["detail"];
    assert!(total >= 2000);
    assert_eq!(with + without, total);
    assert_eq!(d["delivered"].as_u64(), Some(with), "{d}");
    assert_eq!(with + d["lost_budget"].as_u64().unwrap_or(0) + d["lost_ringbuf"].as_u64().unwrap_or(0), total, "{d}");
    assert!(s["lost_events"].as_u64().unwrap_or(0) >= 1000, "{d}");
});

root_test!(stacks_are_symbolized, {
    let ns = Netns::new("stacks");
    let p = Running::start(&["capture", "--format", "json", "--stacks"]);
    ns.send_udp("127.0.0.1:9995".parse().expect("addr"), 20);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let loc = s["locations"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["symbol"].as_str().is_some_and(|x| x.starts_with("__udp4_lib_rcv"))))
        .expect("udp location");
    let stack: Vec<&str> = loc["stack"].as_array().expect("stack").iter().filter_map(|f| f.as_str()).collect();
    assert!(stack.len() >= 3, "{stack:?}");
    assert!(stack.iter().any(|f| f.starts_with("ip_") || f.starts_with("__netif") || f.contains("udp")), "{stack:?}");
    // The stack starts at the drop location: none of the tracer's own frames above it.
    assert_eq!(stack[0], loc["symbol"], "{stack:?}");
    assert!(!stack.iter().any(|f| f.starts_with("bpf_trace_run") || f.starts_with("_einittext")), "{stack:?}");
});

/// N datagrams over a veth pair into a namespace that drops them: the sender's veth shows at
/// least N transmitted packets and the receiver's exactly N drops, with TX from `flags` (the
/// device counters by default, the `net_dev_queue` probe with --tx-trace).
fn device_tx_counts(test: &str, tag: &str, flags: &[&str]) {
    if !require_root(test) {
        return;
    }
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    let (va, vb) = (format!("{tag}a{}", std::process::id()), format!("{tag}b{}", std::process::id()));
    Veth::new(End::new(&a.name, &va, "10.231.7.1"), End::new(&b.name, &vb, "10.231.7.2"), 30);
    // Resolve the neighbour first so every datagram is transmitted.
    let _ = a.send_udp("10.231.7.2:9".parse().expect("addr"), 1);
    std::thread::sleep(Duration::from_millis(200));
    let mut args = vec!["capture", "--format", "json"];
    args.extend_from_slice(flags);
    let p = Running::start(&args);
    a.send_udp("10.231.7.2:9".parse().expect("addr"), N);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let inode_a = a.inode();
    let inode_b = b.inode();
    let dev = s["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["netns"] == inode_a && d["name"] == va.as_str()))
        .unwrap_or_else(|| panic!("device {va} missing: {:#}", s["devices"]));
    let tx = dev["tx_packets"].as_u64().unwrap_or(0);
    // A few ARP or ND packets may join the N datagrams, no more.
    assert!((N as u64..N as u64 + 8).contains(&tx), "{dev}");
    let dev_queue = s["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "net:net_dev_queue"))
        .unwrap_or_else(|| panic!("no net_dev_queue probe status: {:#}", s["probes"]));
    assert_eq!(dev_queue["active"], flags.contains(&"--tx-trace"), "{dev_queue}");
    // The receiver drops them (no socket): attributed to the receiving veth.
    let rx = flow_count(&s, |f| f.netns == inode_b && f.reason == "NO_SOCKET" && f.device == vb.as_str());
    assert_eq!(rx, N as u64, "{s:#}");
}

#[test]
fn device_tx_counts_over_veth_from_device_counters() {
    device_tx_counts("device_tx_counts_over_veth_from_device_counters", "txc", &[]);
}

#[test]
fn device_tx_counts_over_veth_with_tx_trace() {
    device_tx_counts("device_tx_counts_over_veth_with_tx_trace", "txt", &["--tx-trace"]);
}

root_test!(watch_json_lines_add_up, {
    let ns = Netns::new("watch");
    let p = Running::start(&["watch", "--interval", "200ms", "--format", "json"]);
    ns.send_udp("127.0.0.1:9994".parse().expect("addr"), N);
    std::thread::sleep(Duration::from_millis(700));
    p.signal(libc::SIGTERM);
    let (code, out) = p.finish();
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.len() >= 3, "{out}");
    // The last line is the closing total; the lines before it are the intervals, the last of
    // them the partial one cut by the signal.
    let (total, intervals) = lines.split_last().expect("lines");
    assert_eq!(total["total"], true, "{out}");
    assert!(intervals.iter().all(|l| l.get("total").is_none()), "{out}");
    let no_socket = |ls: &[serde_json::Value]| -> u64 {
        ls.iter()
            .flat_map(|l| l["top"].as_array().cloned().unwrap_or_default())
            .filter(|e| {
                e["reason"] == reason_name("NO_SOCKET")
                    && e["symbol"].as_str().is_some_and(|x| x.starts_with("__udp4_lib_rcv"))
            })
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert!(no_socket(intervals) >= N as u64, "{out}");
    assert_eq!(no_socket(intervals), no_socket(std::slice::from_ref(total)), "intervals add up to the total: {out}");
    let sum: u64 = intervals.iter().map(|l| l["drops"].as_u64().unwrap_or(0)).sum();
    assert_eq!(sum, total["drops"].as_u64().unwrap_or(0), "interval drops add up to the total");
    assert_eq!(sum, total["total_drops"].as_u64().unwrap_or(0), "{out}");
});

// `watch --duration` ends with the last, partial interval and the closing total: drops made
// just before the end are shown.
root_test!(watch_duration_shows_the_last_partial_interval, {
    let ns = Netns::new("watchend");
    let p = Running::start(&["watch", "--interval", "1s", "--duration", "1500ms", "--format", "json"]);
    std::thread::sleep(Duration::from_millis(1150));
    ns.send_udp("127.0.0.1:9992".parse().expect("addr"), 30);
    let (code, out) = p.finish();
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let (total, intervals) = lines.split_last().expect("lines");
    assert_eq!(total["total"], true, "{out}");
    let last = intervals.last().expect("the partial interval");
    assert!(last["interval_secs"].as_f64().is_some_and(|s| s < 0.9), "the last interval is the partial one: {out}");
    let ours = |l: &serde_json::Value| -> u64 {
        l["top"].as_array().map_or(0, |t| {
            t.iter().filter(|e| e["reason"] == reason_name("NO_SOCKET")).map(|e| e["count"].as_u64().unwrap_or(0)).sum()
        })
    };
    assert!(ours(last) >= 30, "the drops of the last half second are in the partial interval: {out}");
    assert!(ours(total) >= 30, "{out}");
});

root_test!(count_stops_the_capture, {
    let ns = Netns::new("count");
    let p = Running::start(&["capture", "--count", "50", "--format", "json"]);
    ns.send_udp("127.0.0.1:9993".parse().expect("addr"), 100);
    let (code, out) = p.finish();
    assert_eq!(code, Some(0));
    let s: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(s["total_drops"].as_u64() >= Some(50));
});

fn assert_usage_error(args: &[&str], needle: &str) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?} should print one line: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"));
}

/// `pktloss --version`, a loose snapshot (the commit and target vary, programs may be added):
/// the version, the commit, the target and its linking, and the embedded programs by attach
/// point, each `tp_btf` one with its classic-tracepoint fallback.
#[test]
fn version_names_commit_target_and_programs() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(format!("pktloss {}", env!("CARGO_PKG_VERSION")).as_str()), "{text}");
    let commit = lines.next().and_then(|l| l.strip_prefix("commit: ")).expect("a commit line");
    assert!(commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{text}");
    let target = lines.next().and_then(|l| l.strip_prefix("target: ")).expect("a target line");
    assert!(target.starts_with(std::env::consts::ARCH) && target.contains("-linux-"), "{text}");
    assert!(target.ends_with(" (static)") || target.ends_with(" (dynamic)"), "{text}");
    let ebpf = lines.next().and_then(|l| l.strip_prefix("ebpf: ")).expect("an ebpf line");
    let programs: Vec<String> = lines.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        ebpf,
        format!(
            "{} programs for {} kernels, struct offsets from the running kernel's BTF",
            programs.len(),
            std::env::consts::ARCH
        ),
        "{text}"
    );
    for want in [
        "tp_btf/kfree_skb kfree_skb_btf (else kfree_skb_tp)",
        "tracepoint kfree_skb_tp",
        "tp_btf/net_dev_queue net_dev_queue_btf (else net_dev_queue_tp)",
        "kprobe tcp_drop",
        "tracepoint tcp_retransmit_skb",
    ] {
        assert!(programs.iter().any(|p| p == want), "no `{want}` in:\n{text}");
    }
    // `-V` is the one-line form.
    let short = run(&["-V"]);
    assert_eq!(String::from_utf8_lossy(&short.stdout).trim(), format!("pktloss {}", env!("CARGO_PKG_VERSION")));
}

root_test!(unprivileged_is_a_clear_error, {
    use std::os::unix::process::CommandExt as _;
    let bin = pktloss_tests::NobodyBin::new();
    let out = pktloss_tests::pktloss_command_at(&bin.path)
        .args(["capture", "--duration", "1s"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
});

root_test!(tcp_retransmissions_are_counted_per_flow, {
    use std::io::Write as _;
    let a = Netns::new("rta");
    let b = Netns::new("rtb");
    let (va, vb) = (format!("ra{}", std::process::id()), format!("rb{}", std::process::id()));
    Veth::new(End::new(&a.name, &va, "10.231.8.1"), End::new(&b.name, &vb, "10.231.8.2"), 30);
    let listener = b.run(|| std::net::TcpListener::bind("10.231.8.2:8081").expect("listen"));
    let client = a.run(|| std::net::TcpStream::connect("10.231.8.2:8081").expect("connect"));
    let (_server, _) = listener.accept().expect("accept");
    let sport = client.local_addr().expect("addr").port();
    // From now on the receiver drops the client's segments: the client retransmits.
    let _nft_rt = nft_drop(&b, "pktlrt", "tcp dport 8081");
    let p = Running::start(&["capture", "--format", "json"]);
    let mut c = &client;
    c.write_all(b"hello").expect("write");
    std::thread::sleep(Duration::from_millis(1500));
    let s = p.stop_json();
    let r = &s["retransmits"];
    assert!(r["total"].as_u64() >= Some(1), "{r:#}");
    let inode_a = a.inode();
    let flow = r["flows"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["netns"] == inode_a && f["sport"] == sport && f["dport"] == 8081))
        .unwrap_or_else(|| panic!("no retransmit flow for :{sport}: {r:#}"));
    assert_eq!(flow["src"], "10.231.8.1");
    assert_eq!(flow["dst"], "10.231.8.2");
    let dropped = flow_count(&s, |f| f.netns == b.inode() && f.reason == "NETFILTER_DROP" && f.sport == sport);
    assert!(dropped >= 2, "original segment and its retransmissions dropped by nft: {dropped}");
});

fn assert_start_error(env: (&str, &str), needle: &str) {
    let out =
        pktloss_tests::pktloss_command().args(["capture", "--duration", "1s"]).env(env.0, env.1).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

/// A summary's probe, by name.
fn probe<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["probes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no probe {name}: {:#}", s["probes"]))
}

/// One variant of [`every_flag_variant_loads`] loaded, attached by the expected path and exited
/// with a summary.
fn check_variant(btf: bool, flags: &[&str], out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{flags:?} did not load: {err}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
    let kfree = probe(&s, "skb:kfree_skb");
    assert_eq!(kfree["active"], true, "{flags:?}: {kfree:#}");
    let want = if btf && !flags.contains(&"--classic") { "tp_btf" } else { "tracepoint" };
    assert_eq!(kfree["attach"], want, "{flags:?}: {kfree:#}");
    if flags.contains(&"--tx-trace") {
        let tx = probe(&s, "net:net_dev_queue");
        assert_eq!(tx["active"], true, "{flags:?}: {tx:#}");
        assert_eq!(tx["attach"], want, "{flags:?}: {tx:#}");
    }
}

/// The pid of the one child of `parent` (pktloss under its tracer).
fn child_of(parent: u32) -> u32 {
    let started = std::time::Instant::now();
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
        if let Some(pid) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return pid;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no child of {parent}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one program pktloss may run: legacy iptables (`x_tables`, no netlink interface) is read
/// with `iptables-legacy-save` when a namespace has legacy tables (issue 29).
const FIREWALL_TOOLS: &[&str] = &["\"iptables-legacy-save\"", "\"ip6tables-legacy-save\""];

/// The `execve` calls strace recorded: pktloss's own, and any program it started (but
/// [`FIREWALL_TOOLS`]).
fn execs(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text.lines()
        .filter(|l| l.contains("execve("))
        .filter(|l| !FIREWALL_TOOLS.iter().any(|t| l.contains(&format!("[{t}"))))
        .map(str::to_owned)
        .collect()
}

// `diagnose` and `serve` read the counters and configuration of a namespace with drops (links,
// qdiscs, sockets, routes, neighbours, NIC statistics, RPS, conntrack) without starting any
// program: under `strace -f -e trace=execve` the only execve is pktloss's own. ~18 s.
root_test!(diagnose_and_serve_start_no_program, {
    let dir = std::env::temp_dir().join(format!("pktl-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ns = Netns::new("noexec");
    ns.exec(&["ip", "link", "add", "nx0", "type", "veth", "peer", "name", "nx1"]);
    ns.exec(&["ip", "link", "set", "nx0", "up"]);
    let dst: SocketAddr = "127.0.0.1:9".parse().expect("addr");

    let log = dir.join("diagnose.strace");
    let log_s = log.to_str().expect("path").to_owned();
    let wrap = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", log_s.as_str()];
    let run = Running::start_wrapped(&wrap, &["diagnose", "--duration", "3s", "--format", "json"]);
    ns.send_udp(dst, 20);
    let err = run.stderr();
    let (code, out) = run.finish();
    assert_eq!(code, Some(0), "diagnose failed: {err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    assert!(v["causes"].to_string().contains("no-listener"), "{v}");
    let e = execs(&log);
    assert_eq!(e.len(), 1, "diagnose started programs: {e:#?}");

    let log = dir.join("serve.strace");
    let log_s = log.to_str().expect("path").to_owned();
    let wrap = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", log_s.as_str()];
    let listen = format!("127.0.0.1:{}", pktloss_tests::free_port());
    let serve = Running::start_wrapped(&wrap, &["serve", "--listen", &listen, "--window", "2s", "--netns-labels"]);
    let pid = child_of(serve.child.id());
    for _ in 0..2 {
        ns.send_udp(dst, 10);
        std::thread::sleep(Duration::from_millis(2500));
        let (status, _, body) = pktloss_tests::http_get(&listen, "/metrics", None);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("pktloss_netns_drops_total{{netns=\"{}\"", ns.name)), "{body}");
    }
    // SAFETY: a signal to pktloss itself (the child of strace).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let err = serve.stderr();
    let (code, _) = serve.finish();
    assert_eq!(code, Some(0), "serve failed: {err}");
    let e = execs(&log);
    assert_eq!(e.len(), 1, "serve started programs: {e:#?}");
    drop(std::fs::remove_dir_all(&dir));
});

/// Portability tests: run in every x86-64 guest of the kernel matrix (`cargo xtask vm-test`
/// selects them by this module) and on the host.
mod matrix {
    use super::*;

    #[test]
    fn udp4_no_socket_exact_classic_tracepoint() {
        no_socket_case("nosockc", "127.0.0.1:9997", &["--classic"]);
    }

    /// The helper-read path of IPv6 (two reads: the addresses span both halves of the header).
    #[test]
    fn udp6_no_socket_exact_classic_tracepoint() {
        no_socket_case("nosock6c", "[::1]:9992", &["--classic"]);
    }

    #[test]
    fn udp4_no_socket_exact_counters_only() {
        // Detail off: flows and counts still exact.
        no_socket_case("nosockx", "127.0.0.1:9996", &["--no-detail"]);
    }

    // Every program variant a flag can select passes this kernel's verifier and attaches: detail
    // on and off, stacks, flows off, each record-size class of `--snaplen` (the header alone, each
    // 8-byte rounding step near the edges, the default and the maximum), `--tx-trace`, on the
    // `tp_btf` path and on the classic one.
    root_test!(every_flag_variant_loads, {
        let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
        let mut variants: Vec<Vec<&str>> = vec![
            vec![],
            vec!["--no-detail"],
            vec!["--no-flows"],
            vec!["--no-detail", "--no-flows"],
            vec!["--stacks"],
            vec!["--detail-budget", "unlimited"],
            vec!["--tx-trace"],
        ];
        for snaplen in ["0", "1", "7", "8", "9", "64", "127", "200", "255", "256"] {
            variants.push(vec!["--snaplen", snaplen]);
        }
        let mut all = Vec::new();
        for v in &variants {
            all.push(v.clone());
            let mut classic = v.clone();
            classic.push("--classic");
            all.push(classic);
        }
        // A few at once: each is its own load and attach, and the verifier's work is most of this
        // test's time on the kernel matrix's emulated CPUs. Nothing stays loaded after each batch.
        for batch in all.chunks(4) {
            let outs: Vec<std::process::Output> = std::thread::scope(|scope| {
                let runs: Vec<_> = batch
                    .iter()
                    .map(|flags| {
                        scope.spawn(move || {
                            let mut args = vec!["capture", "--duration", "300ms", "--format", "json"];
                            args.extend_from_slice(flags);
                            run(&args)
                        })
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().expect("capture thread")).collect()
            });
            for (flags, out) in batch.iter().zip(outs) {
                check_variant(btf, flags, &out);
            }
            assert_nothing_attached(&format!("after {batch:?}"));
        }
    });

    // Each probe says how it is attached and, when it is not, why: the `kfree_skb` program by
    // `tp_btf` where the kernel has BTF, retransmissions by the classic tracepoint, and the
    // `tcp_drop()` kprobe attached exactly where kallsyms has the function and kprobes exist,
    // its skip note telling removed (5.19+) from inlined.
    root_test!(attach_modes_are_reported, {
        let out = run(&["capture", "--duration", "300ms", "--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        for p in s["probes"].as_array().expect("probes") {
            assert!(p["attach"].as_str().is_some_and(|a| !a.is_empty()), "{p:#}");
            if p["active"] == false {
                assert!(p["note"].as_str().is_some_and(|n| n.len() > 10), "an inactive probe says why: {p:#}");
            }
        }
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            assert_eq!(probe(&s, "skb:kfree_skb")["attach"], "tp_btf");
        }
        let retrans = probe(&s, "tcp:tcp_retransmit_skb");
        assert_eq!(
            (retrans["active"].clone(), retrans["attach"].clone()),
            (true.into(), "tracepoint".into()),
            "{retrans:#}"
        );
        // tcp:tcp_send_reset: resets by reason where the tracepoint has one (6.10+), by flow before.
        let rst = probe(&s, "tcp:tcp_send_reset");
        let rst_fmt =
            std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format").unwrap_or_default();
        assert_eq!(rst["active"], !rst_fmt.is_empty(), "{rst:#}");
        if !rst_fmt.is_empty() {
            let want = if rst_fmt.contains("sk_rst_reason") { "per flow and reset reason" } else { "no reset reason" };
            assert!(rst["note"].as_str().is_some_and(|n| n.contains(want)), "{rst:#}");
        }
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").expect("kallsyms");
        let has_tcp_drop = kallsyms.lines().any(|l| l.split_whitespace().nth(2) == Some("tcp_drop"));
        let kprobes = std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists();
        let tcp_drop = probe(&s, "tcp_drop");
        assert_eq!(tcp_drop["active"], has_tcp_drop && kprobes, "{tcp_drop:#}");
        let note = tcp_drop["note"].as_str().unwrap_or_default();
        if !has_tcp_drop {
            let want = if kernel_version() >= (5, 19) { "gone since 5.19" } else { "inlined" };
            assert!(note.contains(want), "tcp_drop note should say {want:?}: {note}");
        }
    });

    root_test!(nothing_stays_loaded_after_exit_sigterm_sigkill, {
        assert_nothing_attached("before");
        let out = run(&["capture", "--duration", "1s"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_nothing_attached("after a normal exit");

        let p = Running::start(&["capture"]);
        assert!(!loaded_pktloss_programs().is_empty(), "programs should be loaded while running");
        p.signal(libc::SIGTERM);
        let (code, _) = p.finish();
        assert_eq!(code, Some(0));
        assert_nothing_attached("after SIGTERM");

        let p = Running::start(&["watch"]);
        p.signal(libc::SIGKILL);
        drop(p.finish());
        assert_nothing_attached("after SIGKILL");
    });

    // A program the verifier refuses gives one line: which program, which kernel, the refused
    // instruction and the verifier's message, and where the whole log went (a 0600 file); nothing
    // stays loaded. (`PKTLOSS_TEST_SHORT_RECORDS` makes the packet copy 8 bytes longer than the
    // detail record, which a verifier must refuse.)
    root_test!(verifier_rejection_is_one_line_with_the_log_in_a_file, {
        use std::os::unix::fs::PermissionsExt as _;
        let out = pktloss_tests::pktloss_command()
            .args(["capture", "--duration", "1s"])
            .env("PKTLOSS_TEST_SHORT_RECORDS", "1")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.len() < 1000, "{} characters: {err}", err.len());
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert!(err.contains(&format!("kernel {} refused kfree_skb_tp", release.trim())), "{err}");
        assert!(err.contains("call bpf_probe_read_kernel"), "the refused instruction: {err}");
        let path = err
            .split("full log in ")
            .nth(1)
            .and_then(|r| r.split([')', ';']).next())
            .unwrap_or_else(|| panic!("no log path: {err}"));
        let log = std::fs::read_to_string(path).expect("the log file");
        assert!(log.contains("processed ") && log.len() > 1000, "a whole verifier log: {} bytes", log.len());
        assert_eq!(std::fs::metadata(path).expect("stat").permissions().mode() & 0o777, 0o600);
        for p in err.split("log in ").skip(1).filter_map(|r| r.split([')', ';']).next()) {
            drop(std::fs::remove_file(p.trim()));
        }
        assert_nothing_attached("after a verifier rejection");
    });

    #[test]
    fn reasons_come_from_the_running_kernel() {
        let out = run(&["reasons", "--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let fmt = std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format").unwrap_or_default();
        let rows = v.as_array().expect("array");
        if !fmt.is_empty() && !kernel_has_reasons() {
            // Before 5.17: none, and the text says so.
            assert!(rows.is_empty(), "{v:#}");
            let text = run(&["reasons"]);
            assert!(text.status.success());
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(text.contains("this kernel has no drop reasons") && text.contains("UNKNOWN"), "{text}");
            return;
        }
        assert!(rows.len() > 20);
        for r in rows {
            let (code, name) = (r["code"].as_u64().expect("code"), r["reason"].as_str().expect("name"));
            assert!(
                !matches!(name, "NOT_DROPPED_YET" | "SKB_NOT_DROPPED_YET" | "SKB_CONSUMED" | "MAX" | "SUBSYS_MASK"),
                "{name} is not a drop reason"
            );
            if !fmt.is_empty() && code < 0x10000 {
                assert!(fmt.contains(&format!("{{ {code}, \"{name}\" }}")), "{code} {name} not in tracefs format");
            }
        }
    }

    /// Flows that differ in one key field from the drop before (destination port, destination
    /// address, source port), sent interleaved so that every drop ends the run of the one before,
    /// and one flow whose consecutive packets differ only outside the key (TTL, and with it the
    /// checksum and the IP ID): each flow counted exactly and apart from the others.
    /// Every drop reason of the running kernel (its BTF enums, as `pktloss reasons` lists them) is
    /// classified: the cause its drops count under, or benign (not loss), or the rule that classifies
    /// it by context (protocol, location). A reason with none fails, by name.
    #[test]
    fn every_drop_reason_is_classified() {
        let out = run(&["reasons", "--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let rows = v.as_array().expect("array");
        let (mut causes, mut benign, mut by) = (0, 0, 0);
        let mut missing = Vec::new();
        for r in rows {
            let name = r["reason"].as_str().expect("name");
            match (r["cause"].as_str(), r["benign"].as_str(), r["by"].as_str()) {
                (Some(c), None, None) if c != "unclassified" => causes += 1,
                (None, Some(_), None) => benign += 1,
                (None, None, Some(_)) => by += 1,
                _ => missing.push(name.to_owned()),
            }
        }
        assert!(missing.is_empty(), "{} of {} reasons without one class: {missing:?}", missing.len(), rows.len());
        println!("{} reasons classified: {causes} causes, {benign} benign, {by} by context", rows.len());
    }

    /// Portability tests the arm64 guest runs too (with the aarch64 binary), besides every
    /// x86-64 guest.
    mod arm64 {
        use super::*;

        #[test]
        fn udp4_no_socket_exact() {
            no_socket_case("nosock4", "127.0.0.1:9999", &[]);
        }

        #[test]
        fn udp6_no_socket_exact() {
            no_socket_case("nosock6", "[::1]:9998", &[]);
        }

        root_test!(nftables_drop_rule_exact, {
            let ns = Netns::new("nft");
            let _nft_test = nft_drop(&ns, "pktltest", "udp dport 7777");
            let p = Running::start(&["capture", "--format", "json"]);
            let src = ns.send_udp("127.0.0.1:7777".parse().expect("addr"), N);
            std::thread::sleep(Duration::from_millis(300));
            let s = p.stop_json();
            let inode = ns.inode();
            let reason = reason_name("NETFILTER_DROP");
            let got =
                flow_count(&s, |f| f.netns == inode && f.reason == reason && f.dport == 7777 && f.sport == src.port());
            assert_eq!(got, N as u64, "{s:#}");
            if !kernel_has_reasons() {
                // Without reasons, the netfilter drops are the ones freed by the hook.
                assert!(
                    s["locations"].as_array().expect("locations").iter().any(|l| l["symbol"]
                        .as_str()
                        .is_some_and(|x| x.starts_with("nf_hook_slow") || x.starts_with("nft_do_chain"))
                        && l["count"].as_u64() >= Some(N as u64)),
                    "no nf_hook_slow location with {N} drops: {:#}",
                    s["locations"]
                );
            }
            let rules = ns.exec(&["nft", "list", "chain", "inet", "pktltest", "input"]);
            assert!(rules.contains(&format!("packets {N} ")), "nft counter disagrees: {rules}");
            // Samples carry the packet bytes of the dropped datagram, starting at the IPv4 header.
            let sample = s["samples"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["netns"] == inode))
                .expect("a sample from our netns");
            assert_eq!(sample["data_start"], "network");
            assert!(sample["data_hex"].as_str().is_some_and(|h| h.starts_with("45")), "{sample:#}");
            // The sending thread, as the kernel saw it (or the softirq thread it deferred to).
            assert_sender_or_softirq(sample);
        });
    }
}

/// Portability tests whose outcome does not depend on the kernel: run once, in the 5.10 guest
/// of the kernel matrix (`cargo xtask vm-test` selects them by this module), and on the host.
mod matrix_once {
    use super::*;

    #[test]
    fn bad_input_is_one_line_and_exit_2() {
        assert_usage_error(&["capture", "--duration", "banana"], "banana");
        assert_usage_error(&["capture", "--snaplen", "9999"], "9999");
        assert_usage_error(&["capture", "--detail-budget", "lots"], "lots");
        assert_usage_error(&["capture", "--ringbuf-kib", "3"], "power of two");
        assert_usage_error(&["capture", "--stacks", "--no-detail"], "--no-detail");
        assert_usage_error(&["capture", "--count", "0"], "0");
        assert_usage_error(&["watch", "--interval", "0s"], "0s");
        assert_usage_error(&["frobnicate"], "frobnicate");
        if require_root("bad_output_dir") {
            assert_usage_error(&["capture", "--duration", "1s", "-o", "/nonexistent/dir/x.json"], "does not exist");
            assert_usage_error(
                &["capture", "--duration", "1s", "--pcapng", "/tmp/x.pcapng", "--no-detail"],
                "--no-detail",
            );
            assert_usage_error(
                &["capture", "--duration", "1s", "--pcapng", "/tmp/x.pcapng", "--snaplen", "0"],
                "--snaplen 0",
            );
            assert_nothing_attached("after a usage error");
        }
    }

    root_test!(missing_kernel_features_are_clear_errors, {
        assert_start_error(("PKTLOSS_BTF", "/nonexistent/vmlinux"), "no kernel BTF");
        assert_start_error(("PKTLOSS_TRACEFS", "/nonexistent/tracing"), "tracefs is not mounted");
        // A tracefs without the skb:kfree_skb tracepoint.
        let dir = std::env::temp_dir().join(format!("pktl-fake-tracefs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("events/net")).expect("mkdir");
        assert_start_error(("PKTLOSS_TRACEFS", dir.to_str().expect("path")), "no skb:kfree_skb tracepoint");
        drop(std::fs::remove_dir_all(&dir));
        assert_nothing_attached("after start errors");
    });
}
