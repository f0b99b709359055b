//! The dashboard's HTTP server (hyper, HTTP/1.1): `GET /` the page, `GET /events` the
//! Server-Sent Events stream, and once the run is over `GET /results.json` (the results
//! file's bytes, as a download) and `GET /report.html` (the report of those results).
//!
//! Bounded like the response receiver, since anything that can reach the port can talk to
//! it: at most [`MAX_CONNECTIONS`](super::MAX_CONNECTIONS) connections (more wait in the
//! backlog) and [`MAX_EVENT_CLIENTS`](super::MAX_EVENT_CLIENTS) event streams (more get 503),
//! request heads of at most 16 KiB read within 10 s, no request body (413), only `GET`
//! (405), only the paths above (404). On a loopback address the `Host` header must name a
//! loopback host too (403 otherwise), so that a web page the user visits cannot read the
//! dashboard through a DNS name rebound to 127.0.0.1.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};

use super::Shared;
use super::page;

/// A request head larger than this is refused by hyper (its minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A comment line this often keeps proxies and idle timeouts from closing a quiet stream
/// (after the end nothing else is sent).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);
/// Frames queued for one slow client before it is sent a fresh snapshot instead.
const CLIENT_QUEUE: usize = 4;

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Serves `listener` until the task is aborted (which drops every connection with it).
pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    let loopback = listener.local_addr().map(|a| a.ip().is_loopback()).unwrap_or(true);
    crate::receiver::accept_bounded(listener, super::MAX_CONNECTIONS, move |stream| {
        let shared = Arc::clone(&shared);
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(&req, &shared, loopback)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(MAX_HEAD_BYTES)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    })
}

fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(body.into()).boxed()
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

/// A loopback name for the `Host` header: `localhost`, `127.x.y.z` or `[::1]`, with any port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn has_body(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    // HTTP/1.1 has a body only with one of these two headers.
    h.contains_key(header::TRANSFER_ENCODING) || h.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

fn route(req: &Request<Incoming>, shared: &Arc<Shared>, loopback: bool) -> Reply {
    if req.method() != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if has_body(req) {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "the dashboard accepts no request body\n");
    }
    if loopback {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !is_loopback_host(host) {
            return text(StatusCode::FORBIDDEN, "the dashboard answers only to a loopback Host\n");
        }
    }
    match req.uri().path() {
        "/" | "/index.html" => {
            let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", page::html());
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(page::CSP));
            // `frame-ancestors` is ignored in a meta policy, so framing is refused here.
            r.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            r
        }
        "/events" => events(shared),
        "/results.json" => match shared.lock().files() {
            Some(f) => {
                let mut r = reply(StatusCode::OK, "application/json", f.results_json.clone());
                let disposition = format!("attachment; filename=\"{}\"", f.results_name.replace(['"', '\\'], "_"));
                if let Ok(v) = HeaderValue::from_str(&disposition) {
                    r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
                r
            }
            None => text(StatusCode::NOT_FOUND, "the results are served when the test has ended\n"),
        },
        "/report.html" => match shared.lock().files() {
            Some(f) => reply(StatusCode::OK, "text/html; charset=utf-8", f.report_html.clone()),
            None => text(StatusCode::NOT_FOUND, "the report is served when the test has ended\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// An event stream: the whole state first, then every update, until the client leaves or
/// the dashboard stops.
fn events(shared: &Arc<Shared>) -> Reply {
    let Ok(permit) = Arc::clone(&shared.clients).try_acquire_owned() else {
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "too many dashboard clients\n");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let (first, updates) = {
        let state = shared.lock();
        // Under the lock that `publish` sends under: the stream starts exactly after `first`.
        (state.frame(0), shared.frames.subscribe())
    };
    tokio::spawn(forward(Arc::clone(shared), first, updates, tx));
    let mut r = Response::new(SseBody { rx, _client: permit }.boxed());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

async fn forward(shared: Arc<Shared>, first: Bytes, mut updates: broadcast::Receiver<Bytes>, tx: mpsc::Sender<Bytes>) {
    let mut shutdown = shared.shutdown.subscribe();
    // Ask the browser to retry soon when the stream breaks mid-run.
    if tx.send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() || tx.send(first).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
    loop {
        let frame = tokio::select! {
            u = updates.recv() => match u {
                Ok(frame) => frame,
                // Too slow for the updates: start it over from the whole state.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = shared.lock();
                    updates = shared.frames.subscribe();
                    state.frame(0)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
            _ = shutdown.changed() => return,
            () = tx.closed() => return,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// The body of an event stream: frames as the forwarding task queues them. Holds the
/// client's slot until the connection drops it.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    _client: OwnedSemaphorePermit,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().rx.poll_recv(cx).map(|frame| frame.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_names_that_may_rebind() {
        for ok in ["127.0.0.1:8089", "localhost:8089", "LOCALHOST", "[::1]:8089", "127.1.2.3", "[::1]"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["", "evil.example:8089", "10.0.0.1:8089", "localhost.evil.example", "[::2]:80", "127.0.0.1.nip.io"]
        {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
