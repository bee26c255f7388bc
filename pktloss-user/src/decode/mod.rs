//! Decode step: raw ring-buffer records and map keys into readable values (addresses,
//! protocols, comm), defensively: a short or malformed record is an error, never a panic.
pub(crate) mod reasons;
pub(crate) mod symbols;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pktloss_common::{DROP_EVENT_HEADER, DROP_EVENT_SIZE, DropEvent, FlowKey, data_start};
use thiserror::Error;

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    #[error("drop event too short: {got} bytes, expected {want}")]
    Short { got: usize, want: usize },
    #[error("drop event claims {cap} captured bytes, more than {max}")]
    CapLen { cap: usize, max: usize },
}

/// Decode one `DropEvent` record as written by the kernel.
pub(crate) fn drop_event(bytes: &[u8]) -> Result<DropEvent, DecodeError> {
    if bytes.len() < DROP_EVENT_HEADER {
        return Err(DecodeError::Short { got: bytes.len(), want: DROP_EVENT_HEADER });
    }
    // Records carry the header and as many packet bytes as the snap length asked for.
    let mut full = [0u8; DROP_EVENT_SIZE];
    let n = bytes.len().min(DROP_EVENT_SIZE);
    full[..n].copy_from_slice(&bytes[..n]);
    // SAFETY: `full` holds DROP_EVENT_SIZE bytes, DropEvent is plain data valid for any bit
    // pattern, and read_unaligned has no alignment requirement.
    let ev = unsafe { std::ptr::read_unaligned(full.as_ptr().cast::<DropEvent>()) };
    let max = n - DROP_EVENT_HEADER;
    if usize::from(ev.cap_len) > max {
        return Err(DecodeError::CapLen { cap: usize::from(ev.cap_len), max });
    }
    Ok(ev)
}

/// A TCP socket state (`skc_state`) as `ss` names it; empty for none.
pub(crate) fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "CLOSE",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW-SYN-RECV",
        _ => "",
    }
}

/// The TCP flags (`SYN,ACK`) of captured bytes that start at an IP header; empty when they are
/// not TCP (or an IPv6 extension header comes first) or too short.
pub(crate) fn tcp_flags(bytes: &[u8], start: u8) -> String {
    if start != data_start::NETWORK {
        return String::new();
    }
    let (proto, off) = match bytes.first().map(|b| b >> 4) {
        Some(4) => (bytes.get(9).copied(), usize::from(bytes[0] & 0x0f) * 4),
        Some(6) => (bytes.get(6).copied(), 40),
        _ => return String::new(),
    };
    let Some(f) = bytes.get(off + 13).copied().filter(|_| proto == Some(6)) else { return String::new() };
    let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    names.iter().enumerate().filter(|(i, _)| f & (1 << i) != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

/// The captured packet bytes of an event.
pub(crate) fn packet_bytes(ev: &DropEvent) -> &[u8] {
    ev.data.get(..usize::from(ev.cap_len)).unwrap_or(&[])
}

/// Name of where the captured bytes start.
pub(crate) fn data_start_name(kind: u8) -> &'static str {
    match kind {
        data_start::NETWORK => "network",
        data_start::DATA => "data",
        _ => "none",
    }
}

/// Source and destination addresses of a flow key, or None when it has no IP header.
pub(crate) fn addrs(key: &FlowKey) -> Option<(IpAddr, IpAddr)> {
    match key.family {
        4 => {
            let s = Ipv4Addr::new(key.saddr[0], key.saddr[1], key.saddr[2], key.saddr[3]);
            let d = Ipv4Addr::new(key.daddr[0], key.daddr[1], key.daddr[2], key.daddr[3]);
            Some((s.into(), d.into()))
        }
        6 => Some((Ipv6Addr::from(key.saddr).into(), Ipv6Addr::from(key.daddr).into())),
        _ => None,
    }
}

/// Text form of the addresses ("" when not IP).
pub(crate) fn addr_strings(key: &FlowKey) -> (String, String) {
    addrs(key).map_or((String::new(), String::new()), |(s, d)| (s.to_string(), d.to_string()))
}

/// Protocol name: tcp, udp, icmp, icmpv6, sctp, proto-N, or eth-0xNNNN without an IP header.
pub(crate) fn proto_name(key: &FlowKey) -> String {
    if key.family == 0 {
        return match key.ethertype {
            0 => "unknown".to_owned(),
            0x0806 => "arp".to_owned(),
            e => format!("eth-{e:#06x}"),
        };
    }
    match key.l4proto {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        136 => "udplite".to_owned(),
        47 => "gre".to_owned(),
        n => format!("proto-{n}"),
    }
}

/// Task name from a NUL-padded comm.
pub(crate) fn comm(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_bytes(ev: &DropEvent) -> Vec<u8> {
        // SAFETY: DropEvent is plain data.
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref::<DropEvent>(ev).cast::<u8>(), DROP_EVENT_SIZE) }
            .to_vec()
    }

    fn sample() -> DropEvent {
        let mut flow = FlowKey { family: 4, l4proto: 17, sport: 40000, dport: 9, reason: 3, ..FlowKey::default() };
        flow.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        flow.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        DropEvent {
            ts_ns: 1,
            location: 0xffff_ffff_8100_0000,
            flow,
            stack_id: -1,
            tid: 7,
            pid: 7,
            cpu: 1,
            skb_len: 40,
            cap_len: 4,
            data_start: data_start::NETWORK,
            has_rx_sk: 0,
            comm: *b"nc\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            sk_ino: 0,
            sk_state: 0,
            pad: [0; 7],
            data: [0x45; pktloss_common::MAX_SNAPLEN],
        }
    }

    #[test]
    fn tcp_flags_and_states_read_as_ss_and_tcpdump_say_them() {
        let v6 = crate::testdata::ipv6_tcp();
        assert_eq!(tcp_flags(&v6, data_start::NETWORK), "ACK");
        assert_eq!(tcp_flags(&v6, data_start::DATA), "");
        assert_eq!(tcp_flags(&crate::testdata::ipv4_udp(), data_start::NETWORK), "");
        let mut syn = crate::testdata::ipv4_udp();
        syn[9] = 6;
        syn.resize(40, 0);
        syn[20 + 13] = 0x12;
        assert_eq!(tcp_flags(&syn, data_start::NETWORK), "SYN,ACK");
        assert_eq!(tcp_flags(&syn[..30], data_start::NETWORK), "");
        assert_eq!(tcp_state_name(1), "ESTABLISHED");
        assert_eq!(tcp_state_name(10), "LISTEN");
        assert_eq!(tcp_state_name(0), "");
    }

    #[test]
    fn round_trip() {
        let bytes = event_bytes(&sample());
        let ev = drop_event(&bytes).expect("decode");
        assert_eq!(ev.flow.dport, 9);
        assert_eq!(packet_bytes(&ev), &[0x45; 4]);
        assert_eq!(comm(&ev.comm), "nc");
        assert_eq!(addr_strings(&ev.flow), ("10.0.0.1".to_owned(), "10.0.0.2".to_owned()));
        assert_eq!(proto_name(&ev.flow), "udp");
    }

    #[test]
    fn malformed_records() {
        let bytes = event_bytes(&sample());
        for n in [0, 1, 8, DROP_EVENT_HEADER - 1] {
            assert_eq!(drop_event(&bytes[..n]).err(), Some(DecodeError::Short { got: n, want: DROP_EVENT_HEADER }));
        }
        // A record sized for a shorter snap length: fine while cap_len fits in it.
        let short = &bytes[..DROP_EVENT_HEADER + 8];
        assert_eq!(packet_bytes(&drop_event(short).expect("short record")), &[0x45; 4]);
        assert_eq!(drop_event(&bytes[..DROP_EVENT_HEADER]).err(), Some(DecodeError::CapLen { cap: 4, max: 0 }));
        let mut bad = sample();
        bad.cap_len = u16::MAX;
        assert!(matches!(drop_event(&event_bytes(&bad)), Err(DecodeError::CapLen { .. })));
        // Random garbage of the right size decodes or fails cleanly, never panics.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..DROP_EVENT_SIZE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok(ev) = drop_event(&junk) {
                drop((proto_name(&ev.flow), addr_strings(&ev.flow), comm(&ev.comm), packet_bytes(&ev).len()));
            }
        }
    }

    #[test]
    fn protocols_and_non_ip() {
        let k = FlowKey { family: 0, ethertype: 0x0806, ..FlowKey::default() };
        assert_eq!(proto_name(&k), "arp");
        assert_eq!(addr_strings(&k), (String::new(), String::new()));
        let k = FlowKey { family: 6, l4proto: 58, ..FlowKey::default() };
        assert_eq!(proto_name(&k), "icmpv6");
        assert_eq!(addr_strings(&k).0, "::");
        let k = FlowKey { family: 4, l4proto: 99, ..FlowKey::default() };
        assert_eq!(proto_name(&k), "proto-99");
    }
}
