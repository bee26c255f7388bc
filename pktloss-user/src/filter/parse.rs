//! Filter words parsed into an [`Expr`]: tcpdump's primitives and combinators, and pktloss's own.
//!
//! Hand-written: the grammar is a few dozen words (tcpdump's, plus `netns`, `dev`, `ifindex`,
//! `reason`, `cause`) read as libpcap reads them: `and` and `or` of one precedence, left to
//! right, and a bare value reusing the last qualifiers (`port 53 or 80`). What tcpdump refuses
//! is refused (`proto udp`, `udp host X`, `src 10.0.0.0/8`); `tcpdump_table` checks the two
//! against each other on packets. libpcap's own compiler targets packet bytes at the link
//! layer, which at a drop point may be gone or elsewhere, and has no word for a namespace, a
//! device name or a drop reason.
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
    /// `ip netns` name (`/run/netns/NAME`), else a name pktloss gives namespaces: a container's
    /// (`pktl-uxc`, `podman:pktl-uxc`), a pod's (`shop/cart-7f9`), a systemd unit's.
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
    /// `[ip|ip6] [dir] host ADDR`.
    Host {
        proto: Option<Proto>,
        dir: Dir,
        addr: IpAddr,
    },
    /// `[ip|ip6] [dir] net ADDR/LEN`.
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
    /// `[ip|ip6] proto N`.
    IpProto,
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
    /// The qualifiers a bare value takes here: those of the last primitive, as libpcap keeps
    /// them (none after a protocol word, one of pktloss's words or a parenthesized expression,
    /// where tcpdump refuses a bare value).
    last: Option<Quals>,
}

/// The words that are not values: tcpdump's and pktloss's keywords and the operators.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "host",
    "net",
    "port",
    "portrange",
    "src",
    "dst",
    "proto",
    "ip",
    "ip6",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmp6",
    "arp",
    "netns",
    "dev",
    "ifname",
    "ifindex",
    "reason",
    "cause",
];

/// Words (and operators) a filter may have.
const MAX_WORDS: usize = 512;

const PRIMITIVES: &str =
    "a primitive (host, net, port, portrange, tcp, udp, icmp, ip, ip6, netns, dev, reason, cause, ...)";

/// Parse an expression; `None` for an empty one.
///
/// tcpdump's grammar (pcap-filter(7)): `and` and `or` have the same precedence and group left
/// to right (`tcp or udp and port 53` is `(tcp or udp) and port 53`); `not` binds tighter; a
/// bare value after `and`/`or` (or in parentheses after a qualifier: `port (53 or 80)`) takes
/// the qualifiers of the primitive before it (`port 53 or 80`, `host A and not B`).
pub(crate) fn parse(expr: &str) -> Result<Option<Expr>, FilterError> {
    let toks = tokenize(expr);
    if toks.is_empty() {
        return Ok(None);
    }
    // The parser and the compiler recurse once per nesting (`(`, `not`, each `and`/`or`): a
    // bound on the words bounds their stack. The kernel program takes 64 tests, far fewer.
    if toks.len() > MAX_WORDS {
        return Err(FilterError {
            at: 0,
            len: 0,
            msg: format!("{} words; a filter takes at most {MAX_WORDS} (and the kernel program 64 tests)", toks.len()),
        });
    }
    let mut p = Parser { toks, pos: 0, end: expr.len(), last: None };
    let e = p.expr()?;
    if let Some(t) = p.peek_tok() {
        return Err(Parser::err_at(
            t,
            if t.text == ")" { "this `)` closes nothing" } else { "expected `and` or `or`" },
        ));
    }
    Ok(Some(e))
}

/// A primitive's words up to its value.
enum Head {
    /// A whole primitive whose qualifiers a bare value after it cannot take (`tcp`, `dev X`).
    Whole(Term),
    /// A whole primitive with a value (`src 10.0.0.1`) and the qualifiers it leaves.
    Valued(Term, Quals),
    /// The qualifiers of the value that comes next (`tcp dst port`).
    Quals(Quals),
}

fn is_value(s: &str) -> bool {
    !KEYWORDS.contains(&s)
}

fn is_op(s: &str) -> Option<bool> {
    match s {
        "and" | "&&" => Some(true),
        "or" | "||" => Some(false),
        _ => None,
    }
}

fn join(is_and: bool, a: Expr, b: Expr) -> Expr {
    if is_and { Expr::And(Box::new(a), Box::new(b)) } else { Expr::Or(Box::new(a), Box::new(b)) }
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

    /// `term ((and|or) (term|id))*`: one precedence, left to right.
    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.term()?;
        while let Some(is_and) = self.peek().and_then(is_op) {
            self.pos += 1;
            let rhs = match self.last {
                Some(q) if self.id_follows() => self.id(q)?,
                _ => self.term()?,
            };
            e = join(is_and, e, rhs);
        }
        Ok(e)
    }

    /// Whether a bare value comes next, behind `not`s and `(`s.
    fn id_follows(&self) -> bool {
        self.toks[self.pos..]
            .iter()
            .find(|t| !matches!(t.text.as_str(), "(" | "not" | "!"))
            .is_some_and(|t| is_value(&t.text))
    }

    /// `not term`, `( expr )` or a primitive.
    fn term(&mut self) -> Result<Expr, FilterError> {
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.term()?)))
            }
            Some("(") => {
                let open = self.next().expect("peeked");
                let e = self.expr()?;
                self.close(&open)?;
                // tcpdump takes no bare value after a parenthesized expression.
                self.last = None;
                Ok(e)
            }
            _ => self.prim(),
        }
    }

    fn close(&mut self, open: &Token) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if t.text == ")" => Ok(()),
            Some(t) => Err(Self::err_at(&t, "expected `)`")),
            None => Err(Self::err_at(open, "this `(` is not closed")),
        }
    }

    /// A value with the qualifiers `q`: `V`, `not ID`, `( ID ((and|or) ID)* )`.
    fn id(&mut self, q: Quals) -> Result<Expr, FilterError> {
        let t = self.need("a value")?;
        match t.text.as_str() {
            "not" | "!" => Ok(Expr::Not(Box::new(self.id(q)?))),
            "(" => {
                let mut e = self.id(q)?;
                while let Some(is_and) = self.peek().and_then(is_op) {
                    self.pos += 1;
                    e = join(is_and, e, self.id(q)?);
                }
                self.close(&t)?;
                Ok(e)
            }
            s if is_value(s) => {
                let term = Self::value(q.kind, q.proto, q.dir, &t)?;
                Ok(Expr::Prim(Prim { term, at: t.at, len: t.text.len() }))
            }
            _ => Err(Self::err_at(
                &t,
                match q.kind {
                    Kind::IpProto => "tcpdump wants a protocol name escaped here (\\udp), or a number (0-255)",
                    Kind::Host => "expected an address",
                    Kind::Net => "expected a network (ADDR/LEN)",
                    Kind::Port | Kind::PortRange => "expected a port number",
                },
            )),
        }
    }

    fn prim(&mut self) -> Result<Expr, FilterError> {
        let first = self.need(PRIMITIVES)?;
        let at = first.at;
        let (term, last) = match self.head(first)? {
            Head::Whole(term) => (term, None),
            Head::Valued(term, q) => (term, Some(q)),
            Head::Quals(q) => {
                self.last = Some(q);
                return self.id(q);
            }
        };
        self.last = last;
        let end = self.toks.get(self.pos.saturating_sub(1)).map_or(at, |t| t.at + t.text.len());
        Ok(Expr::Prim(Prim { term, at, len: end.saturating_sub(at) }))
    }

    /// A primitive's words up to its value: either a whole primitive (no qualifiers to reuse,
    /// or a value already read), or the qualifiers its value (next) takes.
    fn head(&mut self, first: Token) -> Result<Head, FilterError> {
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
                return Ok(Head::Whole(Term::Netns(spec)));
            }
            "dev" | "ifname" => {
                let t = self.need("a device name")?;
                if t.text.len() > 15 || t.text.contains('/') {
                    return Err(Self::err_at(&t, "not a device name (at most 15 bytes, no `/`)"));
                }
                return Ok(Head::Whole(Term::Dev(t.text)));
            }
            "ifindex" => return Ok(Head::Whole(Term::Ifindex(self.number("a device index")?))),
            "reason" => {
                let t = self.need("a drop reason (see `pktloss reasons`)")?;
                return Ok(Head::Whole(Term::Reason(t.text)));
            }
            "cause" => {
                let t = self.need("a cause id (e.g. no-listener, firewall-drop)")?;
                return Ok(Head::Whole(Term::Cause(t.text)));
            }
            "proto" => return Ok(Head::Quals(Quals { proto: None, dir: Dir::Any, kind: Kind::IpProto })),
            _ => {}
        }
        let mut proto = None;
        let mut tok = first;
        if let Some(p) = Proto::from_word(&tok.text) {
            proto = Some(p);
            match self.peek() {
                Some("proto") if matches!(p, Proto::Ip | Proto::Ip6) => {
                    self.pos += 1;
                    return Ok(Head::Quals(Quals { proto, dir: Dir::Any, kind: Kind::IpProto }));
                }
                Some("src" | "dst" | "host" | "net" | "port" | "portrange") => tok = self.next().expect("peeked"),
                _ => return Ok(Head::Whole(Term::Proto(p))),
            }
        }
        let mut dir = Dir::Any;
        if matches!(tok.text.as_str(), "src" | "dst") {
            dir = if tok.text == "src" { Dir::Src } else { Dir::Dst };
            // `src or dst`, `src and dst`
            if let (Some(op), Some(other)) =
                (self.peek().and_then(is_op), self.toks.get(self.pos + 1).map(|t| t.text.as_str()))
                && ((dir == Dir::Src && other == "dst") || (dir == Dir::Dst && other == "src"))
            {
                dir = if op { Dir::Both } else { Dir::Any };
                self.pos += 2;
            }
            tok = self.need("host, net, port or portrange")?;
        }
        let kind = match tok.text.as_str() {
            "host" => Kind::Host,
            "net" => Kind::Net,
            "port" => Kind::Port,
            "portrange" => Kind::PortRange,
            // `src 10.0.0.1`, `ip dst fd00::1`: a host, as tcpdump takes it.
            s if (proto.is_some() || dir != Dir::Any) && s.parse::<IpAddr>().is_ok() => {
                let q = Quals { proto, dir, kind: Kind::Host };
                return Ok(Head::Valued(Self::value(Kind::Host, proto, dir, &tok)?, q));
            }
            s if (proto.is_some() || dir != Dir::Any) && value_is_addr(s) => {
                return Err(Self::err_at(&tok, "a mask is for networks only (net ADDR/LEN), as in tcpdump"));
            }
            _ if proto.is_some() || dir != Dir::Any => {
                return Err(Self::err_at(&tok, "expected host, net, port or portrange"));
            }
            _ => return Err(Self::err_at(&tok, &format!("expected {PRIMITIVES}"))),
        };
        Ok(Head::Quals(Quals { proto, dir, kind }))
    }

    fn value(kind: Kind, proto: Option<Proto>, dir: Dir, t: &Token) -> Result<Term, FilterError> {
        let family_ok = |a: &IpAddr| match proto {
            Some(Proto::Ip) => a.is_ipv4(),
            Some(Proto::Ip6) => a.is_ipv6(),
            _ => true,
        };
        let addr_proto = || match proto {
            None | Some(Proto::Ip | Proto::Ip6) => Ok(()),
            Some(Proto::Arp) => Err(Self::err_at(t, "arp drops have no addresses pktloss reads")),
            Some(_) => Err(Self::err_at(t, "tcpdump takes only ip, ip6 or arp before host and net")),
        };
        match kind {
            Kind::Host => {
                if value_is_addr(&t.text) && t.text.contains('/') {
                    return Err(Self::err_at(t, "a mask is for networks only (net ADDR/LEN), as in tcpdump"));
                }
                let addr: IpAddr =
                    t.text.parse().map_err(|_| Self::err_at(t, "not an IP address (host names are not resolved)"))?;
                addr_proto()?;
                if !family_ok(&addr) {
                    return Err(Self::err_at(t, "this address is not of the protocol before it"));
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
                    decimal(len)
                        .filter(|&l| l <= u32::from(max))
                        .map(|l| l as u8)
                        .ok_or_else(|| Self::err_at(t, "bad prefix length"))?
                };
                addr_proto()?;
                if !family_ok(&addr) {
                    return Err(Self::err_at(t, "this network is not of the protocol before it"));
                }
                if host_bits(addr, prefix) {
                    return Err(Self::err_at(t, "non-network bits set in this network"));
                }
                Ok(Term::Net { proto, dir, addr, prefix })
            }
            Kind::Port | Kind::PortRange => {
                if proto.is_some_and(|p| !matches!(p, Proto::Tcp | Proto::Udp | Proto::Sctp)) {
                    return Err(Self::err_at(t, "ports are of tcp, udp and sctp"));
                }
                let bad = || Self::err_at(t, "not a port number (0-65535)");
                let (lo, hi) = if kind == Kind::Port {
                    // tcpdump reads 0x35 as hex and 065 as octal.
                    let p = pcap_number(&t.text).and_then(|n| u16::try_from(n).ok()).ok_or_else(bad)?;
                    (p, p)
                } else {
                    // A range is in decimal; a reversed one is swapped, as tcpdump does.
                    let num = |s: &str| decimal(s).and_then(|n| u16::try_from(n).ok()).ok_or_else(bad);
                    let (a, b) = t.text.split_once('-').unwrap_or((&t.text, &t.text));
                    let (a, b) = (num(a)?, num(b)?);
                    (a.min(b), a.max(b))
                };
                Ok(Term::Port { proto, dir, lo, hi })
            }
            Kind::IpProto => Ok(Term::IpProto { family: proto, number: Self::ip_proto(t)? }),
        }
    }

    fn number(&mut self, what: &str) -> Result<u32, FilterError> {
        let t = self.need(what)?;
        t.text.parse().map_err(|_| Self::err_at(&t, &format!("expected {what}")))
    }

    /// A protocol number (`17`, `0x11`) or, escaped as tcpdump wants it, a name (`\udp`).
    fn ip_proto(t: &Token) -> Result<u8, FilterError> {
        let number = match t.text.strip_prefix('\\') {
            Some(name) => PROTOCOL_NAMES.iter().find(|(n, _)| *n == name).map(|&(_, v)| v),
            None => pcap_number(&t.text).and_then(|n| u8::try_from(n).ok()),
        };
        number.ok_or_else(|| {
            Self::err_at(t, "expected a protocol number (0-255) or an escaped name (\\tcp, \\udp, \\sctp, \\icmp, ...)")
        })
    }
}

/// Protocol names `proto \NAME` takes: those of `/etc/protocols` (what tcpdump looks up)
/// whose numbers pktloss's users meet.
const PROTOCOL_NAMES: &[(&str, u8)] =
    &[("icmp", 1), ("igmp", 2), ("tcp", 6), ("udp", 17), ("gre", 47), ("esp", 50), ("ah", 51), ("sctp", 132)];

/// A number as libpcap reads one: `0x` hex, a leading `0` octal, else decimal.
fn pcap_number(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return if hex.bytes().all(|b| b.is_ascii_hexdigit()) { u32::from_str_radix(hex, 16).ok() } else { None };
    }
    if s.len() > 1 && s.starts_with('0') {
        return if s.bytes().all(|b| (b'0'..=b'7').contains(&b)) { u32::from_str_radix(s, 8).ok() } else { None };
    }
    decimal(s)
}

/// Decimal digits only (no sign).
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
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
