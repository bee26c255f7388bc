//! How programs read kernel memory: the `Mem` trait, by helper calls (`Probe`) or by direct
//! loads (`Direct`).

use core::ptr::read_volatile;

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_comm as raw_comm, bpf_get_current_task_btf},
};
use pktloss_common::{COMM_LEN, flag};

/// Read a `T` at `base + off` in kernel memory with `bpf_probe_read_kernel` (packet bytes and
/// untyped pointers).
#[inline(always)]
fn rd<T>(base: u64, off: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T).ok() }
}

/// `Mem::peek` with `bpf_probe_read_kernel` (one call for words 0..3, two for 3..6).
#[inline(always)]
fn peek_helper<const AT: usize>(l3: u64) -> Option<[u64; 3]> {
    if AT == 0 {
        return rd(l3, 0);
    }
    let w: [u64; 2] = rd(l3, 8 * AT as u32)?;
    let x: u32 = rd(l3, 8 * AT as u32 + 16)?;
    Some([w[0], w[1], u64::from(x)])
}

/// How a program reads kernel struct fields.
pub(crate) trait Mem {
    /// Read a `T` at `base + off`; `None` (helper reads) or zero (direct loads) when `base` is
    /// null.
    fn get<T: Copy>(base: u64, off: u32) -> Option<T>;

    /// Read the three little-endian words at `l3 + 8 * AT`, a pointer into packet memory: at 0,
    /// an IPv4 header without options and the first four transport bytes; at 3, the rest of an
    /// IPv6 header and its first four transport bytes (the last word holds 4 bytes).
    #[inline(always)]
    fn peek<const AT: usize>(l3: u64) -> Option<[u64; 3]> {
        peek_helper::<AT>(l3)
    }

    /// Read the u32 at `l3 + off` in packet memory (0 when unreadable).
    #[inline(always)]
    fn word(l3: u64, off: u32) -> u32 {
        rd(l3, off).unwrap_or(0)
    }

    /// Copy the current task's name to `dst` (`COMM_LEN` bytes, 4-byte aligned).
    #[expect(
        clippy::ptr_as_ptr,
        reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
    )]
    #[inline(always)]
    fn comm(dst: *mut u8) {
        // SAFETY: `dst` has room for COMM_LEN bytes; the helper zeroes them when there is no
        // current task.
        unsafe { raw_comm(dst as *mut core::ffi::c_void, COMM_LEN as u32) };
    }
}

/// Helper-based reads: for classic tracepoints, whose pointers are untyped scalars.
pub(crate) struct Probe;

impl Mem for Probe {
    #[inline(always)]
    fn get<T: Copy>(base: u64, off: u32) -> Option<T> {
        rd(base, off)
    }
}

/// Direct loads: for `tp_btf` programs, whose arguments are BTF-typed pointers. The verifier
/// checks each load against the kernel's BTF (the offsets are constants from the frozen
/// `.rodata`) and the JIT turns it into a fault-tolerant load, far cheaper than a helper call.
pub(crate) struct Direct;

impl Mem for Direct {
    #[inline(always)]
    fn get<T: Copy>(base: u64, off: u32) -> Option<T> {
        // SAFETY: `base` is a BTF-typed kernel pointer and `off` a member offset from the
        // kernel's own BTF; the verifier rejects the program otherwise. A null walked pointer
        // needs no test: its loads are fault-tolerant and read as zero.
        Some(unsafe { core::ptr::read((base + u64::from(off)) as *const T) })
    }

    /// With `flag::UNTRUSTED_LOADS`, `skb->head` (a `char *` read through a BTF pointer) is
    /// read-only untrusted memory to the verifier: plain loads, each made fault-tolerant by the
    /// JIT, instead of a helper call. The flag is a constant of the frozen config, so the
    /// verifier only sees the branch that this kernel supports.
    #[expect(
        clippy::ptr_as_ptr,
        reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
    )]
    #[inline(always)]
    fn peek<const AT: usize>(l3: u64) -> Option<[u64; 3]> {
        if cfg!(flags) & flag::UNTRUSTED_LOADS == 0 {
            return peek_helper::<AT>(l3);
        }
        let p = (l3 as *const u64).wrapping_add(AT);
        // SAFETY: see above; a load that faults reads as zero instead of oopsing.
        Some(unsafe {
            [
                read_volatile(p),
                read_volatile(p.add(1)),
                if AT == 0 { read_volatile(p.add(2)) } else { u64::from(read_volatile(p.add(2) as *const u32)) },
            ]
        })
    }

    /// A plain load under `flag::UNTRUSTED_LOADS`, as for `peek`.
    #[inline(always)]
    fn word(l3: u64, off: u32) -> u32 {
        if cfg!(flags) & flag::UNTRUSTED_LOADS == 0 {
            return rd(l3, off).unwrap_or(0);
        }
        // SAFETY: as for `peek`.
        unsafe { read_volatile((l3 + u64::from(off)) as *const u32) }
    }

    /// Two direct loads from the BTF-typed current task (`bpf_get_current_task_btf` is inlined
    /// by the JIT) instead of the `bpf_get_current_comm` helper, which copies with
    /// `strscpy_pad`. The kernel keeps `comm` NUL-padded; userspace stops at the first NUL.
    /// Kernels before 5.11 lack that helper (`flag::TASK_BTF`): they use the copy.
    #[expect(
        clippy::ptr_as_ptr,
        reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
    )]
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "`dst` is `DropEvent::comm`, 4-byte aligned (offset 92 of an 8-byte aligned record)"
    )]
    #[inline(always)]
    fn comm(dst: *mut u8) {
        if cfg!(flags) & flag::TASK_BTF == 0 {
            // SAFETY: as in the default method.
            unsafe { raw_comm(dst as *mut core::ffi::c_void, COMM_LEN as u32) };
            return;
        }
        // SAFETY: the helper returns the current task, never null in a tracing program.
        let task = unsafe { bpf_get_current_task_btf() } as u64;
        let w: [u64; 2] = Self::get(task, cfg!(offsets.task_comm)).unwrap_or([0; 2]);
        let d = dst as *mut u32;
        // SAFETY: `dst` is 4-byte aligned with room for COMM_LEN (16) bytes.
        unsafe {
            core::ptr::write_volatile(d, w[0] as u32);
            core::ptr::write_volatile(d.add(1), (w[0] >> 32) as u32);
            core::ptr::write_volatile(d.add(2), w[1] as u32);
            core::ptr::write_volatile(d.add(3), (w[1] >> 32) as u32);
        }
    }
}
