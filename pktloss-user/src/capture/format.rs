//! The container: header layout, encoding, and a defensive decoder with typed errors.
//!
//! See the parent module for the layout. The decoder never trusts a declared length: each is
//! checked against a hard limit and the real input size before any allocation, and
//! decompression stops one byte past the declared JSON length.
use std::{io::Read, path::PathBuf};

use anyhow::Result;
use flate2::{Compression, read::DeflateDecoder, write::DeflateEncoder};

use super::CaptureFile;

/// First 8 bytes of every capture file.
pub(crate) const MAGIC: [u8; 8] = *b"PKTLOSS\0";
/// Format major version written and read by this pktloss.
pub const FORMAT_MAJOR: u16 = 1;
/// Format minor version written by this pktloss (any minor of [`FORMAT_MAJOR`] is read).
pub const FORMAT_MINOR: u16 = 2;
/// `format.name` inside the JSON payload.
pub(crate) const FORMAT_NAME: &str = "pktloss-capture";
/// Size of the fixed header.
pub(crate) const HEADER_LEN: usize = 40;
/// Header flag: the payload is raw DEFLATE (RFC 1951).
pub const FLAG_DEFLATE: u32 = 1;
const KNOWN_FLAGS: u32 = FLAG_DEFLATE;
/// Largest stored payload accepted (1 GiB).
pub(crate) const MAX_PAYLOAD: u64 = 1 << 30;
/// Largest JSON document accepted after decompression (1 GiB).
pub(crate) const MAX_JSON: u64 = 1 << 30;
/// DEFLATE cannot expand data by more than about 1032:1; a header claiming more is corrupt.
const MAX_DEFLATE_RATIO: u64 = 1040;
/// Initial buffer for decompression; it grows with the real output, never to the declared size.
const INITIAL_BUF: u64 = 1 << 20;

/// Why a capture file could not be read. Each message is one line meant for the user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file", path = path.display())]
    NotAFile { path: PathBuf },
    #[error("the file is empty (0 bytes): not a pktloss capture")]
    Empty,
    #[error("not a pktloss capture file{}", looks_like.map(|l| format!(" (it looks like {l})")).unwrap_or_default())]
    NotCapture { looks_like: Option<&'static str> },
    #[error("truncated pktloss capture: the file has {have} bytes, fewer than the {HEADER_LEN}-byte header")]
    TruncatedHeader { have: u64 },
    #[error("written by a newer pktloss: capture format {major}.{minor}, but this pktloss ({}) reads format {FORMAT_MAJOR}.x; upgrade pktloss to read it", env!("CARGO_PKG_VERSION"))]
    NewerFormat { major: u16, minor: u16 },
    #[error("capture format {major}.{minor} is older than this pktloss ({}) can read (format {FORMAT_MAJOR}.x); use an older pktloss to read it", env!("CARGO_PKG_VERSION"))]
    OlderFormat { major: u16, minor: u16 },
    #[error("corrupted pktloss capture: the header checksum does not match")]
    HeaderChecksum,
    #[error(
        "the capture uses features unknown to this pktloss (flags {flags:#x}); it was probably written by a newer pktloss"
    )]
    UnknownFlags { flags: u32 },
    #[error("corrupted pktloss capture: it declares a {what} of {declared} bytes, over the {limit}-byte limit")]
    TooLarge { what: &'static str, declared: u64, limit: u64 },
    #[error(
        "truncated pktloss capture: the header declares {declared} payload bytes but only {actual} follow (was the copy cut short?)"
    )]
    Truncated { declared: u64, actual: u64 },
    #[error("corrupted pktloss capture: {extra} unexpected bytes after the payload")]
    TrailingBytes { extra: u64 },
    #[error(
        "corrupted pktloss capture: payload checksum mismatch (CRC-32 {actual:#010x}, header says {expected:#010x})"
    )]
    PayloadChecksum { expected: u32, actual: u32 },
    #[error("corrupted pktloss capture: {0}")]
    Corrupt(String),
    #[error("invalid pktloss capture content: {0}")]
    Content(String),
}

/// The parsed fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    major: u16,
    minor: u16,
    flags: u32,
    payload_len: u64,
    json_len: u64,
    payload_crc: u32,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(off..off + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// What a non-capture file looks like, from its first bytes, for a friendlier error.
fn sniff(b: &[u8]) -> Option<&'static str> {
    let starts = |m: &[u8]| b.starts_with(m);
    if starts(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        return Some("a pcapng file");
    }
    if [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d]]
        .iter()
        .any(|m| starts(m))
    {
        return Some("a pcap file");
    }
    if starts(b"\x7fELF") {
        return Some("an ELF executable or object");
    }
    if starts(&[0x1f, 0x8b]) {
        return Some("gzip-compressed data; decompress it first");
    }
    if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some("zstd-compressed data; decompress it first");
    }
    if starts(b"PK\x03\x04") {
        return Some("a zip archive; extract it first");
    }
    if starts(b"%PDF") {
        return Some("a PDF document");
    }
    let head = b.get(..b.len().min(512)).unwrap_or_default();
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the 512-byte boundary is still text.
        Err(e) if e.error_len().is_none() => {
            head.get(..e.valid_up_to()).and_then(|h| std::str::from_utf8(h).ok()).unwrap_or_default()
        }
        Err(_) => return None,
    };
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    match text.trim_start().chars().next() {
        Some('{' | '[') => Some(
            "JSON text, perhaps `pktloss --format json` output; a capture file is made by `pktloss capture -o FILE`",
        ),
        Some(_) => Some("text"),
        None => None,
    }
}

/// Check the header and the declared lengths against the total input size. `prefix` holds
/// the first `min(total, HEADER_LEN)` bytes of the input.
fn parse_header(prefix: &[u8], total: u64) -> Result<Header, CaptureError> {
    if total == 0 {
        return Err(CaptureError::Empty);
    }
    let magic_part = prefix.get(..prefix.len().min(MAGIC.len())).unwrap_or_default();
    if !MAGIC.starts_with(magic_part) {
        return Err(CaptureError::NotCapture { looks_like: sniff(prefix) });
    }
    if prefix.len() < HEADER_LEN || total < HEADER_LEN as u64 {
        return Err(CaptureError::TruncatedHeader { have: total });
    }
    let major = u16_at(prefix, 8);
    let minor = u16_at(prefix, 10);
    // The version fields keep their place in every format; the rest may change with the
    // major version, so check it before the header checksum.
    if major > FORMAT_MAJOR {
        return Err(CaptureError::NewerFormat { major, minor });
    }
    if major < FORMAT_MAJOR {
        return Err(CaptureError::OlderFormat { major, minor });
    }
    let header_crc = u32_at(prefix, 36);
    if crc32fast::hash(prefix.get(..36).unwrap_or_default()) != header_crc {
        return Err(CaptureError::HeaderChecksum);
    }
    let h = Header {
        major,
        minor,
        flags: u32_at(prefix, 12),
        payload_len: u64_at(prefix, 16),
        json_len: u64_at(prefix, 24),
        payload_crc: u32_at(prefix, 32),
    };
    if h.flags & !KNOWN_FLAGS != 0 {
        return Err(CaptureError::UnknownFlags { flags: h.flags });
    }
    if h.payload_len > MAX_PAYLOAD {
        return Err(CaptureError::TooLarge { what: "payload", declared: h.payload_len, limit: MAX_PAYLOAD });
    }
    if h.json_len > MAX_JSON {
        return Err(CaptureError::TooLarge { what: "JSON document", declared: h.json_len, limit: MAX_JSON });
    }
    let actual = total - HEADER_LEN as u64;
    if actual < h.payload_len {
        return Err(CaptureError::Truncated { declared: h.payload_len, actual });
    }
    if actual > h.payload_len {
        return Err(CaptureError::TrailingBytes { extra: actual - h.payload_len });
    }
    if h.flags & FLAG_DEFLATE == 0 && h.json_len != h.payload_len {
        return Err(CaptureError::Corrupt(format!(
            "uncompressed payload of {} bytes but the header says the JSON has {}",
            h.payload_len, h.json_len
        )));
    }
    if h.flags & FLAG_DEFLATE != 0 && h.json_len > h.payload_len.saturating_mul(MAX_DEFLATE_RATIO) + 64 {
        return Err(CaptureError::Corrupt(format!(
            "{} compressed bytes cannot hold the {} JSON bytes the header declares",
            h.payload_len, h.json_len
        )));
    }
    Ok(h)
}

/// Check the payload, decompress it and parse the JSON.
fn decode_payload(h: &Header, payload: &[u8]) -> Result<CaptureFile, CaptureError> {
    let actual = crc32fast::hash(payload);
    if actual != h.payload_crc {
        return Err(CaptureError::PayloadChecksum { expected: h.payload_crc, actual });
    }
    let inflated;
    let json: &[u8] = if h.flags & FLAG_DEFLATE != 0 {
        let cap = usize::try_from(h.json_len.min(INITIAL_BUF)).unwrap_or(0);
        let mut buf = Vec::with_capacity(cap);
        DeflateDecoder::new(payload)
            .take(h.json_len.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| CaptureError::Corrupt(format!("cannot decompress the payload: {e}")))?;
        if buf.len() as u64 != h.json_len {
            return Err(CaptureError::Corrupt(format!(
                "the payload decompresses to {}{} bytes, the header says {}",
                if buf.len() as u64 > h.json_len { "more than " } else { "" },
                buf.len().min(usize::try_from(h.json_len).unwrap_or(usize::MAX)),
                h.json_len
            )));
        }
        inflated = buf;
        &inflated
    } else {
        payload
    };
    let mut file: CaptureFile = serde_json::from_slice(json).map_err(|e| {
        CaptureError::Content(match e.classify() {
            serde_json::error::Category::Data => format!("unexpected JSON structure: {e}"),
            serde_json::error::Category::Eof => format!("JSON ends early: {e}"),
            _ => format!("malformed JSON: {e}"),
        })
    })?;
    if file.format.name != FORMAT_NAME {
        return Err(CaptureError::Content(format!(
            "the payload names its format {:?}, expected {FORMAT_NAME:?}",
            file.format.name.chars().take(64).collect::<String>()
        )));
    }
    if file.format.major != h.major {
        return Err(CaptureError::Content(format!(
            "the payload says format {}.{} but the header says {}.{}",
            file.format.major, file.format.minor, h.major, h.minor
        )));
    }
    file.format.minor = h.minor;
    Ok(file)
}

/// Decode a capture held in memory.
pub(crate) fn from_bytes(bytes: &[u8]) -> Result<CaptureFile, CaptureError> {
    let prefix = bytes.get(..bytes.len().min(HEADER_LEN)).unwrap_or_default();
    let h = parse_header(prefix, bytes.len() as u64)?;
    decode_payload(&h, bytes.get(HEADER_LEN..).unwrap_or_default())
}

/// Decode a capture from a reader whose total size is `total` (the file's size): the header
/// is read and checked first, then exactly the declared payload.
pub(crate) fn read_from(r: &mut impl Read, total: u64) -> Result<CaptureFile, CaptureError> {
    let io = |source| CaptureError::Io { path: PathBuf::new(), source };
    let mut prefix = Vec::with_capacity(HEADER_LEN);
    r.by_ref().take(HEADER_LEN as u64).read_to_end(&mut prefix).map_err(io)?;
    let h = parse_header(&prefix, total.max(prefix.len() as u64))?;
    let len = usize::try_from(h.payload_len).map_err(|_| CaptureError::TooLarge {
        what: "payload",
        declared: h.payload_len,
        limit: MAX_PAYLOAD,
    })?;
    let mut payload = Vec::with_capacity(len);
    r.take(h.payload_len).read_to_end(&mut payload).map_err(io)?;
    if payload.len() != len {
        // The file shrank while we read it.
        return Err(CaptureError::Truncated { declared: h.payload_len, actual: payload.len() as u64 });
    }
    decode_payload(&h, &payload)
}

/// Build a container around `payload` with the given flags and declared JSON length, with
/// correct checksums. Exposed for tests and the fuzz target; [`to_bytes`] is the normal path.
#[doc(hidden)]
pub fn raw_container(major: u16, minor: u16, flags: u32, json_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&major.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Wrap a JSON document in a current-version container, DEFLATE-compressed or not.
pub fn encode_container(json: &[u8], compress: bool) -> Result<Vec<u8>> {
    if json.len() as u64 > MAX_JSON {
        anyhow::bail!("capture too large: {} bytes of JSON, the format's limit is {MAX_JSON}", json.len());
    }
    if !compress {
        return Ok(raw_container(FORMAT_MAJOR, FORMAT_MINOR, 0, json.len() as u64, json));
    }
    let mut enc = DeflateEncoder::new(Vec::with_capacity(json.len() / 4 + 64), Compression::default());
    std::io::Write::write_all(&mut enc, json)?;
    let payload = enc.finish()?;
    Ok(raw_container(FORMAT_MAJOR, FORMAT_MINOR, FLAG_DEFLATE, json.len() as u64, &payload))
}

/// Encode a capture as the bytes of a file (current format version, compressed).
pub(crate) fn to_bytes(file: &CaptureFile) -> Result<Vec<u8>> {
    let mut file = file.clone();
    file.format = super::FormatInfo::default();
    // serde_json writes NaN/inf as null, which would not read back as f64.
    for x in [&mut file.summary.duration_secs, &mut file.summary.drops_per_sec] {
        if !x.is_finite() {
            *x = 0.0;
        }
    }
    let json = serde_json::to_vec(&file)?;
    encode_container(&json, true)
}
