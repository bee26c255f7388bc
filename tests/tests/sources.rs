//! Sources beside `kfree_skb` on the real kernel: TCP resets by reason (`tcp:tcp_send_reset`),
//! tc programs of `TC_INGRESS` drops, XDP drops per program, hardware traps
//! (`devlink:devlink_trap_report`, netdevsim). Run with `--test-threads=1`.
use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use pktloss_tests::{End, Netns, Running, Veth, kernel_version, root_test};

/// Connections refused; datagrams dropped.
const N: usize = 50;
/// Datagrams the XDP program aborts on.
const ABORTS: usize = 5;

/// Kernel 6.10+ reports the reason of each reset it sends.
fn kernel_has_reset_reasons() -> bool {
    std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
        .is_ok_and(|f| f.contains("sk_rst_reason"))
}

/// The XDP program's id in `ip -d link show` (`prog/xdp id N`).
fn xdp_prog_id(link: &str) -> u64 {
    link.split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no XDP program id in: {link}"))
}

root_test!(resets_to_a_closed_port_are_counted_by_reason, {
    // Before 6.10 the tracepoint has no reason, and the resets of no socket (a closed port)
    // may not reach it.
    if !kernel_has_reset_reasons() {
        eprintln!("no reset reasons in tcp:tcp_send_reset on {:?}", kernel_version());
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
    let reason = "NO_SOCKET";
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

/// An XDP program that drops the UDP datagrams to one port (IPv4 without options), aborts on
/// the next port and passes everything else.
const XDP_DROP_C: &str = r#"
#define SEC(n) __attribute__((section(n), used))
struct xdp_md { unsigned data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
SEC("xdp") int pktl_xdp_drop(struct xdp_md *ctx) {
    unsigned char *d = (unsigned char *)(unsigned long)ctx->data;
    unsigned char *end = (unsigned char *)(unsigned long)ctx->data_end;
    if (d + 14 + 20 + 4 > end) return 2;
    if (d[12] != 0x08 || d[13] != 0 || d[14 + 9] != 17 || (d[14] & 0xf) != 5) return 2;
    unsigned short dport = (unsigned short)(d[14 + 20 + 2] << 8 | d[14 + 20 + 3]);
    if (dport == PORT + 1) return 0; /* XDP_ABORTED */
    return dport == PORT ? 1 : 2; /* XDP_DROP : XDP_PASS */
}
char _license[] SEC("license") = "GPL";
"#;

root_test!(xdp_drops_on_a_veth_are_counted_once_per_program, {
    let (a, b) = (Netns::new("xdpa"), Netns::new("xdpb"));
    let (va, vb) = (format!("xa{}", std::process::id()), format!("xb{}", std::process::id()));
    Veth::new(End::new(&a.name, &va, "10.231.9.1"), End::new(&b.name, &vb, "10.231.9.2"), 30);
    let dir = std::env::temp_dir().join(format!("pktl-xdp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let obj = pktloss_tests::build_bpf(&dir, "xdpdrop", &XDP_DROP_C.replace("PORT", "7777"));
    b.exec(&["ip", "link", "set", "dev", &vb, "xdpdrv", "obj", obj.to_str().expect("path"), "sec", "xdp"]);
    drop(std::fs::remove_dir_all(&dir));
    let link = b.exec(&["ip", "-d", "link", "show", &vb]);
    let id = xdp_prog_id(&link);
    let p = Running::start(&["capture", "--format", "json"]);
    a.send_udp("10.231.9.2:7777".parse().expect("addr"), N);
    a.send_udp("10.231.9.2:7778".parse().expect("addr"), ABORTS);
    std::thread::sleep(Duration::from_millis(300));
    let s = p.stop_json();
    let inode = b.inode();
    let xdp = s["xdp_drops"].as_array().unwrap_or_else(|| panic!("no xdp_drops: {s:#}"));
    let ours: Vec<&serde_json::Value> = xdp.iter().filter(|x| x["netns"] == inode).collect();
    assert_eq!(ours.len(), 1, "{xdp:#?}");
    let x = ours[0];
    // veth frees the aborted packets where it frees the dropped ones.
    assert_eq!((x["device"].as_str(), x["drops"].as_u64()), (Some(vb.as_str()), Some((N + ABORTS) as u64)), "{x:#}");
    let aborted: u64 = s["xdp_exceptions"]
        .as_array()
        .unwrap_or_else(|| panic!("no xdp_exceptions: {s:#}"))
        .iter()
        .filter(|e| e["prog_id"] == id && e["action"] == "XDP_ABORTED")
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(aborted, ABORTS as u64, "{:#}", s["xdp_exceptions"]);
    assert_eq!(
        (x["program"]["id"].as_u64(), x["program"]["name"].as_str()),
        (Some(id), Some("pktl_xdp_drop")),
        "{x:#}"
    );
    assert!(x["program"]["attach"].as_str().is_some_and(|m| m.contains("native")), "{x:#}");
    // Counted once: as XDP_DROP, not also as NOT_SPECIFIED.
    let flows = s["flows"].as_array().expect("flows");
    // (The namespace's own IPv6 chatter may add NOT_SPECIFIED drops elsewhere, at ip6_mc_input.)
    let of_ns = |reason: &str| -> u64 {
        flows
            .iter()
            .filter(|f| {
                f["netns"] == inode
                    && f["reason"] == reason
                    && f["location"].as_str().is_some_and(|l| l.starts_with("veth_xdp_rcv"))
            })
            .map(|f| f["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!((of_ns("XDP_DROP"), of_ns("NOT_SPECIFIED")), ((N + ABORTS) as u64, 0), "{flows:#?}");
    let by_ns: u64 = s["netns_drops"]
        .as_array()
        .expect("netns_drops")
        .iter()
        .filter(|n| n["netns"] == inode && n["reason"] == "XDP_DROP")
        .map(|n| n["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(by_ns, (N + ABORTS) as u64, "{:#}", s["netns_drops"]);
    assert!(
        s["locations"].as_array().expect("locations").iter().all(|l| !(l["reason"] == "NOT_SPECIFIED"
            && l["symbol"].as_str().is_some_and(|y| y.starts_with("veth_xdp_rcv")))),
        "{:#}",
        s["locations"]
    );
});

/// The netdevsim module: the kernel's own (`modprobe`), else one built out of tree for this
/// kernel and cached by `cargo xtask vm-test` (`~/.cache/pktloss/netdevsim/RELEASE/`).
/// Returns whether it was loaded here (to unload it after) or `None` when there is none.
fn load_netdevsim() -> Option<bool> {
    if std::path::Path::new("/sys/bus/netdevsim").exists() {
        return Some(false);
    }
    let ok = |c: &mut std::process::Command| c.output().is_ok_and(|o| o.status.success());
    if ok(std::process::Command::new("modprobe").arg("netdevsim")) {
        return Some(true);
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    let ko = cache.join("pktloss/netdevsim").join(release.trim()).join("netdevsim.ko");
    if !ko.exists() {
        return None;
    }
    // Its dependency, from the kernel's own modules.
    drop(std::process::Command::new("modprobe").arg("psample").output());
    assert!(ok(std::process::Command::new("insmod").arg(&ko)), "insmod {} failed", ko.display());
    Some(true)
}

/// `devlink -s -j trap show`: `rx_packets` per trap of `dev`.
fn devlink_trap_packets(dev: &str) -> std::collections::BTreeMap<String, u64> {
    let out = pktloss_tests::sh(&["devlink", "-s", "-j", "trap", "show"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("devlink json: {e}: {out}"));
    let traps = v["trap"][dev].as_array().unwrap_or_else(|| panic!("no traps of {dev}: {out}"));
    traps.iter().filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["stats"]["rx"]["packets"].as_u64()?))).collect()
}

/// Deletes the netdevsim device, and unloads the module when the test loaded it.
struct NetdevsimGuard {
    id: u32,
    unload: bool,
}

impl Drop for NetdevsimGuard {
    fn drop(&mut self) {
        drop(std::fs::write("/sys/bus/netdevsim/del_device", self.id.to_string()));
        if self.unload {
            drop(std::process::Command::new("rmmod").arg("netdevsim").output());
        }
    }
}

/// Run in the guest that gets netdevsim (`xtask/src/netdevsim.rs`); elsewhere the probe's
/// degrade line is checked.
mod matrix_netdevsim {
    use super::*;

    root_test!(devlink_trap_reports_match_the_trap_statistics, {
        let has_tp = std::path::Path::new("/sys/kernel/tracing/events/devlink/devlink_trap_report").exists();
        if !has_tp {
            // The degrade path: one probe line saying why, and the diagnosis runs without
            // inventing a hardware cause.
            let p = Running::start(&["diagnose", "--format", "json"]);
            let s = p.stop_json();
            let causes = s["causes"].as_array().unwrap_or_else(|| panic!("no causes: {s:#}"));
            assert!(causes.iter().all(|c| c["id"] != "hardware-trap"), "{causes:#?}");
            let probe = s["probes"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "devlink:devlink_trap_report"))
                .unwrap_or_else(|| panic!("no devlink probe line: {s:#}"));
            assert_eq!(probe["active"], false, "{probe:#}");
            assert!(probe["note"].as_str().is_some_and(|n| n.contains("tracepoint absent")), "{probe:#}");
            return;
        }
        let Some(loaded) = load_netdevsim() else {
            eprintln!("no netdevsim module for {:?}: the trap reports are not checked", kernel_version());
            return;
        };
        let id = 700 + std::process::id() % 200;
        let dev = format!("netdevsim/netdevsim{id}");
        std::fs::write("/sys/bus/netdevsim/new_device", format!("{id} 1")).expect("new netdevsim device");
        let _gone = NetdevsimGuard { id, unload: loaded };
        let netdev = std::fs::read_dir(format!("/sys/bus/netdevsim/devices/netdevsim{id}/net"))
            .expect("netdevsim net dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .expect("a port");
        // A drop trap made to report (netdevsim reports every trap not set to drop, each 100 ms
        // per running port).
        pktloss_tests::sh(&["devlink", "trap", "set", &dev, "trap", "blackhole_route", "action", "trap"]);
        let before = devlink_trap_packets(&dev);
        let p = Running::start(&["diagnose", "--format", "json"]);
        pktloss_tests::sh(&["ip", "link", "set", &netdev, "up"]);
        std::thread::sleep(Duration::from_secs(1));
        pktloss_tests::sh(&["ip", "link", "set", &netdev, "down"]);
        // The report work sees the port down from its next run on.
        std::thread::sleep(Duration::from_millis(300));
        let after = devlink_trap_packets(&dev);
        let s = p.stop_json();
        let reported = s["hw_traps"]["reported"].as_array().unwrap_or_else(|| panic!("no hw_traps: {s:#}"));
        let ours = |trap: &str| -> u64 {
            reported
                .iter()
                .filter(|r| r["device"] == dev.as_str() && r["trap"] == trap)
                .filter_map(|r| r["count"].as_u64())
                .sum()
        };
        let grew = |trap: &str| after.get(trap).copied().unwrap_or(0) - before.get(trap).copied().unwrap_or(0);
        eprintln!("blackhole_route: pktloss {} devlink {}", ours("blackhole_route"), grew("blackhole_route"));
        assert!(grew("blackhole_route") >= 5, "few reports: {before:?} -> {after:?}");
        for trap in after.keys() {
            assert_eq!(ours(trap), grew(trap), "trap {trap}: {reported:#?}");
        }
        let bh = reported.iter().find(|r| r["trap"] == "blackhole_route").expect("blackhole_route reported");
        assert_eq!(
            (bh["group"].as_str(), bh["input_port"].as_str()),
            (Some("l3_drops"), Some(netdev.as_str())),
            "{bh:#}"
        );
        // devlink's own statistics, read by pktloss, say the same.
        let stat = s["hw_traps"]["stats"]
            .as_array()
            .and_then(|st| st.iter().find(|t| t["device"] == dev.as_str() && t["trap"] == "blackhole_route"))
            .unwrap_or_else(|| panic!("no devlink statistics: {s:#}"));
        assert_eq!(stat["packets"].as_u64(), Some(grew("blackhole_route")), "{stat:#}");
        assert_eq!((stat["kind"].as_str(), stat["group"].as_str()), (Some("drop"), Some("l3_drops")), "{stat:#}");
        // What the unit tests of the diagnosis read (diagnose/fixtures/netdevsim_hw_traps.json).
        eprintln!("hw_traps: {}", s["hw_traps"]);
        // The diagnosis: blackhole_route, the one drop trap set to trap, is the top cause with
        // the exact count; the exception and control traps netdevsim reports too are not drops.
        let causes = s["causes"].as_array().unwrap_or_else(|| panic!("no causes: {s:#}"));
        let top = &causes[0];
        assert_eq!(top["id"], "hardware-trap", "{causes:#?}");
        assert_eq!(top["drops"].as_u64(), Some(grew("blackhole_route")), "{top:#}");
        let evidence: Vec<&str> = top["evidence"].as_array().into_iter().flatten().filter_map(|e| e.as_str()).collect();
        let line = format!(
            "{dev}: drop trap blackhole_route, group l3_drops dropped {} packets (devlink:devlink_trap_report), input port {netdev} {}",
            grew("blackhole_route"),
            grew("blackhole_route")
        );
        assert!(evidence.iter().any(|e| e.starts_with(&line)), "{line}\n{evidence:#?}");
        let verify = top["verify"].to_string();
        assert!(verify.contains(&format!("devlink -s trap show {dev} trap blackhole_route")), "{verify}");
    });
}

/// One BPF instruction: opcode, destination and source registers, offset, immediate.
const fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (op as u64) | ((dst as u64 | (src as u64) << 4) << 8) | ((off as u16 as u64) << 16) | ((imm as u32 as u64) << 32)
}

/// An XDP program that drops the ICMP echo replies from 10.0.2.2 (qemu's user-network gateway)
/// and passes everything else; in bytecode, loaded with `bpf()`: clang's first run in a guest
/// reads LLVM over 9p for 30 s. As C:
/// `if (d + 42 > end) return XDP_PASS; if (ethertype == IPv4 && ver_ihl == 0x45 && proto ==
/// ICMP && saddr == 10.0.2.2 && icmp_type == 0 /* echo reply */) return XDP_DROP; return
/// XDP_PASS;`
const XDP_DROP_PONG: [u64; 18] = [
    insn(0x61, 2, 1, 0, 0),           // r2 = ctx->data
    insn(0x61, 3, 1, 4, 0),           // r3 = ctx->data_end
    insn(0xb7, 0, 0, 0, 2),           // r0 = XDP_PASS
    insn(0xbf, 4, 2, 0, 0),           // r4 = r2
    insn(0x07, 4, 0, 0, 42),          // r4 += 42 (Ethernet, IPv4 without options, 8 bytes)
    insn(0x2d, 4, 3, 11, 0),          // if r4 > r3 goto exit
    insn(0x69, 5, 2, 12, 0),          // r5 = ethertype (u16, as stored)
    insn(0x55, 5, 0, 9, 0x0008),      // if r5 != htons(0x0800) goto exit
    insn(0x71, 5, 2, 14, 0),          // r5 = version and header length
    insn(0x55, 5, 0, 7, 0x45),        // if r5 != 0x45 goto exit
    insn(0x71, 5, 2, 23, 0),          // r5 = protocol
    insn(0x55, 5, 0, 5, 1),           // if r5 != ICMP goto exit
    insn(0x61, 5, 2, 26, 0),          // r5 = saddr (u32, as stored)
    insn(0x55, 5, 0, 3, 0x0202_000a), // if r5 != 10.0.2.2 goto exit
    insn(0x71, 5, 2, 34, 0),          // r5 = ICMP type
    insn(0x55, 5, 0, 1, 0),           // if r5 != echo reply goto exit
    insn(0xb7, 0, 0, 0, 1),           // r0 = XDP_DROP
    insn(0x95, 0, 0, 0, 0),           // exit
];

/// The virtio-net NICs whose interface is down (not in use): the guest's second NIC once
/// `virtio_net` is loaded; never the NIC a host runs on.
fn unused_virtio_nics() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let drv = std::fs::read_link(format!("/sys/class/net/{n}/device/driver")).ok();
            let flags = std::fs::read_to_string(format!("/sys/class/net/{n}/flags")).unwrap_or_default();
            let up = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).map_or(true, |f| f & 1 != 0);
            drv.is_some_and(|d| d.ends_with("virtio_net")) && !up
        })
        .collect()
}

/// The sum of a device's per-queue `xdp_drops` counters (`ethtool -S`).
fn ethtool_xdp_drops(dev: &str) -> u64 {
    pktloss_tests::sh(&["ethtool", "-S", dev])
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .filter(|(k, _)| k.ends_with("xdp_drops"))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

/// Send `n` ICMP echo requests to `to` (raw socket), 20 ms apart; returns how many were sent.
fn send_pings(to: std::net::Ipv4Addr, n: u16) -> u16 {
    // SAFETY: plain syscall; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(fd >= 0, "raw ICMP socket: {}", std::io::Error::last_os_error());
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(to).to_be() },
        sin_zero: [0; 8],
    };
    let mut sent = 0;
    for seq in 0..n {
        let mut p = [8u8, 0, 0, 0, 0x70, 0x6b, 0, 0, b'p', b'k', b't', b'l'];
        p[6..8].copy_from_slice(&seq.to_be_bytes());
        let sum: u32 = p.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        p[2..4].copy_from_slice(&sum.to_be_bytes());
        // SAFETY: a valid socket, buffer and address.
        let r = unsafe {
            libc::sendto(
                fd,
                p.as_ptr().cast(),
                p.len(),
                0,
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r == p.len() as isize {
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    sent
}

/// Puts the NIC back as it was: XDP off, no address, down; `virtio_net` unloaded if the test
/// loaded it.
struct NicGuard {
    dev: String,
    unload: bool,
}

impl Drop for NicGuard {
    fn drop(&mut self) {
        for args in [
            &["ip", "link", "set", "dev", &self.dev, "xdpdrv", "off"][..],
            &["ip", "addr", "flush", "dev", &self.dev],
            &["ip", "link", "set", "dev", &self.dev, "down"],
        ] {
            drop(std::process::Command::new(args[0]).args(&args[1..]).output());
        }
        if self.unload {
            drop(std::process::Command::new("rmmod").arg("virtio_net").output());
        }
    }
}

/// Run in the guest that gets a second virtio-net NIC (`xtask/src/vm.rs`, `NIC_ARGS`); on a
/// host without an unused virtio-net NIC it says so and checks nothing.
mod matrix_nic {
    use super::*;

    root_test!(native_xdp_drops_on_a_nic_driver_are_counted_from_its_counter, {
        const PINGS: u16 = 40;
        let t0 = std::time::Instant::now();
        let phase = |what: &str| eprintln!("{what}: {:.1} s", t0.elapsed().as_secs_f64());
        let loaded = !std::path::Path::new("/sys/module/virtio_net").exists()
            && std::process::Command::new("modprobe").arg("virtio_net").status().is_ok_and(|s| s.success());
        let nics = unused_virtio_nics();
        let Some(dev) = nics.first().cloned() else {
            if loaded {
                drop(std::process::Command::new("rmmod").arg("virtio_net").output());
            }
            eprintln!("no unused virtio-net NIC (the 6.1 guest of `cargo xtask vm-test` has one): nothing checked");
            return;
        };
        let back = NicGuard { dev: dev.clone(), unload: loaded };
        phase("virtio_net loaded");
        pktloss_tests::sh(&["ip", "addr", "add", "10.0.2.15/24", "dev", &dev]);
        pktloss_tests::sh(&["ip", "link", "set", "dev", &dev, "up"]);
        // The gateway answers before the program is attached (and its address is resolved).
        let gw: std::net::Ipv4Addr = "10.0.2.2".parse().expect("addr");
        let rx = |d: &str| -> u64 {
            std::fs::read_to_string(format!("/sys/class/net/{d}/statistics/rx_packets"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let t = std::time::Instant::now();
        let rx0 = rx(&dev);
        while rx(&dev) < rx0 + 2 && t.elapsed() < Duration::from_secs(10) {
            send_pings(gw, 1);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(rx(&dev) >= rx0 + 2, "the gateway 10.0.2.2 does not answer on {dev}");
        phase("the gateway answered");
        let prog = pktloss_tests::bpf::PinnedDropProgram::load_xdp_insns(&XDP_DROP_PONG, b"pktl_xdp_pong", "xdppong");
        let pinned = prog.path.to_string_lossy().into_owned();
        pktloss_tests::sh(&["ip", "link", "set", "dev", &dev, "xdpdrv", "pinned", &pinned]);
        let link = pktloss_tests::sh(&["ip", "-d", "link", "show", &dev]);
        let id = xdp_prog_id(&link);
        phase("program loaded and attached");
        let before = ethtool_xdp_drops(&dev);
        // `diagnose`: the summary's fields and the causes, in one run.
        let p = Running::start(&["diagnose", "--format", "json"]);
        phase("pktloss started");
        let sent = send_pings(gw, PINGS);
        std::thread::sleep(Duration::from_millis(500));
        let grew = ethtool_xdp_drops(&dev) - before;
        let s = p.stop_json();
        phase("pktloss stopped");
        eprintln!("{dev}: sent {sent} pings, the driver's xdp_drops grew by {grew}");
        assert_eq!((sent, grew), (PINGS, u64::from(PINGS)), "every reply dropped by the program, once");
        let xdp = s["xdp_drops"].as_array().unwrap_or_else(|| panic!("no xdp_drops: {s:#}"));
        let ours: Vec<&serde_json::Value> = xdp.iter().filter(|x| x["device"] == dev.as_str()).collect();
        assert_eq!(ours.len(), 1, "{xdp:#?}");
        let x = ours[0];
        assert_eq!(x["drops"].as_u64(), Some(grew), "{x:#}");
        assert_eq!(
            (x["program"]["id"].as_u64(), x["program"]["name"].as_str()),
            (Some(id), Some("pktl_xdp_pong")),
            "{x:#}"
        );
        assert!(x["program"]["attach"].as_str().is_some_and(|m| m.contains("native")), "{x:#}");
        assert!(x["note"].as_str().is_some_and(|n| n.contains("virtio_net")), "{x:#}");
        // kfree_skb saw none of them: no flow from the gateway, no XDP reason.
        let flows = s["flows"].as_array().cloned().unwrap_or_default();
        assert!(flows.iter().all(|f| f["src"].as_str().is_none_or(|a| !a.starts_with("10.0.2.2"))), "{flows:#?}");
        let reasons = s["reasons"].as_array().cloned().unwrap_or_default();
        assert!(reasons.iter().all(|r| r["reason"] != "XDP_DROP" && r["reason"] != "XDP"), "{reasons:#?}");
        // The diagnosis: the program's cause, naming it; never a full ring (virtio_net counts
        // them in rx_queue_N_drops too).
        let causes = s["causes"].as_array().cloned().unwrap_or_default();
        let bpf = causes.iter().find(|c| c["id"] == "bpf-or-tc-program");
        let named = format!("{grew} XDP_DROP on {dev} by pktl_xdp_pong (id {id}");
        assert!(
            bpf.and_then(|c| c["evidence"].as_array())
                .is_some_and(|ev| ev.iter().any(|l| l.as_str().is_some_and(|l| l.contains(&named)))),
            "no evidence {named:?}: {causes:#?}"
        );
        assert!(causes.iter().all(|c| c["id"] != "nic-ring-full"), "{causes:#?}");
        drop(back);
        phase("the NIC put back");
    });
}
