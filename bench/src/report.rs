//! The benchmark's summary: a table on stdout, the same as Markdown, and the JSON report.
use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{ModeRun, Run, Sample, fmt_f, median};

/// Per-mode figures derived from the samples.
struct Summary {
    key: &'static str,
    what: &'static str,
    problem: Option<String>,
    rates: Vec<f64>,
    rate: Option<f64>,
    /// Per-round ratios to the bracketing untraced floods, their median and quartiles.
    ratios: Vec<f64>,
    ratio: Option<f64>,
    ratio_iqr: Option<(f64, f64)>,
    cpu_pct: Option<f64>,
    rss_mib: Option<f64>,
    ns_per_drop: Option<f64>,
    runs_per_drop: Option<f64>,
    counted_ratio: Option<f64>,
    detail_per_s: Option<f64>,
    detail_lost_budget_per_s: Option<f64>,
    detail_lost_ringbuf_per_s: Option<f64>,
    /// Largest |`total_drops` - (delivered + `lost_budget` + `lost_ringbuf`)| over the samples.
    detail_unaccounted: Option<i64>,
    lost_events: Option<f64>,
    progs: Vec<Value>,
}

fn detail_of(s: &Sample) -> Option<(u64, u64, u64, u64)> {
    let r = s.tracer.as_ref()?.report.as_ref()?;
    let d = r.get("detail")?;
    let g = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    Some((
        g(r, "total_drops")?,
        g(d, "delivered")?,
        g(d, "lost_budget").unwrap_or(0),
        g(d, "lost_ringbuf").unwrap_or(0),
    ))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "the report's rates and ratios: benchmark statistics from counts far below 2^53"
)]
fn summarize(r: &ModeRun) -> Summary {
    let samples: Vec<&Sample> = r.samples.iter().map(|(_, s)| s).collect();
    let rates: Vec<f64> = samples.iter().map(|s| s.rate()).collect();
    // Only traced floods at full speed have a baseline (the bracketing untraced floods).
    let ratios: Vec<f64> = r.samples.iter().filter_map(|(_, s)| Some(s.rate() / s.baseline?)).collect();
    let tr = |f: &dyn Fn(&Sample) -> Option<f64>| median(samples.iter().filter_map(|s| f(s)).collect());
    let stats = r.stats.as_ref();
    let bpf = stats.and_then(|s| Some((s, s.tracer.as_ref()?.bpf.as_ref()?)));
    let progs = bpf
        .map(|(_, b)| {
            b.progs
                .iter()
                .map(|(id, name, p)| {
                    json!({
                        "id": id,
                        "name": name,
                        "run_time_ns": p.run_time_ns,
                        "run_cnt": p.run_cnt,
                        "ns_per_run": (p.run_cnt > 0).then(|| p.run_time_ns as f64 / p.run_cnt as f64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let unaccounted = samples
        .iter()
        .filter_map(|s| detail_of(s))
        .map(|(t, d, lb, lr)| t as i64 - (d + lb + lr) as i64)
        .max_by_key(|x| x.abs());
    Summary {
        key: r.mode.key,
        what: r.mode.what,
        problem: r.problem.clone(),
        rate: median(rates.clone()),
        rates,
        ratio: if r.mode.key == "untraced" { Some(1.0) } else { median(ratios.clone()) },
        ratio_iqr: quartiles(&ratios),
        ratios,
        cpu_pct: tr(&|s| Some(100.0 * s.tracer.as_ref()?.cpu_flood_s? / s.elapsed_s)),
        rss_mib: tr(&|s| Some(s.tracer.as_ref()?.maxrss_kib as f64 / 1024.0)),
        ns_per_drop: bpf.map(|(s, b)| b.run_time_ns as f64 / s.drops.max(1) as f64),
        runs_per_drop: bpf.map(|(s, b)| b.run_cnt as f64 / s.drops.max(1) as f64),
        counted_ratio: tr(&|s| Some(s.tracer.as_ref()?.counted? as f64 / s.drops.max(1) as f64)),
        detail_per_s: tr(&|s| Some(detail_of(s)?.1 as f64 / s.elapsed_s)),
        detail_lost_budget_per_s: tr(&|s| Some(detail_of(s)?.2 as f64 / s.elapsed_s)),
        detail_lost_ringbuf_per_s: tr(&|s| Some(detail_of(s)?.3 as f64 / s.elapsed_s)),
        detail_unaccounted: unaccounted,
        lost_events: tr(&|s| s.tracer.as_ref()?.report.as_ref()?.get("lost_events")?.as_f64()),
        progs,
    }
}

/// First and third quartiles (linear interpolation), None for fewer than two values.
#[expect(clippy::cast_precision_loss, reason = "an interpolation position in a short list of samples")]
pub(super) fn quartiles(v: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let x = q * (v.len() - 1) as f64;
        let (i, f) = (x.floor() as usize, x.fract());
        v[i] + f * (v[(i + 1).min(v.len() - 1)] - v[i])
    };
    Some((at(0.25), at(0.75)))
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| fmt_f(v, digits))
}

fn k(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v < 1e3 => format!("{v:.0}"),
        Some(v) => format!("{:.1}k", v / 1e3),
    }
}

/// Print the table, write the Markdown and JSON reports.
pub(super) fn report(run: &Run, out: &Path) -> Result<()> {
    let sums: Vec<Summary> = run.runs.iter().map(summarize).collect();
    let header = [
        "mode",
        "drops/s",
        "ratio",
        "ratio IQR",
        "bpf ns/drop",
        "cpu %",
        "RSS MiB",
        "detail/s",
        "over budget/s",
        "ringbuf lost/s",
        "counted/nft",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for s in &sums {
        if let (Some(p), true) = (&s.problem, s.rates.is_empty()) {
            let mut row = vec![s.key.to_string(), p.clone()];
            row.resize(header.len(), String::new());
            rows.push(row);
            continue;
        }
        rows.push(vec![
            s.key.into(),
            k(s.rate),
            opt(s.ratio, 3),
            s.ratio_iqr.map_or_else(|| "-".into(), |(a, b)| format!("{a:.3}-{b:.3}")),
            opt(s.ns_per_drop, 1),
            opt(s.cpu_pct, 1),
            opt(s.rss_mib, 1),
            k(s.detail_per_s),
            k(s.detail_lost_budget_per_s),
            k(s.detail_lost_ringbuf_per_s),
            opt(s.counted_ratio, 3),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| if r[1].contains(' ') && c == 1 { 0 } else { r[c].len() })
                .max()
                .unwrap_or(0)
                .max(header[c].len())
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c == 0 {
                let _ = write!(s, "{cell:<w$}", w = widths[0]);
            } else if cell.contains(' ') && c == 1 {
                let _ = write!(s, "  {cell}");
            } else {
                let _ = write!(s, "  {cell:>w$}", w = widths[c]);
            }
        }
        s.trim_end().to_string()
    };
    println!();
    println!("{}", line(&header.map(String::from)));
    for r in &rows {
        println!("{}", line(r));
    }
    let ttfd = median(run.ttfd.clone());
    println!();
    match (&run.ttfd_problem, ttfd) {
        (_, Some(t)) => println!(
            "start to first counted drop (pktloss watch, 100 ms interval): {t:.3} s (median of {})",
            run.ttfd.len()
        ),
        (Some(p), None) => println!("start to first counted drop: {p}"),
        (None, None) => println!("start to first counted drop: not measured"),
    }
    let targets = targets(&sums, ttfd);
    println!();
    for (name, measured, target, pass) in &targets {
        let verdict = match pass {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        println!("{verdict:<6} {name}: {measured} (target {target})");
    }
    for r in run.runs.iter().filter(|r| !r.failures.is_empty()) {
        println!("note: {}: {} failed measurement(s): {}", r.mode.key, r.failures.len(), r.failures.join("; "));
    }
    if run.bpf_stats_preenabled {
        println!("note: kernel.bpf_stats_enabled was already 1, so the rates include bpf_stats overhead");
    }

    // Markdown, for the README.
    let mut md = String::new();
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for r in &rows {
        let _ = writeln!(md, "| {} |", r.join(" | "));
    }
    if let Some(t) = ttfd {
        let _ = writeln!(md, "\nStart to first counted drop: {t:.3} s.");
    }

    let modes: Vec<Value> = sums
        .iter()
        .zip(&run.runs)
        .map(|(s, r)| {
            json!({
                "mode": s.key,
                "what": s.what,
                "paced_rate": r.mode.rate,
                "problem": s.problem,
                "drops_per_s": s.rate,
                "drops_per_s_rounds": s.rates,
                "ratio_to_untraced": s.ratio,
                "ratio_rounds": s.ratios,
                "ratio_iqr": s.ratio_iqr.map(|(a, b)| [a, b]),
                "bpf_ns_per_drop": s.ns_per_drop,
                "bpf_runs_per_drop": s.runs_per_drop,
                "bpf_progs": s.progs,
                "tracer_cpu_pct_of_one_core": s.cpu_pct,
                "tracer_peak_rss_mib": s.rss_mib,
                "counted_over_nft_drops": s.counted_ratio,
                "detail_delivered_per_s": s.detail_per_s,
                "detail_over_budget_per_s": s.detail_lost_budget_per_s,
                "detail_lost_ringbuf_per_s": s.detail_lost_ringbuf_per_s,
                "detail_unaccounted_max": s.detail_unaccounted,
                "lost_events": s.lost_events,
                "failed_measurements": r.failures,
                "samples": r.samples.iter().map(|(round, x)| sample_json(Some(*round), x)).collect::<Vec<_>>(),
                "bpf_stats_sample": r.stats.as_ref().map(|x| sample_json(None, x)),
            })
        })
        .collect();
    let doc = json!({
        "command": "cargo xtask bench",
        "rounds": run.rounds,
        "seconds_per_measurement": run.seconds,
        "sender_cpu": run.cpu,
        "sender_batch": run.batch,
        "pktloss_bin": run.bin,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
        "cpus": super::flood::allowed_cpus().len(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "bpf_stats_preenabled": run.bpf_stats_preenabled,
        "modes": modes,
        "time_to_first_drop_s": ttfd,
        "time_to_first_drop_rounds_s": run.ttfd,
        "time_to_first_drop_problem": run.ttfd_problem,
        "targets": targets.iter().map(|(n, m, t, p)| json!({"target": n, "measured": m, "wanted": t, "met": p})).collect::<Vec<_>>(),
    });
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).context("cannot serialize the report")?;
    fs::write(out, text + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    let md_path = out.with_extension("md");
    fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    println!("\nwrote {} and {}", out.display(), md_path.display());
    Ok(())
}

fn sample_json(round: Option<usize>, s: &Sample) -> Value {
    let t = s.tracer.as_ref();
    json!({
        "round": round.map(|r| r + 1),
        "drops": s.drops,
        "sent": s.sent,
        "elapsed_s": s.elapsed_s,
        "drops_per_s": s.rate(),
        "tracer_cpu_flood_s": t.and_then(|t| t.cpu_flood_s),
        "tracer_cpu_total_s": t.map(|t| t.cpu_total_s),
        "tracer_maxrss_kib": t.map(|t| t.maxrss_kib),
        "tracer_counted": t.and_then(|t| t.counted),
        "bpf_run_time_ns": t.and_then(|t| t.bpf.as_ref()).map(|b| b.run_time_ns),
        "bpf_run_cnt": t.and_then(|t| t.bpf.as_ref()).map(|b| b.run_cnt),
        "baseline_drops_per_s": s.baseline,
        "report": t.and_then(|t| t.report.as_ref()).map(trimmed_report),
    })
}

/// pktloss's report without its per-flow, per-location and sample lists (megabytes over a
/// run; the totals, detail accounting and probes are what the benchmark uses).
fn trimmed_report(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        for k in ["samples", "flows", "locations", "devices", "retransmits"] {
            o.remove(k);
        }
    }
    r
}

type Target = (&'static str, String, &'static str, Option<bool>);

/// The targets against the measured figures (None where not measured).
fn targets(sums: &[Summary], ttfd: Option<f64>) -> Vec<Target> {
    let get = |key: &str| sums.iter().find(|s| s.key == key && !s.rates.is_empty());
    let mut t: Vec<Target> = Vec::new();
    let ratio = |key: &str| get(key).and_then(|s| s.ratio);
    let mut ratio_target = |name, key: &str, min: f64, want| {
        let r = ratio(key);
        t.push((name, opt(r, 3), want, r.map(|r| r >= min)));
    };
    ratio_target("default mode rate ratio", "pktloss", 0.95, ">= 0.95");
    ratio_target("detail unlimited rate ratio", "pktloss-detail", 0.95, ">= 0.95");
    ratio_target("stacks rate ratio", "pktloss-stacks", 0.85, ">= 0.85");
    let ns = get("pktloss").and_then(|s| s.ns_per_drop);
    t.push(("default mode BPF ns per drop", opt(ns, 1), "<= 80", ns.map(|n| n <= 80.0)));
    let best_peer = sums
        .iter()
        .filter(|s| !s.key.starts_with("pktloss") && s.key != "untraced" && s.key != "floor")
        .filter_map(|s| Some((s.key, s.ratio?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let def = ratio("pktloss");
    // The floor is the empty program's ratio in the same run, not a peer: the default mode's
    // distance to it is what the programs themselves cost.
    if let (Some(d), Some(f)) = (def, ratio("floor")) {
        t.push((
            "default mode within 0.01 of the floor",
            format!("{d:.3} vs floor {f:.3}"),
            ">= floor - 0.01",
            Some(d >= f - 0.01),
        ));
    }
    // The same distance from the two programs' run times (a pass of its own, less noisy than
    // the rates): the ns per drop above the empty program, as a share of an untraced drop's
    // time (the ratio it costs at this VM's rate).
    let ns_of = |key: &str| get(key).and_then(|s| s.ns_per_drop);
    let untraced_ns = get("untraced").and_then(|s| s.rate).filter(|r| *r > 0.0).map(|r| 1e9 / r);
    if let (Some(d), Some(f), Some(u)) = (ns_of("pktloss"), ns_of("floor"), untraced_ns) {
        let share = (d - f) / u;
        t.push((
            "default mode above the floor by bpf_stats",
            format!("{:+.1} ns of {u:.0} ns per untraced drop = {share:.3}", d - f),
            "<= 0.01",
            Some(share <= 0.01),
        ));
    }
    t.push((
        "default mode ahead of every peer",
        match (def, best_peer) {
            (Some(d), Some((k, p))) => format!("{d:.3} vs best peer {k} {p:.3}"),
            _ => "-".into(),
        },
        "> best peer ratio",
        def.zip(best_peer).map(|(d, (_, p))| d > p),
    ));
    // The pipeline's capacity: with a sender per CPU where that mode ran (a slow VM's single
    // sender makes fewer drops than the target), else the single sender's.
    let det = get("pktloss-detail-cpus").or_else(|| get("pktloss-detail"));
    let per_s = det.and_then(|s| s.detail_per_s);
    let unacc = det.and_then(|s| s.detail_unaccounted);
    t.push((
        "detail events delivered/s (budget unlimited)",
        match (per_s, unacc) {
            (Some(p), Some(u)) => format!("{:.1}k/s, unaccounted {u}", p / 1e3),
            (Some(p), None) => format!("{:.1}k/s", p / 1e3),
            _ => "-".into(),
        },
        ">= 300k/s, every undelivered counted",
        per_s.map(|p| p >= 300_000.0 && unacc == Some(0)),
    ));
    let cpu = get("pktloss-100k").and_then(|s| s.cpu_pct);
    t.push(("userspace CPU at 100k drops/s", opt(cpu, 2).clone() + " %", "<= 5 %", cpu.map(|c| c <= 5.0)));
    let rss = sums.iter().filter(|s| s.key.starts_with("pktloss")).filter_map(|s| s.rss_mib).max_by(f64::total_cmp);
    t.push(("peak RSS (largest pktloss mode)", opt(rss, 1) + " MiB", "<= 40 MiB", rss.map(|r| r <= 40.0)));
    t.push(("start to first counted drop", opt(ttfd, 3) + " s", "<= 0.5 s", ttfd.map(|x| x <= 0.5)));
    t
}

#[cfg(test)]
mod tests {
    use super::quartiles;

    #[test]
    fn quartiles_interpolate() {
        assert_eq!(quartiles(&[1.0]), None);
        assert_eq!(quartiles(&[2.0, 1.0]), Some((1.25, 1.75)));
        assert_eq!(quartiles(&[5.0, 1.0, 3.0, 2.0, 4.0]), Some((2.0, 4.0)));
        assert_eq!(quartiles(&[1.0, f64::NAN, 3.0]), Some((1.5, 2.5)));
    }
}
