//! A receiver that holds its TCP socket locked: `recv()` into memory registered with
//! userfaultfd, so the kernel's copy to user space faults inside `tcp_recvmsg` (which holds the
//! socket) and waits until the test resolves the fault. Segments arriving meanwhile go to the
//! socket's backlog, as they do behind an application that keeps its socket busy.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    thread::JoinHandle,
    time::{Duration, Instant},
};

const UFFDIO_API: u32 = 0xc018_aa3f;
const UFFDIO_REGISTER: u32 = 0xc020_aa00;
const UFFD_API: u64 = 0xaa;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

/// A `recv()` blocked inside the kernel with the socket held; [`Self::release`] lets it go.
pub struct HeldRecv {
    uffd: Option<OwnedFd>,
    thread: Option<JoinHandle<isize>>,
}

impl HeldRecv {
    /// Start a `recv()` of `fd` into faulting memory and wait until it faults. The socket must
    /// have data queued (so that the copy happens, instead of a wait without the lock).
    pub fn start(fd: i32) -> Self {
        // SAFETY: plain syscalls; every pointer is to a live local of the size the kernel expects.
        unsafe {
            let u = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK);
            assert!(u >= 0, "userfaultfd: {}", std::io::Error::last_os_error());
            let uffd = OwnedFd::from_raw_fd(i32::try_from(u).expect("fd"));
            let mut api = [UFFD_API, 0, 0];
            assert_eq!(
                libc::ioctl(uffd.as_raw_fd(), crate::ioctl_request(UFFDIO_API), api.as_mut_ptr()),
                0,
                "UFFDIO_API: {}",
                std::io::Error::last_os_error()
            );
            let len = 2 * 4096;
            let mem = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(mem, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
            let mut reg = [mem as u64, len as u64, UFFDIO_REGISTER_MODE_MISSING, 0];
            assert_eq!(
                libc::ioctl(uffd.as_raw_fd(), crate::ioctl_request(UFFDIO_REGISTER), reg.as_mut_ptr()),
                0,
                "UFFDIO_REGISTER: {}",
                std::io::Error::last_os_error()
            );
            let addr = mem as usize;
            let thread = std::thread::spawn(move || libc::recv(fd, addr as *mut libc::c_void, len, 0));
            // The fault is reported on the userfaultfd: then the copy, and the socket, are held.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mut pfd = libc::pollfd { fd: uffd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                if libc::poll(&raw mut pfd, 1, 100) > 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "recv() did not fault on userfaultfd memory");
            }
            Self { uffd: Some(uffd), thread: Some(thread) }
        }
    }

    /// Let the `recv()` finish (closing the userfaultfd resolves the fault); returns its result.
    pub fn release(mut self) -> isize {
        drop(self.uffd.take());
        self.thread.take().map_or(-1, |t| t.join().unwrap_or(-1))
    }
}

impl Drop for HeldRecv {
    fn drop(&mut self) {
        drop(self.uffd.take());
        if let Some(t) = self.thread.take() {
            drop(t.join());
        }
    }
}
