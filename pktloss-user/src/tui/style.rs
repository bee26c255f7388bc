//! The TUI's styles and number formats, shared by the panels (`view`) and the drill-down
//! (`detail`).
use ratatui::style::{Color, Style};

use crate::model::FlowCount;

pub(crate) const ACCENT: Color = Color::Cyan;
pub(crate) const LABEL: Style = Style::new().fg(Color::Gray);
pub(crate) const DIM: Style = Style::new().fg(Color::DarkGray);

/// `1234567` -> `1,234,567`.
pub(crate) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate: one decimal below 100, whole numbers with separators above.
pub(crate) fn fmt_rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else {
        fmt_count(r.round() as u64)
    }
}

/// Short number for axes and titles: `950`, `1.2k`, `3.4M`.
pub(crate) fn fmt_short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(crate) fn fmt_pct(x: f64) -> String {
    if x >= 0.9995 { "100%".into() } else { format!("{:.1}%", x * 100.0) }
}

/// Seconds as `HH:MM:SS` (`Nd HH:MM:SS` past a day).
pub(crate) fn fmt_hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 { format!("{d}d {h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}:{s:02}") }
}

/// The last `width` values as block characters, newest on the right; blank for zero.
pub(crate) fn spark(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &values[values.len().saturating_sub(width)..];
    let max = tail.iter().copied().max().unwrap_or(0);
    let mut out: String = " ".repeat(width - tail.len());
    for &v in tail {
        out.push(if v == 0 || max == 0 { ' ' } else { BARS[((v * 8).div_ceil(max) as usize).clamp(1, 8) - 1] });
    }
    out
}

/// `src -> dst`, compact for the table.
pub(crate) fn flow_cell(f: &FlowCount) -> String {
    format!("{} → {}", f.flow.source(), f.flow.destination())
}

pub(crate) fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_string() }
}
