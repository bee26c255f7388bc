//! The frozen config that userspace writes before load, and the `cfg!` macro that reads it.

use core::ptr::addr_of;

use pktloss_common::Config;

/// Written by userspace before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
// SAFETY: `Config` is `#[repr(C)]` and holds only integers: all-zero bytes are a valid value.
static CONFIG: Config = unsafe { core::mem::zeroed() };

/// The frozen config as an opaque reference: LLVM cannot fold its (zero) initializer, since
/// userspace rewrites it before load, yet reads through the reference are plain loads from one
/// address it may keep in a register (the asm is pure, so calls share it), instead of a fresh
/// 64-bit map address and a volatile load for every field. The verifier still sees a read of
/// the frozen `.rodata` map at a constant offset, hence a known constant.
#[inline(always)]
pub(crate) fn config() -> &'static Config {
    let mut p = addr_of!(CONFIG) as u64;
    // SAFETY: an empty asm block that only hides where the address comes from (unlike
    // `black_box`, it keeps the address in a register instead of passing it through the stack).
    unsafe { core::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags)) };
    // SAFETY: `p` is the address of CONFIG.
    unsafe { &*(p as *const Config) }
}

/// One field of the config. The asm in `config` is pure, so the reads of one function share
/// the address: there is no need to pass the reference around.
///
/// `main.rs` declares this module first, with `#[macro_use]`, so the macro is in scope in every
/// other module.
macro_rules! cfg {
    ($($field:tt)+) => {
        $crate::config::config().$($field)+
    };
}
