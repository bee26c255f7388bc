//! pktloss kernel programs: exact drop counters, sampled drop detail, TX and retransmit counters.
//!
//! Every struct offset comes from userspace (`CONFIG`), resolved from the running kernel's BTF;
//! nothing here knows the layout of a kernel struct.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

#[macro_use]
mod config;
mod counting;
mod detail;
mod devlink;
mod drop;
mod filter;
mod firewall;
mod flow;
mod hook;
mod maps;
mod mem;
mod reset;
mod retransmit;
mod tx;

use aya_ebpf::{
    macros::{btf_tracepoint, kprobe, tracepoint},
    programs::{BtfTracePointContext, ProbeContext, TracePointContext},
};
use pktloss_common::{REASON_NONE, REASON_TCP_DROP, stat};

use crate::{
    counting::bump,
    drop::on_drop,
    hook::{Args, BtfHook, tp_field},
    mem::{Direct, Probe},
};

/// `tp_btf/kfree_skb`: arguments come typed from BTF; positions from `CONFIG.kfree_btf`.
#[btf_tracepoint(function = "kfree_skb")]
fn kfree_skb_btf(ctx: BtfTracePointContext) -> i32 {
    on_drop::<_, Direct>(BtfHook(&ctx));
    0
}

/// An empty program on the same hook (`--floor`): what any program on `tp_btf/kfree_skb` costs,
/// the floor the benchmark measures beside pktloss's own.
#[btf_tracepoint(function = "kfree_skb")]
fn kfree_skb_floor(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// Classic `skb:kfree_skb` tracepoint; field offsets from the tracefs format file.
#[tracepoint]
fn kfree_skb_tp(ctx: TracePointContext) -> i32 {
    let skb: u64 = tp_field(&ctx, cfg!(kfree_tp.skbaddr));
    let location: u64 = tp_field(&ctx, cfg!(kfree_tp.location));
    let reason: u32 = tp_field(&ctx, cfg!(kfree_tp.reason));
    let rx_sk: u64 = tp_field(&ctx, cfg!(kfree_tp.rx_sk));
    // Before 5.17 there is no reason field.
    let reason = if cfg!(kfree_tp.reason) == u32::MAX { REASON_NONE } else { reason };
    on_drop::<_, Probe>(Args { ctx: &ctx, skb, location, reason, rx_sk });
    0
}

/// `tcp_drop()` on kernels before 5.19 (needs kprobes); arguments (sk, skb).
#[kprobe]
fn tcp_drop(ctx: ProbeContext) -> u32 {
    bump(stat::TCP_DROP_CALLS);
    let skb: u64 = ctx.arg(1).unwrap_or(0);
    let sk: u64 = ctx.arg(0).unwrap_or(0);
    // No location: the kprobe does not read its caller (location 0 shows as `unknown`); the
    // reason TCP_DROP says where the drop happened.
    aya_log_ebpf::debug!(&ctx, "tcp_drop skb={:x}", skb);
    on_drop::<_, Probe>(Args { ctx: &ctx, skb, location: 0, reason: REASON_TCP_DROP, rx_sk: sk });
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
