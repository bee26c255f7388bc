//! Filter words parsed into an [`Expr`]: tcpdump's primitives and combinators, and pktloss's own.
//!
//! Hand-written: the grammar is a few dozen words (tcpdump's, plus `netns`, `dev`, `ifindex`,
//! `reason`) whose only subtlety is tcpdump's reuse of the last qualifiers for a bare value
//! (`port 53 or 80`). libpcap's own compiler targets packet bytes at the link layer, which at a
//! drop point may be gone or elsewhere, and has no word for a namespace, a device name or a drop
//! reason.
use std::net::IpAddr;

use super::FilterError;

/// A filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Prim(Prim),
}

/// A primitive and where it starts in the expression (a character offset, for errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prim {
    pub term: Term,
    pub at: usize,
    pub len: usize,
}

/// Which addresses or ports a primitive tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Src,
    Dst,
    /// Either (`host`, `src or dst host`).
    Any,
    /// Both (`src and dst host`).
    Both,
}

/// A protocol word: tcpdump's protocol qualifiers and primitives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Ip,
    Ip6,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
    Arp,
}

impl Proto {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "ip" => Self::Ip,
            "ip6" => Self::Ip6,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "sctp" => Self::Sctp,
            "icmp" => Self::Icmp,
            "icmp6" => Self::Icmp6,
            "arp" => Self::Arp,
            _ => return None,
        })
    }

    /// The IP protocol number of a transport word.
    pub(crate) const fn l4(self) -> Option<u8> {
        match self {
            Self::Tcp => Some(6),
            Self::Udp => Some(17),
            Self::Sctp => Some(132),
            Self::Icmp => Some(1),
            Self::Icmp6 => Some(58),
            Self::Ip | Self::Ip6 | Self::Arp => None,
        }
    }
}

/// How a namespace is named in a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetnsSpec {
    /// `ip netns` name (`/run/netns/NAME`).
    Name(String),
    /// A path to a namespace file (`/proc/PID/ns/net`, a bind mount).
    Path(String),
    /// The namespace of a process.
    Pid(u32),
    /// The inode number, as pktloss prints it.
    Id(u32),
}

/// What a primitive tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Term {
    /// `[proto] [dir] host ADDR`; `proto` restricts it (`tcp host X` = `tcp and host X`).
    Host {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
    },
    /// `[proto] [dir] net ADDR/LEN`.
    Net {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
        prefix: u8,
    },
    /// `[tcp|udp|sctp] [dir] port N` and `portrange LO-HI`.
    Port {
        proto: Option<Proto>,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    /// A protocol alone: `tcp`, `ip6`, `arp`.
    Proto(Proto),
    /// `[ip|ip6] proto N`.
    IpProto {
        family: Option<Proto>,
        number: u8,
    },
    Netns(NetnsSpec),
    /// A device name, in any namespace.
    Dev(String),
    Ifindex(u32),
    /// A drop reason by name (as `pktloss reasons` lists it) or number.
    Reason(String),
    /// A cause of the diagnosis (`no-listener`): the drop reasons that make it.
    Cause(String),
}

#[derive(Clone, Debug)]
struct Token {
    text: String,
    at: usize,
}

/// What a bare value reuses: the qualifiers of the primitive before it.
#[derive(Clone, Copy, Debug)]
struct Quals {
    proto: Option<Proto>,
    dir: Dir,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    let flush = |cur: &mut String, start: usize, out: &mut Vec<Token>| {
        if !cur.is_empty() {
            out.push(Token { text: std::mem::take(cur), at: start });
        }
    };
    while i < chars.len() {
        let (at, c) = chars[i];
        let two = chars.get(i + 1).map(|&(_, d)| d);
        let op = match (c, two) {
            ('&', Some('&')) => Some("&&"),
            ('|', Some('|')) => Some("||"),
            ('(', _) => Some("("),
            (')', _) => Some(")"),
            ('!', _) => Some("!"),
            _ => None,
        };
        if let Some(op) = op {
            flush(&mut cur, start, &mut out);
            out.push(Token { text: op.to_owned(), at });
            i += op.len();
            continue;
        }
        if c.is_whitespace() {
            flush(&mut cur, start, &mut out);
        } else {
            if cur.is_empty() {
                start = at;
            }
            cur.push(c);
        }
        i += 1;
    }
    flush(&mut cur, start, &mut out);
    out
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    end: usize,
    last: Option<Quals>,
}

/// Parse an expression; `None` for an empty one.
pub(crate) fn parse(expr: &str) -> Result<Option<Expr>, FilterError> {
    let toks = tokenize(expr);
    if toks.is_empty() {
        return Ok(None);
    }
    let mut p = Parser { toks, pos: 0, end: expr.len(), last: None };
    let e = p.or()?;
    if let Some(t) = p.peek_tok() {
        return Err(Parser::err_at(t, "expected `and` or `or`"));
    }
    Ok(Some(e))
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(|t| t.text.as_str())
    }

    fn peek_tok(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn err_at(t: &Token, msg: &str) -> FilterError {
        FilterError { at: t.at, len: t.text.len(), msg: msg.to_owned() }
    }

    fn err_end(&self, msg: &str) -> FilterError {
        FilterError { at: self.end, len: 0, msg: msg.to_owned() }
    }

    /// The next token, or an error saying what was expected at the end.
    fn need(&mut self, what: &str) -> Result<Token, FilterError> {
        self.next().ok_or_else(|| self.err_end(&format!("expected {what}")))
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.and()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.unary()?;
        while matches!(self.peek(), Some("and" | "&&")) {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                let open = self.next().expect("peeked");
                let e = self.or()?;
                match self.next() {
                    Some(t) if t.text == ")" => Ok(e),
                    Some(t) => Err(Self::err_at(&t, "expected `)`")),
                    None => Err(Self::err_at(&open, "this `(` is not closed")),
                }
            }
            _ => self.prim(),
        }
    }

    fn prim(&mut self) -> Result<Expr, FilterError> {
        let first = self.need("a primitive (host, net, port, portrange, tcp, udp, netns, dev, reason, ...)")?;
        let at = first.at;
        let term = self.term(first)?;
        let end = self.toks.get(self.pos.saturating_sub(1)).map_or(at, |t| t.at + t.text.len());
        Ok(Expr::Prim(Prim { term, at, len: end.saturating_sub(at) }))
    }

    fn term(&mut self, first: Token) -> Result<Term, FilterError> {
        let w = first.text.as_str();
        match w {
            "netns" => {
                let t = self.need("a namespace: a name, a path, `pid N` or `id N`")?;
                let spec = match t.text.as_str() {
                    "pid" => NetnsSpec::Pid(self.number("a process id")?),
                    "id" => NetnsSpec::Id(self.number("a namespace id (inode number)")?),
                    s if s.starts_with('/') => NetnsSpec::Path(s.to_owned()),
                    s if s.bytes().all(|b| b.is_ascii_digit()) => {
                        NetnsSpec::Id(s.parse().map_err(|_| Self::err_at(&t, "not a namespace id"))?)
                    }
                    s => NetnsSpec::Name(s.to_owned()),
                };
                return Ok(Term::Netns(spec));
            }
            "dev" | "ifname" => {
                let t = self.need("a device name")?;
                if t.text.len() > 15 || t.text.contains('/') {
                    return Err(Self::err_at(&t, "not a device name (at most 15 bytes, no `/`)"));
                }
                return Ok(Term::Dev(t.text));
            }
            "ifindex" => return Ok(Term::Ifindex(self.number("a device index")?)),
            "reason" => {
                let t = self.need("a drop reason (see `pktloss reasons`)")?;
                return Ok(Term::Reason(t.text));
            }
            "cause" => {
                let t = self.need("a cause id (e.g. no-listener, firewall-drop)")?;
                return Ok(Term::Cause(t.text));
            }
            "proto" => return Ok(Term::IpProto { family: None, number: self.ip_proto()? }),
            _ => {}
        }
        let mut proto = None;
        let mut tok = first;
        if let Some(p) = Proto::from_word(&tok.text) {
            proto = Some(p);
            match self.peek() {
                Some("proto") if matches!(p, Proto::Ip | Proto::Ip6) => {
                    self.pos += 1;
                    return Ok(Term::IpProto { family: Some(p), number: self.ip_proto()? });
                }
                Some("src" | "dst" | "host" | "net" | "port" | "portrange") => tok = self.next().expect("peeked"),
                _ => return Ok(Term::Proto(p)),
            }
        }
        let mut dir = Dir::Any;
        if matches!(tok.text.as_str(), "src" | "dst") {
            dir = if tok.text == "src" { Dir::Src } else { Dir::Dst };
            // `src or dst`, `src and dst`
            if let (Some(op @ ("or" | "and")), Some(other)) =
                (self.peek(), self.toks.get(self.pos + 1).map(|t| t.text.as_str()))
                && ((dir == Dir::Src && other == "dst") || (dir == Dir::Dst && other == "src"))
            {
                dir = if op == "or" { Dir::Any } else { Dir::Both };
                self.pos += 2;
            }
            tok = self.need("host, net, port or portrange")?;
        }
        let kind = match tok.text.as_str() {
            "host" => Some(Kind::Host),
            "net" => Some(Kind::Net),
            "port" => Some(Kind::Port),
            "portrange" => Some(Kind::PortRange),
            _ => None,
        };
        let (kind, value) = match kind {
            Some(k) => (k, self.need("a value")?),
            None if proto.is_none() && dir == Dir::Any => {
                // A bare value: tcpdump reuses the qualifiers of the primitive before it.
                let Some(q) = self.last else {
                    return Err(Self::err_at(
                        &tok,
                        "expected a primitive (host, net, port, portrange, tcp, udp, icmp, ip, ip6, netns, dev, reason, cause, ...)",
                    ));
                };
                proto = q.proto;
                dir = q.dir;
                (q.kind, tok)
            }
            // `src 10.0.0.1`: a host, as tcpdump takes it.
            None if value_is_addr(&tok.text) => (if tok.text.contains('/') { Kind::Net } else { Kind::Host }, tok),
            None => return Err(Self::err_at(&tok, "expected host, net, port or portrange")),
        };
        self.last = Some(Quals { proto, dir, kind });
        Self::value(kind, proto, dir, &value)
    }

    fn value(kind: Kind, proto: Option<Proto>, dir: Dir, t: &Token) -> Result<Term, FilterError> {
        let family_ok = |a: &IpAddr| match proto {
            Some(Proto::Ip) => a.is_ipv4(),
            Some(Proto::Ip6) => a.is_ipv6(),
            _ => true,
        };
        match kind {
            Kind::Host => {
                let addr: IpAddr =
                    t.text.parse().map_err(|_| Self::err_at(t, "not an IP address (host names are not resolved)"))?;
                if !family_ok(&addr) {
                    return Err(Self::err_at(t, "this address is not of the protocol before it"));
                }
                if matches!(proto, Some(Proto::Arp)) {
                    return Err(Self::err_at(t, "arp drops have no addresses pktloss reads"));
                }
                Ok(Term::Host { proto, dir, addr })
            }
            Kind::Net => {
                let (a, len) = t.text.split_once('/').unwrap_or((&t.text, ""));
                let addr: IpAddr = a.parse().map_err(|_| Self::err_at(t, "not a network (ADDR/LEN)"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix: u8 = if len.is_empty() {
                    max
                } else {
                    len.parse().ok().filter(|&l| l <= max).ok_or_else(|| Self::err_at(t, "bad prefix length"))?
                };
                if !family_ok(&addr) {
                    return Err(Self::err_at(t, "this network is not of the protocol before it"));
                }
                if host_bits(addr, prefix) {
                    return Err(Self::err_at(t, "non-network bits set in this network"));
                }
                Ok(Term::Net { proto, dir, addr, prefix })
            }
            Kind::Port | Kind::PortRange => {
                if proto.is_some_and(|p| !matches!(p, Proto::Tcp | Proto::Udp | Proto::Sctp | Proto::Ip | Proto::Ip6)) {
                    return Err(Self::err_at(t, "ports are of tcp, udp and sctp"));
                }
                let num = |s: &str| s.parse::<u16>().map_err(|_| Self::err_at(t, "not a port number (0-65535)"));
                let (lo, hi) = if kind == Kind::Port {
                    let p = num(&t.text)?;
                    (p, p)
                } else {
                    let (a, b) = t.text.split_once('-').ok_or_else(|| Self::err_at(t, "expected a range LO-HI"))?;
                    let (lo, hi) = (num(a)?, num(b)?);
                    if lo > hi {
                        return Err(Self::err_at(t, "the range is empty (LO > HI)"));
                    }
                    (lo, hi)
                };
                Ok(Term::Port { proto, dir, lo, hi })
            }
        }
    }

    fn number(&mut self, what: &str) -> Result<u32, FilterError> {
        let t = self.need(what)?;
        t.text.parse().map_err(|_| Self::err_at(&t, &format!("expected {what}")))
    }

    fn ip_proto(&mut self) -> Result<u8, FilterError> {
        let t = self.need("a protocol number or name")?;
        let by_name = Proto::from_word(t.text.trim_start_matches('\\')).and_then(Proto::l4);
        by_name
            .or_else(|| t.text.parse().ok())
            .ok_or_else(|| Self::err_at(&t, "expected a protocol number (0-255) or tcp, udp, sctp, icmp, icmp6"))
    }
}

fn value_is_addr(s: &str) -> bool {
    s.split_once('/').map_or(s, |(a, _)| a).parse::<IpAddr>().is_ok()
}

/// Whether `addr` has bits set past the first `prefix`.
fn host_bits(addr: IpAddr, prefix: u8) -> bool {
    let (bits, width) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    // The low `width - prefix` bits (none past the width, all 128 for ::/0).
    let host = u128::MAX.checked_shr(128 - width.saturating_sub(u32::from(prefix))).unwrap_or(0);
    bits & host != 0
}
