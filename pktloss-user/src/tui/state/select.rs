//! The panels, the sort order of their tables, and which row of each panel is selected.
use crate::model::FlowCount;

/// The panels, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Panel {
    Drops,
    Causes,
    Flows,
    Counters,
}

impl Panel {
    pub(crate) const ALL: [Panel; 4] = [Panel::Drops, Panel::Causes, Panel::Flows, Panel::Counters];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
    pub(crate) fn next(self) -> Panel {
        Panel::ALL[(self.index() + 1) % 4]
    }
    pub(crate) fn prev(self) -> Panel {
        Panel::ALL[(self.index() + 3) % 4]
    }
    pub(crate) fn title(self) -> &'static str {
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
pub(crate) enum SortKey {
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
    pub(crate) fn next(self) -> SortKey {
        match self {
            SortKey::Count => SortKey::Rate,
            SortKey::Rate => SortKey::Reason,
            SortKey::Reason => SortKey::Location,
            SortKey::Location => SortKey::Count,
        }
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            SortKey::Count => "count",
            SortKey::Rate => "rate",
            SortKey::Reason => "reason",
            SortKey::Location => "location",
        }
    }
}

/// Sort a table's rows by `key` (ties by count, then name), or the other way round.
pub(crate) fn sort_rows<T>(
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
pub(crate) fn flow_tuple(f: &FlowCount) -> String {
    format!("{} {} {}", f.flow.proto, f.flow.source(), f.flow.destination())
}

/// The selected row of each panel: its key, and its last index (used when the key disappears).
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection([(Option<String>, usize); 4]);

impl Selection {
    /// Index of the selected row among `keys` (the panel's visible keys), None when empty.
    pub(crate) fn index(&self, panel: Panel, keys: &[String]) -> Option<usize> {
        if keys.is_empty() {
            return None;
        }
        let (key, last) = &self.0[panel.index()];
        key.as_ref().and_then(|k| keys.iter().position(|x| x == k)).or(Some((*last).min(keys.len() - 1)))
    }

    /// Select row `i` of `keys`.
    pub(crate) fn select(&mut self, panel: Panel, keys: &[String], i: usize) {
        self.0[panel.index()] = (Some(keys[i].clone()), i);
    }
}
