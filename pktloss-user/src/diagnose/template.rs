//! The taxonomy's generic lines (remediation, checks, verify) made concrete for one cause:
//! placeholders (`PORT`, `DEV`, `DST`, ...) filled from the flows of its drops, commands run in
//! the namespace they concern, annotations turned into shell comments. A line that cannot be
//! made concrete is left out: advice is concrete for the evidence at hand or absent.
use crate::model::FlowCount;

/// Placeholder words of the taxonomy's lines.
const PLACEHOLDERS: &[&str] = &["PORT", "12345", "DEV", "DST", "SRC", "PEER", "PROTO", "GW", "NEXTHOP", "N", "MAX"];

/// Tools whose view depends on the network namespace they run in.
const NETNS_TOOLS: &[&str] = &[
    "ss",
    "nstat",
    "nft",
    "iptables",
    "ip6tables",
    "ip",
    "tc",
    "conntrack",
    "ethtool",
    "arping",
    "tracepath",
    "tcpdump",
    "route",
    "netstat",
    "sysctl",
    "bpftool",
    "mtr",
    "traceroute",
];

/// What the placeholders of one cause stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fill {
    pub(super) port: Option<String>,
    pub(super) dev: Option<String>,
    pub(super) dst: Option<String>,
    pub(super) src: Option<String>,
    pub(super) proto: Option<String>,
    /// Shell prefix that runs a command in the namespace of the cause ("ip netns exec NAME "),
    /// empty for the host's.
    pub(super) in_ns: String,
}

impl Fill {
    /// From the largest flow of a cause's drops.
    pub(super) fn from_flow(f: Option<&FlowCount>, in_ns: String) -> Self {
        let known = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let Some(f) = f else { return Self { in_ns, ..Self::default() } };
        let ported = matches!(f.flow.proto.as_str(), "tcp" | "udp" | "sctp" | "udplite");
        Self {
            port: (ported && f.flow.dport != 0).then(|| f.flow.dport.to_string()),
            dev: known(&f.device),
            dst: known(&f.flow.dst),
            src: known(&f.flow.src),
            proto: (ported || f.flow.proto.starts_with("icmp")).then(|| f.flow.proto.clone()),
            in_ns,
        }
    }

    fn value(&self, word: &str) -> Option<&str> {
        match word {
            "PORT" | "12345" => self.port.as_deref(),
            "DEV" => self.dev.as_deref(),
            "DST" | "PEER" => self.dst.as_deref(),
            "SRC" => self.src.as_deref(),
            "PROTO" => self.proto.as_deref(),
            _ => None,
        }
    }

    /// `line` with its placeholders filled, or `None` when one is unknown. (`sar -n DEV` is
    /// sar's own word, not a placeholder.)
    pub(super) fn fill(&self, line: &str) -> Option<String> {
        if let Some((before, after)) = line.split_once("sar -n DEV") {
            return Some(format!("{}sar -n DEV{}", self.fill(before)?, self.fill(after)?));
        }
        let mut out = String::with_capacity(line.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| -> Option<()> {
            if PLACEHOLDERS.contains(&word.as_str()) {
                out.push_str(self.value(word)?);
            } else {
                out.push_str(word);
            }
            word.clear();
            Some(())
        };
        for c in line.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                flush(&mut word, &mut out)?;
                out.push(c);
            }
        }
        flush(&mut word, &mut out)?;
        Some(out)
    }

    /// A command line of the taxonomy made concrete: placeholders filled, each command run in
    /// the cause's namespace when its tool sees per-namespace state, a trailing `(note)` made
    /// a shell comment so the line pastes as is.
    pub(super) fn command(&self, line: &str) -> Option<String> {
        let line = self.fill(line)?;
        let (cmd, note) = match line.rfind(" (") {
            Some(i) if line.ends_with(')') => (&line[..i], Some(&line[i + 2..line.len() - 1])),
            _ => (line.as_str(), None),
        };
        let mut out: Vec<String> = Vec::new();
        for part in cmd.split("; ") {
            let part = part.trim();
            let tool = part.split_whitespace().next().unwrap_or_default();
            let per_ns = NETNS_TOOLS.contains(&tool)
                || (tool == "cat" && (part.contains("/proc/net/") || part.contains("/proc/sys/net/")));
            out.push(if per_ns { format!("{}{part}", self.in_ns) } else { part.to_owned() });
        }
        let mut s = out.join("; ");
        if let Some(note) = note {
            s.push_str("  # ");
            s.push_str(note);
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill() -> Fill {
        let f = FlowCount {
            flow: crate::model::Flow {
                proto: "udp".into(),
                src: "10.0.0.1".into(),
                dst: "10.0.0.2".into(),
                dport: 9911,
                ..crate::model::Flow::default()
            },
            device: "veth0".into(),
            ..FlowCount::default()
        };
        Fill::from_flow(Some(&f), "ip netns exec uxb ".into())
    }

    #[test]
    fn placeholders_are_filled_or_the_line_is_dropped() {
        let f = fill();
        assert_eq!(f.fill("tc -s qdisc show dev DEV").as_deref(), Some("tc -s qdisc show dev veth0"));
        assert_eq!(f.fill("net.ipv4.conf.DEV.rp_filter=2").as_deref(), Some("net.ipv4.conf.veth0.rp_filter=2"));
        assert_eq!(f.fill("ip route add DST via GW"), None);
        assert_eq!(f.fill("sysctl -w net.netfilter.nf_conntrack_max=N"), None);
        assert_eq!(f.fill("RPS and RSS on a NIC").as_deref(), Some("RPS and RSS on a NIC"));
        assert_eq!(f.fill("sar -n DEV 2 on DEV").as_deref(), Some("sar -n DEV 2 on veth0"));
    }

    #[test]
    fn commands_run_in_the_namespace_with_notes_as_comments() {
        let f = fill();
        assert_eq!(
            f.command("ss -ltnp 'sport = :PORT'; ss -lunp 'sport = :PORT'").as_deref(),
            Some("ip netns exec uxb ss -ltnp 'sport = :9911'; ip netns exec uxb ss -lunp 'sport = :9911'")
        );
        assert_eq!(
            f.command("nstat -az UdpNoPorts (stops increasing)").as_deref(),
            Some("ip netns exec uxb nstat -az UdpNoPorts  # stops increasing")
        );
        assert_eq!(f.command("dmesg | grep -i conntrack").as_deref(), Some("dmesg | grep -i conntrack"));
        assert_eq!(
            f.command("iptables -I INPUT -p PROTO -j LOG --log-prefix pktloss: (temporary)").as_deref(),
            Some("ip netns exec uxb iptables -I INPUT -p udp -j LOG --log-prefix pktloss:  # temporary")
        );
        let host = Fill { in_ns: String::new(), ..fill() };
        assert_eq!(host.command("nstat -az UdpNoPorts").as_deref(), Some("nstat -az UdpNoPorts"));
    }
}
