//! A lossy path outside the host's kernel: two TUN devices (one per namespace) joined by a
//! relay in this process, which forwards IPv4 packets between them and loses every Nth TCP data
//! packet of one direction. The kernel frees what the relay reads as delivered (the packet left
//! the host as far as it knows), so the loss leaves no drop event: only TCP retransmissions.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

const TUNSETIFF: u32 = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Create TUN device `name` in the namespace of the calling thread (use `Netns::run`).
pub fn open(name: &str) -> OwnedFd {
    // A minimal init (the kernel matrix's guests) has no /dev/net/tun: make the node systemd
    // would (misc 10:200); opening it loads the module.
    if std::fs::metadata("/dev/net/tun").is_err() {
        drop(std::fs::create_dir_all("/dev/net"));
        // SAFETY: a NUL-terminated path.
        let rc = unsafe { libc::mknod(c"/dev/net/tun".as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 200)) };
        assert!(
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST),
            "mknod /dev/net/tun: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a NUL-terminated path; the fd is owned right away.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert!(fd >= 0, "open /dev/net/tun: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    let mut req = IfReq { name: [0; 16], flags: IFF_TUN | IFF_NO_PI, pad: [0; 22] };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a valid fd and an ifreq-sized buffer.
    let rc = unsafe { libc::ioctl(fd, crate::ioctl_request(TUNSETIFF), &raw mut req) };
    assert_eq!(rc, 0, "TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    owned
}

/// The relay between two TUN devices; stops (and closes them) on drop.
pub struct Relay {
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Forward a <-> b; of the TCP packets with data from a to b, lose every `every`th.
    pub fn start(a: OwnedFd, b: OwnedFd, every: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut threads = Vec::new();
        for (from, to, lossy) in [(a.clone(), b.clone(), true), (b, a, false)] {
            let (stop, lost) = (stop.clone(), lost.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut data = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd { fd: from.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&raw mut pfd, 1, 100) } <= 0 {
                        continue;
                    }
                    // SAFETY: a valid fd and a buffer of the given length.
                    let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    let Ok(n) = usize::try_from(n) else { continue };
                    let p = &buf[..n];
                    if lossy && is_tcp_data(p) {
                        data += 1;
                        if data.is_multiple_of(every) {
                            lost.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    // SAFETY: a valid fd and n bytes of the buffer.
                    unsafe { libc::write(to.as_raw_fd(), p.as_ptr().cast(), n) };
                }
            }));
        }
        Self { stop, lost, threads }
    }

    /// Packets lost so far.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            drop(t.join());
        }
    }
}

/// An IPv4 TCP packet that carries data.
fn is_tcp_data(p: &[u8]) -> bool {
    if p.len() < 40 || p[0] >> 4 != 4 || p[9] != libc::IPPROTO_TCP as u8 {
        return false;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let doff = p.get(ihl + 12).map_or(0, |d| usize::from(d >> 4) * 4);
    total > ihl + doff
}
