//! `pktloss top`: a collector thread (kernel -> aggregate -> classify) feeding the TUI through
//! a channel, one update a second; the TUI owns the terminal on the main thread.
use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    diagnose::{self, Diagnosis, DiagnosisInput, taxonomy},
    host::counters::{self, NetnsDelta, NetnsSnapshot},
    host::netns,
    kernel::tracer::Options,
    model::Summary,
    session::{Session, gather_before},
    tui::{self, CauseView, CounterRow, Update},
};

/// Run the live view until the user quits or a signal arrives; probes are detached on return.
/// Counters and the diagnosis refresh every `refresh`.
pub(crate) fn top(options: Options, refresh: Duration) -> Result<()> {
    // Attach before taking the terminal, so start errors print as one clean line.
    let mut session = Session::start(options)?;
    session.announce();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let stop2 = Arc::clone(&stop);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let collector = std::thread::Builder::new().name("pktloss-collect".into()).spawn(move || {
        collect_loop(session, &tx, &stop2, refresh);
        // The session is dropped: the probes are detached. Safety net: the TUI returns within
        // a frame of `stop`, unless it is stuck reading a terminal that hung up at the wrong
        // moment (crossterm-rs/crossterm#793, see `tui::term::InputWait`); then nothing else
        // will end the process, so end it here.
        if done_rx.recv_timeout(Duration::from_secs(2)) == Err(mpsc::RecvTimeoutError::Timeout) {
            tui::term::restore();
            std::process::exit(1);
        }
    })?;
    let res = tui::run(rx, Arc::clone(&stop));
    let _ = done_tx.send(());
    stop.store(true, Ordering::Relaxed);
    // The session (and its programs) is dropped when the collector returns. A panic in it was
    // already reported by the panic hook; the TUI's own result is what counts here.
    drop(collector.join());
    res
}

fn collect_loop(mut session: Session, tx: &mpsc::Sender<Update>, stop: &AtomicBool, refresh: Duration) {
    // Namespaces that exist now; one seen later was born during the run and counts from zero.
    let at_start: BTreeSet<u32> = netns::list().keys().copied().collect();
    let before = gather_before();
    let mut base: HashMap<u32, NetnsSnapshot> = before.snapshots.iter().map(|s| (s.netns, s.clone())).collect();
    let mut checks = before.checks.clone();
    let mut deltas: Vec<NetnsDelta> = Vec::new();
    let mut last_counters: Option<Instant> = None;
    let mut last_send: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        session.pump(100);
        if last_send.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            continue;
        }
        last_send = Some(Instant::now());
        let Ok(summary) = session.summary() else { continue };
        if last_counters.is_none_or(|t| t.elapsed() >= refresh) {
            last_counters = Some(Instant::now());
            // Namespaces that appeared since the start (a new container): baseline them now.
            let new: Vec<u32> =
                summary.flows.iter().map(|f| f.netns).filter(|n| *n != 0 && !base.contains_key(n)).collect();
            if !new.is_empty() {
                let g = counters::gather(&new);
                for snap in g.snapshots.into_iter().filter(|s| !s.not_found) {
                    let baseline = if at_start.contains(&snap.netns) { snap } else { snap.at_birth() };
                    base.entry(baseline.netns).or_insert(baseline);
                }
                for c in g.checks {
                    if !checks.iter().any(|x| x.netns == c.netns) {
                        checks.push(c);
                    }
                }
            }
            let inodes: Vec<u32> = base.keys().copied().collect();
            let mut next: Vec<NetnsDelta> = Vec::new();
            for now in counters::snapshot_all(&inodes) {
                if now.not_found {
                    // Gone: keep what it counted while it lived.
                    next.extend(deltas.iter().find(|d| d.netns == now.netns).cloned());
                } else if let Some(b) = base.get(&now.netns) {
                    next.push(counters::delta(b, &now));
                }
            }
            deltas = next;
        }
        let d = diagnose::diagnose(&DiagnosisInput { summary: &summary, deltas: &deltas, checks: &checks });
        let update = Update { causes: cause_views(&d, &summary), counters: counter_rows(&deltas, &summary), summary };
        if tx.send(update).is_err() {
            break;
        }
    }
}

/// Map diagnosed causes to the TUI's view, linking each to the drop reasons it explains: the
/// diagnosis's own assignments (which split a reason by protocol or location), else the
/// reasons the taxonomy maps to the cause.
pub(crate) fn cause_views(d: &Diagnosis, summary: &Summary) -> Vec<CauseView> {
    d.causes
        .iter()
        .map(|c| {
            let mut reasons: Vec<String> = Vec::new();
            let assigned = d.explained.iter().filter(|e| e.cause == c.id).map(|e| &e.reason);
            let mapped = summary
                .reasons
                .iter()
                .filter(|r| taxonomy::cause_for_reason(&r.reason) == Some(c.id))
                .map(|r| &r.reason);
            for r in assigned.chain(mapped) {
                if !reasons.contains(r) {
                    reasons.push(r.clone());
                }
            }
            CauseView {
                id: c.id,
                title: c.title.clone(),
                drops: c.drops,
                evidence: c.evidence.clone(),
                advice: c.advice.clone(),
                netns: c.netns.clone(),
                reasons,
            }
        })
        .collect()
}

/// Drop counters that no event shows: per-device NIC/queue counters and per-CPU softnet; each
/// namespace called by its name in the summary, else the label its counters were read under.
pub(crate) fn counter_rows(deltas: &[NetnsDelta], summary: &Summary) -> Vec<CounterRow> {
    let mut rows = Vec::new();
    let mut softnet_done = false;
    for d in deltas {
        let label = summary.namespace(d.netns, 0).map_or_else(|| d.label.to_string(), |n| n.label.clone());
        for dev in &d.devices {
            let scope = format!("{} ({label})", dev.name);
            for (name, v) in [
                ("rx_dropped", dev.rx_dropped),
                ("rx_missed_errors", dev.rx_missed_errors),
                ("rx_fifo_errors", dev.rx_fifo_errors),
                ("rx_over_errors", dev.rx_over_errors),
                ("rx_crc_errors", dev.rx_crc_errors),
                ("tx_dropped", dev.tx_dropped),
                ("tx_errors", dev.tx_errors),
            ] {
                if v > 0 {
                    rows.push(CounterRow { scope: scope.clone(), counter: name.to_owned(), total: v });
                }
            }
            for (k, v) in &dev.ethtool {
                if *v > 0 {
                    rows.push(CounterRow { scope: scope.clone(), counter: format!("ethtool {k}"), total: *v });
                }
            }
        }
        for q in &d.qdiscs {
            if q.drops > 0 {
                rows.push(CounterRow {
                    scope: format!("{} qdisc {} ({label})", q.dev, q.kind),
                    counter: "drops".into(),
                    total: q.drops,
                });
            }
        }
        if !softnet_done && !d.softnet.is_empty() {
            softnet_done = true;
            for c in &d.softnet {
                if c.dropped > 0 {
                    rows.push(CounterRow {
                        scope: format!("cpu{}", c.cpu),
                        counter: "softnet dropped".into(),
                        total: c.dropped,
                    });
                }
                if c.time_squeeze > 0 {
                    rows.push(CounterRow {
                        scope: format!("cpu{}", c.cpu),
                        counter: "time_squeeze".into(),
                        total: c.time_squeeze,
                    });
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        diagnose::{Cause, CauseId, Explained},
        host::counters::{DeviceStats, SoftnetCpu},
        model::ReasonCount,
    };

    #[test]
    fn counter_rows_only_nonzero_and_softnet_once() {
        let d = NetnsDelta {
            label: "host".into(),
            devices: vec![DeviceStats { name: "eth0".into(), rx_missed_errors: 7, ..DeviceStats::default() }],
            softnet: vec![SoftnetCpu { cpu: 1, dropped: 3, ..SoftnetCpu::default() }],
            ..NetnsDelta::default()
        };
        let rows = counter_rows(&[d.clone(), d], &Summary::default());
        assert_eq!(rows.iter().filter(|r| r.counter == "rx_missed_errors").count(), 2);
        assert_eq!(rows.iter().filter(|r| r.counter == "softnet dropped").count(), 1);
        assert_eq!(rows[0].scope, "eth0 (host)");
    }

    /// Reasons the diagnosis splits (`SOCKET_RCVBUFF` by protocol, UNKNOWN by location) link to
    /// the causes it gave them; the others by the taxonomy.
    #[test]
    fn causes_link_to_the_reasons_the_diagnosis_gave_them() {
        let cause = |id| Cause { id, ..Cause::default() };
        let explained =
            |cause, reason: &str| Explained { cause, reason: reason.into(), drops: 1, ..Explained::default() };
        let d = Diagnosis {
            causes: vec![cause(CauseId::UdpRcvbufFull), cause(CauseId::NoListener), cause(CauseId::FirewallDrop)],
            explained: vec![
                explained(CauseId::UdpRcvbufFull, "SOCKET_RCVBUFF"),
                explained(CauseId::NoListener, "UNKNOWN"),
            ],
            ..Diagnosis::default()
        };
        let reason = |r: &str| ReasonCount { reason: r.into(), ..ReasonCount::default() };
        let s = Summary {
            reasons: vec![reason("SOCKET_RCVBUFF"), reason("UNKNOWN"), reason("NETFILTER_DROP")],
            ..Summary::default()
        };
        let links: Vec<Vec<String>> = cause_views(&d, &s).into_iter().map(|v| v.reasons).collect();
        assert_eq!(
            links,
            [vec!["SOCKET_RCVBUFF".to_owned()], vec!["UNKNOWN".to_owned()], vec!["NETFILTER_DROP".to_owned()]]
        );
    }
}
