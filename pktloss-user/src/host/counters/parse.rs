//! Pure parsers: the text of a /proc file (or, for the firewall, a tool's output) in, plain
//! structs out.
//!
//! Every function here takes `&str` and never panics: unknown, truncated or garbage lines are
//! skipped. The gathering layer (`super::gather`) feeds them the real files.
use std::collections::BTreeMap;

use super::{ConntrackStats, DeviceStats, FirewallChain, FirewallRule, SoftnetCpu, UdpSocket};

/// `/proc/net/snmp` and `/proc/net/netstat`: pairs of "Proto: names" / "Proto: values" lines,
/// into "Proto.Name" => value ("Udp.RcvbufErrors", "TcpExt.ListenOverflows").
pub(crate) fn proc_pairs(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i + 1 < lines.len() {
        let (Some((p1, names)), Some((p2, values))) = (lines[i].split_once(':'), lines[i + 1].split_once(':')) else {
            i += 1;
            continue;
        };
        if p1 != p2 || p1.trim().is_empty() {
            i += 1;
            continue;
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        // A header line holds names, not numbers.
        if values.first().is_some_and(|v| v.parse::<i64>().is_err()) {
            i += 1;
            continue;
        }
        for (n, v) in names.iter().zip(values.iter()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(format!("{}.{}", p1.trim(), n), v);
            }
        }
        i += 2;
    }
    out
}

/// `/proc/net/snmp6`: `Ip6InReceives  8` lines, into `Ip6.InReceives` => 8.
pub(crate) fn snmp6(text: &str) -> BTreeMap<String, i64> {
    const PREFIXES: [&str; 4] = ["UdpLite6", "Icmp6", "Udp6", "Ip6"];
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else { continue };
        let Ok(value) = value.parse::<i64>() else { continue };
        let key = PREFIXES
            .iter()
            .find(|p| name.starts_with(*p) && name.len() > p.len())
            .map_or_else(|| name.to_owned(), |p| format!("{}.{}", p, &name[p.len()..]));
        out.insert(key, value);
    }
    out
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// `/proc/net/softnet_stat`: one line per online CPU, hex columns. Column 13 (when present) is
/// the CPU number; older kernels lack it and the line index is used.
pub(crate) fn softnet_stat(text: &str) -> Vec<SoftnetCpu> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let cols: Vec<u64> = line.split_whitespace().map_while(hex).collect();
        if cols.len() < 3 {
            continue;
        }
        let get = |i: usize| cols.get(i).copied().unwrap_or(0);
        out.push(SoftnetCpu {
            cpu: if cols.len() > 12 { u32::try_from(get(12)).unwrap_or(idx as u32) } else { idx as u32 },
            processed: get(0),
            dropped: get(1),
            time_squeeze: get(2),
            received_rps: get(9),
            flow_limit_count: get(10),
            backlog_len: get(11),
        });
    }
    out
}

/// `/proc/net/dev`: fallback device counters when rtnetlink is unavailable.
pub(crate) fn proc_net_dev(text: &str) -> Vec<DeviceStats> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().map_while(|s| s.parse().ok()).collect();
        if v.len() < 16 {
            continue;
        }
        let mut d = DeviceStats { name: name.to_owned(), ..Default::default() };
        d.rx_bytes = v[0];
        d.rx_packets = v[1];
        d.rx_errors = v[2];
        d.rx_dropped = v[3];
        d.rx_fifo_errors = v[4];
        d.rx_frame_errors = v[5];
        d.tx_bytes = v[8];
        d.tx_packets = v[9];
        d.tx_errors = v[10];
        d.tx_dropped = v[11];
        d.tx_fifo_errors = v[12];
        d.tx_carrier_errors = v[14];
        out.push(d);
    }
    out
}

/// Whether an ethtool statistic's name is about drops, errors or missed frames (the rest, e.g.
/// byte counters per queue, is left out to keep snapshots small on NICs with thousands).
pub(crate) fn ethtool_key_is_interesting(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["drop", "miss", "fifo", "over", "crc", "err", "discard", "no_buf", "nobuf", "no_dma", "alloc", "full", "fail"]
        .iter()
        .any(|k| n.contains(k))
}

/// `/proc/net/stat/nf_conntrack` (header line + one hex line per CPU; the first column,
/// `entries`, is global) summed over CPUs. Also fits `/proc/net/stat/arp_cache` and `ndisc_cache`.
pub(crate) fn proc_stat_table(text: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return BTreeMap::new() };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines {
        let vals: Vec<u64> = line.split_whitespace().map_while(hex).collect();
        if vals.len() != names.len() {
            continue;
        }
        for (n, v) in names.iter().zip(vals) {
            let e = out.entry((*n).to_owned()).or_insert(0);
            if *n == "entries" {
                *e = v; // same global value on every line
            } else {
                *e = e.saturating_add(v);
            }
        }
    }
    out
}

/// Conntrack gauges and stats, from the count/max sysctls and a stats table.
pub(crate) fn conntrack(count: Option<&str>, max: Option<&str>, mut stats: BTreeMap<String, u64>) -> ConntrackStats {
    // `entries` is a gauge (the count), not a counter.
    stats.remove("entries");
    ConntrackStats {
        count: count.and_then(|s| s.trim().parse().ok()),
        max: max.and_then(|s| s.trim().parse().ok()),
        stats,
    }
}

fn proc_ip(hexaddr: &str) -> String {
    let b: Vec<u8> =
        (0..hexaddr.len() / 2).filter_map(|i| u8::from_str_radix(hexaddr.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[3], b[2], b[1], b[0]).to_string(),
        16 => {
            // Four host-endian 32-bit words.
            let mut o = [0u8; 16];
            for w in 0..4 {
                for j in 0..4 {
                    o[w * 4 + j] = b[w * 4 + 3 - j];
                }
            }
            std::net::Ipv6Addr::from(o).to_string()
        }
        _ => hexaddr.to_owned(),
    }
}

/// `/proc/net/udp` and `udp6` (fallback when `sock_diag` is unavailable): queues and the drops column.
pub(crate) fn proc_net_udp(text: &str) -> Vec<UdpSocket> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split_whitespace().collect();
        if c.len() < 13 {
            continue;
        }
        let Some((la, lp)) = c[1].split_once(':') else { continue };
        let Some((tx, rx)) = c[4].split_once(':') else { continue };
        out.push(UdpSocket {
            addr: proc_ip(la),
            port: u16::from_str_radix(lp, 16).unwrap_or(0),
            peer: c[2].to_owned(),
            rx_queue: hex(rx).unwrap_or(0),
            tx_queue: hex(tx).unwrap_or(0),
            rcvbuf: None,
            sndbuf: None,
            drops: c.last().and_then(|d| d.parse().ok()).unwrap_or(0),
            drops_delta: None,
            inode: c[9].parse().ok(),
            process: String::new(),
        });
    }
    out
}

/// `iptables-save -c` / `ip6tables-save -c` (counters optional): chains whose policy is DROP and
/// rules that jump to DROP or REJECT.
pub(crate) fn iptables_save(backend: &str, text: &str) -> (Vec<FirewallChain>, Vec<FirewallRule>) {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    let mut table = String::new();
    let family = if backend.starts_with("ip6") { "ip6" } else { "ip" };
    for line in text.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            t.clone_into(&mut table);
        } else if let Some(c) = line.strip_prefix(':') {
            // :INPUT DROP [12:345]
            let f: Vec<&str> = c.split_whitespace().collect();
            if f.len() >= 2 && matches!(f[1], "DROP" | "REJECT") {
                let (packets, bytes) = f.get(2).map_or((None, None), |s| bracket_counters(s));
                chains.push(FirewallChain {
                    backend: backend.to_owned(),
                    family: family.to_owned(),
                    table: table.clone(),
                    chain: f[0].to_owned(),
                    hook: f[0].to_ascii_lowercase(),
                    policy: f[1].to_ascii_lowercase(),
                    packets,
                    bytes,
                });
            }
        } else if line.starts_with('[') || line.starts_with("-A ") {
            let (counters, rest) = match line.strip_prefix('[').and_then(|l| l.split_once(']')) {
                Some((c, r)) => (Some(c), r.trim()),
                None => (None, line),
            };
            let Some(rest) = rest.strip_prefix("-A ") else { continue };
            let Some(target) = rest.split(" -j ").nth(1).and_then(|t| t.split_whitespace().next()) else {
                continue;
            };
            let verdict = match target {
                "DROP" => "drop",
                "REJECT" => "reject",
                _ => continue,
            };
            let (packets, bytes) = counters.map_or((None, None), |c| bracket_counters(&format!("[{c}]")));
            let chain = rest.split_whitespace().next().unwrap_or("").to_owned();
            rules.push(FirewallRule {
                backend: backend.to_owned(),
                family: family.to_owned(),
                table: table.clone(),
                chain,
                handle: None,
                rule: format!("-A {rest}"),
                verdict: verdict.to_owned(),
                packets,
                bytes,
                packets_delta: None,
            });
        }
    }
    (chains, rules)
}

fn bracket_counters(s: &str) -> (Option<u64>, Option<u64>) {
    let inner = s.trim_start_matches('[').trim_end_matches(']');
    match inner.split_once(':') {
        Some((p, b)) => (p.parse().ok(), b.parse().ok()),
        None => (None, None),
    }
}

/// Whether an RPS mask ("0", "00000000,00000003") selects any CPU.
pub(crate) fn rps_mask_enabled(mask: &str) -> bool {
    mask.chars().any(|c| c.is_ascii_hexdigit() && c != '0')
}
