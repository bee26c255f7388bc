//! The `/` filter: parsing its terms, and whether a row of each panel matches them.
use super::data::{Data, DropRow};
use crate::{
    model::{FlowCount, Sample},
    tui::{CauseView, CounterRow},
};

/// One filter term; a filter is the AND of its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `reason:X`: drop reason contains X (case-insensitive).
    Reason(String),
    /// `proto:X`: protocol is X.
    Proto(String),
    /// `port:N`: source or destination port is N.
    Port(u16),
    /// `host:A`: source or destination address is A (prefix when A ends in `.`, `:` or `*`).
    Host(String),
    /// `netns:N`: network namespace inode is N.
    Netns(u32),
    /// `dev:X`: device name (or ifindex) is X.
    Dev(String),
    /// A bare word: any field contains it.
    Word(String),
}

/// A parsed `/` filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
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
    ifindex: u32,
    device: &'a str,
    process: &'a str,
    reason: &'a str,
    symbol: &'a str,
}

impl<'a> Pkt<'a> {
    fn flow(f: &'a FlowCount) -> Self {
        Pkt {
            proto: &f.proto,
            src: &f.src,
            sport: f.sport,
            dst: &f.dst,
            dport: f.dport,
            netns: f.netns,
            ifindex: f.ifindex,
            device: &f.device,
            process: &f.process,
            reason: &f.reason,
            symbol: "",
        }
    }
    fn sample(s: &'a Sample, device: &'a str) -> Self {
        Pkt {
            proto: &s.proto,
            src: &s.src,
            sport: s.sport,
            dst: &s.dst,
            dport: s.dport,
            netns: s.netns,
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

impl Term {
    fn matches_pkt(&self, p: &Pkt) -> bool {
        match self {
            Term::Reason(r) => contains_ci(p.reason, r),
            Term::Proto(x) => p.proto.eq_ignore_ascii_case(x),
            Term::Port(n) => p.sport == *n || p.dport == *n,
            Term::Host(h) => host_match(p.src, h) || host_match(p.dst, h),
            Term::Netns(n) => p.netns == *n,
            Term::Dev(d) => p.device.eq_ignore_ascii_case(d) || p.ifindex.to_string() == *d,
            Term::Word(w) => {
                [p.reason, p.symbol, p.proto, p.src, p.dst, p.device, p.process].iter().any(|f| contains_ci(f, w))
                    || [p.sport as u32, p.dport as u32, p.netns, p.ifindex].iter().any(|n| n.to_string() == *w)
            }
        }
    }
}

impl Filter {
    /// Parse space-separated terms: `reason:X proto:X port:N host:A netns:N dev:X word`.
    pub fn parse(text: &str) -> Result<Filter, String> {
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
                        "netns" => {
                            Term::Netns(value.parse().map_err(|_| format!("bad netns '{value}' (an inode number)"))?)
                        }
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

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A flow matches when every term does.
    pub fn matches_flow(&self, f: &FlowCount) -> bool {
        let p = Pkt::flow(f);
        self.terms.iter().all(|t| t.matches_pkt(&p))
    }

    /// A drops row matches when its reason/location satisfy the reason terms (and the words
    /// they contain), and one related packet satisfies all the remaining terms together. The
    /// related packets are the row's samples, and the flows with its reason (the flow table
    /// has no location) whose protocol and netns one of those samples shows.
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
        let samples: Vec<(&Sample, String)> = data
            .samples()
            .filter(|s| s.reason == row.reason && s.symbol == row.symbol)
            .map(|s| (s, data.device_name(s.netns, s.ifindex).unwrap_or_default()))
            .collect();
        if samples.iter().any(|(s, d)| rest.iter().all(|t| t.matches_pkt(&Pkt::sample(s, d)))) {
            return true;
        }
        // A flow with the row's reason, from a protocol and netns the row's samples show (any,
        // when it has none).
        data.update
            .summary
            .flows
            .iter()
            .filter(|f| f.reason == row.reason)
            .filter(|f| samples.is_empty() || samples.iter().any(|(s, _)| s.proto == f.proto && s.netns == f.netns))
            .any(|f| rest.iter().all(|t| t.matches_pkt(&Pkt::flow(f))))
    }

    /// Causes look at reason terms (their reasons, id or title) and words; packet terms don't
    /// apply to them.
    pub(super) fn matches_cause(&self, c: &CauseView) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Reason(r) => {
                c.reasons.iter().any(|x| contains_ci(x, r)) || contains_ci(&c.id, r) || contains_ci(&c.title, r)
            }
            Term::Word(w) => {
                contains_ci(&c.id, w)
                    || contains_ci(&c.title, w)
                    || c.reasons.iter().any(|x| contains_ci(x, w))
                    || c.evidence.iter().any(|x| contains_ci(x, w))
            }
            _ => true,
        })
    }

    /// Counters look at dev, netns and words (against scope and counter name).
    pub(super) fn matches_counter(&self, c: &CounterRow) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Dev(d) => contains_ci(&c.scope, d),
            Term::Netns(n) => c.scope.contains(&n.to_string()),
            Term::Word(w) => contains_ci(&c.scope, w) || contains_ci(&c.counter, w),
            Term::Reason(_) | Term::Proto(_) | Term::Port(_) | Term::Host(_) => true,
        })
    }
}

fn is_filter_key(key: &str) -> bool {
    matches!(key.to_ascii_lowercase().as_str(), "reason" | "proto" | "port" | "host" | "netns" | "dev")
}

fn terms_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
