//! Pure parsers: the text of a /proc file or a tool's output in, plain structs out.
//!
//! Every function here takes `&str` and never panics: unknown, truncated or garbage lines are
//! skipped. The gathering layer (`super::gather`) feeds them the real files.
use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    ConntrackStats, DeviceStats, FirewallChain, FirewallRule, Listener, QdiscStats, RingParams, RouteEntry, SoftnetCpu,
    UdpSocket,
};

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

/// `/proc/net/dev`: fallback device counters when `ip -j` is unavailable.
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

fn ju(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

fn js(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `ip -s -s -j link show`: devices with their full statistics.
pub(crate) fn ip_link_json(text: &str) -> Vec<DeviceStats> {
    let Ok(Value::Array(links)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let mut out = Vec::new();
    for l in &links {
        let name = js(l, "ifname");
        if name.is_empty() {
            continue;
        }
        let st = l.get("stats64").or_else(|| l.get("stats")).cloned().unwrap_or(Value::Null);
        let flags: Vec<String> = l
            .get("flags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let xdp = l.get("xdp").map(|x| {
            let mode = x.get("mode").and_then(Value::as_u64).unwrap_or(0);
            let id = x.get("prog").and_then(|p| p.get("id")).and_then(Value::as_u64);
            match id {
                Some(id) => format!("mode {mode} prog id {id}"),
                None => format!("mode {mode}"),
            }
        });
        out.push(DeviceStats {
            name,
            ifindex: u32::try_from(ju(l, &["ifindex"])).unwrap_or(0),
            operstate: js(l, "operstate"),
            up: flags.iter().any(|f| f == "UP"),
            lower_up: flags.iter().any(|f| f == "LOWER_UP"),
            mtu: u32::try_from(ju(l, &["mtu"])).unwrap_or(0),
            qdisc: js(l, "qdisc"),
            txqlen: u32::try_from(ju(l, &["txqlen"])).unwrap_or(0),
            kind: l
                .get("linkinfo")
                .and_then(|i| i.get("info_kind"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            xdp,
            rx_bytes: ju(&st, &["rx", "bytes"]),
            rx_packets: ju(&st, &["rx", "packets"]),
            rx_errors: ju(&st, &["rx", "errors"]),
            rx_dropped: ju(&st, &["rx", "dropped"]),
            rx_over_errors: ju(&st, &["rx", "over_errors"]),
            rx_crc_errors: ju(&st, &["rx", "crc_errors"]),
            rx_frame_errors: ju(&st, &["rx", "frame_errors"]),
            rx_fifo_errors: ju(&st, &["rx", "fifo_errors"]),
            rx_missed_errors: ju(&st, &["rx", "missed_errors"]),
            rx_length_errors: ju(&st, &["rx", "length_errors"]),
            rx_nohandler: ju(&st, &["rx", "nohandler"]),
            tx_bytes: ju(&st, &["tx", "bytes"]),
            tx_packets: ju(&st, &["tx", "packets"]),
            tx_errors: ju(&st, &["tx", "errors"]),
            tx_dropped: ju(&st, &["tx", "dropped"]),
            tx_fifo_errors: ju(&st, &["tx", "fifo_errors"]),
            tx_carrier_errors: ju(&st, &["tx", "carrier_errors"]),
            carrier_changes: ju(&st, &["tx", "carrier_changes"]),
            ethtool: BTreeMap::new(),
        });
    }
    out
}

/// Whether an `ethtool -S` counter name is about drops, errors or missed frames (the rest, e.g.
/// byte counters per queue, is left out to keep snapshots small on NICs with thousands).
pub(crate) fn ethtool_key_is_interesting(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["drop", "miss", "fifo", "over", "crc", "err", "discard", "no_buf", "nobuf", "no_dma", "alloc", "full", "fail"]
        .iter()
        .any(|k| n.contains(k))
}

/// `ethtool -S DEV`: "     name: value" lines (drop/error ones only, see
/// [`ethtool_key_is_interesting`]).
pub(crate) fn ethtool_stats(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.rsplit_once(':') else { continue };
        let k = k.trim();
        let Ok(v) = v.trim().parse::<u64>() else { continue };
        if !k.is_empty() && ethtool_key_is_interesting(k) {
            out.insert(k.to_owned(), v);
        }
    }
    out
}

/// `ethtool -g DEV`: ring sizes (current vs pre-set maximum). `None` when nothing parses.
pub(crate) fn ethtool_ring(dev: &str, text: &str) -> Option<RingParams> {
    let mut max = (None, None);
    let mut cur = (None, None);
    let mut in_cur = None::<bool>;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Pre-set maximums") {
            in_cur = Some(false);
            continue;
        }
        if l.starts_with("Current hardware settings") {
            in_cur = Some(true);
            continue;
        }
        let Some(is_cur) = in_cur else { continue };
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim().parse::<u32>().ok();
        let slot = if is_cur { &mut cur } else { &mut max };
        match k.trim() {
            "RX" => slot.0 = v,
            "TX" => slot.1 = v,
            _ => {}
        }
    }
    if cur.0.is_none() && max.0.is_none() && cur.1.is_none() {
        return None;
    }
    Some(RingParams { dev: dev.to_owned(), rx: cur.0, rx_max: max.0, tx: cur.1, tx_max: max.1 })
}

/// `tc -s -j qdisc show`.
pub(crate) fn tc_qdisc_json(text: &str) -> Vec<QdiscStats> {
    let Ok(Value::Array(qs)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    qs.iter()
        .map(|q| QdiscStats {
            dev: js(q, "dev"),
            kind: js(q, "kind"),
            handle: js(q, "handle"),
            parent: if q.get("root").and_then(Value::as_bool) == Some(true) {
                "root".to_owned()
            } else {
                js(q, "parent")
            },
            bytes: ju(q, &["bytes"]),
            packets: ju(q, &["packets"]),
            drops: ju(q, &["drops"]),
            overlimits: ju(q, &["overlimits"]),
            requeues: ju(q, &["requeues"]),
            backlog: ju(q, &["backlog"]),
            qlen: ju(q, &["qlen"]),
        })
        .filter(|q| !q.dev.is_empty())
        .collect()
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

/// `conntrack -S`: `cpu=0 found=0 invalid=3 insert_failed=0 drop=0 ...` summed over CPUs.
pub(crate) fn conntrack_s(text: &str) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for tok in text.split_whitespace() {
        let Some((k, v)) = tok.split_once('=') else { continue };
        if k == "cpu" {
            continue;
        }
        if let Ok(v) = v.parse::<u64>() {
            let e = out.entry(k.to_owned()).or_insert(0);
            *e = e.saturating_add(v);
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

/// A local address `127.0.0.1:8080`, `[::1]:8443`, `*:5353`, `0.0.0.0%lo:53` into (addr, port).
pub(crate) fn split_addr_port(s: &str) -> (String, u16) {
    match s.rsplit_once(':') {
        Some((a, p)) => (a.trim_start_matches('[').trim_end_matches(']').to_owned(), p.parse().unwrap_or(0)),
        None => (s.to_owned(), 0),
    }
}

fn ss_process(line: &str) -> String {
    // users:(("python3",pid=11082,fd=3),("x",pid=2,fd=4))
    let Some(start) = line.find("users:((") else { return String::new() };
    let rest = &line[start + 8..];
    let mut procs = Vec::new();
    for part in rest.split("),(") {
        let mut comm = "";
        let mut pid = "";
        for (i, f) in part.split(',').enumerate() {
            if i == 0 {
                comm = f.trim_matches(|c| c == '"' || c == '(' || c == ')');
            } else if let Some(p) = f.strip_prefix("pid=") {
                pid = p.trim_end_matches(')');
            }
        }
        if !comm.is_empty() {
            let p = format!("{comm}[{pid}]");
            if !procs.contains(&p) {
                procs.push(p);
            }
        }
        if part.contains("))") {
            break;
        }
    }
    procs.join(",")
}

fn ss_token<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|t| t.strip_prefix(prefix))
}

/// `skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d8)` fields.
fn skmem(line: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(start) = line.find("skmem:(") else { return out };
    let inner = line[start + 7..].split(')').next().unwrap_or("");
    for f in inner.split(',') {
        let split = f.find(|c: char| c.is_ascii_digit()).unwrap_or(f.len());
        let (k, v) = f.split_at(split);
        if let Ok(v) = v.parse::<u64>() {
            out.insert(k.to_owned(), v);
        }
    }
    out
}

/// Group `ss` output into one string per socket (continuation lines start with whitespace).
fn ss_records(text: &str) -> Vec<String> {
    let mut recs: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = recs.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            recs.push(line.to_owned());
        }
    }
    recs
}

/// `ss -ltnpmeH`: listening TCP sockets. Recv-Q is the current accept queue, Send-Q the backlog
/// passed to `listen()` (already capped by somaxconn); skmem `d` counts this listener's drops.
pub(crate) fn ss_listeners(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for rec in ss_records(text) {
        let cols: Vec<&str> = rec.split_whitespace().collect();
        if cols.len() < 5 || cols[0] != "LISTEN" {
            continue;
        }
        let (Ok(q), Ok(b)) = (cols[1].parse::<u64>(), cols[2].parse::<u64>()) else { continue };
        let (addr, port) = split_addr_port(cols[3]);
        let mem = skmem(&rec);
        out.push(Listener {
            addr,
            port,
            accept_queue: q,
            backlog: b,
            drops: mem.get("d").copied(),
            drops_delta: None,
            inode: ss_token(&rec, "ino:").and_then(|s| s.parse().ok()),
            process: ss_process(&rec),
        });
    }
    out
}

/// `ss -uamnpeH`: UDP sockets with their queues, buffer sizes (skmem rb/tb) and drops (d).
pub(crate) fn ss_udp(text: &str) -> Vec<UdpSocket> {
    let mut out = Vec::new();
    for rec in ss_records(text) {
        let cols: Vec<&str> = rec.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let (Ok(rq), Ok(sq)) = (cols[1].parse::<u64>(), cols[2].parse::<u64>()) else { continue };
        let (addr, port) = split_addr_port(cols[3]);
        let mem = skmem(&rec);
        out.push(UdpSocket {
            addr,
            port,
            peer: cols[4].to_owned(),
            rx_queue: rq,
            tx_queue: sq,
            rcvbuf: mem.get("rb").copied(),
            sndbuf: mem.get("tb").copied(),
            drops: mem.get("d").copied().unwrap_or(0),
            drops_delta: None,
            inode: ss_token(&rec, "ino:").and_then(|s| s.parse().ok()),
            process: ss_process(&rec),
        });
    }
    out
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

/// `/proc/net/udp` and `udp6` (fallback when `ss` is missing): queues and the drops column.
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

/// `ip -j route show table all` (and `-6`): routes of type blackhole, unreachable or prohibit.
pub(crate) fn ip_route_json(text: &str) -> Vec<RouteEntry> {
    let Ok(Value::Array(rs)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    rs.iter()
        .filter_map(|r| {
            let t = js(r, "type");
            matches!(t.as_str(), "blackhole" | "unreachable" | "prohibit" | "throw").then(|| RouteEntry {
                kind: t,
                dst: js(r, "dst"),
                table: {
                    let t = js(r, "table");
                    if t.is_empty() { "main".to_owned() } else { t }
                },
            })
        })
        .collect()
}

/// `ip -j neigh show`: neighbour entries in FAILED or INCOMPLETE state, as "dst dev state".
pub(crate) fn ip_neigh_failed(text: &str) -> Vec<String> {
    let Ok(Value::Array(ns)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    ns.iter()
        .filter_map(|n| {
            let states: Vec<&str> =
                n.get("state").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect())?;
            states
                .iter()
                .any(|s| matches!(*s, "FAILED" | "INCOMPLETE"))
                .then(|| format!("{} dev {} {}", js(n, "dst"), js(n, "dev"), states.join(",")))
        })
        .collect()
}

/// "path value" lines printed by the RPS helper script: `/sys/class/net/DEV/queues/rx-N/rps_cpus
/// 0000000f` into (dev, queue, mask).
pub(crate) fn rps_lines(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let (path, mask) = l.trim().split_once(' ')?;
            let parts: Vec<&str> = path.split('/').collect();
            let qi = parts.iter().position(|p| *p == "queues")?;
            Some(((*parts.get(qi - 1)?).to_owned(), (*parts.get(qi + 1)?).to_owned(), mask.trim().to_owned()))
        })
        .collect()
}

/// Whether an RPS mask ("0", "00000000,00000003") selects any CPU.
pub(crate) fn rps_mask_enabled(mask: &str) -> bool {
    mask.chars().any(|c| c.is_ascii_hexdigit() && c != '0')
}
