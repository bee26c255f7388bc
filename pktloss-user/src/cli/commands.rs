//! The subcommands: each parses nothing itself, runs the [`crate::session`] pipeline and hands
//! what it found to [`crate::render`].
use std::{
    io::{IsTerminal as _, Write as _},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use pktloss_common::stat;

use super::args::{CaptureArgs, DiagnoseArgs, Format, ReasonsArgs, ReportArgs, WatchArgs};
use crate::{
    decode::reasons::{ReasonTable, describe},
    kernel::{
        btf::KernelBtf,
        tracer::{RawCounts, StartError},
    },
    model::Summary,
    render,
    session::{Diagnosed, Session, gather_after, gather_before, run_until, stop_flag},
};

pub(super) fn capture(a: CaptureArgs) -> Result<()> {
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
pub(super) fn report_cmd(a: ReportArgs) -> Result<()> {
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

pub(super) fn watch(a: WatchArgs) -> Result<()> {
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
        match s.read() {
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

pub(super) fn diagnose_cmd(a: DiagnoseArgs) -> Result<()> {
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

pub(super) fn reasons(a: ReasonsArgs) -> Result<()> {
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
