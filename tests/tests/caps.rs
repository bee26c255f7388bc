//! Least privilege, measured with `setpriv`: uid 0 with only `CAP_BPF` and `CAP_PERFMON` loads
//! and counts exactly, and says which data it could not read and which capability would give
//! it (`CAP_SYS_ADMIN`, to enter other namespaces); each missing capability gives
//! its own line; a non-root user is told about tracefs; `serve` keeps only what it needs.
use std::{fs, net::SocketAddr, time::Duration};

use pktloss_tests::{Netns, Running, assert_nothing_attached, free_port, http_get, reason_name, root_test, stop_serve};
use serde_json::Value;

/// `setpriv` keeping only these capabilities (uid 0: the bounding set is what it gets).
fn only(caps: &str) -> Vec<String> {
    vec!["setpriv".into(), "--inh-caps=-all".into(), format!("--bounding-set=-all{caps}")]
}

fn run_with(wrapper: &[String], args: &[&str]) -> std::process::Output {
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    pktloss_tests::wrapped_pktloss(&wrapper).args(args).output().expect("setpriv (util-linux)")
}

root_test!(bpf_and_perfmon_count_exactly_and_say_what_is_unavailable, {
    const N: usize = 40;
    let ns = Netns::new("capbp");
    let wrapper = only(",+bpf,+perfmon");
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let run = Running::start_wrapped(&w, &["capture", "--format", "json"]);
    let before = ns.snmp("Udp", "NoPorts");
    ns.send_udp("127.0.0.1:9911".parse::<SocketAddr>().expect("addr"), N);
    let noports = ns.snmp("Udp", "NoPorts") - before;
    std::thread::sleep(Duration::from_millis(500));
    let err = run.stderr();
    let v: Value = run.stop_json();
    // Exact: the flows of our namespace hold every drop the kernel counted.
    let inode = ns.inode();
    let ours = pktloss_tests::flow_count(&v, |f| f.netns == inode && f.reason == reason_name("NO_SOCKET"));
    assert_eq!(ours, noports, "exact with CAP_BPF+CAP_PERFMON only");
    assert_eq!(noports, N as u64);
    // It could not enter the namespace: the device's name and TX are unavailable, never ''/0
    // presented as measured.
    let devs = v["devices"].as_array().expect("devices");
    let dev = devs.iter().find(|d| d["netns"].as_u64() == Some(inode)).expect("our device row");
    assert_eq!(dev["tx_unavailable"], true, "TX of a namespace it cannot enter: {dev}");
    assert!(err.contains("CAP_SYSLOG") || err.contains("kallsyms"), "says locations are addresses: {err}");
    // And which capability would give the unavailable rows: one line.
    let sys_admin: Vec<&str> = err.lines().filter(|l| l.contains("CAP_SYS_ADMIN")).collect();
    assert_eq!(sys_admin.len(), 1, "one line names the missing capability: {err}");
    assert!(sys_admin[0].contains("unavailable"), "{err}");
    drop(ns);
    assert_nothing_attached("after exit");
});

root_test!(non_root_user_is_told_about_tracefs, {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata("/sys/kernel/tracing").expect("tracefs").permissions().mode() & 0o777;
    assert_eq!(mode & 0o005, 0, "this test needs tracefs closed to others (mode {mode:o})");
    let out = pktloss_tests::wrapped_pktloss(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+bpf,+perfmon",
        "--ambient-caps=+bpf,+perfmon",
    ])
    .args(["capture", "--duration", "1s"])
    .output()
    .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.contains("cannot read tracefs at /sys/kernel/tracing: permission denied"), "{err}");
    assert!(!err.contains("not mounted"), "{err}");
    assert_nothing_attached("after exit");
});

/// Capabilities of every thread of a process, as bit masks (effective, bounding).
fn thread_caps(pid: u32) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let status = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let hex = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(u64::MAX)
        };
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_owned();
        out.push((comm, hex("CapEff:"), hex("CapBnd:")));
    }
    out
}

/// Portability tests: run in every x86-64 guest of the kernel matrix (`cargo xtask vm-test`
/// selects them by this module) and on the host.
mod matrix {
    use super::*;

    root_test!(serve_keeps_only_what_it_needs, {
        // CAP_DAC_READ_SEARCH 2, NET_ADMIN 12, NET_RAW 13, SYS_PTRACE 19, SYS_ADMIN 21, BPF 39.
        const KEEP: u64 = 1 << 2 | 1 << 12 | 1 << 13 | 1 << 19 | 1 << 21 | 1 << 39;
        const PERFMON: u64 = 1 << 38;
        let listen = format!("127.0.0.1:{}", free_port());
        let serve = Running::start(&["serve", "--listen", &listen, "--netns-labels"]);
        let pid = serve.child.id();
        std::thread::sleep(Duration::from_millis(500));
        let threads = thread_caps(pid);
        assert!(threads.len() >= 3, "{threads:?}");
        for (comm, eff, bnd) in &threads {
            assert_eq!(eff & !KEEP, 0, "thread {comm} kept more than it needs: {eff:x}");
            assert_eq!(bnd & !KEEP, 0, "thread {comm}'s bounding set: {bnd:x}");
            assert_eq!(eff & PERFMON, 0, "CAP_PERFMON is needed only to attach");
        }
        assert!(serve.stderr().contains("dropped capabilities no longer needed"), "{}", serve.stderr());
        // And it still counts, names and enters namespaces.
        let ns = Netns::new("capsv");
        ns.send_udp("127.0.0.1:9911".parse().expect("addr"), 25);
        std::thread::sleep(Duration::from_millis(300));
        let (_, _, body) = http_get(&listen, "/metrics", None);
        let want =
            format!("pktloss_netns_drops_total{{netns=\"{}\",reason=\"{}\"}} 25", ns.name, reason_name("NO_SOCKET"));
        assert!(body.contains(&want), "{want} not in the scrape");
        drop(ns);
        stop_serve(serve);
    });
}

/// Portability tests whose outcome does not depend on the kernel: run once, in the 5.10 guest
/// of the kernel matrix (`cargo xtask vm-test` selects them by this module), and on the host.
mod matrix_once {
    use super::*;

    root_test!(each_missing_capability_is_one_line, {
        for (caps, want) in [
            (",+bpf", "missing capability CAP_PERFMON"),
            (",+perfmon", "missing capability CAP_BPF"),
            ("", "needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)"),
        ] {
            let out = run_with(&only(caps), &["capture", "--duration", "1s"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{caps}: {err}");
            assert_eq!(err.lines().count(), 1, "{caps}: one line: {err}");
            assert!(err.contains(want), "{caps}: {err}");
            assert_nothing_attached("after exit");
        }
    });
}
