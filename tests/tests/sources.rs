//! Sources beside `kfree_skb` on the real kernel: TCP resets by reason (`tcp:tcp_send_reset`),
//! tc programs of `TC_INGRESS` drops, XDP drops per program. Run with `--test-threads=1`.
use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use pktloss_tests::{Netns, Running, kernel_version, root_test};

/// Connections refused.
const N: usize = 50;

/// Kernel 6.10+ reports the reason of each reset it sends.
fn kernel_has_reset_reasons() -> bool {
    std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
        .is_ok_and(|f| f.contains("sk_rst_reason"))
}

root_test!(resets_to_a_closed_port_are_counted_by_reason, {
    if !std::path::Path::new("/sys/kernel/tracing/events/tcp/tcp_send_reset").exists() {
        eprintln!("no tcp:tcp_send_reset on {:?}", kernel_version());
        return;
    }
    let ns = Netns::new("rst");
    let inode = ns.inode();
    let before = ns.snmp("Tcp", "OutRsts");
    let p = Running::start(&["diagnose", "--format", "json"]);
    let dst: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let refused = ns.run(move || {
        (0..N)
            .filter(|_| {
                matches!(TcpStream::connect_timeout(&dst, Duration::from_secs(2)),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
            })
            .count()
    });
    assert_eq!(refused, N, "every connection refused");
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let after = ns.snmp("Tcp", "OutRsts");
    assert_eq!(after - before, N as u64, "kernel OutRsts delta");
    let r = &s["resets"];
    let flows = r["flows"].as_array().unwrap_or_else(|| panic!("no resets: {s:#}"));
    let reason = if kernel_has_reset_reasons() { "NO_SOCKET" } else { "UNKNOWN" };
    let ours: u64 = flows
        .iter()
        .filter(|f| {
            f["netns"] == inode
                && f["src"] == "127.0.0.1"
                && f["sport"] == 9
                && f["dst"] == "127.0.0.1"
                && f["reason"] == reason
                && f["device"] == "lo"
        })
        .map(|f| f["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(ours, after - before, "resets of our flows: {r:#}");
    let by_reason = r["reasons"].as_array().expect("reasons");
    assert!(by_reason.iter().any(|x| x["reason"] == reason && x["count"].as_u64() >= Some(N as u64)), "{by_reason:#?}");
    // The no-listener diagnosis shows the resets it caused.
    let causes = s["causes"].as_array().expect("causes");
    let cause = causes.iter().find(|c| c["id"] == "no-listener").unwrap_or_else(|| panic!("{causes:#?}"));
    let evidence = cause["evidence"].to_string();
    assert!(evidence.contains(&format!("{N} TCP resets sent")), "{evidence}");
});
