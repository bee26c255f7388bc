//! Snapshot tests of every rendered format, on the shared test capture: what users read is
//! reviewed as a whole when it changes (`cargo insta review`, or `INSTA_UPDATE=always`).
use insta::assert_snapshot;

use super::{diagnosis, json, reasons, report, summary, watch};
use crate::{
    decode::reasons::ReasonTable,
    diagnose::Diagnosis,
    host::counters::{ConfigChecks, NetnsDelta},
    testdata::sample_capture,
};

#[test]
fn summary_text_and_markdown() {
    let f = sample_capture();
    assert_snapshot!("summary_text", summary::text(&f.summary));
    let mut md = String::new();
    summary::markdown(&f.summary, &mut md);
    assert_snapshot!("summary_markdown", md);
}

/// A device whose namespace could not be entered: its name and TX are unavailable, not ''/0.
#[test]
fn unreadable_device_is_unavailable() {
    let mut s = sample_capture().summary;
    s.devices[0].name.clear();
    s.devices[0].tx_unavailable = true;
    s.devices[0].tx_packets = 0;
    for f in &mut s.flows {
        f.device.clear();
    }
    let text = summary::text(&s);
    let dev_rows: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Devices")).skip(2).take(1).collect();
    assert_eq!(dev_rows.len(), 1, "{text}");
    let cols: Vec<&str> = dev_rows[0].split_whitespace().collect();
    assert_eq!(cols.first(), Some(&"unavailable"), "{text}");
    assert_eq!(cols.get(3), Some(&"unavailable"), "TX column: {text}");
    assert!(text.contains("unavailable(2)"), "flows name the device by ifindex: {text}");
    assert!(json::pretty(&s).contains("\"tx_unavailable\": true"));
}

/// Hardware traps: the tracepoint's reports and devlink's statistics, in text, Markdown and JSON.
#[test]
fn hardware_traps_in_every_format() {
    use crate::model::{HwTrap, TrapStat};
    let mut s = sample_capture().summary;
    s.hw_traps.reported = vec![HwTrap {
        device: "netdevsim/netdevsim1".into(),
        trap: "blackhole_route".into(),
        group: "l3_drops".into(),
        input_port: "eth0".into(),
        count: 9,
    }];
    s.hw_traps.stats = vec![TrapStat {
        device: "netdevsim/netdevsim1".into(),
        trap: "blackhole_route".into(),
        group: "l3_drops".into(),
        kind: Some(crate::model::TrapKind::Drop),
        action: "trap".into(),
        packets: 9,
    }];
    let text = summary::text(&s);
    let from = |t: &str, h: &str| t.lines().skip_while(|l| !l.starts_with(h)).take(7).collect::<Vec<_>>().join("\n");
    assert_snapshot!("hw_traps_text", from(&text, "Hardware traps"));
    let mut md = String::new();
    summary::markdown(&s, &mut md);
    assert!(md.contains("Hardware traps") && md.contains("netdevsim/netdevsim1"), "{md}");
    let v: serde_json::Value = serde_json::from_str(&json::pretty(&s)).expect("json");
    assert_eq!(v["hw_traps"]["reported"][0]["count"], 9);
    assert_eq!(v["hw_traps"]["stats"][0]["packets"], 9);
}

/// The hardware-trap cause of the netdevsim run in the 6.1 guest (the trap reports and devlink
/// statistics `pktloss diagnose` read there), in text, Markdown and JSON.
#[test]
fn hardware_trap_cause_in_every_format() {
    let mut s = sample_capture().summary;
    // Trap reports are no filter's: under one they are evidence, outside its view.
    s.filter = None;
    crate::testdata::add_netdevsim_traps(&mut s, true);
    let d = crate::diagnose::diagnose(&crate::diagnose::DiagnosisInput { summary: &s, deltas: &[], checks: &[] });
    let hw = Diagnosis {
        causes: d.causes.into_iter().filter(|c| c.id == crate::diagnose::CauseId::HardwareTrap).collect(),
        reconciliation: d.reconciliation.into_iter().filter(|l| l.starts_with("hardware-trap")).collect(),
        ..Diagnosis::default()
    };
    assert_eq!(hw.causes.len(), 1, "{hw:#?}");
    assert_snapshot!("hardware_trap_text", diagnosis::text(&hw));
    let mut md = String::new();
    diagnosis::markdown(&hw, &mut md);
    assert_snapshot!("hardware_trap_markdown", md);
    assert_snapshot!("hardware_trap_json", json::pretty(&hw.causes));
}

#[test]
fn summary_json() {
    assert_snapshot!("summary_json", json::pretty(&sample_capture().summary));
}

/// A diagnosis with commands in its advice (code spans must stay code in Markdown), a verify
/// command with a pipe (no table escaping outside tables), notes, and a long advice line that
/// must not be cut.
fn diagnosis_with_commands() -> Diagnosis {
    let mut d = sample_capture().diagnosis;
    d.causes[1].advice.push(format!(
        "[netns uxb (4026532291)] the nft rule `udp dport 7777 counter packets 30 bytes 870 drop` dropped 30 packets: remove or narrow it if that traffic is legitimate (`ip netns exec uxb nft delete rule inet uxfw input handle 4`). {}",
        "Then watch its counter stay still. ".repeat(6)
    ));
    d.causes[1].verify = vec![crate::diagnose::Verify::fix(
        "ip netns exec uxb nft list ruleset | grep -c drop  # the drop rule's counter stops increasing".into(),
    )];
    d.reconciliation = vec!["firewall-drop: 1 traced drops match the counters exactly".into()];
    d.unavailable = vec!["[netns ?] conntrack: module not loaded".into()];
    d
}

#[test]
fn diagnosis_text_and_markdown() {
    let d = diagnosis_with_commands();
    let text = diagnosis::text(&d);
    assert!(text.contains("ip netns exec uxb nft delete rule inet uxfw input handle 4`). Then"), "not cut: {text}");
    assert_snapshot!("diagnosis_text", text);
    let mut md = String::new();
    diagnosis::markdown(&d, &mut md);
    assert!(md.contains("(`ip netns exec uxb nft delete rule inet uxfw input handle 4`)"), "code stays code: {md}");
    assert!(md.contains("- Verify: `ip netns exec uxb nft list ruleset | grep -c drop"), "no table escaping: {md}");
    assert_snapshot!("diagnosis_markdown", md);
    assert_snapshot!("diagnosis_empty_text", diagnosis::text(&Diagnosis::default()));
}

#[test]
fn diagnosed_json() {
    let f = sample_capture();
    let d = diagnosis_with_commands();
    let counters: Vec<NetnsDelta> = Vec::new();
    let checks: Vec<ConfigChecks> = Vec::new();
    assert_snapshot!("diagnosed_json", json::pretty(&json::Diagnosed::new(&f.summary, &d, &counters, &checks)));
}

#[test]
fn report_text_markdown_json() {
    let mut f = sample_capture();
    f.diagnosis = diagnosis_with_commands();
    assert_snapshot!("report_text", report::render(&f, report::ReportFormat::Text));
    assert_snapshot!("report_markdown", report::render(&f, report::ReportFormat::Markdown));
    assert_snapshot!("report_json", report::render(&f, report::ReportFormat::Json));
}

#[test]
fn watch_lines() {
    let entry = |n: u64, reason: &str, symbol: &str| watch::WatchEntry {
        reason: crate::model::DropReason::new(2, reason),
        symbol: symbol.into(),
        count: n,
    };
    let line = watch::WatchLine {
        t: 3.0,
        interval_secs: 1.0,
        drops: 21,
        total_drops: 60,
        lost_events: 2,
        filtered_out: Some(4),
        top: vec![
            entry(10, "NO_SOCKET", "__udp4_lib_rcv+0x4bc"),
            entry(5, "NETFILTER_DROP", "nft_do_chain+0x40f"),
            entry(3, "NO_SOCKET", "__udp6_lib_rcv+0x1ab"),
            entry(2, "TCP_CLOSE", "tcp_rcv_state_process+0x2a"),
            entry(1, "OTHERHOST", "ip_rcv_core+0x1d"),
        ],
        total: false,
    };
    assert_snapshot!("watch_text", watch::text(&line));
    assert_snapshot!("watch_json", watch::json_line(&line));
    let total = watch::WatchLine { t: 3.4, interval_secs: 3.4, total: true, ..line };
    assert_snapshot!("watch_total_text", watch::text(&total));
}

#[test]
fn reasons_text_and_json() {
    let table = ReasonTable::new([(2, "NOT_SPECIFIED".to_owned()), (3, "NO_SOCKET".to_owned())]);
    let rows = reasons::rows(&table);
    assert_snapshot!("reasons_text", reasons::text(&rows));
    assert_snapshot!("reasons_json", json::pretty(&rows));
    assert_snapshot!("reasons_none_text", reasons::text(&[]));
}

/// `pktloss reasons --resets`: each row a `ResetReason`, written `code` then `reason` as the
/// rows always were, and one line of text each.
#[test]
fn reset_reasons_text_and_json() {
    let table = ReasonTable::new([(0, "NOT_SPECIFIED".to_owned()), (11, "TCP_ABORT_ON_CLOSE".to_owned())]);
    let rows = reasons::reset_rows(&table);
    assert_eq!(
        serde_json::to_string(&rows).expect("json"),
        r#"[{"code":0,"reason":"NOT_SPECIFIED"},{"code":11,"reason":"TCP_ABORT_ON_CLOSE"}]"#
    );
    assert_eq!(
        reasons::resets_text(&rows),
        "2 reset reasons in this kernel (enum sk_rst_reason, from BTF; tcp:tcp_send_reset):\n       0  NOT_SPECIFIED\n      11  TCP_ABORT_ON_CLOSE\n"
    );
    assert!(reasons::resets_text(&[]).starts_with("this kernel has no reset reasons"));
}
