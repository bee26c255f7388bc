//! Kernel step: resolve struct offsets, tracepoint arguments and drop-reason names from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`). Nothing about kernel layouts is hard-coded.
//!
//! A lean reader: the raw BTF blob plus one offset per type id (about 6 MiB for a distribution
//! kernel), looked up by scanning. General BTF libraries build name indexes that cost several
//! times that, which matters for a tool meant to stay resident on busy hosts.
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use pktloss_common::{FwOffsets, KfreeBtfArgs, Offsets};

/// Where the kernel exposes its own BTF.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;

mod kind {
    pub(super) const INT: u32 = 1;
    pub(super) const PTR: u32 = 2;
    pub(super) const ARRAY: u32 = 3;
    pub(super) const STRUCT: u32 = 4;
    pub(super) const UNION: u32 = 5;
    pub(super) const ENUM: u32 = 6;
    pub(super) const FWD: u32 = 7;
    pub(super) const TYPEDEF: u32 = 8;
    pub(super) const VOLATILE: u32 = 9;
    pub(super) const CONST: u32 = 10;
    pub(super) const RESTRICT: u32 = 11;
    pub(super) const FUNC: u32 = 12;
    pub(super) const FUNC_PROTO: u32 = 13;
    pub(super) const VAR: u32 = 14;
    pub(super) const DATASEC: u32 = 15;
    pub(super) const FLOAT: u32 = 16;
    pub(super) const DECL_TAG: u32 = 17;
    pub(super) const TYPE_TAG: u32 = 18;
    pub(super) const ENUM64: u32 = 19;
}

/// One type's common header.
#[derive(Clone, Copy, Debug)]
struct Ty {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Byte offset of the kind-specific data that follows the header.
    extra: usize,
}

/// The running kernel's BTF.
pub(crate) struct KernelBtf {
    data: Vec<u8>,
    strings: std::ops::Range<usize>,
    /// Byte offset of each type's header; index = type id (0 = void, unused).
    types: Vec<u32>,
    /// While a module's split BTF is appended (`with_module`): the length of the base string
    /// section and where the module's strings are.
    split: Option<(u32, std::ops::Range<usize>)>,
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}

impl KernelBtf {
    /// Parse `/sys/kernel/btf/vmlinux` (or `$PKTLOSS_BTF`, for tests of a kernel without BTF).
    pub(crate) fn load() -> Result<Self> {
        match std::env::var_os("PKTLOSS_BTF") {
            Some(p) => Self::from_path(Path::new(&p)),
            None => Self::from_path(Path::new(VMLINUX_BTF)),
        }
    }

    /// Parse a BTF file.
    pub(crate) fn from_path(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("no kernel BTF at {} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)", path.display());
        }
        let data = std::fs::read(path).with_context(|| format!("cannot read BTF {}", path.display()))?;
        Self::parse(data).with_context(|| format!("cannot parse BTF {}", path.display()))
    }

    /// Parse raw (little-endian) BTF.
    pub(crate) fn parse(data: Vec<u8>) -> Result<Self> {
        let bad = || anyhow!("truncated or malformed BTF header");
        if u16_at(&data, 0).ok_or_else(bad)? != BTF_MAGIC {
            bail!("not BTF (bad magic), or a big-endian BTF");
        }
        let hdr_len = u32_at(&data, 4).ok_or_else(bad)? as usize;
        let type_off = u32_at(&data, 8).ok_or_else(bad)? as usize;
        let type_len = u32_at(&data, 12).ok_or_else(bad)? as usize;
        let str_off = u32_at(&data, 16).ok_or_else(bad)? as usize;
        let str_len = u32_at(&data, 20).ok_or_else(bad)? as usize;
        let t_start = hdr_len.checked_add(type_off).ok_or_else(bad)?;
        let t_end = t_start.checked_add(type_len).ok_or_else(bad)?;
        let s_start = hdr_len.checked_add(str_off).ok_or_else(bad)?;
        let s_end = s_start.checked_add(str_len).ok_or_else(bad)?;
        if t_end > data.len() || s_end > data.len() {
            bail!("BTF sections extend past the end of the data");
        }
        let mut types = vec![0u32];
        scan_types(&data, t_start, t_end, &mut types)?;
        Ok(Self { data, strings: s_start..s_end, types, split: None })
    }

    /// Run `f` on this BTF with the split BTF of a loaded module (`/sys/kernel/btf/MODULE`)
    /// appended, then take it away again. `None` when the module has no BTF (not loaded, or
    /// built in: then its types are in vmlinux).
    pub(crate) fn with_module<R>(&mut self, module: &str, f: impl FnOnce(&Self) -> R) -> Option<R> {
        let path = Path::new("/sys/kernel/btf").join(module);
        let data = std::fs::read(&path).ok()?;
        let (base_len, base_types) = (self.data.len(), self.types.len());
        let base_str_len = u32::try_from(self.strings.len()).ok()?;
        let hdr = |o: usize| u32_at(&data, o).map(|v| v as usize);
        let (hdr_len, type_off, type_len, str_off, str_len) = (hdr(4)?, hdr(8)?, hdr(12)?, hdr(16)?, hdr(20)?);
        if u16_at(&data, 0)? != BTF_MAGIC
            || hdr_len + type_off + type_len > data.len()
            || hdr_len + str_off + str_len > data.len()
        {
            return None;
        }
        self.data.reserve_exact(data.len());
        self.data.extend_from_slice(&data);
        let t_start = base_len + hdr_len + type_off;
        let s_start = base_len + hdr_len + str_off;
        let ok = scan_types(&self.data, t_start, t_start + type_len, &mut self.types).is_ok();
        self.split = Some((base_str_len, s_start..s_start + str_len));
        let out = ok.then(|| f(self));
        self.split = None;
        self.types.truncate(base_types);
        self.data.truncate(base_len);
        out
    }
}

/// Append the byte offset of each type header in `data[t_start..t_end]` to `types`.
fn scan_types(data: &[u8], t_start: usize, t_end: usize, types: &mut Vec<u32>) -> Result<()> {
    let bad = || anyhow!("truncated or malformed BTF header");
    let mut off = t_start;
    while off < t_end {
        let info = u32_at(data, off + 4).ok_or_else(bad)?;
        let vlen = (info & 0xffff) as usize;
        let k = (info >> 24) & 0x1f;
        let extra = match k {
            kind::INT | kind::VAR | kind::DECL_TAG => 4,
            kind::ARRAY => 12,
            kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
            kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
            kind::PTR
            | kind::FWD
            | kind::TYPEDEF
            | kind::VOLATILE
            | kind::CONST
            | kind::RESTRICT
            | kind::FUNC
            | kind::FLOAT
            | kind::TYPE_TAG => 0,
            other => bail!("unknown BTF kind {other} at byte {off}"),
        };
        types.push(u32::try_from(off).map_err(|_| anyhow!("BTF too large"))?);
        off += 12 + extra;
    }
    if off != t_end {
        bail!("BTF type section is truncated");
    }
    Ok(())
}

impl KernelBtf {
    /// Number of types (including void).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.types.len()
    }

    fn ty(&self, id: u32) -> Option<Ty> {
        let off = *self.types.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        let info = u32_at(&self.data, off + 4)?;
        Some(Ty {
            name_off: u32_at(&self.data, off)?,
            kind: (info >> 24) & 0x1f,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(&self.data, off + 8)?,
            extra: off + 12,
        })
    }

    fn name(&self, name_off: u32) -> &str {
        let (start, end) = match &self.split {
            Some((base, r)) if name_off >= *base => (r.start + (name_off - base) as usize, r.end),
            _ => (self.strings.start + name_off as usize, self.strings.end),
        };
        let Some(rest) = self.data.get(start..end) else { return "" };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Ids of types named `name` of kind `k`.
    fn find(&self, name: &str, k: u32) -> impl Iterator<Item = u32> + '_ {
        let name = name.to_owned();
        (1..self.types.len() as u32)
            .filter(move |&id| self.ty(id).is_some_and(|t| t.kind == k && self.name(t.name_off) == name))
    }

    /// Follow typedef/const/volatile/restrict/type-tag to the underlying type id.
    fn strip(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        kind::TYPEDEF | kind::CONST | kind::VOLATILE | kind::RESTRICT | kind::TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type;
                }
                _ => return id,
            }
        }
        id
    }

    /// Members of a struct/union: (name, type id, bit offset, bitfield size).
    fn members(&self, t: &Ty) -> Vec<(&str, u32, u32, u32)> {
        (0..t.vlen as usize)
            .filter_map(|i| {
                let m = t.extra + i * 12;
                let name_off = u32_at(&self.data, m)?;
                let tid = u32_at(&self.data, m + 4)?;
                let raw = u32_at(&self.data, m + 8)?;
                let (bit_off, bits) = if t.kind_flag { (raw & 0xff_ffff, raw >> 24) } else { (raw, 0) };
                Some((self.name(name_off), tid, bit_off, bits))
            })
            .collect()
    }

    /// Byte offset of `member` in struct/union `t`, looking through anonymous members.
    fn find_member(&self, t: &Ty, member: &str, depth: u32) -> Result<Option<(u32, u32)>> {
        if depth > 8 {
            return Ok(None);
        }
        for (name, tid, bit_off, bits) in self.members(t) {
            if name == member {
                if bits != 0 || bit_off % 8 != 0 {
                    bail!("member `{member}` is a bitfield");
                }
                return Ok(Some((bit_off / 8, tid)));
            }
            if name.is_empty()
                && let Some(inner) = self.ty(self.strip(tid)).filter(|x| matches!(x.kind, kind::STRUCT | kind::UNION))
                && let Some((off, id)) = self.find_member(&inner, member, depth + 1)?
            {
                return Ok(Some((bit_off / 8 + off, id)));
            }
        }
        Ok(None)
    }

    /// Byte offset of `a.b.c` in `struct sname` (each step through a struct-typed member).
    pub(crate) fn offset_of(&self, sname: &str, path: &[&str]) -> Result<u32> {
        let id = self.find(sname, kind::STRUCT).next().ok_or_else(|| anyhow!("BTF has no `struct {sname}`"))?;
        let mut t = self.ty(id).ok_or_else(|| anyhow!("bad BTF type {id}"))?;
        let mut total = 0u32;
        for (i, step) in path.iter().enumerate() {
            let (off, tid) = self
                .find_member(&t, step, 0)?
                .ok_or_else(|| anyhow!("`struct {sname}` has no member `{}`", path[..=i].join(".")))?;
            total += off;
            if i + 1 < path.len() {
                t = self
                    .ty(self.strip(tid))
                    .filter(|x| matches!(x.kind, kind::STRUCT | kind::UNION))
                    .ok_or_else(|| anyhow!("`{sname}.{}` is not a struct", path[..=i].join(".")))?;
            }
        }
        Ok(total)
    }

    /// All offsets the programs need.
    pub(crate) fn offsets(&self) -> Result<Offsets> {
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
            net_cookie: self.offset_of("net", &["net_cookie"])?,
            sock_net: self.offset_of("sock", &["__sk_common", "skc_net"])?,
            task_comm: self.offset_of("task_struct", &["comm"])?,
            dev_name: self.offset_of("net_device", &["name"])?,
            sock_socket: self.offset_of("sock", &["sk_socket"])?,
            sock_state: self.offset_of("sock", &["__sk_common", "skc_state"])?,
            socket_ino: self.offset_of("socket_alloc", &["vfs_inode"])? + self.offset_of("inode", &["i_ino"])?,
        })
    }

    /// Parameter types of function `func` (`FUNC` of this BTF): for each, the pointee struct
    /// name of a pointer ("void" for `void *`), else "".
    fn func_params(&self, func: &str) -> Option<Vec<String>> {
        let id = self.find(func, kind::FUNC).next()?;
        let proto = self.ty(self.ty(id)?.size_or_type).filter(|t| t.kind == kind::FUNC_PROTO)?;
        Some(
            (0..proto.vlen as usize)
                .map(|i| {
                    let tid = u32_at(&self.data, proto.extra + i * 8 + 4).unwrap_or(0);
                    match self.ty(self.strip(tid)) {
                        Some(t) if t.kind == kind::PTR => match self.ty(self.strip(t.size_or_type)) {
                            Some(p) if matches!(p.kind, kind::STRUCT | kind::FWD) => self.name(p.name_off).to_owned(),
                            _ => "void".to_owned(),
                        },
                        _ => String::new(),
                    }
                })
                .collect(),
        )
    }

    /// Bit offset and bitfield size (0: not a bitfield) of a direct member of struct `sname`.
    fn member_bits(&self, sname: &str, member: &str) -> Option<(u32, u32)> {
        let t = self.ty(self.find(sname, kind::STRUCT).next()?)?;
        self.members(&t).iter().find(|m| m.0 == member).map(|m| (m.2, m.3))
    }

    /// Whether struct `sname` has a bitfield `member` at bit `bit` of `bits` bits.
    fn bitfield_at(&self, sname: &str, member: &str, bit: u32, bits: u32) -> bool {
        self.find(sname, kind::STRUCT)
            .next()
            .and_then(|id| self.ty(id))
            .is_some_and(|t| self.members(&t).iter().any(|m| m.0 == member && m.2 == bit && m.3 == bits))
    }

    /// The `nf_tables` offsets of `fw` (from this BTF, vmlinux plus the module's if appended).
    fn nft_offsets(&self, fw: &mut FwOffsets) -> Result<()> {
        fw.pkt_skb = self.offset_of("nft_pktinfo", &["skb"])?;
        fw.pkt_state =
            self.offset_of("nft_pktinfo", &["state"]).or_else(|_| self.offset_of("nft_pktinfo", &["xt", "state"]))?;
        fw.chain_name = self.offset_of("nft_chain", &["name"])?;
        fw.chain_table = self.offset_of("nft_chain", &["table"])?;
        fw.table_name = self.offset_of("nft_table", &["name"])?;
        if let Some((bit, bits)) = self.member_bits("nft_table", "family") {
            let bits = if bits == 0 { 8 } else { bits };
            if bits <= 8 {
                fw.table_family = (bit / 16) * 2;
                fw.table_family_shift = bit % 16;
                fw.table_family_mask = (1 << bits) - 1;
            }
        }
        let imm = self.offset_of("nft_expr", &["data"])?;
        fw.imm_verdict = imm + self.offset_of("nft_immediate_expr", &["data", "verdict", "code"])?;
        fw.imm_chain = imm + self.offset_of("nft_immediate_expr", &["data", "verdict", "chain"])?;
        fw.imm_dreg = imm + self.offset_of("nft_immediate_expr", &["dreg"])?;
        // 5.17+: each chain's rules in one blob, for the jump targets and the rule handle.
        if let (Ok(b0), Ok(b1), Ok(size), Ok(data)) = (
            self.offset_of("nft_chain", &["blob_gen_0"]),
            self.offset_of("nft_chain", &["blob_gen_1"]),
            self.offset_of("nft_rule_blob", &["size"]),
            self.offset_of("nft_rule_blob", &["data"]),
        ) {
            (fw.chain_blob0, fw.chain_blob1, fw.blob_size, fw.blob_data) = (b0, b1, size, data);
            fw.rule_walk = u32::from(
                self.bitfield_at("nft_rule_dp", "is_last", 0, 1)
                    && self.bitfield_at("nft_rule_dp", "dlen", 1, 12)
                    && self.bitfield_at("nft_rule_dp", "handle", 13, 42),
            );
        }
        Ok(())
    }

    /// The `x_tables` offsets of `fw` from `ipt_do_table`'s prototype (`func`).
    fn xt_offsets(&self, func: &str, fw: &mut FwOffsets) -> Result<()> {
        let params = self.func_params(func).ok_or_else(|| anyhow!("BTF has no function {func}"))?;
        let pos = |n: &str| params.iter().position(|p| p == n).map(|p| p as u32);
        fw.xt_arg_skb = pos("sk_buff").ok_or_else(|| anyhow!("{func} has no sk_buff argument"))?;
        fw.xt_arg_state = pos("nf_hook_state").ok_or_else(|| anyhow!("{func} has no nf_hook_state argument"))?;
        // The table: `struct xt_table *` before 5.16, `void *priv` since.
        fw.xt_arg_table =
            pos("xt_table").or_else(|| pos("void")).ok_or_else(|| anyhow!("{func} has no table argument"))?;
        fw.xt_table_name = self.offset_of("xt_table", &["name"])?;
        Ok(())
    }

    /// Parameters of a tracepoint's BTF prototype (`btf_trace_NAME`), without the leading
    /// `void *__data`: for each, ("ptr", pointee struct name or "void") or ("enum", name).
    fn tp_params(&self, tp: &str) -> Result<Vec<(String, String)>> {
        let typedef = format!("btf_trace_{tp}");
        let id = self.find(&typedef, kind::TYPEDEF).next().ok_or_else(|| anyhow!("kernel BTF has no `{typedef}`"))?;
        let ptr = self
            .ty(self.strip(id))
            .filter(|t| t.kind == kind::PTR)
            .ok_or_else(|| anyhow!("`{typedef}` is not a pointer"))?;
        let proto = self
            .ty(self.strip(ptr.size_or_type))
            .filter(|t| t.kind == kind::FUNC_PROTO)
            .ok_or_else(|| anyhow!("`{typedef}` is not a function pointer"))?;
        let mut out = Vec::new();
        for i in 1..proto.vlen as usize {
            let tid = u32_at(&self.data, proto.extra + i * 8 + 4).unwrap_or(0);
            let Some(t) = self.ty(self.strip(tid)) else {
                out.push(("void".to_owned(), String::new()));
                continue;
            };
            out.push(match t.kind {
                kind::PTR => match self.ty(self.strip(t.size_or_type)) {
                    Some(p) if matches!(p.kind, kind::STRUCT | kind::FWD) => {
                        ("ptr".to_owned(), self.name(p.name_off).to_owned())
                    }
                    _ => ("ptr".to_owned(), "void".to_owned()),
                },
                kind::ENUM | kind::ENUM64 => ("enum".to_owned(), self.name(t.name_off).to_owned()),
                _ => ("other".to_owned(), String::new()),
            });
        }
        Ok(out)
    }

    /// Positions of skb, location, reason and `rx_sk` in the `kfree_skb` BTF tracepoint.
    pub(crate) fn kfree_skb_args(&self) -> Result<KfreeBtfArgs> {
        let params = self.tp_params("kfree_skb")?;
        let pos = |k: &str, n: &str| params.iter().position(|(a, b)| a == k && b == n).map_or(u32::MAX, |p| p as u32);
        let args = KfreeBtfArgs {
            skb: pos("ptr", "sk_buff"),
            location: pos("ptr", "void"),
            reason: pos("enum", "skb_drop_reason"),
            rx_sk: pos("ptr", "sock"),
        };
        if args.skb == u32::MAX || args.location == u32::MAX {
            bail!("unexpected prototype of the kfree_skb tracepoint: {params:?}");
        }
        Ok(args)
    }

    /// Whether the kernel has a BTF tracepoint named `tp`.
    pub(crate) fn has_tracepoint(&self, tp: &str) -> bool {
        self.tp_params(tp).is_ok()
    }

    /// Whether some enum named `enum_name` has a member named `member`.
    pub(crate) fn has_enum_member(&self, enum_name: &str, member: &str) -> bool {
        (1..self.types.len() as u32).filter_map(|id| self.ty(id)).any(|t| {
            (t.kind == kind::ENUM || t.kind == kind::ENUM64)
                && self.name(t.name_off) == enum_name
                && self.enum_members(&t).iter().any(|(_, n)| *n == member)
        })
    }

    fn enum_members(&self, t: &Ty) -> Vec<(u32, &str)> {
        (0..t.vlen as usize)
            .filter_map(|i| {
                let m = if t.kind == kind::ENUM64 { t.extra + i * 12 } else { t.extra + i * 8 };
                Some((u32_at(&self.data, m + 4)?, self.name(u32_at(&self.data, m)?)))
            })
            .collect()
    }

    /// Values and names of `enum sk_rst_reason` (prefix `SK_RST_REASON_` removed, its `MAX`
    /// left out): the reasons of the resets `tcp:tcp_send_reset` reports (6.10+; empty before).
    pub(crate) fn reset_reasons(&self) -> Vec<(u32, String)> {
        let mut out: Vec<(u32, String)> = (1..self.types.len() as u32)
            .filter_map(|id| self.ty(id))
            .filter(|t| t.kind == kind::ENUM && self.name(t.name_off) == "sk_rst_reason")
            .flat_map(|t| {
                self.enum_members(&t)
                    .into_iter()
                    .filter_map(|(v, n)| n.strip_prefix("SK_RST_REASON_").map(|r| (v, r.to_owned())))
                    .filter(|(_, n)| n != "MAX")
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Values and names of `enum skb_drop_reason` (prefix `SKB_DROP_REASON_` removed), plus the
    /// subsystem reasons of the other `*_drop_reason` enums (subsystem in the upper 16 bits).
    /// Empty on kernels without drop reasons (before 5.17).
    pub(crate) fn drop_reasons(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        let mut subsys = Vec::new();
        for id in 1..self.types.len() as u32 {
            let Some(t) = self.ty(id) else { continue };
            if t.kind != kind::ENUM {
                continue;
            }
            let name = self.name(t.name_off);
            if name == "skb_drop_reason" {
                // Only the drop reasons: not SKB_NOT_DROPPED_YET, SKB_CONSUMED (frees that are
                // not drops) nor the enum's bookkeeping (MAX, SUBSYS_MASK, SUBSYS_SHIFT).
                for (v, n) in self.enum_members(&t) {
                    let Some(reason) = n.strip_prefix("SKB_DROP_REASON_") else { continue };
                    if !matches!(reason, "MAX" | "SUBSYS_MASK" | "SUBSYS_SHIFT") {
                        out.push((v, reason.to_owned()));
                    }
                }
            } else if name.ends_with("_drop_reason") {
                subsys.extend(
                    self.enum_members(&t).into_iter().filter(|(v, _)| *v >= 1 << 16).map(|(v, n)| (v, n.to_owned())),
                );
            }
        }
        if out.is_empty() {
            return out;
        }
        for (v, n) in subsys {
            if !out.iter().any(|(ov, _)| *ov == v) {
                out.push((v, n));
            }
        }
        out.sort();
        out.dedup_by_key(|(v, _)| *v);
        out
    }
}

/// What the firewall-chain probes and the NAT tuple need from BTF, and why a part is missing.
#[derive(Clone, Debug)]
pub(crate) struct FwFacts {
    pub offsets: FwOffsets,
    /// `nf_tables` offsets resolved (its module loaded or built in).
    pub nft: Result<(), String>,
    /// `ipt_do_table` and `ip6t_do_table` resolved.
    pub ipt: Result<(), String>,
    pub ip6t: Result<(), String>,
    /// The conntrack tuple offsets resolved.
    pub nat: Result<(), String>,
}

/// Resolve `FwFacts` from vmlinux and the split BTF of the netfilter modules that are loaded.
pub(crate) fn fw_facts(k: &mut KernelBtf, netfilter_drop: Option<u32>) -> FwFacts {
    let mut fw = FwOffsets { netfilter_drop_reason: netfilter_drop.unwrap_or(u32::MAX), ..FwOffsets::default() };
    fw.state_hook = k.offset_of("nf_hook_state", &["hook"]).unwrap_or(u32::MAX);
    fw.state_pf = k.offset_of("nf_hook_state", &["pf"]).unwrap_or(u32::MAX);
    let in_vmlinux = |k: &KernelBtf, s: &str| k.find(s, kind::STRUCT).next().is_some();
    let nft = if in_vmlinux(k, "nft_chain") {
        k.nft_offsets(&mut fw).map_err(|e| format!("{e:#}"))
    } else {
        k.with_module("nf_tables", |k| k.nft_offsets(&mut fw).map_err(|e| format!("{e:#}")))
            .unwrap_or_else(|| Err("nf_tables is not loaded".to_owned()))
    };
    let mut xt = |k: &mut KernelBtf, module: &str, func: &str| {
        if k.find(func, kind::FUNC).next().is_some() {
            k.xt_offsets(func, &mut fw).map_err(|e| format!("{e:#}"))
        } else {
            k.with_module(module, |k| k.xt_offsets(func, &mut fw).map_err(|e| format!("{e:#}")))
                .unwrap_or_else(|| Err(format!("{module} is not loaded")))
        }
    };
    let ipt = xt(k, "ip_tables", "ipt_do_table");
    let ip6t = xt(k, "ip6_tables", "ip6t_do_table");
    let ct = |k: &KernelBtf, fw: &mut FwOffsets| -> Result<(), String> {
        let off = |s: &str, p: &[&str]| k.offset_of(s, p).map_err(|e| format!("{e:#}"));
        // `NatTuple` is the tuple's layout: check it.
        let layout = [
            off("nf_conntrack_tuple", &["src", "u"])?,
            off("nf_conntrack_tuple", &["src", "l3num"])?,
            off("nf_conntrack_tuple", &["dst", "u3"])?,
            off("nf_conntrack_tuple", &["dst", "u"])?,
            off("nf_conntrack_tuple", &["dst", "protonum"])?,
        ];
        if layout != [16, 18, 20, 36, 38] {
            return Err(format!("unexpected layout of struct nf_conntrack_tuple: {layout:?}"));
        }
        fw.ct_tuple = off("nf_conn", &["tuplehash"])? + off("nf_conntrack_tuple_hash", &["tuple"])?;
        Ok(())
    };
    fw.skb_nfct = k.offset_of("sk_buff", &["_nfct"]).unwrap_or(u32::MAX);
    let nat = if fw.skb_nfct == u32::MAX {
        Err("the kernel has no conntrack (sk_buff._nfct)".to_owned())
    } else if in_vmlinux(k, "nf_conn") {
        ct(k, &mut fw)
    } else {
        k.with_module("nf_conntrack", |k| ct(k, &mut fw))
            .unwrap_or_else(|| Err("nf_conntrack is not loaded".to_owned()))
    };
    FwFacts { offsets: fw, nft, ipt, ip6t, nat }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> Option<KernelBtf> {
        let k = KernelBtf::load();
        crate::testdata::available("kernel BTF tests", "the kernel's BTF", k.is_ok()).then(|| k.ok()).flatten()
    }

    #[test]
    fn offsets_resolve_against_running_kernel() {
        let Some(k) = kernel() else { return };
        assert!(k.len() > 1000);
        let o = k.offsets().expect("offsets");
        // Relations that hold on every kernel: head and data are adjacent pointers, the three
        // header offsets are adjacent u16s, all inside a sk_buff of < 512 bytes.
        assert_eq!(o.skb_data, o.skb_head + 8, "{o:?}");
        assert_eq!(o.skb_network_header, o.skb_transport_header + 2, "{o:?}");
        assert_eq!(o.skb_mac_header, o.skb_network_header + 2, "{o:?}");
        assert!(o.skb_head < 512 && o.skb_dev < 64, "{o:?}");
        assert!(o.net_inum > 0 && o.dev_ifindex > 0, "{o:?}");
    }

    #[test]
    fn offsets_agree_with_bpftool() {
        // Cross-check two offsets against bpftool's own BTF dump, when bpftool is installed.
        let Some(k) = kernel() else { return };
        let Ok(out) =
            std::process::Command::new("bpftool").args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"]).output()
        else {
            eprintln!("skipping: no bpftool");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let start = text.find("STRUCT 'sk_buff'").expect("sk_buff in bpftool output");
        let block: String = text[start..].lines().take(200).collect::<Vec<_>>().join("\n");
        let bits = |member: &str| -> Option<u32> {
            let l = block.lines().find(|l| l.trim_start().starts_with(&format!("'{member}' ")))?;
            l.split("bits_offset=").nth(1)?.split_whitespace().next()?.parse().ok()
        };
        let o = k.offsets().expect("offsets");
        if let Some(b) = bits("head") {
            assert_eq!(o.skb_head, b / 8);
        }
        if let Some(b) = bits("len") {
            assert_eq!(o.skb_len, b / 8);
        }
    }

    #[test]
    fn kfree_skb_arguments_found() {
        let Some(k) = kernel() else { return };
        let a = k.kfree_skb_args().expect("kfree_skb args");
        assert_eq!(a.skb, 0);
        assert_eq!(a.location, 1);
        assert_ne!(a.reason, u32::MAX);
        assert!(k.has_tracepoint("net_dev_queue"));
        assert!(!k.has_tracepoint("no_such_tracepoint_pktloss"));
    }

    #[test]
    fn reset_reasons_come_from_the_enum() {
        let Some(k) = kernel() else { return };
        let r = k.reset_reasons();
        let Ok(fmt) = std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format") else { return };
        if !fmt.contains("reason") {
            assert!(r.is_empty(), "{r:?}");
            return;
        }
        assert!(r.iter().any(|(_, n)| n == "NO_SOCKET"), "{r:?}");
        assert!(!r.iter().any(|(_, n)| n == "MAX"));
        // tracefs prints the same names for the same values.
        for (v, n) in &r {
            assert!(fmt.contains(&format!("{{ {v}, \"{n}\" }}")), "{v} {n} not in tracefs");
        }
    }

    #[test]
    fn drop_reasons_come_from_the_enum() {
        let Some(k) = kernel() else { return };
        let r = k.drop_reasons();
        let get = |n: &str| r.iter().find(|(_, name)| name == n).map(|(v, _)| *v);
        // Frees that are not drops and the enum's bookkeeping are not reasons.
        for not_a_reason in ["SKB_NOT_DROPPED_YET", "NOT_DROPPED_YET", "SKB_CONSUMED", "CONSUMED", "MAX", "SUBSYS_MASK"]
        {
            assert_eq!(get(not_a_reason), None, "{not_a_reason}");
        }
        assert_eq!(get("NOT_SPECIFIED"), Some(2));
        assert!(get("NO_SOCKET").is_some());
        assert!(get("NETFILTER_DROP").is_some());
        // The tracefs format file lists the same value for NO_SOCKET.
        if let Ok(fmt) = std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format") {
            let needle = format!("{{ {}, \"NO_SOCKET\" }}", get("NO_SOCKET").unwrap_or(0));
            assert!(fmt.contains(&needle), "tracefs disagrees on NO_SOCKET");
        }
    }

    #[test]
    fn enum_members_are_found_by_name() {
        let Some(k) = kernel() else { return };
        assert!(k.has_enum_member("skb_drop_reason", "SKB_DROP_REASON_NO_SOCKET"));
        assert!(!k.has_enum_member("skb_drop_reason", "SKB_DROP_REASON_NO_SUCH_THING"));
        assert!(!k.has_enum_member("no_such_enum", "SKB_DROP_REASON_NO_SOCKET"));
        // The feature that lets tp_btf programs load packet bytes directly: 6.17+ kernels.
        let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let ver: Vec<u32> = text.trim().split(['.', '-']).take(2).filter_map(|x| x.parse().ok()).collect();
        if ver.len() == 2 && (ver[0], ver[1]) >= (6, 17) {
            assert!(k.has_enum_member("bpf_features", "BPF_FEAT_RDONLY_CAST_TO_VOID"), "{ver:?}");
        }
    }

    #[test]
    fn missing_member_is_a_clear_error() {
        let Some(k) = kernel() else { return };
        let e = k.offset_of("sk_buff", &["no_such_member"]).expect_err("must fail");
        assert!(e.to_string().contains("no member"), "{e}");
    }

    #[test]
    fn malformed_btf_is_an_error_not_a_panic() {
        assert!(KernelBtf::parse(Vec::new()).is_err());
        assert!(KernelBtf::parse(vec![0x9f, 0xeb]).is_err());
        let mut hdr = vec![0x9f, 0xeb, 1, 0];
        hdr.extend_from_slice(&24u32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&1000u32.to_le_bytes()); // type_len past the end
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        assert!(KernelBtf::parse(hdr).is_err());
        // Every prefix of the real BTF either parses or fails cleanly.
        if let Ok(real) = std::fs::read(VMLINUX_BTF) {
            for n in [24, 25, 100, 4096, real.len() / 2, real.len() - 1] {
                drop(KernelBtf::parse(real[..n.min(real.len())].to_vec()));
            }
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            for _ in 0..200 {
                let mut m = real[..20_000.min(real.len())].to_vec();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = 24 + (x as usize % (m.len() - 24));
                m[i] ^= (x >> 32) as u8 | 1;
                if let Ok(k) = KernelBtf::parse(m) {
                    drop((k.offsets(), k.drop_reasons(), k.kfree_skb_args()));
                }
            }
        }
    }
}
