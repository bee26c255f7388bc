//! `pktloss reasons`: the running kernel's drop reasons, as text and JSON.
use std::fmt::Write as _;

use serde::Serialize;

use super::clean;
use crate::{
    decode::reasons::{NO_REASON, ReasonTable, describe},
    diagnose::taxonomy::{ReasonClass, classify_reason},
    model::{DropReason, ResetReason, code_reason},
};

/// One drop reason of the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ReasonRow {
    /// In JSON `code` and `reason`.
    #[serde(flatten, serialize_with = "code_reason")]
    pub reason: DropReason,
    pub description: &'static str,
    /// The cause its drops are counted under, if by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// The benign class its drops are counted under (not loss), if by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benign: Option<&'static str>,
    /// How its drops are classified when the reason alone does not tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<&'static str>,
}

/// The rows of a kernel's reason table, in value order.
pub(crate) fn rows(table: &ReasonTable) -> Vec<ReasonRow> {
    table
        .iter()
        .map(|(code, name)| {
            let class = classify_reason(name);
            ReasonRow {
                reason: DropReason { code, name: name.to_owned() },
                description: describe(name),
                cause: match class {
                    Some(ReasonClass::Cause(c)) => Some(c.as_str()),
                    _ => None,
                },
                benign: match class {
                    Some(ReasonClass::Benign(b)) => Some(b.as_str()),
                    _ => None,
                },
                by: match class {
                    Some(ReasonClass::ByContext(how)) => Some(how),
                    _ => None,
                },
            }
        })
        .collect()
}

/// One reset reason of the kernel (`enum sk_rst_reason`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ResetReasonRow {
    /// In JSON `code` and `reason`.
    #[serde(flatten, serialize_with = "code_reason")]
    pub reason: ResetReason,
}

/// The reset reasons as rows, in value order.
pub(crate) fn reset_rows(table: &ReasonTable) -> Vec<ResetReasonRow> {
    table.iter().map(|(code, name)| ResetReasonRow { reason: ResetReason::new(code, name) }).collect()
}

/// The reset reasons as text; a kernel without them says so.
pub(crate) fn resets_text(rows: &[ResetReasonRow]) -> String {
    if rows.is_empty() {
        return "this kernel has no reset reasons (enum sk_rst_reason and the reason of tcp:tcp_send_reset are new \
                in 6.10): pktloss counts the resets it sends per flow, with reason UNKNOWN\n"
            .to_owned();
    }
    let mut out =
        format!("{} reset reasons in this kernel (enum sk_rst_reason, from BTF; tcp:tcp_send_reset):\n", rows.len());
    for r in rows {
        let _ = writeln!(out, "{:>8}  {}", r.reason.code, clean(&r.reason.to_string()));
    }
    out
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
        let class = r.cause.or(r.benign.map(|_| "benign")).unwrap_or(if r.by.is_some() { "(by context)" } else { "?" });
        let _ = writeln!(out, "{:>8}  {:<32} {:<24} {}", r.reason.code, clean(&r.reason.name), class, r.description);
    }
    out
}
