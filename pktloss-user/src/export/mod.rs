//! Export: `pktloss serve`, the drop metrics for Prometheus ([`metrics`]) and the daemon that
//! serves them ([`serve`]).
pub(crate) mod metrics;
pub(crate) mod serve;
