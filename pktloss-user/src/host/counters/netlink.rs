//! Netlink readers of the calling thread's namespace: links, qdiscs, drop routes and failed
//! neighbours (rtnetlink), TCP listeners and UDP sockets (`sock_diag`), conntrack statistics
//! (ctnetlink). A netlink socket belongs to the namespace of the thread that opened it, so
//! each reader opens its own socket on the thread that joined the namespace.
//!
//! What `ip`, `tc` and `ss` print is rebuilt from the same kernel messages, so the structs are
//! those the tools' parsers made: `ss`'s address forms (`*` for a dual-stack wildcard,
//! `%dev` for a bound device), `tc`'s handle forms (`8001:`, `ffff:fff1`, `root`).
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Debug,
    net::IpAddr,
    os::fd::AsRawFd as _,
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp, State, XdpAttached},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
    tc::{TcAttribute, TcHandle, TcMessage, TcStats2},
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{
        ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
        nlas::{MemInfo, Nla as DiagNla},
    },
};
use netlink_sys::{Socket, SocketAddr, protocols};

use super::{DeviceStats, Listener, QdiscStats, RouteEntry, UdpSocket};

/// A netlink dump that does not finish within this is given up (one recv at a time).
const RECV_TIMEOUT_S: libc::time_t = 5;
/// Most messages read from one dump (a namespace with more sockets is cut, and says so).
const MAX_MESSAGES: usize = 200_000;

/// A socket of `protocol` in the calling thread's namespace, with a receive timeout.
pub(in crate::host) fn open(protocol: isize) -> Result<Socket, String> {
    let mut s = Socket::new(protocol).map_err(|e| format!("netlink socket: {e}"))?;
    s.bind_auto().map_err(|e| format!("netlink bind: {e}"))?;
    s.connect(&SocketAddr::new(0, 0)).map_err(|e| format!("netlink connect: {e}"))?;
    let tv = libc::timeval { tv_sec: RECV_TIMEOUT_S, tv_usec: 0 };
    // SAFETY: setsockopt on an open socket with a timeval of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!("netlink SO_RCVTIMEO: {}", std::io::Error::last_os_error()));
    }
    Ok(s)
}

/// One netlink message of a dump (or of a fixture of one): its header's type, flags and
/// sequence number, and the whole message (header included).
#[derive(Clone, Copy, Debug)]
pub(in crate::host) struct Frame<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub bytes: &'a [u8],
}

impl<'a> Frame<'a> {
    /// What follows the 16-byte header.
    pub(in crate::host) fn payload(&self) -> &'a [u8] {
        self.bytes.get(16..).unwrap_or_default()
    }
}

/// A message whose length runs past the bytes read (or is shorter than a header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::host) struct Truncated;

/// The messages one after the other in `bytes` (what one `recv` returns, or a fixture), each
/// 4-byte aligned; a truncated one is the last item.
pub(in crate::host) fn frames(bytes: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, Truncated>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let word = |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let len = word(0) as usize;
        if len < 16 || len > rest.len() {
            rest = &[];
            return Some(Err(Truncated));
        }
        let (msg, tail) = rest.split_at(len);
        let frame = Frame {
            kind: u16::from_ne_bytes([msg[4], msg[5]]),
            flags: u16::from_ne_bytes([msg[6], msg[7]]),
            seq: word(8),
            bytes: msg,
        };
        rest = tail.get(len.next_multiple_of(4) - len..).unwrap_or_default();
        Some(Ok(frame))
    })
}

/// Why a dump failed.
#[derive(Debug)]
pub(super) enum WalkError {
    Send(std::io::Error),
    Recv(std::io::Error),
    /// The socket gave no more bytes before `NLMSG_DONE`.
    Ended,
    Truncated,
    /// The kernel answered `NLMSG_ERROR` with this error.
    Kernel(std::io::Error),
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send(e) => write!(f, "netlink send: {e}"),
            Self::Recv(e) => write!(f, "netlink recv: {e}"),
            Self::Ended => f.write_str("netlink: the dump ended without NLMSG_DONE"),
            Self::Truncated => f.write_str("netlink: a truncated message"),
            Self::Kernel(e) => write!(f, "{e}"),
        }
    }
}

/// The one dump loop of every reader here: send `request` (a whole message with
/// `NLM_F_DUMP`, sequence number `seq`) on `sock` and hand each answer of that sequence to
/// `each` until `NLMSG_DONE`; an `NLMSG_ERROR` with an error ends it with that error.
/// Returns whether the kernel marked the dump interrupted (`NLM_F_DUMP_INTR`: the objects
/// changed while it was read).
pub(super) fn walk(
    sock: &Socket,
    request: &[u8],
    seq: u32,
    mut each: impl FnMut(Frame<'_>),
) -> Result<bool, WalkError> {
    const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
    const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
    const NLMSG_MIN_TYPE: u16 = 0x10;
    sock.send(request, 0).map_err(WalkError::Send)?;
    let mut interrupted = false;
    loop {
        let (data, _) = sock.recv_from_full().map_err(WalkError::Recv)?;
        if data.is_empty() {
            return Err(WalkError::Ended);
        }
        for f in frames(&data) {
            let f = f.map_err(|Truncated| WalkError::Truncated)?;
            if f.seq != seq {
                continue;
            }
            interrupted |= f.flags & NLM_F_DUMP_INTR != 0;
            match f.kind {
                NLMSG_DONE => return Ok(interrupted),
                NLMSG_ERROR => {
                    let errno = f.payload().get(..4).map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                    if errno != 0 {
                        return Err(WalkError::Kernel(std::io::Error::from_raw_os_error(-errno)));
                    }
                }
                k if k >= NLMSG_MIN_TYPE => each(f),
                _ => {}
            }
        }
    }
}

/// Send one dump request and collect the answers until `NLMSG_DONE`. Messages that do not
/// decode are skipped and counted (`.1`).
fn dump<M>(protocol: isize, request: M) -> Result<(Vec<M>, usize), String>
where
    M: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    let sock = open(protocol)?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    let (mut out, mut bad) = (Vec::new(), 0);
    walk(&sock, &buf, 1, |f| match NetlinkMessage::<M>::deserialize(f.bytes) {
        Ok(NetlinkMessage { payload: NetlinkPayload::InnerMessage(inner), .. }) if out.len() < MAX_MESSAGES => {
            out.push(inner);
        }
        Ok(_) => {}
        Err(_) => bad += 1,
    })
    .map_err(|e| e.to_string())?;
    Ok((out, bad))
}

fn route_dump(request: RouteNetlinkMessage) -> Result<(Vec<RouteNetlinkMessage>, usize), String> {
    dump(protocols::NETLINK_ROUTE, request)
}

/// `" (N messages could not be decoded)"` or nothing.
pub(crate) fn undecoded(what: &str, bad: usize) -> Option<String> {
    (bad > 0).then(|| format!("{what}: {bad} netlink messages could not be decoded (left out)"))
}

/// What `ip -j` calls an operational state.
fn operstate(s: State) -> String {
    match s {
        State::Unknown => "UNKNOWN".to_owned(),
        State::NotPresent => "NOTPRESENT".to_owned(),
        State::Down => "DOWN".to_owned(),
        State::LowerLayerDown => "LOWERLAYERDOWN".to_owned(),
        State::Testing => "TESTING".to_owned(),
        State::Dormant => "DORMANT".to_owned(),
        State::Up => "UP".to_owned(),
        State::Other(n) => n.to_string(),
        _ => format!("{s:?}").to_ascii_uppercase(),
    }
}

/// The `ip -j` XDP mode number of an attachment.
fn xdp_mode(a: XdpAttached) -> Option<u8> {
    match a {
        XdpAttached::None => None,
        XdpAttached::Driver => Some(1),
        XdpAttached::SocketBuffer => Some(2),
        XdpAttached::Hardware => Some(3),
        XdpAttached::Multiple => Some(4),
        XdpAttached::Other(n) => Some(n),
        _ => Some(0),
    }
}

fn device(m: &LinkMessage) -> Option<DeviceStats> {
    let mut d = DeviceStats {
        ifindex: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        lower_up: m.header.flags.contains(LinkFlags::LowerUp),
        ..DeviceStats::default()
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => d.name.clone_from(n),
            LinkAttribute::OperState(s) => d.operstate = operstate(*s),
            LinkAttribute::Mtu(v) => d.mtu = *v,
            LinkAttribute::Qdisc(q) => d.qdisc.clone_from(q),
            LinkAttribute::TxQueueLen(v) => d.txqlen = *v,
            LinkAttribute::CarrierChanges(v) => d.carrier_changes = u64::from(*v),
            LinkAttribute::LinkInfo(infos) => {
                if let Some(k) = infos.iter().find_map(|i| if let LinkInfo::Kind(k) = i { Some(k) } else { None }) {
                    d.kind = k.to_string();
                }
            }
            LinkAttribute::Xdp(x) => {
                let mode = x.iter().find_map(|x| if let LinkXdp::Attached(a) = x { xdp_mode(*a) } else { None });
                let id = x.iter().find_map(|x| if let LinkXdp::ProgId(id) = x { Some(*id) } else { None });
                d.xdp = mode.map(|mode| match id {
                    Some(id) => format!("mode {mode} prog id {id}"),
                    None => format!("mode {mode}"),
                });
            }
            LinkAttribute::Stats64(s) => {
                d.rx_bytes = s.rx_bytes;
                d.rx_packets = s.rx_packets;
                d.rx_errors = s.rx_errors;
                d.rx_dropped = s.rx_dropped;
                d.rx_over_errors = s.rx_over_errors;
                d.rx_crc_errors = s.rx_crc_errors;
                d.rx_frame_errors = s.rx_frame_errors;
                d.rx_fifo_errors = s.rx_fifo_errors;
                d.rx_missed_errors = s.rx_missed_errors;
                d.rx_length_errors = s.rx_length_errors;
                d.rx_nohandler = s.rx_nohandler;
                d.tx_bytes = s.tx_bytes;
                d.tx_packets = s.tx_packets;
                d.tx_errors = s.tx_errors;
                d.tx_dropped = s.tx_dropped;
                d.tx_fifo_errors = s.tx_fifo_errors;
                d.tx_carrier_errors = s.tx_carrier_errors;
            }
            _ => {}
        }
    }
    (!d.name.is_empty()).then_some(d)
}

/// The links of this namespace with their 64-bit statistics, kind and XDP program (what
/// `ip -s -s -d -j link show` prints), in ifindex order.
pub(crate) fn links() -> Result<(Vec<DeviceStats>, usize), String> {
    let (msgs, bad) = route_dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    let mut out: Vec<DeviceStats> =
        msgs.iter().filter_map(|m| if let RouteNetlinkMessage::NewLink(l) = m { device(l) } else { None }).collect();
    out.sort_by_key(|d| d.ifindex);
    Ok((out, bad))
}

/// `tc`'s form of a handle: `8001:`, `8001:1`, `:1`, `root`, `none`.
fn tc_handle(h: TcHandle) -> String {
    match (h.major, h.minor) {
        (0xffff, 0xffff) => "root".to_owned(),
        (0, 0) => "none".to_owned(),
        (0, mi) => format!(":{mi:x}"),
        (ma, 0) => format!("{ma:x}:"),
        (ma, mi) => format!("{ma:x}:{mi:x}"),
    }
}

/// The qdiscs of this namespace with their statistics (what `tc -s -j qdisc show` prints).
/// `names` maps ifindex to device name.
pub(crate) fn qdiscs(names: &HashMap<u32, String>) -> Result<(Vec<QdiscStats>, usize), String> {
    let (msgs, bad) = route_dump(RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()))?;
    let mut out = Vec::new();
    for m in &msgs {
        let RouteNetlinkMessage::NewQueueDiscipline(t) = m else { continue };
        let dev = u32::try_from(t.header.index).ok().and_then(|i| names.get(&i)).cloned().unwrap_or_default();
        if dev.is_empty() {
            continue;
        }
        let parent = tc_handle(t.header.parent);
        // tc prints a qdisc handle by its major only ("8001:", "0:").
        let mut q = QdiscStats { dev, handle: format!("{:x}:", t.header.handle.major), parent, ..Default::default() };
        let mut have_stats2 = false;
        for a in &t.attributes {
            match a {
                TcAttribute::Kind(k) => q.kind.clone_from(k),
                TcAttribute::Stats2(s2) => {
                    have_stats2 = true;
                    for s in s2 {
                        match s {
                            TcStats2::Basic(b) => {
                                q.bytes = b.bytes;
                                q.packets = u64::from(b.packets);
                            }
                            TcStats2::Queue(s) => {
                                q.drops = u64::from(s.drops);
                                q.overlimits = u64::from(s.overlimits);
                                q.requeues = u64::from(s.requeues);
                                q.backlog = u64::from(s.backlog);
                                q.qlen = u64::from(s.qlen);
                            }
                            _ => {}
                        }
                    }
                }
                TcAttribute::Stats(s) if !have_stats2 => {
                    q.bytes = s.bytes;
                    q.packets = u64::from(s.packets);
                    q.drops = u64::from(s.drops);
                    q.overlimits = u64::from(s.overlimits);
                    q.backlog = u64::from(s.backlog);
                    q.qlen = u64::from(s.qlen);
                }
                _ => {}
            }
        }
        out.push(q);
    }
    Ok((out, bad))
}

fn route_addr(a: &RouteAddress) -> String {
    match a {
        RouteAddress::Inet(a) => a.to_string(),
        RouteAddress::Inet6(a) => a.to_string(),
        other => format!("{other:?}"),
    }
}

/// `ip`'s name of a routing table.
fn table_name(t: u32) -> String {
    match t {
        253 => "default".to_owned(),
        254 => "main".to_owned(),
        255 => "local".to_owned(),
        n => n.to_string(),
    }
}

/// Routes of type blackhole, unreachable, prohibit or throw in every table, IPv4 and IPv6
/// (what `ip [-6] route show table all` prints of them).
pub(crate) fn drop_routes() -> Result<(Vec<RouteEntry>, usize), String> {
    let mut out = Vec::new();
    let mut bad = 0;
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        let (msgs, b) = route_dump(RouteNetlinkMessage::GetRoute(req))?;
        bad += b;
        for m in &msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else { continue };
            let kind = match r.header.kind {
                RouteType::BlackHole => "blackhole",
                RouteType::Unreachable => "unreachable",
                RouteType::Prohibit => "prohibit",
                RouteType::Throw => "throw",
                _ => continue,
            };
            let len = r.header.destination_prefix_length;
            let max = if family == AddressFamily::Inet { 32 } else { 128 };
            let addr = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => Some(route_addr(d)),
                _ => None,
            });
            let dst = match addr {
                _ if len == 0 => "default".to_owned(),
                Some(a) if len == max => a,
                Some(a) => format!("{a}/{len}"),
                None => "default".to_owned(),
            };
            let table = r
                .attributes
                .iter()
                .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
                .unwrap_or_else(|| u32::from(r.header.table));
            out.push(RouteEntry { kind: kind.to_owned(), dst, table: table_name(table) });
        }
    }
    Ok((out, bad))
}

/// Neighbour entries in FAILED or INCOMPLETE state, as `ip neigh` shows them: "dst dev DEV STATE".
pub(crate) fn failed_neighbours(names: &HashMap<u32, String>) -> Result<(Vec<String>, usize), String> {
    let (msgs, bad) = route_dump(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()))?;
    let mut out = Vec::new();
    for m in &msgs {
        let RouteNetlinkMessage::NewNeighbour(n) = m else { continue };
        let state = match n.header.state {
            NeighbourState::Failed => "FAILED",
            NeighbourState::Incomplete => "INCOMPLETE",
            _ => continue,
        };
        let dst = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(a.to_string()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(a.to_string()),
            _ => None,
        });
        let Some(dst) = dst else { continue };
        let dev = names.get(&n.header.ifindex).cloned().unwrap_or_else(|| format!("if{}", n.header.ifindex));
        out.push(format!("{dst} dev {dev} {state}"));
    }
    Ok((out, bad))
}

/// One inet socket as `sock_diag` reports it: the header and its `INET_DIAG_SKMEMINFO`
/// (what `ss -m` prints as `skmem:(r,rb,t,tb,...,d)`).
struct DiagSocket {
    resp: InetResponse,
    skmem: Option<MemInfo>,
    v6only: bool,
}

fn diag_dump(protocol: u8, states: StateFlags) -> Result<(Vec<DiagSocket>, usize), String> {
    let mut out = Vec::new();
    let mut bad = 0;
    for family in [AF_INET, AF_INET6] {
        let req = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol,
            extensions: ExtensionFlags::SKMEMINFO,
            states: states.clone(),
            socket_id: if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() },
        });
        let (msgs, b) = dump(protocols::NETLINK_SOCK_DIAG, req)?;
        bad += b;
        for m in msgs {
            let SockDiagMessage::InetResponse(resp) = m else { continue };
            let mut skmem = None;
            let mut v6only = false;
            for n in &resp.nlas {
                match n {
                    DiagNla::SkV6Only(v) => v6only = *v,
                    DiagNla::MemInfo(m) => skmem = Some(m.clone()),
                    _ => {}
                }
            }
            out.push(DiagSocket { resp: *resp, skmem, v6only });
        }
    }
    Ok((out, bad))
}

/// `ss`'s form of an address: `*` for a dual-stack wildcard, `%dev` after a bound device.
fn ss_addr(a: IpAddr, v6only: bool, ifindex: u32, names: &HashMap<u32, String>) -> String {
    let mut s = match a {
        IpAddr::V6(v) if v.is_unspecified() && !v6only => "*".to_owned(),
        a => a.to_string(),
    };
    if ifindex != 0 {
        s.push('%');
        s.push_str(names.get(&ifindex).map_or("?", String::as_str));
    }
    s
}

/// `ss`'s form of a peer, `addr:port` with `*` for port 0 and brackets around IPv6.
fn ss_peer(a: IpAddr, port: u16, v6only: bool) -> String {
    let addr = match a {
        IpAddr::V6(v) if v.is_unspecified() && !v6only => "*".to_owned(),
        IpAddr::V6(v) => format!("[{v}]"),
        IpAddr::V4(v) => v.to_string(),
    };
    if port == 0 { format!("{addr}:*") } else { format!("{addr}:{port}") }
}

/// Listening TCP sockets (what `ss -ltnme` prints): accept queue, backlog, drops; `process`
/// is left empty for the caller.
pub(crate) fn tcp_listeners(names: &HashMap<u32, String>) -> Result<(Vec<Listener>, usize), String> {
    let (socks, bad) = diag_dump(IPPROTO_TCP, StateFlags::LISTEN)?;
    let out = socks
        .into_iter()
        .map(|s| {
            let id = &s.resp.header.socket_id;
            Listener {
                addr: ss_addr(id.source_address, s.v6only, id.interface_id, names),
                port: id.source_port,
                accept_queue: u64::from(s.resp.header.recv_queue),
                backlog: u64::from(s.resp.header.send_queue),
                drops: s.skmem.as_ref().map(|m| u64::from(m.drops)),
                drops_delta: None,
                inode: Some(u64::from(s.resp.header.inode)),
                process: String::new(),
            }
        })
        .collect();
    Ok((out, bad))
}

/// UDP sockets of every state (what `ss -uamne` prints): queues, buffer sizes, drops.
pub(crate) fn udp_sockets(names: &HashMap<u32, String>) -> Result<(Vec<UdpSocket>, usize), String> {
    let (socks, bad) = diag_dump(IPPROTO_UDP, StateFlags::all())?;
    let out = socks
        .into_iter()
        .map(|s| {
            let id = &s.resp.header.socket_id;
            UdpSocket {
                addr: ss_addr(id.source_address, s.v6only, id.interface_id, names),
                port: id.source_port,
                peer: ss_peer(id.destination_address, id.destination_port, s.v6only),
                rx_queue: u64::from(s.resp.header.recv_queue),
                tx_queue: u64::from(s.resp.header.send_queue),
                rcvbuf: s.skmem.as_ref().map(|m| u64::from(m.receive_queue_max)),
                sndbuf: s.skmem.as_ref().map(|m| u64::from(m.send_queue_max)),
                drops: s.skmem.as_ref().map_or(0, |m| u64::from(m.drops)),
                drops_delta: None,
                inode: Some(u64::from(s.resp.header.inode)),
                process: String::new(),
            }
        })
        .collect();
    Ok((out, bad))
}

/// ctnetlink's per-CPU statistics (`IPCTNL_MSG_CT_GET_STATS_CPU`, what `conntrack -S` prints),
/// summed over CPUs. Read only where `/proc/net/stat/nf_conntrack` is missing.
pub(crate) fn conntrack_stats() -> Result<BTreeMap<String, u64>, String> {
    // nfnetlink: subsystem CTNETLINK (1) << 8 | IPCTNL_MSG_CT_GET_STATS_CPU (4).
    const MSG_TYPE: u16 = (1 << 8) | 4;
    // CTA_STATS_* attribute numbers, as `conntrack -S` names them.
    const NAMES: [(u16, &str); 13] = [
        (1, "searched"),
        (2, "found"),
        (3, "new"),
        (4, "invalid"),
        (5, "ignore"),
        (6, "delete"),
        (7, "delete_list"),
        (8, "insert"),
        (9, "insert_failed"),
        (10, "drop"),
        (11, "early_drop"),
        (12, "error"),
        (13, "search_restart"),
    ];
    let sock = open(protocols::NETLINK_NETFILTER)?;
    // nlmsghdr (16 bytes) + nfgenmsg (family AF_UNSPEC, version 0, res_id 0).
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&MSG_TYPE.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[0, 0, 0, 0]);
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    walk(&sock, &req, 1, |f| {
        // Attributes after nlmsghdr + nfgenmsg; values are big-endian u32.
        let attrs = f.payload().get(4..).unwrap_or_default();
        let mut a = 0;
        while a + 4 <= attrs.len() {
            let alen = usize::from(u16::from_ne_bytes([attrs[a], attrs[a + 1]]));
            let atype = u16::from_ne_bytes([attrs[a + 2], attrs[a + 3]]) & 0x3fff;
            if alen < 4 || a + alen > attrs.len() {
                break;
            }
            let name = NAMES.iter().find(|(t, _)| *t == atype).map(|(_, n)| *n);
            if let (8, Some(name)) = (alen, name) {
                let v = u32::from_be_bytes([attrs[a + 4], attrs[a + 5], attrs[a + 6], attrs[a + 7]]);
                let e = out.entry(name.to_owned()).or_insert(0);
                *e = e.saturating_add(u64::from(v));
            }
            a += (alen + 3) & !3;
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}
