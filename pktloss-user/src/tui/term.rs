//! Terminal setup and restoration: raw mode, alternate screen, a restoring panic hook, signals.
//!
//! [`TermGuard::enter`] takes the terminal and registers SIGINT/SIGTERM/SIGHUP to set the
//! caller's stop flag (in raw mode Ctrl-C arrives as a key, handled by the key map). Dropping
//! the guard restores the terminal; so does the panic hook, before it calls the previous hook.
//! [`restore`] is idempotent, so the two never fight.
//!
//! [`InputWait`] waits for input with poll(2) so that crossterm only reads when there is
//! something to read, and notices a hung-up terminal.
use std::{
    fs::File,
    io::{self, IsTerminal as _, Read as _, Write as _},
    os::{
        fd::{AsFd as _, AsRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    sync::{
        Arc, Once,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ratatui::crossterm::{
    cursor::Show,
    event::{self, Event},
    execute,
    terminal::{Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use signal_hook::{
    SigId,
    consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH},
};

/// The terminal is in raw mode / the alternate screen and must be restored.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// A panic (on any thread) restored the terminal: the TUI must not draw any more.
static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Owns the terminal while the TUI runs; restores it and unregisters the signals on drop.
pub(crate) struct TermGuard {
    signals: Vec<SigId>,
}

impl TermGuard {
    /// Raw mode + alternate screen + hidden cursor; SIGINT/SIGTERM/SIGHUP set `stop`.
    pub(crate) fn enter(stop: &Arc<AtomicBool>) -> io::Result<Self> {
        install_panic_hook();
        let mut guard = TermGuard { signals: Vec::new() };
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            guard.signals.push(signal_hook::flag::register(signal, Arc::clone(stop))?);
        }
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // On error the guard drops here and restores what was done.
        execute!(io::stdout(), EnterAlternateScreen, ratatui::crossterm::cursor::Hide)?;
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
pub(crate) fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Best effort, each step on its own: a terminal that is gone cannot be restored anyway.
        drop(disable_raw_mode());
        let mut out = io::stdout();
        // Blank the alternate screen first: some multiplexers (tmux after a resize) copy
        // part of it back onto the main screen.
        drop(execute!(out, Clear(ClearType::All), LeaveAlternateScreen, Show));
        drop(out.flush());
    }
}

/// A panic restored the terminal while the TUI was running.
pub(crate) fn panicked() -> bool {
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

/// What [`InputWait::wait`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing (or a signal interrupted the wait: check the stop flag).
    Timeout,
    /// The terminal has input for crossterm to read.
    Input,
    /// SIGWINCH: the terminal was resized.
    Resize,
    /// The terminal is gone (hangup, error): nothing more will be read from it.
    Hangup,
}

/// Waits for terminal input with poll(2), so that crossterm reads only when there is input.
///
/// crossterm 0.28's reader spins forever, whatever its timeout, once the terminal hangs up
/// (the tty stays readable while `read` returns 0 or EIO; crossterm-rs/crossterm#793): the
/// event loop would never see `stop` again and the process would burn a core after its
/// terminal is gone (tmux kill-server, a closed ssh session). poll(2) reports the hangup
/// (POLLHUP) instead, and a signal interrupts it, so `stop` is seen at once.
pub(crate) struct InputWait {
    /// The terminal crossterm reads: stdin when it is one, else /dev/tty (as crossterm does).
    tty: OwnedFd,
    /// Read end of a self-pipe written on SIGWINCH.
    winch: UnixStream,
    winch_id: SigId,
}

impl InputWait {
    pub(crate) fn new() -> io::Result<Self> {
        let tty = if io::stdin().is_terminal() {
            io::stdin().as_fd().try_clone_to_owned()?
        } else {
            File::open("/dev/tty")?.into()
        };
        let (winch, writer) = UnixStream::pair()?;
        winch.set_nonblocking(true)?;
        let winch_id = signal_hook::low_level::pipe::register(SIGWINCH, writer)?;
        Ok(Self { tty, winch, winch_id })
    }

    /// Wait up to `timeout` for input, a resize or a hangup.
    pub(crate) fn wait(&self, timeout: Duration) -> io::Result<Wake> {
        let mut fds = [
            libc::pollfd { fd: self.tty.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.winch.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // Round up: a 0 ms poll for a sub-millisecond wait would spin until the frame is due.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(Wake::Timeout);
            }
            return Err(err);
        }
        if fds[0].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Ok(Wake::Hangup);
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 64];
            while matches!((&self.winch).read(&mut buf), Ok(n) if n > 0) {}
            return Ok(Wake::Resize);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            return Ok(Wake::Input);
        }
        Ok(Wake::Timeout)
    }

    /// Make crossterm look at the terminal's pending input again.
    ///
    /// crossterm 0.28 watches the tty edge-triggered (epoll through mio) and forgets a
    /// readiness it does not act on: when one of its polls finds its SIGWINCH pipe and the tty
    /// ready together it returns the resize and drops the tty's edge; when more than its 1 KiB
    /// buffer is pending it reads 1 KiB and stops. Then poll(2) says readable, crossterm has
    /// nothing, and the keys wait for the next byte typed. Setting the terminal's attributes to
    /// what they are wakes the tty's readers (Linux's `n_tty` `set_termios` wakes its read queue),
    /// which gives crossterm's epoll a new edge on the bytes still unread.
    pub(crate) fn rearm(&self) {
        let fd = self.tty.as_raw_fd();
        // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr, then passed back
        // unchanged; both are plain ioctls on a descriptor we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &raw mut t) == 0 {
                libc::tcsetattr(fd, libc::TCSANOW, &raw const t);
            }
        }
    }
}

/// The input side of the event loop: poll(2) on the terminal ([`InputWait`]) and crossterm's
/// reader. A trait so that tests can drive the loop with a model of crossterm's reader.
pub(crate) trait Input {
    /// Wait up to `timeout` for input, a resize or a hangup.
    fn wait(&mut self, timeout: Duration) -> io::Result<Wake>;
    /// Whether crossterm has an event within `timeout` (`crossterm::event::poll`).
    fn poll(&mut self, timeout: Duration) -> io::Result<bool>;
    /// The next event (`crossterm::event::read`); blocks when there is none.
    fn read(&mut self) -> io::Result<Event>;
    /// Make crossterm look at the terminal's pending input again ([`InputWait::rearm`]).
    fn rearm(&mut self);
}

/// The real terminal: [`InputWait`] where there is a terminal to poll, crossterm's reader.
pub(crate) struct Crossterm {
    /// None when there is no terminal to poll (e.g. a test backend): crossterm waits alone.
    wait: Option<InputWait>,
}

impl Crossterm {
    /// The terminal crossterm reads, polled where it can be.
    pub(crate) fn open() -> Self {
        Crossterm { wait: InputWait::new().ok() }
    }
}

impl Input for Crossterm {
    fn wait(&mut self, timeout: Duration) -> io::Result<Wake> {
        match &self.wait {
            Some(w) => w.wait(timeout),
            None => Ok(if event::poll(timeout)? { Wake::Input } else { Wake::Timeout }),
        }
    }
    fn poll(&mut self, timeout: Duration) -> io::Result<bool> {
        event::poll(timeout)
    }
    fn read(&mut self) -> io::Result<Event> {
        event::read()
    }
    fn rearm(&mut self) {
        if let Some(w) = &self.wait {
            w.rearm();
        }
    }
}

impl Drop for InputWait {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.winch_id);
    }
}
