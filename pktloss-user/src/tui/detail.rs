//! The drill-down overlay (Enter on a row): kernel stacks, sample packets, a cause's evidence
//! and advice. Pure: [`detail_lines`] builds pre-wrapped lines for a given width.
use std::fmt::Write as _;

use ratatui::{
    Frame,
    layout::{Alignment, Rect},
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph},
};

use super::{
    state::{CauseRow, CounterLine, Data, DropRow, FlowRow, Panel, State},
    style::{ACCENT, DIM, LABEL, flow_cell, fmt_count, fmt_pct, fmt_rate, or_dash, spark},
};
use crate::{
    host::counters::nic::NicCounter,
    model::{DropReason, FlowCount, Sample},
};

/// Sample packets shown per drill-down (newest first).
const MAX_SAMPLES: usize = 6;
/// Flows listed in a cause's drill-down.
const MAX_FLOWS: usize = 5;
/// Width of the field labels.
const LABEL_W: usize = 9;

/// Greedy word wrap; words longer than a line are cut.
fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    let mut width = first.max(1);
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let need = if len == 0 { word.len() } else { len + 1 + word.len() };
            if need <= width {
                if len > 0 {
                    line.push(' ');
                    len += 1;
                }
                line.extend(word.iter());
                len += word.len();
                break;
            }
            if len > 0 {
                out.push(std::mem::take(&mut line));
                len = 0;
                width = rest.max(1);
                continue;
            }
            // A word longer than a whole line.
            let tail = word.split_off(width.min(word.len()));
            out.push(word.iter().collect());
            word = tail;
            width = rest.max(1);
            if word.is_empty() {
                break;
            }
        }
    }
    if len > 0 || out.is_empty() {
        out.push(line);
    }
    out
}

/// Lines being built for one overlay, wrapped to its width.
struct Doc {
    width: usize,
    lines: Vec<Line<'static>>,
}

impl Doc {
    fn blank(&mut self) {
        self.lines.push(Line::default());
    }

    fn section(&mut self, title: impl Into<String>) {
        self.blank();
        self.lines.push(Line::from(Span::styled(title.into(), Style::new().fg(ACCENT).bold())));
    }

    /// `head` (styled) then `text` wrapped, continuation lines indented by `indent`.
    fn wrapped(&mut self, head: Span<'static>, text: &str, indent: usize, style: Style) {
        let head_w = head.width();
        let parts = wrap(text, self.width.saturating_sub(head_w), self.width.saturating_sub(indent));
        let mut head = Some(head);
        for part in parts {
            let lead = head.take().unwrap_or_else(|| Span::raw(" ".repeat(indent)));
            self.lines.push(Line::from(vec![lead, Span::styled(part, style)]));
        }
    }

    fn field(&mut self, label: &str, value: &str) {
        self.wrapped(Span::styled(format!("{label:<LABEL_W$}"), LABEL), value, LABEL_W, Style::new());
    }

    fn text(&mut self, indent: usize, text: &str, style: Style) {
        self.wrapped(Span::raw(" ".repeat(indent)), text, indent, style);
    }

    /// `count` right-aligned in a column, then `text`.
    fn counted(&mut self, count: u64, text: &str) {
        self.wrapped(
            Span::styled(format!("  {:>10}  ", fmt_count(count)), Style::new().bold()),
            text,
            14,
            Style::new(),
        );
    }

    fn note(&mut self, text: &str) {
        self.text(2, text, DIM);
    }

    fn bullets(&mut self, items: &[String], none: &str) {
        if items.is_empty() {
            self.note(none);
        }
        for i in items {
            self.wrapped(Span::raw("  • "), i, 4, Style::new());
        }
    }

    #[expect(
        clippy::cast_precision_loss,
        reason = "the sample's time since the capture start in seconds for display; exact below 2^53 ns (104 days)"
    )]
    fn sample(&mut self, s: &Sample, d: &Data) {
        let mut who = if s.comm.is_empty() { String::new() } else { format!(" {}[{}]", s.comm, s.pid) };
        if s.owner_pid != 0 {
            who = format!(
                " socket of {}[{}]{}",
                s.owner_comm,
                s.owner_pid,
                if who.is_empty() { String::new() } else { format!(", ran{who}") }
            );
        }
        if !s.tcp_state.is_empty() || !s.tcp_flags.is_empty() {
            let _ = write!(who, "  tcp {} [{}]", or_dash(&s.tcp_state), s.tcp_flags);
        }
        if !s.chain.is_empty() {
            let _ = write!(who, "  chain {}", s.chain);
        }
        if let Some(p) = d.update.summary.program_of(s.flow.netns.inode, s.flow.netns.cookie, s.ifindex, &s.reason) {
            let _ = write!(who, "  program {p}");
        }
        if !s.nat_original.is_empty() {
            let _ = write!(who, "  before NAT {}", s.nat_original);
        }
        let what = if s.flow.family == 0 {
            s.flow.proto.clone()
        } else {
            format!("{} {} → {}", s.flow.proto, s.flow.source(), s.flow.destination())
        };
        let dev = d
            .device_name(s.flow.netns.inode, s.ifindex)
            .map_or_else(|| format!("ifindex {}", s.ifindex), |n| format!("dev {n}"));
        self.wrapped(
            Span::styled(format!("  +{:.3}s ", s.t_ns as f64 / 1e9), DIM),
            &format!("{what}  netns {} {dev}  len {}  cpu{}{who}", s.netns_text(), s.skb_len, s.cpu),
            4,
            Style::new(),
        );
        if !s.data.is_empty() {
            let bytes: Vec<String> = s.data.bytes().iter().take(32).map(|b| format!("{b:02x}")).collect();
            for chunk in bytes.chunks(16) {
                self.text(6, &chunk.join(" "), DIM);
            }
        }
    }

    fn samples(&mut self, d: &Data, all: &[&Sample]) {
        self.section(format!("Sample packets ({} of {} sampled)", all.len().min(MAX_SAMPLES), all.len()));
        if all.is_empty() {
            self.note("(none sampled: detail events are budgeted)");
        }
        for s in all.iter().rev().take(MAX_SAMPLES) {
            self.sample(s, d);
        }
    }

    /// Where a flow's drops happened, as far as the data ties locations to the flow: never the
    /// locations of other flows' drops.
    fn flow_locations(&mut self, f: &FlowCount, rows: &[DropRow], sampled: &[&Sample]) {
        if !f.location.is_empty() {
            // A kernel without drop reasons: flows are counted per location.
            self.counted(f.count, &f.location);
            return;
        }
        let places: Vec<&DropRow> = rows.iter().filter(|r| f.reason == r.reason.name).collect();
        match places.as_slice() {
            [] => self.note(&format!("(no drop location recorded for {})", f.reason)),
            // Every drop of the reason happened there, this flow's too.
            [only] => self.counted(f.count, &only.symbol),
            _ => {
                let mut seen: Vec<(&str, usize)> = Vec::new();
                for s in sampled {
                    match seen.iter_mut().find(|(sym, _)| *sym == s.symbol) {
                        Some((_, n)) => *n += 1,
                        None => seen.push((&s.symbol, 1)),
                    }
                }
                seen.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
                for (sym, n) in &seen {
                    self.text(
                        2,
                        &format!("{sym}  (in {n} of the flow's {} sampled drops)", sampled.len()),
                        Style::new(),
                    );
                }
                let unknown =
                    if seen.is_empty() { "where its drops happened" } else { "where its other drops happened" };
                self.note(&format!(
                    "{} drops happen at {} locations and flows are counted per reason, not per location: {unknown} is not known.",
                    f.reason,
                    places.len()
                ));
            }
        }
    }

    fn causes(&mut self, causes: &[&CauseRow]) {
        if causes.is_empty() {
            self.note("(no cause classified for this reason)");
        }
        for c in causes {
            self.lines.push(Line::from(vec![
                Span::styled("  ● ", Style::new().fg(Color::Yellow)),
                Span::styled(c.cause.title.clone(), Style::new().bold()),
                Span::styled(format!("  {} drops", fmt_count(c.cause.drops)), DIM),
            ]));
            for e in &c.cause.evidence {
                self.wrapped(Span::styled("    evidence ", LABEL), e, 13, Style::new());
            }
            for a in &c.cause.advice {
                self.wrapped(Span::styled("    advice   ", LABEL), a, 13, Style::new());
            }
        }
    }
}

/// Whether a sampled drop is one of the flow's: same packet tuple, namespace and reason (and
/// location, where flows have one).
fn sample_of(s: &Sample, f: &FlowCount) -> bool {
    f.has_sample(s)
}

/// Title and lines of the drill-down overlay, wrapped to `width` columns.
pub(crate) fn detail_lines(state: &State, width: u16) -> (String, Vec<Line<'static>>) {
    let Some(detail) = &state.detail else {
        return (String::new(), Vec::new());
    };
    let d = state.data();
    let causes = d.cause_rows();
    let rows = d.drop_rows();
    let mut doc = Doc { width: width.max(10) as usize, lines: Vec::new() };
    let title = match detail.panel {
        Panel::Drops => rows.iter().find(|r| r.key == detail.key).map(|r| drop_detail(&mut doc, d, r, &causes)),
        Panel::Causes => causes.iter().find(|c| c.key == detail.key).map(|c| cause_detail(&mut doc, d, c, &rows)),
        Panel::Flows => {
            let flows = d.flow_rows();
            flows.iter().find(|f| f.key == detail.key).map(|fr| flow_detail(&mut doc, d, fr, &rows, &causes))
        }
        Panel::Counters => {
            let counters = d.counter_rows();
            counters.iter().find(|c| c.key == detail.key).map(|c| counter_detail(&mut doc, c))
        }
    };
    if let Some(title) = title {
        (title, doc.lines)
    } else {
        doc.note("This row is no longer in the data (reset, or it aged out). Esc goes back.");
        ("(gone)".to_string(), doc.lines)
    }
}

/// The causes whose reasons include `reason`.
fn causes_for<'a>(causes: &'a [CauseRow], reason: &str) -> Vec<&'a CauseRow> {
    causes.iter().filter(|c| c.cause.reasons.iter().any(|r| r == reason)).collect()
}

/// `REASON (code N) — description`.
fn reason_line(d: &Data, reason: &DropReason) -> String {
    let desc = d.reason_description(reason).map(|s| format!(" — {s}")).unwrap_or_default();
    format!("{reason} (code {}){desc}", reason.code)
}

/// A drop row's drill-down: its reason, location, kernel stacks, samples and causes.
fn drop_detail(doc: &mut Doc, d: &Data, r: &DropRow, causes: &[CauseRow]) -> String {
    let linked = causes_for(causes, &r.reason);
    doc.field("reason", &reason_line(d, &r.reason));
    doc.field("location", &r.symbol);
    doc.field(
        "drops",
        &format!(
            "{}  ·  {}/s  ·  {} of all  ·  trend {}",
            fmt_count(r.count),
            fmt_rate(r.rate),
            fmt_pct(r.share),
            spark(&r.trend, 16).trim_start()
        ),
    );
    if let Some(c) = linked.first() {
        doc.field("cause", &c.cause.title);
    }
    doc.section(format!("Kernel stacks ({})", r.stacks.len()));
    if r.stacks.is_empty() {
        doc.note("(no stacks recorded: capture with --stacks)");
    }
    for (i, (count, stack)) in r.stacks.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "a stack's share of its row's drops, a percentage for display")]
        doc.lines.push(Line::from(vec![
            Span::styled(format!("  #{} ", i + 1), Style::new().bold()),
            Span::styled(
                format!("{} drops ({})", fmt_count(*count), fmt_pct(*count as f64 / r.count.max(1) as f64)),
                LABEL,
            ),
        ]));
        for frame in stack {
            doc.text(6, frame, Style::new());
        }
    }
    doc.samples(d, &d.samples().filter(|s| s.reason == r.reason.name && s.symbol == r.symbol).collect::<Vec<_>>());
    doc.section("Causes");
    doc.causes(&linked);
    format!("{} at {}", r.reason, r.symbol)
}

/// A cause's drill-down: evidence, advice, its drop locations, top flows and samples.
fn cause_detail(doc: &mut Doc, d: &Data, c: &CauseRow, rows: &[DropRow]) -> String {
    let related = |reason: &str| c.cause.reasons.iter().any(|r| r == reason);
    doc.field("cause", &format!("{} ({})", c.cause.title, c.cause.id));
    doc.field(
        "drops",
        &format!("{}  ·  {}/s  ·  {} of all", fmt_count(c.cause.drops), fmt_rate(c.rate), fmt_pct(c.share)),
    );
    if !c.cause.reasons.is_empty() {
        doc.field("reasons", &c.cause.reasons.join(", "));
    }
    doc.section("Evidence");
    doc.bullets(&c.cause.evidence, "(none)");
    doc.section("Advice");
    doc.bullets(&c.cause.advice, "(none)");
    doc.section("Drop locations");
    let mut any = false;
    for r in rows.iter().filter(|r| related(&r.reason)) {
        any = true;
        doc.counted(r.count, &format!("{} at {}", r.reason, r.symbol));
    }
    if !any {
        doc.note("(none linked)");
    }
    doc.section("Top flows");
    let mut flows = d.flow_rows();
    flows.retain(|f| related(&f.flow.reason));
    flows.sort_by_key(|f| std::cmp::Reverse(f.flow.count));
    if flows.is_empty() {
        doc.note("(none linked)");
    }
    for f in flows.iter().take(MAX_FLOWS) {
        doc.counted(
            f.flow.count,
            &format!(
                "{} {}  netns {} {}",
                f.flow.flow.proto,
                flow_cell(&f.flow),
                f.flow.netns_text(),
                or_dash(&f.flow.device)
            ),
        );
    }
    if c.cause.reasons.is_empty() {
        // A cause with no drop reason (hardware traps, counter-only causes) has no traced packet to sample.
        doc.section("Sample packets");
        doc.note("(none: these drops are counted by the kernel or the device, not traced per packet)");
    } else {
        doc.samples(d, &d.samples().filter(|s| related(&s.reason)).collect::<Vec<_>>());
    }
    c.cause.title.clone()
}

/// A flow's drill-down: its namespace, device, process, where it was dropped and why.
fn flow_detail(doc: &mut Doc, d: &Data, fr: &FlowRow, rows: &[DropRow], causes: &[CauseRow]) -> String {
    let f = &fr.flow;
    doc.field("flow", &format!("{} {}", f.flow.proto, flow_cell(f)));
    let ns = if f.netns_name.is_empty() {
        f.flow.netns.inode.to_string()
    } else {
        format!("{} ({})", f.netns_name, f.flow.netns.inode)
    };
    doc.field("netns", &ns);
    doc.field("device", &format!("{} (ifindex {})", or_dash(&f.device), f.ifindex));
    doc.field("process", &or_dash(&f.process()));
    doc.field("reason", &reason_line(d, &f.reason));
    doc.field(
        "drops",
        &format!("{}  ·  {}/s  ·  trend {}", fmt_count(f.count), fmt_rate(fr.rate), spark(&fr.trend, 16).trim_start()),
    );
    let sampled: Vec<&Sample> = d.samples().filter(|s| sample_of(s, f)).collect();
    doc.section("Dropped at");
    doc.flow_locations(f, rows, &sampled);
    doc.samples(d, &sampled);
    doc.section("Causes");
    doc.causes(&causes_for(causes, &f.reason));
    format!("{} {}", f.flow.proto, flow_cell(f))
}

/// A counter's drill-down: what it means.
fn counter_detail(doc: &mut Doc, c: &CounterLine) -> String {
    doc.field("counter", &c.row.counter);
    doc.field("scope", &c.row.scope);
    doc.field(
        "total",
        &format!(
            "{}  ·  {}/s  ·  trend {}",
            fmt_count(c.row.total),
            fmt_rate(c.rate),
            spark(&c.trend, 16).trim_start()
        ),
    );
    doc.section("What it means");
    doc.text(2, NicCounter::of(&c.row.counter).hint(), Style::new());
    doc.blank();
    doc.note("These drops happen before an skb exists: no drop event shows them.");
    format!("{} on {}", c.row.counter, c.row.scope)
}

/// Draw the drill-down over `area`; returns the farthest it can scroll.
pub(crate) fn render_detail(frame: &mut Frame<'_>, area: Rect, state: &State) -> Option<u16> {
    let Some(detail) = &state.detail else { return None };
    let inner_width = area.width.saturating_sub(2);
    let (title, lines) = detail_lines(state, inner_width);
    let block = Block::bordered().border_style(Style::new().fg(ACCENT)).title(Line::from(vec![
        Span::styled(format!(" {} › ", detail.panel.title()), Style::new().fg(ACCENT)),
        Span::styled(format!("{title} "), Style::new().bold()),
    ]));
    let inner = block.inner(area);
    let max_scroll = (lines.len() as u16).saturating_sub(inner.height);
    let scroll = detail.scroll.min(max_scroll);
    let block = if max_scroll > 0 {
        block.title_bottom(
            Line::from(Span::styled(format!(" {}/{} ↑↓ ", scroll + 1, max_scroll + 1), DIM))
                .alignment(Alignment::Right),
        )
    } else {
        block
    };
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), area);
    Some(max_scroll)
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(wrap("a bb ccc", 4, 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4, 3), vec!["abcd", "efg", "hij"]);
        assert_eq!(wrap("", 5, 5), vec![""]);
        assert_eq!(wrap("one two three", 7, 5), vec!["one two", "three"]);
    }
}
