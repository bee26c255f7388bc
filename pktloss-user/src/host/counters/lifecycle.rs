//! Host step: the namespaces of a capture from birth to death. A thread lists the namespaces
//! about once a second and reads the counters and configuration of every one born during the
//! capture and of every one with drops, keeping the last reading of each: a namespace that goes
//! before the end keeps its counters (its last reading), one born after the start counts from
//! zero (a new namespace's counters start at zero), and the diagnosis can say when each
//! appeared or went. The reads run off the capture's own thread: entering a namespace and
//! running its tools takes tens of milliseconds.
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{self as counters, ConfigChecks, Gathered, NetnsSnapshot};
use crate::host::netns;

/// Most namespaces read in one round (the others wait for the next rounds).
const MAX_PER_ROUND: usize = 16;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// What the watcher saw.
#[derive(Debug, Default)]
struct Seen {
    /// Every namespace listed when the capture started.
    at_start: BTreeSet<u32>,
    /// Born after the start: when first seen.
    born: BTreeMap<u32, f64>,
    /// Gone before the end: when last seen.
    gone: BTreeMap<u32, f64>,
    /// The latest reading made during the capture, of the namespace that has the inode now.
    last: BTreeMap<u32, (NetnsSnapshot, ConfigChecks)>,
    /// The last readings of namespaces gone whose inode the kernel gave to a later one (told
    /// apart by cookie): marked born and gone.
    retired: Vec<(NetnsSnapshot, ConfigChecks)>,
    /// Namespaces the capture saw drops in.
    with_drops: BTreeSet<u32>,
    /// Round-robin position among the namespaces to read.
    next: usize,
}

impl Seen {
    /// Note the namespaces listed now; returns those to read this round.
    fn round(&mut self, listed: &BTreeSet<u32>, t: f64) -> Vec<u32> {
        for inode in listed {
            if !self.at_start.contains(inode) && !self.born.contains_key(inode) {
                self.born.insert(*inode, t);
            }
        }
        let watched: Vec<u32> =
            self.born.keys().chain(self.with_drops.iter()).copied().collect::<BTreeSet<u32>>().into_iter().collect();
        for inode in &watched {
            if !listed.contains(inode) && self.last.contains_key(inode) && !self.gone.contains_key(inode) {
                let seen = self.last.get(inode).map_or(t, |(s, _)| s.taken_at);
                self.gone.insert(*inode, seen);
            }
        }
        // Born namespaces first: they are the ones that may go before the next round, and
        // reading one (entering it, running its tools) takes long on a loaded host.
        let (mut alive, rest): (Vec<u32>, Vec<u32>) =
            watched.into_iter().filter(|i| listed.contains(i)).partition(|i| self.born.contains_key(i));
        alive.extend(rest);
        if alive.len() <= MAX_PER_ROUND {
            return alive;
        }
        let start = self.next % alive.len();
        self.next = start + MAX_PER_ROUND;
        alive.iter().cycle().skip(start).take(MAX_PER_ROUND).copied().collect()
    }

    /// Keep `reading` of namespace `inode`. Where the namespace read before under
    /// that inode had another cookie, it is gone (as of its last reading) and this one was born
    /// since: the kernel gave the inode again.
    fn keep(&mut self, inode: u32, reading: (NetnsSnapshot, ConfigChecks)) {
        let (id, t) = (reading.0.netns, reading.0.taken_at);
        if let Some((mut old, checks)) = self.last.remove(&inode) {
            if old.netns.matches(id) {
                self.last.insert(inode, (old, checks));
            } else {
                old.appeared_at = self.born.get(&inode).copied();
                old.gone_at = Some(self.gone.remove(&inode).unwrap_or(old.taken_at));
                self.retired.push((old, checks));
                self.born.insert(inode, t);
            }
        }
        self.last.insert(inode, reading);
    }
}

/// The watcher thread of a capture. Dropping it stops the thread.
pub(crate) struct Lifecycle {
    seen: Arc<Mutex<Seen>>,
    /// Wakes the thread for a round (a message) or ends it (dropped).
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lifecycle {
    /// Start watching, the namespaces listed now being those that existed at the start.
    pub(crate) fn start(interval: Duration) -> Self {
        let at_start: BTreeSet<u32> = netns::list().keys().copied().collect();
        let seen = Arc::new(Mutex::new(Seen { at_start, ..Seen::default() }));
        let (stop, rx) = mpsc::channel::<()>();
        let shared = Arc::clone(&seen);
        let thread = std::thread::Builder::new()
            .name("pktloss-netns".to_owned())
            .spawn(move || {
                // A round each `interval`, and at once when the capture sees drops in a
                // namespace it had not seen drops in (its first reading may predate them);
                // the sender dropped ends the thread.
                while !matches!(rx.recv_timeout(interval), Err(mpsc::RecvTimeoutError::Disconnected)) {
                    // Wakes that came meanwhile are this round's too.
                    while rx.try_recv().is_ok() {}
                    let listed_refs = netns::list();
                    let listed: BTreeSet<u32> = listed_refs.keys().copied().collect();
                    let Some(to_read) = shared.lock().ok().map(|mut s| s.round(&listed, now())) else { return };
                    for inode in to_read {
                        let Some(ns) = listed_refs.get(&inode) else { continue };
                        let t = std::time::Instant::now();
                        let reading = (counters::snapshot(ns), counters::config_checks(ns));
                        log::debug!("lifecycle: read netns {inode} in {:?}", t.elapsed());
                        // A namespace deleted while it was read gives a partial reading (its
                        // tools fail midway): keep the one before.
                        if netns::inode_of(&ns.path).ok() != Some(inode) {
                            continue;
                        }
                        if let Ok(mut s) = shared.lock() {
                            s.keep(inode, reading);
                        }
                    }
                }
            })
            .ok();
        Self { seen, stop: Some(stop), thread }
    }

    /// The capture saw drops in these namespaces: read them too from now on, and those not
    /// seen with drops before at once.
    pub(crate) fn drops_in(&self, namespaces: impl IntoIterator<Item = u32>) {
        let Ok(mut s) = self.seen.lock() else { return };
        let before = s.with_drops.len();
        s.with_drops.extend(namespaces.into_iter().filter(|n| *n != 0));
        if s.with_drops.len() > before
            && let Some(wake) = &self.stop
        {
            // A closed channel means the thread is ending: nothing to wake.
            wake.send(()).ok();
        }
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            drop(t.join());
        }
    }

    /// The readings after the capture: `after` (read at its end) completed with what the
    /// watcher saw. A namespace born during the capture is marked so (its counters start at
    /// zero); one gone before the end gets its last reading, marked gone.
    pub(crate) fn complete(mut self, mut after: Gathered) -> Gathered {
        self.stop();
        let Ok(seen) = self.seen.lock() else { return after };
        for s in &mut after.snapshots {
            s.appeared_at = match seen.last.get(&s.netns.inode) {
                // Another namespace than the one the watcher read under this inode, seen only
                // now: born since that one's last reading.
                Some((l, _)) if !l.netns.matches(s.netns) => Some(s.taken_at),
                _ => seen.born.get(&s.netns.inode).copied(),
            };
        }
        for (inode, (snap, checks)) in &seen.last {
            let of_it = |s: &NetnsSnapshot| s.netns.matches(snap.netns);
            if after.snapshots.iter().any(|s| of_it(s) && !s.not_found) {
                continue; // read at the end: that reading is the newest
            }
            let mut snap = snap.clone();
            snap.appeared_at = seen.born.get(inode).copied();
            snap.gone_at = Some(seen.gone.get(inode).copied().unwrap_or(snap.taken_at));
            after.snapshots.retain(|s| !(s.netns.inode == *inode && s.not_found));
            after.checks.retain(|c| !c.netns.matches(snap.netns));
            after.snapshots.push(snap);
            after.checks.push(checks.clone());
        }
        after.snapshots.extend(seen.retired.iter().map(|r| r.0.clone()));
        after.checks.extend(seen.retired.iter().map(|r| r.1.clone()));
        after.snapshots.sort_by_key(|s| s.netns.inode);
        after.checks.sort_by_key(|c| c.netns.inode);
        after
    }

    /// The namespaces born during the capture so far.
    pub(crate) fn born(&self) -> Vec<u32> {
        self.seen.lock().map(|s| s.born.keys().copied().collect()).unwrap_or_default()
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetnsId;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    /// Namespaces born after the start are noted and read; one that goes is marked gone once
    /// it has a reading; those with drops are read too; the others are not.
    #[test]
    fn rounds_follow_births_deaths_and_drops() {
        let mut s = Seen { at_start: set(&[1, 2]), ..Seen::default() };
        assert_eq!(s.round(&set(&[1, 2]), 10.0), Vec::<u32>::new(), "nothing born, no drops: nothing to read");
        assert_eq!(s.round(&set(&[1, 2, 7]), 11.0), [7]);
        assert_eq!(s.born.get(&7), Some(&11.0));
        s.with_drops.insert(2);
        s.last.insert(
            7,
            (
                NetnsSnapshot { netns: NetnsId { inode: 7, cookie: 0 }, taken_at: 11.5, ..NetnsSnapshot::default() },
                ConfigChecks::default(),
            ),
        );
        assert_eq!(s.round(&set(&[1, 2]), 12.0), [2], "7 is gone; 2 has drops");
        assert_eq!(s.gone.get(&7), Some(&11.5), "gone as of its last reading");
        assert_eq!(s.born.get(&7), Some(&11.0));
    }

    /// A namespace gone whose inode the kernel gave to a later one (another cookie) keeps its
    /// own last reading, born and gone; the later one was born when first read.
    #[test]
    fn an_inode_given_again_is_another_namespace() {
        let reading = |cookie: u64, taken_at: f64, no_ports: i64| {
            let snmp = [("Udp.NoPorts".to_owned(), no_ports)].into();
            (
                NetnsSnapshot { netns: NetnsId { inode: 7, cookie }, taken_at, snmp, ..NetnsSnapshot::default() },
                ConfigChecks { netns: NetnsId { inode: 7, cookie }, ..ConfigChecks::default() },
            )
        };
        let mut s = Seen { at_start: set(&[1]), ..Seen::default() };
        assert_eq!(s.round(&set(&[1, 7]), 10.0), [7]);
        s.keep(7, reading(70, 10.5, 3));
        assert_eq!(s.round(&set(&[1]), 11.0), Vec::<u32>::new());
        assert_eq!(s.round(&set(&[1, 7]), 12.0), [7]);
        s.keep(7, reading(71, 12.5, 0));
        let l = Lifecycle { seen: Arc::new(Mutex::new(s)), stop: None, thread: None };
        let (end, end_checks) = reading(71, 14.0, 1);
        let out = l.complete(Gathered { snapshots: vec![end], checks: vec![end_checks] });
        let of = |cookie: u64| out.snapshots.iter().find(|s| s.netns.cookie == cookie).expect("a reading");
        assert_eq!((of(70).appeared_at, of(70).gone_at, of(70).snmp["Udp.NoPorts"]), (Some(10.0), Some(10.5), 3));
        assert_eq!((of(71).appeared_at, of(71).gone_at, of(71).taken_at), (Some(12.5), None, 14.0));
        assert_eq!(out.checks.iter().map(|c| c.netns.cookie).collect::<BTreeSet<_>>(), [70, 71].into());
        let (deltas, _) = counters::finish(Gathered::default(), out);
        let no_ports = |cookie: u64| deltas.iter().find(|d| d.netns.cookie == cookie).map(|d| d.counter("Udp.NoPorts"));
        assert_eq!((no_ports(70), no_ports(71)), (Some(3), Some(1)), "each its own counters");
    }

    #[test]
    fn a_round_reads_at_most_a_bounded_number() {
        let mut s = Seen::default();
        let many: BTreeSet<u32> = (100..140).collect();
        let first = s.round(&many, 1.0);
        let second = s.round(&many, 2.0);
        assert_eq!((first.len(), second.len()), (MAX_PER_ROUND, MAX_PER_ROUND));
        assert_ne!(first, second, "round robin");
    }
}
