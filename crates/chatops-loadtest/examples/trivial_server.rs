//! Run with `cargo run --release -p chatops-loadtest --example trivial_server -- [ADDR] [THREADS]`.
//!
//! The smallest useful HTTP target for benchmarking the load generator: answers every
//! request with 200 and a Slack-style ephemeral JSON body, keep-alive, no parsing. It prints
//! its bound address on the first line of stdout (ADDR defaults to 127.0.0.1:0).
#![allow(clippy::unwrap_used)] // tests and benchmarks: a failed unwrap is the failure report

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const ACK: &[u8] = br#"{"response_type":"ephemeral","text":"Processing..."}"#;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let mut r = Response::new(Full::new(Bytes::from_static(ACK)));
                    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    })
}
