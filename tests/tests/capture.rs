//! Incident capture files on the real kernel: capture known drops in a namespace, report on
//! the file in an unprivileged process with exactly the live counts, pcapng read by tshark,
//! and malformed files rejected with one clear line.
use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use pktloss_tests::{Netns, Running, flow_count, nft_drop, pktloss_command, root_test, run};
use serde_json::Value;

const N: usize = 150;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("pktl-{tag}-{}", std::process::id()));
        drop(std::fs::remove_dir_all(&p));
        std::fs::create_dir_all(&p).expect("mkdir");
        // World-traversable so the unprivileged report can reach the file we hand it.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        drop(std::fs::remove_dir_all(&self.0));
    }
}

fn report_as_nobody(file: &Path, args: &[&str]) -> std::process::Output {
    let bin = pktloss_tests::NobodyBin::new();
    pktloss_tests::pktloss_command_at(&bin.path)
        .arg("report")
        .arg(file)
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("report as nobody")
}

root_test!(capture_file_reports_live_counts_without_privileges, {
    let ns = Netns::new("capf");
    let _nft_cap = nft_drop(&ns, "pktlcap", "udp dport 7001");
    let dir = TempDir::new("capf");
    let file = dir.0.join("incident.pktloss");
    let pcap = dir.0.join("live.pcapng");
    let file_s = file.to_str().expect("path");
    let pcap_s = pcap.to_str().expect("path");
    let p = Running::start(&["capture", "--format", "json", "-o", file_s, "--pcapng", pcap_s]);
    std::thread::sleep(Duration::from_millis(800));
    let src = ns.send_udp("127.0.0.1:7001".parse().expect("addr"), N);
    ns.send_udp("127.0.0.1:7002".parse().expect("addr"), N);
    std::thread::sleep(Duration::from_millis(300));
    let live = p.stop_json();
    let inode = ns.inode();
    assert_eq!(
        flow_count(&live, |f| f.netns == inode && f.reason == "NETFILTER_DROP" && f.sport == src.port()),
        N as u64
    );
    assert_eq!(flow_count(&live, |f| f.netns == inode && f.reason == "NO_SOCKET" && f.dport == 7002), N as u64);

    let md = std::fs::metadata(&file).expect("capture file written");
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "capture files hold packets: mode 0600");
    // Hand a copy to an unprivileged user, as on another machine.
    let copy = dir.0.join("copy.pktloss");
    std::fs::copy(&file, &copy).expect("copy");
    let c = std::ffi::CString::new(copy.to_str().expect("path")).expect("cstr");
    // SAFETY: plain chown syscall on our own file; `c` is a NUL-terminated path that outlives
    // the call.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);

    let out = report_as_nobody(&copy, &["--format", "json"]);
    assert!(out.status.success(), "report as nobody: {}", String::from_utf8_lossy(&out.stderr));
    let rep: Value = serde_json::from_slice(&out.stdout).expect("report json");
    for key in ["total_drops", "lost_events", "drops_with_detail", "drops_without_detail"] {
        assert_eq!(rep[key], live[key], "{key} differs between live and report");
    }
    assert_eq!(rep["reasons"], live["reasons"], "reasons differ");
    assert_eq!(rep["flows"], live["flows"], "flows differ");
    assert_eq!(rep["locations"], live["locations"], "locations differ");
    // The diagnosis is recomputed from the file: both causes, the firewall one names the rule.
    let causes = rep["causes"].as_array().expect("causes");
    let ids: Vec<&str> = causes.iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(ids.contains(&"firewall-drop") && ids.contains(&"no-listener"), "{ids:?}");
    let fw = causes.iter().find(|c| c["id"] == "firewall-drop").expect("firewall cause");
    assert!(fw.to_string().contains("7001"), "firewall evidence names the rule: {fw}");
    let cap = &rep["capture"];
    assert!(cap["boot_id"].as_str().is_some_and(|b| b.len() > 10), "{cap}");
    assert!(
        rep.to_string()
            .contains(&std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id").trim().to_owned())
    );

    let out = report_as_nobody(&copy, &["--format", "markdown"]);
    assert!(out.status.success());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| Drops |") && md.contains("NETFILTER\\_DROP") || md.contains("`NETFILTER_DROP`"), "{md}");

    // pcapng: from the live capture and from the report, read back by tshark with comments.
    let from_report = dir.0.join("report.pcapng");
    let out = pktloss_command()
        .args(["report", file_s, "--pcapng", from_report.to_str().expect("path")])
        .output()
        .expect("report --pcapng");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for pc in [&pcap, &from_report] {
        let t = Command::new("tshark")
            .args([
                "-r",
                pc.to_str().expect("path"),
                "-T",
                "fields",
                "-e",
                "frame.comment",
                "-e",
                "ip.src",
                "-e",
                "udp.dstport",
            ])
            .output();
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but no tshark: {e}");
                eprintln!("skipping tshark check: {e}");
                return;
            }
        };
        let text = String::from_utf8_lossy(&t.stdout);
        // The capture is host-wide: keep the packets of our namespace (the host may drop
        // some of its own meanwhile, e.g. vsock packets of a VM agent).
        let ours = format!("netns={inode} ");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&ours)).collect();
        assert_eq!(lines.len(), 2 * N, "one packet per sampled drop: {text}");
        assert!(
            lines.iter().any(|l| l.contains("reason=NETFILTER_DROP")
                && l.contains("cause=firewall-drop")
                && l.ends_with("7001")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("reason=NO_SOCKET") && l.contains("cause=no-listener") && l.ends_with("7002")),
            "{text}"
        );
    }
});

fn assert_bad_file(bytes: &[u8], needle: &str) {
    let dir = TempDir::new("badf");
    let f = dir.0.join("bad.pktloss");
    std::fs::write(&f, bytes).expect("write");
    let out = run(&["report", f.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.to_lowercase().contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn malformed_capture_files_are_one_line_errors() {
    assert_bad_file(b"", "empty");
    assert_bad_file(b"hello, I am not a capture\n", "not a pktloss capture");
    assert_bad_file(b"PKTLOSS\0\x01", "truncated");
    let mut future = b"PKTLOSS\0".to_vec();
    future.extend_from_slice(&[9, 0, 0, 0]);
    future.extend_from_slice(&[0; 28]);
    assert_bad_file(&future, "newer");
    let out = run(&["report", "/nonexistent/incident.pktloss"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file"));
}

// `-o FILE` means one thing per extension for every command, and every file is private
// (0600): addresses, process names and packet bytes are in them. A `.pktloss` written by
// `diagnose` is a capture file `report` reads.
root_test!(outputs_are_private_and_chosen_by_extension, {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("pktl-out-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = |name: &str| dir.join(name).to_str().expect("path").to_owned();
    let mode = |p: &str| std::fs::metadata(p).expect("output written").permissions().mode() & 0o777;
    for (cmd, name) in [
        ("capture", "c.json"),
        ("capture", "c.md"),
        ("capture", "c.txt"),
        ("capture", "c.pktloss"),
        ("diagnose", "d.json"),
        ("diagnose", "d.md"),
        ("diagnose", "d.pktloss"),
    ] {
        let p = path(name);
        let out = run(&[cmd, "--duration", "1s", "-o", &p]);
        assert!(out.status.success(), "{cmd} -o {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(mode(&p), 0o600, "{cmd} -o {name}");
        let bytes = std::fs::read(&p).expect("read");
        match name.rsplit('.').next() {
            Some("json") => {
                let v: Value = serde_json::from_slice(&bytes).expect("a JSON file");
                assert!(v["total_drops"].is_u64(), "{cmd}: {v}");
                assert_eq!(v["causes"].is_array(), cmd == "diagnose", "{cmd}: {v}");
            }
            Some("md") => assert!(String::from_utf8_lossy(&bytes).contains("### "), "{cmd}: Markdown"),
            Some("pktloss") => {
                let rep = run(&["report", &p, "--format", "json"]);
                assert!(rep.status.success(), "report of {cmd} -o {name}: {}", String::from_utf8_lossy(&rep.stderr));
            }
            _ => assert!(
                String::from_utf8_lossy(&bytes).contains("Drops") || String::from_utf8_lossy(&bytes).contains("drops")
            ),
        }
    }
    drop(std::fs::remove_dir_all(&dir));
});

// `report` of a capture file ranks the causes as the live diagnosis of that capture did, also
// for namespaces born during it and gone before its end.
root_test!(report_ranks_like_the_live_diagnosis, {
    let dir = std::env::temp_dir().join(format!("pktl-rank-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("rank.pktloss");
    let p = Running::start(&["diagnose", "--duration", "8s", "--format", "json", "-o", file.to_str().expect("path")]);
    std::thread::sleep(Duration::from_secs(1));
    {
        let a = Netns::new("rnka");
        let b = Netns::new("rnkb");
        let _nft_rank = nft_drop(&b, "pktlrank", "udp dport 7798");
        a.send_udp("127.0.0.1:9914".parse().expect("addr"), 60);
        b.send_udp("127.0.0.1:7798".parse().expect("addr"), 25);
        std::thread::sleep(Duration::from_secs(3));
    }
    let err = p.stderr();
    let (code, out) = p.finish();
    assert_eq!(code, Some(0), "{err}");
    let live: Value = serde_json::from_str(&out).expect("live JSON");
    let rep = run(&["report", file.to_str().expect("path"), "--format", "json"]);
    assert!(rep.status.success(), "{}", String::from_utf8_lossy(&rep.stderr));
    let rep: Value = serde_json::from_slice(&rep.stdout).expect("report JSON");
    let ranking = |v: &Value| -> Vec<(String, u64)> {
        v["causes"]
            .as_array()
            .expect("causes")
            .iter()
            .map(|c| (c["id"].as_str().unwrap_or_default().to_owned(), c["drops"].as_u64().unwrap_or(0)))
            .collect()
    };
    assert_eq!(ranking(&rep), ranking(&live), "report vs live");
    assert!(ranking(&live).iter().any(|(id, n)| id == "no-listener" && *n >= 60), "{:#?}", live["causes"]);
    drop(std::fs::remove_dir_all(&dir));
});

/// A tmpfs mounted for one test (read-only, or tiny), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, options: &str) -> Self {
        std::fs::create_dir_all(&at).expect("mount point");
        pktloss_tests::sh(&["mount", "-t", "tmpfs", "-o", options, "pktloss-test", at.to_str().expect("utf-8")]);
        Self(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        drop(Command::new("umount").arg(&self.0).status());
    }
}

// An output that cannot be written is refused before anything is attached, in one line and
// exit 2: a read-only filesystem, a full one (`ENOSPC` on even one block), a missing directory,
// a directory in the way; for `-o` of `capture` and `diagnose` and for `--pcapng`. A 30 s
// capture would otherwise be lost at its end.
root_test!(unwritable_outputs_are_refused_before_tracing, {
    let dir = TempDir::new("unwritable");
    let ro = Tmpfs::mount(dir.0.join("ro"), "ro,size=1m");
    let full = Tmpfs::mount(dir.0.join("full"), "size=64k");
    // Fill it: writes until ENOSPC.
    let mut f = std::fs::File::create(full.0.join("fill")).expect("fill file");
    let block = [0u8; 4096];
    let mut filled = 0;
    while std::io::Write::write_all(&mut f, &block).is_ok() && filled < 1024 {
        filled += 1;
    }
    drop(f);
    assert!(filled < 1024, "the tiny tmpfs did not fill");
    let p = |d: &Path, name: &str| d.join(name).to_str().expect("utf-8").to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["capture".into(), "-o".into(), p(&ro.0, "c.json")], "read-only file system"),
        (vec!["capture".into(), "-o".into(), p(&full.0, "c.pktloss")], "no space left on device"),
        (vec!["capture".into(), "--pcapng".into(), p(&full.0, "c.pcapng")], "no space left on device"),
        (vec!["diagnose".into(), "-o".into(), p(&ro.0, "d.md")], "read-only file system"),
        (vec!["diagnose".into(), "-o".into(), p(&full.0, "d.json")], "no space left on device"),
        (vec!["capture".into(), "-o".into(), p(&dir.0, "nodir/c.json")], "does not exist"),
        (vec!["capture".into(), "-o".into(), p(&dir.0, "ro")], "is a directory"),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = vec!["-v"];
        all.extend(args.iter().map(String::as_str));
        all.extend(["--duration", "30s"]);
        let t0 = std::time::Instant::now();
        let out = run(&all);
        let took = t0.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains(want) && err.contains("pktloss: "), "{args:?}: {err}");
        assert!(!err.contains("tracing"), "{args:?}: refused before attaching: {err}");
        assert!(took < Duration::from_secs(10), "{args:?}: refused at start, not after the capture ({took:?})");
        eprintln!("{args:?}: exit 2 in {took:?}: {}", err.trim());
    }
    pktloss_tests::assert_nothing_attached("after the refusals");
    let left: Vec<_> = std::fs::read_dir(&full.0).expect("list").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["fill"], "the check leaves nothing behind");
});

// A kill while the output is written leaves nothing: the file is written unnamed (`O_TMPFILE`)
// and named only once synced. strace holds the `fsync` of the output for 5 s; meanwhile the
// directory stays empty, and after a SIGKILL there it stays empty (a named temporary file,
// 0600 with packet bytes, used to stay).
root_test!(a_kill_during_the_write_leaves_nothing, {
    use std::io::Read as _;
    let dir = TempDir::new("killwrite");
    let target = dir.0.join("c.pktloss");
    let mut strace = pktloss_tests::wrapped_pktloss(&[
        "strace",
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=fsync",
        "-e",
        "inject=fsync:delay_enter=5000000",
    ])
    .args(["capture", "--duration", "1s", "--format", "json", "-o"])
    .arg(&target)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("strace (run `cargo xtask setup`)");
    let mut out = strace.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = [0u8; 1];
        let _ = tx.send(out.read(&mut first).unwrap_or(0));
        drop(std::io::copy(&mut out, &mut std::io::sink()));
    });
    // The summary is printed before the file is written.
    assert_eq!(rx.recv_timeout(Duration::from_mins(1)), Ok(1), "pktloss printed no summary");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).expect("children");
    let pid: u32 = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("pktloss under strace");
    let writing = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .is_ok_and(|fds| fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.starts_with(&dir.0))))
    };
    let t0 = std::time::Instant::now();
    while !writing() {
        assert!(t0.elapsed() < Duration::from_secs(20), "pktloss never opened its output");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let listed = || -> Vec<String> {
        std::fs::read_dir(&dir.0)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(writing(), "still in the held fsync");
    assert_eq!(listed(), Vec::<String>::new(), "nothing named while the output is written");
    // SAFETY: plain syscall on our grandchild.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    drop(strace.wait());
    assert_eq!(listed(), Vec::<String>::new(), "a kill during the write leaves nothing");
    pktloss_tests::assert_nothing_attached("after the kill");
});
