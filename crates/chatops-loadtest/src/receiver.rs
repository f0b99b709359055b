//! The response receiver: an HTTP server on loopback that plays Slack's `response_url`.
//!
//! `POST /hook/<request-id>` answers 200 and reports the arrival time of the post to a
//! [`HookSink`]: the load test's recorder (which turns it into first/last-response E2E) or
//! `mock-slack`, which prints each post. Arrival is stamped when the request head has been
//! read, before the body, because that is when Slack would have the message.
//!
//! The receiver listens on a port that anything on the machine (or the network, with
//! `--receiver-listen 0.0.0.0:...`) can reach, so nothing a client does makes it hold
//! memory or slots without bound: bodies are capped, open connections are capped (beyond
//! the cap new connections wait in the kernel's backlog until a slot frees), a client must
//! send a request's headers within [`ReceiverLimits::header_read_timeout`] (an idle or
//! trickling connection is closed, which is what frees slots for real posts), and the
//! events a recorder receives are bounded by the requests it issued.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::record::Event;

/// Largest post accepted (Slack messages are at most about 40 kB of text plus blocks).
pub const MAX_POST_BYTES: usize = 256 * 1024;

/// Bounds on what clients of the receiver can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this; otherwise the connection is closed.
    pub header_read_timeout: Duration,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        // A bot posts over a pool of at most a few hundred connections; 4096 leaves room for
        // several bots against one generator.
        ReceiverLimits { max_connections: 4096, header_read_timeout: Duration::from_secs(10) }
    }
}

/// Events one issued request may cause: Slack accepts 5 posts per `response_url`.
pub const MAX_EVENTS_PER_REQUEST: u64 = 5;
/// Posts to unknown ids reported before further ones are refused without an event.
pub const MAX_UNMATCHED_EVENTS: u64 = 100_000;

/// Where the receiver reports posts.
pub trait HookSink: Send + Sync + 'static {
    /// A post for `id` arrived at `at`; returns whether the id named a known request.
    fn on_post(&self, id: &str, at: Instant, body: &[u8]) -> bool;
    /// A post to a path that is not `/hook/<id>`.
    fn on_unmatched(&self) {}
}

/// A running receiver; dropping it stops the server and its connections.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// `http://127.0.0.1:PORT`, what a request's `response_url` is built from.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the receiver on an already bound listener with the default limits.
pub fn serve(listener: TcpListener, sink: Arc<dyn HookSink>) -> std::io::Result<Receiver> {
    serve_with_limits(listener, sink, ReceiverLimits::default())
}

/// Serves the receiver on an already bound listener.
pub fn serve_with_limits(
    listener: TcpListener,
    sink: Arc<dyn HookSink>,
    limits: ReceiverLimits,
) -> std::io::Result<Receiver> {
    let addr = listener.local_addr()?;
    let task = accept_bounded(listener, limits.max_connections, move |stream| {
        let _ = stream.set_nodelay(true);
        let sink = Arc::clone(&sink);
        async move {
            let svc = hyper::service::service_fn(move |req| handle(req, Arc::clone(&sink)));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    });
    Ok(Receiver { addr, task })
}

/// Accepts connections on `listener` and runs `serve` for each, at most `max_connections`
/// at once: a slot is taken before the accept, so at the cap new connections wait in the
/// kernel's backlog instead of being accepted and starved. The connections live in the
/// task, so aborting it ends them too. Shared by the receiver and the dashboard.
pub(crate) fn accept_bounded<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => {
                    let Ok(permit) = permit else { return };
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let connection = serve(stream);
                    conns.spawn(async move {
                        let _permit = permit;
                        connection.await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn handle(req: Request<Incoming>, sink: Arc<dyn HookSink>) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let id = req.uri().path().strip_prefix("/hook/").filter(|id| !id.is_empty() && !id.contains('/'));
    let Some(id) = id.map(str::to_owned) else {
        sink.on_unmatched();
        return Ok(reply(StatusCode::NOT_FOUND, "not found"));
    };
    if req.method() != Method::POST {
        sink.on_unmatched();
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let body = match Limited::new(req.into_body(), MAX_POST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            sink.on_unmatched();
            return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "too large"));
        }
    };
    if sink.on_post(&id, at, &body) {
        Ok(reply(StatusCode::OK, "ok"))
    } else {
        Ok(reply(StatusCode::NOT_FOUND, "no such request"))
    }
}

/// The load test's sink: maps `<run-tag>-<seq>` to a request and tells the recorder.
pub(crate) struct RecorderSink {
    pub run_tag: String,
    pub start: Instant,
    /// Requests issued so far; a higher sequence number cannot be ours.
    pub issued: Arc<AtomicU64>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Events sent so far: the channel is shared with the generator, so the receiver's
    /// share is bounded here (5 per issued request, plus a fixed allowance of unmatched).
    pub sent: AtomicU64,
}

impl RecorderSink {
    fn seq_of(&self, id: &str) -> Option<u64> {
        let (tag, seq) = id.rsplit_once('-')?;
        if tag != self.run_tag || seq.len() > 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        (seq < self.issued.load(Ordering::Acquire)).then_some(seq)
    }

    /// Takes one event from the budget; false when a client has used it up.
    fn take_event(&self) -> bool {
        let budget = self.issued.load(Ordering::Acquire).saturating_mul(MAX_EVENTS_PER_REQUEST) + MAX_UNMATCHED_EVENTS;
        self.sent.fetch_add(1, Ordering::AcqRel) < budget
    }
}

impl HookSink for RecorderSink {
    fn on_post(&self, id: &str, at: Instant, _body: &[u8]) -> bool {
        match self.seq_of(id) {
            Some(seq) => {
                let at_ns = at.saturating_duration_since(self.start).as_nanos() as u64;
                if self.take_event() {
                    let _ = self.events.send(Event::Response { seq, at_ns });
                }
                true
            }
            None => {
                self.on_unmatched();
                false
            }
        }
    }

    fn on_unmatched(&self) {
        if self.take_event() {
            let _ = self.events.send(Event::Unmatched);
        }
    }
}

/// `mock-slack`'s sink: prints one line per post (arrival, id, message text).
pub(crate) struct PrintSink {
    pub out: Mutex<Box<dyn Write + Send>>,
    pub raw: bool,
    pub posts: AtomicU64,
    pub max_posts: Option<u64>,
    pub done: Arc<Notify>,
}

/// Longest message text printed on one line.
const MAX_PRINTED: usize = 500;

/// The text a person would see: the message's `text`, or a note about blocks; non-JSON
/// bodies are shown as (lossy) text. Control characters are escaped so a hostile post
/// cannot rewrite the terminal.
pub(crate) fn message_text(body: &[u8], raw: bool) -> String {
    let shown = if raw {
        String::from_utf8_lossy(body).into_owned()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(m)) => match (m.get("text"), m.get("blocks")) {
                (Some(serde_json::Value::String(t)), _) => t.clone(),
                (_, Some(serde_json::Value::Array(b))) => format!("[{} blocks]", b.len()),
                _ => "[JSON without text]".to_owned(),
            },
            _ => format!("[not JSON] {}", String::from_utf8_lossy(body)),
        }
    };
    let mut out: String = shown.chars().take(MAX_PRINTED).flat_map(char::escape_default).collect();
    if shown.chars().count() > MAX_PRINTED {
        out.push('…');
    }
    out
}

impl HookSink for PrintSink {
    fn on_post(&self, id: &str, _at: Instant, body: &[u8]) -> bool {
        let when = chatops_core::time::format_rfc3339_ms((chatops_core::time::now_unix_ns() / 1_000_000) as i64);
        let id: String = id.chars().take(128).flat_map(char::escape_default).collect();
        let line = format!("{when} {id} {}\n", message_text(body, self.raw));
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        }
        let n = self.posts.fetch_add(1, Ordering::AcqRel) + 1;
        if self.max_posts.is_some_and(|m| n >= m) {
            self.done.notify_one();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_shows_what_slack_would() {
        assert_eq!(message_text(br#"{"response_type":"ephemeral","text":"pong"}"#, false), "pong");
        assert_eq!(message_text(br#"{"blocks":[{},{}]}"#, false), "[2 blocks]");
        assert_eq!(message_text(b"\x1b[2Jhi", false), "[not JSON] \\u{1b}[2Jhi");
        assert_eq!(message_text(br#"{"text":"a\nb"}"#, false), "a\\nb");
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(10_000));
        assert_eq!(message_text(long.as_bytes(), false).chars().count(), MAX_PRINTED + 1);
        assert_eq!(message_text(b"{\"text\":1}", true), "{\\\"text\\\":1}");
    }

    #[tokio::test]
    async fn sink_accepts_only_ids_of_issued_requests() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = RecorderSink {
            run_tag: "ab12".into(),
            start: Instant::now(),
            issued: Arc::new(AtomicU64::new(10)),
            events: tx,
            sent: AtomicU64::new(0),
        };
        assert!(sink.on_post("ab12-9", Instant::now(), b""));
        assert!(matches!(rx.recv().await, Some(Event::Response { seq: 9, .. })));
        for bad in ["ab12-10", "zz-1", "ab12-", "ab12--1", "ab12-1x", "1", "", "ab12-99999999999999999999999"] {
            assert!(!sink.on_post(bad, Instant::now(), b""), "{bad}");
            assert!(matches!(rx.recv().await, Some(Event::Unmatched)), "{bad}");
        }
    }

    /// Counts posts, for the limit tests.
    #[derive(Default)]
    struct CountingSink(AtomicU64);

    impl HookSink for CountingSink {
        fn on_post(&self, _id: &str, _at: Instant, _body: &[u8]) -> bool {
            self.0.fetch_add(1, Ordering::AcqRel);
            true
        }
    }

    async fn receiver_with(limits: ReceiverLimits) -> (Receiver, Arc<CountingSink>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Arc::new(CountingSink::default());
        (serve_with_limits(listener, sink.clone(), limits).unwrap(), sink)
    }

    const TEST_LIMITS: ReceiverLimits =
        ReceiverLimits { max_connections: 8, header_read_timeout: Duration::from_millis(1000) };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_idle_connections_do_not_stop_a_real_post_from_being_counted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (receiver, sink) = receiver_with(TEST_LIMITS).await;
        // Six times the cap, each sending nothing: they hold every slot until the header
        // timeout closes them.
        let mut idle = Vec::new();
        for _ in 0..48 {
            idle.push(tokio::net::TcpStream::connect(receiver.addr).await.unwrap());
        }
        let mut real = tokio::net::TcpStream::connect(receiver.addr).await.unwrap();
        real.write_all(b"POST /hook/real-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
        let mut answer = [0u8; 12];
        // Generous: the idle connections are cut after 1 s per round of 8 slots.
        tokio::time::timeout(Duration::from_secs(30), real.read_exact(&mut answer))
            .await
            .expect("the real post is answered within 30 s")
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        assert_eq!(sink.0.load(Ordering::Acquire), 1, "the post was counted");
        drop(idle);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_trickles_its_headers_is_cut() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (receiver, sink) = receiver_with(TEST_LIMITS).await;
        let stream = tokio::net::TcpStream::connect(receiver.addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        write.write_all(b"POST /hook/slow-1 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let closed = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            // Whatever hyper sends before closing (if anything), the read ends at EOF.
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let started = Instant::now();
        // One header line every 200 ms for at most 20 s: never a complete head.
        let mut cut = false;
        for i in 0..100 {
            if closed.is_finished() || write.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(cut, "the trickling client was still connected after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(sink.0.load(Ordering::Acquire), 0);
    }
}
