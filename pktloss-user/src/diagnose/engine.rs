//! The engine: [`diagnose`] makes the passes' context ([`Ctx`]), runs the passes over it in
//! order (each adds drops, evidence and advice to a cause's accumulator, [`super::ctx::Acc`]),
//! then builds, reconciles and ranks the causes. Only the engine calls the passes; they do not
//! call back.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Benign, Cause, CauseId, Diagnosis, DiagnosisInput, Explained, Verify, VerifyKind,
    checks::config_findings,
    counter_rules::{counter_signals, counters_only_why, external_loss},
    ctx::{Acc, Ctx},
    events::{BenignTally, assign_events, claimed, event_evidence, memory_window, shows},
    taxonomy,
    template::Fill,
    traps::hardware_traps,
};
use crate::{
    host::counters::{ConfigChecks, NetnsDelta},
    model::{FilterInfo, FilterScope, Flow},
};

/// How a cause's traced drops and counters compare: a line of the diagnosis's reconciliation,
/// and of the cause's evidence.
fn reconcile(id: CauseId, line: &str, evidence: &mut Vec<String>, reconciliation: &mut Vec<String>) {
    reconciliation.push(format!("{id}: {line}"));
    evidence.push(format!("reconcile: {line}"));
}

/// The counters and checks of what a filter covers: the namespaces and devices it names.
fn scoped(input: &DiagnosisInput<'_>, scope: &FilterScope) -> (Vec<NetnsDelta>, Vec<ConfigChecks>) {
    let deltas = input
        .deltas
        .iter()
        .filter(|d| scope.has_netns(d.netns.inode))
        .map(|d| {
            let mut d = d.clone();
            d.devices.retain(|x| scope.has_device(&x.name));
            d.qdiscs.retain(|q| scope.has_device(&q.dev));
            d
        })
        .collect();
    let checks = input
        .checks
        .iter()
        .filter(|c| scope.has_netns(c.netns.inode))
        .map(|c| {
            let mut c = c.clone();
            c.rings.retain(|r| scope.has_device(&r.dev));
            c.rps.retain(|r| scope.has_device(&r.dev));
            c
        })
        .collect();
    (deltas, checks)
}

/// Classify, and also return the reconciliation and what could not be read. With a filter,
/// only the counters of what it covers are read, and counters that count traffic it may leave
/// out are evidence, not drops (see docs/diagnosis.md, "With a filter").
pub(crate) fn diagnose(input: &DiagnosisInput<'_>) -> Diagnosis {
    match input.summary.filter.as_ref() {
        Some(f) => {
            let (deltas, checks) = scoped(input, &f.scope);
            diagnose_in(&DiagnosisInput { summary: input.summary, deltas: &deltas, checks: &checks }, Some(f))
        }
        None => diagnose_in(input, None),
    }
}

fn diagnose_in(input: &DiagnosisInput<'_>, filter: Option<&FilterInfo>) -> Diagnosis {
    let mut cx = Ctx::new(input, filter);
    let (benign, taken) = run_passes(&mut cx);

    // Which cause explains which traced drops.
    let mut assignments: Vec<Explained> = cx.acc.values().flat_map(|a| a.events.iter().cloned()).collect();
    assignments.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.cause.cmp(&b.cause)));

    // Build, reconcile, rank.
    let mut reconciliation = Vec::new();
    let mut causes = Vec::new();
    let mut outside = Vec::new();
    let ids: Vec<CauseId> = cx.acc.keys().copied().collect();
    for id in ids {
        let a = cx.acc.remove(&id).unwrap_or_default();
        match build(&cx, id, a, filter, &taken, &mut reconciliation) {
            Built::Ranked(score, c) => causes.push((score, c)),
            Built::Outside(c) => outside.push(c),
            Built::Nothing => {}
        }
    }
    causes.sort_by(|(sa, a), (sb, b)| {
        b.drops
            .cmp(&a.drops)
            .then(sb.cmp(sa))
            .then(b.evidence.len().cmp(&a.evidence.len()))
            .then(taxonomy::order(a.id).cmp(&taxonomy::order(b.id)))
    });
    let causes: Vec<Cause> = causes.into_iter().map(|(_, c)| c).collect();

    if let Some(f) = filter {
        reconciliation.insert(0, filter_line(f, cx.counters_count, outside.len()));
    }
    let benign = benign.into_list();
    traced_lines(input, &causes, &benign, &mut reconciliation);
    outside.sort_by(|a, b| b.drops.cmp(&a.drops).then(taxonomy::order(a.id).cmp(&taxonomy::order(b.id))));
    Diagnosis {
        causes,
        explained: assignments,
        benign,
        reconciliation,
        unavailable: unavailable(&cx),
        outside_filter: outside,
    }
}

/// The passes, in their order: events assigned to causes, counters, hardware traps, the drops of a receive
/// memory window moved, external loss, the evidence of the events, configuration findings.
/// Returns the benign drops and the (reason, connection) pairs taken by assignments limited
/// to connections.
fn run_passes(cx: &mut Ctx<'_>) -> (BenignTally, BTreeSet<(String, Flow)>) {
    let benign = assign_events(cx);
    counter_signals(cx);
    hardware_traps(cx);
    memory_window(cx);
    external_loss(cx);
    // The (reason, connection) pairs taken by assignments limited to connections: final once
    // the rules that move events have run.
    let taken = claimed(cx);
    event_evidence(cx, &taken);
    config_findings(cx);
    (benign, taken)
}

/// What one cause's accumulator becomes.
enum Built {
    /// A ranked cause, with its counter score for ties.
    Ranked(u64, Cause),
    /// Counters alone, outside the filter's view: listed apart, not ranked.
    Outside(Cause),
    /// Nothing to show.
    Nothing,
}

/// One cause from its accumulator: its drops as the filter lets them count, its
/// reconciliation, and its advice and verify lines made concrete.
fn build(
    cx: &Ctx<'_>,
    id: CauseId,
    mut a: Acc,
    filter: Option<&FilterInfo>,
    taken: &BTreeSet<(String, Flow)>,
    reconciliation: &mut Vec<String>,
) -> Built {
    let input = cx.input;
    if a.event_drops.max(a.counter_drops) == 0 && !a.selected {
        return Built::Nothing;
    }
    // With a filter, counters count the filter's drops only when it takes whole
    // namespaces, and then only the counters of those namespaces (not host-wide ones).
    let counted = a.traced || (cx.counters_count && (filter.is_none() || !a.netns.is_empty()));
    let read = a.counter_drops;
    if !counted {
        a.counter_drops = 0;
    }
    let drops = a.event_drops.max(a.counter_drops);
    let info = taxonomy::info(id);
    let mut evidence = std::mem::take(&mut a.evidence);
    if let Some(f) = filter.filter(|_| !counted && (read > 0 || a.event_drops == 0)) {
        if a.event_drops == 0 {
            evidence.push(format!(
                "outside the filter's view: only counters select this cause ({read} drops counted), and they count traffic the filter `{}` may leave out; none of the filter's drops were traced as it",
                f.expr
            ));
        } else {
            let line = format!(
                "{} traced drops are the filter's; the counters read show {read} for all traffic (they cannot be split by the filter `{}`, so they are evidence, not drops)",
                a.event_drops, f.expr
            );
            reconcile(id, &line, &mut evidence, reconciliation);
        }
    }
    if drops == 0 && !counted {
        return Built::Outside(Cause {
            id,
            title: info.title.to_owned(),
            drops: read,
            event_drops: 0,
            counter_drops: read,
            explanation: info.explanation.to_owned(),
            evidence,
            advice: a.advice,
            verify: Vec::new(),
            netns: a.netns.into_iter().filter(|n| *n != 0).collect(),
        });
    }
    // Namespaces that came or went during the capture: where their counters come from.
    // By cookie: a namespace that had one of its inodes before or after is not one of them.
    for d in input.deltas.iter().filter(|d| a.has_netns(d.netns)) {
        if let Some(t) = d.appeared_after {
            evidence.push(format!(
                "{} appeared {t:.1} s into the capture: its counters count from its birth",
                cx.tag_read(d.netns)
            ));
        }
        if let Some(t) = d.gone_after {
            evidence.push(format!(
                "{} was gone {t:.1} s into the capture: its counters are its last reading",
                cx.tag_read(d.netns)
            ));
        }
    }
    if let Some(line) = reconcile_line(id, &a, counted) {
        reconcile(id, &line, &mut evidence, reconciliation);
    }
    let (advice, verify) = concrete(cx, info, &mut a, taken);
    Built::Ranked(
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
    )
}

/// How a cause's traced drops and its counters compare, if there is something to say.
fn reconcile_line(id: CauseId, a: &Acc, counted: bool) -> Option<String> {
    if a.event_drops > 0 && a.counter_drops > 0 {
        Some(match a.counter_drops.cmp(&a.event_drops) {
            std::cmp::Ordering::Equal => {
                format!("{} traced drops match the counters exactly", a.event_drops)
            }
            std::cmp::Ordering::Greater => format!(
                "counters show {} drops, events {}: {} not seen as events ({})",
                a.counter_drops,
                a.event_drops,
                a.counter_drops - a.event_drops,
                counters_only_why(id)
            ),
            std::cmp::Ordering::Less => format!(
                "events show {} drops, counters {}: {} not in the counters read (a namespace not read, or counted under another counter)",
                a.event_drops,
                a.counter_drops,
                a.event_drops - a.counter_drops
            ),
        })
    } else if a.counter_drops > 0 && a.event_drops == 0 {
        Some(format!(
            "{} drops counted by the kernel, none traced as drop events ({})",
            a.counter_drops,
            counters_only_why(id)
        ))
    } else if a.event_drops > 0 && a.counter_drops == 0 && a.counter_seen && counted {
        Some(format!(
            "{} traced drops, the counters read show none (a namespace not read, or a path without a counter)",
            a.event_drops
        ))
    } else {
        None
    }
}

/// The cause's advice and verify lines: the specific ones the passes made, else the
/// taxonomy's generic lines, made concrete from the largest flow of this cause's drops and
/// run in its namespace (a line that cannot be made concrete is left out).
fn concrete(
    cx: &Ctx<'_>,
    info: &taxonomy::CauseInfo,
    a: &mut Acc,
    taken: &BTreeSet<(String, Flow)>,
) -> (Vec<String>, Vec<Verify>) {
    let flow =
        cx.input.summary.flows.iter().filter(|f| a.events.iter().any(|e| shows(e, f, taken))).max_by_key(|f| f.count);
    let namespaces: Vec<u32> = a.netns.iter().copied().filter(|n| *n != 0).collect();
    let in_ns = match namespaces.as_slice() {
        [one] => cx.in_ns(a.id_of(*one)),
        _ => String::new(),
    };
    let fill = Fill::from_flow(flow, in_ns);
    let mut advice = std::mem::take(&mut a.advice);
    // The generic remediation only when the checks found nothing specific to say.
    if advice.is_empty() {
        advice.extend(info.remediation.iter().filter_map(|r| fill.fill(r)));
    }
    let mut verify = std::mem::take(&mut a.verify);
    let generic = if verify.is_empty() { info.verify } else { &[] };
    let checks = if verify.is_empty() { info.checks } else { &[] };
    let lines = generic.iter().map(|v| (*v, VerifyKind::Fix)).chain(checks.iter().map(|c| (*c, VerifyKind::Check)));
    for (line, kind) in lines {
        if let Some(command) = fill.command(line)
            && !verify.iter().any(|v| v.command == command)
        {
            verify.push(Verify { kind, command });
        }
    }
    (advice, verify)
}

/// The first line of a filtered diagnosis's reconciliation: what the filter left out and what
/// the counters read mean under it.
fn filter_line(f: &FilterInfo, counters_count: bool, outside: usize) -> String {
    format!(
        "filter `{}`: {} drops left out, neither traced nor diagnosed; {}",
        f.expr,
        f.drops_filtered_out,
        if counters_count {
            "the counters read are those of the namespaces it selects whole".to_owned()
        } else {
            format!(
                "counters cannot be split by it: they add evidence to the causes of its traced drops, and {} cause{} that counters alone select {} listed outside its view, not ranked",
                outside,
                if outside == 1 { "" } else { "s" },
                if outside == 1 { "is" } else { "are" }
            )
        }
    )
}

/// The reconciliation of the traced drops as a whole: how many went to causes and how many
/// were benign, and the benign ones a counter counts too.
fn traced_lines(input: &DiagnosisInput<'_>, causes: &[Cause], benign: &[Benign], reconciliation: &mut Vec<String>) {
    let s = input.summary;
    let explained: u64 = causes.iter().map(|c| c.event_drops).sum();
    let benign_total: u64 = benign.iter().map(|b| b.drops).sum();
    if s.total_drops == 0 && benign_total == 0 {
        return;
    }
    let mut by_class: BTreeMap<taxonomy::BenignId, u64> = BTreeMap::new();
    for b in benign {
        *by_class.entry(b.class).or_default() += b.drops;
    }
    let classes: Vec<String> = by_class.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let by = if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) };
    reconciliation.insert(
        0,
        format!(
            "traced drops: {} in total; {} assigned to causes; {benign_total} benign, not loss{by}",
            s.total_drops, explained
        ),
    );
    // Benign drops that a counter counts too: the same packets, shown together, counted
    // nowhere else.
    let broadcast = by_class.get(&taxonomy::BenignId::UnwantedBroadcast).copied().unwrap_or(0);
    let ignored: u64 =
        input.deltas.iter().map(|d| d.counter("Udp.IgnoredMulti") + d.counter("Udp6.IgnoredMulti")).sum();
    if broadcast > 0 || ignored > 0 {
        reconciliation.push(format!(
            "unwanted-broadcast: {broadcast} traced (UDP broadcast and multicast to ports nobody listens on, and multicast to groups nobody joined); Udp.IgnoredMulti +{ignored} counts the UDP ones, not Udp.NoPorts: benign, in no cause"
        ));
    }
}

/// What could not be read, each line tagged with its namespace.
fn unavailable(cx: &Ctx<'_>) -> Vec<String> {
    let mut unavailable = BTreeSet::new();
    for d in cx.input.deltas {
        for u in &d.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag_read(d.netns)));
        }
    }
    for c in cx.input.checks {
        for u in &c.unavailable {
            unavailable.insert(format!("{} {u}", cx.tag_read(c.netns)));
        }
    }
    unavailable.into_iter().collect()
}
