//! The command line's words: subcommands, their flags and how flag values are parsed.
use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::help;
use crate::kernel::tracer::Options;

#[derive(Parser, Debug)]
#[command(
    name = "pktloss",
    version,
    long_version = concat!(env!("CARGO_PKG_VERSION"), include_str!(concat!(env!("OUT_DIR"), "/long_version.txt"))),
    about = "Linux kernel packet-drop tracer: every drop, why, where, which flow, and what to do"
)]
pub(crate) struct Cli {
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Attach, collect for a while, detach and print a dropwatch-style summary.
    #[command(after_help = help::examples(help::CAPTURE))]
    Capture(CaptureArgs),
    /// Print a line per interval, like dropwatch.
    #[command(after_help = help::examples(help::WATCH))]
    Watch(WatchArgs),
    /// List the drop reasons of the running kernel (from its BTF).
    #[command(after_help = help::examples(help::REASONS))]
    Reasons(ReasonsArgs),
    /// Capture, read kernel counters and configuration, and explain the causes of loss.
    #[command(after_help = help::examples(help::DIAGNOSE))]
    Diagnose(DiagnoseArgs),
    /// Live view (the default on a terminal).
    #[command(after_help = help::top())]
    Top(TopArgs),
    /// Summary and diagnosis of a saved capture file (no root needed).
    #[command(after_help = help::examples(help::REPORT))]
    Report(ReportArgs),
    /// Run as a daemon: drop metrics for Prometheus at /metrics, diagnosed in rolling windows.
    #[command(after_help = help::examples(help::SERVE))]
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address and port to serve /metrics on.
    #[arg(long, default_value = crate::export::serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Length of each diagnosis window (the causes' metrics are updated at its end).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,
    /// Also export drops per network namespace and reason (bounded by --max-netns).
    #[arg(long)]
    pub netns_labels: bool,
    /// Most namespaces with their own series (the rest count under netns="other").
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_netns: u32,
    /// How long the series of a namespace that is gone stay exported (default: one --window),
    /// then they and its counts in the kernel go.
    #[arg(long, value_parser = parse_duration)]
    pub netns_grace: Option<Duration>,
    /// Most kernel functions with their own series (the rest count under function="other").
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_functions: u32,
    #[command(flatten)]
    pub trace: TraceArgs,
}

impl ServeArgs {
    pub(crate) fn config(&self) -> crate::export::serve::ServeConfig {
        crate::export::serve::ServeConfig {
            listen: self.listen,
            window: self.window,
            limits: crate::export::metrics::Limits {
                max_functions: self.max_functions as usize,
                max_devices: 64,
                max_netns: if self.netns_labels { self.max_netns as usize } else { 0 },
                netns_grace: self.netns_grace.unwrap_or(self.window),
            },
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct DiagnoseArgs {
    /// How long to capture.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after at least this many drops (1 or more).
    #[arg(short, long, value_parser = clap::value_parser!(u64).range(1..))]
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
pub(crate) struct TopArgs {
    /// Seconds between counter and diagnosis refreshes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub refresh: Duration,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Flags shared by every subcommand that traces.
#[derive(Args, Debug, Clone)]
pub(crate) struct TraceArgs {
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
    #[expect(
        clippy::doc_markdown,
        reason = "clap prints this doc comment verbatim as the option's --help text, where backticks would show"
    )]
    #[arg(long)]
    pub classic: bool,
    /// Count transmitted packets per device with the net:net_dev_queue tracepoint (a program
    /// run per transmitted packet) instead of the devices' own counters.
    #[expect(
        clippy::doc_markdown,
        reason = "clap prints this doc comment verbatim as the option's --help text, where backticks would show"
    )]
    #[arg(long)]
    pub tx_trace: bool,
    /// Benchmark floor: attach an empty program on the same hook instead of pktloss's (counts
    /// nothing; `cargo xtask bench` measures it beside pktloss).
    #[arg(long, hide = true)]
    pub floor: bool,
    /// Benchmark: leave out the probes that never run per drop (the TCP reset, XDP exception and
    /// devlink trap tracepoints), to measure what they cost.
    #[arg(long, hide = true)]
    pub no_sources: bool,
    /// Count only the drops this expression matches, in tcpdump's words (host, net, port,
    /// portrange, src/dst, tcp/udp/icmp/icmp6/ip/ip6/arp, proto, and/or/not, parentheses; and/or
    /// left to right, as tcpdump) and pktloss's: netns NAME|PATH|pid N|id N (NAME: ip netns,
    /// container, pod or unit), dev NAME, ifindex N, reason NAME, cause ID.
    #[arg(value_name = "FILTER", trailing_var_arg = true, allow_hyphen_values = false)]
    pub filter: Vec<String>,
}

/// A detail budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget(pub Option<u32>);

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
    /// The options these flags ask for; a bad filter expression is a one-line error.
    pub(crate) fn options(&self) -> Result<Options, crate::Error> {
        let filter = crate::filter::FilterSpec::from_words(&self.filter).map_err(crate::Error::BadInput)?;
        Ok(Options {
            flows: !self.no_flows,
            detail: !self.no_detail,
            stacks: self.stacks,
            detail_budget: self.detail_budget.0,
            snaplen: self.snaplen,
            ringbuf_bytes: self.ringbuf_kib * 1024,
            classic: self.classic,
            tx_trace: self.tx_trace,
            floor: self.floor,
            no_sources: self.no_sources,
            bytes: false,
            filter,
            compiled_filter: None,
        })
    }
}

#[derive(Args, Debug)]
pub(crate) struct CaptureArgs {
    /// How long to capture (e.g. 10s, 1m); without it, until Ctrl-C or --count.
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after at least this many drops (1 or more).
    #[arg(short, long, value_parser = clap::value_parser!(u64).range(1..))]
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
pub(crate) struct ReportArgs {
    /// A capture file written by `pktloss capture -o FILE.pktloss`.
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::render::report::ReportFormat::Text)]
    pub format: crate::render::report::ReportFormat,
    /// Write the sampled dropped packets as pcapng to this file.
    #[arg(long)]
    pub pcapng: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
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
pub(crate) struct ReasonsArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// List the reasons of the TCP resets the kernel sends (`enum sk_rst_reason`, 6.10+) instead
    /// of its drop reasons.
    #[arg(long)]
    pub resets: bool,
}
