//! The HTTP side of `pktloss serve`: the axum router served over hyper connections whose header
//! reads, stalls, number and shutdown are bounded, so that no client can keep `serve` from
//! stopping or from answering scrapes.
use std::{
    io,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, oneshot},
};

/// From a connection's start, or from the end of its previous response, until a request's head
/// is read whole; then the connection is closed. A request head is a few hundred bytes that any
/// client sends at once, so 10 s is generous, and it frees a slowloris's connection soon. hyper
/// counts the wait for the next request on a kept-alive connection as header reading, so this
/// is also the keep-alive idle limit: Prometheus, scraping every 15 s by default, then opens a
/// connection per scrape (one handshake, nothing next to a scrape).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on which no byte moved either way for this long is closed: a client that stopped
/// reading its response (the exposition fills the socket's send buffer) or that sends a body it
/// never finishes. Above the 10 s a scrape may wait for the collector, when nothing moves.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. One more is accepted and closed at once (rather than left in the
/// kernel's accept queue, where a scraper would wait on an exporter it cannot tell from a dead
/// one): it sees the close and tries again at its next scrape. 256 is far above what scrapers
/// need (a few Prometheus servers, each one connection per target) and leaves most of the usual
/// 1024-descriptor soft limit to the programs and maps. A slow client holds its slot at most
/// [`HEADER_READ_TIMEOUT`] (before its request) or [`STALL_TIMEOUT`] (after).
const MAX_CONNECTIONS: usize = 256;

/// On shutdown, how long the connections answering a request get to finish it; those left are
/// dropped (closed) with the runtime. Well within the 2 s that stopping may take, the rest of
/// which goes to detaching the programs.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The limits a server applies (the constants above; shorter ones in the unit tests).
#[derive(Clone, Copy, Debug)]
struct Bounds {
    header_read: Duration,
    stall: Duration,
    max_connections: usize,
    grace: Duration,
}

impl Bounds {
    const SERVE: Self = Self {
        header_read: HEADER_READ_TIMEOUT,
        stall: STALL_TIMEOUT,
        max_connections: MAX_CONNECTIONS,
        grace: SHUTDOWN_GRACE,
    };
}

/// Serve `app` on `listener` until `quit` fires (or its sender is gone), then give the
/// connections [`SHUTDOWN_GRACE`] to finish. Returns then, whatever the clients do; the caller
/// drops the runtime, which closes the connections left.
pub(crate) async fn serve(listener: TcpListener, app: Router, quit: oneshot::Receiver<()>) {
    serve_bounded(listener, app, quit, Bounds::SERVE).await;
}

async fn serve_bounded(listener: TcpListener, app: Router, quit: oneshot::Receiver<()>, bounds: Bounds) {
    let Bounds { header_read, stall, max_connections, grace } = bounds;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read);
    let mut quit = pin!(quit);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset before it was
                    // accepted: wait a little rather than spin.
                    log::debug!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut quit => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log::debug!("HTTP: {max_connections} connections open; closing a new one");
            drop(stream);
            continue;
        };
        let (stream, moved) = Watched::new(stream);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())));
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = pin!(conn);
            loop {
                let quiet = moved.quiet();
                let Some(left) = stall.checked_sub(quiet).filter(|l| !l.is_zero()) else {
                    log::debug!("HTTP: closing a connection stalled for {quiet:?}");
                    break;
                };
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(e) = served {
                            log::debug!("HTTP connection: {e}");
                        }
                        break;
                    }
                    () = tokio::time::sleep(left) => {}
                }
            }
        });
    }
    drop(listener);
    // Idle connections close at once; those mid-request finish it or are dropped after the grace.
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        log::debug!("HTTP: connections still open after {grace:?}; closing them");
    }
}

/// When bytes last moved on a connection, in milliseconds since it was accepted.
struct Moved {
    start: Instant,
    last_ms: AtomicU64,
}

impl Moved {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since bytes last moved.
    fn quiet(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A TCP stream that records when bytes last moved either way.
struct Watched {
    inner: TcpStream,
    moved: Arc<Moved>,
}

impl Watched {
    fn new(inner: TcpStream) -> (Self, Arc<Moved>) {
        let moved = Arc::new(Moved { start: Instant::now(), last_ms: AtomicU64::new(0) });
        (Self { inner, moved: Arc::clone(&moved) }, moved)
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! The bounds on real loopback sockets, with short limits.
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
        os::fd::AsRawFd as _,
    };

    use axum::routing::get;

    use super::*;

    /// A body larger than the sockets' buffers can hold, so that a client that does not read
    /// stalls the server's writes.
    const BIG: usize = 64 << 20;

    const SHORT: Bounds = Bounds {
        header_read: Duration::from_millis(500),
        stall: Duration::from_secs(1),
        max_connections: 2,
        grace: Duration::from_millis(300),
    };

    /// A server with `bounds` on a thread of its own: its address, the quit sender, and the
    /// thread (which returns how long `serve_bounded` took to return after quit).
    fn start(bounds: Bounds) -> (String, oneshot::Sender<()>, std::thread::JoinHandle<Duration>) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("addr").to_string();
        let (quit_tx, quit_rx) = oneshot::channel();
        let (quit_seen_tx, quit_seen_rx) = oneshot::channel::<Instant>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let app =
                    Router::new().route("/", get(|| async { "ok" })).route("/big", get(|| async { vec![b'x'; BIG] }));
                let (inner_tx, inner_rx) = oneshot::channel();
                tokio::spawn(async move {
                    drop(quit_rx.await);
                    quit_seen_tx.send(Instant::now()).ok();
                    inner_tx.send(()).ok();
                });
                serve_bounded(listener, app, inner_rx, bounds).await;
            });
            let done = Instant::now();
            drop(rt);
            quit_seen_rx.blocking_recv().map_or(Duration::ZERO, |t| done - t)
        });
        (addr, quit_tx, thread)
    }

    /// Read until EOF or an error, at most `within`: the bytes read and whether the server
    /// closed.
    fn drain(s: &mut TcpStream, within: Duration) -> (usize, bool) {
        let t = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while t.elapsed() < within {
            match s.read(&mut buf) {
                Ok(0) => return (got, true),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => return (got, true),
            }
        }
        (got, false)
    }

    fn get_ok(addr: &str) -> bool {
        let Ok(mut s) = TcpStream::connect(addr) else { return false };
        drop(s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        let mut r = String::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        drop(s.read_to_string(&mut r));
        r.starts_with("HTTP/1.1 200")
    }

    #[test]
    fn half_sent_request_is_closed_after_the_header_read_timeout() {
        let (addr, quit, thread) = start(SHORT);
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("write");
        let t = Instant::now();
        let (_, closed) = drain(&mut s, Duration::from_secs(5));
        assert!(closed, "still open after 5 s");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(2), "closed after {took:?}");
        quit.send(()).ok();
        drop(thread.join());
    }

    #[test]
    fn connections_beyond_the_cap_are_closed_at_once() {
        let (addr, quit, thread) = start(Bounds { header_read: Duration::from_secs(30), ..SHORT });
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).expect("connect")).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(&addr).expect("connect");
        let (_, closed) = drain(&mut third, Duration::from_secs(1));
        assert!(closed, "a connection beyond the cap was left open");
        drop(held);
        // Slots are freed when their connections end.
        let t = Instant::now();
        while !get_ok(&addr) {
            assert!(t.elapsed() < Duration::from_secs(5), "no slot freed");
            std::thread::sleep(Duration::from_millis(50));
        }
        quit.send(()).ok();
        drop(thread.join());
    }

    /// A client that asked for a body larger than the sockets' buffers and reads none of it holds
    /// its slot (the only one here) until the stall timeout frees it. (Seen from the client, the
    /// server's close comes only after the buffered bytes, which a window this small lets
    /// through slowly; the slot is what shows it.)
    #[test]
    fn a_client_that_stops_reading_is_closed_after_the_stall_timeout() {
        let (addr, quit, thread) = start(Bounds { header_read: Duration::from_secs(30), max_connections: 1, ..SHORT });
        let mut s = TcpStream::connect(&addr).expect("connect");
        let small: libc::c_int = 4096;
        // SAFETY: setsockopt on an open socket with an int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const small).cast(),
                libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUF");
        let t = Instant::now();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!get_ok(&addr), "the slot was free while the stalled response was being written");
        while !get_ok(&addr) {
            assert!(t.elapsed() < Duration::from_secs(5), "the stalled connection still holds its slot");
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = t.elapsed();
        assert!(took >= SHORT.stall, "slot freed after only {took:?}");
        drop(s);
        quit.send(()).ok();
        drop(thread.join());
    }

    #[test]
    fn shutdown_ends_within_the_grace_whatever_the_clients() {
        let (addr, quit, thread) = start(Bounds { header_read: Duration::from_secs(30), max_connections: 16, ..SHORT });
        let mut open: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).expect("connect")).collect();
        for s in &mut open {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("write");
        }
        assert!(get_ok(&addr), "a request beside half-sent ones");
        std::thread::sleep(Duration::from_millis(100));
        quit.send(()).ok();
        let took = thread.join().expect("server thread");
        assert!(took < SHORT.grace + Duration::from_millis(200), "serve returned {took:?} after quit");
        for s in &mut open {
            assert!(drain(s, Duration::from_secs(1)).1, "a connection outlived the runtime");
        }
    }
}
