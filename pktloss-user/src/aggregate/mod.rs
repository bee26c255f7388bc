//! Aggregate step: exact kernel counters plus sampled detail events into a [`Summary`].
mod firewall;

use std::collections::{BTreeMap, HashMap};

use pktloss_common::{DevKey, DropEvent, FlowKey, stat};

use crate::{
    decode,
    decode::reasons::{ReasonTable, describe},
    decode::symbols::Kallsyms,
    kernel::tracer::RawCounts,
    model::{
        DetailStats, DeviceCount, DropReason, FilterInfo, Flow, FlowCount, FlowTableStats, LocationCount,
        NetnsDropCount, NetnsId, Packet, ProbeStatus, ReasonCount, ResetCount, ResetReason, ResetReasonCount, Resets,
        RetransCount, Retransmits, Sample, Summary,
    },
};

/// Static facts about a capture that are not in the counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct CaptureInfo {
    pub hostname: String,
    pub kernel: String,
    pub started: String,
    pub duration_secs: f64,
    pub probes: Vec<ProbeStatus>,
    /// Detail budget per second (None = unlimited), or Some(0) when detail is off.
    pub detail_budget: Option<u64>,
    pub flow_capacity: u32,
    /// The filter expression, when there is one, and which counters its view covers.
    pub filter: Option<(String, crate::model::FilterScope)>,
}

/// Collects detail events and turns raw counters into summaries.
pub(crate) struct Aggregator {
    pub reasons: ReasonTable,
    pub syms: Kallsyms,
    /// Monotonic time (ns) of the capture start, to make sample times relative.
    pub start_mono_ns: u64,
    /// Most samples kept (the first ones; later events are still counted).
    pub max_samples: usize,
    samples: Vec<Sample>,
    /// The flow key of each sample (to give it its flow's chain and NAT tuple).
    sample_flows: Vec<FlowKey>,
    delivered: u64,
    /// A process seen per flow, from detail events. Bounded: each summary keeps only the flows
    /// the kernel's table still holds, and past [`MAX_FLOW_PROCESSES`] between two summaries
    /// (`watch` takes none) it starts over; `flow_process_resets` counts that.
    flow_process: HashMap<FlowKey, (String, u32)>,
    pub flow_process_resets: u64,
    /// Stack ids of the sampled detail events per (reason, location), with how often each
    /// was seen (`--stacks`).
    stack_samples: HashMap<(u32, u64), HashMap<i32, u64>>,
    /// The reason whose flows the programs key by the low half of the drop location
    /// (`pktloss_common::Config::location_keyed_reason`): `NOT_SPECIFIED`, or on a kernel
    /// without drop reasons `REASON_NONE`.
    pub location_keyed_reason: u32,
    /// Reset reason names (`enum sk_rst_reason`, 6.10+; empty before, where every reset's
    /// reason is `UNKNOWN`).
    pub reset_reasons: ReasonTable,
}

/// Most flows whose process is remembered (twice the kernel's flow table).
const MAX_FLOW_PROCESSES: usize = 2 * crate::kernel::tracer::FLOW_CAPACITY as usize;

fn is_user_comm(pid: u32) -> bool {
    pid != 0
}

impl Aggregator {
    /// A new aggregator.
    pub(crate) fn new(reasons: ReasonTable, syms: Kallsyms, start_mono_ns: u64) -> Self {
        Self {
            reasons,
            syms,
            start_mono_ns,
            max_samples: 1000,
            samples: Vec::new(),
            sample_flows: Vec::new(),
            delivered: 0,
            flow_process: HashMap::new(),
            flow_process_resets: 0,
            stack_samples: HashMap::new(),
            location_keyed_reason: pktloss_common::NO_LOCATION_KEYED_REASON,
            reset_reasons: ReasonTable::default(),
        }
    }

    /// The reason code and, for the reason keyed by location, the drop location of a flow
    /// key's reason word.
    pub(crate) fn flow_reason(&self, word: u32) -> (u32, Option<u64>) {
        if self.location_keyed_reason != pktloss_common::NO_LOCATION_KEYED_REASON && word >= 0x8000_0000 {
            // Kernel text and modules lie in the top 4 GiB of the address space.
            (self.location_keyed_reason, Some(0xffff_ffff_0000_0000 | u64::from(word)))
        } else {
            (word, None)
        }
    }

    /// Take one detail event.
    pub(crate) fn ingest(&mut self, ev: &DropEvent) {
        self.delivered += 1;
        let (code, _) = self.flow_reason(ev.flow.reason);
        if ev.stack_id >= 0 {
            *self.stack_samples.entry((code, ev.location)).or_default().entry(ev.stack_id).or_default() += 1;
        }
        if is_user_comm(ev.pid) {
            if self.flow_process.len() >= MAX_FLOW_PROCESSES && !self.flow_process.contains_key(&ev.flow) {
                self.flow_process.clear();
                self.flow_process_resets += 1;
            }
            self.flow_process.entry(ev.flow).or_insert_with(|| (decode::comm(&ev.comm), ev.pid));
        }
        if self.samples.len() < self.max_samples {
            let (src, dst) = decode::addr_strings(&ev.flow);
            self.sample_flows.push(ev.flow);
            self.samples.push(Sample {
                t_ns: ev.ts_ns.saturating_sub(self.start_mono_ns),
                reason: DropReason::new(code, self.reasons.name(code)),
                symbol: self.syms.symbolize(ev.location),
                flow: Flow {
                    proto: decode::proto_name(&ev.flow),
                    family: ev.flow.family,
                    src,
                    sport: ev.flow.sport,
                    dst,
                    dport: ev.flow.dport,
                    netns: NetnsId { inode: ev.flow.netns, cookie: ev.flow.netns_cookie },
                },
                netns_name: String::new(),
                ifindex: ev.flow.ifindex,
                pid: ev.pid,
                tid: ev.tid,
                comm: decode::comm(&ev.comm),
                cpu: ev.cpu,
                skb_len: ev.skb_len,
                has_rx_sk: ev.has_rx_sk != 0,
                sk_ino: ev.sk_ino,
                owner_pid: 0,
                owner_comm: String::new(),
                tcp_state: if ev.flow.l4proto == 6 {
                    decode::tcp_state_name(ev.sk_state).to_owned()
                } else {
                    String::new()
                },
                tcp_flags: decode::tcp_flags(decode::packet_bytes(ev), ev.data_start),
                stack_id: ev.stack_id,
                data_start: decode::data_start_name(ev.data_start).to_owned(),
                data: Packet::new(decode::packet_bytes(ev).to_vec()),
                chain: String::new(),
                nat_original: String::new(),
            });
        }
    }

    /// The stack to show for a (reason, location): the one seen most often among its sampled
    /// detail events (ties: the lowest id, for stable output). The kernel no longer puts stack
    /// ids in the drop keys.
    fn sampled_stack(&self, reason: u32, location: u64) -> Option<i32> {
        self.stack_samples
            .get(&(reason, location))?
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(id, _)| *id)
    }

    /// Build the summary from cumulative raw counters; `stacks` gives the frames of a stack id
    /// and `names` the name of a device (netns, ifindex), both read by the caller.
    #[expect(
        clippy::cast_precision_loss,
        reason = "drops per second is a rate for display; f64 holds counts exactly up to 2^53"
    )]
    pub(crate) fn summary(
        &mut self,
        raw: &RawCounts,
        info: &CaptureInfo,
        stacks: &dyn Fn(i32) -> Vec<u64>,
        names: &mut dyn FnMut(u32, u32) -> String,
    ) -> Summary {
        let total = raw.stat(stat::DROPS);
        let lost_budget = raw.stat(stat::DETAIL_LOST_BUDGET);
        let lost_ringbuf = raw.stat(stat::DETAIL_LOST_RINGBUF);
        let sent = raw.stat(stat::DETAIL_SENT);

        let reasons = self.reasons_of(raw);

        let locations = self.locations_of(raw, stacks);

        let in_flows: u64 = raw.flows.iter().map(|(_, c)| c).sum();
        let netns_drops = self.netns_drops_of(raw);
        let (flows, samples) = self.flows_of(raw, names);
        let devices = devices_of(raw, names);
        let rflows = retransmits_of(raw);

        let resets = self.resets(raw, names);

        let inserts = raw.stat(stat::FLOW_INSERTS);
        let live = raw.flows.len() as u64;
        let flow_table = FlowTableStats {
            capacity: info.flow_capacity,
            live,
            evicted: (inserts + raw.pending_new_flows).saturating_sub(live),
            drops_not_in_flows: if info.flow_capacity == 0 { 0 } else { total.saturating_sub(in_flows) },
        };

        let warnings = warnings_of(raw, &flow_table);

        let duration = info.duration_secs.max(1e-9);
        Summary {
            hostname: info.hostname.clone(),
            kernel: info.kernel.clone(),
            started: info.started.clone(),
            duration_secs: info.duration_secs,
            total_drops: total,
            filter: info.filter.as_ref().map(|(expr, scope)| FilterInfo {
                expr: expr.clone(),
                drops_filtered_out: raw.stat(stat::FILTERED),
                retransmits_filtered_out: raw.stat(stat::RETRANS_FILTERED),
                scope: scope.clone(),
            }),
            lost_events: lost_budget + lost_ringbuf,
            drops_per_sec: total as f64 / duration,
            drops_with_detail: sent,
            drops_without_detail: total.saturating_sub(sent),
            reasons,
            locations,
            flows,
            devices,
            // The probe counts every retransmission, the filter's too.
            retransmits: Retransmits {
                total: raw.stat(stat::RETRANSMITS).saturating_sub(raw.stat(stat::RETRANS_FILTERED)),
                flows: rflows,
            },
            probes: info.probes.clone(),
            detail: DetailStats {
                delivered: self.delivered,
                lost_budget,
                lost_ringbuf,
                budget_per_sec: info.detail_budget,
            },
            flow_table,
            warnings,
            samples,
            // Named by the session, which reads /proc (see `Summary::name_namespaces`).
            namespaces: Vec::new(),
            netns_drops,
            // Read by the session, which reads the tc hooks (see `Session::summary_of`).
            tc_drops: Vec::new(),
            xdp_drops: Vec::new(),
            hw_traps: crate::model::HwTraps { reported: hw_traps(&raw.traps), ..Default::default() },
            xdp_exceptions: xdp_exceptions_of(raw),
            resets,
            firewall: firewall::firewall_drops(&raw.firewall),
        }
    }

    /// Drops by reason, most first.
    fn reasons_of(&self, raw: &RawCounts) -> Vec<ReasonCount> {
        let mut by_reason: BTreeMap<u32, u64> = BTreeMap::new();
        for (k, c) in &raw.drops {
            *by_reason.entry(k.reason).or_default() += c;
        }
        let mut reasons: Vec<ReasonCount> = by_reason
            .into_iter()
            .map(|(code, count)| {
                let reason = DropReason::new(code, self.reasons.name(code));
                ReasonCount { description: describe(&reason).to_owned(), reason, count }
            })
            .collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.code.cmp(&b.reason.code)));
        reasons
    }

    /// Drops by (location, reason), with the most seen sampled stack, most first.
    fn locations_of(&self, raw: &RawCounts, stacks: &dyn Fn(i32) -> Vec<u64>) -> Vec<LocationCount> {
        let mut locations: Vec<LocationCount> = raw
            .drops
            .iter()
            .map(|(k, c)| LocationCount {
                symbol: self.syms.symbolize(k.location),
                address: k.location,
                reason: DropReason::new(k.reason, self.reasons.name(k.reason)),
                count: *c,
                stack: match self.sampled_stack(k.reason, k.location) {
                    Some(id) => {
                        from_location(stacks(id), k.location).into_iter().map(|ip| self.syms.symbolize(ip)).collect()
                    }
                    None => Vec::new(),
                },
            })
            .collect();
        locations.sort_by(|a, b| b.count.cmp(&a.count).then(a.symbol.cmp(&b.symbol)));
        locations
    }

    /// Exact drops per (namespace, device, reason).
    fn netns_drops_of(&self, raw: &RawCounts) -> Vec<NetnsDropCount> {
        raw.netns
            .iter()
            .map(|(k, c)| NetnsDropCount {
                netns: NetnsId { inode: k.netns, cookie: k.cookie },
                ifindex: k.ifindex,
                reason: DropReason::new(k.reason, self.reasons.name(k.reason)),
                count: *c,
            })
            .collect()
    }

    /// Every flow the table holds, and the samples, with their firewall chain and NAT tuple.
    fn flows_of(&self, raw: &RawCounts, names: &mut dyn FnMut(u32, u32) -> String) -> (Vec<FlowCount>, Vec<Sample>) {
        let mut flows = Vec::new();
        let chains = firewall::chain_by_flow(&raw.firewall);
        let nat: HashMap<FlowKey, String> = raw.nat.iter().map(|(k, t)| (*k, firewall::nat_text(t))).collect();
        // Every flow the table holds (8192 at most): JSON is complete; text cuts and says so.
        for (k, c) in &raw.flows {
            let (src, dst) = decode::addr_strings(k);
            let (code, location) = self.flow_reason(k.reason);
            flows.push(FlowCount {
                flow: Flow {
                    proto: decode::proto_name(k),
                    family: k.family,
                    src,
                    sport: k.sport,
                    dst,
                    dport: k.dport,
                    netns: NetnsId { inode: k.netns, cookie: k.netns_cookie },
                },
                netns_name: String::new(),
                ifindex: k.ifindex,
                device: names(k.netns, k.ifindex),
                reason: DropReason::new(code, self.reasons.name(code)),
                location: location.map(|a| self.syms.symbolize(a)).unwrap_or_default(),
                count: *c,
                comm: self.flow_process.get(k).map(|p| p.0.clone()).unwrap_or_default(),
                pid: self.flow_process.get(k).map_or(0, |p| p.1),
                chain: chains.get(k).cloned().unwrap_or_default(),
                nat_original: nat.get(k).cloned().unwrap_or_default(),
            });
        }
        let mut samples = self.samples.clone();
        for (s, k) in samples.iter_mut().zip(&self.sample_flows) {
            s.chain = chains.get(k).cloned().unwrap_or_default();
            s.nat_original = nat.get(k).cloned().unwrap_or_default();
        }
        (flows, samples)
    }

    /// The resets of the counters: exact total, per reason and per flow (top 200).
    fn resets(&self, raw: &RawCounts, names: &mut dyn FnMut(u32, u32) -> String) -> Resets {
        // Before 6.10 the tracepoint has no reason: every reset is UNKNOWN, code 0.
        let has_reasons = self.reset_reasons.iter().next().is_some();
        let reason = |code: u32| {
            if has_reasons {
                ResetReason::new(code, self.reset_reasons.name(code))
            } else {
                ResetReason::new(0, decode::reasons::NO_REASON)
            }
        };
        let mut by_reason: BTreeMap<u32, u64> = BTreeMap::new();
        for (k, c) in &raw.resets {
            *by_reason.entry(if has_reasons { k.reason } else { 0 }).or_default() += c;
        }
        let mut reasons: Vec<ResetReasonCount> =
            by_reason.into_iter().map(|(code, count)| ResetReasonCount { reason: reason(code), count }).collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.code.cmp(&b.reason.code)));
        let flows = raw
            .resets
            .iter()
            .take(200)
            .map(|(k, c)| {
                let (src, dst) = decode::addr_strings(k);
                let netns = NetnsId { inode: k.netns, cookie: k.netns_cookie };
                ResetCount {
                    flow: Flow::tcp(src, k.sport, dst, k.dport, netns),
                    ifindex: k.ifindex,
                    device: if k.ifindex == 0 { String::new() } else { names(k.netns, k.ifindex) },
                    reason: reason(k.reason),
                    count: *c,
                }
            })
            .collect();
        let total = raw.stat(stat::RESETS).saturating_sub(raw.stat(stat::RESETS_FILTERED));
        let live = raw.resets.len() as u64;
        Resets { total, reasons, flows, evicted: raw.stat(stat::RESET_INSERTS).saturating_sub(live) }
    }
}

/// Devices: transmissions and drops (from the exact per-namespace counts: the flow table may
/// have lost some), most drops first.
fn devices_of(raw: &RawCounts, names: &mut dyn FnMut(u32, u32) -> String) -> Vec<DeviceCount> {
    let mut dev_drops: BTreeMap<DevKey, u64> = BTreeMap::new();
    for (k, c) in &raw.netns {
        *dev_drops.entry(DevKey { ifindex: k.ifindex, netns: k.netns }).or_default() += c;
    }
    let mut devs: BTreeMap<DevKey, (u64, u64)> = BTreeMap::new();
    for (k, c) in &raw.tx {
        devs.entry(*k).or_default().0 += c;
    }
    for (k, c) in dev_drops {
        if k.ifindex != 0 {
            devs.entry(k).or_default().1 += c;
        }
    }
    let mut devices: Vec<DeviceCount> = devs
        .into_iter()
        .map(|(k, (tx, drops))| DeviceCount {
            ifindex: k.ifindex,
            name: names(k.netns, k.ifindex),
            netns: k.netns,
            tx_packets: tx,
            drops,
            tx_unavailable: raw.tx_unavailable.contains(&k.netns),
        })
        .collect();
    devices.sort_by(|a, b| b.drops.cmp(&a.drops).then(b.tx_packets.cmp(&a.tx_packets)));
    devices
}

/// Retransmissions per flow, most first.
fn retransmits_of(raw: &RawCounts) -> Vec<RetransCount> {
    let mut rflows: Vec<RetransCount> = raw
        .retrans
        .iter()
        .map(|(k, c)| {
            let (src, dst) = decode::addr_strings(k);
            let flow = Flow::tcp(src, k.sport, dst, k.dport, NetnsId { inode: k.netns, cookie: 0 });
            RetransCount { flow, count: *c }
        })
        .collect();
    rflows.sort_by_key(|r| std::cmp::Reverse(r.count));
    rflows
}

/// What the maps could not hold.
fn warnings_of(raw: &RawCounts, flow_table: &FlowTableStats) -> Vec<String> {
    let mut warnings = Vec::new();
    if raw.stat(stat::DROP_KEY_FAILS) > 0 {
        warnings
            .push(format!("{} drops not in the reason x location table (map full)", raw.stat(stat::DROP_KEY_FAILS)));
    }
    if flow_table.evicted > 0 {
        warnings.push(format!(
            "{} flows evicted from the {}-entry flow table; {} drops are not in the flow list",
            flow_table.evicted, flow_table.capacity, flow_table.drops_not_in_flows
        ));
    }
    if raw.stat(stat::NETNS_FAILS) > 0 {
        warnings.push(format!("{} drops not in the per-namespace counts (map full)", raw.stat(stat::NETNS_FAILS)));
    }
    if raw.stat(stat::STACK_FAILS) > 0 {
        warnings.push(format!("{} stacks could not be recorded", raw.stat(stat::STACK_FAILS)));
    }
    warnings
}

/// XDP programs' exceptions by program, action and device.
fn xdp_exceptions_of(raw: &RawCounts) -> Vec<crate::model::XdpException> {
    raw.xdp_exceptions
        .iter()
        .map(|(k, c)| crate::model::XdpException {
            prog_id: k.prog_id,
            prog_name: String::new(),
            action: match k.act {
                0 => "XDP_ABORTED".to_owned(),
                1 => "XDP_DROP".to_owned(),
                2 => "XDP_PASS".to_owned(),
                3 => "XDP_TX".to_owned(),
                4 => "XDP_REDIRECT".to_owned(),
                a => format!("action {a}"),
            },
            ifindex: k.ifindex,
            count: *c,
        })
        .collect()
}

/// A drop's kernel stack from its location on: the frames above it are the tracer's own (the
/// BPF program, with no symbol of its own, `bpf_trace_run*`, and the function that freed the
/// skb), not the path of the packet. A stack without the location is kept whole.
fn from_location(frames: Vec<u64>, location: u64) -> Vec<u64> {
    match frames.iter().position(|ip| *ip == location) {
        Some(i) => frames[i..].to_vec(),
        None => frames,
    }
}

/// Per-(reason, location) and per-flow drop counts of `now` minus `before` (`watch` intervals,
/// `serve`'s diagnosis windows).
pub(crate) fn interval(before: &RawCounts, now: &RawCounts) -> RawCounts {
    let mut drops = grown(&before.drops, &now.drops);
    drops.sort_by_key(|d| std::cmp::Reverse(d.1));
    let stats = now
        .stats
        .iter()
        .enumerate()
        .map(|(i, v)| v.saturating_sub(before.stats.get(i).copied().unwrap_or(0)))
        .collect();
    // Flows: what each grew by (a flow evicted from the LRU table and seen again counts from
    // zero, so its growth is its count).
    let prev_flows: HashMap<_, _> = before.flows.iter().map(|(k, c)| (*k, *c)).collect();
    let flows = now
        .flows
        .iter()
        .filter_map(|(k, c)| {
            let p = prev_flows.get(k).copied().unwrap_or(0);
            let d = if *c >= p { c - p } else { *c };
            (d > 0).then_some((*k, d))
        })
        .collect();
    // Per-namespace counts only grow (a key deleted for a namespace gone is absent from `now`).
    let netns = grown(&before.netns, &now.netns);
    RawCounts { stats, drops, flows, netns, ..RawCounts::default() }
}

/// What each key of counts that only grow grew by from `before` to `now` (keys that did not,
/// left out).
fn grown<K: Copy + Eq + std::hash::Hash>(before: &[(K, u64)], now: &[(K, u64)]) -> Vec<(K, u64)> {
    let prev: HashMap<K, u64> = before.iter().copied().collect();
    now.iter()
        .filter_map(|(k, c)| {
            let d = c.saturating_sub(prev.get(k).copied().unwrap_or(0));
            (d > 0).then_some((*k, d))
        })
        .collect()
}

/// A NUL-padded name of a trap key.
fn trap_name(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

/// The tracepoint's trap reports, largest first.
fn hw_traps(raw: &[(pktloss_common::TrapKey, u64)]) -> Vec<crate::model::HwTrap> {
    let mut out: Vec<crate::model::HwTrap> = raw
        .iter()
        .map(|(k, c)| crate::model::HwTrap {
            device: format!("{}/{}", trap_name(&k.bus), trap_name(&k.dev)),
            trap: trap_name(&k.trap),
            group: trap_name(&k.group),
            input_port: trap_name(&k.input),
            count: *c,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.device, &a.trap).cmp(&(&b.device, &b.trap))));
    out
}

#[cfg(test)]
mod tests {
    use pktloss_common::{DropKey, NetnsKey, REASON_NONE};

    use super::*;

    fn raw() -> RawCounts {
        let mut stats = vec![0; stat::COUNT as usize];
        stats[stat::DROPS as usize] = 15;
        stats[stat::DETAIL_SENT as usize] = 4;
        stats[stat::DETAIL_LOST_BUDGET as usize] = 11;
        stats[stat::FLOW_INSERTS as usize] = 3;
        let mut f1 =
            FlowKey { family: 4, l4proto: 17, sport: 1000, dport: 9, netns: 42, reason: 3, ..FlowKey::default() };
        f1.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        f1.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let f2 = FlowKey { family: 6, l4proto: 6, dport: 80, netns: 42, reason: 12, ..FlowKey::default() };
        RawCounts {
            stats,
            drops: vec![
                (DropKey { location: 0xffff_ffff_81a0_0010, reason: 3, stack_id: -1 }, 10),
                (DropKey { location: 0xffff_ffff_81b0_0000, reason: 12, stack_id: -1 }, 5),
            ],
            drop_bytes: vec![],
            flows: vec![(f1, 10), (f2, 4)],
            tx: vec![],
            tx_unavailable: vec![],
            retrans: vec![],
            pending_new_flows: 0,
            netns: vec![
                (NetnsKey { netns: 42, reason: 3, ..NetnsKey::default() }, 10),
                (NetnsKey { netns: 42, reason: 12, ..NetnsKey::default() }, 4),
            ],
            resets: vec![],
            xdp_exceptions: vec![],
            traps: vec![],
            firewall: vec![],
            nat: vec![],
        }
    }

    fn agg() -> Aggregator {
        let reasons = ReasonTable::new([(3, "NO_SOCKET".to_owned()), (12, "NETFILTER_DROP".to_owned())]);
        let syms = Kallsyms::parse("ffffffff81a00000 T __udp4_lib_rcv\nffffffff81b00000 T nf_hook_slow\n");
        Aggregator::new(reasons, syms, 0)
    }

    #[test]
    fn summary_is_exact_and_accounts_for_everything() {
        let mut a = agg();
        let info =
            CaptureInfo { duration_secs: 5.0, flow_capacity: 8192, detail_budget: Some(4), ..CaptureInfo::default() };
        let s = a.summary(&raw(), &info, &|_| Vec::new(), &mut |_, _| String::new());
        assert_eq!(s.total_drops, 15);
        assert_eq!(s.reasons[0].reason, "NO_SOCKET");
        assert_eq!(s.reasons[0].count, 10);
        assert_eq!(s.reasons[1].reason.code, 12);
        assert_eq!(s.locations[0].symbol, "__udp4_lib_rcv+0x10");
        assert_eq!(s.flows[0].flow.src, "10.0.0.1");
        assert_eq!(s.flows[0].flow.proto, "udp");
        assert_eq!(s.flows[1].flow.dst, "::");
        assert_eq!(s.lost_events, 11);
        assert_eq!(s.drops_with_detail, 4);
        assert_eq!(s.drops_without_detail, 11);
        assert_eq!(s.flow_table.evicted, 1);
        assert_eq!(s.flow_table.drops_not_in_flows, 1);
        assert!((s.drops_per_sec - 3.0).abs() < 1e-9);
        assert_eq!(s.warnings.len(), 1);
    }

    /// A kernel without drop reasons (5.10): the programs key flows by the low half of the
    /// drop location, and the summary names it, with reason UNKNOWN.
    #[test]
    fn resets_by_reason_and_flow() {
        let mut a = agg();
        let mut raw = raw();
        raw.stats[stat::RESETS as usize] = 9;
        raw.stats[stat::RESET_INSERTS as usize] = 3;
        let mut k = FlowKey {
            family: 4,
            l4proto: 6,
            sport: 9,
            dport: 4000,
            netns: 42,
            ifindex: 1,
            reason: 1,
            ..FlowKey::default()
        };
        k.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        k.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.resets = vec![(k, 6), (FlowKey { reason: 11, ..k }, 2)];
        // Before 6.10 there are no reset reasons: every reset is UNKNOWN.
        let info = CaptureInfo { duration_secs: 1.0, ..CaptureInfo::default() };
        let s = a.summary(&raw, &info, &|_| Vec::new(), &mut |_, i| format!("dev{i}"));
        assert_eq!((s.resets.total, s.resets.evicted), (9, 1));
        assert_eq!(s.resets.reasons.len(), 1, "{:?}", s.resets.reasons);
        assert_eq!((s.resets.reasons[0].reason.as_str(), s.resets.reasons[0].count), ("UNKNOWN", 8));
        a.reset_reasons = ReasonTable::new([(1, "NO_SOCKET".to_owned()), (11, "TCP_ABORT_ON_CLOSE".to_owned())]);
        let s = a.summary(&raw, &info, &|_| Vec::new(), &mut |_, i| format!("dev{i}"));
        let by: Vec<(&str, u64)> = s.resets.reasons.iter().map(|r| (r.reason.as_str(), r.count)).collect();
        assert_eq!(by, [("NO_SOCKET", 6), ("TCP_ABORT_ON_CLOSE", 2)]);
        let f = &s.resets.flows[0];
        assert_eq!(
            (f.flow.src.as_str(), f.flow.sport, f.flow.dport, f.device.as_str(), f.count),
            ("127.0.0.1", 9, 4000, "dev1", 6)
        );
    }

    #[test]
    fn flows_of_a_kernel_without_reasons_carry_their_location() {
        let syms = Kallsyms::parse("ffffffff81a00000 T __udp4_lib_rcv\nffffffff81b00000 T nf_hook_slow\n");
        let mut a = Aggregator::new(ReasonTable::default(), syms, 0);
        a.location_keyed_reason = REASON_NONE;
        let none = REASON_NONE;
        let udp = FlowKey { family: 4, l4proto: 17, dport: 9, netns: 42, reason: 0x81a0_0010, ..FlowKey::default() };
        let nft = FlowKey { reason: 0x81b0_0093, ..udp };
        let raw = RawCounts {
            stats: vec![0; stat::COUNT as usize],
            drops: vec![
                (DropKey { location: 0xffff_ffff_81a0_0010, reason: none, stack_id: -1 }, 7),
                (DropKey { location: 0xffff_ffff_81b0_0093, reason: none, stack_id: -1 }, 3),
            ],
            flows: vec![(udp, 7), (nft, 3)],
            ..RawCounts::default()
        };
        let s = a.summary(&raw, &CaptureInfo::default(), &|_| Vec::new(), &mut |_, _| String::new());
        assert_eq!((s.reasons[0].reason.as_str(), s.reasons[0].count), ("UNKNOWN", 10));
        let flows: Vec<(&str, &str, u32, u64)> =
            s.flows.iter().map(|f| (f.reason.as_str(), f.location.as_str(), f.reason.code, f.count)).collect();
        assert_eq!(flows, [("UNKNOWN", "__udp4_lib_rcv+0x10", none, 7), ("UNKNOWN", "nf_hook_slow+0x93", none, 3)]);
        assert!(
            s.flows[0].is("UNKNOWN", Some("__udp4_lib_rcv+0x10"))
                && !s.flows[0].is("UNKNOWN", Some("nf_hook_slow+0x93"))
        );
    }

    /// A kernel with reasons: `NOT_SPECIFIED` drops are keyed by location (a host's vsock drop
    /// and a namespace's IPv6 chatter at `ip6_mc_input` are two flows with their places), other
    /// reasons by reason.
    #[test]
    fn not_specified_flows_carry_their_location() {
        let syms = Kallsyms::parse("ffffffff81a00000 T virtio_transport_recv_pkt\nffffffff81b00000 T ip6_mc_input\n");
        let reasons = ReasonTable::new([(2, "NOT_SPECIFIED".to_owned()), (3, "NO_SOCKET".to_owned())]);
        let mut a = Aggregator::new(reasons, syms, 0);
        a.location_keyed_reason = 2;
        let vsock = FlowKey { netns: 1, reason: 0x81a0_0434, ..FlowKey::default() };
        let mld = FlowKey { family: 6, l4proto: 0, netns: 42, reason: 0x81b0_0010, ..FlowKey::default() };
        let udp = FlowKey { family: 4, l4proto: 17, dport: 9, netns: 42, reason: 3, ..FlowKey::default() };
        let raw = RawCounts {
            stats: vec![0; stat::COUNT as usize],
            drops: vec![
                (DropKey { location: 0xffff_ffff_81a0_0434, reason: 2, stack_id: -1 }, 1),
                (DropKey { location: 0xffff_ffff_81b0_0010, reason: 2, stack_id: -1 }, 4),
                (DropKey { location: 0xffff_ffff_81a0_0000, reason: 3, stack_id: -1 }, 5),
            ],
            flows: vec![(vsock, 1), (mld, 4), (udp, 5)],
            ..RawCounts::default()
        };
        let s = a.summary(&raw, &CaptureInfo::default(), &|_| Vec::new(), &mut |_, _| String::new());
        let mut flows: Vec<(&str, &str, u64)> =
            s.flows.iter().map(|f| (f.reason.as_str(), f.location.as_str(), f.count)).collect();
        flows.sort_unstable();
        assert_eq!(
            flows,
            [
                ("NOT_SPECIFIED", "ip6_mc_input+0x10", 4),
                ("NOT_SPECIFIED", "virtio_transport_recv_pkt+0x434", 1),
                ("NO_SOCKET", "", 5)
            ]
        );
        let vs = s.flows.iter().find(|f| f.count == 1).expect("vsock flow");
        assert!(
            vs.is("NOT_SPECIFIED", Some("virtio_transport_recv_pkt+0x434"))
                && !vs.is("NOT_SPECIFIED", Some("ip6_mc_input+0x10"))
        );
    }

    /// A stack recorded on 6.18 (`capture --stacks`, `NO_SOCKET` at `__udp4_lib_rcv+0x4bc`): two
    /// frames of the BPF program (symbolized past `_einittext`), `bpf_trace_run4` and
    /// `sk_skb_reason_drop` come before the location.
    #[test]
    fn stacks_start_at_the_drop_location() {
        let syms = Kallsyms::parse(
            "ffffffff81a00000 T __udp4_lib_rcv\nffffffff81900000 T bpf_trace_run4\nffffffff81800000 T sk_skb_reason_drop\nffffffff81b00000 T ip_protocol_deliver_rcu\nffffffff82000000 T _einittext\n",
        );
        let location = 0xffff_ffff_81a0_04bc;
        let frames = vec![
            0xffff_ffff_be63_b609,
            0xffff_ffff_be63_b1a2,
            0xffff_ffff_8190_010d,
            0xffff_ffff_8180_0090,
            location,
            0xffff_ffff_81b0_00d8,
        ];
        let names: Vec<String> = from_location(frames, location).into_iter().map(|ip| syms.symbolize(ip)).collect();
        assert_eq!(names, ["__udp4_lib_rcv+0x4bc", "ip_protocol_deliver_rcu+0xd8"]);
        assert_eq!(from_location(vec![1, 2], 3), [1, 2], "a stack without the location stays whole");
    }

    /// Every flow of the table is in the summary (JSON lists them all; text cuts and says so).
    #[test]
    fn every_flow_is_in_the_summary() {
        let mut raw = raw();
        raw.flows = (0..300u16)
            .map(|i| {
                (FlowKey { family: 4, l4proto: 17, sport: i, dport: 9, netns: 42, reason: 3, ..FlowKey::default() }, 10)
            })
            .collect();
        let s = agg().summary(&raw, &CaptureInfo::default(), &|_| Vec::new(), &mut |_, _| String::new());
        assert_eq!(s.flows.len(), 300);
        assert_eq!(s.flows.iter().map(|f| f.count).sum::<u64>(), 3000);
        let text = crate::render::summary::text(&s);
        assert!(text.contains("... and 280 more (all of them are in --format json)"), "{text}");
    }

    #[test]
    fn interval_subtracts() {
        let a = raw();
        let mut b = raw();
        b.drops[0].1 = 25;
        b.stats[stat::DROPS as usize] = 30;
        let d = interval(&a, &b);
        assert_eq!(d.stat(stat::DROPS), 15);
        assert_eq!(d.drops.len(), 1);
        assert_eq!(d.drops[0].1, 15);
    }
}
