//! Host step: the drops of XDP programs run by NIC drivers (native mode), which never reach
//! `kfree_skb`: the driver's own XDP drop counter (ethtool statistics: `virtio_net`
//! `rx_queue_N_xdp_drops` or `rxN_xdp_drops`, mlx5 `rx_xdp_drop`, ...) read at the start and
//! at each summary, its growth reported per program and device. Nothing runs per packet.
//!
//! Counted once: veth's native XDP frees the skbs it drops with `kfree_skb`
//! (`veth_xdp_rcv_skb`, already counted from the events), and a generic (skb-mode) program's
//! drops are `kfree_skb` with reason `XDP`; neither has its counter added here. A driver with
//! no XDP drop counter, or a program offloaded to the NIC, is said to be unavailable, never 0.
use std::{
    collections::BTreeMap,
    io,
    time::{Duration, Instant},
};

use crate::{
    host::{
        counters::{DeviceStats, ethtool::Ethtool, nic},
        netns, tcprogs,
    },
    model::{NetnsId, TcProgram, XdpDrops},
};

/// One device with an XDP program in its driver, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Read {
    netns: u32,
    ifindex: u32,
    device: String,
    driver: String,
    prog_id: u32,
    /// The driver's XDP drop counter (per-queue counters summed) and its names with queue
    /// numbers as `*`, or why there is none.
    counter: Result<(u64, Vec<String>), String>,
}

/// The driver whose native XDP drops are freed as skbs (and counted from the events).
const SKB_FREEING_DRIVERS: &[&str] = &["veth"];

/// A counter's name with its queue numbers as `*` (`rx_queue_*_xdp_drops`).
fn pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The driver's XDP drop counter of a device's ethtool statistics, or why none.
fn counter_of(stats: Result<BTreeMap<String, u64>, io::Error>, driver: &str) -> Result<(u64, Vec<String>), String> {
    let stats = stats.map_err(|e| format!("ethtool statistics of the driver {driver}: {e}"))?;
    let mut names: Vec<String> = stats
        .keys()
        .filter(|k| nic::NicCounter::of_ethtool(k) == nic::NicCounter::XdpDrop)
        .map(|k| pattern(k))
        .collect();
    names.dedup();
    if names.is_empty() {
        return Err(format!("the driver {driver} keeps no XDP drop counter in its ethtool statistics"));
    }
    let dev = DeviceStats { ethtool: stats, ..DeviceStats::default() };
    Ok((nic::xdp_drops(&dev), names))
}

/// The devices of this thread's namespace (inode `netns`) with a driver XDP program, except
/// those whose drops are skb frees.
fn read_here(netns: u32) -> io::Result<Vec<Read>> {
    let links = tcprogs::driver_xdp_here()?;
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let et = Ethtool::open();
    let mut out = Vec::new();
    for l in links {
        let driver = et.as_ref().ok().and_then(|e| e.driver(&l.name).ok()).unwrap_or_default();
        if SKB_FREEING_DRIVERS.contains(&driver.as_str()) && !l.offload {
            continue;
        }
        let counter = match (&et, l.offload) {
            (_, true) => Err("the program is offloaded to the NIC: its drops are the NIC's, not read".to_owned()),
            (Err(e), false) => Err(format!("ethtool socket: {e}")),
            (Ok(e), false) => counter_of(e.stats(&l.name), if driver.is_empty() { "?" } else { &driver }),
        };
        out.push(Read { netns, ifindex: l.ifindex, device: l.name, driver, prog_id: l.prog_id, counter });
    }
    Ok(out)
}

/// `BPF_PROG_TYPE_XDP` of `enum bpf_prog_type` (uapi, stable).
const BPF_PROG_TYPE_XDP: u32 = 6;

/// Whether any XDP program is loaded on the host: a walk of the program ids (three `bpf()`
/// calls per program), far cheaper than entering every namespace for a link dump, which
/// `serve` would otherwise do every [`REREAD`] for each of hundreds of namespaces.
/// A program that cannot be read (gone meanwhile, or no permission) answers yes: the devices
/// are read then, so that nothing is left out on a guess.
fn any_xdp_program() -> bool {
    aya::programs::loaded_programs()
        .any(|p| p.is_err() || p.is_ok_and(|p| p.program_type() as u32 == BPF_PROG_TYPE_XDP))
}

/// Every namespace's devices with a driver XDP program (none read when no XDP program is
/// loaded anywhere).
fn read_all() -> Vec<Read> {
    let mut out = Vec::new();
    if !any_xdp_program() {
        return out;
    }
    for ns in netns::list().into_values() {
        let inode = ns.inode;
        match netns::run_in(&ns, move || Ok(read_here(inode)?)) {
            Ok(r) => out.extend(r),
            // A namespace gone since it was listed has no devices to read.
            Err(e) => log::debug!("XDP programs of namespace {inode}: {e:#}"),
        }
    }
    out
}

/// One (namespace, device, program) seen with a driver XDP program.
#[derive(Clone, Debug)]
struct Seen {
    device: String,
    driver: String,
    prog_name: String,
    /// The counter when first read (`None`: not readable yet).
    base: Option<u64>,
    /// Growth before the counter went back (a driver that reset it), kept.
    carried: u64,
    /// The last reading: the counter and its names, or why there is none.
    now: Result<(u64, Vec<String>), String>,
    /// Seen at the start of the capture (else: counted from when first seen).
    since: Option<Duration>,
}

/// The native XDP programs' drops of the NIC drivers since the capture started.
#[derive(Debug)]
pub(crate) struct NicXdpDrops {
    started: Instant,
    seen: BTreeMap<(u32, u32, u32), Seen>,
    read_at: Option<Instant>,
}

/// How often a summary reads the devices again (each reading enters every namespace); the
/// final summary always does.
const REREAD: Duration = Duration::from_secs(2);

impl NicXdpDrops {
    /// The counters now: the baseline.
    pub(crate) fn start() -> Self {
        let mut me = Self { started: Instant::now(), seen: BTreeMap::new(), read_at: None };
        me.update(read_all());
        me
    }

    fn update(&mut self, reads: Vec<Read>) {
        let since = self.read_at.map(|_| self.started.elapsed());
        self.read_at = Some(Instant::now());
        for r in reads {
            let e = self.seen.entry((r.netns, r.ifindex, r.prog_id)).or_insert_with(|| Seen {
                device: r.device.clone(),
                driver: r.driver.clone(),
                prog_name: tcprogs::prog_name(r.prog_id),
                base: None,
                carried: 0,
                now: Err(String::new()),
                since,
            });
            if let Ok((v, _)) = &r.counter {
                match e.base {
                    None => e.base = Some(*v),
                    Some(b) if *v < b => {
                        e.carried += e.now.as_ref().map_or(0, |(n, _)| n.saturating_sub(b));
                        e.base = Some(*v);
                    }
                    Some(_) => {}
                }
            }
            (e.device, e.now) = (r.device, r.counter);
        }
    }

    /// The drops per device and program so far (reading the devices again unless read in the
    /// last [`REREAD`], or always when `fresh`): those with drops, and those whose drops are
    /// unavailable.
    pub(crate) fn drops(&mut self, fresh: bool) -> Vec<XdpDrops> {
        if fresh || self.read_at.is_none_or(|t| t.elapsed() >= REREAD) {
            self.update(read_all());
        }
        let mut out = Vec::new();
        for (&(netns, ifindex, prog_id), e) in &self.seen {
            let program =
                Some(TcProgram { id: prog_id, name: e.prog_name.clone(), attach: "xdp xdpdrv (native)".to_owned() });
            let (drops, note) = match (&e.now, e.base) {
                (Ok((v, names)), Some(b)) => {
                    let drops = e.carried + v.saturating_sub(b);
                    if drops == 0 {
                        continue;
                    }
                    let from = e.since.map_or_else(String::new, |d| {
                        format!(
                            "; counted from {:.0} s into the capture, when the program was first seen",
                            d.as_secs_f64()
                        )
                    });
                    (
                        Some(drops),
                        format!(
                            "counted by the driver {} (ethtool {}, XDP_ABORTED included): native XDP drops never reach kfree_skb{from}",
                            e.driver,
                            names.join(" ")
                        ),
                    )
                }
                (Err(why), _) if !why.is_empty() => (None, format!("unavailable: {why}")),
                _ => (None, "unavailable: the driver's XDP drop counter could not be read".to_owned()),
            };
            out.push(XdpDrops {
                netns: NetnsId { inode: netns, cookie: 0 },
                ifindex,
                device: e.device.clone(),
                drops,
                program: program.clone(),
                note,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(counter: Result<u64, &str>) -> Read {
        Read {
            netns: 9,
            ifindex: 3,
            device: "ens4".into(),
            driver: "virtio_net".into(),
            prog_id: 77,
            counter: counter.map(|v| (v, vec!["rx_queue_*_xdp_drops".to_owned()])).map_err(str::to_owned),
        }
    }

    #[test]
    fn the_counters_growth_is_the_programs_drops() {
        let mut x = NicXdpDrops { started: Instant::now(), seen: BTreeMap::new(), read_at: None };
        x.update(vec![read(Ok(100))]);
        x.read_at = Some(Instant::now());
        assert!(x.drops(false).is_empty(), "no growth, no row");
        x.update(vec![read(Ok(130))]);
        let d = x.drops(false);
        assert_eq!((d.len(), d[0].drops, d[0].device.as_str()), (1, Some(30), "ens4"));
        assert!(d[0].note.contains("virtio_net") && d[0].note.contains("rx_queue_*_xdp_drops"), "{}", d[0].note);
        // A counter that went back (the driver reset it): the growth so far is kept.
        x.update(vec![read(Ok(5))]);
        assert_eq!(x.drops(false)[0].drops, Some(30));
        x.update(vec![read(Ok(7))]);
        assert_eq!(x.drops(false)[0].drops, Some(32));
    }

    #[test]
    fn a_driver_without_the_counter_is_unavailable_not_zero() {
        let mut x = NicXdpDrops { started: Instant::now(), seen: BTreeMap::new(), read_at: None };
        x.update(vec![read(Err("the driver tun keeps no XDP drop counter in its ethtool statistics"))]);
        x.read_at = Some(Instant::now());
        let d = x.drops(false);
        assert_eq!(d[0].drops, None);
        assert!(d[0].note.starts_with("unavailable: the driver tun"), "{}", d[0].note);
    }

    #[test]
    fn counter_names_and_driver_without_one() {
        assert_eq!(pattern("rx_queue_12_xdp_drops"), "rx_queue_*_xdp_drops");
        assert_eq!(pattern("rx3_xdp_drops"), "rx*_xdp_drops");
        let stats: BTreeMap<String, u64> =
            [("rx_queue_0_xdp_drops", 4), ("rx_queue_1_xdp_drops", 5), ("rx_queue_0_drops", 9)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        assert_eq!(counter_of(Ok(stats), "virtio_net"), Ok((9, vec!["rx_queue_*_xdp_drops".to_owned()])));
        let none: BTreeMap<String, u64> = [("rx_dropped".to_owned(), 1)].into_iter().collect();
        assert!(counter_of(Ok(none), "tun").is_err_and(|e| e.contains("no XDP drop counter")));
    }
}
