//! `mock-slack`: the stand-alone receiver prints each post and survives hostile ones.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chatops_loadtest::MockSlackArgs;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn send(url: &str, method: hyper::Method, body: Vec<u8>) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::builder().method(method).uri(url).body(Full::new(Bytes::from(body))).unwrap();
    client.request(req).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_slack_prints_each_post_and_stops_after_max_posts() {
    let out = Out::default();
    let done = Arc::new(Notify::new());
    let args = MockSlackArgs { listen: "127.0.0.1:0".parse().unwrap(), max_posts: Some(2), raw: false };
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
    let server = chatops_loadtest::serve_mock_slack(listener, Box::new(out.clone()), &args, Arc::clone(&done)).unwrap();
    let base = server.base_url();
    let waiter = tokio::spawn(async move { done.notified().await });
    assert_eq!(send(&format!("{base}/hook/cmd-1"), hyper::Method::POST, br#"{"text":"pong"}"#.to_vec()).await, 200);
    assert_eq!(send(&format!("{base}/hook/cmd-2"), hyper::Method::POST, b"not json\x1b[2J".to_vec()).await, 200);
    tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.unwrap().unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(" cmd-1 pong"), "{}", lines[0]);
    assert!(lines[1].contains(" cmd-2 [not JSON] not json\\u{1b}[2J"), "{}", lines[1]);
    assert!(chatops_core::time::parse_rfc3339_ns(lines[0].split(' ').next().unwrap()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_refuses_hostile_posts() {
    let out = Out::default();
    let args = MockSlackArgs { listen: "127.0.0.1:0".parse().unwrap(), max_posts: None, raw: true };
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
    let server =
        chatops_loadtest::serve_mock_slack(listener, Box::new(out.clone()), &args, Arc::new(Notify::new())).unwrap();
    let base = server.base_url();
    let big = vec![b'x'; chatops_loadtest::receiver::MAX_POST_BYTES + 1];
    assert_eq!(send(&format!("{base}/hook/big"), hyper::Method::POST, big).await, 413);
    assert_eq!(send(&format!("{base}/hook/x"), hyper::Method::GET, vec![]).await, 405);
    assert_eq!(send(&format!("{base}/other"), hyper::Method::POST, vec![]).await, 404);
    assert_eq!(send(&format!("{base}/hook/"), hyper::Method::POST, vec![]).await, 404);
    assert_eq!(send(&format!("{base}/hook/a/b"), hyper::Method::POST, vec![]).await, 404);
    // A raw TCP client sending garbage does not take the server down.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"\x00\xff GARBAGE\r\n\r\n").await.unwrap();
    }
    assert_eq!(send(&format!("{base}/hook/still-up%0A"), hyper::Method::POST, b"{}".to_vec()).await, 200);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "only the accepted post is printed: {text}");
    assert!(text.contains("still-up%0A {}"), "{text}");
}
