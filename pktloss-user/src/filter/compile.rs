//! An [`Expr`] lowered to tests of the drop's words and compiled to the kernel's decision graph.
use std::net::IpAddr;

use pktloss_common::{FILTER_ACCEPT, FILTER_ATOMS, FILTER_REJECT, Filter, FilterAtom, filter_word as fw};

use super::{
    FilterError,
    parse::{Dir, Expr, NetnsSpec, Prim, Proto, Term},
};

/// What a filter needs to know of the host: namespace inodes and the kernel's reason codes.
pub(crate) trait Resolve {
    /// The inode of a namespace.
    fn netns(&self, spec: &NetnsSpec) -> Result<u32, String>;
    /// Whether a device of this name is in some namespace now.
    fn dev(&self, name: &str) -> Result<(), String>;
    /// The code of a drop reason on the running kernel.
    fn reason(&self, name: &str) -> Result<u32, String>;
    /// The drop reasons (codes) that make a cause of the diagnosis, each with the IP protocol it
    /// is limited to (`SOCKET_RCVBUFF` is a UDP or a TCP cause by protocol).
    fn cause(&self, id: &str) -> Result<Vec<(u32, Option<u8>)>, String>;
}

/// One test: `lo <= word & mask <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Test {
    word: u32,
    mask: u64,
    lo: u64,
    hi: u64,
}

impl Test {
    const fn eq(word: u32, mask: u64, v: u64) -> Self {
        Self { word, mask, lo: v & mask, hi: v & mask }
    }
}

/// A boolean expression over tests.
#[derive(Clone, Debug)]
enum B {
    T(Test),
    And(Box<B>, Box<B>),
    Or(Box<B>, Box<B>),
    Not(Box<B>),
}

fn and(a: B, b: B) -> B {
    B::And(Box::new(a), Box::new(b))
}

fn or(a: B, b: B) -> B {
    B::Or(Box::new(a), Box::new(b))
}

/// Compile `expr` to the graph the kernel programs walk.
pub(crate) fn compile(expr: &Expr, r: &dyn Resolve) -> Result<Filter, FilterError> {
    let b = lower(expr, r)?;
    let mut atoms = Vec::new();
    let start = build(&b, usize::from(FILTER_ACCEPT), usize::from(FILTER_REJECT), &mut atoms);
    if atoms.len() > FILTER_ATOMS {
        return Err(FilterError {
            at: 0,
            len: 0,
            msg: format!("this filter needs {} tests; the kernel program takes {FILTER_ATOMS}", atoms.len()),
        });
    }
    // Built children first (each atom jumps to atoms built before it): reversed, every jump
    // goes to a later atom and evaluation starts at 0 or at a verdict.
    let n = atoms.len();
    let remap = |t: usize| -> u8 { if t < n { u8::try_from(n - 1 - t).unwrap_or(FILTER_REJECT) } else { t as u8 } };
    let mut f = Filter { start: u32::from(remap(start)), len: n as u32, ..Filter::default() };
    for (i, (t, on_true, on_false)) in atoms.iter().rev().enumerate() {
        f.atoms[i] = FilterAtom {
            word: t.word,
            on_true: remap(*on_true),
            on_false: remap(*on_false),
            pad: 0,
            mask: t.mask,
            lo: t.lo,
            hi: t.hi,
        };
    }
    Ok(f)
}

/// Emit the atoms of `b` that go to `t` when it holds and `f` when not; returns where to start.
fn build(expr: &B, on_true: usize, on_false: usize, atoms: &mut Vec<(Test, usize, usize)>) -> usize {
    match expr {
        B::T(test) => {
            atoms.push((*test, on_true, on_false));
            atoms.len() - 1
        }
        B::And(first, second) => {
            let then = build(second, on_true, on_false, atoms);
            build(first, then, on_false, atoms)
        }
        B::Or(first, second) => {
            let otherwise = build(second, on_true, on_false, atoms);
            build(first, on_true, otherwise, atoms)
        }
        B::Not(inner) => build(inner, on_false, on_true, atoms),
    }
}

fn lower(e: &Expr, r: &dyn Resolve) -> Result<B, FilterError> {
    Ok(match e {
        Expr::And(a, b) => and(lower(a, r)?, lower(b, r)?),
        Expr::Or(a, b) => or(lower(a, r)?, lower(b, r)?),
        Expr::Not(a) => B::Not(Box::new(lower(a, r)?)),
        Expr::Prim(p) => prim(p, r)?,
    })
}

fn prim(p: &Prim, r: &dyn Resolve) -> Result<B, FilterError> {
    let err = |msg: String| FilterError { at: p.at, len: p.len, msg };
    Ok(match &p.term {
        Term::Host { proto, dir, addr } => {
            let full = if addr.is_ipv4() { 32 } else { 128 };
            with_proto(*proto, directed(*dir, |src| net(src, *addr, full)))
        }
        Term::Net { proto, dir, addr, prefix } => with_proto(*proto, directed(*dir, |src| net(src, *addr, *prefix))),
        Term::Port { proto, dir, lo, hi } => {
            let port = |src: bool| {
                B::T(Test {
                    word: if src { fw::SPORT } else { fw::DPORT },
                    mask: 0x1_ffff,
                    lo: 1 << 16 | u64::from(*lo),
                    hi: 1 << 16 | u64::from(*hi),
                })
            };
            with_proto(*proto, directed(*dir, port))
        }
        Term::Proto(p) => proto_test(*p),
        Term::IpProto { family, number } => match family {
            Some(f) => and(proto_test(*f), B::T(Test::eq(fw::PROTO, 0xff00, u64::from(*number) << 8))),
            // IPv4 or IPv6 (family 4 or 6, the two with bit 2; a drop without IP has family 0
            // and protocol 0, which `proto 0` must not take).
            None => B::T(Test::eq(fw::PROTO, 0xff04, u64::from(*number) << 8 | 4)),
        },
        Term::Netns(spec) => B::T(Test::eq(fw::DEV, 0xffff_ffff, u64::from(r.netns(spec).map_err(err)?))),
        Term::Ifindex(i) => B::T(Test::eq(fw::DEV, 0xffff_ffff << 32, u64::from(*i) << 32)),
        Term::Dev(name) => {
            r.dev(name).map_err(err)?;
            dev_name(name)
        }
        Term::Reason(name) => B::T(Test::eq(fw::REASON, 0xffff_ffff, u64::from(r.reason(name).map_err(err)?))),
        Term::Cause(id) => {
            let reasons = r.cause(id).map_err(err)?;
            let one = |&(code, l4): &(u32, Option<u8>)| {
                let reason = B::T(Test::eq(fw::REASON, 0xffff_ffff, u64::from(code)));
                match l4 {
                    Some(p) => and(reason, B::T(Test::eq(fw::PROTO, 0xff00, u64::from(p) << 8))),
                    None => reason,
                }
            };
            let mut it = reasons.iter();
            let first = it.next().map(one).ok_or_else(|| err(format!("cause {id} has no drop reason")))?;
            it.fold(first, |acc, x| or(acc, one(x)))
        }
    })
}

/// `proto` as a restriction of a host, net or port test.
fn with_proto(proto: Option<Proto>, b: B) -> B {
    match proto {
        Some(p) => and(proto_test(p), b),
        None => b,
    }
}

fn directed(dir: Dir, f: impl Fn(bool) -> B) -> B {
    match dir {
        Dir::Src => f(true),
        Dir::Dst => f(false),
        Dir::Any => or(f(true), f(false)),
        Dir::Both => and(f(true), f(false)),
    }
}

fn proto_test(p: Proto) -> B {
    B::T(match p {
        Proto::Ip => Test::eq(fw::PROTO, 0xff, 4),
        Proto::Ip6 => Test::eq(fw::PROTO, 0xff, 6),
        Proto::Icmp => Test::eq(fw::PROTO, 0xffff, 4 | 1 << 8),
        Proto::Icmp6 => Test::eq(fw::PROTO, 0xffff, 6 | 58 << 8),
        Proto::Arp => Test::eq(fw::PROTO, 0xffff << 16, 0x0806 << 16),
        Proto::Tcp | Proto::Udp | Proto::Sctp => {
            Test::eq(fw::PROTO, 0xff00, u64::from(p.l4().unwrap_or_default()) << 8)
        }
    })
}

/// The mask of the first `bits` bits of `bytes` network-order bytes, as a little-endian load
/// of them reads.
fn prefix_mask(bits: u32, bytes: usize) -> u64 {
    let mut m = [0u8; 8];
    for (i, b) in m.iter_mut().enumerate().take(bytes) {
        let left = bits.saturating_sub(8 * i as u32).min(8);
        *b = if left == 0 { 0 } else { 0xffu8 << (8 - left) };
    }
    u64::from_le_bytes(m)
}

/// The source (or destination) address in `addr/prefix`.
fn net(src: bool, addr: IpAddr, prefix: u8) -> B {
    let prefix = u32::from(prefix);
    match addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&a.octets());
            let word = if src { fw::SADDR4 } else { fw::DADDR4 };
            B::T(Test::eq(word, 1 << 32 | prefix_mask(prefix, 4), 1 << 32 | u64::from_le_bytes(b)))
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            let lo = u64::from_le_bytes(o[..8].try_into().unwrap_or_default());
            let hi = u64::from_le_bytes(o[8..].try_into().unwrap_or_default());
            let (mlo, mhi) = (prefix_mask(prefix, 8), prefix_mask(prefix.saturating_sub(64), 8));
            let (wlo, whi) = if src { (fw::SADDR_LO, fw::SADDR_HI) } else { (fw::DADDR_LO, fw::DADDR_HI) };
            let mut b = B::T(Test::eq(wlo, mlo, lo));
            if mhi != 0 {
                b = and(b, B::T(Test::eq(whi, mhi, hi)));
            }
            // An IPv4 key holds its address in the low 4 bytes of the first word and zeros
            // elsewhere (a key without IP, zeros only): where this test would pass on such
            // words, the family must be tested too.
            if (lo & mlo) >> 32 == 0 && hi & mhi == 0 {
                b = and(proto_test(Proto::Ip6), b);
            }
            b
        }
    }
}

/// The device name: its bytes and the NUL after them (the kernel does not clear what follows
/// the NUL of a renamed device).
fn dev_name(name: &str) -> B {
    let mut bytes = [0u8; 16];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    let n = name.len() + 1;
    let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap_or_default());
    let mask = |k: usize| if k >= 8 { u64::MAX } else { (1u64 << (8 * k)) - 1 };
    let lo = B::T(Test::eq(fw::DEV_NAME_LO, mask(n), word(0)));
    if n <= 8 { lo } else { and(lo, B::T(Test::eq(fw::DEV_NAME_HI, mask(n - 8), word(1)))) }
}
