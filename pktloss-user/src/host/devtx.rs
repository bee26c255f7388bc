//! Per-device transmitted packets from the kernel's own device counters, read in each
//! namespace: the loss-rate denominator while the `net:net_dev_queue` probe is off (the
//! default, since that probe costs a program run per transmitted packet, drops or not).
use std::collections::BTreeMap;

use pktloss_common::DevKey;

use crate::{
    host::counters::parse,
    host::netns::{self, NetnsRef},
};

/// Most namespaces read per call (namespaces with drops first); bounds the cost of a tick on a
/// host with many containers.
pub(crate) const MAX_NAMESPACES: usize = 64;

/// Device TX counters since a baseline.
#[derive(Debug, Default)]
pub(crate) struct DeviceTx {
    /// Namespaces read at every call: those that existed at start, then those where drops
    /// appeared later (looked up once).
    watched: Vec<NetnsRef>,
    /// Counter value at the baseline (start, or first sight for devices and namespaces that
    /// appear later).
    base: BTreeMap<DevKey, u64>,
}

impl DeviceTx {
    /// Baseline the devices of every namespace that exists now.
    pub(crate) fn start() -> Self {
        let mut s = Self::default();
        for ns in netns::list().into_values().take(MAX_NAMESPACES) {
            let now = tx_in(&ns).unwrap_or_default();
            deltas(&mut s.base, now);
            s.watched.push(ns);
        }
        s
    }

    /// Packets transmitted per device since the baseline, in the watched namespaces and in
    /// `with_drops` (namespaces where drops were seen); and the namespaces of `with_drops`
    /// whose counters could not be read (not entered: no `CAP_SYS_ADMIN`, or gone).
    pub(crate) fn read(&mut self, with_drops: &[u32]) -> (Vec<(DevKey, u64)>, Vec<u32>) {
        if with_drops.iter().any(|i| !self.watched.iter().any(|w| w.inode == *i)) {
            let mut known = netns::list();
            // Forget the namespaces that are gone, and their devices' baselines: a host where
            // containers come and go would otherwise keep them all.
            self.watched.retain(|w| known.contains_key(&w.inode));
            let watched = &self.watched;
            self.base.retain(|k, _| watched.iter().any(|w| w.inode == k.netns));
            for inode in with_drops {
                if !self.watched.iter().any(|w| w.inode == *inode)
                    && let Some(ns) = known.remove(inode)
                {
                    self.watched.push(ns);
                }
            }
        }
        let mut namespaces: Vec<NetnsRef> =
            with_drops.iter().filter_map(|i| self.watched.iter().find(|w| w.inode == *i)).cloned().collect();
        for w in &self.watched {
            if !namespaces.iter().any(|n| n.inode == w.inode) {
                namespaces.push(w.clone());
            }
        }
        namespaces.truncate(MAX_NAMESPACES);
        let mut unread: Vec<u32> =
            with_drops.iter().filter(|i| !namespaces.iter().any(|n| n.inode == **i)).copied().collect();
        let mut now: Vec<(DevKey, u64)> = Vec::new();
        for ns in &namespaces {
            match tx_in(ns) {
                Some(v) => now.extend(v),
                None => unread.push(ns.inode),
            }
        }
        let mut out = deltas(&mut self.base, now);
        out.retain(|(_, n)| *n > 0);
        (out, unread)
    }
}

/// `tx_packets` of every device in one namespace, by (ifindex, netns); `None` when the
/// namespace cannot be entered or read.
fn tx_in(ns: &NetnsRef) -> Option<Vec<(DevKey, u64)>> {
    let inode = ns.inode;
    netns::run_in(ns, move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/dev")?;
        Ok(parse::proc_net_dev(&text)
            .into_iter()
            .filter_map(|d| {
                let ifindex = nix::net::if_::if_nametoindex(d.name.as_str()).ok()?;
                Some((DevKey { ifindex, netns: inode }, d.tx_packets))
            })
            .collect())
    })
    .map_err(|e| log::debug!("device counters of netns {inode}: {e:#}"))
    .ok()
}

/// Turn current counter values into deltas from `base`; a device not in `base` is baselined
/// now (delta 0), and a counter that went backwards (device recreated) is re-baselined.
pub(crate) fn deltas(base: &mut BTreeMap<DevKey, u64>, now: Vec<(DevKey, u64)>) -> Vec<(DevKey, u64)> {
    let mut out = Vec::with_capacity(now.len());
    for (k, v) in now {
        let b = *base.entry(k).or_insert(v);
        if v < b {
            base.insert(k, v);
            out.push((k, 0));
        } else {
            out.push((k, v - b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ifindex: u32) -> DevKey {
        DevKey { ifindex, netns: 7 }
    }

    #[test]
    fn deltas_from_baseline_first_sight_and_reset() {
        let mut base = BTreeMap::new();
        assert_eq!(deltas(&mut base, vec![(k(1), 100), (k(2), 5)]), vec![(k(1), 0), (k(2), 0)]);
        assert_eq!(deltas(&mut base, vec![(k(1), 150), (k(2), 5), (k(3), 9)]), vec![(k(1), 50), (k(2), 0), (k(3), 0)]);
        // Device 1 recreated with the same index: its counter restarts.
        assert_eq!(deltas(&mut base, vec![(k(1), 3), (k(3), 10)]), vec![(k(1), 0), (k(3), 1)]);
        assert_eq!(deltas(&mut base, vec![(k(1), 4)]), vec![(k(1), 1)]);
    }

    #[test]
    fn own_namespace_loopback_counts_transmissions() {
        let me = netns::self_inode().expect("own netns");
        let mut tx = DeviceTx::start();
        // Loopback transmits what we send to ourselves.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..10 {
            drop(sock.send_to(b"x", "127.0.0.1:9"));
        }
        let (counts, unread) = tx.read(&[me]);
        let lo = counts.into_iter().find(|(d, _)| d.netns == me && d.ifindex == 1).expect("lo counted");
        assert!(lo.1 >= 10, "{lo:?}");
        assert!(unread.is_empty(), "own namespace unread: {unread:?}");
    }
}
