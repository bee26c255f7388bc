//! The BPF programs on a device's tc hooks: tcx links (6.6+, `BPF_PROG_QUERY` on
//! `BPF_TCX_INGRESS`/`BPF_TCX_EGRESS`) and `cls_bpf` filters of its clsact qdisc (an
//! `RTM_GETTFILTER` dump, `TCA_BPF_ID`), read inside the device's namespace. Nothing is changed.
use std::{
    collections::HashMap,
    io,
    time::{Duration, Instant},
};

/// One BPF program attached to a tc hook of a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HookProgram {
    /// The kernel's program id (`bpftool prog show id N`).
    pub id: u32,
    /// The program's name (BPF object name, at most 15 characters).
    pub name: String,
    /// How it is attached: `tcx ingress`, or `clsact ingress` with the filter's preference,
    /// handle, its `tc` name and whether it is direct-action.
    pub attach: String,
}

/// Netlink constants (`linux/rtnetlink.h`, `linux/pkt_sched.h`, `linux/pkt_cls.h`).
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const TC_H_INGRESS_PARENT: u32 = 0xffff_fff2;
const TC_H_EGRESS_PARENT: u32 = 0xffff_fff3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
const NLMSG_HDR: usize = 16;
const TCMSG: usize = 20;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes of a netlink attribute stream: (type without flags, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty)) = (u16_at(b, 0), u16_at(b, 2)) {
        let len = usize::from(len);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty & 0x3fff, &b[4..len]));
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

fn c_str(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

/// A `cls_bpf` filter: program id, tc's name of it, preference, handle, direct-action.
pub(crate) type Filter = (u32, String, u16, u32, bool);

/// What was read of one hook: its programs, or why not.
pub(crate) type HookRead = Result<Vec<HookProgram>, String>;

/// A `cls_bpf` filter of a dump message: (program id, tc's name of it, preference, handle,
/// direct-action), or `None` for another kind of message or filter.
pub(crate) fn parse_filter(msg: &[u8]) -> Option<Filter> {
    let tcm = msg.get(..TCMSG)?;
    let handle = u32_at(tcm, 8)?;
    let pref = (u32_at(tcm, 16)? >> 16) as u16;
    let top = attrs(msg.get(TCMSG..)?);
    let kind = top.iter().find(|(t, _)| *t == TCA_KIND).map(|(_, v)| c_str(v))?;
    if kind != "bpf" {
        return None;
    }
    let opts = attrs(top.iter().find(|(t, _)| *t == TCA_OPTIONS)?.1);
    let id = opts.iter().find(|(t, _)| *t == TCA_BPF_ID).and_then(|(_, v)| u32_at(v, 0))?;
    let name = opts.iter().find(|(t, _)| *t == TCA_BPF_NAME).map(|(_, v)| c_str(v)).unwrap_or_default();
    let flags = opts.iter().find(|(t, _)| *t == TCA_BPF_FLAGS).and_then(|(_, v)| u32_at(v, 0)).unwrap_or(0);
    Some((id, name, pref, handle, flags & TCA_BPF_FLAG_ACT_DIRECT != 0))
}

/// Send one netlink request (`ty`, `flags`, `payload`) on `NETLINK_ROUTE` in this thread's
/// namespace and hand each answer of type `want` (its payload) to `f`, until the dump ends or
/// an error comes (`ENOENT`/`EINVAL`, no such qdisc or device: the answers so far).
fn nl_request(ty: u16, flags: u16, payload: &[u8], want: u16, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
    // SAFETY: a valid socket and a timeval of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let mut req = Vec::with_capacity(NLMSG_HDR + payload.len());
    req.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
    req.extend_from_slice(&ty.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(payload);
    // SAFETY: a valid socket and buffer.
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let dump = flags & NLM_F_DUMP != 0;
    let mut buf = vec![0u8; 32 << 10];
    // Bounded: a dump ends with NLMSG_DONE; a reply that never ends times out (SO_RCVTIMEO).
    for _ in 0..1024 {
        // SAFETY: a valid socket and buffer.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { return Err(io::Error::last_os_error()) };
        let mut b = &buf[..n];
        while let (Some(len), Some(t)) = (u32_at(b, 0), u16_at(b, 4)) {
            let len = len as usize;
            if len < NLMSG_HDR || len > b.len() {
                return Ok(());
            }
            match t {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = u32_at(b, NLMSG_HDR).map_or(0, |e| -(e as i32));
                    return if errno == 0 || errno == libc::EINVAL || errno == libc::ENOENT || errno == libc::ENODEV {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(errno))
                    };
                }
                t if t == want => f(&b[NLMSG_HDR..len]),
                _ => {}
            }
            b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
        if !dump {
            return Ok(());
        }
    }
    Ok(())
}

/// The `cls_bpf` filters of the clsact hook of `ifindex` in this thread's namespace.
fn clsact_filters(ifindex: u32, ingress: bool) -> io::Result<Vec<Filter>> {
    let mut tcm = Vec::with_capacity(TCMSG);
    tcm.extend_from_slice(&[0u8; 4]); // family (AF_UNSPEC), padding
    tcm.extend_from_slice(&ifindex.to_ne_bytes());
    tcm.extend_from_slice(&0u32.to_ne_bytes()); // handle
    tcm.extend_from_slice(&(if ingress { TC_H_INGRESS_PARENT } else { TC_H_EGRESS_PARENT }).to_ne_bytes());
    tcm.extend_from_slice(&0u32.to_ne_bytes()); // info
    let mut out = Vec::new();
    nl_request(RTM_GETTFILTER, NLM_F_DUMP, &tcm, RTM_NEWTFILTER, |m| out.extend(parse_filter(m)))?;
    Ok(out)
}

/// The XDP program of a link message: (program id, mode), or `None` without one.
pub(crate) fn parse_link_xdp(msg: &[u8]) -> Option<(u32, &'static str)> {
    const IFINFOMSG: usize = 16;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_PROG_ID: u16 = 4;
    let top = attrs(msg.get(IFINFOMSG..)?);
    let xdp = attrs(top.iter().find(|(t, _)| *t == IFLA_XDP)?.1);
    let mode = match xdp.iter().find(|(t, _)| *t == IFLA_XDP_ATTACHED).and_then(|(_, v)| v.first())? {
        1 => "xdpdrv (native)",
        2 => "xdpgeneric (skb)",
        3 => "xdpoffload",
        4 => "several modes",
        _ => return None,
    };
    let id = xdp.iter().find(|(t, _)| *t == IFLA_XDP_PROG_ID).and_then(|(_, v)| u32_at(v, 0))?;
    Some((id, mode))
}

/// A device with an XDP program in the driver (native mode, alone or beside a generic one),
/// or offloaded to the NIC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DriverXdp {
    pub ifindex: u32,
    pub name: String,
    /// The driver's program (`IFLA_XDP_DRV_PROG_ID`, or `IFLA_XDP_PROG_ID` in native mode);
    /// for an offloaded one, its id (`IFLA_XDP_HW_PROG_ID`).
    pub prog_id: u32,
    /// Offloaded to the NIC (`xdpoffload`), not run by the driver.
    pub offload: bool,
}

/// The driver's XDP program of a link message (native or offloaded), or `None` when it has
/// none (no program, or only a generic one: its drops are skb frees with reason `XDP`).
pub(crate) fn parse_driver_xdp(msg: &[u8]) -> Option<DriverXdp> {
    const IFINFOMSG: usize = 16;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_PROG_ID: u16 = 4;
    const IFLA_XDP_DRV_PROG_ID: u16 = 5;
    const IFLA_XDP_HW_PROG_ID: u16 = 7;
    let ifindex = u32_at(msg, 4)?;
    let top = attrs(msg.get(IFINFOMSG..)?);
    let name = top.iter().find(|(t, _)| *t == IFLA_IFNAME).map(|(_, v)| c_str(v)).unwrap_or_default();
    let xdp = attrs(top.iter().find(|(t, _)| *t == IFLA_XDP)?.1);
    let id = |ty: u16| xdp.iter().find(|(t, _)| *t == ty).and_then(|(_, v)| u32_at(v, 0));
    let mode = *xdp.iter().find(|(t, _)| *t == IFLA_XDP_ATTACHED).and_then(|(_, v)| v.first())?;
    let (prog_id, offload) = match mode {
        1 => (id(IFLA_XDP_DRV_PROG_ID).or_else(|| id(IFLA_XDP_PROG_ID))?, false),
        3 => (id(IFLA_XDP_HW_PROG_ID).or_else(|| id(IFLA_XDP_PROG_ID))?, true),
        4 => match id(IFLA_XDP_DRV_PROG_ID) {
            Some(p) => (p, false),
            None => (id(IFLA_XDP_HW_PROG_ID)?, true),
        },
        _ => return None,
    };
    Some(DriverXdp { ifindex, name, prog_id, offload })
}

/// The devices of this thread's namespace with an XDP program in their driver or NIC (one
/// `RTM_GETLINK` dump).
pub(crate) fn driver_xdp_here() -> io::Result<Vec<DriverXdp>> {
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    let mut out = Vec::new();
    nl_request(RTM_GETLINK, NLM_F_DUMP, &[0u8; 16], RTM_NEWLINK, |m| out.extend(parse_driver_xdp(m)))?;
    Ok(out)
}

/// The XDP program of `ifindex` in this thread's namespace (`RTM_GETLINK`, `IFLA_XDP`).
pub(crate) fn xdp_here(ifindex: u32) -> io::Result<Option<HookProgram>> {
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    let mut ifi = vec![0u8; 16];
    ifi[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    let mut found = None;
    nl_request(RTM_GETLINK, 0, &ifi, RTM_NEWLINK, |m| found = found.or(parse_link_xdp(m)))?;
    Ok(found.map(|(id, mode)| HookProgram { id, name: prog_name(id), attach: format!("xdp {mode}") }))
}

/// The program's name from its id.
pub(crate) fn prog_name(id: u32) -> String {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The programs on the ingress (or egress) tc hook of `ifindex`, in this thread's namespace:
/// tcx links first (they run first), then the clsact filters in preference order.
pub(crate) fn read_here(ifindex: u32, ingress: bool) -> io::Result<Vec<HookProgram>> {
    let hook = if ingress { "ingress" } else { "egress" };
    let mut out = Vec::new();
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes.
    let found = !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr().cast()) }.is_null();
    if found {
        let dev = c_str(&name);
        let at =
            if ingress { aya::programs::tc::TcAttachType::Ingress } else { aya::programs::tc::TcAttachType::Egress };
        // Before 6.6 there is no tcx: the query fails, and only clsact filters are read.
        if let Ok((_, progs)) = aya::programs::SchedClassifier::query_tcx(&dev, at) {
            out.extend(progs.into_iter().map(|p| HookProgram {
                id: p.id(),
                name: p.name_as_str().unwrap_or_default().to_owned(),
                attach: format!("tcx {hook}"),
            }));
        }
    }
    let mut filters = clsact_filters(ifindex, ingress)?;
    filters.sort_by_key(|f| (f.2, f.3));
    for (id, tc_name, pref, handle, da) in filters {
        out.push(HookProgram {
            id,
            name: prog_name(id),
            attach: format!(
                "clsact {hook} pref {pref} handle {handle:#x} bpf {tc_name}{}",
                if da { " direct-action" } else { "" }
            ),
        });
    }
    Ok(out)
}

/// The programs of each (namespace, device, hook) with tc drops, read once when its drops are
/// first seen and again at most every [`REREAD`] while they go on (programs come and go).
#[derive(Debug, Default)]
pub(crate) struct TcPrograms {
    seen: HashMap<(u32, u64, u32, bool), (Instant, HookRead)>,
    xdp: HashMap<(u32, u64, u32), Result<Option<HookProgram>, String>>,
}

/// How often the programs of a device with tc drops are read again.
const REREAD: Duration = Duration::from_secs(5);

impl TcPrograms {
    /// Read the programs of the hook of `ifindex` in namespace `netns` (inode; `cookie` to tell
    /// a namespace from an earlier one of the same inode) unless read lately.
    pub(crate) fn look(&mut self, netns: u32, cookie: u64, ifindex: u32, ingress: bool) {
        let key = (netns, cookie, ifindex, ingress);
        if self.seen.get(&key).is_some_and(|(t, _)| t.elapsed() < REREAD) {
            return;
        }
        let read = match crate::host::netns::list().get(&netns) {
            Some(ns) => {
                crate::host::netns::run_in(ns, move || Ok(read_here(ifindex, ingress)?)).map_err(|e| format!("{e:#}"))
            }
            None => Err(format!("namespace {netns} not found")),
        };
        // A namespace gone keeps what was read while it lived.
        if read.is_err() && self.seen.get(&key).is_some_and(|(_, r)| r.is_ok()) {
            return;
        }
        self.seen.insert(key, (Instant::now(), read));
    }

    /// Read the XDP program of `ifindex` in namespace `netns` once (kept: a later reading may
    /// find it detached).
    pub(crate) fn look_xdp(&mut self, netns: u32, cookie: u64, ifindex: u32) -> &Result<Option<HookProgram>, String> {
        self.xdp.entry((netns, cookie, ifindex)).or_insert_with(|| match crate::host::netns::list().get(&netns) {
            Some(ns) => crate::host::netns::run_in(ns, move || Ok(xdp_here(ifindex)?)).map_err(|e| format!("{e:#}")),
            None => Err(format!("namespace {netns} not found")),
        })
    }

    /// What was read of a hook: the programs, or why they could not be read (`None`: never
    /// looked at).
    pub(crate) fn get(&self, netns: u32, cookie: u64, ifindex: u32, ingress: bool) -> Option<&HookRead> {
        self.seen.get(&(netns, cookie, ifindex, ingress)).map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn the_xdp_program_of_a_link_is_parsed() {
        let mut xdp = attr(2, &[1]);
        xdp.extend(attr(4, &77u32.to_ne_bytes()));
        let mut msg = vec![0u8; 16];
        msg.extend(attr(3, b"vb\0"));
        msg.extend(attr(0x2b | 0x8000, &xdp));
        assert_eq!(parse_link_xdp(&msg), Some((77, "xdpdrv (native)")));
        let mut none = vec![0u8; 16];
        none.extend(attr(0x2b | 0x8000, &attr(2, &[0])));
        assert_eq!(parse_link_xdp(&none), None);
    }

    #[test]
    fn the_driver_xdp_program_of_a_link_is_parsed() {
        let link = |xdp: Vec<u8>| {
            let mut msg = vec![0u8; 16];
            msg[4..8].copy_from_slice(&5u32.to_ne_bytes());
            msg.extend(attr(3, b"ens4\0"));
            msg.extend(attr(0x2b | 0x8000, &xdp));
            msg
        };
        let mut native = attr(2, &[1]);
        native.extend(attr(4, &77u32.to_ne_bytes()));
        native.extend(attr(5, &77u32.to_ne_bytes()));
        let want = DriverXdp { ifindex: 5, name: "ens4".into(), prog_id: 77, offload: false };
        assert_eq!(parse_driver_xdp(&link(native)), Some(want.clone()));
        // Native and generic at once: the driver's program.
        let mut multi = attr(2, &[4]);
        multi.extend(attr(5, &77u32.to_ne_bytes()));
        multi.extend(attr(6, &78u32.to_ne_bytes()));
        assert_eq!(parse_driver_xdp(&link(multi)), Some(want));
        // Generic only: none (its drops are skb frees).
        let mut generic = attr(2, &[2]);
        generic.extend(attr(4, &78u32.to_ne_bytes()));
        assert_eq!(parse_driver_xdp(&link(generic)), None);
        assert_eq!(parse_driver_xdp(&link(attr(2, &[0]))), None);
        assert_eq!(parse_driver_xdp(&[0; 7]), None);
    }

    #[test]
    fn a_cls_bpf_filter_is_parsed_and_other_kinds_are_not() {
        let mut tcm = vec![0u8; TCMSG];
        tcm[8..12].copy_from_slice(&1u32.to_ne_bytes());
        tcm[16..20].copy_from_slice(&(49152u32 << 16 | 0x0300).to_ne_bytes());
        let mut opts = attr(TCA_BPF_NAME, b"drop.o:[tc]\0");
        opts.extend(attr(TCA_BPF_ID, &42u32.to_ne_bytes()));
        opts.extend(attr(TCA_BPF_FLAGS, &1u32.to_ne_bytes()));
        let mut msg = tcm.clone();
        msg.extend(attr(TCA_KIND, b"bpf\0"));
        msg.extend(attr(TCA_OPTIONS | 0x8000, &opts));
        assert_eq!(parse_filter(&msg), Some((42, "drop.o:[tc]".to_owned(), 49152, 1, true)));
        let mut u32f = tcm;
        u32f.extend(attr(TCA_KIND, b"u32\0"));
        assert_eq!(parse_filter(&u32f), None);
        assert_eq!(parse_filter(&[1, 2, 3]), None);
        // A truncated attribute ends the stream, no panic.
        let mut bad = msg.clone();
        bad.truncate(msg.len() - 3);
        drop(parse_filter(&bad));
    }
}
