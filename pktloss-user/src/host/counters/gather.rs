//! Gathering layer: read counters and configuration inside a network namespace (read-only).
//!
//! Everything runs on a thread that joined the namespace ([`crate::host::netns::run_in`]):
//! `/proc/thread-self/net/*` and `/proc/sys/net/*` opened by that thread belong to its
//! namespace, and tools (`ip`, `tc`, `ss`, `nft`, `ethtool`) started from it inherit it. Only
//! `/sys/class/net` follows the mount namespace instead, so RPS masks of another namespace are
//! read by a helper in a private mount namespace with its own sysfs mount (what `ip netns exec`
//! does), which disappears with it.
//!
//! Tools that would autoload kernel modules are not run when their subsystem is absent
//! (`nft`/`iptables-save` without `nf_tables`/`ip_tables`, `conntrack -S` without ctnetlink).
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{ConfigChecks, Gathered, NetnsSnapshot, RpsQueue, nft, parse};
use crate::host::netns::{self, NetnsLabel, NetnsRef};

/// How long one tool may run before it is killed and recorded as unavailable.
const TOOL_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many devices per namespace get `ethtool` calls.
const MAX_ETHTOOL_DEVICES: usize = 64;

/// The sysctls read in each namespace. Keys missing in a child namespace are host-wide ones
/// (the diagnosis uses the host's value).
pub(crate) const SYSCTLS: &[&str] = &[
    "net.core.somaxconn",
    "net.core.rmem_max",
    "net.core.rmem_default",
    "net.core.wmem_max",
    "net.core.wmem_default",
    "net.core.netdev_max_backlog",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.dev_weight",
    "net.core.rps_sock_flow_entries",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.udp_mem",
    "net.ipv4.udp_rmem_min",
    "net.ipv4.udp_wmem_min",
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_buckets",
];

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Run a tool in the calling thread's namespace; stdout, or "why" it is unavailable.
pub(crate) fn run_tool(prog: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(
            |e| if e.kind() == std::io::ErrorKind::NotFound { "not installed".to_owned() } else { e.to_string() },
        )?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // A read error keeps what was read so far: the exit status decides the outcome.
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            drop(o.read_to_end(&mut s));
        }
        let mut e = Vec::new();
        if let Some(o) = err.as_mut() {
            drop(o.read_to_end(&mut e));
        }
        (s, e)
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Best effort: the child may have exited meanwhile; the timeout is the error.
                drop(child.kill());
                drop(child.wait());
                return Err(format!("timed out after {}s", TOOL_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let (out, err) = reader.join().unwrap_or_default();
    if status.success() {
        Ok(String::from_utf8_lossy(&out).into_owned())
    } else {
        let err = String::from_utf8_lossy(&err);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        Err(if first.is_empty() { format!("exit status {}", status.code().unwrap_or(-1)) } else { first })
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// Read one sysctl ("net.core.somaxconn") in the calling thread's namespace.
pub(crate) fn read_sysctl(key: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether a tool may use this kernel subsystem without autoloading a module: it is loaded, or
/// it is not a loadable module at all (built in, or the kernel has no modules.dep entry for it).
fn module_present(name: &str) -> bool {
    if Path::new("/sys/module").join(name).exists() {
        return true;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match std::fs::read_to_string(format!("/lib/modules/{}/modules.dep", release.trim())) {
        Ok(dep) => {
            let ko = format!("/{name}.ko");
            !dep.lines().filter_map(|l| l.split(':').next()).any(|p| p.ends_with(&ko) || p.contains(&format!("{ko}.")))
        }
        Err(_) => true,
    }
}

/// Snapshot of counters, run in the calling thread's namespace.
fn snapshot_here(netns: u32, label: NetnsLabel, is_self: bool) -> NetnsSnapshot {
    let mut s = NetnsSnapshot { netns, label, is_self, taken_at: now(), ..Default::default() };
    let mut unavailable = Vec::new();
    match read("/proc/thread-self/net/snmp") {
        Ok(t) => s.snmp = parse::proc_pairs(&t),
        Err(e) => unavailable.push(format!("/proc/net/snmp: {e}")),
    }
    match read("/proc/thread-self/net/snmp6") {
        Ok(t) => s.snmp.extend(parse::snmp6(&t)),
        Err(e) => unavailable.push(format!("/proc/net/snmp6: {e}")),
    }
    match read("/proc/thread-self/net/netstat") {
        Ok(t) => s.netstat = parse::proc_pairs(&t),
        Err(e) => unavailable.push(format!("/proc/net/netstat: {e}")),
    }
    match read("/proc/thread-self/net/softnet_stat") {
        Ok(t) => s.softnet = parse::softnet_stat(&t),
        Err(e) => unavailable.push(format!("/proc/net/softnet_stat: {e}")),
    }
    match run_tool("ip", &["-s", "-s", "-d", "-j", "link", "show"]) {
        Ok(t) => s.devices = parse::ip_link_json(&t),
        Err(e) => {
            unavailable.push(format!("ip -s -j link: {e} (using /proc/net/dev)"));
            if let Ok(t) = read("/proc/thread-self/net/dev") {
                s.devices = parse::proc_net_dev(&t);
            }
        }
    }
    let mut no_ethtool = Vec::new();
    for d in s.devices.iter_mut().filter(|d| d.name != "lo").take(MAX_ETHTOOL_DEVICES) {
        match run_tool("ethtool", &["-S", &d.name]) {
            Ok(t) => d.ethtool = parse::ethtool_stats(&t),
            Err(e) if e == "not installed" => {
                unavailable.push("ethtool -S: not installed".to_owned());
                break;
            }
            Err(_) => no_ethtool.push(d.name.clone()),
        }
    }
    if !no_ethtool.is_empty() {
        unavailable.push(format!("ethtool -S: not supported by the driver of {}", no_ethtool.join(", ")));
    }
    match run_tool("tc", &["-s", "-j", "qdisc", "show"]) {
        Ok(t) => s.qdiscs = parse::tc_qdisc_json(&t),
        Err(e) => unavailable.push(format!("tc -s qdisc: {e}")),
    }
    let count = read_sysctl("net.netfilter.nf_conntrack_count");
    if count.is_some() || Path::new("/sys/module/nf_conntrack").exists() {
        let stats = match read("/proc/thread-self/net/stat/nf_conntrack") {
            Ok(t) => parse::proc_stat_table(&t),
            Err(_) if module_present("nf_conntrack_netlink") => match run_tool("conntrack", &["-S"]) {
                Ok(t) => parse::conntrack_s(&t),
                Err(e) => {
                    unavailable.push(format!("conntrack -S: {e}"));
                    BTreeMap::new()
                }
            },
            Err(e) => {
                unavailable.push(format!("/proc/net/stat/nf_conntrack: {e}"));
                BTreeMap::new()
            }
        };
        s.conntrack =
            Some(parse::conntrack(count.as_deref(), read_sysctl("net.netfilter.nf_conntrack_max").as_deref(), stats));
    }
    if is_self {
        for (file, prefix) in [("arp_cache", "arp"), ("ndisc_cache", "ndisc")] {
            if let Ok(t) = read(&format!("/proc/net/stat/{file}")) {
                for (k, v) in parse::proc_stat_table(&t) {
                    s.neigh.insert(format!("{prefix}.{k}"), v);
                }
            }
        }
    }
    for key in SYSCTLS {
        if let Some(v) = read_sysctl(key) {
            s.sysctls.insert((*key).to_owned(), v);
        }
    }
    s.unavailable = unavailable;
    s
}

/// Firewall drop chains and rules in the calling thread's namespace: `nf_tables` read over netlink
/// ([`nft`], which also holds the tables of iptables-nft), and the tables of legacy iptables
/// (`x_tables`, listed in `/proc/net/ip_tables_names`), which only `iptables-legacy-save` reads.
fn firewall_here(c: &mut ConfigChecks, unavailable: &mut Vec<String>) {
    // The dump would autoload nf_tables: not when it is absent.
    if module_present("nf_tables") {
        match nft::read_here() {
            Ok(fw) => {
                c.drop_chains.extend(fw.chains);
                c.drop_rules.extend(fw.rules);
                unavailable.extend(fw.note);
            }
            Err(e) => unavailable.push(format!("nf_tables: {e}")),
        }
    }
    for (names, prog, backend) in [
        ("ip_tables_names", "iptables-legacy-save", "iptables"),
        ("ip6_tables_names", "ip6tables-legacy-save", "ip6tables"),
    ] {
        let tables = read(&format!("/proc/thread-self/net/{names}")).unwrap_or_default();
        let tables: Vec<&str> = tables.split_whitespace().collect();
        if tables.is_empty() {
            continue;
        }
        match run_tool(prog, &["-c"]) {
            Ok(t) => {
                let (chains, rules) = parse::iptables_save(backend, &t);
                c.drop_chains.extend(chains);
                c.drop_rules.extend(rules);
            }
            Err(e) => unavailable.push(format!("{prog}: {e} (legacy {backend} tables {} not read)", tables.join(", "))),
        }
    }
}

/// Configuration checks, run in the calling thread's namespace.
fn checks_here(netns: u32, label: NetnsLabel, is_self: bool) -> ConfigChecks {
    let mut c = ConfigChecks { netns, label, is_self, ..Default::default() };
    let mut unavailable = Vec::new();

    // Firewall: nf_tables over netlink (nft and iptables-nft tables), and legacy x_tables.
    firewall_here(&mut c, &mut unavailable);

    match run_tool("ss", &["-ltnpmeH"]) {
        Ok(t) => c.listeners = parse::ss_listeners(&t),
        Err(e) => unavailable.push(format!("ss -ltn: {e}")),
    }
    match run_tool("ss", &["-uamnpeH"]) {
        Ok(t) => c.udp_sockets = parse::ss_udp(&t),
        Err(e) => {
            unavailable.push(format!("ss -uamn: {e} (using /proc/net/udp)"));
            for f in ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"] {
                if let Ok(t) = read(f) {
                    c.udp_sockets.extend(parse::proc_net_udp(&t));
                }
            }
        }
    }

    if let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = read_sysctl(&format!("net.ipv4.conf.{name}.rp_filter")).and_then(|v| v.parse().ok()) {
                c.rp_filter.insert(name, v);
            }
        }
    } else {
        unavailable.push("/proc/sys/net/ipv4/conf: unreadable".to_owned());
    }

    let rps = if is_self {
        let mut out = String::new();
        if let Ok(devs) = std::fs::read_dir("/sys/class/net") {
            for d in devs.flatten() {
                let qdir = d.path().join("queues");
                for q in std::fs::read_dir(&qdir).into_iter().flatten().flatten() {
                    let f = q.path().join("rps_cpus");
                    if let Ok(m) = std::fs::read_to_string(&f) {
                        let _ = writeln!(out, "{} {}", f.display(), m.trim());
                    }
                }
            }
        }
        Ok(out)
    } else {
        run_tool(
            "unshare",
            &[
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t sysfs sysfs /sys && for f in /sys/class/net/*/queues/rx-*/rps_cpus; do \
                 [ -r \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; true",
            ],
        )
    };
    match rps {
        Ok(t) => {
            c.rps = parse::rps_lines(&t)
                .into_iter()
                .filter(|(d, _, _)| d != "lo")
                .map(|(dev, queue, mask)| RpsQueue { dev, queue, mask })
                .collect()
        }
        Err(e) => unavailable.push(format!("rps_cpus: {e}")),
    }

    let links = run_tool("ip", &["-d", "-j", "link", "show"]).map(|t| parse::ip_link_json(&t)).unwrap_or_default();
    let tuns: Vec<String> = links.iter().filter(|d| d.kind == "tun").map(|d| d.name.clone()).collect();
    if !tuns.is_empty() {
        c.tun_readers = crate::host::sockets::tun_readers().into_iter().filter(|r| tuns.contains(&r.dev)).collect();
    }
    let devs: Vec<String> = links.into_iter().map(|d| d.name).filter(|n| n != "lo").collect();
    for d in devs.iter().take(MAX_ETHTOOL_DEVICES) {
        if let Ok(t) = run_tool("ethtool", &["-g", d]) {
            c.rings.extend(parse::ethtool_ring(d, &t));
        }
    }

    for args in [&["-j", "route", "show", "table", "all"][..], &["-6", "-j", "route", "show", "table", "all"][..]] {
        match run_tool("ip", args) {
            Ok(t) => c.drop_routes.extend(parse::ip_route_json(&t)),
            Err(e) => unavailable.push(format!("ip route: {e}")),
        }
    }
    match run_tool("ip", &["-j", "neigh", "show"]) {
        Ok(t) => c.failed_neighbors = parse::ip_neigh_failed(&t),
        Err(e) => unavailable.push(format!("ip neigh: {e}")),
    }
    c.unavailable = unavailable;
    c
}

/// Counters of one namespace.
pub(crate) fn snapshot(ns: &NetnsRef) -> NetnsSnapshot {
    let (inode, label, is_self) = (ns.inode, ns.label(), ns.is_self);
    let l = label.clone();
    let mut s = netns::run_in(ns, move || Ok(snapshot_here(inode, l, is_self))).unwrap_or_else(|e| NetnsSnapshot {
        netns: inode,
        label,
        is_self,
        taken_at: now(),
        unavailable: vec![format!("netns: cannot enter: {e:#}")],
        ..Default::default()
    });
    s.pid = ns.pid();
    s
}

/// Configuration checks of one namespace.
pub(crate) fn config_checks(ns: &NetnsRef) -> ConfigChecks {
    let (inode, label, is_self) = (ns.inode, ns.label(), ns.is_self);
    let l = label.clone();
    netns::run_in(ns, move || Ok(checks_here(inode, l, is_self))).unwrap_or_else(|e| ConfigChecks {
        netns: inode,
        label,
        is_self,
        unavailable: vec![format!("netns: cannot enter: {e:#}")],
        ..Default::default()
    })
}

/// The namespaces to read: the given inodes that can be found, plus our own, in inode order.
/// Inodes that cannot be found (the namespace is gone) yield a placeholder noting why.
fn resolve(inodes: &[u32]) -> Vec<Result<NetnsRef, u32>> {
    let all = netns::list();
    let mut want: Vec<u32> = inodes.iter().copied().filter(|i| *i != 0).collect();
    if let Some(me) = all.values().find(|n| n.is_self) {
        want.push(me.inode);
    }
    want.sort_unstable();
    want.dedup();
    want.into_iter().map(|i| all.get(&i).cloned().ok_or(i)).collect()
}

/// Counters of these namespaces plus our own.
pub(crate) fn snapshot_all(inodes: &[u32]) -> Vec<NetnsSnapshot> {
    resolve(inodes)
        .into_iter()
        .map(|r| match r {
            Ok(ns) => snapshot(&ns),
            Err(inode) => NetnsSnapshot::not_found(inode, now()),
        })
        .collect()
}

/// Counters and configuration of these namespaces plus our own.
pub(crate) fn gather(inodes: &[u32]) -> Gathered {
    let mut g = Gathered::default();
    for r in resolve(inodes) {
        match r {
            Ok(ns) => {
                g.snapshots.push(snapshot(&ns));
                g.checks.push(config_checks(&ns));
            }
            Err(inode) => {
                g.snapshots.push(NetnsSnapshot::not_found(inode, now()));
                g.checks.push(ConfigChecks::not_found(inode));
            }
        }
    }
    g
}
