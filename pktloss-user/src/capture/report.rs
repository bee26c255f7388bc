//! Offline report: a capture file rendered as text, Markdown (for tickets) or JSON.
//!
//! Everything here works from the file alone. Strings from the file are untrusted: they are
//! stripped of control characters (no terminal escapes) and escaped for Markdown.
use std::{fmt::Write as _, str::FromStr};

use serde_json::{Value, json};

use super::{CaptureFile, netns_label, sample_bytes};
use crate::model::{FlowCount, Sample, Summary};

/// Rows shown per table in text and Markdown before "... N more" (JSON has everything).
const TOP_ROWS: usize = 20;
/// Sample drops shown with their bytes.
const TOP_SAMPLES: usize = 10;
/// Bytes of each sample shown as a hex dump.
const DUMP_BYTES: usize = 64;
/// Longest string shown in a table cell.
const MAX_CELL: usize = 200;

/// Output format of `pktloss report`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

impl FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Self::Text),
            "markdown" | "md" => Ok(Self::Markdown),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown report format {s:?} (expected text, markdown or json)")),
        }
    }
}

/// Render a capture: header, summary, diagnosis and sample drops.
pub fn render(file: &CaptureFile, format: ReportFormat) -> String {
    match format {
        ReportFormat::Text => render_text(file),
        ReportFormat::Markdown => render_markdown(file),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(&render_json(file)).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// The JSON report: the summary's fields at the top level (as in the live `--format json`),
/// plus `causes` (the diagnosis) and `capture` (everything else the file recorded).
pub fn render_json(file: &CaptureFile) -> Value {
    let mut v = serde_json::to_value(&file.summary).unwrap_or_else(|_| json!({}));
    // `causes` is always the array of causes; a diagnosis object is also kept whole.
    let (causes, whole) = match &file.diagnosis {
        Value::Null => (json!([]), None),
        Value::Object(m) => (m.get("causes").cloned().unwrap_or(json!([])), Some(file.diagnosis.clone())),
        d => (d.clone(), None),
    };
    let capture = json!({
        "format": file.format,
        "tool_version": file.tool_version,
        "created": file.created,
        "command_line": file.command_line,
        "options": file.options,
        "stopped_by": file.stopped_by,
        "hostname": file.hostname,
        "kernel": file.kernel,
        "kernel_version": file.kernel_version,
        "arch": file.arch,
        "boot_id": file.boot_id,
        "interfaces": file.interfaces,
        "drop_reasons": file.drop_reasons,
        "counters_before": file.counters_before,
        "counters_after": file.counters_after,
        "checks": file.checks,
    });
    if let Value::Object(m) = &mut v {
        m.insert("causes".into(), causes);
        if let Some(d) = whole {
            m.insert("diagnosis".into(), d);
        }
        m.insert("capture".into(), capture);
    }
    v
}

/// One cause of the diagnosis, read leniently from the JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cause {
    pub id: String,
    pub title: String,
    pub drops: Option<u64>,
    pub explanation: String,
    pub evidence: Vec<String>,
    pub advice: Vec<String>,
    /// Commands that verify the fix.
    pub verify: Vec<String>,
    /// Drop reasons the cause explains (`reasons` or `reason` field), if it lists them.
    pub reasons: Vec<String>,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn value_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(value_text).filter(|s| !s.is_empty()).collect(),
        Some(Value::Null) | None => vec![],
        Some(v) => vec![value_text(v)],
    }
}

/// The diagnosis as a list of causes: an array of objects, or an object holding one in
/// `causes` / `diagnosis`. Entries that are not objects become a cause titled with their text.
pub(crate) fn causes(diagnosis: &Value) -> Vec<Cause> {
    let list = match diagnosis {
        Value::Array(a) => a.as_slice(),
        Value::Object(m) => match m.get("causes").or_else(|| m.get("diagnosis")) {
            Some(Value::Array(a)) => a.as_slice(),
            _ => std::slice::from_ref(diagnosis),
        },
        Value::Null => &[],
        v => std::slice::from_ref(v),
    };
    list.iter()
        .map(|c| match c {
            Value::Object(m) => {
                let mut reasons = value_list(m.get("reasons"));
                reasons.extend(value_list(m.get("reason")));
                Cause {
                    id: m.get("id").map(value_text).unwrap_or_default(),
                    title: m.get("title").map(value_text).unwrap_or_default(),
                    drops: m.get("drops").and_then(Value::as_u64),
                    explanation: m.get("explanation").map(value_text).unwrap_or_default(),
                    evidence: value_list(m.get("evidence")),
                    advice: value_list(m.get("advice")),
                    verify: value_list(m.get("verify")),
                    reasons,
                }
            }
            v => Cause { title: value_text(v), ..Cause::default() },
        })
        .collect()
}

/// Notes of a diagnosis object besides its causes: `reconciliation` and `unavailable` lists.
fn diagnosis_notes(diagnosis: &Value) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if let Value::Object(m) = diagnosis {
        for (key, label) in [("reconciliation", "Reconciliation"), ("unavailable", "Not available")] {
            for line in value_list(m.get(key)) {
                out.push((label, line));
            }
        }
    }
    out
}

/// The cause that explains a drop of `reason` (protocol `proto`, at `symbol`): one whose
/// `reasons` lists the reason, else the one with the best evidence line naming the reason as a
/// word (as in the diagnosis's "events: N drops with reason R [on PROTO] [at SYMBOL]"): a line
/// for another protocol is skipped, a line naming the sample's function is preferred.
pub(crate) fn cause_for_drop<'a>(causes: &'a [Cause], reason: &str, proto: &str, symbol: &str) -> Option<&'a Cause> {
    if reason.is_empty() {
        return None;
    }
    if let Some(c) = causes.iter().find(|c| c.reasons.iter().any(|r| r == reason)) {
        return Some(c);
    }
    const PROTOS: &[&str] = &["tcp", "udp", "icmp", "icmpv6", "sctp", "udplite", "raw"];
    let func = symbol.split('+').next().unwrap_or_default();
    let mut best: Option<(u32, &Cause)> = None;
    for c in causes {
        for e in &c.evidence {
            let words: Vec<&str> = e.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).collect();
            if !words.contains(&reason) {
                continue;
            }
            let other_proto = words
                .windows(2)
                .any(|w| matches!(w, ["on", p] if PROTOS.contains(p) && !proto.is_empty() && *p != proto));
            if other_proto {
                continue;
            }
            let score = 1 + 2 * u32::from(!func.is_empty() && words.contains(&func));
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// A string from the file made safe to print: control characters escaped, length bounded.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_CELL + 8));
    for (n, c) in s.chars().enumerate() {
        if n >= MAX_CELL {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`clean`] plus Markdown escaping for table cells and inline text.
fn md(s: &str) -> String {
    let mut out = String::new();
    for c in clean(s).chars() {
        if matches!(c, '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text safe inside a fenced code block (no fence can be closed from inside).
fn code(s: &str) -> String {
    clean(s).replace('`', "'")
}

/// An inline code span for identifiers (symbols, reasons), safe in a table cell.
fn md_code(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!("`{}`", code(s).replace('|', "\\|")) }
}

/// Columns whose Markdown cells are code spans: kernel identifiers read better unescaped.
const CODE_COLUMNS: &[&str] = &["REASON", "LOCATION", "PROBE", "DEVICE", "PROCESS"];

fn plural(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// A table with aligned columns.
struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(cols: &[(&'static str, bool)]) -> Self {
        Self { headers: cols.iter().map(|c| c.0).collect(), right: cols.iter().map(|c| c.1).collect(), rows: vec![] }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    fn text(&self, out: &mut String) {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
            let mut s = String::from(" ");
            for (i, c) in cells.enumerate().take(n) {
                let w = width.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(c.chars().count());
                s.push(' ');
                if self.right.get(i).copied().unwrap_or(false) {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < n {
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
                s.push(' ');
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&mut self.headers.iter().copied(), out);
        for r in &self.rows {
            line(&mut r.iter().map(String::as_str), out);
        }
    }

    fn markdown(&self, out: &mut String) {
        let titles: Vec<String> = self
            .headers
            .iter()
            .map(|h| {
                let lower = h.to_lowercase();
                let mut c = lower.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
            })
            .collect();
        let _ = writeln!(out, "| {} |", titles.join(" | "));
        let seps: Vec<&str> = self.right.iter().map(|r| if *r { "---:" } else { "---" }).collect();
        let _ = writeln!(out, "|{}|", seps.join("|"));
        for r in &self.rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&self.headers)
                .map(|(c, h)| if CODE_COLUMNS.contains(h) { md_code(c) } else { md(c) })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
}

fn more(out: &mut String, total: usize, shown: usize) {
    if total > shown {
        let _ = writeln!(out, "  ... and {} more (all of them are in --format json)", total - shown);
    }
}

fn endpoint(addr: &str, port: u16, family: u8, proto: &str) -> String {
    let portless = port == 0 && !matches!(proto, "tcp" | "udp" | "sctp");
    if addr.is_empty() {
        return String::new();
    }
    if portless {
        addr.to_string()
    } else if family == 6 || addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn flow_desc(f: &FlowCount) -> (String, String) {
    (endpoint(&f.src, f.sport, f.family, &f.proto), endpoint(&f.dst, f.dport, f.family, &f.proto))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".into() } else { format!("{:.2}%", part as f64 * 100.0 / whole as f64) }
}

fn secs(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        "?".into()
    } else if x < 10.0 {
        format!("{x:.2} s")
    } else {
        format!("{x:.1} s")
    }
}

fn rate(x: f64) -> String {
    if x.is_finite() { format!("{x:.1}/s") } else { "?/s".into() }
}

fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

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
                r.reason.clone(),
                r.code.to_string(),
                r.description.clone(),
            ]);
        }
        (t, self.s.reasons.len())
    }

    fn locations(&self) -> (Table, usize) {
        let mut t = Table::new(&[("DROPS", true), ("LOCATION", false), ("REASON", false)]);
        for l in self.s.locations.iter().take(TOP_ROWS) {
            t.row(vec![l.count.to_string(), l.symbol.clone(), l.reason.clone()]);
        }
        (t, self.s.locations.len())
    }

    fn flows(&self) -> (Table, usize) {
        let mut t = Table::new(&[
            ("DROPS", true),
            ("PROTO", false),
            ("SOURCE", false),
            ("DESTINATION", false),
            ("NETNS", true),
            ("DEVICE", false),
            ("REASON", false),
            ("PROCESS", false),
        ]);
        for f in self.s.flows.iter().take(TOP_ROWS) {
            let (src, dst) = flow_desc(f);
            let dev = if !f.device.is_empty() {
                f.device.clone()
            } else if f.ifindex != 0 {
                format!("if{}", f.ifindex)
            } else {
                "-".into()
            };
            t.row(vec![
                f.count.to_string(),
                f.proto.clone(),
                src,
                dst,
                f.netns.to_string(),
                dev,
                f.reason.clone(),
                f.process.clone(),
            ]);
        }
        (t, self.s.flows.len())
    }

    fn devices(&self) -> (Table, usize) {
        let mut t = Table::new(&[
            ("DEVICE", false),
            ("NETNS", true),
            ("IFINDEX", true),
            ("TX", true),
            ("DROPS", true),
            ("LOSS", true),
        ]);
        for d in self.s.devices.iter().take(TOP_ROWS) {
            t.row(vec![
                if d.name.is_empty() { format!("if{}", d.ifindex) } else { d.name.clone() },
                d.netns.to_string(),
                d.ifindex.to_string(),
                d.tx_packets.to_string(),
                d.drops.to_string(),
                percent(d.drops, d.drops.saturating_add(d.tx_packets)),
            ]);
        }
        (t, self.s.devices.len())
    }

    fn retransmits(&self) -> (Table, usize) {
        let mut t = Table::new(&[("COUNT", true), ("SOURCE", false), ("DESTINATION", false), ("NETNS", true)]);
        for r in self.s.retransmits.flows.iter().take(TOP_ROWS) {
            t.row(vec![
                r.count.to_string(),
                endpoint(&r.src, r.sport, 0, "tcp"),
                endpoint(&r.dst, r.dport, 0, "tcp"),
                r.netns.to_string(),
            ]);
        }
        (t, self.s.retransmits.flows.len())
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

    fn flow_table_line(&self) -> String {
        let f = &self.s.flow_table;
        format!(
            "{} flows live of {} slots, {} evicted, {} drops not counted in a flow",
            f.live, f.capacity, f.evicted, f.drops_not_in_flows
        )
    }
}

/// The dropwatch-style summary as aligned plain text (reused by live `pktloss capture`).
pub fn render_summary_text(s: &Summary) -> String {
    let sec = Sections { s };
    let mut out = String::new();
    let _ = writeln!(out, "{}", clean(&sec.headline()));
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
    section("Devices (loss = drops / (drops + tx))".into(), sec.devices(), &mut out);
    if s.retransmits.total > 0 || !s.retransmits.flows.is_empty() {
        let (t, n) = sec.retransmits();
        let _ = writeln!(out, "\nTCP retransmits: {}", s.retransmits.total);
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

fn summary_markdown(s: &Summary, out: &mut String) {
    let sec = Sections { s };
    let _ = writeln!(out, "**{}**  ", md(&sec.headline()));
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
    section("Devices (loss = drops / (drops + tx))", sec.devices(), out);
    if s.retransmits.total > 0 || !s.retransmits.flows.is_empty() {
        let _ = writeln!(out, "### TCP retransmits: {}\n", s.retransmits.total);
        let (t, n) = sec.retransmits();
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

/// Metadata rows for the report header.
fn header_rows(f: &CaptureFile) -> Vec<(&'static str, String)> {
    let s = &f.summary;
    let mut kernel = f.kernel.clone();
    if kernel.is_empty() {
        kernel.clone_from(&s.kernel);
    }
    if !f.kernel_version.is_empty() {
        let _ = write!(kernel, " {}", f.kernel_version);
    }
    if !f.arch.is_empty() {
        let _ = write!(kernel, " ({})", f.arch);
    }
    let host = if f.hostname.is_empty() { s.hostname.clone() } else { f.hostname.clone() };
    let mut captured = format!("{} for {}", s.started, secs(s.duration_secs));
    if !f.stopped_by.is_empty() {
        let _ = write!(captured, ", stopped by {}", f.stopped_by);
    }
    let ifaces: Vec<String> = f.interfaces.iter().take(32).map(|i| i.label()).collect();
    let mut ifaces = ifaces.join(", ");
    if f.interfaces.len() > 32 {
        let _ = write!(ifaces, ", ... ({} in all)", f.interfaces.len());
    }
    vec![
        ("Host", host),
        ("Kernel", kernel),
        ("Boot id", f.boot_id.clone()),
        ("Captured", captured),
        ("Command", shell_join(&f.command_line)),
        (
            "Written by",
            format!(
                "pktloss {} at {} (capture format {}.{})",
                f.tool_version, f.created, f.format.major, f.format.minor
            ),
        ),
        ("Interfaces", ifaces),
    ]
}

fn sample_flow(f: &CaptureFile, s: &Sample) -> String {
    let mut line = clean(&s.proto);
    let src = endpoint(&s.src, s.sport, s.family, &s.proto);
    let dst = endpoint(&s.dst, s.dport, s.family, &s.proto);
    if !src.is_empty() || !dst.is_empty() {
        let _ = write!(line, " {} -> {}", clean(&src), clean(&dst));
    }
    let _ = write!(line, ", netns {}", s.netns);
    if s.ifindex != 0 {
        match f.interface(s.netns, s.ifindex) {
            Some(i) => {
                let _ = write!(line, " dev {} (ifindex {})", clean(&i.name), s.ifindex);
            }
            None => {
                let _ = write!(line, " ifindex {}", s.ifindex);
            }
        }
    }
    if s.pid != 0 || !s.comm.is_empty() {
        let _ = write!(line, ", {}[{}]", clean(&s.comm), s.pid);
    }
    let _ = write!(line, " cpu {}, {} bytes", s.cpu, s.skb_len);
    line
}

fn hexdump(bytes: &[u8], indent: &str, out: &mut String) {
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "{indent}{:04x}  {}", i * 16, hex.join(" "));
    }
}

fn sample_lines(f: &CaptureFile, i: usize, s: &Sample, indent: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "{indent}#{i} +{}.{:06}s {} at {}",
        s.t_ns / 1_000_000_000,
        (s.t_ns % 1_000_000_000) / 1000,
        clean(&s.reason),
        clean(&s.symbol)
    );
    let _ = writeln!(out, "{indent}    {}", sample_flow(f, s));
    let bytes = sample_bytes(s);
    if !bytes.is_empty() {
        let _ = writeln!(
            out,
            "{indent}    {} bytes captured, starting at {}{}:",
            bytes.len(),
            if s.data_start == "network" { "the IP header" } else { "skb->data" },
            if bytes.len() > DUMP_BYTES { format!(", first {DUMP_BYTES} shown") } else { String::new() }
        );
        hexdump(bytes.get(..DUMP_BYTES.min(bytes.len())).unwrap_or_default(), &format!("{indent}    "), out);
    }
}

fn diagnosis_text(f: &CaptureFile, out: &mut String) {
    let _ = writeln!(out, "\nDiagnosis");
    let cs = causes(&f.diagnosis);
    if cs.is_empty() {
        let _ = writeln!(out, "  No cause was diagnosed in this capture.");
    }
    for (n, c) in cs.iter().enumerate() {
        let mut head = format!("  {}. ", n + 1);
        if !c.id.is_empty() {
            let _ = write!(head, "[{}] ", clean(&c.id));
        }
        head.push_str(&clean(if c.title.is_empty() { "(untitled)" } else { &c.title }));
        if let Some(d) = c.drops {
            let _ = write!(head, " ({})", plural(d, "drop"));
        }
        let _ = writeln!(out, "{head}");
        if !c.explanation.is_empty() {
            let _ = writeln!(out, "       {}", clean(&c.explanation));
        }
        for e in &c.evidence {
            let _ = writeln!(out, "       evidence: {}", clean(e));
        }
        for a in &c.advice {
            let _ = writeln!(out, "       advice:   {}", clean(a));
        }
        for v in &c.verify {
            let _ = writeln!(out, "       verify:   {}", clean(v));
        }
    }
    for (label, line) in diagnosis_notes(&f.diagnosis) {
        let _ = writeln!(out, "  {label}: {}", clean(&line));
    }
}

fn render_text(f: &CaptureFile) -> String {
    let mut out = String::from("pktloss capture report\n");
    for (k, v) in header_rows(f) {
        if !v.is_empty() {
            let _ = writeln!(out, "  {:<11} {}", format!("{k}:"), clean(&v));
        }
    }
    out.push('\n');
    out.push_str(&render_summary_text(&f.summary));
    diagnosis_text(f, &mut out);
    let samples = &f.summary.samples;
    if !samples.is_empty() {
        let _ = writeln!(out, "\nSample drops ({} of {} recorded)", samples.len().min(TOP_SAMPLES), samples.len());
        for (i, s) in samples.iter().enumerate().take(TOP_SAMPLES) {
            sample_lines(f, i, s, "  ", &mut out);
        }
    }
    out
}

fn render_markdown(f: &CaptureFile) -> String {
    let s = &f.summary;
    let host = if f.hostname.is_empty() { &s.hostname } else { &f.hostname };
    let mut out = format!("## pktloss capture: {} on {}\n\n", plural(s.total_drops, "drop"), md(host));
    let _ = writeln!(out, "| | |\n|---|---|");
    for (k, v) in header_rows(f) {
        if !v.is_empty() {
            let v = if k == "Command" { format!("`{}`", code(&v)) } else { md(&v) };
            let _ = writeln!(out, "| {k} | {v} |");
        }
    }
    out.push('\n');
    summary_markdown(s, &mut out);
    let _ = writeln!(out, "### Diagnosis\n");
    let cs = causes(&f.diagnosis);
    if cs.is_empty() {
        let _ = writeln!(out, "No cause was diagnosed in this capture.\n");
    }
    for (n, c) in cs.iter().enumerate() {
        let title = if c.title.is_empty() { "(untitled)" } else { &c.title };
        let mut head = format!("**{}. {}**", n + 1, md(title));
        let mut extra = vec![];
        if !c.id.is_empty() {
            extra.push(md_code(&c.id));
        }
        if let Some(d) = c.drops {
            extra.push(plural(d, "drop"));
        }
        if !extra.is_empty() {
            let _ = write!(head, " ({})", extra.join(", "));
        }
        let _ = writeln!(out, "{head}\n");
        if !c.explanation.is_empty() {
            let _ = writeln!(out, "{}\n", md(&c.explanation));
        }
        for e in &c.evidence {
            let _ = writeln!(out, "- Evidence: {}", md(e));
        }
        for a in &c.advice {
            let _ = writeln!(out, "- **Advice:** {}", md(a));
        }
        for v in &c.verify {
            let _ = writeln!(out, "- Verify: {}", md_code(v));
        }
        out.push('\n');
    }
    let notes = diagnosis_notes(&f.diagnosis);
    for (label, line) in &notes {
        let _ = writeln!(out, "- {label}: {}", md(line));
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    if !s.samples.is_empty() {
        let _ =
            writeln!(out, "### Sample drops ({} of {} recorded)\n", s.samples.len().min(TOP_SAMPLES), s.samples.len());
        let _ = writeln!(out, "```text");
        for (i, smp) in s.samples.iter().enumerate().take(TOP_SAMPLES) {
            let mut block = String::new();
            sample_lines(f, i, smp, "", &mut block);
            out.push_str(&block.replace('`', "'"));
        }
        let _ = writeln!(out, "```");
    }
    out
}

/// netns label for a sample's device, for pcapng interface names.
pub(crate) fn device_label(f: &CaptureFile, netns: u32, ifindex: u32) -> String {
    if let Some(i) = f.interface(netns, ifindex) {
        return clean(&i.label());
    }
    let name = f
        .summary
        .devices
        .iter()
        .find(|d| d.netns == netns && d.ifindex == ifindex && !d.name.is_empty())
        .map(|d| d.name.clone())
        .or_else(|| {
            f.summary
                .flows
                .iter()
                .find(|fl| fl.netns == netns && fl.ifindex == ifindex && !fl.device.is_empty())
                .map(|fl| fl.device.clone())
        })
        .unwrap_or_else(|| if ifindex == 0 { "no-device".into() } else { format!("if{ifindex}") });
    let ns_name =
        f.interfaces.iter().find(|i| i.netns == netns && !i.netns_name.is_empty()).map(|i| i.netns_name.as_str());
    clean(&format!("{name}@{}", netns_label(netns, ns_name.unwrap_or(""))))
}
