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

/// Run `f` on a new thread that has joined the namespace `ns`; the caller's thread is untouched.
///
/// Inside `f`, `/proc/thread-self/net/*` and sockets belong to `ns`.
pub(crate) fn run_in<T, F>(ns: &NetnsRef, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = ns.path.clone();
    let is_self = ns.is_self;
    std::thread::spawn(move || -> Result<T> {
        if !is_self {
            let file = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns {}", path.display()))?;
        }
        f()
    })
    .join()
    .map_err(|_| anyhow!("netns worker thread panicked"))?
}

/// The kernel's cookies of the namespaces `refs` (`net->net_cookie`, what the programs give
/// flows as `netns_cookie`: unique for the boot, never reused as inodes are), by inode. Read on
/// one thread that enters each in turn and asks a socket made there (`SO_NETNS_COOKIE`, 5.14+).
/// `None` when the kernel cannot say (before 5.14) or the namespaces cannot be entered (no
/// `CAP_SYS_ADMIN`). A reference whose path now leads to another namespace (deleted and its
/// inode given again) gets no cookie.
pub(crate) fn cookies(refs: Vec<NetnsRef>) -> Option<BTreeMap<u32, u64>> {
    std::thread::spawn(move || {
        let mut out = BTreeMap::new();
        // Our own first: the thread leaves it below. It also tells whether the kernel can say.
        let own = thread_cookie()?;
        for r in refs.iter().filter(|r| r.is_self) {
            out.insert(r.inode, own);
        }
        for r in refs.iter().filter(|r| !r.is_self) {
            let Ok(file) = fs::File::open(&r.path) else { continue };
            if file.metadata().ok().map(|m| m.ino()) != Some(u64::from(r.inode)) {
                continue;
            }
            match nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET) {
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
    .join()
    .ok()
    .flatten()
}

/// The cookie of the calling thread's namespace, from a socket made in it.
fn thread_cookie() -> Option<u64> {
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
}
