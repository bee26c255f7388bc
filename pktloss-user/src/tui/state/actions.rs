//! Key handling: what each [`Action`] does to the [`State`].
use super::{Detail, Filter, Panel, State};
use crate::tui::input::Action;

/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

impl State {
    fn move_selection(&mut self, to: impl Fn(usize, usize) -> usize) {
        let keys = self.visible_keys(self.focus);
        if let Some(i) = self.selected_index(self.focus, &keys) {
            let j = to(i, keys.len()).min(keys.len() - 1);
            self.selected.select(self.focus, &keys, j);
        }
    }

    fn set_focus(&mut self, panel: Panel) {
        self.focus = panel;
        if panel != Panel::Drops {
            self.tab = panel;
        }
    }

    /// Carry out one action.
    pub(crate) fn apply(&mut self, action: Action) {
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
                    self.selected.select(self.focus, &keys, i);
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
            Action::ClearFilter => self.filter = Filter::default(),
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
}
