//! What the integration tests (`tests/`) and the benchmarks (`bench/`) of pktloss share, each
//! written once: network namespaces ([`Netns`]), veth pairs between them ([`Veth`]), nftables
//! drop rules removed on drop ([`NftDrop`]), typed readers of pktloss's JSON output
//! ([`summary`]), and the workspace's paths and commands for xtask and the benchmarks
//! ([`workspace`]). Everything here acts on the real kernel; nothing is mocked.
mod netns;
mod nft;
pub mod summary;
mod veth;
pub mod workspace;

use std::process::Command;

pub use netns::{NETNS_THREAD, Netns};
pub use nft::NftDrop;
pub use veth::{End, Veth};

/// Run a command, panic with its output on failure.
pub fn sh(args: &[&str]) -> String {
    cmd(args).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Run a command; its stdout, or an error with its output when it fails.
pub fn cmd(args: &[&str]) -> anyhow::Result<String> {
    let (first, rest) = args.split_first().ok_or_else(|| anyhow::anyhow!("an empty command"))?;
    let out = Command::new(first).args(rest).output().map_err(|e| anyhow::anyhow!("spawn {args:?}: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
