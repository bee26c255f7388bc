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

/// A tc program that drops the UDP datagrams to one port (IPv4 without options, behind an
/// Ethernet header as tc sees them on lo and veth).
const TC_DROP_C: &str = r#"
#define SEC(n) __attribute__((section(n), used))
static long (*bpf_skb_load_bytes)(const void *skb, unsigned off, void *to, unsigned len) = (void *)26;
SEC("tc") int pktl_tc_drop(void *skb) {
    unsigned char proto = 0;
    unsigned short dport = 0;
    if (bpf_skb_load_bytes(skb, 14 + 9, &proto, 1) || proto != 17)
        return 0;
    if (bpf_skb_load_bytes(skb, 14 + 20 + 2, &dport, 2))
        return 0;
    return dport == __builtin_bswap16(PORT) ? 2 : 0; /* TC_ACT_SHOT : TC_ACT_OK */
}
char _license[] SEC("license") = "GPL";
"#;

/// The id `tc filter show` gives the program of a `bpf` filter.
fn tc_prog_id(ns: &Netns, dev: &str, hook: &str) -> u32 {
    let out = ns.exec(&["tc", "filter", "show", "dev", dev, hook]);
    out.split_whitespace()
        .skip_while(|w| *w != "id")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no program id in: {out}"))
}

root_test!(tc_ingress_drops_name_their_program, {
    let fmt = std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format").unwrap_or_default();
    if !fmt.contains("\"TC_INGRESS\"") {
        eprintln!("no TC_INGRESS drop reason on {:?}", kernel_version());
        return;
    }
    let ns = Netns::new("tcx");
    let dir = std::env::temp_dir().join(format!("pktl-tcx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let obj = pktloss_tests::build_bpf(&dir, "tcdrop", &TC_DROP_C.replace("PORT", "7777"));
    ns.exec(&["tc", "qdisc", "add", "dev", "lo", "clsact"]);
    ns.exec(&[
        "tc",
        "filter",
        "add",
        "dev",
        "lo",
        "ingress",
        "bpf",
        "da",
        "obj",
        obj.to_str().expect("path"),
        "sec",
        "tc",
    ]);
    let id = tc_prog_id(&ns, "lo", "ingress");
    let p = Running::start(&["capture", "--format", "json"]);
    let dst: SocketAddr = "127.0.0.1:7777".parse().expect("addr");
    ns.send_udp(dst, N);
    // Another port passes the program (and is a NO_SOCKET drop, not a tc one).
    ns.send_udp("127.0.0.1:7778".parse().expect("addr"), 3);
    std::thread::sleep(Duration::from_millis(1500));
    let s = p.stop_json();
    drop(std::fs::remove_dir_all(&dir));
    let inode = ns.inode();
    let tc = s["tc_drops"].as_array().unwrap_or_else(|| panic!("no tc_drops: {s:#}"));
    let ours: Vec<&serde_json::Value> = tc.iter().filter(|t| t["netns"] == inode).collect();
    assert_eq!(ours.len(), 1, "{tc:#?}");
    let t = ours[0];
    assert_eq!(
        (t["device"].as_str(), t["hook"].as_str(), t["reason"].as_str()),
        (Some("lo"), Some("ingress"), Some("TC_INGRESS")),
        "{t:#}"
    );
    assert_eq!(t["drops"], N as u64, "{t:#}");
    let progs = t["programs"].as_array().expect("programs");
    assert_eq!(progs.len(), 1, "{t:#}");
    assert_eq!(
        (progs[0]["id"].as_u64(), progs[0]["name"].as_str()),
        (Some(u64::from(id)), Some("pktl_tc_drop")),
        "{t:#}"
    );
    assert!(progs[0]["attach"].as_str().is_some_and(|a| a.starts_with("clsact ingress")), "{t:#}");
    assert!(t["note"].as_str().is_some_and(|n| n.contains("only BPF program")), "{t:#}");
});
