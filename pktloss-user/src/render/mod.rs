//! Render step: the only place text, Markdown and JSON are made, for every command. Each
//! object has one text form, one Markdown form and one JSON shape ([`json`]), whichever command
//! prints it (`capture`, `watch`, `diagnose`, `report`); the TUI draws the same model types.
//!
//! Strings may come from a capture file made elsewhere: they are untrusted, stripped of control
//! characters (no terminal escapes) and escaped for Markdown. Every list that is cut says how
//! much it left out.
use std::fmt::Write as _;

use crate::model::FlowCount;

pub(crate) mod diagnosis;
pub(crate) mod json;
pub mod pcapng;
pub(crate) mod reasons;
pub mod report;
pub(crate) mod summary;
pub(crate) mod watch;

/// Rows shown per table in text and Markdown before "... and N more" (JSON has everything).
pub(crate) const TOP_ROWS: usize = 20;
/// Longest string shown in a table cell.
const MAX_CELL: usize = 200;

/// A string from the file made safe to print: control characters escaped, length bounded.
pub(crate) fn clean(s: &str) -> String {
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
pub(crate) fn md(s: &str) -> String {
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
pub(crate) fn code(s: &str) -> String {
    clean(s).replace('`', "'")
}

/// An inline code span for identifiers (symbols, reasons), safe in a table cell.
pub(crate) fn md_code(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!("`{}`", code(s).replace('|', "\\|")) }
}

/// Columns whose Markdown cells are code spans: kernel identifiers read better unescaped.
pub(crate) const CODE_COLUMNS: &[&str] = &["REASON", "LOCATION", "PROBE", "DEVICE", "PROCESS"];

pub(crate) fn plural(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// A table with aligned columns.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(cols: &[(&'static str, bool)]) -> Self {
        Self { headers: cols.iter().map(|c| c.0).collect(), right: cols.iter().map(|c| c.1).collect(), rows: vec![] }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub(crate) fn text(&self, out: &mut String) {
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

    pub(crate) fn markdown(&self, out: &mut String) {
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

pub(crate) fn more(out: &mut String, total: usize, shown: usize) {
    if total > shown {
        let _ = writeln!(out, "  ... and {} more (all of them are in --format json)", total - shown);
    }
}

pub(crate) fn flow_desc(f: &FlowCount) -> (String, String) {
    (f.flow.source(), f.flow.destination())
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a percentage for display, two decimals: the rounding of huge counts is far below that"
)]
pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 { "-".into() } else { format!("{:.2}%", part as f64 * 100.0 / whole as f64) }
}

pub(crate) fn secs(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        "?".into()
    } else if x < 10.0 {
        format!("{x:.2} s")
    } else {
        format!("{x:.1} s")
    }
}

pub(crate) fn rate(x: f64) -> String {
    if x.is_finite() { format!("{x:.1}/s") } else { "?/s".into() }
}

pub(crate) fn shell_join(args: &[String]) -> String {
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

/// A string made safe to print whole (control characters escaped, nothing cut): for sentences
/// and commands, which must not be cut mid-way.
pub(crate) fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A sentence for Markdown: escaped, except inside its `code spans`, which stay code (a
/// command in the advice renders as code and copies as typed). Unbalanced backticks are
/// escaped like the rest.
pub(crate) fn md_sentence(s: &str) -> String {
    let s = clean_line(s);
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return md_escape(&s);
    }
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            out.push('`');
            out.push_str(p);
            out.push('`');
        } else {
            out.push_str(&md_escape(p));
        }
    }
    out
}

/// A whole command as a Markdown code span (a longer fence when it holds backticks); nothing
/// is escaped inside, so it copies as typed.
pub(crate) fn md_command(s: &str) -> String {
    let s = clean_line(s);
    if s.contains('`') { format!("`` {s} ``") } else { format!("`{s}`") }
}

fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
