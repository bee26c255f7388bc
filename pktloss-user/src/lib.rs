//! pktloss: a Linux kernel packet-drop tracer.
//!
//! The flow of data, one module per step:
//! kernel (`btf`, `tracefs`, `probes`, `collect`) -> decode (`decode`) -> aggregate (`aggregate`,
//! `model`) -> classify (`diagnose`) -> ui/export (`output`, `tui`, `capture`).

pub mod model;
