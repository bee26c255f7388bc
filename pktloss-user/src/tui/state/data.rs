//! The data model: folds cumulative updates into per-row counts since start/reset, rates,
//! trends and the chart history, and builds the rows every panel shows (unfiltered, unsorted).
//!
//! Time is the capture's own (`Summary::duration_secs`), not the wall clock: a "tick" happens
//! when an update is at least ~1 s newer than the previous tick, and computes per-row rates,
//! per-row trends (one point per tick) and a chart point. Counts shown are cumulative minus the
//! baseline saved by `r`.
use std::collections::{HashMap, VecDeque};

use crate::{
    model::{DropReason, Flow, FlowCount, Sample},
    tui::{CauseView, CounterRow, Update},
};

/// How much drop-rate history the chart keeps, in seconds of capture time.
pub(crate) const HISTORY_SECS: f64 = 300.0;
/// Points kept per row for the trend column.
pub(crate) const TREND_LEN: usize = 32;
/// Minimum capture time between two ticks.
const TICK_SECS: f64 = 0.95;
/// Separator inside internal keys.
const SEP: &str = "\u{1f}";

/// Rate and trend of one row, from the raw (not rebaselined) cumulative count.
#[derive(Clone, Debug, Default)]
struct Series {
    tick_raw: u64,
    rate: f64,
    trend: VecDeque<u64>,
}

impl Series {
    #[expect(clippy::cast_precision_loss, reason = "a per-second rate for display")]
    fn tick(&mut self, raw: u64, dt: f64) {
        let delta = raw.saturating_sub(self.tick_raw);
        self.tick_raw = raw;
        self.rate = delta as f64 / dt;
        if self.trend.len() == TREND_LEN {
            self.trend.pop_front();
        }
        self.trend.push_back(delta);
    }
}

/// One row of the drops table: a (reason, location), summed over its stacks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DropRow {
    pub key: String,
    pub reason: DropReason,
    pub symbol: String,
    pub count: u64,
    pub rate: f64,
    /// Of all drops since start/reset, 0..=1.
    pub share: f64,
    /// Drops per tick, oldest first.
    pub trend: Vec<u64>,
    /// Distinct kernel stacks with their counts, largest first.
    pub stacks: Vec<(u64, Vec<String>)>,
}

/// One row of the flows table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FlowRow {
    pub key: String,
    /// `count` is since start/reset.
    pub flow: FlowCount,
    pub rate: f64,
    pub trend: Vec<u64>,
}

/// One row of the causes panel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CauseRow {
    pub key: String,
    /// `drops` is since start/reset.
    pub cause: CauseView,
    pub rate: f64,
    pub share: f64,
}

/// One row of the counters panel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CounterLine {
    pub key: String,
    /// `total` is since start/reset.
    pub row: CounterRow,
    pub rate: f64,
    pub trend: Vec<u64>,
}

/// The data side of the state: latest update, baseline, rates, trends and history. Pause
/// freezes a clone of it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Data {
    /// Latest update, cumulative since the capture start.
    pub update: Update,
    /// Updates received.
    pub updates: u64,
    /// Capture time of the last reset (0 = never reset).
    pub reset_at: f64,
    /// Raw counts at the last reset, by internal key.
    base: HashMap<String, u64>,
    series: HashMap<String, Series>,
    total: Series,
    last_tick: f64,
    /// (capture time, drops/s) at one point per tick, the last [`HISTORY_SECS`].
    pub history: VecDeque<(f64, f64)>,
}

fn drop_key(reason: &str, symbol: &str) -> String {
    ["d", reason, symbol].join(SEP)
}
fn stack_key(reason: &str, symbol: &str, stack: &[String]) -> String {
    format!("s{SEP}{reason}{SEP}{symbol}{SEP}{}", stack.join(","))
}
/// A flow row is one flow table entry: the location is part of it on kernels without drop
/// reasons.
fn flow_key(f: &FlowCount) -> String {
    // The flow's whole identity, its namespace's cookie with it: two namespaces that had one
    // inode are two rows.
    let Flow { proto, family, src, sport, dst, dport, netns } = &f.flow;
    format!(
        "f{SEP}{proto}{SEP}{family}{SEP}{src}{SEP}{sport}{SEP}{dst}{SEP}{dport}{SEP}{netns}{SEP}{}{SEP}{}{SEP}{}",
        f.ifindex, f.reason, f.location
    )
}
fn cause_key(c: &CauseView) -> String {
    ["c", c.id.as_str()].join(SEP)
}
fn counter_key(c: &CounterRow) -> String {
    ["n", &c.scope, &c.counter].join(SEP)
}
const K_TOTAL: &str = "h\u{1f}total";
const K_LOST: &str = "h\u{1f}lost";
const K_WITH: &str = "h\u{1f}with";
const K_WITHOUT: &str = "h\u{1f}without";
const K_RETRANS: &str = "h\u{1f}retrans";

impl Data {
    /// Take a new cumulative update; tick when it is ~1 s newer than the last tick.
    pub(crate) fn ingest(&mut self, update: Update) {
        let t = update.summary.duration_secs;
        if t + 1e-9 < self.last_tick {
            // A new capture behind the same channel: start over.
            *self = Data::default();
        }
        self.update = update;
        self.updates += 1;
        let dt = t - self.last_tick;
        if dt >= TICK_SECS {
            self.tick(t, dt);
        }
    }

    fn tick(&mut self, t: f64, dt: f64) {
        let raw = self.series_raw();
        self.series.retain(|k, _| raw.contains_key(k));
        for (key, value) in raw {
            self.series.entry(key).or_default().tick(value, dt);
        }
        self.total.tick(self.update.summary.total_drops, dt);
        self.history.push_back((t, self.total.rate));
        while self.history.front().is_some_and(|&(t0, _)| t - t0 > HISTORY_SECS) {
            self.history.pop_front();
        }
        self.last_tick = t;
    }

    /// Raw cumulative count of every row that has a rate/trend.
    fn series_raw(&self) -> HashMap<String, u64> {
        let u = &self.update;
        let mut raw: HashMap<String, u64> = HashMap::new();
        for l in &u.summary.locations {
            *raw.entry(drop_key(&l.reason, &l.symbol)).or_default() += l.count;
        }
        for f in &u.summary.flows {
            *raw.entry(flow_key(f)).or_default() += f.count;
        }
        for c in &u.causes {
            *raw.entry(cause_key(c)).or_default() += c.drops;
        }
        for c in &u.counters {
            *raw.entry(counter_key(c)).or_default() += c.total;
        }
        raw
    }

    /// Rebaseline: counts restart from zero, trends and chart start over.
    pub(crate) fn reset(&mut self) {
        let u = &self.update;
        let s = &u.summary;
        let mut base: HashMap<String, u64> = HashMap::new();
        for l in &s.locations {
            *base.entry(stack_key(&l.reason, &l.symbol, &l.stack)).or_default() += l.count;
        }
        for f in &s.flows {
            *base.entry(flow_key(f)).or_default() += f.count;
        }
        for c in &u.causes {
            *base.entry(cause_key(c)).or_default() += c.drops;
        }
        for c in &u.counters {
            *base.entry(counter_key(c)).or_default() += c.total;
        }
        base.insert(K_TOTAL.into(), s.total_drops);
        base.insert(K_LOST.into(), s.lost_events);
        base.insert(K_WITH.into(), s.drops_with_detail);
        base.insert(K_WITHOUT.into(), s.drops_without_detail);
        base.insert(K_RETRANS.into(), s.retransmits.total);
        self.base = base;
        self.reset_at = s.duration_secs;
        self.history.clear();
        for series in self.series.values_mut() {
            series.trend.clear();
        }
        self.total.trend.clear();
    }

    fn adj(&self, key: &str, raw: u64) -> u64 {
        raw.saturating_sub(self.base.get(key).copied().unwrap_or(0))
    }

    fn series(&self, key: &str) -> (f64, Vec<u64>) {
        self.series.get(key).map(|s| (s.rate, s.trend.iter().copied().collect())).unwrap_or_default()
    }

    /// A first update arrived.
    pub(crate) fn has_data(&self) -> bool {
        self.updates > 0
    }
    /// Capture time, seconds since start.
    pub(crate) fn now(&self) -> f64 {
        self.update.summary.duration_secs
    }
    /// Capture time since the last reset (or start).
    pub(crate) fn elapsed(&self) -> f64 {
        (self.now() - self.reset_at).max(0.0)
    }
    /// Drops since start/reset.
    pub(crate) fn total(&self) -> u64 {
        self.adj(K_TOTAL, self.update.summary.total_drops)
    }
    /// Drops per second over the last tick.
    pub(crate) fn rate(&self) -> f64 {
        self.total.rate
    }
    /// Mean drops per second since start/reset.
    #[expect(clippy::cast_precision_loss, reason = "a mean rate for display")]
    pub(crate) fn avg_rate(&self) -> f64 {
        let e = self.elapsed();
        if e > 0.0 { self.total() as f64 / e } else { 0.0 }
    }
    /// Detail events not delivered since start/reset.
    pub(crate) fn lost(&self) -> u64 {
        self.adj(K_LOST, self.update.summary.lost_events)
    }
    /// Share of drops with a detail event (0..=1), None before any drop.
    #[expect(clippy::cast_precision_loss, reason = "a share (0..=1) for display")]
    pub(crate) fn coverage(&self) -> Option<f64> {
        let s = &self.update.summary;
        let with = self.adj(K_WITH, s.drops_with_detail);
        let without = self.adj(K_WITHOUT, s.drops_without_detail);
        (with + without > 0).then(|| with as f64 / (with + without) as f64)
    }
    /// TCP retransmissions since start/reset.
    pub(crate) fn retransmits(&self) -> u64 {
        self.adj(K_RETRANS, self.update.summary.retransmits.total)
    }

    /// Drops rows with a count since start/reset, unsorted.
    #[expect(clippy::cast_precision_loss, reason = "each row's share of all drops, a fraction for display")]
    pub(crate) fn drop_rows(&self) -> Vec<DropRow> {
        let total = self.total().max(1) as f64;
        let mut rows: Vec<DropRow> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for l in &self.update.summary.locations {
            let key = drop_key(&l.reason, &l.symbol);
            let count = self.adj(&stack_key(&l.reason, &l.symbol, &l.stack), l.count);
            let i = *index.entry(key.clone()).or_insert_with(|| {
                rows.push(DropRow {
                    key,
                    reason: l.reason.clone(),
                    symbol: l.symbol.clone(),
                    count: 0,
                    rate: 0.0,
                    share: 0.0,
                    trend: Vec::new(),
                    stacks: Vec::new(),
                });
                rows.len() - 1
            });
            rows[i].count += count;
            if count > 0 && !l.stack.is_empty() {
                rows[i].stacks.push((count, l.stack.clone()));
            }
        }
        rows.retain(|r| r.count > 0);
        for r in &mut rows {
            (r.rate, r.trend) = self.series(&r.key);
            r.share = r.count as f64 / total;
            r.stacks.sort_by_key(|s| std::cmp::Reverse(s.0));
        }
        rows
    }

    /// Flow rows with a count since start/reset, unsorted.
    pub(crate) fn flow_rows(&self) -> Vec<FlowRow> {
        self.update
            .summary
            .flows
            .iter()
            .filter_map(|f| {
                let key = flow_key(f);
                let count = self.adj(&key, f.count);
                (count > 0).then(|| {
                    let (rate, trend) = self.series(&key);
                    let mut flow = f.clone();
                    flow.count = count;
                    if flow.device.is_empty() {
                        flow.device = self.device_name(f.flow.netns.inode, f.ifindex).unwrap_or_default();
                    }
                    FlowRow { key, flow, rate, trend }
                })
            })
            .collect()
    }

    /// Causes, ranked by drops since start/reset (then title).
    #[expect(clippy::cast_precision_loss, reason = "each cause's share of all drops, a fraction for display")]
    pub(crate) fn cause_rows(&self) -> Vec<CauseRow> {
        let mut rows: Vec<CauseRow> = self
            .update
            .causes
            .iter()
            .map(|c| {
                let key = cause_key(c);
                let mut cause = c.clone();
                cause.drops = self.adj(&key, c.drops);
                let (rate, _) = self.series(&key);
                CauseRow { key, share: 0.0, cause, rate }
            })
            .collect();
        // Shares of every drop known: the traced ones, or more when counters show drops that
        // no event traced (a cause's drops are max(events, counters)). They add up to 100 %
        // at most.
        let explained: u64 = rows.iter().map(|r| r.cause.drops).sum();
        let total = self.total().max(explained).max(1) as f64;
        for r in &mut rows {
            r.share = r.cause.drops as f64 / total;
        }
        rows.sort_by(|a, b| b.cause.drops.cmp(&a.cause.drops).then_with(|| a.cause.title.cmp(&b.cause.title)));
        rows
    }

    /// Counters that moved since start/reset, unsorted.
    pub(crate) fn counter_rows(&self) -> Vec<CounterLine> {
        self.update
            .counters
            .iter()
            .filter_map(|c| {
                let key = counter_key(c);
                let total = self.adj(&key, c.total);
                (total > 0).then(|| {
                    let (rate, trend) = self.series(&key);
                    let mut row = c.clone();
                    row.total = total;
                    CounterLine { key, row, rate, trend }
                })
            })
            .collect()
    }

    /// Sampled drops since start/reset.
    #[expect(
        clippy::cast_precision_loss,
        reason = "sample times are nanoseconds since the capture start, exact in f64 below 2^53 ns (104 days); the reset time is an f64"
    )]
    pub(crate) fn samples(&self) -> impl Iterator<Item = &Sample> {
        let from_ns = self.reset_at * 1e9;
        self.update.summary.samples.iter().filter(move |s| s.t_ns as f64 >= from_ns)
    }

    /// Name of a device, from the summary's devices or flows.
    pub(crate) fn device_name(&self, netns: u32, ifindex: u32) -> Option<String> {
        let s = &self.update.summary;
        s.devices
            .iter()
            .find(|d| d.netns == netns && d.ifindex == ifindex && !d.name.is_empty())
            .map(|d| d.name.clone())
            .or_else(|| {
                s.flows
                    .iter()
                    .find(|f| f.flow.netns.inode == netns && f.ifindex == ifindex && !f.device.is_empty())
                    .map(|f| f.device.clone())
            })
    }

    /// Human description of a drop reason, when the summary has one.
    pub(crate) fn reason_description(&self, reason: &str) -> Option<&str> {
        self.update
            .summary
            .reasons
            .iter()
            .find(|r| r.reason == reason && !r.description.is_empty())
            .map(|r| r.description.as_str())
    }
}
