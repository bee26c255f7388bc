//! A diagnosis as text and Markdown: the ranked causes with their evidence, advice and the
//! commands that verify the fix, then how events and counters reconcile and what could not be
//! read. Sentences and commands are never cut.
use std::fmt::Write as _;

use super::{clean_line, md_command, md_sentence, plural};
use crate::diagnose::{Benign, Diagnosis};

/// One benign tally: class, count, reason and location, and why it is not loss.
fn benign_line(b: &Benign) -> String {
    let at = b.location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
    format!("{}: {} with reason {}{at}: {}", b.class, plural(b.drops, "drop"), b.reason, b.why)
}

/// The diagnosis as text (what `pktloss diagnose` and `pktloss report` print).
pub(crate) fn text(d: &Diagnosis) -> String {
    let mut out = String::new();
    if d.causes.is_empty() {
        out.push_str("Diagnosis: no cause of packet loss found.\n");
    } else {
        out.push_str("Diagnosis (ranked by drops explained):\n");
    }
    for (i, c) in d.causes.iter().enumerate() {
        let _ = writeln!(out, "{}. [{}] {} — {}", i + 1, c.id, clean_line(&c.title), plural(c.drops, "drop"));
        if !c.explanation.is_empty() {
            let _ = writeln!(out, "   {}", clean_line(&c.explanation));
        }
        for (title, lines) in [("Evidence", &c.evidence), ("Advice", &c.advice)] {
            if !lines.is_empty() {
                let _ = writeln!(out, "   {title}:");
                for l in lines {
                    let _ = writeln!(out, "     - {}", clean_line(l));
                }
            }
        }
        if !c.verify.is_empty() {
            out.push_str("   Verify:\n");
            for v in &c.verify {
                let _ = writeln!(out, "     $ {}", clean_line(&v.command));
            }
        }
        out.push('\n');
    }
    if !d.benign.is_empty() {
        out.push_str("Not loss (benign, counted apart):\n");
        for b in &d.benign {
            let _ = writeln!(out, "  {}", clean_line(&benign_line(b)));
        }
    }
    if !d.outside_filter.is_empty() {
        out.push_str("Outside the filter's view (counters only, not ranked):\n");
        for c in &d.outside_filter {
            let _ = writeln!(out, "  - [{}] {} — {} counted", c.id, clean_line(&c.title), plural(c.drops, "drop"));
            for l in &c.evidence {
                let _ = writeln!(out, "      {}", clean_line(l));
            }
        }
        out.push('\n');
    }
    for (title, lines) in [("Events vs counters", &d.reconciliation), ("Not available", &d.unavailable)] {
        if !lines.is_empty() {
            let _ = writeln!(out, "{title}:");
            for l in lines {
                let _ = writeln!(out, "  {}", clean_line(l));
            }
        }
    }
    out
}

/// The diagnosis as Markdown: commands in the advice stay code spans, verify lines are code.
pub(crate) fn markdown(d: &Diagnosis, out: &mut String) {
    let _ = writeln!(out, "### Diagnosis\n");
    if d.causes.is_empty() {
        let _ = writeln!(out, "No cause of packet loss found.\n");
    }
    for (i, c) in d.causes.iter().enumerate() {
        let _ = writeln!(out, "**{}. {}** (`{}`, {})\n", i + 1, md_sentence(&c.title), c.id, plural(c.drops, "drop"));
        if !c.explanation.is_empty() {
            let _ = writeln!(out, "{}\n", md_sentence(&c.explanation));
        }
        for e in &c.evidence {
            let _ = writeln!(out, "- Evidence: {}", md_sentence(e));
        }
        for a in &c.advice {
            let _ = writeln!(out, "- **Advice:** {}", md_sentence(a));
        }
        for v in &c.verify {
            let _ = writeln!(out, "- Verify: {}", md_command(&v.command));
        }
        out.push('\n');
    }
    if !d.benign.is_empty() {
        let _ = writeln!(out, "#### Not loss (benign, counted apart)\n");
        for b in &d.benign {
            let _ = writeln!(out, "- {}", md_sentence(&benign_line(b)));
        }
        out.push('\n');
    }
    if !d.outside_filter.is_empty() {
        let _ = writeln!(out, "#### Outside the filter's view (counters only, not ranked)\n");
        for c in &d.outside_filter {
            let _ = writeln!(out, "- `{}`: {} ({} counted)", c.id, md_sentence(&c.title), plural(c.drops, "drop"));
            for l in &c.evidence {
                let _ = writeln!(out, "  - {}", md_sentence(l));
            }
        }
        out.push('\n');
    }
    for (title, lines) in [("Events vs counters", &d.reconciliation), ("Not available", &d.unavailable)] {
        if !lines.is_empty() {
            let _ = writeln!(out, "#### {title}\n");
            for l in lines {
                let _ = writeln!(out, "- {}", md_sentence(l));
            }
            out.push('\n');
        }
    }
}
