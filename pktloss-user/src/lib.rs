//! pktloss: a Linux kernel packet-drop tracer.
//!
//! The source tree is the pipeline, one directory per step:
//! - [`kernel`]: BTF, tracefs formats, load and attach the programs, read their maps, drain the
//!   detail ring buffer;
//! - [`decode`]: ring-buffer records and map keys, kallsyms, drop-reason names;
//! - [`filter`]: tcpdump-style filter expressions compiled for the kernel programs;
//! - [`aggregate`]: exact counters and sampled detail into the [`model`] types;
//! - [`host`]: every read of /proc and /sys (namespaces, counters, configuration, devices);
//! - [`diagnose`]: the cause taxonomy, a pure function of the collected data;
//! - [`render`], [`tui`], [`capture`]: text, Markdown and JSON, the live view, incident files;
//! - [`export`]: `pktloss serve`, the metrics for Prometheus;
//! - [`session`] runs the pipeline for every command of [`cli`].

mod aggregate;
pub mod capture;
pub mod cli;
mod decode;
mod diagnose;
mod error;
mod export;
mod filter;
mod host;
mod kernel;
mod model;
pub mod render;
mod session;
mod tui;

pub(crate) use error::Error;

#[cfg(test)]
mod testdata;
