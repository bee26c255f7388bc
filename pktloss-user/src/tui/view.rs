//! Pure rendering: [`render`] draws the whole screen from a [`State`], nothing else.
//!
//! Three layouts by size: full (>= 140x40: chart, counters, drops, causes and flows all on
//! screen), standard (80x24: chart, drops, and one tabbed Causes/Flows/Counters panel), and
//! compact (smaller: the focused panel only). Overlays: drill-down details and help.
use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style, Stylize},
    symbols::Marker,
    text::{Line, Span},
    widgets::{
        Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, HighlightSpacing, Padding, Paragraph, Row,
        Sparkline, Table, TableState, Wrap,
    },
};

pub(crate) use super::style::{
    ACCENT, DIM, LABEL, flow_cell, fmt_count, fmt_hms, fmt_pct, fmt_rate, fmt_short, or_dash, spark,
};
use super::{
    input::KEYS,
    state::{CauseRow, CounterLine, Data, Drawn, DropRow, FlowRow, HISTORY_SECS, Panel, State, filter::FILTER_HELP},
};

const WARN: Style = Style::new().fg(Color::Yellow);

/// Everything the screen shows, computed once per frame.
struct Views {
    drops: Vec<DropRow>,
    causes: Vec<CauseRow>,
    flows: Vec<FlowRow>,
    counters: Vec<CounterLine>,
}

impl Views {
    fn new(state: &State) -> Self {
        Views {
            drops: state.visible_drops(),
            causes: state.visible_causes(),
            flows: state.visible_flows(),
            counters: state.visible_counters(),
        }
    }
}

/// Draw the whole screen; returns what the state needs to know of the layout.
pub(crate) fn render(frame: &mut Frame<'_>, state: &State) -> Drawn {
    let area = frame.area();
    if area.width < 30 || area.height < 6 {
        frame.render_widget(Paragraph::new("pktloss: terminal too small (q quits)").wrap(Wrap { trim: true }), area);
        return Drawn::default();
    }
    let views = Views::new(state);
    let Screen { compact, full, header, body, footer } = Screen::new(area);
    render_header(frame, header, state);
    render_footer(frame, footer, state);

    if compact {
        render_panel(frame, body, state, &views, state.focus, false);
    } else if full {
        let chart_height = (body.height / 4).clamp(8, 14);
        let [top, middle, bottom] =
            Layout::vertical([Constraint::Length(chart_height), Constraint::Fill(3), Constraint::Fill(2)]).areas(body);
        let [chart, counters] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(72)]).areas(top);
        render_chart_full(frame, chart, state.data());
        render_panel(frame, counters, state, &views, Panel::Counters, false);
        let [drops, causes] = Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(middle);
        render_panel(frame, drops, state, &views, Panel::Drops, false);
        render_panel(frame, causes, state, &views, Panel::Causes, false);
        render_panel(frame, bottom, state, &views, Panel::Flows, false);
    } else {
        let chart_height = (body.height / 5).clamp(4, 10);
        let rest = body.height.saturating_sub(chart_height);
        let tab_height = (rest * 9 / 20).max(7);
        let [chart, drops, tab] =
            Layout::vertical([Constraint::Length(chart_height), Constraint::Min(5), Constraint::Length(tab_height)])
                .areas(body);
        render_chart_small(frame, chart, state.data());
        render_panel(frame, drops, state, &views, Panel::Drops, false);
        render_panel(frame, tab, state, &views, state.tab, true);
    }

    let detail_max_scroll =
        if state.detail.is_some() { super::detail::render_detail(frame, detail_area(area), state) } else { None };
    if state.help {
        render_help(frame, body);
    }
    Drawn { detail_max_scroll }
}

/// The screen's layout class and its three bands.
struct Screen {
    /// Below 70x18: only the focused panel.
    compact: bool,
    /// From 140x40: every panel at once.
    full: bool,
    header: Rect,
    body: Rect,
    footer: Rect,
}

impl Screen {
    fn new(area: Rect) -> Self {
        let compact = area.width < 70 || area.height < 18;
        let full = area.width >= 140 && area.height >= 40;
        let header_height = if compact {
            1
        } else if full {
            3
        } else {
            2
        };
        let [header, body, footer] =
            Layout::vertical([Constraint::Length(header_height), Constraint::Min(1), Constraint::Length(1)])
                .areas(area);
        Screen { compact, full, header, body, footer }
    }
}

/// Where the drill-down overlay goes on a screen of `area`: over the panels.
pub(crate) fn detail_area(area: Rect) -> Rect {
    Screen::new(area).body
}

fn right(s: impl Into<String>) -> Cell<'static> {
    Cell::from(Line::from(s.into()).alignment(Alignment::Right))
}

fn kv(spans: &mut Vec<Span<'static>>, label: &str, value: impl Into<String>) {
    spans.push(Span::styled(format!("{label} "), LABEL));
    spans.push(Span::styled(value.into(), Style::new().bold()));
    spans.push(Span::raw("  "));
}

// ---------------------------------------------------------------------------------------------
// Header and footer

fn render_header(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let d = state.data();
    let s = &d.update.summary;
    let mut l1 = vec![Span::styled(" pktloss top ", Style::new().bg(ACCENT).fg(Color::Black).bold()), Span::raw(" ")];
    let mut l2 = Vec::new();
    let mut l3 = Vec::new();
    if d.has_data() {
        kv(&mut l1, "host", s.hostname.clone());
        if area.width >= 70 {
            kv(&mut l1, "kernel", s.kernel.clone());
        }
        kv(&mut l1, "up", fmt_hms(s.duration_secs));
        if area.width >= 140 && !s.started.is_empty() {
            kv(&mut l1, "started", s.started.clone());
        }
        kv(&mut l2, "drops", fmt_count(d.total()));
        kv(&mut l2, "now", format!("{}/s", fmt_rate(d.rate())));
        kv(&mut l2, "avg", format!("{}/s", fmt_rate(d.avg_rate())));
        kv(&mut l2, "detail", d.coverage().map_or_else(|| "-".into(), fmt_pct));
        let lost = d.lost();
        l2.push(Span::styled("lost ", LABEL));
        l2.push(Span::styled(fmt_count(lost), if lost > 0 { WARN.bold() } else { Style::new().bold() }));
        l2.push(Span::raw("  "));
        let active = s.probes.iter().filter(|p| p.active).count();
        kv(&mut l2, "probes", format!("{active}/{}", s.probes.len()));
        if area.width >= 140 {
            kv(&mut l2, "retrans", fmt_count(d.retransmits()));
            let ft = &s.flow_table;
            if ft.capacity > 0 {
                kv(&mut l2, "flows", format!("{}/{}", ft.live, ft.capacity));
            }
        }
        if let Some(f) = &s.filter {
            kv(&mut l3, "filter", crate::render::clean(&f.expr));
            kv(&mut l3, "left out", fmt_count(f.drops_filtered_out));
        }
        l3.push(Span::styled("probes ", LABEL));
        for p in &s.probes {
            let (mark, style) = if p.active { ("✓", Style::new().fg(Color::Green)) } else { ("✗", DIM) };
            l3.push(Span::styled(format!("{mark}{}", p.name), style));
            if !p.attach.is_empty() && p.active {
                l3.push(Span::styled(format!(" ({})", p.attach), DIM));
            }
            l3.push(Span::raw("  "));
        }
        if !s.warnings.is_empty() {
            l3.push(Span::styled(format!("⚠ {}", s.warnings.join("; ")), WARN));
        }
    } else {
        l1.push(Span::styled("waiting for the first update…", LABEL));
    }
    let status = if state.ended {
        Span::styled(" ENDED ", Style::new().bg(Color::Red).fg(Color::White).bold())
    } else if state.is_paused() {
        Span::styled(" PAUSED ", Style::new().bg(Color::Yellow).fg(Color::Black).bold())
    } else if d.has_data() {
        Span::styled(" LIVE ", Style::new().bg(Color::Green).fg(Color::Black).bold())
    } else {
        Span::styled(" STARTING ", Style::new().bg(Color::DarkGray).fg(Color::White))
    };
    let rows = Layout::vertical(vec![Constraint::Length(1); area.height as usize]).split(area);
    let status_width = status.width() as u16;
    let [left, right] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(status_width)]).areas(rows[0]);
    frame.render_widget(Paragraph::new(Line::from(l1)), left);
    frame.render_widget(Paragraph::new(Line::from(status)), right);
    if area.height == 1 {
        return;
    }
    frame.render_widget(Paragraph::new(Line::from(l2)), rows[1]);
    if area.height >= 3 {
        frame.render_widget(Paragraph::new(Line::from(l3)), rows[2]);
    }
}

fn hints(items: &[(&str, &str)]) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (key, label) in items {
        spans.push(Span::styled(key.to_string(), Style::new().bg(ACCENT).fg(Color::Black).bold()));
        spans.push(Span::raw(format!(" {label} ")));
    }
    spans
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let line = match state.mode() {
        super::Mode::Prompt => {
            let text = state.prompt.clone().unwrap_or_default();
            let mut spans = vec![
                Span::styled("Filter: ", Style::new().fg(ACCENT).bold()),
                Span::raw(text),
                Span::styled("▏", Style::new().fg(ACCENT)),
                Span::raw("  "),
            ];
            if let Some(m) = &state.message {
                spans.push(Span::styled(m.clone(), Style::new().fg(Color::Red)))
            } else {
                spans.extend(hints(&[("⏎", "Apply"), ("Esc", "Cancel")]));
                spans.push(Span::styled("reason: proto: port: host: netns: dev: word", DIM));
            }
            Line::from(spans)
        }
        super::Mode::Help => Line::from(hints(&[("any key", "Close"), ("q", "Quit")])),
        super::Mode::Detail => Line::from(hints(&[
            ("Esc", "Back"),
            ("↑↓", "Scroll"),
            ("PgUp/PgDn", "Page"),
            ("p", if state.is_paused() { "Resume" } else { "Pause" }),
            ("?", "Help"),
            ("q", "Quit"),
        ])),
        super::Mode::Normal if area.width < 76 => {
            Line::from(hints(&[("q", "Quit"), ("Tab", "Panel"), ("⏎", "Details"), ("/", "Filter"), ("?", "Help")]))
        }
        super::Mode::Normal => Line::from(hints(&[
            ("q", "Quit"),
            ("Tab", "Panel"),
            ("↑↓", "Select"),
            ("⏎", "Details"),
            ("s", "Sort"),
            ("p", if state.is_paused() { "Resume" } else { "Pause" }),
            ("/", "Filter"),
            ("r", "Reset"),
            ("?", "Help"),
        ])),
    };
    frame.render_widget(Paragraph::new(line), area);
    if state.prompt.is_none()
        && let Some(m) = &state.message
    {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(m.clone(), Style::new().fg(Color::Red))))
                .alignment(Alignment::Right),
            area,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Panels

fn panel_block(title: Vec<Span<'static>>, focused: bool) -> Block<'static> {
    let border = if focused { Style::new().fg(ACCENT) } else { Style::new().fg(Color::DarkGray) };
    Block::bordered().border_style(border).title(Line::from(title))
}

fn panel_title(panel: Panel, focused: bool) -> Span<'static> {
    let style = if focused { Style::new().fg(ACCENT).bold() } else { Style::new().bold() };
    Span::styled(format!(" {} ", panel.title()), style)
}

/// The title of the tabbed area: all three secondary panels, the shown one highlighted.
fn tab_title(state: &State) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (i, p) in [Panel::Causes, Panel::Flows, Panel::Counters].into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("│", DIM));
        }
        let style = if p == state.tab && state.focus == p {
            Style::new().bg(ACCENT).fg(Color::Black).bold()
        } else if p == state.tab {
            Style::new().bold().underlined()
        } else {
            DIM
        };
        spans.push(Span::styled(format!(" {} {} ", p.index() + 1, p.title()), style));
    }
    spans
}

fn title_info(state: &State, rows: usize, sortable: bool) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(format!("({rows}) "), DIM)];
    if sortable {
        let arrow = if state.reverse { "↑" } else { "↓" };
        spans.push(Span::styled(format!("sort {}{arrow} ", state.sort.label()), DIM));
    }
    if !state.filter.is_empty() {
        spans.push(Span::styled(format!("filter {} ", state.filter.text), WARN));
    }
    let d = state.data();
    if d.reset_at > 0.0 {
        spans.push(Span::styled(format!("since reset {} ", fmt_hms(d.elapsed())), WARN));
    }
    spans
}

fn render_panel(frame: &mut Frame<'_>, area: Rect, state: &State, views: &Views, panel: Panel, tabbed: bool) {
    let focused = state.focus == panel;
    let mut title = if tabbed { tab_title(state) } else { vec![panel_title(panel, focused)] };
    let (count, sortable) = match panel {
        Panel::Drops => (views.drops.len(), true),
        Panel::Causes => (views.causes.len(), false),
        Panel::Flows => (views.flows.len(), true),
        Panel::Counters => (views.counters.len(), true),
    };
    title.extend(title_info(state, count, sortable));
    let block = panel_block(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    match panel {
        Panel::Drops => drops_table(frame, inner, state, &views.drops, focused),
        Panel::Causes => causes_panel(frame, inner, state, &views.causes, focused),
        Panel::Flows => flows_table(frame, inner, state, &views.flows, focused),
        Panel::Counters => counters_table(frame, inner, state, &views.counters, focused),
    }
}

fn header_row(cells: Vec<Cell<'static>>) -> Row<'static> {
    Row::new(cells).style(Style::new().fg(ACCENT).bold())
}

fn selection(state: &State, panel: Panel, keys: impl Iterator<Item = String>) -> Option<usize> {
    let keys: Vec<String> = keys.collect();
    state.selected_index(panel, &keys)
}

/// Draw a table with the panel's selection; an explanatory line when it has no rows.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one table (header, rows, widths) and how to show it (selection, focus, empty note); a struct would only rename them"
)]
fn draw_table(
    frame: &mut Frame<'_>,
    area: Rect,
    state: &State,
    header: Row<'static>,
    rows: Vec<Row<'static>>,
    widths: Vec<Constraint>,
    selected: Option<usize>,
    focused: bool,
    empty: &str,
) {
    let is_empty = rows.is_empty();
    let highlight =
        if focused { Style::new().bg(ACCENT).fg(Color::Black) } else { Style::new().add_modifier(Modifier::BOLD) };
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(highlight)
        .highlight_symbol(if focused { "▶" } else { " " })
        .highlight_spacing(HighlightSpacing::Always);
    let mut table_state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut table_state);
    if is_empty && area.height > 1 {
        let text = if !state.data().has_data() {
            "waiting for the first update…".to_string()
        } else if !state.filter.is_empty() {
            format!("{empty} matching the filter ({})", state.filter.text)
        } else {
            format!("{empty} yet")
        };
        let msg_area = Rect { y: area.y + 1, height: area.height - 1, ..area };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(text, DIM))).alignment(Alignment::Center).wrap(Wrap { trim: true }),
            msg_area,
        );
    }
}

fn trend_width(width: u16) -> u16 {
    match width {
        w if w >= 120 => 24,
        w if w >= 70 => 10,
        _ => 0,
    }
}

/// The widths a `Table` gives its columns in `width` (with the 1-column selection gutter and
/// 1 column of spacing), so cells can be shortened with an ellipsis instead of cut.
fn column_widths(width: u16, widths: &[Constraint]) -> Vec<usize> {
    Layout::horizontal(widths.to_vec())
        .flex(Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, width.saturating_sub(1), 1))
        .iter()
        .map(|r| r.width as usize)
        .collect()
}

/// Cut `s` to `w` columns, ending in `…` when cut.
pub(super) fn ellipsize(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

/// Like [`ellipsize`], but keeps a symbol's `+0xoff`: `__udp_enqueue_sch…+0x1d3`.
pub(super) fn ellipsize_symbol(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_string();
    }
    match s.rfind('+') {
        Some(pos) if s.len() - pos + 4 <= w => {
            let off = &s[pos..];
            format!("{}{off}", ellipsize(&s[..pos], w - off.len()))
        }
        _ => ellipsize(s, w),
    }
}

fn drops_table(frame: &mut Frame<'_>, area: Rect, state: &State, rows: &[DropRow], focused: bool) {
    let narrow = area.width < 60;
    let tw = trend_width(area.width);
    let mut widths = vec![Constraint::Fill(2), Constraint::Fill(3), Constraint::Length(if narrow { 9 } else { 10 })];
    let mut head = vec![Cell::from("Reason"), Cell::from("Location"), right("Count")];
    if !narrow {
        widths.extend([Constraint::Length(8), Constraint::Length(6)]);
        head.extend([right("Rate/s"), right("Share")]);
    }
    if tw > 0 {
        widths.push(Constraint::Length(tw));
        head.push(Cell::from("Trend"));
    }
    let cols = column_widths(area.width, &widths);
    let body = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                Cell::from(ellipsize(&r.reason, cols[0])),
                Cell::from(ellipsize_symbol(&r.symbol, cols[1])),
                right(fmt_count(r.count)),
            ];
            if !narrow {
                cells.extend([right(fmt_rate(r.rate)), right(fmt_pct(r.share))]);
            }
            if tw > 0 {
                cells.push(Cell::from(Span::styled(spark(&r.trend, tw as usize), Style::new().fg(Color::Red))));
            }
            Row::new(cells)
        })
        .collect();
    let sel = selection(state, Panel::Drops, rows.iter().map(|r| r.key.clone()));
    draw_table(frame, area, state, header_row(head), body, widths, sel, focused, "no drops");
}

fn causes_panel(frame: &mut Frame<'_>, area: Rect, state: &State, rows: &[CauseRow], focused: bool) {
    let sel = selection(state, Panel::Causes, rows.iter().map(|r| r.key.clone()));
    let side_by_side = area.width >= 100 || area.height < 12;
    let (list, advice) = if side_by_side {
        let [a, b] = Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(area);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Length(area.height / 2)]).areas(area);
        (a, b)
    };
    let widths = vec![Constraint::Length(2), Constraint::Fill(1), Constraint::Length(9), Constraint::Length(6)];
    let cols = column_widths(list.width, &widths);
    let body = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Row::new(vec![
                right(format!("{}", i + 1)),
                Cell::from(ellipsize(&r.cause.title, cols[1])),
                right(fmt_count(r.cause.drops)),
                right(fmt_pct(r.share)),
            ])
        })
        .collect();
    draw_table(
        frame,
        list,
        state,
        header_row(vec![right("#"), Cell::from("Cause"), right("Drops"), right("Share")]),
        body,
        widths,
        sel,
        focused,
        "no causes classified",
    );
    let mut lines = Vec::new();
    if let Some(r) = sel.and_then(|i| rows.get(i)) {
        lines.push(Line::from(Span::styled("Advice", Style::new().fg(ACCENT).bold())));
        if r.cause.advice.is_empty() {
            lines.push(Line::from(Span::styled("(none)", DIM)));
        }
        for a in &r.cause.advice {
            lines.push(Line::from(format!("• {a}")));
        }
    }
    let block = if side_by_side {
        Block::new().borders(Borders::LEFT).border_style(DIM).padding(Padding::left(1))
    } else {
        Block::new().borders(Borders::TOP).border_style(DIM)
    };
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), advice);
}

fn flows_table(frame: &mut Frame<'_>, area: Rect, state: &State, rows: &[FlowRow], focused: bool) {
    let wide = area.width >= 110;
    let (head, widths) = if wide {
        (
            vec![
                Cell::from("Proto"),
                Cell::from("Source"),
                Cell::from("Destination"),
                right("Netns"),
                Cell::from("Device"),
                Cell::from("Process"),
                Cell::from("Reason"),
                right("Count"),
                right("Rate/s"),
            ],
            vec![
                Constraint::Length(6),
                Constraint::Fill(3),
                Constraint::Fill(3),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Fill(2),
                Constraint::Fill(2),
                Constraint::Length(10),
                Constraint::Length(8),
            ],
        )
    } else {
        (
            vec![Cell::from("Proto"), Cell::from("Flow"), right("Netns"), Cell::from("Device"), right("Count")],
            vec![
                Constraint::Length(5),
                Constraint::Fill(1),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(9),
            ],
        )
    };
    let cols = column_widths(area.width, &widths);
    let body = rows
        .iter()
        .map(|r| {
            let f = &r.flow;
            if wide {
                Row::new(vec![
                    Cell::from(f.flow.proto.clone()),
                    Cell::from(ellipsize(&f.flow.source(), cols[1])),
                    Cell::from(ellipsize(&f.flow.destination(), cols[2])),
                    right(ellipsize(&f.netns_text(), cols[3])),
                    Cell::from(ellipsize(&or_dash(&f.device), cols[4])),
                    Cell::from(ellipsize(&or_dash(&f.process()), cols[5])),
                    Cell::from(ellipsize(&reason_cell(state, f), cols[6])),
                    right(fmt_count(f.count)),
                    right(fmt_rate(r.rate)),
                ])
            } else {
                Row::new(vec![
                    Cell::from(f.flow.proto.clone()),
                    Cell::from(ellipsize(&flow_cell(f), cols[1])),
                    right(ellipsize(&f.netns_text(), cols[2])),
                    Cell::from(ellipsize(&or_dash(&f.device), cols[3])),
                    right(fmt_count(f.count)),
                ])
            }
        })
        .collect();
    let sel = selection(state, Panel::Flows, rows.iter().map(|r| r.key.clone()));
    draw_table(frame, area, state, header_row(head), body, widths, sel, focused, "no flows");
}

/// A flow's reason, with who dropped it: the firewall chain (`in`), or the tc or XDP program
/// (`by`).
fn reason_cell(state: &State, f: &crate::model::FlowCount) -> String {
    if !f.chain.is_empty() {
        return format!("{} in {}", f.reason, f.chain);
    }
    state
        .data()
        .update
        .summary
        .program_of(f.flow.netns.inode, f.flow.netns.cookie, f.ifindex, &f.reason)
        .map_or_else(|| f.reason.name.clone(), |p| format!("{} by {p}", f.reason))
}

fn counters_table(frame: &mut Frame<'_>, area: Rect, state: &State, rows: &[CounterLine], focused: bool) {
    let tw = if area.width >= 60 { 10 } else { 0 };
    let mut head = vec![Cell::from("Scope"), Cell::from("Counter"), right("Total"), right("Rate/s")];
    let mut widths = vec![Constraint::Fill(1), Constraint::Fill(1), Constraint::Length(10), Constraint::Length(8)];
    if tw > 0 {
        head.push(Cell::from("Trend"));
        widths.push(Constraint::Length(tw));
    }
    let cols = column_widths(area.width, &widths);
    let body = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                Cell::from(ellipsize(&r.row.scope, cols[0])),
                Cell::from(ellipsize(&r.row.counter, cols[1])),
                right(fmt_count(r.row.total)),
                right(fmt_rate(r.rate)),
            ];
            if tw > 0 {
                cells.push(Cell::from(Span::styled(spark(&r.trend, tw as usize), Style::new().fg(Color::Magenta))));
            }
            Row::new(cells)
        })
        .collect();
    let sel = selection(state, Panel::Counters, rows.iter().map(|r| r.key.clone()));
    draw_table(frame, area, state, header_row(head), body, widths, sel, focused, "no NIC/softnet drops");
}

// ---------------------------------------------------------------------------------------------
// Chart

/// A duration as `45s`, `4m10s`, `5m`.
fn fmt_span(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s:02}s"),
    }
}

fn chart_title(d: &Data, span_secs: f64) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(" Drop rate ", Style::new().bold())];
    if !d.history.is_empty() {
        let peak = d.history.iter().map(|p| p.1).fold(0.0, f64::max);
        spans.push(Span::styled(
            format!("now {}/s · peak {}/s · last {} ", fmt_rate(d.rate()), fmt_rate(peak), fmt_span(span_secs)),
            DIM,
        ));
    }
    spans
}

/// The 80-column chart: a sparkline, one column per second, newest on the right.
#[expect(
    clippy::cast_precision_loss,
    reason = "the number of chart points is at most the terminal width, exact in f64"
)]
fn render_chart_small(frame: &mut Frame<'_>, area: Rect, d: &Data) {
    let width = area.width as usize;
    let points: Vec<u64> =
        d.history.iter().skip(d.history.len().saturating_sub(width)).map(|&(_, r)| r.ceil() as u64).collect();
    let block =
        Block::new().borders(Borders::TOP).border_style(DIM).title(Line::from(chart_title(d, points.len() as f64)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if points.is_empty() {
        frame.render_widget(Paragraph::new(Span::styled("collecting…", DIM)).alignment(Alignment::Center), inner);
        return;
    }
    let max = points.iter().copied().max().unwrap_or(0).max(1);
    let used = (points.len() as u16).min(inner.width);
    let spark_area = Rect { x: inner.right() - used, width: used, ..inner };
    frame.render_widget(Sparkline::default().data(&points).max(max).style(Style::new().fg(Color::Red)), spark_area);
}

fn render_chart_full(frame: &mut Frame<'_>, area: Rect, d: &Data) {
    let now = d.history.back().map_or(0.0, |p| p.0);
    let points: Vec<(f64, f64)> = d.history.iter().map(|&(t, r)| (t - now, r)).collect();
    let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let block = Block::bordered()
        .border_style(Style::new().fg(Color::DarkGray))
        .title(Line::from(chart_title(d, HISTORY_SECS)));
    if points.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new(Span::styled("collecting…", DIM)).alignment(Alignment::Center), inner);
        return;
    }
    let top = if peak > 0.0 { peak * 1.1 } else { 1.0 };
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Red))
            .data(&points),
    ])
    .block(block)
    .x_axis(Axis::default().style(DIM).bounds([-HISTORY_SECS, 0.0]).labels(vec![
        Line::from("-5m"),
        Line::from("-2m30s"),
        Line::from("now"),
    ]))
    .y_axis(Axis::default().style(DIM).bounds([0.0, top]).labels(vec![
        Line::from("0"),
        Line::from(fmt_short(top / 2.0)),
        Line::from(fmt_short(top)),
    ]));
    frame.render_widget(chart, area);
}

// ---------------------------------------------------------------------------------------------
// Help

fn render_help(frame: &mut Frame<'_>, body: Rect) {
    let mut lines = vec![Line::from(Span::styled("Keys", Style::new().fg(ACCENT).bold()))];
    for (k, v) in KEYS {
        lines.push(Line::from(vec![Span::styled(format!("  {k:<16}"), Style::new().bold()), Span::raw(v.to_string())]));
    }
    lines.push(Line::default());
    lines.push(Line::from(Span::styled("Filter terms", Style::new().fg(ACCENT).bold())));
    for l in FILTER_HELP {
        lines.push(Line::from(format!("  {l}")));
    }
    let width = body.width.min(72);
    let height = body.height.min(lines.len() as u16 + 2);
    let area = Rect { x: body.x + (body.width - width) / 2, y: body.y + (body.height - height) / 2, width, height };
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::bordered()
                    .border_style(Style::new().fg(ACCENT))
                    .title(Line::from(Span::styled(" pktloss top — help ", Style::new().bold()))),
            )
            .wrap(Wrap { trim: false }),
        area,
    );
}
