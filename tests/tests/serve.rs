//! `pktloss serve` against a real `Prometheus`: the test starts Debian's `prometheus` on a
//! loopback port with a config it writes, makes known drops in namespaces it creates, and reads
//! the values back with `PromQL` through Prometheus's HTTP API. Also: the exposition passes
//! `promtool check metrics`, a taken port is one line, memory stays flat under a random-port
//! flood with namespace churn, and no client (a half-sent request, 200 slow ones) keeps `serve`
//! from answering scrapes or from stopping within 2 s of SIGTERM.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pktloss_tests::{
    Netns, Running, assert_nothing_attached, free_port, http_get, kernel_has_reasons, nft_drop, reason_name, root_test,
    run, stop_serve,
};
use serde_json::Value;

/// Percent-encode a `PromQL` query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server of its own, on a loopback port, killed and its data removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pktloss-prom-{}", std::process::id()));
        drop(fs::remove_dir_all(&dir));
        fs::create_dir_all(&dir).expect("prometheus dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pktloss\n    static_configs:\n      - targets: ['{target}']\n"
        );
        fs::write(dir.join("prometheus.yml"), config).expect("config");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package `prometheus`, installed by `cargo xtask setup`)");
        let p = Self { child, dir, addr };
        let t = Instant::now();
        loop {
            if TcpStream::connect(&p.addr).is_ok() && http_get(&p.addr, "/-/ready", None).0 == 200 {
                return p;
            }
            assert!(t.elapsed() < Duration::from_mins(1), "prometheus not ready in 60 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Instant query: each series' labels and value.
    fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let (status, _, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", encode(q)), None);
        assert_eq!(status, 200, "query {q}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {q}: {e}: {body}"));
        v["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let x = r["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
                        (r["metric"].clone(), x)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The one value of `q`, once it is `want` (or the last one seen after `timeout`).
    fn wait_for(&self, q: &str, timeout: Duration, want: impl Fn(f64) -> bool) -> Option<f64> {
        let t = Instant::now();
        let mut last = None;
        while t.elapsed() < timeout {
            let r = self.query(q);
            if let [(_, v)] = r.as_slice() {
                last = Some(*v);
                if want(*v) {
                    return last;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
        drop(fs::remove_dir_all(&self.dir));
    }
}

root_test!(serve_port_in_use_is_one_line, {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(&["serve", "--listen", &addr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("cannot listen on") && err.contains(&addr), "{err}");
    assert_nothing_attached("after exit");
    let out = run(&["serve", "--listen", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
});

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Series in one scrape.
fn series(listen: &str) -> usize {
    let (_, _, body) = http_get(listen, "/metrics", None);
    body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count()
}

// Memory and series stay flat under a random-port flood (every datagram a new flow, so the
// kernel's flow table evicts all the time) with namespaces created and deleted every second.
// Five minutes (`PKTLOSS_LONG_RUN_SECS` sets another length).
root_test!(memory_and_series_stay_flat_under_flood_and_churn, {
    let secs: u64 = std::env::var("PKTLOSS_LONG_RUN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&[
        "serve",
        "--listen",
        &listen,
        "--window",
        "5s",
        "--netns-labels",
        "--max-netns",
        "16",
        "--netns-grace",
        "3s",
        "--detail-budget",
        "unlimited",
    ]);
    let pid = serve.child.id();
    let flood = Netns::new("flood");
    let until = Instant::now() + Duration::from_secs(secs);
    let path = format!("/run/netns/{}", flood.name);
    let sender = std::thread::spawn(move || {
        let file = fs::File::open(&path).expect("open netns");
        use std::os::fd::AsRawFd as _;
        // SAFETY: valid fd; affects only this thread.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut sent = 0u64;
        let mut port: u16 = 1024;
        // Bounded in time and count.
        while Instant::now() < until && sent < 200_000_000 {
            port = port.wrapping_mul(7919).wrapping_add(13) | 1024;
            let dst: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
            drop(s.send_to(b"x", dst));
            sent += 1;
        }
        sent
    });
    let mut samples = Vec::new();
    let mut max_series = 0;
    let mut i = 0;
    while Instant::now() < until {
        // Churn: a namespace with a drop in it, created and deleted each second.
        let ns = Netns::new(&format!("churn{}", i % 1000));
        ns.send_udp("127.0.0.1:9".parse().expect("addr"), 3);
        drop(ns);
        i += 1;
        std::thread::sleep(Duration::from_millis(700));
        samples.push(rss_kib(pid));
        max_series = max_series.max(series(&listen));
    }
    let sent = sender.join().expect("sender");
    let third = samples.len() / 3;
    assert!(third >= 3, "too few samples: {samples:?}");
    let early = *samples[third..2 * third].iter().max().unwrap_or(&0);
    let late = *samples[2 * third..].iter().max().unwrap_or(&0);
    println!(
        "long run {secs} s: {sent} datagrams, {i} namespaces; RSS KiB early {early} late {late}; at most {max_series} series; samples {samples:?}"
    );
    // Flat: the last third grows by at most 10 % (plus 8 MiB of allocator slack) over the
    // middle one; the series stay bounded (reasons + 50 functions + 16 namespaces' reasons...).
    assert!(late <= early + early / 10 + 8 * 1024, "RSS grew: middle {early} KiB, last {late} KiB");
    assert!(max_series < 2000, "series unbounded: {max_series}");
    drop(flood);
    stop_serve(serve);
});

/// The value of `pktloss_netns_drops_total{netns=NAME,reason=REASON}` in one scrape.
fn netns_series(body: &str, name: &str, reason: &str) -> Option<u64> {
    let series = format!("pktloss_netns_drops_total{{netns=\"{name}\",reason=\"{reason}\"}} ");
    body.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
}

// Namespaces made one after another get inodes the kernel used before: each keeps its own
// series, equal to its own `NoPorts`, under its own name, never another's. The first 100 are
// scraped while they live; 20 more live about 1.3 s each and are never waited for.
root_test!(netns_series_exact_when_inodes_are_reused, {
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&[
        "serve",
        "--listen",
        &listen,
        "--window",
        "5s",
        "--netns-labels",
        "--max-netns",
        "200",
        "--netns-grace",
        "10m",
    ]);
    let reason = reason_name("NO_SOCKET");
    // A scrape once a second all along, as Prometheus would: every value seen of every series.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let (stop, listen) = (std::sync::Arc::clone(&stop), listen.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(http_get(&listen, "/metrics", None).2);
                std::thread::sleep(Duration::from_secs(1));
            }
            seen
        })
    };
    let mut expected: Vec<(String, u64, u64)> = Vec::new();
    for i in 0..120 {
        let ns = Netns::new(&format!("reuse{i}"));
        let inode = ns.inode();
        let before = ns.snmp("Udp", "NoPorts");
        ns.send_udp("127.0.0.1:9".parse().expect("addr"), 10);
        let noports = ns.snmp("Udp", "NoPorts") - before;
        assert_eq!(noports, 10, "{}: the kernel's count", ns.name);
        if i < 100 {
            // Until a scrape shows it (exact at once or never: checked at the end).
            let t = Instant::now();
            while netns_series(&http_get(&listen, "/metrics", None).2, &ns.name, reason).is_none() {
                assert!(t.elapsed() < Duration::from_secs(10), "{} never exported", ns.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            std::thread::sleep(Duration::from_millis(1300));
        }
        expected.push((ns.name.clone(), inode, noports));
        drop(ns);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut scrapes = scraper.join().expect("scraper");
    scrapes.push(http_get(&listen, "/metrics", None).2);
    let inodes: std::collections::BTreeSet<u64> = expected.iter().map(|e| e.1).collect();
    println!("{} namespaces had {} inodes; {} scrapes", expected.len(), inodes.len(), scrapes.len());
    assert!(inodes.len() < expected.len(), "the kernel reused no inode: the test proves nothing");
    let last = scrapes.last().expect("a scrape");
    for (name, _, noports) in &expected {
        assert_eq!(netns_series(last, name, reason), Some(*noports), "{name}: its own NoPorts, under its name");
        // Never more than its own, at any scrape (no other namespace's drops under its name).
        for body in &scrapes {
            if let Some(v) = netns_series(body, name, reason) {
                assert!(v <= *noports, "{name} showed {v} > {noports}");
            }
        }
    }
    // Every drop of these namespaces is under one of their names (checked above, each exact);
    // a series still named by its inode is another process's namespace, gone before it was
    // listed (other tests may run beside this one).
    let unnamed: Vec<&str> =
        last.lines().filter(|l| l.starts_with("pktloss_netns_drops_total{netns=\"netns:")).collect();
    println!("series named by inode (not this test's): {unnamed:?}");
    stop_serve(serve);
});

// A random-port flood overflows the kernel's flow table: the flood namespace's count is
// still the nftables rule's counter, exactly.
root_test!(netns_count_exact_when_the_flow_table_overflows, {
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&["serve", "--listen", &listen, "--window", "5s", "--netns-labels"]);
    let ns = Netns::new("overflow");
    let _nft_ovf = nft_drop(&ns, "pktlovf", "udp dport != 9");
    let sent = ns.run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut sent = 0u64;
        let until = Instant::now() + Duration::from_secs(5);
        // Bounded in time and count; ports in turn through 60000, more than seven times the
        // 8192-flow table, so that the table evicts all the time.
        while Instant::now() < until && sent < 2_000_000 {
            let port = 1024 + (sent % 60_000) as u16;
            if s.send_to(b"x", SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    let rules = ns.exec(&["nft", "list", "chain", "inet", "pktlovf", "input"]);
    let counted: u64 = rules
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("nft counter: {rules}"));
    let reason = reason_name("NETFILTER_DROP");
    let t = Instant::now();
    let (mut got, mut body) = (None, String::new());
    while t.elapsed() < Duration::from_secs(10) {
        body = http_get(&listen, "/metrics", None).2;
        got = netns_series(&body, &ns.name, reason);
        if got == Some(counted) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let evicted = body
        .lines()
        .find_map(|l| l.strip_prefix("pktloss_flow_evictions_total ")?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("sent {sent}, nft counted {counted}, netns series {got:?}, flow evictions {evicted}");
    assert!(counted >= 40_000, "flood too small to overflow the table: {counted}");
    assert!(evicted > 0, "the flow table did not overflow");
    assert_eq!(got, Some(counted), "per-namespace count vs the nft counter");
    drop(ns);
    stop_serve(serve);
});

/// The head of a request that never ends (no blank line).
const HALF_SENT: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";

/// SIGTERM, then the time until `serve` exited (0, within 2 s) and nothing is left loaded.
fn stop_within_2s(serve: Running, what: &str) -> Duration {
    let t = Instant::now();
    serve.signal(libc::SIGTERM);
    let err = serve.stderr();
    let (code, _) = serve.finish();
    let took = t.elapsed();
    assert_eq!(code, Some(0), "{what}: pktloss serve failed: {err}");
    assert!(took < Duration::from_secs(2), "{what}: serve took {took:?} to exit after SIGTERM: {err}");
    assert_nothing_attached(what);
    took
}

/// Whether the server closed this connection (EOF or reset after whatever it sent), without
/// waiting.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 4096];
    // Bounded: the server sends at most one short response before closing.
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

/// A request with one header line too many for the server (hyper takes at most 100).
fn too_many_headers(addr: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let pad = (0..150).map(|i| format!("X-Pad-{i}: {}", "v".repeat(32))).collect::<Vec<_>>().join("\r\n");
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{pad}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    drop(s.read_to_string(&mut raw));
    raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

// One connection that sent half a request and then nothing: SIGTERM still stops `serve` within
// 2 s, programs detached. (Before, graceful shutdown waited for that request forever.) Also the
// answers that must not change: 404 elsewhere, 431 for too many headers, the format by Accept.
root_test!(serve_stops_with_a_half_sent_request, {
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&["serve", "--listen", &listen, "--window", "5s"]);
    let (status, head, _) = http_get(&listen, "/metrics", None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let (status, head, body) = http_get(&listen, "/metrics", Some("application/openmetrics-text; version=1.0.0"));
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/openmetrics-text") && body.trim_end().ends_with("# EOF"), "{head}");
    assert_eq!(http_get(&listen, "/nope", None).0, 404);
    assert_eq!(too_many_headers(&listen), 431);

    let mut half = TcpStream::connect(&listen).expect("connect");
    half.write_all(HALF_SENT).expect("write");
    // The server has read it (and waits for the rest) before the signal.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!closed_by_server(&mut half), "the half-sent request was closed before the signal");
    let took = stop_within_2s(serve, "half-sent request");
    println!("stop with a half-sent request: {took:?}");
    assert!(closed_by_server(&mut half), "the half-sent request's connection is still open");
});

// 200 slow clients, half of them sending a request head a byte a second (slowloris), half having
// sent half a head and nothing more: scrapes still answer in under 1 s each; the server closes
// every slow connection once the header-read timeout (10 s) is past; then, with 200 more
// half-sent requests open, SIGTERM stops `serve` within 2 s.
root_test!(serve_answers_and_stops_beside_slow_clients, {
    const SLOW: usize = 200;
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&["serve", "--listen", &listen, "--window", "5s"]);
    assert_eq!(http_get(&listen, "/metrics", None).0, 200);

    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW).map(|_| TcpStream::connect(&listen).expect("connect")).collect();
    for s in slow.iter_mut().step_by(2) {
        s.write_all(HALF_SENT).expect("write");
    }
    // The slowloris half: a byte of a never-ending head every second, from a thread of its own
    // (bounded in time); a write error is the server's close.
    let mut loris: Vec<TcpStream> = slow.iter().skip(1).step_by(2).map(|s| s.try_clone().expect("clone")).collect();
    let dribble = std::thread::spawn(move || {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head.iter().take(20) {
            loris.retain_mut(|s| s.write_all(&[*b]).is_ok());
            if loris.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });

    // Scrape every 250 ms until every slow connection is closed (or 16 s have passed).
    let mut latencies = Vec::new();
    let mut closed_at = vec![None; SLOW];
    while opened.elapsed() < Duration::from_secs(16) && closed_at.iter().any(Option::is_none) {
        let t = Instant::now();
        let (status, head, _) = http_get(&listen, "/metrics", None);
        let took = t.elapsed();
        assert_eq!(status, 200, "a scrape beside {SLOW} slow clients: {head}");
        assert!(took < Duration::from_secs(1), "a scrape beside {SLOW} slow clients took {took:?}");
        latencies.push(took);
        for (s, at) in slow.iter_mut().zip(&mut closed_at) {
            if at.is_none() && closed_by_server(s) {
                *at = Some(opened.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let open = closed_at.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "slow connections still open {:?} after they were opened", opened.elapsed());
    let first = closed_at.iter().flatten().min().copied().unwrap_or_default();
    let last = closed_at.iter().flatten().max().copied().unwrap_or_default();
    // Not before the header-read timeout (10 s from the accept; polled every 250 ms or so).
    assert!(first >= Duration::from_secs(9), "a slow connection closed after only {first:?}");
    let max = latencies.iter().max().copied().unwrap_or_default();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(latencies.len().max(1)).unwrap_or(1);
    drop(dribble.join());
    drop(slow);

    // Stopping with 200 half-sent requests open.
    let slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = TcpStream::connect(&listen).expect("connect");
            s.write_all(HALF_SENT).expect("write");
            s
        })
        .collect();
    let t = Instant::now();
    assert_eq!(http_get(&listen, "/metrics", None).0, 200);
    let beside = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let took = stop_within_2s(serve, "200 half-sent requests");
    drop(slow);
    println!(
        "{SLOW} slow clients: {} scrapes, mean {mean:?}, max {max:?}; slow connections closed from {first:?} to {last:?}; scrape beside 200 half-sent {beside:?}; stop {took:?}",
        latencies.len()
    );
});

/// Portability tests: run in every x86-64 guest of the kernel matrix (`cargo xtask vm-test`
/// selects them by this module) and on the host.
mod matrix {
    use super::*;

    /// Portability tests the arm64 guest runs too (with the aarch64 binary), besides every
    /// x86-64 guest.
    mod arm64 {
        use super::*;

        root_test!(prometheus_reads_exact_drops_and_causes, {
            const N: usize = 123;
            const NF: f64 = 123.0;
            let listen = format!("127.0.0.1:{}", free_port());
            let serve = Running::start(&["serve", "--listen", &listen, "--window", "3s", "--netns-labels"]);
            let prom = Prometheus::start(&listen);
            // The scrape target is up before the drops.
            assert_eq!(
                prom.wait_for("up{job=\"pktloss\"}", Duration::from_secs(30), |v| v > 0.5).map(|v| v > 0.5),
                Some(true),
                "pktloss target not up: {}",
                prom.log()
            );
            let ns = Netns::new("prom");
            let before = ns.snmp("Udp", "NoPorts");
            ns.send_udp("127.0.0.1:9911".parse().expect("addr"), N);
            let noports = ns.snmp("Udp", "NoPorts") - before;
            assert_eq!(noports, N as u64, "the kernel's own count of the drops");

            // Exact per namespace, from the flow counters (no other traffic is in this namespace).
            // Before 5.17 the kernel gives no reason: the drops are reason UNKNOWN there.
            let reason = reason_name("NO_SOCKET");
            let q = format!("pktloss_netns_drops_total{{netns=\"{}\",reason=\"{reason}\"}}", ns.name);
            let got = prom.wait_for(&q, Duration::from_secs(30), |v| v >= NF);
            assert_eq!(got, Some(NF), "{q}");
            // Host-wide by reason: at least these (another process may hit a closed port too).
            let host =
                prom.wait_for(&format!("pktloss_drops_total{{reason=\"{reason}\"}}"), Duration::from_secs(10), |v| {
                    v >= NF
                });
            assert!(host.is_some_and(|v| v >= NF), "{reason} host-wide {host:?}");
            // Their bytes: at least a UDP header and "pktloss test N" each (skb->len at the drop).
            let bytes = prom.wait_for(
                &format!("pktloss_drop_bytes_total{{reason=\"{reason}\"}}"),
                Duration::from_secs(10),
                |v| v >= NF * 20.0,
            );
            assert!(bytes.is_some_and(|v| v >= NF * 20.0), "drop bytes {bytes:?}");
            // The diagnosis window that holds them names no-listener with every one of them.
            let cause =
                prom.wait_for("pktloss_cause_drops_total{cause=\"no-listener\"}", Duration::from_secs(30), |v| v >= NF);
            assert!(cause.is_some_and(|v| v >= NF), "no-listener cause {cause:?}");
            let windows = prom.query("pktloss_diagnosis_windows_total");
            assert!(windows.first().is_some_and(|w| w.1 >= 1.0), "no diagnosis window: {windows:?}");
            // A reason never seen is a series at 0, not an absent one (rate() works from the start).
            // (A kernel without reasons has none to seed.)
            if kernel_has_reasons() {
                let zero = prom.query("pktloss_drops_total{reason=\"IP_RPFILTER\"}");
                assert_eq!(zero.len(), 1, "pre-seeded reason: {zero:?}");
                assert!(zero[0].1.abs() < f64::EPSILON, "IP_RPFILTER: {zero:?}");
            }
            // The gauge of active causes exists for every cause of the taxonomy.
            assert!(prom.query("pktloss_cause_active").len() >= 20, "cause_active series");
            // Health and build info.
            let built = prom.query("pktloss_build_info");
            assert_eq!(built.len(), 1, "build info: {built:?}");
            assert!(built[0].0["kernel"].as_str().is_some_and(|k| !k.is_empty()), "kernel label: {built:?}");
            let attached = prom.query("pktloss_probe_attached{probe=\"skb:kfree_skb\"} == 1");
            assert_eq!(attached.len(), 1, "kfree_skb probe: {attached:?}");
            // No per-flow labels.
            for forbidden in ["sport", "dport", "src", "dst", "pid", "addr", "port"] {
                let r = prom.query(&format!("count({{__name__=~\"pktloss_.*\",{forbidden}!=\"\"}})"));
                assert!(r.is_empty(), "a series has a `{forbidden}` label: {r:?}");
            }
            drop(ns);

            // promtool accepts the exposition (text format), and OpenMetrics is served to who asks.
            let (status, head, text) = http_get(&listen, "/metrics", None);
            assert_eq!(status, 200, "{head}");
            assert!(head.contains("text/plain; version=0.0.4"), "{head}");
            let mut check = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("promtool");
            check.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
            let out = check.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let (_, head, om) = http_get(&listen, "/metrics", Some("application/openmetrics-text; version=1.0.0"));
            assert!(head.contains("application/openmetrics-text"), "{head}");
            assert!(om.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");
            drop(prom);
            stop_serve(serve);
        });
    }
}
