//! Real-kernel integration tests for pktloss: helpers to make namespaces, traffic and drops, and
//! to run the real `pktloss` binary against them. Nothing here mocks the kernel.
use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod bpf;
pub mod packet;
pub mod tun;
pub mod uffd;

pub use pktloss_testkit::{End, NETNS_THREAD, Netns, NftDrop, Veth, sh, summary};

/// Path of the `pktloss` binary under test (`PKTLOSS_BIN`, else `target/debug/pktloss`).
pub fn pktloss_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PKTLOSS_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = root.join("target/debug/pktloss");
    assert!(p.exists(), "pktloss binary not built at {} (run `cargo xtask test`)", p.display());
    p
}

/// The variable that holds the `PATH` the `pktloss` process gets (and only it: the tests' own
/// setup keeps the test's `PATH`). The kernel matrix sets it to an empty directory, so that a
/// pktloss that still ran another program (`ip`, `nft`, ...) would find none.
pub const CHILD_PATH_VAR: &str = "PKTLOSS_CHILD_PATH";

/// Give `cmd` (pktloss, or a wrapper that passes its environment on to pktloss) the `PATH` of
/// [`CHILD_PATH_VAR`] when that is set.
pub fn child_path(cmd: &mut Command) -> &mut Command {
    if let Some(path) = std::env::var_os(CHILD_PATH_VAR) {
        cmd.env("PATH", path);
    }
    cmd
}

/// `pktloss` (the binary under test) as a command, with the `PATH` of [`CHILD_PATH_VAR`].
pub fn pktloss_command() -> Command {
    pktloss_command_at(&pktloss_bin())
}

/// As [`pktloss_command`], for a copy of the binary at `bin` (see [`NobodyBin`]).
pub fn pktloss_command_at(bin: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    child_path(&mut cmd);
    cmd
}

/// `wrapper ARGS.. pktloss` (e.g. `setpriv`, `strace`): the wrapper is found on the test's own
/// `PATH`, and gets (so passes on to pktloss) the `PATH` of [`CHILD_PATH_VAR`].
pub fn wrapped_pktloss(wrapper: &[&str]) -> Command {
    let (first, rest) = wrapper.split_first().expect("a wrapper command");
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(first)).find(|c| c.is_file()))
        .unwrap_or_else(|| PathBuf::from(first));
    let mut cmd = Command::new(found);
    cmd.args(rest).arg(pktloss_bin());
    child_path(&mut cmd);
    cmd
}

/// A shell word that runs pktloss with the `PATH` of [`CHILD_PATH_VAR`] (for scripts: `tmux`).
pub fn pktloss_shell_prefix() -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let bin = quote(&pktloss_bin().display().to_string());
    match std::env::var(CHILD_PATH_VAR) {
        Ok(path) => format!("PATH={} {bin}", quote(&path)),
        Err(_) => bin,
    }
}

/// True when the test may touch the kernel. Under `CI=true` a missing privilege is a failure,
/// never a skip; elsewhere the test is skipped with a printed reason.
pub fn require_root(test: &str) -> bool {
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: CI=true but not running as root");
    eprintln!("skipping {test}: needs root");
    false
}

/// A test that needs root, its name written once: `root_test!(name, { body });`, attributes
/// before the name (`root_test!(#[expect(..)] name, { body });`). Without root it is skipped
/// with a printed reason, except under `CI=true`, where it fails ([`require_root`]).
#[macro_export]
macro_rules! root_test {
    ($(#[$attr:meta])* $name:ident, $body:block) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if !$crate::require_root(stringify!($name)) {
                return;
            }
            $body
        }
    };
}

/// An ioctl request number as this libc takes it: `c_ulong` in glibc, `c_int` in musl (the
/// tests also run as aarch64 musl binaries in the kernel matrix's arm64 guest).
#[cfg_attr(
    not(target_env = "musl"),
    expect(clippy::cast_lossless, reason = "u32 to c_ulong; musl's c_int is not From<u32>")
)]
pub fn ioctl_request(request: u32) -> libc::Ioctl {
    request as libc::Ioctl
}

/// Whether the running kernel gives drop reasons: its `skb:kfree_skb` tracepoint has a
/// `reason` field (5.17+).
pub fn kernel_has_reasons() -> bool {
    fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format")
        .expect("tracefs format of skb:kfree_skb (run `cargo xtask setup`)")
        .contains(" reason;")
}

/// The reason pktloss reports for drops the kernel gives `reason`: the name itself, or
/// `UNKNOWN` on kernels without drop reasons (their drops are told apart by location).
pub fn reason_name(reason: &'static str) -> &'static str {
    if kernel_has_reasons() { reason } else { "UNKNOWN" }
}

/// `(major, minor)` of the running kernel.
pub fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// A running `pktloss` whose stdout and stderr are collected.
pub struct Running {
    pub child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    /// Start `pktloss -v ARGS` and wait until it says it is tracing.
    pub fn start(args: &[&str]) -> Self {
        Self::start_wrapped(&[], args)
    }

    /// As [`Running::start`], run by `wrapper` (e.g. `setpriv --bounding-set ...`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        Self::spawn_wrapped(wrapper, args).ready()
    }

    /// Start `pktloss -v ARGS` without waiting: [`Running::ready`] waits (several started
    /// at once load their programs side by side).
    pub fn spawn(args: &[&str]) -> Starting {
        Self::spawn_wrapped(&[], args)
    }

    fn spawn_wrapped(wrapper: &[&str], args: &[&str]) -> Starting {
        let mut cmd = if wrapper.is_empty() { pktloss_command() } else { wrapped_pktloss(wrapper) };
        let mut child = cmd
            .arg("-v")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pktloss");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            drop(out.read_to_string(&mut s));
            drop(tx.send(s));
        });
        let err = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let st = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("pktloss: tracing") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut s) = st.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Starting { running: Self { child, stdout: rx, stderr }, ready: ready_rx }
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for exit (bounded) and return (exit code, stdout).
    pub fn finish(mut self) -> (Option<i32>, String) {
        let started = Instant::now();
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            if started.elapsed() > Duration::from_mins(1) {
                drop(self.child.kill());
                panic!("pktloss did not exit in 60 s: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self.stdout.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        (status.code(), out)
    }

    /// SIGINT, then parse the JSON summary it prints.
    pub fn stop_json(self) -> Value {
        self.signal(libc::SIGINT);
        let err = self.stderr();
        let (code, out) = self.finish();
        assert_eq!(code, Some(0), "pktloss failed: {err}\n{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }
}

/// A `pktloss` started by [`Running::spawn`], not yet known to be tracing.
pub struct Starting {
    running: Running,
    ready: mpsc::Receiver<()>,
}

impl Starting {
    /// Wait until it says it is tracing (at most 60 s).
    pub fn ready(self) -> Running {
        let Self { mut running, ready } = self;
        let started = Instant::now();
        loop {
            if ready.recv_timeout(Duration::from_millis(100)).is_ok() {
                return running;
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("pktloss exited early ({status}): {}", running.stderr());
            }
            assert!(started.elapsed() < Duration::from_mins(1), "pktloss did not attach in 60 s: {}", running.stderr());
        }
    }
}

impl Drop for Running {
    /// A test that panics before stopping its pktloss leaves none running (or attached).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            drop(self.child.kill());
            drop(self.child.wait());
        }
    }
}

/// Run pktloss to completion.
pub fn run(args: &[&str]) -> Output {
    pktloss_command().args(args).stdin(Stdio::null()).output().expect("run pktloss")
}

/// Names (as the kernel truncates them) of pktloss's programs.
pub const PROGRAM_NAMES: &[&str] =
    &["kfree_skb_btf", "kfree_skb_tp", "net_dev_queue_b", "net_dev_queue_t", "tcp_retransmit_", "tcp_drop"];

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A plain HTTP/1.0 GET (with an `Accept` header when given); returns (status, headers, body).
pub fn http_get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Stop a running `pktloss serve` with SIGTERM: exit 0 and nothing left loaded.
pub fn stop_serve(serve: Running) {
    serve.signal(libc::SIGTERM);
    let err = serve.stderr();
    let (code, _) = serve.finish();
    assert_eq!(code, Some(0), "pktloss serve failed: {err}");
    assert_nothing_attached("after exit");
}

/// Panic unless no pktloss program is loaded, waiting up to 5 s: links and programs are
/// released when their last fd closes, which the kernel finishes a moment after exit.
pub fn assert_nothing_attached(when: &str) {
    for _ in 0..50 {
        if loaded_pktloss_programs().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{when}: pktloss programs still loaded: {:?}", loaded_pktloss_programs());
}

/// IDs of loaded BPF programs whose names are pktloss's.
pub fn loaded_pktloss_programs() -> Vec<String> {
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().expect("bpftool (run `cargo xtask setup`)");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let name = p.get("name")?.as_str()?;
                    let id = p.get("id")?;
                    PROGRAM_NAMES.iter().any(|n| name.starts_with(n)).then(|| format!("{id} {name}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sum of `count` over flows matching a predicate.
pub fn flow_count(summary: &Value, pred: impl Fn(&summary::Flow) -> bool) -> u64 {
    summary::Summary::of(summary).flow_count(pred)
}

/// Count of a reason in the summary.
pub fn reason_count(summary: &Value, reason: &str) -> u64 {
    summary::Summary::of(summary).reason_count(reason)
}

/// An nftables table `table` in `ns` that drops (and counts) what `rule` matches on the input
/// hook; deleted on drop: keep it while the drops should happen.
pub fn nft_drop(ns: &Netns, table: &str, rule: &str) -> NftDrop {
    NftDrop::new(&ns.name, table, rule)
}

/// A copy of the binary that an unprivileged user can execute, wherever the checkout lives: a
/// clone under /root or in a 0700 `mktemp -d` directory is not traversable by `nobody`.
/// Removed on drop.
pub struct NobodyBin {
    dir: PathBuf,
    pub path: PathBuf,
}

impl NobodyBin {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pktl-bin-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir for the unprivileged binary");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
        let path = dir.join("pktloss");
        fs::copy(pktloss_bin(), &path).expect("copy pktloss");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod pktloss");
        Self { dir, path }
    }
}

impl Default for NobodyBin {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NobodyBin {
    fn drop(&mut self) {
        drop(fs::remove_dir_all(&self.dir));
    }
}

/// Build a BPF object from C `source` with clang (`-target bpf`) in `dir`; returns its path.
pub fn build_bpf(dir: &std::path::Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    fs::write(&c, source).expect("write C");
    sh(&["clang", "-O2", "-g", "-target", "bpf", "-c", c.to_str().expect("path"), "-o", o.to_str().expect("path")]);
    o
}
