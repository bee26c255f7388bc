//! Names of namespaces: the `ip netns` name, and the pod, container or systemd unit of the
//! processes living in each, read from their cgroup paths (Docker, containerd, CRI-O, Podman,
//! Kubernetes pods, systemd services) and the runtimes' own local files, cached and bounded.
use std::{
    cell::OnceCell,
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    host::netns,
    model::{Container, NamespaceInfo, NetnsId, Pod},
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
        let found = [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("nerdctl-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ]
        .iter()
        .find_map(|(prefix, rt)| scoped(prefix).map(|id| (*rt, id)))
        .or_else(|| {
            // Podman's cgroupfs manager: /libpod_parent/libpod-<id> (no `.scope`).
            p.strip_prefix("libpod-").and_then(hex_id).map(|id| ("podman", id))
        })
        .or_else(|| {
            // cgroupfs drivers: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>, /default/<id>.
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

/// Where the runtimes keep the files that name their containers: the real paths, or a
/// directory made by a test.
#[derive(Clone, Debug)]
pub(crate) struct Roots {
    /// Docker: `<docker>/<id>/config.v2.json`.
    pub docker: PathBuf,
    /// containers/storage graph and run roots (Podman, CRI-O, Buildah): each holds
    /// `<driver>-containers/containers.json` (ids and names) and, for a container,
    /// `<driver>-containers/<id>/userdata/config.json` (its OCI spec: CRI-O's annotations).
    pub storage: Vec<PathBuf>,
    /// containerd's tasks: `<containerd>/<namespace>/<id>/config.json` (its OCI spec, with the
    /// CRI's or nerdctl's annotations).
    pub containerd: PathBuf,
    /// The kubelet's `/var/log/pods` and `/var/log/containers`.
    pub kubelet_pods: PathBuf,
    pub kubelet_containers: PathBuf,
}

/// Most entries listed in one runtime directory.
const MAX_LISTED: usize = 10_000;
/// Most bytes of a runtime's file read.
const MAX_FILE: u64 = 16 << 20;

impl Roots {
    /// This host's: the default stores, the one `/etc/containers/storage.conf` names, and the
    /// rootless stores of the users under `/home` and of root.
    pub(crate) fn host() -> Self {
        let mut storage: Vec<PathBuf> = vec!["/var/lib/containers/storage".into(), "/run/containers/storage".into()];
        if let Ok(conf) = fs::read_to_string("/etc/containers/storage.conf") {
            for line in conf.lines() {
                let Some((k, v)) = line.split_once('=') else { continue };
                if matches!(k.trim(), "graphroot" | "runroot") {
                    let v = v.trim().trim_matches('"');
                    if v.starts_with('/') {
                        storage.push(v.into());
                    }
                }
            }
        }
        let homes = fs::read_dir("/home").into_iter().flatten().flatten().take(256).map(|e| e.path());
        for home in homes.chain([PathBuf::from("/root")]) {
            let s = home.join(".local/share/containers/storage");
            if s.is_dir() {
                storage.push(s);
            }
        }
        storage.dedup();
        Self {
            docker: "/var/lib/docker/containers".into(),
            storage,
            containerd: "/run/containerd/io.containerd.runtime.v2.task".into(),
            kubelet_pods: "/var/log/pods".into(),
            kubelet_containers: "/var/log/containers".into(),
        }
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    use std::io::Read as _;
    let mut text = String::new();
    fs::File::open(path).ok()?.take(MAX_FILE).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The entry of `dir` whose name starts with the short id `short`.
fn entry_for(dir: &Path, short: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .take(MAX_LISTED)
        .find(|e| e.file_name().to_str().is_some_and(|f| f.starts_with(short) && hex_id(f).is_some()))
        .map(|e| e.path())
}

/// What a runtime's files say of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Named {
    /// The runtime whose files named it (for a cgroup path that did not say).
    pub runtime: &'static str,
    pub name: String,
    /// Its Kubernetes pod: (namespace, name, uid; the uid empty when not given).
    pub pod: Option<(String, String, String)>,
}

/// Names found in the local files runtimes keep, read by root without any socket or credential
/// (no runtime is run or asked), once per scan.
struct LocalNames {
    roots: Roots,
    /// Pod UID -> (namespace, name), from `/var/log/pods/<namespace>_<name>_<uid>`.
    pods: HashMap<String, (String, String)>,
    /// Short container id -> name, from `/var/log/containers/<pod>_<ns>_<name>-<id>.log`.
    k8s_containers: HashMap<String, String>,
    /// Short container id -> name, from containers/storage's `containers.json` (Podman's
    /// names), read when first asked.
    storage_names: OnceCell<HashMap<String, String>>,
}

impl LocalNames {
    fn read(roots: Roots) -> Self {
        let mut n =
            Self { roots, pods: HashMap::new(), k8s_containers: HashMap::new(), storage_names: OnceCell::new() };
        if let Ok(dir) = fs::read_dir(&n.roots.kubelet_pods) {
            for e in dir.flatten().take(MAX_LISTED) {
                let f = e.file_name().to_string_lossy().into_owned();
                let mut it = f.splitn(3, '_');
                if let (Some(ns), Some(name), Some(uid)) = (it.next(), it.next(), it.next()) {
                    n.pods.insert(uid.to_owned(), (ns.to_owned(), name.to_owned()));
                }
            }
        }
        if let Ok(dir) = fs::read_dir(&n.roots.kubelet_containers) {
            for e in dir.flatten().take(MAX_LISTED) {
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

    /// A container's name (and pod) from the files of its runtime; for one whose cgroup path
    /// did not say the runtime ("container"), from whichever runtime knows its id.
    pub(crate) fn lookup(&self, runtime: &str, short: &str) -> Option<Named> {
        let named = |runtime: &'static str, name: Option<String>| {
            name.filter(|n| !n.is_empty()).map(|name| Named { runtime, name, pod: None })
        };
        let found = match runtime {
            "docker" => named("docker", self.docker_name(short)),
            "podman" => named("podman", self.storage_name(short)),
            "containerd" => self.containerd(short),
            "cri-o" => self.crio(short),
            _ => self
                .containerd(short)
                .or_else(|| self.crio(short))
                .or_else(|| named("podman", self.storage_name(short)))
                .or_else(|| named("docker", self.docker_name(short))),
        };
        found.or_else(|| {
            let rt = match runtime {
                "docker" => "docker",
                "podman" => "podman",
                "containerd" => "containerd",
                "cri-o" => "cri-o",
                _ => "container",
            };
            named(rt, self.k8s_containers.get(short).cloned())
        })
    }

    /// A Docker container's name from its `config.v2.json` (`"Name":"/web"`).
    fn docker_name(&self, short: &str) -> Option<String> {
        let v = read_json(&entry_for(&self.roots.docker, short)?.join("config.v2.json"))?;
        Some(v.get("Name")?.as_str()?.trim_start_matches('/').to_owned())
    }

    /// A Podman (or Buildah) container's name from containers/storage's `containers.json`:
    /// `[{"id":"<64 hex>","names":["web"],...}]`.
    fn storage_name(&self, short: &str) -> Option<String> {
        let all = self.storage_names.get_or_init(|| {
            let mut out = HashMap::new();
            for root in &self.roots.storage {
                let Ok(dir) = fs::read_dir(root) else { continue };
                for e in dir.flatten().take(64) {
                    if !e.file_name().to_string_lossy().ends_with("-containers") {
                        continue;
                    }
                    let Some(serde_json::Value::Array(list)) = read_json(&e.path().join("containers.json")) else {
                        continue;
                    };
                    for c in list.iter().take(MAX_LISTED) {
                        let id = c.get("id").and_then(|v| v.as_str()).and_then(hex_id);
                        let name = c.get("names").and_then(|v| v.get(0)).and_then(|v| v.as_str());
                        if let (Some(id), Some(name)) = (id, name) {
                            out.entry(id[..12].to_owned()).or_insert_with(|| name.to_owned());
                        }
                    }
                }
            }
            out
        });
        all.get(short).cloned()
    }

    /// A containerd task's OCI spec annotations: the CRI's
    /// (`io.kubernetes.cri.container-name`, `sandbox-name`, `sandbox-namespace`, `sandbox-uid`)
    /// or nerdctl's (`nerdctl/name`).
    fn containerd(&self, short: &str) -> Option<Named> {
        let spaces = fs::read_dir(&self.roots.containerd).ok()?;
        let task = spaces.flatten().take(64).find_map(|ns| entry_for(&ns.path(), short))?;
        let v = read_json(&task.join("config.json"))?;
        let a = |k: &str| v.get("annotations")?.get(k)?.as_str().map(str::to_owned);
        let pod = match (a("io.kubernetes.cri.sandbox-namespace"), a("io.kubernetes.cri.sandbox-name")) {
            (Some(ns), Some(name)) => Some((ns, name, a("io.kubernetes.cri.sandbox-uid").unwrap_or_default())),
            _ => None,
        };
        let name = a("io.kubernetes.cri.container-name").or_else(|| a("nerdctl/name")).unwrap_or_default();
        (pod.is_some() || !name.is_empty()).then_some(Named { runtime: "containerd", name, pod })
    }

    /// A CRI-O container's OCI spec annotations (`io.kubernetes.container.name`,
    /// `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`), in
    /// `<driver>-containers/<id>/userdata/config.json` of its storage.
    fn crio(&self, short: &str) -> Option<Named> {
        let spec = self.roots.storage.iter().find_map(|root| {
            let dirs = fs::read_dir(root).ok()?;
            dirs.flatten()
                .take(64)
                .filter(|e| e.file_name().to_string_lossy().ends_with("-containers"))
                .find_map(|d| read_json(&entry_for(&d.path(), short)?.join("userdata/config.json")))
        })?;
        let a = |k: &str| spec.get("annotations")?.get(k)?.as_str().map(str::to_owned);
        let pod = match (a("io.kubernetes.pod.namespace"), a("io.kubernetes.pod.name")) {
            (Some(ns), Some(name)) => Some((ns, name, a("io.kubernetes.pod.uid").unwrap_or_default())),
            _ => None,
        };
        // The pod's infra container is "POD".
        let name = a("io.kubernetes.container.name").filter(|n| n != "POD").unwrap_or_default();
        (pod.is_some() || !name.is_empty()).then_some(Named { runtime: "cri-o", name, pod })
    }
}

/// Namespaces by inode and cookie, named from `/run/netns` and their processes' cgroups.
///
/// What was read of a namespace is kept once read, also after it is gone (its drops still
/// are), bound to the namespace's cookie: a later namespace given the same inode (inodes are
/// reused, cookies never) does not inherit the names of the one before. Where the kernel gives
/// no cookie (before 5.14 to user space, or without `CAP_SYS_ADMIN` to enter the namespaces)
/// the names are bound to the inode alone, the newest reading winning.
pub(crate) struct NamespaceNames {
    /// By inode: the namespaces that had it, oldest first (`NamespaceInfo::netns`'s cookie tells
    /// them apart; 0 when not known).
    known: BTreeMap<u32, Vec<NamespaceInfo>>,
    scanned: Option<Instant>,
    /// Namespaces asked for and not found by the scan after it: asked again only every
    /// [`RESCAN_EVERY`] (one that was never asked is scanned for at once, a short-lived one
    /// may be gone by then).
    missed: BTreeSet<(u32, u64)>,
    roots: Roots,
}

impl Default for NamespaceNames {
    fn default() -> Self {
        Self::with_roots(Roots::host())
    }
}

/// Most namespaces kept per inode (those before are forgotten, oldest first).
const MAX_PER_INODE: usize = 8;
/// Soonest a scan follows the one before, even for a namespace never asked for.
const RESCAN_SOONEST: Duration = Duration::from_millis(250);

impl NamespaceNames {
    /// Names read from the runtimes' files under `roots`.
    pub(crate) fn with_roots(roots: Roots) -> Self {
        Self { known: BTreeMap::new(), scanned: None, missed: BTreeSet::new(), roots }
    }

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
        list.iter().rev().find(|i| i.netns.cookie == cookie || i.netns.cookie == 0)
    }

    /// Keep `info` (its inode and cookie say which namespace), over an older reading of the
    /// same namespace.
    fn keep(&mut self, mut info: NamespaceInfo) {
        if self.known.len() >= MAX_NAMESPACES && !self.known.contains_key(&info.netns.inode) {
            self.known.clear();
        }
        info.label = info.make_label();
        let list = self.known.entry(info.netns.inode).or_default();
        list.retain(|i| i.netns.cookie != info.netns.cookie);
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
            let info = found
                .entry(inode)
                .or_insert_with(|| NamespaceInfo { netns: NetnsId { inode, cookie: 0 }, ..NamespaceInfo::default() });
            if let Some(n) = &r.name {
                info.ip_netns.clone_from(n);
            }
        }
        let local = LocalNames::read(self.roots.clone());
        let mut owners: HashMap<u32, Vec<(u32, CgroupOwner)>> = HashMap::new();
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
                let Ok(inode) = netns::inode_of(&Path::new("/proc").join(pid).join("ns/net")) else { continue };
                if inode == me {
                    continue;
                }
                let Ok(text) = fs::read_to_string(Path::new("/proc").join(pid).join("cgroup")) else { continue };
                let pid = pid.parse().unwrap_or(0);
                owners.entry(inode).or_default().push((pid, parse_cgroup(&text)));
            }
        }
        for (inode, list) in owners {
            let info = found
                .entry(inode)
                .or_insert_with(|| NamespaceInfo { netns: NetnsId { inode, cookie: 0 }, ..NamespaceInfo::default() });
            for (pid, o) in list {
                if info.pid == 0 || (o.container.is_some() && info.containers.is_empty()) {
                    // One of its processes: a container's first, where it has one.
                    info.pid = pid;
                }
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
                    if let Some(named) = local.lookup(&c.runtime, &c.id) {
                        named.runtime.clone_into(&mut c.runtime);
                        c.name = named.name;
                        // The pod named by the runtime, where the kubelet's files did not.
                        if let Some((namespace, name, uid)) = named.pod {
                            match &mut info.pod {
                                Some(p) if p.name.is_empty() => {
                                    p.namespace = namespace;
                                    p.name = name;
                                }
                                Some(_) => {}
                                None => info.pod = Some(Pod { uid, namespace, name }),
                            }
                        }
                    }
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
            found.insert(
                me,
                NamespaceInfo { netns: NetnsId { inode: me, cookie: 0 }, is_host: true, ..NamespaceInfo::default() },
            );
        }
        // Each namespace's cookie, read after its names: one deleted in between and its inode
        // given to a new one is refused below (its path leads elsewhere) or, named from its
        // processes, read again at the next scan.
        let cookies = netns::cookies(listed.into_values().filter(|r| found.contains_key(&r.inode)).collect());
        // A namespace seen before keeps its names when it is gone now (its drops still are).
        for (inode, mut info) in found {
            match cookies.as_ref().map(|c| c.get(&inode)) {
                Some(Some(c)) => info.netns.cookie = *c,
                // The kernel gives cookies but this one's could not be read: not named now.
                Some(None) => continue,
                None => {}
            }
            self.keep(info);
        }
    }
}

/// The namespaces that `name` names now (see [`NamespaceInfo::answers_to`]), read afresh:
/// an `ip netns` name, a container's, a pod's or a systemd unit's.
pub(crate) fn find(name: &str) -> Vec<NamespaceInfo> {
    let mut n = NamespaceNames::default();
    n.scan();
    n.known.into_values().filter_map(|l| l.into_iter().last()).filter(|i| i.answers_to(name)).collect()
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

    /// Podman's cgroupfs manager (`/libpod_parent/libpod-<id>`, its conmon in
    /// `/libpod_parent/conmon`), its systemd manager, rootless Podman, nerdctl.
    #[test]
    fn podman_and_nerdctl_cgroups_are_told() {
        let rt = |path: &str| parse_cgroup_path(path).container.map(|c| (c.runtime, c.id));
        let podman = Some(("podman".to_owned(), ID[..12].to_owned()));
        assert_eq!(rt(&format!("/libpod_parent/libpod-{ID}")), podman);
        assert_eq!(rt("/libpod_parent/conmon"), None);
        assert_eq!(rt(&format!("/machine.slice/libpod-{ID}.scope/container")), podman);
        assert_eq!(
            rt(&format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container")),
            podman
        );
        assert_eq!(rt(&format!("/system.slice/nerdctl-{ID}.scope")).map(|c| c.0), Some("containerd".to_owned()));
        let v1 = format!("9:name=systemd:/libpod_parent/libpod-{ID}\n4:memory:/libpod_parent/libpod-{ID}\n0::/\n");
        assert_eq!(parse_cgroup(&v1).container.map(|c| c.runtime), Some("podman".to_owned()));
    }

    /// A directory of files shaped as the runtimes write them, removed on drop.
    struct RuntimeFiles(PathBuf);

    impl RuntimeFiles {
        fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        }
        fn roots(&self) -> Roots {
            Roots {
                docker: self.0.join("docker/containers"),
                storage: vec![self.0.join("containers/storage"), self.0.join("run/containers/storage")],
                containerd: self.0.join("run/containerd/io.containerd.runtime.v2.task"),
                kubelet_pods: self.0.join("log/pods"),
                kubelet_containers: self.0.join("log/containers"),
            }
        }
    }

    impl Drop for RuntimeFiles {
        fn drop(&mut self) {
            drop(fs::remove_dir_all(&self.0));
        }
    }

    /// Names read from the runtimes' own files (no runtime run): Podman's `containers.json`
    /// (as Debian 12's Podman 4.3 writes it), containerd's task specs with the CRI's and
    /// nerdctl's annotations, CRI-O's spec annotations, Docker's `config.v2.json`; a cgroup
    /// path that does not say the runtime is named by whichever knows the id.
    #[test]
    fn runtimes_name_their_containers_from_their_local_files() {
        let files = RuntimeFiles(std::env::temp_dir().join(format!("pktloss-runtimes-{}", std::process::id())));
        let id = |c: char| c.to_string().repeat(64);
        let (podman, cri, sandbox, nerdctl, crio, docker) = (id('a'), id('b'), id('c'), id('d'), id('e'), id('f'));
        files.write(
            "containers/storage/overlay-containers/containers.json",
            &format!(
                r#"[{{"id":"{podman}","names":["pktl-uxc"],"image":"41587e8c7203","layer":"a8eb3ce87c6b","metadata":"{{\"image-name\":\"localhost/pktl:1\",\"name\":\"pktl-uxc\",\"created-at\":1796639993}}","created":"2026-12-07T10:39:53.904745702Z","flags":{{"MountLabel":"","ProcessLabel":""}}}}]"#
            ),
        );
        let spec = |annotations: &str| {
            format!(r#"{{"ociVersion":"1.1.0","process":{{"args":["/pause"]}},"annotations":{{{annotations}}}}}"#)
        };
        let k8s = "io.containerd.runtime.v2.task/k8s.io";
        files.write(
            &format!("run/containerd/{k8s}/{cri}/config.json"),
            &spec(&format!(
                r#""io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"cart","io.kubernetes.cri.image-name":"registry.example/cart:1","io.kubernetes.cri.sandbox-id":"{sandbox}","io.kubernetes.cri.sandbox-name":"cart-7f9","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"5d1c2f3a-4b5c-6d7e-8f90-123456789abc""#
            )),
        );
        files.write(
            &format!("run/containerd/{k8s}/{sandbox}/config.json"),
            &spec(&format!(
                r#""io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"{sandbox}","io.kubernetes.cri.sandbox-log-directory":"/var/log/pods/shop_cart-7f9_5d1c2f3a-4b5c-6d7e-8f90-123456789abc","io.kubernetes.cri.sandbox-name":"cart-7f9","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"5d1c2f3a-4b5c-6d7e-8f90-123456789abc""#
            )),
        );
        files.write(
            &format!("run/containerd/io.containerd.runtime.v2.task/default/{nerdctl}/config.json"),
            &spec(r#""nerdctl/name":"web","nerdctl/platform":"linux/amd64""#),
        );
        files.write(
            &format!("run/containers/storage/overlay-containers/{crio}/userdata/config.json"),
            &spec(
                r#""io.kubernetes.container.name":"api","io.kubernetes.pod.name":"api-5c6","io.kubernetes.pod.namespace":"prod","io.kubernetes.pod.uid":"0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d","io.kubernetes.cri-o.ContainerType":"container""#,
            ),
        );
        files.write(&format!("docker/containers/{docker}/config.v2.json"), r#"{"ID":"x","Name":"/db"}"#);

        let local = LocalNames::read(files.roots());
        let named = |rt: &str, full: &str| local.lookup(rt, &full[..12]);
        let pod = |ns: &str, name: &str, uid: &str| Some((ns.to_owned(), name.to_owned(), uid.to_owned()));
        assert_eq!(named("podman", &podman), Some(Named { runtime: "podman", name: "pktl-uxc".into(), pod: None }));
        assert_eq!(
            named("containerd", &cri),
            Some(Named {
                runtime: "containerd",
                name: "cart".into(),
                pod: pod("shop", "cart-7f9", "5d1c2f3a-4b5c-6d7e-8f90-123456789abc"),
            })
        );
        // The pod's sandbox (pause) container: its pod, no name of its own.
        let s = named("containerd", &sandbox).expect("sandbox");
        assert_eq!((s.name.as_str(), s.pod.map(|p| p.1)), ("", Some("cart-7f9".to_owned())));
        assert_eq!(named("containerd", &nerdctl).map(|n| n.name), Some("web".to_owned()));
        assert_eq!(
            named("cri-o", &crio),
            Some(Named {
                runtime: "cri-o",
                name: "api".into(),
                pod: pod("prod", "api-5c6", "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"),
            })
        );
        assert_eq!(named("docker", &docker).map(|n| n.name), Some("db".to_owned()));
        // A cgroupfs path that does not say: named by the runtime that knows the id.
        assert_eq!(named("container", &cri).map(|n| (n.runtime, n.name)), Some(("containerd", "cart".to_owned())));
        assert_eq!(named("container", &podman).map(|n| (n.runtime, n.name)), Some(("podman", "pktl-uxc".to_owned())));
        assert_eq!(named("container", &docker).map(|n| n.runtime), Some("docker"));
        // Unknown ids, and a runtime asked for another's id.
        assert_eq!(named("podman", &id('9')), None);
        assert_eq!(named("docker", &podman), None);
        // The kubelet's files still name what no runtime's do.
        files.write(&format!("log/containers/cart-7f9_shop_side-{}.log", id('7')), "");
        let local = LocalNames::read(files.roots());
        assert_eq!(local.lookup("containerd", &id('7')[..12]).map(|n| n.name), Some("side".to_owned()));
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
            netns: NetnsId { inode: 9, cookie },
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
        let mut i = NamespaceInfo { netns: NetnsId { inode: 7, cookie: 0 }, ..NamespaceInfo::default() };
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

    /// The `ip netns` names runtimes make up (`netns-<uuid>`, `cni-<uuid>`) say less than the
    /// container or pod in the namespace; one without either keeps it.
    #[test]
    fn made_up_netns_names_give_way_to_the_container() {
        let made_up = "netns-0f30a0c6-de26-d5c5-65ed-3727be9d65da";
        assert!(crate::model::runtime_made_netns(made_up));
        assert!(crate::model::runtime_made_netns("cni-0f30a0c6-de26-d5c5-65ed-3727be9d65da"));
        assert!(!crate::model::runtime_made_netns("netns-blue"));
        let mut i = NamespaceInfo {
            netns: NetnsId { inode: 7, cookie: 0 },
            ip_netns: made_up.into(),
            ..NamespaceInfo::default()
        };
        assert_eq!(i.make_label(), made_up);
        i.containers.push(Container { runtime: "podman".into(), id: "2f9d3bb28061".into(), name: "web".into() });
        assert_eq!(i.make_label(), "podman:web");
        i.ip_netns = "blue".into();
        assert_eq!(i.make_label(), "blue");
    }

    /// What a filter's `netns NAME` finds a namespace by.
    #[test]
    fn namespaces_answer_to_their_names() {
        let mut i = NamespaceInfo { netns: NetnsId { inode: 7, cookie: 0 }, ..NamespaceInfo::default() };
        i.containers.push(Container { runtime: "podman".into(), id: "2f9d3bb28061".into(), name: "pktl-uxc".into() });
        i.label = i.make_label();
        for yes in ["podman:pktl-uxc", "pktl-uxc", "2f9d3bb28061", "podman:2f9d3bb28061"] {
            assert!(i.answers_to(yes), "{yes}");
        }
        for no in ["docker:pktl-uxc", "pktl", "", "podman:", "host"] {
            assert!(!i.answers_to(no), "{no}");
        }
        i.pod = Some(Pod { uid: "5d1c".into(), namespace: "shop".into(), name: "cart-7f9".into() });
        i.unit = "x.service".into();
        for yes in ["pod:shop/cart-7f9", "shop/cart-7f9", "cart-7f9", "5d1c", "x.service", "pktl-uxc"] {
            assert!(i.answers_to(yes), "{yes}");
        }
        let host = NamespaceInfo {
            netns: NetnsId { inode: 1, cookie: 0 },
            is_host: true,
            label: "host".into(),
            ..NamespaceInfo::default()
        };
        assert!(host.answers_to("host"));
    }
}
