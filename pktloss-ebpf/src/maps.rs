//! The maps shared with userspace.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, RingBuf, StackTrace},
};
use pktloss_common::{
    DevKey, DropEvent, DropKey, FlowKey, FwKey, FwSlot, NatTuple, NetnsKey, RunCache, XdpExcKey, stat,
};

#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Exact drop counts per (reason, location, stack id).
#[map]
pub(crate) static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

/// Bytes dropped per (reason, location) (`flag::BYTES`).
#[map]
pub(crate) static DROP_BYTES: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

/// Exact drop counts per flow, bounded; evictions are derived from `FLOW_INSERTS`.
#[map]
pub(crate) static FLOWS: LruPerCpuHashMap<FlowKey, u64> = LruPerCpuHashMap::with_max_entries(8192, 0);

/// Exact drop counts per (namespace, device, reason), never evicted (see `NetnsKey`); full:
/// `stat::NETNS_FAILS`. Userspace deletes the keys of namespaces that are gone.
#[map]
pub(crate) static NETNS_DROPS: PerCpuHashMap<NetnsKey, u64> = PerCpuHashMap::with_max_entries(8192, 0);

/// Transmitted packets per device (`net:net_dev_queue`).
#[map]
pub(crate) static TX: PerCpuHashMap<DevKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

/// Retransmissions per flow (`tcp:tcp_retransmit_skb`).
#[map]
pub(crate) static RETRANS: LruPerCpuHashMap<FlowKey, u64> = LruPerCpuHashMap::with_max_entries(4096, 0);

#[map]
pub(crate) static STACKS: StackTrace = StackTrace::with_max_entries(4096, 0);

/// Detail budget epoch, advanced by userspace once a second (see `RunCache`).
#[map]
pub(crate) static EPOCH: Array<u32> = Array::with_max_entries(1, 0);

/// Sampled per-drop detail; size set by userspace.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Each CPU's detail record, built here and copied into `EVENTS` with only its captured bytes.
#[map]
pub(crate) static EVENT_SCRATCH: PerCpuArray<DropEvent> = PerCpuArray::with_max_entries(1, 0);

/// Run-length caches in front of DROPS, FLOWS and TX (see `RunCache`).
#[map]
pub(crate) static RUNS: PerCpuArray<RunCache> = PerCpuArray::with_max_entries(1, 0);

/// Scratch flow key of the retransmission program.
#[map]
pub(crate) static SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

/// TCP resets sent per flow of the RST, its key's `reason` the reset reason (`tcp:tcp_send_reset`).
#[map]
pub(crate) static RESETS: LruPerCpuHashMap<FlowKey, u64> = LruPerCpuHashMap::with_max_entries(4096, 0);

/// Scratch flow key of the reset program.
#[map]
pub(crate) static RESET_SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

/// XDP exceptions per (program, action, device) (`xdp:xdp_exception`).
#[map]
pub(crate) static XDP_EXCEPTIONS: PerCpuHashMap<XdpExcKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

/// The last netfilter chain or table each CPU's packet entered (`firewall.rs`).
#[map]
pub(crate) static FW_SLOT: PerCpuArray<FwSlot> = PerCpuArray::with_max_entries(1, 0);

/// Scratch key of the firewall-drop count.
#[map]
pub(crate) static FW_SCRATCH: PerCpuArray<FwKey> = PerCpuArray::with_max_entries(1, 0);

/// Exact `NETFILTER_DROP` drops per (flow, table, chain, rule) (`flag::FIREWALL`).
#[map]
pub(crate) static FW_DROPS: PerCpuHashMap<FwKey, u64> = PerCpuHashMap::with_max_entries(2048, 0);

/// The conntrack original tuple of dropped flows whose packets were translated (`flag::NAT`).
#[map]
pub(crate) static NAT_ORIG: LruHashMap<FlowKey, NatTuple> = LruHashMap::with_max_entries(4096, 0);

/// Scratch slot of the conntrack tuple read at the start of a flow run.
#[map]
pub(crate) static NAT_SCRATCH: PerCpuArray<NatTuple> = PerCpuArray::with_max_entries(1, 0);
