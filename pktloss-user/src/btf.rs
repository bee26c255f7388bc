//! Kernel step: resolve struct offsets, tracepoint arguments and drop-reason names from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`). Nothing about kernel layouts is hard-coded.
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use btf_rs::{Btf, BtfType as _, Type};
use pktloss_common::{KfreeBtfArgs, Offsets};

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's BTF.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Parse `/sys/kernel/btf/vmlinux` (or `$PKTLOSS_BTF`, for tests of a kernel without BTF).
    pub fn load() -> Result<Self> {
        match std::env::var_os("PKTLOSS_BTF") {
            Some(p) => Self::from_path(Path::new(&p)),
            None => Self::from_path(Path::new(VMLINUX_BTF)),
        }
    }

    /// Parse a BTF file.
    pub fn from_path(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!(
                "no kernel BTF at {} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)",
                path.display()
            );
        }
        let btf = Btf::from_file(path).map_err(|e| anyhow!("cannot parse BTF {}: {e}", path.display()))?;
        Ok(Self { btf })
    }

    fn name_of(&self, t: &dyn btf_rs::BtfType) -> String {
        self.btf.resolve_name(t).unwrap_or_default()
    }

    fn type_by_id(&self, id: u32) -> Result<Type> {
        self.btf.resolve_type_by_id(id).map_err(|e| anyhow!("BTF type {id}: {e}"))
    }

    /// Follow typedef/const/volatile/restrict/type-tag to the underlying type.
    fn strip(&self, mut t: Type) -> Result<Type> {
        for _ in 0..32 {
            match &t {
                Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) | Type::TypeTag(_) => {
                    t = self.btf.resolve_chained_type(t.as_btf_type().ok_or_else(|| anyhow!("bad chain"))?)
                        .map_err(|e| anyhow!("BTF chain: {e}"))?;
                }
                _ => return Ok(t),
            }
        }
        bail!("BTF type chain too long")
    }

    /// The struct (not a forward declaration) named `name`.
    fn struct_named(&self, name: &str) -> Result<btf_rs::Struct> {
        let types = self.btf.resolve_types_by_name(name).map_err(|e| anyhow!("BTF has no `struct {name}`: {e}"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| anyhow!("BTF has no `struct {name}`"))
    }

    /// Byte offset of `member` in `s`, looking through anonymous struct/union members.
    /// Returns the offset and the member's type id.
    fn find_member(&self, s: &btf_rs::Struct, member: &str, depth: u32) -> Result<Option<(u32, u32)>> {
        if depth > 8 {
            return Ok(None);
        }
        for m in &s.members {
            let name = self.name_of(m);
            let tid = m.get_type_id().unwrap_or(0);
            if name == member {
                if m.bitfield_size().is_some_and(|b| b != 0) || m.bit_offset() % 8 != 0 {
                    bail!("member `{member}` is a bitfield");
                }
                return Ok(Some((m.bit_offset() / 8, tid)));
            }
            if name.is_empty() {
                let inner = self.strip(self.type_by_id(tid)?)?;
                if let Type::Struct(inner) | Type::Union(inner) = inner {
                    if let Some((off, t)) = self.find_member(&inner, member, depth + 1)? {
                        return Ok(Some((m.bit_offset() / 8 + off, t)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Byte offset of `a.b.c` in `struct sname` (each step through a struct-typed member).
    pub fn offset_of(&self, sname: &str, path: &[&str]) -> Result<u32> {
        let mut s = self.struct_named(sname)?;
        let mut total = 0u32;
        for (i, step) in path.iter().enumerate() {
            let (off, tid) = self
                .find_member(&s, step, 0)?
                .ok_or_else(|| anyhow!("`struct {sname}` has no member `{}`", path[..=i].join(".")))?;
            total += off;
            if i + 1 < path.len() {
                match self.strip(self.type_by_id(tid)?)? {
                    Type::Struct(inner) | Type::Union(inner) => s = inner,
                    other => bail!("`{sname}.{}` is a {}, not a struct", path[..=i].join("."), other.name()),
                }
            }
        }
        Ok(total)
    }

    /// All offsets the programs need.
    pub fn offsets(&self) -> Result<Offsets> {
        let skb = |p: &[&str]| self.offset_of("sk_buff", p).context("resolving struct sk_buff");
        Ok(Offsets {
            skb_dev: skb(&["dev"])?,
            skb_sk: skb(&["sk"])?,
            skb_head: skb(&["head"])?,
            skb_data: skb(&["data"])?,
            skb_len: skb(&["len"])?,
            skb_tail: skb(&["tail"])?,
            skb_network_header: skb(&["network_header"])?,
            skb_transport_header: skb(&["transport_header"])?,
            skb_mac_header: skb(&["mac_header"])?,
            skb_protocol: skb(&["protocol"])?,
            dev_ifindex: self.offset_of("net_device", &["ifindex"])?,
            dev_nd_net: self.offset_of("net_device", &["nd_net"])?,
            net_inum: self.offset_of("net", &["ns", "inum"])?,
            sock_net: self.offset_of("sock", &["__sk_common", "skc_net"])?,
        })
    }

    /// Parameters of a tracepoint's BTF prototype (`btf_trace_NAME`), without the leading
    /// `void *__data`: for each, the (stripped) type's kind and pointee/enum name.
    fn tp_params(&self, tp: &str) -> Result<Vec<(String, String)>> {
        let typedef = format!("btf_trace_{tp}");
        let t = self
            .btf
            .resolve_types_by_name(&typedef)
            .map_err(|_| anyhow!("kernel BTF has no `{typedef}`: no BTF tracepoint {tp}"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("kernel BTF has no `{typedef}`"))?;
        let ptr = self.strip(t)?;
        let Type::Ptr(ptr) = ptr else { bail!("`{typedef}` is not a function pointer") };
        let proto = self.strip(self.btf.resolve_chained_type(&ptr).map_err(|e| anyhow!("{typedef}: {e}"))?)?;
        let Type::FuncProto(proto) = proto else { bail!("`{typedef}` is not a function pointer") };
        let mut out = Vec::new();
        for p in proto.parameters.iter().skip(1) {
            let t = self.strip(self.type_by_id(p.get_type_id().unwrap_or(0))?)?;
            let desc = match &t {
                Type::Ptr(pp) => {
                    let pointee = self.btf.resolve_chained_type(pp).ok();
                    let pointee = pointee.map(|x| self.strip(x)).transpose()?;
                    match pointee {
                        Some(Type::Struct(s)) => ("ptr".to_owned(), self.name_of(&s)),
                        Some(Type::Fwd(f)) => ("ptr".to_owned(), self.name_of(&f)),
                        _ => ("ptr".to_owned(), "void".to_owned()),
                    }
                }
                Type::Enum(e) => ("enum".to_owned(), self.name_of(e)),
                Type::Enum64(e) => ("enum".to_owned(), self.name_of(e)),
                other => (other.name().to_owned(), String::new()),
            };
            out.push(desc);
        }
        Ok(out)
    }

    /// Positions of skb, location, reason and rx_sk in the `kfree_skb` BTF tracepoint.
    pub fn kfree_skb_args(&self) -> Result<KfreeBtfArgs> {
        let params = self.tp_params("kfree_skb")?;
        let pos = |kind: &str, name: &str| -> u32 {
            params
                .iter()
                .position(|(k, n)| k == kind && n == name)
                .map_or(u32::MAX, |p| p as u32)
        };
        let skb = pos("ptr", "sk_buff");
        let location = pos("ptr", "void");
        let reason = pos("enum", "skb_drop_reason");
        let rx_sk = pos("ptr", "sock");
        if skb == u32::MAX || location == u32::MAX {
            bail!("unexpected prototype of the kfree_skb tracepoint: {params:?}");
        }
        Ok(KfreeBtfArgs { skb, location, reason, rx_sk })
    }

    /// Whether the kernel has a BTF tracepoint named `tp`.
    pub fn has_tracepoint(&self, tp: &str) -> bool {
        self.tp_params(tp).is_ok()
    }

    /// Values and names of `enum skb_drop_reason` (prefix `SKB_DROP_REASON_` removed), plus the
    /// subsystem reasons of other `*_drop_reason` enums (values with the subsystem in the
    /// upper 16 bits).
    pub fn drop_reasons(&self) -> Result<Vec<(u32, String)>> {
        let mut out = Vec::new();
        let core = self
            .btf
            .resolve_types_by_name("skb_drop_reason")
            .map_err(|_| anyhow!("kernel BTF has no `enum skb_drop_reason` (kernel older than 5.17?)"))?;
        for t in core {
            if let Type::Enum(e) = t {
                for m in &e.members {
                    let name = self.name_of(m);
                    let name = name.strip_prefix("SKB_DROP_REASON_").unwrap_or(&name).to_owned();
                    out.push((m.val(), name));
                }
            }
        }
        if out.is_empty() {
            bail!("`enum skb_drop_reason` is empty in the kernel BTF");
        }
        // Subsystem reasons: enums like `mac80211_drop_reason`, `ovs_drop_reason`.
        if let Ok(subsys) = subsystem_reasons(&self.btf) {
            for (v, n) in subsys {
                if v >= 1 << 16 && !out.iter().any(|(ov, _)| *ov == v) {
                    out.push((v, n));
                }
            }
        }
        out.sort();
        out.dedup_by_key(|(v, _)| *v);
        Ok(out)
    }
}

/// Members of every enum named `*_drop_reason` other than `skb_drop_reason`.
fn subsystem_reasons(btf: &Btf) -> Result<Vec<(u32, String)>> {
    use fallible_iterator::FallibleIterator as _;
    let mut out = Vec::new();
    let mut it = btf.type_iter();
    while let Ok(Some(t)) = it.next() {
        if let Type::Enum(e) = t {
            let name = btf.resolve_name(&e).unwrap_or_default();
            if name.ends_with("_drop_reason") && name != "skb_drop_reason" {
                for m in &e.members {
                    out.push((m.val(), btf.resolve_name(m).unwrap_or_default()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Option<KernelBtf> {
        match KernelBtf::load() {
            Ok(k) => Some(k),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping: {e}");
                None
            }
            Err(e) => panic!("CI=true but no kernel BTF: {e}"),
        }
    }

    #[test]
    fn offsets_resolve_against_running_kernel() {
        let Some(k) = kernel() else { return };
        let o = k.offsets().expect("offsets");
        // Sanity relations that hold on every kernel: head and data are adjacent pointers,
        // the three header offsets are adjacent u16s, all inside a sk_buff of < 512 bytes.
        assert_eq!(o.skb_data, o.skb_head + 8, "{o:?}");
        assert_eq!(o.skb_network_header, o.skb_transport_header + 2, "{o:?}");
        assert_eq!(o.skb_mac_header, o.skb_network_header + 2, "{o:?}");
        assert!(o.skb_head < 512 && o.skb_dev < 64, "{o:?}");
        assert!(o.net_inum > 0 && o.dev_ifindex > 0, "{o:?}");
    }

    #[test]
    fn kfree_skb_arguments_found() {
        let Some(k) = kernel() else { return };
        let a = k.kfree_skb_args().expect("kfree_skb args");
        assert_eq!(a.skb, 0);
        assert_eq!(a.location, 1);
        assert_ne!(a.reason, u32::MAX);
    }

    #[test]
    fn drop_reasons_come_from_the_enum() {
        let Some(k) = kernel() else { return };
        let r = k.drop_reasons().expect("reasons");
        let get = |n: &str| r.iter().find(|(_, name)| name == n).map(|(v, _)| *v);
        assert_eq!(get("SKB_NOT_DROPPED_YET"), Some(0));
        assert!(get("NO_SOCKET").is_some());
        assert!(get("NETFILTER_DROP").is_some());
        // The tracefs format file lists the same value for NO_SOCKET.
        if let Ok(fmt) = std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format") {
            let needle = format!("{{ {}, \"NO_SOCKET\" }}", get("NO_SOCKET").unwrap_or(0));
            assert!(fmt.contains(&needle), "tracefs disagrees on NO_SOCKET");
        }
    }

    #[test]
    fn missing_member_is_a_clear_error() {
        let Some(k) = kernel() else { return };
        let e = k.offset_of("sk_buff", &["no_such_member"]).expect_err("must fail");
        assert!(e.to_string().contains("no member"), "{e}");
    }
}
