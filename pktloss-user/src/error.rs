//! The failures a caller decides on: what went wrong, kept typed with its source, and the exit
//! code it earns (2 for bad input, missing privileges or kernel features; 1 for the rest).
use std::{net::SocketAddr, path::PathBuf};

/// Exit code of bad input, missing privileges or kernel features.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code of any other failure.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// A failure that is no fault of pktloss: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A flag, a combination of flags, a filter or an output path that cannot be used.
    #[error("{0}")]
    BadInput(String),
    /// A capture file that cannot be read as one.
    #[error("{}: {error}", path.display())]
    BadCaptureFile {
        path: PathBuf,
        /// The capture reader's error (a `capture::CaptureError`). Not a `#[source]`: its
        /// message already ends with its own source's.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The address `serve` was told to listen on cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Root, or the capabilities to load and attach eBPF programs, are missing.
    #[error("{0}")]
    MissingPrivilege(String),
    /// This pktloss was built without its eBPF programs.
    #[error("this pktloss was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask build`")]
    NoPrograms,
    /// Something the running kernel lacks or refuses: a tracepoint, BTF, struct offsets, the
    /// programs themselves.
    #[error("{0}")]
    MissingKernelFeature(String),
    /// The kernel's BTF or tracefs cannot be read; the chain says why.
    #[error(transparent)]
    KernelInterface(anyhow::Error),
}

impl Error {
    /// The process's exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_)
            | Self::BadCaptureFile { .. }
            | Self::Listen { .. }
            | Self::MissingPrivilege(_)
            | Self::NoPrograms
            | Self::MissingKernelFeature(_)
            | Self::KernelInterface(_) => EXIT_USAGE,
        }
    }
}

/// The exit code of any failure: that of an [`Error`] anywhere in its chain, else 1.
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain().find_map(|c| c.downcast_ref::<Error>()).map_or(EXIT_FAILURE, Error::exit_code)
}
