//! `pktloss serve`: attach once, answer each scrape of `/metrics` with the exact counts read at
//! that moment, and diagnose the host in rolling windows.
//!
//! Threads: the collector (this thread) owns the [`Session`]: it drains detail events, answers
//! scrape requests that the HTTP thread (tokio, axum) sends it over a channel, and closes each
//! diagnosis window; a window's counters are read and diagnosed on a thread of its own, so that
//! reading many namespaces never delays a scrape.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::Ordering,
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

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

use super::metrics::{Limits, MetricsState};
use crate::{
    host::counters::Gathered,
    kernel::tracer::{Options, RawCounts, StartError},
    session::{Diagnosed, Session, gather_after, gather_before, stop_flag},
};

/// The port `serve` listens on by default (loopback). The Prometheus default-port allocation
/// list's 9100-9999 range is full; 19623 is neither on it nor in its table of exporters outside
/// that range.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:19623";

/// How often the living namespaces are listed (their series are removed a grace period after
/// they are gone).
const LIST_NETNS_EVERY: Duration = Duration::from_secs(10);

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
    let listener = std::net::TcpListener::bind(cfg.listen)
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", cfg.listen)))?;
    listener.set_nonblocking(true).context("setting the listening socket non-blocking")?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    let stop = stop_flag()?;
    let mut session = Session::start(opts)?;
    let (_, kernel) = crate::session::host_facts();
    let reasons: Vec<(u32, String)> = session.agg.reasons.iter().map(|(c, n)| (c, n.to_owned())).collect();
    let host_netns = crate::host::netns::self_inode().unwrap_or(0);
    let mut state =
        MetricsState::new(cfg.limits.clone(), reasons, (env!("CARGO_PKG_VERSION").to_owned(), kernel), host_netns);

    let (scrape_tx, scrape_rx) = mpsc::channel::<Scrape>();
    let (quit_tx, quit_rx) = oneshot::channel::<()>();
    let http = std::thread::Builder::new()
        .name("pktloss-http".to_owned())
        .spawn(move || http_thread(listener, scrape_tx, quit_rx))
        .context("starting the HTTP thread")?;

    let mut window = Window::open(gather_before(), &mut session)?;
    session.announce();
    eprintln!("pktloss: serving http://{addr}/metrics (diagnosis every {})", humantime::format_duration(cfg.window));
    let mut living: BTreeMap<u32, String> = BTreeMap::new();
    let mut listed = Instant::now().checked_sub(LIST_NETNS_EVERY).unwrap_or_else(Instant::now);
    let mut job: Option<mpsc::Receiver<(Diagnosed, f64)>> = None;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if http.is_finished() {
            break Err(anyhow::anyhow!("the HTTP server stopped"));
        }
        session.pump(20);
        session.tell_lifecycle();
        let mut first = true;
        while let Ok((openmetrics, reply)) = scrape_rx.try_recv() {
            if first {
                let raw = session.read()?;
                let summary = session.summary_of(&raw);
                // Names of the namespaces: listed again when one with drops is not known yet,
                // and every LIST_NETNS_EVERY (those no longer listed are gone).
                if cfg.limits.max_netns > 0 {
                    let unknown = summary.flows.iter().any(|f| f.netns != 0 && !living.contains_key(&f.netns));
                    if unknown || listed.elapsed() >= LIST_NETNS_EVERY {
                        listed = Instant::now();
                        living = crate::host::netns::list().into_iter().map(|(i, r)| (i, r.label())).collect();
                    }
                }
                state.observe(&summary, Some(&living), Instant::now());
                state.set_programs(session.tracer.program_stats());
                first = false;
            }
            // The scraper may have given up; nothing to do then.
            let text = if openmetrics { state.exposition() } else { state.prometheus_text() };
            drop(reply.send(text));
        }
        if let Some(rx) = &job
            && let Ok((d, end)) = rx.try_recv()
        {
            state.observe_window(&d.diagnosis, end);
            log::info!("pktloss: diagnosis window: {} causes", d.diagnosis.causes.len());
            window.before = Some(baseline(d.after));
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
    // The HTTP thread may be gone already (it stopped on its own).
    quit_tx.send(()).ok();
    drop(session); // detach
    drop(http.join());
    result
}

/// One diagnosis window: the namespaces' counters at its start and the drop counts then.
struct Window {
    opened: Instant,
    /// The reading that ended the window before (set when its diagnosis is done), or the first
    /// reading.
    before: Option<Gathered>,
    raw: RawCounts,
}

/// The reading that ended a window as the next one's baseline: the namespaces gone during it
/// are left out, and those born during it are no longer new.
fn baseline(mut after: Gathered) -> Gathered {
    after.snapshots.retain(|s| s.gone_at.is_none());
    for s in &mut after.snapshots {
        s.appeared_at = None;
    }
    after
}

impl Window {
    fn open(before: Gathered, session: &mut Session) -> Result<Self> {
        session.watch_namespaces();
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
        let before = self.before.take().unwrap_or_else(gather_before);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("pktloss-diagnose".to_owned())
            .spawn(move || {
                let d = gather_after(before, &mut summary, lifecycle);
                let end = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                drop(tx.send((d, end)));
            })
            .context("starting a diagnosis thread")?;
        session.watch_namespaces();
        let next = Self { opened: Instant::now(), before: None, raw: now };
        Ok((rx, next))
    }
}

/// The HTTP server: `/metrics` asks the collector for the exposition.
fn http_thread(listener: std::net::TcpListener, scrapes: mpsc::Sender<Scrape>, quit: oneshot::Receiver<()>) {
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
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                drop(quit.await);
            })
            .await
    });
    if let Err(e) = served {
        log::error!("HTTP server: {e}");
    }
}

async fn metrics(State(scrapes): State<mpsc::Sender<Scrape>>, headers: axum::http::HeaderMap) -> Response {
    // OpenMetrics for whoever asks for it (Prometheus does), else the classic text format.
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    let (tx, rx) = oneshot::channel();
    if scrapes.send((openmetrics, tx)).is_err() {
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
