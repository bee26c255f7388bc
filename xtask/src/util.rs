//! Small helpers shared by the subcommands: paths, running commands, root checks (those the
//! benchmarks use too live in [`pktloss_testkit::workspace`]).
use std::{env, path::PathBuf};

pub(crate) use pktloss_testkit::workspace::{
    cargo, cargo_build, is_root, output, pktloss_bin, run, show, succeeds, target_dir, workspace_root,
};

/// `$HOME`, or `/root` if unset.
pub(crate) fn home() -> PathBuf {
    env::var_os("HOME").filter(|h| !h.is_empty()).map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// Make sure `~/.cargo/bin` is on PATH for us and our children (bpf-linker lives there).
pub(crate) fn ensure_cargo_bin_on_path() {
    let bin = env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| home().join(".cargo"), PathBuf::from)
        .join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let mut parts: Vec<PathBuf> = env::split_paths(&path).collect();
    parts.push(bin);
    if let Ok(joined) = env::join_paths(parts) {
        // SAFETY: called from the main thread at start-up, before any other thread exists.
        unsafe { env::set_var("PATH", joined) };
    }
}
