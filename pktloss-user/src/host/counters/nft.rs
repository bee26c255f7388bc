//! `nf_tables` over netlink: base chains whose policy drops and rules that drop or reject, with
//! their counters, read from the kernel in the calling thread's namespace, with no `nft` or
//! `iptables-save` process.
//!
//! Three dumps (`NFT_MSG_GETTABLE`, `GETCHAIN`, `GETRULE`, all families) on a `NETLINK_NETFILTER`
//! socket ([`netlink_sys`]); the messages are decoded by `netlink-packet-netfilter`, the
//! `nf_tables` types of the rust-netlink family whose `netlink-packet-core` the other readers use.
//! It types tables, chains (hook, priority, policy, counters) and the expressions payload, cmp,
//! meta, bitwise, lookup and immediate; the ones it leaves as raw attributes (counter, reject,
//! ct, range, and the `x_tables` `match`/`target` of iptables-nft) are decoded here. Why not another
//! crate: `rustables` is GPL-3.0 (pktloss is MIT/Apache-2.0) and runs bindgen (libclang) at build
//! time, which the static musl cross builds avoid; `nftnl`/`mnl` bind the C libraries;
//! `nftables` drives the `nft` program.
//!
//! A rule is rendered as short text from its expressions, in nft syntax, or in iptables syntax
//! for tables that iptables-nft manages (family ip/ip6, an iptables table name, only built-in
//! upper-case base chains): those keep the backend `iptables`/`ip6tables`, as `iptables-save`
//! showed them. Expressions that are not rendered keep their name, so the text stays honest.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use netlink_packet_core::{DefaultNla, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    nftables::{
        ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook, ListAttribute,
        Lookup, Meta, NfTablesMessage, Operator, Payload, RuleAttribute, RuleMessage, TableAttribute, TableMessage,
        VerdictAttribute,
    },
};
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::{FirewallChain, FirewallRule, netlink};

/// A dump interrupted by a ruleset change (`NLM_F_DUMP_INTR`) is read again, at most this often.
const DUMP_TRIES: usize = 3;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_TABLE_F_DORMANT: u32 = 1;

/// One `nf_tables` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Table {
    pub family: String,
    pub name: String,
    /// Dormant: its chains see no packet.
    pub dormant: bool,
}

/// One chain; `hook` is empty for a regular (non-base) chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub hook: String,
    pub priority: Option<i32>,
    /// "accept" or "drop" (base chains only).
    pub policy: Option<String>,
    /// The chain's own counters (iptables-nft sets them): packets that met the policy.
    pub counters: Option<(u64, u64)>,
}

/// One rule, its expressions in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub exprs: Vec<Expr>,
}

/// The expressions a rule is made of, as far as the rendering needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Meta {
        key: u32,
        dreg: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Range {
        sreg: u32,
        op: u32,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Lookup {
        sreg: u32,
        set: String,
        invert: bool,
    },
    Counter {
        packets: u64,
        bytes: u64,
    },
    /// An immediate verdict: `NF_DROP` 0, `NF_ACCEPT` 1, -1 continue, -2 break, -3 jump, -4 goto,
    /// -5 return.
    Verdict {
        code: i32,
        chain: Option<String>,
    },
    Reject {
        kind: u32,
        code: u8,
    },
    XtMatch {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    XtTarget {
        name: String,
        info: Vec<u8>,
    },
    /// Any other expression, by name (log, limit, nat, ...).
    Other(String),
}

/// What the three dumps held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ruleset {
    pub tables: Vec<Table>,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
    /// Messages that could not be decoded (said in `unavailable`, never dropped silently).
    pub undecoded: usize,
}

fn family_name(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        n => format!("family{n}"),
    }
}

fn hook_name(family: &str, n: u32) -> String {
    let names: &[&str] = match family {
        "netdev" => &["ingress", "egress"],
        "arp" => &["input", "output", "forward"],
        _ => &["prerouting", "input", "forward", "output", "postrouting", "ingress"],
    };
    names.get(n as usize).map_or_else(|| format!("hook{n}"), |s| (*s).to_owned())
}

/// The value of a raw attribute.
fn raw(nla: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

/// The bytes of a `NFTA_DATA_VALUE`, or the verdict of a `NFTA_DATA_VERDICT`.
fn data_value(d: &DataAttribute) -> Vec<u8> {
    match d {
        DataAttribute::Value(v) => v.clone(),
        _ => Vec::new(),
    }
}

fn data_verdict(d: &DataAttribute) -> Option<(i32, Option<String>)> {
    let DataAttribute::Verdict(attrs) = d else { return None };
    let mut code = None;
    let mut chain = None;
    for a in attrs {
        match a {
            VerdictAttribute::Code(c) => code = Some(u32::from(*c) as i32),
            VerdictAttribute::Chain(c) => chain = Some(c.clone()),
            _ => {}
        }
    }
    code.map(|c| (c, chain))
}

fn expr_of(name: &str, data: Option<&Expressions>) -> Expr {
    let attrs: &[DefaultNla] = match data {
        Some(Expressions::Other { attributes, .. } | Expressions::Unknown(attributes)) => attributes,
        _ => &[],
    };
    let get = |kind: u16| attrs.iter().find(|a| a.kind() & 0x3fff == kind).map(raw);
    let reg = |kind: u16| get(kind).as_deref().and_then(be_u32).unwrap_or(0);
    match data {
        Some(Expressions::Payload(p)) => {
            let (mut base, mut offset, mut len, mut dreg) = (0, 0, 0, 0);
            for a in p {
                match a {
                    Payload::Base(v) => base = *v,
                    Payload::Offset(v) => offset = *v,
                    Payload::Len(v) => len = *v,
                    Payload::DestinationRegister(r) => dreg = u32::from(*r),
                    _ => {}
                }
            }
            // A payload write (mangle) has no destination register.
            if dreg == 0 { Expr::Other("payload set".into()) } else { Expr::Payload { base, offset, len, dreg } }
        }
        Some(Expressions::Meta(m)) => {
            let (mut key, mut dreg) = (0, 0);
            for a in m {
                match a {
                    Meta::Key(k) => key = u32::from(*k),
                    Meta::DestinationRegister(r) => dreg = u32::from(*r),
                    _ => {}
                }
            }
            if dreg == 0 { Expr::Other("meta set".into()) } else { Expr::Meta { key, dreg } }
        }
        Some(Expressions::Cmp(c)) => {
            let (mut sreg, mut op, mut data) = (0, 0, Vec::new());
            for a in c {
                match a {
                    Cmp::SourceRegister(r) => sreg = u32::from(*r),
                    Cmp::Op(o) => op = u32::from(*o),
                    Cmp::Data(d) => data = data_value(d),
                    _ => {}
                }
            }
            Expr::Cmp { sreg, op, data }
        }
        Some(Expressions::Bitwise(b)) => {
            use netlink_packet_netfilter::nftables::Bitwise;
            let (mut sreg, mut dreg, mut mask, mut xor) = (0, 0, Vec::new(), Vec::new());
            for a in b {
                match a {
                    Bitwise::SourceRegister(r) => sreg = u32::from(*r),
                    Bitwise::DestinationRegister(r) => dreg = u32::from(*r),
                    Bitwise::Mask(d) => mask = data_value(d),
                    Bitwise::Xor(d) => xor = data_value(d),
                    _ => {}
                }
            }
            Expr::Bitwise { sreg, dreg, mask, xor }
        }
        Some(Expressions::Lookup(l)) => {
            let (mut sreg, mut set, mut invert) = (0, String::new(), false);
            for a in l {
                match a {
                    Lookup::SourceRegister(r) => sreg = u32::from(*r),
                    Lookup::Set(s) => set.clone_from(s),
                    Lookup::Flags(f) => invert = f & 1 != 0,
                    _ => {}
                }
            }
            Expr::Lookup { sreg, set, invert }
        }
        Some(Expressions::Immediate(i)) => {
            use netlink_packet_netfilter::nftables::Immediate;
            let mut dreg = None;
            let mut verdict = None;
            for a in i {
                match a {
                    Immediate::DestinationRegister(r) => dreg = Some(u32::from(*r)),
                    Immediate::Data(d) => verdict = data_verdict(d),
                    _ => {}
                }
            }
            match (dreg, verdict) {
                (Some(0), Some((code, chain))) => Expr::Verdict { code, chain },
                _ => Expr::Other("immediate".into()),
            }
        }
        _ => match name {
            // NFTA_COUNTER_BYTES 1, NFTA_COUNTER_PACKETS 2.
            "counter" => Expr::Counter {
                packets: get(2).as_deref().and_then(be_u64).unwrap_or(0),
                bytes: get(1).as_deref().and_then(be_u64).unwrap_or(0),
            },
            // NFTA_REJECT_TYPE 1, NFTA_REJECT_ICMP_CODE 2.
            "reject" => Expr::Reject { kind: reg(1), code: get(2).and_then(|v| v.first().copied()).unwrap_or(0) },
            // NFTA_CT_DREG 1, NFTA_CT_KEY 2.
            "ct" if get(1).is_some() => Expr::Ct { key: reg(2), dreg: reg(1) },
            // NFTA_RANGE_SREG 1, OP 2, FROM_DATA 3, TO_DATA 4 (nested NFTA_DATA_VALUE).
            "range" => Expr::Range {
                sreg: reg(1),
                op: reg(2),
                from: get(3).map(|v| nested_value(&v)).unwrap_or_default(),
                to: get(4).map(|v| nested_value(&v)).unwrap_or_default(),
            },
            // NFTA_MATCH_NAME / NFTA_TARGET_NAME 1, *_INFO 3 (the x_tables struct, host order).
            "match" => Expr::XtMatch {
                name: get(1).map(|v| cstr(&v)).unwrap_or_default(),
                rev: reg(2),
                info: get(3).unwrap_or_default(),
            },
            "target" => {
                Expr::XtTarget { name: get(1).map(|v| cstr(&v)).unwrap_or_default(), info: get(3).unwrap_or_default() }
            }
            other => Expr::Other(other.to_owned()),
        },
    }
}

/// The `NFTA_DATA_VALUE` inside a nested data attribute.
fn nested_value(v: &[u8]) -> Vec<u8> {
    netlink_packet_core::NlasIterator::new(v)
        .filter_map(Result::ok)
        .find(|n| n.kind() & 0x3fff == 1)
        .map(|n| n.value().to_vec())
        .unwrap_or_default()
}

fn exprs_of(list: &[ListAttribute<ExpressionAttribute>]) -> Vec<Expr> {
    let mut out = Vec::new();
    for e in list {
        let ListAttribute::Element(attrs) = e else { continue };
        let mut name = String::new();
        let mut data = None;
        for a in attrs {
            match a {
                ExpressionAttribute::Name(n) => n.clone_into(&mut name),
                ExpressionAttribute::Data(d) => data = Some(d),
                _ => {}
            }
        }
        out.push(expr_of(&name, data));
    }
    out
}

fn table_of(family: String, m: &TableMessage) -> Table {
    let mut t = Table { family, ..Table::default() };
    for a in &m.attributes {
        match a {
            TableAttribute::Name(n) => n.clone_into(&mut t.name),
            TableAttribute::Flags(f) => t.dormant = f.bits() & NFT_TABLE_F_DORMANT != 0,
            _ => {}
        }
    }
    t
}

fn chain_of(family: String, m: &ChainMessage) -> Chain {
    let mut c = Chain { family, ..Chain::default() };
    for a in &m.attributes {
        match a {
            ChainAttribute::Table(t) => t.clone_into(&mut c.table),
            ChainAttribute::Name(n) => n.clone_into(&mut c.name),
            ChainAttribute::Hook(h) => {
                for x in h {
                    match x {
                        Hook::Number(n) => c.hook = hook_name(&c.family, u32::from(*n)),
                        Hook::Priority(p) => c.priority = Some(*p as i32),
                        _ => {}
                    }
                }
            }
            // NF_DROP 0, NF_ACCEPT 1.
            ChainAttribute::Policy(p) => {
                c.policy = Some(match p {
                    0 => "drop".to_owned(),
                    1 => "accept".to_owned(),
                    n => format!("verdict {n}"),
                });
            }
            // NFTA_COUNTER_BYTES 1, NFTA_COUNTER_PACKETS 2.
            ChainAttribute::Counter(nlas) => {
                let get = |k: u16| nlas.iter().find(|a| a.kind() & 0x3fff == k).map(raw).as_deref().and_then(be_u64);
                c.counters = Some((get(2).unwrap_or(0), get(1).unwrap_or(0)));
            }
            _ => {}
        }
    }
    c
}

fn rule_of(family: String, m: &RuleMessage) -> Rule {
    let mut r = Rule { family, ..Rule::default() };
    for a in &m.attributes {
        match a {
            RuleAttribute::Table(t) => t.clone_into(&mut r.table),
            RuleAttribute::Chain(c) => c.clone_into(&mut r.chain),
            RuleAttribute::Handle(h) => r.handle = *h,
            RuleAttribute::Expressions(e) => r.exprs = exprs_of(e),
            _ => {}
        }
    }
    r
}

/// Decode the messages of `nf_tables` dumps (tables, chains and rules, in any order).
pub(crate) fn decode(bytes: &[u8]) -> Ruleset {
    let mut rs = Ruleset::default();
    for f in netlink::frames(bytes).map_while(Result::ok) {
        let Ok(m) = NetlinkMessage::<NetfilterMessage>::deserialize(f.bytes) else {
            rs.undecoded += 1;
            continue;
        };
        let NetlinkPayload::InnerMessage(nf) = m.payload else { continue };
        let family = family_name(u8::from(nf.header.family));
        match &nf.inner {
            NetfilterMessageInner::NfTables(NfTablesMessage::NewTable(t)) => rs.tables.push(table_of(family, t)),
            NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(c)) => rs.chains.push(chain_of(family, c)),
            NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)) => rs.rules.push(rule_of(family, r)),
            _ => {}
        }
    }
    rs
}

/// Dump tables, chains and rules of every family in the calling thread's namespace: the raw
/// messages (for [`decode`]). Opening the socket loads no module when `nf_tables` is loaded.
pub(crate) fn dump_here() -> Result<Vec<u8>, String> {
    let sock = netlink::open(NETLINK_NETFILTER)?;
    let mut out = Vec::new();
    for (seq, kind) in [NFT_MSG_NEWTABLE + 1, NFT_MSG_NEWCHAIN + 1, NFT_MSG_NEWRULE + 1].into_iter().enumerate() {
        let mut tries = 0;
        loop {
            tries += 1;
            match dump_one(&sock, kind, seq as u32 + 1)? {
                Some(bytes) => {
                    out.extend(bytes);
                    break;
                }
                None if tries < DUMP_TRIES => {}
                None => return Err(format!("the ruleset kept changing during {DUMP_TRIES} dumps")),
            }
        }
    }
    Ok(out)
}

/// One dump request (`NFT_MSG_GET*`); `None` when the kernel said it was interrupted.
fn dump_one(sock: &Socket, get: u16, seq: u32) -> Result<Option<Vec<u8>>, String> {
    let inner = match get - 1 {
        NFT_MSG_NEWTABLE => NfTablesMessage::GetTable(TableMessage { attributes: Vec::new() }),
        NFT_MSG_NEWCHAIN => NfTablesMessage::GetChain(ChainMessage { attributes: Vec::new() }),
        _ => NfTablesMessage::GetRule(RuleMessage { attributes: Vec::new() }),
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let nf = NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0), inner);
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(nf));
    req.finalize();
    let mut buf = vec![0; req.buffer_len()];
    req.serialize(&mut buf);
    let mut out = Vec::new();
    let interrupted = netlink::walk(sock, &buf, seq, |f| {
        if f.kind >> 8 == NFNL_SUBSYS_NFTABLES {
            out.extend_from_slice(f.bytes);
            // Keep the messages 4-byte aligned, as the kernel sends them.
            out.resize(out.len().next_multiple_of(4), 0);
        }
    })
    .map_err(|e| match e {
        netlink::WalkError::Kernel(e) => format!("nf_tables dump: {e}"),
        e => e.to_string(),
    })?;
    Ok((!interrupted).then_some(out))
}

/// Whether a table is one iptables-nft manages: an iptables table name in family ip/ip6, whose
/// base chains are all built-in upper-case ones.
fn iptables_nft(rs: &Ruleset, family: &str, table: &str) -> bool {
    const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
    let mut base = rs.chains.iter().filter(|c| c.family == family && c.table == table && !c.hook.is_empty());
    matches!(family, "ip" | "ip6")
        && matches!(table, "filter" | "mangle" | "raw" | "nat" | "security")
        && base.clone().next().is_some()
        && base.all(|c| BUILTIN.contains(&c.name.as_str()))
}

/// The drop-related part of a ruleset: base chains whose policy is drop, rules whose verdict is
/// drop or reject, with their counters, in the shapes `iptables-save`/`nft` gave before.
pub(crate) fn firewall(rs: &Ruleset) -> (Vec<FirewallChain>, Vec<FirewallRule>) {
    let dormant =
        |family: &str, table: &str| rs.tables.iter().any(|t| t.dormant && t.family == family && t.name == table);
    let mut ipt: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut backend = |family: &str, table: &str| -> String {
        let is = *ipt.entry((family.to_owned(), table.to_owned())).or_insert_with(|| iptables_nft(rs, family, table));
        match (is, family) {
            (true, "ip6") => "ip6tables".to_owned(),
            (true, _) => "iptables".to_owned(),
            _ => "nft".to_owned(),
        }
    };
    let mut chains = Vec::new();
    for c in rs.chains.iter().filter(|c| c.policy.as_deref() == Some("drop") && !dormant(&c.family, &c.table)) {
        chains.push(FirewallChain {
            backend: backend(&c.family, &c.table),
            family: c.family.clone(),
            table: c.table.clone(),
            chain: c.name.clone(),
            hook: c.hook.clone(),
            policy: "drop".to_owned(),
            packets: c.counters.map(|x| x.0),
            bytes: c.counters.map(|x| x.1),
        });
    }
    let mut rules = Vec::new();
    for r in rs.rules.iter().filter(|r| !dormant(&r.family, &r.table)) {
        let Some(verdict) = verdict(&r.exprs) else { continue };
        let backend = backend(&r.family, &r.table);
        let counter = r.exprs.iter().find_map(|e| match e {
            Expr::Counter { packets, bytes } => Some((*packets, *bytes)),
            _ => None,
        });
        let rule = if backend == "nft" { render_nft(r) } else { render_iptables(r) };
        rules.push(FirewallRule {
            backend,
            family: r.family.clone(),
            table: r.table.clone(),
            chain: r.chain.clone(),
            handle: Some(r.handle),
            rule,
            verdict: verdict.to_owned(),
            packets: counter.map(|c| c.0),
            bytes: counter.map(|c| c.1),
            packets_delta: None,
        });
    }
    (chains, rules)
}

/// "drop" or "reject" when the rule ends so.
fn verdict(exprs: &[Expr]) -> Option<&'static str> {
    exprs.iter().rev().find_map(|e| match e {
        Expr::Verdict { code: 0, .. } => Some(Some("drop")),
        Expr::Verdict { .. } => Some(None),
        Expr::Reject { .. } => Some(Some("reject")),
        Expr::XtTarget { name, .. } => Some(match name.as_str() {
            "DROP" => Some("drop"),
            "REJECT" => Some("reject"),
            _ => None,
        }),
        _ => None,
    })?
}

/// What a register holds: a field of the packet or of its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    /// "ip protocol", "meta l4proto", "ip6 nexthdr": an IP protocol number.
    Proto(&'static str),
    /// ("ip"|"ip6", "saddr"|"daddr").
    Addr(&'static str, &'static str),
    /// ("udp"|"tcp"|"th"..., "sport"|"dport").
    Port(String, &'static str),
    IfName(&'static str),
    NfProto,
    CtState,
    /// Anything else: its name and whether its value is host-order.
    Other(String, bool),
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        33 => "dccp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        n => n.to_string(),
    }
}

fn ct_states(bits: u32) -> Vec<&'static str> {
    [(1, "invalid"), (2, "established"), (4, "related"), (8, "new"), (64, "untracked")]
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
}

fn hex(b: &[u8]) -> String {
    let mut s = "0x".to_owned();
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn host_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// A value of `field` in nft syntax.
fn value(field: &Field, b: &[u8]) -> String {
    match field {
        Field::Proto(_) => b.first().map_or_else(String::new, |p| proto_name(*p)),
        Field::Addr(..) if b.len() == 4 => Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        Field::Addr(..) => <[u8; 16]>::try_from(b).map_or_else(|_| hex(b), |a| Ipv6Addr::from(a).to_string()),
        Field::Port(..) if b.len() == 2 => u16::from_be_bytes([b[0], b[1]]).to_string(),
        Field::IfName(_) => {
            // A shorter comparison than the name's buffer is a prefix (iptables `eth+`).
            let name = cstr(b);
            if b.contains(&0) { format!("\"{name}\"") } else { format!("\"{name}*\"") }
        }
        Field::NfProto => match b.first() {
            Some(2) => "ipv4".into(),
            Some(10) => "ipv6".into(),
            Some(n) => n.to_string(),
            None => String::new(),
        },
        Field::CtState => host_u32(b).map_or_else(|| hex(b), |v| ct_states(v).join(",")),
        Field::Other(_, true) => host_u32(b).map_or_else(|| hex(b), |v| v.to_string()),
        _ => hex(b),
    }
}

fn field_name(f: &Field) -> String {
    match f {
        Field::Proto(n) | Field::IfName(n) => (*n).to_owned(),
        Field::Addr(l3, dir) => format!("{l3} {dir}"),
        Field::Port(l4, dir) => format!("{l4} {dir}"),
        Field::NfProto => "meta nfproto".into(),
        Field::CtState => "ct state".into(),
        Field::Other(n, _) => n.clone(),
    }
}

/// One condition or action of a rule, read from its expressions.
#[derive(Clone, Debug)]
enum Term {
    /// `field op value`, `op` in nft spelling ("" for equality).
    Match {
        field: Field,
        op: &'static str,
        value: String,
        prefix: Option<u32>,
    },
    Counter,
    Verdict(i32, Option<String>),
    Reject(String),
    XtMatch(String, u32, Vec<u8>),
    XtTarget(String, Vec<u8>),
    Other(String),
}

fn op_str(op: u32) -> &'static str {
    match Operator::from(op) {
        Operator::Equal => "",
        Operator::NotEqual => "!=",
        Operator::LessThan => "<",
        Operator::LessThanEqual => "<=",
        Operator::GreaterThan => ">",
        Operator::GreatherThanEqual => ">=",
        _ => "?",
    }
}

/// Walk the expressions, following what each register holds.
fn terms(r: &Rule) -> Vec<Term> {
    let mut regs: BTreeMap<u32, (Field, Option<Vec<u8>>)> = BTreeMap::new();
    let mut l3: Option<&'static str> = match r.family.as_str() {
        "ip" => Some("ip"),
        "ip6" => Some("ip6"),
        _ => None,
    };
    let mut l4 = "th".to_owned();
    let mut out = Vec::new();
    for e in &r.exprs {
        match e {
            Expr::Payload { base, offset, len, dreg } => {
                let f = payload_field(*base, l3.unwrap_or(if *len == 16 { "ip6" } else { "ip" }), *offset, *len, &l4);
                regs.insert(*dreg, (f, None));
            }
            Expr::Meta { key, dreg } => {
                let f = meta_field(*key);
                regs.insert(*dreg, (f, None));
            }
            Expr::Ct { key, dreg } => {
                let f = if *key == 0 { Field::CtState } else { Field::Other(format!("ct key {key}"), true) };
                regs.insert(*dreg, (f, None));
            }
            Expr::Bitwise { sreg, dreg, mask, .. } => {
                if let Some((f, _)) = regs.get(sreg).cloned() {
                    regs.insert(*dreg, (f, Some(mask.clone())));
                }
            }
            Expr::Cmp { sreg, op, data } => {
                let Some((field, mask)) = regs.get(sreg).cloned() else {
                    out.push(Term::Other("cmp".into()));
                    continue;
                };
                match &field {
                    Field::NfProto => {
                        l3 = match data.first() {
                            Some(2) => Some("ip"),
                            Some(10) => Some("ip6"),
                            _ => l3,
                        };
                        // Implied by what follows (nft prints it only alone).
                        if r.family != "inet" {
                            out.push(Term::Match {
                                field,
                                op: op_str(*op),
                                value: value(&Field::NfProto, data),
                                prefix: None,
                            });
                        }
                        continue;
                    }
                    Field::Proto(_) if *op == 0 => {
                        if let Some(p) = data.first() {
                            l4 = proto_name(*p);
                        }
                    }
                    _ => {}
                }
                let t = cmp_term(field, mask, *op, data);
                // `a-b`: a range compiled to `>= a` and `<= b`.
                if let (
                    Term::Match { field, op: "<=", value: hi, .. },
                    Some(Term::Match { field: f0, op: ">=", value: lo, .. }),
                ) = (&t, out.last())
                    && field == f0
                {
                    let merged =
                        Term::Match { field: field.clone(), op: "", value: format!("{lo}-{hi}"), prefix: None };
                    out.pop();
                    out.push(merged);
                    continue;
                }
                out.push(t);
            }
            Expr::Range { sreg, op, from, to } => match regs.get(sreg).cloned() {
                Some((field, _)) => out.push(Term::Match {
                    value: format!("{}-{}", value(&field, from), value(&field, to)),
                    field,
                    op: if *op == 0 { "" } else { "!=" },
                    prefix: None,
                }),
                None => out.push(Term::Other("range".into())),
            },
            Expr::Lookup { sreg, set, invert } => match regs.get(sreg).cloned() {
                Some((field, _)) => out.push(Term::Match {
                    field,
                    op: if *invert { "!=" } else { "" },
                    value: format!("@{set}"),
                    prefix: None,
                }),
                None => out.push(Term::Other(format!("@{set}"))),
            },
            Expr::Counter { .. } => out.push(Term::Counter),
            Expr::Verdict { code, chain } => out.push(Term::Verdict(*code, chain.clone())),
            Expr::Reject { kind, code } => out.push(Term::Reject(reject_text(&r.family, l3, *kind, *code))),
            Expr::XtMatch { name, rev, info } => out.push(Term::XtMatch(name.clone(), *rev, info.clone())),
            Expr::XtTarget { name, info } => out.push(Term::XtTarget(name.clone(), info.clone())),
            Expr::Other(n) => out.push(Term::Other(n.clone())),
        }
    }
    out
}

/// The field a payload load reads: `base` (0 link, 1 network, 2 transport header), `offset` and
/// `len` in bytes, under network protocol `l3` and transport protocol `l4`.
fn payload_field(base: u32, l3: &str, offset: u32, len: u32, l4: &str) -> Field {
    match (base, l3, offset, len) {
        (1, "ip", 9, 1) => Field::Proto("ip protocol"),
        // A prefix on a byte boundary loads only its bytes (10.0.0.0/8: one).
        (1, "ip", 12, 1..=4) => Field::Addr("ip", "saddr"),
        (1, "ip", 16, 1..=4) => Field::Addr("ip", "daddr"),
        (1, "ip6", 6, 1) => Field::Proto("ip6 nexthdr"),
        (1, "ip6", 8, 1..=16) => Field::Addr("ip6", "saddr"),
        (1, "ip6", 24, 1..=16) => Field::Addr("ip6", "daddr"),
        (2, _, 0, 2) => Field::Port(l4.to_owned(), "sport"),
        (2, _, 2, 2) => Field::Port(l4.to_owned(), "dport"),
        (b, _, o, l) => {
            let base = ["@ll", "@nh", "@th", "@ih"].get(b as usize).copied().unwrap_or("@?");
            Field::Other(format!("{base},{},{}", o * 8, l * 8), false)
        }
    }
}

/// The field a meta load reads.
fn meta_field(key: u32) -> Field {
    match key {
        4 => Field::Other("iif".into(), true),
        5 => Field::Other("oif".into(), true),
        6 => Field::IfName("iifname"),
        7 => Field::IfName("oifname"),
        3 => Field::Other("meta mark".into(), true),
        10 => Field::Other("meta skuid".into(), true),
        11 => Field::Other("meta skgid".into(), true),
        15 => Field::NfProto,
        16 => Field::Proto("meta l4proto"),
        k => Field::Other(format!("meta key {k}"), false),
    }
}

/// A comparison of `field` (under `mask`, if any) with `data`, as a term.
fn cmp_term(field: Field, mask: Option<Vec<u8>>, op: u32, data: &[u8]) -> Term {
    let zero = data.iter().all(|b| *b == 0);
    match (&field, mask) {
        (Field::Addr(l3, _), None) if data.len() < addr_len(l3) => {
            let mut full = data.to_vec();
            full.resize(addr_len(l3), 0);
            Term::Match { value: value(&field, &full), field, op: op_str(op), prefix: Some(data.len() as u32 * 8) }
        }
        // `ct state established,related`: a mask and a non-zero test.
        (Field::CtState, Some(m)) if zero => {
            Term::Match { field, op: if op == 0 { "!=" } else { "" }, value: value(&Field::CtState, &m), prefix: None }
        }
        // An address prefix: a mask of leading ones.
        (Field::Addr(..), Some(m)) => {
            let ones: u32 = m.iter().map(|b| b.count_ones()).sum();
            Term::Match { value: value(&field, data), field, op: op_str(op), prefix: Some(ones) }
        }
        (_, Some(m)) => Term::Match {
            value: format!("{} {}", hex(&m), value(&field, data)),
            field: Field::Other(format!("{} &", field_name(&field)), false),
            op: op_str(op),
            prefix: None,
        },
        (_, None) => Term::Match { value: value(&field, data), field, op: op_str(op), prefix: None },
    }
}

/// `reject` in nft syntax: type 0 ICMP or `ICMPv6` (code), 1 TCP reset, 2 ICMPX (code); without
/// `with` when it is the family's default (port unreachable).
fn reject_text(family: &str, l3: Option<&str>, kind: u32, code: u8) -> String {
    const ICMP: &[(u8, &str)] = &[
        (0, "net-unreachable"),
        (1, "host-unreachable"),
        (2, "prot-unreachable"),
        (3, "port-unreachable"),
        (9, "net-prohibited"),
        (10, "host-prohibited"),
        (13, "admin-prohibited"),
    ];
    const ICMP6: &[(u8, &str)] = &[
        (0, "no-route"),
        (1, "admin-prohibited"),
        (3, "addr-unreachable"),
        (4, "port-unreachable"),
        (5, "policy-fail"),
        (6, "reject-route"),
    ];
    const ICMPX: &[(u8, &str)] =
        &[(0, "no-route"), (1, "port-unreachable"), (2, "host-unreachable"), (3, "admin-prohibited")];
    let name = |t: &[(u8, &str)]| {
        t.iter().find(|(c, _)| *c == code).map_or_else(|| code.to_string(), |(_, n)| (*n).to_owned())
    };
    let v6 = l3 == Some("ip6") || family == "ip6";
    match kind {
        1 => "reject with tcp reset".into(),
        2 if code == 1 && matches!(family, "inet" | "bridge" | "netdev") => "reject".into(),
        2 => format!("reject with icmpx {}", name(ICMPX)),
        _ if family != "inet" && ((v6 && code == 4) || (!v6 && code == 3)) => "reject".into(),
        _ if v6 => format!("reject with icmpv6 {}", name(ICMP6)),
        _ => format!("reject with icmp {}", name(ICMP)),
    }
}

fn addr_len(l3: &str) -> usize {
    if l3 == "ip6" { 16 } else { 4 }
}

fn verdict_text(code: i32, chain: Option<&str>) -> String {
    match (code, chain) {
        (0, _) => "drop".into(),
        (1, _) => "accept".into(),
        (3, _) => "queue".into(),
        (-1, _) => "continue".into(),
        (-3, Some(c)) => format!("jump {c}"),
        (-4, Some(c)) => format!("goto {c}"),
        (-5, _) => "return".into(),
        (c, _) => format!("verdict {c}"),
    }
}

/// An `x_tables` match (its `info` is the kernel struct, host order) in iptables syntax
/// (`ipt`) or nft's: the options of `udp`, `tcp`, `multiport` and `conntrack --ctstate`; the
/// other matches by name only.
fn xt_match(name: &str, rev: u32, info: &[u8], ipt: bool) -> String {
    let u16_at = |i: usize| info.get(i..i + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let port = |lo: u16, hi: u16| match (lo == hi, ipt) {
        (true, _) => lo.to_string(),
        (false, true) => format!("{lo}:{hi}"),
        (false, false) => format!("{lo}-{hi}"),
    };
    let known = match name {
        // struct xt_udp / xt_tcp: spts[2], dpts[2], then invflags (0x1 source, 0x2 destination).
        "udp" | "tcp" => (|| {
            let inv = *info.get(if name == "tcp" { 11 } else { 8 })?;
            let mut parts = Vec::new();
            for (i, (dir, bit)) in [("sport", 1), ("dport", 2)].into_iter().enumerate() {
                let (lo, hi) = (u16_at(i * 4)?, u16_at(i * 4 + 2)?);
                if (lo, hi) != (0, 65535) {
                    let not = inv & bit != 0;
                    parts.push(if ipt {
                        format!("{}--{dir} {}", if not { "! " } else { "" }, port(lo, hi))
                    } else {
                        format!("{name} {dir} {}{}", if not { "!= " } else { "" }, port(lo, hi))
                    });
                }
            }
            Some(if ipt { format!("-m {name} {}", parts.join(" ")) } else { parts.join(" ") })
        })(),
        // struct xt_multiport_v1: flags (0 source, 1 destination, 2 either), count, ports[15],
        // pflags[15] (a range starts), invert.
        "multiport" if ipt => (|| {
            let flag = ["--sports", "--dports", "--ports"].get(usize::from(*info.first()?))?;
            let count = usize::from(*info.get(1)?).min(15);
            let mut ports = Vec::new();
            let mut i = 0;
            while i < count {
                let ranged = rev >= 1 && info.get(32 + i).is_some_and(|f| *f != 0);
                ports.push(if ranged {
                    format!("{}:{}", u16_at(2 + 2 * i)?, u16_at(4 + 2 * i)?)
                } else {
                    u16_at(2 + 2 * i)?.to_string()
                });
                i += if ranged { 2 } else { 1 };
            }
            let not = rev >= 1 && info.get(47).is_some_and(|v| *v != 0);
            Some(format!("-m multiport {}{flag} {}", if not { "! " } else { "" }, ports.join(",")))
        })(),
        // struct xt_conntrack_mtinfo2/3: match_flags at 146 (0x1 state), invert_flags at 148,
        // state_mask at 150.
        "conntrack" if rev >= 2 => (|| {
            let (flags, inv, state) = (u16_at(146)?, u16_at(148)?, u16_at(150)?);
            if flags != 1 {
                return None;
            }
            let names: Vec<&str> = [
                (1, "INVALID"),
                (2, "ESTABLISHED"),
                (4, "RELATED"),
                (8, "NEW"),
                (256, "SNAT"),
                (512, "DNAT"),
                (1024, "UNTRACKED"),
            ]
            .into_iter()
            .filter(|(b, _)| state & b != 0)
            .map(|(_, n)| n)
            .collect();
            let not = inv & 1 != 0;
            Some(if ipt {
                format!("-m conntrack {}--ctstate {}", if not { "! " } else { "" }, names.join(","))
            } else {
                format!("ct state {}{}", if not { "!= " } else { "" }, names.join(",").to_lowercase())
            })
        })(),
        _ => None,
    };
    known.unwrap_or_else(|| if ipt { format!("-m {name}") } else { format!("xt match \"{name}\"") })
}

/// A rule in nft syntax, close to what `nft list ruleset` prints.
fn render_nft(r: &Rule) -> String {
    let mut w: Vec<String> = Vec::new();
    let terms = terms(r);
    for (i, t) in terms.iter().cloned().enumerate() {
        // `meta l4proto udp udp dport 53` is printed `udp dport 53`: the port implies it.
        if let (
            Term::Match { field: Field::Proto(_), op: "", value: p, .. },
            Some(Term::Match { field: Field::Port(l4, _), .. }),
        ) = (&t, terms.get(i + 1))
            && p == l4
        {
            continue;
        }
        match t {
            Term::Match { field, op, value, prefix } => {
                let v = prefix.map_or(value.clone(), |p| format!("{value}/{p}"));
                w.push(
                    [field_name(&field), op.to_owned(), v]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            Term::Counter => w.push("counter".into()),
            Term::Verdict(c, ch) => w.push(verdict_text(c, ch.as_deref())),
            Term::Reject(s) => w.push(s),
            Term::XtMatch(n, rev, info) => w.push(xt_match(&n, rev, &info, false)),
            Term::XtTarget(n, _) => w.push(format!("xt target \"{n}\"")),
            Term::Other(n) => w.push(n),
        }
    }
    w.join(" ")
}

/// `--reject-with` of an `x_tables` REJECT target (`struct ipt_reject_info`/`ip6t_reject_info`).
fn xt_reject_with(family: &str, info: &[u8]) -> Option<&'static str> {
    let with = host_u32(info)? as usize;
    let names: &[&str] = if family == "ip6" {
        &[
            "icmp6-no-route",
            "icmp6-adm-prohibited",
            "icmp6-not-neighbour",
            "icmp6-addr-unreachable",
            "icmp6-port-unreachable",
            "icmp6-echo-reply",
            "tcp-reset",
            "icmp6-policy-fail",
            "icmp6-reject-route",
        ]
    } else {
        &[
            "icmp-net-unreachable",
            "icmp-host-unreachable",
            "icmp-proto-unreachable",
            "icmp-port-unreachable",
            "icmp-echo-reply",
            "icmp-net-prohibited",
            "icmp-host-prohibited",
            "tcp-reset",
            "icmp-admin-prohibited",
        ]
    };
    names.get(with).copied()
}

/// A rule of an iptables-nft table in `iptables-save` syntax (`-A CHAIN ... -j TARGET`).
fn render_iptables(r: &Rule) -> String {
    let mut w = vec![format!("-A {}", r.chain)];
    let neg = |op: &str| if op == "!=" { "! " } else { "" };
    for t in terms(r) {
        match t {
            Term::Match { field, op, value, prefix } => match &field {
                Field::Addr(_, dir) => {
                    let full = if r.family == "ip6" { 128 } else { 32 };
                    let flag = if *dir == "saddr" { "-s" } else { "-d" };
                    w.push(format!("{}{flag} {value}/{}", neg(op), prefix.unwrap_or(full)));
                }
                Field::Proto(_) => w.push(format!("{}-p {value}", neg(op))),
                Field::IfName(n) => {
                    let flag = if *n == "iifname" { "-i" } else { "-o" };
                    w.push(format!("{}{flag} {}", neg(op), value.trim_matches('"').replace('*', "+")));
                }
                Field::Port(l4, dir) => {
                    let flag = if *dir == "sport" { "--sport" } else { "--dport" };
                    w.push(format!("-m {l4} {}{flag} {}", neg(op), value.replace('-', ":")));
                }
                Field::CtState => {
                    w.push(format!("-m conntrack {}--ctstate {}", neg(op), value.to_uppercase()));
                }
                _ => w.push(format!("{} {op} {value}", field_name(&field))),
            },
            Term::Counter => {}
            Term::Verdict(c, ch) => w.push(match (c, ch) {
                (0, _) => "-j DROP".into(),
                (1, _) => "-j ACCEPT".into(),
                (-3, Some(ch)) => format!("-j {ch}"),
                (-4, Some(ch)) => format!("-g {ch}"),
                (-5, _) => "-j RETURN".into(),
                (c, ch) => verdict_text(c, ch.as_deref()),
            }),
            Term::Reject(_) => w.push("-j REJECT".into()),
            Term::XtMatch(n, rev, info) => w.push(xt_match(&n, rev, &info, true)),
            Term::XtTarget(n, info) => match (n.as_str(), xt_reject_with(&r.family, &info)) {
                ("REJECT", Some(with)) => w.push(format!("-j REJECT --reject-with {with}")),
                _ => w.push(format!("-j {n}")),
            },
            Term::Other(n) => w.push(n),
        }
    }
    w.join(" ")
}

/// The drop chains and rules of `nf_tables` in one namespace.
#[derive(Clone, Debug, Default)]
pub(crate) struct Firewall {
    pub chains: Vec<FirewallChain>,
    pub rules: Vec<FirewallRule>,
    /// What could not be decoded, for `unavailable`.
    pub note: Option<String>,
}

/// Read the drop chains and rules of `nf_tables` in the calling thread's namespace.
pub(crate) fn read_here() -> Result<Firewall, String> {
    let rs = decode(&dump_here()?);
    let (chains, rules) = firewall(&rs);
    let note = (rs.undecoded > 0).then(|| format!("nf_tables: {} netlink messages could not be decoded", rs.undecoded));
    Ok(Firewall { chains, rules, note })
}

#[cfg(test)]
#[path = "nft_tests.rs"]
mod tests;
