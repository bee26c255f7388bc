//! pktloss side by side with dropwatch (a peer as the oracle): the same drops (closed port over
//! IPv4 and IPv6, an nft drop, a full receive buffer, a qdisc drop), counted by both at once,
//! must give the same count at every location. dropwatch needs the kernel's `drop_monitor`
//! (the 6.1 guest of the kernel matrix has it; the 6.18 host of these machines does not, and
//! there the test asserts why it cannot run). Both outputs go to the test's stderr, uncaptured,
//! so that the CI log keeps them. Run with `--test-threads=1`.
use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, UdpSocket},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pktloss_tests::{Netns, Running, nft_drop, root_test};

/// Write to the real stderr (libtest captures `eprintln!` of passing tests).
fn log(s: &str) {
    // SAFETY: a valid buffer of its length; fd 2 is the process's stderr.
    let _ = unsafe { libc::write(2, s.as_ptr().cast(), s.len()) };
}

/// dropwatch's lines `N drops at SYMBOL+OFF (0xADDR) [software]`, summed per address (its
/// symbol lookup does not know module addresses; pktloss's does).
fn dropwatch_counts(out: &str) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(n), Some(&"drops"), Some(&"at"), Some(addr)) = (w.first(), w.get(1), w.get(2), w.get(4)) else {
            continue;
        };
        let addr = addr.trim_start_matches("(0x").trim_end_matches(')');
        if let (Ok(n), Ok(addr)) = (n.parse::<u64>(), u64::from_str_radix(addr, 16)) {
            *m.entry(addr).or_default() += n;
        }
    }
    m
}

/// Portability tests whose outcome does not depend on the kernel: run once, in the 5.10 guest
/// of the kernel matrix (`cargo xtask vm-test` selects them by this module), and on the host.
mod matrix_once {
    use super::*;

    root_test!(dropwatch_counts_the_same_drops_per_location, {
        let loaded = Command::new("modprobe").arg("drop_monitor").status().is_ok_and(|s| s.success());
        let probe = Command::new("dropwatch")
            .args(["-l", "kas"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dropwatch (Debian package dropwatch) must be installed");
        let mut dw = probe;
        let mut stdin = dw.stdin.take().expect("stdin");
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(_)) = dw.try_wait() {
            let mut err = String::new();
            drop(dw.stderr.take().expect("stderr").read_to_string(&mut err));
            let mut out = String::new();
            drop(dw.stdout.take().expect("stdout").read_to_string(&mut out));
            assert!(!loaded && (err + &out).contains("NET_DM"), "dropwatch exited although drop_monitor loaded");
            log("dropwatch: this kernel has no drop_monitor (NET_DM): no side-by-side comparison here\n");
            return;
        }
        let ns = Netns::new("dw");
        let _nft_dw = nft_drop(&ns, "pktldw", "udp dport 7721");
        ns.exec(&["ip", "link", "add", "dw0", "type", "dummy"]);
        // No IPv6 on it: its router solicitations and MLD reports would be qdisc drops too, at
        // times only one of the two tools sees.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.dw0.disable_ipv6=1"]);
        ns.exec(&["ip", "link", "set", "dw0", "up"]);
        ns.exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", "dw0"]);
        ns.exec(&["tc", "qdisc", "add", "dev", "dw0", "root", "pfifo", "limit", "0"]);
        // A receiver that never reads, with the smallest buffer.
        let full = ns.run(|| {
            let s = UdpSocket::bind("127.0.0.1:7722").expect("bind 7722");
            let one: libc::c_int = 1;
            use std::os::fd::AsRawFd as _;
            // SAFETY: a valid socket and an int option.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&raw const one).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
            s
        });
        stdin.write_all(b"start\n").expect("dropwatch start");
        std::thread::sleep(Duration::from_secs(1));
        let r = Running::start(&["capture", "--format", "json"]);
        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        ns.send_udp(lo(7723), 5);
        ns.send_udp(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 7723)), 4);
        ns.send_udp(lo(7721), 6);
        ns.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            for _ in 0..40 {
                drop(s.send_to(&[0u8; 1400], "127.0.0.1:7722"));
            }
            for _ in 0..7 {
                drop(s.send_to(b"qdisc", "10.77.0.2:9"));
            }
        });
        // drop_monitor sends its alerts about once a second.
        std::thread::sleep(Duration::from_secs(2));
        let v = r.stop_json();
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: signal to our child.
        unsafe { libc::kill(dw.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(300));
        drop(stdin.write_all(b"exit\n"));
        drop(stdin);
        let started = Instant::now();
        while matches!(dw.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(dw.kill());
        let mut out = String::new();
        drop(dw.stdout.take().expect("stdout").read_to_string(&mut out));
        drop(full);
        log(&format!("---- dropwatch -l kas ----\n{out}\n"));
        let mine: BTreeMap<u64, (String, u64)> = v["locations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| {
                        // A hex string in the JSON (past 2^53 a number would lose bits).
                        let addr = u64::from_str_radix(l["address"].as_str()?.trim_start_matches("0x"), 16).ok()?;
                        Some((addr, (l["symbol"].as_str()?.to_owned(), l["count"].as_u64()?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        log(&format!("---- pktloss locations ----\n{mine:#x?}\n"));
        let theirs = dropwatch_counts(&out);
        // Every location of the made drops (at least 4 each), in both and equal: closed port v4
        // and v6 (and the ICMPv6 errors they cause), the nft drop, the full buffer, the qdisc.
        let made: Vec<_> = mine.iter().filter(|(_, (_, n))| *n >= 4).collect();
        assert!(made.len() >= 5, "expected the made drops at 5 or more locations: {mine:?}");
        for (addr, (sym, n)) in made {
            assert_eq!(
                theirs.get(addr),
                Some(n),
                "{sym} ({addr:#x}): pktloss {n}, dropwatch {:?}\n{out}",
                theirs.get(addr)
            );
        }
    });
}
