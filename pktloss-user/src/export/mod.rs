//! Export: `pktloss serve`, the drop metrics for Prometheus ([`metrics`]) and the daemon that
//! serves them ([`serve`]) over bounded HTTP connections ([`http`]).
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod serve;
