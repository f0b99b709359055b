//! The response receiver: an HTTP server on loopback that plays Slack's `response_url`.
//!
//! `POST /hook/<request-id>` answers 200 and reports the arrival time of the post to a
//! [`HookSink`]: the load test's recorder (which turns it into first/last-response E2E) or
//! `mock-slack`, which prints each post. Arrival is stamped when the request head has been
//! read, before the body, because that is when Slack would have the message. Bodies are
//! capped, so a hostile or broken client cannot make the receiver buffer without bound.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::record::Event;

/// Largest post accepted (Slack messages are at most about 40 kB of text plus blocks).
pub const MAX_POST_BYTES: usize = 256 * 1024;

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

/// Serves the receiver on an already bound listener.
pub fn serve(listener: TcpListener, sink: Arc<dyn HookSink>) -> std::io::Result<Receiver> {
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // Connections live in the set, so aborting the accept task aborts them too.
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let sink = Arc::clone(&sink);
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(req, Arc::clone(&sink)));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Ok(Receiver { addr, task })
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
}

impl HookSink for RecorderSink {
    fn on_post(&self, id: &str, at: Instant, _body: &[u8]) -> bool {
        match self.seq_of(id) {
            Some(seq) => {
                let at_ns = at.saturating_duration_since(self.start).as_nanos() as u64;
                let _ = self.events.send(Event::Response { seq, at_ns });
                true
            }
            None => {
                self.on_unmatched();
                false
            }
        }
    }

    fn on_unmatched(&self) {
        let _ = self.events.send(Event::Unmatched);
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
        };
        assert!(sink.on_post("ab12-9", Instant::now(), b""));
        assert!(matches!(rx.recv().await, Some(Event::Response { seq: 9, .. })));
        for bad in ["ab12-10", "zz-1", "ab12-", "ab12--1", "ab12-1x", "1", "", "ab12-99999999999999999999999"] {
            assert!(!sink.on_post(bad, Instant::now(), b""), "{bad}");
            assert!(matches!(rx.recv().await, Some(Event::Unmatched)), "{bad}");
        }
    }
}
