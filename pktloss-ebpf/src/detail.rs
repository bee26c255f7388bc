//! Sampled per-drop detail events, sent to the `EVENTS` ring buffer.

use core::ptr::{addr_of, addr_of_mut};

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel as raw_read},
    },
    programs::tracing::StackIdContext as _,
};
use pktloss_common::{DROP_EVENT_HEADER, RunCache, data_start, flag, stat};

use crate::{
    counting::bump,
    flow::{Store, UNSET_HEADER, flow_key, key_copy, l3_of},
    hook::Hook,
    maps::{EVENT_SCRATCH, EVENTS, STACKS},
    mem::{Mem, Probe},
};

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Send this drop's detail event (within budget). The drop's reason and location are in
/// `rc.drop_key`, and, with flow counts on, its flow key in `rc.flow_key`.
#[expect(
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[expect(clippy::if_not_else, reason = "the usual case first: a drop normally has a network header")]
#[inline(never)]
pub(crate) fn send_detail<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
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
    // The record is built in this CPU's scratch slot and copied into the ring with only the
    // bytes captured (`bpf_ringbuf_output`: one helper call, a record sized at run time), not
    // reserved at the snap length: a flood of small packets sends its header and 46 bytes, not
    // 128.
    let Some(ev) = EVENT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let mut cap = 0u32;
    // SAFETY: `ev` points at this CPU's scratch record, a whole DropEvent; the packet copy is at
    // most `snaplen` (at most MAX_SNAPLEN) bytes into `data`. Every header field is written.
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
        let (ino, state) =
            socket_of::<M>(if rx_sk != 0 { rx_sk } else { M::get(skb, cfg!(offsets.skb_sk)).unwrap_or(0) });
        (*ev).sk_ino = ino;
        (*ev).sk_state = state;
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
                    cap = n;
                }
            }
        }
    }
    let len = DROP_EVENT_HEADER as u64 + u64::from(cap);
    // The reader polls on its own; wake it only when it fell behind (more than `wakeup_fill`
    // bytes waiting), checked once per `check_bytes` this CPU produced. A wakeup is an
    // interrupt on this CPU; one per event would cost more than the event.
    rc.ring_bytes += ((len + 15) & !7) as u32;
    let mut wake = BPF_RB_NO_WAKEUP;
    if rc.ring_bytes >= cfg!(check_bytes) {
        rc.ring_bytes = 0;
        if EVENTS.query(BPF_RB_AVAIL_DATA) >= u64::from(cfg!(wakeup_fill)) {
            wake = BPF_RB_FORCE_WAKEUP;
        }
    }
    // SAFETY: the scratch record is DROP_EVENT_SIZE bytes and `len` at most DROP_EVENT_HEADER +
    // snaplen of them.
    let record = unsafe { core::slice::from_raw_parts(ev as *const u8, len as usize) };
    if EVENTS.output::<[u8]>(record, wake).is_err() {
        bump(stat::DETAIL_LOST_RINGBUF);
        return;
    }
    rc.detail_sent += 1;
}

/// A socket's inode number and state, read with the helper (the inode lies past the `struct
/// socket` that BTF types, in its `socket_alloc`). Time-wait and request sockets are smaller
/// structs without `sk_socket`: their state only.
#[inline(always)]
fn socket_of<M: Mem>(sk: u64) -> (u64, u8) {
    if sk == 0 {
        return (0, 0);
    }
    let state: u8 = Probe::get(sk, cfg!(offsets.sock_state)).unwrap_or(0);
    // TCP_TIME_WAIT, TCP_NEW_SYN_RECV
    if state == 6 || state == 12 {
        return (0, state);
    }
    let socket: u64 = Probe::get(sk, cfg!(offsets.sock_socket)).unwrap_or(0);
    (Probe::get(socket, cfg!(offsets.socket_ino)).unwrap_or(0), state)
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
