//! The open-model engine: a scheduler that releases each arrival at its planned time,
//! whatever the target is doing, and connection workers that render, sign and send.
//!
//! The scheduler never waits for responses. Each arrival's latency is measured from its
//! *scheduled* time (the computed slot, not `now()` after waking), so a stalled target shows
//! in the percentiles instead of silently slowing the generator down (no coordinated
//! omission); the send → answer time is recorded separately as service time. A cap on
//! requests in flight (queued or sent) protects the generator: arrivals over it are
//! dropped and counted.
//!
//! The work is split over shards (`--threads`), each an OS thread with a single-threaded
//! runtime taking every n-th arrival, so that wakeups stay on one thread. In a shard,
//! arrivals go on a queue served by workers, each owning one keep-alive HTTP/1 connection
//! that it drives itself (hyper's connection API, no separate connection task and no pool
//! lookups). Workers are added on demand, when arrivals wait and no worker is idle, up to
//! `config.http.pool` connections in all (Artillery's meaning of `pool`) or 1024. An
//! arrival waiting for a worker has not been sent: that wait counts in its latency and in
//! the send lag, not in the service time; one that waited longer than the timeout fails
//! unsent. Templates are precompiled and the request path and Host header are resolved
//! once, so the per-request work is rendering, one HMAC and the I/O. Arrivals are released
//! by [`crate::pace`] (a high-resolution timer plus a short yielding spin, not tokio's 1 ms
//! timer), so the send lag is typically tens of microseconds.
//!
//! An `https://` target gets a TLS handshake ([`crate::tls`]) on each new connection, after
//! which the connection is kept alive like a plain one; the engine counts TCP connects and
//! completed handshakes, so the results show how well connections were reused. A failed
//! handshake is a `tls` error; its first reason is kept (and printed once) for the results'
//! notes.
//!
//! A step with `capture` or `expect` keeps its answer's headers and body for
//! [`crate::inspect`] (other steps read the body to drain the connection and drop it); the
//! request's latency is taken before the checks run. A failed strict capture ends the
//! virtual user's flow, as in Artillery.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatops_core::slack::SlackSigner;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use http_body_util::{BodyExt, Full, Limited};
use hyper::HeaderMap;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::inspect::{Answer, Findings};
use crate::pace::Pacer;
use crate::profile::vars::Vu;
use crate::profile::{Phase, Profile, Step};
use crate::record::{CmdRef, Done, ErrorKind, Event, Live, Outcome};
use crate::request::{CommandKey, HookTarget, RequestSpec};
use crate::schedule;
use crate::tls::{Stream, TlsTarget};

/// Largest HTTP answer read from the target; the bot's acks are tiny.
pub const MAX_ACK_BODY: usize = 1024 * 1024;
/// Connections opened at most when the profile sets no `config.http.pool`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const FORM_TYPE: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

/// A flow step with what can be resolved before the run.
struct PlanStep {
    spec: RequestSpec,
    /// The origin-form path and query when the step's URL has no templates.
    path: Option<Uri>,
    cmd: Option<u16>,
}

enum PlanItem {
    Request(Box<PlanStep>),
    Think(Duration),
}

/// The profile's scenarios, compiled against the target.
pub struct RequestPlan {
    scenarios: Vec<Vec<PlanItem>>,
    /// Running sum of weights, for picking a scenario with one random number.
    cumulative: Vec<u64>,
    pub commands: Vec<String>,
    pub scenario_names: Vec<String>,
    target: String,
    /// `host:port` of the target, sent as the Host header and used to connect.
    pub authority: String,
    /// The target's host as written (an IPv6 literal in brackets), for TLS.
    pub host: String,
    /// The target is `https://`.
    pub https: bool,
    /// The profile's `variables` and `payload`: each virtual user draws its values once.
    vars: Option<std::sync::Arc<crate::profile::vars::Bindings>>,
    /// Some step captures a value, so every virtual user needs a [`Vu`] to keep it.
    captures: bool,
}

/// The target is not a usable base URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

/// Checks a target base URL: `http://host[:port][/base]` or `https://…`.
pub fn check_target(target: &str) -> Result<String, TargetError> {
    let uri: Uri = target.parse().map_err(|e| TargetError(format!("target `{target}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(TargetError(format!("target `{target}` must start with http:// or https://"))),
    }
    if uri.authority().is_none() {
        return Err(TargetError(format!("target `{target}` has no host")));
    }
    Ok(target.trim_end_matches('/').to_owned())
}

fn join(target: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_owned()
    } else if url.starts_with('/') {
        format!("{target}{url}")
    } else {
        format!("{target}/{url}")
    }
}

fn authority_with_port(uri: &Uri) -> Option<String> {
    let a = uri.authority()?;
    let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
    Some(format!("{}:{}", a.host(), a.port_u16().unwrap_or(default_port)))
}

/// The origin-form path of a step URL; absolute URLs must name the target's scheme and host.
fn step_path(target: &str, authority: &str, url: &str) -> Result<Uri, String> {
    let full = join(target, url);
    let uri: Uri = full.parse().map_err(|e| format!("`{full}` is not a URL: {e}"))?;
    let scheme = target.split_once("://").map(|(s, _)| s);
    if authority_with_port(&uri).as_deref() != Some(authority) || uri.scheme_str() != scheme {
        return Err(format!("`{full}` is not on the target {authority} (one target per test)"));
    }
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    pq.parse().map_err(|e| format!("`{pq}`: {e}"))
}

impl RequestPlan {
    pub fn new(profile: &Profile, target: &str) -> Result<RequestPlan, TargetError> {
        let target_uri: Uri = target.parse().map_err(|e| TargetError(format!("target `{target}`: {e}")))?;
        let authority =
            authority_with_port(&target_uri).ok_or_else(|| TargetError(format!("target `{target}` has no host")))?;
        let host = target_uri.host().unwrap_or_default().to_owned();
        let https = target_uri.scheme_str() == Some("https");
        let mut commands: Vec<String> = Vec::new();
        let mut scenarios = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for s in &profile.scenarios {
            let mut items = Vec::new();
            for step in &s.flow {
                match step {
                    Step::Think(d) => items.push(PlanItem::Think(*d)),
                    Step::Request(spec) => {
                        let path = match spec.url.as_static() {
                            Some(url) => Some(
                                step_path(target, &authority, url)
                                    .map_err(|m| TargetError(format!("step `{}`: {m}", spec.label)))?,
                            ),
                            None => None,
                        };
                        let cmd = match &spec.command {
                            CommandKey::Static(name) => Some(match commands.iter().position(|c| c == name) {
                                Some(i) => i as u16,
                                None => {
                                    commands.push(name.clone());
                                    (commands.len() - 1) as u16
                                }
                            }),
                            CommandKey::Dynamic => None,
                        };
                        items.push(PlanItem::Request(Box::new(PlanStep { spec: (**spec).clone(), path, cmd })));
                    }
                }
            }
            total += u64::from(s.weight);
            cumulative.push(total);
            scenarios.push(items);
        }
        let scenario_names = profile.scenarios.iter().map(|s| s.name.clone()).collect();
        let captures = profile.scenarios.iter().flat_map(|s| &s.flow).any(
            |step| matches!(step, Step::Request(spec) if spec.inspect.as_ref().is_some_and(|i| !i.captures.is_empty())),
        );
        Ok(RequestPlan {
            scenarios,
            cumulative,
            commands,
            scenario_names,
            target: target.to_owned(),
            authority,
            host,
            https,
            vars: profile.vars.clone(),
            captures,
        })
    }

    fn pick(&self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&0);
        if total == 0 {
            return 0;
        }
        let r = fastrand::u64(0..total);
        self.cumulative.partition_point(|c| *c <= r)
    }
}

/// Everything the shards share.
pub struct Engine {
    pub signer: SlackSigner,
    pub plan: RequestPlan,
    /// Form-encoded `http://receiver/hook/` prefix, when the receiver is on.
    pub hook_prefix: Option<String>,
    pub run_tag: String,
    pub issued: Arc<AtomicU64>,
    pub events: mpsc::UnboundedSender<Event>,
    pub start: Instant,
    pub timeout: Duration,
    pub live: Arc<Live>,
    /// The target's resolved addresses.
    pub addrs: Vec<SocketAddr>,
    pub max_connections: usize,
    /// Set for an `https://` target.
    pub tls: Option<TlsTarget>,
    /// TCP connections opened (successfully connected).
    pub connections: AtomicU64,
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// Why the first TLS handshake failed, if one did.
    pub first_tls_failure: OnceLock<String>,
    host: HeaderValue,
}

pub struct EngineConfig {
    pub signer: SlackSigner,
    pub plan: RequestPlan,
    pub hook_prefix: Option<String>,
    pub run_tag: String,
    pub issued: Arc<AtomicU64>,
    pub events: mpsc::UnboundedSender<Event>,
    pub start: Instant,
    pub timeout: Duration,
    pub live: Arc<Live>,
    pub addrs: Vec<SocketAddr>,
    pub max_connections: usize,
    pub tls: Option<TlsTarget>,
}

impl Engine {
    pub fn new(c: EngineConfig) -> Result<Arc<Engine>, TargetError> {
        let host = HeaderValue::from_str(&c.plan.authority)
            .map_err(|_| TargetError(format!("`{}` is not a valid Host header", c.plan.authority)))?;
        Ok(Arc::new(Engine {
            signer: c.signer,
            plan: c.plan,
            hook_prefix: c.hook_prefix,
            run_tag: c.run_tag,
            issued: c.issued,
            events: c.events,
            start: c.start,
            timeout: c.timeout,
            live: c.live,
            addrs: c.addrs,
            max_connections: c.max_connections.max(1),
            tls: c.tls,
            connections: AtomicU64::new(0),
            tls_handshakes: AtomicU64::new(0),
            first_tls_failure: OnceLock::new(),
            host,
        }))
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Keeps the first handshake failure's reason and prints it once: a target with a bad
    /// certificate fails every connection the same way, and one line says why.
    fn note_tls_failure(&self, e: &std::io::Error) {
        if self.first_tls_failure.get().is_none() {
            let reason = crate::tls::describe_failure(e);
            if self.first_tls_failure.set(reason.clone()).is_ok() {
                eprintln!(
                    "warning: TLS to {} failed: {reason} (further failures count as `tls` errors)",
                    self.plan.authority
                );
            }
        }
    }
}

/// One shard's arrival queue and its workers (connections).
struct Shard {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<u64>>,
    /// One per worker, for the timeout sweeper.
    slots: std::sync::Mutex<Vec<Arc<WorkerSlot>>>,
    queued: AtomicUsize,
    idle: AtomicUsize,
    workers: AtomicUsize,
    max_workers: usize,
}

/// Runs the schedule on `threads` shards, each an OS thread with its own single-threaded
/// runtime and its own connections, taking every `threads`-th arrival. Nothing crosses
/// threads on the hot path but atomics and the recorder's channel, so wakeups stay local.
/// Returns (on a blocking thread) whether the schedule completed, once every shard's
/// requests have finished.
pub async fn run_sharded(
    engine: &Arc<Engine>,
    phases: &[Phase],
    threads: usize,
    max_in_flight: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    // A connection limit below the thread count caps the threads: `pool: 1` means one
    // connection in all.
    let n = threads.clamp(1, 64).min(engine.max_connections);
    let handles: Vec<_> = (0..n)
        .map(|idx| {
            let engine = Arc::clone(engine);
            let phases = phases.to_vec();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("loadtest-{idx}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a single-threaded runtime can be built");
                    rt.block_on(run_shard(engine, phases, idx, n, max_in_flight, stop))
                })
                .expect("a shard thread can be spawned")
        })
        .collect();
    tokio::task::spawn_blocking(move || handles.into_iter().map(|h| h.join().unwrap_or(false)).fold(true, |a, b| a & b))
        .await
        .unwrap_or(false)
}

async fn run_shard(
    engine: Arc<Engine>,
    phases: Vec<Phase>,
    idx: usize,
    n: usize,
    max_in_flight: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let (tx, rx) = mpsc::unbounded_channel();
    let shard = Arc::new(Shard {
        queue: tokio::sync::Mutex::new(rx),
        queued: AtomicUsize::new(0),
        idle: AtomicUsize::new(0),
        workers: AtomicUsize::new(0),
        max_workers: engine.max_connections.div_ceil(n).max(1),
        slots: std::sync::Mutex::new(Vec::new()),
    });
    let sweeper = tokio::spawn(sweep_timeouts(Arc::clone(&engine), Arc::clone(&shard)));
    let mut workers = tokio::task::JoinSet::new();
    let caps: Vec<u64> =
        phases.iter().map(|p| p.max_in_flight.map_or(max_in_flight, |c| (c as u64).min(max_in_flight))).collect();
    let mut pacer = Pacer::new();
    let mut now = Instant::now();
    let mut completed = true;
    for arrival in schedule::arrivals(&phases).skip(idx).step_by(n) {
        let due = engine.start + Duration::from_nanos(arrival.offset_ns);
        if due > now {
            now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = pacer.wait_until(due) => {}
                    _ = stop.changed() => {
                        completed = false;
                        break;
                    }
                }
                now = Instant::now();
            }
        }
        if engine.live.in_flight.load(Ordering::Relaxed) >= caps[arrival.phase_idx] {
            let _ = engine.events.send(Event::Dropped { sched_ns: arrival.offset_ns });
            continue;
        }
        engine.live.in_flight.fetch_add(1, Ordering::Relaxed);
        let queued = shard.queued.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = tx.send(arrival.offset_ns);
        // Add a worker (a connection) when arrivals wait and nobody is free to take them.
        if queued > shard.idle.load(Ordering::Acquire) && shard.workers.load(Ordering::Relaxed) < shard.max_workers {
            shard.workers.fetch_add(1, Ordering::Relaxed);
            workers.spawn(worker(Arc::clone(&engine), Arc::clone(&shard)));
        }
        // Let workers run between arrivals due at the same moment.
        if shard.queued.load(Ordering::Relaxed) > 64 {
            tokio::task::yield_now().await;
        }
    }
    // Workers finish what is queued, then stop.
    drop(tx);
    while workers.join_next().await.is_some() {}
    sweeper.abort();
    completed
}

/// A worker's request in progress, as the timeout sweeper sees it.
#[derive(Default)]
struct WorkerSlot {
    /// ns from the test start when the current attempt began; 0 when idle.
    started_ns: AtomicU64,
    cancel: tokio::sync::Notify,
}

/// Times requests out. A tokio timer per request would cost a wakeup of the runtime's
/// driver (an eventfd write) for every request; one sweep per shard every
/// min(100 ms, timeout/10) costs nothing per request, at the price of that much slack on
/// the timeout.
async fn sweep_timeouts(engine: Arc<Engine>, shard: Arc<Shard>) {
    let period = (engine.timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = engine.timeout.as_nanos() as u64;
    loop {
        tick.tick().await;
        let now = engine.now_ns();
        let slots = shard.slots.lock().map(|s| s.clone()).unwrap_or_default();
        for slot in slots {
            let started = slot.started_ns.load(Ordering::Acquire);
            if started != 0 && now.saturating_sub(started) > limit {
                // No stored permit: a late cancel cannot hit the worker's next request.
                slot.cancel.notify_waiters();
            }
        }
    }
}

/// One keep-alive connection, driven by the worker that owns it.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Pin<Box<Connection<TokioIo<Stream>, Full<Bytes>>>>,
}

async fn worker(engine: Arc<Engine>, shard: Arc<Shard>) {
    let mut conn: Option<Conn> = None;
    let slot = Arc::new(WorkerSlot::default());
    if let Ok(mut slots) = shard.slots.lock() {
        slots.push(Arc::clone(&slot));
    }
    loop {
        shard.idle.fetch_add(1, Ordering::AcqRel);
        let job = shard.queue.lock().await.recv().await;
        shard.idle.fetch_sub(1, Ordering::AcqRel);
        let Some(sched_ns) = job else { break };
        shard.queued.fetch_sub(1, Ordering::AcqRel);
        run_arrival(&engine, &mut conn, &slot, sched_ns).await;
        engine.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    if let Ok(mut slots) = shard.slots.lock() {
        slots.retain(|s| !Arc::ptr_eq(s, &slot));
    }
    shard.workers.fetch_sub(1, Ordering::Relaxed);
}

async fn run_arrival(engine: &Engine, conn: &mut Option<Conn>, slot: &WorkerSlot, sched_ns: u64) {
    let scen = engine.plan.pick();
    // One virtual user: every request of its flow uses the same variables and payload row,
    // and sees what earlier steps captured.
    let mut vu = match &engine.plan.vars {
        Some(b) => Some(b.new_vu()),
        None if engine.plan.captures => Some(Vu::without_bindings()),
        None => None,
    };
    let mut due_ns = sched_ns;
    for item in &engine.plan.scenarios[scen] {
        match item {
            PlanItem::Think(d) => {
                tokio::time::sleep(*d).await;
                due_ns = engine.now_ns();
            }
            PlanItem::Request(step) => {
                let (done_ns, go_on) = fire(engine, conn, slot, step, vu.as_mut(), scen as u16, due_ns).await;
                // As in Artillery, a virtual user whose request failed (no answer at all)
                // or whose strict capture found nothing stops its flow; an error status is
                // an answer and the flow goes on.
                if !go_on {
                    break;
                }
                due_ns = done_ns;
            }
        }
    }
}

/// Why an exchange did not give a status.
enum ExchangeError {
    /// The kept-alive connection was closed before the request went out: reconnect.
    Stale,
    Failed(ErrorKind),
}

async fn connect(engine: &Engine) -> Result<Conn, ErrorKind> {
    let tcp = TcpStream::connect(engine.addrs.as_slice()).await.map_err(|_| ErrorKind::Connect)?;
    engine.connections.fetch_add(1, Ordering::Relaxed);
    let _ = tcp.set_nodelay(true);
    let stream = match &engine.tls {
        None => Stream::Plain(tcp),
        Some(tls) => match tls.handshake(tcp).await {
            Ok(stream) => {
                engine.tls_handshakes.fetch_add(1, Ordering::Relaxed);
                stream
            }
            Err(e) => {
                engine.note_tls_failure(&e);
                return Err(ErrorKind::Tls);
            }
        },
    };
    let (sender, driver) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    Ok(Conn { sender, driver: Box::pin(driver) })
}

/// An HTTP answer: its status, and its headers and body when the step checks them.
struct Reply {
    status: u16,
    kept: Option<(HeaderMap, Bytes)>,
}

/// Sends one request on the connection and reads the whole answer (keeping its headers and
/// body when `keep`), driving the connection in this task meanwhile.
async fn exchange(conn: &mut Conn, req: Request<Full<Bytes>>, keep: bool) -> Result<Reply, ExchangeError> {
    let Conn { sender, driver } = conn;
    let ready = poll_fn(|cx| {
        if driver.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        sender.poll_ready(cx).map(|r| r.is_ok())
    })
    .await;
    if !ready {
        return Err(ExchangeError::Stale);
    }
    let answer = async {
        let resp = sender.send_request(req).await.map_err(|_| ErrorKind::Io)?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        match Limited::new(body, MAX_ACK_BODY).collect().await {
            Ok(body) => Ok(Reply { status, kept: keep.then(|| (parts.headers, body.to_bytes())) }),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(ErrorKind::BodyTooLarge),
            Err(_) => Err(ErrorKind::Io),
        }
    };
    tokio::pin!(answer);
    let mut driver_done = false;
    poll_fn(|cx| {
        if let Poll::Ready(r) = answer.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(ExchangeError::Failed));
        }
        if !driver_done && driver.as_mut().poll(cx).is_ready() {
            driver_done = true;
            // The connection ended: the answer may have completed with it.
            if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(ExchangeError::Failed));
            }
            return Poll::Ready(Err(ExchangeError::Failed(ErrorKind::Io)));
        }
        Poll::Pending
    })
    .await
}

/// Sends one request, checks its answer when the step asks, and reports it; returns when it
/// finished (ns from start) and whether the user's flow goes on (an HTTP answer, and no
/// failed strict capture).
async fn fire(
    engine: &Engine,
    conn: &mut Option<Conn>,
    slot: &WorkerSlot,
    step: &PlanStep,
    vu: Option<&mut Vu>,
    scen: u16,
    sched_ns: u64,
) -> (u64, bool) {
    use std::fmt::Write;
    let seq = engine.issued.fetch_add(1, Ordering::AcqRel);
    let mut id = String::with_capacity(engine.run_tag.len() + 21);
    let _ = write!(id, "{}-{seq}", engine.run_tag);
    let mut body = String::with_capacity(step.spec.body.size_hint());
    let hook = engine.hook_prefix.as_deref().map(|p| HookTarget { encoded_prefix: p, request_id: &id });
    let vu_now = vu.as_deref();
    let info = step.spec.body.render_vu_into(vu_now, hook, &mut body);
    let keep = step.spec.inspect.is_some();
    let cmd = match (step.cmd, info.command) {
        (Some(i), _) => CmdRef::Known(i),
        (None, Some(name)) => CmdRef::Name(name.into_boxed_str()),
        (None, None) => CmdRef::Name(step.spec.label.clone().into_boxed_str()),
    };
    let body = Bytes::from(body);
    let id = Bytes::from(id);
    // Set when the request leaves; read back when the timeout fires first.
    let sent_at = AtomicU64::new(0);
    let attempt = async {
        for retry in [false, true] {
            if conn.is_none() {
                *conn = Some(connect(engine).await?);
            }
            let req = build_request(engine, step, vu_now, id.clone(), body.clone())?;
            sent_at.store(engine.now_ns(), Ordering::Relaxed);
            let live = conn.as_mut().expect("connected above");
            match exchange(live, req, keep).await {
                Ok(reply) => {
                    if live.sender.is_closed() {
                        *conn = None;
                    }
                    return Ok(reply);
                }
                Err(ExchangeError::Stale) if !retry => *conn = None,
                Err(ExchangeError::Stale) => {
                    *conn = None;
                    return Err(ErrorKind::Io);
                }
                Err(ExchangeError::Failed(kind)) => {
                    *conn = None;
                    return Err(kind);
                }
            }
        }
        Err(ErrorKind::Io)
    };
    // An arrival that waited in the queue longer than the timeout (a stalled target, a
    // connection limit) has already failed: count it as a timeout without sending it, so a
    // backlog drains in bounded time.
    let waited = Duration::from_nanos(engine.now_ns().saturating_sub(sched_ns));
    let mut kept = None;
    let outcome = if waited > engine.timeout {
        drop(attempt);
        Outcome::Error(ErrorKind::Timeout)
    } else {
        slot.started_ns.store(engine.now_ns().max(1), Ordering::Release);
        let cancelled = slot.cancel.notified();
        let result = tokio::select! {
            biased;
            r = attempt => Some(r),
            _ = cancelled => None,
        };
        slot.started_ns.store(0, Ordering::Release);
        match result {
            Some(Ok(reply)) => {
                kept = reply.kept;
                Outcome::Status(reply.status)
            }
            Some(Err(kind)) => Outcome::Error(kind),
            None => {
                // The connection is in an unknown state after a timeout: do not reuse it.
                *conn = None;
                Outcome::Error(ErrorKind::Timeout)
            }
        }
    };
    let done_ns = engine.now_ns();
    let sent_ns = match sent_at.load(Ordering::Relaxed) {
        0 => done_ns,
        t => t,
    };
    let findings = match (&step.spec.inspect, &kept, outcome) {
        (Some(inspect), Some((headers, body)), Outcome::Status(status)) => {
            inspect.apply(&Answer { status, headers, body }, vu)
        }
        _ => Findings::default(),
    };
    let _ = engine.events.send(Event::Done(Done {
        seq,
        sched_ns,
        sent_ns,
        done_ns,
        outcome,
        cmd,
        scen,
        expected_answers: if info.expects_response { step.spec.expect_answers } else { 0 },
        findings,
    }));
    (done_ns, matches!(outcome, Outcome::Status(_)) && !findings.capture_failed)
}

fn build_request(
    engine: &Engine,
    step: &PlanStep,
    vu: Option<&Vu>,
    id: Bytes,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ErrorKind> {
    let rendered = |t: &crate::template::Template| {
        let mut out = String::new();
        t.render_vu_into(vu, &mut out);
        out
    };
    let path = match &step.path {
        Some(p) => p.clone(),
        None => step_path(&engine.plan.target, &engine.plan.authority, &rendered(&step.spec.url))
            .map_err(|_| ErrorKind::BadRequest)?,
    };
    // Slack signs `v0:<timestamp>:<body>`: sign exactly the bytes sent, just before sending.
    let ts = chatops_core::time::now_unix_secs().to_string();
    let sig = engine.signer.sign(&ts, &body);
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = step.spec.method.clone();
    *req.uri_mut() = path;
    let h = req.headers_mut();
    h.insert(HOST, engine.host.clone());
    if step.spec.body.is_form() && !step.spec.has_content_type {
        h.insert(CONTENT_TYPE, FORM_TYPE);
    }
    for (name, value) in &step.spec.headers {
        let v = match value.as_static() {
            Some(s) => HeaderValue::from_str(s),
            None => HeaderValue::from_str(&rendered(value)),
        };
        h.append(name.clone(), v.map_err(|_| ErrorKind::BadRequest)?);
    }
    let bad = |_| ErrorKind::BadRequest;
    h.insert(TIMESTAMP_HEADER, HeaderValue::from_maybe_shared(Bytes::from(ts)).map_err(bad)?);
    h.insert(SIGNATURE_HEADER, HeaderValue::from_maybe_shared(Bytes::from(sig)).map_err(bad)?);
    h.insert(REQUEST_ID_HEADER, HeaderValue::from_maybe_shared(id).map_err(bad)?);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_targets() {
        assert_eq!(check_target("http://127.0.0.1:3000/").unwrap(), "http://127.0.0.1:3000");
        assert_eq!(check_target("https://example.com/").unwrap(), "https://example.com");
        for bad in ["ftp://x", "127.0.0.1:3000", "", "http://", "https://", "http://exa mple"] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn step_urls_must_stay_on_the_target() {
        assert_eq!(step_path("http://h:1", "h:1", "/a?b=1").unwrap(), "/a?b=1");
        assert_eq!(step_path("http://h", "h:80", "http://h:80/x").unwrap(), "/x");
        assert!(step_path("http://h:1", "h:1", "http://other:1/x").is_err());
        assert_eq!(step_path("https://h", "h:443", "https://h/x").unwrap(), "/x");
        assert!(step_path("https://h:1", "h:1", "http://h:1/x").is_err(), "the scheme is the target's too");
    }

    #[test]
    fn https_targets_default_to_port_443() {
        let p = Profile::load("smoke", &std::collections::HashMap::<String, String>::new()).unwrap();
        let plan = RequestPlan::new(&p, "https://bot.example.com").unwrap();
        assert_eq!(
            (plan.authority.as_str(), plan.host.as_str(), plan.https),
            ("bot.example.com:443", "bot.example.com", true)
        );
        let plain = RequestPlan::new(&p, "http://[::1]:8080").unwrap();
        assert_eq!((plain.authority.as_str(), plain.host.as_str(), plain.https), ("[::1]:8080", "[::1]", false));
    }

    #[test]
    fn joins_step_urls_onto_the_target() {
        assert_eq!(join("http://h:1", "/slack/commands"), "http://h:1/slack/commands");
        assert_eq!(join("http://h:1/base", "x"), "http://h:1/base/x");
        assert_eq!(join("http://h:1", "http://other:2/y"), "http://other:2/y");
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let p = Profile::load("full", &std::collections::HashMap::<String, String>::new()).unwrap();
        let plan = RequestPlan::new(&p, "http://127.0.0.1:1").unwrap();
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[plan.pick()] += 1;
        }
        for (i, w) in [40.0, 30.0, 20.0, 10.0].iter().enumerate() {
            let share = counts[i] as f64 / 1000.0;
            assert!((share - w).abs() < 1.5, "scenario {i}: {share}% vs {w}%");
        }
        assert_eq!(plan.commands, ["/echo", "/status", "/deploy", "/build"]);
    }
}
