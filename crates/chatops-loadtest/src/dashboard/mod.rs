//! `chatops loadtest --dashboard ADDR`: a live view of the run in the browser, in the
//! manner of k6's web dashboard and Locust's UI (big numbers at the top, charts below).
//! One self-contained page ([`page`]: inline CSS and JS, nothing fetched but its own event
//! stream) is fed once a second over Server-Sent Events (`GET /events`, [`server`]); each
//! event is one JSON object ([`update`]) with the totals, the time-series points (all of
//! them on connect, so a late browser gets the history) and the charts, drawn in Rust by
//! the report's own chart code (`chatops_report::timeline`). The recorder publishes its
//! intervals through a `watch` channel at most once a second ([`crate::record::Progress`]),
//! and the counters come from the atomics the console line already reads, so the hot path
//! gains no lock and no allocation. At the end [`Dashboard::finish`] replaces the
//! provisional figures with the results' own (the points, totals and percentiles the
//! results file holds), adds the verdict, serves the results file and the HTML report of
//! them, and [`Dashboard::linger`] keeps serving them for `--dashboard-linger` or until
//! Ctrl-C.

pub mod page;
pub mod server;
pub mod update;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, broadcast, watch};

use crate::profile::Phase;
use crate::record::{Live, Progress};
use crate::{LoadtestError, RunResults};
use update::State;

/// SSE clients served at once; more get 503.
pub const MAX_EVENT_CLIENTS: usize = 16;
/// Connections of any kind served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How often the page is sent new figures.
pub const UPDATE_EVERY: Duration = Duration::from_secs(1);

/// How long the dashboard serves after the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    For(Duration),
    UntilCtrlC,
}

impl Linger {
    /// `--dashboard-linger` when given; otherwise until Ctrl-C when a person is watching the
    /// terminal (`interactive`) and not at all when not (CI must not hang).
    pub fn from_flag(flag: Option<Duration>, interactive: bool) -> Linger {
        match flag {
            Some(d) => Linger::For(d),
            None if interactive => Linger::UntilCtrlC,
            None => Linger::For(Duration::ZERO),
        }
    }
}

/// What the run tells the dashboard when it starts.
#[derive(Debug, Clone)]
pub struct RunView {
    pub profile: String,
    pub target: String,
    pub phases: Vec<Phase>,
    /// The time-series step.
    pub interval: Duration,
    pub start: Instant,
    pub live: Arc<Live>,
    /// The bot's gauges as they are scraped (`--spawn`, `--scrape`), shown as they come.
    pub server: Option<crate::scrape::LiveGauges>,
}

/// What the server, the updater and the run share.
struct Shared {
    state: Mutex<State>,
    /// Each update as a ready SSE frame, sent while `state` is locked so that a client
    /// that subscribes under the same lock misses none and gets none twice.
    frames: broadcast::Sender<bytes::Bytes>,
    clients: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
    updater: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves figures that are at worst a second old.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state with `f` and sends the frame of the change, its points from the
    /// index `f` returns.
    fn publish(&self, f: impl FnOnce(&mut State) -> usize) {
        let mut state = self.lock();
        let from = f(&mut state);
        let frame = state.frame(from);
        // No subscriber is not an error: nobody is watching yet.
        let _ = self.frames.send(frame);
    }
}

/// The handle a [`crate::Plan`] gets to feed the dashboard (see [`crate::Plan::attach_dashboard`]).
#[derive(Clone)]
pub struct DashboardFeed(Arc<Shared>);

impl std::fmt::Debug for DashboardFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DashboardFeed")
    }
}

impl DashboardFeed {
    /// The run starts: keep its facts, start the once-a-second updates, and return the
    /// channel the recorder publishes its intervals on.
    pub fn begin(&self, run: RunView) -> watch::Sender<Progress> {
        let (tx, rx) = watch::channel(Progress::default());
        let shared = Arc::clone(&self.0);
        self.0.publish(|s| s.begin(&run));
        let task = tokio::spawn(update_every_second(shared, run, rx));
        if let Some(old) = self.0.updater.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(task) {
            old.abort();
        }
        tx
    }
}

async fn update_every_second(shared: Arc<Shared>, run: RunView, progress: watch::Receiver<Progress>) {
    let total: Duration = run.phases.iter().map(|p| p.duration).sum();
    let n_intervals = usize::try_from(total.as_nanos().div_ceil(run.interval.as_nanos().max(1))).unwrap_or(1).max(1);
    // Walks the whole schedule once, as the results do to fill their target rates; a long,
    // fast schedule takes a while, and the updates do not wait for it.
    let phases = run.phases.clone();
    let interval = run.interval;
    let mut rates_task =
        Some(tokio::task::spawn_blocking(move || crate::schedule::target_rates(&phases, interval, n_intervals)));
    let mut target_rates = Vec::new();
    let mut tick = tokio::time::interval(UPDATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let resolved = crate::schedule::resolve(&run.phases);
    let mut rates = update::RateMeter::new(&run.live);
    loop {
        tick.tick().await;
        if let Some(task) = rates_task.take_if(|t| t.is_finished()) {
            target_rates = task.await.unwrap_or_default();
        }
        // A copy, so the recorder's next publish never waits for the charts to be drawn.
        let latest = progress.borrow().clone();
        let sample = update::Sample::take(&run, latest, &mut rates, &target_rates, &resolved);
        shared.publish(|s| s.progress(sample));
    }
}

/// A running dashboard: the server, and the figures it shows. Dropping it stops both.
pub struct Dashboard {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Binds `addr` and starts serving (the page says it waits for the test until
    /// [`DashboardFeed::begin`]). Warns on stderr when the address is not loopback, since
    /// the dashboard has no login.
    pub async fn serve(addr: SocketAddr) -> Result<Dashboard, LoadtestError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| LoadtestError::DashboardBind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| LoadtestError::DashboardBind { addr, source })?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: the dashboard listens on {bound}, reachable from other machines; it has no login and shows \
                 the target and the results (use 127.0.0.1 to keep it local)"
            );
        }
        let (frames, _) = broadcast::channel(16);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            frames,
            clients: Arc::new(Semaphore::new(MAX_EVENT_CLIENTS)),
            shutdown: watch::channel(false).0,
            updater: Mutex::new(None),
        });
        let server = server::spawn(listener, Arc::clone(&shared));
        Ok(Dashboard { shared, addr: bound, server })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`, the page.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The handle to give the plan.
    pub fn feed(&self) -> DashboardFeed {
        DashboardFeed(Arc::clone(&self.shared))
    }

    fn stop_updates(&self) {
        if let Some(task) = self.shared.updater.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
    }

    /// The run is over and its results written: show the results' own figures and the
    /// verdict, and serve the results file and its HTML report.
    pub fn finish(&self, run: &RunResults) {
        self.stop_updates();
        let finished = update::Finished::of(run);
        self.shared.publish(|s| s.finish(finished));
    }

    /// The run failed: show why.
    pub fn fail(&self, error: &LoadtestError) {
        self.stop_updates();
        let message = error.to_string();
        self.shared.publish(|s| s.fail(message));
    }

    /// Keeps serving for `linger` (or until Ctrl-C), then stops the server.
    pub async fn linger(self, linger: Linger) {
        let what = if self.shared.lock().files().is_some() { "the final results" } else { "the error" };
        match linger {
            Linger::For(d) if d.is_zero() => {}
            Linger::For(d) => {
                eprintln!("dashboard: serving {what} at {} for {d:?} (Ctrl-C stops it)", self.url());
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Linger::UntilCtrlC => {
                eprintln!("dashboard: serving {what} at {} until Ctrl-C", self.url());
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop_updates();
        let _ = self.shared.shutdown.send(true);
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingers_until_ctrl_c_only_for_a_person_at_a_terminal() {
        assert_eq!(Linger::from_flag(None, true), Linger::UntilCtrlC);
        assert_eq!(Linger::from_flag(None, false), Linger::For(Duration::ZERO));
        let ten = Duration::from_secs(10);
        assert_eq!(Linger::from_flag(Some(ten), true), Linger::For(ten));
        assert_eq!(Linger::from_flag(Some(Duration::ZERO), true), Linger::For(Duration::ZERO));
    }
}
