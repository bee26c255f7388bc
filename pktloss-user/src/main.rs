//! The `pktloss` binary: see [`pktloss::cli`].
fn main() -> std::process::ExitCode {
    pktloss::cli::main()
}
