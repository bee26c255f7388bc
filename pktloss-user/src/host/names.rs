//! Names of namespaces: the `ip netns` name, and the pod, container or systemd unit of the
//! processes living in each, read from their cgroup paths (Docker, containerd, CRI-O, Podman,
//! Kubernetes pods, systemd services), cached and bounded.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    host::netns,
    model::{Container, NamespaceInfo, Pod},
};

/// Most namespaces named; past it the cache starts over.
const MAX_NAMESPACES: usize = 4096;
/// Most containers listed per namespace (the rest are counted).
pub(crate) const MAX_CONTAINERS: usize = 8;
/// How often the processes are listed again when a namespace is not known.
const RESCAN_EVERY: Duration = Duration::from_secs(2);

/// Who a cgroup path says a process belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupOwner {
    pub container: Option<Container>,
    /// Kubernetes pod UID.
    pub pod_uid: Option<String>,
    /// systemd service or scope (when no container).
    pub unit: Option<String>,
}

fn hex_id(s: &str) -> Option<&str> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// Read a `/proc/PID/cgroup` text: the owner from the most telling of its lines.
pub(crate) fn parse_cgroup(text: &str) -> CgroupOwner {
    let mut best = CgroupOwner::default();
    for line in text.lines() {
        let Some(path) = line.splitn(3, ':').nth(2) else { continue };
        let o = parse_cgroup_path(path);
        let score = |o: &CgroupOwner| {
            u8::from(o.container.is_some()) * 4 + u8::from(o.pod_uid.is_some()) * 2 + u8::from(o.unit.is_some())
        };
        if score(&o) > score(&best) {
            best = o;
        }
    }
    best
}

/// One cgroup path, e.g. `/kubepods.slice/kubepods-besteffort.slice/
/// kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`, `/system.slice/docker-<id>.scope`,
/// `/docker/<id>` (cgroupfs driver), `/system.slice/nginx.service`.
pub(crate) fn parse_cgroup_path(path: &str) -> CgroupOwner {
    let mut o = CgroupOwner::default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, p) in parts.iter().enumerate() {
        if let Some(rest) = p.strip_suffix(".slice").and_then(|s| s.rsplit_once("-pod")).map(|(_, u)| u)
            && p.starts_with("kubepods")
        {
            o.pod_uid = Some(rest.replace('_', "-"));
        } else if let Some(u) = p.strip_prefix("pod")
            && parts.first() == Some(&"kubepods")
            && u.len() >= 32
        {
            o.pod_uid = Some(u.to_owned());
        }
        let scoped = |prefix: &str| p.strip_prefix(prefix).and_then(|s| s.strip_suffix(".scope")).and_then(hex_id);
        let found =
            [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")]
                .iter()
                .find_map(|(prefix, rt)| scoped(prefix).map(|id| (*rt, id)))
                .or_else(|| {
                    // cgroupfs drivers: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /machine.slice/libpod-...
                    let id = hex_id(p)?;
                    let parent = if i > 0 { parts[i - 1] } else { "" };
                    Some((if parent == "docker" { "docker" } else { "container" }, id))
                });
        if let Some((runtime, id)) = found {
            o.container = Some(Container { runtime: runtime.to_owned(), id: id[..12].to_owned(), name: String::new() });
        }
    }
    if o.container.is_none()
        && o.pod_uid.is_none()
        && let Some(last) = parts.last()
        && match last.rsplit_once('.') {
            Some((_, "service")) => true,
            Some((name, "scope")) => !name.starts_with("session-"),
            _ => false,
        }
    {
        o.unit = Some((*last).to_owned());
    }
    o
}

/// Names found in the local files runtimes keep, read by root without any socket or credential.
#[derive(Default)]
struct LocalNames {
    /// Pod UID -> (namespace, name), from `/var/log/pods/<namespace>_<name>_<uid>`.
    pods: HashMap<String, (String, String)>,
    /// Short container id -> name, from `/var/log/containers/<pod>_<ns>_<name>-<id>.log`.
    k8s_containers: HashMap<String, String>,
}

impl LocalNames {
    fn read() -> Self {
        let mut n = Self::default();
        if let Ok(dir) = fs::read_dir("/var/log/pods") {
            for e in dir.flatten().take(10_000) {
                let f = e.file_name().to_string_lossy().into_owned();
                let mut it = f.splitn(3, '_');
                if let (Some(ns), Some(name), Some(uid)) = (it.next(), it.next(), it.next()) {
                    n.pods.insert(uid.to_owned(), (ns.to_owned(), name.to_owned()));
                }
            }
        }
        if let Ok(dir) = fs::read_dir("/var/log/containers") {
            for e in dir.flatten().take(10_000) {
                let f = e.file_name().to_string_lossy().into_owned();
                let Some(stem) = f.strip_suffix(".log") else { continue };
                let Some((head, id)) = stem.rsplit_once('-') else { continue };
                let Some(id) = hex_id(id) else { continue };
                if let Some(name) = head.rsplit('_').next() {
                    n.k8s_containers.insert(id[..12].to_owned(), name.to_owned());
                }
            }
        }
        n
    }

    /// A Docker container's name from its `config.v2.json` (`"Name":"/web"`).
    fn docker_name(short: &str) -> Option<String> {
        let dir = fs::read_dir("/var/lib/docker/containers").ok()?;
        let full =
            dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).find(|f| f.starts_with(short))?;
        let text =
            fs::read_to_string(Path::new("/var/lib/docker/containers").join(full).join("config.v2.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(v.get("Name")?.as_str()?.trim_start_matches('/').to_owned())
    }
}

/// Namespaces by inode and cookie, named from `/run/netns` and their processes' cgroups.
///
/// What was read of a namespace is kept once read, also after it is gone (its drops still
/// are), bound to the namespace's cookie: a later namespace given the same inode (inodes are
/// reused, cookies never) does not inherit the names of the one before. Where the kernel gives
/// no cookie (before 5.14 to user space, or without `CAP_SYS_ADMIN` to enter the namespaces)
/// the names are bound to the inode alone, the newest reading winning.
#[derive(Default)]
pub(crate) struct NamespaceNames {
    /// By inode: the namespaces that had it, oldest first (`NamespaceInfo::netns_cookie` tells
    /// them apart; 0 when not known).
    known: BTreeMap<u32, Vec<NamespaceInfo>>,
    scanned: Option<Instant>,
    /// Namespaces asked for and not found by the scan after it: asked again only every
    /// [`RESCAN_EVERY`] (one that was never asked is scanned for at once, a short-lived one
    /// may be gone by then).
    missed: BTreeSet<(u32, u64)>,
}

/// Most namespaces kept per inode (those before are forgotten, oldest first).
const MAX_PER_INODE: usize = 8;
/// Soonest a scan follows the one before, even for a namespace never asked for.
const RESCAN_SOONEST: Duration = Duration::from_millis(250);

impl NamespaceNames {
    /// What is known of the namespace `inode` with cookie `cookie` (0: the flow's kernel gave
    /// none), listing the processes again when it is not known yet: at once for one never
    /// asked for, else at most every couple of seconds.
    pub(crate) fn get(&mut self, inode: u32, cookie: u64) -> Option<&NamespaceInfo> {
        if inode != 0 && self.lookup(inode, cookie).is_none() {
            let since = self.scanned.map(|t| t.elapsed());
            let due = match since {
                None => true,
                Some(s) if s >= RESCAN_EVERY => true,
                Some(s) => s >= RESCAN_SOONEST && !self.missed.contains(&(inode, cookie)),
            };
            if due {
                self.scan();
                if self.lookup(inode, cookie).is_none() {
                    if self.missed.len() >= MAX_NAMESPACES {
                        self.missed.clear();
                    }
                    self.missed.insert((inode, cookie));
                }
            }
        }
        self.lookup(inode, cookie)
    }

    /// The namespace `inode` with `cookie`: the one read with that cookie, or one read without
    /// any; with cookie 0 the newest read.
    fn lookup(&self, inode: u32, cookie: u64) -> Option<&NamespaceInfo> {
        let list = self.known.get(&inode)?;
        if cookie == 0 {
            return list.last();
        }
        list.iter().rev().find(|i| i.netns_cookie == cookie || i.netns_cookie == 0)
    }

    /// Keep `info` (its inode and cookie say which namespace), over an older reading of the
    /// same namespace.
    fn keep(&mut self, mut info: NamespaceInfo) {
        if self.known.len() >= MAX_NAMESPACES && !self.known.contains_key(&info.netns) {
            self.known.clear();
        }
        info.label = info.make_label();
        let list = self.known.entry(info.netns).or_default();
        list.retain(|i| i.netns_cookie != info.netns_cookie);
        if list.len() >= MAX_PER_INODE {
            list.remove(0);
        }
        list.push(info);
    }

    /// List `/run/netns` and every process's namespace and cgroups.
    fn scan(&mut self) {
        self.scanned = Some(Instant::now());
        let me = netns::self_inode().unwrap_or(0);
        let mut found: BTreeMap<u32, NamespaceInfo> = BTreeMap::new();
        let listed = netns::list();
        for (&inode, r) in &listed {
            let info = found.entry(inode).or_insert_with(|| NamespaceInfo { netns: inode, ..NamespaceInfo::default() });
            if let Some(n) = &r.name {
                info.ip_netns.clone_from(n);
            }
        }
        let local = LocalNames::read();
        let mut owners: HashMap<u32, Vec<CgroupOwner>> = HashMap::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
                let Ok(inode) = netns::inode_of(&Path::new("/proc").join(pid).join("ns/net")) else { continue };
                if inode == me {
                    continue;
                }
                let Ok(text) = fs::read_to_string(Path::new("/proc").join(pid).join("cgroup")) else { continue };
                owners.entry(inode).or_default().push(parse_cgroup(&text));
            }
        }
        for (inode, list) in owners {
            let info = found.entry(inode).or_insert_with(|| NamespaceInfo { netns: inode, ..NamespaceInfo::default() });
            for o in list {
                if let Some(uid) = o.pod_uid
                    && info.pod.is_none()
                {
                    let (namespace, name) = local.pods.get(&uid).cloned().unwrap_or_default();
                    info.pod = Some(Pod { uid, namespace, name });
                }
                if let Some(mut c) = o.container
                    && !info.containers.iter().any(|x| x.id == c.id)
                {
                    if info.containers.len() >= MAX_CONTAINERS {
                        info.containers_omitted += 1;
                        continue;
                    }
                    c.name = match c.runtime.as_str() {
                        "docker" => LocalNames::docker_name(&c.id).unwrap_or_default(),
                        _ => local.k8s_containers.get(&c.id).cloned().unwrap_or_default(),
                    };
                    info.containers.push(c);
                }
                if let Some(u) = o.unit
                    && info.unit.is_empty()
                {
                    info.unit = u;
                }
            }
        }
        if let Some(host) = found.get_mut(&me) {
            host.is_host = true;
        } else if me != 0 {
            found.insert(me, NamespaceInfo { netns: me, is_host: true, ..NamespaceInfo::default() });
        }
        // Each namespace's cookie, read after its names: one deleted in between and its inode
        // given to a new one is refused below (its path leads elsewhere) or, named from its
        // processes, read again at the next scan.
        let cookies = netns::cookies(listed.into_values().filter(|r| found.contains_key(&r.inode)).collect());
        // A namespace seen before keeps its names when it is gone now (its drops still are).
        for (inode, mut info) in found {
            match cookies.as_ref().map(|c| c.get(&inode)) {
                Some(Some(c)) => info.netns_cookie = *c,
                // The kernel gives cookies but this one's could not be read: not named now.
                Some(None) => continue,
                None => {}
            }
            self.keep(info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    #[test]
    fn runtimes_are_told_by_their_cgroup_paths() {
        let c = |path: &str| parse_cgroup_path(path);
        let k8s = c(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5d1c_2f3a_4b5c_6d7e_8f9012345678.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(k8s.pod_uid.as_deref(), Some("5d1c-2f3a-4b5c-6d7e-8f9012345678"));
        assert_eq!(
            k8s.container.as_ref().map(|c| (c.runtime.as_str(), c.id.as_str())),
            Some(("containerd", "3f2a9c1b2d4e"))
        );
        let guaranteed =
            c(&format!("/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/crio-{ID}.scope"));
        assert_eq!(guaranteed.pod_uid.as_deref(), Some("0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"));
        assert_eq!(guaranteed.container.map(|c| c.runtime), Some("cri-o".to_owned()));
        assert_eq!(c(&format!("/system.slice/docker-{ID}.scope")).container.map(|c| c.runtime), Some("docker".into()));
        assert_eq!(c(&format!("/docker/{ID}")).container.map(|c| c.runtime), Some("docker".into()));
        assert_eq!(
            c(&format!("/machine.slice/libpod-{ID}.scope/container")).container.map(|c| c.runtime),
            Some("podman".into())
        );
        let cgroupfs = c(&format!("/kubepods/besteffort/pod5d1c2f3a-4b5c-6d7e-8f90-123456789abc/{ID}"));
        assert_eq!(cgroupfs.pod_uid.as_deref(), Some("5d1c2f3a-4b5c-6d7e-8f90-123456789abc"));
        assert!(cgroupfs.container.is_some());
        assert_eq!(c("/system.slice/nginx.service").unit.as_deref(), Some("nginx.service"));
        assert_eq!(c("/user.slice/user-0.slice/session-3.scope"), CgroupOwner::default());
        assert_eq!(c("/"), CgroupOwner::default());
        // The conmon of CRI-O and Podman is not the container.
        assert_eq!(c(&format!("/machine.slice/libpod-conmon-{ID}.scope")).container, None);
    }

    #[test]
    fn the_most_telling_line_of_a_v1_host_wins() {
        let text =
            format!("12:memory:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker.service\n0::/\n");
        let o = parse_cgroup(&text);
        assert_eq!(o.container.map(|c| c.id), Some("3f2a9c1b2d4e".to_owned()));
    }

    /// Names read for a namespace stay its own: a later namespace given the same inode (with
    /// another cookie) inherits none; a flow without a cookie gets the newest.
    #[test]
    fn names_are_bound_to_the_cookie_they_were_read_for() {
        let mut n = NamespaceNames::default();
        let info = |cookie: u64, name: &str| NamespaceInfo {
            netns: 9,
            netns_cookie: cookie,
            ip_netns: name.into(),
            ..NamespaceInfo::default()
        };
        let label = |n: &NamespaceNames, cookie: u64| n.lookup(9, cookie).map(|i| i.label.clone());
        n.keep(info(100, "a"));
        n.keep(info(200, "b"));
        assert_eq!(label(&n, 100).as_deref(), Some("a"));
        assert_eq!(label(&n, 200).as_deref(), Some("b"));
        assert_eq!(label(&n, 300), None, "a later namespace with this inode");
        assert_eq!(label(&n, 0).as_deref(), Some("b"), "no cookie: the newest");
        n.keep(info(100, "a2"));
        assert_eq!(label(&n, 100).as_deref(), Some("a2"), "read again: replaced");
        assert_eq!(n.known.get(&9).map(Vec::len), Some(2));
        for c in 1..=20 {
            n.keep(info(1000 + c, "x"));
        }
        assert_eq!(n.known.get(&9).map(Vec::len), Some(MAX_PER_INODE), "bounded per inode");
        n.keep(info(0, "inode only"));
        assert_eq!(label(&n, 300).as_deref(), Some("inode only"), "read without a cookie: by inode");
    }

    #[test]
    fn labels_say_the_most_specific_name() {
        let mut i = NamespaceInfo { netns: 7, ..NamespaceInfo::default() };
        assert_eq!(i.make_label(), "");
        i.unit = "nginx.service".into();
        assert_eq!(i.make_label(), "nginx.service");
        i.containers.push(Container { runtime: "docker".into(), id: "3f2a9c1b2d4e".into(), name: String::new() });
        assert_eq!(i.make_label(), "docker:3f2a9c1b2d4e");
        i.containers[0].name = "web".into();
        assert_eq!(i.make_label(), "docker:web");
        i.pod = Some(Pod { uid: "5d1c".into(), namespace: String::new(), name: String::new() });
        assert_eq!(i.make_label(), "pod:5d1c");
        i.pod = Some(Pod { uid: "5d1c".into(), namespace: "shop".into(), name: "cart-7f9".into() });
        assert_eq!(i.make_label(), "pod:shop/cart-7f9");
        i.ip_netns = "uxb".into();
        assert_eq!(i.make_label(), "uxb");
    }
}
