//! Write pktloss's man pages (`OUT/man/*.1`, from the clap definitions) and shell completions
//! (`OUT/completions/`: bash, zsh, fish). Run by `cargo xtask dist`:
//! `cargo run -p pktloss-user --example pktloss-docs -- OUT`.
use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("pktloss-docs: usage: pktloss-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktloss-docs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &std::path::Path) -> Result<()> {
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("create {}", man.display()))?;
    // pktloss.1 and one page per subcommand (pktloss-capture.1, ...).
    clap_mangen::generate_to(pktloss::cli::command(), &man).context("write the man pages")?;
    let completions = out.join("completions");
    fs::create_dir_all(&completions).with_context(|| format!("create {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut pktloss::cli::command(), "pktloss", &completions)
            .with_context(|| format!("write the {shell} completion"))?;
    }
    Ok(())
}
