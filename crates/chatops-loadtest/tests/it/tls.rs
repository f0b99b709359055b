//! https targets against a local TLS server (tokio-rustls + hyper, a self-signed certificate
//! made by rcgen) that plays the bot's ack: `--insecure` runs reuse their connections (few
//! handshakes for many requests), a verified run refuses the certificate as `tls` errors
//! with one reason in the notes, and hostile servers (one that closes mid-handshake, one
//! that speaks plain HTTP, one that never speaks) give clear errors in bounded time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::helpers::{Run, StubConfig, echo_profile, run, spawn_stub, write_profile};

/// The SNI and ALPN protocol a client sent.
type Hello = (Option<String>, Option<Vec<u8>>);

/// What the TLS server saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    requests: AtomicU64,
    /// SNI and ALPN of the first handshake.
    first: Mutex<Option<Hello>>,
}

struct TlsServer {
    url_ip: String,
    url_localhost: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS server on 127.0.0.1:0 with a fresh self-signed certificate for `localhost` and
/// 127.0.0.1, answering every request like the bot's ingress acks a command.
async fn spawn_tls_server() -> TlsServer {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let task = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            seen.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    seen.handshakes.fetch_add(1, Ordering::SeqCst);
                    {
                        let conn = tls.get_ref().1;
                        let mut first = seen.first.lock().unwrap();
                        first.get_or_insert_with(|| {
                            (conn.server_name().map(str::to_owned), conn.alpn_protocol().map(<[u8]>::to_vec))
                        });
                    }
                    let service = service_fn(move |_req| {
                        let seen = Arc::clone(&seen);
                        async move {
                            seen.requests.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                                br#"{"response_type":"ephemeral","text":"Processing"}"#,
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    });
    TlsServer {
        url_ip: format!("https://127.0.0.1:{port}"),
        url_localhost: format!("https://localhost:{port}"),
        seen,
        task,
    }
}

/// A raw TCP server that treats each connection with `handle`.
async fn spawn_raw_server<F, Fut>(handle: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let task = tokio::spawn(async move {
        loop {
            if let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(handle(tcp));
            }
        }
    });
    (url, task)
}

const TEN_PER_SECOND: &str = "    - duration: 2\n      arrivalRate: 10";

/// Runs the echo profile (20 arrivals over 2 s) against `target`, bounded so that a hang
/// fails the test instead of stalling it.
async fn run_against(target: &str, extra: &[&str]) -> (tempfile::TempDir, Run) {
    let (g, profile) = write_profile(&echo_profile(TEN_PER_SECOND, "  http:\n    timeout: 2"));
    let mut argv = vec!["--profile", profile.as_str(), "--target", target, "--no-receiver", "--threads", "1"];
    argv.extend_from_slice(extra);
    let r = tokio::time::timeout(Duration::from_secs(60), run(&argv)).await.expect("the run ends by itself");
    (g, r)
}

fn tls_errors(r: &Run) -> u64 {
    r.results().counters.errors.get("tls").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_run_against_a_self_signed_server_reuses_its_tls_connections() {
    let server = spawn_tls_server().await;
    let (_g, r) = run_against(&server.url_localhost, &["--insecure"]).await;
    let res = r.results();
    let c = &res.counters;
    assert_eq!(c.requests, 20, "{c:?}");
    assert_eq!(c.acks.get("200").copied(), Some(20), "every request acked over TLS: {c:?}");
    assert!(c.errors.is_empty(), "{c:?}");
    assert_eq!(server.seen.requests.load(Ordering::SeqCst), 20);
    // Keep-alive: a handful of connections carry all twenty requests.
    assert!(c.tls_handshakes >= 1 && c.tls_handshakes * 4 <= c.requests, "{c:?}");
    assert_eq!(c.connections, c.tls_handshakes, "each connection was one handshake: {c:?}");
    assert_eq!(server.seen.handshakes.load(Ordering::SeqCst), c.tls_handshakes, "the server counted the same");
    let (sni, alpn) = server.seen.first.lock().unwrap().clone().unwrap();
    assert_eq!(sni.as_deref(), Some("localhost"), "SNI names the target's host");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "ALPN offers HTTP/1.1");
    assert!(
        res.test.notes.iter().any(|n| n.contains("--insecure") && n.contains("not verified")),
        "{:?}",
        res.test.notes
    );
    let table = chatops_loadtest::console::summary_table(res);
    assert!(table.contains("TLS handshakes") && table.contains("/s)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_refused_as_tls_errors_with_one_reason() {
    let server = spawn_tls_server().await;
    let (_g, r) = run_against(&server.url_ip, &[]).await;
    let res = r.results();
    let c = &res.counters;
    assert_eq!(c.requests, 20, "{c:?}");
    assert_eq!(tls_errors(&r), 20, "every arrival's handshake failed: {c:?}");
    assert!(c.acks.is_empty() && c.tls_handshakes == 0, "{c:?}");
    assert!(c.connections >= 1, "the TCP connects themselves worked: {c:?}");
    assert_eq!(server.seen.requests.load(Ordering::SeqCst), 0, "nothing was sent over an unverified connection");
    let tls_notes: Vec<&String> = res.test.notes.iter().filter(|n| n.starts_with("TLS failed")).collect();
    assert_eq!(tls_notes.len(), 1, "one reason, not one per request: {:?}", res.test.notes);
    assert!(tls_notes[0].contains("certificate") && tls_notes[0].contains("--insecure"), "{}", tls_notes[0]);
    assert!(tls_notes[0].contains("20 `tls` errors"), "{}", tls_notes[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_during_the_handshake_is_a_clear_tls_error() {
    let (url, task) = spawn_raw_server(|mut tcp| async move {
        // Read the ClientHello's first bytes, then hang up.
        let mut buf = [0u8; 16];
        let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await;
        drop(tcp);
    })
    .await;
    let (_g, r) = run_against(&url, &["--insecure"]).await;
    task.abort();
    assert_eq!(tls_errors(&r), 20, "{:?}", r.results().counters);
    let note = r.results().test.notes.iter().find(|n| n.starts_with("TLS failed")).cloned().unwrap_or_default();
    assert!(note.contains("closed the connection during the TLS handshake"), "{:?}", r.results().test.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_behind_an_https_target_is_named_as_such() {
    let stub = spawn_stub(StubConfig::default()).await;
    let https = stub.url.replacen("http://", "https://", 1);
    let (_g, r) = run_against(&https, &["--insecure"]).await;
    assert_eq!(tls_errors(&r), 20, "{:?}", r.results().counters);
    let note = r.results().test.notes.iter().find(|n| n.starts_with("TLS failed")).cloned().unwrap_or_default();
    assert!(note.contains("plain-HTTP") && note.contains("http://"), "{:?}", r.results().test.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_handshake_times_out() {
    let (url, task) = spawn_raw_server(|tcp| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    })
    .await;
    let (_g, r) = run_against(&url, &["--insecure"]).await;
    task.abort();
    let c = &r.results().counters;
    assert_eq!(c.requests, 20, "{c:?}");
    assert_eq!(c.errors.get("timeout").copied(), Some(20), "the request timeout covers the handshake: {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_on_a_plain_http_target_says_it_does_nothing() {
    let stub = spawn_stub(StubConfig::default()).await;
    let (_g, r) = run_against(&stub.url, &["--insecure"]).await;
    let res = r.results();
    assert_eq!(res.counters.acks.get("200").copied(), Some(20));
    assert_eq!(res.counters.tls_handshakes, 0);
    assert!(res.counters.connections >= 1);
    assert!(
        res.test.notes.iter().any(|n| n == "--insecure has no effect: the target is plain http"),
        "{:?}",
        res.test.notes
    );
}
