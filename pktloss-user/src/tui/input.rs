//! Key map: a pure function from a key press (and the current mode) to an [`Action`].
//!
//! htop-like: q/F10 quit, Tab/Shift-Tab panels, arrows/j/k select, Enter details, s sort,
//! p pause, / filter, r reset, ? help. Ctrl-C quits in every mode (raw mode eats SIGINT). Esc
//! never quits: it closes the help, the prompt or the drill-down, or clears the filter.
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::select::Panel;

/// The keys as the help overlay and `pktloss top --help` list them: (keys, what they do). One
/// table for both, so they cannot drift; a test checks every key here does what it says.
pub(crate) const KEYS: &[(&str, &str)] = &[
    ("q  F10  Ctrl-C", "quit"),
    ("Esc", "close help, prompt or details, else clear the filter"),
    ("Tab  Shift-Tab", "next / previous panel"),
    ("1  2  3  4", "Drops, Causes, Flows, Counters panel"),
    ("↑ ↓  j k", "select a row"),
    ("PgUp PgDn  g G", "page up / down, first / last row"),
    ("Enter  →  l", "details: kernel stacks, sample packets, evidence"),
    ("s  S", "sort by count, rate, reason, location / reverse"),
    ("p  Space", "pause the display (collection goes on)"),
    ("/  F4", "filter (terms below); Enter applies, empty clears"),
    ("r", "reset: counts, trends and the chart restart at 0"),
    ("?  h  F1", "this help"),
    ("Ctrl-L", "redraw the screen"),
];

/// What the keys mean right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Panels, selection.
    Normal,
    /// The drill-down overlay of one row.
    Detail,
    /// The help overlay.
    Help,
    /// Typing a filter.
    Prompt,
}

/// A user intent; [`super::State::apply`] carries it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    None,
    Quit,
    NextPanel,
    PrevPanel,
    Focus(Panel),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Open the drill-down of the selected row.
    Open,
    /// Close the overlay (details or help).
    Close,
    /// Clear the applied filter (Esc on the main screen).
    ClearFilter,
    CycleSort,
    ReverseSort,
    TogglePause,
    StartFilter,
    Reset,
    ToggleHelp,
    /// Clear the screen and draw again (Ctrl-L).
    Redraw,
    /// Prompt editing.
    Input(char),
    Backspace,
    ClearInput,
    Submit,
    Cancel,
}

/// Map one key press to an action.
pub(crate) fn map_key(key: KeyEvent, mode: Mode) -> Action {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl {
        return match key.code {
            KeyCode::Char('c') => Action::Quit,
            KeyCode::Char('l') => Action::Redraw,
            KeyCode::Char('u') if mode == Mode::Prompt => Action::ClearInput,
            KeyCode::Char('b') if mode != Mode::Prompt => Action::PageUp,
            KeyCode::Char('f') if mode != Mode::Prompt => Action::PageDown,
            _ => Action::None,
        };
    }
    match mode {
        Mode::Prompt => match key.code {
            KeyCode::Esc => Action::Cancel,
            KeyCode::Enter => Action::Submit,
            KeyCode::Backspace => Action::Backspace,
            KeyCode::Char(c) => Action::Input(c),
            _ => Action::None,
        },
        Mode::Help => match key.code {
            KeyCode::Char('q') | KeyCode::F(10) => Action::Quit,
            _ => Action::Close,
        },
        Mode::Detail => match key.code {
            KeyCode::Char('q') | KeyCode::F(10) => Action::Quit,
            KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => Action::Close,
            KeyCode::Char('?') | KeyCode::F(1) => Action::ToggleHelp,
            KeyCode::Char('p') => Action::TogglePause,
            KeyCode::Char('r') => Action::Reset,
            _ => movement(key.code),
        },
        Mode::Normal => match key.code {
            KeyCode::Char('q') | KeyCode::F(10) => Action::Quit,
            KeyCode::Esc => Action::ClearFilter,
            KeyCode::Tab => Action::NextPanel,
            KeyCode::BackTab => Action::PrevPanel,
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => Action::Open,
            KeyCode::Char('s') | KeyCode::F(6) => Action::CycleSort,
            KeyCode::Char('S') => Action::ReverseSort,
            KeyCode::Char('p' | ' ') => Action::TogglePause,
            KeyCode::Char('/') | KeyCode::F(4) => Action::StartFilter,
            KeyCode::Char('r') => Action::Reset,
            KeyCode::Char('?' | 'h') | KeyCode::F(1) => Action::ToggleHelp,
            KeyCode::Char('1') => Action::Focus(Panel::Drops),
            KeyCode::Char('2') => Action::Focus(Panel::Causes),
            KeyCode::Char('3') => Action::Focus(Panel::Flows),
            KeyCode::Char('4') => Action::Focus(Panel::Counters),
            code => movement(code),
        },
    }
}

fn movement(code: KeyCode) -> Action {
    match code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        _ => Action::None,
    }
}
