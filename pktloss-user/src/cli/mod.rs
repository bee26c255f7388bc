//! The `pktloss` command line: parse flags, run a subcommand, map failures to exit codes.
use std::{io::IsTerminal as _, process::ExitCode};

use anyhow::anyhow;
use clap::Parser as _;

pub(crate) mod args;
mod commands;
pub(crate) mod help;

use args::{Cli, Command};

use crate::error::{EXIT_USAGE, exit_code};

/// The command line's definition, for the man pages and shell completions that
/// `examples/pktloss-docs.rs` writes (`cargo xtask dist`).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`pktloss ... | head`), like other Unix tools; the kernel
    // detaches the programs when the process exits.
    // SAFETY: setting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Nothing better to do when stdout is gone (e.g. a closed pipe).
                drop(e.print());
                return ExitCode::SUCCESS;
            }
            // One clear line.
            let msg = e.to_string();
            let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad arguments");
            eprintln!("pktloss: {}", first.trim_start_matches("error: "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new().filter_level(level).format_timestamp(None).parse_default_env().init();
    let result = match cli.command {
        Some(Command::Capture(a)) => commands::capture(a),
        Some(Command::Watch(a)) => commands::watch(a),
        Some(Command::Reasons(a)) => commands::reasons(a),
        Some(Command::Diagnose(a)) => commands::diagnose_cmd(a),
        Some(Command::Top(a)) => {
            a.trace.options().map_err(Into::into).and_then(|o| crate::tui::live::top(o, a.refresh))
        }
        Some(Command::Report(a)) => commands::report_cmd(a),
        Some(Command::Serve(a)) => {
            let config = a.config();
            a.trace
                .options()
                .map_err(Into::into)
                .and_then(|o| crate::export::serve::run(crate::kernel::tracer::Options { bytes: true, ..o }, config))
        }
        None => {
            if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
                match Cli::try_parse_from(["pktloss", "top"]) {
                    Ok(Cli { command: Some(Command::Top(a)), .. }) => {
                        a.trace.options().map_err(Into::into).and_then(|o| crate::tui::live::top(o, a.refresh))
                    }
                    _ => Err(anyhow!("cannot build the default `top` arguments")),
                }
            } else {
                eprintln!(
                    "pktloss: no subcommand and not a terminal; try `pktloss capture --duration 10s` or `pktloss --help`"
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktloss: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// An error as one line of at most 1000 characters (messages are written short; this bounds
/// what a library error may add).
fn one_line(e: &anyhow::Error) -> String {
    crate::kernel::verifier::shorten(&format!("{e:#}").replace('\n', " "), 1000)
}
