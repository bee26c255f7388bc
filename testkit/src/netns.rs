//! Network namespaces made for one test or benchmark and deleted on drop, and code run inside
//! them.
use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Result;

use crate::{cmd, sh};

/// Name of the threads that run code inside a test namespace (the `comm` of their drops).
pub const NETNS_THREAD: &str = "pktl-netns";

/// A network namespace made for one test or benchmark, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Create `pktl-<tag>-<pid>` with loopback up (IPv4 and IPv6); panics when it cannot.
    pub fn new(tag: &str) -> Self {
        Self::named(&format!("pktl-{tag}-{}", std::process::id())).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Create the namespace `name` with loopback up, after deleting a leftover of that name (of
    /// a killed earlier run: what still runs in it is killed first).
    pub fn named(name: &str) -> Result<Self> {
        if Path::new("/run/netns").join(name).exists() {
            Self { name: name.to_owned() }.kill_processes();
            drop(Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status());
        }
        cmd(&["ip", "netns", "add", name])?;
        let ns = Self { name: name.to_owned() };
        cmd(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Kill every process that still runs in the namespace (e.g. a server of a killed run).
    pub fn kill_processes(&self) {
        if let Ok(pids) = cmd(&["ip", "netns", "pids", &self.name]) {
            for pid in pids.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()) {
                // SAFETY: kill has no memory preconditions; the pid runs in a namespace of ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Run a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Inode of the namespace, as pktloss reports it.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(format!("/run/netns/{}", self.name)).expect("stat netns").ino()
    }

    /// Run `f` on a thread named [`NETNS_THREAD`] inside the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::Builder::new()
            .name(NETNS_THREAD.into())
            .spawn(move || {
                let file = fs::File::open(&path).expect("open netns");
                use std::os::fd::AsRawFd as _;
                // SAFETY: valid fd; affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .expect("spawn netns thread")
            .join()
            .expect("netns thread")
    }

    /// Send `n` UDP datagrams to `dst` from inside the namespace; returns the source address.
    pub fn send_udp(&self, dst: SocketAddr, n: usize) -> SocketAddr {
        self.send_udp_with(dst, n, &[])
    }

    /// As [`Netns::send_udp`] (IPv4 only), with `options` in every IPv4 header (`IP_OPTIONS`):
    /// the transport header then starts past byte 20.
    pub fn send_udp_with(&self, dst: SocketAddr, n: usize, options: &[u8]) -> SocketAddr {
        let options = options.to_vec();
        self.run(move || {
            let bind: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("addr");
            // Unconnected on purpose: a connected socket turns the ICMP port-unreachable of a
            // previous datagram into ECONNREFUSED and does not send the next one.
            let s = UdpSocket::bind(bind).expect("bind");
            if !options.is_empty() {
                use std::os::fd::AsRawFd as _;
                // SAFETY: a valid socket and a buffer of the given length.
                let rc = unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::IPPROTO_IP,
                        libc::IP_OPTIONS,
                        options.as_ptr().cast(),
                        options.len() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0, "IP_OPTIONS: {}", std::io::Error::last_os_error());
            }
            let local = s.local_addr().expect("local addr");
            for i in 0..n {
                let sent = s.send_to(format!("pktloss test {i}").as_bytes(), dst).expect("send_to");
                assert!(sent > 0);
            }
            SocketAddr::new(dst.ip(), local.port())
        })
    }

    /// A counter from /proc/net/snmp (e.g. "Udp", "`NoPorts`") or /proc/net/snmp6 inside the namespace.
    pub fn snmp(&self, table: &str, field: &str) -> u64 {
        let (table, field) = (table.to_owned(), field.to_owned());
        self.run(move || {
            if table.ends_with('6') || table.starts_with("Ip6") || table.starts_with("Udp6") {
                let text = fs::read_to_string("/proc/thread-self/net/snmp6").expect("snmp6");
                let key = format!("{table}{field}");
                return text
                    .lines()
                    .find_map(|l| {
                        let mut it = l.split_whitespace();
                        (it.next() == Some(key.as_str())).then(|| it.next().and_then(|v| v.parse().ok()))?
                    })
                    .unwrap_or_else(|| panic!("no {key} in snmp6"));
            }
            let text = fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp");
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("{table}:"))).collect();
            assert!(lines.len() >= 2, "no {table} in snmp");
            let names: Vec<&str> = lines[0].split_whitespace().collect();
            let vals: Vec<&str> = lines[1].split_whitespace().collect();
            let i = names.iter().position(|n| *n == field).unwrap_or_else(|| panic!("no {table}.{field}"));
            vals[i].parse().expect("number")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        drop(Command::new("ip").args(["netns", "del", &self.name]).status());
    }
}
