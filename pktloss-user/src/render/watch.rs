//! `pktloss watch`: one line per interval, like dropwatch, as text or one JSON object.
use std::fmt::Write as _;

use serde::Serialize;

use super::clean;
use crate::model::{DropReason, reason_code};

/// (reason, location) pairs shown on a text line; the rest are counted in "+N more".
const TOP_ON_LINE: usize = 4;

/// One `watch` interval (or the closing total, `total: true`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct WatchLine {
    /// Seconds since start, at the end of the interval.
    pub t: f64,
    pub interval_secs: f64,
    /// Drops in this interval.
    pub drops: u64,
    pub total_drops: u64,
    pub lost_events: u64,
    /// Drops the filter left out in this interval (with a filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_out: Option<u64>,
    /// Drops per (reason, location) in this interval, largest first (all of them).
    pub top: Vec<WatchEntry>,
    /// This line is the closing total of the whole run, not one interval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total: bool,
}

/// A (reason, location) count of one interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct WatchEntry {
    #[serde(flatten, serialize_with = "reason_code::serialize")]
    pub reason: DropReason,
    pub symbol: String,
    pub count: u64,
}

/// dropwatch-like text of one interval.
pub(crate) fn text(w: &WatchLine) -> String {
    let mut o = if w.total {
        format!("{:>8.1}s  {:>8} drops in total", w.t, w.drops)
    } else {
        format!("{:>8.1}s  {:>8} drops", w.t, w.drops)
    };
    let mut notes = Vec::new();
    if let Some(n) = w.filtered_out {
        notes.push(format!("{n} filtered out"));
    }
    if w.lost_events > 0 {
        notes.push(format!("{} detail lost", w.lost_events));
    }
    if !notes.is_empty() {
        let _ = write!(o, " ({})", notes.join(", "));
    }
    for e in w.top.iter().take(TOP_ON_LINE) {
        let _ = write!(o, "  | {} {} at {}", e.count, clean(&e.reason), clean(&e.symbol));
    }
    if w.top.len() > TOP_ON_LINE {
        let rest = &w.top[TOP_ON_LINE..];
        let drops: u64 = rest.iter().map(|e| e.count).sum();
        let _ = write!(o, "  | +{} more ({drops} drops)", rest.len());
    }
    o
}

/// One interval as one line of JSON (`--format json`: a JSON object per line).
pub(crate) fn json_line(w: &WatchLine) -> String {
    serde_json::to_string(w).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
