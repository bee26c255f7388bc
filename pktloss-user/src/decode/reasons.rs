//! Decode step: drop-reason names from the running kernel's `enum skb_drop_reason`, with short
//! human descriptions for the common ones (the names themselves always come from BTF).
use std::collections::BTreeMap;

use pktloss_common::{REASON_NONE, REASON_TCP_DROP, REASON_XDP_DROP, XDP_DROP};

/// Name of the drops of a kernel without drop reasons (before 5.17; [`REASON_NONE`]).
pub(crate) const NO_REASON: &str = "UNKNOWN";

/// Reason value -> name table of one kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReasonTable {
    names: BTreeMap<u32, String>,
}

impl ReasonTable {
    /// Build from (value, name) pairs, e.g. [`crate::kernel::btf::KernelBtf::drop_reasons`].
    pub(crate) fn new(pairs: impl IntoIterator<Item = (u32, String)>) -> Self {
        Self { names: pairs.into_iter().collect() }
    }

    /// Name of a reason value; unknown values print as `REASON_<n>`.
    pub(crate) fn name(&self, code: u32) -> String {
        if code == REASON_TCP_DROP {
            return "TCP_DROP".to_owned();
        }
        if code == REASON_NONE {
            return NO_REASON.to_owned();
        }
        if code == REASON_XDP_DROP {
            return XDP_DROP.to_owned();
        }
        self.names.get(&code).cloned().unwrap_or_else(|| format!("REASON_{code}"))
    }

    /// Value of a reason name.
    pub(crate) fn code(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| n.as_str() == name).map(|(c, _)| *c)
    }

    /// All (value, name) pairs in value order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.names.iter().map(|(c, n)| (*c, n.as_str()))
    }
}

/// A short description of a reason, by name (stable across kernels, unlike values).
pub(crate) fn describe(name: &str) -> &'static str {
    match name {
        "NOT_SPECIFIED" => "dropped without a specific reason",
        NO_REASON => "this kernel gives no drop reasons (before 5.17): see the location",
        "NO_SOCKET" => "no socket listening on the destination port",
        "SOCKET_CLOSE" => "socket was closed",
        "SOCKET_FILTER" => "dropped by a socket filter (BPF/SO_ATTACH_FILTER)",
        "SOCKET_RCVBUFF" => "socket receive buffer full",
        "PKT_TOO_SMALL" => "packet shorter than its headers",
        "TCP_CSUM" => "bad TCP checksum",
        "UDP_CSUM" => "bad UDP checksum",
        "IP_CSUM" => "bad IPv4 header checksum",
        "ICMP_CSUM" => "bad ICMP checksum",
        "SKB_CSUM" => "bad checksum",
        "NETFILTER_DROP" => "dropped by a netfilter rule or policy (iptables/nftables)",
        "OTHERHOST" => "packet not for this host (L2 address mismatch)",
        "IP_INHDR" => "invalid IP header",
        "IP_RPFILTER" => "reverse-path filter (rp_filter) rejected the source",
        "UNICAST_IN_L2_MULTICAST" => "unicast IP in an L2 multicast/broadcast frame",
        "XFRM_POLICY" => "IPsec (xfrm) policy check failed",
        "IP_NOPROTO" => "no handler for the IP protocol",
        "PROTO_MEM" => "protocol memory limit reached (tcp_mem/udp_mem)",
        "SOCKET_BACKLOG" => "socket backlog full (socket owned by user)",
        "TCP_FLAGS" => "invalid TCP flags",
        "TCP_ZEROWINDOW" => "TCP receive window is zero",
        "TCP_OLD_DATA" => "TCP data already received (retransmission)",
        "TCP_OVERWINDOW" => "TCP data beyond the receive window",
        "TCP_OFOMERGE" => "TCP out-of-order data overlapped queued data",
        "TCP_OFO_DROP" => "TCP out-of-order data dropped (no memory or beyond window)",
        "TCP_OFO_QUEUE_PRUNE" => "TCP out-of-order queue pruned under memory pressure",
        "TCP_RFC7323_PAWS" => "TCP PAWS check failed (old timestamp)",
        "TCP_LISTEN_OVERFLOW" => "TCP accept queue of the listener full",
        "TCP_OLD_SEQUENCE" => "TCP sequence number older than expected",
        "TCP_INVALID_SEQUENCE" => "TCP sequence number not acceptable",
        "TCP_RESET" => "TCP reset received",
        "TCP_INVALID_SYN" => "unexpected TCP SYN",
        "TCP_CLOSE" => "TCP socket closed",
        "TCP_MD5NOTFOUND" | "TCP_MD5UNEXPECTED" | "TCP_MD5FAILURE" => "TCP MD5 signature check failed",
        "IP_OUTNOROUTES" => "no route for the outgoing packet",
        "IP_INNOROUTES" => "no route for the incoming packet",
        "IP_INADDRERRORS" => "invalid destination address for input",
        "BPF_CGROUP_EGRESS" => "dropped by a cgroup BPF egress program",
        "IPV6DISABLED" => "IPv6 is disabled on the device",
        "NEIGH_CREATEFAIL" => "could not create a neighbour entry",
        "NEIGH_FAILED" => "neighbour resolution (ARP/NDP) failed",
        "NEIGH_QUEUEFULL" => "neighbour resolution queue full",
        "NEIGH_DEAD" => "neighbour entry is dead",
        "TC_EGRESS" => "dropped by a tc egress filter/action",
        "TC_INGRESS" => "dropped by a tc ingress filter/action",
        "QDISC_DROP" => "dropped by the queueing discipline (queue full)",
        "QDISC_OVERLIMIT" => "queueing discipline over its limit",
        "QDISC_CONGESTED" => "queueing discipline congested (AQM)",
        "CPU_BACKLOG" => "per-CPU input backlog full (netdev_max_backlog)",
        "XDP" => "dropped by an XDP program",
        "UNHANDLED_PROTO" => "protocol not handled",
        "DEV_READY" => "device not ready (down or no carrier)",
        "DEV_HDR" => "invalid device header",
        "FULL_RING" => "device ring full",
        "NOMEM" => "out of memory",
        "PFMEMALLOC" => "packet from emergency memory reserves not allowed here",
        "HDR_TRUNC" => "truncated header",
        "PKT_TOO_BIG" => "packet larger than the MTU",
        "DUP_FRAG" => "duplicate IP fragment",
        "FRAG_REASM_TIMEOUT" => "IP fragment reassembly timeout",
        "FRAG_TOO_FAR" => "IP fragment too far ahead (ipfrag_max_dist)",
        "IP_LOCAL_SOURCE" => "source address is local (martian)",
        "IP_INVALID_SOURCE" => "invalid source address (martian)",
        "IP_INVALID_DEST" => "invalid destination address",
        "QUEUE_PURGE" => "queue purged (socket or device teardown)",
        "TCP_DROP" => "dropped by tcp_drop() (kernel without drop reasons)",
        "SECURITY_HOOK" => "dropped by an LSM hook",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        let t = ReasonTable::new([(2, "NOT_SPECIFIED".to_owned()), (3, "NO_SOCKET".to_owned())]);
        assert_eq!(t.name(3), "NO_SOCKET");
        assert_eq!(t.name(999), "REASON_999");
        assert_eq!(t.name(REASON_TCP_DROP), "TCP_DROP");
        assert_eq!(t.code("NO_SOCKET"), Some(3));
        assert_eq!(describe("NO_SOCKET"), "no socket listening on the destination port");
        assert_eq!(describe("SOMETHING_NEW"), "");
    }
}
