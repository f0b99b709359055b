//! Every request is signed over the exact bytes sent, with a fresh timestamp, and the
//! signature verifies under an HMAC computed here independently of chatops-core.

use hmac::{KeyInit, Mac};

use crate::helpers::{SECRET, StubConfig, echo_profile, parse_args, spawn_stub, write_profile};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn independent_signature(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_under_an_independent_hmac() {
    let stub = spawn_stub(StubConfig { capture: 30, ..Default::default() }).await;
    let (dir, profile) = write_profile(&echo_profile("    - duration: 1\n      arrivalRate: 30", ""));
    // The secret comes from a file, which wins over --signing-secret.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let out = dir.path().join("r.json");
    let args = parse_args(&[
        "--quiet",
        "--profile",
        &profile,
        "--target",
        &stub.url,
        "--signing-secret",
        "not-the-secret",
        "--signing-secret-file",
        secret_file.to_str().unwrap(),
        "--drain-timeout",
        "100ms",
        "-o",
        out.to_str().unwrap(),
    ]);
    crate::helpers::plan_run_write(&args).await.unwrap();
    let captured = stub.state.captured.lock().unwrap().clone();
    assert_eq!(captured.len(), 30);
    let now = chatops_core::time::now_unix_secs();
    let mut bodies = std::collections::HashSet::new();
    for (headers, body) in &captured {
        let ts = headers["x-slack-request-timestamp"].to_str().unwrap();
        let sig = headers["x-slack-signature"].to_str().unwrap();
        assert_eq!(sig, independent_signature(SECRET, ts, body));
        let ts: u64 = ts.parse().unwrap();
        assert!(now.abs_diff(ts) < 60, "fresh timestamp: {ts} vs {now}");
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        // The request id header names the same request as the rewritten response_url.
        let id = headers["x-request-id"].to_str().unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let encoded_hook = format!("%2Fhook%2F{id}");
        assert!(text.contains(&encoded_hook), "{text} should contain {encoded_hook}");
        assert!(chatops_core::CorrelationId::parse(id).is_some(), "{id} is a valid correlation id");
        bodies.insert(body.clone());
    }
    assert_eq!(bodies.len(), 30, "templates render fresh values for every request");
}
