//! Host step: what each NIC, qdisc and softnet drop counter means. The one rule the diagnosis
//! (which cause a counter selects), `top`'s counter rows (which counters it lists) and their
//! drill-down (what it says a counter means) all read.
use super::DeviceStats;

/// What a drop counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NicCounter {
    /// No free RX descriptor: the ring was full.
    RingFull,
    /// The NIC's FIFO overflowed before DMA.
    FifoOverrun,
    /// Frames that arrived corrupted (CRC, framing).
    LinkCorruption,
    /// The driver could not allocate an RX buffer.
    AllocFailure,
    /// An XDP program's `XDP_DROP` verdicts.
    XdpDrop,
    /// Frames the device or the stack dropped on receive, for any reason the device does not
    /// say (`rx_dropped` of `/proc/net/dev`).
    RxDropped,
    /// Frames dropped on transmit.
    TxDropped,
    /// The per-CPU input backlog was full (softnet).
    Backlog,
    /// NAPI ran out of budget with work left (not a drop by itself).
    Squeeze,
    /// Any other drop counter.
    Other,
}

/// A device counter: its name, how to read it, what it means.
pub(crate) type DeviceCounter = (&'static str, fn(&DeviceStats) -> u64, NicCounter);

/// The device's own counters (`/proc/net/dev`, rtnetlink) that count lost frames, each with
/// its meaning.
pub(crate) const DEVICE_COUNTERS: [DeviceCounter; 8] = [
    ("rx_dropped", |d| d.rx_dropped, NicCounter::RxDropped),
    ("rx_missed_errors", |d| d.rx_missed_errors, NicCounter::RingFull),
    ("rx_fifo_errors", |d| d.rx_fifo_errors, NicCounter::FifoOverrun),
    ("rx_over_errors", |d| d.rx_over_errors, NicCounter::FifoOverrun),
    ("rx_crc_errors", |d| d.rx_crc_errors, NicCounter::LinkCorruption),
    ("rx_frame_errors", |d| d.rx_frame_errors, NicCounter::LinkCorruption),
    ("tx_dropped", |d| d.tx_dropped, NicCounter::TxDropped),
    ("tx_errors", |d| d.tx_errors, NicCounter::Other),
];

/// The name `top` gives an ethtool counter, and the names of its softnet rows.
pub(crate) const ETHTOOL_PREFIX: &str = "ethtool ";
pub(crate) const SOFTNET_DROPPED: &str = "softnet dropped";
pub(crate) const TIME_SQUEEZE: &str = "time_squeeze";

impl NicCounter {
    /// The meaning of a counter by its name: a device counter ([`DEVICE_COUNTERS`]), a softnet
    /// row, or an ethtool counter (bare, or as `top` names it, after [`ETHTOOL_PREFIX`]).
    pub(crate) fn of(name: &str) -> Self {
        if let Some((_, _, m)) = DEVICE_COUNTERS.iter().find(|(n, _, _)| *n == name) {
            return *m;
        }
        match name {
            SOFTNET_DROPPED => Self::Backlog,
            TIME_SQUEEZE => Self::Squeeze,
            _ => Self::of_ethtool(name.strip_prefix(ETHTOOL_PREFIX).unwrap_or(name)),
        }
    }

    /// The meaning of a driver's ethtool counter (names vary by driver).
    pub(crate) fn of_ethtool(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        if n.contains("xdp") && n.contains("drop") && !n.contains("err") {
            // `rx_queue_0_xdp_drops` on veth, `rx_xdp_drop` on mlx5, ...
            Self::XdpDrop
        } else if n.contains("alloc") && (n.contains("fail") || n.contains("err")) {
            Self::AllocFailure
        } else if (n.contains("missed") && n.contains("rx"))
            || n.contains("no_buffer")
            || n.contains("nobuf")
            || n.contains("no_dma")
            || n.contains("out_of_buffer")
            || n.contains("rx_discards")
            || n.contains("rx_fw_discards")
            || (n.starts_with("rx") && n.ends_with("_drops") && !n.contains("xdp"))
            || n == "rx_dropped"
        {
            // No RX descriptor or buffer available: the ring was full.
            Self::RingFull
        } else if n.contains("fifo") || n.contains("over") {
            Self::FifoOverrun
        } else if n.contains("crc") || n.contains("frame") {
            Self::LinkCorruption
        } else {
            Self::Other
        }
    }

    /// What it means, for a reader.
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Self::RingFull => {
                "The NIC had no free RX descriptor: the ring was full because the host drained it too slowly. Grow it (ethtool -G <dev> rx N), spread the load (RSS, ethtool -L), check IRQ affinity."
            }
            Self::FifoOverrun => {
                "The NIC's internal FIFO overflowed before DMA: PCIe/memory pressure or bursts beyond the ring. See ethtool -S, ring size and interrupt coalescing."
            }
            Self::LinkCorruption => {
                "Frames arrived corrupted (bad CRC or framing): link-layer corruption in the cable, optics, NIC or switch port."
            }
            Self::AllocFailure => {
                "The driver could not allocate an RX buffer: memory pressure (see vm.min_free_kbytes and the host's free memory)."
            }
            Self::XdpDrop => "An XDP program attached to the device returned XDP_DROP for these frames.",
            Self::RxDropped => {
                "Frames the device or the stack dropped on receive without saying why (a full ring on some drivers, an unknown protocol, a full backlog): the traced drop reasons tell them apart."
            }
            Self::TxDropped => "Frames dropped on transmit: the device or its driver queue was full, or the link down.",
            Self::Backlog => {
                "The per-CPU input backlog was full (enqueue_to_backlog): raise net.core.netdev_max_backlog, or spread RPS/RFS so one CPU is not saturated."
            }
            Self::Squeeze => {
                "NAPI ran out of budget or time with work left (not a drop by itself): raise net.core.netdev_budget / netdev_budget_usecs if drops follow."
            }
            Self::Other => "A drop counter the kernel keeps outside the skb drop-reason tracepoint.",
        }
    }
}

/// The largest of a device's ethtool counters that mean `what` (per-queue counters repeat the
/// totals: the largest is a lower bound).
pub(crate) fn ethtool_max(dev: &DeviceStats, what: NicCounter) -> u64 {
    dev.ethtool.iter().filter(|(k, _)| NicCounter::of_ethtool(k) == what).map(|(_, v)| *v).max().unwrap_or(0)
}

/// The largest of a device's full-ring counters, less the XDP drops a driver also counts in
/// its per-queue `drops` (`virtio_net` counts an `XDP_DROP` in `rx_queue_N_drops` and in
/// `rx_queue_N_xdp_drops`; `rxN_drops` from 6.10): those are the program's, not a full ring.
pub(crate) fn ring_full(dev: &DeviceStats) -> u64 {
    dev.ethtool
        .iter()
        .filter(|(k, _)| NicCounter::of_ethtool(k) == NicCounter::RingFull)
        .map(|(k, v)| {
            let xdp = k.strip_suffix("_drops").and_then(|q| dev.ethtool.get(&format!("{q}_xdp_drops")));
            v.saturating_sub(xdp.copied().unwrap_or(0))
        })
        .max()
        .unwrap_or(0)
}

/// An XDP program's drops on a device: the per-queue counters summed, or the largest total.
pub(crate) fn xdp_drops(dev: &DeviceStats) -> u64 {
    let per_queue =
        |k: &str| k.contains("queue_") || k.starts_with("rx") && k[2..].starts_with(|c: char| c.is_ascii_digit());
    let xdp = |k: &str| NicCounter::of_ethtool(k) == NicCounter::XdpDrop;
    let queues: u64 = dev.ethtool.iter().filter(|(k, _)| xdp(k) && per_queue(k)).map(|(_, v)| *v).sum();
    let totals = dev.ethtool.iter().filter(|(k, _)| xdp(k) && !per_queue(k)).map(|(_, v)| *v).max();
    totals.unwrap_or(0).max(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `top` shows and the driver names the diagnosis reads mean one thing each.
    #[test]
    fn one_meaning_per_counter() {
        for (name, want) in [
            ("rx_missed_errors", NicCounter::RingFull),
            ("rx_fifo_errors", NicCounter::FifoOverrun),
            ("rx_over_errors", NicCounter::FifoOverrun),
            ("rx_crc_errors", NicCounter::LinkCorruption),
            ("rx_dropped", NicCounter::RxDropped),
            ("tx_dropped", NicCounter::TxDropped),
            ("softnet dropped", NicCounter::Backlog),
            ("time_squeeze", NicCounter::Squeeze),
            ("ethtool rx_queue_0_xdp_drops", NicCounter::XdpDrop),
            ("ethtool rx_queue_0_drops", NicCounter::RingFull),
            ("ethtool rx_no_buffer_count", NicCounter::RingFull),
            ("ethtool rx_dropped", NicCounter::RingFull),
            ("ethtool rx_alloc_fail", NicCounter::AllocFailure),
            ("drops", NicCounter::Other),
        ] {
            assert_eq!(NicCounter::of(name), want, "{name}");
        }
        assert_eq!(NicCounter::of_ethtool("rx_xdp_drop"), NicCounter::XdpDrop);
    }

    /// `virtio_net`'s per-queue drops include its XDP drops: only the rest is a full ring.
    #[test]
    fn xdp_drops_counted_in_queue_drops_are_not_a_full_ring() {
        let dev = |pairs: &[(&str, u64)]| DeviceStats {
            ethtool: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..DeviceStats::default()
        };
        assert_eq!(ring_full(&dev(&[("rx_queue_0_drops", 40), ("rx_queue_0_xdp_drops", 40)])), 0);
        assert_eq!(ring_full(&dev(&[("rx0_drops", 45), ("rx0_xdp_drops", 40)])), 5);
        assert_eq!(ring_full(&dev(&[("rx_out_of_buffer", 7), ("rx_xdp_drop", 40)])), 7);
    }
}
