//! Filter expressions on the real kernel: each instance of pktloss counts exactly the drops its
//! expression matches, and the rest only as filtered out.
use std::{net::SocketAddr, time::Duration};

use pktloss_tests::{Netns, Running, Starting, assert_nothing_attached, kernel_has_reasons, root_test, run, sh};

/// Drops made in a namespace of its own, on its loopback.
struct Traffic {
    ns: Netns,
}

const A: u64 = 50; // udp 10.77.0.1 -> 10.77.0.1:1000
const B: u64 = 30; // udp 10.77.0.1 -> 10.77.0.2:2000
const C: u64 = 40; // udp fd77::1 -> [fd77::1]:1000
const D: u64 = 20; // tcp SYN 10.77.0.1 -> 10.77.0.1:3000 (no listener: NO_SOCKET, answered by RST)

impl Traffic {
    fn new() -> Self {
        let ns = Netns::new("filt");
        ns.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "lo"]);
        ns.exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", "lo"]);
        ns.exec(&["ip", "addr", "add", "fd77::1/64", "dev", "lo", "nodad"]);
        Self { ns }
    }

    /// Make every drop; returns the kernel's own count of them (UDP and UDP6 `NoPorts`, TCP
    /// `OutRsts`), which must be A + B, C and D.
    fn make(&self) -> (u64, u64, u64) {
        let (u4, u6, rst) =
            (self.ns.snmp("Udp", "NoPorts"), self.ns.snmp("Udp6", "NoPorts"), self.ns.snmp("Tcp", "OutRsts"));
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        self.ns.send_udp(addr("10.77.0.1:1000"), A as usize);
        self.ns.send_udp(addr("10.77.0.2:2000"), B as usize);
        self.ns.send_udp(addr("[fd77::1]:1000"), C as usize);
        self.ns.run(|| {
            for _ in 0..D {
                let r = std::net::TcpStream::connect_timeout(
                    &"10.77.0.1:3000".parse().expect("addr"),
                    Duration::from_secs(2),
                );
                assert!(r.is_err(), "nothing listens on port 3000");
            }
        });
        (
            self.ns.snmp("Udp", "NoPorts") - u4,
            self.ns.snmp("Udp6", "NoPorts") - u6,
            self.ns.snmp("Tcp", "OutRsts") - rst,
        )
    }
}

/// Wait until every started capture traces; they join `running`.
fn wait_ready(starting: &mut Vec<(String, u64, Starting)>, running: &mut Vec<(String, u64, Running)>) {
    for (expr, want, s) in starting.drain(..) {
        running.push((expr, want, s.ready()));
    }
}

/// Portability tests: run in every x86-64 guest of the kernel matrix (`cargo xtask vm-test`
/// selects them by this module) and on the host.
mod matrix {
    use super::*;

    // Many instances at once, each with its own filter, see the same drops: each counts exactly
    // what its expression matches. Every filter names the namespace, so the host's own drops (and
    // other tests') are left out of every count. The port-unreachable errors the drops cause are
    // dropped too by some kernels (`ICMPv6` at `icmpv6_rcv` on 5.10 and 6.1): filters that could take
    // them say `udp or tcp`.
    root_test!(each_filter_counts_exactly_its_drops, {
        let t = Traffic::new();
        let ns = t.ns.name.clone();
        let inode = t.ns.inode().to_string();
        let mut cases: Vec<(String, u64)> = vec![
            (format!("netns {ns} and udp and dst port 1000"), A + C),
            (format!("netns {ns} and ip and udp"), A + B),
            (format!("netns {ns} and ip6 and udp"), C),
            (format!("netns {ns} and tcp dst port 3000"), D),
            (format!("netns {ns} and dst host 10.77.0.2"), B),
            (format!("netns {ns} and (udp or tcp) and src net 10.77.0.0/24 and not dst host 10.77.0.2"), A + D),
            (format!("netns {ns} and net fd77::/16 and udp"), C),
            (format!("netns id {inode} and portrange 999-2000 and not ip6"), A + B),
            (format!("netns /run/netns/{ns} and (udp port 2000 or tcp)"), B + D),
            (format!("netns {ns} and dev lo and (udp or tcp) and not port 1000"), B + D),
            (format!("netns {ns} and src port 1000"), 0),
            // `and` and `or` left to right, as tcpdump: `((tcp or udp) and dst port 2000) and netns`.
            (format!("tcp or udp and dst port 2000 and netns {ns}"), B),
        ];
        if kernel_has_reasons() {
            cases.push((format!("netns {ns} and reason NO_SOCKET and ( udp || tcp )"), A + B + C + D));
            cases.push((format!("netns {ns} and ! reason no_socket and ( udp || tcp )"), 0));
            cases.push((format!("netns {ns} and cause no-listener"), A + B + C + D));
            cases.push((format!("netns {ns} and cause firewall-drop"), 0));
        }
        // The same filter through the classic tracepoint, and with exact counters only (no flows,
        // no detail: the filter runs before both).
        let mut running: Vec<(String, u64, Running)> = Vec::new();
        let mut starting: Vec<(String, u64, Starting)> = Vec::new();
        for (i, (expr, want)) in cases.into_iter().enumerate() {
            let variants: &[&[&str]] = match i {
                0 => &[&[], &["--classic"], &["--no-flows", "--no-detail"]],
                _ => &[&[]],
            };
            for flags in variants {
                // Long enough for the slowest guest to start every instance before the drops (each is
                // stopped by SIGINT after them).
                let mut args = vec!["capture", "--format", "json", "--duration", "900s"];
                args.extend_from_slice(flags);
                args.extend(expr.split(' '));
                starting.push((
                    format!(
                        "{expr}{}",
                        if flags.is_empty() { String::new() } else { format!(" ({})", flags.join(" ")) }
                    ),
                    want,
                    Running::spawn(&args),
                ));
                // Six load at once (their verifier work is most of this test's time in an emulated
                // guest); the next six start once these trace.
                if starting.len() == 6 {
                    wait_ready(&mut starting, &mut running);
                }
            }
        }
        wait_ready(&mut starting, &mut running);
        let (v4, v6, rst) = t.make();
        assert_eq!((v4, v6, rst), (A + B, C, D), "the kernel's counters of the drops made");
        // Let every CPU's run cache and the ring settle before stopping.
        std::thread::sleep(Duration::from_millis(300));
        for (expr, want, r) in running {
            let s = r.stop_json();
            assert_eq!(s["total_drops"].as_u64(), Some(want), "`{expr}`: {}", s["flows"]);
            let given = expr.split(" (--").next().unwrap_or_default();
            assert_eq!(s["filter"]["expr"], given);
            let out = s["filter"]["drops_filtered_out"].as_u64().expect("filtered out count");
            // Everything made that the filter did not take is counted as filtered out.
            assert!(out >= A + B + C + D - want, "`{expr}`: {out} filtered out");
            if !expr.contains("--no-flows") {
                let in_flows: u64 =
                    s["flows"].as_array().map_or(0, |a| a.iter().map(|f| f["count"].as_u64().unwrap_or(0)).sum());
                assert_eq!(in_flows, want, "`{expr}`: the flows hold exactly the filtered drops");
            }
        }
        assert_nothing_attached("after the filtered captures");
    });
}

/// Portability tests whose outcome does not depend on the kernel: run once, in the 5.10 guest
/// of the kernel matrix (`cargo xtask vm-test` selects them by this module), and on the host.
mod matrix_once {
    use super::*;

    // A bad expression is one line naming the word, exit 2, before anything is loaded; a
    // namespace that does not exist, or a device that no namespace has, is the same.
    root_test!(a_bad_filter_is_one_line_and_exit_2, {
        for (args, needle) in [
            (&["capture", "-d", "1s", "udp", "and", "prot", "53"][..], "`prot` (column 9)"),
            (&["watch", "-d", "1s", "port", "70000"][..], "not a port number"),
            (&["diagnose", "-d", "1s", "(", "udp"][..], "this `(` is not closed"),
            (&["capture", "-d", "1s", "netns", "pktloss-no-such-ns"][..], "no namespace `pktloss-no-such-ns`"),
            (&["capture", "-d", "1s", "dev", "pktloss-nodev"][..], "no device `pktloss-nodev` in any namespace"),
            // What tcpdump refuses.
            (&["capture", "-d", "1s", "proto", "udp"][..], "escaped here (\\udp)"),
            (&["capture", "-d", "1s", "udp", "host", "10.0.0.1"][..], "only ip, ip6 or arp before host"),
            (&["capture", "-d", "1s", "tcp", "or", "80"][..], "`80` (column 8)"),
        ] {
            let out = run(args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        if !kernel_has_reasons() {
            let out = run(&["capture", "-d", "1s", "reason", "NO_SOCKET"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("gives no drop reasons"), "{err}");
        }
        assert_nothing_attached("after bad filters");
        drop(sh(&["true"]));
    });
}
