//! Filters: which drops to count, in tcpdump's words plus pktloss's own (`netns`, `dev`,
//! `ifindex`, `reason`, `cause`), compiled to the decision graph the kernel programs walk.
//!
//! A drop the filter leaves out costs the kernel program one decode of its flow key and the
//! walk, and is counted once, as filtered out; nothing else sees it.
mod compile;
mod parse;
#[cfg(test)]
mod tcpdump_table;
#[cfg(test)]
mod tests;

use std::path::Path;

pub(crate) use compile::Resolve;
use parse::Expr;
pub(crate) use parse::NetnsSpec;

use crate::decode::reasons::ReasonTable;

/// A filter that could not be parsed or resolved, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilterError {
    /// Byte offset of the offending word in the expression.
    pub at: usize,
    pub len: usize,
    pub msg: String,
}

impl FilterError {
    /// One line: what is wrong, the word, and the expression with the word marked.
    pub(crate) fn line(&self, expr: &str) -> String {
        let word = expr.get(self.at..self.at + self.len).unwrap_or("");
        if word.is_empty() && self.at >= expr.len() && self.len == 0 && self.at > 0 {
            return format!("bad filter `{expr}`: at its end: {}", self.msg);
        }
        if word.is_empty() {
            return format!("bad filter `{expr}`: {}", self.msg);
        }
        format!("bad filter `{expr}`: `{word}` (column {}): {}", self.at + 1, self.msg)
    }
}

/// A filter as given: its text, parsed, and (once resolved on the host) compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilterSpec {
    pub text: String,
    expr: Expr,
}

impl FilterSpec {
    /// Parse the trailing words of a command (`udp and dst port 53`); `None` without words.
    pub(crate) fn from_words(words: &[String]) -> Result<Option<Self>, String> {
        let text = words.join(" ");
        match parse::parse(&text) {
            Ok(Some(expr)) => Ok(Some(Self { text, expr })),
            Ok(None) => Ok(None),
            Err(e) => Err(e.line(&text)),
        }
    }

    /// Which of the host's counters this filter's view covers: the namespaces and devices it is
    /// limited to, and whether it selects every drop of its namespaces. A namespace that cannot
    /// be resolved leaves the view unlimited by namespace (compiling refuses it anyway).
    pub(crate) fn scope(&self, r: &dyn Resolve) -> crate::model::FilterScope {
        let s = scope_of(&self.expr, r);
        let sorted = |v: Option<std::collections::BTreeSet<u32>>| v.map(|v| v.into_iter().collect());
        crate::model::FilterScope {
            netns: sorted(s.netns),
            devices: s.devices.map(|v| v.into_iter().collect()),
            whole_netns: s.only_netns && s.has_netns,
        }
    }

    /// Resolve names on this host and compile for the kernel programs.
    pub(crate) fn compile(&self, r: &dyn Resolve) -> Result<pktloss_common::Filter, String> {
        compile::compile(&self.expr, r).map_err(|e| e.line(&self.text))
    }
}

/// What a (sub)expression limits the drops it selects to.
struct Scope {
    /// Only drops of these namespaces (`None`: any).
    netns: Option<std::collections::BTreeSet<u32>>,
    /// Only drops on these devices (`None`: any).
    devices: Option<std::collections::BTreeSet<String>>,
    /// The expression tests nothing but namespaces.
    only_netns: bool,
    /// It tests a namespace at all.
    has_netns: bool,
}

/// `and` narrows to what both allow; `or` widens to what either allows (unlimited if either
/// is); `not` of a limit is no limit that a set can say.
fn scope_of(e: &Expr, r: &dyn Resolve) -> Scope {
    use std::collections::BTreeSet;
    fn both<T: Ord + Clone>(a: Option<BTreeSet<T>>, b: Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            (a, None) => a,
            (None, b) => b,
        }
    }
    fn either<T: Ord>(a: Option<BTreeSet<T>>, b: Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
        match (a, b) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        }
    }
    match e {
        Expr::And(a, b) => {
            let (a, b) = (scope_of(a, r), scope_of(b, r));
            Scope {
                netns: both(a.netns, b.netns),
                devices: both(a.devices, b.devices),
                only_netns: a.only_netns && b.only_netns,
                has_netns: a.has_netns || b.has_netns,
            }
        }
        Expr::Or(a, b) => {
            let (a, b) = (scope_of(a, r), scope_of(b, r));
            Scope {
                netns: either(a.netns, b.netns),
                devices: either(a.devices, b.devices),
                only_netns: a.only_netns && b.only_netns,
                has_netns: a.has_netns || b.has_netns,
            }
        }
        Expr::Not(_) => Scope { netns: None, devices: None, only_netns: false, has_netns: false },
        Expr::Prim(p) => match &p.term {
            parse::Term::Netns(spec) => Scope {
                netns: r.netns(spec).ok().map(|i| BTreeSet::from([i])),
                devices: None,
                only_netns: true,
                has_netns: true,
            },
            parse::Term::Dev(name) => Scope {
                netns: None,
                devices: Some(BTreeSet::from([name.clone()])),
                only_netns: false,
                has_netns: false,
            },
            _ => Scope { netns: None, devices: None, only_netns: false, has_netns: false },
        },
    }
}

/// The namespace a container, pod or unit name names (as pktloss labels namespaces).
fn by_name(name: &str) -> Result<u32, String> {
    let mut found = crate::host::names::find(name);
    found.sort_by_key(|n| n.netns.inode);
    found.dedup_by_key(|n| n.netns.inode);
    match found.as_slice() {
        [one] => Ok(one.netns.inode),
        [] => Err(format!("no namespace `{name}` (ip netns list, or a container, pod or unit name)")),
        many => Err(format!(
            "`{name}` names {} namespaces ({}): give one by `id N`",
            many.len(),
            many.iter().map(|n| format!("{} {}", n.label, n.netns.inode)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Resolves against the running host: `/run/netns`, the namespaces' container, pod and unit
/// names, `/proc/PID/ns/net`, the kernel's reasons.
pub(crate) struct HostResolver<'a> {
    pub reasons: &'a ReasonTable,
    /// The kernel gives drop reasons (5.17+).
    pub has_reasons: bool,
}

impl Resolve for HostResolver<'_> {
    fn netns(&self, spec: &NetnsSpec) -> Result<u32, String> {
        let path = match spec {
            NetnsSpec::Id(id) => return Ok(*id),
            NetnsSpec::Name(n) if n.contains('/') || !Path::new("/run/netns").join(n).exists() => {
                return by_name(n);
            }
            NetnsSpec::Name(n) => Path::new("/run/netns").join(n),
            NetnsSpec::Path(p) => p.into(),
            NetnsSpec::Pid(pid) => format!("/proc/{pid}/ns/net").into(),
        };
        crate::host::netns::inode_of(&path).map_err(|_| match spec {
            NetnsSpec::Name(n) => format!("no namespace `{n}` (ip netns list)"),
            NetnsSpec::Pid(p) => format!("no process {p}, or its namespace cannot be read"),
            _ => format!("{} is not a namespace that can be read", path.display()),
        })
    }

    /// In this namespace or any other one (`/run/netns`, `/proc/*/ns/net`). A device made
    /// later with the name is counted too (the match is on the name at the drop); a name that
    /// no namespace has at start is taken for a typo and refused.
    fn dev(&self, name: &str) -> Result<(), String> {
        use crate::host::netns;
        let here = |name: String| nix::net::if_::if_nametoindex(name.as_str()).is_ok();
        if here(name.to_owned()) {
            return Ok(());
        }
        let mut unread = 0;
        for ns in netns::list().into_values().filter(|ns| !ns.is_self) {
            let n = name.to_owned();
            match netns::run_in(&ns, move || Ok(here(n))) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(_) => unread += 1,
            }
        }
        if unread > 0 {
            // A namespace that could not be entered may have it.
            return Ok(());
        }
        Err(format!("no device `{name}` in any namespace (ip -all netns exec ip -br link)"))
    }

    fn reason(&self, name: &str) -> Result<u32, String> {
        if !self.has_reasons {
            return Err("this kernel gives no drop reasons (they came in 5.17)".to_owned());
        }
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let upper = name.to_ascii_uppercase();
        let short = upper.strip_prefix("SKB_DROP_REASON_").unwrap_or(&upper);
        self.reasons.code(short).ok_or_else(|| "not a drop reason of this kernel (pktloss reasons)".to_owned())
    }

    fn cause(&self, id: &str) -> Result<Vec<(u32, Option<u8>)>, String> {
        use crate::diagnose::taxonomy::{CauseId, cause_for_reason};
        let cause: CauseId = id.parse().map_err(|_| "not a cause id (see `pktloss diagnose --help`)".to_owned())?;
        if !self.has_reasons {
            return Err("this kernel gives no drop reasons (they came in 5.17): causes are told by location".to_owned());
        }
        let mut out: Vec<(u32, Option<u8>)> = self
            .reasons
            .iter()
            .filter(|(_, name)| cause_for_reason(name) == Some(cause))
            .map(|(code, _)| (code, None))
            .collect();
        // SOCKET_RCVBUFF is a UDP receiver's full buffer, or TCP memory pressure.
        let split = match cause {
            CauseId::UdpRcvbufFull => Some(17),
            CauseId::SocketMemoryPressure => Some(6),
            _ => None,
        };
        if let (Some(l4), Some(code)) = (split, self.reasons.code("SOCKET_RCVBUFF")) {
            out.push((code, Some(l4)));
        }
        if out.is_empty() {
            return Err(format!(
                "{cause} has no drop reason on this kernel (it is found by drop locations or by counters only)"
            ));
        }
        Ok(out)
    }
}
