//! Offline report: a capture file rendered as text, Markdown (for tickets) or JSON.
//!
//! Everything here works from the file alone. Strings from the file are untrusted: they are
//! stripped of control characters (no terminal escapes) and escaped for Markdown.
use std::{fmt::Write as _, str::FromStr};

use super::{clean, code, diagnosis, json, md, plural, secs, shell_join, summary};
use crate::{
    capture::{CaptureFile, netns_label},
    model::Sample,
};

/// Sample drops shown with their bytes.
const TOP_SAMPLES: usize = 10;
/// Bytes of each sample shown as a hex dump.
const DUMP_BYTES: usize = 64;

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
            let mut s = json::pretty(&report_json(file));
            s.push('\n');
            s
        }
    }
}

/// The JSON report: the shape of `pktloss diagnose --format json` (the summary's fields, the
/// diagnosis, the counter deltas and checks), plus `capture` (what else the file recorded).
#[cfg(test)]
pub(crate) fn render_json(file: &CaptureFile) -> serde_json::Value {
    serde_json::to_value(report_json(file)).unwrap_or_default()
}

fn report_json(file: &CaptureFile) -> json::Diagnosed<'_> {
    json::Diagnosed {
        capture: Some(json::CaptureMeta::of(file)),
        ..json::Diagnosed::new(&file.summary, &file.diagnosis, &file.deltas, &file.checks)
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
    let ifaces: Vec<String> = f.interfaces.iter().take(32).map(crate::capture::Interface::label).collect();
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
    let mut line = clean(&s.flow.proto);
    let src = s.flow.source();
    let dst = s.flow.destination();
    if !src.is_empty() || !dst.is_empty() {
        let _ = write!(line, " {} -> {}", clean(&src), clean(&dst));
    }
    let _ = write!(line, ", netns {}", clean(&s.netns_text()));
    if s.ifindex != 0 {
        match f.interface(s.flow.netns.inode, s.ifindex) {
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
    let bytes = s.data.bytes();
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

fn render_text(f: &CaptureFile) -> String {
    let mut out = String::from("pktloss capture report\n");
    for (k, v) in header_rows(f) {
        if !v.is_empty() {
            let _ = writeln!(out, "  {:<11} {}", format!("{k}:"), clean(&v));
        }
    }
    out.push('\n');
    out.push_str(&summary::text(&f.summary));
    out.push('\n');
    out.push_str(&diagnosis::text(&f.diagnosis));
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
    summary::markdown(s, &mut out);
    diagnosis::markdown(&f.diagnosis, &mut out);
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
                .find(|fl| fl.flow.netns.inode == netns && fl.ifindex == ifindex && !fl.device.is_empty())
                .map(|fl| fl.device.clone())
        })
        .unwrap_or_else(|| if ifindex == 0 { "no-device".into() } else { format!("if{ifindex}") });
    let ns_name =
        f.interfaces.iter().find(|i| i.netns == netns && !i.netns_name.is_empty()).map(|i| i.netns_name.as_str());
    clean(&format!("{name}@{}", netns_label(netns, ns_name.unwrap_or(""))))
}
