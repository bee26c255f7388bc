//! Diagnosis: classify a capture's drops into documented causes, with evidence and advice.
//!
//! [`diagnose`] is a pure function of the collected data (the [`Summary`] of the drop events plus
//! the per-namespace counter deltas and configuration checks from [`crate::host::counters`]), so it runs
//! the same on a live capture, in the TUI and on a saved capture. The causes and their texts live
//! in [`taxonomy`].
//!
//! How a cause is selected:
//! - Drop events: each reason maps to a cause ([`taxonomy::cause_for_reason`]); `SOCKET_RCVBUFF`
//!   is split by the flows' protocol (UDP => udp-rcvbuf-full, TCP => socket-memory-pressure);
//!   `NOT_SPECIFIED`/`TCP_DROP` go by drop location ([`taxonomy::LOCATION_HINTS`]); unknown reasons
//!   go to `unclassified` with the raw reason and location; [`taxonomy::BENIGN`] traffic (socket
//!   teardown, broadcast and multicast nobody wanted, flow control, capture copies, link chatter,
//!   frames for other hosts) is not loss: counted per class in [`Diagnosis::benign`], never a cause.
//! - Counters alone also select causes (see `COUNTER_RULES`), e.g. `Udp.SndbufErrors`,
//!   `TcpExt.ListenOverflows` (SYNs freed with `consume_skb` leave no drop event), softnet dropped,
//!   device missed/FIFO/CRC errors, qdisc drops, conntrack drops, firewall rule counters.
//! - A cause's `drops` is max(events, counters) since both count the same packets; they are
//!   reconciled in the evidence.
//!
//! Noise thresholds (an idle host must give no cause): a counter that counts real drops selects
//! its cause from 1; signals that are not drops by themselves or that move on healthy hosts need
//! more — `time_squeeze` >= [`MIN_TIME_SQUEEZE`] over the capture, counter-only TCP protocol
//! drops (OFO, PAWS, window) >= [`MIN_TCP_PROTOCOL`], TCP retransmissions without a local drop >=
//! [`MIN_EXTERNAL_RETRANS`], conntrack fill >= [`CONNTRACK_FULL_RATIO`]. Configuration findings
//! (policy DROP chains, FAILED neighbours, blackhole routes, small buffers) never select a cause
//! on their own: they add evidence and advice to a cause selected by drops or counters.
mod checks;
mod counter_rules;
mod ctx;
mod engine;
mod events;
pub(crate) mod taxonomy;
mod template;
mod traps;

pub(crate) use taxonomy::{BenignId, CauseId};

use serde::{Deserialize, Serialize};

use crate::{
    decode::symbols::function_of,
    host::counters::{ConfigChecks, NetnsDelta},
    model::{Flow, FlowCount, Summary},
};

/// Minimum `time_squeeze` increase (all CPUs, whole capture) for softirq-budget-exhausted.
pub(crate) const MIN_TIME_SQUEEZE: u64 = 10;
/// Minimum counter-only TCP protocol drops (`PAWSEstab`, `BeyondWindow`, ...) for tcp-protocol.
pub(crate) const MIN_TCP_PROTOCOL: u64 = 10;
/// Minimum TCP retransmissions not explained by local drops for external-loss.
pub(crate) const MIN_EXTERNAL_RETRANS: u64 = 5;
/// Conntrack count / max at or above which the table counts as (nearly) full.
pub(crate) const CONNTRACK_FULL_RATIO: f64 = 0.9;

/// What the classification reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DiagnosisInput<'a> {
    pub summary: &'a Summary,
    /// Counter deltas per namespace ([`crate::host::counters::finish`]).
    pub deltas: &'a [NetnsDelta],
    /// Configuration per namespace, with rule/socket counters as deltas.
    pub checks: &'a [ConfigChecks],
}

/// One diagnosed cause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Cause {
    /// Stable id from the taxonomy (`CauseId::UdpRcvbufFull`).
    pub id: CauseId,
    pub title: String,
    /// Drops this cause explains: max(traced drops, counter drops).
    pub drops: u64,
    /// Of which seen as drop events.
    #[serde(default)]
    pub event_drops: u64,
    /// Of which counted by kernel counters.
    #[serde(default)]
    pub counter_drops: u64,
    pub explanation: String,
    /// Facts, each naming the namespace it comes from.
    pub evidence: Vec<String>,
    /// What to do, most specific first.
    pub advice: Vec<String>,
    /// Commands that confirm the cause and verify the fix.
    pub verify: Vec<Verify>,
    /// Namespaces involved (inodes).
    pub netns: Vec<u32>,
}

/// A verify line: a command that verifies the fix, or a check that confirms the cause first
/// (the taxonomy's `checks`). Files and JSON hold it as one string, the command after its
/// kind's mark ([`VerifyKind::mark`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verify {
    pub kind: VerifyKind,
    pub command: String,
}

/// What a verify line is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum VerifyKind {
    /// A command to run after the fix, to see that it worked.
    #[default]
    Fix,
    /// A check that confirms the cause, before any fix.
    Check,
}

impl VerifyKind {
    /// What comes before the command of a line of this kind in files and JSON.
    pub(crate) const fn mark(self) -> &'static str {
        match self {
            Self::Fix => "",
            Self::Check => "check: ",
        }
    }
}

impl Verify {
    /// A command that verifies the fix.
    pub(crate) fn fix(command: String) -> Self {
        Self { kind: VerifyKind::Fix, command }
    }

    /// A check that confirms the cause.
    pub(crate) fn check(command: String) -> Self {
        Self { kind: VerifyKind::Check, command }
    }
}

impl Serialize for Verify {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}", self.kind.mark(), self.command))
    }
}

impl<'de> Deserialize<'de> for Verify {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix(VerifyKind::Check.mark()) {
            Some(c) => Self::check(c.to_owned()),
            None => Self::fix(s),
        })
    }
}

impl std::ops::Deref for Verify {
    type Target = str;
    fn deref(&self) -> &str {
        &self.command
    }
}

/// Which cause explains the traced drops of one reason (split by protocol or drop location where
/// the diagnosis split them): each drop's explanation as data, for the report and the pcapng
/// comments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Explained {
    pub cause: CauseId,
    /// The drop reason by name, as the taxonomy's rules match it (the JSON holds no number).
    pub reason: String,
    /// Only these drops of the reason: one protocol ("udp").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// Only these drops of the reason: one location (`function+0xoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Only these drops of the reason: the ones of these connections (e.g. TCP segments beyond
    /// a window that a receiver short of memory closed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<Flow>,
    pub drops: u64,
}

impl Explained {
    /// Whether the drops of flow `f` are among these.
    pub(crate) fn covers(&self, f: &FlowCount) -> bool {
        f.is(&self.reason, self.symbol.as_deref())
            && self.proto.as_deref().is_none_or(|p| f.flow.proto == p)
            && (self.flows.is_empty() || self.flows.contains(&f.flow))
    }
}

/// Benign drops of one class, reason and location: counted, not loss.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Benign {
    pub class: BenignId,
    /// The drop reason by name (see [`Explained::reason`]).
    pub reason: String,
    /// The drop location (`function+0xoff`) when the class was told by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub drops: u64,
    /// Why this is not loss.
    pub why: String,
}

/// The full diagnosis: ranked causes, which cause explains which drops, the reconciliation of
/// events and counters, and what could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Diagnosis {
    #[serde(default)]
    pub causes: Vec<Cause>,
    #[serde(default)]
    pub explained: Vec<Explained>,
    /// Benign drops (not loss), largest first.
    #[serde(default)]
    pub benign: Vec<Benign>,
    #[serde(default)]
    pub reconciliation: Vec<String>,
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// With a filter: causes that only counters select, which count traffic the filter may
    /// leave out (host-wide or namespace-wide counters cannot be split by port, address or
    /// protocol). Not ranked, not the filter's drops; shown so that nothing read is hidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_filter: Vec<Cause>,
}

impl Diagnosis {
    /// The cause that explains a traced drop of `reason` (protocol `proto`, at `symbol`, of
    /// flow `flow`): the most specific assignment that matches (the connection, then the
    /// location by its function, then protocol, then the reason alone).
    pub(crate) fn cause_for_drop(&self, reason: &str, proto: &str, symbol: &str, flow: &Flow) -> Option<&Cause> {
        let e = self
            .explained
            .iter()
            .filter(|e| {
                e.reason == reason
                    && e.proto.as_deref().is_none_or(|p| p == proto)
                    && e.symbol.as_deref().is_none_or(|s| function_of(s) == function_of(symbol))
                    && (e.flows.is_empty() || e.flows.contains(flow))
            })
            .max_by_key(|e| (!e.flows.is_empty(), e.symbol.is_some(), e.proto.is_some(), e.drops))?;
        self.causes.iter().find(|c| c.id == e.cause)
    }
}

/// Causes ranked by drops explained (then by counter evidence). Empty for an idle capture.
#[cfg(test)]
pub(crate) fn classify(input: &DiagnosisInput<'_>) -> Vec<Cause> {
    diagnose(input).causes
}

pub(crate) use engine::diagnose;

#[cfg(test)]
mod tests;
