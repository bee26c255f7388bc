//! The JSON shapes: one per object, whichever command prints it. A capture is its
//! [`Summary`]; a diagnosed capture (`diagnose`, `report`) is the summary's fields, then the
//! diagnosis and the counters it read; a report adds what the capture file recorded.
use serde::Serialize;

use crate::{
    capture::{CaptureFile, FormatInfo, Interface},
    diagnose::{Benign, Cause, Diagnosis, Explained},
    host::counters::{ConfigChecks, NetnsDelta},
    model::{DropReason, Summary},
};

/// Pretty JSON of any serializable value.
pub(crate) fn pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A diagnosed capture: `pktloss diagnose --format json` and `pktloss report --format json`.
#[derive(Serialize)]
pub(crate) struct Diagnosed<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub causes: &'a [Cause],
    pub explained: &'a [Explained],
    /// Drops that are not loss, by class.
    pub benign: &'a [Benign],
    pub reconciliation: &'a [String],
    pub unavailable: &'a [String],
    /// With a filter: causes counters alone select, outside its view (not ranked).
    #[serde(skip_serializing_if = "<[Cause]>::is_empty")]
    pub outside_filter: &'a [Cause],
    /// Counter deltas of every namespace read.
    pub counters: &'a [NetnsDelta],
    pub checks: &'a [ConfigChecks],
    /// What the capture file recorded besides (reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureMeta<'a>>,
}

impl<'a> Diagnosed<'a> {
    /// A diagnosis of `summary` with the counters and checks it read.
    pub(crate) fn new(
        summary: &'a Summary,
        d: &'a Diagnosis,
        counters: &'a [NetnsDelta],
        checks: &'a [ConfigChecks],
    ) -> Self {
        Self {
            summary,
            causes: &d.causes,
            explained: &d.explained,
            benign: &d.benign,
            reconciliation: &d.reconciliation,
            unavailable: &d.unavailable,
            outside_filter: &d.outside_filter,
            counters,
            checks,
            capture: None,
        }
    }
}

/// The capture file's own fields, in a report.
#[derive(Serialize)]
pub(crate) struct CaptureMeta<'a> {
    pub format: &'a FormatInfo,
    pub tool_version: &'a str,
    pub created: &'a str,
    pub command_line: &'a [String],
    pub options: &'a serde_json::Value,
    pub stopped_by: &'a str,
    pub hostname: &'a str,
    pub kernel: &'a str,
    pub kernel_version: &'a str,
    pub arch: &'a str,
    pub boot_id: &'a str,
    pub interfaces: &'a [Interface],
    pub drop_reasons: &'a [DropReason],
}

impl<'a> CaptureMeta<'a> {
    pub(crate) fn of(f: &'a CaptureFile) -> Self {
        Self {
            format: &f.format,
            tool_version: &f.tool_version,
            created: &f.created,
            command_line: &f.command_line,
            options: &f.options,
            stopped_by: &f.stopped_by,
            hostname: &f.hostname,
            kernel: &f.kernel,
            kernel_version: &f.kernel_version,
            arch: &f.arch,
            boot_id: &f.boot_id,
            interfaces: &f.interfaces,
            drop_reasons: &f.drop_reasons,
        }
    }
}
