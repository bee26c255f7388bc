//! `cargo xtask bench-throughput`: TCP throughput of iperf3 between two namespaces over a veth
//! pair, untraced and with `pktloss serve` attached (scraped every second), alternately.
//!
//! Four cases: one stream at MTU 1500 with the veth's offloads (few, large packets); 50 streams
//! at a small MTU with TSO and GSO off, so that every packet is a packet of its own on the veth
//! (many packets); and both again while the bench's drop flood (`flood.rs`, pinned to the last
//! CPU) runs beside them in its own namespaces. iperf3's client and server are pinned to another
//! CPU in every case (unpinned, 50 streams overflow the veth's backlog queue: real drops). Each
//! traced run is compared with the mean of the untraced runs just before and after it.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::{
    flood::{self, FloodCfg, Netns},
    median, pick_cpu, pktloss_command,
    report::quartiles,
    serve::{scrape, spawn_serve},
    stop_flag,
    tracer::Tracer,
};
use pktloss_testkit::{self as testkit, End, Veth};

use crate::util::{self, output, run, succeeds};

/// The namespace of the iperf3 server.
const SRV_NS: &str = "pktlt-srv";
/// The namespace of the iperf3 client.
const CLI_NS: &str = "pktlt-cli";
const SRV_IF: &str = "pktlt1";
const CLI_IF: &str = "pktlt0";
const SRV_ADDR: &str = "10.232.0.2";
const CLI_ADDR: &str = "10.232.0.1";
/// iperf3's port, in the server's own namespace.
const PORT: &str = "5201";
/// Seconds iperf3 omits at the start of each run (TCP's slow start).
const OMIT_S: u64 = 1;

/// Options of `cargo xtask bench-throughput`.
#[derive(clap::Args, Debug)]
pub(crate) struct ThroughputArgs {
    /// Seconds measured per iperf3 run (after one omitted second).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Traced runs per case (each between two untraced ones).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The veth's MTU in the many-packets cases (50 streams).
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u16).range(576..=9000))]
    mtu: u16,
    /// The pktloss binary (default: build and use target/release/pktloss).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not build pktloss (use whatever target/release/pktloss is there).
    #[arg(long)]
    no_build: bool,
    /// Where to write the JSON report (default: target/bench/throughput.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One measured configuration.
#[derive(Clone, Copy, Debug)]
struct Case {
    key: &'static str,
    streams: u32,
    /// Small MTU, TSO and GSO off (else MTU 1500 with the veth's offloads).
    many_packets: bool,
    side_flood: bool,
}

const CASES: [Case; 4] = [
    Case { key: "1 stream", streams: 1, many_packets: false, side_flood: false },
    Case { key: "50 streams, small MTU", streams: 50, many_packets: true, side_flood: false },
    Case { key: "1 stream + drop flood", streams: 1, many_packets: false, side_flood: true },
    Case { key: "50 streams, small MTU + drop flood", streams: 50, many_packets: true, side_flood: true },
];

/// One iperf3 run.
#[derive(Clone, Debug)]
struct Sample {
    traced: bool,
    /// `end.sum_received.bits_per_second`.
    bps: f64,
    /// `end.sum_sent.retransmits`.
    retransmits: Option<u64>,
    /// Packets the server's veth received per second over the whole run (omitted second too).
    packets_per_s: f64,
    /// Drops per second the side flood's DROP rule counted during the run.
    flood_drops_per_s: Option<f64>,
    /// Drops per second `serve` counted during the run (every drop of the host), and its
    /// scrapes (failed ones included) during the run.
    serve_drops_per_s: Option<f64>,
    scrapes: usize,
    scrape_errors: usize,
}

/// The two namespaces of the iperf3 pair and their veth; deleted on drop, with what still runs
/// in them (a leftover pair of a killed run is deleted the same way before a new one is made).
struct Pair {
    srv: testkit::Netns,
    cli: testkit::Netns,
}

impl Pair {
    fn create() -> Result<Self> {
        let pair = Pair { srv: testkit::Netns::named(SRV_NS)?, cli: testkit::Netns::named(CLI_NS)? };
        Veth::create(End::new(CLI_NS, CLI_IF, CLI_ADDR), End::new(SRV_NS, SRV_IF, SRV_ADDR), 30)?;
        succeeds(Command::new("ip").args(["netns", "exec", CLI_NS, "ping", "-c1", "-W1", SRV_ADDR]));
        Ok(pair)
    }

    /// MTU and offloads of both ends for a case.
    #[expect(clippy::unused_self, reason = "the veth lives in the namespaces this guard owns")]
    fn configure(&self, case: Case, mtu: u16) -> Result<()> {
        let (mtu, offload) = if case.many_packets { (mtu, "off") } else { (1500, "on") };
        for (ns, ifname) in [(CLI_NS, CLI_IF), (SRV_NS, SRV_IF)] {
            run(Command::new("ip").args(["-n", ns, "link", "set", ifname, "mtu", &mtu.to_string()]))?;
            output(
                Command::new("ip").args(["netns", "exec", ns, "ethtool", "-K", ifname, "tso", offload, "gso", offload]),
            )?;
        }
        Ok(())
    }

    /// Packets the server's end has received.
    #[expect(clippy::unused_self, reason = "the veth lives in the namespaces this guard owns")]
    fn rx_packets(&self) -> Result<u64> {
        let out = output(Command::new("ip").args(["-n", SRV_NS, "-s", "-j", "link", "show", "dev", SRV_IF]))?;
        let v: Value = serde_json::from_str(&out).context("ip printed invalid JSON")?;
        v.pointer("/0/stats64/rx/packets").and_then(Value::as_u64).context("no rx packets in `ip -s -j link`")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.srv.kill_processes();
        self.cli.kill_processes();
    }
}

/// A side flood running while alive; stopped and joined on drop.
struct SideFlood(Arc<AtomicBool>, Option<thread::JoinHandle<Result<flood::FloodResult>>>);

impl SideFlood {
    fn finish(mut self) -> Result<flood::FloodResult> {
        self.0.store(true, Ordering::Relaxed);
        flood::join(self.1.take().context("flood already joined")?)
    }
}

impl Drop for SideFlood {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(h) = self.1.take() {
            drop(h.join());
        }
    }
}

/// Scrapes `/metrics` once a second while alive, like a Prometheus would.
struct Scraper {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<(usize, usize)>>,
}

impl Scraper {
    fn start(listen: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            let mut next = Instant::now() + Duration::from_secs(1);
            while !s.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    if scrape(&listen).is_ok() {
                        ok += 1
                    } else {
                        failed += 1
                    }
                    next += Duration::from_secs(1);
                }
                thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        });
        Scraper { stop, handle: Some(handle) }
    }

    /// (scrapes that answered, scrapes that failed).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or((0, 0))
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            drop(h.join());
        }
    }
}

/// The sum of `pktloss_drops_total` in a scrape.
fn drops_total(body: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("pktloss_drops_total{") || l.starts_with("pktloss_drops_total "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one iperf3 client run reported: (bits/s received, retransmits).
fn parse_iperf(text: &str) -> Result<(f64, Option<u64>)> {
    let v: Value = serde_json::from_str(text).context("iperf3 printed no JSON")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("iperf3: {e}");
    }
    let bps = v
        .pointer("/end/sum_received/bits_per_second")
        .and_then(Value::as_f64)
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok((bps, v.pointer("/end/sum_sent/retransmits").and_then(Value::as_u64)))
}

/// One iperf3 server (`-1`: it exits after one test) and client run; (bits/s, retransmits).
fn iperf(case: Case, seconds: u64, cpu: Option<usize>) -> Result<(f64, Option<u64>)> {
    let mut srv = Command::new("ip");
    srv.args(["netns", "exec", SRV_NS, "iperf3", "-s", "-1", "-B", SRV_ADDR, "-p", PORT]);
    let server = Tracer::spawn(srv)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let sport = format!("sport = :{PORT}");
    while output(Command::new("ip").args(["netns", "exec", SRV_NS, "ss", "-Hltn", &sport]))?.trim().is_empty() {
        if Instant::now() >= deadline {
            bail!("the iperf3 server did not listen within 5 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut cli = Command::new("timeout");
    cli.args(["-k", "5", &(seconds + OMIT_S + 30).to_string()]).args(["ip", "netns", "exec", CLI_NS, "iperf3"]);
    cli.args(["-c", SRV_ADDR, "-p", PORT, "-J", "--connect-timeout", "5000"]);
    cli.args(["-t", &seconds.to_string(), "-O", &OMIT_S.to_string(), "-P", &case.streams.to_string()]);
    if let Some(c) = cpu {
        // -A n,m: the client on CPU n, the server on CPU m.
        cli.args(["-A", &format!("{c},{c}")]);
    }
    let out = cli.stdin(std::process::Stdio::null()).output().context("cannot start iperf3")?;
    drop(server.stop(Duration::from_secs(5)));
    parse_iperf(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("iperf3 client ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
}

/// Everything a run needs.
struct Bench<'a> {
    bin: &'a Path,
    pair: &'a Pair,
    flood: Option<&'a Netns>,
    flood_cpu: usize,
    iperf_cpu: Option<usize>,
    seconds: u64,
    stop: &'a Arc<AtomicBool>,
}

impl Bench<'_> {
    /// One iperf3 run of a case, traced or not.
    #[expect(clippy::cast_precision_loss, reason = "benchmark rates")]
    fn measure(&self, case: Case, traced: bool) -> Result<Sample> {
        let serve = if traced {
            let (mut t, listen) = spawn_serve(self.bin, false, &[])?;
            t.wait_attached(Duration::from_secs(30), self.stop)?;
            let (body, _) = scrape(&listen).context("the first scrape of serve failed")?;
            Some((t, listen, drops_total(&body)))
        } else {
            None
        };
        let side = match (case.side_flood, self.flood) {
            (true, Some(netns)) => {
                let fstop = Arc::new(AtomicBool::new(false));
                let cfg = FloodCfg {
                    cpu: self.flood_cpu,
                    duration: Duration::from_secs(self.seconds + OMIT_S + 60),
                    rate: None,
                    batch: 64,
                    ports: 1,
                };
                let h = flood::spawn(cfg, Arc::clone(&fstop));
                thread::sleep(Duration::from_millis(300));
                Some((SideFlood(fstop, Some(h)), netns.dropped()?, Instant::now()))
            }
            _ => None,
        };
        let scraper = serve.as_ref().map(|(_, listen, _)| Scraper::start(listen.clone()));
        let p0 = self.pair.rx_packets()?;
        let t0 = Instant::now();
        let (bps, retransmits) = iperf(case, self.seconds, self.iperf_cpu)?;
        let elapsed = t0.elapsed().as_secs_f64();
        let packets_per_s = self.pair.rx_packets()?.saturating_sub(p0) as f64 / elapsed;
        let (scrapes, scrape_errors) = scraper.map_or((0, 0), Scraper::finish);
        let flood_drops_per_s = match (side, self.flood) {
            (Some((f, d0, at)), Some(netns)) => {
                let d1 = netns.dropped()?;
                let secs = at.elapsed().as_secs_f64();
                f.finish()?;
                Some(d1.saturating_sub(d0) as f64 / secs)
            }
            _ => None,
        };
        let serve_drops_per_s = match serve {
            Some((t, listen, before)) => {
                let (body, _) = scrape(&listen).context("the last scrape of serve failed")?;
                let fin = t.stop(Duration::from_secs(15));
                if !fin.ok {
                    bail!("pktloss serve ended badly ({}): {}", fin.status, fin.stderr.trim());
                }
                Some((drops_total(&body) - before) / elapsed)
            }
            None => None,
        };
        Ok(Sample {
            traced,
            bps,
            retransmits,
            packets_per_s,
            flood_drops_per_s,
            serve_drops_per_s,
            scrapes,
            scrape_errors,
        })
    }
}

impl Bench<'_> {
    /// The drops of the pair's own namespaces during one more iperf3 run of a case, counted by
    /// `pktloss capture` filtered on them (the healthy path's drops, whatever else the host
    /// drops): (drops per second, (reason, drops) largest first).
    #[expect(clippy::cast_precision_loss, reason = "a drop rate")]
    fn pair_drops(&self, case: Case) -> Result<(f64, Vec<(String, u64)>)> {
        let mut t = Tracer::spawn(pktloss_command(self.bin, &["netns", SRV_NS, "or", "netns", CLI_NS]))?;
        t.wait_attached(Duration::from_secs(30), self.stop)?;
        let t0 = Instant::now();
        iperf(case, self.seconds, self.iperf_cpu)?;
        let secs = t0.elapsed().as_secs_f64();
        let fin = t.stop(Duration::from_secs(15));
        let v: Value = serde_json::from_str(&fin.stdout_text()).with_context(|| {
            format!("pktloss capture printed no JSON report ({}): {}", fin.status, fin.stderr.trim())
        })?;
        let total = v.get("total_drops").and_then(Value::as_u64).context("no total_drops in pktloss's report")?;
        let reasons = v
            .get("reasons")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| Some((r.get("reason")?.as_str()?.to_owned(), r.get("count")?.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok((total as f64 / secs, reasons))
    }
}

/// A case's samples in the order measured: untraced, traced, untraced, ...
struct CaseRun {
    case: Case,
    samples: Vec<Sample>,
    /// The pair's own drops per second and their reasons (cases without the side flood).
    pair_drops: Option<(f64, Vec<(String, u64)>)>,
}

impl CaseRun {
    /// traced / mean of the untraced runs just before and after it, per round.
    fn ratios(&self) -> Vec<f64> {
        self.samples
            .windows(3)
            .filter(|w| !w[0].traced && w[1].traced && !w[2].traced)
            .map(|w| w[1].bps / f64::midpoint(w[0].bps, w[2].bps))
            .collect()
    }

    fn median_of(&self, traced: bool, f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        median(self.samples.iter().filter(|s| s.traced == traced).filter_map(f).collect())
    }
}

/// Run the throughput benchmark.
pub(crate) fn bench_throughput(args: ThroughputArgs) -> Result<()> {
    if !util::is_root() {
        bail!("bench-throughput must run as root (namespaces, BPF)");
    }
    if util::which("iperf3").is_none() {
        bail!("iperf3 is not installed (cargo xtask setup installs it)");
    }
    let bin = args.bin.clone().unwrap_or_else(|| util::target_dir().join("release/pktloss"));
    if args.bin.is_none() && !args.no_build {
        run(util::cargo().args(["build", "--release", "-p", "pktloss-user"]))?;
    }
    if !bin.is_file() {
        bail!("{} is not built (cargo xtask build --release)", bin.display());
    }
    let stop = stop_flag()?;
    let seconds = args.seconds.max(1);
    let rounds = args.rounds.max(1);
    let flood_cpu = pick_cpu(None)?;
    let iperf_cpu = flood::allowed_cpus().into_iter().find(|&c| c != flood_cpu);
    let pair = Pair::create()?;
    let netns = Netns::create()?;
    let bench = Bench { bin: &bin, pair: &pair, flood: Some(&netns), flood_cpu, iperf_cpu, seconds, stop: &stop };
    eprintln!(
        "bench-throughput: {rounds} round(s) x {seconds} s per iperf3 run (+{OMIT_S} s omitted), small MTU {}, \
         iperf3 (client and server) on CPU {}, side flood on CPU {flood_cpu}, pktloss {}",
        args.mtu,
        iperf_cpu.map_or_else(|| "(not pinned)".into(), |c| c.to_string()),
        bin.display()
    );
    let mut runs = Vec::new();
    for case in CASES {
        pair.configure(case, args.mtu)?;
        // Warm-up (ARP, TCP metrics), not recorded.
        iperf(case, 1, iperf_cpu).context("warm-up")?;
        let mut cr = CaseRun { case, samples: Vec::new(), pair_drops: None };
        for i in 0..=2 * rounds {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let traced = i % 2 == 1;
            let s = bench.measure(case, traced).with_context(|| format!("{}: run {} failed", case.key, i + 1))?;
            eprintln!(
                "{:<36} {:<8} {:>7.2} Gbit/s  {:>7.1}k packets/s  retransmits {}{}{}",
                case.key,
                if traced { "serve" } else { "untraced" },
                s.bps / 1e9,
                s.packets_per_s / 1e3,
                s.retransmits.map_or_else(|| "-".into(), |r| r.to_string()),
                s.flood_drops_per_s.map_or_else(String::new, |d| format!("  flood {:.1}k drops/s", d / 1e3)),
                s.serve_drops_per_s.map_or_else(String::new, |d| format!("  serve counted {d:.0} drops/s host-wide")),
            );
            cr.samples.push(s);
        }
        if !case.side_flood {
            let (rate, reasons) = bench.pair_drops(case).with_context(|| format!("{}: counting drops", case.key))?;
            let top: Vec<String> = reasons.iter().take(4).map(|(r, n)| format!("{r} {n}")).collect();
            eprintln!("{:<36} drops in the pair's namespaces: {rate:.1}/s ({})", case.key, top.join(", "));
            cr.pair_drops = Some((rate, reasons));
        }
        runs.push(cr);
    }
    drop(netns);
    drop(pair);
    report(&runs, &args, seconds, rounds, flood_cpu, iperf_cpu, &bin)
}

fn report(
    runs: &[CaseRun],
    args: &ThroughputArgs,
    seconds: u64,
    rounds: usize,
    flood_cpu: usize,
    iperf_cpu: Option<usize>,
    bin: &Path,
) -> Result<()> {
    let gbit = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{:.2}", v / 1e9));
    let k = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{:.0}k", v / 1e3));
    let mut md = String::from(
        "| case | packets/s | untraced Gbit/s | with serve Gbit/s | ratio | ratio IQR | drops/s in the pair |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut cases = Vec::new();
    for r in runs {
        let ratios = r.ratios();
        let ratio = median(ratios.clone());
        let iqr = quartiles(&ratios);
        let untraced = r.median_of(false, |s| Some(s.bps));
        let traced = r.median_of(true, |s| Some(s.bps));
        let pps = r.median_of(false, |s| Some(s.packets_per_s));
        let serve_drops = r.median_of(true, |s| s.serve_drops_per_s);
        let pair_drops = r.pair_drops.as_ref().map(|(d, _)| *d);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.case.key,
            k(pps),
            gbit(untraced),
            gbit(traced),
            ratio.map_or_else(|| "-".into(), |x| format!("{x:.3}")),
            iqr.map_or_else(|| "-".into(), |(a, b)| format!("{a:.3}-{b:.3}")),
            pair_drops.map_or_else(|| "-".into(), |d| format!("{d:.1}")),
        )
        .context("formatting the table")?;
        cases.push(json!({
            "case": r.case.key,
            "streams": r.case.streams,
            "mtu": if r.case.many_packets { args.mtu } else { 1500 },
            "tso_gso": !r.case.many_packets,
            "side_flood": r.case.side_flood,
            "iperf3_cpu": iperf_cpu,
            "untraced_bps_median": untraced,
            "traced_bps_median": traced,
            "packets_per_s_untraced_median": pps,
            "ratios": ratios,
            "ratio_median": ratio,
            "ratio_iqr": iqr.map(|(a, b)| [a, b]),
            "serve_drops_per_s_median_host_wide": serve_drops,
            "pair_drops_per_s": pair_drops,
            "pair_drop_reasons": r.pair_drops.as_ref().map(|(_, rs)| rs.iter().map(|(r, n)| json!({"reason": r, "drops": n})).collect::<Vec<_>>()),
            "flood_drops_per_s_untraced_median": r.median_of(false, |s| s.flood_drops_per_s),
            "flood_drops_per_s_traced_median": r.median_of(true, |s| s.flood_drops_per_s),
            "samples": r.samples.iter().map(|s| json!({
                "traced": s.traced,
                "bits_per_second": s.bps,
                "retransmits": s.retransmits,
                "packets_per_s": s.packets_per_s,
                "flood_drops_per_s": s.flood_drops_per_s,
                "serve_drops_per_s_host_wide": s.serve_drops_per_s,
                "scrapes": s.scrapes,
                "scrape_errors": s.scrape_errors,
            })).collect::<Vec<_>>(),
        }));
    }
    println!("\n{md}");
    let doc = json!({
        "seconds": seconds,
        "omitted_seconds": OMIT_S,
        "rounds": rounds,
        "small_mtu": args.mtu,
        "flood_cpu": flood_cpu,
        "iperf3_cpu": iperf_cpu,
        "pktloss_bin": bin,
        "iperf3": output(Command::new("iperf3").arg("--version")).ok().and_then(|v| v.lines().next().map(str::to_owned)),
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).ok(),
        "cpus": flood::allowed_cpus().len(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "cases": cases,
    });
    let out = args.out.clone().unwrap_or_else(|| util::target_dir().join("bench/throughput.json"));
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&doc).context("cannot serialize the report")?;
    fs::write(&out, text + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    let md_path = out.with_extension("md");
    fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    println!("wrote {} and {}", out.display(), md_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{drops_total, parse_iperf};

    #[test]
    fn reads_iperf3_json_and_its_errors() {
        let ok = r#"{"start": {}, "end": {"sum_sent": {"bits_per_second": 9.9e9, "retransmits": 12},
            "sum_received": {"bits_per_second": 9.8e9}}}"#;
        let (bps, retr) = parse_iperf(ok).unwrap_or_default();
        assert!((bps - 9.8e9).abs() < 1.0);
        assert_eq!(retr, Some(12));
        let err = parse_iperf(r#"{"start": {}, "error": "unable to connect to server: Connection refused"}"#);
        assert!(err.is_err_and(|e| e.to_string().contains("unable to connect")));
        assert!(parse_iperf("").is_err());
    }

    #[test]
    fn sums_the_drop_counters_of_a_scrape() {
        let body = "# TYPE pktloss_drops_total counter\n\
                    pktloss_drops_total{reason=\"NO_SOCKET\"} 10\n\
                    pktloss_drops_total{reason=\"NETFILTER_DROP\"} 2.5e3\n\
                    pktloss_drops_total_other 99\n\
                    pktloss_drop_bytes_total{reason=\"NO_SOCKET\"} 400\n";
        assert!((drops_total(body) - 2510.0).abs() < 1e-9);
    }
}
