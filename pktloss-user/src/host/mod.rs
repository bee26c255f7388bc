//! Host step: every read of /proc and /sys outside the eBPF maps: network namespaces, kernel
//! counters and configuration per namespace, device names and transmit counters.

pub mod counters;
pub mod devices;
pub mod devtx;
pub mod netns;
