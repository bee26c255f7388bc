//! Terminal setup and restoration: raw mode, alternate screen, a restoring panic hook, signals.
//!
//! [`TermGuard::enter`] takes the terminal and registers SIGINT/SIGTERM/SIGHUP to set the
//! caller's stop flag (in raw mode Ctrl-C arrives as a key, handled by the key map). Dropping
//! the guard restores the terminal; so does the panic hook, before it calls the previous hook.
//! [`restore`] is idempotent, so the two never fight.
use std::{
    io::{self, Write as _},
    sync::{
        Arc, Once,
        atomic::{AtomicBool, Ordering},
    },
};

use ratatui::crossterm::{
    cursor::Show,
    execute,
    terminal::{
        Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode,
        enable_raw_mode,
    },
};
use signal_hook::{
    SigId,
    consts::{SIGHUP, SIGINT, SIGTERM},
};

/// The terminal is in raw mode / the alternate screen and must be restored.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// A panic (on any thread) restored the terminal: the TUI must not draw any more.
static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Owns the terminal while the TUI runs; restores it and unregisters the signals on drop.
pub struct TermGuard {
    signals: Vec<SigId>,
}

impl TermGuard {
    /// Raw mode + alternate screen + hidden cursor; SIGINT/SIGTERM/SIGHUP set `stop`.
    pub fn enter(stop: &Arc<AtomicBool>) -> io::Result<Self> {
        install_panic_hook();
        let mut guard = TermGuard {
            signals: Vec::new(),
        };
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            guard
                .signals
                .push(signal_hook::flag::register(signal, Arc::clone(stop))?);
        }
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // On error the guard drops here and restores what was done.
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            ratatui::crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        restore();
        for id in self.signals.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Give the terminal back: leave raw mode and the alternate screen, show the cursor. Safe to
/// call any number of times, from any thread; does nothing when the TUI does not own it.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let mut out = io::stdout();
        // Blank the alternate screen first: some multiplexers (tmux after a resize) copy
        // part of it back onto the main screen.
        let _ = execute!(out, Clear(ClearType::All), LeaveAlternateScreen, Show);
        let _ = out.flush();
    }
}

/// A panic restored the terminal while the TUI was running.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Once per process: restore the terminal first, so the panic message is readable, then run
/// the hook that was installed before.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                PANICKED.store(true, Ordering::SeqCst);
                restore();
            }
            previous(info);
        }));
    });
}
