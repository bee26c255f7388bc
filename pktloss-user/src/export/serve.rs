//! `pktloss serve`: attach once, answer each scrape of `/metrics` with the exact counts read at
//! that moment, and diagnose the host in rolling windows.
//!
//! Threads: the collector (this thread) owns the [`Session`]: it drains detail events, answers
//! scrape requests that the HTTP thread (tokio; axum's router on the bounded hyper connections of
//! [`super::http`]) sends it over a channel, and closes each
//! diagnosis window; a window's counters are read and diagnosed on a thread of its own, so that
//! reading many namespaces never delays a scrape.
use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, mpsc},
    time::{Duration, Instant, SystemTime},
};

use std::os::fd::{AsRawFd as _, FromRawFd as _};

use anyhow::{Context as _, Result};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use pktloss_common::stat;
use tokio::sync::oneshot;

use super::metrics::{Limits, Living, MetricsState, NetnsId, NetnsName};
use crate::{
    host::counters::CounterWatch,
    host::counters::Gathered,
    kernel::tracer::{Options, RawCounts},
    session::{Diagnosed, Session, gather_after, stop_flag},
};

/// The port `serve` listens on by default (loopback). The Prometheus default-port allocation
/// list's 9100-9999 range is full; 19623 is neither on it nor in its table of exporters outside
/// that range.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:19623";

/// How often the living namespaces are listed with `--netns-labels`, and the cookies of the new
/// ones read, so that a namespace that lives a second is named (a listing reads `/run/netns`
/// and stats `/proc/*/ns/net`: about a millisecond per thousand processes).
const LIST_NETNS_EVERY: Duration = Duration::from_secs(1);

/// How often the cookie of every listed namespace is read again (an inode that the kernel gave
/// to a new namespace between two listings is then told apart even without drops).
const VERIFY_NETNS_EVERY: Duration = Duration::from_secs(10);

/// How often the namespaces with drops are read during a window (so that one gone before the
/// window ends keeps a reading at most this old). Once a second, as `diagnose` does, cost
/// 1.2 % of a core with one namespace dropping 100k packets/s on the benchmark VM; every 5 s
/// costs a fifth of that.
const READ_NETNS_EVERY: Duration = Duration::from_secs(5);

/// What `serve` was asked for.
#[derive(Clone, Debug)]
pub(crate) struct ServeConfig {
    pub listen: SocketAddr,
    /// Length of a diagnosis window.
    pub window: Duration,
    pub limits: Limits,
}

/// A scrape request: the format asked for (`OpenMetrics` or not), and where the collector
/// sends the exposition.
type Scrape = (bool, oneshot::Sender<String>);

/// Run `pktloss serve` until SIGINT/SIGTERM.
pub(crate) fn run(opts: Options, cfg: ServeConfig) -> Result<()> {
    // Bind first: a taken port is one line, before anything is attached.
    let listener =
        std::net::TcpListener::bind(cfg.listen).map_err(|source| crate::Error::Listen { addr: cfg.listen, source })?;
    listener.set_nonblocking(true).context("setting the listening socket non-blocking")?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    let stop = stop_flag()?;
    let mut session = Session::start(opts)?;
    // Attached: keep only what reading maps and namespaces needs, before any thread that
    // lives long is started (capabilities are per thread).
    drop_capabilities();
    let (_, kernel) = crate::session::host_facts();
    let reasons: Vec<(u32, String)> = session.agg.reasons.iter().map(|(c, n)| (c, n.to_owned())).collect();
    let host_netns = crate::host::netns::self_inode().unwrap_or(0);
    let mut state =
        MetricsState::new(cfg.limits.clone(), reasons, (env!("CARGO_PKG_VERSION").to_owned(), kernel), host_netns);

    let (scrape_tx, scrape_rx) = mpsc::channel::<Scrape>();
    // Each request also bumps this eventfd, which wakes the collector at once.
    let wake = std::sync::Arc::new(eventfd()?);
    let wake_http = std::sync::Arc::clone(&wake);
    let (quit_tx, quit_rx) = oneshot::channel::<()>();
    let http = std::thread::Builder::new()
        .name("pktloss-http".to_owned())
        .spawn(move || http_thread(listener, Requests { scrapes: scrape_tx, wake: wake_http }, quit_rx))
        .context("starting the HTTP thread")?;

    let mut window = Window::open(CounterWatch::baseline(), &mut session)?;
    session.announce();
    eprintln!("pktloss: serving http://{addr}/metrics (diagnosis every {})", humantime::format_duration(cfg.window));
    let mut watch = NetnsWatch::new();
    let mut job: Option<mpsc::Receiver<(Diagnosed, f64)>> = None;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if http.is_finished() {
            break Err(anyhow::anyhow!("the HTTP server stopped"));
        }
        // Detail events as they come; scrape requests wake it at once.
        session.pump_also(Some(wake.as_raw_fd()), 100);
        let mut counter = [0u8; 8];
        // SAFETY: reading the eventfd's 8-byte counter into a local (EAGAIN when zero).
        unsafe { libc::read(wake.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        session.follow_namespaces();
        if cfg.limits.max_netns > 0 {
            watch.tick(&[]);
        }
        let mut first = true;
        while let Ok((openmetrics, reply)) = scrape_rx.try_recv() {
            if first {
                refresh(&mut session, &mut state, &mut watch, &cfg)?;
                first = false;
            }
            // The scraper may have given up; nothing to do then.
            let t = Instant::now();
            let text = if openmetrics { state.exposition() } else { state.prometheus_text() };
            log::debug!("scrape: {} bytes encoded in {:?}", text.len(), t.elapsed());
            drop(reply.send(text));
        }
        if let Some(rx) = &job
            && let Ok((d, end)) = rx.try_recv()
        {
            state.observe_window(&d.diagnosis, end);
            log::info!("pktloss: diagnosis window: {} causes", d.diagnosis.causes.len());
            window.before = Some(CounterWatch::from_reading(baseline(d.after)));
            job = None;
        }
        if job.is_none() && window.opened.elapsed() >= cfg.window {
            match window.close(&mut session) {
                Ok((rx, next)) => {
                    job = Some(rx);
                    window = next;
                }
                Err(e) => break Err(e),
            }
        }
    };
    // Scrapes still waiting get 503 at once; the HTTP thread stops accepting and gives the
    // connections answering a request SHUTDOWN_GRACE (it may be gone already: it stopped on its
    // own). Meanwhile the programs are detached.
    drop(scrape_rx);
    quit_tx.send(()).ok();
    drop(session); // detach
    join_http(http);
    result
}

/// Keep only the capabilities that reading maps and namespaces needs (per thread: before any
/// thread that lives long is started).
fn drop_capabilities() {
    let kept = crate::host::caps::keep_only(crate::host::caps::SERVE_KEEPS);
    // Threads made before keep theirs: the namespace workers are made again as needed.
    crate::host::netns::retire_workers();
    match kept {
        Ok(dropped) if !dropped.is_empty() => {
            let mut names: Vec<String> = dropped.iter().map(ToString::to_string).collect();
            names.sort();
            log::info!("pktloss: dropped capabilities no longer needed: {}", names.join(", "));
        }
        Ok(_) => {}
        Err(e) => log::warn!("pktloss: could not drop capabilities: {e}"),
    }
}

/// A non-blocking eventfd, owned.
fn eventfd() -> Result<std::os::fd::OwnedFd> {
    // SAFETY: eventfd has no preconditions; the fd is owned below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(anyhow::anyhow!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(efd) })
}

/// Read the maps for a scrape and fold them into the state: the summary, the namespaces with
/// drops (looked up when not known yet, the counts of gone ones forgotten), drop bytes, the
/// programs' statistics.
fn refresh(session: &mut Session, state: &mut MetricsState, watch: &mut NetnsWatch, cfg: &ServeConfig) -> Result<()> {
    // The programs' maps only: device TX counts (read by entering every namespace
    // with drops) are not exported.
    let t0 = Instant::now();
    let raw = session.tracer.read()?;
    let t1 = Instant::now();
    let summary = session.summary_of(&raw);
    log::debug!("scrape: maps read in {:?} ({} flows), summary in {:?}", t1 - t0, raw.flows.len(), t1.elapsed());
    // Namespaces with drops whose identity is not known yet: look again now.
    let living = if cfg.limits.max_netns > 0 {
        let ids: Vec<NetnsId> = summary.netns_drops.iter().filter(|n| n.netns.inode != 0).map(|n| n.netns).collect();
        watch.tick(&ids);
        Some(&watch.living)
    } else {
        None
    };
    let removed = state.observe(&summary, living, Instant::now());
    if !removed.is_empty() {
        let n = session.tracer.forget_netns(&|k| removed.contains(&NetnsId { inode: k.netns, cookie: k.cookie }));
        log::debug!("forgot the counts of {} namespaces gone ({n} keys)", removed.len());
    }
    let reasons = &session.agg.reasons;
    state.observe_bytes(raw.drop_bytes.iter().map(|(k, b)| (k.reason, reasons.name(k.reason), *b)));
    state.set_programs(session.tracer.program_stats());
    state.set_process_cache_resets(session.agg.flow_process_resets);
    state.set_netns_overflow(raw.stat(stat::NETNS_FAILS));
    Ok(())
}

/// Wait for the HTTP thread, joined only once finished, and waited for a little longer than
/// its grace: a thread that does not stop (it should) must not keep the process from exiting.
fn join_http(http: std::thread::JoinHandle<()>) {
    let deadline = Instant::now() + super::http::SHUTDOWN_GRACE + Duration::from_millis(500);
    while !http.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if http.is_finished() {
        drop(http.join());
    } else {
        log::warn!("pktloss: the HTTP thread did not stop; exiting without it");
    }
}

/// The living namespaces, each with its cookie and label (`--netns-labels`).
struct NetnsWatch {
    living: Living,
    listed: Instant,
    verified: Instant,
    /// Names of namespaces with drops that have no `ip netns` name (their pod, container or
    /// unit), read from their processes.
    names: crate::host::names::NamespaceNames,
}

impl NetnsWatch {
    fn new() -> Self {
        let long_ago = Instant::now().checked_sub(VERIFY_NETNS_EVERY).unwrap_or_else(Instant::now);
        Self {
            living: Living::new(),
            listed: long_ago,
            verified: long_ago,
            names: crate::host::names::NamespaceNames::default(),
        }
    }

    /// The namespaces with drops that the listing left unnamed (`netns:INODE`), named by their
    /// processes where they can be (the names bound to the cookie read with them).
    fn name_unnamed(&mut self, with_drops: &[NetnsId]) {
        for id in with_drops {
            let Some((cookie, label)) = self.living.get(&id.inode) else { continue };
            if !label.is_unnamed() {
                continue;
            }
            let cookie = *cookie;
            if let Some(info) = self.names.get(id.inode, cookie).filter(|i| !i.label.is_empty()) {
                let name = NetnsName::Named(info.label.clone());
                self.living.insert(id.inode, (cookie, name));
            }
        }
    }

    /// Whether namespace `id` is one of the living ones as last read (a cookie of 0 on either
    /// side: the kernel cannot tell, the inode decides).
    fn knows(&self, id: &NetnsId) -> bool {
        self.living.get(&id.inode).is_some_and(|(c, _)| *c == id.cookie || *c == 0 || id.cookie == 0)
    }

    /// List the namespaces when it is time, or at once when one of `with_drops` is not known;
    /// read the cookies of the new ones (of all every `VERIFY_NETNS_EVERY`, and of those with
    /// drops that do not match); then name those of `with_drops` the listing left unnamed.
    fn tick(&mut self, with_drops: &[NetnsId]) {
        let unknown: Vec<&NetnsId> = with_drops.iter().filter(|id| !self.knows(id)).collect();
        if !unknown.is_empty() || self.listed.elapsed() >= LIST_NETNS_EVERY {
            self.list(&unknown);
        }
        self.name_unnamed(with_drops);
    }

    fn list(&mut self, unknown: &[&NetnsId]) {
        self.listed = Instant::now();
        let listed = crate::host::netns::list();
        let verify = self.verified.elapsed() >= VERIFY_NETNS_EVERY;
        if verify {
            self.verified = Instant::now();
        }
        let read: Vec<crate::host::netns::NetnsRef> = listed
            .values()
            .filter(|r| {
                // New, or another name at a known inode (the kernel gave it to a new one).
                verify
                    || self.living.get(&r.inode).is_none_or(|(_, l)| !same_or_named(l, &NetnsName::from(r.label())))
                    || unknown.iter().any(|id| id.inode == r.inode)
            })
            .cloned()
            .collect();
        let cookies = if read.is_empty() { None } else { crate::host::netns::cookies(read) }.unwrap_or_default();
        self.living.retain(|inode, _| listed.contains_key(inode));
        for (inode, r) in &listed {
            match cookies.get(inode) {
                Some(c) => {
                    self.living.insert(*inode, (*c, r.label().into()));
                }
                None => {
                    // Not read this time (known already, or the kernel has no cookies).
                    self.living.entry(*inode).or_insert_with(|| (0, r.label().into()));
                }
            }
        }
    }
}

/// Whether `label` is what the namespace listed as `listed` is called: the same, or the name
/// pktloss gave it when it was listed unnamed (`netns:INODE`), not another namespace at the
/// inode.
fn same_or_named(label: &NetnsName, listed: &NetnsName) -> bool {
    label == listed || (listed.is_unnamed() && !label.is_unnamed())
}

/// One diagnosis window: the namespaces' counters at its start and the drop counts then.
struct Window {
    opened: Instant,
    /// The reading that ended the window before (set when its diagnosis is done), or the first
    /// reading.
    before: Option<CounterWatch>,
    raw: RawCounts,
}

/// The reading that ended a window as the next one's baseline: the namespaces gone during it
/// are left out, and those born during it are no longer new.
fn baseline(mut after: Gathered) -> Gathered {
    // (Kept, a namespace gone or unreadable would be looked for again at every window: the
    // list would grow with every container that ever lived.)
    after.snapshots.retain(|s| s.gone_at.is_none() && !s.not_found);
    after.checks.retain(|c| after.snapshots.iter().any(|s| s.netns == c.netns));
    for s in &mut after.snapshots {
        s.appeared_at = None;
    }
    after
}

impl Window {
    fn open(before: CounterWatch, session: &mut Session) -> Result<Self> {
        session.watch_namespaces_every(READ_NETNS_EVERY);
        Ok(Self { opened: Instant::now(), before: Some(before), raw: session.read()? })
    }

    /// End the window: its drops since it opened, diagnosed on a thread with the namespaces'
    /// counters read now. The next window opens at once; its baseline is this one's reading.
    fn close(mut self, session: &mut Session) -> Result<(mpsc::Receiver<(Diagnosed, f64)>, Self)> {
        let now = session.read()?;
        let interval = crate::aggregate::interval(&self.raw, &now);
        let mut summary = session.summary_of(&interval);
        summary.total_drops = interval.stat(stat::DROPS);
        let lifecycle = session.lifecycle.take();
        let before = self.before.take().unwrap_or_else(CounterWatch::baseline);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("pktloss-diagnose".to_owned())
            .spawn(move || {
                let d = gather_after(before, &mut summary, lifecycle);
                let end = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                drop(tx.send((d, end)));
            })
            .context("starting a diagnosis thread")?;
        session.watch_namespaces_every(READ_NETNS_EVERY);
        let next = Self { opened: Instant::now(), before: None, raw: now };
        Ok((rx, next))
    }
}

/// How the HTTP thread reaches the collector.
#[derive(Clone)]
struct Requests {
    scrapes: mpsc::Sender<Scrape>,
    wake: std::sync::Arc<std::os::fd::OwnedFd>,
}

impl Requests {
    fn send(&self, s: Scrape) -> bool {
        let ok = self.scrapes.send(s).is_ok();
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to the eventfd (it cannot overflow at one per request).
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
        ok
    }
}

/// The HTTP server: `/metrics` asks the collector for the exposition.
fn http_thread(listener: std::net::TcpListener, scrapes: Requests, quit: oneshot::Receiver<()>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the HTTP runtime: {e}");
            return;
        }
    };
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Router::new().route("/metrics", get(metrics)).route("/", get(index)).with_state(scrapes);
        super::http::serve(listener, app, quit).await;
        std::io::Result::Ok(())
    });
    if let Err(e) = served {
        log::error!("HTTP server: {e}");
    }
    // Dropping the runtime drops every connection still open (their tasks), at once.
    drop(rt);
}

async fn metrics(State(scrapes): State<Requests>, headers: axum::http::HeaderMap) -> Response {
    // OpenMetrics for whoever asks for it (Prometheus does), else the classic text format.
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    let (tx, rx) = oneshot::channel();
    if !scrapes.send((openmetrics, tx)) {
        return (StatusCode::SERVICE_UNAVAILABLE, "pktloss is stopping\n").into_response();
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(body)) => {
            let kind = if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "pktloss did not answer in time\n").into_response(),
    }
}

async fn index() -> &'static str {
    "pktloss: drop metrics at /metrics\n"
}
