//! Export step: the dropwatch-style text summary, JSON, and `watch` lines.
use std::fmt::Write as _;

use serde::Serialize;

use crate::model::Summary;

fn endpoint(addr: &str, port: u16, proto: &str) -> String {
    if addr.is_empty() {
        return "-".to_owned();
    }
    let a = if addr.contains(':') { format!("[{addr}]") } else { addr.to_owned() };
    match proto {
        "tcp" | "udp" | "sctp" | "udplite" => format!("{a}:{port}"),
        _ => a,
    }
}

/// One-line form of a flow: `udp 10.0.0.1:5000 -> 10.0.0.2:9`.
pub fn flow_line(proto: &str, src: &str, sport: u16, dst: &str, dport: u16) -> String {
    let mut s = format!("{proto} {} -> {}", endpoint(src, sport, proto), endpoint(dst, dport, proto));
    if proto.starts_with("icmp") {
        let _ = write!(s, " type {sport} code {dport}");
    }
    s
}

/// Percentage of `part` in `whole`.
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// The dropwatch-style summary.
pub fn summary_text(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pktloss: {} drops in {:.1}s ({:.1}/s) on {} (kernel {})",
        s.total_drops, s.duration_secs, s.drops_per_sec, s.hostname, s.kernel
    );
    let budget = match s.detail.budget_per_sec {
        None => "unlimited".to_owned(),
        Some(0) => "off".to_owned(),
        Some(b) => format!("{b}/s"),
    };
    let _ = writeln!(
        o,
        "detail: {} drops with detail, {} without; {} detail events lost ({} over budget {budget}, {} ring buffer full)",
        s.drops_with_detail, s.drops_without_detail, s.lost_events, s.detail.lost_budget, s.detail.lost_ringbuf
    );
    let active: Vec<String> =
        s.probes.iter().filter(|p| p.active).map(|p| format!("{} ({})", p.name, p.attach)).collect();
    let skipped: Vec<String> =
        s.probes.iter().filter(|p| !p.active).map(|p| format!("{}: {}", p.name, p.note)).collect();
    let _ = writeln!(o, "probes: {}", if active.is_empty() { "none".to_owned() } else { active.join(", ") });
    for sk in skipped {
        let _ = writeln!(o, "  skipped {sk}");
    }
    for w in &s.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    if s.total_drops == 0 {
        let _ = writeln!(o, "\nno drops");
    }
    if !s.reasons.is_empty() {
        let _ = writeln!(o, "\nDrops by reason:");
        for r in &s.reasons {
            let _ = writeln!(
                o,
                "  {:>10}  {:>5.1}%  {:<28} {}",
                r.count,
                pct(r.count, s.total_drops),
                r.reason,
                r.description
            );
        }
    }
    if !s.locations.is_empty() {
        let _ = writeln!(o, "\nDrops by location:");
        for l in s.locations.iter().take(30) {
            let _ = writeln!(o, "  {:>10}  {:<44} {}", l.count, l.symbol, l.reason);
            for f in l.stack.iter().take(24) {
                let _ = writeln!(o, "              {f}");
            }
        }
    }
    if !s.flows.is_empty() {
        let _ = writeln!(o, "\nTop flows:");
        for f in s.flows.iter().take(20) {
            let dev = if f.device.is_empty() { format!("if{}", f.ifindex) } else { f.device.clone() };
            let proc_ = if f.process.is_empty() { String::new() } else { format!(" by {}", f.process) };
            let _ = writeln!(
                o,
                "  {:>10}  {:<52} {:<18} netns {} dev {}{}",
                f.count,
                flow_line(&f.proto, &f.src, f.sport, &f.dst, f.dport),
                f.why(),
                f.netns,
                dev,
                proc_
            );
        }
        if s.flow_table.evicted > 0 {
            let _ = writeln!(
                o,
                "  ({} flows evicted, {} drops not listed)",
                s.flow_table.evicted, s.flow_table.drops_not_in_flows
            );
        }
    }
    let devs: Vec<_> = s.devices.iter().filter(|d| d.drops > 0 || d.tx_packets > 0).collect();
    if !devs.is_empty() {
        let _ = writeln!(o, "\nDevices:");
        for d in devs.iter().take(20) {
            let name = if d.name.is_empty() { format!("if{}", d.ifindex) } else { d.name.clone() };
            let _ = writeln!(
                o,
                "  {:<16} netns {:<11} tx {:>10}  drops {:>10}  ({:.2}% of tx+drops)",
                name,
                d.netns,
                d.tx_packets,
                d.drops,
                pct(d.drops, d.drops + d.tx_packets)
            );
        }
    }
    if s.retransmits.total > 0 {
        let _ = writeln!(o, "\nTCP retransmissions: {}", s.retransmits.total);
        for r in s.retransmits.flows.iter().take(10) {
            let _ = writeln!(
                o,
                "  {:>10}  {}  netns {}",
                r.count,
                flow_line("tcp", &r.src, r.sport, &r.dst, r.dport),
                r.netns
            );
        }
    }
    o
}

/// Pretty JSON of any serializable value (the summary, or a report with causes).
pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// One `watch` interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WatchLine {
    /// Seconds since start, at the end of the interval.
    pub t: f64,
    pub interval_secs: f64,
    /// Drops in this interval.
    pub drops: u64,
    pub total_drops: u64,
    pub lost_events: u64,
    /// Drops per (reason, location) in this interval, largest first.
    pub top: Vec<WatchEntry>,
}

/// A (reason, location) count of one interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WatchEntry {
    pub reason: String,
    pub code: u32,
    pub symbol: String,
    pub count: u64,
}

/// dropwatch-like text of one interval.
pub fn watch_text(w: &WatchLine) -> String {
    let mut o = format!("{:>8.1}s  {:>8} drops", w.t, w.drops);
    if w.lost_events > 0 {
        let _ = write!(o, " ({} detail lost)", w.lost_events);
    }
    for e in w.top.iter().take(4) {
        let _ = write!(o, "  | {} {} at {}", e.count, e.reason, e.symbol);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlowCount, ReasonCount};

    #[test]
    fn text_summary_lists_reasons_and_flows() {
        let s = Summary {
            total_drops: 3,
            duration_secs: 1.0,
            drops_per_sec: 3.0,
            reasons: vec![ReasonCount { reason: "NO_SOCKET".into(), code: 3, count: 3, description: "x".into() }],
            flows: vec![FlowCount {
                proto: "udp".into(),
                src: "fd00::1".into(),
                sport: 1,
                dst: "fd00::2".into(),
                dport: 9,
                count: 3,
                ..FlowCount::default()
            }],
            ..Summary::default()
        };
        let t = summary_text(&s);
        assert!(t.contains("NO_SOCKET"), "{t}");
        assert!(t.contains("udp [fd00::1]:1 -> [fd00::2]:9"), "{t}");
        assert!(t.contains("100.0%"), "{t}");
    }

    #[test]
    fn icmp_flow_line() {
        assert_eq!(flow_line("icmp", "10.0.0.1", 8, "10.0.0.2", 0), "icmp 10.0.0.1 -> 10.0.0.2 type 8 code 0");
        assert_eq!(flow_line("arp", "", 0, "", 0), "arp - -> -");
    }
}
