//! The pipeline every command runs: attach (kernel), drain and aggregate while the capture
//! lasts, read the host's counters before and after, and diagnose.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use pktloss_common::stat;

use crate::{
    Error,
    aggregate::{Aggregator, CaptureInfo},
    decode::{reasons::ReasonTable, symbols::Kallsyms},
    host::{
        counters::{Counted, CounterWatch, lifecycle::Lifecycle},
        devices::DeviceNames,
        devtx::DeviceTx,
    },
    kernel::{
        btf::KernelBtf,
        tracer::{FLOW_CAPACITY, Options, RawCounts, Tracer},
    },
    model::{NetnsId, Summary},
};

/// SIGINT/SIGTERM set this flag; the loops check it and detach cleanly.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("installing signal handler")?;
    }
    Ok(flag)
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Host name and kernel release.
pub(crate) fn host_facts() -> (String, String) {
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    (host, kernel)
}

/// A running trace session: tracer + aggregator + metadata.
pub(crate) struct Session {
    pub tracer: Tracer,
    pub agg: Aggregator,
    pub info: CaptureInfo,
    pub started: Instant,
    /// Device TX from the devices' own counters, when the `net_dev_queue` probe is off.
    device_tx: Option<DeviceTx>,
    device_names: DeviceNames,
    namespace_names: crate::host::names::NamespaceNames,
    socket_owners: crate::host::sockets::SocketOwners,
    /// The programs on the tc hooks of the devices with tc drops.
    tc_programs: crate::host::tcprogs::TcPrograms,
    /// The codes of `TC_INGRESS` and `TC_EGRESS` in this kernel (those it has).
    tc_reasons: Vec<(u32, bool)>,
    /// devlink's trap statistics when the capture started, or why they cannot be read.
    trap_baseline:
        Result<std::collections::BTreeMap<crate::host::devlink::TrapId, crate::host::devlink::TrapInfo>, String>,
    /// The native XDP programs' drops counted by NIC drivers (never an skb).
    nic_xdp: crate::host::xdpnic::NicXdpDrops,
    /// The next summary is the final one: read the NIC drivers' XDP counters now.
    fresh_counters: bool,
    /// The namespaces followed from birth to death (commands that diagnose).
    pub lifecycle: Option<Lifecycle>,
    /// When the lifecycle watcher was last told where drops are.
    drops_told: Instant,
    lifecycle_interval: Duration,
}

impl Session {
    /// Start tracing with these options.
    pub(crate) fn start(mut opts: Options) -> Result<Self> {
        let mut kbtf = KernelBtf::load().map_err(Error::KernelInterface)?;
        let reasons = ReasonTable::new(kbtf.drop_reasons());
        let reset_reasons = ReasonTable::new(kbtf.reset_reasons());
        let detail_budget = if opts.detail { opts.detail_budget.map(u64::from) } else { Some(0) };
        let flow_capacity = if opts.flows { FLOW_CAPACITY } else { 0 };
        let start_mono = mono_ns();
        let (hostname, kernel) = host_facts();
        let mut facts = crate::kernel::tracer::KernelFacts::from_btf(&kbtf).with_release(&kernel);
        facts.fw = Some(crate::kernel::btf::fw_facts(&mut kbtf, reasons.code("NETFILTER_DROP")));
        // Free the parsed BTF before aya parses its own copy: halves the peak RSS.
        drop(kbtf);
        crate::kernel::tracer::check_privileges()?;
        if let Some(line) = crate::host::caps::namespaces_warning() {
            log::warn!("{line}");
        }
        let syms = Kallsyms::load().unwrap_or_else(|e| {
            log::warn!("{e}; locations will be addresses");
            Kallsyms::default()
        });
        facts.has_tcp_drop = syms.contains("tcp_drop");
        facts.fw_syms = crate::kernel::tracer::FwSyms {
            nft_do_chain: syms.contains("nft_do_chain"),
            nft_immediate_eval: syms.contains("nft_immediate_eval"),
            ipt_do_table: syms.contains("ipt_do_table"),
            ip6t_do_table: syms.contains("ip6t_do_table"),
        };
        facts.not_specified = reasons.code("NOT_SPECIFIED");
        if let Some(f) = &opts.filter {
            let resolver =
                crate::filter::HostResolver { reasons: &reasons, has_reasons: facts.not_specified.is_some() };
            opts.compiled_filter = Some(f.compile(&resolver).map_err(Error::BadInput)?);
        }
        let filter_text = opts.filter.as_ref().map(|f| {
            let resolver =
                crate::filter::HostResolver { reasons: &reasons, has_reasons: facts.not_specified.is_some() };
            (f.text.clone(), f.scope(&resolver))
        });
        let opts_tx_trace = opts.tx_trace;
        let tracer = Tracer::start(opts, &facts)?;
        let info = CaptureInfo {
            hostname,
            kernel,
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_secs: 0.0,
            probes: tracer.probes.clone(),
            detail_budget,
            flow_capacity,
            filter: filter_text,
        };
        let tc_reasons: Vec<(u32, bool)> = [("TC_INGRESS", true), ("TC_EGRESS", false)]
            .into_iter()
            .filter_map(|(n, ingress)| reasons.code(n).map(|c| (c, ingress)))
            .collect();
        let mut agg = Aggregator::new(reasons, syms, start_mono);
        agg.location_keyed_reason = tracer.location_keyed_reason;
        agg.reset_reasons = reset_reasons;
        let device_tx = (!opts_tx_trace).then(DeviceTx::start);
        Ok(Self {
            tracer,
            agg,
            info,
            started: Instant::now(),
            device_tx,
            device_names: DeviceNames::default(),
            namespace_names: crate::host::names::NamespaceNames::default(),
            socket_owners: crate::host::sockets::SocketOwners::default(),
            tc_programs: crate::host::tcprogs::TcPrograms::default(),
            tc_reasons,
            trap_baseline: crate::host::devlink::trap_stats(),
            nic_xdp: crate::host::xdpnic::NicXdpDrops::start(),
            fresh_counters: false,
            lifecycle: None,
            drops_told: Instant::now(),
            lifecycle_interval: LIFECYCLE_INTERVAL,
        })
    }

    /// Follow the namespaces from now on (born during the capture, gone before its end); the
    /// counters read before the capture are its baseline.
    pub(crate) fn watch_namespaces(&mut self) {
        self.watch_namespaces_every(LIFECYCLE_INTERVAL);
    }

    /// As [`Session::watch_namespaces`], reading them every `interval` (`serve` reads less
    /// often: each reading of a namespace with drops costs CPU all day).
    pub(crate) fn watch_namespaces_every(&mut self, interval: Duration) {
        self.lifecycle_interval = interval;
        self.lifecycle = Some(Lifecycle::start(interval));
    }

    /// Once per [`LIFECYCLE_INTERVAL`], while they live: learn the names of the namespaces
    /// with drops (kept, bound to each namespace's cookie, for when one is gone before the
    /// summary), and tell the watcher which namespaces have drops so that it reads them.
    pub(crate) fn follow_namespaces(&mut self) {
        if self.drops_told.elapsed() < self.lifecycle_interval {
            return;
        }
        self.drops_told = Instant::now();
        let with_drops = self.tracer.netns_with_drops();
        // The watcher first: naming may take a while on a slow host.
        if let Some(l) = &self.lifecycle {
            l.drops_in(with_drops.iter().map(|(netns, _)| *netns));
        }
        for (netns, cookie) in &with_drops {
            self.namespace_names.get(*netns, *cookie);
        }
        self.look_at_tc_hooks();
    }

    /// Read the programs on the tc hooks of the devices with tc drops while they are attached.
    fn look_at_tc_hooks(&mut self) {
        if self.tc_reasons.is_empty() {
            return;
        }
        let codes: Vec<u32> = self.tc_reasons.iter().map(|(c, _)| *c).collect();
        for k in self.tracer.netns_keys_of(&codes) {
            let ingress = self.tc_reasons.iter().any(|(c, i)| *c == k.reason && *i);
            self.tc_programs.look(k.netns, k.cookie, k.ifindex, ingress);
        }
    }

    /// Say (with -v) that the capture is under way: the probes are attached and the counters
    /// a command compares against were read. Tests wait for this line. The capture's duration
    /// counts from here (reading every namespace's counters can take seconds on a slow host).
    pub(crate) fn announce(&mut self) {
        self.started = Instant::now();
        let active: Vec<&str> = self.tracer.probes.iter().filter(|p| p.active).map(|p| p.name.as_str()).collect();
        log::info!("pktloss: tracing with {}", active.join(", "));
    }

    /// Drain waiting detail events into the aggregator.
    pub(crate) fn pump(&mut self, wait_ms: i32) {
        self.pump_also(None, wait_ms);
    }

    /// As [`Session::pump`], waking early when `also` is readable.
    pub(crate) fn pump_also(&mut self, also: Option<std::os::fd::RawFd>, wait_ms: i32) {
        self.tracer.wait(also, wait_ms);
        let agg = &mut self.agg;
        self.tracer.drain(|ev| agg.ingest(ev));
    }

    /// The counters so far: the programs' maps, and device TX from the devices' counters
    /// (of the namespaces with drops) when the `net_dev_queue` probe is off.
    pub(crate) fn read(&mut self) -> Result<RawCounts> {
        let mut raw = self.tracer.read()?;
        if let Some(dtx) = &mut self.device_tx {
            let mut with_drops: Vec<u32> =
                raw.flows.iter().filter(|(k, _)| k.ifindex != 0).map(|(k, _)| k.netns).collect();
            with_drops.sort_unstable();
            with_drops.dedup();
            (raw.tx, raw.tx_unavailable) = dtx.read(&with_drops);
            raw.tx.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        Ok(raw)
    }

    /// Summary of everything so far.
    pub(crate) fn summary(&mut self) -> Result<Summary> {
        let raw = self.read()?;
        Ok(self.summary_of(&raw))
    }

    /// The final, exact summary: detach the programs, drain the last detail events, read.
    pub(crate) fn final_summary(&mut self) -> Result<Summary> {
        self.tracer.detach();
        let agg = &mut self.agg;
        self.tracer.drain(|ev| agg.ingest(ev));
        self.fresh_counters = true;
        self.summary()
    }

    /// Summary of given raw counters.
    pub(crate) fn summary_of(&mut self, raw: &RawCounts) -> Summary {
        self.info.duration_secs = self.started.elapsed().as_secs_f64();
        let tracer = &self.tracer;
        let names = &mut self.device_names;
        names.refresh();
        let mut s =
            self.agg.summary(raw, &self.info, &|id| tracer.stack(id), &mut |ns, ifindex| names.name(ns, ifindex));
        let ns_names = &mut self.namespace_names;
        s.name_namespaces(&mut |ns, cookie| ns_names.get(ns, cookie).cloned());
        let owners = &mut self.socket_owners;
        s.name_socket_owners(&mut |ino| owners.get(ino));
        s.tc_drops = self.tc_drops(&s);
        self.trap_stats(&mut s.hw_traps);
        s.relabel_xdp_drops();
        for x in &mut s.xdp_exceptions {
            x.prog_name = crate::host::tcprogs::prog_name(x.prog_id);
        }
        for x in &mut s.xdp_drops {
            (x.program, x.note) = match self.tc_programs.look_xdp(x.netns.inode, x.netns.cookie, x.ifindex) {
                Ok(Some(p)) => (
                    Some(crate::model::TcProgram { id: p.id, name: p.name.clone(), attach: p.attach.clone() }),
                    "the XDP program attached to the device (on a veth its XDP_ABORTED are freed here too: see xdp_exceptions)".to_owned(),
                ),
                Ok(None) => (None, "no XDP program on the device when read (detached since)".to_owned()),
                Err(e) => (None, format!("the device's XDP program could not be read: {e}")),
            };
        }
        // Native XDP on NIC drivers: never an skb, counted by the driver (veth's are above).
        s.xdp_drops.extend(self.nic_xdp.drops(std::mem::take(&mut self.fresh_counters)));
        s
    }

    /// devlink's trap statistics since the start: the traps that grew (none read when the
    /// baseline could not be, and no device traps anything; the reason is said when the
    /// tracepoint did see traps).
    fn trap_stats(&self, hw: &mut crate::model::HwTraps) {
        let read = crate::host::devlink::trap_stats();
        let now = match (self.trap_baseline.as_ref(), read.as_ref()) {
            (Ok(base), Ok(now)) => now
                .iter()
                .filter_map(|(id, t)| {
                    let grew = t.packets.checked_sub(base.get(id).map_or(0, |b| b.packets))?;
                    (grew > 0).then(|| (id.clone(), grew, t.clone()))
                })
                .collect::<Vec<_>>(),
            (Err(e), _) | (_, Err(e)) => {
                if !hw.reported.is_empty() {
                    hw.note = format!("devlink trap statistics not read: {e}");
                }
                return;
            }
        };
        hw.stats = now
            .into_iter()
            .map(|((device, trap), packets, t)| crate::model::TrapStat {
                device,
                trap,
                group: t.group,
                kind: t.kind,
                action: t.action,
                packets,
            })
            .collect();
        hw.stats
            .sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| (&a.device, &a.trap).cmp(&(&b.device, &b.trap))));
    }

    /// The tc drops of the summary per device and hook, with the programs on that hook: by
    /// reason (`TC_INGRESS`/`TC_EGRESS`), or on a kernel without reasons by location
    /// (`sch_handle_ingress`/`sch_handle_egress`).
    fn tc_drops(&mut self, s: &Summary) -> Vec<crate::model::TcDrops> {
        let mut hooks: std::collections::BTreeMap<(u32, u64, u32, bool), (String, u64)> =
            std::collections::BTreeMap::new();
        for n in &s.netns_drops {
            if let Some((_, ingress)) = self.tc_reasons.iter().find(|(c, _)| *c == n.reason.code) {
                let e = hooks
                    .entry((n.netns.inode, n.netns.cookie, n.ifindex, *ingress))
                    .or_insert((n.reason.name.clone(), 0));
                e.1 += n.count;
            }
        }
        if self.tc_reasons.is_empty() {
            for f in &s.flows {
                let ingress = if f.location.starts_with("sch_handle_ingress") {
                    true
                } else if f.location.starts_with("sch_handle_egress") {
                    false
                } else {
                    continue;
                };
                let e = hooks
                    .entry((f.flow.netns.inode, f.flow.netns.cookie, f.ifindex, ingress))
                    .or_insert((f.reason.name.clone(), 0));
                e.1 += f.count;
            }
        }
        let mut out = Vec::new();
        for ((netns, cookie, ifindex, ingress), (reason, drops)) in hooks {
            if ifindex == 0 {
                continue;
            }
            if self.tc_programs.get(netns, cookie, ifindex, ingress).is_none() {
                self.tc_programs.look(netns, cookie, ifindex, ingress);
            }
            let (programs, note) = match self.tc_programs.get(netns, cookie, ifindex, ingress) {
                Some(Ok(p)) => {
                    let programs: Vec<crate::model::TcProgram> = p
                        .iter()
                        .map(|h| crate::model::TcProgram { id: h.id, name: h.name.clone(), attach: h.attach.clone() })
                        .collect();
                    let note = match programs.len() {
                        0 => "no BPF program on the hook when read (detached since, or a tc action that is not BPF dropped)"
                            .to_owned(),
                        1 => "the only BPF program on the hook".to_owned(),
                        n => format!(
                            "{n} BPF programs on the hook, all candidates: which one returned the drop verdict needs fexit on each program, not attached here"
                        ),
                    };
                    (programs, note)
                }
                Some(Err(e)) => (Vec::new(), format!("the programs on the hook could not be read: {e}")),
                None => (Vec::new(), "the programs on the hook were not read".to_owned()),
            };
            out.push(crate::model::TcDrops {
                netns: NetnsId { inode: netns, cookie },
                ifindex,
                device: self.device_names.name(netns, ifindex),
                hook: if ingress { "ingress" } else { "egress" }.to_owned(),
                reason,
                drops,
                programs,
                note,
            });
        }
        out
    }
}

/// Run until the deadline, the count, or a signal.
pub(crate) fn run_until(
    session: &mut Session,
    duration: Option<Duration>,
    count: Option<u64>,
    stop: &AtomicBool,
    mut tick: impl FnMut(&mut Session),
) {
    let deadline = duration.map(|d| session.started + d);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let wait = deadline.map_or(50, |d| d.saturating_duration_since(now).as_millis().min(50) as i32);
        session.pump(wait);
        session.follow_namespaces();
        if let Some(n) = count
            && session.tracer.stat(stat::DROPS) >= n
        {
            break;
        }
        tick(session);
    }
    // Final drain so that every delivered event is in the samples.
    session.pump(0);
}

/// How often the namespaces are listed, and those with drops or born during the capture read.
const LIFECYCLE_INTERVAL: Duration = Duration::from_secs(1);

/// Counters and configuration around a capture, and the diagnosis they give.
pub(crate) struct Diagnosed {
    pub before: crate::host::counters::Gathered,
    pub after: crate::host::counters::Gathered,
    pub deltas: Vec<crate::host::counters::NetnsDelta>,
    pub checks: Vec<crate::host::counters::ConfigChecks>,
    pub diagnosis: crate::diagnose::Diagnosis,
}

impl Diagnosed {
    /// The diagnosis of `summary` with these counters.
    pub(crate) fn of(summary: &Summary, counted: Counted) -> Self {
        let Counted { before, after, deltas, checks } = counted;
        let diagnosis =
            crate::diagnose::diagnose(&crate::diagnose::DiagnosisInput { summary, deltas: &deltas, checks: &checks });
        Self { before, after, deltas, checks, diagnosis }
    }
}

/// The namespaces the summary's drops came from.
pub(crate) fn netns_with_drops(summary: &Summary) -> Vec<u32> {
    let mut v: Vec<u32> = summary.flows.iter().map(|f| f.flow.netns.inode).filter(|n| *n != 0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// After a capture: read the baseline's namespaces plus every one drops came from, and
/// diagnose. Namespaces born during the capture (read at the end) are counted from zero, and
/// those gone before the end keep their last reading, when a `lifecycle` watcher followed them.
/// Device names the summary could not resolve (a namespace gone before it was read) are filled
/// from the namespaces' readings.
pub(crate) fn gather_after(watch: CounterWatch, summary: &mut Summary, lifecycle: Option<Lifecycle>) -> Diagnosed {
    let counted = watch.finish(&netns_with_drops(summary), lifecycle);
    fill_device_names(summary, &counted.after);
    Diagnosed::of(summary, counted)
}

/// Names of the devices of flows and device rows that have none, from the readings of their
/// namespaces (a namespace gone before the summary named its devices was still read while it
/// lived).
fn fill_device_names(summary: &mut Summary, readings: &crate::host::counters::Gathered) {
    // By cookie where the record says one: another namespace that had the inode had other devices.
    let name = |netns: NetnsId, ifindex: u32| {
        readings
            .snapshots
            .iter()
            .filter(|s| s.netns.matches(netns))
            .flat_map(|s| &s.devices)
            .find(|d| d.ifindex == ifindex && ifindex != 0)
            .map(|d| d.name.clone())
    };
    for f in summary.flows.iter_mut().filter(|f| f.device.is_empty()) {
        if let Some(n) = name(f.flow.netns, f.ifindex) {
            f.device = n;
        }
    }
    for d in summary.devices.iter_mut().filter(|d| d.name.is_empty()) {
        if let Some(n) = name(NetnsId { inode: d.netns, cookie: 0 }, d.ifindex) {
            d.name = n;
        }
    }
}

/// The name of namespace `ns` for the capture's interfaces: the summary's, read while it had
/// drops; else the label of the namespace that has the inode now, when it is the one of the
/// drops (the same cookie, or the kernel gives none); else none (gone, and the inode maybe
/// another's now).
fn interface_netns_name(
    summary: &Summary,
    listed: &std::collections::BTreeMap<u32, crate::host::netns::NetnsRef>,
    ns: u32,
) -> String {
    if let Some(n) = summary.namespace_of_inode(ns) {
        return n.label.clone();
    }
    let Some(r) = listed.get(&ns) else { return String::new() };
    let same = match summary.cookie_of(ns) {
        Some(0) => true,
        Some(cookie) => {
            r.is_self || crate::host::netns::cookies(vec![r.clone()]).and_then(|c| c.get(&ns).copied()) == Some(cookie)
        }
        None => false,
    };
    if same { r.label().to_string() } else { String::new() }
}

/// The self-contained capture file of a session: its summary, the counters and configuration
/// read before and after, the diagnosis, the drop-reason names and the devices seen.
pub(crate) fn capture_file(
    summary: Summary,
    d: &Diagnosed,
    reasons: Vec<(u32, String)>,
    options: serde_json::Value,
    stopped_by: &str,
) -> crate::capture::CaptureFile {
    use crate::capture::{CaptureFile, Interface};
    let mut file = CaptureFile::for_this_host(summary);
    file.drop_reasons = reasons.into_iter().map(|(code, name)| crate::model::DropReason { code, name }).collect();
    stopped_by.clone_into(&mut file.stopped_by);
    file.options = options;
    // Interfaces of every namespace with drops or traffic.
    let mut seen = std::collections::BTreeSet::new();
    for (ns, ifindex) in file
        .summary
        .devices
        .iter()
        .map(|x| (x.netns, x.ifindex))
        .chain(file.summary.flows.iter().map(|f| (f.flow.netns.inode, f.ifindex)))
        .chain(file.summary.samples.iter().map(|x| (x.flow.netns.inode, x.ifindex)))
    {
        if ifindex != 0 {
            seen.insert((ns, ifindex));
        }
    }
    let names: std::collections::HashMap<(u32, u32), String> = file
        .summary
        .devices
        .iter()
        .map(|x| ((x.netns, x.ifindex), x.name.clone()))
        .chain(file.summary.flows.iter().map(|f| ((f.flow.netns.inode, f.ifindex), f.device.clone())))
        .filter(|(_, n)| !n.is_empty())
        .collect();
    let ns_map = crate::host::netns::list();
    let after_devs: std::collections::HashMap<(u32, String), (u32, bool)> = d
        .deltas
        .iter()
        .flat_map(|x| {
            x.devices.iter().map(move |dev| {
                ((x.netns.inode, dev.name.clone()), (dev.mtu, dev.kind == "loopback" || dev.name == "lo"))
            })
        })
        .collect();
    for (ns, ifindex) in seen {
        let name = names.get(&(ns, ifindex)).cloned().unwrap_or_default();
        let netns_name = interface_netns_name(&file.summary, &ns_map, ns);
        let (mtu, is_lo) = after_devs.get(&(ns, name.clone())).copied().unwrap_or((0, name == "lo"));
        file.interfaces.push(Interface {
            netns: ns,
            netns_name,
            ifindex,
            arphrd: Some(if is_lo { 772 } else { 1 }),
            mtu: (mtu > 0).then_some(mtu),
            name,
            mac: String::new(),
        });
    }
    file.counters_before = Some(d.before.clone());
    file.counters_after = Some(d.after.clone());
    file.checks.clone_from(&d.checks);
    file.diagnosis = d.diagnosis.clone();
    file
}
