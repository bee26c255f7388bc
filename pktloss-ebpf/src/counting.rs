//! Counter helpers: per-CPU stats, counting in hash maps, plain-key equality and zeroing.

use aya_ebpf::maps::{LruPerCpuHashMap, PerCpuHashMap};

use crate::maps::STATS;

#[inline(always)]
pub(crate) fn bump(idx: u32) {
    bump_by(idx, 1);
}

/// Add `n` to a per-CPU stat counter.
#[inline(always)]
pub(crate) fn bump_by(idx: u32, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += n };
    }
}

/// Zero a plain key of exactly `W` u32 words. Volatile stores keep LLVM from turning this into
/// a call to a `memset` subprogram.
#[expect(
    trivial_casts,
    clippy::ref_as_ptr,
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[inline(always)]
pub(crate) fn zero<T, const W: usize>(v: &mut T) {
    let w = v as *mut T as *mut u32;
    let mut i = 0;
    while i < W {
        // SAFETY: callers pass #[repr(C)] values of exactly W u32 words.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
        i += 1;
    }
}

#[inline(always)]
pub(crate) fn count_in<K>(map: &PerCpuHashMap<K, u64>, key: &K, n: u64) -> bool {
    if let Some(v) = map.get_ptr_mut(key) {
        // SAFETY: per-CPU value of this CPU.
        unsafe { *v += n };
        return true;
    }
    // BPF_NOEXIST: another CPU may have inserted it meanwhile; then increment ours.
    if map.insert(key, n, 1).is_ok() {
        return true;
    }
    if let Some(v) = map.get_ptr_mut(key) {
        // SAFETY: as above.
        unsafe { *v += n };
        return true;
    }
    false
}

/// Word-wise equality of two plain keys (no memcmp in BPF).
#[expect(
    trivial_casts,
    clippy::ref_as_ptr,
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[inline(always)]
pub(crate) fn same<T, const W: usize>(a: &T, b: &T) -> bool {
    // SAFETY: callers pass #[repr(C)] keys of exactly W u32 words without padding.
    let (a, b) = unsafe { (&*(a as *const T as *const [u32; W]), &*(b as *const T as *const [u32; W])) };
    let mut i = 0;
    while i < W {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Count in an LRU map; returns (counted, inserted a new key).
#[inline(always)]
pub(crate) fn count_in_lru<K>(map: &LruPerCpuHashMap<K, u64>, key: &K, n: u64) -> (bool, bool) {
    if let Some(v) = map.get_ptr_mut(key) {
        // SAFETY: per-CPU value of this CPU.
        unsafe { *v += n };
        return (true, false);
    }
    if map.insert(key, n, 1).is_ok() {
        return (true, true);
    }
    if let Some(v) = map.get_ptr_mut(key) {
        // SAFETY: as above.
        unsafe { *v += n };
        return (true, false);
    }
    (false, false)
}
