//! `cargo xtask bench-gate`: the CI regression gate on the eBPF hot path. The base commit's
//! build and this tree's are attached at once to the same flood (`bench-pair`), so the VM's
//! speed cancels out; the gate fails when the default path's BPF ns per drop rose by more than
//! [`MAX_RISE`].
//!
//! The base is `--base REV`, else the commit in `.ci/bench-base` (the last landed one, moved
//! forward when a landing changes the hot path on purpose), else `HEAD~1`. It is unpacked with
//! `git archive` into `target/bench/base/src` and built in this tree's target directory with
//! a version suffix (only the workspace's crates compile: under a minute here). When nothing the BPF programs' cost depends on changed
//! since the base ([`HOT_PATH`]), the gate says so and measures nothing.
use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use super::pair::{self, PairArgs};
use crate::util::{self, output, run};

/// What the programs' cost depends on: the programs, the shared types, and the loader that
/// configures and attaches them.
const HOT_PATH: &[&str] = &["pktloss-ebpf", "pktloss-common", "pktloss-user/src/kernel"];

/// What the base's workspace version gets, so its crates do not share artifacts with ours.
const BASE_VERSION_SUFFIX: &str = "-gatebase";

/// Largest accepted rise of the default path's BPF ns per drop (B over A).
const MAX_RISE: f64 = 0.15;

/// Options of `cargo xtask bench-gate`.
#[derive(clap::Args, Debug)]
pub(crate) struct GateArgs {
    /// The commit to compare with (default: `.ci/bench-base`, else `HEAD~1`).
    #[arg(long)]
    base: Option<String>,
    /// Repetitions of each pair (the attach order alternates; use an even number).
    #[arg(long, default_value_t = CI_REPS)]
    reps: usize,
    /// Seconds of flood per repetition.
    #[arg(long, default_value_t = CI_SECONDS)]
    seconds: f64,
    /// Measure even when the hot path's files did not change since the base.
    #[arg(long)]
    always: bool,
}

/// Repetitions per pair in CI (per-repetition differences here stay within about 3 % of the
/// default path's cost, far under the 15 % limit).
const CI_REPS: usize = 4;
/// Seconds of flood per repetition in CI.
const CI_SECONDS: f64 = 2.0;

/// The base revision: the argument, `.ci/bench-base`'s first word, else `HEAD~1`; as a hash.
fn base_commit(arg: Option<&str>) -> Result<String> {
    let root = util::workspace_root();
    let rev = match arg {
        Some(r) => r.to_owned(),
        None => fs::read_to_string(root.join(".ci/bench-base"))
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "HEAD~1".to_owned()),
    };
    let hash =
        output(Command::new("git").current_dir(&root).args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")]))
            .with_context(|| format!("base revision {rev} is not a commit of this clone"))?;
    Ok(hash.trim().to_owned())
}

/// Build the base commit's debug `pktloss`; returns its path.
fn build_base(commit: &str) -> Result<PathBuf> {
    let dir = util::target_dir().join("bench/base");
    let src = dir.join("src");
    let stamp = dir.join("commit");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(commit) {
        drop(fs::remove_dir_all(&src));
        fs::create_dir_all(&src)?;
        let mut archive = Command::new("git")
            .current_dir(util::workspace_root())
            .args(["archive", "--format=tar", commit])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start git archive")?;
        let pipe = archive.stdout.take().context("git archive stdout")?;
        let status = Command::new("tar").current_dir(&src).args(["-xf", "-"]).stdin(pipe).status().context("tar -x")?;
        if !status.success() || !archive.wait()?.success() {
            bail!("cannot unpack {commit} into {}", src.display());
        }
        fs::write(&stamp, commit)?;
    }
    // Built in this tree's target directory, so the dependencies are shared. Cargo hashes a
    // workspace member's path relative to its workspace, so the base's crates would be taken for
    // ours: the base's workspace version gets a suffix, which gives them other hashes. The last
    // build links `target/debug/pktloss`, so the base binary is copied out and this tree's is
    // linked again by the caller (nothing compiles).
    let manifest = src.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    if !text.contains(BASE_VERSION_SUFFIX) {
        let Some(at) = text.find("\nversion = \"").map(|i| i + "\nversion = \"".len()) else {
            bail!("no workspace version in {}", manifest.display());
        };
        let end = at + text[at..].find('"').context("unterminated version")?;
        let patched = format!("{}{BASE_VERSION_SUFFIX}{}", &text[..end], &text[end..]);
        fs::write(&manifest, patched)?;
    }
    let mut cmd = util::cargo();
    cmd.current_dir(&src).env("CARGO_TARGET_DIR", util::target_dir()).args(["build", "-p", "pktloss-user"]);
    run(&mut cmd).with_context(|| format!("building the base commit {commit}"))?;
    let bin = dir.join("pktloss");
    fs::copy(util::pktloss_bin(false), &bin)
        .with_context(|| format!("cannot copy the base binary to {}", bin.display()))?;
    Ok(bin)
}

/// `cargo xtask bench-gate`.
pub(crate) fn gate(args: &GateArgs) -> Result<()> {
    if !util::is_root() {
        bail!("bench-gate must run as root (BPF, namespaces, nftables)");
    }
    let commit = base_commit(args.base.as_deref())?;
    let unchanged = util::succeeds(
        Command::new("git").current_dir(util::workspace_root()).args(["diff", "--quiet", &commit, "--"]).args(HOT_PATH),
    );
    if unchanged && !args.always {
        println!(
            "bench-gate: {} unchanged since {commit}: the BPF cost is the base's, nothing to measure",
            HOT_PATH.join(", ")
        );
        return Ok(());
    }
    let base = build_base(&commit)?;
    util::cargo_build(false)?;
    let head = util::pktloss_bin(false);
    let version = output(Command::new(&head).arg("--version"))?;
    if version.contains(BASE_VERSION_SUFFIX) {
        bail!("{} is still the base build after relinking this tree's", head.display());
    }
    let pair_args = |extra: &str| PairArgs {
        a: format!("{} {extra}", base.display()),
        b: format!("{} {extra}", head.display()),
        reps: args.reps,
        seconds: args.seconds,
        batch: 64,
        ports: 1,
        cpu: None,
    };
    println!("bench-gate: A = base {commit}, B = this tree; default path, then detail unlimited");
    let default = pair::measure(&pair_args(""))?;
    let detail = pair::measure(&pair_args("--detail-budget unlimited"))?;
    let rise = |r: &pair::PairResult| if r.a > 0.0 { r.b / r.a - 1.0 } else { 0.0 };
    let report = format!(
        "{{\"base\":\"{commit}\",\"default\":{{\"base_ns\":{:.1},\"head_ns\":{:.1},\"rise\":{:.4}}},\
         \"detail\":{{\"base_ns\":{:.1},\"head_ns\":{:.1},\"rise\":{:.4}}},\"max_rise\":{MAX_RISE}}}\n",
        default.a,
        default.b,
        rise(&default),
        detail.a,
        detail.b,
        rise(&detail)
    );
    let out = util::target_dir().join("bench/gate.json");
    fs::write(&out, &report).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "bench-gate: default path {:.1} -> {:.1} ns/drop ({:+.1} %, per repetition {:+.1} to {:+.1} ns), detail unlimited {:.1} -> {:.1} ({:+.1} %); limit +{:.0} % on the default path",
        default.a,
        default.b,
        rise(&default) * 100.0,
        default.diff_range.0,
        default.diff_range.1,
        detail.a,
        detail.b,
        rise(&detail) * 100.0,
        MAX_RISE * 100.0
    );
    if rise(&default) > MAX_RISE {
        bail!(
            "bench-gate FAILED: the default path's BPF cost rose {:.1} % over {commit} (limit {:.0} %)",
            rise(&default) * 100.0,
            MAX_RISE * 100.0
        );
    }
    Ok(())
}
