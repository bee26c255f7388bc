//! `cargo xtask`: the build, test and benchmark entry points of pktloss.
mod bench;
mod dist;
mod dist_test;
mod edges;
mod netdevsim;
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
    #[command(disable_help_flag = true)]
    Bench(Forwarded),
    /// The benchmark's drop flood alone (namespaces, nftables DROP rule), for profiling.
    #[command(disable_help_flag = true)]
    Flood(Forwarded),
    /// The portability tests in qemu guests booted with Debian's 5.10, 6.1 and 6.12 kernels
    /// (the host's kernel runs them in `test`).
    VmTest(vm::VmArgs),
    /// What `pktloss serve` costs: the flood's rate with it attached, its CPU at 100k drops/s,
    /// scrape latency with many series.
    #[command(disable_help_flag = true)]
    BenchServe(Forwarded),
    /// TCP throughput of iperf3 between two namespaces, untraced and with `pktloss serve`
    /// attached (also beside a drop flood): the production-safety table.
    #[command(disable_help_flag = true)]
    BenchThroughput(Forwarded),
    /// The release files in `target/dist/`: static musl tarballs and .debs for `x86_64` and
    /// aarch64, an OCI image archive of both, SHA256SUMS.
    Dist,
    /// Build the release files, then install the .deb in a booted Debian 12 root
    /// (systemd-nspawn) and run the OCI image under podman; both must serve exact counts.
    DistTest,
    /// BPF ns per drop of two pktloss builds or modes attached at once (for A/B on a noisy VM).
    #[command(disable_help_flag = true)]
    BenchPair(Forwarded),
    /// CI regression gate: bench-pair of the base commit's build against this tree's, on the
    /// default and detail paths; fails when the default path's BPF ns/drop rose over 15 %.
    #[command(disable_help_flag = true)]
    BenchGate(Forwarded),
}

/// The arguments of a benchmark command, passed on to `pktloss-bench` as given (`--help` too).
#[derive(clap::Args)]
struct Forwarded {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Setup => setup::setup(setup::Scope::All),
        Cmd::Build { release } => tasks::build(release),
        Cmd::Run { args } => tasks::run_pktloss(&args),
        Cmd::Test { no_vm, args } => tasks::test(&args, !no_vm),
        Cmd::Lint { fmt } => tasks::lint(fmt),
        Cmd::Bench(f) => setup::setup(setup::Scope::All).and_then(|()| bench::forward("bench", &f.args)),
        Cmd::Flood(f) => bench::forward("flood", &f.args),
        Cmd::BenchPair(f) => bench::forward("pair", &f.args),
        Cmd::BenchGate(f) => bench::forward("gate", &f.args),
        Cmd::BenchServe(f) => bench::forward("serve", &f.args),
        Cmd::BenchThroughput(f) => bench::forward("throughput", &f.args),
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
