//! The state the passes of the diagnosis share: what they read ([`Ctx::input`] and what is
//! worked out of it once: the namespaces' names, whether counters count the capture's drops)
//! and what they build, one [`Acc`] per cause. [`super::engine`] makes it and runs the passes
//! ([`super::events`], [`super::counter_rules`], [`super::checks`]) over it in a fixed order;
//! the passes import this module and [`super::taxonomy`] only, never the engine or each other.
use std::collections::{BTreeMap, BTreeSet};

use super::{CauseId, DiagnosisInput, Explained, Verify, taxonomy};
use crate::{
    host::{
        counters::{ConfigChecks, NetnsDelta},
        netns::NetnsLabel,
    },
    model::{FilterInfo, FlowCount, NetnsId},
};

#[derive(Default)]
pub(super) struct Acc {
    pub(super) event_drops: u64,
    pub(super) counter_drops: u64,
    /// Counter magnitude, for ranking causes with equal drops.
    pub(super) score: u64,
    pub(super) selected: bool,
    pub(super) evidence: Vec<String>,
    pub(super) advice: Vec<String>,
    pub(super) netns: BTreeSet<u32>,
    /// The namespaces of `netns` by cookie too, where the drops or counters that select it
    /// said one: which of the namespaces that had an inode one after the other they are.
    pub(super) ids: BTreeSet<NetnsId>,
    /// The events assigned here (reason, and the protocol, location or connections they are
    /// limited to).
    pub(super) events: Vec<Explained>,
    /// Counter keys seen (for reconciliation): counters for this cause were readable.
    pub(super) counter_seen: bool,
    /// Its counter drops are worked out from traced events only (external loss from the
    /// traced retransmissions): the filter's, like event drops.
    pub(super) traced: bool,
    /// Verify commands made for the place of the drops; when set, the taxonomy's generic
    /// ones (which may not apply there: `ethtool -g` on a virtual device) are left out.
    pub(super) verify: Vec<Verify>,
}

impl Acc {
    /// Selects the cause by a counter: `drops` packets it counted (0 for a signal that is not a
    /// drop count) and `score` for ranking.
    pub(super) fn select(&mut self, drops: u64, score: u64) {
        self.counter_drops += drops;
        self.selected = true;
        self.score += score;
    }
    /// The cause is in namespace `id` (its drops or counters are there).
    pub(super) fn in_netns(&mut self, id: NetnsId) {
        self.netns.insert(id.inode);
        if id.cookie != 0 {
            self.ids.insert(id);
        }
    }

    /// The namespace of inode `inode` this cause is in, by cookie where it knows the one
    /// namespace of that inode it is in; else by inode alone (cookie 0).
    pub(super) fn id_of(&self, inode: u32) -> NetnsId {
        let mut of = self.ids.iter().filter(|i| i.inode == inode);
        match (of.next(), of.next()) {
            (Some(one), None) => *one,
            _ => NetnsId { inode, cookie: 0 },
        }
    }

    /// Whether the counters read in namespace `id` are of this cause's namespaces: its
    /// inode, and its cookie where the cause knows the cookies of that inode (a namespace that
    /// had the inode before or after is another one); by inode alone where the kernel gave no
    /// cookie.
    pub(super) fn has_netns(&self, id: NetnsId) -> bool {
        self.netns.contains(&id.inode)
            && (id.cookie == 0 || self.ids.contains(&id) || !self.ids.iter().any(|i| i.inode == id.inode))
    }

    pub(super) fn ev(&mut self, s: String) {
        if !self.evidence.contains(&s) {
            self.evidence.push(s);
        }
    }
    pub(super) fn adv(&mut self, s: String) {
        if !self.advice.contains(&s) {
            self.advice.push(s);
        }
    }
}

pub(super) struct Ctx<'a> {
    pub(super) input: &'a DiagnosisInput<'a>,
    /// The counters read count the capture's drops: no filter, or one that selects every drop
    /// of the namespaces it names. Otherwise counters are evidence, not drops.
    pub(super) counters_count: bool,
    /// What each namespace is called: its name in the summary (`ip netns`, pod, container,
    /// unit), else the label its counters were read under; `None` when they were read under
    /// no name.
    pub(super) labels: BTreeMap<u32, Option<String>>,
    pub(super) acc: BTreeMap<CauseId, Acc>,
}

impl<'a> Ctx<'a> {
    /// The context of one diagnosis, with no cause yet: the namespaces' names from the
    /// summary, else the labels their counters were read under.
    pub(super) fn new(input: &'a DiagnosisInput<'a>, filter: Option<&FilterInfo>) -> Self {
        let mut labels = BTreeMap::new();
        for d in input.deltas {
            labels.insert(d.netns.inode, name(&d.label));
        }
        for c in input.checks {
            labels.entry(c.netns.inode).or_insert_with(|| name(&c.label));
        }
        // An inode read under other names for namespaces that had it one after the other
        // (other cookies) names none of them.
        for d in input.deltas {
            let other = |e: &NetnsDelta| {
                e.netns.inode == d.netns.inode && e.netns.cookie != d.netns.cookie && e.label != d.label
            };
            if d.netns.cookie != 0 && input.deltas.iter().any(other) {
                labels.insert(d.netns.inode, None);
            }
        }
        // A name of the summary is bound to a cookie: it names the inode only where the inode
        // was that one namespace's (not where it was given to one namespace after another).
        for n in input.summary.namespaces.iter().filter(|n| !n.label.is_empty()) {
            if input.summary.cookie_of(n.netns.inode).is_some_and(|c| c == 0 || c == n.netns.cookie) {
                labels.insert(n.netns.inode, Some(n.label.clone()));
            }
        }
        let counters_count = filter.is_none_or(|f| f.scope.whole_netns);
        Self { input, counters_count, labels, acc: BTreeMap::new() }
    }

    /// The tag of a record that says its namespace's cookie (a flow, a tc or XDP drop): the
    /// name read for that namespace, none when none was (another namespace that had the
    /// inode, before or after, is not this one); by inode ([`Ctx::tag`]) where the kernel
    /// gave no cookie.
    pub(super) fn tag_of(&self, id: NetnsId) -> String {
        if id.cookie == 0 {
            return self.tag(id.inode);
        }
        match self.input.summary.namespace(id.inode, id.cookie) {
            Some(n) => format!("[netns {} ({})]", n.label, id.inode),
            None if self.host_cookie(id) => self.tag(id.inode),
            None => format!("[netns {}]", id.inode),
        }
    }

    /// The tag of namespace `id` whose counters or configuration were read, by cookie: the
    /// summary's name read for it, else the name its counters or configuration were read
    /// under (another namespace that had the inode, before or after, is not this one); by inode
    /// ([`Ctx::tag`]) where the kernel gave no cookie.
    pub(super) fn tag_read(&self, id: NetnsId) -> String {
        if id.cookie == 0 {
            return self.tag(id.inode);
        }
        let read = || {
            let deltas = self.input.deltas.iter().filter(|d| d.netns == id).map(|d| &d.label);
            deltas.chain(self.input.checks.iter().filter(|c| c.netns == id).map(|c| &c.label)).find_map(name)
        };
        match self.input.summary.namespace(id.inode, id.cookie) {
            Some(n) => format!("[netns {} ({})]", n.label, id.inode),
            None => read().map_or_else(|| self.tag_of(id), |l| format!("[netns {l} ({})]", id.inode)),
        }
    }

    /// Whether `id` is the namespace pktloss runs in, as its counters say (its inode is never
    /// given to another while pktloss runs).
    fn host_cookie(&self, id: NetnsId) -> bool {
        self.input.deltas.iter().any(|d| d.netns.inode == id.inode && d.is_self)
            || self.input.checks.iter().any(|c| c.netns.inode == id.inode && c.is_self)
    }

    /// The tag of a namespace by inode: its counters' label, or the summary's name where the
    /// inode was one namespace's.
    pub(super) fn tag(&self, netns: u32) -> String {
        match self.labels.get(&netns) {
            Some(Some(l)) => format!("[netns {l} ({netns})]"),
            _ if netns == 0 => "[netns ?]".to_owned(),
            _ => format!("[netns {netns}]"),
        }
    }

    /// Shell prefix that runs a command in namespace `id` (by cookie where it has one, else
    /// by inode): none in our own, `ip netns exec NAME ` for one with an `ip netns` name, else
    /// `nsenter --net=/proc/PID/ns/net ` with a process seen living in it.
    pub(super) fn in_ns(&self, id: NetnsId) -> String {
        let deltas = || self.input.deltas.iter().filter(|d| d.netns.matches(id));
        let checks = || self.input.checks.iter().filter(|c| c.netns.matches(id));
        let host = deltas().any(|d| d.is_self) || checks().any(|c| c.is_self);
        let named = self.input.summary.namespaces.iter().filter(|n| n.netns.matches(id));
        // Counters are read under the `ip netns` name when the namespace has one.
        let ip_name = deltas()
            .map(|d| &d.label)
            .chain(checks().map(|c| &c.label))
            .find_map(NetnsLabel::ip_netns)
            .or_else(|| named.clone().map(|n| n.ip_netns.as_str()).find(|n| !n.is_empty()));
        let pid = deltas().map(|d| d.pid).chain(named.map(|n| n.pid)).find(|p| *p != 0);
        match (ip_name, pid) {
            _ if host => String::new(),
            (Some(l), _) => format!("ip netns exec {l} "),
            (None, Some(pid)) => format!("nsenter --net=/proc/{pid}/ns/net "),
            (None, None) => format!("nsenter --net=/proc/<PID in netns {}>/ns/net ", id.inode),
        }
    }

    pub(super) fn a(&mut self, id: CauseId) -> &mut Acc {
        self.acc.entry(id).or_default()
    }

    /// Selects cause `id` by `drops` packets a counter in `netns` counted; returns it for evidence.
    pub(super) fn counted(&mut self, id: CauseId, netns: NetnsId, drops: u64) -> &mut Acc {
        let a = self.a(id);
        a.select(drops, drops);
        a.in_netns(netns);
        a
    }

    /// Adds evidence and advice (in order, without repeats) to a cause.
    pub(super) fn add(&mut self, id: CauseId, evidence: Vec<String>, advice: Vec<String>) {
        let a = self.a(id);
        for e in evidence {
            a.ev(e);
        }
        for x in advice {
            a.adv(x);
        }
    }

    /// Our own namespace: that of the host's delta ([`Ctx::host`]).
    pub(super) fn host_id(&self) -> NetnsId {
        self.host().map_or_else(NetnsId::default, |h| h.netns)
    }

    /// The host's (our own namespace's) delta, for host-wide counters and sysctls.
    pub(super) fn host(&self) -> Option<&'a NetnsDelta> {
        self.input.deltas.iter().find(|d| d.is_self).or_else(|| self.input.deltas.first())
    }

    /// A sysctl in namespace `id` (its counters' reading: by cookie where both say one, else
    /// by inode), falling back to the host's value for host-wide ones.
    pub(super) fn sysctl(&self, id: NetnsId, key: &str) -> Option<(String, bool)> {
        if let Some(v) = self.input.deltas.iter().find(|d| d.netns.matches(id)).and_then(|d| d.sysctls.get(key)) {
            return Some((v.clone(), false));
        }
        self.host().and_then(|h| h.sysctls.get(key)).map(|v| (v.clone(), true))
    }

    /// `key = value` of [`Ctx::sysctl`], `(host-wide)` when it is the host's.
    pub(super) fn sysctl_str(&self, id: NetnsId, key: &str) -> String {
        match self.sysctl(id, key) {
            Some((v, false)) => format!("{key} = {v}"),
            Some((v, true)) => format!("{key} = {v} (host-wide)"),
            None => format!("{key} unknown"),
        }
    }

    /// The first number of [`Ctx::sysctl`].
    pub(super) fn sysctl_u64(&self, id: NetnsId, key: &str) -> Option<u64> {
        self.sysctl(id, key).and_then(|(v, _)| v.split_whitespace().next().and_then(|x| x.parse().ok()))
    }

    pub(super) fn checks_for(&self, id: CauseId) -> Vec<&'a ConfigChecks> {
        let a = self.acc.get(&id);
        let of = |c: &&ConfigChecks| a.is_none_or(|a| a.netns.is_empty() || a.has_netns(c.netns));
        self.input.checks.iter().filter(of).collect()
    }

    pub(super) fn deltas_for(&self, id: CauseId) -> Vec<&'a NetnsDelta> {
        let a = self.acc.get(&id);
        let of = |d: &&NetnsDelta| a.is_none_or(|a| a.netns.is_empty() || a.has_netns(d.netns));
        self.input.deltas.iter().filter(of).collect()
    }

    /// The flows dropped with one of `reasons`, largest first; and the flows whose reason says
    /// nothing (none on a kernel without reasons, or `NOT_SPECIFIED`) and whose drop location points
    /// at the cause those reasons select. Benign flows (broadcast nobody wanted, teardown, ...) are
    /// never among them.
    pub(super) fn drop_flows(&self, reasons: &[&str]) -> Vec<&'a FlowCount> {
        let causes: Vec<CauseId> = reasons.iter().filter_map(|r| taxonomy::cause_for_reason(r)).collect();
        let by_location = |f: &FlowCount| {
            (f.reason == crate::decode::reasons::NO_REASON || f.reason == "NOT_SPECIFIED")
                && !f.location.is_empty()
                && taxonomy::cause_for_location(&f.location).is_some_and(|c| causes.contains(&c))
                && taxonomy::benign_for_location(&f.reason, &f.location).is_none()
        };
        let mut v: Vec<_> = self
            .input
            .summary
            .flows
            .iter()
            .filter(|f| reasons.contains(&f.reason.as_str()) || by_location(f))
            .filter(|f| taxonomy::benign_for_flow(f).is_none())
            .collect();
        v.sort_by_key(|f| std::cmp::Reverse(f.count));
        v
    }
}

/// The name counters were read under, if any.
fn name(label: &NetnsLabel) -> Option<String> {
    (!matches!(label, NetnsLabel::Inode(_))).then(|| label.to_string())
}
