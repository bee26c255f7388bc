//! The `/` filter: parsing its terms, and whether a row of each panel matches them.
use super::data::{Data, DropRow};
use crate::{
    model::{FlowCount, Sample},
    tui::{CauseView, CounterRow},
};

/// One filter term; a filter is the AND of its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Term {
    /// `reason:X`: drop reason contains X (case-insensitive).
    Reason(String),
    /// `proto:X`: protocol is X.
    Proto(String),
    /// `port:N`: source or destination port is N.
    Port(u16),
    /// `host:A`: source or destination address is A (prefix when A ends in `.`, `:` or `*`).
    Host(String),
    /// `netns:N` or `netns:NAME`: the network namespace with inode N, or the name the TUI shows
    /// for it (`pod:shop/cart-7f9`, `podman:web`, `ns1`), or that name without its
    /// `RUNTIME:` or `pod:` prefix (`web`, `shop/cart-7f9`).
    Netns(NetnsSel),
    /// `dev:X`: device name (or ifindex) is X.
    Dev(String),
    /// A bare word: any field contains it.
    Word(String),
}

/// A namespace as the `netns:` term gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetnsSel {
    Inode(u32),
    Name(String),
}

impl NetnsSel {
    /// Whether the namespace `inode`, shown as `name` (empty: none), is this one.
    fn is(&self, inode: u32, name: &str) -> bool {
        match self {
            Self::Inode(n) => *n == inode,
            Self::Name(want) => {
                !name.is_empty()
                    && (name.eq_ignore_ascii_case(want)
                        || name.split_once(':').is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(want)))
            }
        }
    }
}

impl std::fmt::Display for NetnsSel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inode(n) => write!(f, "{n}"),
            Self::Name(s) => f.write_str(s),
        }
    }
}

/// A parsed `/` filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// What the user typed.
    pub text: String,
    pub terms: Vec<Term>,
}

/// The fields of a packet-like thing (flow or sample) that filters look at.
struct Pkt<'a> {
    proto: &'a str,
    src: &'a str,
    sport: u16,
    dst: &'a str,
    dport: u16,
    netns: u32,
    netns_name: &'a str,
    ifindex: u32,
    device: &'a str,
    process: &'a str,
    reason: &'a str,
    symbol: &'a str,
}

impl<'a> Pkt<'a> {
    fn flow(f: &'a FlowCount) -> Self {
        Pkt {
            proto: &f.flow.proto,
            src: &f.flow.src,
            sport: f.flow.sport,
            dst: &f.flow.dst,
            dport: f.flow.dport,
            netns: f.flow.netns.inode,
            netns_name: &f.netns_name,
            ifindex: f.ifindex,
            device: &f.device,
            process: &f.comm,
            reason: &f.reason,
            // Only on kernels without drop reasons, where flows are counted by location.
            symbol: &f.location,
        }
    }
    fn sample(s: &'a Sample, device: &'a str) -> Self {
        Pkt {
            proto: &s.flow.proto,
            src: &s.flow.src,
            sport: s.flow.sport,
            dst: &s.flow.dst,
            dport: s.flow.dport,
            netns: s.flow.netns.inode,
            netns_name: &s.netns_name,
            ifindex: s.ifindex,
            device,
            process: &s.comm,
            reason: &s.reason,
            symbol: &s.symbol,
        }
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn host_match(addr: &str, pattern: &str) -> bool {
    if addr.is_empty() {
        return false;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return addr.to_lowercase().starts_with(&prefix.to_lowercase());
    }
    if pattern.ends_with('.') || pattern.ends_with(':') {
        return addr.to_lowercase().starts_with(&pattern.to_lowercase());
    }
    addr.eq_ignore_ascii_case(pattern)
}

const FILTER_KEYS: &str = "reason, proto, port, host, netns, dev";

/// The filter syntax as the help overlay and `pktloss top --help` show it.
pub(crate) const FILTER_HELP: &[&str] = &[
    "reason:NO_SOCKET  proto:udp  port:53  host:10.0.0.1  host:10.0.0.",
    "netns:4026531840  netns:NAME  dev:veth0  or a bare word. All terms",
    "hold together for one dropped packet the row counts or explains.",
];

impl Term {
    /// The term's value as a bare word would be typed.
    fn word(&self) -> String {
        match self {
            Term::Reason(x) | Term::Proto(x) | Term::Dev(x) | Term::Word(x) => x.clone(),
            Term::Host(h) => h.trim_end_matches('*').to_string(),
            Term::Port(n) => n.to_string(),
            Term::Netns(n) => n.to_string(),
        }
    }

    fn matches_pkt(&self, p: &Pkt<'_>) -> bool {
        match self {
            Term::Reason(r) => contains_ci(p.reason, r),
            Term::Proto(x) => p.proto.eq_ignore_ascii_case(x),
            Term::Port(n) => p.sport == *n || p.dport == *n,
            Term::Host(h) => host_match(p.src, h) || host_match(p.dst, h),
            Term::Netns(n) => n.is(p.netns, p.netns_name),
            Term::Dev(d) => p.device.eq_ignore_ascii_case(d) || p.ifindex.to_string() == *d,
            Term::Word(w) => {
                [p.reason, p.symbol, p.proto, p.src, p.dst, p.device, p.process].iter().any(|f| contains_ci(f, w))
                    || [u32::from(p.sport), u32::from(p.dport), p.netns, p.ifindex].iter().any(|n| n.to_string() == *w)
            }
        }
    }
}

impl Filter {
    /// Parse space-separated terms: `reason:X proto:X port:N host:A netns:N dev:X word`.
    pub(crate) fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for token in text.split_whitespace() {
            let term = match token.split_once(':') {
                Some((key, value)) if is_filter_key(key) => {
                    if value.is_empty() {
                        return Err(format!("'{key}:' needs a value"));
                    }
                    match key.to_ascii_lowercase().as_str() {
                        "reason" => Term::Reason(value.strip_prefix("SKB_DROP_REASON_").unwrap_or(value).to_string()),
                        "proto" => Term::Proto(value.to_string()),
                        "port" => Term::Port(value.parse().map_err(|_| format!("bad port '{value}' (0-65535)"))?),
                        "host" => Term::Host(value.to_string()),
                        "netns" => Term::Netns(match value.parse() {
                            Ok(n) => NetnsSel::Inode(n),
                            Err(_) if value.bytes().all(|b| b.is_ascii_digit()) => {
                                return Err(format!("bad netns '{value}' (an inode number or a name)"));
                            }
                            Err(_) => NetnsSel::Name(value.to_string()),
                        }),
                        _ => Term::Dev(value.to_string()),
                    }
                }
                // `fe80::1` is an address, `foo:bar` a typo.
                Some((key, _))
                    if !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_alphabetic())
                        && !key.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    return Err(format!("unknown filter '{key}:' (use {FILTER_KEYS})"));
                }
                _ => Term::Word(token.to_string()),
            };
            terms.push(term);
        }
        Ok(Filter { text: terms_text(text), terms })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A flow matches when every term does.
    pub(crate) fn matches_flow(&self, f: &FlowCount) -> bool {
        let p = Pkt::flow(f);
        self.terms.iter().all(|t| t.matches_pkt(&p))
    }

    /// A drops row matches when its reason/location satisfy the reason terms (and the words
    /// they contain), and one related packet satisfies all the remaining terms together. The
    /// related packets are the row's samples, and the flows of its reason (and location, where
    /// flows have one) whose protocol and netns one of those samples shows.
    pub(super) fn matches_drop(&self, row: &DropRow, data: &Data) -> bool {
        let mut rest: Vec<&Term> = Vec::new();
        for t in &self.terms {
            match t {
                Term::Reason(r) => {
                    if !contains_ci(&row.reason, r) {
                        return false;
                    }
                }
                Term::Word(w) if contains_ci(&row.reason, w) || contains_ci(&row.symbol, w) => {}
                t => rest.push(t),
            }
        }
        if rest.is_empty() {
            return true;
        }
        let samples: Vec<&Sample> =
            data.samples().filter(|s| s.reason == row.reason.name && s.symbol == row.symbol).collect();
        // The flows of the row's reason, from a protocol and netns the row's samples show (any,
        // when it has none).
        let flows: Vec<&FlowCount> = data
            .update
            .summary
            .flows
            .iter()
            .filter(|f| f.is(&row.reason, Some(&row.symbol)))
            .filter(|f| {
                samples.is_empty()
                    || samples.iter().any(|s| s.flow.proto == f.flow.proto && s.flow.netns.inode == f.flow.netns.inode)
            })
            .collect();
        any_packet(&rest, data, &samples, &flows)
    }

    /// A cause matches when it explains drops that match: the reason terms hold for its id or
    /// title, or for one of its reasons (then for the packets too), words are in what it says
    /// (id, title, reasons, evidence), and one packet it explains satisfies all the remaining
    /// terms together: a sampled drop or a flow with one of its reasons. So `port:53` keeps
    /// the causes of the port-53 drops, as the drops and flows panels do. A cause that explains
    /// no traced packet (one selected by counters alone) is matched on what it says: each
    /// remaining term as a bare word, a netns also against its namespaces.
    pub(super) fn matches_cause(&self, c: &CauseView, data: &Data) -> bool {
        let mut rest: Vec<&Term> = Vec::new();
        for t in &self.terms {
            match t {
                Term::Reason(r) if contains_ci(c.id.as_str(), r) || contains_ci(&c.title, r) => {}
                Term::Reason(r) if c.reasons.iter().any(|x| contains_ci(x, r)) => rest.push(t),
                Term::Reason(_) => return false,
                Term::Word(w) if cause_says(c, w) => {}
                t => rest.push(t),
            }
        }
        if rest.is_empty() {
            return true;
        }
        let explains = |reason: &str| c.reasons.iter().any(|r| r == reason);
        let samples: Vec<&Sample> = data.samples().filter(|s| explains(&s.reason)).collect();
        let flows: Vec<&FlowCount> = data.update.summary.flows.iter().filter(|f| explains(&f.reason)).collect();
        if samples.is_empty() && flows.is_empty() {
            return rest.iter().all(|t| match t {
                // Only here when one of its reasons matched.
                Term::Reason(_) => true,
                Term::Netns(n) => c.netns.iter().any(|i| n.is(*i, "")) || cause_says(c, &n.to_string()),
                t => cause_says(c, &t.word()),
            });
        }
        any_packet(&rest, data, &samples, &flows)
    }

    /// Counters look at dev, netns and words (against scope and counter name). They count
    /// packets of no known flow or reason: a term about packets (reason, proto, port, host)
    /// hides them, as the same value typed as a bare word does.
    pub(super) fn matches_counter(&self, c: &CounterRow) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Dev(d) => contains_ci(&c.scope, d),
            Term::Netns(n) => contains_ci(&c.scope, &n.to_string()),
            Term::Word(w) => contains_ci(&c.scope, w) || contains_ci(&c.counter, w),
            Term::Reason(_) | Term::Proto(_) | Term::Port(_) | Term::Host(_) => false,
        })
    }
}

/// Whether one of the packets, sampled drops or flows, satisfies every term together.
fn any_packet(terms: &[&Term], data: &Data, samples: &[&Sample], flows: &[&FlowCount]) -> bool {
    samples.iter().any(|s| {
        let device = data.device_name(s.flow.netns.inode, s.ifindex).unwrap_or_default();
        terms.iter().all(|t| t.matches_pkt(&Pkt::sample(s, &device)))
    }) || flows.iter().any(|f| terms.iter().all(|t| t.matches_pkt(&Pkt::flow(f))))
}

/// Whether a cause's own text (id, title, reasons, evidence) contains `word`.
fn cause_says(c: &CauseView, word: &str) -> bool {
    contains_ci(c.id.as_str(), word)
        || contains_ci(&c.title, word)
        || c.reasons.iter().any(|x| contains_ci(x, word))
        || c.evidence.iter().any(|x| contains_ci(x, word))
}

fn is_filter_key(key: &str) -> bool {
    matches!(key.to_ascii_lowercase().as_str(), "reason" | "proto" | "port" | "host" | "netns" | "dev")
}

fn terms_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
