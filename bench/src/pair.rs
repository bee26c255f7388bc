//! `cargo xtask bench-pair`: the BPF cost per drop of two pktloss builds or modes, attached at once.
//!
//! On a noisy VM, `bpf_stats` of one build measured after another drifts with the machine (the
//! same build reads 80-100 ns per drop from one run to the next here). Attached together, both
//! programs run on every drop of the same flood, so the drift cancels in their difference. The
//! program that runs first pays a few ns more (it warms the cache lines the other reads), so the
//! order alternates every repetition and the mean difference is over both orders.
use std::{collections::BTreeMap, path::PathBuf, process::Command, sync::atomic::Ordering, time::Duration};

use anyhow::{Context as _, Result, bail};

use super::{
    BpfStatsOn,
    flood::{self, FloodCfg, Netns},
    pick_cpu, pktloss_command, stop_flag,
    tracer::{ProgStats, Tracer},
};
use crate::util;

/// Options of `cargo xtask bench-pair`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PairArgs {
    /// First side: a pktloss binary and its `capture` options, e.g. "target/release/pktloss"
    /// (or "BIN serve [OPTIONS]" for `pktloss serve`).
    pub(crate) a: String,
    /// Second side, e.g. "/tmp/pktloss-new --no-detail".
    pub(crate) b: String,
    /// Repetitions (the attach order alternates; use an even number).
    #[arg(long, default_value_t = 6)]
    pub(crate) reps: usize,
    /// Seconds of flood per repetition.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) seconds: f64,
    /// Datagrams per sendmmsg call.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) batch: u16,
    /// Destination ports one after another (1: one flow; 16384: every datagram a flow of its
    /// own, a run of one drop, and a flow table that evicts all the time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(flood::MAX_PORTS)))]
    pub(crate) ports: u16,
    /// CPU to pin the sender to (default: the last allowed CPU).
    #[arg(long)]
    pub(crate) cpu: Option<usize>,
}

/// One side: the binary and its extra `capture` options.
struct Side {
    bin: PathBuf,
    extra: Vec<String>,
}

impl Side {
    fn parse(spec: &str) -> Result<Self> {
        let mut words = spec.split_whitespace();
        let bin = PathBuf::from(words.next().context("empty side: give a pktloss binary")?);
        if !bin.is_file() {
            bail!("{} is not a file", bin.display());
        }
        Ok(Side { bin, extra: words.map(String::from).collect() })
    }

    /// `pktloss capture ... EXTRA`, or with EXTRA starting with `serve`, `pktloss serve` on a
    /// free loopback port and the rest of EXTRA (its programs count dropped bytes too).
    fn command(&self) -> Command {
        if self.extra.first().is_some_and(|w| w == "serve") {
            let mut c = Command::new(&self.bin);
            c.args(["serve", "--listen", "127.0.0.1:0"]).args(&self.extra[1..]);
            return c;
        }
        pktloss_command(&self.bin, &self.extra)
    }
}

/// Sum of the programs' run time between two readings.
fn run_time_ns(before: &BTreeMap<u32, ProgStats>, after: &BTreeMap<u32, ProgStats>) -> u64 {
    after.iter().map(|(id, p)| p.since(before.get(id).copied().unwrap_or_default()).run_time_ns).sum()
}

/// Mean BPF ns per drop of both sides over the repetitions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairResult {
    /// Side A's mean.
    pub(crate) a: f64,
    /// Side B's mean.
    pub(crate) b: f64,
    /// Smallest and largest per-repetition difference B - A.
    pub(crate) diff_range: (f64, f64),
}

/// `cargo xtask bench-pair A B`.
pub(crate) fn pair(args: PairArgs) -> Result<()> {
    measure(&args).map(|_| ())
}

/// Run the pair and print each repetition and the means.
#[expect(
    clippy::cast_precision_loss,
    reason = "nanoseconds per drop and their mean over the repetitions, printed with one decimal"
)]
pub(crate) fn measure(args: &PairArgs) -> Result<PairResult> {
    if !util::is_root() {
        bail!("bench-pair must run as root (BPF, namespaces, nftables)");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let sides = [Side::parse(&args.a)?, Side::parse(&args.b)?];
    let stop = stop_flag()?;
    let cpu = pick_cpu(args.cpu)?;
    let netns = Netns::create()?;
    let _stats = BpfStatsOn::enable()?;
    let cfg = FloodCfg {
        cpu,
        duration: Duration::from_secs_f64(args.seconds.max(0.1)),
        rate: None,
        batch: usize::from(args.batch),
        ports: args.ports,
    };
    eprintln!("bench-pair: {} repetitions of {} s on CPU {cpu}, both attached at once", args.reps, args.seconds);
    let (mut a_ns, mut b_ns) = (Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut tracers: [Option<Tracer>; 2] = [None, None];
        for i in order {
            let mut t = Tracer::spawn(sides[i].command())?;
            t.wait_attached(Duration::from_secs(30), &stop)?;
            tracers[i] = Some(t);
        }
        let before: Vec<_> = tracers.iter().map(|t| t.as_ref().map(Tracer::progs).unwrap_or_default()).collect();
        let d0 = netns.dropped()?;
        flood::flood(cfg, &stop)?;
        let drops = netns.dropped()?.saturating_sub(d0).max(1);
        let mut ns = [0.0; 2];
        for (i, t) in tracers.iter_mut().enumerate() {
            let t = t.as_mut().context("tracer")?;
            if !t.alive() {
                bail!("side {} exited during the flood", ["A", "B"][i]);
            }
            ns[i] = run_time_ns(&before[i], &t.progs()) as f64 / drops as f64;
        }
        for (i, t) in tracers.into_iter().enumerate() {
            let fin = t.context("tracer")?.stop(Duration::from_secs(15));
            if !fin.ok {
                bail!("side {} ended badly ({})", ["A", "B"][i], fin.status);
            }
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        println!(
            "rep {}/{} ({} first)  A {:6.1}  B {:6.1}  B-A {:+6.1} ns/drop",
            rep + 1,
            args.reps,
            ["A", "B"][order[0]],
            ns[0],
            ns[1],
            ns[1] - ns[0]
        );
        a_ns.push(ns[0]);
        b_ns.push(ns[1]);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let diffs: Vec<f64> = a_ns.iter().zip(&b_ns).map(|(a, b)| b - a).collect();
    println!(
        "mean over {} repetitions: A {:.1}  B {:.1}  B-A {:+.1} ns/drop (per repetition {:+.1} to {:+.1})",
        args.reps,
        mean(&a_ns),
        mean(&b_ns),
        mean(&diffs),
        diffs.iter().copied().fold(f64::INFINITY, f64::min),
        diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
    drop(netns);
    Ok(PairResult {
        a: mean(&a_ns),
        b: mean(&b_ns),
        diff_range: (
            diffs.iter().copied().fold(f64::INFINITY, f64::min),
            diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ),
    })
}
