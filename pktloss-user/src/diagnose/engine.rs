//! The engine: each rule adds drops, evidence and advice to a cause's accumulator ([`Acc`]);
//! [`diagnose`] runs the rules in order, then builds, reconciles and ranks the causes.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Cause, CauseId, Diagnosis, DiagnosisInput, Explained,
    checks::config_findings,
    counter_rules::{counter_signals, counters_only_why, external_loss},
    events::{assign_events, claimed, event_evidence, memory_window, shows},
    taxonomy,
    template::Fill,
};
use crate::host::counters::{ConfigChecks, NetnsDelta};

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
    /// The events assigned here (reason, and the protocol, location or connections they are
    /// limited to).
    pub(super) events: Vec<Explained>,
    /// Counter keys seen (for reconciliation): counters for this cause were readable.
    pub(super) counter_seen: bool,
}

impl Acc {
    /// Selects the cause by a counter: `drops` packets it counted (0 for a signal that is not a
    /// drop count) and `score` for ranking.
    pub(super) fn select(&mut self, drops: u64, score: u64) {
        self.counter_drops += drops;
        self.selected = true;
        self.score += score;
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
    /// What each namespace is called: its name in the summary (`ip netns`, pod, container,
    /// unit), else the label its counters were read under.
    pub(super) labels: BTreeMap<u32, String>,
    pub(super) acc: BTreeMap<CauseId, Acc>,
}

impl<'a> Ctx<'a> {
    pub(super) fn tag(&self, netns: u32) -> String {
        match self.labels.get(&netns) {
            Some(l) if !l.starts_with("netns:") => format!("[netns {l} ({netns})]"),
            _ if netns == 0 => "[netns ?]".to_owned(),
            _ => format!("[netns {netns}]"),
        }
    }

    /// Shell prefix that runs a command in a namespace: none in our own, `ip netns exec NAME `
    /// for one with an `ip netns` name, else `nsenter --net=/proc/PID/ns/net ` with a process
    /// seen living in it.
    pub(super) fn in_ns(&self, netns: u32) -> String {
        let deltas = || self.input.deltas.iter().filter(|d| d.netns == netns);
        let host = deltas().any(|d| d.is_self) || self.input.checks.iter().any(|c| c.netns == netns && c.is_self);
        let named = self.input.summary.namespaces.iter().filter(|n| n.netns == netns);
        // Counters are read under the `ip netns` name when the namespace has one.
        let ip_name = deltas()
            .map(|d| d.label.as_str())
            .chain(self.input.checks.iter().filter(|c| c.netns == netns).map(|c| c.label.as_str()))
            .find(|l| !l.is_empty() && !l.starts_with("netns:") && *l != "host")
            .or_else(|| named.clone().map(|n| n.ip_netns.as_str()).find(|n| !n.is_empty()));
        let pid = deltas().map(|d| d.pid).chain(named.map(|n| n.pid)).find(|p| *p != 0);
        match (ip_name, pid) {
            _ if host => String::new(),
            (Some(l), _) => format!("ip netns exec {l} "),
            (None, Some(pid)) => format!("nsenter --net=/proc/{pid}/ns/net "),
            (None, None) => format!("nsenter --net=/proc/<PID in netns {netns}>/ns/net "),
        }
    }

    pub(super) fn a(&mut self, id: CauseId) -> &mut Acc {
        self.acc.entry(id).or_default()
    }

    /// Selects cause `id` by `drops` packets a counter in `netns` counted; returns it for evidence.
    pub(super) fn counted(&mut self, id: CauseId, netns: u32, drops: u64) -> &mut Acc {
        let a = self.a(id);
        a.select(drops, drops);
        a.netns.insert(netns);
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

    /// The host's (our own namespace's) delta, for host-wide counters and sysctls.
    pub(super) fn host(&self) -> Option<&'a NetnsDelta> {
        self.input.deltas.iter().find(|d| d.is_self).or_else(|| self.input.deltas.first())
    }

    /// A sysctl in a namespace, falling back to the host's value for host-wide ones.
    pub(super) fn sysctl(&self, netns: u32, key: &str) -> Option<(String, bool)> {
        if let Some(v) = self.input.deltas.iter().find(|d| d.netns == netns).and_then(|d| d.sysctls.get(key)) {
            return Some((v.clone(), false));
        }
        self.host().and_then(|h| h.sysctls.get(key)).map(|v| (v.clone(), true))
    }

    pub(super) fn sysctl_str(&self, netns: u32, key: &str) -> String {
        match self.sysctl(netns, key) {
            Some((v, false)) => format!("{key} = {v}"),
            Some((v, true)) => format!("{key} = {v} (host-wide)"),
            None => format!("{key} unknown"),
        }
    }

    pub(super) fn sysctl_u64(&self, netns: u32, key: &str) -> Option<u64> {
        self.sysctl(netns, key).and_then(|(v, _)| v.split_whitespace().next().and_then(|x| x.parse().ok()))
    }

    pub(super) fn checks_for(&self, id: CauseId) -> Vec<&'a ConfigChecks> {
        let ns = self.acc.get(&id).map(|a| a.netns.clone()).unwrap_or_default();
        self.input.checks.iter().filter(|c| ns.is_empty() || ns.contains(&c.netns)).collect()
    }

    pub(super) fn deltas_for(&self, id: CauseId) -> Vec<&'a NetnsDelta> {
        let ns = self.acc.get(&id).map(|a| a.netns.clone()).unwrap_or_default();
        self.input.deltas.iter().filter(|d| ns.is_empty() || ns.contains(&d.netns)).collect()
    }
}

/// Classify, and also return the reconciliation and what could not be read.
pub(crate) fn diagnose(input: &DiagnosisInput<'_>) -> Diagnosis {
    let mut labels = BTreeMap::new();
    for d in input.deltas {
        labels.insert(d.netns, d.label.clone());
    }
    for c in input.checks {
        labels.entry(c.netns).or_insert_with(|| c.label.clone());
    }
    for n in input.summary.namespaces.iter().filter(|n| !n.label.is_empty()) {
        labels.insert(n.netns, n.label.clone());
    }
    let mut cx = Ctx { input, labels, acc: BTreeMap::new() };
    let mut reconciliation = Vec::new();

    let benign = assign_events(&mut cx);
    counter_signals(&mut cx);
    memory_window(&mut cx);
    external_loss(&mut cx);
    // The (reason, connection) pairs taken by assignments limited to connections: final once
    // the rules that move events have run.
    let taken = claimed(&cx);
    event_evidence(&mut cx, &taken);
    config_findings(&mut cx);

    // Which cause explains which traced drops.
    let mut assignments: Vec<Explained> = cx.acc.values().flat_map(|a| a.events.iter().cloned()).collect();
    assignments.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.cause.cmp(&b.cause)));

    // Build, reconcile, rank.
    let mut causes = Vec::new();
    let ids: Vec<CauseId> = cx.acc.keys().copied().collect();
    for id in ids {
        let a = cx.acc.remove(&id).unwrap_or_default();
        let drops = a.event_drops.max(a.counter_drops);
        if drops == 0 && !a.selected {
            continue;
        }
        let info = taxonomy::info(id);
        let mut evidence = a.evidence;
        // Namespaces that came or went during the capture: where their counters come from.
        for d in input.deltas.iter().filter(|d| a.netns.contains(&d.netns)) {
            if let Some(t) = d.appeared_after {
                evidence.push(format!(
                    "{} appeared {t:.1} s into the capture: its counters count from its birth",
                    cx.tag(d.netns)
                ));
            }
            if let Some(t) = d.gone_after {
                evidence.push(format!(
                    "{} was gone {t:.1} s into the capture: its counters are its last reading",
                    cx.tag(d.netns)
                ));
            }
        }
        if a.event_drops > 0 && a.counter_drops > 0 {
            let line = match a.counter_drops.cmp(&a.event_drops) {
                std::cmp::Ordering::Equal => {
                    format!("reconcile: {} traced drops match the counters exactly", a.event_drops)
                }
                std::cmp::Ordering::Greater => format!(
                    "reconcile: counters show {} drops, events {}: {} not seen as events ({})",
                    a.counter_drops,
                    a.event_drops,
                    a.counter_drops - a.event_drops,
                    counters_only_why(id)
                ),
                std::cmp::Ordering::Less => format!(
                    "reconcile: events show {} drops, counters {}: {} not in the counters read (a namespace not read, or counted under another counter)",
                    a.event_drops,
                    a.counter_drops,
                    a.event_drops - a.counter_drops
                ),
            };
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        } else if a.counter_drops > 0 && a.event_drops == 0 {
            let line = format!(
                "reconcile: {} drops counted by the kernel, none traced as drop events ({})",
                a.counter_drops,
                counters_only_why(id)
            );
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        } else if a.event_drops > 0 && a.counter_drops == 0 && a.counter_seen {
            let line = format!(
                "reconcile: {} traced drops, the counters read show none (a namespace not read, or a path without a counter)",
                a.event_drops
            );
            reconciliation.push(format!("{id}: {}", line.trim_start_matches("reconcile: ")));
            evidence.push(line);
        }
        // The taxonomy's generic lines, made concrete from the largest flow of this cause's
        // drops and run in its namespace; a line that cannot be made concrete is left out.
        let flow =
            input.summary.flows.iter().filter(|f| a.events.iter().any(|e| shows(e, f, &taken))).max_by_key(|f| f.count);
        let namespaces: Vec<u32> = a.netns.iter().copied().filter(|n| *n != 0).collect();
        let in_ns = match namespaces.as_slice() {
            [one] => cx.in_ns(*one),
            _ => String::new(),
        };
        let fill = Fill::from_flow(flow, in_ns);
        let mut advice = a.advice;
        // The generic remediation only when the checks found nothing specific to say.
        if advice.is_empty() {
            advice.extend(info.remediation.iter().filter_map(|r| fill.fill(r)));
        }
        let mut verify: Vec<String> = Vec::new();
        let lines = info.verify.iter().map(|v| (*v, "")).chain(info.checks.iter().map(|c| (*c, "check: ")));
        for (line, kind) in lines {
            if let Some(cmd) = fill.command(line)
                && !verify.iter().any(|v| v.trim_start_matches("check: ") == cmd)
            {
                verify.push(format!("{kind}{cmd}"));
            }
        }
        causes.push((
            a.score,
            Cause {
                id,
                title: info.title.to_owned(),
                drops,
                event_drops: a.event_drops,
                counter_drops: a.counter_drops,
                explanation: info.explanation.to_owned(),
                evidence,
                advice,
                verify,
                netns: a.netns.into_iter().filter(|n| *n != 0).collect(),
            },
        ));
    }
    causes.sort_by(|(sa, a), (sb, b)| {
        b.drops
            .cmp(&a.drops)
            .then(sb.cmp(sa))
            .then(b.evidence.len().cmp(&a.evidence.len()))
            .then(taxonomy::order(a.id).cmp(&taxonomy::order(b.id)))
    });
    let causes: Vec<Cause> = causes.into_iter().map(|(_, c)| c).collect();

    let s = input.summary;
    let explained: u64 = causes.iter().map(|c| c.event_drops).sum();
    if s.total_drops > 0 || benign > 0 {
        reconciliation.insert(
            0,
            format!(
                "traced drops: {} in total; {} assigned to causes; {} socket teardown, unjoined multicast or IPv6 link start-up (not loss: {}, NOT_SPECIFIED at {}, router and neighbour solicitations and MLD reports to ff02::/16)",
                s.total_drops,
                explained,
                benign,
                taxonomy::BENIGN_REASONS.join(", "),
                taxonomy::BENIGN_LOCATIONS.join(", ")
            ),
        );
    }
    let mut unavailable = BTreeSet::new();
    for d in input.deltas {
        for u in &d.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag(d.netns)));
        }
    }
    for c in input.checks {
        for u in &c.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag(c.netns)));
        }
    }
    Diagnosis { causes, explained: assignments, reconciliation, unavailable: unavailable.into_iter().collect() }
}
