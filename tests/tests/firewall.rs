//! Real-kernel tests of the firewall chain of `NETFILTER_DROP` drops (nftables, iptables-nft,
//! iptables-legacy; no `counter` in any rule) and of the conntrack original tuple of a drop
//! behind a DNAT rule. Each test makes its rules before pktloss starts (so that the netfilter
//! modules are loaded and their BTF readable), then its traffic. Where the kernel cannot attach
//! the firewall probes (no kprobes: the 6.18 host of these machines), the test asserts the one
//! line that says so. Run with `--test-threads=1`.
use std::{net::SocketAddr, time::Duration};

use pktloss_tests::{Netns, Running, root_test};
use serde_json::Value;

/// Capture (JSON) while `traffic` runs, filtered to the namespaces `filter` names.
fn capture(filter: &[&str], traffic: impl FnOnce()) -> Value {
    let mut args = vec!["capture", "--format", "json"];
    args.extend_from_slice(filter);
    let r = Running::start(&args);
    traffic();
    std::thread::sleep(Duration::from_millis(300));
    r.stop_json()
}

/// Whether the firewall probes are attached; where they cannot be, asserts the one line that
/// says so.
fn firewall_attached(v: &Value) -> bool {
    let p = v["probes"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "netfilter chains"))
        .unwrap_or_else(|| panic!("no 'netfilter chains' probe: {}", v["probes"]));
    if p["active"] == true {
        return true;
    }
    let note = p["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("cannot attach (") && note.contains("falling back to rule counters"), "{note}");
    eprintln!("firewall probes not attached here: {note}");
    false
}

/// The firewall entries of namespace `ns` as (label, count, jumped).
fn chains(v: &Value, ns: &Netns) -> Vec<(String, u64, bool)> {
    let inode = ns.inode();
    let mut out: Vec<(String, u64, bool)> = v["firewall"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|d| d["netns"].as_u64() == Some(inode))
                .map(|d| {
                    let mut label = format!(
                        "{} {} {} {}",
                        d["backend"].as_str().unwrap_or(""),
                        d["family"].as_str().unwrap_or(""),
                        d["table"].as_str().unwrap_or(""),
                        d["chain"].as_str().unwrap_or("")
                    );
                    if d["handle"].as_u64().unwrap_or(0) != 0 {
                        label.push_str(" rule");
                    }
                    label.push_str(" @");
                    label.push_str(d["hook"].as_str().unwrap_or(""));
                    (label, d["count"].as_u64().unwrap_or(0), d["jumped"] == true)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `NETFILTER_DROP` drops of namespace `ns` by the exact per-namespace counts.
fn netfilter_drops(v: &Value, ns: &Netns) -> u64 {
    let inode = ns.inode();
    v["netns_drops"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|d| d["netns"].as_u64() == Some(inode) && d["reason"] == "NETFILTER_DROP")
            .filter_map(|d| d["count"].as_u64())
            .sum()
    })
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Portability tests whose outcome does not depend on the kernel: run once, in the 5.10 guest
/// of the kernel matrix (`cargo xtask vm-test` selects them by this module), and on the host.
mod matrix_once {
    use super::*;

    root_test!(nft_drop_names_the_base_chain_and_the_jump_target, {
        let ns = Netns::new("fwnft");
        ns.exec(&["nft", "add table inet pktlfw"]);
        ns.exec(&["nft", "add chain inet pktlfw input { type filter hook input priority 0 ; policy accept ; }"]);
        ns.exec(&["nft", "add chain inet pktlfw blocked"]);
        ns.exec(&["nft", "add rule inet pktlfw input udp dport 7711 drop"]);
        ns.exec(&["nft", "add rule inet pktlfw input udp dport 7712 jump blocked"]);
        ns.exec(&["nft", "add rule inet pktlfw blocked udp dport 7799 accept"]);
        ns.exec(&["nft", "add rule inet pktlfw blocked udp dport 7712 drop"]);
        let filter = ["netns", ns.name.as_str()];
        let v = capture(&filter, || {
            ns.send_udp(lo(7711), 5);
            ns.send_udp(lo(7712), 3);
        });
        // Before 5.17 there is no NETFILTER_DROP: the probe says why it is not attached.
        if pktloss_tests::kernel_has_reasons() {
            assert_eq!(netfilter_drops(&v, &ns), 8, "{}", v["netns_drops"]);
        }
        if !firewall_attached(&v) {
            return;
        }
        // Jump targets and rule handles need the rule blobs of 5.17+.
        let (base, jump) = if pktloss_tests::kernel_version() >= (5, 17) {
            ("nftables inet pktlfw input rule @input", "nftables inet pktlfw blocked rule @input")
        } else {
            ("nftables inet pktlfw input @input", "nftables inet pktlfw input @input")
        };
        let got = chains(&v, &ns);
        if base == jump {
            assert_eq!(got, [(base.to_owned(), 8, false)], "{}", v["firewall"]);
        } else {
            assert_eq!(got, [(jump.to_owned(), 3, true), (base.to_owned(), 5, false)], "{}", v["firewall"]);
        }
        // The flow carries its chain.
        let flow = v["flows"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["dport"] == 7712))
            .unwrap_or_else(|| panic!("no flow to 7712: {}", v["flows"]));
        assert!(flow["chain"].as_str().is_some_and(|c| c.starts_with("nftables inet pktlfw blocked")), "{flow}");
    });

    root_test!(iptables_nft_and_legacy_drops_name_the_chain, {
        let a = Netns::new("fwiptn");
        let b = Netns::new("fwiptl");
        a.exec(&["iptables-nft", "-A", "INPUT", "-p", "udp", "--dport", "7713", "-j", "DROP"]);
        b.exec(&["iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", "7714", "-j", "DROP"]);
        let filter = ["netns", a.name.as_str(), "or", "netns", b.name.as_str()];
        let v = capture(&filter, || {
            a.send_udp(lo(7713), 4);
            b.send_udp(lo(7714), 6);
        });
        // iptables-legacy's tables live in the namespace: delete the rule (the namespace goes too).
        b.exec(&["iptables-legacy", "-F", "INPUT"]);
        if pktloss_tests::kernel_has_reasons() {
            assert_eq!(netfilter_drops(&v, &a), 4, "{}", v["netns_drops"]);
            assert_eq!(netfilter_drops(&v, &b), 6, "{}", v["netns_drops"]);
        }
        if !firewall_attached(&v) {
            return;
        }
        let rule = if pktloss_tests::kernel_version() >= (5, 17) { " rule" } else { "" };
        let why = format!("{}\n{}", v["firewall"], v["probes"]);
        assert_eq!(chains(&v, &a), [(format!("nftables ip filter INPUT{rule} @input"), 4, false)], "{why}");
        assert_eq!(chains(&v, &b), [("iptables ip filter INPUT @input".to_owned(), 6, false)], "{why}");
    });

    root_test!(dnat_drop_shows_the_original_destination, {
        // TCP: UDP's no-socket path resets the packet's conntrack entry before it frees it.
        let ns = Netns::new("fwdnat");
        ns.exec(&["ip", "route", "add", "10.96.0.0/24", "dev", "lo", "src", "127.0.0.1"]);
        ns.exec(&["nft", "add table ip pktlnat"]);
        ns.exec(&["nft", "add chain ip pktlnat out { type nat hook output priority -100 ; }"]);
        ns.exec(&["nft", "add rule ip pktlnat out ip daddr 10.96.0.10 tcp dport 80 dnat to 127.0.0.1:7715"]);
        let filter = ["netns", ns.name.as_str()];
        let v = capture(&filter, || {
            ns.run(|| {
                for _ in 0..3 {
                    let r = std::net::TcpStream::connect_timeout(
                        &SocketAddr::from(([10, 96, 0, 10], 80)),
                        Duration::from_secs(2),
                    );
                    assert!(r.is_err(), "nothing listens on 127.0.0.1:7715");
                }
            });
        });
        let probe = v["probes"].as_array().and_then(|a| a.iter().find(|p| p["name"] == "conntrack original tuple"));
        assert!(probe.is_some_and(|p| p["active"] == true), "{}", v["probes"]);
        let flows: Vec<&Value> = v["flows"]
            .as_array()
            .map(|a| a.iter().filter(|f| f["dport"] == 7715 && f["dst"] == "127.0.0.1").collect())
            .unwrap_or_default();
        assert_eq!(flows.iter().map(|f| f["count"].as_u64().unwrap_or(0)).sum::<u64>(), 3, "{}", v["flows"]);
        for f in &flows {
            assert_eq!(f["reason"], pktloss_tests::reason_name("NO_SOCKET"), "{f}");
            let orig = f["nat_original"].as_str().unwrap_or_default();
            assert!(orig.starts_with("127.0.0.1:") && orig.ends_with(" -> 10.96.0.10:80"), "{f}");
        }
        // The samples of those flows carry it too.
        let samples: Vec<&Value> =
            v["samples"].as_array().map(|a| a.iter().filter(|s| s["dport"] == 7715).collect()).unwrap_or_default();
        assert!(
            !samples.is_empty()
                && samples.iter().all(|s| s["nat_original"].as_str().is_some_and(|o| o.ends_with(" -> 10.96.0.10:80"))),
            "{}",
            v["samples"]
        );
    });
}
