//! The subcommands: each runs the [`crate::session`] pipeline and hands what it found to
//! [`crate::render`]. `-o FILE` means the same for every command, by the file's extension
//! ([`OutKind`]).
use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use pktloss_common::stat;

use super::args::{CaptureArgs, DiagnoseArgs, Format, ReasonsArgs, ReportArgs, TraceArgs, WatchArgs};
use crate::{
    Error,
    capture::{check_writable, write_private},
    decode::reasons::ReasonTable,
    host::counters::CounterWatch,
    kernel::{btf::KernelBtf, tracer::RawCounts},
    render::{diagnosis, json, pcapng, reasons, report, summary, watch},
    session::{Session, capture_file, gather_after, run_until, stop_flag},
};

/// What `-o FILE` writes, by the file's extension: `.pktloss` a capture file (read it with
/// `pktloss report`), `.json` JSON, `.md` Markdown, anything else text. Every file is created
/// mode 0600: they hold addresses, process names and packet bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutKind {
    Capture,
    Json,
    Markdown,
    Text,
}

impl OutKind {
    pub(crate) fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("pktloss") => Self::Capture,
            Some("json") => Self::Json,
            Some("md" | "markdown") => Self::Markdown,
            _ => Self::Text,
        }
    }
}

/// Fail early, before anything is attached, on an output path that cannot be written: a
/// missing directory, a read-only or full filesystem, a directory in the way. A long capture
/// would otherwise be lost at its end.
fn check_output(path: Option<&Path>) -> Result<()> {
    if let Some(p) = path {
        check_writable(p).map_err(Error::BadInput)?;
    }
    Ok(())
}

/// Refuse `--pcapng` when no packet would be in it.
fn check_pcapng(pcapng: Option<&Path>, trace: &TraceArgs) -> Result<()> {
    if pcapng.is_some() && (trace.no_detail || trace.snaplen == 0) {
        let why = if trace.no_detail { "--no-detail" } else { "--snaplen 0" };
        return Err(Error::BadInput(format!("--pcapng writes the sampled packets' bytes; {why} keeps none")).into());
    }
    Ok(())
}

/// Print `text` to stdout.
fn print(text: &str) {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
}

/// Write an output file, mode 0600, and say so on stderr.
fn save(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    write_private(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("pktloss: wrote {} ({what})", path.display());
    Ok(())
}

/// The options of a capture, as recorded in its file.
fn options_json(trace: &TraceArgs, duration: Option<Duration>, count: Option<u64>) -> serde_json::Value {
    serde_json::json!({
        "duration": duration.map(|d| humantime::format_duration(d).to_string()),
        "count": count,
        "stacks": trace.stacks,
        "detail": !trace.no_detail,
        "detail_budget": trace.detail_budget.0,
        "flows": !trace.no_flows,
        "snaplen": trace.snaplen,
        "classic": trace.classic,
        "tx_trace": trace.tx_trace,
    })
}

/// Why a run ended, as the capture file records it.
fn stopped_by(session: &Session, interrupted: bool, count: Option<u64>) -> &'static str {
    if interrupted {
        "interrupted"
    } else if count.is_some_and(|n| session.tracer.stat(stat::DROPS) >= n) {
        "count"
    } else {
        "duration"
    }
}

/// A progress line on a terminal's stderr, every half second.
struct Progress {
    tty: bool,
    last: Instant,
}

impl Progress {
    fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last: Instant::now() }
    }

    fn tick(&mut self, s: &Session, duration: Option<Duration>) {
        if !self.tty || self.last.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last = Instant::now();
        let drops = s.tracer.stat(stat::DROPS);
        match duration.map(|d| d.saturating_sub(s.started.elapsed())) {
            Some(l) => eprint!("\r\x1b[Kcapturing: {:.0}s left, {drops} drops so far", l.as_secs_f64().ceil()),
            None => eprint!(
                "\r\x1b[Kcapturing: {:.0}s, {drops} drops so far (Ctrl-C to stop)",
                s.started.elapsed().as_secs_f64()
            ),
        }
        // The progress line is cosmetic: a failed flush must not stop the capture.
        drop(std::io::stderr().flush());
    }

    fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

pub(super) fn capture(a: CaptureArgs) -> Result<()> {
    check_output(a.output.as_deref())?;
    check_output(a.pcapng.as_deref())?;
    check_pcapng(a.pcapng.as_deref(), &a.trace)?;
    let out = a.output.as_deref().map(|p| (p, OutKind::of(p)));
    let needs_file = out.is_some_and(|(_, k)| k == OutKind::Capture) || a.pcapng.is_some();
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options()?)?;
    let before = needs_file.then(CounterWatch::baseline);
    if needs_file {
        session.watch_namespaces();
    }
    session.announce();
    let mut progress = Progress::new();
    run_until(&mut session, a.duration, a.count, &stop, |s| progress.tick(s, a.duration));
    progress.done();
    let stopped = stopped_by(&session, stop.load(Ordering::Relaxed), a.count);
    let summary = session.final_summary()?;
    let reasons: Vec<(u32, String)> = session.agg.reasons.iter().map(|(c, n)| (c, n.to_owned())).collect();
    let lifecycle = session.lifecycle.take();
    drop(session); // detach before the slower work
    print(&match a.format {
        Format::Text => summary::text(&summary),
        Format::Json => json::pretty(&summary),
    });
    let file = before.map(|before| {
        let mut summary = summary.clone();
        let d = gather_after(before, &mut summary, lifecycle);
        capture_file(summary.clone(), &d, reasons, options_json(&a.trace, a.duration, a.count), stopped)
    });
    if let Some((path, kind)) = out {
        let bytes = match (kind, &file) {
            (OutKind::Capture, Some(f)) => crate::capture::to_bytes(f).context("encoding the capture file")?,
            (OutKind::Json, _) => json::pretty(&summary).into_bytes(),
            (OutKind::Markdown, _) => {
                let mut m = String::new();
                summary::markdown(&summary, &mut m);
                m.into_bytes()
            }
            _ => summary::text(&summary).into_bytes(),
        };
        let what = match &file {
            Some(f) if kind == OutKind::Capture => {
                format!(
                    "{} drops, {} sampled packets; read it with pktloss report",
                    f.summary.total_drops,
                    f.summary.samples.len()
                )
            }
            _ => format!("{} drops", summary.total_drops),
        };
        save(path, &bytes, &what)?;
    }
    if let (Some(path), Some(f)) = (&a.pcapng, &file) {
        let (bytes, n) = pcapng::pcapng_bytes(f).with_context(|| format!("writing {}", path.display()))?;
        save(path, &bytes, &format!("{n} packets"))?;
    }
    Ok(())
}

/// `pktloss report FILE`: the same summary and diagnosis as live, from the file alone.
pub(super) fn report_cmd(a: ReportArgs) -> Result<()> {
    let mut file = crate::capture::read(&a.file)
        .map_err(|e| Error::BadCaptureFile { path: a.file.clone(), error: Box::new(e) })?;
    check_output(a.pcapng.as_deref())?;
    // The diagnosis is a pure function of the saved data: recompute it with this pktloss.
    file.rediagnose();
    if let Some(out) = &a.pcapng {
        let (bytes, n) = pcapng::pcapng_bytes(&file).with_context(|| format!("writing {}", out.display()))?;
        save(out, &bytes, &format!("{n} packets"))?;
    }
    print(&report::render(&file, a.format));
    Ok(())
}

/// One `watch` line: the (reason, location) counts of `d` (an interval or the whole run).
fn watch_line(s: &Session, d: &RawCounts, total: u64, t: f64, interval_secs: f64, whole: bool) -> watch::WatchLine {
    watch::WatchLine {
        t,
        interval_secs,
        drops: d.stat(stat::DROPS),
        total_drops: total,
        lost_events: d.stat(stat::DETAIL_LOST_BUDGET) + d.stat(stat::DETAIL_LOST_RINGBUF),
        filtered_out: s.info.filter.is_some().then(|| d.stat(stat::FILTERED)),
        top: d
            .drops
            .iter()
            .map(|(k, c)| watch::WatchEntry {
                reason: crate::model::DropReason::new(k.reason, s.agg.reasons.name(k.reason)),
                symbol: s.agg.syms.symbolize(k.location),
                count: *c,
            })
            .collect(),
        total: whole,
    }
}

pub(super) fn watch(a: WatchArgs) -> Result<()> {
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options()?)?;
    session.announce();
    // The first interval counts everything since attach.
    let zero = RawCounts { stats: vec![0; stat::COUNT as usize], ..RawCounts::default() };
    let mut prev = zero.clone();
    let mut last = Instant::now();
    let format = a.format;
    let mut failure: Option<anyhow::Error> = None;
    let emit = |line: &watch::WatchLine, failure: &mut Option<anyhow::Error>| {
        let text = match format {
            Format::Text => watch::text(line),
            Format::Json => watch::json_line(line),
        };
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
            *failure = Some(anyhow::Error::new(e).context("writing to stdout"));
        }
    };
    run_until(&mut session, a.duration, None, &stop, |s| {
        if last.elapsed() < a.interval || failure.is_some() {
            return;
        }
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        match s.read() {
            Ok(now) => {
                let d = crate::aggregate::interval(&prev, &now);
                let line = watch_line(s, &d, now.stat(stat::DROPS), s.started.elapsed().as_secs_f64(), secs, false);
                emit(&line, &mut failure);
                prev = now;
            }
            Err(e) => failure = Some(e),
        }
    });
    if failure.is_none() {
        // The last, partial interval (cut by --duration or Ctrl-C), read exactly after
        // detaching, then the closing total of the whole run.
        session.tracer.detach();
        let now = session.read()?;
        let t = session.started.elapsed().as_secs_f64();
        let secs = last.elapsed().as_secs_f64();
        let d = crate::aggregate::interval(&prev, &now);
        if secs >= 0.001 || d.stat(stat::DROPS) > 0 {
            emit(&watch_line(&session, &d, now.stat(stat::DROPS), t, secs, false), &mut failure);
        }
        let all = crate::aggregate::interval(&zero, &now);
        emit(&watch_line(&session, &all, now.stat(stat::DROPS), t, t, true), &mut failure);
    }
    drop(session);
    match failure {
        // stdout closed (e.g. piped into head): stop quietly.
        Some(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(super) fn diagnose_cmd(a: DiagnoseArgs) -> Result<()> {
    check_output(a.output.as_deref())?;
    let stop = stop_flag()?;
    let mut session = Session::start(a.trace.options()?)?;
    let before = CounterWatch::baseline();
    session.watch_namespaces();
    session.announce();
    run_until(&mut session, Some(a.duration), a.count, &stop, |_| {});
    let stopped = stopped_by(&session, stop.load(Ordering::Relaxed), a.count);
    let summary = session.final_summary()?;
    let reasons: Vec<(u32, String)> = session.agg.reasons.iter().map(|(c, n)| (c, n.to_owned())).collect();
    let lifecycle = session.lifecycle.take();
    drop(session);
    let mut summary = summary;
    let d = gather_after(before, &mut summary, lifecycle);
    let as_json = || json::pretty(&json::Diagnosed::new(&summary, &d.diagnosis, &d.deltas, &d.checks));
    let as_text = || format!("{}\n{}", summary::text(&summary), diagnosis::text(&d.diagnosis));
    print(&match a.format {
        Format::Json => as_json(),
        Format::Text => as_text(),
    });
    if let Some(path) = a.output.as_deref() {
        let bytes = match OutKind::of(path) {
            OutKind::Capture => {
                let options = options_json(&a.trace, Some(a.duration), a.count);
                let file = capture_file(summary.clone(), &d, reasons, options, stopped);
                crate::capture::to_bytes(&file).context("encoding the capture file")?
            }
            OutKind::Json => as_json().into_bytes(),
            OutKind::Markdown => {
                let mut m = String::new();
                summary::markdown(&summary, &mut m);
                diagnosis::markdown(&d.diagnosis, &mut m);
                m.into_bytes()
            }
            OutKind::Text => as_text().into_bytes(),
        };
        save(path, &bytes, &format!("{} causes", d.diagnosis.causes.len()))?;
    }
    Ok(())
}

pub(super) fn reasons(a: ReasonsArgs) -> Result<()> {
    let kbtf = KernelBtf::load().map_err(Error::KernelInterface)?;
    if a.resets {
        let rows = reasons::reset_rows(&ReasonTable::new(kbtf.reset_reasons()));
        print(&match a.format {
            Format::Json => json::pretty(&rows),
            Format::Text => reasons::resets_text(&rows),
        });
        return Ok(());
    }
    let rows = reasons::rows(&ReasonTable::new(kbtf.drop_reasons()));
    print(&match a.format {
        Format::Json => json::pretty(&rows),
        Format::Text => reasons::text(&rows),
    });
    Ok(())
}
