//! pcapng export of the sampled drops' packet headers, one comment per packet saying why.
//!
//! One Interface Description Block per (netns, ifindex, link type) seen in the samples, named
//! "dev@netns"; one Enhanced Packet Block per sample that has bytes, with its timestamp
//! (capture start + offset, nanosecond resolution), original length (`skb_len`) and a comment
//! `drop reason=... location=... cause=... chain=... program=... netns=... dev=... pid=... comm=...`.
//! Bytes that start at the IP header use link type RAW (101); bytes from `skb->data` use
//! ETHERNET (1) when they carry a plausible Ethernet header on an Ethernet-like device, else RAW.
use std::{
    borrow::Cow,
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use pcap_file::{
    DataLink, Endianness,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
    },
};

use crate::{capture::CaptureFile, diagnose::Diagnosis, model::Sample, render::report::device_label};

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn looks_like_ip(b: &[u8]) -> bool {
    match b.first().map(|v| v >> 4) {
        Some(4) => b.first().is_some_and(|v| v & 0xf >= 5) && be16(b, 2).is_some_and(|l| l >= 20),
        Some(6) => b.len() >= 8,
        _ => false,
    }
}

fn ethernet_header(b: &[u8]) -> bool {
    matches!(be16(b, 12), Some(0x0800 | 0x86dd | 0x0806 | 0x8100 | 0x88a8 | 0x8847 | 0x8848))
}

/// Link type of a sample's bytes.
fn link_type(file: &CaptureFile, s: &Sample, bytes: &[u8]) -> DataLink {
    if s.data_start == "network" {
        return DataLink::RAW;
    }
    let arphrd = file.interface(s.flow.netns.inode, s.ifindex).and_then(|i| i.arphrd);
    let ether_dev = matches!(arphrd, Some(ARPHRD_ETHER | ARPHRD_LOOPBACK));
    if ether_dev && ethernet_header(bytes) {
        DataLink::ETHERNET
    } else if looks_like_ip(bytes) {
        DataLink::RAW
    } else if arphrd.is_none() && ethernet_header(bytes) {
        DataLink::ETHERNET
    } else {
        DataLink::RAW
    }
}

/// A string from the file, bounded (pcapng options are at most 64 KiB) and without controls.
fn short(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).take(200).collect()
}

/// `key=value`, quoting values that contain spaces, quotes or `=`.
fn kv(out: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    let value = short(value);
    out.push(' ');
    out.push_str(key);
    out.push('=');
    if value.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') {
        out.push('"');
        out.push_str(&value.replace('"', "'"));
        out.push('"');
    } else {
        out.push_str(&value);
    }
}

/// The comment of one packet.
fn comment(file: &CaptureFile, diagnosis: &Diagnosis, s: &Sample) -> String {
    let reason = if s.reason.is_empty() { file.reason_name(s.reason.code).unwrap_or_default() } else { &s.reason.name };
    let mut c = String::from("drop");
    kv(&mut c, "reason", if reason.is_empty() { "?" } else { reason });
    kv(&mut c, "location", &s.symbol);
    if let Some(cause) = diagnosis.cause_for_drop(reason, &s.flow.proto, &s.symbol, &s.flow) {
        kv(&mut c, "cause", cause.id.as_str());
    }
    if !s.chain.is_empty() {
        kv(&mut c, "chain", &s.chain);
    }
    if let Some(p) = file.summary.program_of(s.flow.netns.inode, s.flow.netns.cookie, s.ifindex, reason) {
        kv(&mut c, "program", &p);
    }
    if !s.nat_original.is_empty() {
        kv(&mut c, "nat_original", &s.nat_original);
    }
    kv(&mut c, "netns", &s.flow.netns.inode.to_string());
    if !s.netns_name.is_empty() {
        kv(&mut c, "netns_name", &s.netns_name);
    }
    if let Some(ns) = file.summary.namespace(s.flow.netns.inode, s.flow.netns.cookie) {
        if let Some(p) = &ns.pod {
            kv(&mut c, "pod", &if p.name.is_empty() { p.uid.clone() } else { format!("{}/{}", p.namespace, p.name) });
        }
        if let Some(k) = ns.containers.first() {
            kv(&mut c, "container", &format!("{}:{}", k.runtime, if k.name.is_empty() { &k.id } else { &k.name }));
        }
        if !ns.unit.is_empty() {
            kv(&mut c, "unit", &ns.unit);
        }
    }
    if let Some(i) = file.interface(s.flow.netns.inode, s.ifindex) {
        kv(&mut c, "dev", &i.name);
    } else if s.ifindex != 0 {
        kv(&mut c, "ifindex", &s.ifindex.to_string());
    }
    if s.pid != 0 {
        kv(&mut c, "pid", &s.pid.to_string());
    }
    kv(&mut c, "comm", &s.comm);
    kv(&mut c, "cpu", &s.cpu.to_string());
    c
}

/// The pcapng bytes for a capture, and how many packets they hold.
pub fn pcapng_bytes(file: &CaptureFile) -> Result<(Vec<u8>, usize)> {
    let start = humantime::parse_rfc3339_weak(&file.summary.started)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();

    // Interfaces first (with the snaplen of their packets), then the packets.
    let mut ifaces: BTreeMap<(u32, u32, u32), (u32, u32)> = BTreeMap::new(); // key -> (id, snaplen)
    let mut packets = vec![];
    for s in &file.summary.samples {
        let bytes = s.data.bytes();
        if bytes.is_empty() {
            continue;
        }
        let lt = link_type(file, s, bytes);
        let key = (s.flow.netns.inode, s.ifindex, u32::from(lt));
        let next = u32::try_from(ifaces.len()).context("too many interfaces")?;
        let entry = ifaces.entry(key).or_insert((next, 0));
        let caplen = u32::try_from(bytes.len()).context("packet too long")?;
        entry.1 = entry.1.max(caplen);
        packets.push((entry.0, s, bytes));
    }
    let mut by_id: Vec<_> = ifaces.iter().collect();
    by_id.sort_by_key(|(_, (id, _))| *id);

    let shb = SectionHeaderBlock {
        options: vec![
            SectionHeaderOption::UserApplication(Cow::Owned(format!("pktloss {}", short(&file.tool_version)))),
            SectionHeaderOption::OS(Cow::Owned(
                format!("Linux {} {}", short(&file.kernel), short(&file.arch)).trim().to_string(),
            )),
            SectionHeaderOption::Comment(Cow::Owned(format!(
                "pktloss capture of host {} (boot id {}) started {}: headers of sampled dropped packets, one comment per packet with the drop reason, location and cause",
                short(&file.hostname),
                short(&file.boot_id),
                short(&file.summary.started)
            ))),
        ],
        endianness: Endianness::Little,
        ..SectionHeaderBlock::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), shb).context("pcapng header")?;
    for ((netns, ifindex, lt), (_, snaplen)) in by_id {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::from(*lt),
            snaplen: *snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(device_label(file, *netns, *ifindex))),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "ifindex {ifindex} in netns {netns}, dropped packets seen by pktloss"
                ))),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(idb).context("pcapng interface block")?;
    }
    let n = packets.len();
    for (id, s, bytes) in packets {
        let caplen = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let epb = EnhancedPacketBlock {
            interface_id: id,
            timestamp: start.saturating_add(Duration::from_nanos(s.t_ns)),
            original_len: s.skb_len.max(caplen),
            data: Cow::Borrowed(bytes),
            options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment(file, &file.diagnosis, s)))],
        };
        w.write_pcapng_block(epb).context("pcapng packet block")?;
    }
    Ok((w.into_inner(), n))
}

/// Write the sampled drops' packets as pcapng to `out` (mode 0600); returns packets written.
#[cfg(test)]
pub(crate) fn write_pcapng(file: &CaptureFile, out: &std::path::Path) -> Result<usize> {
    let (bytes, n) = pcapng_bytes(file)?;
    crate::capture::write_private(out, &bytes)?;
    Ok(n)
}
