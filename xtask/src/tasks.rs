//! `build`, `run`, `test` and `lint`: thin wrappers over cargo with the bootstrap in front.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::{self, Scope},
    totals::Totals,
    util::{self, cargo_build, pktloss_bin, run, show},
};

/// `build [--release]`: the toolchain part of setup, then `cargo build -p pktloss-user`.
pub(crate) fn build(release: bool) -> Result<()> {
    setup::setup(Scope::Toolchain)?;
    cargo_build(release)?;
    println!("built {}", pktloss_bin(release).display());
    Ok(())
}

/// `run -- ARGS`: setup, release build, then exec pktloss (its exit code is ours).
pub(crate) fn run_pktloss(args: &[String]) -> Result<()> {
    setup::setup(Scope::All)?;
    cargo_build(true)?;
    let bin = pktloss_bin(true);
    let err = Command::new(&bin).args(args).exec();
    bail!("cannot exec {}: {err}", bin.display())
}

/// `test`: full setup, a debug build so the binary exists, then every test, one at a time, the
/// release files' tests (`dist-test`), the kernel matrix (unless `vm` is false) and the fuzz
/// smoke run.
pub(crate) fn test(extra: &[String], vm: bool) -> Result<()> {
    setup::setup(Scope::All)?;
    cargo_build(false)?;
    let bin = pktloss_bin(false);
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace", "--exclude", "pktloss-ebpf", "--no-fail-fast", "--"])
        .arg("--test-threads=1")
        .args(extra)
        .env("PKTLOSS_BIN", &bin)
        .stdout(Stdio::piped());
    eprintln!("running: PKTLOSS_BIN={} {}", bin.display(), show(&cmd));
    let mut child = cmd.spawn().with_context(|| format!("cannot start `{}`", show(&cmd)))?;
    let mut totals = Totals::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            totals.add_line(&line);
        }
    }
    let status = child.wait().context("cargo test")?;
    println!("xtask: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    // The regression gate of the eBPF hot path (issue 32): the base commit is built in a
    // target directory of its own, this tree's build is the one the host tests used.
    let gate = if util::is_root() || std::env::var_os("CI").is_some_and(|v| v == "true") {
        crate::bench::gate()
    } else {
        println!("xtask: bench-gate skipped (not root)");
        Ok(())
    };
    // The release files on real systems: the .deb booted in nspawn, the image under podman.
    let dist = crate::dist_test::dist_test();
    if let Err(e) = &dist {
        eprintln!("xtask: dist-test FAILED: {e:#}");
    }
    // The matrix runs even when a host test failed: CI should show both.
    let matrix = if vm {
        crate::vm::run_matrix(&crate::vm::VmArgs::default())
    } else {
        println!("xtask: kernel matrix skipped (--no-vm)");
        Ok(())
    };
    if !status.success() {
        bail!("tests FAILED (cargo test: {status})");
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    dist?;
    matrix?;
    gate?;
    fuzz_smoke()
}

/// Bounded cargo-fuzz run of the capture-file reader (the target in `fuzz/`), seeded with
/// the committed valid captures; any crash fails the test command.
fn fuzz_smoke() -> Result<()> {
    let root = util::workspace_root();
    let corpus = root.join("fuzz/corpus/capture_reader");
    std::fs::create_dir_all(&corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("fuzz"))
        .env("AYA_BUILD_SKIP", "1")
        .args(["+nightly", "fuzz", "run", "capture_reader"])
        .arg(&corpus)
        .arg(root.join("fuzz/seeds/capture_reader"))
        .args(["--", "-max_total_time=30", "-rss_limit_mb=2048", "-max_len=65536"]);
    eprintln!("running: {}", show(&cmd));
    run(&mut cmd).context("fuzz smoke run of the capture reader FAILED")?;
    println!("xtask: fuzz smoke run of capture_reader: 30 s, no crash");
    Ok(())
}

/// `lint [--fmt]`: clippy with warnings denied on the host crates, then on the eBPF crate as
/// aya-build compiles it; rustfmt check too with `--fmt`.
pub(crate) fn lint(fmt: bool) -> Result<()> {
    setup::setup(Scope::Toolchain)?;
    if fmt {
        run(util::cargo().args(["fmt", "--all", "--check"]))?;
    }
    run(util::cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "pktloss-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    clippy_ebpf()?;
    crate::edges::check(&util::workspace_root())?;
    println!("lint: clean");
    Ok(())
}

/// clippy on the eBPF crate for `bpfel-unknown-none`, the way aya-build builds it: nightly,
/// `core` from source, release, `bpf_target_arch` set to this host's architecture (the one the
/// programs are built for). It has its own target directory, so that the host crates' build
/// cache is left alone.
fn clippy_ebpf() -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(util::workspace_root())
        // As aya-build does: the rustup proxy picks the toolchain from `+nightly` (`RUSTC` or a
        // wrapper would bypass it), and the flags are these (`CARGO_ENCODED_RUSTFLAGS` would win).
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", format!("--cfg bpf_target_arch=\"{}\"", std::env::consts::ARCH))
        .args(["+nightly", "clippy", "-p", "pktloss-ebpf", "--target", "bpfel-unknown-none"])
        .args(["-Z", "build-std=core", "--release", "--target-dir"])
        .arg(util::target_dir().join("ebpf-clippy"))
        .args(["--", "-D", "warnings"]);
    eprintln!("running: {}", show(&cmd));
    run(&mut cmd).context("clippy on the eBPF crate")
}
