//! `cargo xtask dist` (stand-in: the release tasks land with the dist work): the static musl
//! binary of a target, which the kernel matrix runs.
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::util::{self, run};

/// Build `pktloss` for `target` (a `*-linux-musl` triple: static, the eBPF object embedded) with
/// the release profile and return `target/T/release/pktloss`.
pub(crate) fn static_binary(target: &str) -> Result<PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "-p", "pktloss-user", "--target", target]);
    if target.starts_with("aarch64-") && std::env::consts::ARCH != "aarch64" {
        // Debian's cross gcc links; musl's start files and libc come with the Rust target.
        cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "aarch64-linux-gnu-gcc");
    }
    run(&mut cmd).with_context(|| format!("building the static pktloss for {target}"))?;
    Ok(util::target_dir().join(target).join("release/pktloss"))
}
