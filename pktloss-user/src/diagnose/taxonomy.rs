//! The cause taxonomy: the one readable table of the 28 causes of packet loss pktloss knows, and of
//! the benign traffic the kernel drops by design ([`BENIGN`]).
//!
//! Ids ([`CauseId`]) are stable (scripts match on them). Each cause has a title, a one-paragraph explanation,
//! the signals that select it (drop reasons from `enum skb_drop_reason`, kernel counters), the
//! checks to confirm it, the remediation and the command that verifies the fix. The categories,
//! commands and advice follow the common troubleshooting guides (CVM packet-loss guide, "Package
//! Loss Issue" NIC/backlog notes, "Understanding and Troubleshooting Linux Kernel Network Packet
//! Loss", TCP drop checklists), but here each one is measured.
//!
//! Reason matching: an entry in `reasons` matches a reason name exactly, or as a prefix when it
//! ends with `*`. `SOCKET_RCVBUFF` is split by protocol in code (UDP => udp-rcvbuf-full, TCP =>
//! socket-memory-pressure). Reasons, locations and flows of [`BENIGN`] are not packet loss: they
//! are counted apart, per class, and never select nor add to a cause. Reasons without a
//! specific meaning (`NOT_SPECIFIED`, `TCP_DROP` on kernels without reasons) are classified by the
//! drop location with [`LOCATION_HINTS`]. [`classify_reason`] gives every reason of a kernel its
//! class; a test walks the running kernel's enum and fails on a reason with none.

use serde::{Deserialize, Serialize};

use crate::model::TrapKind;

/// The id of a cause: one variant per entry of [`CAUSES`], written as its stable kebab-case
/// name (`CauseId::NoListener`) in JSON, capture files and text.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, strum::EnumCount,
)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CauseId {
    NoListener,
    FirewallDrop,
    ConntrackTableFull,
    RpFilter,
    UdpRcvbufFull,
    UdpSndbufFull,
    TcpAcceptQueueFull,
    TcpSynQueueFull,
    TcpBacklogOverflow,
    SocketMemoryPressure,
    SoftnetBacklogFull,
    SoftirqBudgetExhausted,
    NicRingFull,
    NicFifoOverrun,
    ChecksumError,
    QdiscDrop,
    Routing,
    NeighborFailure,
    MtuFragmentation,
    TcpProtocol,
    BpfOrTcProgram,
    MemoryPressure,
    InterfaceDown,
    ExternalLoss,
    MalformedPacket,
    TunnelOrIpsec,
    HardwareTrap,
    /// Also what a cause id this pktloss does not know reads as (a capture file written by a
    /// newer one).
    #[default]
    #[serde(other)]
    Unclassified,
}

impl CauseId {
    /// Every cause, in taxonomy order (its length is the number of variants: a new one does
    /// not compile until it is here).
    pub(crate) const ALL: [Self; <Self as strum::EnumCount>::COUNT] = [
        Self::NoListener,
        Self::FirewallDrop,
        Self::ConntrackTableFull,
        Self::RpFilter,
        Self::UdpRcvbufFull,
        Self::UdpSndbufFull,
        Self::TcpAcceptQueueFull,
        Self::TcpSynQueueFull,
        Self::TcpBacklogOverflow,
        Self::SocketMemoryPressure,
        Self::SoftnetBacklogFull,
        Self::SoftirqBudgetExhausted,
        Self::NicRingFull,
        Self::NicFifoOverrun,
        Self::ChecksumError,
        Self::QdiscDrop,
        Self::Routing,
        Self::NeighborFailure,
        Self::MtuFragmentation,
        Self::TcpProtocol,
        Self::BpfOrTcProgram,
        Self::MemoryPressure,
        Self::InterfaceDown,
        Self::ExternalLoss,
        Self::MalformedPacket,
        Self::TunnelOrIpsec,
        Self::HardwareTrap,
        Self::Unclassified,
    ];

    /// The stable name (`CauseId::NoListener`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::NoListener => "no-listener",
            Self::FirewallDrop => "firewall-drop",
            Self::ConntrackTableFull => "conntrack-table-full",
            Self::RpFilter => "rp-filter",
            Self::UdpRcvbufFull => "udp-rcvbuf-full",
            Self::UdpSndbufFull => "udp-sndbuf-full",
            Self::TcpAcceptQueueFull => "tcp-accept-queue-full",
            Self::TcpSynQueueFull => "tcp-syn-queue-full",
            Self::TcpBacklogOverflow => "tcp-backlog-overflow",
            Self::SocketMemoryPressure => "socket-memory-pressure",
            Self::SoftnetBacklogFull => "softnet-backlog-full",
            Self::SoftirqBudgetExhausted => "softirq-budget-exhausted",
            Self::NicRingFull => "nic-ring-full",
            Self::NicFifoOverrun => "nic-fifo-overrun",
            Self::ChecksumError => "checksum-error",
            Self::QdiscDrop => "qdisc-drop",
            Self::Routing => "routing",
            Self::NeighborFailure => "neighbor-failure",
            Self::MtuFragmentation => "mtu-fragmentation",
            Self::TcpProtocol => "tcp-protocol",
            Self::BpfOrTcProgram => "bpf-or-tc-program",
            Self::MemoryPressure => "memory-pressure",
            Self::InterfaceDown => "interface-down",
            Self::ExternalLoss => "external-loss",
            Self::MalformedPacket => "malformed-packet",
            Self::TunnelOrIpsec => "tunnel-or-ipsec",
            Self::HardwareTrap => "hardware-trap",
            Self::Unclassified => "unclassified",
        }
    }

    /// The taxonomy entry.
    pub(crate) fn info(self) -> &'static CauseInfo {
        &CAUSES[self as usize]
    }
}

impl std::fmt::Display for CauseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CauseId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("no cause named `{s}`"))
    }
}

/// One cause of packet loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CauseInfo {
    pub id: CauseId,
    pub title: &'static str,
    pub explanation: &'static str,
    /// Human-readable list of what selects this cause.
    pub signals: &'static [&'static str],
    /// Drop reasons mapped to this cause (exact, or prefix with a trailing `*`).
    pub reasons: &'static [&'static str],
    /// Commands to confirm it.
    pub checks: &'static [&'static str],
    /// The fix: sysctl, command or code change.
    pub remediation: &'static [&'static str],
    /// Commands that verify the fix.
    pub verify: &'static [&'static str],
}

/// A class of traffic the kernel drops by design: not packet loss. Stable kebab-case ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BenignId {
    #[default]
    SocketTeardown,
    UnwantedBroadcast,
    FlowControl,
    CaptureCopy,
    LinkChatter,
    NotForThisHost,
}

impl BenignId {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::SocketTeardown => "socket-teardown",
            Self::UnwantedBroadcast => "unwanted-broadcast",
            Self::FlowControl => "flow-control",
            Self::CaptureCopy => "capture-copy",
            Self::LinkChatter => "link-chatter",
            Self::NotForThisHost => "not-for-this-host",
        }
    }

    pub(crate) fn info(self) -> &'static BenignInfo {
        &BENIGN[self as usize]
    }
}

impl std::fmt::Display for BenignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One class of benign drops: why it is not loss, and what selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BenignInfo {
    pub id: BenignId,
    pub why: &'static str,
    /// Drop reasons of this class (exact).
    pub reasons: &'static [&'static str],
    /// Functions where a drop with a reason that says nothing (`NOT_SPECIFIED`, or none before
    /// 5.17) is of this class.
    pub locations: &'static [&'static str],
    /// Functions where a `NOT_SPECIFIED` drop is of this class (kernels with reasons only:
    /// before 5.17 the same function frees real loss without telling it apart).
    pub unspecified_locations: &'static [&'static str],
}

/// The benign classes, in [`BenignId`] order. One mechanism: every benign drop of a summary is
/// one of these, by reason, by location or by flow ([`benign_for_flow`]).
pub(crate) const BENIGN: &[BenignInfo] = &[
    BenignInfo {
        id: BenignId::SocketTeardown,
        why: "data or segments freed because a socket closed or was torn down (the application closed it, a reset, a TIME_WAIT socket, a purged queue): nobody was left to read them",
        reasons: &[
            "SOCKET_CLOSE",
            "TCP_CLOSE",
            "TCP_ABORT_ON_DATA",
            "TCP_RESET",
            "UNIX_DISCONNECT",
            "UNIX_SKIP_OOB",
            "QUEUE_PURGE",
            "SOCKET_DESTROYED",
        ],
        locations: &["udp_destruct_common", "inet_sock_destruct", "skb_queue_purge_reason"],
        // A TIME_WAIT socket consumes the segments of a closed connection (`TCP_TW_SUCCESS`).
        unspecified_locations: &["tcp_v4_rcv", "tcp_v6_rcv"],
    },
    BenignInfo {
        id: BenignId::UnwantedBroadcast,
        why: "broadcast or multicast nobody on this host listens to or joined (Udp.IgnoredMulti, an unjoined group): the sender addressed everyone, this host did not want it",
        reasons: &[],
        locations: &["__udp4_lib_mcast_deliver", "__udp6_lib_mcast_deliver", "ip6_mc_input"],
        unspecified_locations: &["__udp4_lib_rcv", "__udp6_lib_rcv", "udp_rcv", "udpv6_rcv"],
    },
    BenignInfo {
        id: BenignId::FlowControl,
        why: "duplicates of data the receiver already had and acknowledged (zero-window probes, tail-loss probes, spurious retransmissions): every byte arrived",
        reasons: &["TCP_OLD_DATA", "TCP_OLD_SEQUENCE"],
        locations: &[],
        unspecified_locations: &[],
    },
    BenignInfo {
        id: BenignId::CaptureCopy,
        why: "a packet capture socket's copy dropped (its buffer was full): the original packet went on",
        reasons: &["PACKET_SOCK_ERROR"],
        locations: &["packet_rcv", "tpacket_rcv"],
        unspecified_locations: &[],
    },
    BenignInfo {
        id: BenignId::LinkChatter,
        why: "link-layer and link-local control traffic no protocol here handles (IPv6 router and neighbour solicitations and MLD reports of a link coming up, LLDP, pause frames)",
        reasons: &["UNHANDLED_PROTO", "MAC_IEEE_MAC_CONTROL"],
        locations: &[],
        unspecified_locations: &[],
    },
    BenignInfo {
        id: BenignId::NotForThisHost,
        why: "frames addressed to another host (another MAC or a neighbour solicitation for another address, seen on a shared segment or in promiscuous mode) or this host's own frames looped back",
        reasons: &["OTHERHOST", "IPV6_NDISC_NS_OTHERHOST", "LOCAL_MAC", "ARP_PVLAN_DISABLE", "UNICAST_IN_L2_MULTICAST"],
        locations: &[],
        unspecified_locations: &[],
    },
];

/// The benign class of a drop reason, by name alone.
pub(crate) fn benign_for_reason(reason: &str) -> Option<BenignId> {
    BENIGN.iter().find(|b| b.reasons.contains(&reason)).map(|b| b.id)
}

/// The benign class of a drop with a reason that says nothing, by its location.
pub(crate) fn benign_for_location(reason: &str, symbol: &str) -> Option<BenignId> {
    let func = crate::decode::symbols::function_of(symbol);
    let unspecified = reason == "NOT_SPECIFIED";
    if !unspecified && reason != crate::decode::reasons::NO_REASON {
        return None;
    }
    BENIGN
        .iter()
        .find(|b| b.locations.contains(&func) || (unspecified && b.unspecified_locations.contains(&func)))
        .map(|b| b.id)
}

/// The benign class of a flow's drops, by what the packets are: IPv6 link start-up chatter
/// ([`is_link_local_control`]) whatever the reason; multicast or limited broadcast dropped with a
/// reason that says nothing (an unjoined group at `ip_rcv_finish`, a port nobody listens on).
pub(crate) fn benign_for_flow(f: &crate::model::FlowCount) -> Option<BenignId> {
    if is_link_local_control(f) {
        return Some(BenignId::LinkChatter);
    }
    let says_nothing = matches!(f.reason.as_str(), "NOT_SPECIFIED" | crate::decode::reasons::NO_REASON);
    let group = match f.flow.dst.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_multicast() || a.is_broadcast(),
        Ok(std::net::IpAddr::V6(a)) => a.is_multicast(),
        Err(_) => false,
    };
    (says_nothing && group).then_some(BenignId::UnwantedBroadcast)
}

/// Whether a flow is IPv6 link-local control traffic: router solicitations, neighbour
/// solicitations (address autoconfiguration) and MLD reports to a link-scope multicast group
/// (`ff02::/16`). A namespace or link coming up sends them before it has routes or listeners,
/// and the kernel drops them (`IP_INNOROUTES` at `ip6_pkt_discard`, `NOT_SPECIFIED` at
/// `ip6_mc_input`): start-up chatter, not loss. Data to a link-scope group, or anything to a
/// unicast or wider-scope address, is not this.
pub(crate) fn is_link_local_control(f: &crate::model::FlowCount) -> bool {
    let link_scope = f.flow.dst.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("ff02:"));
    // ICMPv6 RS (133), NS (135), MLDv2 report (143); MLD behind a hop-by-hop header shows as
    // protocol 0.
    let control = match f.flow.proto.as_str() {
        "icmpv6" => matches!(f.flow.sport, 133 | 135 | 143),
        "proto-0" => true,
        _ => false,
    };
    f.flow.family == 6 && link_scope && control
}

/// Drop-location hints for reasons that say nothing (`NOT_SPECIFIED`, `TCP_DROP`, and
/// `UNKNOWN` on kernels without drop reasons, before 5.17): a symbol
/// prefix (the function name of `function+0xoff`) and the cause it indicates. First match wins.
pub(crate) const LOCATION_HINTS: &[(&str, CauseId)] = &[
    ("nf_hook_slow", CauseId::FirewallDrop),
    ("nft_", CauseId::FirewallDrop),
    ("ipt_do_table", CauseId::FirewallDrop),
    ("nf_conntrack", CauseId::ConntrackTableFull),
    ("__nf_conntrack", CauseId::ConntrackTableFull),
    ("enqueue_to_backlog", CauseId::SoftnetBacklogFull),
    ("__udp_queue_rcv_skb", CauseId::UdpRcvbufFull),
    ("udp_queue_rcv", CauseId::UdpRcvbufFull),
    ("__udp4_lib_rcv", CauseId::NoListener),
    ("__udp6_lib_rcv", CauseId::NoListener),
    ("tcp_v4_syn_recv_sock", CauseId::TcpAcceptQueueFull),
    ("tcp_v6_syn_recv_sock", CauseId::TcpAcceptQueueFull),
    ("tcp_conn_request", CauseId::TcpSynQueueFull),
    ("tcp_add_backlog", CauseId::TcpBacklogOverflow),
    ("sk_add_backlog", CauseId::TcpBacklogOverflow),
    ("tcp_prune", CauseId::SocketMemoryPressure),
    ("tcp_try_rmem_schedule", CauseId::SocketMemoryPressure),
    ("tcp_", CauseId::TcpProtocol),
    ("ip_rcv_finish", CauseId::Routing),
    ("ip_route_input", CauseId::Routing),
    ("ip_error", CauseId::Routing),
    ("ip6_pkt_drop", CauseId::Routing),
    ("dst_discard", CauseId::Routing),
    ("neigh_", CauseId::NeighborFailure),
    ("__neigh_event_send", CauseId::NeighborFailure),
    ("ip_defrag", CauseId::MtuFragmentation),
    ("ip_frag", CauseId::MtuFragmentation),
    ("ip_fragment", CauseId::MtuFragmentation),
    ("ipv6_frag", CauseId::MtuFragmentation),
    ("ip6_frag", CauseId::MtuFragmentation),
    ("inet_frag", CauseId::MtuFragmentation),
    ("pfifo_fast_enqueue", CauseId::QdiscDrop),
    ("qdisc_", CauseId::QdiscDrop),
    ("__dev_xmit_skb", CauseId::QdiscDrop),
    ("tcf_", CauseId::BpfOrTcProgram),
    ("sch_handle_", CauseId::BpfOrTcProgram),
    ("sk_filter", CauseId::BpfOrTcProgram),
    ("do_xdp", CauseId::BpfOrTcProgram),
    // veth's native XDP frees an `XDP_DROP` verdict's skb with `kfree_skb` (no reason).
    ("veth_xdp_rcv", CauseId::BpfOrTcProgram),
    ("netif_receive_generic_xdp", CauseId::BpfOrTcProgram),
    ("bpf_", CauseId::BpfOrTcProgram),
];

/// All causes, in a stable order (used to break ties when ranking): entry `i` is variant `i` of
/// [`CauseId`] ([`CauseId::info`] indexes it so), one entry per variant.
pub(crate) const CAUSES: &[CauseInfo; <CauseId as strum::EnumCount>::COUNT] = &[
    CauseInfo {
        id: CauseId::NoListener,
        title: "No socket listening on the destination port",
        explanation: "The packet reached this host but no socket is bound to its destination address and port, so the kernel drops it (TCP answers with a RST, UDP with an ICMP port unreachable). Usually the service is not running, listens on another port or address (127.0.0.1 instead of 0.0.0.0), lives in another network namespace, or the client targets the wrong port.",
        signals: &[
            "drop reason NO_SOCKET (IP_NOPROTO: no handler for the IP protocol)",
            "Udp.NoPorts / Udp6.NoPorts increasing",
        ],
        reasons: &["NO_SOCKET", "IP_NOPROTO"],
        checks: &[
            "ss -ltnp; ss -lunp (is anything bound to the port, on which address?)",
            "nstat -az UdpNoPorts Udp6NoPorts",
        ],
        remediation: &[
            "Start the service, or bind it to the address and port the clients use (0.0.0.0/[::] rather than 127.0.0.1), in the namespace that receives the traffic; or fix the client's destination port.",
        ],
        verify: &["ss -ltnp 'sport = :PORT'; ss -lunp 'sport = :PORT'", "nstat -az UdpNoPorts (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::FirewallDrop,
        title: "Dropped by a firewall rule or chain policy (iptables/nftables)",
        explanation: "A netfilter hook returned a drop verdict: either a rule with a DROP/REJECT verdict matched, or the packet fell through a base chain whose policy is DROP. The usual culprits are an INPUT policy of DROP with no accept rule for a custom service port, or an over-broad drop rule.",
        signals: &[
            "drop reason NETFILTER_DROP",
            "drop/reject rules whose packet counters increased",
            "base chains with policy DROP",
        ],
        reasons: &["NETFILTER_DROP", "SECURITY_HOOK"],
        checks: &[
            "iptables -L -n -v | grep -i policy; iptables -L -n -v",
            "nft list ruleset",
            "iptables -I INPUT -p PROTO -j LOG --log-prefix pktloss: (temporary, to see what is dropped; iptables -D INPUT -p PROTO -j LOG --log-prefix pktloss: removes it)",
        ],
        remediation: &[
            "Add an accept rule for the traffic, e.g. `iptables -A INPUT -p udp --dport 12345 -j ACCEPT` or `nft insert rule inet filter input udp dport 12345 accept`; or change the chain policy (`iptables -P INPUT ACCEPT`) if dropping by default was not intended. Back up the ruleset first.",
        ],
        verify: &["iptables -L -n -v | grep policy", "nft list ruleset (the drop rule's counter stops increasing)"],
    },
    CauseInfo {
        id: CauseId::ConntrackTableFull,
        title: "Connection tracking table full",
        explanation: "Every new flow needs a conntrack entry; when nf_conntrack_count reaches nf_conntrack_max the kernel drops packets of new flows (\"nf_conntrack: table full, dropping packet\" in dmesg). Typical on NAT gateways, busy proxies and hosts under connection floods.",
        signals: &[
            "conntrack stats drop / insert_failed / early_drop increasing",
            "nf_conntrack_count close to nf_conntrack_max",
            "NETFILTER_DROP while conntrack drops",
        ],
        reasons: &[],
        checks: &[
            "cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max",
            "conntrack -S",
            "dmesg | grep -i conntrack",
        ],
        remediation: &[
            "Raise the limit: `sysctl -w net.netfilter.nf_conntrack_max=N` (and nf_conntrack_buckets), shorten timeouts (nf_conntrack_tcp_timeout_established, ..._time_wait), or exempt high-volume stateless traffic with a `notrack` rule in the raw table.",
        ],
        verify: &[
            "conntrack -S (drop and insert_failed stop increasing)",
            "cat /proc/sys/net/netfilter/nf_conntrack_count",
        ],
    },
    CauseInfo {
        id: CauseId::RpFilter,
        title: "Reverse-path filter (rp_filter) dropped the packet",
        explanation: "With strict reverse-path filtering (rp_filter=1), a packet is dropped when the route back to its source does not leave through the interface it arrived on. This breaks multi-homed hosts, asymmetric routing, VMs and NAT setups.",
        signals: &[
            "drop reason IP_RPFILTER",
            "TcpExt.IPReversePathFilter increasing",
            "rp_filter=1 on the receiving interface or on all",
        ],
        reasons: &["IP_RPFILTER"],
        checks: &[
            "sysctl -a 2>/dev/null | grep '\\.rp_filter'",
            "ip route get SRC from DST iif DEV",
            "nstat -az TcpExtIPReversePathFilter",
        ],
        remediation: &[
            "Use loose mode: `sysctl -w net.ipv4.conf.all.rp_filter=2` and `net.ipv4.conf.DEV.rp_filter=2` (the effective value is the maximum of `all` and the interface), persist in /etc/sysctl.conf and reload with `sysctl -p`; or fix the routing so the return path matches.",
        ],
        verify: &[
            "sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.DEV.rp_filter",
            "nstat -az TcpExtIPReversePathFilter (stops increasing)",
        ],
    },
    CauseInfo {
        id: CauseId::UdpRcvbufFull,
        title: "UDP receive buffer full",
        explanation: "The UDP socket's receive buffer (SO_RCVBUF, default net.core.rmem_default, capped by net.core.rmem_max) was full when a datagram arrived, because the application reads more slowly than traffic arrives (bursts, slow processing, a single thread). The datagram is dropped and Udp RcvbufErrors increases.",
        signals: &[
            "drop reason SOCKET_RCVBUFF on UDP",
            "Udp.RcvbufErrors / Udp6.RcvbufErrors increasing",
            "a UDP socket whose drop counter increased",
        ],
        reasons: &[],
        checks: &[
            "ss -nump (skmem rb = buffer size, d = drops, Recv-Q)",
            "nstat -az UdpRcvbufErrors Udp6RcvbufErrors",
            "sysctl net.core.rmem_max net.core.rmem_default",
        ],
        remediation: &[
            "Raise net.core.rmem_max and net.core.rmem_default (`sysctl -w net.core.rmem_max=26214400 net.core.rmem_default=26214400`) and restart the program; if the buffer does not grow, the program sets SO_RCVBUF with setsockopt: raise that value. Make the application read faster (more threads/sockets with SO_REUSEPORT, batching with recvmmsg).",
        ],
        verify: &["ss -nump (rb shows the new size, d stops increasing)", "nstat -az UdpRcvbufErrors"],
    },
    CauseInfo {
        id: CauseId::UdpSndbufFull,
        title: "UDP send buffer full",
        explanation: "The UDP socket's send buffer (SO_SNDBUF, default net.core.wmem_default, capped by net.core.wmem_max) was full, so sendmsg failed (ENOBUFS/EAGAIN) and the datagram was never sent. No skb is freed, so only the Udp SndbufErrors counter shows it.",
        signals: &["Udp.SndbufErrors / Udp6.SndbufErrors increasing"],
        reasons: &[],
        checks: &[
            "ss -nump (skmem tb = send buffer, Send-Q)",
            "nstat -az UdpSndbufErrors Udp6SndbufErrors",
            "sysctl net.core.wmem_max net.core.wmem_default",
        ],
        remediation: &[
            "Raise net.core.wmem_max and net.core.wmem_default and restart the program; if the buffer does not grow, the program sets SO_SNDBUF with setsockopt: raise that value. Also check that the egress qdisc/device is not the bottleneck (tc -s qdisc).",
        ],
        verify: &["ss -nump (tb shows the new size)", "nstat -az UdpSndbufErrors (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::TcpAcceptQueueFull,
        title: "TCP accept queue full (listen backlog overflow)",
        explanation: "Completed connections wait in the listener's accept queue until the application calls accept(). Its length is min(listen() backlog, net.core.somaxconn). When it is full, the kernel drops the incoming SYN or final ACK (ListenOverflows, ListenDrops) and clients see retransmitted SYNs and connection delays. On recent kernels these SYNs are freed with consume_skb, so only the counters show them.",
        signals: &[
            "drop reason TCP_LISTEN_OVERFLOW",
            "TcpExt.ListenOverflows / ListenDrops increasing",
            "a listener whose Recv-Q reached its Send-Q (backlog)",
        ],
        reasons: &["TCP_LISTEN_OVERFLOW"],
        checks: &[
            "ss -ltn (Recv-Q = queued connections, Send-Q = backlog)",
            "nstat -az TcpExtListenOverflows TcpExtListenDrops",
            "sysctl net.core.somaxconn",
        ],
        remediation: &[
            "Raise the backlog the application passes to listen() and net.core.somaxconn (`sysctl -w net.core.somaxconn=4096`), then restart the listener; make the application accept() faster (more acceptor threads).",
        ],
        verify: &["ss -ltn (Send-Q shows the new backlog)", "nstat -az TcpExtListenOverflows (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::TcpSynQueueFull,
        title: "TCP SYN (request) queue full",
        explanation: "Half-open connections (SYN received, SYN-ACK sent) wait in the listener's SYN queue, bounded by net.ipv4.tcp_max_syn_backlog and the listen backlog. When it is full the kernel sends SYN cookies (tcp_syncookies=1) or drops the SYN (TCPReqQFullDrop): a SYN flood or many slow clients.",
        signals: &["TcpExt.TCPReqQFullDrop / TCPReqQFullDoCookies increasing", "TcpExt.SyncookiesSent increasing"],
        reasons: &[],
        checks: &[
            "nstat -az TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies TcpExtSyncookiesSent",
            "ss -n state syn-recv | wc -l",
            "sysctl net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_syncookies",
        ],
        remediation: &[
            "Raise net.ipv4.tcp_max_syn_backlog and the listen() backlog/somaxconn, keep net.ipv4.tcp_syncookies=1, and if it is a SYN flood filter it upstream.",
        ],
        verify: &["nstat -az TcpExtTCPReqQFullDrop (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::TcpBacklogOverflow,
        title: "TCP socket backlog overflow (socket locked by the application)",
        explanation: "When a segment arrives while the application holds the socket lock, it goes to the socket backlog; if the backlog exceeds the receive+send buffer budget, the segment is dropped (TCPBacklogDrop). The application holds the socket too long or the buffers (SO_RCVBUF, tcp_rmem) are too small.",
        signals: &["drop reason SOCKET_BACKLOG", "TcpExt.TCPBacklogDrop increasing"],
        reasons: &["SOCKET_BACKLOG"],
        checks: &[
            "nstat -az TcpExtTCPBacklogDrop",
            "ss -tmi (skmem, rcv_space)",
            "sysctl net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.ipv4.tcp_mem",
        ],
        remediation: &[
            "If the program sets SO_RCVBUF/SO_SNDBUF with setsockopt, use a larger value or drop the setting (limited by net.core.rmem_max/wmem_max); otherwise raise net.ipv4.tcp_rmem, tcp_wmem and tcp_mem, and restart the program.",
        ],
        verify: &["nstat -az TcpExtTCPBacklogDrop (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::SocketMemoryPressure,
        title: "Socket memory limits (receive queue / protocol memory)",
        explanation: "The socket's receive memory or the protocol-wide memory limit (tcp_mem, udp_mem) was exceeded, so data was dropped or queues were pruned (TCPRcvQDrop, RcvPruned, OfoPruned, PROTO_MEM). Slow readers with large windows, or too many sockets holding data.",
        signals: &[
            "drop reasons PROTO_MEM, TCP_OFO_QUEUE_PRUNE, SOCKET_RCVBUFF on TCP",
            "TcpExt.TCPRcvQDrop, TCPOFODrop, RcvPruned, OfoPruned, TCPMemoryPressures, Udp.MemErrors increasing",
        ],
        reasons: &["PROTO_MEM", "TCP_OFO_QUEUE_PRUNE"],
        checks: &[
            "nstat -az TcpExtTCPRcvQDrop TcpExtTCPOFODrop TcpExtRcvPruned TcpExtOfoPruned TcpExtTCPMemoryPressures UdpMemErrors",
            "cat /proc/net/sockstat (mem vs tcp_mem)",
            "sysctl net.ipv4.tcp_mem net.ipv4.udp_mem net.ipv4.tcp_rmem",
        ],
        remediation: &[
            "Raise net.ipv4.tcp_rmem/tcp_mem (TCP) or net.ipv4.udp_mem (UDP) and net.core.rmem_max; make the application read faster; avoid tiny SO_RCVBUF settings.",
        ],
        verify: &["nstat -az TcpExtTCPRcvQDrop TcpExtTCPOFODrop (stop increasing)", "cat /proc/net/sockstat"],
    },
    CauseInfo {
        id: CauseId::SoftnetBacklogFull,
        title: "Per-CPU input backlog full (netdev_max_backlog)",
        explanation: "Received packets are queued on a per-CPU backlog before the protocol stack runs (always for RPS, veth, loopback and non-NAPI paths). When that queue exceeds net.core.netdev_max_backlog the packet is dropped and the second column of /proc/net/softnet_stat increases. One CPU doing all the receive work makes it worse.",
        signals: &["drop reason CPU_BACKLOG", "softnet_stat dropped column (2nd) increasing"],
        reasons: &["CPU_BACKLOG"],
        checks: &[
            "cat /proc/net/softnet_stat (2nd column per CPU)",
            "sysctl net.core.netdev_max_backlog",
            "cat /sys/class/net/DEV/queues/rx-*/rps_cpus",
        ],
        remediation: &[
            "If RPS is enabled, raise net.core.netdev_max_backlog (`sysctl -w net.core.netdev_max_backlog=16384`); if not, enable RPS to spread the soft interrupt load (`echo f > /sys/class/net/DEV/queues/rx-0/rps_cpus`) and check whether the application makes the soft interrupt load uneven.",
        ],
        verify: &["watch -d cat /proc/net/softnet_stat (2nd column stops increasing)"],
    },
    CauseInfo {
        id: CauseId::SoftirqBudgetExhausted,
        title: "Receive softirq out of budget (time_squeeze)",
        explanation: "net_rx_action stopped with packets still pending because it used up net.core.netdev_budget packets or netdev_budget_usecs of time (third column of /proc/net/softnet_stat, time_squeeze). Sustained squeezes delay receive processing and lead to NIC ring or backlog drops, especially when one CPU handles most interrupts.",
        signals: &["softnet_stat time_squeeze (3rd column) increasing", "uneven per-CPU processed counts"],
        reasons: &[],
        checks: &[
            "cat /proc/net/softnet_stat (3rd column)",
            "sysctl net.core.netdev_budget net.core.netdev_budget_usecs",
            "mpstat -P ALL 1 (%soft per CPU); cat /proc/interrupts",
        ],
        remediation: &[
            "Raise net.core.netdev_budget (e.g. 600) and netdev_budget_usecs (e.g. 4000); spread interrupts and softirq work across CPUs (RSS queues with `ethtool -L`, irqbalance/IRQ affinity, RPS).",
        ],
        verify: &["cat /proc/net/softnet_stat (3rd column grows slower)"],
    },
    CauseInfo {
        id: CauseId::NicRingFull,
        title: "NIC receive ring full",
        explanation: "The NIC DMA-copies frames into a ring of receive descriptors that the driver refills from its softirq. When the ring is full (the host does not drain it fast enough, or the ring is small), the NIC drops frames: rx_missed_errors, rx_dropped or driver-specific no-buffer counters increase. No skb exists yet, so no drop event is traced.",
        signals: &[
            "device rx_missed_errors increasing",
            "ethtool -S ring/no-buffer drop counters increasing",
            "drop reason FULL_RING",
        ],
        reasons: &["FULL_RING"],
        checks: &[
            "ip -s -s link show DEV; netstat -i; sar -n EDEV 1",
            "ethtool -S DEV | grep -iE 'drop|miss|no_buf'",
            "ethtool -g DEV (current vs maximum ring size)",
        ],
        remediation: &[
            "Enlarge the RX ring up to its maximum (`ethtool -G DEV rx MAX`), spread the load over more queues/CPUs (`ethtool -L DEV combined N`, IRQ affinity), and check interrupt coalescing (`ethtool -c DEV`).",
        ],
        verify: &["ethtool -g DEV", "ip -s -s link show DEV (missed/dropped stop increasing)"],
    },
    CauseInfo {
        id: CauseId::NicFifoOverrun,
        title: "NIC FIFO overrun",
        explanation: "Frames are first stored in the NIC's on-chip FIFO before DMA to the ring; when the FIFO overflows (the bus or host cannot keep up, or the ring is full for long) frames are lost: rx_fifo_errors / rx_over_errors increase.",
        signals: &["device rx_fifo_errors / rx_over_errors increasing"],
        reasons: &[],
        checks: &[
            "ip -s -s link show DEV; ifconfig DEV (overruns); sar -n EDEV 1",
            "ethtool -S DEV | grep -iE 'fifo|over'",
        ],
        remediation: &[
            "Drain faster: larger RX ring (`ethtool -G`), more queues and CPUs for interrupts, flow control (`ethtool -A DEV rx on`); check the NIC's PCIe slot/bandwidth and driver/firmware.",
        ],
        verify: &["ip -s -s link show DEV (fifo/overrun counters stop increasing)"],
    },
    CauseInfo {
        id: CauseId::ChecksumError,
        title: "Checksum or CRC errors (corrupted packets)",
        explanation: "Packets arrived corrupted: the Ethernet CRC (rx_crc_errors), the IP header checksum or the TCP/UDP/ICMP checksum did not match, so the receiver discarded them. Causes are faulty cables, optics, NICs or switches, packets modified in transit, or a sender computing checksums wrongly (e.g. broken checksum offload).",
        signals: &[
            "drop reasons TCP_CSUM, UDP_CSUM, IP_CSUM, ICMP_CSUM, SKB_CSUM",
            "InCsumErrors counters (Udp, Tcp, Icmp, IpExt) increasing",
            "device rx_crc_errors / rx_frame_errors increasing",
        ],
        reasons: &["TCP_CSUM", "UDP_CSUM", "IP_CSUM", "ICMP_CSUM", "SKB_CSUM"],
        checks: &[
            "nstat -az | grep -i CsumErrors",
            "ethtool -S DEV | grep -iE 'crc|csum|frame'",
            "ethtool -k DEV | grep checksum (offload settings on the sender)",
        ],
        remediation: &[
            "Check and replace faulty hardware (cable, transceiver, NIC, switch port) when CRC errors grow.",
            "Only the checksums of packets from SRC fail: the sender or a middlebox on the way corrupts them; update or patch its software, or turn off its broken checksum offload (`ethtool -K <its device> tx off`, run on the sender).",
        ],
        verify: &["nstat -az | grep CsumErrors (stop increasing)", "ethtool -S DEV | grep crc"],
    },
    CauseInfo {
        id: CauseId::QdiscDrop,
        title: "Egress queue (qdisc) drop",
        explanation: "The traffic-control queue of the outgoing interface was full or over its limit (drop-tail, a shaping rate like tbf/htb, fq flow limits, AQM), so the packet was dropped before reaching the driver. The queue length is txqueuelen or the qdisc's own limit.",
        signals: &["drop reasons QDISC_*, CAKE_FLOOD, FQ_*", "tc -s qdisc dropped/overlimits increasing"],
        reasons: &["QDISC_*", "CAKE_FLOOD", "FQ_*", "DUALPI2_*"],
        checks: &["tc -s qdisc show dev DEV (dropped, overlimits, backlog)", "ip link show DEV (qlen = txqueuelen)"],
        remediation: &[
            "Raise the queue limit (`ip link set DEV txqueuelen 10000`, or the qdisc's limit with `tc qdisc change`), raise or remove the shaping rate if one is configured, or send less/pace the sender.",
        ],
        verify: &["tc -s qdisc show dev DEV (dropped stops increasing)"],
    },
    CauseInfo {
        id: CauseId::Routing,
        title: "No route, or an unreachable/blackhole route",
        explanation: "The kernel found no route for the packet (IP_INNOROUTES/IP_OUTNOROUTES), the destination address is invalid for this host (IP_INADDRERRORS), or the route is of type blackhole/unreachable/prohibit. Misconfigured routing tables, missing default routes or policy rules.",
        signals: &[
            "drop reasons IP_INNOROUTES, IP_OUTNOROUTES, IP_INADDRERRORS, IP_INVALID_SOURCE, IP_INVALID_DEST, IP_LOCALNET, IP_LOCAL_SOURCE",
            "IpExt.InNoRoutes, Ip.OutNoRoutes, Ip.InAddrErrors (and Ip6) increasing",
            "blackhole/unreachable/prohibit routes",
        ],
        reasons: &[
            "IP_INNOROUTES",
            "IP_OUTNOROUTES",
            "IP_INADDRERRORS",
            "IP_INVALID_SOURCE",
            "IP_INVALID_DEST",
            "IP_LOCALNET",
            "IP_LOCAL_SOURCE",
            "IPV6DISABLED",
        ],
        checks: &[
            "ip route get DST; ip route show table all; ip rule show",
            "route -n",
            "nstat -az IpExtInNoRoutes IpOutNoRoutes IpInAddrErrors Ip6InNoRoutes",
        ],
        remediation: &[
            "Correct the routing table: add the missing route or default gateway (`ip route add DST via GW`), remove unintended blackhole/unreachable routes, fix policy rules; make sure addresses are unique on the network.",
        ],
        verify: &[
            "ip route get DST (shows a usable route)",
            "nstat -az IpOutNoRoutes IpExtInNoRoutes (stop increasing)",
        ],
    },
    CauseInfo {
        id: CauseId::NeighborFailure,
        title: "Neighbor (ARP/NDP) resolution failed",
        explanation: "The next hop's link-layer address could not be resolved (NEIGH_FAILED), the queue of packets waiting for resolution overflowed (NEIGH_QUEUEFULL), or the neighbor entry was dead or could not be created (table full, gc_thresh). The next hop is down, on another segment, or the neighbor table is too small.",
        signals: &[
            "drop reasons NEIGH_FAILED, NEIGH_QUEUEFULL, NEIGH_DEAD, NEIGH_CREATEFAIL",
            "arp_cache/ndisc_cache unresolved_discards or table_fulls increasing",
            "FAILED/INCOMPLETE neighbor entries",
        ],
        reasons: &["NEIGH_*"],
        checks: &[
            "ip neigh show (FAILED/INCOMPLETE entries)",
            "cat /proc/net/stat/arp_cache (unresolved_discards, table_fulls)",
            "arping -I DEV NEXTHOP",
        ],
        remediation: &[
            "Make sure the next hop is up and on the same link (check addressing and VLANs); if table_fulls increases, raise net.ipv4.neigh.default.gc_thresh1/2/3; if the unresolved queue overflows, raise net.ipv4.neigh.DEV.unres_qlen_bytes.",
        ],
        verify: &["ip neigh show NEXTHOP (REACHABLE)", "cat /proc/net/stat/arp_cache"],
    },
    CauseInfo {
        id: CauseId::MtuFragmentation,
        title: "MTU and fragmentation problems",
        explanation: "The packet was larger than the path or device MTU and could not be fragmented (DF set: PKT_TOO_BIG, FragFails), or reassembly failed (fragments lost, timed out, duplicated or out of range). Often Path MTU Discovery is broken because ICMP \"fragmentation needed\" is blocked, or MTUs differ on a tunnel/overlay.",
        signals: &[
            "drop reasons PKT_TOO_BIG, FRAG_*, DUP_FRAG, IPV6_NDISC_FRAG",
            "Ip.FragFails, Ip.ReasmFails, Ip6.FragFails, Ip6.ReasmFails, Ip6.InTooBigErrors increasing",
        ],
        reasons: &["PKT_TOO_BIG", "FRAG_*", "DUP_FRAG", "IPV6_NDISC_FRAG"],
        checks: &[
            "ip link show (mtu of each device on the path)",
            "tracepath DST",
            "nstat -az IpFragFails IpReasmFails Ip6FragFails Ip6ReasmFails",
        ],
        remediation: &[
            "Align MTUs along the path (`ip link set DEV mtu N`, account for tunnel overhead), allow ICMP fragmentation-needed/packet-too-big through firewalls so PMTUD works, or clamp TCP MSS (`iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`).",
        ],
        verify: &["tracepath DST (pmtu is consistent)", "nstat -az IpFragFails IpReasmFails (stop increasing)"],
    },
    CauseInfo {
        id: CauseId::TcpProtocol,
        title: "TCP protocol-level drops (window, sequence, PAWS, out-of-order)",
        explanation: "TCP discarded segments that did not fit the connection's state: outside the receive window, old or duplicate data, zero window, PAWS timestamp checks, invalid sequence or ACK numbers, or out-of-order queue limits. A few are normal (retransmitted duplicates); many indicate reordering, middleboxes rewriting sequence numbers or timestamps, or an overloaded receiver.",
        signals: &[
            "drop reasons TCP_* (other than listen overflow / OFO prune; window drops on connections that ran out of receive memory are socket-memory-pressure)",
            "TcpExt.TCPZeroWindowDrop, PAWSEstab, BeyondWindow increasing",
        ],
        reasons: &["TCP_*", "TCP_DROP"],
        checks: &[
            "nstat -az | grep -E 'TcpExt(TCPZeroWindowDrop|PAWSEstab|BeyondWindow)'",
            "ss -tin (rcv_space, rwnd, reordering)",
            "tcpdump -i DEV -nn port PORT (sequence numbers, window, retransmissions)",
        ],
        remediation: &[
            "Find what disturbs the stream: make the receiver read faster (zero window), enlarge tcp_rmem for high BDP, look for middleboxes rewriting sequence numbers or timestamps (PAWS; try net.ipv4.tcp_timestamps only as a test), reduce reordering in the path.",
        ],
        verify: &["nstat -az TcpExtBeyondWindow TcpExtTCPZeroWindowDrop TcpExtPAWSEstab (stop increasing)"],
    },
    CauseInfo {
        id: CauseId::BpfOrTcProgram,
        title: "Dropped by an XDP, tc or cgroup BPF program (or a socket filter)",
        explanation: "A BPF program attached to the device (XDP, tc ingress/egress), to a cgroup (egress), or to the socket (SO_ATTACH_FILTER) returned a drop verdict; also tc filter actions. Typical with CNI plugins, DDoS filters, load balancers and observability agents.",
        signals: &[
            "drop reasons XDP, TC_INGRESS, TC_EGRESS, BPF_CGROUP_EGRESS, SOCKET_FILTER, TC_*, TAP_FILTER",
            "XDP program attached to a device",
        ],
        reasons: &[
            "XDP",
            // pktloss's label of veth_xdp_rcv_skb's reason-less frees (an XDP_DROP verdict).
            "XDP_DROP",
            "TC_INGRESS",
            "TC_EGRESS",
            "BPF_CGROUP_EGRESS",
            "SOCKET_FILTER",
            "TC_COOKIE_ERROR",
            "TC_CHAIN_NOTFOUND",
            "TC_RECLASSIFY_LOOP",
            "TAP_FILTER",
            "TAP_TXFILTER",
        ],
        checks: &[
            "bpftool net show; bpftool prog show",
            "tc filter show dev DEV ingress; tc filter show dev DEV egress",
            "ip link show DEV (xdp attached?)",
            "bpftool cgroup tree",
        ],
        remediation: &[
            "Identify the program (bpftool net show / cgroup tree) and its owner (CNI, firewall agent); fix its policy or detach it (`ip link set DEV xdp off`, `tc filter del dev DEV ingress`).",
        ],
        verify: &["bpftool net show", "tc -s filter show dev DEV ingress"],
    },
    CauseInfo {
        id: CauseId::MemoryPressure,
        title: "Kernel memory allocation failure",
        explanation: "The kernel could not allocate memory for the packet (NOMEM) or dropped it because it arrived on an emergency (pfmemalloc) reserve page destined to a socket not allowed to use it; NIC drivers count failed RX buffer allocations. The system is short of free or atomic memory.",
        signals: &[
            "drop reasons NOMEM, PFMEMALLOC",
            "TcpExt.PFMemallocDrop increasing",
            "driver allocation-failure counters (ethtool -S ...alloc...fail...)",
        ],
        reasons: &["NOMEM", "PFMEMALLOC"],
        checks: &[
            "free -m; cat /proc/meminfo; cat /proc/buddyinfo",
            "dmesg | grep -iE 'page allocation failure|oom'",
            "ethtool -S DEV | grep -i alloc",
        ],
        remediation: &[
            "Free memory or add RAM; raise vm.min_free_kbytes so atomic allocations in the receive path succeed; find the process or cache exhausting memory.",
        ],
        verify: &["grep -E 'MemFree|MemAvailable' /proc/meminfo", "ethtool -S DEV | grep -i alloc (stops increasing)"],
    },
    CauseInfo {
        id: CauseId::InterfaceDown,
        title: "Interface down or link flapping",
        explanation: "The device was not ready to send (DEV_READY: administratively down, no carrier, or a veth whose peer is down), or the link went down and up during the capture (carrier changes). Packets queued to it are dropped until the link is back.",
        signals: &[
            "drop reason DEV_READY (BRIDGE_INGRESS_STP_STATE: a bridge port not forwarding)",
            "device carrier_changes increasing",
            "device not UP / no LOWER_UP",
        ],
        reasons: &["DEV_READY", "BRIDGE_INGRESS_STP_STATE"],
        checks: &[
            "ip -s link show DEV (state, carrier_changes)",
            "ethtool DEV (Link detected)",
            "dmesg | grep -i 'link is'",
        ],
        remediation: &[
            "Bring the interface (and a veth's peer) up (`ip link set DEV up`), and for flapping links check cable/transceiver, switch port and autonegotiation (`ethtool DEV`).",
        ],
        verify: &["ip link show DEV (state UP, LOWER_UP)", "ip -s link show DEV (carrier_changes stays constant)"],
    },
    CauseInfo {
        id: CauseId::ExternalLoss,
        title: "Loss outside this host (path, peer or cloud limits)",
        explanation: "TCP retransmitted segments but this host dropped nothing that explains it: the loss happened in the network path (congestion, link errors), on the peer, or at a provider limit such as the instance's bandwidth, packets-per-second or connection-count caps, security groups or NACLs.",
        signals: &["TCP retransmissions (events or Tcp.RetransSegs) without matching local drops"],
        reasons: &[],
        checks: &[
            "sar -n DEV 2 (rxpck/s, txpck/s, rxkB/s, txkB/s vs the instance type's limits)",
            "mtr -rwc 100 PEER; traceroute PEER",
            "ss -ti dst PEER (retrans, rtt)",
            "tcpdump -i DEV -nn host PEER (retransmissions, SYN without SYN-ACK)",
        ],
        remediation: &[
            "If the instance's bandwidth/pps/connection limits are reached, upgrade the instance or reduce traffic; otherwise check the path (mtr), security groups/NACLs, load balancer timeouts and the peer, and open a ticket with the provider with the mtr/tcpdump evidence.",
        ],
        verify: &["ss -ti dst PEER (retrans stops growing)", "nstat -az TcpRetransSegs"],
    },
    CauseInfo {
        id: CauseId::MalformedPacket,
        title: "Malformed or invalid packet",
        explanation: "The packet's headers were truncated, too short, inconsistent or not allowed (bad IPv4 header, bad IPv6 extension headers, an invalid neighbour discovery message, a bad link-layer header or source address, a segmentation or copy failure). The sender, a middlebox or a driver builds broken packets.",
        signals: &[
            "drop reasons PKT_TOO_SMALL, IP_INHDR, HDR_TRUNC, INVALID_PROTO, IPV6_BAD_EXTHDR, IPV6_NDISC_*, DEV_HDR, MAC_INVALID_SOURCE, SKB_GSO_SEG, SKB_BAD_GSO, SKB_UCOPY_FAULT",
            "Ip.InHdrErrors, Ip6.InHdrErrors, Ip.InTruncatedPkts increasing",
        ],
        reasons: &[
            "PKT_TOO_SMALL",
            "IP_INHDR",
            "HDR_TRUNC",
            "INVALID_PROTO",
            "IPV6_BAD_EXTHDR",
            "IPV6_TOO_MANY_EXTHDRS",
            "IPV6_NDISC_HOP_LIMIT",
            "IPV6_NDISC_BAD_CODE",
            "IPV6_NDISC_BAD_OPTIONS",
            "DEV_HDR",
            "MAC_INVALID_SOURCE",
            "SKB_GSO_SEG",
            "SKB_BAD_GSO",
            "SKB_UCOPY_FAULT",
            "SKB_RX_HEADROOM",
            "CAN*",
        ],
        checks: &[
            "nstat -az IpInHdrErrors Ip6InHdrErrors IpExtInTruncatedPkts",
            "tcpdump -i DEV -nn -v (header errors of the packets from SRC)",
        ],
        remediation: &[
            "Find the sender of the broken packets (SRC) and fix its software or offloads; a middlebox that rewrites headers may be the culprit.",
        ],
        verify: &["nstat -az IpInHdrErrors Ip6InHdrErrors (stop increasing)"],
    },
    CauseInfo {
        id: CauseId::TunnelOrIpsec,
        title: "Tunnel, overlay or IPsec drop",
        explanation: "A tunnel or overlay device could not deliver or send the packet (VXLAN header invalid or VNI unknown, no transmit target in the forwarding database, missing tunnel metadata, ECN decapsulation error, a tunnel looping back into itself), or an IPsec (xfrm) or PSP policy rejected it.",
        signals: &[
            "drop reasons VXLAN_*, NO_TX_TARGET, IP_TUNNEL_ECN, TUNNEL_TXINFO, RECURSION_LIMIT, XFRM_POLICY, PSP_*",
            "XfrmInNoPols, XfrmInTmplMismatch increasing (/proc/net/xfrm_stat)",
        ],
        reasons: &[
            "VXLAN_*",
            "NO_TX_TARGET",
            "IP_TUNNEL_ECN",
            "TUNNEL_TXINFO",
            "RECURSION_LIMIT",
            "XFRM_POLICY",
            "PSP_*",
        ],
        checks: &[
            "ip -d link show DEV (tunnel kind, VNI, remote)",
            "bridge fdb show dev DEV",
            "ip xfrm policy; cat /proc/net/xfrm_stat",
        ],
        remediation: &[
            "Fix the overlay's configuration (VNI, remote, forwarding database entries), break a route that sends the tunnel's own packets into it, or add the IPsec policy/state the traffic needs.",
        ],
        verify: &["cat /proc/net/xfrm_stat", "ip -s -d link show DEV"],
    },
    CauseInfo {
        id: CauseId::HardwareTrap,
        title: "Dropped in hardware (devlink trap)",
        explanation: "A device that offloads forwarding (a switch ASIC, a smart NIC: mlxsw, mlx5, netdevsim) dropped the packet itself and reported it to devlink through a drop trap: a blackhole route, a full egress buffer, an offloaded tc/ACL rule, a VLAN or STP filter, a malformed header. Such packets never reach the kernel's stack, so no kfree_skb sees them; devlink counts them per trap, and `devlink:devlink_trap_report` names the trap, its group and the input port. Exception traps (no route, TTL, MTU, neighbour) are not drops of the device: it hands those packets to the kernel, whose own drops of them are traced as usual.",
        signals: &[
            "devlink:devlink_trap_report reports of traps of type drop (device, trap, group, input port)",
            "devlink -s trap show: rx_packets of drop traps increasing",
        ],
        reasons: &[],
        checks: &[
            "devlink trap show (each trap's type, action and group)",
            "devlink -s trap show (per-trap packets and bytes)",
        ],
        remediation: &[
            "Fix what the trap names (devlink-trap.rst, Generic Packet Traps): the offloaded route, buffer/QoS, tc flower/ACL rule, VLAN/STP state or the sender of malformed packets; set the trap's action to trap (`devlink trap set DEV trap TRAP action trap`) to see the packets.",
        ],
        verify: &["devlink -s trap show (rx_packets of the drop traps stop increasing)"],
    },
    CauseInfo {
        id: CauseId::Unclassified,
        title: "Unclassified drop reason",
        explanation: "The kernel dropped packets for a reason pktloss does not map to a documented cause. The raw reason and the kernel function that dropped them are kept so the code path can be read.",
        signals: &["any drop reason not mapped above"],
        reasons: &[],
        checks: &[
            "pktloss --stacks (kernel stack of the drop)",
            "grep the reason in include/net/dropreason-core.h and the function in the kernel source",
        ],
        remediation: &[
            "Read the kernel function at the drop location and the reason's definition; report unknown frequent reasons to the pktloss maintainers.",
        ],
        verify: &["pktloss diagnose --duration 10s (the reason no longer appears)"],
    },
];

/// A family of devlink traps: what to look at when its traps drop.
pub(crate) struct TrapFamily {
    /// Short name, in the evidence.
    pub name: &'static str,
    /// The generic traps of the family with their type (devlink-trap.rst, "Generic Packet
    /// Traps").
    pub traps: &'static [(&'static str, TrapKind)],
    /// What to do; `DEV` is the devlink device, `PORT` the input port, `TRAP` the trap.
    pub advice: &'static str,
    /// A command that shows the configuration at fault (`PORT` as above), if there is one.
    pub check: Option<&'static str>,
}

/// The generic devlink traps by family, after devlink-trap.rst; control traps are left out
/// (they are not loss). A trap no family lists (a driver's own) is typed by devlink's dump.
pub(crate) const TRAP_FAMILIES: &[TrapFamily] = &[
    TrapFamily {
        name: "routing",
        traps: &[
            ("blackhole_route", TrapKind::Drop),
            ("blackhole_nexthop", TrapKind::Drop),
            ("non_routable_packet", TrapKind::Drop),
            ("ipv4_lpm_miss", TrapKind::Exception),
            ("ipv6_lpm_miss", TrapKind::Exception),
            ("reject_route", TrapKind::Exception),
            ("mc_reverse_path_forwarding", TrapKind::Exception),
        ],
        advice: "TRAP on DEV: the routing table the device offloads (the kernel's) sends these packets to a blackhole route or nexthop, a reject route, or has no route for them: find the route (`ip route get <destination>`), remove the unintended blackhole/unreachable/prohibit route or add the missing one.",
        check: Some("ip route show table all type blackhole; ip -6 route show table all; ip nexthop show"),
    },
    TrapFamily {
        name: "TTL",
        traps: &[("ttl_value_is_too_small", TrapKind::Exception)],
        advice: "TRAP on DEV: packets arrive with a TTL too small to route: a routing loop between routers (two next hops pointing at each other) or a sender with a small TTL; trace the path (`traceroute <destination>`, `mtr <destination>`) and break the loop.",
        check: Some("traceroute <destination>"),
    },
    TrapFamily {
        name: "buffers/QoS",
        traps: &[("tail_drop", TrapKind::Drop), ("early_drop", TrapKind::Drop)],
        advice: "TRAP on DEV: an egress queue of the device was full (tail_drop) or RED dropped early (early_drop): congestion; look at the shared buffer occupancy (`devlink sb occupancy snapshot DEV; devlink sb occupancy show DEV`) and the offloaded qdiscs (`tc -s qdisc show`), raise the buffer quota or the RED thresholds, or reduce the oversubscription (more egress bandwidth, paced senders).",
        check: Some("devlink sb occupancy show DEV"),
    },
    TrapFamily {
        name: "ACL/flow rule",
        traps: &[("ingress_flow_action_drop", TrapKind::Drop), ("egress_flow_action_drop", TrapKind::Drop)],
        advice: "TRAP on DEV: an offloaded tc flower (ACL) rule with action drop matched these packets: find the rule whose hardware counter grows (`tc -s filter show dev PORT ingress`, and `egress`) and remove or narrow it if the traffic is wanted.",
        check: Some("tc -s filter show dev PORT ingress"),
    },
    TrapFamily {
        name: "MTU",
        traps: &[("mtu_value_is_too_small", TrapKind::Exception)],
        advice: "TRAP on DEV: packets larger than the egress interface's MTU: align the MTUs along the path (`ip link show`), or clamp the TCP MSS; make sure ICMP \"fragmentation needed\" reaches the senders.",
        check: Some("ip link show"),
    },
    TrapFamily {
        name: "neighbour",
        traps: &[("unresolved_neigh", TrapKind::Exception)],
        advice: "TRAP on DEV: no neighbour entry for the next hop after routing: check that the next hop exists and answers ARP/ND (`ip neigh show`, FAILED or INCOMPLETE entries).",
        check: Some("ip neigh show"),
    },
    TrapFamily {
        name: "L2 forwarding",
        traps: &[
            ("source_mac_is_multicast", TrapKind::Drop),
            ("vlan_tag_mismatch", TrapKind::Drop),
            ("ingress_vlan_filter", TrapKind::Drop),
            ("ingress_spanning_tree_filter", TrapKind::Drop),
            ("port_list_is_empty", TrapKind::Drop),
            ("port_loopback_filter", TrapKind::Drop),
            ("dmac_filter", TrapKind::Drop),
        ],
        advice: "TRAP on DEV: the bridge the device offloads refused these frames: a VLAN the ingress port is not a member of or no PVID (`bridge vlan show`), a port not in STP forwarding state (`bridge link show`), no port to flood to, or a destination MAC not in the FDB (`bridge fdb show`); fix the bridge's VLAN, STP or FDB configuration.",
        check: Some("bridge vlan show; bridge link show"),
    },
    TrapFamily {
        name: "invalid or malformed packet",
        traps: &[
            ("non_ip", TrapKind::Drop),
            ("uc_dip_over_mc_dmac", TrapKind::Drop),
            ("dip_is_loopback_address", TrapKind::Drop),
            ("sip_is_mc", TrapKind::Drop),
            ("sip_is_loopback_address", TrapKind::Drop),
            ("ip_header_corrupted", TrapKind::Drop),
            ("ipv4_sip_is_limited_bc", TrapKind::Drop),
            ("ipv6_mc_dip_reserved_scope", TrapKind::Drop),
            ("ipv6_mc_dip_interface_local_scope", TrapKind::Drop),
            ("vlan_parsing", TrapKind::Drop),
            ("llc_snap_parsing", TrapKind::Drop),
            ("pppoe_ppp_parsing", TrapKind::Drop),
            ("mpls_parsing", TrapKind::Drop),
            ("arp_parsing", TrapKind::Drop),
            ("ip_1_parsing", TrapKind::Drop),
            ("ip_n_parsing", TrapKind::Drop),
            ("gre_parsing", TrapKind::Drop),
            ("udp_parsing", TrapKind::Drop),
            ("tcp_parsing", TrapKind::Drop),
            ("ipsec_parsing", TrapKind::Drop),
            ("sctp_parsing", TrapKind::Drop),
            ("dccp_parsing", TrapKind::Drop),
            ("gtp_parsing", TrapKind::Drop),
            ("esp_parsing", TrapKind::Drop),
        ],
        advice: "TRAP on DEV: packets with corrupted headers or addresses that must not be routed (loopback or multicast source, non-IP): find the sender behind input port PORT (set the trap's action to trap and capture them) and fix it, or a faulty link/cable corrupting frames.",
        check: None,
    },
    TrapFamily {
        name: "tunnel",
        traps: &[
            ("decap_error", TrapKind::Exception),
            ("overlay_smac_is_mc", TrapKind::Drop),
            ("vxlan_parsing", TrapKind::Drop),
        ],
        advice: "TRAP on DEV: encapsulated packets the device could not decapsulate (truncated, reserved VXLAN bits, a multicast overlay source MAC): check the tunnel's configuration and the remote end (`ip -d link show`).",
        check: Some("ip -d link show"),
    },
];

/// The family and type of a generic trap.
pub(crate) fn trap_family(trap: &str) -> Option<(&'static TrapFamily, TrapKind)> {
    TRAP_FAMILIES.iter().find_map(|f| f.traps.iter().find(|(t, _)| *t == trap).map(|(_, k)| (f, *k)))
}

/// The cause with this id.
pub(crate) fn info(id: CauseId) -> &'static CauseInfo {
    id.info()
}

/// Position of a cause in [`CAUSES`] (for stable tie-breaking).
pub(crate) fn order(id: CauseId) -> usize {
    id as usize
}

fn pattern_matches(pattern: &str, reason: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => reason.starts_with(prefix),
        None => pattern == reason,
    }
}

/// TCP drop reasons of data dropped for want of receive memory.
pub(crate) const MEMORY_REASONS: &[&str] = &["PROTO_MEM", "TCP_OFO_QUEUE_PRUNE", "SOCKET_RCVBUFF"];

/// The cause a drop reason maps to by name alone (exact matches before prefix matches), if any.
/// `SOCKET_RCVBUFF`, `NOT_SPECIFIED` and `TCP_DROP` need more context and return `None`.
pub(crate) fn cause_for_reason(reason: &str) -> Option<CauseId> {
    if matches!(reason, "SOCKET_RCVBUFF" | "NOT_SPECIFIED" | "TCP_DROP" | crate::decode::reasons::NO_REASON)
        || benign_for_reason(reason).is_some()
    {
        return None;
    }
    CAUSES
        .iter()
        .find(|c| c.reasons.iter().any(|p| !p.ends_with('*') && *p == reason))
        .or_else(|| CAUSES.iter().find(|c| c.reasons.iter().any(|p| pattern_matches(p, reason))))
        .map(|c| c.id)
}

/// The cause a drop location (`function+0xoff`) suggests, for reasons that say nothing.
pub(crate) fn cause_for_location(symbol: &str) -> Option<CauseId> {
    let func = crate::decode::symbols::function_of(symbol);
    LOCATION_HINTS.iter().find(|(p, _)| func.starts_with(p)).map(|(_, c)| *c)
}

/// How a drop reason is classified: a cause, benign traffic, or by its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReasonClass {
    Cause(CauseId),
    Benign(BenignId),
    /// Classified per drop: by protocol (`SOCKET_RCVBUFF`) or by location (reasons that say
    /// nothing); the text says how.
    ByContext(&'static str),
}

/// The class of every reason a kernel can give, or `None` for a reason pktloss does not know
/// (a kernel newer than this table: the test over the kernel's BTF fails on it).
pub(crate) fn classify_reason(reason: &str) -> Option<ReasonClass> {
    match reason {
        "SOCKET_RCVBUFF" => {
            return Some(ReasonClass::ByContext("by protocol: udp-rcvbuf-full (UDP), socket-memory-pressure (TCP)"));
        }
        "NOT_SPECIFIED" | crate::decode::reasons::NO_REASON => {
            return Some(ReasonClass::ByContext("by drop location (benign locations, then the location hints)"));
        }
        "TCP_DROP" => return Some(ReasonClass::ByContext("by drop location, else tcp-protocol")),
        _ => {}
    }
    if let Some(b) = benign_for_reason(reason) {
        return Some(ReasonClass::Benign(b));
    }
    cause_for_reason(reason).map(ReasonClass::Cause)
}
