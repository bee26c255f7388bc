//! Firewall drops and NAT tuples from the kernel's keys: `FwKey` counts into
//! [`FirewallDrop`]s, the chain of each flow, and the conntrack original tuple as text.

use std::{
    collections::{BTreeMap, HashMap},
    net::{Ipv4Addr, Ipv6Addr},
};

use pktloss_common::{FlowKey, FwKey, NatTuple, fw_kind};

use crate::model::{FirewallDrop, NetnsId};

/// The text of a NUL-terminated name.
fn name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// nft's name of an `NFPROTO_*` table family.
fn nft_family(pf: u8) -> String {
    match pf {
        1 => "inet".to_owned(),
        2 => "ip".to_owned(),
        3 => "arp".to_owned(),
        5 => "netdev".to_owned(),
        7 => "bridge".to_owned(),
        10 => "ip6".to_owned(),
        n => format!("family-{n}"),
    }
}

/// The hook's name in the family's terms (nft's lower case).
fn hook_name(pf: u8, hook: u8) -> String {
    let name = match (pf, hook) {
        (5, 0) => "ingress",
        (5, 1) => "egress",
        (3, 0) => "input",
        (3, 1) => "output",
        (3, 2) => "forward",
        (_, 0) => "prerouting",
        (_, 1) => "input",
        (_, 2) => "forward",
        (_, 3) => "output",
        (_, 4) => "postrouting",
        (_, 5) => "ingress",
        _ => return format!("hook-{hook}"),
    };
    name.to_owned()
}

/// One firewall drop of a key (count `n`).
fn drop_of(k: &FwKey, n: u64) -> FirewallDrop {
    let hook = hook_name(k.pf, k.hook);
    let (backend, family, chain) = match k.kind {
        fw_kind::NFT => ("nftables", nft_family(k.pf), name(&k.chain)),
        kind => (
            if kind == fw_kind::IP6T { "ip6tables" } else { "iptables" },
            (if kind == fw_kind::IP6T { "ip6" } else { "ip" }).to_owned(),
            hook.to_uppercase(),
        ),
    };
    FirewallDrop {
        backend: backend.to_owned(),
        family,
        table: name(&k.table),
        chain,
        hook,
        handle: k.handle,
        jumped: k.jumped != 0,
        netns: NetnsId { inode: k.flow.netns, cookie: k.flow.netns_cookie },
        count: n,
    }
}

/// Drops per (namespace, table, chain, rule), largest first.
pub(crate) fn firewall_drops(raw: &[(FwKey, u64)]) -> Vec<FirewallDrop> {
    // Keyed by everything but the count (the flows of one chain add up).
    let mut by: BTreeMap<(u32, u64, String, u64, bool), FirewallDrop> = BTreeMap::new();
    for (k, n) in raw {
        let d = drop_of(k, *n);
        let key = (d.netns.inode, d.netns.cookie, format!("{} {}", d.label(), d.hook), d.handle, d.jumped);
        by.entry(key).and_modify(|e| e.count += n).or_insert(d);
    }
    let mut out: Vec<FirewallDrop> = by.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label().cmp(&b.label())));
    out
}

/// The chain of each flow's firewall drops (the one with most drops).
pub(crate) fn chain_by_flow(raw: &[(FwKey, u64)]) -> HashMap<FlowKey, String> {
    let mut best: HashMap<FlowKey, (u64, String)> = HashMap::new();
    for (k, n) in raw {
        let label = drop_of(k, *n).label();
        let e = best.entry(k.flow).or_insert((0, String::new()));
        if *n > e.0 {
            *e = (*n, label);
        }
    }
    best.into_iter().map(|(k, (_, l))| (k, l)).collect()
}

/// `SRC:PORT -> DST:PORT` of a conntrack tuple (ports only for TCP, UDP, SCTP, UDP-Lite).
pub(crate) fn nat_text(t: &NatTuple) -> String {
    let addr = |a: &[u8; 16]| match t.l3num {
        2 => Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
        _ => format!("[{}]", Ipv6Addr::from(*a)),
    };
    let ports = matches!(t.protonum, 6 | 17 | 132 | 136);
    let end = |a: &[u8; 16], p: u16| {
        if ports { format!("{}:{}", addr(a), u16::from_be(p)) } else { addr(a) }
    };
    format!("{} -> {}", end(&t.saddr, t.sport), end(&t.daddr, t.dport))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: u8, pf: u8, hook: u8, table: &str, chain: &str, handle: u64) -> FwKey {
        let mut k = FwKey { kind, pf, hook, handle, ..FwKey::default() };
        k.table[..table.len()].copy_from_slice(table.as_bytes());
        k.chain[..chain.len()].copy_from_slice(chain.as_bytes());
        k.flow.netns = 7;
        k
    }

    #[test]
    fn labels_name_backend_table_chain_and_rule() {
        let d = firewall_drops(&[
            (key(fw_kind::NFT, 1, 1, "filter", "input", 0), 3),
            (key(fw_kind::NFT, 2, 1, "t", "blocked", 4), 5),
            (key(fw_kind::IPT, 2, 1, "filter", "", 0), 2),
            (key(fw_kind::IP6T, 10, 2, "filter", "", 0), 1),
        ]);
        let labels: Vec<String> = d.iter().map(FirewallDrop::label).collect();
        assert_eq!(
            labels,
            [
                "nftables ip t blocked rule 4",
                "nftables inet filter input",
                "iptables filter INPUT",
                "ip6tables filter FORWARD"
            ]
        );
        assert_eq!(d[1].hook, "input");
        assert_eq!(d.iter().map(|x| x.count).sum::<u64>(), 11);
    }

    #[test]
    fn nat_tuple_text() {
        let mut t =
            NatTuple { l3num: 2, protonum: 6, sport: 40000u16.to_be(), dport: 80u16.to_be(), ..NatTuple::default() };
        t.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        t.daddr[..4].copy_from_slice(&[10, 96, 0, 10]);
        assert_eq!(nat_text(&t), "127.0.0.1:40000 -> 10.96.0.10:80");
    }
}
