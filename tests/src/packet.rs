//! Hand-made IPv4 packets for faults that only a raw sender makes (out-of-window TCP segments,
//! SYN floods from addresses that do not answer, corrupted checksums), and a raw socket to send
//! them.
use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

pub const TCP_SYN: u8 = 0x02;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    for w in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (no options, DF) for `payload` bytes of protocol `proto`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: usize) -> Vec<u8> {
    let total = u16::try_from(20 + payload).expect("packet fits");
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let sum = checksum(0, &h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A TCP segment in an IPv4 packet, with correct checksums.
#[expect(clippy::too_many_arguments, reason = "the fields of a TCP segment, named where it is built")]
pub fn tcp(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags]);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let len = u16::try_from(t.len()).expect("segment fits");
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    let partial: u32 = pseudo.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let sum = checksum(partial, &t);
    t[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut p = ipv4(src, dst, libc::IPPROTO_TCP as u8, t.len());
    p.extend_from_slice(&t);
    p
}

/// A UDP datagram in an IPv4 packet whose UDP checksum is wrong (and non-zero: zero means "no
/// checksum"), as a corrupting link or NIC would deliver it.
pub fn udp_bad_checksum(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = u16::try_from(8 + payload.len()).expect("datagram fits");
    let mut p = ipv4(src, dst, libc::IPPROTO_UDP as u8, usize::from(ulen));
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&0x1234u16.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A raw IPv4 socket that sends whole packets (`IPPROTO_RAW`: the caller writes the IP header),
/// in the namespace of the calling thread.
pub struct RawSender(OwnedFd);

impl RawSender {
    pub fn new() -> Self {
        // SAFETY: a plain syscall; the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        Self(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Send one IPv4 packet (its destination is read from its header).
    pub fn send(&self, packet: &[u8]) {
        let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid socket, a buffer of the given length and a sockaddr_in of its size.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(n, packet.len() as isize, "sendto: {}", std::io::Error::last_os_error());
    }
}

impl Default for RawSender {
    fn default() -> Self {
        Self::new()
    }
}

/// The next sequence number a connected TCP socket will send (`TCP_REPAIR` lets a privileged
/// process read it: `TCP_QUEUE_SEQ` of the send queue), so that a hand-made segment can be put
/// exactly where the test wants it relative to the peer's window.
pub fn tcp_send_seq(fd: i32) -> u32 {
    const TCP_REPAIR: i32 = 19;
    const TCP_REPAIR_QUEUE: i32 = 20;
    const TCP_QUEUE_SEQ: i32 = 21;
    const TCP_SEND_QUEUE: i32 = 2;
    let set = |opt: i32, val: i32| {
        // SAFETY: a valid socket and a pointer to an int of the given size.
        let rc = unsafe {
            libc::setsockopt(fd, libc::IPPROTO_TCP, opt, (&raw const val).cast(), size_of::<i32>() as libc::socklen_t)
        };
        assert_eq!(rc, 0, "setsockopt(TCP {opt}, {val}): {}", std::io::Error::last_os_error());
    };
    set(TCP_REPAIR, 1);
    set(TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    let mut seq: u32 = 0;
    let mut len = size_of::<u32>() as libc::socklen_t;
    // SAFETY: a valid socket and a u32 out-buffer of the given size.
    let rc = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, (&raw mut seq).cast(), &raw mut len) };
    assert_eq!(rc, 0, "getsockopt(TCP_QUEUE_SEQ): {}", std::io::Error::last_os_error());
    // TCP_REPAIR_OFF_NO_WP: leave repair mode without the window probe that plain "off" sends
    // (a segment of an old sequence number, which the peer would drop).
    set(TCP_REPAIR, -1);
    seq
}
