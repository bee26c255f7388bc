//! Host step: every read of /proc and /sys outside the eBPF maps: network namespaces, kernel
//! counters and configuration per namespace, device names and transmit counters.

pub(crate) mod caps;
pub(crate) mod counters;
pub(crate) mod devices;
pub(crate) mod devlink;
pub(crate) mod devtx;
pub(crate) mod names;
pub(crate) mod netns;
pub(crate) mod sockets;
pub(crate) mod tcprogs;
pub(crate) mod xdpnic;
