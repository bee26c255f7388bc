//! `pktloss reasons`: the running kernel's drop reasons, as text and JSON.
use std::fmt::Write as _;

use serde::Serialize;

use super::clean;
use crate::decode::reasons::{NO_REASON, ReasonTable, describe};

/// One drop reason of the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ReasonRow {
    pub code: u32,
    pub reason: String,
    pub description: &'static str,
}

/// The rows of a kernel's reason table, in value order.
pub(crate) fn rows(table: &ReasonTable) -> Vec<ReasonRow> {
    table.iter().map(|(code, name)| ReasonRow { code, reason: name.to_owned(), description: describe(name) }).collect()
}

/// The table as text; a kernel without drop reasons says so.
pub(crate) fn text(rows: &[ReasonRow]) -> String {
    if rows.is_empty() {
        return format!(
            "this kernel has no drop reasons (enum skb_drop_reason is new in 5.17): pktloss counts its drops by \
             location and flow, with reason {NO_REASON}\n"
        );
    }
    let mut out = format!("{} drop reasons in this kernel (enum skb_drop_reason, from BTF):\n", rows.len());
    for r in rows {
        let _ = writeln!(out, "{:>8}  {:<32} {}", r.code, clean(&r.reason), r.description);
    }
    out
}
