//! `build`, `run`, `test` and `lint`: thin wrappers over cargo with the bootstrap in front.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::{self, Scope},
    util::{self, run, show},
};

fn profile_dir(release: bool) -> &'static str {
    if release { "release" } else { "debug" }
}

/// The pktloss binary of a profile.
pub(crate) fn pktloss_bin(release: bool) -> PathBuf {
    util::target_dir().join(profile_dir(release)).join("pktloss")
}

pub(crate) fn cargo_build(release: bool) -> Result<()> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "pktloss-user"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

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

/// Totals of cargo test's `test result:` lines.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Totals {
    /// Add one line if it is a `test result:` line.
    pub(crate) fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut it = part.split_whitespace();
            let (Some(n), Some(what)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
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
        crate::bench::gate(&crate::bench::GateArgs::default())
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

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn totals_add_up_test_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line("test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s");
        t.add_line("running 3 tests");
        assert_eq!(t, Totals { passed: 5, failed: 1, ignored: 1 });
    }
}
