//! `pktloss top`: a collector thread (kernel -> aggregate -> classify) feeding the TUI through
//! a channel, one update a second; the TUI owns the terminal on the main thread.
use std::{
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
    host::counters::{
        Counted, CounterWatch, NetnsDelta,
        nic::{DEVICE_COUNTERS, ETHTOOL_PREFIX, SOFTNET_DROPPED, TIME_SQUEEZE},
    },
    kernel::tracer::Options,
    model::Summary,
    session::{Session, netns_with_drops},
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
    let mut watch = CounterWatch::baseline();
    let mut counted = watch.at_start();
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
            counted = watch.refresh(&netns_with_drops(&summary));
        }
        if tx.send(update(summary, &counted)).is_err() {
            break;
        }
    }
}

/// What the TUI shows of a summary and the counters so far: the diagnosis `diagnose` would
/// give of them.
pub(crate) fn update(summary: Summary, counted: &Counted) -> Update {
    let d = diagnose::diagnose(&DiagnosisInput { summary: &summary, deltas: &counted.deltas, checks: &counted.checks });
    Update { causes: cause_views(&d, &summary), counters: counter_rows(&counted.deltas, &summary), summary }
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
                .map(|r| &r.reason.name);
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
        let label =
            summary.namespace(d.netns.inode, d.netns.cookie).map_or_else(|| d.label.to_string(), |n| n.label.clone());
        for dev in &d.devices {
            let scope = format!("{} ({label})", dev.name);
            for (name, value, _) in &DEVICE_COUNTERS {
                let v = value(dev);
                if v > 0 {
                    rows.push(CounterRow { scope: scope.clone(), counter: (*name).to_owned(), total: v });
                }
            }
            for (k, v) in &dev.ethtool {
                if *v > 0 {
                    rows.push(CounterRow { scope: scope.clone(), counter: format!("{ETHTOOL_PREFIX}{k}"), total: *v });
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
                        counter: SOFTNET_DROPPED.into(),
                        total: c.dropped,
                    });
                }
                if c.time_squeeze > 0 {
                    rows.push(CounterRow {
                        scope: format!("cpu{}", c.cpu),
                        counter: TIME_SQUEEZE.into(),
                        total: c.time_squeeze,
                    });
                }
            }
        }
    }
    // XDP programs' drops per device (a NIC driver's own counter in native mode; a veth's
    // reason-less frees), cumulative like the counters; unavailable ones have no row.
    for x in &summary.xdp_drops {
        if let Some(n) = x.drops {
            let prog = x.program.as_ref().map_or_else(|| "XDP program ?".to_owned(), |p| format!("xdp {}", p.label()));
            rows.push(CounterRow { scope: format!("{} {prog}", x.device), counter: "XDP_DROP".into(), total: n });
        }
    }
    // Hardware traps (devlink:devlink_trap_report), cumulative like the counters.
    for t in &summary.hw_traps.reported {
        rows.push(CounterRow {
            scope: format!("{} port {}", t.device, t.input_port),
            counter: format!("trap {} ({})", t.trap, t.group),
            total: t.count,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        diagnose::{Cause, CauseId, Explained},
        host::counters::{DeviceStats, SoftnetCpu},
        model::{NetnsId, ReasonCount},
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

    #[test]
    fn hardware_traps_are_counter_rows() {
        let mut s = Summary::default();
        s.hw_traps.reported.push(crate::model::HwTrap {
            device: "netdevsim/netdevsim1".into(),
            trap: "blackhole_route".into(),
            group: "l3_drops".into(),
            input_port: "eth0".into(),
            count: 9,
        });
        let rows = counter_rows(&[], &s);
        assert_eq!(
            rows.iter().map(|r| (r.scope.as_str(), r.counter.as_str(), r.total)).collect::<Vec<_>>(),
            [("netdevsim/netdevsim1 port eth0", "trap blackhole_route (l3_drops)", 9)]
        );
    }

    #[test]
    fn xdp_drops_are_counter_rows_unless_unavailable() {
        let mut s = Summary::default();
        let prog = crate::model::TcProgram { id: 7, name: "pktl_xdp".into(), attach: "xdp xdpdrv (native)".into() };
        for drops in [Some(5), None] {
            s.xdp_drops.push(crate::model::XdpDrops {
                device: "ens4".into(),
                drops,
                program: Some(prog.clone()),
                ..crate::model::XdpDrops::default()
            });
        }
        let rows = counter_rows(&[], &s);
        assert_eq!(
            rows.iter().map(|r| (r.scope.as_str(), r.counter.as_str(), r.total)).collect::<Vec<_>>(),
            [("ens4 xdp pktl_xdp (id 7)", "XDP_DROP", 5)]
        );
    }

    /// `top` diagnoses as `diagnose` does on the same drops and counters: the same causes, with
    /// the firewall rule's counter as evidence (`top` once had no rule deltas).
    #[test]
    fn top_diagnoses_as_diagnose_does() {
        use crate::host::counters::{ConfigChecks, FirewallRule, Gathered, NetnsSnapshot};
        let rule = |packets| FirewallRule {
            backend: "nft".into(),
            family: "inet".into(),
            table: "t".into(),
            chain: "input".into(),
            handle: Some(2),
            rule: "udp dport 9 drop".into(),
            verdict: "drop".into(),
            packets: Some(packets),
            ..FirewallRule::default()
        };
        let reading = |t, packets| Gathered {
            snapshots: vec![NetnsSnapshot {
                netns: NetnsId { inode: 1, cookie: 0 },
                taken_at: t,
                ..NetnsSnapshot::default()
            }],
            checks: vec![ConfigChecks {
                netns: NetnsId { inode: 1, cookie: 0 },
                drop_rules: vec![rule(packets)],
                ..ConfigChecks::default()
            }],
        };
        let summary = Summary {
            total_drops: 40,
            reasons: vec![ReasonCount { reason: "NETFILTER_DROP".into(), count: 40, ..ReasonCount::default() }],
            ..Summary::default()
        };
        let counted = |after| {
            let (deltas, checks) = crate::host::counters::finish(reading(1.0, 100), after);
            Counted { deltas, checks, ..Counted::default() }
        };
        let top = update(summary.clone(), &counted(reading(3.0, 140)));
        let diagnosed = crate::session::Diagnosed::of(&summary, counted(reading(3.0, 140)));
        assert_eq!(top.causes, cause_views(&diagnosed.diagnosis, &summary));
        let fw = top.causes.iter().find(|c| c.id == CauseId::FirewallDrop).expect("firewall cause");
        assert!(fw.evidence.iter().any(|e| e.contains("matched 40 packets")), "{:?}", fw.evidence);
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
