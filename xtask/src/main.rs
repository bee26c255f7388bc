//! `cargo xtask`: the build, test and benchmark entry points of pktloss.
mod bench;
mod dist;
mod dist_test;
mod edges;
mod setup;
mod tasks;
mod totals;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build, run, test and benchmark pktloss.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Idempotent bootstrap: nightly rust-src, bpf-linker 0.13, Debian packages, tracefs.
    Setup,
    /// Build pktloss (and its eBPF programs) after the toolchain part of setup.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Setup, release build, then run `target/release/pktloss ARGS...`.
    Run {
        /// Arguments for pktloss (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, debug build, every test of the workspace one at a time, then the kernel matrix
    /// (the portability tests in qemu guests, see `vm-test`) and a fuzz smoke run.
    Test {
        /// Skip the kernel matrix.
        #[arg(long)]
        no_vm: bool,
        /// Extra arguments for the test binaries (a name filter, --nocapture, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// clippy with warnings denied: the host crates (all targets), then the eBPF crate
    /// (nightly, bpfel-unknown-none).
    Lint {
        /// Also check formatting with `cargo fmt --all --check`.
        #[arg(long)]
        fmt: bool,
    },
    /// Drop-flood overhead of pktloss and its peers; table on stdout, JSON under target/bench/.
    Bench(bench::BenchArgs),
    /// The benchmark's drop flood alone (namespaces, nftables DROP rule), for profiling.
    Flood(bench::FloodArgs),
    /// The portability tests in qemu guests booted with Debian's 5.10, 6.1 and 6.12 kernels
    /// (the host's kernel runs them in `test`).
    VmTest(vm::VmArgs),
    /// What `pktloss serve` costs: the flood's rate with it attached, its CPU at 100k drops/s,
    /// scrape latency with many series.
    BenchServe(bench::ServeBenchArgs),
    /// TCP throughput of iperf3 between two namespaces, untraced and with `pktloss serve`
    /// attached (also beside a drop flood): the production-safety table.
    BenchThroughput(bench::ThroughputArgs),
    /// The release files in `target/dist/`: static musl tarballs and .debs for `x86_64` and
    /// aarch64, an OCI image archive of both, SHA256SUMS.
    Dist,
    /// Build the release files, then install the .deb in a booted Debian 12 root
    /// (systemd-nspawn) and run the OCI image under podman; both must serve exact counts.
    DistTest,
    /// BPF ns per drop of two pktloss builds or modes attached at once (for A/B on a noisy VM).
    BenchPair(bench::PairArgs),
    /// CI regression gate: bench-pair of the base commit's build against this tree's, on the
    /// default and detail paths; fails when the default path's BPF ns/drop rose over 15 %.
    BenchGate(bench::GateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Setup => setup::setup(setup::Scope::All),
        Cmd::Build { release } => tasks::build(release),
        Cmd::Run { args } => tasks::run_pktloss(&args),
        Cmd::Test { no_vm, args } => tasks::test(&args, !no_vm),
        Cmd::Lint { fmt } => tasks::lint(fmt),
        Cmd::Bench(args) => bench::bench(args),
        Cmd::Flood(args) => bench::flood_only(args),
        Cmd::BenchPair(args) => bench::pair(args),
        Cmd::BenchGate(args) => bench::gate(&args),
        Cmd::BenchServe(args) => bench::bench_serve(args),
        Cmd::BenchThroughput(args) => bench::bench_throughput(args),
        Cmd::VmTest(args) => vm::vm_test(args),
        Cmd::Dist => dist::dist(),
        Cmd::DistTest => dist_test::dist_test(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
