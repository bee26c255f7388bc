//! TUI state: folds cumulative updates into rates, trends and chart history; holds selection,
//! sort, filter, pause, reset and overlays. No I/O: everything here is unit-testable.
//!
//! Time is the capture's own (`Summary::duration_secs`), not the wall clock: a "tick" happens
//! when an update is at least ~1 s newer than the previous tick, and computes per-row rates,
//! per-row trends (one point per tick) and a chart point. Counts shown are cumulative minus the
//! baseline saved by `r`. Pause freezes a copy of the data and keeps ingesting behind it.
use std::collections::{HashMap, VecDeque};

use super::{CauseView, CounterRow, Update, input::Action, input::Mode};
use crate::model::{FlowCount, Sample};

/// How much drop-rate history the chart keeps, in seconds of capture time.
pub const HISTORY_SECS: f64 = 300.0;
/// Points kept per row for the trend column.
pub const TREND_LEN: usize = 32;
/// Minimum capture time between two ticks.
const TICK_SECS: f64 = 0.95;
/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;
/// Separator inside internal keys.
const SEP: &str = "\u{1f}";

/// The panels, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Panel {
    Drops,
    Causes,
    Flows,
    Counters,
}

impl Panel {
    pub const ALL: [Panel; 4] = [Panel::Drops, Panel::Causes, Panel::Flows, Panel::Counters];

    pub fn index(self) -> usize {
        self as usize
    }
    pub fn next(self) -> Panel {
        Panel::ALL[(self.index() + 1) % 4]
    }
    pub fn prev(self) -> Panel {
        Panel::ALL[(self.index() + 3) % 4]
    }
    pub fn title(self) -> &'static str {
        match self {
            Panel::Drops => "Drops",
            Panel::Causes => "Causes",
            Panel::Flows => "Flows",
            Panel::Counters => "Counters",
        }
    }
}

/// Sort order of the drops, flows and counters tables (causes are always ranked by drops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Count since start/reset, largest first.
    Count,
    /// Current rate, largest first.
    Rate,
    /// Reason (counter name for counters), A-Z.
    Reason,
    /// Location (flow tuple for flows, scope for counters), A-Z.
    Location,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Count => SortKey::Rate,
            SortKey::Rate => SortKey::Reason,
            SortKey::Reason => SortKey::Location,
            SortKey::Location => SortKey::Count,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Count => "count",
            SortKey::Rate => "rate",
            SortKey::Reason => "reason",
            SortKey::Location => "location",
        }
    }
}

/// Rate and trend of one row, from the raw (not rebaselined) cumulative count.
#[derive(Clone, Debug, Default)]
struct Series {
    tick_raw: u64,
    rate: f64,
    trend: VecDeque<u64>,
}

impl Series {
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
pub struct DropRow {
    pub key: String,
    pub reason: String,
    pub code: u32,
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
pub struct FlowRow {
    pub key: String,
    /// `count` is since start/reset.
    pub flow: FlowCount,
    pub rate: f64,
    pub trend: Vec<u64>,
}

/// One row of the causes panel.
#[derive(Clone, Debug, PartialEq)]
pub struct CauseRow {
    pub key: String,
    /// `drops` is since start/reset.
    pub cause: CauseView,
    pub rate: f64,
    pub share: f64,
}

/// One row of the counters panel.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterLine {
    pub key: String,
    /// `total` is since start/reset.
    pub row: CounterRow,
    pub rate: f64,
    pub trend: Vec<u64>,
}

/// The data side of the state: latest update, baseline, rates, trends and history. Pause
/// freezes a clone of it.
#[derive(Clone, Debug, Default)]
pub struct Data {
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
fn flow_key(f: &FlowCount) -> String {
    format!(
        "f{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
        f.proto, f.src, f.sport, f.dst, f.dport, f.netns, f.ifindex, f.reason
    )
}
fn cause_key(c: &CauseView) -> String {
    ["c", &c.id].join(SEP)
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
    pub fn ingest(&mut self, update: Update) {
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
    pub fn reset(&mut self) {
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
    pub fn has_data(&self) -> bool {
        self.updates > 0
    }
    /// Capture time, seconds since start.
    pub fn now(&self) -> f64 {
        self.update.summary.duration_secs
    }
    /// Capture time since the last reset (or start).
    pub fn elapsed(&self) -> f64 {
        (self.now() - self.reset_at).max(0.0)
    }
    /// Drops since start/reset.
    pub fn total(&self) -> u64 {
        self.adj(K_TOTAL, self.update.summary.total_drops)
    }
    /// Drops per second over the last tick.
    pub fn rate(&self) -> f64 {
        self.total.rate
    }
    /// Mean drops per second since start/reset.
    pub fn avg_rate(&self) -> f64 {
        let e = self.elapsed();
        if e > 0.0 { self.total() as f64 / e } else { 0.0 }
    }
    /// Detail events not delivered since start/reset.
    pub fn lost(&self) -> u64 {
        self.adj(K_LOST, self.update.summary.lost_events)
    }
    /// Share of drops with a detail event (0..=1), None before any drop.
    pub fn coverage(&self) -> Option<f64> {
        let s = &self.update.summary;
        let with = self.adj(K_WITH, s.drops_with_detail);
        let without = self.adj(K_WITHOUT, s.drops_without_detail);
        (with + without > 0).then(|| with as f64 / (with + without) as f64)
    }
    /// TCP retransmissions since start/reset.
    pub fn retransmits(&self) -> u64 {
        self.adj(K_RETRANS, self.update.summary.retransmits.total)
    }
    /// Total-drop trend, one point per tick.
    pub fn total_trend(&self) -> Vec<u64> {
        self.total.trend.iter().copied().collect()
    }

    /// Drops rows with a count since start/reset, unsorted.
    pub fn drop_rows(&self) -> Vec<DropRow> {
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
                    code: l.code,
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
    pub fn flow_rows(&self) -> Vec<FlowRow> {
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
                        flow.device = self.device_name(f.netns, f.ifindex).unwrap_or_default();
                    }
                    FlowRow { key, flow, rate, trend }
                })
            })
            .collect()
    }

    /// Causes, ranked by drops since start/reset (then title).
    pub fn cause_rows(&self) -> Vec<CauseRow> {
        let total = self.total().max(1) as f64;
        let mut rows: Vec<CauseRow> = self
            .update
            .causes
            .iter()
            .map(|c| {
                let key = cause_key(c);
                let mut cause = c.clone();
                cause.drops = self.adj(&key, c.drops);
                let (rate, _) = self.series(&key);
                CauseRow { key, share: cause.drops as f64 / total, cause, rate }
            })
            .collect();
        rows.sort_by(|a, b| b.cause.drops.cmp(&a.cause.drops).then_with(|| a.cause.title.cmp(&b.cause.title)));
        rows
    }

    /// Counters that moved since start/reset, unsorted.
    pub fn counter_rows(&self) -> Vec<CounterLine> {
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
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        let from_ns = self.reset_at * 1e9;
        self.update.summary.samples.iter().filter(move |s| s.t_ns as f64 >= from_ns)
    }

    /// Name of a device, from the summary's devices or flows.
    pub fn device_name(&self, netns: u32, ifindex: u32) -> Option<String> {
        let s = &self.update.summary;
        s.devices
            .iter()
            .find(|d| d.netns == netns && d.ifindex == ifindex && !d.name.is_empty())
            .map(|d| d.name.clone())
            .or_else(|| {
                s.flows
                    .iter()
                    .find(|f| f.netns == netns && f.ifindex == ifindex && !f.device.is_empty())
                    .map(|f| f.device.clone())
            })
    }

    /// Human description of a drop reason, when the summary has one.
    pub fn reason_description(&self, reason: &str) -> Option<&str> {
        self.update
            .summary
            .reasons
            .iter()
            .find(|r| r.reason == reason && !r.description.is_empty())
            .map(|r| r.description.as_str())
    }
}

/// One filter term; a filter is the AND of its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `reason:X`: drop reason contains X (case-insensitive).
    Reason(String),
    /// `proto:X`: protocol is X.
    Proto(String),
    /// `port:N`: source or destination port is N.
    Port(u16),
    /// `host:A`: source or destination address is A (prefix when A ends in `.`, `:` or `*`).
    Host(String),
    /// `netns:N`: network namespace inode is N.
    Netns(u32),
    /// `dev:X`: device name (or ifindex) is X.
    Dev(String),
    /// A bare word: any field contains it.
    Word(String),
}

/// A parsed `/` filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// What the user typed.
    pub text: String,
    pub terms: Vec<Term>,
}

/// The fields of a packet-like thing (flow or sample) that filters look at.
struct Pkt<'a> {
    proto: &'a str,
    src: &'a str,
    sport: u16,
    dst: &'a str,
    dport: u16,
    netns: u32,
    ifindex: u32,
    device: &'a str,
    process: &'a str,
    reason: &'a str,
    symbol: &'a str,
}

impl<'a> Pkt<'a> {
    fn flow(f: &'a FlowCount) -> Self {
        Pkt {
            proto: &f.proto,
            src: &f.src,
            sport: f.sport,
            dst: &f.dst,
            dport: f.dport,
            netns: f.netns,
            ifindex: f.ifindex,
            device: &f.device,
            process: &f.process,
            reason: &f.reason,
            symbol: "",
        }
    }
    fn sample(s: &'a Sample, device: &'a str) -> Self {
        Pkt {
            proto: &s.proto,
            src: &s.src,
            sport: s.sport,
            dst: &s.dst,
            dport: s.dport,
            netns: s.netns,
            ifindex: s.ifindex,
            device,
            process: &s.comm,
            reason: &s.reason,
            symbol: &s.symbol,
        }
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn host_match(addr: &str, pattern: &str) -> bool {
    if addr.is_empty() {
        return false;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return addr.to_lowercase().starts_with(&prefix.to_lowercase());
    }
    if pattern.ends_with('.') || pattern.ends_with(':') {
        return addr.to_lowercase().starts_with(&pattern.to_lowercase());
    }
    addr.eq_ignore_ascii_case(pattern)
}

const FILTER_KEYS: &str = "reason, proto, port, host, netns, dev";

impl Term {
    fn matches_pkt(&self, p: &Pkt) -> bool {
        match self {
            Term::Reason(r) => contains_ci(p.reason, r),
            Term::Proto(x) => p.proto.eq_ignore_ascii_case(x),
            Term::Port(n) => p.sport == *n || p.dport == *n,
            Term::Host(h) => host_match(p.src, h) || host_match(p.dst, h),
            Term::Netns(n) => p.netns == *n,
            Term::Dev(d) => p.device.eq_ignore_ascii_case(d) || p.ifindex.to_string() == *d,
            Term::Word(w) => {
                [p.reason, p.symbol, p.proto, p.src, p.dst, p.device, p.process].iter().any(|f| contains_ci(f, w))
                    || [p.sport as u32, p.dport as u32, p.netns, p.ifindex].iter().any(|n| n.to_string() == *w)
            }
        }
    }
}

impl Filter {
    /// Parse space-separated terms: `reason:X proto:X port:N host:A netns:N dev:X word`.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for token in text.split_whitespace() {
            let term = match token.split_once(':') {
                Some((key, value)) if is_filter_key(key) => {
                    if value.is_empty() {
                        return Err(format!("'{key}:' needs a value"));
                    }
                    match key.to_ascii_lowercase().as_str() {
                        "reason" => Term::Reason(value.strip_prefix("SKB_DROP_REASON_").unwrap_or(value).to_string()),
                        "proto" => Term::Proto(value.to_string()),
                        "port" => Term::Port(value.parse().map_err(|_| format!("bad port '{value}' (0-65535)"))?),
                        "host" => Term::Host(value.to_string()),
                        "netns" => {
                            Term::Netns(value.parse().map_err(|_| format!("bad netns '{value}' (an inode number)"))?)
                        }
                        _ => Term::Dev(value.to_string()),
                    }
                }
                // `fe80::1` is an address, `foo:bar` a typo.
                Some((key, _))
                    if !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_alphabetic())
                        && !key.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    return Err(format!("unknown filter '{key}:' (use {FILTER_KEYS})"));
                }
                _ => Term::Word(token.to_string()),
            };
            terms.push(term);
        }
        Ok(Filter { text: terms_text(text), terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A flow matches when every term does.
    pub fn matches_flow(&self, f: &FlowCount) -> bool {
        let p = Pkt::flow(f);
        self.terms.iter().all(|t| t.matches_pkt(&p))
    }

    /// A drops row matches when its reason/location satisfy the reason terms (and the words
    /// they contain), and one related packet satisfies all the remaining terms together. The
    /// related packets are the row's samples, and the flows with its reason (the flow table
    /// has no location) whose protocol and netns one of those samples shows.
    fn matches_drop(&self, row: &DropRow, data: &Data) -> bool {
        let mut rest: Vec<&Term> = Vec::new();
        for t in &self.terms {
            match t {
                Term::Reason(r) => {
                    if !contains_ci(&row.reason, r) {
                        return false;
                    }
                }
                Term::Word(w) if contains_ci(&row.reason, w) || contains_ci(&row.symbol, w) => {}
                t => rest.push(t),
            }
        }
        if rest.is_empty() {
            return true;
        }
        let samples: Vec<(&Sample, String)> = data
            .samples()
            .filter(|s| s.reason == row.reason && s.symbol == row.symbol)
            .map(|s| (s, data.device_name(s.netns, s.ifindex).unwrap_or_default()))
            .collect();
        if samples.iter().any(|(s, d)| rest.iter().all(|t| t.matches_pkt(&Pkt::sample(s, d)))) {
            return true;
        }
        // A flow with the row's reason, from a protocol and netns the row's samples show (any,
        // when it has none).
        data.update
            .summary
            .flows
            .iter()
            .filter(|f| f.reason == row.reason)
            .filter(|f| samples.is_empty() || samples.iter().any(|(s, _)| s.proto == f.proto && s.netns == f.netns))
            .any(|f| rest.iter().all(|t| t.matches_pkt(&Pkt::flow(f))))
    }

    /// Causes look at reason terms (their reasons, id or title) and words; packet terms don't
    /// apply to them.
    fn matches_cause(&self, c: &CauseView) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Reason(r) => {
                c.reasons.iter().any(|x| contains_ci(x, r)) || contains_ci(&c.id, r) || contains_ci(&c.title, r)
            }
            Term::Word(w) => {
                contains_ci(&c.id, w)
                    || contains_ci(&c.title, w)
                    || c.reasons.iter().any(|x| contains_ci(x, w))
                    || c.evidence.iter().any(|x| contains_ci(x, w))
            }
            _ => true,
        })
    }

    /// Counters look at dev, netns and words (against scope and counter name).
    fn matches_counter(&self, c: &CounterRow) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Dev(d) => contains_ci(&c.scope, d),
            Term::Netns(n) => c.scope.contains(&n.to_string()),
            Term::Word(w) => contains_ci(&c.scope, w) || contains_ci(&c.counter, w),
            Term::Reason(_) | Term::Proto(_) | Term::Port(_) | Term::Host(_) => true,
        })
    }
}

fn is_filter_key(key: &str) -> bool {
    matches!(key.to_ascii_lowercase().as_str(), "reason" | "proto" | "port" | "host" | "netns" | "dev")
}

fn terms_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The drill-down overlay: which row, and how far it is scrolled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detail {
    pub panel: Panel,
    pub key: String,
    pub scroll: u16,
    /// The farthest it can scroll, as last drawn (`u16::MAX` until drawn): the view measures
    /// its content, the state only keeps the number ([`State::drawn`]).
    pub max_scroll: u16,
}

/// What a draw measured that the state needs for the next key (rendering itself stays a pure
/// function of the state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drawn {
    /// The farthest the drill-down can scroll at this size, when one is open.
    pub detail_max_scroll: Option<u16>,
}

/// Everything the view draws.
#[derive(Clone, Debug)]
pub struct State {
    live: Data,
    frozen: Option<Data>,
    /// Focused panel.
    pub focus: Panel,
    /// The secondary panel shown in the tabbed area of the 80-column layout.
    pub tab: Panel,
    pub sort: SortKey,
    /// Sort the other way round.
    pub reverse: bool,
    pub filter: Filter,
    /// The filter being typed, when the prompt is open.
    pub prompt: Option<String>,
    /// A one-line message for the footer (e.g. a filter error).
    pub message: Option<String>,
    /// Selected row per panel: its key, and its last index (used when the key disappears).
    selected: [(Option<String>, usize); 4],
    pub detail: Option<Detail>,
    pub help: bool,
    /// The update channel closed: the capture is over.
    pub ended: bool,
    dirty: bool,
    quit: bool,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

fn sort_rows<T>(
    rows: &mut [T],
    key: SortKey,
    reverse: bool,
    count: impl Fn(&T) -> u64,
    rate: impl Fn(&T) -> f64,
    name: impl Fn(&T) -> String,
    place: impl Fn(&T) -> String,
) {
    rows.sort_by(|a, b| {
        let by_count = count(b).cmp(&count(a));
        let ord = match key {
            SortKey::Count => by_count.then_with(|| name(a).cmp(&name(b))),
            SortKey::Rate => rate(b).total_cmp(&rate(a)).then(by_count),
            SortKey::Reason => name(a).cmp(&name(b)).then(by_count),
            SortKey::Location => place(a).cmp(&place(b)).then(by_count),
        };
        if reverse { ord.reverse() } else { ord }
    });
}

/// The flow as one sortable/printable string.
pub fn flow_tuple(f: &FlowCount) -> String {
    format!("{} {} {}", f.proto, endpoint(&f.src, f.sport, f.family), endpoint(&f.dst, f.dport, f.family))
}

/// `addr:port`, `[v6]:port`, or `addr` when there is no port.
pub fn endpoint(addr: &str, port: u16, family: u8) -> String {
    match (port, family == 6 || addr.contains(':')) {
        (0, _) => addr.to_string(),
        (_, true) => format!("[{addr}]:{port}"),
        (_, false) => format!("{addr}:{port}"),
    }
}

impl State {
    pub fn new() -> Self {
        State {
            live: Data::default(),
            frozen: None,
            focus: Panel::Drops,
            tab: Panel::Causes,
            sort: SortKey::Count,
            reverse: false,
            filter: Filter::default(),
            prompt: None,
            message: None,
            selected: Default::default(),
            detail: None,
            help: false,
            ended: false,
            dirty: true,
            quit: false,
        }
    }

    /// What is on screen: the frozen copy when paused, else the live data.
    pub fn data(&self) -> &Data {
        self.frozen.as_ref().unwrap_or(&self.live)
    }
    /// The live data, also while paused.
    pub fn live(&self) -> &Data {
        &self.live
    }
    pub fn is_paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Take an update from the pipeline. While paused it is collected but not shown.
    pub fn ingest(&mut self, update: Update) {
        self.live.ingest(update);
        if !self.is_paused() {
            self.dirty = true;
        }
    }

    /// The pipeline is gone.
    pub fn set_ended(&mut self) {
        if !self.ended {
            self.ended = true;
            self.dirty = true;
        }
    }

    /// The terminal was resized: redraw (the view takes the size from the frame).
    pub fn resized(&mut self) {
        self.dirty = true;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
    pub fn clear_dirty(&mut self) {
        self.dirty = false;
    }
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    pub fn mode(&self) -> Mode {
        if self.prompt.is_some() {
            Mode::Prompt
        } else if self.help {
            Mode::Help
        } else if self.detail.is_some() {
            Mode::Detail
        } else {
            Mode::Normal
        }
    }

    /// Drops rows after filter and sort.
    pub fn visible_drops(&self) -> Vec<DropRow> {
        let d = self.data();
        let mut rows = d.drop_rows();
        if !self.filter.is_empty() {
            rows.retain(|r| self.filter.matches_drop(r, d));
        }
        sort_rows(
            &mut rows,
            self.sort,
            self.reverse,
            |r| r.count,
            |r| r.rate,
            |r| r.reason.clone(),
            |r| r.symbol.clone(),
        );
        rows
    }

    /// Flow rows after filter and sort.
    pub fn visible_flows(&self) -> Vec<FlowRow> {
        let mut rows = self.data().flow_rows();
        rows.retain(|r| self.filter.matches_flow(&r.flow));
        sort_rows(
            &mut rows,
            self.sort,
            self.reverse,
            |r| r.flow.count,
            |r| r.rate,
            |r| r.flow.reason.clone(),
            |r| flow_tuple(&r.flow),
        );
        rows
    }

    /// Causes after filter, ranked.
    pub fn visible_causes(&self) -> Vec<CauseRow> {
        let mut rows = self.data().cause_rows();
        rows.retain(|r| self.filter.matches_cause(&r.cause));
        rows
    }

    /// Counters after filter and sort.
    pub fn visible_counters(&self) -> Vec<CounterLine> {
        let mut rows = self.data().counter_rows();
        rows.retain(|r| self.filter.matches_counter(&r.row));
        sort_rows(
            &mut rows,
            self.sort,
            self.reverse,
            |r| r.row.total,
            |r| r.rate,
            |r| r.row.counter.clone(),
            |r| r.row.scope.clone(),
        );
        rows
    }

    /// Keys of the visible rows of a panel, in display order.
    pub fn visible_keys(&self, panel: Panel) -> Vec<String> {
        match panel {
            Panel::Drops => self.visible_drops().into_iter().map(|r| r.key).collect(),
            Panel::Causes => self.visible_causes().into_iter().map(|r| r.key).collect(),
            Panel::Flows => self.visible_flows().into_iter().map(|r| r.key).collect(),
            Panel::Counters => self.visible_counters().into_iter().map(|r| r.key).collect(),
        }
    }

    /// Index of the selected row among `keys` (the panel's visible keys), None when empty.
    pub fn selected_index(&self, panel: Panel, keys: &[String]) -> Option<usize> {
        if keys.is_empty() {
            return None;
        }
        let (key, last) = &self.selected[panel.index()];
        key.as_ref().and_then(|k| keys.iter().position(|x| x == k)).or(Some((*last).min(keys.len() - 1)))
    }

    fn move_selection(&mut self, to: impl Fn(usize, usize) -> usize) {
        let keys = self.visible_keys(self.focus);
        if let Some(i) = self.selected_index(self.focus, &keys) {
            let j = to(i, keys.len()).min(keys.len() - 1);
            self.selected[self.focus.index()] = (Some(keys[j].clone()), j);
        }
    }

    fn set_focus(&mut self, panel: Panel) {
        self.focus = panel;
        if panel != Panel::Drops {
            self.tab = panel;
        }
    }

    /// Carry out one action.
    pub fn apply(&mut self, action: Action) {
        if action == Action::None {
            return;
        }
        self.dirty = true;
        if !matches!(action, Action::Input(_) | Action::Backspace | Action::ClearInput) {
            self.message = None;
        }
        let in_detail = self.detail.is_some() && !self.help;
        match action {
            Action::None => {}
            Action::Quit => self.quit = true,
            Action::Redraw => {}
            Action::NextPanel => self.set_focus(self.focus.next()),
            Action::PrevPanel => self.set_focus(self.focus.prev()),
            Action::Focus(p) => self.set_focus(p),
            Action::Up | Action::Down | Action::PageUp | Action::PageDown if in_detail => {
                if let Some(d) = &mut self.detail {
                    d.scroll = match action {
                        Action::Up => d.scroll.saturating_sub(1),
                        Action::Down => d.scroll.saturating_add(1),
                        Action::PageUp => d.scroll.saturating_sub(PAGE as u16),
                        _ => d.scroll.saturating_add(PAGE as u16),
                    }
                    .min(d.max_scroll);
                }
            }
            Action::Top | Action::Bottom if in_detail => {
                if let Some(d) = &mut self.detail {
                    d.scroll = if action == Action::Top { 0 } else { d.max_scroll };
                }
            }
            Action::Up => self.move_selection(|i, _| i.saturating_sub(1)),
            Action::Down => self.move_selection(|i, _| i + 1),
            Action::PageUp => self.move_selection(|i, _| i.saturating_sub(PAGE)),
            Action::PageDown => self.move_selection(|i, _| i + PAGE),
            Action::Top => self.move_selection(|_, _| 0),
            Action::Bottom => self.move_selection(|_, n| n - 1),
            Action::Open => {
                let keys = self.visible_keys(self.focus);
                if let Some(i) = self.selected_index(self.focus, &keys) {
                    self.selected[self.focus.index()] = (Some(keys[i].clone()), i);
                    self.detail =
                        Some(Detail { panel: self.focus, key: keys[i].clone(), scroll: 0, max_scroll: u16::MAX });
                }
            }
            Action::Close => {
                if self.help {
                    self.help = false;
                } else {
                    self.detail = None;
                }
            }
            Action::CycleSort => self.sort = self.sort.next(),
            Action::ReverseSort => self.reverse = !self.reverse,
            Action::TogglePause => {
                self.frozen = match self.frozen {
                    Some(_) => None,
                    None => Some(self.live.clone()),
                }
            }
            Action::Reset => {
                self.live.reset();
                if self.frozen.is_some() {
                    self.frozen = Some(self.live.clone());
                }
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::StartFilter => self.prompt = Some(self.filter.text.clone()),
            Action::Input(c) => {
                if let Some(p) = &mut self.prompt {
                    p.push(c);
                }
            }
            Action::Backspace => {
                if let Some(p) = &mut self.prompt {
                    p.pop();
                }
            }
            Action::ClearInput => {
                if let Some(p) = &mut self.prompt {
                    p.clear();
                }
            }
            Action::Submit => {
                if let Some(text) = self.prompt.clone() {
                    match Filter::parse(&text) {
                        Ok(filter) => {
                            self.filter = filter;
                            self.prompt = None;
                        }
                        Err(e) => self.message = Some(e),
                    }
                }
            }
            Action::Cancel => self.prompt = None,
        }
    }

    /// Take what the last draw measured: the drill-down's scroll stays within its content.
    pub fn drawn(&mut self, drawn: Drawn) {
        if let (Some(d), Some(max)) = (&mut self.detail, drawn.detail_max_scroll) {
            d.max_scroll = max;
            d.scroll = d.scroll.min(max);
        }
    }
}
