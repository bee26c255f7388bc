//! Live TUI (`pktloss top`): the modern dropwatch on a terminal.
//!
//! The collection pipeline sends cumulative [`Update`]s over a channel; [`run`] owns the
//! terminal, turns key presses into [`Action`]s ([`input`]), folds updates and actions into a
//! [`State`] ([`state`]) and draws it with the pure [`render`] ([`view`]) at most ~10 times a
//! second, and only when something changed. [`term`] restores the terminal on every exit path.
pub(crate) mod detail;
pub(crate) mod input;
pub(crate) mod live;
pub(crate) mod state;
pub(crate) mod style;
pub(crate) mod term;
pub(crate) mod view;

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
    crossterm::event::{Event, KeyEventKind},
};

use term::{Input, Wake};

use crate::diagnose::CauseId;

pub(crate) use input::{Action, Mode, map_key};
pub(crate) use state::{Drawn, State};
pub(crate) use view::render;

/// One classified cause, as the diagnosis shows it (ranked by `drops`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CauseView {
    /// Which cause of the taxonomy.
    pub id: CauseId,
    /// One-line human title.
    pub title: String,
    /// Drops attributed to this cause (cumulative since the capture start).
    pub drops: u64,
    /// Why the diagnosis believes it (one line each).
    pub evidence: Vec<String>,
    /// What to do about it (one line each).
    pub advice: Vec<String>,
    /// Drop reasons (`NO_SOCKET`, ...) this cause accounts for: links drops rows and flows to
    /// the cause in the drill-downs and the filter. May be empty.
    pub reasons: Vec<String>,
    /// Network namespaces (inodes) the cause involves, from the diagnosis: the `netns:` filter
    /// of a cause that no traced drop shows (selected by counters).
    pub netns: Vec<u32>,
}

/// A drop counter that no event shows (NIC ring/FIFO, softnet), per interface or per CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CounterRow {
    /// Where: "eth0 (netns host)" or "cpu1".
    pub scope: String,
    /// Which: `rx_missed_errors`, `softnet dropped`, `time_squeeze`, ...
    pub counter: String,
    /// Delta since the capture start.
    pub total: u64,
}

/// What the pipeline sends to the TUI, typically once a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Update {
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

/// Run the live TUI until the user quits (q/F10/Ctrl-C) or `stop` is set.
///
/// Takes over the terminal (raw mode, alternate screen) and always gives it back, also on
/// panic (a hook restores it, then calls the previous hook) and on SIGINT/SIGTERM/SIGHUP (which
/// set `stop`). When `updates` disconnects the view stays up, marked ENDED, until the user quits.
pub(crate) fn run(updates: Receiver<Update>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let guard = term::TermGuard::enter(&stop).context("set up the terminal")?;
    let result = Terminal::new(CrosstermBackend::new(io::stdout()))
        .context("open the terminal")
        .and_then(|mut terminal| event_loop(&mut terminal, &updates, &stop, &mut term::Crossterm::open()));
    drop(guard);
    result
}

/// What the loop does after a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterWake {
    /// Nothing came (or a signal: the loop looks at `stop` first).
    Idle,
    /// poll(2) saw input: read crossterm's events, waiting for it if it has none yet.
    Read,
    /// The terminal was resized: resize and redraw, and read the events crossterm already has,
    /// without waiting.
    ResizeThenRead,
    /// The terminal is gone.
    Stop,
}

/// The decision after [`Input::wait`], apart from the I/O so that it can be tested.
///
/// A resize must read pending input too. crossterm notices the resize itself (its own SIGWINCH
/// pipe, in the same epoll set as the tty, both edge-triggered), and the loop used not to ask
/// it after a resize: its resize stayed pending, and when the next key came crossterm's poll
/// returned the resize and dropped the tty's readiness with it, so the key sat unread until
/// another key made a new edge. Reading right after the resize takes crossterm's resize out of
/// the way (and gets any key already there).
fn after_wake(wake: Wake) -> AfterWake {
    match wake {
        Wake::Timeout => AfterWake::Idle,
        Wake::Input => AfterWake::Read,
        Wake::Resize => AfterWake::ResizeThenRead,
        Wake::Hangup => AfterWake::Stop,
    }
}

/// Whether crossterm has an event now, poll(2) having said the terminal is readable. When it
/// has none it lost the tty's edge (see [`term::InputWait::rearm`]): re-arm it and ask again.
fn input_pending(input: &mut impl Input) -> io::Result<bool> {
    if input.poll(Duration::ZERO)? {
        return Ok(true);
    }
    input.rearm();
    input.poll(Duration::ZERO)
}

fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    updates: &Receiver<Update>,
    stop: &AtomicBool,
    input: &mut impl Input,
) -> anyhow::Result<()> {
    let mut state = State::new();
    let mut last_draw: Option<Instant> = None;
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
                Some(since) if since < FRAME => wait = FRAME.saturating_sub(since),
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
        let ready = match after_wake(input.wait(wait)?) {
            AfterWake::Idle => false,
            // If crossterm still has nothing, let it wait for more input itself instead of
            // spinning.
            AfterWake::Read => input_pending(input)? || input.poll(wait)?,
            AfterWake::ResizeThenRead => {
                terminal.autoresize()?;
                state.resized();
                input.poll(Duration::ZERO)?
            }
            AfterWake::Stop => {
                stop.store(true, Ordering::Relaxed);
                return Ok(());
            }
        };
        if ready {
            loop {
                match input.read()? {
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
                if !input.poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}
