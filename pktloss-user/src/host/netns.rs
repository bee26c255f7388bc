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
    /// A short label: the `ip netns` name, "host" for our own, or "netns:INODE".
    pub(crate) fn label(&self) -> String {
        match (&self.name, self.is_self) {
            (Some(n), _) => n.clone(),
            (None, true) => "host".to_owned(),
            (None, false) => format!("netns:{}", self.inode),
        }
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

/// `SO_NETNS_COOKIE` (5.14+; not in the libc crate for every target).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's namespace (`net->net_cookie`, as the programs read it),
/// from `SO_NETNS_COOKIE` on a new socket; `None` where the kernel cannot say (before 5.14).
pub(crate) fn own_cookie() -> Option<u64> {
    // SAFETY: plain syscalls on a socket this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let mut cookie = 0u64;
        let mut len = size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE, (&raw mut cookie).cast(), &raw mut len);
        libc::close(fd);
        (rc == 0 && len as usize == size_of::<u64>()).then_some(cookie)
    }
}

/// The cookies of namespaces (inode -> cookie), read on one thread that joins each in turn
/// (one thread, not one per namespace: hundreds are read in a few milliseconds). A namespace
/// that could not be entered, or whose inode changed under its path, is left out; so are all
/// where the kernel has no `SO_NETNS_COOKIE`.
pub(crate) fn cookies(mut refs: Vec<NetnsRef>) -> BTreeMap<u32, u64> {
    // Our own first, while the thread is still in it.
    refs.sort_by_key(|r| !r.is_self);
    let worker = std::thread::spawn(move || {
        let mut out = BTreeMap::new();
        for r in refs {
            if !r.is_self {
                let Ok(file) = fs::File::open(&r.path) else { continue };
                if nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                    continue;
                }
            }
            if inode_of(Path::new("/proc/thread-self/ns/net")).ok() != Some(r.inode) {
                continue;
            }
            match own_cookie() {
                Some(c) => {
                    out.insert(r.inode, c);
                }
                None => break,
            }
        }
        out
    });
    worker.join().unwrap_or_default()
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

    /// The cookie read by entering a namespace is the one of the namespace itself (5.14+).
    #[test]
    fn cookies_of_namespaces() {
        let me = self_inode().expect("own netns inode");
        let Some(own) = own_cookie() else { return };
        let all = list();
        let ns = all.get(&me).expect("own netns listed").clone();
        assert_eq!(cookies(vec![ns]).get(&me), Some(&own));
    }
}
