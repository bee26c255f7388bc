//! The common drop path: run-length counting of drops and flows, and the detail budget.

use core::ptr::{addr_of, addr_of_mut};

use pktloss_common::{DropKey, NetnsKey, RunCache, flag, stat};

use crate::{
    counting::{bump, bump_by, count_in, count_in_lru},
    detail::send_detail,
    flow::{Diff, Store, flow_key, same_raw_flow, set_raw_flow},
    hook::Hook,
    maps::{DROP_BYTES, DROPS, EPOCH, FLOWS, NETNS_DROPS, RUNS},
    mem::Mem,
};

/// The common drop path of every drop hook.
///
/// It runs on every drop, so only the checks that usually pass are written inline; what runs
/// when a run ends or a detail event is sent lives in subprograms (BPF-to-BPF calls), so the
/// per-drop code stays small and close together. Past each call, the arguments and the config
/// are read again rather than kept (see `Hook`).
#[inline(always)]
pub(crate) fn on_drop<H: Hook, M: Mem>(h: H) {
    let Some(rc) = RUNS.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot; this program does not nest on its own CPU, and the only other
    // writer (net_dev_queue) touches other fields.
    let rc = unsafe { &mut *rc };
    // A constant of the frozen config: without a filter the verifier drops this path.
    if cfg!(flags) & flag::FILTER != 0 && !crate::filter::cached_verdict::<H, M>(h, rc) {
        rc.filtered += 1;
        return;
    }
    rc.drops += 1;
    let (location, reason) = (h.location(), h.reason());
    // The stack id is always -1 here: compare location (one 64-bit word) and reason only.
    if rc.drop_pending != 0 && rc.drop_key.location == location && rc.drop_key.reason == reason {
        rc.drop_pending += 1;
    } else {
        new_drop_run(rc, location, reason);
    }
    let flags = cfg!(flags);
    // A constant of the frozen config: without it the verifier drops this path.
    if flags & flag::BYTES != 0 {
        let len: u32 = M::get(h.skb(), cfg!(offsets.skb_len)).unwrap_or(0);
        rc.drop_bytes_pending += u64::from(len);
    }
    if flags & (flag::FLOWS | flag::DETAIL | flag::FIREWALL) == 0 {
        return;
    }
    if flags & flag::FLOWS != 0 {
        if rc.flow_pending != 0 && same_raw_flow::<H, M>(h, rc) {
            rc.flow_pending += 1;
        } else {
            #[expect(
                clippy::ptr_as_ptr,
                reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
            )]
            let mut d = Diff { at: addr_of!(rc.flow_key) as *const u64, diff: 0 };
            flow_key::<H, M, _>(h, &mut d);
            if rc.flow_pending != 0 && d.diff == 0 {
                rc.flow_pending += 1;
            } else {
                new_flow_run::<H, M>(h, rc);
            }
        }
    }
    // A constant of the frozen config: without the firewall probes the verifier drops this.
    if cfg!(flags) & flag::FIREWALL != 0 && h.reason() == cfg!(fw.netfilter_drop_reason) {
        crate::firewall::count_drop(h.skb(), rc);
    }
    if cfg!(flags) & flag::DETAIL == 0 {
        return;
    }
    if !take_budget(&mut rc.budget_epoch, &mut rc.budget_used, rc.budget_lost) {
        rc.budget_lost += 1;
        return;
    }
    send_detail::<H, M>(h, rc);
}

/// Count the (reason, location) run that just ended and start one for this drop.
#[inline(never)]
fn new_drop_run(rc: &mut RunCache, location: u64, reason: u32) {
    if rc.drop_pending != 0 && !count_in(&DROPS, &rc.drop_key, rc.drop_pending) {
        bump_by(stat::DROP_KEY_FAILS, rc.drop_pending);
    }
    if cfg!(flags) & flag::BYTES != 0 && rc.drop_bytes_pending != 0 {
        // (A failure is already counted in DROP_KEY_FAILS: same key, same map size.)
        count_in(&DROP_BYTES, &rc.drop_key, rc.drop_bytes_pending);
        rc.drop_bytes_pending = 0;
    }
    rc.drop_key = DropKey { location, reason, stack_id: -1 };
    rc.drop_pending = 1;
}

/// Count the flow run that just ended and start one for this drop's flow.
#[expect(
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[inline(never)]
fn new_flow_run<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
    if rc.flow_pending != 0 {
        let (ok, inserted) = count_in_lru(&FLOWS, &rc.flow_key, rc.flow_pending);
        if !ok {
            bump_by(stat::FLOW_FAILS, rc.flow_pending);
        } else if inserted {
            bump(stat::FLOW_INSERTS);
        }
        end_ns_run(rc);
    }
    // The key was compared, not kept: decode again to store it.
    flow_key::<H, M, _>(h, &mut Store { at: addr_of_mut!(rc.flow_key) as *mut u64 });
    set_raw_flow::<H, M>(h, rc);
    rc.flow_drop_reason = h.reason();
    rc.flow_pending = 1;
    if cfg!(flags) & flag::NAT != 0 {
        crate::firewall::record_nat::<M>(h.skb(), &rc.flow_key);
    }
}

/// Add the flow run that just ended to the per-namespace run (same namespace, device and
/// reason), or count that run in `NETNS_DROPS` and start one with this flow run.
#[inline(always)]
fn end_ns_run(rc: &mut RunCache) {
    let (cookie, netns, ifindex, reason) =
        (rc.flow_key.netns_cookie, rc.flow_key.netns, rc.flow_key.ifindex, rc.flow_drop_reason);
    let k = &rc.ns_key;
    if rc.ns_pending != 0 && k.cookie == cookie && k.netns == netns && k.ifindex == ifindex && k.reason == reason {
        rc.ns_pending += rc.flow_pending;
        return;
    }
    if rc.ns_pending != 0 && !count_in(&NETNS_DROPS, &rc.ns_key, rc.ns_pending) {
        bump_by(stat::NETNS_FAILS, rc.ns_pending);
    }
    rc.ns_key = NetnsKey { cookie, netns, ifindex, reason, pad: 0 };
    rc.ns_pending = rc.flow_pending;
}

/// How often (in drops over budget, a power of two) a CPU whose budget is spent reads `EPOCH`
/// to see whether a new epoch gave it a fresh budget.
const EPOCH_CHECK_EVERY: u64 = 64;

/// Whether this CPU may still send a detail event in the current budget epoch.
///
/// During a flood nearly every drop is over budget, and reading `EPOCH` (a cache line of its
/// own, which userspace writes once a second) on each of them cost more than the rest of the
/// budget check: a CPU whose budget is spent looks at `EPOCH` only once every
/// `EPOCH_CHECK_EVERY` drops over budget (`budget_lost`), so it notices a new epoch at most
/// that many drops late.
#[inline(always)]
fn take_budget(budget_epoch: &mut u32, budget_used: &mut u32, budget_lost: u64) -> bool {
    let budget = cfg!(detail_budget_per_cpu);
    if budget == u32::MAX {
        return true;
    }
    if *budget_used >= budget && budget_lost % EPOCH_CHECK_EVERY != EPOCH_CHECK_EVERY - 1 {
        return false;
    }
    let epoch = match EPOCH.get_ptr(0) {
        // SAFETY: a valid array slot; userspace only ever stores whole u32 values in it.
        Some(p) => unsafe { *p },
        None => return false,
    };
    if *budget_epoch != epoch {
        *budget_epoch = epoch;
        *budget_used = 0;
    }
    if *budget_used < budget {
        *budget_used += 1;
        true
    } else {
        false
    }
}
