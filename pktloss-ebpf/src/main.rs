//! pktloss kernel programs: exact drop counters, sampled drop detail, TX and retransmit counters.
//!
//! Every struct offset comes from userspace (`CONFIG`), resolved from the running kernel's BTF;
//! nothing here knows the layout of a kernel struct.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

use core::ptr::{addr_of, addr_of_mut, read_volatile};

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{
            bpf_get_current_comm as raw_comm, bpf_get_current_task_btf, bpf_get_smp_processor_id, bpf_ktime_get_ns,
            bpf_probe_read_kernel as raw_read,
        },
    },
    macros::{btf_tracepoint, kprobe, map, tracepoint},
    maps::{Array, LruPerCpuHashMap, PerCpuArray, PerCpuHashMap, RingBuf, StackTrace},
    programs::{BtfTracePointContext, ProbeContext, TracePointContext, tracing::StackIdContext},
};
use pktloss_common::{
    COMM_LEN, Config, DevKey, DropEvent, DropKey, FlowKey, RAW_MASK0, RAW_MASK1, REASON_NONE, REASON_TCP_DROP,
    RunCache, data_start, flag, stat,
};

/// Written by userspace before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
static CONFIG: Config = unsafe { core::mem::zeroed() };

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Exact drop counts per (reason, location, stack id).
#[map]
static DROPS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

/// Exact drop counts per flow, bounded; evictions are derived from `FLOW_INSERTS`.
#[map]
static FLOWS: LruPerCpuHashMap<FlowKey, u64> = LruPerCpuHashMap::with_max_entries(8192, 0);

/// Transmitted packets per device (`net:net_dev_queue`).
#[map]
static TX: PerCpuHashMap<DevKey, u64> = PerCpuHashMap::with_max_entries(1024, 0);

/// Retransmissions per flow (`tcp:tcp_retransmit_skb`).
#[map]
static RETRANS: LruPerCpuHashMap<FlowKey, u64> = LruPerCpuHashMap::with_max_entries(4096, 0);

#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(4096, 0);

/// Detail budget epoch, advanced by userspace once a second (see `RunCache`).
#[map]
static EPOCH: Array<u32> = Array::with_max_entries(1, 0);

/// Sampled per-drop detail; size set by userspace.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Run-length caches in front of DROPS, FLOWS and TX (see `RunCache`).
#[map]
static RUNS: PerCpuArray<RunCache> = PerCpuArray::with_max_entries(1, 0);

/// Scratch flow key of the retransmission program.
#[map]
static SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

/// The frozen config as an opaque reference: LLVM cannot fold its (zero) initializer, since
/// userspace rewrites it before load, yet reads through the reference are plain loads from one
/// address it may keep in a register (the asm is pure, so calls share it), instead of a fresh
/// 64-bit map address and a volatile load for every field. The verifier still sees a read of
/// the frozen `.rodata` map at a constant offset, hence a known constant.
#[inline(always)]
fn config() -> &'static Config {
    let mut p = addr_of!(CONFIG) as u64;
    // SAFETY: an empty asm block that only hides where the address comes from (unlike
    // `black_box`, it keeps the address in a register instead of passing it through the stack).
    unsafe { core::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags)) };
    // SAFETY: `p` is the address of CONFIG.
    unsafe { &*(p as *const Config) }
}

/// One field of the config. The asm in `config` is pure, so the reads of one function share
/// the address: there is no need to pass the reference around.
macro_rules! cfg {
    ($($field:tt)+) => {
        config().$($field)+
    };
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const UNSET_HEADER: u16 = 0xffff;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
fn bump(idx: u32) {
    bump_by(idx, 1);
}

/// Add `n` to a per-CPU stat counter.
#[inline(always)]
fn bump_by(idx: u32, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += n };
    }
}

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
trait Mem {
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
    #[inline(always)]
    fn comm(dst: *mut u8) {
        // SAFETY: `dst` has room for COMM_LEN bytes; the helper zeroes them when there is no
        // current task.
        unsafe { raw_comm(dst as *mut core::ffi::c_void, COMM_LEN as u32) };
    }
}

/// Helper-based reads: for classic tracepoints, whose pointers are untyped scalars.
struct Probe;

impl Mem for Probe {
    #[inline(always)]
    fn get<T: Copy>(base: u64, off: u32) -> Option<T> {
        rd(base, off)
    }
}

/// Direct loads: for tp_btf programs, whose arguments are BTF-typed pointers. The verifier
/// checks each load against the kernel's BTF (the offsets are constants from the frozen
/// `.rodata`) and the JIT turns it into a fault-tolerant load, far cheaper than a helper call.
struct Direct;

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

/// Inode of the netns of a `net_device`.
#[inline(always)]
fn dev_netns<M: Mem>(dev: u64) -> u32 {
    let net: u64 = M::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
    M::get(net, cfg!(offsets.net_inum)).unwrap_or(0)
}

/// Inode of the netns of a `sock`.
#[inline(always)]
fn sock_netns<M: Mem>(sk: u64) -> u32 {
    let net: u64 = M::get(sk, cfg!(offsets.sock_net)).unwrap_or(0);
    M::get(net, cfg!(offsets.net_inum)).unwrap_or(0)
}

/// Receives the words of a flow key as `flow_key` computes them. A [`FlowKey`] is six
/// native-endian u64 words and a trailing u32 (see `FlowKey` for the layout): saddr (2 words),
/// daddr (2), `netns | ifindex << 32`, `reason | ports << 32`, and
/// `family | l4proto << 8 | ethertype << 16`.
///
/// Words are compared or stored as soon as they are known, a whole word at a time: no key is
/// held in registers (BPF has few, so LLVM spilled it to the stack on every drop), and no byte
/// or half-word stores, which would stall store forwarding when the run comparison loads the
/// words back.
trait KeySink {
    /// Word `i` (0..6) of the key.
    fn word(&mut self, i: usize, v: u64);
    /// The trailing u32.
    fn proto(&mut self, v: u32);
}

/// Compares a key with the one at `at` (an 8-byte aligned `FlowKey`): `diff` stays 0 while
/// every word matches.
struct Diff {
    at: *const u64,
    diff: u64,
}

impl KeySink for Diff {
    #[inline(always)]
    fn word(&mut self, i: usize, v: u64) {
        // SAFETY: `at` is an 8-byte aligned FlowKey (52 bytes: six u64 and a u32).
        self.diff |= v ^ unsafe { *self.at.add(i) };
    }

    #[inline(always)]
    fn proto(&mut self, v: u32) {
        // SAFETY: as above.
        self.diff |= u64::from(v ^ unsafe { *(self.at.add(6) as *const u32) });
    }
}

/// Stores a key at `at` (an 8-byte aligned `FlowKey`). Volatile stores keep LLVM from calling
/// a `memcpy` subprogram.
struct Store {
    at: *mut u64,
}

impl KeySink for Store {
    #[inline(always)]
    fn word(&mut self, i: usize, v: u64) {
        // SAFETY: as for `Diff`.
        unsafe { core::ptr::write_volatile(self.at.add(i), v) };
    }

    #[inline(always)]
    fn proto(&mut self, v: u32) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.at.add(6) as *mut u32, v) };
    }
}

/// Copy the flow key at `src` to `dst` (both 8-byte aligned).
#[inline(always)]
fn key_copy(dst: *mut FlowKey, src: *const FlowKey) {
    let (d, s) = (dst as *mut u64, src as *const u64);
    let mut i = 0;
    while i < 6 {
        // SAFETY: both are 8-byte aligned FlowKeys.
        unsafe { core::ptr::write_volatile(d.add(i), read_volatile(s.add(i))) };
        i += 1;
    }
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(d.add(6) as *mut u32, read_volatile(s.add(6) as *const u32)) };
}

/// Where the network header of `skb` is: `head`, the header's offset from it (`UNSET_HEADER`
/// when unknown) and the tail offset.
#[inline(always)]
fn l3_of<M: Mem>(skb: u64) -> (u64, u16, u32) {
    let head: u64 = M::get(skb, cfg!(offsets.skb_head)).unwrap_or(0);
    let nh: u16 = M::get(skb, cfg!(offsets.skb_network_header)).unwrap_or(UNSET_HEADER);
    let tail: u32 = M::get(skb, cfg!(offsets.skb_tail)).unwrap_or(0);
    (head, nh, tail)
}

/// The last word of a flow key: family, IP protocol, ethertype.
#[inline(always)]
fn proto_word(family: u8, l4: u8, ethertype: u16) -> u32 {
    u32::from(family) | u32::from(l4) << 8 | u32::from(ethertype) << 16
}

/// The ports half-word pair of a flow key from the first four transport bytes as loaded
/// (little-endian).
#[inline(always)]
fn ports_word(l4: u8, raw: u32) -> u32 {
    match l4 {
        // Big-endian source and destination ports, stored host-endian.
        6 | 17 | 132 | 136 => u32::from(u16::from_be(raw as u16)) | u32::from(u16::from_be((raw >> 16) as u16)) << 16,
        // ICMP type and code.
        1 | 58 => (raw & 0xff) | ((raw >> 8) & 0xff) << 16,
        _ => 0,
    }
}

/// Word 4 of the flow key of the drop: `netns | ifindex << 32`. The namespace is the device's,
/// or without a device the socket's (a null device reads as ifindex 0 in namespace 0).
#[inline(always)]
fn dev_word<H: Hook, M: Mem>(h: H) -> u64 {
    let skb = h.skb();
    let dev: u64 = M::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0);
    let ifindex: u32 = M::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    let mut netns = dev_netns::<M>(dev);
    if netns == 0 {
        let rx_sk = h.rx_sk();
        let sk: u64 = if rx_sk != 0 { rx_sk } else { M::get(skb, cfg!(offsets.skb_sk)).unwrap_or(0) };
        if sk != 0 {
            netns = sock_netns::<M>(sk);
        }
    }
    u64::from(netns) | u64::from(ifindex) << 32
}

/// The first three words of a plain IPv4 header of `skb` (version 4, no options, at least 24
/// bytes from the network header to the tail), or `None`.
#[inline(always)]
fn plain_v4<M: Mem>(skb: u64) -> Option<[u64; 3]> {
    let (head, nh, tail) = l3_of::<M>(skb);
    if head == 0 || nh == UNSET_HEADER || u32::from(nh) >= tail || tail - u32::from(nh) < 24 {
        return None;
    }
    let w = M::peek::<0>(head + u64::from(nh))?;
    if w[0] & 0xff != 0x45 {
        return None;
    }
    Some(w)
}

/// The raw signature's `reason | skb->protocol << 32` of this drop (`RunCache::raw_misc`).
#[inline(always)]
fn raw_misc<H: Hook, M: Mem>(h: H) -> u64 {
    let proto_be: u16 = M::get(h.skb(), cfg!(offsets.skb_protocol)).unwrap_or(0);
    u64::from(h.flow_reason()) | u64::from(proto_be) << 32
}

/// The header words `w` of a plain IPv4 header masked as in a raw signature (`RunCache::raw`).
#[inline(always)]
fn raw_words(w: [u64; 3], mask2: u64) -> [u64; 3] {
    [w[0] & RAW_MASK0, w[1] & RAW_MASK1, w[2] & mask2]
}

/// Whether this drop continues the flow run of `rc` by its raw signature (see
/// `RunCache::raw`): it has the same device word, reason and `skb->protocol`, and a plain IPv4
/// header equal to the run's in every bit the flow key is made of. Equal signatures mean
/// equal keys (the key of a plain IPv4 header depends only on those bits), so the header is
/// not decoded. `false` means only "not known to be the same".
#[inline(always)]
fn same_raw_flow<H: Hook, M: Mem>(h: H, rc: &RunCache) -> bool {
    let mask2 = rc.raw_mask2;
    if mask2 == 0 {
        return false;
    }
    let mut diff = (dev_word::<H, M>(h) ^ rc.raw_dev) | (raw_misc::<H, M>(h) ^ rc.raw_misc);
    let Some(w) = plain_v4::<M>(h.skb()) else { return false };
    let w = raw_words(w, mask2);
    diff |= (w[0] ^ rc.raw[0]) | (w[1] ^ rc.raw[1]) | (w[2] ^ rc.raw[2]);
    diff == 0
}

/// Give the flow run just started in `rc` the raw signature of this drop, if its header is
/// plain IPv4 (no signature otherwise: `raw_mask2` = 0).
#[inline(always)]
fn set_raw_flow<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
    rc.raw_mask2 = 0;
    let Some(w) = plain_v4::<M>(h.skb()) else { return };
    // The transport bytes the key keeps (see `ports_word`), none in a non-first fragment.
    let ports: u64 = if w[0] & RAW_MASK0 & !0xff != 0 {
        0
    } else {
        match (w[1] >> 8) as u8 {
            6 | 17 | 132 | 136 => 0xffff_ffff,
            1 | 58 => 0xffff,
            _ => 0,
        }
    };
    let mask2 = 0xffff_ffff | ports << 32;
    rc.raw = raw_words(w, mask2);
    rc.raw_dev = dev_word::<H, M>(h);
    rc.raw_misc = raw_misc::<H, M>(h);
    rc.raw_mask2 = mask2;
}

/// The flow key of `skb` (device, namespace, IP addresses, protocol, ports).
///
/// It runs on every drop, so it is written for the code LLVM makes of it: each word goes to
/// `out` as soon as it is known, one straight path with no early return, and no helper call on
/// the paths the verifier keeps for this kernel. (Returning early with a half-built key made
/// LLVM copy the key to the stack on every path; a helper call made it spill everything live
/// across it.)
#[inline(always)]
fn flow_key<H: Hook, M: Mem, S: KeySink>(h: H, out: &mut S) {
    let skb = h.skb();
    out.word(4, dev_word::<H, M>(h));
    let proto_be: u16 = M::get(skb, cfg!(offsets.skb_protocol)).unwrap_or(0);
    let ethertype = u16::from_be(proto_be);
    let (head, nh, tail) = l3_of::<M>(skb);
    let (mut family, mut l4, mut ports) = (0u8, 0u8, 0u32);
    if head != 0 && nh != UNSET_HEADER && u32::from(nh) < tail {
        let l3 = head + u64::from(nh);
        let avail = tail - u32::from(nh);
        // Bytes past `avail` are ignored (the head buffer always extends past `tail`, into
        // skb_shared_info, so the reads themselves are safe).
        if let Some(w) = M::peek::<0>(l3) {
            let version = (w[0] as u8) >> 4;
            if version == 4 && avail >= 20 {
                family = 4;
                l4 = (w[1] >> 8) as u8;
                let frag_off = u16::from_be((w[0] >> 48) as u16) & 0x1fff;
                let ihl = u32::from(w[0] as u8 & 0x0f) * 4;
                if frag_off == 0 && avail >= ihl + 4 {
                    let raw = if ihl == 20 { (w[2] >> 32) as u32 } else { M::word(l3, ihl) };
                    ports = ports_word(l4, raw);
                }
                out.word(0, w[1] >> 32);
                out.word(1, 0);
                out.word(2, w[2] & 0xffff_ffff);
                out.word(3, 0);
            } else if version == 6 && avail >= 40 {
                if let Some(x) = M::peek::<3>(l3) {
                    family = 6;
                    l4 = (w[0] >> 48) as u8;
                    if avail >= 44 {
                        ports = ports_word(l4, x[2] as u32);
                    }
                    out.word(0, w[1]);
                    out.word(1, w[2]);
                    out.word(2, x[0]);
                    out.word(3, x[1]);
                }
            }
        }
    }
    if family == 0 {
        out.word(0, 0);
        out.word(1, 0);
        out.word(2, 0);
        out.word(3, 0);
    }
    out.word(5, u64::from(h.flow_reason()) | u64::from(ports) << 32);
    out.proto(proto_word(family, l4, ethertype));
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

/// Zero a plain key of exactly `W` u32 words. Volatile stores keep LLVM from turning this into
/// a call to a `memset` subprogram.
#[inline(always)]
fn zero<T, const W: usize>(v: &mut T) {
    let w = v as *mut T as *mut u32;
    let mut i = 0;
    while i < W {
        // SAFETY: callers pass #[repr(C)] values of exactly W u32 words.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
        i += 1;
    }
}

#[inline(always)]
fn count_in<K>(map: &PerCpuHashMap<K, u64>, key: &K, n: u64) -> bool {
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
#[inline(always)]
fn same<T, const W: usize>(a: &T, b: &T) -> bool {
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
fn count_in_lru<K>(map: &LruPerCpuHashMap<K, u64>, key: &K, n: u64) -> (bool, bool) {
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

/// A drop hook as the drop path sees it: the program context (for stack ids) and the drop's
/// arguments. The arguments are methods, not values, so that the tp_btf hook reads each one
/// from its context where it is used (a load from the tracepoint's argument array) instead of
/// holding it past the subprogram calls: BPF has four callee-saved registers, and each value
/// held past a call cost a stack slot with its stores and loads on every drop.
trait Hook: Copy {
    type Ctx: StackIdContext;
    fn ctx(&self) -> &Self::Ctx;
    fn skb(&self) -> u64;
    fn location(&self) -> u64;
    fn reason(&self) -> u32;
    fn rx_sk(&self) -> u64;

    /// The reason word of the flow key: the reason, or on a kernel without reasons the low
    /// half of the location (`flag::NO_REASONS`, a constant: the verifier keeps one path).
    #[inline(always)]
    fn flow_reason(&self) -> u32 {
        let reason = self.reason();
        if cfg!(flags) & flag::NO_REASONS != 0 && reason == REASON_NONE { self.location() as u32 } else { reason }
    }
}

/// `tp_btf/kfree_skb`: each argument read from the context when needed, at its position from
/// `CONFIG.kfree_btf`.
#[derive(Clone, Copy)]
struct BtfHook<'a>(&'a BtfTracePointContext);

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
struct Args<'a, C> {
    ctx: &'a C,
    skb: u64,
    location: u64,
    reason: u32,
    rx_sk: u64,
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

/// The common drop path of every drop hook.
///
/// It runs on every drop, so only the checks that usually pass are written inline; what runs
/// when a run ends or a detail event is sent lives in subprograms (BPF-to-BPF calls), so the
/// per-drop code stays small and close together. Past each call, the arguments and the config
/// are read again rather than kept (see `Hook`).
#[inline(always)]
fn on_drop<H: Hook, M: Mem>(h: H) {
    let Some(rc) = RUNS.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot; this program does not nest on its own CPU, and the only other
    // writer (net_dev_queue) touches other fields.
    let rc = unsafe { &mut *rc };
    rc.drops += 1;
    let (location, reason) = (h.location(), h.reason());
    // The stack id is always -1 here: compare location (one 64-bit word) and reason only.
    if rc.drop_pending != 0 && rc.drop_key.location == location && rc.drop_key.reason == reason {
        rc.drop_pending += 1;
    } else {
        new_drop_run(rc, location, reason);
    }
    let flags = cfg!(flags);
    if flags & (flag::FLOWS | flag::DETAIL) == 0 {
        return;
    }
    if flags & flag::FLOWS != 0 {
        if rc.flow_pending != 0 && same_raw_flow::<H, M>(h, rc) {
            rc.flow_pending += 1;
        } else {
            let mut d = Diff { at: addr_of!(rc.flow_key) as *const u64, diff: 0 };
            flow_key::<H, M, _>(h, &mut d);
            if rc.flow_pending != 0 && d.diff == 0 {
                rc.flow_pending += 1;
            } else {
                new_flow_run::<H, M>(h, rc);
            }
        }
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
    rc.drop_key = DropKey { location, reason, stack_id: -1 };
    rc.drop_pending = 1;
}

/// Count the flow run that just ended and start one for this drop's flow.
#[inline(never)]
fn new_flow_run<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
    if rc.flow_pending != 0 {
        let (ok, inserted) = count_in_lru(&FLOWS, &rc.flow_key, rc.flow_pending);
        if !ok {
            bump_by(stat::FLOW_FAILS, rc.flow_pending);
        } else if inserted {
            bump(stat::FLOW_INSERTS);
        }
    }
    // The key was compared, not kept: decode again to store it.
    flow_key::<H, M, _>(h, &mut Store { at: addr_of_mut!(rc.flow_key) as *mut u64 });
    set_raw_flow::<H, M>(h, rc);
    rc.flow_pending = 1;
}

/// Send this drop's detail event (within budget). The drop's reason and location are in
/// `rc.drop_key`, and, with flow counts on, its flow key in `rc.flow_key`.
#[inline(never)]
fn send_detail<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
    let (flags, skb, rx_sk) = (cfg!(flags), h.skb(), h.rx_sk());
    let location = rc.drop_key.location;
    let flows = flags & flag::FLOWS != 0;
    // Unwinding costs about a microsecond: only for the sampled events.
    let mut stack_id = -1i32;
    if flags & flag::STACKS != 0 {
        match h.ctx().get_stackid(&STACKS, 0) {
            Ok(id) => stack_id = id as i32,
            Err(_) => bump(stat::STACK_FAILS),
        }
    }
    // The record holds the header and `snaplen` packet bytes; the size is a constant of the
    // frozen config, as the verifier requires.
    let size = cfg!(event_bytes);
    let Some(mut entry) = EVENTS.reserve_bytes(size as usize, 0) else {
        bump(stat::DETAIL_LOST_RINGBUF);
        return;
    };
    let ev = entry.as_mut_ptr() as *mut DropEvent;
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: `ev` points at a reserved ring-buffer record of `size` bytes: the DropEvent
    // header plus `snaplen` bytes of `data`, the only part of `data` written. Every header field
    // is written before submit.
    unsafe {
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).location = location;
        // With flow counts on, the run cache holds this drop's key.
        if flows {
            key_copy(addr_of_mut!((*ev).flow), addr_of!(rc.flow_key));
        } else {
            flow_key::<H, M, _>(h, &mut Store { at: addr_of_mut!((*ev).flow) as *mut u64 });
        }
        (*ev).stack_id = stack_id;
        (*ev).tid = pid_tgid as u32;
        (*ev).pid = (pid_tgid >> 32) as u32;
        (*ev).cpu = bpf_get_smp_processor_id();
        (*ev).skb_len = M::get(skb, cfg!(offsets.skb_len)).unwrap_or(0);
        (*ev).has_rx_sk = u8::from(rx_sk != 0);
        M::comm(addr_of_mut!((*ev).comm) as *mut u8);
        (*ev).cap_len = 0;
        (*ev).data_start = data_start::NONE;
        let (head, nh, tail) = l3_of::<M>(skb);
        // A network header at or past the tail is not one: capture from `data` instead.
        let nh = if u32::from(nh) >= tail { UNSET_HEADER } else { nh };
        if flags & flag::PACKET_BYTES != 0 && head != 0 {
            let (start, kind) = if nh != UNSET_HEADER {
                (u32::from(nh), data_start::NETWORK)
            } else {
                let data: u64 = M::get(skb, cfg!(offsets.skb_data)).unwrap_or(head);
                (data.wrapping_sub(head) as u32, data_start::DATA)
            };
            if tail > start {
                let n = at_most(u64::from(tail - start), u64::from(cfg!(snaplen))) as u32;
                let dst = addr_of!((*ev).data) as *mut core::ffi::c_void;
                let src = (head + u64::from(start)) as *const core::ffi::c_void;
                if n > 0 && raw_read(dst, n, src) == 0 {
                    (*ev).cap_len = n as u16;
                    (*ev).data_start = kind;
                }
            }
        }
    }
    // The reader polls on its own; wake it only when it fell behind (more than `wakeup_fill`
    // bytes waiting), checked once per `check_bytes` this CPU produced. A wakeup is an
    // interrupt on this CPU; one per event would cost more than the event.
    rc.ring_bytes += size + 8;
    let mut wake = BPF_RB_NO_WAKEUP;
    if rc.ring_bytes >= cfg!(check_bytes) {
        rc.ring_bytes = 0;
        if EVENTS.query(BPF_RB_AVAIL_DATA) >= u64::from(cfg!(wakeup_fill)) {
            wake = BPF_RB_FORCE_WAKEUP;
        }
    }
    entry.submit(wake);
    rc.detail_sent += 1;
}

/// `min(n, max)` written so that every verifier can follow it: one compare of `n` with the
/// register holding `max` (for the callers a known constant of the frozen config) and a move,
/// so that `n <= max` holds on both paths. LLVM's own clamps (with a mask and a second clamp to
/// `MAX_SNAPLEN`) came out in an order where the 6.1 verifier walked a path it could not see
/// was impossible (`umin=256,umax=127`) and rejected the copy.
#[inline(always)]
fn at_most(n: u64, max: u64) -> u64 {
    let mut n = n;
    // SAFETY: register arithmetic only.
    unsafe {
        core::arch::asm!(
            "if {n} <= {max} goto +1",
            "{n} = {max}",
            n = inout(reg) n,
            max = in(reg) max,
            options(pure, nomem, nostack)
        )
    };
    n
}

/// `tp_btf/kfree_skb`: arguments come typed from BTF; positions from `CONFIG.kfree_btf`.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_btf(ctx: BtfTracePointContext) -> i32 {
    on_drop::<_, Direct>(BtfHook(&ctx));
    0
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

/// Classic `skb:kfree_skb` tracepoint; field offsets from the tracefs format file.
#[tracepoint]
pub fn kfree_skb_tp(ctx: TracePointContext) -> i32 {
    let skb: u64 = tp_field(&ctx, cfg!(kfree_tp.skbaddr));
    let location: u64 = tp_field(&ctx, cfg!(kfree_tp.location));
    let reason: u32 = tp_field(&ctx, cfg!(kfree_tp.reason));
    let rx_sk: u64 = tp_field(&ctx, cfg!(kfree_tp.rx_sk));
    // Before 5.17 there is no reason field.
    let reason = if cfg!(kfree_tp.reason) == u32::MAX { REASON_NONE } else { reason };
    on_drop::<_, Probe>(Args { ctx: &ctx, skb, location, reason, rx_sk });
    0
}

#[inline(always)]
fn tp_field<T: Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == u32::MAX || off > 512 {
        return T::default();
    }
    // SAFETY: the offset comes from the tracepoint's format file.
    unsafe { ctx.read_at::<T>(off as usize).unwrap_or_default() }
}

/// `tcp_drop()` on kernels before 5.19 (needs kprobes); arguments (sk, skb).
#[kprobe]
pub fn tcp_drop(ctx: ProbeContext) -> u32 {
    bump(stat::TCP_DROP_CALLS);
    let skb: u64 = ctx.arg(1).unwrap_or(0);
    let sk: u64 = ctx.arg(0).unwrap_or(0);
    // The caller's return address is the most useful location we have.
    aya_log_ebpf::debug!(&ctx, "tcp_drop skb={:x}", skb);
    on_drop::<_, Probe>(Args { ctx: &ctx, skb, location: 0, reason: REASON_TCP_DROP, rx_sk: sk });
    0
}

#[inline(always)]
fn count_tx<M: Mem>(skb: u64) {
    let Some(rc) = RUNS.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot; only this program touches the dev_* fields and tx_packets.
    let rc = unsafe { &mut *rc };
    rc.tx_packets += 1;
    let dev: u64 = M::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0);
    if dev == 0 {
        return;
    }
    let ifindex: u32 = M::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    let net: u64 = M::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
    // Same device, same index, same namespace as the run: no need to resolve the key. (The
    // index and namespace guard against a freed device whose memory was reused, or a device
    // moved to another namespace.)
    if rc.dev_pending != 0 && rc.dev_ptr == dev && rc.dev_net_ptr == net && rc.dev_key.ifindex == ifindex {
        rc.dev_pending += 1;
        return;
    }
    let key = DevKey { ifindex, netns: M::get(net, cfg!(offsets.net_inum)).unwrap_or(0) };
    rc.dev_ptr = dev;
    rc.dev_net_ptr = net;
    if rc.dev_pending != 0 && same::<_, 2>(&rc.dev_key, &key) {
        rc.dev_pending += 1;
        return;
    }
    if rc.dev_pending != 0 && !count_in(&TX, &rc.dev_key, rc.dev_pending) {
        bump_by(stat::DEV_FAILS, rc.dev_pending);
    }
    rc.dev_key = key;
    rc.dev_pending = 1;
}

/// `tp_btf/net_dev_queue`: per-device transmitted packets.
#[btf_tracepoint(function = "net_dev_queue")]
pub fn net_dev_queue_btf(ctx: BtfTracePointContext) -> i32 {
    count_tx::<Direct>(ctx.arg(0));
    0
}

/// Classic `net:net_dev_queue`: `skbaddr` is at offset 8 on every kernel that has it.
#[tracepoint]
pub fn net_dev_queue_tp(ctx: TracePointContext) -> i32 {
    count_tx::<Probe>(tp_field(&ctx, 8));
    0
}

/// Classic `tcp:tcp_retransmit_skb`: retransmissions per flow and netns.
#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> i32 {
    bump(stat::RETRANSMITS);
    let Some(key) = SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU scratch slot, reinitialised here.
    let key = unsafe { &mut *key };
    zero::<_, 13>(key);
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
    key.netns = sock_netns::<Probe>(sk);
    let (_, inserted) = count_in_lru(&RETRANS, key, 1);
    if inserted {
        bump(stat::RETRANS_INSERTS);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
