//! `cargo xtask bench-serve`: what `pktloss serve` costs and how fast it answers.
//!
//! - the drop rate of the flood with `serve` attached over the untraced floods around it (the
//!   default-mode ratio of `bench`, for the daemon);
//! - `serve`'s CPU while the flood is paced to 100k drops/s and it is scraped every second;
//! - scrape latency with many series: namespaces made for it each drop packets for three
//!   reasons (no socket, unknown IP protocol, bad UDP checksum), exported with
//!   `--netns-labels`, then `/metrics` is fetched repeatedly.
use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{
    flood::{self, FloodCfg, Netns},
    pick_cpu, stop_flag,
    tracer::Tracer,
};
use crate::util;

/// Options of `cargo xtask bench-serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeBenchArgs {
    /// The pktloss binary.
    #[arg(long, default_value = "target/release/pktloss")]
    bin: PathBuf,
    /// Rounds of (untraced, serve attached, untraced) floods for the ratio.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per flood.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Namespaces made for the scrape-latency part (three series each).
    #[arg(long, default_value_t = 3400)]
    namespaces: usize,
    /// Scrapes timed in that part.
    #[arg(long, default_value_t = 20)]
    scrapes: usize,
    /// Extra `serve` options for the ratio and CPU parts (e.g. "--no-detail").
    #[arg(long, default_value = "")]
    serve_args: String,
    /// Only the cost of many namespaces that keep having drops, for each of these counts
    /// (e.g. `10,100,500`): serve's CPU, processes started per second, scrape latency, RSS.
    #[arg(long, value_delimiter = ',')]
    busy_netns: Vec<usize>,
    /// Seconds of each `--busy-netns` run (one drop per namespace and one scrape per second).
    #[arg(long, default_value_t = 30)]
    busy_seconds: u64,
}

/// `serve` on a free loopback port.
pub(super) fn spawn_serve(bin: &Path, verbose: bool, extra: &[&str]) -> Result<(Tracer, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let mut c = Command::new(bin);
    if verbose {
        c.arg("-vv");
    }
    c.args(["serve", "--listen", &listen, "--window", "60s"]).args(extra);
    Ok((Tracer::spawn(c)?, listen))
}

/// GET /metrics; returns the body and how long it took.
pub(super) fn scrape(addr: &str) -> Result<(String, Duration)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let took = t.elapsed();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).context("no HTTP body")?;
    Ok((body, took))
}

fn series(body: &str) -> usize {
    body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count()
}

#[expect(clippy::cast_precision_loss, reason = "benchmark figures")]
pub(crate) fn bench_serve(args: ServeBenchArgs) -> Result<()> {
    if !util::is_root() {
        bail!("bench-serve must run as root (BPF, namespaces, nftables)");
    }
    if !args.bin.exists() {
        bail!("{} not built (cargo xtask build --release)", args.bin.display());
    }
    let stop = stop_flag()?;
    if !args.busy_netns.is_empty() {
        for n in &args.busy_netns {
            busy(&args, *n, &stop)?;
        }
        return Ok(());
    }
    let extra: Vec<&str> = args.serve_args.split_whitespace().collect();
    let cpu = pick_cpu(None)?;
    let netns = Netns::create()?;
    let full =
        FloodCfg { cpu, duration: Duration::from_secs_f64(args.seconds.max(0.5)), rate: None, batch: 64, ports: 1 };
    let rate_of = |cfg: FloodCfg| -> Result<f64> {
        let d0 = netns.dropped()?;
        let r = flood::flood(cfg, &stop)?;
        Ok((netns.dropped()? - d0) as f64 / r.elapsed.as_secs_f64().max(1e-9))
    };

    // 1. The flood's rate with serve attached, over the untraced floods around it.
    let mut ratios = Vec::new();
    for round in 0..args.rounds {
        let u1 = rate_of(full)?;
        let (mut t, _) = spawn_serve(&args.bin, false, &extra)?;
        t.wait_attached(Duration::from_secs(30), &stop)?;
        let traced = rate_of(full)?;
        let fin = t.stop(Duration::from_secs(15));
        if !fin.ok {
            bail!("pktloss serve ended badly ({}): {}", fin.status, fin.stderr.trim());
        }
        let u2 = rate_of(full)?;
        let ratio = traced / f64::midpoint(u1, u2);
        println!("round {}: untraced {u1:.0}/s, serve {traced:.0}/s, untraced {u2:.0}/s: ratio {ratio:.3}", round + 1);
        ratios.push(ratio);
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
    }
    ratios.sort_by(f64::total_cmp);
    let median_ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);

    // 2. CPU at 100k drops/s, scraped every second.
    let (mut t, listen) = spawn_serve(&args.bin, false, &extra)?;
    t.wait_attached(Duration::from_secs(30), &stop)?;
    let paced = FloodCfg { rate: Some(100_000), duration: Duration::from_secs(20), ..full };
    let cpu0 = t.cpu_s().unwrap_or(0.0);
    let d0 = netns.dropped()?;
    let started = Instant::now();
    let sender = flood::spawn(paced, std::sync::Arc::clone(&stop));
    let mut lat = Vec::new();
    while !sender.is_finished() {
        std::thread::sleep(Duration::from_secs(1));
        lat.push(scrape(&listen)?.1);
    }
    flood::join(sender)?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_pct = (t.cpu_s().unwrap_or(0.0) - cpu0) / secs * 100.0;
    let drops_per_s = (netns.dropped()? - d0) as f64 / secs;
    let (body, _) = scrape(&listen)?;
    let fin = t.stop(Duration::from_secs(15));
    println!(
        "serve at {drops_per_s:.0} drops/s, scraped every 1 s: CPU {cpu_pct:.2} % of a core, peak RSS {:.1} MiB, {} series, scrape {:.1} ms median",
        fin.maxrss_kib as f64 / 1024.0,
        series(&body),
        median_ms(&mut lat)
    );
    drop(netns);

    // 3. Scrape latency with many series.
    let (serve_ns, scrape_ms, n_series, rss) = many_series(&args)?;
    println!(
        "scrape with {n_series} series ({serve_ns} namespaces x 3 reasons): {:.1} ms median, {:.1} ms max over {} scrapes; peak RSS {:.1} MiB",
        scrape_ms.0,
        scrape_ms.1,
        args.scrapes,
        rss as f64 / 1024.0
    );
    println!(
        "bench-serve: ratio {median_ratio:.3} (median of {}), CPU {cpu_pct:.2} % at {drops_per_s:.0} drops/s",
        ratios.len()
    );
    Ok(())
}

fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// Names of the namespaces of part 3 and of `--busy-netns`.
fn ns_name(i: usize) -> String {
    format!("pktl-bs{i}")
}

/// `processes` of /proc/stat: processes (and threads) started since boot.
fn processes_started() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|v| v.trim().parse().ok())
        .context("no `processes` in /proc/stat")
}

/// CPU seconds of the waited-for children of `pid` (`cutime` + `cstime`).
#[expect(clippy::cast_precision_loss, reason = "clock ticks")]
fn children_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let f: Vec<u64> = rest.split_whitespace().skip(13).take(2).filter_map(|v| v.parse().ok()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    f.iter().sum::<u64>() as f64 / hz as f64
}

/// One datagram to a closed port in each of the first `n` namespaces, from a thread that
/// enters them in turn (no process).
fn drop_in_each(n: usize) -> Result<()> {
    std::thread::spawn(move || -> Result<()> {
        for i in 0..n {
            let f = std::fs::File::open(format!("/run/netns/{}", ns_name(i)))?;
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {}: {}", ns_name(i), std::io::Error::last_os_error());
            }
            let lo = Ipv4Addr::LOCALHOST;
            UdpSocket::bind((lo, 0))?.send_to(b"x", SocketAddr::from((lo, 9)))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
}

/// `--busy-netns`: `n` namespaces that each have a drop every second, for `busy_seconds`,
/// first without serve (the host's own rate of new processes), then with `serve` scraped once
/// a second: its CPU, the processes started per second over that rate, scrape latency, RSS.
#[expect(clippy::cast_precision_loss, reason = "benchmark figures")]
fn busy(args: &ServeBenchArgs, n: usize, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let guard = ManyNetns(n);
    ip_batch(&script("add", n))?;
    std::thread::spawn(move || -> Result<()> {
        for i in 0..n {
            let f = std::fs::File::open(format!("/run/netns/{}", ns_name(i)))?;
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            lo_up()?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the lo thread panicked"))??;
    let secs = args.busy_seconds.max(5);
    let rounds = |scrape_at: Option<&str>| -> Result<(f64, Vec<Duration>)> {
        let (p0, t0) = (processes_started()?, Instant::now());
        let mut lat = Vec::new();
        for r in 0..secs {
            drop_in_each(n)?;
            if let Some(addr) = scrape_at {
                lat.push(scrape(addr)?.1);
            }
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let next = Duration::from_secs(r + 1);
            std::thread::sleep(next.saturating_sub(t0.elapsed()));
        }
        Ok(((processes_started()? - p0) as f64 / t0.elapsed().as_secs_f64(), lat))
    };
    let (base_rate, _) = rounds(None)?;
    let (mut t, listen) = spawn_serve(&args.bin, false, &[])?;
    t.wait_attached(Duration::from_mins(1), stop)?;
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, kids0, w0) = (t.cpu_s().unwrap_or(0.0), children_cpu_s(t.pid()), Instant::now());
    let (rate, mut lat) = rounds(Some(&listen))?;
    let wall = w0.elapsed().as_secs_f64();
    let cpu = (t.cpu_s().unwrap_or(0.0) - cpu0) / wall * 100.0;
    let kids = (children_cpu_s(t.pid()) - kids0) / wall * 100.0;
    let rss = t.hwm_kib().unwrap_or(0);
    let fin = t.stop(Duration::from_secs(15));
    if !fin.ok {
        bail!("pktloss serve ended badly ({}): {}", fin.status, fin.stderr.trim());
    }
    let (after_rate, _) = rounds(None)?;
    let base = f64::midpoint(base_rate, after_rate);
    let max = lat.iter().max().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "busy {n} namespaces, {secs} s: serve CPU {cpu:.2} % of a core (+ {kids:.2} % in its child processes); processes started {:.1}/s over the {base:.1}/s without serve ({rate:.1}/s with it); scrape {:.1} ms median, {max:.1} ms max; peak RSS {:.1} MiB",
        rate - base,
        median_ms(&mut lat),
        rss as f64 / 1024.0
    );
    drop(guard);
    Ok(())
}

/// Deletes the namespaces of part 3 when dropped.
struct ManyNetns(usize);

impl Drop for ManyNetns {
    fn drop(&mut self) {
        drop(ip_batch(&script("del", self.0)));
    }
}

/// An `ip -batch` script adding or deleting the namespaces.
fn script(verb: &str, n: usize) -> String {
    use std::fmt::Write as _;
    (0..n).fold(String::new(), |mut s, i| {
        writeln!(s, "netns {verb} {}", ns_name(i)).ok();
        s
    })
}

fn ip_batch(script: &str) -> Result<()> {
    let mut c =
        Command::new("ip").args(["-force", "-batch", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    c.stdin.take().context("stdin")?.write_all(script.as_bytes())?;
    c.wait()?;
    Ok(())
}

/// Make the namespaces, their drops, and time the scrapes: (namespaces, (median, max) ms,
/// series, peak RSS KiB).
fn many_series(args: &ServeBenchArgs) -> Result<(usize, (f64, f64), usize, u64)> {
    let n = args.namespaces;
    let guard = ManyNetns(n);
    ip_batch(&script("add", n))?;
    let (mut t, listen) = spawn_serve(&args.bin, true, &["--netns-labels", "--max-netns", "4096", "--no-detail"])?;
    let never = std::sync::atomic::AtomicBool::new(false);
    t.wait_attached(Duration::from_secs(30), &never)?;
    let made = std::thread::spawn(move || -> Result<usize> {
        let mut ok = 0;
        for i in 0..n {
            let f = std::fs::File::open(format!("/run/netns/{}", ns_name(i)))?;
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                continue;
            }
            lo_up()?;
            drops_here()?;
            ok += 1;
        }
        Ok(ok)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    // Let the flows settle into the counters, then time the scrapes.
    std::thread::sleep(Duration::from_secs(2));
    let mut lat = Vec::new();
    let mut count = 0;
    for _ in 0..args.scrapes {
        let (body, took) = scrape(&listen)?;
        count = series(&body);
        lat.push(took);
    }
    let max = lat.iter().max().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let median = median_ms(&mut lat);
    let rss = t.hwm_kib().unwrap_or(0);
    let fin = t.stop(Duration::from_secs(15));
    if !fin.ok {
        bail!("pktloss serve ended badly ({}): {}", fin.stderr.trim(), fin.status);
    }
    // Where a scrape's time goes (serve's -vv lines), for the last scrapes.
    let timing: Vec<&str> = fin.stderr.lines().filter(|l| l.contains("scrape:")).collect();
    for l in timing.iter().skip(timing.len().saturating_sub(4)) {
        println!("  {}", l.trim());
    }
    drop(guard);
    Ok((made, (median, max), count, rss))
}

/// Bring up `lo` of the current namespace (an ioctl, no `ip` process per namespace).
fn lo_up() -> Result<()> {
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if s < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, b) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *b as libc::c_char;
        }
        libc::ioctl(s, libc::SIOCGIFFLAGS, &raw mut req);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &raw mut req);
        libc::close(s);
        if r != 0 {
            bail!("SIOCSIFFLAGS lo: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One drop for each of three reasons in the current namespace: a datagram to a closed port
/// (`NO_SOCKET`), an IP packet of an unknown protocol (`IP_NOPROTO`) and a UDP datagram with a
/// bad checksum (`UDP_CSUM`). The last two are whole IP packets sent on an `IPPROTO_RAW` socket,
/// which receives nothing (a raw socket of protocol 253 would take the packet itself).
fn drops_here() -> Result<()> {
    let lo = Ipv4Addr::LOCALHOST;
    UdpSocket::bind((lo, 0))?.send_to(b"x", SocketAddr::from((lo, 9)))?;
    let ip = |proto: u8, payload: &[u8]| -> Vec<u8> {
        let len = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX).to_be_bytes();
        let mut p = vec![0x45, 0, len[0], len[1], 0, 0, 0, 0, 64, proto, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1];
        p.extend_from_slice(payload);
        p
    };
    let packets = [ip(253, &[0; 8]), ip(17, &[0x30, 0x39, 0x00, 0x09, 0x00, 0x09, 0xde, 0xad, b'x'])];
    // SAFETY: a raw socket and sendto with a sockaddr_in built here.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
        if s < 0 {
            bail!("raw socket: {}", std::io::Error::last_os_error());
        }
        let mut to: libc::sockaddr_in = std::mem::zeroed();
        to.sin_family = libc::AF_INET as libc::sa_family_t;
        to.sin_addr.s_addr = u32::from(lo).to_be();
        for p in &packets {
            libc::sendto(
                s,
                p.as_ptr().cast(),
                p.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
        }
        libc::close(s);
    }
    Ok(())
}
