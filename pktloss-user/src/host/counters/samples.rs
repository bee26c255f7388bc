//! Counter structs as the readers make them from a real 6.18 kernel (namespace `pktl-fx`: a tbf
//! qdisc on a veth, a backlog-1 listener, a 1 KiB-rcvbuf UDP socket, drop routes, an ixgbe-like
//! NIC with a full ring), for the tests of the diagnosis. The readers themselves are tested
//! against a live namespace (`tests::live_readers_see_the_namespace`).
use std::collections::BTreeMap;

use super::{DeviceStats, Listener, QdiscStats, RingParams, RouteEntry, UdpSocket};

/// UDP sockets: port 5000 with a small buffer and 199 drops, a dual-stack mDNS one.
pub(crate) fn udp_sockets() -> Vec<UdpSocket> {
    let sock = |addr: &str, port, peer: &str, rx_queue, rcvbuf, drops, inode| UdpSocket {
        addr: addr.to_owned(),
        port,
        peer: peer.to_owned(),
        rx_queue,
        tx_queue: 0,
        rcvbuf: Some(rcvbuf),
        sndbuf: Some(212_992),
        drops,
        drops_delta: None,
        inode: Some(inode),
        process: "python3[11082]".to_owned(),
    };
    vec![sock("0.0.0.0", 5000, "0.0.0.0:*", 1280, 2304, 199, 18387), sock("*", 5353, "*:*", 0, 212_992, 0, 18388)]
}

/// TCP listeners: `127.0.0.1:8080` of backlog 1 with 2 waiting and 8 drops, `[::1]:8443`.
pub(crate) fn listeners() -> Vec<Listener> {
    let l = |addr: &str, port, accept_queue, backlog, drops, inode| Listener {
        addr: addr.to_owned(),
        port,
        accept_queue,
        backlog,
        drops: Some(drops),
        drops_delta: None,
        inode: Some(inode),
        process: "python3[11082]".to_owned(),
    };
    vec![l("127.0.0.1", 8080, 2, 1, 8, 18385), l("::1", 8443, 0, 16, 0, 18386)]
}

/// Qdiscs: lo's noqueue and a tbf on pktl-v0 that dropped 43.
pub(crate) fn qdiscs() -> Vec<QdiscStats> {
    vec![
        QdiscStats {
            dev: "lo".into(),
            kind: "noqueue".into(),
            handle: "0:".into(),
            parent: "root".into(),
            ..QdiscStats::default()
        },
        QdiscStats {
            dev: "pktl-v0".into(),
            kind: "tbf".into(),
            handle: "8001:".into(),
            parent: "root".into(),
            bytes: 4018,
            packets: 11,
            drops: 43,
            overlimits: 59,
            ..QdiscStats::default()
        },
    ]
}

/// Links: lo and the veth pktl-v0 under the tbf.
pub(crate) fn links() -> Vec<DeviceStats> {
    let up = |name: &str, ifindex, operstate: &str, mtu, qdisc: &str| DeviceStats {
        name: name.to_owned(),
        ifindex,
        operstate: operstate.to_owned(),
        up: true,
        lower_up: true,
        mtu,
        qdisc: qdisc.to_owned(),
        txqlen: 1000,
        ..DeviceStats::default()
    };
    let lo = DeviceStats {
        rx_bytes: 46_632,
        rx_packets: 218,
        tx_bytes: 46_632,
        tx_packets: 218,
        ..up("lo", 1, "UNKNOWN", 65_536, "noqueue")
    };
    let v0 = DeviceStats {
        kind: "veth".into(),
        rx_bytes: 8280,
        rx_packets: 42,
        tx_bytes: 4534,
        tx_packets: 17,
        carrier_changes: 2,
        ..up("pktl-v0", 2, "UP", 1500, "tbf")
    };
    vec![lo, v0]
}

/// An ixgbe NIC with missed frames, FIFO overruns and CRC errors, with its ethtool counters.
pub(crate) fn nic_with_errors() -> DeviceStats {
    let ethtool: BTreeMap<String, u64> = [
        ("rx_errors", 1297),
        ("tx_errors", 0),
        ("rx_dropped", 0),
        ("tx_dropped", 0),
        ("rx_no_buffer_count", 0),
        ("rx_over_errors", 56),
        ("rx_crc_errors", 7),
        ("rx_frame_errors", 0),
        ("fdir_miss", 0),
        ("fdir_overflow", 0),
        ("rx_fifo_errors", 56),
        ("rx_missed_errors", 1234),
        ("tx_aborted_errors", 0),
        ("tx_carrier_errors", 0),
        ("tx_fifo_errors", 0),
        ("tx_heartbeat_errors", 0),
        ("rx_length_errors", 0),
        ("rx_long_length_errors", 0),
        ("rx_short_length_errors", 0),
        ("rx_csum_offload_errors", 0),
        ("alloc_rx_page", 123_456),
        ("alloc_rx_page_failed", 0),
        ("alloc_rx_buff_failed", 9),
        ("rx_no_dma_resources", 0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    DeviceStats {
        name: "enp3s0f0".into(),
        ifindex: 2,
        operstate: "UP".into(),
        up: true,
        lower_up: true,
        mtu: 1500,
        qdisc: "mq".into(),
        txqlen: 1000,
        rx_bytes: 982_374_982_734,
        rx_packets: 912_837_423,
        rx_errors: 1297,
        rx_dropped: 1290,
        rx_over_errors: 56,
        rx_crc_errors: 7,
        rx_fifo_errors: 56,
        rx_missed_errors: 1234,
        tx_bytes: 82_374_982_734,
        tx_packets: 81_283_742,
        carrier_changes: 4,
        ethtool,
        ..DeviceStats::default()
    }
}

/// A ring of 256 descriptors whose maximum is 4096.
pub(crate) fn ring(dev: &str) -> RingParams {
    RingParams { dev: dev.to_owned(), rx: Some(256), rx_max: Some(4096), tx: Some(256), tx_max: Some(256) }
}

/// Drop routes: an IPv4 blackhole and unreachable, an IPv6 prohibit.
pub(crate) fn drop_routes() -> Vec<RouteEntry> {
    [("blackhole", "10.200.0.0/24"), ("unreachable", "10.201.0.0/24"), ("prohibit", "2001:db8::/64")]
        .into_iter()
        .map(|(kind, dst)| RouteEntry { kind: kind.to_owned(), dst: dst.to_owned(), table: "main".to_owned() })
        .collect()
}
