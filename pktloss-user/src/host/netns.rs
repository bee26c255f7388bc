//! Network namespaces: find them by inode and run code inside one (counters, device names).
//!
//! A drop event carries the inode of its netns (`net->ns.inum`). To read that namespace's
//! counters and device names we need a handle on it: a bind mount under `/run/netns` (what
//! `ip netns add` makes) or the `/proc/PID/ns/net` link of any process living in it.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow};
use serde::{Deserialize, Serialize};

/// What a namespace's counters were read under: its `ip netns` name, our own namespace, or
/// neither. Files and JSON hold it as one string: the name, "host", or "netns:INODE".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub(crate) enum NetnsLabel {
    /// Its `/run/netns` name.
    IpNetns(String),
    /// The namespace pktloss runs in.
    Host,
    /// No name: the inode.
    Inode(u32),
}

impl Default for NetnsLabel {
    fn default() -> Self {
        Self::IpNetns(String::new())
    }
}

impl NetnsLabel {
    /// Its `ip netns` name, if it has one.
    pub(crate) fn ip_netns(&self) -> Option<&str> {
        match self {
            Self::IpNetns(n) if !n.is_empty() => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for NetnsLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IpNetns(n) => f.write_str(n),
            Self::Host => f.write_str("host"),
            Self::Inode(i) => write!(f, "netns:{i}"),
        }
    }
}

/// The string form, as files written by any pktloss hold it.
impl From<String> for NetnsLabel {
    fn from(s: String) -> Self {
        if s == "host" {
            return Self::Host;
        }
        match s.strip_prefix("netns:").and_then(|i| i.parse().ok()) {
            Some(inode) => Self::Inode(inode),
            None => Self::IpNetns(s),
        }
    }
}

impl From<&str> for NetnsLabel {
    fn from(s: &str) -> Self {
        s.to_owned().into()
    }
}

impl From<NetnsLabel> for String {
    fn from(l: NetnsLabel) -> Self {
        l.to_string()
    }
}

/// A network namespace we can enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetnsRef {
    /// Inode number, as in the events.
    pub inode: u32,
    /// Path of a file that refers to it (`/run/netns/NAME` or `/proc/PID/ns/net`).
    pub path: PathBuf,
    /// Name from `/run/netns`, if it has one.
    pub name: Option<String>,
    /// True for the namespace pktloss itself runs in.
    pub is_self: bool,
}

impl NetnsRef {
    /// What its counters are read under: the `ip netns` name, else [`NetnsLabel::Host`] for our
    /// own, else the inode.
    pub(crate) fn label(&self) -> NetnsLabel {
        match (&self.name, self.is_self) {
            (Some(n), _) => NetnsLabel::IpNetns(n.clone()),
            (None, true) => NetnsLabel::Host,
            (None, false) => NetnsLabel::Inode(self.inode),
        }
    }

    /// The process whose `/proc/PID/ns/net` refers to it (0 for a `/run/netns` name or our own).
    pub(crate) fn pid(&self) -> u32 {
        self.path
            .strip_prefix("/proc")
            .ok()
            .and_then(|p| p.components().next())
            .and_then(|c| c.as_os_str().to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Inode of the netns this process runs in.
pub(crate) fn self_inode() -> Result<u32> {
    inode_of(Path::new("/proc/self/ns/net"))
}

pub(crate) fn inode_of(path: &Path) -> Result<u32> {
    let md = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    u32::try_from(md.ino()).map_err(|_| anyhow!("netns inode of {} does not fit u32", path.display()))
}

/// Every network namespace reachable from `/run/netns` and `/proc/*/ns/net`, by inode.
pub(crate) fn list() -> BTreeMap<u32, NetnsRef> {
    let mut out = BTreeMap::new();
    let me = self_inode().unwrap_or(0);
    if let Ok(dir) = fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let path = e.path();
            if let Ok(inode) = inode_of(&path) {
                let name = e.file_name().to_string_lossy().into_owned();
                out.entry(inode).or_insert(NetnsRef { inode, path, name: Some(name), is_self: inode == me });
            }
        }
    }
    if me != 0 {
        out.entry(me).or_insert(NetnsRef {
            inode: me,
            path: PathBuf::from("/proc/self/ns/net"),
            name: None,
            is_self: true,
        });
    }
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let fname = e.file_name();
            let Some(pid) = fname.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
            if let Ok(inode) = inode_of(&path) {
                out.entry(inode).or_insert(NetnsRef { inode, path, name: None, is_self: inode == me });
            }
        }
    }
    out
}

/// Run `f` on a thread that has joined the namespace `ns`; the caller's thread is untouched.
///
/// Inside `f`, `/proc/thread-self/net/*` and sockets belong to `ns`. The thread is one of
/// [`workers`]'s, which enters `ns` for this call only.
pub(crate) fn run_in<T, F>(ns: &NetnsRef, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = ns.path.clone();
    let is_self = ns.is_self;
    workers::run(move |own| -> Result<T> {
        if is_self {
            workers::enter(own).context("setns back to our own namespace")?;
        } else {
            let file = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
            workers::enter(&file).with_context(|| format!("setns {}", path.display()))?;
        }
        f()
    })?
}

/// The kernel's cookies of the namespaces `refs` (`net->net_cookie`, what the programs give
/// flows as `netns_cookie`: unique for the boot, never reused as inodes are), by inode. Read on
/// one thread that enters each in turn and asks a socket made there (`SO_NETNS_COOKIE`, 5.14+).
/// `None` when the kernel cannot say (before 5.14) or the namespaces cannot be entered (no
/// `CAP_SYS_ADMIN`). A reference whose path now leads to another namespace (deleted and its
/// inode given again) gets no cookie.
pub(crate) fn cookies(refs: Vec<NetnsRef>) -> Option<BTreeMap<u32, u64>> {
    workers::run(move |own| {
        // Our own first: the thread leaves it below. It also tells whether the kernel can say.
        workers::enter(own).ok()?;
        let mut out = BTreeMap::new();
        let own = thread_cookie()?;
        for r in refs.iter().filter(|r| r.is_self) {
            out.insert(r.inode, own);
        }
        for r in refs.iter().filter(|r| !r.is_self) {
            let Ok(file) = fs::File::open(&r.path) else { continue };
            if file.metadata().ok().map(|m| m.ino()) != Some(u64::from(r.inode)) {
                continue;
            }
            match workers::enter(&file) {
                Ok(()) => {}
                Err(nix::errno::Errno::EPERM) => return None,
                Err(_) => continue,
            }
            if let Some(c) = thread_cookie() {
                out.insert(r.inode, c);
            }
        }
        Some(out)
    })
    .ok()
    .flatten()
}

/// End the threads kept for entering namespaces (see [`workers::retire`]): call after dropping
/// capabilities, which each thread keeps from its making.
pub(crate) fn retire_workers() {
    workers::retire();
}

/// Threads kept for entering namespaces. `serve` reads every namespace with drops each few
/// seconds; a new thread per read started one per namespace per read (measured with
/// `cargo xtask bench-serve --busy-netns 500`: 65 more tasks a second than the host's own,
/// `processes` in /proc/stat), so a thread that has done its read waits for the next instead
/// of ending. Each call enters the namespace it needs first and the thread goes back to ours
/// after it; as many threads are made as calls run at once, and a few are kept idle.
mod workers {
    use std::{
        fs,
        os::fd::AsFd,
        sync::{
            Mutex,
            atomic::{AtomicU64, Ordering},
            mpsc,
        },
    };

    use anyhow::{Result, anyhow};

    /// A call, given our own namespace to go back to.
    type Job = Box<dyn FnOnce(&fs::File) + Send>;

    /// Idle workers beyond this many end (the busiest caller, `serve`, reads on up to three
    /// threads at once: the scrape, the namespace watch and the device names).
    const KEEP: usize = 4;

    /// A worker: where to send it calls, and the generation it was made in.
    type Worker = (mpsc::Sender<Job>, u64);

    static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

    /// Workers made before the last [`retire`] are not kept.
    static GENERATION: AtomicU64 = AtomicU64::new(0);

    /// End every kept worker: each thread keeps the capabilities it was made with, so after the
    /// process drops some (`serve`), the workers made before would keep them. A worker busy now
    /// ends after its call.
    pub(super) fn retire() {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Join the namespace of `ns` (an open `/proc/.../ns/net` or `/run/netns` file).
    pub(super) fn enter(ns: &impl AsFd) -> nix::Result<()> {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
    }

    /// Run `f` on an idle worker, or a new one when none is idle.
    pub(super) fn run<T: Send + 'static>(f: impl FnOnce(&fs::File) -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |own| {
            // The caller waits for it; it is gone only if it panicked.
            tx.send(f(own)).ok();
        });
        let idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let worker = match idle {
            Some((w, generation)) => match w.send(job) {
                Ok(()) => (w, generation),
                Err(mpsc::SendError(job)) => spawn(job)?,
            },
            None => spawn(job)?,
        };
        let out = rx.recv().map_err(|_| anyhow!("netns worker thread panicked"))?;
        let mut idle = IDLE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < KEEP && worker.1 == GENERATION.load(Ordering::SeqCst) {
            idle.push(worker);
        }
        Ok(out)
    }

    /// A new worker, running `first` before it waits for more.
    fn spawn(first: Job) -> Result<Worker> {
        let generation = GENERATION.load(Ordering::SeqCst);
        // The process's namespace, which the main thread never leaves.
        let own = fs::File::open("/proc/self/ns/net").map_err(|e| anyhow!("open /proc/self/ns/net: {e}"))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pktloss-netns".into())
            .spawn(move || {
                let mut job = first;
                loop {
                    job(&own);
                    // Back home before waiting: an idle thread inside a namespace would keep
                    // it alive after its last process and `ip netns del` (and its devices).
                    if enter(&own).is_err() {
                        return;
                    }
                    match rx.recv() {
                        Ok(next) => job = next,
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| anyhow!("netns worker thread: {e}"))?;
        Ok((tx, generation))
    }
}

/// The cookie of the calling thread's namespace, from a socket made in it.
pub(crate) fn thread_cookie() -> Option<u64> {
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: a valid socket, and a buffer of the length given.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    (rc == 0 && cookie != 0).then_some(cookie)
}

/// Name of device `ifindex` in namespace `ns` (`if_indextoname` inside it).
pub(crate) fn ifname_in(ns: &NetnsRef, ifindex: u32) -> Option<String> {
    run_in(ns, move || Ok(ifname(ifindex))).ok().flatten()
}

/// Name of device `ifindex` in the calling thread's namespace.
pub(crate) fn ifname(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    nix::net::if_::if_indextoname(ifindex).ok().map(|s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_listed_and_enterable() {
        let me = self_inode().expect("own netns inode");
        let all = list();
        let ns = all.get(&me).expect("own netns listed");
        assert!(ns.is_self);
        let inside = run_in(ns, || inode_of(Path::new("/proc/thread-self/ns/net"))).expect("run_in");
        assert_eq!(inside, me);
        // Loopback is ifindex 1 in every namespace.
        assert_eq!(ifname_in(ns, 1).as_deref(), Some("lo"));
    }

    #[test]
    fn own_namespace_has_a_cookie_where_the_kernel_gives_one() {
        let me = self_inode().expect("own netns inode");
        let own: Vec<NetnsRef> = list().into_values().filter(|r| r.is_self).collect();
        // SO_NETNS_COOKIE is 5.14+: an older kernel gives none, never a wrong one.
        if let Some(c) = cookies(own).and_then(|c| c.get(&me).copied()) {
            assert_eq!(Some(c), thread_cookie(), "the same namespace, the same cookie");
        }
    }

    /// Reads in another namespace run on kept threads, not a new one per read, and each goes
    /// back to our namespace after its read, so none keeps a deleted namespace alive. Needs
    /// root; creates and deletes a namespace.
    #[test]
    fn workers_are_kept_and_go_back_home() {
        use crate::host::counters::gather::run_tool;
        let root = nix::unistd::Uid::effective().is_root() && run_tool("ip", &["-V"]).is_ok();
        if !crate::testdata::available("workers_are_kept_and_go_back_home", "root and iproute2", root) {
            return;
        }
        let me = self_inode().expect("own netns inode");
        let name = format!("pktl-ut-pool-{}", std::process::id());
        run_tool("ip", &["netns", "add", &name]).expect("ip netns add");
        let result = std::panic::catch_unwind(|| {
            let path = PathBuf::from(format!("/run/netns/{name}"));
            let inode = inode_of(&path).expect("stat");
            let ns = NetnsRef { inode, path, name: Some(name.clone()), is_self: false };
            let mut tids = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let (tid, inside) = run_in(&ns, || {
                    Ok((nix::unistd::gettid().as_raw(), inode_of(Path::new("/proc/thread-self/ns/net"))?))
                })
                .expect("run_in");
                assert_eq!(inside, inode);
                tids.insert(tid);
            }
            // One thread, or a few while other tests read at the same time; never one per read.
            assert!(tids.len() <= 3, "20 reads on {} threads", tids.len());
            let away = || -> Vec<i32> {
                tids.iter()
                    .copied()
                    .filter(|t| inode_of(Path::new(&format!("/proc/self/task/{t}/ns/net"))).is_ok_and(|i| i != me))
                    .collect()
            };
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !away().is_empty() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert_eq!(away(), Vec::<i32>::new(), "workers left in the namespace");
        });
        run_tool("ip", &["netns", "del", &name]).expect("ip netns del");
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
