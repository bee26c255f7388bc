//! Owners of sockets: the process holding a socket open, by the socket's inode number, from
//! `/proc/*/fd` (what `ss -p` reads), cached and bounded.
use std::{
    collections::HashMap,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Most sockets remembered; past it the cache starts over.
const MAX_SOCKETS: usize = 65_536;
/// How often the processes' descriptors are listed again for a socket not known.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Socket inode -> (pid, comm) of a process holding it.
#[derive(Default)]
pub(crate) struct SocketOwners {
    known: HashMap<u64, (u32, String)>,
    scanned: Option<Instant>,
}

impl SocketOwners {
    /// The owner of socket `ino`, listing descriptors again (at most once a second) when it is
    /// not known. A socket closed before that is not found.
    pub(crate) fn get(&mut self, ino: u64) -> Option<(u32, String)> {
        if ino == 0 {
            return None;
        }
        if !self.known.contains_key(&ino) && self.scanned.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.scan();
        }
        self.known.get(&ino).cloned()
    }

    fn scan(&mut self) {
        self.scanned = Some(Instant::now());
        if self.known.len() >= MAX_SOCKETS {
            self.known.clear();
        }
        let me = std::process::id();
        let Ok(procs) = fs::read_dir("/proc") else { return };
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(fds) = fs::read_dir(p.path().join("fd")) else { continue };
            let mut comm = None;
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else { continue };
                let Some(ino) = socket_inode(&target) else { continue };
                let comm = comm.get_or_insert_with(|| {
                    fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm"))
                        .map(|c| c.trim_end().to_owned())
                        .unwrap_or_default()
                });
                self.known.entry(ino).or_insert_with(|| (pid, comm.clone()));
            }
        }
    }
}

/// The owners of these sockets, as `ss -p` names them: `comm[pid]`, several joined by `,`,
/// from one walk of `/proc/*/fd` (sockets of no process, e.g. closed meanwhile, are absent).
pub(crate) fn owners(inodes: &std::collections::HashSet<u64>) -> HashMap<u64, String> {
    let mut out: HashMap<u64, Vec<String>> = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else { return HashMap::new() };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else { continue };
        let mut comm = None;
        for fd in fds.flatten() {
            let Some(ino) = fs::read_link(fd.path()).ok().and_then(|t| socket_inode(&t)) else { continue };
            if !inodes.contains(&ino) {
                continue;
            }
            let comm = comm.get_or_insert_with(|| {
                fs::read_to_string(p.path().join("comm")).map(|c| c.trim_end().to_owned()).unwrap_or_default()
            });
            let who = format!("{comm}[{pid}]");
            let list = out.entry(ino).or_default();
            if !list.contains(&who) {
                list.push(who);
            }
        }
    }
    out.into_iter().map(|(k, v)| (k, v.join(","))).collect()
}

/// A process holding a TUN/TAP device open: the one that reads what the kernel sends to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TunReader {
    pub dev: String,
    pub pid: u32,
    pub comm: String,
}

/// The processes holding a TUN/TAP device open, by the device's name (`iff:` in the fdinfo of
/// a `/dev/net/tun` descriptor). A name is a namespace's: the caller keeps the names of its own
/// namespace's devices.
pub(crate) fn tun_readers() -> Vec<TunReader> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).ok().is_none_or(|t| t != Path::new("/dev/net/tun")) {
                continue;
            }
            let info = fs::read_to_string(p.path().join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let Some(dev) = info.lines().find_map(|l| l.strip_prefix("iff:")).map(str::trim) else { continue };
            if out.iter().any(|r: &TunReader| r.dev == dev && r.pid == pid) {
                continue;
            }
            let comm = fs::read_to_string(p.path().join("comm")).map(|c| c.trim_end().to_owned()).unwrap_or_default();
            out.push(TunReader { dev: dev.to_owned(), pid, comm });
        }
    }
    out
}

/// The inode of a descriptor's link target `socket:[12345]`.
fn socket_inode(target: &Path) -> Option<u64> {
    target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode(Path::new("socket:[4026]")), Some(4026));
        assert_eq!(socket_inode(Path::new("pipe:[4026]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }
}
