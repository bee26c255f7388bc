//! TCP retransmissions per flow (`tcp:tcp_retransmit_skb`).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use pktloss_common::{flag, stat};

use crate::{
    counting::{bump, count_in_lru, zero},
    flow::sock_netns,
    hook::tp_field,
    maps::{RETRANS, SCRATCH},
    mem::Probe,
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// Classic `tcp:tcp_retransmit_skb`: retransmissions per flow and netns.
#[tracepoint]
fn tcp_retransmit_skb(ctx: TracePointContext) -> i32 {
    bump(stat::RETRANSMITS);
    let Some(key) = SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU scratch slot, reinitialised here.
    let key = unsafe { &mut *key };
    zero::<_, 16>(key);
    key.l4proto = 6;
    let family: u16 = tp_field(&ctx, cfg!(retrans_tp.family));
    key.sport = tp_field(&ctx, cfg!(retrans_tp.sport));
    key.dport = tp_field(&ctx, cfg!(retrans_tp.dport));
    if family == 10 {
        key.family = 6;
        key.ethertype = ETH_P_IPV6;
        key.saddr = tp_field(&ctx, cfg!(retrans_tp.saddr_v6));
        key.daddr = tp_field(&ctx, cfg!(retrans_tp.daddr_v6));
    } else {
        key.family = 4;
        key.ethertype = ETH_P_IP;
        let s: [u8; 4] = tp_field(&ctx, cfg!(retrans_tp.saddr));
        let d: [u8; 4] = tp_field(&ctx, cfg!(retrans_tp.daddr));
        key.saddr[..4].copy_from_slice(&s);
        key.daddr[..4].copy_from_slice(&d);
    }
    let sk: u64 = tp_field(&ctx, cfg!(retrans_tp.skaddr));
    (key.netns, key.netns_cookie) = sock_netns::<Probe>(sk);
    if cfg!(flags) & flag::FILTER != 0 && !crate::filter::key_passes(key) {
        bump(stat::RETRANS_FILTERED);
        return 0;
    }
    let (_, inserted) = count_in_lru(&RETRANS, key, 1);
    if inserted {
        bump(stat::RETRANS_INSERTS);
    }
    0
}
