//! Kernel step: what the running kernel offers (BTF, tracefs), the programs loaded and attached
//! through each probe's lifecycle, their maps read and their detail ring buffer drained.

pub mod btf;
pub mod ring;
pub mod tracefs;
pub mod tracer;
pub mod verifier;
