//! Kernel step: find tracefs and read tracepoint format files (field offsets differ between
//! kernels, so the classic tracepoint programs get theirs from here at start).
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Result, anyhow, bail};

/// One field of a tracepoint's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// A parsed `events/CATEGORY/NAME/format` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Format {
    pub name: String,
    pub id: u32,
    pub fields: Vec<Field>,
}

impl Format {
    /// Offset of a field, if the kernel has it.
    pub(crate) fn offset(&self, name: &str) -> Option<u32> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.offset)
    }

    /// Offset of a field, or `u32::MAX` (the programs' "absent" marker).
    pub(crate) fn offset_or_absent(&self, name: &str) -> u32 {
        self.offset(name).unwrap_or(u32::MAX)
    }
}

/// Mount point of tracefs with an `events` directory (`$PKTLOSS_TRACEFS` overrides the
/// search, for tests of a machine without tracefs).
pub(crate) fn root() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PKTLOSS_TRACEFS") {
        let p = PathBuf::from(p);
        if p.join("events").is_dir() {
            return Ok(p);
        }
        bail!("tracefs is not mounted at {} (run `mount -t tracefs nodev /sys/kernel/tracing`)", p.display());
    }
    let mut denied = None;
    for p in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        match fs::metadata(Path::new(p).join("events")) {
            Ok(m) if m.is_dir() => return Ok(PathBuf::from(p)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied = denied.or(Some(p)),
            _ => {}
        }
    }
    // Mounted but not readable: tracefs is mode 0700 root unless mounted otherwise.
    if let Some(p) = denied {
        bail!(
            "cannot read tracefs at {p}: permission denied (it is root's, mode 0700: run as root, or mount it readable, e.g. `mount -o remount,mode=755 {p}`)"
        );
    }
    bail!("tracefs is not mounted (run `mount -t tracefs nodev /sys/kernel/tracing` or `cargo xtask setup`)")
}

/// Whether tracepoint `category:name` exists.
pub(crate) fn exists(root: &Path, category: &str, name: &str) -> bool {
    root.join("events").join(category).join(name).join("format").is_file()
}

/// Read and parse a tracepoint's format file.
pub(crate) fn read_format(root: &Path, category: &str, name: &str) -> Result<Format> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = fs::read_to_string(&path)
        .map_err(|e| anyhow!("tracepoint {category}:{name} not available ({}: {e})", path.display()))?;
    parse_format(&text)
}

/// Parse the text of a format file.
pub(crate) fn parse_format(text: &str) -> Result<Format> {
    let mut fmt = Format::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("name:") {
            n.trim().clone_into(&mut fmt.name);
        } else if let Some(id) = line.strip_prefix("ID:") {
            fmt.id = id.trim().parse().map_err(|_| anyhow!("bad ID line `{line}`"))?;
        } else if let Some(rest) = line.strip_prefix("field:") {
            fmt.fields.push(parse_field(rest).ok_or_else(|| anyhow!("bad field line `{line}`"))?);
        }
    }
    if fmt.fields.is_empty() {
        bail!("format has no fields");
    }
    Ok(fmt)
}

/// `void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;`
fn parse_field(rest: &str) -> Option<Field> {
    let mut parts = rest.split(';').map(str::trim);
    let decl = parts.next()?;
    let mut offset = None;
    let mut size = None;
    for p in parts {
        if let Some(v) = p.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = p.strip_prefix("size:") {
            size = v.trim().parse().ok();
        }
    }
    let last = decl.split_whitespace().last()?;
    let name = last.split('[').next()?.trim_start_matches('*');
    if name.is_empty() {
        return None;
    }
    Some(Field { name: name.to_owned(), offset: offset?, size: size? })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KFREE_6_18: &str = "name: kfree_skb
ID: 2310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;
\tfield:void * rx_sk;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: \"skbaddr=%p\", REC->skbaddr
";

    /// 5.15 had no reason and no `rx_sk`.
    const KFREE_5_15: &str = "name: kfree_skb
ID: 1443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned short protocol;\toffset:24;\tsize:2;\tsigned:0;
";

    #[test]
    fn parses_6_18_kfree_skb() {
        let f = parse_format(KFREE_6_18).expect("parse");
        assert_eq!(f.id, 2310);
        assert_eq!(f.offset("skbaddr"), Some(8));
        assert_eq!(f.offset("rx_sk"), Some(24));
        assert_eq!(f.offset("reason"), Some(36));
        assert_eq!(f.offset("protocol"), Some(32));
    }

    #[test]
    fn parses_old_kernel_without_reason() {
        let f = parse_format(KFREE_5_15).expect("parse");
        assert_eq!(f.offset_or_absent("reason"), u32::MAX);
        assert_eq!(f.offset("protocol"), Some(24));
    }

    #[test]
    fn arrays_and_data_loc() {
        let f = parse_format(
            "field:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\nfield:__data_loc char[] name;\toffset:20;\tsize:4;\tsigned:0;",
        )
        .expect("parse");
        assert_eq!(f.offset("saddr"), Some(34));
        assert_eq!(f.offset("name"), Some(20));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "field:",
            "field:int x;\toffset:zz;\tsize:4;",
            "ID: abc\nfield:int x;offset:1;size:1;",
            "\u{0}\u{ff}garbage",
        ] {
            assert!(parse_format(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn running_kernel_format_matches_parser() {
        let root = root();
        if !crate::testdata::available("running_kernel_format_matches_parser", "tracefs", root.is_ok()) {
            return;
        }
        let root = root.expect("checked");
        let f = read_format(&root, "skb", "kfree_skb").expect("kfree_skb format");
        assert_eq!(f.offset("skbaddr"), Some(8));
        assert!(f.offset("location").is_some());
    }
}
