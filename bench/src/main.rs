//! `pktloss-bench` (run by `cargo xtask bench`, `bench-pair`, `bench-gate`, `bench-serve`,
//! `bench-throughput` and `flood`): the benchmarks of pktloss. This file is `bench`, the
//! drop-flood overhead of pktloss and its peers, measured in one run.
//!
//! Every mode floods the same nftables DROP rule from one pinned CPU; rounds are interleaved
//! (the mode order rotates each round), each traced flood is bracketed by untraced floods and
//! its ratio taken to their mean, and medians over the rounds are reported. BPF cost per drop
//! comes from a separate pass with `kernel.bpf_stats_enabled=1` (its own overhead would otherwise
//! skew the rates).
mod flood;
mod gate;
mod pair;
mod report;
mod serve;
mod throughput;
mod tracer;
mod util;

use gate::{GateArgs, gate};
use pair::{PairArgs, pair};
use serve::{ServeBenchArgs, bench_serve};
use throughput::{ThroughputArgs, bench_throughput};

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use clap::{Parser, Subcommand};
use flood::{FloodCfg, Netns};
use pktloss_testkit::summary::Summary;
use tracer::{ProgStats, Tracer};

/// The benchmarks of pktloss (each needs root: namespaces, nftables, BPF).
#[derive(Parser)]
#[command(name = "pktloss-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drop-flood overhead of pktloss and its peers; table on stdout, JSON under target/bench/.
    Bench(BenchArgs),
    /// The benchmark's drop flood alone (namespaces, nftables DROP rule), for profiling.
    Flood(FloodArgs),
    /// BPF ns per drop of two pktloss builds or modes attached at once (for A/B on a noisy VM).
    Pair(PairArgs),
    /// CI regression gate: bench-pair of the base commit's build against this tree's, on the
    /// default and detail paths; fails when the default path's BPF ns/drop rose over 15 %.
    Gate(GateArgs),
    /// What `pktloss serve` costs: the flood's rate with it attached, its CPU at 100k drops/s,
    /// scrape latency with many series.
    Serve(ServeBenchArgs),
    /// TCP throughput of iperf3 between two namespaces, untraced and with `pktloss serve`
    /// attached (also beside a drop flood): the production-safety table.
    Throughput(ThroughputArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Bench(args) => bench(args),
        Cmd::Flood(args) => flood_only(args),
        Cmd::Pair(args) => pair(args),
        Cmd::Gate(args) => gate(&args),
        Cmd::Serve(args) => bench_serve(args),
        Cmd::Throughput(args) => bench_throughput(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktloss-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
struct BenchArgs {
    /// Rounds (each mode measured once per round; medians over rounds).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of flood per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Datagrams per sendmmsg call of the unpaced sender (1 = one syscall per drop).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Fast smoke run: 1 round of 1 s, no separate `bpf_stats` pass repeats.
    #[arg(long)]
    quick: bool,
    /// CPU to pin the sender to (default: the last allowed CPU).
    #[arg(long)]
    cpu: Option<usize>,
    /// pktloss binary to measure (default: build and use target/release/pktloss).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not build pktloss (use whatever target/release/pktloss is there).
    #[arg(long)]
    no_build: bool,
    /// Only these modes, comma-separated (see the table for names; `untraced` is always run).
    #[arg(long, value_delimiter = ',')]
    modes: Vec<String>,
    /// Where to write the JSON report (default: target/bench/bench.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What a mode runs while the flood goes on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Untraced,
    Pktloss(&'static [&'static str]),
    Bpftrace(&'static str),
    Argdist,
    Perf(bool),
}

/// One measured configuration.
#[derive(Debug)]
struct Mode {
    key: &'static str,
    what: &'static str,
    kind: Kind,
    /// Paced flood rate (packets/s) instead of as fast as possible.
    rate: Option<u64>,
    /// Run unless `--modes` names others.
    default: bool,
    /// Flood from one sender per allowed CPU instead of the one pinned sender: a capacity
    /// measure (how many detail events the pipeline delivers when the drops come faster than
    /// one sender makes them on a slow VM), with no ratio to the single-sender untraced rate.
    all_cpus: bool,
}

const BT_REASON_LOC: &str = "tracepoint:skb:kfree_skb { @[args->reason, args->location] = count(); }";
const BT_5TUPLE: &str = "tracepoint:skb:kfree_skb { $s = (struct sk_buff *)args->skbaddr; \
    $ip = (struct iphdr *)($s->head + $s->network_header); \
    $p = (struct udphdr *)($s->head + $s->transport_header); \
    @[$ip->saddr, $ip->daddr, $ip->protocol, $p->source, $p->dest] = count(); }";

const MODES: &[Mode] = &[
    Mode { key: "untraced", what: "no tracer", kind: Kind::Untraced, rate: None, default: true, all_cpus: false },
    Mode {
        key: "floor",
        what: "an empty program on tp_btf/kfree_skb (pktloss --floor): what any program on the hook costs",
        kind: Kind::Pktloss(&["--floor", "--no-detail"]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss",
        what: "pktloss capture (default mode)",
        kind: Kind::Pktloss(&[]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-detail",
        what: "pktloss capture --detail-budget unlimited",
        kind: Kind::Pktloss(&["--detail-budget", "unlimited"]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-detail-cpus",
        what: "pktloss capture --detail-budget unlimited, one sender per CPU (detail capacity)",
        kind: Kind::Pktloss(&["--detail-budget", "unlimited"]),
        rate: None,
        default: true,
        all_cpus: true,
    },
    Mode {
        key: "pktloss-detail-cpus-ring512k",
        what: "the same with a 512 KiB ring buffer (--ringbuf-kib 512)",
        kind: Kind::Pktloss(&["--detail-budget", "unlimited", "--ringbuf-kib", "512"]),
        rate: None,
        default: false,
        all_cpus: true,
    },
    Mode {
        key: "pktloss-detail-cpus-ring8m",
        what: "the same with an 8 MiB ring buffer (--ringbuf-kib 8192): what ring size does to the losses",
        kind: Kind::Pktloss(&["--detail-budget", "unlimited", "--ringbuf-kib", "8192"]),
        rate: None,
        default: false,
        all_cpus: true,
    },
    Mode {
        key: "pktloss-stacks",
        what: "pktloss capture --stacks",
        kind: Kind::Pktloss(&["--stacks"]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-nodetail",
        what: "pktloss capture --no-detail",
        kind: Kind::Pktloss(&["--no-detail"]),
        rate: None,
        default: false,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-counts",
        what: "pktloss capture --no-flows --no-detail (reason x location only)",
        kind: Kind::Pktloss(&["--no-flows", "--no-detail"]),
        rate: None,
        default: false,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-tx-trace",
        what: "pktloss capture --tx-trace (net_dev_queue probe on)",
        kind: Kind::Pktloss(&["--tx-trace"]),
        rate: None,
        default: false,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-filter-match",
        what: "pktloss capture udp and dst port 9 and dst host 10.231.0.2 (every drop matches)",
        kind: Kind::Pktloss(&["udp", "and", "dst", "port", "9", "and", "dst", "host", "10.231.0.2"]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-filter-miss",
        what: "pktloss capture udp and port 53 (no drop matches: each is filtered out)",
        kind: Kind::Pktloss(&["udp", "and", "port", "53"]),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "pktloss-100k",
        what: "pktloss capture (default mode), flood paced to 100k/s",
        kind: Kind::Pktloss(&[]),
        rate: Some(100_000),
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "bpftrace-reason-loc",
        what: "bpftrace map by (reason, location)",
        kind: Kind::Bpftrace(BT_REASON_LOC),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "bpftrace-5tuple",
        what: "bpftrace map by 5-tuple",
        kind: Kind::Bpftrace(BT_5TUPLE),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "argdist",
        what: "bcc argdist -C kfree_skb by reason",
        kind: Kind::Argdist,
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "perf-record",
        what: "perf record -e skb:kfree_skb -a",
        kind: Kind::Perf(false),
        rate: None,
        default: true,
        all_cpus: false,
    },
    Mode {
        key: "perf-record-g",
        what: "perf record -g -e skb:kfree_skb -a",
        kind: Kind::Perf(true),
        rate: None,
        default: false,
        all_cpus: false,
    },
];

/// BPF run time over one flood.
#[derive(Clone, Debug, Default)]
struct BpfSample {
    run_time_ns: u64,
    run_cnt: u64,
    /// Per program: id, name (from bpftool), run time and runs.
    progs: Vec<(u32, Option<String>, ProgStats)>,
}

/// A traced child's share of one measurement.
#[derive(Clone, Debug, Default)]
struct TracerSample {
    /// CPU seconds the tracer used during the flood.
    cpu_flood_s: Option<f64>,
    /// CPU seconds over its whole life.
    cpu_total_s: f64,
    /// Peak RSS over its whole life (KiB).
    maxrss_kib: u64,
    /// Drops the tracer itself counted (where its output tells).
    counted: Option<u64>,
    /// pktloss's JSON report.
    report: Option<Value>,
    bpf: Option<BpfSample>,
}

/// One flood under one mode.
#[derive(Clone, Debug)]
struct Sample {
    drops: u64,
    sent: u64,
    elapsed_s: f64,
    tracer: Option<TracerSample>,
    /// For a traced flood at full speed: the mean rate of the untraced floods just before and
    /// just after it, the denominator of its ratio.
    baseline: Option<f64>,
}

impl Sample {
    #[expect(clippy::cast_precision_loss, reason = "a benchmark rate (drops/s) for the report")]
    fn rate(&self) -> f64 {
        self.drops as f64 / self.elapsed_s.max(1e-9)
    }
}

/// A mode's state over the run.
#[derive(Debug)]
struct ModeRun {
    mode: &'static Mode,
    /// Why it is not (or no longer) measured.
    problem: Option<String>,
    /// (round, sample).
    samples: Vec<(usize, Sample)>,
    /// The `bpf_stats` pass.
    stats: Option<Sample>,
    /// Measurements that failed (a mode is dropped after [`MAX_FAILURES`]).
    failures: Vec<String>,
}

/// Failed measurements after which a mode is no longer measured: peers such as bpftrace now
/// and then fail to start or to exit in time on a busy VM, and one failure should not cost
/// the whole run its column.
const MAX_FAILURES: usize = 2;

/// Everything the report needs.
struct Run {
    rounds: usize,
    seconds: f64,
    cpu: usize,
    batch: usize,
    bin: PathBuf,
    runs: Vec<ModeRun>,
    ttfd: Vec<f64>,
    ttfd_problem: Option<String>,
    bpf_stats_preenabled: bool,
}

/// Run the benchmark.
fn bench(args: BenchArgs) -> Result<()> {
    if !util::is_root() {
        bail!("bench must run as root (namespaces, nftables, BPF)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A first Ctrl-C stops the run cleanly (namespaces deleted); a second one exits at once.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot install the signal handler")?;
    }
    let (rounds, seconds) = if args.quick { (1, 1.0) } else { (args.rounds.max(1), args.seconds.max(0.2)) };
    let batch = usize::from(args.batch);
    let cpu = pick_cpu(args.cpu)?;
    let bin = args.bin.clone().unwrap_or_else(|| util::target_dir().join("release/pktloss"));
    let pktloss_problem = prepare_pktloss(&args, &bin);

    let wanted = |m: &Mode| {
        m.key == "untraced" || if args.modes.is_empty() { m.default } else { args.modes.iter().any(|k| k == m.key) }
    };
    for k in &args.modes {
        if !MODES.iter().any(|m| m.key == k) {
            let names: Vec<&str> = MODES.iter().map(|m| m.key).collect();
            bail!("unknown mode {k:?}; modes: {}", names.join(", "));
        }
    }
    let mut runs: Vec<ModeRun> = MODES
        .iter()
        .filter(|m| wanted(m))
        .map(|m| ModeRun {
            mode: m,
            problem: availability(m, pktloss_problem.as_deref()),
            samples: Vec::new(),
            stats: None,
            failures: Vec::new(),
        })
        .collect();

    // perf record's data file goes away however the run ends.
    struct RemovePerfData;
    impl Drop for RemovePerfData {
        fn drop(&mut self) {
            drop(fs::remove_file(perf_data()));
        }
    }
    let _perf_data = RemovePerfData;
    let netns = Netns::create()?;
    let mut run = Run {
        rounds,
        seconds,
        cpu,
        batch,
        bin: bin.clone(),
        runs: Vec::new(),
        ttfd: Vec::new(),
        ttfd_problem: pktloss_problem.clone(),
        bpf_stats_preenabled: fs::read_to_string(STATS_SYSCTL).is_ok_and(|v| v.trim() != "0"),
    };
    let dur = Duration::from_secs_f64(seconds);
    eprintln!(
        "bench: {rounds} round(s) x {seconds} s, sender on CPU {cpu} ({batch} datagrams per sendmmsg), pktloss {}",
        bin.display()
    );
    // Warm-up (ARP, caches, nft), not recorded.
    flood::flood(FloodCfg { cpu, duration: Duration::from_millis(500), rate: None, batch, ports: 1 }, &stop)?;

    // Each traced flood is bracketed by untraced ones and compared with their mean: the
    // untraced rate of this VM drifts by several percent within a minute, so a ratio to an
    // untraced flood measured far away in time would mostly measure the drift.
    let untraced_at = runs.iter().position(|r| r.mode.key == "untraced").context("no untraced mode")?;
    for round in 0..rounds {
        let active: Vec<usize> = (0..runs.len()).filter(|&i| i != untraced_at && runs[i].problem.is_none()).collect();
        let n = active.len().max(1);
        let untraced = |runs: &mut Vec<ModeRun>, stop: &Arc<AtomicBool>| -> Result<f64> {
            let cfg = FloodCfg { cpu, duration: dur, rate: None, batch, ports: 1 };
            let s = measure(runs[untraced_at].mode, &bin, &netns, cfg, stop, false).context("untraced flood failed")?;
            let rate = s.rate();
            eprintln!("round {}/{rounds}  {:<20} {:>9.1}k drops/s", round + 1, "untraced", rate / 1e3);
            runs[untraced_at].samples.push((round, s));
            Ok(rate)
        };
        let mut before = untraced(&mut runs, &stop)?;
        for k in 0..active.len() {
            let i = active[(k + round) % n];
            if runs[i].problem.is_some() {
                continue;
            }
            let mode = runs[i].mode;
            let cfg = FloodCfg { cpu, duration: dur, rate: mode.rate, batch, ports: 1 };
            match measure(mode, &bin, &netns, cfg, &stop, false) {
                Ok(mut s) => {
                    if mode.rate.is_none() && !mode.all_cpus {
                        let after = untraced(&mut runs, &stop)?;
                        s.baseline = Some(f64::midpoint(before, after));
                        before = after;
                    }
                    let r = &mut runs[i];
                    eprintln!(
                        "round {}/{rounds}  {:<20} {:>9.1}k drops/s{}{}",
                        round + 1,
                        r.mode.key,
                        s.rate() / 1e3,
                        s.baseline.map_or_else(String::new, |b| format!("  ratio {:.3}", s.rate() / b)),
                        s.tracer
                            .as_ref()
                            .and_then(|t| t.cpu_flood_s)
                            .map_or_else(String::new, |c| format!("  tracer cpu {:.1}%", 100.0 * c / s.elapsed_s))
                    );
                    r.samples.push((round, s));
                }
                Err(_) if stop.load(Ordering::Relaxed) => bail!("interrupted"),
                Err(e) => {
                    eprintln!("round {}/{rounds}  {:<20} FAILED: {e:#}", round + 1, mode.key);
                    let r = &mut runs[i];
                    r.failures.push(format!("round {}: {e:#}", round + 1));
                    if r.failures.len() >= MAX_FAILURES {
                        r.problem = Some(format!("failed {} times, last: {e:#}", r.failures.len()));
                    }
                }
            }
        }
        if run.ttfd_problem.is_none() && runs.iter().any(|r| r.mode.key == "pktloss") {
            match time_to_first_drop(&bin, cpu, &stop) {
                Ok(t) => {
                    eprintln!("round {}/{rounds}  time to first counted drop {:.3} s", round + 1, t);
                    run.ttfd.push(t);
                }
                Err(_) if stop.load(Ordering::Relaxed) => bail!("interrupted"),
                Err(e) => {
                    eprintln!("round {}/{rounds}  time to first drop FAILED: {e:#}", round + 1);
                    run.ttfd_problem = Some(format!("failed: {e:#}"));
                }
            }
        }
    }

    // One pass with bpf_stats on for the BPF cost per drop of each BPF-based mode.
    {
        let _stats = BpfStatsOn::enable()?;
        for r in runs.iter_mut().filter(|r| r.problem.is_none()) {
            if matches!(r.mode.kind, Kind::Untraced | Kind::Perf(_)) {
                continue;
            }
            let cfg = FloodCfg { cpu, duration: dur, rate: r.mode.rate, batch, ports: 1 };
            match measure(r.mode, &bin, &netns, cfg, &stop, true) {
                Ok(s) => {
                    #[expect(
                        clippy::cast_precision_loss,
                        reason = "BPF time and runs per drop, printed with one and two decimals"
                    )]
                    if let Some(b) = s.tracer.as_ref().and_then(|t| t.bpf.as_ref()) {
                        eprintln!(
                            "bpf_stats  {:<20} {:>7.1} ns/drop ({} runs per drop)",
                            r.mode.key,
                            b.run_time_ns as f64 / s.drops.max(1) as f64,
                            fmt_f(b.run_cnt as f64 / s.drops.max(1) as f64, 2)
                        );
                    }
                    r.stats = Some(s);
                }
                Err(_) if stop.load(Ordering::Relaxed) => bail!("interrupted"),
                Err(e) => eprintln!("bpf_stats  {:<20} FAILED: {e:#}", r.mode.key),
            }
        }
    }
    drop(netns);
    run.runs = runs;
    let out = args.out.unwrap_or_else(|| util::target_dir().join("bench/bench.json"));
    report::report(&run, &out)
}

/// Build pktloss (unless told not to) and say why its modes cannot run, if they cannot.
fn prepare_pktloss(args: &BenchArgs, bin: &Path) -> Option<String> {
    if args.bin.is_none() && !args.no_build {
        let r = util::run(util::cargo().args(["build", "--release", "-p", "pktloss-user"]));
        if let Err(e) = r {
            eprintln!("bench: building pktloss failed; its modes are skipped: {e:#}");
            return Some(format!("build failed: {e:#}"));
        }
    }
    if !bin.is_file() {
        return Some(format!("pktloss is not built ({} missing; run `cargo xtask build --release`)", bin.display()));
    }
    None
}

/// Why a mode cannot run here, if it cannot.
fn availability(m: &Mode, pktloss_problem: Option<&str>) -> Option<String> {
    match m.kind {
        Kind::Untraced => None,
        Kind::Pktloss(_) => pktloss_problem.map(str::to_owned),
        Kind::Bpftrace(_) => util::which("bpftrace").is_none().then(|| "not installed".into()),
        Kind::Argdist => argdist().is_none().then(|| "not installed".into()),
        Kind::Perf(_) => util::which("perf").is_none().then(|| "not installed".into()),
    }
}

fn argdist() -> Option<PathBuf> {
    ["/usr/share/bcc/tools/argdist", "/usr/sbin/argdist-bpfcc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| util::which("argdist-bpfcc"))
}

fn perf_data() -> PathBuf {
    util::target_dir().join("bench/perf.data")
}

/// A pktloss capture that runs until stopped and prints its JSON report, with `extra` options.
fn pktloss_command<S: AsRef<std::ffi::OsStr>>(bin: &Path, extra: &[S]) -> Command {
    let mut c = Command::new(bin);
    c.args(["capture", "--duration", "10m", "--format", "json"]).args(extra);
    c
}

/// A flag that SIGINT or SIGTERM sets.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot install the signal handler")?;
    }
    Ok(stop)
}

/// The command a mode runs (None for untraced).
fn command(m: &Mode, bin: &Path) -> Option<Command> {
    match m.kind {
        Kind::Untraced => None,
        Kind::Pktloss(extra) => Some(pktloss_command(bin, extra)),
        Kind::Bpftrace(prog) => {
            let mut c = Command::new("bpftrace");
            c.env("BPFTRACE_MAX_MAP_KEYS", "65536").args(["-e", prog]);
            Some(c)
        }
        Kind::Argdist => {
            let mut c = Command::new(argdist()?);
            c.args(["-i", "3600", "-C", "t:skb:kfree_skb():u32:args->reason"]);
            Some(c)
        }
        Kind::Perf(g) => {
            let mut c = Command::new("perf");
            c.args(["record", "-a", "-e", "skb:kfree_skb", "-o"]).arg(perf_data());
            if g {
                c.arg("-g");
            }
            Some(c)
        }
    }
}

/// One flood under one mode.
fn measure(m: &Mode, bin: &Path, netns: &Netns, cfg: FloodCfg, stop: &Arc<AtomicBool>, stats: bool) -> Result<Sample> {
    let mut tracer = match command(m, bin) {
        Some(cmd) => {
            if matches!(m.kind, Kind::Perf(_)) {
                drop(fs::create_dir_all(util::target_dir().join("bench")));
            }
            let mut t = Tracer::spawn(cmd)?;
            t.wait_attached(Duration::from_secs(30), stop)?;
            Some(t)
        }
        None => None,
    };
    let progs0 = tracer.as_ref().map(Tracer::progs).unwrap_or_default();
    let cpu0 = tracer.as_ref().and_then(Tracer::cpu_s);
    let d0 = netns.dropped()?;
    let fr = if m.all_cpus { flood::flood_cpus(cfg, &flood::allowed_cpus(), stop)? } else { flood::flood(cfg, stop)? };
    let d1 = netns.dropped()?;
    let mut sample = Sample {
        drops: d1.saturating_sub(d0),
        sent: fr.sent,
        elapsed_s: fr.elapsed.as_secs_f64(),
        tracer: None,
        baseline: None,
    };
    if tracer.as_mut().is_some_and(|t| !t.alive()) {
        bail!("the tracer exited during the flood");
    }
    let Some(t) = tracer else { return Ok(sample) };
    let cpu1 = t.cpu_s();
    let progs1 = t.progs();
    let fin = t.stop(Duration::from_secs(15));
    if matches!(m.kind, Kind::Perf(_)) {
        drop(fs::remove_file(perf_data()));
    }
    if !fin.ok {
        let last = fin.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        bail!("tracer ended badly ({}): {last}", fin.status);
    }
    let mut ts = TracerSample {
        cpu_flood_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        cpu_total_s: fin.cpu_s,
        maxrss_kib: fin.maxrss_kib,
        ..Default::default()
    };
    let names = if stats { tracer::prog_names() } else { Default::default() };
    if stats {
        let mut b = BpfSample::default();
        for (id, p1) in &progs1 {
            let d = p1.since(progs0.get(id).copied().unwrap_or_default());
            b.run_time_ns += d.run_time_ns;
            b.run_cnt += d.run_cnt;
            b.progs.push((*id, names.get(id).cloned(), d));
        }
        ts.bpf = Some(b);
    }
    match m.kind {
        Kind::Pktloss(_) => {
            let text = fin.stdout_text();
            let report = serde_json::from_str::<Value>(&text)
                .ok()
                .or_else(|| text.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()))
                .with_context(|| {
                    let err = fin.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                    format!("pktloss printed no JSON report ({} bytes of stdout; stderr: {err})", text.len())
                })?;
            let summary = Summary::read(&report).context("pktloss's JSON report is not a summary")?;
            // With a filter, what it left out was seen and counted too.
            let left_out = summary.filter.as_ref().map_or(0, |f| f.drops_filtered_out);
            // The floor's empty program counts nothing.
            ts.counted = Some(summary.total_drops + left_out).filter(|_| m.key != "floor");
            ts.report = Some(report);
        }
        Kind::Bpftrace(_) => {
            let sum: u64 = fin
                .stdout
                .iter()
                .filter(|(_, l)| l.starts_with("@["))
                .filter_map(|(_, l)| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
                .sum();
            ts.counted = Some(sum);
        }
        Kind::Perf(_) => {
            // "[ perf record: Captured and wrote 1.2 MB perf.data (12345 samples) ]"
            ts.counted = fin.stderr.lines().find_map(|l| {
                let i = l.find(" samples)")?;
                l[..i].rsplit('(').next()?.trim().parse().ok()
            });
        }
        Kind::Argdist | Kind::Untraced => {}
    }
    sample.tracer = Some(ts);
    Ok(sample)
}

/// Seconds from spawning `pktloss watch` (with a 100k/s flood already running) to its first
/// line that reports drops.
fn time_to_first_drop(bin: &Path, cpu: usize, stop: &Arc<AtomicBool>) -> Result<f64> {
    struct FloodGuard(Arc<AtomicBool>, Option<thread::JoinHandle<Result<flood::FloodResult>>>);
    impl Drop for FloodGuard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(h) = self.1.take() {
                drop(h.join());
            }
        }
    }
    let fstop = Arc::new(AtomicBool::new(false));
    let handle = flood::spawn(
        FloodCfg { cpu, duration: Duration::from_secs(20), rate: Some(100_000), batch: 8, ports: 1 },
        Arc::clone(&fstop),
    );
    let _flood = FloodGuard(fstop, Some(handle));
    thread::sleep(Duration::from_millis(300));
    let mut cmd = Command::new(bin);
    cmd.args(["watch", "--interval", "100ms", "--format", "json"]);
    let mut t = Tracer::spawn(cmd)?;
    let deadline = t.started() + Duration::from_secs(10);
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        if let Some((at, line)) = t.next_line(Instant::now() + Duration::from_millis(100)) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let drops = v.get("drops").or_else(|| v.get("total_drops")).and_then(Value::as_u64).unwrap_or(0);
            if drops > 0 {
                let secs = at.duration_since(t.started()).as_secs_f64();
                t.stop(Duration::from_secs(5));
                return Ok(secs);
            }
        } else if !t.alive() {
            let fin = t.stop(Duration::from_secs(1));
            let last = fin.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            bail!("`pktloss watch` exited ({}) before reporting a drop: {last}", fin.status);
        }
        if Instant::now() >= deadline {
            t.stop(Duration::from_secs(5));
            bail!("`pktloss watch` reported no drop within 10 s");
        }
    }
}

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` while alive; the old value comes back on drop.
struct BpfStatsOn(Option<String>);

impl BpfStatsOn {
    fn enable() -> Result<Self> {
        let old = fs::read_to_string(STATS_SYSCTL).with_context(|| format!("cannot read {STATS_SYSCTL}"))?;
        fs::write(STATS_SYSCTL, "1").with_context(|| format!("cannot write {STATS_SYSCTL}"))?;
        Ok(BpfStatsOn(Some(old.trim().to_string())))
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            drop(fs::write(STATS_SYSCTL, old));
        }
    }
}

/// The median of some numbers (None if there are none).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { f64::midpoint(v[n / 2 - 1], v[n / 2]) })
}

fn fmt_f(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
        assert_eq!(median(Vec::new()), None);
    }
}

/// The CPU to pin the sender to: `wanted` if allowed, else the last allowed CPU.
fn pick_cpu(wanted: Option<usize>) -> Result<usize> {
    let cpus = flood::allowed_cpus();
    match wanted {
        Some(c) if cpus.contains(&c) => Ok(c),
        Some(c) => bail!("--cpu {c} is not one of the allowed CPUs {cpus:?}"),
        None => Ok(*cpus.last().unwrap_or(&0)),
    }
}

/// Options of `cargo xtask flood`.
#[derive(clap::Args, Debug)]
struct FloodArgs {
    /// Seconds to flood.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Packets per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// CPU to pin the sender to (default: the last allowed CPU).
    #[arg(long)]
    cpu: Option<usize>,
}

/// `cargo xtask flood`: the benchmark's drop flood alone, for profiling a tracer started by
/// hand (`perf record -C CPU`, bpftool, ...). Prints the rate; the namespaces go away at the end.
#[expect(clippy::cast_precision_loss, reason = "the drop rate, printed with one decimal")]
fn flood_only(args: FloodArgs) -> Result<()> {
    if !util::is_root() {
        bail!("flood must run as root (namespaces, nftables)");
    }
    let stop = stop_flag()?;
    let cpu = pick_cpu(args.cpu)?;
    let netns = Netns::create()?;
    let before = netns.dropped()?;
    let cfg = FloodCfg {
        cpu,
        duration: Duration::from_secs_f64(args.seconds.max(0.1)),
        rate: args.rate,
        batch: usize::from(args.batch),
        ports: 1,
    };
    eprintln!("flood: {} s on CPU {cpu}", args.seconds);
    let r = flood::flood(cfg, &stop)?;
    let dropped = netns.dropped()? - before;
    println!(
        "sent {} dropped {} in {:.3} s: {:.1}k drops/s",
        r.sent,
        dropped,
        r.elapsed.as_secs_f64(),
        dropped as f64 / r.elapsed.as_secs_f64() / 1e3
    );
    Ok(())
}
