//! The firewall chain of a `NETFILTER_DROP` drop and the conntrack original tuple of a dropped
//! flow.
//!
//! Three kprobes at the entry of the netfilter walkers (`nft_do_chain`, `ipt_do_table`,
//! `ip6t_do_table`) note in a per-CPU slot the packet and the chain or table it enters; a kprobe
//! on `nft_immediate_eval` notes the jumps it takes and, for an immediate `drop` verdict, which
//! of those chains holds the rule (the rule blob that contains the expression) and its handle.
//! A packet that a chain drops is freed before another chain sees it, so when the drop path
//! (`count_drop`) sees `NETFILTER_DROP` for the packet of the slot, the slot names its table and
//! chain. Nothing is read per packet beyond the slot's few stores; names are read at the drop.

use aya_ebpf::{helpers::bpf_probe_read_kernel_str_bytes, macros::kprobe, programs::ProbeContext};
use pktloss_common::{FW_JUMPS, FlowKey, FwSlot, NatTuple, RunCache, fw_kind};

use crate::{
    counting::{count_in, zero},
    flow::key_copy,
    maps::{FW_DROPS, FW_SCRATCH, FW_SLOT, NAT_ORIG, NAT_SCRATCH},
    mem::{Mem, Probe},
};

/// `NFT_JUMP`, `NFT_GOTO` (as u32) and `NF_DROP`.
const NFT_JUMP: u32 = 0xffff_fffd;
const NFT_GOTO: u32 = 0xffff_fffc;
const NF_DROP: u32 = 0;

/// Rules walked at most to find a drop's rule handle.
const MAX_RULES: u32 = 64;

#[inline(always)]
fn get<T: Copy + Default>(base: u64, off: u32) -> T {
    if off == u32::MAX {
        return T::default();
    }
    Probe::get(base, off).unwrap_or_default()
}

/// Start a slot: the packet entered `obj` (a chain or a table) at `state`.
#[inline(always)]
fn enter(skb: u64, obj: u64, state: u64, kind: u8) {
    let Some(s) = FW_SLOT.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot; a softirq that interrupts a walker on this CPU may overwrite it,
    // which the drop path sees as another packet (`skb` differs) and does not attribute.
    let s = unsafe { &mut *s };
    s.skb = skb;
    s.head = get(skb, cfg!(offsets.skb_head));
    s.obj = obj;
    s.drop_chain = 0;
    s.handle = 0;
    s.njumps = 0;
    s.kind = kind;
    s.hook = get(state, cfg!(fw.state_hook));
    s.pf = get(state, cfg!(fw.state_pf));
}

/// `nft_do_chain(struct nft_pktinfo *pkt, void *priv)`: `priv` is the base chain.
#[kprobe]
fn fw_nft_do_chain(ctx: ProbeContext) -> u32 {
    let pkt: u64 = ctx.arg(0).unwrap_or(0);
    let chain: u64 = ctx.arg(1).unwrap_or(0);
    enter(get(pkt, cfg!(fw.pkt_skb)), chain, get(pkt, cfg!(fw.pkt_state)), fw_kind::NFT);
    0
}

/// `ipt_do_table`: argument positions from the kernel's BTF (they changed in 5.16).
#[kprobe]
fn fw_ipt_do_table(ctx: ProbeContext) -> u32 {
    xt_enter(&ctx, fw_kind::IPT);
    0
}

/// `ip6t_do_table`, as `ipt_do_table`.
#[kprobe]
fn fw_ip6t_do_table(ctx: ProbeContext) -> u32 {
    xt_enter(&ctx, fw_kind::IP6T);
    0
}

#[inline(always)]
fn xt_enter(ctx: &ProbeContext, kind: u8) {
    // Each argument read at a constant position, then picked by value: an argument read at a
    // position from the config is a context access at a computed offset, which the verifier
    // refuses ("dereference of modified ctx ptr"); `black_box` keeps LLVM from turning the
    // pick back into one.
    let a: [u64; 3] = [
        core::hint::black_box(ctx.arg(0).unwrap_or(0)),
        core::hint::black_box(ctx.arg(1).unwrap_or(0)),
        core::hint::black_box(ctx.arg(2).unwrap_or(0)),
    ];
    let pick = |n: u32| match n {
        0 => a[0],
        1 => a[1],
        2 => a[2],
        _ => 0,
    };
    enter(pick(cfg!(fw.xt_arg_skb)), pick(cfg!(fw.xt_arg_table)), pick(cfg!(fw.xt_arg_state)), kind);
}

/// `nft_immediate_eval(const struct nft_expr *expr, struct nft_regs *regs, const struct
/// nft_pktinfo *pkt)`: the verdict it is about to set is in the expression.
#[kprobe]
fn fw_nft_immediate(ctx: ProbeContext) -> u32 {
    let expr: u64 = ctx.arg(0).unwrap_or(0);
    let dreg: u8 = get(expr, cfg!(fw.imm_dreg));
    if dreg != 0 {
        return 0;
    }
    let code: u32 = get(expr, cfg!(fw.imm_verdict));
    if code != NFT_JUMP && code != NFT_GOTO && code != NF_DROP {
        return 0;
    }
    let pkt: u64 = ctx.arg(2).unwrap_or(0);
    let skb: u64 = get(pkt, cfg!(fw.pkt_skb));
    let Some(s) = FW_SLOT.get_ptr_mut(0) else { return 0 };
    // SAFETY: as in `enter`.
    let s = unsafe { &mut *s };
    if s.skb != skb || s.kind != fw_kind::NFT {
        return 0;
    }
    if code == NF_DROP {
        find_rule(s, expr);
    } else if let Some(j) = s.jumps.get_mut(s.njumps as usize) {
        *j = get(expr, cfg!(fw.imm_chain));
        s.njumps += 1;
    }
    0
}

/// Which chain (the base chain or a jump target) holds the expression `expr`, and the handle
/// of its rule.
#[inline(never)]
fn find_rule(s: &mut FwSlot, expr: u64) {
    if cfg!(fw.chain_blob0) == u32::MAX {
        return;
    }
    let mut i = 0usize;
    while i <= FW_JUMPS {
        let chain = if i == 0 {
            s.obj
        } else if i <= s.njumps as usize {
            s.jumps.get(i - 1).copied().unwrap_or(0)
        } else {
            0
        };
        if chain != 0 {
            let mut g = 0;
            while g < 2 {
                let blob: u64 = get(chain, if g == 0 { cfg!(fw.chain_blob0) } else { cfg!(fw.chain_blob1) });
                let size: u64 = get(blob, cfg!(fw.blob_size));
                let data = blob + u64::from(cfg!(fw.blob_data));
                if blob != 0 && expr >= data && expr < data + size {
                    s.drop_chain = chain;
                    if cfg!(fw.rule_walk) != 0 {
                        s.handle = rule_handle(data, expr);
                    }
                    return;
                }
                g += 1;
            }
        }
        i += 1;
    }
}

/// The handle of the rule of the blob at `data` whose expressions include `expr`.
#[inline(always)]
fn rule_handle(data: u64, expr: u64) -> u64 {
    let mut p = data;
    let mut i = 0;
    while i < MAX_RULES {
        let h: u64 = get(p, 0);
        if h & 1 != 0 {
            return 0;
        }
        let end = p + 8 + ((h >> 1) & 0xfff);
        if expr < end {
            return (h >> 13) & ((1 << 42) - 1);
        }
        p = end;
        i += 1;
    }
    0
}

/// A `NETFILTER_DROP` drop of `skb`, whose flow key is `rc.flow_key`: count it under the table
/// and chain of the slot if the slot is this packet's.
#[inline(never)]
pub(crate) fn count_drop(skb: u64, rc: &RunCache) {
    let Some(s) = FW_SLOT.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot (see `enter`).
    let s = unsafe { &mut *s };
    if s.skb != skb || s.kind == 0 || s.head != get::<u64>(skb, cfg!(offsets.skb_head)) {
        return;
    }
    // One traversal, one drop: a later free of this address is another packet's.
    s.skb = 0;
    let Some(k) = FW_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU scratch slot, wholly rewritten here.
    let k = unsafe { &mut *k };
    if cfg!(flags) & pktloss_common::flag::FLOWS != 0 {
        key_copy(&raw mut k.flow, &raw const rc.flow_key);
    } else {
        zero::<_, 16>(&mut k.flow);
    }
    k.handle = s.handle;
    k.kind = s.kind;
    k.pf = s.pf;
    k.hook = s.hook;
    k.pad = 0;
    zero::<_, { pktloss_common::FW_TABLE_LEN / 4 }>(&mut k.table);
    zero::<_, { pktloss_common::FW_CHAIN_LEN / 4 }>(&mut k.chain);
    if s.kind == fw_kind::NFT {
        let chain = if s.drop_chain != 0 { s.drop_chain } else { s.obj };
        k.jumped = u8::from(chain != s.obj);
        let name: u64 = get(chain, cfg!(fw.chain_name));
        let table: u64 = get(chain, cfg!(fw.chain_table));
        let tname: u64 = get(table, cfg!(fw.table_name));
        // The table's family (an inet table sees IPv4 packets with pf = ipv4).
        if cfg!(fw.table_family) != u32::MAX {
            let w: u16 = get(table, cfg!(fw.table_family));
            k.pf = ((u32::from(w) >> cfg!(fw.table_family_shift)) & cfg!(fw.table_family_mask)) as u8;
        }
        // SAFETY: the helper checks the addresses and stops at the buffer's end.
        unsafe {
            let _ = bpf_probe_read_kernel_str_bytes(name as *const u8, &mut k.chain);
            let _ = bpf_probe_read_kernel_str_bytes(tname as *const u8, &mut k.table);
        }
    } else {
        k.jumped = 0;
        let off = cfg!(fw.xt_table_name);
        if off != u32::MAX {
            // SAFETY: as above; `xt_table.name` is a char[32].
            unsafe {
                let _ = bpf_probe_read_kernel_str_bytes((s.obj + u64::from(off)) as *const u8, &mut k.table);
            }
        }
    }
    count_in(&FW_DROPS, k, 1);
}

/// At the start of a flow run: if the packet is conntracked and its connection's original
/// tuple is not the packet's own (either way round), keep that tuple for the flow.
#[inline(never)]
pub(crate) fn record_nat<M: Mem>(skb: u64, key: &FlowKey) {
    let nfct: u64 = M::get(skb, cfg!(fw.skb_nfct)).unwrap_or(0);
    let ct = nfct & !7;
    if ct == 0 {
        return;
    }
    // The tuple is read into a per-CPU scratch slot: on the stack it would take the drop
    // path's combined stack past the verifier's 512 bytes.
    let Some(t) = NAT_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: the helper checks the source address and writes exactly the slot's size.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            t.cast(),
            size_of::<NatTuple>() as u32,
            (ct + u64::from(cfg!(fw.ct_tuple))) as *const core::ffi::c_void,
        )
    };
    if rc != 0 {
        return;
    }
    // SAFETY: per-CPU scratch slot, just written.
    let t = unsafe { &*t };
    if t.l3num == 0 {
        return;
    }
    // Ports (and for ICMP the id, type and code) are compared only for TCP, UDP, SCTP and
    // UDP-Lite, whose tuples hold the packet's own ports.
    let ports = matches!(key.l4proto, 6 | 17 | 132 | 136);
    let (sp, dp) = (u16::from_be(t.sport), u16::from_be(t.dport));
    let (ts, td, ks, kd) = (words(&t.saddr), words(&t.daddr), words(&key.saddr), words(&key.daddr));
    let forward = ts == ks && td == kd && (!ports || (sp == key.sport && dp == key.dport));
    let reply = ts == kd && td == ks && (!ports || (sp == key.dport && dp == key.sport));
    if forward || reply {
        return;
    }
    let _ = NAT_ORIG.insert(key, t, 0);
}

/// An address as two words (no `memcmp` in BPF).
#[inline(always)]
fn words(a: &[u8; 16]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        lo[i] = a[i];
        hi[i] = a[i + 8];
        i += 1;
    }
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}
