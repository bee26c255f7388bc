//! Tests of the capture format, the malformed-file corpus, reports and pcapng export.
use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::json;

use super::{
    format::{HEADER_LEN, MAGIC},
    *,
};
use crate::testdata::sample_capture;
use crate::{
    diagnose::{Cause, CauseId, Explained},
    model::*,
    render::{
        pcapng::{pcapng_bytes, write_pcapng},
        report::{ReportFormat, render, render_json},
        summary,
    },
};

fn tmpdir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "pktloss-capture-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    drop(fs::remove_dir_all(&d));
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn round_trip_bytes_and_file() {
    let f = sample_capture();
    let bytes = to_bytes(&f).unwrap();
    assert_eq!(bytes.get(..8), Some(&MAGIC[..]));
    assert_eq!(read_bytes(&bytes).unwrap(), f);

    let d = tmpdir();
    let p = d.join("incident.pktloss");
    write(&p, &f).unwrap();
    let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(read(&p).unwrap(), f);
    // Overwriting keeps 0600 and leaves no temp file behind.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    write(&p, &f).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    drop(fs::remove_dir_all(&d));
}

#[test]
#[expect(clippy::float_cmp, reason = "a non-finite number must read back as exactly 0.0")]
fn non_finite_numbers_still_read_back() {
    let mut f = sample_capture();
    f.summary.duration_secs = f64::NAN;
    f.summary.drops_per_sec = f64::INFINITY;
    let back = read_bytes(&to_bytes(&f).unwrap()).unwrap();
    assert_eq!(back.summary.duration_secs, 0.0);
}

#[test]
fn uncompressed_and_newer_minor_are_read() {
    let f = sample_capture();
    let json = serde_json::to_vec(&f).unwrap();
    assert_eq!(read_bytes(&encode_container(&json, false).unwrap()).unwrap(), f);
    // A newer minor version with an extra field is read; the unknown field is ignored.
    let mut v = serde_json::to_value(&f).unwrap();
    v["future_field"] = json!({"x": 1});
    let json = serde_json::to_vec(&v).unwrap();
    let got = read_bytes(&raw_container(FORMAT_MAJOR, 7, 0, json.len() as u64, &json)).unwrap();
    assert_eq!(got.format.minor, 7);
    assert_eq!(got.summary, f.summary);
}

#[test]
fn missing_optional_fields_default() {
    let json = serde_json::to_vec(&json!({
        "format": {"name": "pktloss-capture", "major": 1, "minor": 0},
        "tool_version": "0.0.1", "created": "x",
        "summary": serde_json::to_value(Summary::default()).unwrap(),
    }))
    .unwrap();
    let f = read_bytes(&encode_container(&json, true).unwrap()).unwrap();
    assert!(f.interfaces.is_empty() && f.diagnosis == Diagnosis::default());
    for fmt in [ReportFormat::Text, ReportFormat::Markdown, ReportFormat::Json] {
        assert!(!render(&f, fmt).is_empty());
    }
    assert_eq!(pcapng_bytes(&f).unwrap().1, 0);
}

fn err(bytes: &[u8]) -> CaptureError {
    match read_bytes(bytes) {
        Ok(_) => panic!("accepted a malformed file of {} bytes", bytes.len()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("pktloss") && !msg.contains('\n'), "unclear message: {msg}");
            e
        }
    }
}

#[test]
fn malformed_corpus() {
    let good = to_bytes(&sample_capture()).unwrap();

    assert!(matches!(err(b""), CaptureError::Empty));
    for n in 1..good.len() {
        let e = err(good.get(..n).unwrap());
        match n {
            ..40 => assert!(matches!(e, CaptureError::TruncatedHeader { .. }), "{n}: {e}"),
            _ => assert!(matches!(e, CaptureError::Truncated { .. }), "{n}: {e}"),
        }
    }
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            if let Some(x) = b.get_mut(i) {
                *x ^= mask;
            }
            err(&b);
        }
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(err(&trailing), CaptureError::TrailingBytes { extra: 1 }));

    // Wrong magic and foreign files.
    let mut wrong = good.clone();
    wrong.splice(..8, *b"PKTLOSZ\0");
    assert!(matches!(err(&wrong), CaptureError::NotCapture { .. }));
    let pcapng = pcapng_bytes(&sample_capture()).unwrap().0;
    assert!(err(&pcapng).to_string().contains("pcapng"));
    let elf: Vec<u8> = fs::read("/proc/self/exe")
        .map_or_else(|_| b"\x7fELF\x02\x01\x01".to_vec(), |b| b.into_iter().take(4096).collect());
    assert!(err(&elf).to_string().contains("ELF"));
    assert!(err(b"\x1f\x8b\x08\x00").to_string().contains("gzip"));
    assert!(err(br#"{"total_drops": 3}"#).to_string().contains("JSON"));
    assert!(err(b"hello world\n").to_string().contains("text"));
    assert!(err(&[0u8; 100]).to_string().contains("not a pktloss capture"));

    // Versions and flags.
    let json = serde_json::to_vec(&sample_capture()).unwrap();
    let e = err(&raw_container(2, 3, 0, json.len() as u64, &json));
    assert!(matches!(e, CaptureError::NewerFormat { major: 2, minor: 3 }));
    assert!(e.to_string().contains("newer pktloss: capture format 2.3") && e.to_string().contains("1.x"), "{e}");
    assert!(matches!(err(&raw_container(0, 9, 0, json.len() as u64, &json)), CaptureError::OlderFormat { .. }));
    assert!(matches!(
        err(&raw_container(1, 0, 0x10, json.len() as u64, &json)),
        CaptureError::UnknownFlags { flags: 0x10 }
    ));

    // Huge or inconsistent declared lengths: refused before any allocation.
    let mut huge = raw_container(1, 0, 0, 0, b"");
    huge.splice(16..24, (1u64 << 62).to_le_bytes());
    huge.splice(24..32, (1u64 << 62).to_le_bytes());
    let crc = crc32fast::hash(huge.get(..36).unwrap());
    huge.splice(36..40, crc.to_le_bytes());
    assert!(matches!(err(&huge), CaptureError::TooLarge { what: "payload", .. }));
    let mut big = raw_container(1, 0, FLAG_DEFLATE, 0, b"");
    big.splice(16..24, (1u64 << 29).to_le_bytes());
    big.splice(24..32, (1u64 << 29).to_le_bytes());
    let crc = crc32fast::hash(big.get(..36).unwrap());
    big.splice(36..40, crc.to_le_bytes());
    assert!(matches!(err(&big), CaptureError::Truncated { declared: 536870912, actual: 0 }));
    assert!(matches!(err(&raw_container(1, 0, FLAG_DEFLATE, 1 << 29, b"x")), CaptureError::Corrupt(_)));
    assert!(matches!(err(&raw_container(1, 0, 0, 5, b"x")), CaptureError::Corrupt(_)));
    assert!(matches!(err(&raw_container(1, 0, FLAG_DEFLATE, u64::MAX, b"x")), CaptureError::TooLarge { .. }));

    // Decompression bomb: stops one byte past the declared length.
    let zeros = vec![b' '; 4 << 20];
    let bomb = encode_container(&zeros, true).unwrap();
    let stored = bomb.get(HEADER_LEN..).unwrap();
    let e = err(&raw_container(1, 0, FLAG_DEFLATE, 100, stored));
    assert!(e.to_string().contains("more than 100"), "{e}");
    // Not DEFLATE at all.
    assert!(err(&raw_container(1, 0, FLAG_DEFLATE, 10, b"\xff\xff\xff\xff")).to_string().contains("decompress"));

    // Valid containers around bad JSON.
    let bad_json: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"garbage".to_vec(),
        b"\xff\xfe{}".to_vec(),
        b"{}".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        br#"{"total_drops": 1}"#.to_vec(),
        br#"{"format": {"name": "pktloss-capture", "major": 1, "minor": 0}, "tool_version": "x", "created": "y", "summary": {}}"#.to_vec(),
        br#"{"format": {"name": "pktloss-capture", "major": 1, "minor": 0}, "tool_version": "x", "created": "y", "summary": 7}"#.to_vec(),
        [b"[".repeat(100_000), b"]".repeat(100_000)].concat(),
    ];
    for j in &bad_json {
        for compress in [false, true] {
            let e = err(&encode_container(j, compress).unwrap());
            assert!(matches!(e, CaptureError::Content(_)), "{e}");
        }
    }
    let mut v = serde_json::to_value(sample_capture()).unwrap();
    v["checks"] = serde_json::from_str(&format!("{}1{}", "[".repeat(5000), "]".repeat(5000))).unwrap_or(json!(null));
    v["format"]["name"] = json!("something-else");
    assert!(
        err(&encode_container(&serde_json::to_vec(&v).unwrap(), true).unwrap()).to_string().contains("something-else")
    );
    let mut v = serde_json::to_value(sample_capture()).unwrap();
    v["format"]["major"] = json!(2);
    assert!(matches!(
        err(&encode_container(&serde_json::to_vec(&v).unwrap(), true).unwrap()),
        CaptureError::Content(_)
    ));
    let mut v = serde_json::to_value(sample_capture()).unwrap();
    v["summary"]["total_drops"] = json!(-1);
    assert!(matches!(
        err(&encode_container(&serde_json::to_vec(&v).unwrap(), false).unwrap()),
        CaptureError::Content(_)
    ));
}

#[test]
fn file_errors() {
    let d = tmpdir();
    let e = read(&d.join("missing.pktloss")).unwrap_err();
    assert!(matches!(e, CaptureError::Io { .. }) && e.to_string().contains("missing.pktloss"), "{e}");
    assert!(matches!(read(&d).unwrap_err(), CaptureError::NotAFile { .. }));
    let p = d.join("empty.pktloss");
    fs::write(&p, b"").unwrap();
    assert!(matches!(read(&p).unwrap_err(), CaptureError::Empty));
    let good = to_bytes(&sample_capture()).unwrap();
    fs::write(&p, good.get(..good.len() - 1).unwrap()).unwrap();
    assert!(matches!(read(&p).unwrap_err(), CaptureError::Truncated { .. }));
    fs::write(&p, good.get(..20).unwrap()).unwrap();
    assert!(matches!(read(&p).unwrap_err(), CaptureError::TruncatedHeader { have: 20 }));
    if Path::new("/dev/zero").exists() {
        assert!(matches!(read(Path::new("/dev/zero")).unwrap_err(), CaptureError::NotAFile { .. }));
    }
    drop(fs::remove_dir_all(&d));
}

/// xorshift64*: a fixed-seed generator so the mutation run is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 => {
                let i = rng.below(b.len());
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(b.len());
                if let Some(x) = b.get_mut(i) {
                    *x = rng.next() as u8;
                }
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let i = rng.below(b.len() + 1);
                let n = rng.below(16);
                let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(i..i, ins);
            }
            4 => {
                let i = rng.below(b.len());
                let n = rng.below(64).min(b.len() - i.min(b.len()));
                b.drain(i..i + n);
            }
            _ => {
                let i = rng.below(b.len());
                if let Some(x) = b.get_mut(i) {
                    *x = [0, 0xff, b'"', b'{', b'[', b'0', b'-', b'9'][rng.below(8)];
                }
            }
        }
    }
}

/// Every outcome is fine as long as nothing panics, errors are clear, and what is accepted renders.
fn check_any(b: &[u8]) -> bool {
    match read_bytes(b) {
        Ok(f) => {
            for fmt in [ReportFormat::Text, ReportFormat::Markdown, ReportFormat::Json] {
                drop(render(&f, fmt));
            }
            drop(pcapng_bytes(&f));
            true
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("pktloss") && !msg.contains('\n'), "unclear message: {msg}");
            false
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let f = sample_capture();
    let json = serde_json::to_vec(&f).unwrap();
    let packed = to_bytes(&f).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..4000 {
        // Whole-file mutations: almost all stop at a checksum.
        let mut b = packed.clone();
        mutate(&mut rng, &mut b);
        check_any(&b);
        // Payload mutations behind a valid container, to reach the inflater and JSON parser.
        if round % 2 == 0 {
            let mut j = json.clone();
            mutate(&mut rng, &mut j);
            accepted += usize::from(check_any(&encode_container(&j, round % 4 == 0).unwrap()));
        } else {
            let mut p = packed.get(HEADER_LEN..).unwrap_or_default().to_vec();
            mutate(&mut rng, &mut p);
            check_any(&raw_container(1, 0, FLAG_DEFLATE, json.len() as u64, &p));
        }
    }
    // Some mutated documents stay valid (e.g. a changed digit) and then must render.
    assert!(accepted > 0);
}

#[test]
fn text_report() {
    let f = sample_capture();
    let t = render(&f, ReportFormat::Text);
    for want in [
        "Host:       testhost",
        "Boot id:    0f2c1d3e",
        "stopped by duration",
        "pktloss capture --duration 30s -o incident.pktloss",
        "3 drops in 30.0 s (0.1/s) on testhost",
        "Drops by reason",
        "NO_SOCKET",
        "__udp4_lib_rcv+0x5e3",
        "#2  ip_protocol_deliver_rcu+0x3c",
        "10.0.0.1:40000",
        "[fd00::1]:443",
        "1 active, 1 skipped",
        "1. [no-listener] UDP datagrams to a port nobody listens on — 2 drops",
        "     - start the service",
        "     - check `nft list ruleset`",
        "0000  45 00 00 20",
        "dev veth0 (ifindex 2), nc[1234]",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    // Columns line up: every row of the reason table has its REASON column at one offset.
    let s = summary::text(&f.summary);
    let lines: Vec<&str> = s.lines().skip_while(|l| *l != "Drops by reason").skip(1).take(3).collect();
    let col: Vec<Option<usize>> = lines
        .iter()
        .map(|l| l.find("REASON").or_else(|| l.find("NO_SOCKET")).or_else(|| l.find("NETFILTER")))
        .collect();
    assert!(col.iter().all(|c| c.is_some() && *c == col[0]), "{lines:#?}");
}

#[test]
fn markdown_and_json_reports() {
    let mut f = sample_capture();
    f.hostname = "evil\x1b[31m|host".into();
    let m = render(&f, ReportFormat::Markdown);
    assert!(!m.contains('\x1b'));
    for want in [
        "## pktloss capture: 3 drops on evil\\\\u{1b}\\[31m\\|host",
        "| Drops | Share | Reason |",
        "|---:|---:|---|",
        "```text",
        "| 2 | `__udp4_lib_rcv+0x5e3` | `NO_SOCKET` |",
        "**1. UDP datagrams",
        "(`no-listener`, 2 drops)",
        "(`firewall-drop`, 1 drop)",
        "- **Advice:** check `nft list ruleset`",
    ] {
        assert!(m.contains(want), "missing {want:?} in\n{m}");
    }
    assert_eq!(m.matches("```").count() % 2, 0);

    let v: serde_json::Value = serde_json::from_str(&render(&f, ReportFormat::Json)).unwrap();
    assert_eq!(v["total_drops"], 3);
    assert_eq!(v["reasons"][0]["reason"], "NO_SOCKET");
    assert_eq!(v["causes"][0]["id"], "no-listener");
    assert_eq!(v["capture"]["boot_id"], f.boot_id);
    assert_eq!(v["capture"]["format"]["major"], 1);
    assert_eq!(v["explained"][0]["cause"], "no-listener");
    assert!(v["counters"].is_array() && v["checks"].is_array(), "{v:#}");
}

#[test]
fn pcapng_structure() {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let f = sample_capture();
    let (bytes, n) = pcapng_bytes(&f).unwrap();
    assert_eq!(n, 3);
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let (mut idbs, mut comments) = (vec![], vec![]);
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::InterfaceDescription(i) => idbs.push((u32::from(i.linktype), format!("{:?}", i.options))),
            Block::EnhancedPacket(p) => {
                comments.push((p.interface_id, p.original_len, p.timestamp, format!("{:?}", p.options)))
            }
            _ => {}
        }
    }
    // veth0 RAW, veth1 RAW, veth0 ETHERNET (the "data" sample with an Ethernet header).
    assert_eq!(idbs.len(), 3, "{idbs:?}");
    assert_eq!(idbs.iter().map(|i| i.0).collect::<Vec<_>>(), vec![101, 101, 1]);
    assert!(idbs[0].1.contains("veth0@ns1") && idbs[1].1.contains("veth1@ns1"));
    assert_eq!(comments[0].1, 132);
    assert_eq!(comments[1].2, std::time::Duration::from_secs(1_714_557_602) + std::time::Duration::from_millis(500));
    assert!(comments[0].3.contains("drop reason=NO_SOCKET location=__udp4_lib_rcv+0x5e3 cause=no-listener netns=4026532291 netns_name=ns1 pod=shop/cart-7f9 container=containerd:cart dev=veth0 pid=1234 comm=nc"), "{}", comments[0].3);
    assert!(comments[1].3.contains("cause=firewall-drop"), "{}", comments[1].3);
}

/// The comment of a tc or XDP drop names the program, from the summary's tc and XDP drops.
#[test]
fn pcapng_comment_names_tc_and_xdp_programs() {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let mut f = sample_capture();
    let prog = |id: u32, name: &str, attach: &str| TcProgram { id, name: name.into(), attach: attach.into() };
    let (netns, ifindex) = (f.summary.samples[0].flow.netns.inode, f.summary.samples[0].ifindex);
    f.summary.samples[0].reason = "TC_INGRESS".into();
    f.summary.samples[1].reason = pktloss_common::XDP_DROP.into();
    (f.summary.samples[1].flow.netns.inode, f.summary.samples[1].ifindex) = (netns, ifindex);
    f.summary.tc_drops.push(TcDrops {
        netns: NetnsId { inode: netns, cookie: 0 },
        ifindex,
        hook: "ingress".into(),
        reason: "TC_INGRESS".into(),
        drops: 1,
        programs: vec![prog(41, "drop_port", "tcx ingress")],
        ..TcDrops::default()
    });
    f.summary.xdp_drops.push(XdpDrops {
        netns: NetnsId { inode: netns, cookie: 0 },
        ifindex,
        drops: Some(1),
        program: Some(prog(44, "xdp_ddos", "xdp native")),
        ..XdpDrops::default()
    });
    let (bytes, _) = pcapng_bytes(&f).unwrap();
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let mut comments = vec![];
    while let Some(b) = r.next_block() {
        if let Block::EnhancedPacket(p) = b.unwrap() {
            comments.push(format!("{:?}", p.options));
        }
    }
    assert!(comments[0].contains("reason=TC_INGRESS "), "{}", comments[0]);
    assert!(comments[0].contains(r#" program=\"drop_port (id 41)\""#), "{}", comments[0]);
    assert!(comments[1].contains(r#"program=\"xdp_ddos (id 44)\""#), "{}", comments[1]);
    assert!(!comments[2].contains("program="), "{}", comments[2]);
}

#[test]
fn pcapng_read_back_by_tshark() {
    let tshark = ["/usr/bin/tshark", "/usr/local/bin/tshark"].into_iter().find(|p| Path::new(p).exists());
    if !crate::testdata::available("pcapng_read_back_by_tshark", "tshark", tshark.is_some()) {
        return;
    }
    let tshark = tshark.expect("checked");
    let d = tmpdir();
    let out = d.join("out.pcapng");
    assert_eq!(write_pcapng(&sample_capture(), &out).unwrap(), 3);
    assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let res = Command::new(tshark)
        .args(["-n", "-r"])
        .arg(&out)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.interface_name",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.srcport",
            "-e",
            "frame.comment",
        ])
        .env("HOME", &d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success(), "tshark failed: {}\n{stdout}", String::from_utf8_lossy(&res.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(
            "veth0@ns1|10.0.0.1||9999||drop reason=NO_SOCKET location=__udp4_lib_rcv+0x5e3 cause=no-listener"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "veth1@ns1||fd00::1||443|drop reason=NETFILTER_DROP location=nf_hook_slow+0x91 cause=firewall-drop"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("veth0@ns1|10.0.0.1||9999||drop reason=NO_SOCKET"), "{}", lines[2]);
    drop(fs::remove_dir_all(&d));
}

/// Regenerates the committed fuzz seed: `cargo test -p pktloss-user --lib write_fuzz_seed -- --ignored`.
#[test]
#[ignore = "writes the committed fuzz seeds; run by hand after a format change"]
fn write_fuzz_seed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/capture_reader");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("valid-compressed.bin"), to_bytes(&sample_capture()).unwrap()).unwrap();
    let json = serde_json::to_vec(&sample_capture()).unwrap();
    fs::write(dir.join("valid-uncompressed.bin"), encode_container(&json, false).unwrap()).unwrap();
}

#[test]
#[ignore = "prints a sample report for a human to read"]
fn show_reports() {
    let f = sample_capture();
    println!("{}", render(&f, ReportFormat::Text));
}

#[test]
#[expect(
    clippy::many_single_char_names,
    reason = "the capture `f`, its diagnosis `d` and its text, Markdown and JSON renderings `t`, `m`, `j`"
)]
fn causes_for_drops() {
    let cause = |id: CauseId| Cause { id, title: id.to_string(), drops: 1, ..Cause::default() };
    let explained = |cause, reason: &str, proto: Option<&str>, symbol: Option<&str>| Explained {
        cause,
        reason: reason.into(),
        proto: proto.map(Into::into),
        symbol: symbol.map(Into::into),
        flows: Vec::new(),
        drops: 1,
    };
    let starved = Flow {
        proto: "tcp".into(),
        family: 4,
        src: "10.0.0.1".into(),
        sport: 40000,
        dst: "10.0.0.2".into(),
        dport: 5001,
        netns: NetnsId { inode: 7, cookie: 0 },
    };
    let d = Diagnosis {
        causes: vec![
            Cause {
                explanation: "why".into(),
                verify: vec![crate::diagnose::Verify::fix("ss -uam".into())],
                ..cause(CauseId::UdpRcvbufFull)
            },
            cause(CauseId::SocketMemoryPressure),
            cause(CauseId::FirewallDrop),
            cause(CauseId::Routing),
            cause(CauseId::TcpProtocol),
        ],
        explained: vec![
            explained(CauseId::UdpRcvbufFull, "SOCKET_RCVBUFF", Some("udp"), None),
            explained(CauseId::SocketMemoryPressure, "SOCKET_RCVBUFF", Some("tcp"), None),
            explained(CauseId::FirewallDrop, "NOT_SPECIFIED", None, Some("nf_hook_slow+0x1")),
            explained(CauseId::Routing, "NOT_SPECIFIED", None, Some("ip_error+0x2")),
            explained(CauseId::TcpProtocol, "TCP_INVALID_END_SEQUENCE", None, None),
            Explained {
                flows: vec![starved.clone()],
                ..explained(CauseId::SocketMemoryPressure, "TCP_INVALID_END_SEQUENCE", Some("tcp"), None)
            },
        ],
        benign: Vec::new(),
        reconciliation: vec!["udp-rcvbuf-full: ok".into()],
        unavailable: vec!["conntrack: not loaded".into()],
        outside_filter: Vec::new(),
    };
    let other = Flow { sport: 40001, ..starved.clone() };
    let id = |r, p, s| d.cause_for_drop(r, p, s, &other).map(|c| c.id);
    // Limited to connections: those connections only, before any wider assignment.
    let on =
        |c: &Flow| d.cause_for_drop("TCP_INVALID_END_SEQUENCE", "tcp", "tcp_validate_incoming+0x1", c).map(|c| c.id);
    assert_eq!(on(&starved), Some(CauseId::SocketMemoryPressure));
    assert_eq!(on(&other), Some(CauseId::TcpProtocol));
    assert_eq!(id("SOCKET_RCVBUFF", "udp", "__udp_enqueue_schedule_skb+0x1"), Some(CauseId::UdpRcvbufFull));
    assert_eq!(id("SOCKET_RCVBUFF", "tcp", "tcp_data_queue+0x9"), Some(CauseId::SocketMemoryPressure));
    // By the function of the location, whatever the offset.
    assert_eq!(id("NOT_SPECIFIED", "udp", "ip_error+0x9"), Some(CauseId::Routing));
    assert_eq!(id("NOT_SPECIFIED", "udp", "nf_hook_slow+0x1"), Some(CauseId::FirewallDrop));
    assert_eq!(id("NOT_SPECIFIED", "udp", "baz+0x9"), None);
    assert_eq!(id("NO_SOCKET", "udp", "x"), None);
    assert_eq!(id("", "udp", "x"), None);
    let mut f = sample_capture();
    f.diagnosis = d;
    let t = render(&f, ReportFormat::Text);
    assert!(t.contains("     $ ss -uam") && t.contains("Not available:\n  conntrack: not loaded"), "{t}");
    let m = render(&f, ReportFormat::Markdown);
    assert!(m.contains("- Verify: `ss -uam`") && m.contains("#### Events vs counters\n\n- udp-rcvbuf-full: ok"), "{m}");
    let j = render_json(&f);
    assert_eq!(j["causes"][1]["id"], "socket-memory-pressure");
    assert_eq!(j["unavailable"][0], "conntrack: not loaded");
}

#[test]
fn host_metadata_and_format_names() {
    let f = CaptureFile::for_this_host(Summary::default());
    assert_eq!(f.format, FormatInfo::default());
    assert!(!f.kernel.is_empty() && !f.arch.is_empty() && !f.tool_version.is_empty());
    assert!(humantime::parse_rfc3339(&f.created).is_ok(), "{}", f.created);
    assert_eq!(read_bytes(&to_bytes(&f).unwrap()).unwrap(), f);
    assert_eq!("md".parse::<ReportFormat>(), Ok(ReportFormat::Markdown));
    assert!("xml".parse::<ReportFormat>().is_err());
}

/// A cause id this pktloss does not know (a file from a newer one) reads as unclassified.
#[test]
fn unknown_cause_ids_read_as_unclassified() {
    let mut v = serde_json::to_value(sample_capture()).unwrap();
    v["diagnosis"]["causes"][0]["id"] = json!("a-cause-from-the-future");
    let f = read_bytes(&encode_container(&serde_json::to_vec(&v).unwrap(), true).unwrap()).unwrap();
    assert_eq!(f.diagnosis.causes[0].id, CauseId::Unclassified);
}

/// A capture written before flows held a `Flow` (the committed fixture, written by an earlier
/// pktloss) reads, and its flows and samples write back field for field: the flattened identity
/// keeps the format.
#[test]
fn flows_and_samples_of_an_earlier_capture_write_back_unchanged() {
    use std::io::Read as _;
    let bytes = include_bytes!("../export/fixtures/nosocket_nft.pktloss");
    let file = read_bytes(bytes).expect("fixture");
    let mut json = String::new();
    flate2::read::DeflateDecoder::new(&bytes[HEADER_LEN..]).read_to_string(&mut json).expect("payload");
    let old: serde_json::Value = serde_json::from_str(&json).expect("json");
    let new = serde_json::to_value(&file.summary).expect("json");
    assert!(!file.summary.flows.is_empty() && !file.summary.samples.is_empty());
    assert!(file.summary.flows.iter().all(|f| f.flow.netns.inode != 0));
    for key in ["flows", "samples", "netns_drops"] {
        assert_eq!(new[key], old["summary"][key], "{key}");
    }
    // The fixture predates cookies: one written now keeps it beside the inode, and reads it.
    let mut flow = file.summary.flows[0].clone();
    flow.flow.netns.cookie = 12;
    let v = serde_json::to_value(&flow).expect("json");
    assert_eq!((v["netns"].as_u64(), v["netns_cookie"].as_u64()), (Some(u64::from(flow.flow.netns.inode)), Some(12)));
    assert_eq!(serde_json::from_value::<FlowCount>(v).expect("flow"), flow);
}
