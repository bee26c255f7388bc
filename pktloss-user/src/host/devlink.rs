//! devlink trap statistics (`devlink -s trap show`): a `DEVLINK_CMD_TRAP_GET` dump over generic
//! netlink, in the calling thread's namespace. No crate of the netlink-packet family speaks
//! devlink; the few attributes read here are walked by hand, bounds-checked.
use std::collections::BTreeMap;

use netlink_sys::{Socket, protocols::NETLINK_GENERIC};

use super::counters::netlink;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const DEVLINK_CMD_TRAP_GET: u8 = 61;
const DEVLINK_ATTR_BUS_NAME: u16 = 1;
const DEVLINK_ATTR_DEV_NAME: u16 = 2;
const DEVLINK_ATTR_STATS: u16 = 129;
const DEVLINK_ATTR_TRAP_NAME: u16 = 130;
const DEVLINK_ATTR_STATS_RX_PACKETS: u16 = 0;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Most messages read from one dump.
const MAX_MESSAGES: usize = 100_000;

/// A trap of a devlink device: `bus/device`, and the trap's name.
pub(crate) type TrapId = (String, String);

/// The attributes of one netlink attribute stream: (type, payload), bounds-checked.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        let Some(payload) = b.get(4..len) else { break };
        out.push((kind, payload));
        b = b.get((len + 3) & !3..).unwrap_or_default();
    }
    out
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
}

/// A generic netlink request: header, genl header (version 1), attributes.
fn request(family: u16, flags: u16, cmd: u8, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b.extend_from_slice(&[cmd, 1, 0, 0]);
    for (kind, payload) in attributes {
        let len = 4 + payload.len();
        b.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize((b.len() + 3) & !3, 0);
    }
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&family.to_ne_bytes());
    b[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    b[8..12].copy_from_slice(&1u32.to_ne_bytes());
    b
}

/// Send `req` and hand each answer's genl payload (past the 4-byte genl header) to `each`,
/// until the kernel says done (a dump) or acknowledges (a request). Not
/// [`netlink::walk`], which waits for the end of a dump: the family lookup is a request that
/// ends with its acknowledgement.
fn exchange(sock: &Socket, req: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), String> {
    sock.send(req, 0).map_err(|e| format!("netlink send: {e}"))?;
    let mut n = 0;
    loop {
        let (data, _) = sock.recv_from_full().map_err(|e| format!("netlink recv: {e}"))?;
        if data.is_empty() {
            return Err("netlink: the answer ended early".to_owned());
        }
        for f in netlink::frames(&data) {
            let f = f.map_err(|netlink::Truncated| "netlink: a truncated message".to_owned())?;
            match f.kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = f.payload().get(..4).map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                    return if code == 0 { Ok(()) } else { Err(std::io::Error::from_raw_os_error(-code).to_string()) };
                }
                _ => {
                    n += 1;
                    if n > MAX_MESSAGES {
                        return Err("netlink: too many messages".to_owned());
                    }
                    each(f.payload().get(4..).unwrap_or_default());
                }
            }
        }
    }
}

/// Packets each trap of each devlink device reported (`rx_packets` of its statistics), in
/// the calling thread's namespace. Empty when there is no devlink device; an error when
/// devlink is not there at all or the dump fails.
pub(crate) fn trap_stats() -> Result<BTreeMap<TrapId, u64>, String> {
    let sock = netlink::open(NETLINK_GENERIC)?;
    let mut family = None;
    exchange(
        &sock,
        &request(GENL_ID_CTRL, NLM_F_ACK, CTRL_CMD_GETFAMILY, &[(CTRL_ATTR_FAMILY_NAME, b"devlink\0")]),
        |p| {
            for (k, v) in attrs(p) {
                if k == CTRL_ATTR_FAMILY_ID && v.len() >= 2 {
                    family = Some(u16::from_ne_bytes([v[0], v[1]]));
                }
            }
        },
    )
    .map_err(|e| format!("the devlink generic netlink family: {e}"))?;
    let family = family.ok_or("no devlink generic netlink family in this kernel")?;
    let mut out = BTreeMap::new();
    exchange(&sock, &request(family, NLM_F_DUMP, DEVLINK_CMD_TRAP_GET, &[]), |p| {
        let (mut bus, mut dev, mut trap, mut rx) = (String::new(), String::new(), String::new(), None);
        for (k, v) in attrs(p) {
            match k {
                DEVLINK_ATTR_BUS_NAME => bus = string(v),
                DEVLINK_ATTR_DEV_NAME => dev = string(v),
                DEVLINK_ATTR_TRAP_NAME => trap = string(v),
                DEVLINK_ATTR_STATS => {
                    rx = attrs(v)
                        .into_iter()
                        .find(|(k, _)| *k == DEVLINK_ATTR_STATS_RX_PACKETS)
                        .and_then(|(_, v)| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)));
                }
                _ => {}
            }
        }
        if let Some(rx) = rx {
            out.insert((format!("{bus}/{dev}"), trap), rx);
        }
    })
    .map_err(|e| format!("devlink trap dump: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_bounded_and_nested() {
        let req = request(0x1a, NLM_F_DUMP, DEVLINK_CMD_TRAP_GET, &[(DEVLINK_ATTR_TRAP_NAME, b"tail_drop\0")]);
        assert_eq!(req.len(), 16 + 4 + 16);
        let a = attrs(&req[20..]);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].0, string(a[0].1).as_str()), (DEVLINK_ATTR_TRAP_NAME, "tail_drop"));
        // A length past the end, or shorter than the header, ends the walk.
        assert!(attrs(&[200, 0, 1, 0, 1, 2]).is_empty());
        assert!(attrs(&[2, 0, 1, 0]).is_empty());
    }

    /// On any kernel: the family resolves or the error is one line; never a panic.
    #[test]
    fn trap_stats_read_or_say_why() {
        match trap_stats() {
            Ok(m) => assert!(m.keys().all(|(d, t)| d.contains('/') && !t.is_empty())),
            Err(e) => assert!(!e.contains('\n') && !e.is_empty()),
        }
    }
}
