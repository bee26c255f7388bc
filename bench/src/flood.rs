//! The local drop flood: two namespaces joined by a veth pair, an nftables DROP rule in the
//! receiver, and a sender thread pinned to one CPU that floods small UDP datagrams into it.
//!
//! With `PKTLOSS_BENCH_DROP=xdp` the receiver drops them with a native XDP program on its veth
//! instead (`XDP_DROP`: freed at `veth_xdp_rcv_skb` without a reason, which pktloss counts as
//! `XDP_DROP` per device and program); the drops are then the veth's `xdp_drops` counters.
//!
//! Traffic never leaves the two namespaces this module creates (with the shared testkit's
//! namespaces, veth pair and nftables drop rules); they (and with them the veth pair and the
//! nftables table) are deleted when the [`Netns`] guard drops, and leftovers of a killed run are
//! deleted before a new pair is made.
use std::{
    fs::File,
    net::UdpSocket,
    os::fd::AsRawFd as _,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use pktloss_testkit::{self as testkit, End, NftDrop, Veth};

use crate::util::{output, run, succeeds};

/// The sending namespace.
pub(super) const TX_NS: &str = "pktlb-tx";
/// The receiving (dropping) namespace.
pub(super) const RX_NS: &str = "pktlb-rx";
const TX_IF: &str = "pktlb0";
const RX_IF: &str = "pktlb1";
const TX_ADDR: &str = "10.231.0.1";
const RX_ADDR: &str = "10.231.0.2";
/// The UDP port the nftables rule drops.
pub(super) const DPORT: u16 = 9;
/// First destination port of a many-flows flood (`FloodCfg::ports` > 1): ports from here on are
/// dropped by a rule of their own, after the one for `DPORT`.
const MANY_PORTS_FROM: u16 = 10_000;
/// Most destination ports of a many-flows flood.
pub(super) const MAX_PORTS: u16 = 16_384;
const NFT_TABLE: &str = "pktlb";
/// Environment variable choosing the receiver's drop: `nft` (default) or `xdp`.
const DROP_MODE_ENV: &str = "PKTLOSS_BENCH_DROP";

/// An XDP program dropping the flood's UDP datagrams (IPv4 without options, to `DPORT` or
/// the many-flows range) and passing everything else.
const XDP_DROP_C: &str = r#"
#define SEC(n) __attribute__((section(n), used))
struct xdp_md { unsigned data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
SEC("xdp") int pktlb_xdp_drop(struct xdp_md *ctx) {
    unsigned char *d = (unsigned char *)(unsigned long)ctx->data;
    unsigned char *end = (unsigned char *)(unsigned long)ctx->data_end;
    if (d + 14 + 20 + 4 > end) return 2;
    if (d[12] != 0x08 || d[13] != 0 || d[14 + 9] != 17 || (d[14] & 0xf) != 5) return 2;
    unsigned short p = (unsigned short)(d[14 + 20 + 2] << 8 | d[14 + 20 + 3]);
    return (p == DPORT || (p >= FROM && p < TO)) ? 1 : 2;
}
char _license[] SEC("license") = "GPL";
"#;

/// Whether the receiver drops with XDP (`PKTLOSS_BENCH_DROP=xdp`); another value is refused.
pub(super) fn xdp_mode() -> Result<bool> {
    match std::env::var(DROP_MODE_ENV).as_deref() {
        Err(_) | Ok("" | "nft") => Ok(false),
        Ok("xdp") => Ok(true),
        Ok(other) => bail!("{DROP_MODE_ENV}={other}: expected nft or xdp"),
    }
}

/// Build the XDP program with clang and attach it natively to the receiver's veth.
fn attach_xdp() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("pktlb-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (c, o) = (dir.join("xdp.c"), dir.join("xdp.o"));
    let src = XDP_DROP_C
        .replace("DPORT", &DPORT.to_string())
        .replace("FROM", &MANY_PORTS_FROM.to_string())
        .replace("TO", &(u32::from(MANY_PORTS_FROM) + u32::from(MAX_PORTS)).to_string());
    std::fs::write(&c, src)?;
    let built = run(Command::new("clang").args(["-O2", "-g", "-target", "bpf", "-c"]).arg(&c).arg("-o").arg(&o));
    let attached = built.and_then(|()| {
        run(Command::new("ip")
            .args(["-n", RX_NS, "link", "set", "dev", RX_IF, "xdpdrv", "obj"])
            .arg(&o)
            .args(["sec", "xdp"]))
    });
    drop(std::fs::remove_dir_all(&dir));
    attached.context("the XDP drop program (clang -target bpf, ip link set xdpdrv)")
}

/// The receiver veth's `XDP_DROP`s (`ethtool -S`: `rx_queue_N_xdp_drops`, summed).
fn xdp_drops() -> Result<u64> {
    let out = output(Command::new("ip").args(["netns", "exec", RX_NS, "ethtool", "-S", RX_IF]))?;
    let all: Vec<u64> = out
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.starts_with("rx_queue_") && k.ends_with("_xdp_drops"))
        .filter_map(|(_, v)| v.trim().parse().ok())
        .collect();
    if all.is_empty() {
        bail!("no rx_queue_*_xdp_drops counter on {RX_IF}");
    }
    Ok(all.iter().sum())
}

/// The two namespaces, their veth pair and the DROP rules; deleted on drop.
pub(super) struct Netns {
    /// First, so dropped (its table deleted) before the namespaces; `None` in XDP mode.
    nft: Option<NftDrop>,
    _rx: testkit::Netns,
    _tx: testkit::Netns,
}

impl Netns {
    /// Delete leftovers, then create the namespaces, the veth pair and the DROP rules.
    pub(super) fn create() -> Result<Self> {
        let tx = testkit::Netns::named(TX_NS)?;
        let rx = testkit::Netns::named(RX_NS)?;
        Veth::create(End::new(TX_NS, TX_IF, TX_ADDR), End::new(RX_NS, RX_IF, RX_ADDR), 30)?;
        let nft = if xdp_mode()? {
            attach_xdp()?;
            None
        } else {
            let many = format!("udp dport {MANY_PORTS_FROM}-{}", MANY_PORTS_FROM + MAX_PORTS - 1);
            Some(NftDrop::create(RX_NS, NFT_TABLE, &[&format!("udp dport {DPORT}"), &many])?)
        };
        // Resolve the neighbour once so the first measured packets do not wait on ARP.
        succeeds(Command::new("ip").args(["netns", "exec", TX_NS, "ping", "-c1", "-W1", RX_ADDR]));
        Ok(Self { nft, _rx: rx, _tx: tx })
    }

    /// The packets counted by the DROP rules (or the XDP program's drops) so far.
    pub(super) fn dropped(&self) -> Result<u64> {
        match &self.nft {
            Some(nft) => nft.packets(),
            None => xdp_drops(),
        }
    }
}

/// How to flood.
#[derive(Clone, Copy, Debug)]
pub(super) struct FloodCfg {
    /// The CPU the sender is pinned to.
    pub cpu: usize,
    /// How long to send.
    pub duration: Duration,
    /// Packets per second, or `None` for as fast as possible.
    pub rate: Option<u64>,
    /// Datagrams per sendmmsg call.
    pub batch: usize,
    /// Destination ports, one after another (1: every datagram to `DPORT`, one flow; more:
    /// each datagram a flow of its own while fewer than the flow table's slots).
    pub ports: u16,
}

/// What one flood did.
#[derive(Clone, Copy, Debug)]
pub(super) struct FloodResult {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// How long the sender sent.
    pub elapsed: Duration,
}

/// Start a flood in its own thread (which joins the sending namespace); `stop` ends it early.
pub(super) fn spawn(cfg: FloodCfg, stop: Arc<AtomicBool>) -> JoinHandle<Result<FloodResult>> {
    thread::spawn(move || sender(cfg, &stop))
}

/// Flood for `cfg.duration` and return what was sent.
pub(super) fn flood(cfg: FloodCfg, stop: &Arc<AtomicBool>) -> Result<FloodResult> {
    join(spawn(cfg, Arc::clone(stop)))
}

/// Flood from one sender per CPU of `cpus` at once (each with `cfg` but its own CPU and
/// socket): what they sent together, over the longest sender's time.
pub(super) fn flood_cpus(cfg: FloodCfg, cpus: &[usize], stop: &Arc<AtomicBool>) -> Result<FloodResult> {
    let handles: Vec<_> = cpus.iter().map(|&cpu| spawn(FloodCfg { cpu, ..cfg }, Arc::clone(stop))).collect();
    let mut total = FloodResult { sent: 0, elapsed: Duration::ZERO };
    // Join every sender before reporting a failure, so none outlives the call.
    let results: Vec<Result<FloodResult>> = handles.into_iter().map(join).collect();
    for r in results {
        let r = r?;
        total.sent += r.sent;
        total.elapsed = total.elapsed.max(r.elapsed);
    }
    Ok(total)
}

/// Wait for a flood thread.
pub(super) fn join(h: JoinHandle<Result<FloodResult>>) -> Result<FloodResult> {
    h.join().map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
}

/// Most datagrams per sendmmsg call.
pub(super) const MAX_BATCH: usize = 1024;
const PAYLOAD: [u8; 18] = *b"pktloss-bench-drop";

#[expect(
    clippy::cast_precision_loss,
    reason = "pacing: when packet number `sent` is due at `rate` packets/s; counts stay far below 2^53"
)]
fn sender(cfg: FloodCfg, stop: &AtomicBool) -> Result<FloodResult> {
    let ns =
        File::open(Path::new("/run/netns").join(TX_NS)).with_context(|| format!("cannot open namespace {TX_NS}"))?;
    // SAFETY: setns on a valid namespace fd; it changes only this thread's network namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns({TX_NS}): {}", std::io::Error::last_os_error());
    }
    pin_to(cfg.cpu)?;
    let sock = UdpSocket::bind((TX_ADDR, 0)).context("cannot bind the sender socket")?;
    let many = cfg.ports > 1;
    if !many {
        sock.connect((RX_ADDR, DPORT)).context("cannot connect the sender socket")?;
    }
    let fd = sock.as_raw_fd();
    let batch = if cfg.rate.is_some() { cfg.batch.clamp(1, 8) } else { cfg.batch.clamp(1, MAX_BATCH) };
    let mut iov = libc::iovec { iov_base: PAYLOAD.as_ptr() as *mut libc::c_void, iov_len: PAYLOAD.len() };
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    // A many-flows flood names each datagram's destination (the socket is not connected).
    let rx: std::net::Ipv4Addr = RX_ADDR.parse().context("receiver address")?;
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut names: Vec<libc::sockaddr_in> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, a) in msgs.iter_mut().zip(&mut names) {
        m.msg_hdr.msg_iov = &raw mut iov;
        m.msg_hdr.msg_iovlen = 1;
        if many {
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_addr.s_addr = u32::from_ne_bytes(rx.octets());
            m.msg_hdr.msg_name = (&raw mut *a).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
    }
    let ports = cfg.ports.clamp(1, MAX_PORTS);
    let mut next_port: u16 = 0;
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut last_err = None;
    loop {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(rate) = cfg.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if due > now {
                thread::sleep((due - now).min(deadline - now));
                continue;
            }
        }
        if many {
            for a in &mut names {
                a.sin_port = (MANY_PORTS_FROM + next_port).to_be();
                next_port = (next_port + 1) % ports;
            }
        }
        // SAFETY: fd is a UDP socket (connected, or each header names its destination in
        // `names`); msgs holds `batch` headers whose single iovec points at PAYLOAD; all of it
        // outlives the call; the kernel only reads them.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), batch as libc::c_uint, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            errors += 1;
            last_err = Some(std::io::Error::last_os_error());
        }
    }
    let elapsed = start.elapsed();
    if sent == 0 && errors > 0 {
        bail!("the sender sent nothing: {}", last_err.map_or_else(String::new, |e| e.to_string()));
    }
    Ok(FloodResult { sent, elapsed })
}

/// Pin the calling thread to one CPU.
fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; CPU_SET is bounds-checked against its size below.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            bail!("CPU {cpu} out of range");
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) != 0 {
            bail!("cannot pin the sender to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs this process may run on.
pub(super) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a plain cpu_set_t; CPU_ISSET reads it within bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) != 0 {
            return vec![0];
        }
        (0..8 * size_of::<libc::cpu_set_t>()).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}
