//! pktloss: a Linux kernel packet-drop tracer.
//!
//! The flow of data, one module per step:
//! - kernel: [`btf`] (offsets and reason names from the running kernel's BTF), [`tracefs`]
//!   (classic tracepoint formats), [`collect`] (load, attach, drain, read maps), [`ring`] (the
//!   detail ring buffer's consumer), [`netns`];
//! - decode: [`decode`] (ring-buffer records and keys), [`symbols`] (kallsyms), [`reasons`];
//! - aggregate: [`aggregate`] into the [`model`] types;
//! - classify: [`counters`] (kernel counters and configuration per namespace) and
//!   [`diagnose`] (the cause taxonomy, a pure function of the collected data);
//! - ui/export: [`output`] (text, JSON, watch lines), [`tui`] and [`live`] (`pktloss top`),
//!   [`capture`] (incident files, offline reports, pcapng), [`cli`].

pub mod aggregate;
pub mod btf;
pub mod capture;
pub mod cli;
pub mod collect;
pub mod counters;
pub mod decode;
pub mod diagnose;
pub mod live;
pub mod model;
pub mod netns;
pub mod output;
pub mod reasons;
pub mod ring;
pub mod symbols;
pub mod tracefs;
pub mod tui;
pub mod verifier;
