//! Gathering layer: read counters and configuration inside a network namespace (read-only).
//!
//! Everything runs on a thread that joined the namespace ([`crate::host::netns::run_in`]):
//! `/proc/thread-self/net/*` and `/proc/sys/net/*` opened by that thread belong to its
//! namespace, and so do the netlink and ioctl sockets it opens (links, qdiscs, routes,
//! neighbours, sockets and conntrack statistics in [`super::netlink`], NIC statistics and rings
//! in [`super::ethtool`]). Only `/sys/class/net` follows the mount namespace instead, so RPS
//! masks of another namespace are read from a sysfs made on that thread and mounted nowhere.
//! No other program is run for any of it.
//!
//! Subsystems that a read would autoload are not asked when absent (`nft`/`iptables-save`
//! without `nf_tables`/`ip_tables`, ctnetlink without `nf_conntrack_netlink`).
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{ConfigChecks, Gathered, NetnsSnapshot, RpsQueue, ethtool, netlink, nft, parse};
use crate::{
    host::netns::{self, NetnsLabel, NetnsRef},
    model::NetnsId,
};

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

/// The RPS masks of every RX queue of the calling thread's namespace.
///
/// `/sys/class/net` shows the devices of the namespace that mounted that sysfs, so our own is
/// read there and another's from a sysfs made on this thread (`fsopen`/`fsmount`: a sysfs
/// superblock takes the network namespace of the thread that creates it), never attached to
/// any mount point and gone when its descriptor closes. It is read through
/// `/proc/self/fd/N`, the descriptor's path.
fn rps_masks(is_self: bool) -> Result<Vec<RpsQueue>, String> {
    if is_self {
        return rps_under(Path::new("/sys/class/net"));
    }
    let mnt = detached_sysfs()?;
    let root = std::path::PathBuf::from(format!("/proc/self/fd/{}/class/net", std::os::fd::AsRawFd::as_raw_fd(&mnt)));
    if !root.is_dir() {
        return Err(format!("{}: not a directory", root.display()));
    }
    rps_under(&root)
}

/// `DEV/queues/rx-N/rps_cpus` under a `class/net` directory.
fn rps_under(class_net: &Path) -> Result<Vec<RpsQueue>, String> {
    let mut out = Vec::new();
    let devs = std::fs::read_dir(class_net).map_err(|e| format!("{}: {e}", class_net.display()))?;
    for d in devs.flatten() {
        let dev = d.file_name().to_string_lossy().into_owned();
        for q in std::fs::read_dir(d.path().join("queues")).into_iter().flatten().flatten() {
            let queue = q.file_name().to_string_lossy().into_owned();
            if !queue.starts_with("rx-") {
                continue;
            }
            if let Ok(m) = std::fs::read_to_string(q.path().join("rps_cpus")) {
                out.push(RpsQueue { dev: dev.clone(), queue, mask: m.trim().to_owned() });
            }
        }
    }
    out.sort_by(|a, b| (&a.dev, &a.queue).cmp(&(&b.dev, &b.queue)));
    Ok(out)
}

/// A read-only sysfs of the calling thread's network namespace, mounted nowhere.
fn detached_sysfs() -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
    const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;
    let fd = |r: libc::c_long, what: &str| -> Result<OwnedFd, String> {
        let r = libc::c_int::try_from(r).unwrap_or(-1);
        if r < 0 {
            return Err(format!("{what}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the syscall returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    };
    // SAFETY: fsopen with a NUL-terminated file system name.
    let fs = fd(unsafe { libc::syscall(libc::SYS_fsopen, c"sysfs".as_ptr(), FSOPEN_CLOEXEC) }, "fsopen sysfs")?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fs);
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            raw,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(format!("fsconfig sysfs: {}", std::io::Error::last_os_error()));
    }
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: fsmount on the configured context descriptor.
    fd(unsafe { libc::syscall(libc::SYS_fsmount, raw, FSMOUNT_CLOEXEC, attrs) }, "fsmount sysfs")
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
    let cookie = netns::thread_cookie().unwrap_or(0);
    let mut s = NetnsSnapshot {
        netns: NetnsId { inode: netns, cookie },
        label,
        is_self,
        taken_at: now(),
        ..Default::default()
    };
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
    match netlink::links() {
        Ok((devs, bad)) => {
            s.devices = devs;
            unavailable.extend(netlink::undecoded("links", bad));
        }
        Err(e) => {
            unavailable.push(format!("links (rtnetlink): {e} (using /proc/net/dev)"));
            if let Ok(t) = read("/proc/thread-self/net/dev") {
                s.devices = parse::proc_net_dev(&t);
            }
        }
    }
    match ethtool::Ethtool::open() {
        Ok(et) => {
            let mut no_stats = Vec::new();
            for d in s.devices.iter_mut().filter(|d| d.name != "lo").take(MAX_ETHTOOL_DEVICES) {
                match et.stats(&d.name) {
                    Ok(st) => d.ethtool = st,
                    Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => no_stats.push(d.name.clone()),
                    Err(e) => unavailable.push(format!("ethtool statistics of {}: {e}", d.name)),
                }
            }
            if !no_stats.is_empty() {
                unavailable.push(format!("ethtool statistics: not supported by the driver of {}", no_stats.join(", ")));
            }
        }
        Err(e) => unavailable.push(format!("ethtool statistics: socket: {e}")),
    }
    let names: HashMap<u32, String> = s.devices.iter().map(|d| (d.ifindex, d.name.clone())).collect();
    match netlink::qdiscs(&names) {
        Ok((q, bad)) => {
            s.qdiscs = q;
            unavailable.extend(netlink::undecoded("qdiscs", bad));
        }
        Err(e) => unavailable.push(format!("qdiscs (rtnetlink): {e}")),
    }
    let count = read_sysctl("net.netfilter.nf_conntrack_count");
    if count.is_some() || Path::new("/sys/module/nf_conntrack").exists() {
        let stats = match read("/proc/thread-self/net/stat/nf_conntrack") {
            Ok(t) => parse::proc_stat_table(&t),
            Err(_) if module_present("nf_conntrack_netlink") => match netlink::conntrack_stats() {
                Ok(t) => t,
                Err(e) => {
                    unavailable.push(format!("conntrack statistics (ctnetlink): {e}"));
                    BTreeMap::new()
                }
            },
            Err(e) => {
                // Asking ctnetlink would load nf_conntrack_netlink: not done, said instead.
                unavailable.push(format!(
                    "conntrack statistics: /proc/net/stat/nf_conntrack: {e}, and nf_conntrack_netlink is not loaded"
                ));
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
    let cookie = netns::thread_cookie().unwrap_or(0);
    let mut c = ConfigChecks { netns: NetnsId { inode: netns, cookie }, label, is_self, ..Default::default() };
    let mut unavailable = Vec::new();

    // Firewall: nf_tables over netlink (nft and iptables-nft tables), and legacy x_tables.
    firewall_here(&mut c, &mut unavailable);

    let (links, names) = match netlink::links() {
        Ok((l, bad)) => {
            unavailable.extend(netlink::undecoded("links", bad));
            let names: HashMap<u32, String> = l.iter().map(|d| (d.ifindex, d.name.clone())).collect();
            (l, names)
        }
        Err(e) => {
            unavailable.push(format!("links (rtnetlink): {e}"));
            (Vec::new(), HashMap::new())
        }
    };
    match netlink::tcp_listeners(&names) {
        Ok((l, bad)) => {
            c.listeners = l;
            unavailable.extend(netlink::undecoded("TCP listeners", bad));
        }
        Err(e) => unavailable.push(format!("TCP listeners (sock_diag): {e}")),
    }
    match netlink::udp_sockets(&names) {
        Ok((u, bad)) => {
            c.udp_sockets = u;
            unavailable.extend(netlink::undecoded("UDP sockets", bad));
        }
        Err(e) => {
            unavailable.push(format!("UDP sockets (sock_diag): {e} (using /proc/net/udp)"));
            for f in ["/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"] {
                if let Ok(t) = read(f) {
                    c.udp_sockets.extend(parse::proc_net_udp(&t));
                }
            }
        }
    }
    let inodes: HashSet<u64> =
        c.listeners.iter().filter_map(|l| l.inode).chain(c.udp_sockets.iter().filter_map(|u| u.inode)).collect();
    if !inodes.is_empty() {
        let owners = crate::host::sockets::owners(&inodes);
        let owner = |ino: Option<u64>| ino.and_then(|i| owners.get(&i)).cloned().unwrap_or_default();
        for l in &mut c.listeners {
            l.process = owner(l.inode);
        }
        for u in &mut c.udp_sockets {
            u.process = owner(u.inode);
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

    match rps_masks(is_self) {
        Ok(r) => c.rps = r.into_iter().filter(|q| q.dev != "lo").collect(),
        Err(e) => unavailable.push(format!("rps_cpus: {e}")),
    }

    let tuns: Vec<String> = links.iter().filter(|d| d.kind == "tun").map(|d| d.name.clone()).collect();
    if !tuns.is_empty() {
        c.tun_readers = crate::host::sockets::tun_readers().into_iter().filter(|r| tuns.contains(&r.dev)).collect();
    }
    match ethtool::Ethtool::open() {
        Ok(et) => {
            for d in links.iter().filter(|d| d.name != "lo").take(MAX_ETHTOOL_DEVICES) {
                match et.ring(&d.name) {
                    Ok(r) => c.rings.extend(r),
                    Err(e) => unavailable.push(format!("ring sizes of {} (ethtool): {e}", d.name)),
                }
            }
        }
        Err(e) => unavailable.push(format!("ring sizes (ethtool): socket: {e}")),
    }

    match netlink::drop_routes() {
        Ok((r, bad)) => {
            c.drop_routes = r;
            unavailable.extend(netlink::undecoded("routes", bad));
        }
        Err(e) => unavailable.push(format!("routes (rtnetlink): {e}")),
    }
    match netlink::failed_neighbours(&names) {
        Ok((n, bad)) => {
            c.failed_neighbors = n;
            unavailable.extend(netlink::undecoded("neighbours", bad));
        }
        Err(e) => unavailable.push(format!("neighbours (rtnetlink): {e}")),
    }
    c.unavailable = unavailable;
    c
}

/// Counters of one namespace.
pub(crate) fn snapshot(ns: &NetnsRef) -> NetnsSnapshot {
    let (inode, label, is_self) = (ns.inode, ns.label(), ns.is_self);
    let l = label.clone();
    let mut s = netns::run_in(ns, move || Ok(snapshot_here(inode, l, is_self))).unwrap_or_else(|e| NetnsSnapshot {
        netns: NetnsId { inode, cookie: 0 },
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
        netns: NetnsId { inode, cookie: 0 },
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
