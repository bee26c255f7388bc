//! TUI tests: state logic, key map, and insta snapshots of every view from `TestBackend`.
use clap::CommandFactory as _;
use insta::assert_snapshot;
use ratatui::{
    Terminal,
    backend::TestBackend,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
};

use std::{
    collections::VecDeque,
    io,
    sync::{atomic::AtomicBool, mpsc},
    time::Duration,
};

use ratatui::crossterm::event::Event;

use super::{
    Action, AfterWake, CauseId, CauseView, Drawn, Mode, State, Update, after_wake,
    detail::detail_lines,
    event_loop,
    fixtures::{NS_HOST, NS_TEST, state_after, summary_at, update_at, update_with_programs_at},
    input::KEYS,
    map_key, render,
    state::{
        Filter, HISTORY_SECS, Panel, SortKey,
        data::TREND_LEN,
        filter::{NetnsSel, Term},
    },
    term::{Input, Wake},
    view::fmt_count,
};
use crate::{
    cli::{
        args::Cli,
        help::{self, Example},
    },
    model::FlowCount,
    tui::state::filter::FILTER_HELP,
};

/// Draw as the TUI loop does: render, then hand the state what the draw measured.
fn draw(state: &mut State, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut drawn = Drawn::default();
    terminal.draw(|f| drawn = render(f, state)).unwrap();
    state.drawn(drawn);
    terminal.backend().to_string()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Press keys through the real key map: chars are typed one by one.
fn press(state: &mut State, codes: &[KeyCode]) {
    for &code in codes {
        let action = map_key(key(code), state.mode());
        state.apply(action);
    }
}

fn type_str(state: &mut State, text: &str) {
    for c in text.chars() {
        press(state, &[KeyCode::Char(c)]);
    }
}

fn main_state() -> State {
    state_after(30)
}

// ---------------------------------------------------------------------------------------------
// State logic

#[test]
#[expect(clippy::cast_precision_loss, reason = "small test counts, exact in f64")]
#[expect(clippy::float_cmp, reason = "rates of small whole counts over whole seconds are exact in f64")]
fn rates_come_from_successive_updates() {
    let mut s = State::new();
    s.ingest(update_at(0));
    s.ingest(update_at(1));
    let d = s.data();
    let total1 = summary_at(1).total_drops as f64;
    assert_eq!(d.rate(), total1);
    s.ingest(update_at(2));
    let d = s.data();
    let delta = (summary_at(2).total_drops - summary_at(1).total_drops) as f64;
    assert_eq!(d.rate(), delta);
    let udp = d.drop_rows().into_iter().find(|r| r.symbol.starts_with("__udp4_lib_rcv")).unwrap();
    // 40 * WAVE[2] / 4 = 40 drops in second 2, over both stacks.
    assert_eq!(udp.rate, 40.0);
    assert_eq!(udp.trend, vec![30, 40]);
    assert_eq!(udp.stacks.len(), 2);
    assert!(udp.stacks[0].0 >= udp.stacks[1].0);
}

/// Two namespaces that had one inode (the first deleted, its inode given to the second) are
/// told apart by their cookies: two flow rows, each with its own count and rate.
#[test]
fn flows_of_namespaces_that_reused_an_inode_stay_apart() {
    let with_twin = |t: u64, first: u64, second: u64| {
        let mut u = update_at(t);
        let mut f = u.summary.flows[0].clone();
        u.summary.flows.truncate(1);
        f.flow.netns.cookie = u.summary.flows[0].flow.netns.cookie + 1;
        (u.summary.flows[0].count, f.count) = (first, second);
        u.summary.flows.push(f);
        u
    };
    let mut s = State::new();
    s.ingest(with_twin(0, 10, 0));
    s.ingest(with_twin(1, 10, 7));
    s.ingest(with_twin(2, 13, 9));
    let mut rows: Vec<(u64, u64, f64)> =
        s.data().flow_rows().iter().map(|r| (r.flow.flow.netns.cookie, r.flow.count, r.rate)).collect();
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), 2, "one inode, two namespaces: {rows:?}");
    assert_eq!(rows[0].0 + 1, rows[1].0);
    assert_eq!((rows[0].1, rows[0].2), (13, 3.0));
    assert_eq!((rows[1].1, rows[1].2), (9, 2.0));
}

#[test]
#[expect(clippy::cast_precision_loss, reason = "small test counts, exact in f64")]
#[expect(clippy::float_cmp, reason = "rates of small whole counts over whole seconds are exact in f64")]
fn rates_use_capture_time_not_update_count() {
    let mut s = State::new();
    s.ingest(update_at(0));
    s.ingest(update_at(2)); // a 2 s gap
    assert_eq!(s.data().rate(), summary_at(2).total_drops as f64 / 2.0);
    // A sub-second update refreshes counts but does not tick.
    let mut u = update_at(2);
    u.summary.duration_secs = 2.5;
    u.summary.total_drops += 100;
    s.ingest(u);
    assert_eq!(s.data().history.len(), 1);
    assert_eq!(s.data().total(), summary_at(2).total_drops + 100);
}

#[test]
#[expect(clippy::float_cmp, reason = "the fixtures' capture times are whole seconds, exact in f64")]
fn trend_and_history_are_bounded() {
    let s = state_after(400);
    let d = s.data();
    assert!(d.history.len() <= HISTORY_SECS as usize + 1);
    assert!(d.history.front().unwrap().0 >= 400.0 - HISTORY_SECS);
    assert_eq!(d.history.back().unwrap().0, 400.0);
    for r in d.drop_rows() {
        assert_eq!(r.trend.len(), TREND_LEN);
    }
}

#[test]
fn a_new_capture_starts_over() {
    let mut s = state_after(20);
    s.ingest(update_at(3));
    assert_eq!(s.data().history.len(), 1);
    assert_eq!(s.data().total(), summary_at(3).total_drops);
}

#[test]
fn reset_rebaselines_counts() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('r')]);
    assert_eq!(s.data().total(), 0);
    assert!(s.visible_drops().is_empty());
    assert!(s.visible_flows().is_empty());
    assert!(s.data().history.is_empty());
    assert_eq!(s.data().lost(), 0);
    assert_eq!(s.data().samples().count(), 0);
    s.ingest(update_at(31));
    let delta = summary_at(31).total_drops - summary_at(30).total_drops;
    assert_eq!(s.data().total(), delta);
    let sum: u64 = s.visible_drops().iter().map(|r| r.count).sum();
    assert_eq!(sum, delta);
    // Causes and counters are rebaselined too.
    let causes: u64 = s.visible_causes().iter().map(|c| c.cause.drops).sum();
    assert!(causes <= delta);
    assert!(s.visible_counters().iter().all(|c| c.row.total < 100));
}

#[test]
#[expect(clippy::float_cmp, reason = "the fixtures' capture times are whole seconds, exact in f64")]
fn pause_freezes_the_display_but_keeps_collecting() {
    let mut s = main_state();
    s.clear_dirty();
    press(&mut s, &[KeyCode::Char('p')]);
    assert!(s.is_paused());
    s.clear_dirty();
    for t in 31..=40 {
        s.ingest(update_at(t));
    }
    assert!(!s.is_dirty(), "paused updates do not redraw");
    assert_eq!(s.data().now(), 30.0);
    assert_eq!(s.live().now(), 40.0);
    press(&mut s, &[KeyCode::Char('p')]);
    assert!(!s.is_paused());
    assert_eq!(s.data().now(), 40.0);
    assert_eq!(s.data().history.len(), 40);
}

#[test]
fn filter_parsing() {
    let p = |s: &str| Filter::parse(s).unwrap().terms;
    assert_eq!(p("proto:udp"), vec![Term::Proto("udp".into())]);
    assert_eq!(p("port:53"), vec![Term::Port(53)]);
    assert_eq!(p("netns:4026531840"), vec![Term::Netns(NetnsSel::Inode(4026531840))]);
    assert_eq!(p("netns:podman:web"), vec![Term::Netns(NetnsSel::Name("podman:web".into()))]);
    assert_eq!(p("dev:veth0"), vec![Term::Dev("veth0".into())]);
    assert_eq!(p("host:10.0.0.1"), vec![Term::Host("10.0.0.1".into())]);
    assert_eq!(p("host:2001:db8::1"), vec![Term::Host("2001:db8::1".into())]);
    assert_eq!(p("reason:NO_SOCKET"), vec![Term::Reason("NO_SOCKET".into())]);
    assert_eq!(p("reason:SKB_DROP_REASON_NO_SOCKET"), vec![Term::Reason("NO_SOCKET".into())]);
    assert_eq!(p("dig"), vec![Term::Word("dig".into())]);
    assert_eq!(p("fe80::1"), vec![Term::Word("fe80::1".into())]);
    assert_eq!(p("  PROTO:tcp   port:8080 "), vec![Term::Proto("tcp".into()), Term::Port(8080)]);
    assert_eq!(Filter::parse("  proto:udp   port:53 ").unwrap().text, "proto:udp port:53");
    assert!(Filter::parse("").unwrap().is_empty());
    assert!(Filter::parse("port:abc").unwrap_err().contains("bad port"));
    assert!(Filter::parse("port:70000").is_err());
    assert!(Filter::parse("netns:99999999999").unwrap_err().contains("netns"));
    assert!(Filter::parse("proto:").unwrap_err().contains("needs a value"));
    assert!(Filter::parse("foo:bar").unwrap_err().contains("unknown filter"));
}

fn filtered(text: &str) -> State {
    let mut s = main_state();
    s.filter = Filter::parse(text).unwrap();
    s
}

#[test]
fn filter_matching() {
    let s = filtered("proto:udp");
    assert!(s.visible_flows().iter().all(|f| f.flow.flow.proto == "udp"));
    assert_eq!(s.visible_flows().len(), 3);
    let drops: Vec<String> = s.visible_drops().into_iter().map(|r| r.symbol).collect();
    assert_eq!(drops.len(), 2, "{drops:?}");
    assert!(drops.iter().all(|d| d.contains("udp")));

    let s = filtered("port:53");
    assert_eq!(s.visible_flows().len(), 1);
    assert_eq!(s.visible_drops().len(), 1);

    let s = filtered(&format!("netns:{NS_HOST}"));
    assert!(s.visible_flows().iter().all(|f| f.flow.flow.netns.inode == NS_HOST));
    let s = filtered(&format!("netns:{NS_TEST} proto:tcp"));
    assert_eq!(s.visible_flows().len(), 1);

    let s = filtered("dev:veth0");
    assert!(s.visible_flows().iter().all(|f| f.flow.device == "veth0"));
    assert_eq!(s.visible_flows().len(), 3);
    assert!(s.visible_counters().is_empty());
    let s = filtered("dev:eth0");
    assert_eq!(s.visible_counters().len(), 2);

    let s = filtered("host:10.0.0.2");
    assert_eq!(s.visible_flows().len(), 3);
    let s = filtered("host:10.0.0.");
    assert_eq!(s.visible_flows().len(), 4);
    let s = filtered("host:2001:db8::2");
    assert_eq!(s.visible_flows().len(), 1);

    let s = filtered("reason:no_socket");
    assert!(s.visible_drops().iter().all(|r| r.reason == "NO_SOCKET"));
    assert_eq!(s.visible_drops().len(), 2);
    assert_eq!(s.visible_causes().len(), 1);

    // Bare words: a process, a function, a port number.
    let s = filtered("avahi");
    assert_eq!(s.visible_flows().len(), 1);
    assert_eq!(s.visible_drops().len(), 1);
    let s = filtered("tcp_v4_rcv");
    assert_eq!(s.visible_drops().len(), 1);
    let s = filtered("8080");
    assert_eq!(s.visible_flows().len(), 1);

    let s = filtered("proto:sctp");
    assert!(s.visible_drops().is_empty());
    assert!(s.visible_flows().is_empty());
}

/// The `netns:` term takes the names the TUI shows for namespaces (`podman:pktl-uxc`), the
/// container's name alone, or the inode; a part of a name is no name.
#[test]
fn the_netns_filter_takes_the_names_it_shows() {
    let name = "podman:pktl-uxc";
    let mut s = State::new();
    for t in 0..=30 {
        let mut u = update_at(t);
        for f in u.summary.flows.iter_mut().filter(|f| f.flow.netns.inode == NS_TEST) {
            f.netns_name = name.into();
        }
        for x in u.summary.samples.iter_mut().filter(|x| x.flow.netns.inode == NS_TEST) {
            x.netns_name = name.into();
        }
        s.ingest(u);
    }
    let mut shown = |text: &str| {
        s.filter = Filter::parse(text).unwrap();
        let flows: Vec<u32> = s.visible_flows().iter().map(|f| f.flow.flow.netns.inode).collect();
        (flows, s.visible_drops().len(), s.visible_causes().len())
    };
    let by_inode = shown(&format!("netns:{NS_TEST}"));
    assert!(!by_inode.0.is_empty() && by_inode.0.iter().all(|n| *n == NS_TEST), "{by_inode:?}");
    assert!(by_inode.1 > 0 && by_inode.2 > 0, "{by_inode:?}");
    assert_eq!(shown("netns:podman:pktl-uxc"), by_inode);
    assert_eq!(shown("netns:pktl-uxc"), by_inode);
    assert_eq!(shown("netns:PKTL-UXC"), by_inode);
    assert!(shown("netns:pktl").0.is_empty());
    assert!(shown("netns:docker:pktl-uxc").0.is_empty());
    // The flow details show the name.
    s.filter = Filter::parse("netns:pktl-uxc").unwrap();
    assert!(s.visible_flows().iter().all(|f| f.flow.netns_text() == name));
}

/// Every term filters every panel alike: `port:53` keeps the causes that explain port-53
/// drops, as it keeps the port-53 drops and flows (it used to leave the Causes panel
/// unfiltered, while a bare number filtered it).
#[test]
fn field_terms_filter_the_causes_panel() {
    let ids = |s: &State| s.visible_causes().into_iter().map(|c| c.cause.id.as_str()).collect::<Vec<_>>();
    // The port-53 flow is a UDP NO_SOCKET drop: its cause only.
    assert_eq!(ids(&filtered("port:53")), ["no-listener"]);
    // 8080 is a TCP NO_SOCKET flow: the same as a term and as a bare word.
    assert_eq!(ids(&filtered("port:8080")), ["no-listener"]);
    assert_eq!(ids(&filtered("8080")), ["no-listener"]);
    assert_eq!(ids(&filtered("proto:udp")), ["no-listener", "udp-rcvbuf-full"]);
    assert_eq!(ids(&filtered("host:2001:db8::1")), ["firewall-drop"]);
    assert_eq!(ids(&filtered(&format!("netns:{NS_HOST}"))), ["udp-rcvbuf-full", "firewall-drop"]);
    assert_eq!(ids(&filtered("dev:veth0")), ["no-listener"]);
    // The terms hold together for one packet: no UDP drop to port 8080.
    assert!(ids(&filtered("proto:udp port:8080")).is_empty());
    assert!(ids(&filtered("port:9")).is_empty());
    assert!(ids(&filtered("proto:sctp")).is_empty());
    // reason: and words still match what the cause says.
    assert_eq!(ids(&filtered("reason:rcvbuf")), ["udp-rcvbuf-full"]);
    assert_eq!(ids(&filtered("reason:no_socket")), ["no-listener"]);
    assert_eq!(ids(&filtered("netfilter port:443")), ["firewall-drop"]);

    // A cause that no traced drop shows (counters only) is matched on what it says, and on
    // its namespaces.
    let mut u = update_at(31);
    u.causes.push(CauseView {
        id: CauseId::NicRingFull,
        title: "NIC RX ring full".into(),
        drops: 500,
        evidence: vec!["eth0: rx_missed_errors +500".into()],
        netns: vec![NS_HOST],
        ..Default::default()
    });
    let mut s = main_state();
    s.ingest(u);
    let mut shows = |text: &str| {
        s.filter = Filter::parse(text).unwrap();
        ids(&s).contains(&"nic-ring-full")
    };
    assert!(shows(&format!("netns:{NS_HOST}")) && shows("dev:eth0") && shows("eth0"));
    assert!(!shows("port:53") && !shows(&format!("netns:{NS_TEST}")) && !shows("proto:tcp"));

    // Counters count packets of no known port: hidden by a port term as by the bare number.
    assert!(filtered("port:53").visible_counters().is_empty());
    assert!(filtered("53").visible_counters().is_empty());
    assert_eq!(filtered("dev:eth0").visible_counters().len(), 2);
}

/// The "Dropped at" section of the drill-down of the flow row `pick` chooses.
fn flow_detail(s: &mut State, pick: impl Fn(&FlowCount) -> bool) -> String {
    press(s, &[KeyCode::Char('3'), KeyCode::Home]);
    let i = s.visible_flows().iter().position(|r| pick(&r.flow)).expect("no such flow");
    for _ in 0..i {
        press(s, &[KeyCode::Down]);
    }
    press(s, &[KeyCode::Enter]);
    let (_, lines) = detail_lines(s, 150);
    press(s, &[KeyCode::Esc]);
    let text: Vec<String> = lines.iter().map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect()).collect();
    let text = text.join("\n");
    // Its "Dropped at" section.
    let from = text.find("Dropped at").expect("no Dropped at section");
    let to = text.find("Sample packets").expect("no Sample packets section");
    text[from..to].to_string()
}

/// A flow's drill-down shows where that flow's drops happened: never the locations of other
/// flows' drops (it listed every location of the flow's reason, e.g. `tcp_v4_rcv` for a UDP
/// flow); where the data cannot tell, it says so.
#[test]
fn flow_detail_shows_only_the_flows_locations() {
    let mut s = main_state();
    // NO_SOCKET happens at two locations (UDP and TCP); flows are counted per reason, so the
    // UDP flow's locations are the ones its samples show.
    let udp = flow_detail(&mut s, |f| f.flow.dport == 53);
    assert!(udp.contains("__udp4_lib_rcv+0x8b2  (in 1 of the flow's 1 sampled drops)"), "{udp}");
    assert!(!udp.contains("tcp_v4_rcv"), "another flow's location in the UDP flow's details:\n{udp}");
    assert!(udp.contains("NO_SOCKET drops happen at 2 locations"), "{udp}");
    let tcp = flow_detail(&mut s, |f| f.flow.dport == 8080);
    assert!(tcp.contains("tcp_v4_rcv+0x1a2  (in 1 of the flow's 1 sampled drops)"), "{tcp}");
    assert!(!tcp.contains("__udp4_lib_rcv"), "{tcp}");
    // SOCKET_RCVBUFF happens at one location: all of the flow's drops happened there.
    let rcvbuf = flow_detail(&mut s, |f| f.reason == "SOCKET_RCVBUFF");
    let count = s.visible_flows().iter().find(|r| r.flow.reason == "SOCKET_RCVBUFF").unwrap().flow.count;
    assert!(
        rcvbuf.lines().any(|l| l.contains(&fmt_count(count)) && l.contains("__udp_enqueue_schedule_skb+0x1d3")),
        "{rcvbuf}"
    );
    assert!(!rcvbuf.contains("not known"), "{rcvbuf}");

    // A kernel without drop reasons counts flows per location: the same packet tuple dropped
    // at two places is two rows, each with its own location and count only.
    let mut u = update_at(30);
    let udp = u.summary.flows[0].clone();
    let at = |location: &str, count: u64, f: &FlowCount| FlowCount {
        reason: crate::model::DropReason::new(0, "UNKNOWN"),
        location: location.into(),
        count,
        ..f.clone()
    };
    let tcp = u.summary.flows[3].clone();
    u.summary.flows = vec![
        at("__udp4_lib_rcv+0x8b2", 70, &udp),
        at("udp_queue_rcv_one_skb+0x1e8", 30, &udp),
        at("tcp_v4_rcv+0x1a2", 5, &tcp),
    ];
    for l in &mut u.summary.locations {
        l.reason = "UNKNOWN".into();
    }
    u.summary.samples.clear();
    let mut s = State::new();
    s.ingest(u);
    assert_eq!(s.visible_flows().len(), 3, "one row per (flow, location)");
    let first = flow_detail(&mut s, |f| f.location.starts_with("__udp4"));
    assert!(first.lines().any(|l| l.contains(" 70  __udp4_lib_rcv+0x8b2")), "{first}");
    assert!(!first.contains("udp_queue_rcv_one_skb") && !first.contains("tcp_v4_rcv"), "{first}");
    let second = flow_detail(&mut s, |f| f.location.starts_with("udp_queue"));
    assert!(second.lines().any(|l| l.contains(" 30  udp_queue_rcv_one_skb+0x1e8")), "{second}");
    assert!(!second.contains("__udp4_lib_rcv") && !second.contains("tcp_v4_rcv"), "{second}");
}

#[test]
fn sort_keys_order_rows() {
    let mut s = main_state();
    let counts: Vec<u64> = s.visible_drops().iter().map(|r| r.count).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]));
    s.sort = SortKey::Rate;
    let rates: Vec<f64> = s.visible_drops().iter().map(|r| r.rate).collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]));
    s.sort = SortKey::Reason;
    let reasons: Vec<String> = s.visible_drops().into_iter().map(|r| r.reason.name).collect();
    assert!(reasons.windows(2).all(|w| w[0] <= w[1]));
    s.sort = SortKey::Location;
    s.reverse = true;
    let places: Vec<String> = s.visible_drops().into_iter().map(|r| r.symbol).collect();
    assert!(places.windows(2).all(|w| w[0] >= w[1]));
    press(&mut s, &[KeyCode::Char('s')]);
    assert_eq!(s.sort, SortKey::Count);
}

#[test]
fn selection_follows_the_row_across_resorts() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Down, KeyCode::Down]);
    let keys = s.visible_keys(Panel::Drops);
    let chosen = keys[2].clone();
    s.sort = SortKey::Reason;
    let keys = s.visible_keys(Panel::Drops);
    let i = s.selected_index(Panel::Drops, &keys).unwrap();
    assert_eq!(keys[i], chosen);
    press(&mut s, &[KeyCode::End]);
    let keys = s.visible_keys(Panel::Drops);
    assert_eq!(s.selected_index(Panel::Drops, &keys), Some(keys.len() - 1));
    press(&mut s, &[KeyCode::Char('g'), KeyCode::Up]);
    assert_eq!(s.selected_index(Panel::Drops, &keys), Some(0));
}

#[test]
fn key_map() {
    let m = |c, mode| map_key(key(c), mode);
    assert_eq!(m(KeyCode::Char('q'), Mode::Normal), Action::Quit);
    assert_eq!(m(KeyCode::Esc, Mode::Normal), Action::ClearFilter);
    assert_eq!(m(KeyCode::Esc, Mode::Detail), Action::Close);
    assert_eq!(m(KeyCode::Char('q'), Mode::Detail), Action::Quit);
    assert_eq!(m(KeyCode::Esc, Mode::Prompt), Action::Cancel);
    assert_eq!(m(KeyCode::Char('q'), Mode::Prompt), Action::Input('q'));
    assert_eq!(m(KeyCode::Char('x'), Mode::Help), Action::Close);
    assert_eq!(m(KeyCode::Tab, Mode::Normal), Action::NextPanel);
    assert_eq!(m(KeyCode::BackTab, Mode::Normal), Action::PrevPanel);
    assert_eq!(m(KeyCode::Char('j'), Mode::Normal), Action::Down);
    assert_eq!(m(KeyCode::Char('k'), Mode::Detail), Action::Up);
    assert_eq!(m(KeyCode::Enter, Mode::Normal), Action::Open);
    assert_eq!(m(KeyCode::Char('/'), Mode::Normal), Action::StartFilter);
    assert_eq!(m(KeyCode::Char('?'), Mode::Normal), Action::ToggleHelp);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for mode in [Mode::Normal, Mode::Detail, Mode::Help, Mode::Prompt] {
        assert_eq!(map_key(ctrl_c, mode), Action::Quit);
    }
}

/// The help table (shown in the overlay and by `pktloss top --help`) says what the key map
/// does: every key it lists, on the main screen.
#[test]
fn help_table_matches_the_key_map() {
    use Action::*;
    let event = |name: &str| -> KeyEvent {
        let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        match name {
            "Ctrl-C" => ctrl('c'),
            "Ctrl-L" => ctrl('l'),
            "Esc" => key(KeyCode::Esc),
            "Tab" => key(KeyCode::Tab),
            "Shift-Tab" => key(KeyCode::BackTab),
            "Enter" => key(KeyCode::Enter),
            "Space" => key(KeyCode::Char(' ')),
            "PgUp" => key(KeyCode::PageUp),
            "PgDn" => key(KeyCode::PageDown),
            "↑" => key(KeyCode::Up),
            "↓" => key(KeyCode::Down),
            "→" => key(KeyCode::Right),
            f if f.starts_with('F') && f.len() > 1 => key(KeyCode::F(f[1..].parse().unwrap())),
            c if c.chars().count() == 1 => key(KeyCode::Char(c.chars().next().unwrap())),
            other => panic!("help key {other:?}: add it to this test"),
        }
    };
    let expected: &[&[Action]] = &[
        &[Quit, Quit, Quit],
        &[ClearFilter],
        &[NextPanel, PrevPanel],
        &[Focus(Panel::Drops), Focus(Panel::Causes), Focus(Panel::Flows), Focus(Panel::Counters)],
        &[Up, Down, Down, Up],
        &[PageUp, PageDown, Top, Bottom],
        &[Open, Open, Open],
        &[CycleSort, ReverseSort],
        &[TogglePause, TogglePause],
        &[StartFilter, StartFilter],
        &[Reset],
        &[ToggleHelp, ToggleHelp, ToggleHelp],
        &[Redraw],
    ];
    assert_eq!(KEYS.len(), expected.len());
    for ((keys, what), want) in KEYS.iter().zip(expected) {
        let got: Vec<Action> = keys.split_whitespace().map(|k| map_key(event(k), Mode::Normal)).collect();
        assert_eq!(&got, want, "help line {keys:?} ({what})");
    }
}

// ---------------------------------------------------------------------------------------------
// pktloss top --help (and every subcommand's examples)

/// Each subcommand with its examples.
fn help_examples() -> [(&'static str, &'static [Example]); 7] {
    use help::*;
    [
        ("capture", CAPTURE),
        ("watch", WATCH),
        ("diagnose", DIAGNOSE),
        ("top", TOP),
        ("report", REPORT),
        ("reasons", REASONS),
        ("serve", SERVE),
    ]
}

/// `pktloss NAME --help`, as clap renders it.
fn subcommand_long_help(name: &str) -> String {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand_mut(name).unwrap_or_else(|| panic!("no subcommand {name}")).render_long_help().to_string()
}

/// Every subcommand's --help ends with examples that are real invocations of it, and
/// `top --help` lists every key of the TUI's help table and its filter terms.
#[test]
fn top_help_lists_every_key_and_every_subcommand_has_examples() {
    let mut names: Vec<String> =
        Cli::command().get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help").collect();
    names.sort();
    let mut covered: Vec<&str> = help_examples().iter().map(|(n, _)| *n).collect();
    covered.sort_unstable();
    assert_eq!(names, covered, "a subcommand without examples");
    for (name, list) in help_examples() {
        let help = subcommand_long_help(name);
        assert!(help.contains("Examples:"), "`pktloss {name} --help` has no examples:\n{help}");
        assert!((2..=4).contains(&list.len()), "{name}: {} examples", list.len());
        for (command, what) in list {
            assert!(help.contains(command) && help.contains(what), "{name} --help lacks {command:?}:\n{help}");
            let args: Vec<&str> = command.split_whitespace().collect();
            let matches = Cli::command()
                .try_get_matches_from(&args)
                .unwrap_or_else(|e| panic!("example {command:?} does not parse: {e}"));
            assert_eq!(matches.subcommand_name(), Some(name), "{command:?}");
        }
    }
    let top = subcommand_long_help("top");
    for (keys, what) in KEYS {
        assert!(top.contains(keys) && top.contains(what), "top --help lacks {keys:?}:\n{top}");
    }
    for line in FILTER_HELP {
        assert!(top.contains(line), "top --help lacks the filter line {line:?}:\n{top}");
    }
    // The short help (-h) has them too.
    let mut cli = Cli::command();
    cli.build();
    let short = cli.find_subcommand_mut("top").unwrap().render_help().to_string();
    assert!(short.contains("Keys (in the live view") && short.contains("Examples:"), "{short}");
}

#[test]
fn quit_paths() {
    for k in [KeyCode::Char('q'), KeyCode::F(10)] {
        let mut s = main_state();
        press(&mut s, &[k]);
        assert!(s.should_quit());
    }
    let mut s = main_state();
    s.apply(map_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), s.mode()));
    assert!(s.should_quit());
    // q quits from the overlays too.
    for open in [KeyCode::Enter, KeyCode::Char('?')] {
        let mut s = main_state();
        press(&mut s, &[open, KeyCode::Char('q')]);
        assert!(s.should_quit());
    }
}

/// Esc closes the help, the prompt and the drill-down, clears an applied filter, and never
/// quits (htop does not either); it used to quit from the main screen.
#[test]
fn esc_never_quits() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Esc, KeyCode::Esc]);
    assert!(!s.should_quit(), "Esc on the main screen quit");
    assert_eq!(s.mode(), Mode::Normal);

    press(&mut s, &[KeyCode::Char('?'), KeyCode::Esc]);
    assert!(!s.help && !s.should_quit());
    press(&mut s, &[KeyCode::Enter, KeyCode::Esc]);
    assert!(s.detail.is_none() && !s.should_quit());
    // Help over a drill-down: Esc closes the help, then the drill-down.
    press(&mut s, &[KeyCode::Enter, KeyCode::Char('?'), KeyCode::Esc]);
    assert!(!s.help && s.detail.is_some());
    press(&mut s, &[KeyCode::Esc]);
    assert!(s.detail.is_none() && !s.should_quit());

    // The prompt: Esc cancels the typing, and keeps the filter applied before.
    press(&mut s, &[KeyCode::Char('/')]);
    type_str(&mut s, "proto:udp");
    press(&mut s, &[KeyCode::Enter, KeyCode::Char('/'), KeyCode::Char('x'), KeyCode::Esc]);
    assert!(s.prompt.is_none() && !s.should_quit());
    assert_eq!(s.filter.text, "proto:udp");
    // Then Esc clears the applied filter; once more does nothing.
    press(&mut s, &[KeyCode::Esc]);
    assert!(s.filter.is_empty() && !s.should_quit());
    press(&mut s, &[KeyCode::Esc]);
    assert!(!s.should_quit());
    assert_eq!(s.mode(), Mode::Normal);

    press(&mut s, &[KeyCode::Char('q')]);
    assert!(s.should_quit());
}

#[test]
fn tab_cycles_panels() {
    let mut s = main_state();
    let mut seen = vec![s.focus];
    for _ in 0..4 {
        press(&mut s, &[KeyCode::Tab]);
        seen.push(s.focus);
    }
    assert_eq!(seen, vec![Panel::Drops, Panel::Causes, Panel::Flows, Panel::Counters, Panel::Drops]);
    assert_eq!(s.tab, Panel::Counters, "the tabbed area remembers the last panel");
    press(&mut s, &[KeyCode::BackTab]);
    assert_eq!(s.focus, Panel::Counters);
}

#[test]
fn detail_scroll_is_bounded() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Enter]);
    draw(&mut s, 80, 24);
    press(&mut s, &[KeyCode::End]);
    let end = s.detail.as_ref().unwrap().scroll;
    assert!(end > 0 && end < 200, "{end}");
    press(&mut s, &[KeyCode::Down, KeyCode::PageDown]);
    assert_eq!(s.detail.as_ref().unwrap().scroll, end, "no scrolling past the end");
    press(&mut s, &[KeyCode::Up]);
    assert_eq!(s.detail.as_ref().unwrap().scroll, end - 1);
    press(&mut s, &[KeyCode::Home]);
    assert_eq!(s.detail.as_ref().unwrap().scroll, 0);
}

#[test]
fn dirty_tracking() {
    let mut s = main_state();
    assert!(s.is_dirty());
    s.clear_dirty();
    s.apply(Action::None);
    assert!(!s.is_dirty(), "an unmapped key does not redraw");
    s.ingest(update_at(31));
    assert!(s.is_dirty());
    s.clear_dirty();
    s.set_ended();
    assert!(s.is_dirty());
    s.clear_dirty();
    s.set_ended();
    assert!(!s.is_dirty());
}

#[test]
fn any_size_renders_without_panic() {
    let mut states = vec![State::new(), main_state()];
    let mut detail = main_state();
    press(&mut detail, &[KeyCode::Enter]);
    states.push(detail);
    let mut help = main_state();
    press(&mut help, &[KeyCode::Char('?')]);
    states.push(help);
    let mut prompt = main_state();
    press(&mut prompt, &[KeyCode::Tab, KeyCode::Tab, KeyCode::Char('/')]);
    type_str(&mut prompt, "proto:udp port:53");
    states.push(prompt);
    for state in &mut states {
        for w in [1, 2, 10, 20, 29, 30, 40, 60, 69, 70, 80, 100, 139, 140, 220] {
            for h in [1, 2, 5, 6, 10, 17, 18, 24, 39, 40, 70] {
                draw(state, w, h);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn snap_main() {
    let mut s = main_state();
    assert_snapshot!("main_80x24", draw(&mut s, 80, 24));
    assert_snapshot!("main_160x48", draw(&mut s, 160, 48));
    assert_snapshot!("main_100x30", draw(&mut s, 100, 30));
}

#[test]
fn snap_empty_and_idle() {
    let mut s = State::new();
    assert_snapshot!("empty_80x24", draw(&mut s, 80, 24));
    assert_snapshot!("empty_160x48", draw(&mut s, 160, 48));
    let mut s = State::new();
    let mut quiet = Update { summary: summary_at(0), ..Default::default() };
    s.ingest(quiet.clone());
    quiet.summary.duration_secs = 5.0;
    s.ingest(quiet);
    assert_snapshot!("idle_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_focus_each_panel() {
    let mut s = main_state();
    for name in ["focus_causes", "focus_flows", "focus_counters"] {
        press(&mut s, &[KeyCode::Tab]);
        assert_snapshot!(format!("{name}_80x24"), draw(&mut s, 80, 24));
        assert_snapshot!(format!("{name}_160x48"), draw(&mut s, 160, 48));
    }
    // Select the second cause: its advice shows.
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('2'), KeyCode::Down]);
    assert_snapshot!("focus_causes_second_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_sort_keys() {
    let mut s = main_state();
    for name in ["sort_rate", "sort_reason", "sort_location"] {
        press(&mut s, &[KeyCode::Char('s')]);
        assert_snapshot!(format!("{name}_80x24"), draw(&mut s, 80, 24));
    }
    press(&mut s, &[KeyCode::Char('s'), KeyCode::Char('S')]);
    assert_snapshot!("sort_count_reversed_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_filter() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('/')]);
    type_str(&mut s, "proto:udp");
    assert_snapshot!("filter_prompt_80x24", draw(&mut s, 80, 24));
    press(&mut s, &[KeyCode::Enter]);
    assert_snapshot!("filter_applied_80x24", draw(&mut s, 80, 24));
    press(&mut s, &[KeyCode::Char('3')]);
    assert_snapshot!("filter_applied_flows_160x48", draw(&mut s, 160, 48));
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    press(&mut s, &[KeyCode::Char('/')]);
    assert_eq!(s.prompt.as_deref(), Some("proto:udp"), "the prompt edits the filter");
    s.apply(map_key(ctrl_u, s.mode()));
    type_str(&mut s, "proto:sctp");
    press(&mut s, &[KeyCode::Enter]);
    assert_snapshot!("filter_no_match_80x24", draw(&mut s, 80, 24));
    press(&mut s, &[KeyCode::Char('/')]);
    s.apply(map_key(ctrl_u, s.mode()));
    type_str(&mut s, "port:abc");
    press(&mut s, &[KeyCode::Enter]);
    assert_snapshot!("filter_error_80x24", draw(&mut s, 80, 24));
    // An empty filter clears it.
    s.apply(map_key(ctrl_u, s.mode()));
    press(&mut s, &[KeyCode::Enter]);
    assert!(s.filter.is_empty());
}

#[test]
fn snap_paused() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('p')]);
    for t in 31..=40 {
        s.ingest(update_at(t));
    }
    assert_snapshot!("paused_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_reset_and_ended() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('r')]);
    assert_snapshot!("reset_80x24", draw(&mut s, 80, 24));
    s.ingest(update_at(31));
    s.ingest(update_at(32));
    s.set_ended();
    assert_snapshot!("reset_then_ended_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_help() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Char('?')]);
    assert_snapshot!("help_80x24", draw(&mut s, 80, 24));
    assert_snapshot!("help_160x48", draw(&mut s, 160, 48));
    press(&mut s, &[KeyCode::Char('x')]);
    assert!(!s.help);
}

/// Drops of tc and XDP programs name their program in the flows table.
#[test]
fn snap_flows_name_tc_and_xdp_programs() {
    let mut s = State::new();
    for t in 0..=30 {
        s.ingest(update_with_programs_at(t));
    }
    press(&mut s, &[KeyCode::Tab, KeyCode::Tab]);
    let screen = draw(&mut s, 240, 30);
    assert!(screen.contains("TC_INGRESS by drop_port (id 412)"), "{screen}");
    assert!(screen.contains("XDP_DROP by xdp_ddos (id 413)"), "{screen}");
    assert_snapshot!("flows_programs_240x30", screen);
}

#[test]
fn snap_detail_drop() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Enter]);
    assert_eq!(s.mode(), Mode::Detail);
    assert_snapshot!("detail_drop_160x48", draw(&mut s, 160, 48));
    assert_snapshot!("detail_drop_80x24", draw(&mut s, 80, 24));
    press(&mut s, &[KeyCode::PageDown]);
    assert_snapshot!("detail_drop_scrolled_80x24", draw(&mut s, 80, 24));
    // Key path: back, two rows down, Enter.
    press(&mut s, &[KeyCode::Esc, KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Enter]);
    assert_snapshot!("detail_drop_third_row_80x24", draw(&mut s, 80, 24));
}

/// The hardware-trap cause the 6.1 guest's netdevsim run gave (its trap reports and devlink
/// statistics, diagnosed), first in the causes panel and drilled into.
#[test]
fn snap_detail_hardware_trap_cause() {
    let mut summary = crate::model::Summary::default();
    crate::testdata::add_netdevsim_traps(&mut summary, true);
    let d = crate::diagnose::diagnose(&crate::diagnose::DiagnosisInput { summary: &summary, deltas: &[], checks: &[] });
    let views = super::live::cause_views(&d, &summary);
    assert_eq!(views.iter().map(|c| c.id).collect::<Vec<_>>(), [CauseId::HardwareTrap]);
    let mut s = State::new();
    for t in 0..=30 {
        let mut u = update_at(t);
        u.causes.clone_from(&views);
        s.ingest(u);
    }
    press(&mut s, &[KeyCode::Tab, KeyCode::Enter]);
    let screen = draw(&mut s, 160, 48);
    assert!(screen.contains("Dropped in hardware (devlink trap)") && screen.contains("blackhole_route"), "{screen}");
    assert_snapshot!("detail_hardware_trap_160x48", screen);
}

#[test]
fn snap_detail_cause_flow_counter() {
    let mut s = main_state();
    press(&mut s, &[KeyCode::Tab, KeyCode::Enter]);
    assert_snapshot!("detail_cause_80x24", draw(&mut s, 80, 24));
    assert_snapshot!("detail_cause_160x48", draw(&mut s, 160, 48));
    press(&mut s, &[KeyCode::Esc, KeyCode::Tab, KeyCode::Enter]);
    assert_snapshot!("detail_flow_80x24", draw(&mut s, 80, 24));
    assert_snapshot!("detail_flow_160x48", draw(&mut s, 160, 48));
    press(&mut s, &[KeyCode::Esc, KeyCode::Tab, KeyCode::Enter]);
    assert_snapshot!("detail_counter_80x24", draw(&mut s, 80, 24));
    // The row disappears (reset) while its details are open.
    press(&mut s, &[KeyCode::Char('r')]);
    assert_snapshot!("detail_gone_80x24", draw(&mut s, 80, 24));
}

#[test]
fn snap_small_terminals() {
    let mut s = main_state();
    assert_snapshot!("tiny_40x10", draw(&mut s, 40, 10));
    assert_snapshot!("too_small_20x5", draw(&mut s, 20, 5));
    let mut s = main_state();
    press(&mut s, &[KeyCode::Tab, KeyCode::Tab]);
    assert_snapshot!("tiny_flows_60x15", draw(&mut s, 60, 15));
}

// ---------------------------------------------------------------------------------------------
// The event loop, on a model of the terminal and of crossterm's reader

/// What reaches the terminal, in order.
#[derive(Clone, Copy, Debug)]
enum Arrive {
    Key(KeyCode),
    Resize,
    /// A resize and a key, both ready before anyone looks (they wake the loop together).
    ResizeAndKey(KeyCode),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Tty,
    Signal,
}

/// The terminal as the loop sees it, with crossterm 0.28's reader modelled as it behaves on
/// Linux: poll(2) (`wait`) is level-triggered, but crossterm's epoll is edge-triggered (mio),
/// and when one epoll round has both its SIGWINCH pipe and the tty ready it returns the
/// resize and forgets the tty's readiness: those keys wait for the next byte to arrive.
/// Touching the termios wakes the tty's readers, which re-arms the edge (`rearm`).
struct Model {
    /// What arrives next, one item each time `wait` finds nothing pending.
    script: VecDeque<Arrive>,
    /// Keys in the kernel's tty queue, not yet read by crossterm.
    tty: VecDeque<KeyCode>,
    /// The loop's SIGWINCH pipe has a byte.
    winch: bool,
    /// crossterm's epoll ready list (edge-triggered: one entry per edge).
    epoll: Vec<Token>,
    /// Events crossterm has parsed and not yet returned.
    parsed: VecDeque<Event>,
    /// Calls to `wait`; the terminal hangs up after 50 (a stuck key).
    waits: usize,
}

impl Model {
    fn new(script: &[Arrive]) -> Self {
        Model {
            script: script.iter().copied().collect(),
            tty: VecDeque::new(),
            winch: false,
            epoll: Vec::new(),
            parsed: VecDeque::new(),
            waits: 0,
        }
    }

    fn edge(&mut self, token: Token) {
        if !self.epoll.contains(&token) {
            self.epoll.push(token);
        }
    }

    fn arrive(&mut self, a: Arrive) {
        let (resize, key) = match a {
            Arrive::Key(k) => (false, Some(k)),
            Arrive::Resize => (true, None),
            Arrive::ResizeAndKey(k) => (true, Some(k)),
        };
        if resize {
            self.winch = true;
            self.edge(Token::Signal);
        }
        if let Some(k) = key {
            self.tty.push_back(k);
            self.edge(Token::Tty);
        }
    }
}

impl Input for Model {
    fn wait(&mut self, _timeout: Duration) -> io::Result<Wake> {
        self.waits += 1;
        if self.waits > 50 {
            return Ok(Wake::Hangup);
        }
        if !self.winch && self.tty.is_empty() {
            match self.script.pop_front() {
                Some(a) => self.arrive(a),
                // The script is over: hang up, which ends the loop.
                None => return Ok(Wake::Hangup),
            }
        }
        Ok(if std::mem::take(&mut self.winch) {
            Wake::Resize
        } else if !self.tty.is_empty() {
            Wake::Input
        } else {
            Wake::Timeout
        })
    }

    fn poll(&mut self, _timeout: Duration) -> io::Result<bool> {
        if !self.parsed.is_empty() {
            return Ok(true);
        }
        for token in std::mem::take(&mut self.epoll) {
            match token {
                // The rest of this round's readiness is dropped.
                Token::Signal => {
                    self.parsed.push_back(Event::Resize(80, 24));
                    return Ok(true);
                }
                Token::Tty => {
                    self.parsed.extend(self.tty.drain(..).map(|c| Event::Key(key(c))));
                    if !self.parsed.is_empty() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn rearm(&mut self) {
        if !self.tty.is_empty() {
            self.edge(Token::Tty);
        }
    }

    fn read(&mut self) -> io::Result<Event> {
        if self.parsed.is_empty() {
            self.poll(Duration::ZERO)?;
        }
        Ok(self.parsed.pop_front().expect("read would block: the loop reads only after poll"))
    }
}

/// Run the real event loop on a capture's updates and the model; returns whether it quit
/// (a key), rather than ended by the hangup, and the model.
fn run_loop(script: &[Arrive]) -> (bool, Model) {
    let (tx, rx) = mpsc::channel();
    for t in 0..=30 {
        tx.send(update_at(t)).unwrap();
    }
    let stop = AtomicBool::new(false);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut model = Model::new(script);
    event_loop(&mut terminal, &rx, &stop, &mut model).unwrap();
    (!stop.load(std::sync::atomic::Ordering::Relaxed), model)
}

/// The reported bug: drill-down, Esc, a resize, then q; q was held back until another key
/// came, because the loop left crossterm's own resize pending, and crossterm then answered
/// the q's wake-up with that resize and dropped the q's readiness.
#[test]
fn q_after_a_resize_quits_at_once() {
    use Arrive::*;
    let (quit, model) = run_loop(&[Key(KeyCode::Enter), Key(KeyCode::Esc), Resize, Key(KeyCode::Char('q'))]);
    assert!(quit, "q not read after the resize ({} waits, {:?} still queued)", model.waits, model.tty);
}

/// A key that arrives together with the resize (one epoll round for crossterm) is read too.
#[test]
fn a_key_arriving_with_a_resize_is_read() {
    use Arrive::*;
    let (quit, model) = run_loop(&[Key(KeyCode::Enter), Key(KeyCode::Esc), ResizeAndKey(KeyCode::Char('q'))]);
    assert!(quit, "q not read after the resize ({} waits, {:?} still queued)", model.waits, model.tty);
}

#[test]
fn a_resize_reads_pending_input() {
    assert_eq!(after_wake(Wake::Resize), AfterWake::ResizeThenRead);
    assert_eq!(after_wake(Wake::Input), AfterWake::Read);
    assert_eq!(after_wake(Wake::Timeout), AfterWake::Idle);
    assert_eq!(after_wake(Wake::Hangup), AfterWake::Stop);
}

/// Causes whose counters show more drops than were traced (a filtered capture, or a NIC that
/// drops before any skb): their shares are of every drop known and add up to 100 % at most.
#[test]
fn cause_shares_add_up_to_at_most_one_hundred_percent() {
    let mut s = State::new();
    let mut u = update_at(5);
    u.summary.total_drops = 150;
    u.causes = vec![
        CauseView { id: CauseId::UdpRcvbufFull, title: "a".into(), drops: 399, ..CauseView::default() },
        CauseView { id: CauseId::NoListener, title: "b".into(), drops: 150, ..CauseView::default() },
        CauseView { id: CauseId::FirewallDrop, title: "c".into(), drops: 10, ..CauseView::default() },
    ];
    s.ingest(u);
    let rows = s.data().cause_rows();
    let sum: f64 = rows.iter().map(|r| r.share).sum();
    assert!(sum <= 1.0 + 1e-9, "shares add up to {sum}: {:?}", rows.iter().map(|r| r.share).collect::<Vec<_>>());
    assert!((rows[0].share - 399.0 / 559.0).abs() < 1e-9, "{}", rows[0].share);
    // Causes that explain fewer drops than were traced keep their share of the traced total.
    let mut s = State::new();
    let mut u = update_at(5);
    u.summary.total_drops = 1000;
    u.causes = vec![CauseView { id: CauseId::NoListener, title: "b".into(), drops: 250, ..CauseView::default() }];
    s.ingest(u);
    assert!((s.data().cause_rows()[0].share - 0.25).abs() < 1e-9);
}

/// Two namespaces that had one inode, told apart by their cookies, keep two rows in `top`,
/// each with its own rate (their flows once shared a key: their counts and rates merged).
#[test]
fn flows_of_two_namespaces_with_one_inode_are_two_rows() {
    use crate::model::{Flow, FlowCount, NetnsId, Summary};
    let flow = |cookie, count| FlowCount {
        flow: Flow {
            proto: "udp".into(),
            family: 4,
            src: "10.0.0.1".into(),
            sport: 5000,
            dst: "10.0.0.2".into(),
            dport: 9,
            netns: NetnsId { inode: 4_026_532_000, cookie },
        },
        reason: "NO_SOCKET".into(),
        count,
        ..FlowCount::default()
    };
    let mut st = State::new();
    for t in 0..=4u32 {
        let summary = Summary {
            duration_secs: f64::from(t),
            total_drops: u64::from(10 * t + 100),
            flows: vec![flow(1, u64::from(10 * t)), flow(2, 100)],
            ..Summary::default()
        };
        st.ingest(Update { summary, ..Update::default() });
    }
    let rows = st.data().flow_rows();
    let of = |cookie| rows.iter().find(|r| r.flow.flow.netns.cookie == cookie).expect("a row per namespace");
    assert_eq!(rows.len(), 2);
    assert_ne!(of(1).key, of(2).key);
    assert_eq!((of(1).flow.count, of(2).flow.count), (40, 100));
    assert!(of(1).rate > 5.0 && of(2).rate.abs() < f64::EPSILON, "{} {}", of(1).rate, of(2).rate);
}
