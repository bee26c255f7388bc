//! Capture files: one self-contained, versioned file per incident, read later on any machine.
//!
//! `pktloss capture -o incident.pktloss` writes a [`CaptureFile`] with [`write`];
//! `pktloss report incident.pktloss` reads it back with [`read`] (no root, no kernel access
//! needed); [`crate::render::report`] renders it as text, Markdown or JSON, and
//! [`crate::render::pcapng`] exports the dropped packets' headers.
//!
//! # File format (version 1.2)
//!
//! A file is a 40-byte header followed by one payload. All integers are little-endian.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8 | magic `PKTLOSS\0` (`50 4B 54 4C 4F 53 53 00`) |
//! | 8  | 2 | format major version (1) |
//! | 10 | 2 | format minor version (2) |
//! | 12 | 4 | flags: bit 0 = payload is raw DEFLATE (RFC 1951); other bits reserved, must be 0 |
//! | 16 | 8 | stored payload length in bytes: the file is exactly 40 + this long |
//! | 24 | 8 | JSON length in bytes (after decompression) |
//! | 32 | 4 | CRC-32 (IEEE, as in zlib/PNG) of the stored payload |
//! | 36 | 4 | CRC-32 of header bytes 0..36 |
//!
//! The payload is one UTF-8 JSON object: the serde form of [`CaptureFile`] (see
//! `docs/capture-format.md` for every field). Packet bytes live in the summary's samples
//! (`summary.samples[i].data_hex`, a [`crate::model::Packet`] in hex, starting where
//! `data_start` says), exactly as in the
//! live `--format json` output, so there is one copy of each and no index to keep in step.
//!
//! Versioning: a reader accepts every minor version of its major version. Minor versions only
//! add JSON fields (old readers ignore them, new readers default them when absent). Anything
//! an old reader would misread (a new flag, a changed meaning) bumps the major version, and a
//! reader refuses other majors with a message naming both versions.
//!
//! Limits: the stored payload and the JSON are at most [`MAX_PAYLOAD`](format::MAX_PAYLOAD) and [`MAX_JSON`](format::MAX_JSON) bytes;
//! the reader checks the declared lengths against the limits and against the real size of the
//! file before it allocates anything, and stops decompressing at the declared length.
//! Every failure is a [`CaptureError`] with one clear line of explanation.
//!
//! Files are created with mode 0600: they contain packet headers, addresses and process names.

mod format;
mod output;

use std::{fs, path::Path, time::SystemTime};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    diagnose::{Diagnosis, DiagnosisInput},
    host::counters::{ConfigChecks, Gathered, NetnsDelta},
};

#[doc(hidden)]
pub use format::raw_container;
pub use format::{CaptureError, FLAG_DEFLATE, FORMAT_MAJOR, FORMAT_MINOR, encode_container};
pub(crate) use format::{FORMAT_NAME, from_bytes, to_bytes};
pub(crate) use output::{check_writable, write_private};

use crate::model::{DropReason, Summary};

/// Name and version of the container format, repeated inside the JSON so that an extracted
/// payload still says what it is. On reading, the header's version is authoritative.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FormatInfo {
    /// Always [`FORMAT_NAME`] (`"pktloss-capture"`).
    pub name: String,
    pub major: u16,
    pub minor: u16,
}

impl Default for FormatInfo {
    fn default() -> Self {
        Self { name: FORMAT_NAME.to_string(), major: FORMAT_MAJOR, minor: FORMAT_MINOR }
    }
}

/// A network device present during the capture.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Interface {
    /// Inode of its network namespace, as in the events.
    pub netns: u32,
    /// `ip netns` name, "host" for pktloss's own namespace, or empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_name: String,
    pub ifindex: u32,
    pub name: String,
    /// `ARPHRD_*` link type from `/sys/class/net/DEV/type` (1 = Ethernet, 772 = loopback,
    /// 65534 = none, e.g. tun/wireguard), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arphrd: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MAC address, "aa:bb:cc:dd:ee:ff", when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
}

impl Interface {
    /// "veth0@ns1" style label used in reports and pcapng interface names.
    pub(crate) fn label(&self) -> String {
        format!("{}@{}", self.name, netns_label(self.netns, &self.netns_name))
    }
}

/// "ns1" / "host" when the namespace has a name, else "netns:INODE".
pub(crate) fn netns_label(inode: u32, name: &str) -> String {
    if name.is_empty() { format!("netns:{inode}") } else { name.to_string() }
}

/// Everything one capture recorded. The serde form of this struct is the payload of a
/// capture file. Fields marked `#[serde(default)]` may be absent; the others are required, so
/// a JSON document of another shape is rejected rather than read as an empty capture.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureFile {
    pub(crate) format: FormatInfo,
    /// Version of the pktloss that wrote the file.
    pub(crate) tool_version: String,
    /// When the file was written, RFC 3339 UTC.
    pub(crate) created: String,
    /// argv of the capturing pktloss.
    #[serde(default)]
    pub(crate) command_line: Vec<String>,
    /// Effective capture options (duration, count, snaplen, filters, ...), free-form.
    #[serde(default)]
    pub(crate) options: serde_json::Value,
    /// Why the capture ended: "duration", "count", "interrupted", ... (free-form).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) stopped_by: String,
    #[serde(default)]
    pub(crate) hostname: String,
    /// `uname -r`.
    #[serde(default)]
    pub(crate) kernel: String,
    /// `uname -v` (build number and date).
    #[serde(default)]
    pub(crate) kernel_version: String,
    /// `uname -m`.
    #[serde(default)]
    pub(crate) arch: String,
    /// `/proc/sys/kernel/random/boot_id`.
    #[serde(default)]
    pub(crate) boot_id: String,
    /// The capturing kernel's `enum skb_drop_reason`, so codes can be named on any machine.
    #[serde(default)]
    pub(crate) drop_reasons: Vec<DropReason>,
    /// Network devices of the namespaces seen in the capture.
    #[serde(default)]
    pub(crate) interfaces: Vec<Interface>,
    /// The aggregates and sampled drops (with packet bytes).
    pub(crate) summary: Summary,
    /// Kernel counters (SNMP, netstat, device stats, ...) and configuration of every
    /// namespace read, before and after the capture: `pktloss report` diagnoses from them.
    #[serde(default)]
    pub(crate) counters_before: Option<Gathered>,
    #[serde(default)]
    pub(crate) counters_after: Option<Gathered>,
    /// Sysctls and configuration checks the diagnosis used (rule and socket counters as
    /// deltas).
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) checks: Vec<ConfigChecks>,
    /// The diagnosis made when the capture was written.
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) diagnosis: Diagnosis,
    /// Counter deltas of each namespace, derived from the counters before and after by
    /// [`CaptureFile::rediagnose`] (not stored).
    #[serde(skip)]
    pub(crate) deltas: Vec<NetnsDelta>,
}

/// A field written as `null` reads as its default (files of 1.0 wrote absent parts as null).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl CaptureFile {
    /// Diagnose this capture again from what it recorded (the summary and the counters before
    /// and after) with this pktloss's rules; a file without counters keeps its saved diagnosis.
    pub(crate) fn rediagnose(&mut self) {
        let (Some(before), Some(after)) = (&self.counters_before, &self.counters_after) else {
            return;
        };
        let (deltas, checks) = crate::host::counters::finish(before.clone(), after.clone());
        self.diagnosis =
            crate::diagnose::diagnose(&DiagnosisInput { summary: &self.summary, deltas: &deltas, checks: &checks });
        self.deltas = deltas;
        self.checks = checks;
    }

    /// A capture of `summary` on this machine: format, tool version, time of writing,
    /// command line, host name, kernel, architecture and boot id filled in from the running
    /// system (best effort: what cannot be read stays empty). The caller adds the rest.
    pub(crate) fn for_this_host(summary: Summary) -> Self {
        let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
        let uts = nix::sys::utsname::uname().ok();
        let uts_field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
        };
        Self {
            format: FormatInfo::default(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            command_line: std::env::args().collect(),
            hostname: read("/proc/sys/kernel/hostname"),
            kernel: uts_field(|u| u.release()),
            kernel_version: uts_field(|u| u.version()),
            arch: uts_field(|u| u.machine()),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            summary,
            ..Self::default()
        }
    }

    /// Name of a drop-reason code on the capturing kernel.
    pub(crate) fn reason_name(&self, code: u32) -> Option<&str> {
        self.drop_reasons.iter().find(|r| r.code == code).map(|r| r.name.as_str())
    }

    /// The device `(netns, ifindex)` as recorded in `interfaces`.
    pub(crate) fn interface(&self, netns: u32, ifindex: u32) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.netns == netns && i.ifindex == ifindex)
    }
}

/// Write `file` to `path` atomically, mode 0600 from creation on: the bytes go to a
/// temporary file in the same directory which is then renamed over `path`.
#[cfg(test)]
pub(crate) fn write(path: &Path, file: &CaptureFile) -> Result<()> {
    let bytes = to_bytes(file)?;
    write_private(path, &bytes)
}

/// Read and validate a capture file. Checks the size before reading it whole.
pub(crate) fn read(path: &Path) -> Result<CaptureFile, CaptureError> {
    let io = |source| CaptureError::Io { path: path.to_path_buf(), source };
    let meta = fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(CaptureError::NotAFile { path: path.to_path_buf() });
    }
    let mut f = fs::File::open(path).map_err(io)?;
    format::read_from(&mut f, meta.len()).map_err(|e| match e {
        CaptureError::Io { source, .. } => io(source),
        e => e,
    })
}

/// Read and validate a capture held in memory (what [`read`] does after opening the file).
pub fn read_bytes(bytes: &[u8]) -> Result<CaptureFile, CaptureError> {
    from_bytes(bytes)
}

#[cfg(test)]
mod tests;
