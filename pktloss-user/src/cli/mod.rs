//! The `pktloss` command line: parse flags, run a subcommand, map failures to exit codes.
use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pktloss_common::stat;

use crate::{
    aggregate::{Aggregator, CaptureInfo},
    decode::reasons::{ReasonTable, describe},
    decode::symbols::Kallsyms,
    kernel::btf::KernelBtf,
    kernel::tracer::{FLOW_CAPACITY, Options, RawCounts, StartError, Tracer},
    model::Summary,
    render,
};

/// Exit code for bad input: flags, files, missing kernel features or privileges.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "pktloss",
    version,
    about = "Linux kernel packet-drop tracer: every drop, why, where, which flow, and what to do"
)]
pub struct Cli {
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach, collect for a while, detach and print a dropwatch-style summary.
    Capture(CaptureArgs),
    /// Print a line per interval, like dropwatch.
    Watch(WatchArgs),
    /// List the drop reasons of the running kernel (from its BTF).
    Reasons(ReasonsArgs),
    /// Capture, read kernel counters and configuration, and explain the causes of loss.
    Diagnose(DiagnoseArgs),
    /// Live view (the default on a terminal).
    Top(TopArgs),
    /// Summary and diagnosis of a saved capture file (no root needed).
    Report(ReportArgs),
}

#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// How long to capture.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after at least this many drops.
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the output to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Seconds between counter and diagnosis refreshes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub refresh: Duration,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Flags shared by every subcommand that traces.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Record the kernel stack of each sampled detail event (shown per reason x location).
    #[arg(long, conflicts_with = "no_detail")]
    pub stacks: bool,
    /// Detail events per second over all CPUs, or "unlimited".
    #[arg(long, default_value = "1000", value_parser = parse_budget)]
    pub detail_budget: Budget,
    /// No per-drop detail events (exact counters only).
    #[arg(long)]
    pub no_detail: bool,
    /// No per-flow counters.
    #[arg(long)]
    pub no_flows: bool,
    /// Packet bytes kept per detail event (0..=256).
    #[arg(long, default_value_t = pktloss_common::DEFAULT_SNAPLEN, value_parser = clap::value_parser!(u32).range(0..=pktloss_common::MAX_SNAPLEN as i64))]
    pub snaplen: u32,
    /// Ring buffer size in KiB (power of two, at least 4).
    #[arg(long, default_value_t = 2048, value_parser = parse_ringbuf_kib)]
    pub ringbuf_kib: u32,
    /// Use the classic tracepoints even where tp_btf works.
    #[arg(long)]
    pub classic: bool,
    /// Count transmitted packets per device with the net:net_dev_queue tracepoint (a program
    /// run per transmitted packet) instead of the devices' own counters.
    #[arg(long)]
    pub tx_trace: bool,
}

/// A detail budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget(pub Option<u32>);

fn parse_budget(s: &str) -> Result<Budget, String> {
    if s == "unlimited" {
        return Ok(Budget(None));
    }
    s.parse::<u32>().map(|v| Budget(Some(v))).map_err(|_| format!("`{s}` is not a number or \"unlimited\""))
}

fn parse_ringbuf_kib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v < 4 || !v.is_power_of_two() || v > 1 << 20 {
        return Err(format!("{v} KiB: must be a power of two between 4 and 1048576"));
    }
    Ok(v)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be more than zero"));
    }
    Ok(d)
}

impl TraceArgs {
    pub fn options(&self) -> Options {
        Options {
            flows: !self.no_flows,
            detail: !self.no_detail,
            stacks: self.stacks,
            detail_budget: self.detail_budget.0,
            snaplen: self.snaplen,
            ringbuf_bytes: self.ringbuf_kib * 1024,
            classic: self.classic,
            tx_trace: self.tx_trace,
        }
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// How long to capture (e.g. 10s, 1m); without it, until Ctrl-C or --count.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after at least this many drops.
    #[arg(short, long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the output to this file; a name ending in `.pktloss` saves a self-contained
    /// capture file instead (read it with `pktloss report`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also write the sampled dropped packets as pcapng.
    #[arg(long)]
    pub pcapng: Option<PathBuf>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A capture file written by `pktloss capture -o FILE.pktloss`.
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::capture::ReportFormat::Text)]
    pub format: crate::capture::ReportFormat,
    /// Write the sampled dropped packets as pcapng to this file.
    #[arg(long)]
    pub pcapng: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Interval between lines.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this long.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Output format (json = one JSON object per line).
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Args, Debug)]
pub struct ReasonsArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`pktloss ... | head`), like other Unix tools; the kernel
    // detaches the programs when the process exits.
    // SAFETY: setting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One clear line.
            let msg = e.to_string();
            let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad arguments");
            eprintln!("pktloss: {}", first.trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new().filter_level(level).format_timestamp(None).parse_default_env().init();
    let result = match cli.command {
        Some(Command::Capture(a)) => capture(a),
        Some(Command::Watch(a)) => watch(a),
        Some(Command::Reasons(a)) => reasons(a),
        Some(Command::Diagnose(a)) => diagnose_cmd(a),
        Some(Command::Top(a)) => crate::tui::live::top(a),
        Some(Command::Report(a)) => report_cmd(a),
        None => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                match Cli::try_parse_from(["pktloss", "top"]) {
                    Ok(Cli { command: Some(Command::Top(a)), .. }) => crate::tui::live::top(a),
                    _ => Err(anyhow!("cannot build the default `top` arguments")),
                }
            } else {
                eprintln!(
                    "pktloss: no subcommand and not a terminal; try `pktloss capture --duration 10s` or `pktloss --help`"
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e.downcast_ref::<StartError>().is_some();
            eprintln!("pktloss: {}", one_line(&e));
            ExitCode::from(if usage { EXIT_USAGE } else { 1 })
        }
    }
}

/// An error as one line of at most 1000 characters (messages are written short; this bounds
/// what a library error may add).
fn one_line(e: &anyhow::Error) -> String {
    crate::kernel::verifier::shorten(&format!("{e:#}").replace('\n', " "), 1000)
}

/// SIGINT/SIGTERM set this flag; the loops check it and detach cleanly.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("installing signal handler")?;
    }
    Ok(flag)
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Host name and kernel release.
pub fn host_facts() -> (String, String) {
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    (host, kernel)
}

/// A running trace session: tracer + aggregator + metadata.
pub struct Session {
    pub tracer: Tracer,
    pub agg: Aggregator,
    pub info: CaptureInfo,
    pub started: Instant,
}

impl Session {
    /// Start tracing with these options.
    pub fn start(opts: Options) -> Result<Self> {
        let kbtf = KernelBtf::load().map_err(|e| StartError(format!("{e:#}")))?;
        let reasons = ReasonTable::new(kbtf.drop_reasons());
        let detail_budget = if opts.detail { opts.detail_budget.map(u64::from) } else { Some(0) };
        let flow_capacity = if opts.flows { FLOW_CAPACITY } else { 0 };
        let start_mono = mono_ns();
        let (hostname, kernel) = host_facts();
        let mut facts = crate::kernel::tracer::KernelFacts::from_btf(&kbtf).with_release(&kernel);
        // Free the parsed BTF before aya parses its own copy: halves the peak RSS.
        drop(kbtf);
        crate::kernel::tracer::check_privileges()?;
        let syms = Kallsyms::load().unwrap_or_else(|e| {
            log::warn!("{e}; locations will be addresses");
            Kallsyms::default()
        });
        facts.has_tcp_drop = syms.contains("tcp_drop");
        let tracer = Tracer::start(opts, &facts)?;
        let info = CaptureInfo {
            hostname,
            kernel,
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_secs: 0.0,
            probes: tracer.probes.clone(),
            detail_budget,
            flow_capacity,
        };
        let flows_by_location = reasons.is_empty();
        let mut agg = Aggregator::new(reasons, syms, start_mono);
        agg.flows_by_location = flows_by_location;
        Ok(Self { tracer, agg, info, started: Instant::now() })
    }

    /// Say (with -v) that the capture is under way: the probes are attached and the counters
    /// a command compares against were read. Tests wait for this line. The capture's duration
    /// counts from here (reading every namespace's counters can take seconds on a slow host).
    pub fn announce(&mut self) {
        self.started = Instant::now();
        let active: Vec<&str> = self.tracer.probes.iter().filter(|p| p.active).map(|p| p.name.as_str()).collect();
        log::info!("pktloss: tracing with {}", active.join(", "));
    }

    /// Drain waiting detail events into the aggregator.
    pub fn pump(&mut self, wait_ms: i32) {
        self.tracer.wait(wait_ms);
        let agg = &mut self.agg;
        self.tracer.drain(|ev| agg.ingest(ev));
    }

    /// Summary of everything so far.
    pub fn summary(&mut self) -> Result<Summary> {
        let raw = self.tracer.read()?;
        Ok(self.summary_of(&raw))
    }

    /// The final, exact summary: detach the programs, drain the last detail events, read.
    pub fn final_summary(&mut self) -> Result<Summary> {
        self.tracer.detach();
        let agg = &mut self.agg;
        self.tracer.drain(|ev| agg.ingest(ev));
        self.summary()
    }

    /// Summary of given raw counters.
    pub fn summary_of(&mut self, raw: &RawCounts) -> Summary {
        self.info.duration_secs = self.started.elapsed().as_secs_f64();
        let tracer = &self.tracer;
        self.agg.summary(raw, &self.info, &|id| tracer.stack(id))
    }
}

/// Run until the deadline, the count, or a signal.
pub fn run_until(
    session: &mut Session,
    duration: Option<Duration>,
    count: Option<u64>,
    stop: &AtomicBool,
    mut tick: impl FnMut(&mut Session),
) {
    let deadline = duration.map(|d| session.started + d);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let wait = deadline.map_or(50, |d| d.saturating_duration_since(now).as_millis().min(50) as i32);
        session.pump(wait);
        if let Some(n) = count
            && session.tracer.stat(stat::DROPS) >= n
        {
            break;
        }
        tick(session);
    }
    // Final drain so that every delivered event is in the samples.
    session.pump(0);
}

fn capture(a: CaptureArgs) -> Result<()> {
    check_output_dir(a.output.as_deref())?;
    check_output_dir(a.pcapng.as_deref())?;
    let to_file = a.output.as_ref().is_some_and(|p| p.extension().is_some_and(|e| e == "pktloss"));
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options())?;
    let before = (to_file || a.pcapng.is_some()).then(gather_before);
    session.announce();
    let tty = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    run_until(&mut session, a.duration, a.count, &stop, |s| {
        if tty && last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let left = a.duration.map(|d| d.saturating_sub(s.started.elapsed()));
            let drops = s.tracer.stat(stat::DROPS);
            match left {
                Some(l) => eprint!("\r\x1b[Kcapturing: {:.0}s left, {drops} drops so far", l.as_secs_f64().ceil()),
                None => eprint!(
                    "\r\x1b[Kcapturing: {:.0}s, {drops} drops so far (Ctrl-C to stop)",
                    s.started.elapsed().as_secs_f64()
                ),
            }
            let _ = std::io::stderr().flush();
        }
    });
    if tty {
        eprint!("\r\x1b[K");
    }
    let stopped_by = if stop.load(Ordering::Relaxed) {
        "interrupted"
    } else if a.count.is_some_and(|n| session.tracer.stat(stat::DROPS) >= n) {
        "count"
    } else {
        "duration"
    };
    let summary = session.final_summary()?;
    let reasons: Vec<(u32, String)> = session.agg.reasons.iter().map(|(c, n)| (c, n.to_owned())).collect();
    drop(session); // detach before the slower work
    let text = match a.format {
        Format::Text => render::summary_text(&summary),
        Format::Json => render::json(&summary),
    };
    if let Some(before) = before {
        let d = gather_after(before, &summary);
        let file = capture_file(summary, &d, reasons, &a, stopped_by);
        if let Some(path) = a.output.as_ref().filter(|_| to_file) {
            crate::capture::write(path, &file).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "pktloss: wrote {} ({} drops, {} sampled packets)",
                path.display(),
                file.summary.total_drops,
                file.summary.samples.len()
            );
        }
        if let Some(path) = &a.pcapng {
            let n = crate::capture::write_pcapng(&file, path).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("pktloss: wrote {n} packets to {}", path.display());
        }
    }
    emit(&text, a.output.as_deref().filter(|_| !to_file))
}

/// Build the self-contained capture file.
fn capture_file(
    summary: Summary,
    d: &Diagnosed,
    reasons: Vec<(u32, String)>,
    a: &CaptureArgs,
    stopped_by: &str,
) -> crate::capture::CaptureFile {
    use crate::capture::{CaptureFile, DropReasonName, Interface};
    let mut file = CaptureFile::for_this_host(summary);
    file.drop_reasons = reasons.into_iter().map(|(code, name)| DropReasonName { code, name }).collect();
    file.stopped_by = stopped_by.to_owned();
    file.options = serde_json::json!({
        "duration": a.duration.map(|d| humantime::format_duration(d).to_string()),
        "count": a.count,
        "stacks": a.trace.stacks,
        "detail": !a.trace.no_detail,
        "detail_budget": a.trace.detail_budget.0,
        "flows": !a.trace.no_flows,
        "snaplen": a.trace.snaplen,
        "classic": a.trace.classic,
        "tx_trace": a.trace.tx_trace,
    });
    // Interfaces of every namespace with drops or traffic.
    let mut seen = std::collections::BTreeSet::new();
    for (ns, ifindex) in file
        .summary
        .devices
        .iter()
        .map(|x| (x.netns, x.ifindex))
        .chain(file.summary.flows.iter().map(|f| (f.netns, f.ifindex)))
        .chain(file.summary.samples.iter().map(|x| (x.netns, x.ifindex)))
    {
        if ifindex != 0 {
            seen.insert((ns, ifindex));
        }
    }
    let names: std::collections::HashMap<(u32, u32), String> = file
        .summary
        .devices
        .iter()
        .map(|x| ((x.netns, x.ifindex), x.name.clone()))
        .chain(file.summary.flows.iter().map(|f| ((f.netns, f.ifindex), f.device.clone())))
        .filter(|(_, n)| !n.is_empty())
        .collect();
    let ns_map = crate::host::netns::list();
    let after_devs: std::collections::HashMap<(u32, String), (u32, bool)> = d
        .deltas
        .iter()
        .flat_map(|x| {
            x.devices
                .iter()
                .map(move |dev| ((x.netns, dev.name.clone()), (dev.mtu, dev.kind == "loopback" || dev.name == "lo")))
        })
        .collect();
    for (ns, ifindex) in seen {
        let name = names.get(&(ns, ifindex)).cloned().unwrap_or_default();
        let netns_name = ns_map.get(&ns).map(|r| r.label()).unwrap_or_default();
        let (mtu, is_lo) = after_devs.get(&(ns, name.clone())).copied().unwrap_or((0, name == "lo"));
        file.interfaces.push(Interface {
            netns: ns,
            netns_name,
            ifindex,
            arphrd: Some(if is_lo { 772 } else { 1 }),
            mtu: (mtu > 0).then_some(mtu),
            name,
            mac: String::new(),
        });
    }
    file.counters_before = serde_json::to_value(&d.before).unwrap_or_default();
    file.counters_after = serde_json::to_value(&d.after).unwrap_or_default();
    file.checks = serde_json::to_value(&d.checks).unwrap_or_default();
    file.diagnosis = serde_json::to_value(&d.diagnosis).unwrap_or_default();
    file
}

/// `pktloss report FILE`: the same summary and diagnosis as live, from the file alone.
fn report_cmd(a: ReportArgs) -> Result<()> {
    let mut file = crate::capture::read(&a.file).map_err(|e| StartError(format!("{}: {e}", a.file.display())))?;
    // The diagnosis is a pure function of the saved data: recompute it with this pktloss.
    if let (Ok(before), Ok(after)) = (
        serde_json::from_value::<crate::host::counters::Gathered>(file.counters_before.clone()),
        serde_json::from_value::<crate::host::counters::Gathered>(file.counters_after.clone()),
    ) {
        let (deltas, checks) = crate::host::counters::finish(before, after);
        let diag = crate::diagnose::diagnose(&crate::diagnose::DiagnosisInput {
            summary: &file.summary,
            deltas: &deltas,
            checks: &checks,
        });
        file.diagnosis = serde_json::to_value(&diag).unwrap_or_default();
    }
    if let Some(out) = &a.pcapng {
        check_output_dir(Some(out))?;
        let n = crate::capture::write_pcapng(&file, out).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("pktloss: wrote {n} packets to {}", out.display());
    }
    let text = crate::capture::render(&file, a.format);
    emit(&text, None)
}

fn watch(a: WatchArgs) -> Result<()> {
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options())?;
    session.announce();
    // The first interval counts everything since attach.
    let mut prev = RawCounts { stats: vec![0; stat::COUNT as usize], ..RawCounts::default() };
    let mut last = Instant::now();
    let interval = a.interval;
    let format = a.format;
    let mut failure: Option<anyhow::Error> = None;
    run_until(&mut session, a.duration, None, &stop, |s| {
        if last.elapsed() < interval || failure.is_some() {
            return;
        }
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        match s.tracer.read() {
            Ok(now) => {
                let d = crate::aggregate::interval(&prev, &now);
                let line = render::WatchLine {
                    t: s.started.elapsed().as_secs_f64(),
                    interval_secs: secs,
                    drops: d.stat(stat::DROPS),
                    total_drops: now.stat(stat::DROPS),
                    lost_events: d.stat(stat::DETAIL_LOST_BUDGET) + d.stat(stat::DETAIL_LOST_RINGBUF),
                    top: d
                        .drops
                        .iter()
                        .take(10)
                        .map(|(k, c)| render::WatchEntry {
                            reason: s.agg.reasons.name(k.reason),
                            code: k.reason,
                            symbol: s.agg.syms.symbolize(k.location),
                            count: *c,
                        })
                        .collect(),
                };
                let text = match format {
                    Format::Text => render::watch_text(&line),
                    Format::Json => serde_json::to_string(&line).unwrap_or_default(),
                };
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    // stdout closed (e.g. piped into head): stop quietly.
                    failure = Some(anyhow!("stdout closed"));
                }
                prev = now;
            }
            Err(e) => failure = Some(e),
        }
    });
    drop(session);
    match failure {
        Some(e) if e.to_string() == "stdout closed" => Ok(()),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Namespaces to snapshot before a capture: every one we can see, bounded.
pub const MAX_NETNS: usize = 64;

/// Counters and configuration around a capture, and the diagnosis they give.
pub struct Diagnosed {
    pub before: crate::host::counters::Gathered,
    pub after: crate::host::counters::Gathered,
    pub deltas: Vec<crate::host::counters::NetnsDelta>,
    pub checks: Vec<crate::host::counters::ConfigChecks>,
    pub diagnosis: crate::diagnose::Diagnosis,
}

/// Snapshot every visible namespace (bounded) before a capture.
pub fn gather_before() -> crate::host::counters::Gathered {
    let inodes: Vec<u32> = crate::host::netns::list().keys().copied().take(MAX_NETNS).collect();
    crate::host::counters::gather(&inodes)
}

/// After a capture: snapshot the same namespaces plus every one drops came from, and diagnose.
pub fn gather_after(before: crate::host::counters::Gathered, summary: &Summary) -> Diagnosed {
    let mut inodes: Vec<u32> = before.snapshots.iter().map(|s| s.netns).collect();
    for f in &summary.flows {
        if f.netns != 0 && !inodes.contains(&f.netns) {
            inodes.push(f.netns);
        }
    }
    let after = crate::host::counters::gather(&inodes);
    let (kept_before, kept_after) = (before.clone(), after.clone());
    let (deltas, checks) = crate::host::counters::finish(before, after);
    let diagnosis =
        crate::diagnose::diagnose(&crate::diagnose::DiagnosisInput { summary, deltas: &deltas, checks: &checks });
    Diagnosed { before: kept_before, after: kept_after, deltas, checks, diagnosis }
}

/// JSON of `pktloss diagnose`: the summary fields, then the causes and their inputs.
#[derive(serde::Serialize)]
pub struct DiagnoseJson<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub causes: &'a [crate::diagnose::Cause],
    pub reconciliation: &'a [String],
    pub unavailable: &'a [String],
    pub counters: &'a [crate::host::counters::NetnsDelta],
    pub checks: &'a [crate::host::counters::ConfigChecks],
}

fn diagnose_cmd(a: DiagnoseArgs) -> Result<()> {
    check_output_dir(a.output.as_deref())?;
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options())?;
    let before = gather_before();
    session.announce();
    run_until(&mut session, Some(a.duration), a.count, &stop, |_| {});
    let summary = session.final_summary()?;
    drop(session);
    let d = gather_after(before, &summary);
    let text = match a.format {
        Format::Json => render::json(&DiagnoseJson {
            summary: &summary,
            causes: &d.diagnosis.causes,
            reconciliation: &d.diagnosis.reconciliation,
            unavailable: &d.diagnosis.unavailable,
            counters: &d.deltas,
            checks: &d.checks,
        }),
        Format::Text => {
            let mut t = render::summary_text(&summary);
            t.push('\n');
            if d.diagnosis.causes.is_empty() {
                t.push_str("Diagnosis: no cause of packet loss found.\n");
            } else {
                t.push_str("Diagnosis (ranked by drops explained):\n");
                t.push_str(&crate::diagnose::render_text(&d.diagnosis.causes));
            }
            if !d.diagnosis.reconciliation.is_empty() {
                t.push_str("\nEvents vs counters:\n");
                for r in &d.diagnosis.reconciliation {
                    t.push_str(&format!("  {r}\n"));
                }
            }
            t
        }
    };
    emit(&text, a.output.as_deref())
}

fn check_output_dir(path: Option<&std::path::Path>) -> Result<()> {
    if let Some(parent) = path.and_then(|p| p.parent()).filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(StartError(format!("output directory {} does not exist", parent.display())).into());
    }
    Ok(())
}

/// Print `text` and, with -o, save it too.
fn emit(text: &str, path: Option<&std::path::Path>) -> Result<()> {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    if let Some(path) = path {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ReasonOut {
    code: u32,
    reason: String,
    description: &'static str,
}

fn reasons(a: ReasonsArgs) -> Result<()> {
    let kbtf = KernelBtf::load().map_err(|e| StartError(format!("{e:#}")))?;
    let table = ReasonTable::new(kbtf.drop_reasons());
    let rows: Vec<ReasonOut> = table
        .iter()
        .map(|(code, name)| ReasonOut { code, reason: name.to_owned(), description: describe(name) })
        .collect();
    match a.format {
        Format::Json => println!("{}", render::json(&rows)),
        Format::Text if rows.is_empty() => println!(
            "this kernel has no drop reasons (enum skb_drop_reason is new in 5.17): pktloss counts its drops by \
             location and flow, with reason {}",
            crate::decode::reasons::NO_REASON
        ),
        Format::Text => {
            println!("{} drop reasons in this kernel (enum skb_drop_reason, from BTF):", rows.len());
            for r in rows {
                println!("{:>8}  {:<32} {}", r.code, r.reason, r.description);
            }
        }
    }
    Ok(())
}
