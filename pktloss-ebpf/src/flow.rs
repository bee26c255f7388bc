//! Flow keys: decoding a drop's flow key from its `sk_buff`, and the raw signatures of flow runs.

use core::ptr::read_volatile;

use pktloss_common::{FlowKey, RAW_MASK0, RAW_MASK1, RunCache};

use crate::{hook::Hook, mem::Mem};

pub(crate) const UNSET_HEADER: u16 = 0xffff;

/// The inode and the cookie of the netns of a `sock` (`sk->sk_net` read once).
#[inline(always)]
pub(crate) fn sock_netns<M: Mem>(sk: u64) -> (u32, u64) {
    let net: u64 = M::get(sk, cfg!(offsets.sock_net)).unwrap_or(0);
    (M::get(net, cfg!(offsets.net_inum)).unwrap_or(0), M::get(net, cfg!(offsets.net_cookie)).unwrap_or(0))
}

/// Receives the words of a flow key as `flow_key` computes them. A [`FlowKey`] is eight
/// native-endian u64 words (see `FlowKey` for the layout): saddr (2 words), daddr (2),
/// `netns | ifindex << 32`, `reason | ports << 32`, `family | l4proto << 8 | ethertype << 16`
/// (its upper half the zero pad), and the netns cookie.
///
/// Words are compared or stored as soon as they are known, a whole word at a time: no key is
/// held in registers (BPF has few, so LLVM spilled it to the stack on every drop), and no byte
/// or half-word stores, which would stall store forwarding when the run comparison loads the
/// words back.
pub(crate) trait KeySink {
    /// Word `i` (0..8) of the key.
    fn word(&mut self, i: usize, v: u64);
}

/// Compares a key with the one at `at` (an 8-byte aligned `FlowKey`): `diff` stays 0 while
/// every word matches.
pub(crate) struct Diff {
    pub(crate) at: *const u64,
    pub(crate) diff: u64,
}

impl KeySink for Diff {
    #[inline(always)]
    fn word(&mut self, i: usize, v: u64) {
        // SAFETY: `at` is an 8-byte aligned FlowKey (64 bytes: eight u64).
        self.diff |= v ^ unsafe { *self.at.add(i) };
    }
}

/// Stores a key at `at` (an 8-byte aligned `FlowKey`). Volatile stores keep LLVM from calling
/// a `memcpy` subprogram.
pub(crate) struct Store {
    pub(crate) at: *mut u64,
}

impl KeySink for Store {
    #[inline(always)]
    fn word(&mut self, i: usize, v: u64) {
        // SAFETY: as for `Diff`.
        unsafe { core::ptr::write_volatile(self.at.add(i), v) };
    }
}

/// Copy the flow key at `src` to `dst` (both 8-byte aligned).
#[expect(
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[inline(always)]
pub(crate) fn key_copy(dst: *mut FlowKey, src: *const FlowKey) {
    let (d, s) = (dst as *mut u64, src as *const u64);
    let mut i = 0;
    while i < 8 {
        // SAFETY: both are 8-byte aligned FlowKeys.
        unsafe { core::ptr::write_volatile(d.add(i), read_volatile(s.add(i))) };
        i += 1;
    }
}

/// Where the network header of `skb` is: `head`, the header's offset from it (`UNSET_HEADER`
/// when unknown) and the tail offset.
#[inline(always)]
pub(crate) fn l3_of<M: Mem>(skb: u64) -> (u64, u16, u32) {
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

/// The identity of a namespace in a raw signature: the low half of its cookie (a counter,
/// unique for the boot), or its inode where the kernel leaves cookies 0 (before 5.12).
#[inline(always)]
fn net_id<M: Mem>(net: u64) -> u32 {
    let cookie: u64 = M::get(net, cfg!(offsets.net_cookie)).unwrap_or(0);
    if cookie != 0 { cookie as u32 } else { M::get(net, cfg!(offsets.net_inum)).unwrap_or(0) }
}

/// The device word of a raw signature (`RunCache::raw_dev`): `net_id | ifindex << 32`. It
/// tells apart what the key's device words do (`netns | ifindex << 32` and the cookie): a
/// namespace that has the inode of one gone before it is a different signature. The namespace
/// is the device's, or without a device the socket's (a null device reads as ifindex 0 in
/// namespace 0).
#[inline(always)]
fn dev_word<H: Hook, M: Mem>(h: H) -> u64 {
    let skb = h.skb();
    let dev: u64 = M::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0);
    let ifindex: u32 = M::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    let net: u64 = M::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
    let mut id = net_id::<M>(net);
    if id == 0 {
        let rx_sk = h.rx_sk();
        let sk: u64 = if rx_sk != 0 { rx_sk } else { M::get(skb, cfg!(offsets.skb_sk)).unwrap_or(0) };
        if sk != 0 {
            id = net_id::<M>(M::get(sk, cfg!(offsets.sock_net)).unwrap_or(0));
        }
    }
    u64::from(id) | u64::from(ifindex) << 32
}

/// Words 4 and 7 of the flow key of the drop: `netns | ifindex << 32` and the cookie of that
/// namespace (the device's, or without a device the socket's).
#[inline(always)]
fn dev_words<H: Hook, M: Mem>(h: H) -> (u64, u64) {
    let skb = h.skb();
    let dev: u64 = M::get(skb, cfg!(offsets.skb_dev)).unwrap_or(0);
    let ifindex: u32 = M::get(dev, cfg!(offsets.dev_ifindex)).unwrap_or(0);
    let mut net: u64 = M::get(dev, cfg!(offsets.dev_nd_net)).unwrap_or(0);
    let mut netns: u32 = M::get(net, cfg!(offsets.net_inum)).unwrap_or(0);
    if netns == 0 {
        let rx_sk = h.rx_sk();
        let sk: u64 = if rx_sk != 0 { rx_sk } else { M::get(skb, cfg!(offsets.skb_sk)).unwrap_or(0) };
        if sk != 0 {
            net = M::get(sk, cfg!(offsets.sock_net)).unwrap_or(0);
            netns = M::get(net, cfg!(offsets.net_inum)).unwrap_or(0);
        }
    }
    let cookie: u64 = M::get(net, cfg!(offsets.net_cookie)).unwrap_or(0);
    (u64::from(netns) | u64::from(ifindex) << 32, cookie)
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
pub(crate) fn same_raw_flow<H: Hook, M: Mem>(h: H, rc: &RunCache) -> bool {
    same_raw::<H, M>(h, &rc.raw, rc.raw_mask2, rc.raw_dev, rc.raw_misc)
}

/// Whether this drop has the raw signature (`raw`, `mask2`, `dev`, `misc`); see `same_raw_flow`.
#[inline(always)]
pub(crate) fn same_raw<H: Hook, M: Mem>(h: H, raw: &[u64; 3], mask2: u64, dev: u64, misc: u64) -> bool {
    if mask2 == 0 {
        return false;
    }
    let mut diff = (dev_word::<H, M>(h) ^ dev) | (raw_misc::<H, M>(h) ^ misc);
    let Some(w) = plain_v4::<M>(h.skb()) else { return false };
    let w = raw_words(w, mask2);
    diff |= (w[0] ^ raw[0]) | (w[1] ^ raw[1]) | (w[2] ^ raw[2]);
    diff == 0
}

/// Give the flow run just started in `rc` the raw signature of this drop, if its header is
/// plain IPv4 (no signature otherwise: `raw_mask2` = 0).
#[inline(always)]
pub(crate) fn set_raw_flow<H: Hook, M: Mem>(h: H, rc: &mut RunCache) {
    rc.raw_mask2 = 0;
    let Some((raw, mask2, dev, misc)) = raw_sig::<H, M>(h) else { return };
    rc.raw = raw;
    rc.raw_dev = dev;
    rc.raw_misc = misc;
    rc.raw_mask2 = mask2;
}

/// The raw signature of this drop (`raw`, `mask2`, `dev`, `misc`), if its header is plain IPv4.
#[inline(always)]
pub(crate) fn raw_sig<H: Hook, M: Mem>(h: H) -> Option<([u64; 3], u64, u64, u64)> {
    let w = plain_v4::<M>(h.skb())?;
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
    Some((raw_words(w, mask2), mask2, dev_word::<H, M>(h), raw_misc::<H, M>(h)))
}

/// The flow key of `skb` (device, namespace, IP addresses, protocol, ports).
///
/// It runs on every drop, so it is written for the code LLVM makes of it: each word goes to
/// `out` as soon as it is known, one straight path with no early return, and no helper call on
/// the paths the verifier keeps for this kernel. (Returning early with a half-built key made
/// LLVM copy the key to the stack on every path; a helper call made it spill everything live
/// across it.)
#[inline(always)]
pub(crate) fn flow_key<H: Hook, M: Mem, S: KeySink>(h: H, out: &mut S) {
    let skb = h.skb();
    let (dev, cookie) = dev_words::<H, M>(h);
    out.word(4, dev);
    out.word(7, cookie);
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
            } else if version == 6
                && avail >= 40
                && let Some(x) = M::peek::<3>(l3)
            {
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
    if family == 0 {
        out.word(0, 0);
        out.word(1, 0);
        out.word(2, 0);
        out.word(3, 0);
    }
    out.word(5, u64::from(h.flow_reason()) | u64::from(ports) << 32);
    out.word(6, u64::from(proto_word(family, l4, ethertype)));
}
