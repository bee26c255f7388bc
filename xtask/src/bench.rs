//! `bench`, `bench-pair`, `bench-gate`, `bench-serve`, `bench-throughput`, `flood`: forwarded
//! to the benchmark crate (`bench/`, binary `pktloss-bench`) with their arguments as given.
use std::os::unix::process::CommandExt as _;

use anyhow::{Result, bail};

use crate::util::{self, run, show};

/// `cargo run -p pktloss-bench -- SUB ARGS` (its debug build, as xtask's own).
fn command(sub: &str, args: &[String]) -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.args(["run", "--quiet", "-p", "pktloss-bench", "--", sub]).args(args);
    cmd
}

/// Run `pktloss-bench SUB ARGS` in place of this process (its exit code is ours; Ctrl-C reaches
/// it alone).
pub(crate) fn forward(sub: &str, args: &[String]) -> Result<()> {
    let mut cmd = command(sub, args);
    let err = cmd.exec();
    bail!("cannot exec `{}`: {err}", show(&cmd))
}

/// The CI regression gate with its defaults (what `cargo xtask test` runs).
pub(crate) fn gate() -> Result<()> {
    run(&mut command("gate", &[]))
}
