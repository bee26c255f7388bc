//! Real-terminal tests of the live TUI (`pktloss top`): the built binary runs inside a detached
//! tmux server with a private socket, real drops are made in a namespace, and the screen is read
//! back with `capture-pane`. Each test quits (q, Ctrl-C or a signal), then checks that the
//! terminal was given back (cooked mode, main screen, cursor shown) and that no probe stays
//! loaded. Run with `--test-threads=1` (they attach to the same kernel hooks).
//!
//! tmux is required under `CI=true`; elsewhere a missing tmux skips with a printed reason.
use std::{
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use pktloss_tests::{Netns, loaded_pktloss_programs, pktloss_shell_prefix, require_root};

/// Datagrams sent to a closed port per test (each one is a `NO_SOCKET` drop).
const N: usize = 300;
/// How long the TUI may take to attach and draw its header.
const START: Duration = Duration::from_secs(30);
/// How long a drop may take to reach the screen (one update a second, plus slack).
const SHOW: Duration = Duration::from_secs(15);
/// How long pktloss may take to exit after q or a signal.
const QUIT: Duration = Duration::from_secs(10);

/// True when the test can run: root and tmux. Under `CI=true` a missing one is a failure.
fn require(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    let ok =
        Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: CI=true but tmux is not installed");
    eprintln!("skipping {test}: needs tmux");
    false
}

/// Quote for `sh -c`.
fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A private tmux server running one session whose pane runs `pktloss ARGS` under a small shell
/// wrapper. When pktloss exits the wrapper records its exit status and `stty -a` (the state the
/// TUI left the terminal in), then sleeps so the pane stays inspectable. Drop kills the server
/// (SIGHUP to anything still running) and removes the files.
struct Tmux {
    socket: String,
    dir: PathBuf,
}

impl Tmux {
    fn start(tag: &str, width: u16, height: u16, args: &str) -> Self {
        let socket = format!("pktl-test-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&socket);
        drop(fs::remove_dir_all(&dir));
        fs::create_dir_all(&dir).expect("temp dir");
        let t = Self { socket, dir };
        t.kill_server();
        let d = t.dir.display().to_string();
        let script = format!(
            "{run} {args}; echo $? > {rc}.tmp; stty -a > {stty}; mv {rc}.tmp {rc}; exec sleep 120",
            run = pktloss_shell_prefix(),
            rc = shq(&format!("{d}/rc")),
            stty = shq(&format!("{d}/stty")),
        );
        let (w, h) = (width.to_string(), height.to_string());
        t.tmux_ok(&["new-session", "-d", "-s", "t", "-x", &w, "-y", &h, &script]);
        // Keep the size we set whatever clients (none) attach.
        t.tmux_ok(&["set-option", "-g", "window-size", "manual"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-u", "-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn tmux {args:?}: {e}"))
    }

    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(out.status.success(), "tmux {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kill_server(&self) {
        drop(self.tmux(&["kill-server"]));
    }

    /// The visible screen, one string per row (trailing blanks trimmed by tmux).
    fn screen(&self) -> String {
        self.tmux_ok(&["capture-pane", "-p", "-t", "t"])
    }

    /// A pane format variable, e.g. `#{alternate_on}`.
    fn pane(&self, format: &str) -> String {
        self.tmux_ok(&["display-message", "-p", "-t", "t", format]).trim().to_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux_ok(&args);
        // Let the TUI read them one batch at a time.
        std::thread::sleep(Duration::from_millis(150));
    }

    fn text(&self, text: &str) {
        self.tmux_ok(&["send-keys", "-t", "t", "-l", text]);
        std::thread::sleep(Duration::from_millis(150));
    }

    fn resize(&self, width: u16, height: u16) {
        let (w, h) = (width.to_string(), height.to_string());
        self.tmux_ok(&["resize-window", "-t", "t", "-x", &w, "-y", &h]);
    }

    /// Poll the screen until `ok` holds; panic with the last screen after `timeout`.
    fn wait_screen(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if let Some(rc) = self.exit_status() {
                panic!("pktloss exited ({rc}) while waiting for {what}; screen:\n{s}");
            }
            assert!(started.elapsed() < timeout, "no {what} on screen after {timeout:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait for the TUI to attach and show live data (header, LIVE badge, footer).
    fn wait_live(&self) -> String {
        self.wait_screen("live TUI header", START, |s| {
            s.lines().next().is_some_and(|l| l.starts_with(" pktloss top") && l.trim_end().ends_with("LIVE"))
        })
    }

    /// pktloss's exit status once the wrapper recorded it.
    fn exit_status(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("rc")).ok().map(|s| s.trim().to_owned())
    }

    /// Wait (bounded) for pktloss to exit; returns its exit status and how long it took.
    fn wait_exit(&self) -> (String, Duration) {
        let started = Instant::now();
        loop {
            if let Some(rc) = self.exit_status() {
                return (rc, started.elapsed());
            }
            assert!(started.elapsed() < QUIT, "pktloss did not exit in {QUIT:?}; screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pid of the pktloss process: the child of the pane's shell.
    fn pktloss_pid(&self) -> i32 {
        let shell: i32 = self.pane("#{pane_pid}").parse().expect("pane pid");
        let started = Instant::now();
        loop {
            if let Some(pid) = child_named(shell, "pktloss") {
                return pid;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no pktloss child of pane shell {shell}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After pktloss exited: the terminal is in cooked mode with echo, the alternate screen
    /// was left, the cursor is visible and the TUI's screen is not left behind.
    fn assert_restored(&self) {
        let stty = fs::read_to_string(self.dir.join("stty")).expect("stty -a output");
        let flags: Vec<&str> = stty.split(|c: char| c.is_whitespace() || c == ';').collect();
        for flag in ["icanon", "echo", "isig", "icrnl", "opost"] {
            assert!(flags.contains(&flag), "terminal not restored: no `{flag}` in stty -a:\n{stty}");
        }
        assert_eq!(self.pane("#{alternate_on}"), "0", "still on the alternate screen");
        assert_eq!(self.pane("#{cursor_flag}"), "1", "cursor still hidden");
        let screen = self.screen();
        assert!(
            !screen.contains("pktloss top") && !screen.contains("q Quit"),
            "TUI left on the main screen:\n{screen}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill_server();
        drop(fs::remove_dir_all(&self.dir));
        // SAFETY: plain syscall.
        let uid = unsafe { libc::geteuid() };
        let base = std::env::var_os("TMUX_TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        drop(fs::remove_file(base.join(format!("tmux-{uid}")).join(&self.socket)));
    }
}

/// First child process of `parent` whose command name is `name`.
fn child_named(parent: i32, name: &str) -> Option<i32> {
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|s| s.parse::<i32>().ok());
        if comm == name && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

/// Programs of pktloss loaded now (used as a baseline: normally empty).
fn baseline() -> Vec<String> {
    let b = loaded_pktloss_programs();
    if !b.is_empty() {
        eprintln!("note: pktloss programs already loaded before the test: {b:?}");
    }
    b
}

/// Poll a few seconds until no pktloss program beyond `before` is loaded.
fn assert_detached(before: &[String]) {
    let started = Instant::now();
    loop {
        let left: Vec<String> = loaded_pktloss_programs().into_iter().filter(|p| !before.contains(p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "programs still loaded after exit: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The row of the flow `src -> dst` is on screen, with its reason on screen too.
fn shows_flow(screen: &str, src: SocketAddr, dst: SocketAddr) -> bool {
    let (s, d) = (src.to_string(), dst.to_string());
    screen.contains(pktloss_tests::reason_name("NO_SOCKET")) && screen.lines().any(|l| l.contains(&s) && l.contains(&d))
}

/// The screen is a clean frame of `width` x `height`: one header at the top, one footer at the
/// bottom, no row wider than the pane, and every box row closed at the right edge (a frame drawn
/// for another size, or left over from one, breaks these).
fn assert_clean_frame(screen: &str, width: usize, height: usize) -> Result<(), String> {
    let lines: Vec<&str> = screen.lines().collect();
    if lines.len() != height {
        return Err(format!("{} rows, want {height}", lines.len()));
    }
    if !lines[0].starts_with(" pktloss top") {
        return Err("no header on the first row".into());
    }
    if !lines[height - 1].starts_with("q Quit") {
        return Err("no footer on the last row".into());
    }
    if screen.matches("pktloss top").count() != 1 || screen.matches("q Quit").count() != 1 {
        return Err("header or footer drawn twice".into());
    }
    for (i, l) in lines.iter().enumerate() {
        let n = l.chars().count();
        if n > width {
            return Err(format!("row {i} has {n} columns, want <= {width}"));
        }
        let (first, last) = (l.chars().next(), l.chars().last());
        let closed = match first {
            Some('┌') => last == Some('┐'),
            Some('└') => last == Some('┘'),
            Some('│') => last == Some('│'),
            _ => true,
        };
        if !closed || (matches!(first, Some('┌' | '└' | '│')) && n != width) {
            return Err(format!("row {i} is not a box row {width} wide: {l:?}"));
        }
    }
    Ok(())
}

#[expect(
    clippy::many_single_char_names,
    reason = "the tmux session `t`, the frame size `w` x `h`, its screen `s` and the error `e`"
)]
fn wait_clean_frame(t: &Tmux, width: u16, height: u16) -> String {
    let (w, h) = (usize::from(width), usize::from(height));
    let started = Instant::now();
    loop {
        let s = t.screen();
        match assert_clean_frame(&s, w, h) {
            Ok(()) => return s,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(5),
                "after resize to {width}x{height}: {e}; screen:\n{s}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// 80x24 with the bare `pktloss` (the TUI is the default on a terminal): drops and the flow (in
/// the Flows tab) show; resizing redraws a clean frame at every size; q quits clean.
#[test]
fn tui_80x24_and_resize() {
    if !require("tui_80x24_and_resize") {
        return;
    }
    let before = baseline();
    let ns = Netns::new("tui2");
    let t = Tmux::start("resize", 80, 24, "");
    t.wait_live();
    wait_clean_frame(&t, 80, 24);
    let dst: SocketAddr = "127.0.0.1:9998".parse().expect("addr");
    let src = ns.send_udp(dst, N);
    t.wait_screen("NO_SOCKET drop row", SHOW, |s| {
        s.lines().any(|l| l.contains("NO_SOCKET") && l.contains("__udp4_lib_rcv"))
    });
    t.keys(&["3"]);
    t.wait_screen("our flow in the Flows tab", SHOW, |s| shows_flow(s, src, dst));
    for (w, h) in [(120, 40), (100, 30), (160, 48), (60, 15), (80, 24)] {
        t.resize(w, h);
        let s = wait_clean_frame(&t, w, h);
        if w >= 80 {
            assert!(shows_flow(&s, src, dst), "flow lost after resize to {w}x{h}:\n{s}");
        }
    }
    // Ctrl-L redraws from scratch too.
    t.keys(&["C-l"]);
    wait_clean_frame(&t, 80, 24);
    // A drill-down, Esc, a resize, then q at once: q quits (it used to be held back until
    // another key came, crossterm having dropped its readiness behind the resize).
    t.keys(&["Enter"]);
    t.wait_screen("the flow drill-down", SHOW, |s| s.contains("Flows ›"));
    t.keys(&["Escape"]);
    t.wait_screen("the main view again", SHOW, |s| !s.contains("Flows ›"));
    t.resize(100, 30);
    t.keys(&["q"]);
    let (rc, took) = t.wait_exit();
    assert_eq!(rc, "0", "exit status after q");
    assert!(took < Duration::from_secs(3), "q took {took:?} to exit");
    t.assert_restored();
    assert_detached(&before);
}

/// A signal sent to pktloss (not through the terminal) ends the TUI: it exits, gives the
/// terminal back and detaches its probes.
fn signal_case(test: &str, sig: i32, tag: &str) {
    if !require(test) {
        return;
    }
    let before = baseline();
    let t = Tmux::start(tag, 100, 30, "top");
    t.wait_live();
    assert_eq!(t.pane("#{alternate_on}"), "1", "the TUI runs on the alternate screen");
    let pid = t.pktloss_pid();
    // SAFETY: plain syscall on the pid we just found as the pane shell's child.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
    let (status, took) = t.wait_exit();
    assert!(took < Duration::from_secs(3), "signal {sig}: took {took:?} to exit");
    eprintln!("{test}: exit status {status} after {took:?}");
    t.assert_restored();
    assert_detached(&before);
}

#[test]
fn tui_sigterm_restores_terminal_and_detaches() {
    signal_case("tui_sigterm_restores_terminal_and_detaches", libc::SIGTERM, "term");
}

#[test]
fn tui_sigint_restores_terminal_and_detaches() {
    signal_case("tui_sigint_restores_terminal_and_detaches", libc::SIGINT, "int");
}

/// The terminal goes away under the TUI (tmux kill-server: hangup and SIGHUP): pktloss exits
/// within seconds and detaches, instead of spinning on the dead terminal forever.
#[test]
fn tui_terminal_hangup_exits_and_detaches() {
    if !require("tui_terminal_hangup_exits_and_detaches") {
        return;
    }
    let before = baseline();
    let t = Tmux::start("hup", 100, 30, "top");
    t.wait_live();
    let pid = t.pktloss_pid();
    t.kill_server();
    let started = Instant::now();
    while process_alive(pid) {
        let cpu = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "pktloss {pid} still running 5 s after its terminal hung up: {cpu}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("exited {:?} after the hangup", started.elapsed());
    assert_detached(&before);
}

/// True while `pid` runs (a zombie has exited).
fn process_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st != "Z" && st != "X")))
        .unwrap_or(false)
}

/// Keys on the real binary: filter, panel switch, drill-down with the sampled packet, help,
/// pause/resume, then Ctrl-C (a key in raw mode) quits clean.
#[test]
fn tui_keys_filter_drilldown_help_pause() {
    if !require("tui_keys_filter_drilldown_help_pause") {
        return;
    }
    let before = baseline();
    let ns = Netns::new("tui4");
    let t = Tmux::start("keys", 120, 40, "top");
    t.wait_live();
    let dst: SocketAddr = "127.0.0.1:9997".parse().expect("addr");
    let src = ns.send_udp(dst, N);
    t.wait_screen("NO_SOCKET drop row", SHOW, |s| s.contains("NO_SOCKET"));

    // Filter: only our flow's drops.
    t.keys(&["/"]);
    t.text("proto:udp port:9997");
    t.keys(&["Enter"]);
    t.wait_screen("the applied filter", SHOW, |s| {
        s.lines().any(|l| l.contains("┌ Drops") && l.contains("filter proto:udp port:9997"))
    });

    // Tab twice: Drops -> Causes -> Flows; the flows table shows our flow.
    t.keys(&["Tab"]);
    t.keys(&["Tab"]);
    // The selection marker moves to the flows table, on our (only) flow.
    t.wait_screen("the focused Flows panel", SHOW, |s| {
        shows_flow(s, src, dst) && s.lines().any(|l| l.contains('▶') && l.contains(&dst.to_string()))
    });

    // Enter: drill-down of the flow with its reason and a sampled packet.
    t.keys(&["Enter"]);
    let flow = format!("udp {src} → {dst}");
    let s = t.wait_screen("the flow drill-down", SHOW, |s| s.contains(&format!("Flows › {flow}")));
    for want in ["netns", "device   lo", "reason   NO_SOCKET", "Sample packets", &flow] {
        assert!(s.contains(want), "no {want:?} in the drill-down:\n{s}");
    }
    // The sample names its namespace, with the inode.
    assert!(s.contains(&format!("{flow}  netns {} ({})", ns.name, ns.inode())), "no sampled packet of our flow:\n{s}");
    assert!(s.contains("Esc Back"), "drill-down footer:\n{s}");
    t.keys(&["Escape"]);
    t.wait_screen("the main view again", SHOW, |s| s.contains("q Quit Tab Panel") && !s.contains("Flows ›"));
    // Esc on the main screen clears the filter; it does not quit.
    t.keys(&["Escape"]);
    t.wait_screen("the filter cleared", SHOW, |s| !s.contains("filter proto:udp"));
    assert!(t.exit_status().is_none(), "Esc on the main screen quit the TUI");

    // Help, closed by any key.
    t.keys(&["?"]);
    t.wait_screen("help", SHOW, |s| s.contains("pktloss top — help") && s.contains("Filter terms"));
    t.keys(&["x"]);
    t.wait_screen("help closed", SHOW, |s| !s.contains("pktloss top — help") && s.contains("q Quit Tab Panel"));

    // Pause and resume.
    t.keys(&["p"]);
    t.wait_screen("PAUSED", SHOW, |s| s.lines().next().is_some_and(|l| l.trim_end().ends_with("PAUSED")));
    t.keys(&["p"]);
    t.wait_screen("LIVE again", SHOW, |s| s.lines().next().is_some_and(|l| l.trim_end().ends_with("LIVE")));

    t.keys(&["C-c"]);
    let (rc, took) = t.wait_exit();
    assert_eq!(rc, "0", "exit status after Ctrl-C");
    assert!(took < Duration::from_secs(3), "Ctrl-C took {took:?} to exit");
    t.assert_restored();
    assert_detached(&before);
}

/// Portability tests: run in every x86-64 guest of the kernel matrix (`cargo xtask vm-test`
/// selects them by this module) and on the host.
mod matrix {
    use super::*;

    /// 160x48 (the full layout, every panel on screen): real `NO_SOCKET` drops show their reason and
    /// their flow; q quits promptly, the terminal is restored and nothing stays attached.
    #[test]
    fn tui_shows_real_drops_and_quits_clean() {
        if !require("tui_shows_real_drops_and_quits_clean") {
            return;
        }
        let before = baseline();
        let ns = Netns::new("tui1");
        let t = Tmux::start("show", 160, 48, "top");
        t.wait_live();
        let dst: SocketAddr = "127.0.0.1:9999".parse().expect("addr");
        let src = ns.send_udp(dst, N);
        let screen = t.wait_screen("NO_SOCKET drops of our flow", SHOW, |s| shows_flow(s, src, dst));
        // The drops table counts all of them (our flow is the only one in a fresh namespace).
        let n = N.to_string();
        let reason = pktloss_tests::reason_name("NO_SOCKET");
        assert!(
            screen.lines().any(|l| l.contains(reason) && l.contains("__udp4_lib_rcv") && l.contains(&n)),
            "no {reason} row at __udp4_lib_rcv with {N} drops:\n{screen}"
        );
        assert!(screen.lines().any(|l| l.contains(&src.to_string()) && l.contains(" lo ")), "flow device:\n{screen}");
        t.keys(&["q"]);
        let (rc, took) = t.wait_exit();
        assert_eq!(rc, "0", "exit status after q");
        assert!(took < Duration::from_secs(3), "q took {took:?} to exit");
        t.assert_restored();
        assert_detached(&before);
    }
}
