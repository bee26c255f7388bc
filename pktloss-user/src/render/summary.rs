//! The capture summary (drops by reason, location, flow and device, retransmits, probes) as
//! text and Markdown, built once as tables.
use std::fmt::Write as _;

use super::{TOP_ROWS, Table, clean, code, flow_desc, md, md_code, more, percent, plural, rate, secs};
use crate::model::Summary;

/// The summary's sections as (title, body) built as tables, shared by text and Markdown.
struct Sections<'a> {
    s: &'a Summary,
}

impl Sections<'_> {
    fn headline(&self) -> String {
        let s = self.s;
        let mut h =
            format!("{} in {} ({})", plural(s.total_drops, "drop"), secs(s.duration_secs), rate(s.drops_per_sec));
        if !s.hostname.is_empty() {
            let _ = write!(h, " on {}", s.hostname);
        }
        if !s.kernel.is_empty() {
            let _ = write!(h, ", kernel {}", s.kernel);
        }
        if !s.started.is_empty() {
            let _ = write!(h, ", started {}", s.started);
        }
        h
    }

    /// The filter and what it left out, when there is one.
    fn filter_line(&self) -> Option<String> {
        let f = self.s.filter.as_ref()?;
        let mut l = format!("filter `{}`: {} left out", f.expr, plural(f.drops_filtered_out, "drop"));
        if f.retransmits_filtered_out > 0 {
            let _ = write!(l, ", and {}", plural(f.retransmits_filtered_out, "retransmission"));
        }
        Some(l)
    }

    fn detail_line(&self) -> String {
        let s = self.s;
        let d = &s.detail;
        let budget = match d.budget_per_sec {
            None => "unlimited".to_string(),
            Some(0) => "off".to_string(),
            Some(b) => format!("{b}/s"),
        };
        format!(
            "{} drops with detail, {} without; {} detail events lost ({} over budget, {} ring buffer full); detail budget {}",
            s.drops_with_detail, s.drops_without_detail, s.lost_events, d.lost_budget, d.lost_ringbuf, budget
        )
    }

    fn reasons(&self) -> (Table, usize) {
        let mut t =
            Table::new(&[("DROPS", true), ("SHARE", true), ("REASON", false), ("CODE", true), ("DESCRIPTION", false)]);
        for r in self.s.reasons.iter().take(TOP_ROWS) {
            t.row(vec![
                r.count.to_string(),
                percent(r.count, self.s.total_drops),
                r.reason.name.clone(),
                r.reason.code.to_string(),
                r.description.clone(),
            ]);
        }
        (t, self.s.reasons.len())
    }

    fn locations(&self) -> (Table, usize) {
        let mut t = Table::new(&[("DROPS", true), ("LOCATION", false), ("REASON", false)]);
        for l in self.s.locations.iter().take(TOP_ROWS) {
            t.row(vec![l.count.to_string(), l.symbol.clone(), l.reason.name.clone()]);
        }
        (t, self.s.locations.len())
    }

    fn flows(&self) -> (Table, usize) {
        let mut t = Table::new(&[
            ("DROPS", true),
            ("PROTO", false),
            ("SOURCE", false),
            ("DESTINATION", false),
            ("NETNS", false),
            ("DEVICE", false),
            ("REASON", false),
            ("PROCESS", false),
        ]);
        for f in self.s.flows.iter().take(TOP_ROWS) {
            let (src, dst) = flow_desc(f);
            let dev = if !f.device.is_empty() {
                f.device.clone()
            } else if f.ifindex != 0 {
                format!("unavailable({})", f.ifindex)
            } else {
                "-".into()
            };
            // The NAT original tuple beside the destination; the chain beside the reason.
            let dst = if f.nat_original.is_empty() { dst } else { format!("{dst} (before NAT: {})", f.nat_original) };
            let why = if f.chain.is_empty() { f.why().to_owned() } else { format!("{} in {}", f.why(), f.chain) };
            t.row(vec![f.count.to_string(), f.flow.proto.clone(), src, dst, f.netns_text(), dev, why, f.process()]);
        }
        (t, self.s.flows.len())
    }

    /// `NETFILTER_DROP` drops per chain and rule, read at the drop.
    fn firewall(&self) -> (Table, usize) {
        let mut t = Table::new(&[("DROPS", true), ("CHAIN", false), ("HOOK", false), ("NETNS", false)]);
        for d in self.s.firewall.iter().take(TOP_ROWS) {
            let label = if d.jumped { format!("{} (jump target)", d.label()) } else { d.label() };
            t.row(vec![d.count.to_string(), label, d.hook.clone(), self.s.netns_name(d.netns)]);
        }
        (t, self.s.firewall.len())
    }

    fn devices(&self) -> (Table, usize) {
        // Drops on a device happen on receive and on transmit alike: a share of the transmitted
        // packets would mix the two, so both counts stand alone.
        let mut t = Table::new(&[
            ("DEVICE", false),
            ("NETNS", false),
            ("IFINDEX", true),
            ("TX PACKETS", true),
            ("DROPS", true),
        ]);
        for d in self.s.devices.iter().take(TOP_ROWS) {
            t.row(vec![
                if d.name.is_empty() { "unavailable".to_owned() } else { d.name.clone() },
                self.s.netns_label(d.netns),
                d.ifindex.to_string(),
                if d.tx_unavailable { "unavailable".to_owned() } else { d.tx_packets.to_string() },
                d.drops.to_string(),
            ]);
        }
        (t, self.s.devices.len())
    }

    fn retransmits(&self) -> (Table, usize) {
        let mut t = Table::new(&[("COUNT", true), ("SOURCE", false), ("DESTINATION", false), ("NETNS", false)]);
        for r in self.s.retransmits.flows.iter().take(TOP_ROWS) {
            t.row(vec![
                r.count.to_string(),
                r.flow.source(),
                r.flow.destination(),
                self.s.netns_label(r.flow.netns.inode),
            ]);
        }
        (t, self.s.retransmits.flows.len())
    }

    fn tc_drops(&self) -> (Table, usize) {
        let mut t = Table::new(&[
            ("DROPS", true),
            ("REASON", false),
            ("DEVICE", false),
            ("HOOK", false),
            ("NETNS", false),
            ("PROGRAMS (ID NAME ATTACH)", false),
        ]);
        for d in self.s.tc_drops.iter().take(TOP_ROWS) {
            let progs: Vec<String> =
                d.programs.iter().map(|p| format!("{} {} ({})", p.id, clean(&p.name), clean(&p.attach))).collect();
            t.row(vec![
                d.drops.to_string(),
                clean(&d.reason),
                clean(&d.device),
                clean(&d.hook),
                self.s.netns_name(d.netns),
                if progs.is_empty() { clean(&d.note) } else { format!("{}: {}", progs.join("; "), clean(&d.note)) },
            ]);
        }
        (t, self.s.tc_drops.len())
    }

    fn xdp_drops(&self) -> (Table, usize) {
        let mut t =
            Table::new(&[("DROPS", true), ("DEVICE", false), ("NETNS", false), ("PROGRAM (ID NAME MODE)", false)]);
        for d in self.s.xdp_drops.iter().take(TOP_ROWS) {
            t.row(vec![
                d.drops.map_or_else(|| "unavailable".to_owned(), |n| n.to_string()),
                clean(&d.device),
                self.s.netns_name(d.netns),
                match &d.program {
                    Some(p) => format!("{} {} ({})", p.id, clean(&p.name), clean(&p.attach)),
                    None => clean(&d.note),
                },
            ]);
        }
        (t, self.s.xdp_drops.len())
    }

    fn xdp_exceptions(&self) -> (Table, usize) {
        let mut t = Table::new(&[("COUNT", true), ("ACTION", false), ("PROGRAM (ID NAME)", false), ("IFINDEX", true)]);
        for x in self.s.xdp_exceptions.iter().take(TOP_ROWS) {
            t.row(vec![
                x.count.to_string(),
                clean(&x.action),
                format!("{} {}", x.prog_id, clean(&x.prog_name)),
                x.ifindex.to_string(),
            ]);
        }
        (t, self.s.xdp_exceptions.len())
    }

    fn hw_traps(&self) -> (Table, usize) {
        let mut t =
            Table::new(&[("COUNT", true), ("DEVICE", false), ("TRAP", false), ("GROUP", false), ("INPUT PORT", false)]);
        let r = &self.s.hw_traps.reported;
        for x in r.iter().take(TOP_ROWS) {
            t.row(vec![x.count.to_string(), clean(&x.device), clean(&x.trap), clean(&x.group), clean(&x.input_port)]);
        }
        (t, r.len())
    }

    fn trap_stats(&self) -> (Table, usize) {
        let mut t =
            Table::new(&[("PACKETS", true), ("DEVICE", false), ("TRAP", false), ("GROUP", false), ("TYPE", false)]);
        let st = &self.s.hw_traps.stats;
        for x in st.iter().take(TOP_ROWS) {
            t.row(vec![
                x.packets.to_string(),
                clean(&x.device),
                clean(&x.trap),
                clean(&x.group),
                x.kind.map(|k| k.to_string()).unwrap_or_default(),
            ]);
        }
        (t, st.len())
    }

    fn resets(&self) -> (Table, usize) {
        let mut t = Table::new(&[
            ("COUNT", true),
            ("REASON", false),
            ("SOURCE", false),
            ("DESTINATION", false),
            ("DEVICE", false),
            ("NETNS", false),
        ]);
        for r in self.s.resets.flows.iter().take(TOP_ROWS) {
            t.row(vec![
                r.count.to_string(),
                clean(&r.reason.to_string()),
                r.flow.source(),
                r.flow.destination(),
                if r.device.is_empty() { "-".to_owned() } else { clean(&r.device) },
                self.s.netns_name(r.flow.netns),
            ]);
        }
        (t, self.s.resets.flows.len())
    }

    /// `N (NO_SOCKET 40, ...)`: the resets' total and reasons.
    fn resets_line(&self) -> String {
        let r = &self.s.resets;
        let by: Vec<String> =
            r.reasons.iter().map(|x| format!("{} {}", clean(&x.reason.to_string()), x.count)).collect();
        let mut l = format!("{} ({})", r.total, by.join(", "));
        if r.evicted > 0 {
            let _ = write!(l, "; {} flows evicted from the reset table", r.evicted);
        }
        l
    }

    fn probes(&self) -> (Table, String) {
        let mut t = Table::new(&[("STATE", false), ("PROBE", false), ("ATTACH", false), ("NOTE", false)]);
        for p in &self.s.probes {
            t.row(vec![
                if p.active { "active" } else { "skipped" }.into(),
                p.name.clone(),
                p.attach.clone(),
                p.note.clone(),
            ]);
        }
        let active = self.s.probes.iter().filter(|p| p.active).count();
        (t, format!("{active} active, {} skipped", self.s.probes.len() - active))
    }

    /// Drops per namespace from the kernel's exact per-namespace counts.
    fn netns_drops(&self) -> (Table, usize) {
        let mut t = Table::new(&[("DROPS", true), ("NETNS", false), ("NAME", false), ("MOSTLY", false)]);
        let all = self.s.drops_by_netns();
        for n in all.iter().take(TOP_ROWS) {
            let name = self.s.namespace(n.netns.inode, n.netns.cookie).map(|i| i.label.clone()).unwrap_or_default();
            t.row(vec![n.drops.to_string(), n.netns.inode.to_string(), name, n.top_reason.to_owned()]);
        }
        (t, all.len())
    }

    fn namespaces(&self) -> (Table, usize) {
        let mut t =
            Table::new(&[("NETNS", false), ("NAME", false), ("POD", false), ("CONTAINERS", false), ("UNIT", false)]);
        for n in self.s.namespaces.iter().take(TOP_ROWS) {
            let pod = n.pod.as_ref().map_or_else(String::new, |p| {
                if p.name.is_empty() {
                    format!("uid {}", p.uid)
                } else {
                    format!("{}/{} (uid {})", p.namespace, p.name, p.uid)
                }
            });
            let mut containers: Vec<String> = n
                .containers
                .iter()
                .map(|c| {
                    if c.name.is_empty() {
                        format!("{} {}", c.runtime, c.id)
                    } else {
                        format!("{} {} ({})", c.runtime, c.name, c.id)
                    }
                })
                .collect();
            if n.containers_omitted > 0 {
                containers.push(format!("+{} more", n.containers_omitted));
            }
            t.row(vec![n.netns.inode.to_string(), n.label.clone(), pod, containers.join(", "), n.unit.clone()]);
        }
        (t, self.s.namespaces.len())
    }

    fn flow_table_line(&self) -> String {
        let f = &self.s.flow_table;
        format!(
            "{} flows live of {} slots, {} evicted, {} drops not counted in a flow",
            f.live, f.capacity, f.evicted, f.drops_not_in_flows
        )
    }
}

/// The dropwatch-style summary as aligned plain text.
pub(crate) fn text(s: &Summary) -> String {
    let sec = Sections { s };
    let mut out = String::new();
    let _ = writeln!(out, "{}", clean(&sec.headline()));
    if let Some(l) = sec.filter_line() {
        let _ = writeln!(out, "  {}", super::clean_line(&l));
    }
    let _ = writeln!(out, "  {}", sec.detail_line());
    for w in &s.warnings {
        let _ = writeln!(out, "  warning: {}", clean(w));
    }
    if s.total_drops == 0 && s.reasons.is_empty() {
        let _ = writeln!(out, "\nNo packet drops were seen.");
    }
    let section = |title: String, t: (Table, usize), out: &mut String| {
        if t.1 > 0 {
            let _ = writeln!(out, "\n{title}");
            t.0.text(out);
            more(out, t.1, t.0.rows.len());
        }
    };
    section("Drops by reason".into(), sec.reasons(), &mut out);
    section("Drops by location".into(), sec.locations(), &mut out);
    let stacks: Vec<_> = s.locations.iter().take(TOP_ROWS).filter(|l| !l.stack.is_empty()).collect();
    if !stacks.is_empty() {
        let _ = writeln!(out, "\nStacks");
        for l in stacks {
            let _ = writeln!(out, "  {} at {} ({}):", plural(l.count, "drop"), clean(&l.symbol), clean(&l.reason));
            for (i, f) in l.stack.iter().enumerate().take(64) {
                let _ = writeln!(out, "    #{i:<2} {}", clean(f));
            }
        }
    }
    section("Top flows".into(), sec.flows(), &mut out);
    section("Firewall drops by chain (read at the drop)".into(), sec.firewall(), &mut out);
    section("Devices (drops on receive and transmit; TX packets from the device)".into(), sec.devices(), &mut out);
    section("Drops by namespace (exact, whatever the flow table kept)".into(), sec.netns_drops(), &mut out);
    section("Namespaces".into(), sec.namespaces(), &mut out);
    section("tc programs of the tc drops (read while they dropped)".into(), sec.tc_drops(), &mut out);
    section("XDP_DROP by device and XDP program".into(), sec.xdp_drops(), &mut out);
    section("XDP exceptions (xdp:xdp_exception)".into(), sec.xdp_exceptions(), &mut out);
    section("Hardware traps (devlink:devlink_trap_report)".into(), sec.hw_traps(), &mut out);
    section("devlink trap statistics (growth during the capture)".into(), sec.trap_stats(), &mut out);
    if s.retransmits.total > 0 || !s.retransmits.flows.is_empty() {
        let (t, n) = sec.retransmits();
        let _ = writeln!(out, "\nTCP retransmits: {}", s.retransmits.total);
        if n > 0 {
            t.text(&mut out);
            more(&mut out, n, t.rows.len());
        }
    }
    if !s.resets.is_empty() {
        let (t, n) = sec.resets();
        let _ = writeln!(out, "\nTCP resets sent (tcp:tcp_send_reset, by reason): {}", sec.resets_line());
        if n > 0 {
            t.text(&mut out);
            more(&mut out, n, t.rows.len());
        }
    }
    if !s.probes.is_empty() {
        let (t, line) = sec.probes();
        let _ = writeln!(out, "\nProbes: {line}");
        t.text(&mut out);
    }
    if s.flow_table.capacity > 0 {
        let _ = writeln!(out, "\nFlow table: {}", sec.flow_table_line());
    }
    out
}

/// The summary as Markdown sections (for tickets).
pub(crate) fn markdown(s: &Summary, out: &mut String) {
    let sec = Sections { s };
    let _ = writeln!(out, "**{}**  ", md(&sec.headline()));
    if let Some(l) = sec.filter_line() {
        let _ = writeln!(out, "{}  ", super::md_sentence(&l));
    }
    let _ = writeln!(out, "{}\n", md(&sec.detail_line()));
    for w in &s.warnings {
        let _ = writeln!(out, "> **Warning:** {}\n", md(w));
    }
    if s.total_drops == 0 && s.reasons.is_empty() {
        let _ = writeln!(out, "No packet drops were seen.\n");
    }
    let section = |title: &str, t: (Table, usize), out: &mut String| {
        if t.1 > 0 {
            let _ = writeln!(out, "### {title}\n");
            t.0.markdown(out);
            if t.1 > t.0.rows.len() {
                let _ = writeln!(out, "\n... and {} more (all of them are in `--format json`)", t.1 - t.0.rows.len());
            }
            out.push('\n');
        }
    };
    section("Drops by reason", sec.reasons(), out);
    section("Drops by location", sec.locations(), out);
    let stacks: Vec<_> = s.locations.iter().take(TOP_ROWS).filter(|l| !l.stack.is_empty()).collect();
    if !stacks.is_empty() {
        let _ = writeln!(out, "### Stacks\n");
        for l in stacks {
            let _ = writeln!(out, "{} at {} ({}):\n", plural(l.count, "drop"), md_code(&l.symbol), md_code(&l.reason));
            let _ = writeln!(out, "```text");
            for (i, f) in l.stack.iter().enumerate().take(64) {
                let _ = writeln!(out, "#{i:<2} {}", code(f));
            }
            let _ = writeln!(out, "```\n");
        }
    }
    section("Top flows", sec.flows(), out);
    section("Firewall drops by chain (read at the drop)", sec.firewall(), out);
    section("Devices (drops on receive and transmit; TX packets from the device)", sec.devices(), out);
    section("Drops by namespace (exact, whatever the flow table kept)", sec.netns_drops(), out);
    section("Namespaces", sec.namespaces(), out);
    section("tc programs of the tc drops (read while they dropped)", sec.tc_drops(), out);
    section("XDP\\_DROP by device and XDP program", sec.xdp_drops(), out);
    section("XDP exceptions (xdp:xdp_exception)", sec.xdp_exceptions(), out);
    section("Hardware traps (devlink:devlink\\_trap\\_report)", sec.hw_traps(), out);
    section("devlink trap statistics (growth during the capture)", sec.trap_stats(), out);
    if s.retransmits.total > 0 || !s.retransmits.flows.is_empty() {
        let _ = writeln!(out, "### TCP retransmits: {}\n", s.retransmits.total);
        let (t, n) = sec.retransmits();
        if n > 0 {
            t.markdown(out);
            out.push('\n');
        }
    }
    if !s.resets.is_empty() {
        let _ = writeln!(out, "### TCP resets sent (by reason): {}\n", md(&sec.resets_line()));
        let (t, n) = sec.resets();
        if n > 0 {
            t.markdown(out);
            out.push('\n');
        }
    }
    if !s.probes.is_empty() {
        let (t, line) = sec.probes();
        let _ = writeln!(out, "### Probes: {line}\n");
        t.markdown(out);
        out.push('\n');
    }
    if s.flow_table.capacity > 0 {
        let _ = writeln!(out, "Flow table: {}\n", sec.flow_table_line());
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{ResetCount, ResetReason, ResetReasonCount, Resets, Summary};

    #[test]
    fn resets_are_shown_by_reason_and_flow() {
        let mut s = Summary::default();
        assert!(!super::text(&s).contains("TCP resets"));
        let reason = |r: &str, code, count| ResetReasonCount { reason: ResetReason::new(code, r), count };
        s.resets = Resets {
            total: 9,
            reasons: vec![reason("NO_SOCKET", 1, 6), reason("TCP_ABORT_ON_CLOSE", 11, 2)],
            flows: vec![ResetCount {
                flow: crate::model::Flow::tcp(
                    "127.0.0.1".into(),
                    9,
                    "127.0.0.1".into(),
                    4000,
                    crate::model::NetnsId::default(),
                ),
                device: "lo".into(),
                reason: ResetReason::new(1, "NO_SOCKET"),
                count: 6,
                ..ResetCount::default()
            }],
            evicted: 1,
        };
        let text = super::text(&s);
        assert!(
            text.contains(
                "TCP resets sent (tcp:tcp_send_reset, by reason): 9 (NO_SOCKET 6, TCP_ABORT_ON_CLOSE 2); 1 flows evicted"
            ),
            "{text}"
        );
        assert!(text.contains("127.0.0.1:9") && text.contains("127.0.0.1:4000"), "{text}");
        let mut md = String::new();
        super::markdown(&s, &mut md);
        assert!(md.contains("### TCP resets sent (by reason): 9 (NO\\_SOCKET 6"), "{md}");
    }
}
