//! The open-model engine: a scheduler that starts each arrival at its planned time,
//! whatever the target is doing, and the request tasks that render, sign and send.
//!
//! The scheduler never waits for responses. Each arrival's latency is measured from its
//! *scheduled* time (the computed slot, not `now()` after waking), so a stalled target shows
//! in the percentiles instead of silently slowing the generator down (no coordinated
//! omission); the send → answer time is recorded separately as service time. A cap on
//! requests in flight protects the generator: arrivals over it are dropped and counted.
//!
//! The hot path is kept cheap: templates are precompiled, the target URI is parsed once
//! when the step URL is static, the HTTP client is hyper's pooled keep-alive client, and
//! results go to the recorder as one small channel message per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatops_core::slack::SlackSigner;
use chatops_core::slack::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::mpsc;

use crate::profile::{Phase, Profile, Step};
use crate::record::{CmdRef, Done, ErrorKind, Event, Live, Outcome};
use crate::request::{CommandKey, HookTarget, RequestSpec};
use crate::schedule;

/// Largest HTTP answer read from the target; the bot's acks are tiny.
pub const MAX_ACK_BODY: usize = 1024 * 1024;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
const FORM_TYPE: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

/// A flow step with what can be resolved before the run.
struct PlanStep {
    spec: RequestSpec,
    /// The full URI when the step's URL has no templates.
    uri: Option<Uri>,
    cmd: Option<u16>,
}

enum PlanItem {
    Request(Box<PlanStep>),
    Think(Duration),
}

/// The profile's scenarios, compiled against the target.
pub struct Plan {
    scenarios: Vec<Vec<PlanItem>>,
    /// Running sum of weights, for picking a scenario with one random number.
    cumulative: Vec<u64>,
    pub commands: Vec<String>,
    pub scenario_names: Vec<String>,
    target: String,
}

/// The target is not a usable base URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

/// Checks a target base URL: `http://host[:port][/base]` (TLS is not supported: load tests
/// here run on loopback).
pub fn check_target(target: &str) -> Result<String, TargetError> {
    let uri: Uri = target.parse().map_err(|e| TargetError(format!("target `{target}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(TargetError(format!("target `{target}`: https is not supported, use http"))),
        _ => return Err(TargetError(format!("target `{target}` must start with http://"))),
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

impl Plan {
    pub fn new(profile: &Profile, target: &str) -> Result<Plan, TargetError> {
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
                        let uri = match spec.url.as_static() {
                            Some(url) => {
                                let full = join(target, url);
                                Some(full.parse::<Uri>().map_err(|e| {
                                    TargetError(format!("step `{}`: `{full}` is not a URL: {e}", spec.label))
                                })?)
                            }
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
                        items.push(PlanItem::Request(Box::new(PlanStep { spec: (**spec).clone(), uri, cmd })));
                    }
                }
            }
            total += u64::from(s.weight);
            cumulative.push(total);
            scenarios.push(items);
        }
        let scenario_names = profile.scenarios.iter().map(|s| s.name.clone()).collect();
        Ok(Plan { scenarios, cumulative, commands, scenario_names, target: target.to_owned() })
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

/// Everything a request task needs, shared by all of them.
pub struct Engine {
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub signer: SlackSigner,
    pub plan: Plan,
    /// Form-encoded `http://receiver/hook/` prefix, when the receiver is on.
    pub hook_prefix: Option<String>,
    pub run_tag: String,
    pub issued: Arc<AtomicU64>,
    pub events: mpsc::UnboundedSender<Event>,
    pub start: Instant,
    pub timeout: Duration,
    pub live: Arc<Live>,
    /// `config.http.pool`: permits for connections to the target.
    pub connections: Option<tokio::sync::Semaphore>,
}

/// The keep-alive HTTP/1 client used against the target, keeping up to `pool` idle
/// connections.
pub fn new_client(pool: usize) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

impl Engine {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// Starts every arrival of the phases at its time; returns when the last one has started
/// (or `stop` fires). Requests still in flight keep running.
pub async fn run_schedule(
    engine: &Arc<Engine>,
    phases: &[Phase],
    max_in_flight: u64,
    stop: &tokio::sync::Notify,
) -> bool {
    let caps: Vec<u64> =
        phases.iter().map(|p| p.max_in_flight.map_or(max_in_flight, |c| (c as u64).min(max_in_flight))).collect();
    let mut now = Instant::now();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    for arrival in schedule::arrivals(phases) {
        let due = engine.start + Duration::from_nanos(arrival.offset_ns);
        if due > now {
            now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = &mut stopped => return false,
                }
                now = Instant::now();
            }
        }
        if engine.live.in_flight.load(Ordering::Relaxed) >= caps[arrival.phase_idx] {
            let _ = engine.events.send(Event::Dropped { sched_ns: arrival.offset_ns });
            continue;
        }
        engine.live.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(run_arrival(Arc::clone(engine), arrival.offset_ns));
    }
    true
}

/// Decrements the in-flight count however the arrival's task ends.
struct InFlight(Arc<Engine>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.live.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run_arrival(engine: Arc<Engine>, sched_ns: u64) {
    let guard = InFlight(engine);
    let engine = &guard.0;
    let scen = engine.plan.pick();
    let mut due_ns = sched_ns;
    for item in &engine.plan.scenarios[scen] {
        match item {
            PlanItem::Think(d) => {
                tokio::time::sleep(*d).await;
                due_ns = engine.now_ns();
            }
            PlanItem::Request(step) => {
                due_ns = fire(engine, step, scen as u16, due_ns).await;
            }
        }
    }
}

/// Sends one request and reports it; returns when it finished (ns from start).
async fn fire(engine: &Engine, step: &PlanStep, scen: u16, sched_ns: u64) -> u64 {
    let seq = engine.issued.fetch_add(1, Ordering::AcqRel);
    let mut id = String::with_capacity(engine.run_tag.len() + 21);
    id.push_str(&engine.run_tag);
    id.push('-');
    id.push_str(&seq.to_string());
    let mut body = String::with_capacity(step.spec.body.size_hint());
    let hook = engine.hook_prefix.as_deref().map(|p| HookTarget { encoded_prefix: p, request_id: &id });
    let info = step.spec.body.render_into(hook, &mut body);
    let cmd = match (step.cmd, info.command) {
        (Some(i), _) => CmdRef::Known(i),
        (None, Some(name)) => CmdRef::Name(name.into_boxed_str()),
        (None, None) => CmdRef::Name(step.spec.label.clone().into_boxed_str()),
    };
    // Set once the request leaves; read back when the timeout fires first.
    let sent_at = AtomicU64::new(0);
    let sent_and_outcome = async {
        // With a connection limit, wait for a free connection first: the request is not
        // sent until then (this wait counts in the ack latency, not in the service time).
        let _permit = match &engine.connections {
            Some(sem) => Some(sem.acquire().await.expect("the semaphore is never closed")),
            None => None,
        };
        let built = build_request(engine, step, &id, body);
        let sent_ns = engine.now_ns();
        sent_at.store(sent_ns, Ordering::Relaxed);
        let outcome = match built {
            Ok(req) => send(&engine.client, req).await,
            Err(kind) => Outcome::Error(kind),
        };
        (sent_ns, outcome)
    };
    let (sent_ns, outcome) = match tokio::time::timeout(engine.timeout, sent_and_outcome).await {
        Ok(r) => r,
        // Never sent (still waiting for a connection): count the wait as the send time.
        Err(_) => match sent_at.load(Ordering::Relaxed) {
            0 => (engine.now_ns(), Outcome::Error(ErrorKind::Timeout)),
            sent_ns => (sent_ns, Outcome::Error(ErrorKind::Timeout)),
        },
    };
    let done_ns = engine.now_ns();
    let _ = engine.events.send(Event::Done(Done {
        seq,
        sched_ns,
        sent_ns,
        done_ns,
        outcome,
        cmd,
        scen,
        expects_response: info.expects_response,
    }));
    done_ns
}

fn build_request(engine: &Engine, step: &PlanStep, id: &str, body: String) -> Result<Request<Full<Bytes>>, ErrorKind> {
    let uri = match &step.uri {
        Some(u) => u.clone(),
        None => join(&engine.plan.target, &step.spec.url.render()).parse().map_err(|_| ErrorKind::BadRequest)?,
    };
    // Slack signs `v0:<timestamp>:<body>` with a fresh timestamp: sign exactly the bytes sent.
    let ts = chatops_core::time::now_unix_secs().to_string();
    let sig = engine.signer.sign(&ts, body.as_bytes());
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = step.spec.method.clone();
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    if step.spec.body.is_form() && !step.spec.has_content_type {
        h.insert(CONTENT_TYPE, FORM_TYPE);
    }
    for (name, value) in &step.spec.headers {
        let v = match value.as_static() {
            Some(s) => HeaderValue::from_str(s),
            None => HeaderValue::from_str(&value.render()),
        };
        h.append(name.clone(), v.map_err(|_| ErrorKind::BadRequest)?);
    }
    h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts).map_err(|_| ErrorKind::BadRequest)?);
    h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&sig).map_err(|_| ErrorKind::BadRequest)?);
    h.insert(REQUEST_ID_HEADER, HeaderValue::from_str(id).map_err(|_| ErrorKind::BadRequest)?);
    Ok(req)
}

async fn send(client: &Client<HttpConnector, Full<Bytes>>, req: Request<Full<Bytes>>) -> Outcome {
    let resp = match client.request(req).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Error(ErrorKind::Connect),
        Err(_) => return Outcome::Error(ErrorKind::Io),
    };
    let status = resp.status().as_u16();
    match Limited::new(resp.into_body(), MAX_ACK_BODY).collect().await {
        Ok(_) => Outcome::Status(status),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Outcome::Error(ErrorKind::BodyTooLarge)
        }
        Err(_) => Outcome::Error(ErrorKind::Io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_plain_http_targets() {
        assert_eq!(check_target("http://127.0.0.1:3000/").unwrap(), "http://127.0.0.1:3000");
        for bad in ["https://example.com", "ftp://x", "127.0.0.1:3000", "", "http://", "http://exa mple"] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
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
        let plan = Plan::new(&p, "http://127.0.0.1:1").unwrap();
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
