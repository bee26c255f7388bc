//! Kernel step: what the running kernel offers (BTF, tracefs), the programs loaded and attached
//! through each probe's lifecycle, their maps read and their detail ring buffer drained.

pub(crate) mod btf;
pub(crate) mod maps;
pub(crate) mod ring;
pub(crate) mod tracefs;
pub(crate) mod tracer;
pub(crate) mod verifier;
