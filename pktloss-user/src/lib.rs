//! pktloss: a Linux kernel packet-drop tracer.
//!
//! The flow of data, one module per step:
//! kernel (`btf`, `tracefs`, `probes`, `collect`) -> decode (`decode`) -> aggregate (`aggregate`,
//! `model`) -> classify (`diagnose`) -> ui/export (`output`, `tui`, `capture`).

pub mod model;
pub mod netns;
pub mod tui;
pub mod capture;
pub mod aggregate;
pub mod btf;
pub mod cli;
pub mod collect;
pub mod decode;
pub mod output;
pub mod reasons;
pub mod symbols;
pub mod tracefs;
pub mod counters;
pub mod diagnose;
pub mod live;
