//! A traced child (pktloss or a peer tool): spawn, wait until attached, read its CPU, memory and
//! BPF program statistics from /proc, stop it with SIGINT and collect its output.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Read},
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::util::show;

/// One BPF program held by the child, as its fdinfo shows it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProgStats {
    /// Nanoseconds spent in the program (only grows while `kernel.bpf_stats_enabled=1`).
    pub run_time_ns: u64,
    /// Times the program ran (same condition).
    pub run_cnt: u64,
}

impl ProgStats {
    /// What the program added since the reading `before` (of the same program).
    pub(super) fn since(self, before: ProgStats) -> ProgStats {
        ProgStats {
            run_time_ns: self.run_time_ns.saturating_sub(before.run_time_ns),
            run_cnt: self.run_cnt.saturating_sub(before.run_cnt),
        }
    }
}

/// A running traced child.
pub(super) struct Tracer {
    pid: libc::pid_t,
    what: String,
    started: Instant,
    lines: mpsc::Receiver<(Instant, String)>,
    stdout: Vec<(Instant, String)>,
    stderr: Option<JoinHandle<String>>,
    exit: Option<(libc::c_int, libc::rusage)>,
}

/// What a stopped child left.
pub(super) struct Finished {
    /// Its standard output, line by line with the time each line arrived.
    pub stdout: Vec<(Instant, String)>,
    /// Its standard error.
    pub stderr: String,
    /// User+system CPU seconds over its whole life.
    pub cpu_s: f64,
    /// Peak resident set size in KiB (`VmHWM`, last seen before it exited).
    pub maxrss_kib: u64,
    /// Whether it exited 0 (or by the SIGINT we sent).
    pub ok: bool,
    /// How it ended, for messages.
    pub status: String,
}

impl Finished {
    /// Standard output as one string.
    pub(super) fn stdout_text(&self) -> String {
        let mut s = String::new();
        for (_, l) in &self.stdout {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

impl Tracer {
    /// Spawn `cmd` with piped output; it gets SIGTERM if we die.
    pub(super) fn spawn(mut cmd: Command) -> Result<Self> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = show(&cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("cannot start `{what}`"))?;
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(|mut err| {
            thread::spawn(move || {
                let mut s = String::new();
                drop(err.read_to_string(&mut s));
                s
            })
        });
        // `child` is reaped by wait4 below (for its rusage), never by std.
        drop(child);
        Ok(Tracer { pid, what, started, lines, stdout: Vec::new(), stderr, exit: None })
    }

    /// When it was spawned.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// Reap it if it has exited; true while it still runs.
    pub(super) fn alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        let mut status = 0;
        // SAFETY: rusage is plain old data; wait4 on our own child pid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals; WNOHANG never blocks.
        let r = unsafe { libc::wait4(self.pid, &raw mut status, libc::WNOHANG, &raw mut ru) };
        if r == self.pid {
            self.exit = Some((status, ru));
            false
        } else {
            r == 0
        }
    }

    /// Wait for the next stdout line until `deadline`.
    pub(super) fn next_line(&mut self, deadline: Instant) -> Option<(Instant, String)> {
        let now = Instant::now();
        let l = self.lines.recv_timeout(deadline.saturating_duration_since(now)).ok()?;
        self.stdout.push(l.clone());
        Some(l)
    }

    /// Wait until the child holds BPF programs or perf events and their number has stayed the
    /// same for a few polls (it has loaded and attached), plus a short grace.
    pub(super) fn wait_attached(&mut self, timeout: Duration, stop: &AtomicBool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (mut last, mut stable) = (0usize, 0u32);
        loop {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            if !self.alive() {
                bail!("{}", self.died_message());
            }
            let n = tracing_fds(self.pid);
            if n > 0 && n == last {
                stable += 1;
                if stable >= 3 {
                    thread::sleep(Duration::from_millis(300));
                    return Ok(());
                }
            } else {
                stable = 0;
            }
            last = n;
            if Instant::now() >= deadline {
                bail!("`{}` did not attach within {}s", self.what, timeout.as_secs());
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn died_message(&mut self) -> String {
        let err = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        let status = self.exit.map_or_else(|| "?".into(), |(s, _)| describe(s));
        if last.is_empty() {
            format!("`{}` exited early ({status})", self.what)
        } else {
            format!("`{}` exited early ({status}): {last}", self.what)
        }
    }

    /// Its process id.
    pub(super) fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// User+system CPU seconds so far (from /proc/PID/stat).
    #[expect(clippy::cast_precision_loss, reason = "CPU seconds from clock ticks; tick counts are far below 2^53")]
    pub(super) fn cpu_s(&self) -> Option<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        Some(ticks as f64 / hz as f64)
    }

    /// Peak resident set size so far in KiB (`VmHWM`; unlike wait4's `ru_maxrss` it starts afresh at
    /// exec, so the pre-exec image forked from us does not count).
    pub(super) fn hwm_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// The BPF programs it holds, by program id.
    pub(super) fn progs(&self) -> BTreeMap<u32, ProgStats> {
        bpf_progs(self.pid)
    }

    /// Send SIGINT, wait up to `timeout` (then SIGKILL) and collect everything.
    pub(super) fn stop(mut self, timeout: Duration) -> Finished {
        let mut hwm = self.hwm_kib().unwrap_or(0);
        if self.alive() {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + timeout;
        while self.alive() && Instant::now() < deadline {
            hwm = hwm.max(self.hwm_kib().unwrap_or(0));
            thread::sleep(Duration::from_millis(10));
        }
        if self.alive() {
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            while self.alive() {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // The reader thread ends at EOF, once the child (and anything holding its pipe) is gone.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.stdout.push(l);
        }
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let (status, ru) = self.exit.unwrap_or((0, {
            // SAFETY: all-zero rusage is valid.
            unsafe { std::mem::zeroed() }
        }));
        #[expect(clippy::cast_precision_loss, reason = "a timeval as seconds, for the report")]
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            || libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGINT
            || libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 130;
        Finished {
            stdout: std::mem::take(&mut self.stdout),
            stderr,
            cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
            maxrss_kib: hwm,
            ok,
            status: describe(status),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.alive() {
            // SAFETY: our own unreaped child; reap it so no zombie is left.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &raw mut status, 0);
            }
        }
    }
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

/// Number of BPF program, BPF link and perf event fds the process holds.
fn tracing_fds(pid: libc::pid_t) -> usize {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(std::result::Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|t| {
            let t = t.to_string_lossy();
            t == "anon_inode:bpf-prog" || t == "anon_inode:bpf_link" || t == "anon_inode:[perf_event]"
        })
        .count()
}

/// The BPF programs a process holds, from /proc/PID/fdinfo (deduplicated by program id).
pub(super) fn bpf_progs(pid: libc::pid_t) -> BTreeMap<u32, ProgStats> {
    let mut progs = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return progs;
    };
    for e in dir.filter_map(std::result::Result::ok) {
        if fs::read_link(e.path()).map_or(true, |t| t.to_string_lossy() != "anon_inode:bpf-prog") {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy())) else {
            continue;
        };
        let field = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok());
        let Some(id) = field("prog_id:").and_then(|i| u32::try_from(i).ok()) else {
            continue;
        };
        progs.insert(
            id,
            ProgStats { run_time_ns: field("run_time_ns:").unwrap_or(0), run_cnt: field("run_cnt:").unwrap_or(0) },
        );
    }
    progs
}

/// Program names by id, from one `bpftool -j prog show` (empty if bpftool is missing).
pub(super) fn prog_names() -> BTreeMap<u32, String> {
    let Ok(out) = crate::util::output(Command::new("bpftool").args(["-j", "prog", "show"])) else {
        return BTreeMap::new();
    };
    let Ok(serde_json::Value::Array(progs)) = serde_json::from_str::<serde_json::Value>(&out) else {
        return BTreeMap::new();
    };
    progs
        .iter()
        .filter_map(|p| {
            let id = u32::try_from(p.get("id")?.as_u64()?).ok()?;
            let name = p.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let ty = p.get("type").and_then(|n| n.as_str()).unwrap_or("?");
            Some((id, format!("{name} ({ty})")))
        })
        .collect()
}
