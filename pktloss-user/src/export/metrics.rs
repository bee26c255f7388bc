//! The metrics of `pktloss serve`: counters that only grow, kept from the programs' exact maps
//! (through the [`Summary`] of a scrape) and the rolling diagnosis, and their `OpenMetrics` text.
//!
//! Every series is bounded: reasons are the kernel's enum, functions the first `max_functions`
//! seen (the rest under `function="other"`), devices those of the host's namespace (at most
//! `max_devices`), namespaces (opt-in) at most `max_netns` and removed a grace period after
//! they are gone. No flow, port, address or process is ever a label.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use crate::{
    diagnose::{CauseId, Diagnosis},
    host::netns::NetnsLabel,
    model::{ProbeStatus, Summary},
};

/// The label of everything past a bound.
const OTHER: &str = "other";
/// Firewall chains with a series of their own.
const MAX_CHAINS: usize = 64;
/// tc programs, XDP programs (per device) and XDP exceptions with series of their own.
const MAX_PROGRAMS: usize = 64;

/// Cumulative counts under label sets, the first `MAX_PROGRAMS` seen with their own series and
/// the rest summed under `other` in each label.
#[derive(Debug, Default)]
struct Bounded<const N: usize> {
    series: BTreeMap<[String; N], u64>,
    other: u64,
}

impl<const N: usize> Bounded<N> {
    /// Take the cumulative counts of this scrape (series never go down).
    fn observe(&mut self, by: BTreeMap<[String; N], u64>) {
        let mut other = 0;
        for (labels, n) in by {
            if self.series.contains_key(&labels) || self.series.len() < MAX_PROGRAMS {
                let e = self.series.entry(labels).or_default();
                *e = (*e).max(n);
            } else {
                other += n;
            }
        }
        self.other = self.other.max(other);
    }

    /// Its series into `f`, labelled `names`.
    fn add_to(&self, f: &mut Family, names: [&'static str; N]) {
        for (labels, n) in &self.series {
            f.add(names.iter().zip(labels).map(|(k, v)| (*k, v.clone())).collect(), *n);
        }
        if self.other > 0 {
            f.add(names.iter().map(|k| (*k, OTHER.to_owned())).collect(), self.other);
        }
    }
}

/// Bounds and options of the metric set.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Functions with their own series; later ones count under `function="other"`.
    pub max_functions: usize,
    /// Devices of the host's namespace with their own series.
    pub max_devices: usize,
    /// Per-namespace series (`--netns-labels`); 0 turns them off.
    pub max_netns: usize,
    /// How long the series of a namespace that is gone are kept.
    pub netns_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_functions: 50, max_devices: 64, max_netns: 0, netns_grace: Duration::from_mins(5) }
    }
}

/// A namespace as the per-namespace series tell them apart: its inode and its cookie (0 on
/// kernels without cookies, before 5.12, where the inode alone is its identity).
pub(crate) use crate::model::NetnsId;

/// The living namespaces: inode -> (cookie, label), as last read.
pub(crate) type Living = BTreeMap<u32, (u64, NetnsName)>;

/// What a namespace's series is called: a name (`ip netns`, `host`, pod, container or unit),
/// or, unnamed, its inode (written `netns:INODE`, as [`NetnsLabel::Inode`] is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetnsName {
    Named(String),
    Unnamed(u32),
}

impl NetnsName {
    pub(crate) fn is_unnamed(&self) -> bool {
        matches!(self, Self::Unnamed(_))
    }
}

impl From<NetnsLabel> for NetnsName {
    fn from(l: NetnsLabel) -> Self {
        match l {
            NetnsLabel::Inode(i) => Self::Unnamed(i),
            l => Self::Named(l.to_string()),
        }
    }
}

impl From<&str> for NetnsName {
    fn from(s: &str) -> Self {
        Self::Named(s.to_owned())
    }
}

impl std::fmt::Display for NetnsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(n) => f.write_str(n),
            Self::Unnamed(i) => NetnsLabel::Inode(*i).fmt(f),
        }
    }
}

/// The series of one network namespace.
#[derive(Debug, Default)]
struct NetnsSeries {
    /// Its name, bound to its cookie when first read (never another namespace's).
    label: Option<NetnsName>,
    /// Exact drops by reason (cumulative, from the kernel's per-namespace counts).
    by_reason: BTreeMap<String, u64>,
    /// When it was last listed as living (`None`: still there at the last look).
    gone_since: Option<Instant>,
}

/// What the exporter knows, updated at each scrape and each diagnosis window.
#[derive(Debug)]
pub(crate) struct MetricsState {
    limits: Limits,
    /// Exact drops by reason (from the in-kernel counters: cumulative, never evicted).
    by_reason: BTreeMap<String, (&'static str, u64)>,
    /// Exact bytes dropped by reason (`None` when the programs do not count bytes).
    bytes_by_reason: Option<BTreeMap<String, (&'static str, u64)>>,
    /// Exact drops by location symbol, cumulative.
    by_location: BTreeMap<String, u64>,
    /// Functions with their own series and their count at the scrape before they got it (what
    /// `other` had shown of them stays there, so that no series ever goes down).
    functions: BTreeMap<String, u64>,
    /// Drops by function at the last scrape (sums of `by_location`).
    fn_last: BTreeMap<String, u64>,
    /// Exact drops by device of the host's namespace.
    devices: BTreeMap<String, u64>,
    devices_other: u64,
    /// Exact `NETFILTER_DROP` drops by firewall chain (label of `FirewallDrop`), the first
    /// `MAX_CHAINS` seen; the rest under `chain="other"`.
    chains: BTreeMap<String, u64>,
    chains_other: u64,
    /// tc drops by program (name, id, attach point; `unknown` when none or several were on
    /// the hook).
    tc_programs: Bounded<3>,
    /// `XDP_DROP` drops by program and device.
    xdp_drops: Bounded<2>,
    /// XDP exceptions by program and action.
    xdp_exceptions: Bounded<2>,
    /// Hardware traps by devlink device, trap and group.
    hw_traps: Bounded<3>,
    /// Per-namespace series (opt-in), by namespace identity.
    netns: BTreeMap<NetnsId, NetnsSeries>,
    /// Drops of namespaces past `max_netns`, by reason.
    netns_other: BTreeMap<String, u64>,
    /// What each namespace past `max_netns` had at the last scrape, by reason (its growth is
    /// added to `netns_other`), and since when it is gone.
    netns_other_last: BTreeMap<NetnsId, NetnsSeries>,
    /// Drops each cause explained, summed over the diagnosis windows.
    causes: BTreeMap<CauseId, u64>,
    /// Causes of the last window.
    active: BTreeSet<CauseId>,
    windows: u64,
    last_window_end: Option<f64>,
    /// Totals of the last scrape.
    drops: u64,
    detail_delivered: u64,
    detail_over_budget: u64,
    detail_lost_ring: u64,
    flow_evictions: u64,
    drops_not_in_flows: u64,
    /// Drops the per-namespace map could not hold.
    netns_overflow: u64,
    /// Drops the filter left out (None: no filter).
    filtered_out: Option<u64>,
    probes: Vec<ProbeStatus>,
    /// `(version, kernel)`.
    build: (String, String),
    /// The namespace pktloss runs in (its devices are the host's).
    host_netns: u32,
    /// Per-program BPF run time and count (`kernel.bpf_stats_enabled`), and recursion misses.
    programs: Vec<ProgramStats>,
    /// Times the flow -> process cache was full and started over.
    process_cache_resets: u64,
    scrapes: u64,
    /// TCP resets sent by reset reason (`tcp:tcp_send_reset`; reasons are a kernel enum, so
    /// bounded).
    resets_by_reason: BTreeMap<String, u64>,
}

/// Run-time statistics of one loaded program (the kernel stage reads them).
pub(crate) use crate::kernel::maps::ProgramStats;

/// The subsystem of a reason code: the core enum, or pktloss's own codes for kernels without
/// reasons and for the `tcp_drop` probe.
fn subsystem(code: u32) -> &'static str {
    if code >> 16 == 0 { "core" } else { "none" }
}

/// The function of a location (`func+0x1a [mod]` -> `func`); an unresolved address is `unknown`.
fn function(symbol: &str) -> String {
    let f = crate::decode::symbols::function_of(symbol);
    if f.is_empty() || f.starts_with("0x") { "unknown".to_owned() } else { f.to_owned() }
}

impl MetricsState {
    pub(crate) fn new(limits: Limits, reasons: Vec<(u32, String)>, build: (String, String), host_netns: u32) -> Self {
        let by_reason = reasons.into_iter().map(|(c, n)| (n, (subsystem(c), 0))).collect();
        Self {
            limits,
            bytes_by_reason: None,
            by_reason,
            by_location: BTreeMap::new(),
            functions: BTreeMap::new(),
            fn_last: BTreeMap::new(),
            devices: BTreeMap::new(),
            devices_other: 0,
            chains: BTreeMap::new(),
            chains_other: 0,
            tc_programs: Bounded::default(),
            xdp_drops: Bounded::default(),
            xdp_exceptions: Bounded::default(),
            hw_traps: Bounded::default(),
            netns: BTreeMap::new(),
            netns_other: BTreeMap::new(),
            netns_other_last: BTreeMap::new(),
            causes: CauseId::ALL.iter().map(|c| (*c, 0)).collect(),
            active: BTreeSet::new(),
            windows: 0,
            last_window_end: None,
            drops: 0,
            detail_delivered: 0,
            detail_over_budget: 0,
            detail_lost_ring: 0,
            flow_evictions: 0,
            filtered_out: None,
            drops_not_in_flows: 0,
            netns_overflow: 0,
            probes: Vec::new(),
            build,
            host_netns,
            programs: Vec::new(),
            process_cache_resets: 0,
            scrapes: 0,
            resets_by_reason: BTreeMap::new(),
        }
    }

    /// Take the summary of everything since attach (exact cumulative counts) and the living
    /// namespaces (`None` when they were not listed this time). Returns the namespaces whose
    /// series were removed (gone longer than the grace period): the caller may forget their
    /// counts in the kernel.
    pub(crate) fn observe(&mut self, s: &Summary, living: Option<&Living>, now: Instant) -> Vec<NetnsId> {
        self.scrapes += 1;
        self.drops = s.total_drops;
        for r in &s.reasons {
            let e = self.by_reason.entry(r.reason.name.clone()).or_insert((subsystem(r.reason.code), 0));
            e.1 = e.1.max(r.count);
        }
        for l in &s.locations {
            let e = self.by_location.entry(l.symbol.clone()).or_default();
            *e = (*e).max(l.count);
        }
        // Functions get their own series while there is room, largest first.
        let mut by_fn: BTreeMap<String, u64> = BTreeMap::new();
        for (sym, c) in &self.by_location {
            *by_fn.entry(function(sym)).or_default() += c;
        }
        let mut new: Vec<(&String, &u64)> = by_fn.iter().filter(|(f, _)| !self.functions.contains_key(*f)).collect();
        new.sort_by_key(|(f, c)| (std::cmp::Reverse(**c), (*f).clone()));
        let room = self.limits.max_functions.saturating_sub(self.functions.len());
        for (f, _) in new.into_iter().take(room) {
            self.functions.insert(f.clone(), self.fn_last.get(f).copied().unwrap_or(0));
        }
        self.fn_last = by_fn;
        self.detail_delivered = s.detail.delivered;
        self.detail_over_budget = s.detail.lost_budget;
        self.detail_lost_ring = s.detail.lost_ringbuf;
        self.flow_evictions = s.flow_table.evicted;
        self.filtered_out = s.filter.as_ref().map(|f| f.drops_filtered_out);
        self.drops_not_in_flows = s.flow_table.drops_not_in_flows;
        s.probes.clone_into(&mut self.probes);
        for r in &s.resets.reasons {
            let e = self.resets_by_reason.entry(r.reason.name.clone()).or_default();
            *e = (*e).max(r.count);
        }
        self.observe_devices(s);
        self.observe_chains(s);
        self.observe_programs(s);
        self.observe_netns(s, living, now)
    }

    /// Firewall chains, from the exact counts read at the drop (summed over namespaces).
    fn observe_chains(&mut self, s: &Summary) {
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for d in &s.firewall {
            *by.entry(d.label()).or_default() += d.count;
        }
        let mut other = 0;
        for (label, n) in by {
            if self.chains.contains_key(&label) || self.chains.len() < MAX_CHAINS {
                let e = self.chains.entry(label).or_default();
                *e = (*e).max(n);
            } else {
                other += n;
            }
        }
        self.chains_other = self.chains_other.max(other);
    }

    /// tc and XDP programs, from the summary's exact drops per device and hook.
    fn observe_programs(&mut self, s: &Summary) {
        const UNKNOWN: &str = "unknown";
        let mut tc: BTreeMap<[String; 3], u64> = BTreeMap::new();
        for t in &s.tc_drops {
            let key = match t.programs.as_slice() {
                [p] => [p.name.clone(), p.id.to_string(), p.attach_point()],
                _ => [UNKNOWN.to_owned(), String::new(), t.hook.clone()],
            };
            *tc.entry(key).or_default() += t.drops;
        }
        self.tc_programs.observe(tc);
        let mut xdp: BTreeMap<[String; 2], u64> = BTreeMap::new();
        // Unavailable (a driver without an XDP drop counter): no series, rather than a 0.
        for d in &s.xdp_drops {
            let Some(drops) = d.drops else { continue };
            let program = d.program.as_ref().map_or_else(|| UNKNOWN.to_owned(), |p| p.name.clone());
            let dev = if d.device.is_empty() { format!("ifindex{}", d.ifindex) } else { d.device.clone() };
            *xdp.entry([program, dev]).or_default() += drops;
        }
        self.xdp_drops.observe(xdp);
        let mut exc: BTreeMap<[String; 2], u64> = BTreeMap::new();
        for x in &s.xdp_exceptions {
            let program = if x.prog_name.is_empty() { UNKNOWN.to_owned() } else { x.prog_name.clone() };
            *exc.entry([program, x.action.clone()]).or_default() += x.count;
        }
        self.xdp_exceptions.observe(exc);
        let mut hw: BTreeMap<[String; 3], u64> = BTreeMap::new();
        for t in &s.hw_traps.reported {
            *hw.entry([t.device.clone(), t.trap.clone(), t.group.clone()]).or_default() += t.count;
        }
        self.hw_traps.observe(hw);
    }

    /// Devices of the host's namespace, from the exact per-device counts of the summary.
    fn observe_devices(&mut self, s: &Summary) {
        let mut other = 0;
        for d in s.devices.iter().filter(|d| d.netns == self.host_netns && d.ifindex != 0 && d.drops > 0) {
            let name = if d.name.is_empty() { format!("ifindex{}", d.ifindex) } else { d.name.clone() };
            if self.devices.contains_key(&name) || self.devices.len() < self.limits.max_devices {
                let e = self.devices.entry(name).or_default();
                *e = (*e).max(d.drops);
            } else {
                other += d.drops;
            }
        }
        self.devices_other = self.devices_other.max(other);
    }

    /// Namespaces from the exact per-namespace counts, each by its identity (inode and
    /// cookie), named by what `living` says of that very namespace.
    fn observe_netns(&mut self, s: &Summary, living: Option<&Living>, now: Instant) -> Vec<NetnsId> {
        if self.limits.max_netns == 0 {
            return Vec::new();
        }
        let mut by_ns: BTreeMap<NetnsId, BTreeMap<&str, u64>> = BTreeMap::new();
        for n in s.netns_drops.iter().filter(|n| n.netns.inode != 0) {
            *by_ns.entry(n.netns).or_default().entry(n.reason.as_str()).or_default() += n.count;
        }
        let alive = |id: &NetnsId| {
            living.and_then(|l| l.get(&id.inode)).filter(|(c, _)| *c == id.cookie || *c == 0 || id.cookie == 0)
        };
        for (id, reasons) in by_ns {
            if self.netns.contains_key(&id) || self.netns.len() < self.limits.max_netns {
                let e = self.netns.entry(id).or_default();
                if let Some((_, label)) = alive(&id) {
                    if e.label.as_ref().is_none_or(NetnsName::is_unnamed) {
                        e.label = Some(label.clone());
                    }
                } else if e.label.is_none() {
                    e.label = Some(NetnsName::Unnamed(id.inode));
                }
                for (r, c) in reasons {
                    let v = e.by_reason.entry(r.to_owned()).or_default();
                    *v = (*v).max(c);
                }
            } else {
                let e = self.netns_other_last.entry(id).or_default();
                for (r, c) in reasons {
                    let last = e.by_reason.entry(r.to_owned()).or_default();
                    *self.netns_other.entry(r.to_owned()).or_default() += c.saturating_sub(*last);
                    *last = (*last).max(c);
                }
            }
        }
        let Some(_) = living else { return Vec::new() };
        let grace = self.limits.netns_grace;
        let mut removed = Vec::new();
        for series in [&mut self.netns, &mut self.netns_other_last] {
            for (id, n) in series.iter_mut() {
                if alive(id).is_some() {
                    n.gone_since = None;
                } else if n.gone_since.is_none() {
                    n.gone_since = Some(now);
                }
            }
            series.retain(|id, n| {
                let keep = n.gone_since.is_none_or(|t| now.duration_since(t) < grace);
                if !keep {
                    removed.push(*id);
                }
                keep
            });
        }
        removed
    }

    /// Take the diagnosis of one window.
    pub(crate) fn observe_window(&mut self, d: &Diagnosis, end_unix_secs: f64) {
        self.windows += 1;
        self.last_window_end = Some(end_unix_secs);
        self.active.clear();
        for c in &d.causes {
            *self.causes.entry(c.id).or_default() += c.drops;
            if c.drops > 0 {
                self.active.insert(c.id);
            }
        }
    }

    /// Take the exact bytes dropped per reason (cumulative since attach): `(code, name, bytes)`.
    /// Every reason already known to the metric set is a series, at 0 until it drops.
    pub(crate) fn observe_bytes(&mut self, by_reason: impl IntoIterator<Item = (u32, String, u64)>) {
        let m = self
            .bytes_by_reason
            .get_or_insert_with(|| self.by_reason.iter().map(|(r, (sub, _))| (r.clone(), (*sub, 0))).collect());
        let mut now: BTreeMap<String, (&'static str, u64)> = BTreeMap::new();
        for (code, name, b) in by_reason {
            now.entry(name).or_insert((subsystem(code), 0)).1 += b;
        }
        for (r, (sub, b)) in now {
            let e = m.entry(r).or_insert((sub, 0));
            e.1 = e.1.max(b);
        }
    }

    pub(crate) fn set_programs(&mut self, programs: Vec<ProgramStats>) {
        self.programs = programs;
    }

    pub(crate) fn set_process_cache_resets(&mut self, n: u64) {
        self.process_cache_resets = n;
    }

    /// Drops the kernel's per-namespace map could not hold (`stat::NETNS_FAILS`).
    pub(crate) fn set_netns_overflow(&mut self, n: u64) {
        self.netns_overflow = n;
    }

    /// The state in the Prometheus text format 0.0.4 (for scrapers that do not ask for
    /// `OpenMetrics`, and `promtool check metrics`).
    pub(crate) fn prometheus_text(&self) -> String {
        to_prometheus_text(&self.exposition())
    }

    /// The `OpenMetrics` text of the state.
    pub(crate) fn exposition(&self) -> String {
        let mut reg = Registry::with_prefix("pktloss");
        reg.register_collector(Box::new(Snapshot::of(self)));
        let mut out = String::new();
        // Writing into a String fails only if a collector does, and this one does not.
        if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
            out.clear();
        }
        out
    }
}

/// `OpenMetrics` text as the Prometheus text format 0.0.4: a counter family's HELP and TYPE name
/// its `_total` samples, and there are no UNIT lines and no `# EOF`.
pub(crate) fn to_prometheus_text(om: &str) -> String {
    let counters: BTreeSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len());
    for l in om.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let meta = l
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| l.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_owned() };
                out.push_str(kind);
                out.push_str(&name);
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

/// The state at one scrape, as flat series for the collector.
#[derive(Debug, Default)]
struct Snapshot {
    /// (name, help, unit, is counter, series: labels -> value)
    families: Vec<Family>,
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    counter: bool,
    series: Vec<(Vec<(&'static str, String)>, Value)>,
}

/// A sample's value: counts are integers in the text, seconds are not.
#[derive(Clone, Copy, Debug)]
enum Value {
    Count(u64),
    Seconds(f64),
}

impl Family {
    fn new(name: &'static str, help: &'static str, counter: bool) -> Self {
        Self { name, help, unit: None, counter, series: Vec::new() }
    }

    /// A counter of one series without labels.
    fn scalar(name: &'static str, help: &'static str, v: u64) -> Self {
        let mut f = Self::new(name, help, true);
        f.add(Vec::new(), v);
        f
    }

    fn unit(mut self, u: Unit) -> Self {
        self.unit = Some(u);
        self
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, v: u64) {
        self.series.push((labels, Value::Count(v)));
    }
}

impl Snapshot {
    fn of(m: &MetricsState) -> Self {
        let mut fams = Vec::new();
        Self::drops(m, &mut fams);
        Self::places(m, &mut fams);
        Self::diagnosis(m, &mut fams);
        Self::accounting(m, &mut fams);
        Self::programs(m, &mut fams);
        fams.push(Family::scalar("scrapes", "Scrapes served.", m.scrapes));

        Self { families: fams }
    }

    /// Drops, their bytes and the resets sent, by reason.
    fn drops(m: &MetricsState, fams: &mut Vec<Family>) {
        let mut f = Family::new("drops", "Packets the kernel dropped (kfree_skb with a drop reason), exact.", true);
        for (reason, (sub, c)) in &m.by_reason {
            f.add(vec![("reason", reason.clone()), ("subsystem", (*sub).to_owned())], *c);
        }
        fams.push(f);

        if !m.resets_by_reason.is_empty() {
            let mut f = Family::new(
                "resets_sent",
                "TCP resets the kernel sent, by reset reason (tcp:tcp_send_reset; reason UNKNOWN before 6.10).",
                true,
            );
            for (reason, c) in &m.resets_by_reason {
                f.add(vec![("reason", reason.clone())], *c);
            }
            fams.push(f);
        }

        if let Some(bytes) = &m.bytes_by_reason {
            let mut f = Family::new("drop", "Bytes of the packets the kernel dropped (skb->len), exact.", true)
                .unit(Unit::Bytes);
            for (reason, (sub, b)) in bytes {
                f.add(vec![("reason", reason.clone()), ("subsystem", (*sub).to_owned())], *b);
            }
            fams.push(f);
        }
    }

    /// Drops by where: kernel function, device, firewall chain, namespace.
    fn places(m: &MetricsState, fams: &mut Vec<Family>) {
        let mut f = Family::new(
            "function_drops",
            "Drops by the kernel function that freed the packet (the first functions seen have their own series, the rest are function=\"other\").",
            true,
        );
        // Drops by function as the last scrape summed them.
        let fn_total = &m.fn_last;
        let all: u64 = fn_total.values().sum();
        let mut labelled = 0;
        for (func, base) in &m.functions {
            let v = fn_total.get(func).copied().unwrap_or(0).saturating_sub(*base);
            labelled += v;
            f.add(vec![("function", func.clone())], v);
        }
        f.add(vec![("function", OTHER.to_owned())], all.saturating_sub(labelled));
        fams.push(f);

        let mut f = Family::new(
            "device_drops",
            "Drops of packets on a device of the host's network namespace (exact, from the per-namespace counters).",
            true,
        );
        for (d, c) in &m.devices {
            f.add(vec![("device", d.clone())], *c);
        }
        if m.devices_other > 0 {
            f.add(vec![("device", OTHER.to_owned())], m.devices_other);
        }
        fams.push(f);

        if !m.chains.is_empty() {
            let mut f = Family::new(
                "firewall_chain_drops",
                "NETFILTER_DROP drops by firewall chain (backend, table, chain and rule), read at the drop (the first 64 chains seen have their own series, the rest are chain=\"other\").",
                true,
            );
            for (c, n) in &m.chains {
                f.add(vec![("chain", c.clone())], *n);
            }
            if m.chains_other > 0 {
                f.add(vec![("chain", OTHER.to_owned())], m.chains_other);
            }
            fams.push(f);
        }

        if !m.tc_programs.series.is_empty() {
            let mut f = Family::new(
                "tc_program_drops",
                "TC_INGRESS/TC_EGRESS drops by the BPF program on the tc hook (program, id, attach point; program=\"unknown\" when none or several were there; the first 64 have their own series, the rest are \"other\").",
                true,
            );
            m.tc_programs.add_to(&mut f, ["program", "id", "attach"]);
            fams.push(f);
        }
        if !m.xdp_drops.series.is_empty() {
            let mut f = Family::new(
                "xdp_drops",
                "XDP_DROP drops by XDP program and device, counted once (on a veth every frame it frees, on a NIC driver in native mode the growth of its XDP drop counter, XDP_ABORTED included in both; the first 64 have their own series, the rest are \"other\").",
                true,
            );
            m.xdp_drops.add_to(&mut f, ["program", "ifname"]);
            fams.push(f);
        }
        if !m.hw_traps.series.is_empty() {
            let mut f = Family::new(
                "hw_trap_drops",
                "Packets devices trapped and reported to devlink (devlink:devlink_trap_report: hardware drops, exceptions and control traps), by devlink device, trap and group (the first 64 have their own series, the rest are \"other\").",
                true,
            );
            m.hw_traps.add_to(&mut f, ["device", "trap", "group"]);
            fams.push(f);
        }
        if !m.xdp_exceptions.series.is_empty() {
            let mut f = Family::new(
                "xdp_exceptions",
                "XDP exceptions (xdp:xdp_exception: XDP_ABORTED, or an action the driver does not support) by program and action (the first 64 have their own series, the rest are \"other\").",
                true,
            );
            m.xdp_exceptions.add_to(&mut f, ["program", "action"]);
            fams.push(f);
        }

        if m.limits.max_netns > 0 {
            let mut f = Family::new(
                "netns_drops",
                "Drops by network namespace (ip netns, pod, container or unit name, or netns:INODE) and reason (exact, from the per-namespace counters).",
                true,
            );
            // Two namespaces with one name (a name used again, or one never listed whose inode
            // another had) are one series: their sum.
            let mut by_label: BTreeMap<(String, &str), u64> = BTreeMap::new();
            for n in m.netns.values() {
                let l = n.label.as_ref().map(ToString::to_string).unwrap_or_default();
                for (r, c) in &n.by_reason {
                    *by_label.entry((l.clone(), r.as_str())).or_default() += c;
                }
            }
            for ((l, r), c) in by_label {
                f.add(vec![("netns", l), ("reason", r.to_owned())], c);
            }
            for (r, c) in &m.netns_other {
                f.add(vec![("netns", OTHER.to_owned()), ("reason", r.clone())], *c);
            }
            fams.push(f);
        }
    }

    /// The diagnosis windows: drops by cause, the causes active, the windows.
    fn diagnosis(m: &MetricsState, fams: &mut Vec<Family>) {
        let mut f = Family::new(
            "cause_drops",
            "Drops explained by each cause of the diagnosis, summed over the diagnosis windows.",
            true,
        );
        for (c, n) in &m.causes {
            f.add(vec![("cause", c.as_str().to_owned())], *n);
        }
        fams.push(f);

        let mut f = Family::new("cause_active", "1 when the last diagnosis window found the cause, else 0.", false);
        for c in m.causes.keys() {
            f.add(vec![("cause", c.as_str().to_owned())], u64::from(m.active.contains(c)));
        }
        fams.push(f);

        fams.push(Family::scalar("diagnosis_windows", "Diagnosis windows completed.", m.windows));
        if let Some(t) = m.last_window_end {
            let mut f = Family::new(
                "diagnosis_last_window_end_timestamp",
                "When the last diagnosis window ended (Unix time).",
                false,
            )
            .unit(Unit::Seconds);
            f.series.push((Vec::new(), Value::Seconds(t)));
            fams.push(f);
        }
    }

    /// What the tracer could not count in detail, in flows or in namespaces, and what the filter left out.
    fn accounting(m: &MetricsState, fams: &mut Vec<Family>) {
        let mut f = Family::new(
            "detail_events",
            "Per-drop detail events: delivered to pktloss, over the detail budget, or lost because the ring buffer was full.",
            true,
        );
        f.add(vec![("outcome", "delivered".to_owned())], m.detail_delivered);
        f.add(vec![("outcome", "over_budget".to_owned())], m.detail_over_budget);
        f.add(vec![("outcome", "lost_ring".to_owned())], m.detail_lost_ring);
        fams.push(f);

        fams.push(Family::scalar(
            "flow_evictions",
            "Flows evicted from the in-kernel flow table (LRU).",
            m.flow_evictions,
        ));
        fams.push(Family::scalar(
            "drops_not_in_flows",
            "Drops counted in evicted flows or in no flow (the totals by reason stay exact).",
            m.drops_not_in_flows,
        ));
        fams.push(Family::scalar(
            "drops_not_in_netns_counts",
            "Drops the per-namespace counters could not hold (their kernel map was full).",
            m.netns_overflow,
        ));

        if let Some(n) = m.filtered_out {
            fams.push(Family::scalar(
                "drops_filtered_out",
                "Drops the filter expression left out (counted nowhere else).",
                n,
            ));
        }

        fams.push(Family::scalar(
            "process_cache_resets",
            "Times the bounded cache of each flow's process was full and started over.",
            m.process_cache_resets,
        ));
    }

    /// The programs (run time, runs, recursion misses), the probes and the build.
    fn programs(m: &MetricsState, fams: &mut Vec<Family>) {
        let stats: Vec<&ProgramStats> = m.programs.iter().filter(|p| p.run_count.is_some()).collect();
        if !stats.is_empty() {
            let mut t = Family::new(
                "bpf_run",
                "Time the kernel spent in each pktloss program (kernel.bpf_stats_enabled=1).",
                true,
            )
            .unit(Unit::Seconds);
            let mut n = Family::new("bpf_runs", "Runs of each pktloss program (kernel.bpf_stats_enabled=1).", true);
            for p in &stats {
                #[expect(clippy::cast_precision_loss, reason = "nanoseconds to seconds")]
                t.series
                    .push((vec![("program", p.name.clone())], Value::Seconds(p.run_time_ns.unwrap_or(0) as f64 / 1e9)));
                n.add(vec![("program", p.name.clone())], p.run_count.unwrap_or(0));
            }
            fams.push(t);
            fams.push(n);
        }
        let misses: Vec<&ProgramStats> = m.programs.iter().filter(|p| p.recursion_misses.is_some()).collect();
        if !misses.is_empty() {
            let mut f = Family::new(
                "bpf_recursion_misses",
                "Runs of each pktloss program the kernel skipped because it was already running on that CPU (a drop made inside it is not counted).",
                true,
            );
            for p in misses {
                f.add(vec![("program", p.name.clone())], p.recursion_misses.unwrap_or(0));
            }
            fams.push(f);
        }

        let mut f = Family::new("probe_attached", "1 for each probe attached, with how; 0 for one skipped.", false);
        for p in &m.probes {
            f.add(vec![("probe", p.name.clone()), ("mode", p.attach.clone())], u64::from(p.active));
        }
        fams.push(f);

        let mut f = Family::new("build_info", "pktloss's version and the running kernel.", false);
        f.add(vec![("version", m.build.0.clone()), ("kernel", m.build.1.clone())], 1);
        fams.push(f);
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for fam in &self.families {
            let kind = if fam.counter {
                prometheus_client::metrics::MetricType::Counter
            } else {
                prometheus_client::metrics::MetricType::Gauge
            };
            let mut enc = encoder.encode_descriptor(fam.name, fam.help, fam.unit.as_ref(), kind)?;
            for (labels, v) in &fam.series {
                let e = enc.encode_family(labels)?;
                match (fam.counter, *v) {
                    (true, Value::Count(n)) => ConstCounter::new(n).encode(e)?,
                    (true, Value::Seconds(x)) => ConstCounter::new(x).encode(e)?,
                    (false, Value::Count(n)) => ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(e)?,
                    (false, Value::Seconds(x)) => ConstGauge::new(x).encode(e)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureFile;

    /// A real capture on 6.18: 50 datagrams to a closed port and 30 dropped by an nftables
    /// rule, in a namespace created and deleted during it.
    fn fixture() -> CaptureFile {
        let mut f = crate::capture::read_bytes(include_bytes!("fixtures/nosocket_nft.pktloss")).expect("fixture");
        f.rediagnose();
        with_netns_drops(&mut f.summary);
        f
    }

    /// The per-namespace counts of a summary as the kernel would give them: the fixture was
    /// written before they existed, and its flows were never evicted, so they are its flows'
    /// sums.
    fn with_netns_drops(s: &mut Summary) {
        let mut by: BTreeMap<(u32, u64, u32, String, u32), u64> = BTreeMap::new();
        for f in &s.flows {
            *by.entry((f.flow.netns.inode, f.flow.netns.cookie, f.ifindex, f.reason.name.clone(), f.reason.code))
                .or_default() += f.count;
        }
        s.netns_drops = by
            .into_iter()
            .map(|((inode, cookie, ifindex, reason, code), count)| crate::model::NetnsDropCount {
                netns: NetnsId { inode, cookie },
                ifindex,
                reason: crate::model::DropReason::new(code, reason),
                count,
            })
            .collect();
    }

    fn reasons(f: &CaptureFile) -> Vec<(u32, String)> {
        f.drop_reasons.iter().map(|r| (r.code, r.name.clone())).collect()
    }

    fn state(f: &CaptureFile, limits: Limits) -> MetricsState {
        MetricsState::new(limits, reasons(f), ("0.1.0".into(), f.kernel.clone()), 4_026_531_840)
    }

    /// The value of one series in the text format (`name{labels}`).
    fn value(text: &str, series: &str) -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn exact_counts_and_every_reason_seeded() {
        let f = fixture();
        let mut m = state(&f, Limits::default());
        m.observe(&f.summary, None, Instant::now());
        m.observe_window(&f.diagnosis, 1.0);
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_drops_total{reason=\"NO_SOCKET\",subsystem=\"core\"}"), Some(50));
        assert_eq!(value(&t, "pktloss_drops_total{reason=\"NETFILTER_DROP\",subsystem=\"core\"}"), Some(30));
        // Every reason of the capturing kernel is a series, at 0 when not seen.
        let seeded = t.lines().filter(|l| l.starts_with("pktloss_drops_total{")).count();
        assert_eq!(seeded, f.drop_reasons.len());
        assert_eq!(value(&t, "pktloss_drops_total{reason=\"IP_RPFILTER\",subsystem=\"core\"}"), Some(0));
        assert_eq!(value(&t, "pktloss_function_drops_total{function=\"__udp4_lib_rcv\"}"), Some(50));
        assert_eq!(value(&t, "pktloss_function_drops_total{function=\"nft_do_chain\"}"), Some(30));
        assert_eq!(value(&t, "pktloss_function_drops_total{function=\"other\"}"), Some(0));
        assert_eq!(value(&t, "pktloss_cause_drops_total{cause=\"no-listener\"}"), Some(50));
        assert_eq!(value(&t, "pktloss_cause_drops_total{cause=\"firewall-drop\"}"), Some(30));
        assert_eq!(value(&t, "pktloss_cause_active{cause=\"no-listener\"}"), Some(1));
        assert_eq!(value(&t, "pktloss_cause_active{cause=\"qdisc-drop\"}"), Some(0));
        // No per-flow labels anywhere.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            for bad in ["port=", "src=", "dst=", "pid=", "comm="] {
                assert!(!l.contains(bad), "{l}");
            }
        }
    }

    /// Bytes by reason: every reason seeded at 0 once bytes are counted, exact sums of the
    /// (reason, location) counts, never down.
    #[test]
    fn drop_bytes_by_reason() {
        let f = fixture();
        let mut m = state(&f, Limits::default());
        m.observe(&f.summary, None, Instant::now());
        assert!(!m.prometheus_text().contains("pktloss_drop_bytes_total"), "no bytes family before bytes");
        m.observe_bytes([
            (3, "NO_SOCKET".to_owned(), 1000),
            (3, "NO_SOCKET".to_owned(), 50),
            (12, "NETFILTER_DROP".to_owned(), 840),
        ]);
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_drop_bytes_total{reason=\"NO_SOCKET\",subsystem=\"core\"}"), Some(1050));
        assert_eq!(value(&t, "pktloss_drop_bytes_total{reason=\"NETFILTER_DROP\",subsystem=\"core\"}"), Some(840));
        assert_eq!(value(&t, "pktloss_drop_bytes_total{reason=\"IP_RPFILTER\",subsystem=\"core\"}"), Some(0));
        assert!(t.contains("# TYPE pktloss_drop_bytes_total counter"), "{t}");
        m.observe_bytes([(3, "NO_SOCKET".to_owned(), 10)]);
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_drop_bytes_total{reason=\"NO_SOCKET\",subsystem=\"core\"}"), Some(1050));
    }

    /// Counters never go down: a function that gets its own series takes only what `other`
    /// had not shown, and a flow evicted from the kernel's table keeps what it added.
    #[test]
    fn counters_only_grow() {
        let f = fixture();
        let mut m = state(&f, Limits { max_functions: 1, max_netns: 4, ..Limits::default() });
        // First scrape: only the NO_SOCKET drops so far.
        let mut early = f.summary.clone();
        early.locations.retain(|l| l.reason == "NO_SOCKET");
        early.flows.retain(|x| x.reason == "NO_SOCKET");
        early.reasons.retain(|r| r.reason == "NO_SOCKET");
        early.total_drops = 50;
        with_netns_drops(&mut early);
        m.observe(&early, None, Instant::now());
        let t1 = m.prometheus_text();
        // Second: everything, and the NO_SOCKET flow evicted from the table.
        let mut late = f.summary.clone();
        late.flows.retain(|x| x.reason != "NO_SOCKET");
        m.observe(&late, None, Instant::now());
        let t2 = m.prometheus_text();
        let series = |t: &str| -> BTreeMap<String, u64> {
            t.lines()
                .filter(|l| !l.starts_with('#') && l.contains("_total"))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
                .collect()
        };
        let (a, b) = (series(&t1), series(&t2));
        for (k, v) in &a {
            let after = b.get(k).copied().unwrap_or(0);
            assert!(after >= *v, "{k} went down: {v} -> {after}");
        }
        // One function slot: __udp4_lib_rcv has it, nft_do_chain's 30 are in other.
        assert_eq!(value(&t2, "pktloss_function_drops_total{function=\"__udp4_lib_rcv\"}"), Some(50));
        assert_eq!(value(&t2, "pktloss_function_drops_total{function=\"other\"}"), Some(30));
        let ns = f.summary.flows[0].flow.netns.inode;
        let label = format!("netns:{ns}");
        assert_eq!(
            value(&t2, &format!("pktloss_netns_drops_total{{netns=\"{label}\",reason=\"NO_SOCKET\"}}")),
            Some(50)
        );
        assert_eq!(
            value(&t2, &format!("pktloss_netns_drops_total{{netns=\"{label}\",reason=\"NETFILTER_DROP\"}}")),
            Some(30)
        );
    }

    /// A namespace that is gone keeps its series for the grace period, then they go; past
    /// `max_netns` namespaces count under netns="other".
    #[test]
    fn namespaces_are_bounded_and_expire() {
        let f = fixture();
        let mut m = state(&f, Limits { max_netns: 1, netns_grace: Duration::from_mins(1), ..Limits::default() });
        let ns = f.summary.flows[0].flow.netns.inode;
        let mut other = f.summary.clone();
        for x in &mut other.flows {
            x.flow.netns.inode = ns + 1;
        }
        with_netns_drops(&mut other);
        let t0 = Instant::now();
        let cookie = f.summary.flows[0].flow.netns.cookie;
        let living: Living = [(ns, (cookie, "uxa".into()))].into();
        m.observe(&f.summary, Some(&living), t0);
        m.observe(&other, Some(&living), t0);
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_netns_drops_total{netns=\"uxa\",reason=\"NO_SOCKET\"}"), Some(50));
        assert_eq!(value(&t, "pktloss_netns_drops_total{netns=\"other\",reason=\"NO_SOCKET\"}"), Some(50));
        let none = Living::new();
        assert!(m.observe(&other, Some(&none), t0 + Duration::from_secs(30)).is_empty());
        assert!(m.prometheus_text().contains("netns=\"uxa\""), "kept during the grace period");
        let removed = m.observe(&other, Some(&none), t0 + Duration::from_secs(91));
        assert!(!m.prometheus_text().contains("netns=\"uxa\""), "removed after it");
        assert_eq!(
            removed,
            vec![NetnsId { inode: ns, cookie }, NetnsId { inode: ns + 1, cookie }],
            "their kernel counts may go"
        );
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_netns_drops_total{netns=\"other\",reason=\"NO_SOCKET\"}"), Some(50));
    }

    /// Two namespaces that had one inode (the kernel reuses inodes) are two series, each with
    /// its own drops under its own name, even when the first is gone when the second is named.
    #[test]
    fn reused_inode_keeps_two_namespaces() {
        let f = fixture();
        let mut m = state(&f, Limits { max_netns: 8, ..Limits::default() });
        let ns = f.summary.flows[0].flow.netns.inode;
        let cookie = f.summary.flows[0].flow.netns.cookie;
        let t0 = Instant::now();
        let mut first = f.summary.clone();
        first.netns_drops.retain(|n| n.netns.inode == ns && n.reason == "NO_SOCKET");
        m.observe(&first, Some(&[(ns, (cookie, "old".into()))].into()), t0);
        // The second namespace has the same inode, a new cookie and 30 drops of its own.
        let mut second = first.clone();
        second.netns_drops.push(crate::model::NetnsDropCount {
            netns: NetnsId { inode: ns, cookie: cookie + 1 },
            ifindex: 1,
            reason: crate::model::DropReason::new(3, "NO_SOCKET"),
            count: 30,
        });
        m.observe(&second, Some(&[(ns, (cookie + 1, "new".into()))].into()), t0 + Duration::from_secs(1));
        let t = m.prometheus_text();
        assert_eq!(value(&t, "pktloss_netns_drops_total{netns=\"old\",reason=\"NO_SOCKET\"}"), Some(50));
        assert_eq!(value(&t, "pktloss_netns_drops_total{netns=\"new\",reason=\"NO_SOCKET\"}"), Some(30));
    }

    #[test]
    fn exposition_snapshots() {
        let f = fixture();
        let mut m = state(&f, Limits { max_netns: 8, ..Limits::default() });
        let living: Living =
            [(f.summary.flows[0].flow.netns.inode, (f.summary.flows[0].flow.netns.cookie, "uxa".into()))].into();
        m.observe(&f.summary, Some(&living), Instant::now());
        m.observe_window(&f.diagnosis, 1_796_500_000.0);
        m.set_programs(vec![ProgramStats {
            name: "kfree_skb_btf".into(),
            run_time_ns: Some(1_500_000),
            run_count: Some(80),
            recursion_misses: Some(0),
        }]);
        // Only the series with a value, and the metadata: the 0-seeded reasons are counted above.
        let keep = |t: String| -> String {
            t.lines().filter(|l| l.starts_with('#') || !l.ends_with(" 0")).fold(String::new(), |mut s, l| {
                s.push_str(l);
                s.push('\n');
                s
            })
        };
        insta::assert_snapshot!("openmetrics", keep(m.exposition()));
        insta::assert_snapshot!("prometheus_text", keep(m.prometheus_text()));
    }

    /// tc and XDP program and hardware trap series: named, exact, bounded (64, then `other`),
    /// never down.
    #[test]
    fn program_series_are_bounded() {
        use crate::model::{TcDrops, TcProgram, XdpDrops, XdpException};
        let f = fixture();
        let mut m = state(&f, Limits::default());
        let prog = |id: u32, name: &str, attach: &str| TcProgram { id, name: name.into(), attach: attach.into() };
        let tc = |programs: Vec<TcProgram>, drops: u64| TcDrops {
            hook: "ingress".into(),
            reason: "TC_INGRESS".into(),
            drops,
            programs,
            ..TcDrops::default()
        };
        let mut s = Summary {
            tc_drops: vec![
                tc(vec![prog(41, "drop_port", "clsact ingress pref 49152 handle 0x1 bpf da")], 7),
                tc(vec![prog(42, "a", "tcx ingress"), prog(43, "b", "tcx ingress")], 3),
            ],
            xdp_drops: vec![XdpDrops {
                device: "veth1".into(),
                drops: Some(11),
                program: Some(prog(44, "xdp_ddos", "xdp native")),
                ..XdpDrops::default()
            }],
            xdp_exceptions: vec![XdpException {
                prog_id: 44,
                prog_name: "xdp_ddos".into(),
                action: "XDP_ABORTED".into(),
                ifindex: 5,
                count: 2,
            }],
            hw_traps: crate::model::HwTraps {
                reported: vec![crate::model::HwTrap {
                    device: "netdevsim/netdevsim1".into(),
                    trap: "blackhole_route".into(),
                    group: "l3_drops".into(),
                    input_port: "eth0".into(),
                    count: 9,
                }],
                ..Default::default()
            },
            ..Summary::default()
        };
        m.observe(&s, None, Instant::now());
        let t = m.prometheus_text();
        let ours: String = t
            .lines()
            .filter(|l| l.contains("tc_program_drops") || l.contains("xdp_") || l.contains("hw_trap"))
            .fold(String::new(), |acc, l| acc + l + "\n");
        insta::assert_snapshot!("program_series", ours);
        // 70 more programs: 64 series in all, the rest summed under "other".
        s.tc_drops = (0..70).map(|i| tc(vec![prog(100 + i, &format!("p{i}"), "tcx ingress")], 1)).collect();
        m.observe(&s, None, Instant::now());
        let t = m.prometheus_text();
        let series = t.lines().filter(|l| l.starts_with("pktloss_tc_program_drops_total{")).count();
        assert_eq!(series, 65);
        assert_eq!(
            value(&t, "pktloss_tc_program_drops_total{program=\"other\",id=\"other\",attach=\"other\"}"),
            Some(8)
        );
        // Never down: the first program keeps its count though no longer in the summary.
        assert_eq!(
            value(&t, "pktloss_tc_program_drops_total{program=\"drop_port\",id=\"41\",attach=\"clsact ingress\"}"),
            Some(7)
        );
    }
}
