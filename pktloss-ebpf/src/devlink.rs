//! Hardware drops: `devlink:devlink_trap_report`, run once per packet a device traps or drops
//! and reports to devlink (never per packet the kernel itself drops or passes), counted per
//! (device, trap, group, input port).

use aya_ebpf::{
    EbpfContext as _,
    helpers::bpf_probe_read_kernel_str_bytes,
    macros::{map, tracepoint},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::TracePointContext,
};
use pktloss_common::TrapKey;

use crate::{
    counting::{count_in, zero},
    hook::tp_field,
};

/// Hardware traps per (device, trap, group, input port) (`devlink:devlink_trap_report`).
#[map]
pub(crate) static TRAPS: PerCpuHashMap<TrapKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

/// Scratch key of the trap program (128 bytes: off the 512-byte stack).
#[map]
pub(crate) static TRAP_SCRATCH: PerCpuArray<TrapKey> = PerCpuArray::with_max_entries(1, 0);

/// Copy the `__data_loc` string at `off` of the record (offset in the low 16 bits of the
/// location word) into `out`, NUL-terminated and cut to its length.
#[inline(always)]
fn data_loc(ctx: &TracePointContext, off: u32, out: &mut [u8]) {
    if off == u32::MAX {
        return;
    }
    let loc: u32 = tp_field(ctx, off);
    let at = (loc & 0xffff) as usize;
    if at == 0 || at > 4096 {
        return;
    }
    // SAFETY: the record is the tracepoint's, `at` is within it (the kernel wrote the location);
    // the helper checks the address and stops at the buffer's end.
    unsafe {
        let _ = bpf_probe_read_kernel_str_bytes(ctx.as_ptr().cast::<u8>().add(at), out);
    }
}

/// Classic `devlink:devlink_trap_report`.
#[tracepoint]
fn devlink_trap_report(ctx: TracePointContext) -> i32 {
    let Some(key) = TRAP_SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU scratch slot, wholly rewritten here.
    let key = unsafe { &mut *key };
    zero::<_, { size_of::<TrapKey>() / 4 }>(key);
    data_loc(&ctx, cfg!(trap_tp.bus_name), &mut key.bus);
    data_loc(&ctx, cfg!(trap_tp.dev_name), &mut key.dev);
    data_loc(&ctx, cfg!(trap_tp.trap_name), &mut key.trap);
    data_loc(&ctx, cfg!(trap_tp.trap_group_name), &mut key.group);
    let input = cfg!(trap_tp.input_dev_name);
    if input != u32::MAX {
        key.input = tp_field(&ctx, input);
    }
    count_in(&TRAPS, key, 1);
    0
}
