//! The filter: a drop's flow words tested against the frozen config's decision graph.

use pktloss_common::{FlowKey, RunCache, derive_filter_words, filter_word, flag};

use crate::{
    flow::{KeySink, flow_key, raw_sig, same_raw},
    hook::Hook,
    mem::Mem,
};

const WORDS: usize = filter_word::COUNT as usize;

/// The words a filter tests, on the stack.
pub(crate) struct Words {
    pub(crate) w: [u64; WORDS],
}

impl KeySink for Words {
    /// Words 0..=6 of the key are the filter's first words; the cookie (7) is not one.
    #[inline(always)]
    fn word(&mut self, i: usize, v: u64) {
        if i <= filter_word::PROTO as usize {
            self.w[i] = v;
        }
    }
}

/// Whether this drop passes the filter: the verdict on the last drop decoded when this one has
/// its raw signature (a flood is one flow: its drops are decoded once), else decoded.
#[inline(always)]
pub(crate) fn cached_verdict<H: Hook, M: Mem>(h: H, rc: &mut RunCache) -> bool {
    if same_raw::<H, M>(h, &rc.filter_raw, rc.filter_mask2, rc.filter_dev, rc.filter_misc) {
        return rc.filter_pass != 0;
    }
    let pass = drop_passes::<H, M>(h);
    rc.filter_mask2 = 0;
    if let Some((raw, mask2, dev, misc)) = raw_sig::<H, M>(h) {
        rc.filter_raw = raw;
        rc.filter_dev = dev;
        rc.filter_misc = misc;
        rc.filter_mask2 = mask2;
        rc.filter_pass = u64::from(pass);
    }
    pass
}

/// Whether this drop passes the filter. A subprogram: it runs only with `flag::FILTER`, and
/// then decodes the flow key once more than the flow path would (the cost of a filtered-out
/// drop is this call and nothing else of the drop path).
#[inline(never)]
pub(crate) fn drop_passes<H: Hook, M: Mem>(h: H) -> bool {
    let mut k = Words { w: [0; WORDS] };
    flow_key::<H, M, _>(h, &mut k);
    k.w[filter_word::REASON as usize] = u64::from(h.reason());
    if cfg!(flags) & flag::FILTER_DEV_NAME != 0 {
        let dev: u64 = M::get(h.skb(), cfg!(offsets.skb_dev)).unwrap_or(0);
        let name: [u64; 2] = if dev == 0 { [0; 2] } else { M::get(dev, cfg!(offsets.dev_name)).unwrap_or([0; 2]) };
        k.w[filter_word::DEV_NAME_LO as usize] = name[0];
        k.w[filter_word::DEV_NAME_HI as usize] = name[1];
    }
    derive_filter_words(&mut k.w);
    crate::config::config().filter.passes(&k.w)
}

/// Whether a retransmission with this flow key passes the filter (reason 0, no device).
#[expect(
    clippy::ptr_as_ptr,
    reason = "the drop path is kept as written and verified: these `as` casts only retype a pointer to the words read or written"
)]
#[inline(never)]
pub(crate) fn key_passes(key: &FlowKey) -> bool {
    let p: *const FlowKey = key;
    let p = p as *const u64;
    let mut k = Words { w: [0; WORDS] };
    let mut i = 0;
    while i <= filter_word::PROTO as usize {
        // SAFETY: a FlowKey is eight u64 words (the upper half of word 6 is the zero pad).
        k.w[i] = unsafe { *p.add(i) };
        i += 1;
    }
    derive_filter_words(&mut k.w);
    crate::config::config().filter.passes(&k.w)
}
