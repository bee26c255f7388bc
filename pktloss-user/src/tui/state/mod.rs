//! TUI state: the data on screen (live or frozen by pause), selection, sort, filter, overlays.
//! No I/O: everything here is unit-testable, and the view only reads it.
//!
//! - [`data`]: cumulative updates folded into counts since start/reset, rates, trends, history;
//! - [`filter`]: the `/` filter, its parsing and which rows of each panel it keeps;
//! - [`select`]: panels, sort order, the selected row of each panel;
//! - [`actions`]: what each key action does to the state.
//!
//! Pause freezes a copy of the data and keeps ingesting behind it.
mod actions;
pub(crate) mod data;
pub(crate) mod filter;
pub(crate) mod select;

pub(crate) use data::{CauseRow, CounterLine, Data, DropRow, FlowRow, HISTORY_SECS};
pub(crate) use filter::Filter;
pub(crate) use select::{Panel, SortKey, flow_tuple};

use super::{Update, input::Mode};
use select::{Selection, sort_rows};

/// The drill-down overlay: which row, and how far it is scrolled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Detail {
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
pub(crate) struct Drawn {
    /// The farthest the drill-down can scroll at this size, when one is open.
    pub detail_max_scroll: Option<u16>,
}

/// Everything the view draws.
#[derive(Clone, Debug)]
pub(crate) struct State {
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
    selected: Selection,
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

impl State {
    pub(crate) fn new() -> Self {
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
            selected: Selection::default(),
            detail: None,
            help: false,
            ended: false,
            dirty: true,
            quit: false,
        }
    }

    /// What is on screen: the frozen copy when paused, else the live data.
    pub(crate) fn data(&self) -> &Data {
        self.frozen.as_ref().unwrap_or(&self.live)
    }
    /// The live data, also while paused.
    #[cfg(test)]
    pub(crate) fn live(&self) -> &Data {
        &self.live
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// Take an update from the pipeline. While paused it is collected but not shown.
    pub(crate) fn ingest(&mut self, update: Update) {
        self.live.ingest(update);
        if !self.is_paused() {
            self.dirty = true;
        }
    }

    /// The pipeline is gone.
    pub(crate) fn set_ended(&mut self) {
        if !self.ended {
            self.ended = true;
            self.dirty = true;
        }
    }

    /// The terminal was resized: redraw (the view takes the size from the frame).
    pub(crate) fn resized(&mut self) {
        self.dirty = true;
    }

    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }
    pub(crate) fn clear_dirty(&mut self) {
        self.dirty = false;
    }
    pub(crate) fn should_quit(&self) -> bool {
        self.quit
    }

    pub(crate) fn mode(&self) -> Mode {
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
    pub(crate) fn visible_drops(&self) -> Vec<DropRow> {
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
            |r| r.reason.name.clone(),
            |r| r.symbol.clone(),
        );
        rows
    }

    /// Flow rows after filter and sort.
    pub(crate) fn visible_flows(&self) -> Vec<FlowRow> {
        let mut rows = self.data().flow_rows();
        rows.retain(|r| self.filter.matches_flow(&r.flow));
        sort_rows(
            &mut rows,
            self.sort,
            self.reverse,
            |r| r.flow.count,
            |r| r.rate,
            |r| r.flow.reason.name.clone(),
            |r| flow_tuple(&r.flow),
        );
        rows
    }

    /// Causes after filter, ranked.
    pub(crate) fn visible_causes(&self) -> Vec<CauseRow> {
        let mut rows = self.data().cause_rows();
        rows.retain(|r| self.filter.matches_cause(&r.cause, self.data()));
        rows
    }

    /// Counters after filter and sort.
    pub(crate) fn visible_counters(&self) -> Vec<CounterLine> {
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
    pub(crate) fn visible_keys(&self, panel: Panel) -> Vec<String> {
        match panel {
            Panel::Drops => self.visible_drops().into_iter().map(|r| r.key).collect(),
            Panel::Causes => self.visible_causes().into_iter().map(|r| r.key).collect(),
            Panel::Flows => self.visible_flows().into_iter().map(|r| r.key).collect(),
            Panel::Counters => self.visible_counters().into_iter().map(|r| r.key).collect(),
        }
    }

    /// Index of the selected row among `keys` (the panel's visible keys), None when empty.
    pub(crate) fn selected_index(&self, panel: Panel, keys: &[String]) -> Option<usize> {
        self.selected.index(panel, keys)
    }

    /// Take what the last draw measured: the drill-down's scroll stays within its content.
    pub(crate) fn drawn(&mut self, drawn: Drawn) {
        if let (Some(d), Some(max)) = (&mut self.detail, drawn.detail_max_scroll) {
            d.max_scroll = max;
            d.scroll = d.scroll.min(max);
        }
    }
}
