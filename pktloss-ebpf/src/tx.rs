//! Transmitted packets per device (`net:net_dev_queue`).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use pktloss_common::{DevKey, stat};

use crate::{
    counting::{bump_by, count_in, same},
    hook::tp_field,
    maps::{RUNS, TX},
    mem::{Direct, Mem, Probe},
};

#[inline(always)]
fn count_tx<M: Mem>(skb: u64) {
    let Some(rc) = RUNS.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot; only this program touches the dev_* fields and tx_packets.
    let rc = unsafe { &mut *rc };
    rc.tx_packets += 1;
    let dev: u64 = M::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0);
    if dev == 0 {
        return;
    }
    let ifindex: u32 = M::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    let net: u64 = M::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
    // Same device, same index, same namespace as the run: no need to resolve the key. (The
    // index and namespace guard against a freed device whose memory was reused, or a device
    // moved to another namespace.)
    if rc.dev_pending != 0 && rc.dev_ptr == dev && rc.dev_net_ptr == net && rc.dev_key.ifindex == ifindex {
        rc.dev_pending += 1;
        return;
    }
    let key = DevKey { ifindex, netns: M::get(net, cfg!(offsets.net_inum)).unwrap_or(0) };
    rc.dev_ptr = dev;
    rc.dev_net_ptr = net;
    if rc.dev_pending != 0 && same::<_, 2>(&rc.dev_key, &key) {
        rc.dev_pending += 1;
        return;
    }
    if rc.dev_pending != 0 && !count_in(&TX, &rc.dev_key, rc.dev_pending) {
        bump_by(stat::DEV_FAILS, rc.dev_pending);
    }
    rc.dev_key = key;
    rc.dev_pending = 1;
}

/// `tp_btf/net_dev_queue`: per-device transmitted packets.
#[btf_tracepoint(function = "net_dev_queue")]
fn net_dev_queue_btf(ctx: BtfTracePointContext) -> i32 {
    count_tx::<Direct>(ctx.arg(0));
    0
}

/// Classic `net:net_dev_queue`: `skbaddr` is at offset 8 on every kernel that has it.
#[tracepoint]
fn net_dev_queue_tp(ctx: TracePointContext) -> i32 {
    count_tx::<Probe>(tp_field(&ctx, 8));
    0
}
