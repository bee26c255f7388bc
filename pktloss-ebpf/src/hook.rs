//! Drop hooks: the `Hook` trait through which the drop path reads a drop's arguments, and the
//! reads of tracepoint arguments (`btf_arg`, `tp_field`).

use aya_ebpf::{
    EbpfContext as _,
    programs::{BtfTracePointContext, TracePointContext, tracing::StackIdContext},
};
use pktloss_common::REASON_NONE;

use crate::config::config;

/// A drop hook as the drop path sees it: the program context (for stack ids) and the drop's
/// arguments. The arguments are methods, not values, so that the `tp_btf` hook reads each one
/// from its context where it is used (a load from the tracepoint's argument array) instead of
/// holding it past the subprogram calls: BPF has four callee-saved registers, and each value
/// held past a call cost a stack slot with its stores and loads on every drop.
pub(crate) trait Hook: Copy {
    type Ctx: StackIdContext;
    fn ctx(&self) -> &Self::Ctx;
    fn skb(&self) -> u64;
    fn location(&self) -> u64;
    fn reason(&self) -> u32;
    fn rx_sk(&self) -> u64;

    /// The reason word of the flow key: the reason, or for the reason that says nothing
    /// (`NOT_SPECIFIED`, or none on a kernel without reasons) the low half of the location
    /// (see `Config::location_keyed_reason`).
    #[inline(always)]
    fn flow_reason(&self) -> u32 {
        let reason = self.reason();
        if reason == cfg!(location_keyed_reason) { self.location() as u32 } else { reason }
    }
}

/// `tp_btf/kfree_skb`: each argument read from the context when needed, at its position from
/// `CONFIG.kfree_btf`.
#[derive(Clone, Copy)]
pub(crate) struct BtfHook<'a>(pub(crate) &'a BtfTracePointContext);

impl Hook for BtfHook<'_> {
    type Ctx = BtfTracePointContext;

    #[inline(always)]
    fn ctx(&self) -> &Self::Ctx {
        self.0
    }

    #[inline(always)]
    fn skb(&self) -> u64 {
        btf_arg(self.0, config().kfree_btf.skb)
    }

    #[inline(always)]
    fn location(&self) -> u64 {
        btf_arg(self.0, config().kfree_btf.location)
    }

    #[inline(always)]
    fn reason(&self) -> u32 {
        let n = config().kfree_btf.reason;
        // Before 5.17 the tracepoint has no reason (a constant of the frozen config: the
        // verifier keeps one of the two paths).
        if n == u32::MAX { REASON_NONE } else { btf_arg(self.0, n) as u32 }
    }

    #[inline(always)]
    fn rx_sk(&self) -> u64 {
        btf_arg(self.0, config().kfree_btf.rx_sk)
    }
}

/// Hooks whose arguments are read once, at entry (the classic tracepoint reads them with a
/// helper; the kprobe has them in registers).
pub(crate) struct Args<'a, C> {
    pub(crate) ctx: &'a C,
    pub(crate) skb: u64,
    pub(crate) location: u64,
    pub(crate) reason: u32,
    pub(crate) rx_sk: u64,
}

impl<C> Clone for Args<'_, C> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Args<'_, C> {}

impl<C: StackIdContext> Hook for Args<'_, C> {
    type Ctx = C;

    #[inline(always)]
    fn ctx(&self) -> &C {
        self.ctx
    }

    #[inline(always)]
    fn skb(&self) -> u64 {
        self.skb
    }

    #[inline(always)]
    fn location(&self) -> u64 {
        self.location
    }

    #[inline(always)]
    fn reason(&self) -> u32 {
        self.reason
    }

    #[inline(always)]
    fn rx_sk(&self) -> u64 {
        self.rx_sk
    }
}

/// Read BTF argument `n` (0..=5) with a constant context offset for each arm, as the
/// verifier requires (it keeps only the arm of the frozen config's `n`); an absent argument
/// (`u32::MAX`) reads as 0. Each arm is one load written in assembly: LLVM neither keeps the
/// value past its use (see `Hook`) nor merges the arms into one load from a computed context
/// address, which the verifier rejects.
#[inline(always)]
fn btf_arg(ctx: &BtfTracePointContext, n: u32) -> u64 {
    let args = ctx.as_ptr() as u64;
    macro_rules! load {
        ($off:literal) => {{
            let v: u64;
            // SAFETY: a tp_btf context is the array of the tracepoint's arguments, one u64
            // each, and the config's positions come from the kernel's BTF of this tracepoint.
            unsafe {
                core::arch::asm!(
                    concat!("{0} = *(u64 *)({1} + ", $off, ")"),
                    out(reg) v,
                    in(reg) args,
                    options(readonly, nostack, preserves_flags)
                )
            };
            v
        }};
    }
    match n {
        0 => load!(0),
        1 => load!(8),
        2 => load!(16),
        3 => load!(24),
        4 => load!(32),
        5 => load!(40),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn tp_field<T: Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == u32::MAX || off > 512 {
        return T::default();
    }
    // SAFETY: the offset comes from the tracepoint's format file.
    unsafe { ctx.read_at::<T>(off as usize).unwrap_or_default() }
}
