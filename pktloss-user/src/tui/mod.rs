//! Live TUI (`pktloss top`): the modern dropwatch on a terminal.
//!
//! The collection pipeline sends cumulative [`Update`]s over a channel; [`run`] owns the
//! terminal, turns key presses into [`Action`]s ([`input`]), folds updates and actions into a
//! [`State`] ([`state`]) and draws it with the pure [`render`] ([`view`]) at most ~10 times a
//! second, and only when something changed. [`term`] restores the terminal on every exit path.
pub mod detail;
pub mod input;
pub mod live;
pub mod state;
pub mod term;
pub mod view;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, TryRecvError},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ratatui::{
    Terminal,
    backend::{Backend, CrosstermBackend},
    crossterm::event::{self, Event, KeyEventKind},
};

use term::Wake;

pub use input::{Action, Mode, map_key};
pub use state::{Drawn, Filter, Panel, SortKey, State, Term};
pub use view::render;

/// One classified cause, as the diagnosis shows it (ranked by `drops`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CauseView {
    /// Stable identifier, e.g. "no-listener" ([`crate::diagnose::CauseId`]).
    pub id: String,
    /// One-line human title.
    pub title: String,
    /// Drops attributed to this cause (cumulative since the capture start).
    pub drops: u64,
    /// Why the diagnosis believes it (one line each).
    pub evidence: Vec<String>,
    /// What to do about it (one line each).
    pub advice: Vec<String>,
    /// Drop reasons (`NO_SOCKET`, ...) this cause accounts for: links drops rows and flows to
    /// the cause in the drill-downs and the `reason:` filter. May be empty.
    pub reasons: Vec<String>,
}

/// A drop counter that no event shows (NIC ring/FIFO, softnet), per interface or per CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterRow {
    /// Where: "eth0 (netns host)" or "cpu1".
    pub scope: String,
    /// Which: "rx_missed_errors", "softnet dropped", "time_squeeze", ...
    pub counter: String,
    /// Delta since the capture start.
    pub total: u64,
}

/// What the pipeline sends to the TUI, typically once a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// Cumulative since the capture start (`duration_secs` is the update's time axis).
    pub summary: crate::model::Summary,
    pub causes: Vec<CauseView>,
    pub counters: Vec<CounterRow>,
}

/// Minimum time between two frames (~10 frames a second at most).
const FRAME: Duration = Duration::from_millis(100);
/// How long to wait for a key when nothing is pending: bounds the latency of updates and of
/// `stop`, and is the only wake-up when idle.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Run the live TUI until the user quits (q/Esc/Ctrl-C) or `stop` is set.
///
/// Takes over the terminal (raw mode, alternate screen) and always gives it back, also on
/// panic (a hook restores it, then calls the previous hook) and on SIGINT/SIGTERM/SIGHUP (which
/// set `stop`). When `updates` disconnects the view stays up, marked ENDED, until the user quits.
pub fn run(updates: Receiver<Update>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let guard = term::TermGuard::enter(&stop).context("set up the terminal")?;
    let result = Terminal::new(CrosstermBackend::new(io::stdout()))
        .context("open the terminal")
        .and_then(|mut terminal| event_loop(&mut terminal, &updates, &stop));
    drop(guard);
    result
}

fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    updates: &Receiver<Update>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut state = State::new();
    let mut last_draw: Option<Instant> = None;
    // None when there is no terminal to poll (e.g. a test backend): crossterm waits alone.
    let input = term::InputWait::new().ok();
    terminal.clear()?;
    loop {
        if stop.load(Ordering::Relaxed) || state.should_quit() {
            return Ok(());
        }
        if term::panicked() {
            anyhow::bail!("a thread panicked; terminal restored");
        }
        loop {
            match updates.try_recv() {
                Ok(update) => state.ingest(update),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    state.set_ended();
                    break;
                }
            }
        }
        let mut wait = IDLE_POLL;
        if state.is_dirty() {
            let since = last_draw.map(|t| t.elapsed());
            match since {
                Some(since) if since < FRAME => wait = FRAME - since,
                _ => {
                    let mut drawn = Drawn::default();
                    terminal.draw(|frame| drawn = render(frame, &state))?;
                    state.drawn(drawn);
                    state.clear_dirty();
                    last_draw = Some(Instant::now());
                }
            }
        }
        // Wait with poll(2) where we can (see `term::InputWait`); crossterm reads only when
        // there is input, so a hung-up terminal cannot trap the loop in crossterm.
        let ready = match &input {
            None => event::poll(wait)?,
            Some(input) => match input.wait(wait)? {
                Wake::Timeout => false,
                // crossterm watches the tty edge-triggered and may leave bytes unread (more
                // than its 1 KiB buffer at once): then it has nothing to report although poll(2)
                // says readable, so let it wait for more input itself instead of spinning.
                Wake::Input => event::poll(Duration::ZERO)? || event::poll(wait)?,
                Wake::Resize => {
                    terminal.autoresize()?;
                    state.resized();
                    false
                }
                Wake::Hangup => {
                    stop.store(true, Ordering::Relaxed);
                    return Ok(());
                }
            },
        };
        if ready {
            loop {
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => {
                        let action = map_key(key, state.mode());
                        if action == Action::Redraw {
                            terminal.clear()?;
                        }
                        state.apply(action);
                    }
                    Event::Resize(..) => {
                        terminal.autoresize()?;
                        state.resized();
                    }
                    _ => {}
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}
