//! The `--help` text after the options: examples for every subcommand, and for `top` its keys
//! and filter terms, taken from the TUI's own tables so that the two cannot drift.
use std::fmt::Write as _;

use crate::tui::{input::KEYS, state::filter::FILTER_HELP};

/// An example: the command line, and what it does.
pub(crate) type Example = (&'static str, &'static str);

pub(crate) const CAPTURE: &[Example] = &[
    ("pktloss capture --duration 10s", "10 seconds of drops, then a dropwatch-style summary (or --count N, or Ctrl-C)"),
    ("pktloss capture --duration 10s --format json -o drops.json", "the summary as JSON, also saved to drops.json"),
    (
        "pktloss capture --duration 30s -o incident.pktloss --pcapng drops.pcapng",
        "an incident file for `pktloss report`, and the sampled dropped packets for Wireshark",
    ),
    ("pktloss capture --count 1000 --stacks", "until 1000 drops, with the kernel stack of each sampled drop"),
];

pub(crate) const WATCH: &[Example] = &[
    ("pktloss watch", "one line a second: drops by reason and location, like dropwatch"),
    ("pktloss watch --interval 5s --duration 1m", "a line every 5 seconds for a minute, then the total"),
    ("pktloss watch --format json --no-flows", "one JSON object per line, without per-flow counters"),
];

pub(crate) const DIAGNOSE: &[Example] = &[
    ("pktloss diagnose", "10 seconds of drops and counters: causes ranked by drops explained, evidence, advice"),
    ("pktloss diagnose --duration 1m --count 500", "for up to a minute, or until 500 drops"),
    (
        "pktloss diagnose --duration 30s -o diagnosis.md",
        "also saved as Markdown for a ticket (-o goes by extension: .json, .md, .pktloss, else text)",
    ),
    ("pktloss diagnose --format json", "the diagnosis as JSON"),
];

pub(crate) const TOP: &[Example] = &[
    ("pktloss top", "the live view (also `pktloss` alone on a terminal)"),
    ("pktloss top --refresh 5s --stacks", "counters and diagnosis every 5 seconds; kernel stacks in the details"),
    ("pktloss top --detail-budget unlimited", "no cap on detail events: more sample packets, more overhead"),
];

pub(crate) const SERVE: &[Example] = &[
    ("pktloss serve", "metrics for Prometheus at http://127.0.0.1:19623/metrics, a diagnosis every minute"),
    ("pktloss serve --listen 0.0.0.0:19623 --window 5m", "on every address, diagnosing every 5 minutes"),
    (
        "pktloss serve --netns-labels",
        "also drops per network namespace (at most 64 series sets, gone ones removed after 5m)",
    ),
];

pub(crate) const REPORT: &[Example] = &[
    ("pktloss report incident.pktloss", "summary and diagnosis of a saved capture, on any machine, no root needed"),
    ("pktloss report incident.pktloss --format markdown", "the same in Markdown, for a ticket"),
    ("pktloss report incident.pktloss --pcapng drops.pcapng", "also write its sampled dropped packets as pcapng"),
];

pub(crate) const REASONS: &[Example] = &[
    ("pktloss reasons", "the running kernel's drop reasons (enum skb_drop_reason, from its BTF)"),
    ("pktloss reasons --format json", "the same as JSON"),
];

/// The examples section.
pub(crate) fn examples(list: &[Example]) -> String {
    let mut out = String::from("Examples:\n");
    for (command, what) in list {
        let _ = writeln!(out, "  {command}\n      {what}");
    }
    out.pop();
    out
}

/// After the options of `top`: its keys and filter terms (as its help overlay lists them),
/// then examples.
pub(crate) fn top() -> String {
    let width = KEYS.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::from("Keys (in the live view; ? shows them there too):\n");
    for (keys, what) in KEYS {
        let _ = writeln!(out, "  {keys:<width$}  {what}");
    }
    out.push_str("\nFilter terms (after /):\n");
    for line in FILTER_HELP {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
    out.push_str(&examples(TOP));
    out
}
