//! Sources beside `kfree_skb` that run only when they have something to report: TCP resets
//! sent, per flow and reset reason (`tcp:tcp_send_reset`, reason since 6.10), once per RST; XDP
//! exceptions per program (`xdp:xdp_exception`), once per `XDP_ABORTED`.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use pktloss_common::{XdpExcKey, flag, stat};

use crate::{
    counting::{bump, count_in_lru, zero},
    flow::sock_netns,
    hook::tp_field,
    maps::{RESET_SCRATCH, RESETS, XDP_EXCEPTIONS},
    mem::{Mem as _, Probe},
};

const AF_INET6: u16 = 10;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// Classic `tcp:tcp_send_reset`: resets per (flow of the RST, netns, device, reset reason).
#[tracepoint]
fn tcp_send_reset(ctx: TracePointContext) -> i32 {
    bump(stat::RESETS);
    let Some(key) = RESET_SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU scratch slot, reinitialised here.
    let key = unsafe { &mut *key };
    zero::<_, 16>(key);
    key.l4proto = 6;
    key.reason = tp_field(&ctx, cfg!(reset_tp.reason));
    let (sa, da) = (cfg!(reset_tp.saddr), cfg!(reset_tp.daddr));
    // 6.10+: `saddr`/`daddr` are a sockaddr_in/in6 each; before, the fields of
    // tcp_retransmit_skb (the reset's source is then the socket's own address).
    let old = cfg!(reset_tp.sport) != u32::MAX;
    let (family, sa4, da4, sa6, da6) = if old {
        key.sport = tp_field(&ctx, cfg!(reset_tp.sport));
        key.dport = tp_field(&ctx, cfg!(reset_tp.dport));
        (tp_field::<u16>(&ctx, cfg!(reset_tp.family)), sa, da, cfg!(reset_tp.saddr_v6), cfg!(reset_tp.daddr_v6))
    } else {
        key.sport = u16::from_be(tp_field(&ctx, sa.saturating_add(2)));
        key.dport = u16::from_be(tp_field(&ctx, da.saturating_add(2)));
        (
            tp_field::<u16>(&ctx, sa),
            sa.saturating_add(4),
            da.saturating_add(4),
            sa.saturating_add(8),
            da.saturating_add(8),
        )
    };
    if family == AF_INET6 {
        key.family = 6;
        key.ethertype = ETH_P_IPV6;
        key.saddr = tp_field(&ctx, sa6);
        key.daddr = tp_field(&ctx, da6);
    } else {
        key.family = 4;
        key.ethertype = ETH_P_IP;
        let s: [u8; 4] = tp_field(&ctx, sa4);
        let d: [u8; 4] = tp_field(&ctx, da4);
        key.saddr[..4].copy_from_slice(&s);
        key.daddr[..4].copy_from_slice(&d);
    }
    // The namespace: the socket's, or for a reset with no socket (no listener) the device's
    // the segment came in on.
    let sk: u64 = tp_field(&ctx, cfg!(reset_tp.skaddr));
    let skb: u64 = tp_field(&ctx, cfg!(reset_tp.skbaddr));
    let dev: u64 = if skb != 0 { Probe::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0) } else { 0 };
    if dev != 0 {
        key.ifindex = Probe::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    }
    if sk != 0 {
        (key.netns, key.netns_cookie) = sock_netns::<Probe>(sk);
    } else if dev != 0 {
        let net: u64 = Probe::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
        key.netns = Probe::get(net, cfg!(offsets.net_inum)).unwrap_or(0);
        key.netns_cookie = Probe::get(net, cfg!(offsets.net_cookie)).unwrap_or(0);
    }
    if cfg!(flags) & flag::FILTER != 0 {
        // The filter sees a reset as a retransmission: reason 0 (a reset reason is not a drop
        // reason, and `reason NAME` means a drop reason).
        let reason = key.reason;
        key.reason = 0;
        let pass = crate::filter::key_passes(key);
        key.reason = reason;
        if !pass {
            bump(stat::RESETS_FILTERED);
            return 0;
        }
    }
    let (_, inserted) = count_in_lru(&RESETS, key, 1);
    if inserted {
        bump(stat::RESET_INSERTS);
    }
    0
}

/// Classic `xdp:xdp_exception`: exceptions per (program id, action, device).
#[tracepoint]
fn xdp_exception(ctx: TracePointContext) -> i32 {
    let key = XdpExcKey {
        prog_id: tp_field(&ctx, cfg!(xdp_exc_tp.prog_id)),
        act: tp_field(&ctx, cfg!(xdp_exc_tp.act)),
        ifindex: tp_field(&ctx, cfg!(xdp_exc_tp.ifindex)),
        pad: 0,
    };
    crate::counting::count_in(&XDP_EXCEPTIONS, &key, 1);
    0
}
