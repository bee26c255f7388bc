//! Host step: the counters of one command from its baseline to now. Every command that
//! diagnoses (`capture -o`, `diagnose`, `top`, `serve`) reads the namespaces' counters and
//! configuration through a [`CounterWatch`]: a baseline when it starts, a fresh reading
//! whenever it wants the counters so far (`top`, every `--refresh`), and a last reading at its
//! end; each reading is turned into deltas by [`super::finish`], so every command sees the same
//! counters (firewall rules, listeners and sockets as deltas too).
use std::collections::{BTreeMap, BTreeSet};

use super::{ConfigChecks, Gathered, NetnsDelta, NetnsSnapshot, finish, lifecycle::Lifecycle};
use crate::{host::netns, model::NetnsId};

/// Most namespaces read for a baseline (every one visible, up to this many).
pub(crate) const MAX_NETNS: usize = 64;

/// The counters read so far: the baseline, the latest reading and what changed in between.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counted {
    pub before: Gathered,
    pub after: Gathered,
    /// The counters of each namespace over the interval.
    pub deltas: Vec<NetnsDelta>,
    /// The latest configuration, its rule and socket counters as deltas over the interval.
    pub checks: Vec<ConfigChecks>,
}

/// The counters of a command from its baseline on.
#[derive(Debug)]
pub(crate) struct CounterWatch {
    before: Gathered,
    /// The namespaces listed when the baseline was read: one seen later was born since.
    at_start: BTreeSet<u32>,
    /// Namespaces born since the baseline (inode and cookie): when first read.
    born: BTreeMap<NetnsId, f64>,
    /// The latest reading (by [`CounterWatch::refresh`]): a namespace gone since keeps it.
    latest: Gathered,
}

impl CounterWatch {
    /// Read every visible namespace (bounded by [`MAX_NETNS`]) now: the baseline.
    pub(crate) fn baseline() -> Self {
        let at_start: BTreeSet<u32> = netns::list().keys().copied().collect();
        let inodes: Vec<u32> = at_start.iter().copied().take(MAX_NETNS).collect();
        Self::new(super::gather(&inodes), at_start)
    }

    /// A baseline read already (`serve`'s next window starts from the reading that ended the
    /// one before).
    pub(crate) fn from_reading(before: Gathered) -> Self {
        let at_start = before.snapshots.iter().map(|s| s.netns.inode).collect();
        Self::new(before, at_start)
    }

    fn new(before: Gathered, at_start: BTreeSet<u32>) -> Self {
        Self { latest: before.clone(), before, at_start, born: BTreeMap::new() }
    }

    /// The baseline alone: no counter moved yet, the configuration as read.
    pub(crate) fn at_start(&self) -> Counted {
        Counted {
            before: self.before.clone(),
            after: self.before.clone(),
            deltas: Vec::new(),
            checks: self.before.checks.clone(),
        }
    }

    /// The counters so far, the watch going on: the baseline's namespaces and those with drops
    /// read now (the configuration only of those with drops, where the diagnosis looks; the
    /// others keep their latest). A namespace gone since keeps its last reading, marked gone;
    /// one born since counts from zero; one that existed at the start but was not in the
    /// baseline (beyond its bound) counts from its first reading.
    pub(crate) fn refresh(&mut self, with_drops: &[u32]) -> Counted {
        let mut inodes: Vec<u32> = self.before.snapshots.iter().map(|s| s.netns.inode).collect();
        let drops: BTreeSet<u32> = with_drops.iter().copied().filter(|n| *n != 0).collect();
        inodes.extend(drops.iter().filter(|n| !inodes.contains(n)).copied().collect::<Vec<_>>());
        let (checked, rest): (Vec<u32>, Vec<u32>) = inodes.into_iter().partition(|n| drops.contains(n));
        let mut fresh = if checked.is_empty() { Gathered::default() } else { super::gather(&checked) };
        let read: BTreeSet<u32> = fresh.snapshots.iter().map(|s| s.netns.inode).collect();
        fresh.snapshots.extend(super::snapshot_all(&rest).into_iter().filter(|s| !read.contains(&s.netns.inode)));
        self.advance(fresh)
    }

    /// [`CounterWatch::refresh`] given what was read now.
    fn advance(&mut self, mut fresh: Gathered) -> Counted {
        // By inode and cookie: a namespace gone whose inode the kernel gave to a later one is
        // not that one.
        let mut snapshots: BTreeMap<NetnsId, NetnsSnapshot> = BTreeMap::new();
        let gone = |l: &NetnsSnapshot| {
            let mut l = l.clone();
            l.gone_at.get_or_insert(l.taken_at);
            (l.netns, l)
        };
        for mut s in std::mem::take(&mut fresh.snapshots) {
            // Gone: what it counted while it lived. Another namespace now has its inode when
            // the cookie differs.
            let ended = |l: &&NetnsSnapshot| {
                l.netns.inode == s.netns.inode && !l.not_found && (s.not_found || !l.netns.matches(s.netns))
            };
            snapshots.extend(self.latest.snapshots.iter().filter(ended).map(gone));
            if s.not_found {
                continue;
            }
            if !self.before.snapshots.iter().any(|b| b.netns.matches(s.netns)) {
                if self.at_start.contains(&s.netns.inode)
                    && !self.before.snapshots.iter().any(|b| b.netns.inode == s.netns.inode)
                {
                    self.before.snapshots.push(s.clone());
                    self.before.checks.extend(fresh.checks.iter().find(|c| c.netns.inode == s.netns.inode).cloned());
                } else {
                    s.appeared_at = Some(*self.born.entry(s.netns).or_insert(s.taken_at));
                }
            }
            snapshots.insert(s.netns, s);
        }
        // Those gone before stay gone.
        for l in self.latest.snapshots.iter().filter(|l| l.gone_at.is_some()) {
            snapshots.entry(l.netns).or_insert_with(|| l.clone());
        }
        let checks = snapshots
            .iter()
            .filter_map(|(&id, snap)| {
                let of = |g: &Gathered| g.checks.iter().find(|c| c.netns.matches(id)).cloned();
                // A gone namespace's fresh checks are a placeholder: its latest stay.
                let living = snap.gone_at.is_none();
                of(&fresh).filter(|_| living).or_else(|| of(&self.latest)).or_else(|| of(&self.before))
            })
            .collect();
        self.latest = Gathered { snapshots: snapshots.into_values().collect(), checks };
        self.counted(self.latest.clone())
    }

    fn counted(&self, after: Gathered) -> Counted {
        let (deltas, checks) = finish(self.before.clone(), after.clone());
        Counted { before: self.before.clone(), after, deltas, checks }
    }

    /// The last reading: the baseline's namespaces, those with drops and those the
    /// `lifecycle` watcher saw born, read now and completed with the watcher's readings of
    /// those gone meanwhile.
    pub(crate) fn finish(self, with_drops: &[u32], lifecycle: Option<Lifecycle>) -> Counted {
        let mut inodes: Vec<u32> = self.before.snapshots.iter().map(|s| s.netns.inode).collect();
        let born = lifecycle.as_ref().map(Lifecycle::born).unwrap_or_default();
        for n in with_drops.iter().copied().chain(born) {
            if n != 0 && !inodes.contains(&n) {
                inodes.push(n);
            }
        }
        let after = super::gather(&inodes);
        let after = match lifecycle {
            Some(l) => l.complete(after),
            None => after,
        };
        self.counted(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::counters::FirewallRule;

    fn reading(netns: u32, taken_at: f64, in_errors: i64, rule_packets: u64) -> (NetnsSnapshot, ConfigChecks) {
        let netns = NetnsId { inode: netns, cookie: 0 };
        let snap = NetnsSnapshot {
            netns,
            taken_at,
            snmp: [("Udp.InErrors".to_owned(), in_errors)].into(),
            ..NetnsSnapshot::default()
        };
        let rule = FirewallRule {
            backend: "nft".into(),
            family: "inet".into(),
            table: "t".into(),
            chain: "input".into(),
            handle: Some(3),
            rule: "udp dport 9 drop".into(),
            verdict: "drop".into(),
            packets: Some(rule_packets),
            ..FirewallRule::default()
        };
        (snap, ConfigChecks { netns, drop_rules: vec![rule], ..ConfigChecks::default() })
    }

    fn gathered(r: &[(NetnsSnapshot, ConfigChecks)]) -> Gathered {
        Gathered { snapshots: r.iter().map(|x| x.0.clone()).collect(), checks: r.iter().map(|x| x.1.clone()).collect() }
    }

    /// A refresh gives what the end of a capture gives on the same readings: counter deltas
    /// and the firewall rules' deltas (`top` once had none); a namespace gone keeps what it
    /// counted; one born counts from zero.
    #[test]
    fn a_refresh_counts_as_the_end_of_a_capture() {
        let before = gathered(&[reading(1, 10.0, 5, 100), reading(2, 10.0, 0, 0)]);
        let mut w = CounterWatch::from_reading(before.clone());
        let now = gathered(&[reading(1, 12.0, 9, 130), reading(2, 12.0, 4, 0)]);
        let top = w.advance(now.clone());
        let (deltas, checks) = finish(before, now);
        assert_eq!(top.deltas, deltas);
        assert_eq!(top.checks, checks);
        assert_eq!(top.checks[0].drop_rules[0].packets_delta, Some(30));
        assert_eq!(top.deltas[0].counter("Udp.InErrors"), 4);

        // 2 is gone, 7 was born with 3 errors.
        let gone = NetnsSnapshot::not_found(2, 14.0);
        let (born, born_checks) = reading(7, 14.0, 3, 2);
        let next = Gathered {
            snapshots: vec![reading(1, 14.0, 9, 130).0, gone, born],
            checks: vec![reading(1, 14.0, 9, 130).1, ConfigChecks::not_found(2), born_checks],
        };
        let top = w.advance(next);
        let of = |n: u32| top.deltas.iter().find(|d| d.netns.inode == n).expect("delta");
        assert_eq!(of(2).counter("Udp.InErrors"), 4, "gone: its last reading");
        assert!(of(2).gone_after.is_some());
        assert_eq!(of(7).counter("Udp.InErrors"), 3, "born: from zero");
        let rules = |n: u32| top.checks.iter().find(|c| c.netns.inode == n).map(|c| c.drop_rules[0].packets_delta);
        assert_eq!((rules(2), rules(7)), (Some(Some(0)), Some(Some(2))));
    }

    /// A namespace gone whose inode the kernel gave to a later one (another cookie): a refresh
    /// keeps the first one's counters, marked gone, and counts the later one from zero.
    #[test]
    fn a_refresh_tells_an_inode_given_again_by_cookie() {
        let with = |r: (NetnsSnapshot, ConfigChecks), cookie: u64| {
            let netns = NetnsId { cookie, ..r.0.netns };
            (NetnsSnapshot { netns, ..r.0 }, ConfigChecks { netns, ..r.1 })
        };
        let mut w = CounterWatch::from_reading(gathered(&[with(reading(7, 10.0, 5, 100), 70)]));
        let top = w.advance(gathered(&[with(reading(7, 12.0, 9, 130), 70)]));
        assert_eq!(top.deltas[0].counter("Udp.InErrors"), 4);
        for t in [14.0, 16.0] {
            let top = w.advance(gathered(&[with(reading(7, t, 2, 1), 71)]));
            let of = |c: u64| top.deltas.iter().find(|d| d.netns.cookie == c).expect("delta");
            assert_eq!((of(70).counter("Udp.InErrors"), of(70).gone_after), (4, Some(2.0)));
            assert_eq!((of(71).counter("Udp.InErrors"), of(71).appeared_after), (2, Some(4.0)), "from zero");
            let rules = |c: u64| top.checks.iter().find(|x| x.netns.cookie == c).map(|x| x.drop_rules[0].packets_delta);
            assert_eq!((rules(70), rules(71)), (Some(Some(30)), Some(Some(1))));
        }
    }
}
