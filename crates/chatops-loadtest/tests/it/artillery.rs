//! A representative Artillery config for a Slack bot runs as it is: ramps and a pause,
//! weighted scenarios with templated bodies (a `body:` string and a `form:` map),
//! `ensure` in both forms, a `processor`, `beforeRequest: generateSlackSignature`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::helpers::{StubConfig, run, spawn_stub, write_profile};

const CONFIG: &str = r#"
config:
  target: "http://localhost:3000"
  processor: "./slack-processor.js"
  phases:
    - duration: 2
      arrivalRate: 5
      rampTo: 20
      name: "Warm up"
    - pause: 1
    - duration: 2
      arrivalRate: 20
      name: "Sustained load"
  http:
    timeout: 5
  ensure:
    maxErrorRate: 1
    p99: 3000
    thresholds:
      - http.response_time.p95: 3000
    conditions:
      - expression: "vusers.failed == 0 and e2e.p99 < 5000"
        strict: true
  plugins:
    ensure: {}
    metrics-by-endpoint: {}
scenarios:
  - name: "Echo command"
    weight: 7
    flow:
      - post:
          url: "/slack/commands"
          headers:
            Content-Type: "application/x-www-form-urlencoded"
            X-Load-Path: "{{ $processEnvironment.PATH }}"
          body: "token=xyz&team_id=T123&team_domain=test&channel_id=C123&channel_name=general&user_id=U{{ $randomNumber(10000, 99999) }}&user_name=loaduser&command=/echo&text=hello+{{ $randomString(8) }}&response_url=https://hooks.slack.com/commands/T123/{{ $randomNumber(1, 999999) }}/{{ $randomString(10) }}&trigger_id={{ $uuid }}"
          beforeRequest: "generateSlackSignature"
          afterResponse: "captureMetrics"
  - name: "Deploy command"
    weight: 3
    flow:
      - post:
          url: "/slack/commands"
          form:
            token: xyz
            team_id: T123
            channel_id: C123
            user_id: "U{{ $randomString(6) }}"
            command: /deploy
            text: "web build-{{ $randomNumber(1, 9) }}"
            response_url: "https://hooks.slack.com/commands/T123/1/abc"
            trigger_id: "{{ $uuid }}"
          beforeRequest: generateSlackSignature
          afterResponse: captureMetrics
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn representative_artillery_config_runs_unchanged_with_valid_signatures() {
    let stub = spawn_stub(StubConfig { answer_after: vec![Duration::from_millis(20)], ..Default::default() }).await;
    let (_g, profile) = write_profile(CONFIG);
    let r = run(&["--profile", &profile, "--target", &stub.url, "--drain-timeout", "5s"]).await;
    let res = r.results();
    let c = &res.counters;
    // 2 s ramp 5→20/s (25 arrivals) + 2 s at 20/s (40).
    assert_eq!(c.requests, 65);
    assert_eq!(stub.state.bad_signatures.load(Ordering::SeqCst), 0, "the stub verifies with chatops-core");
    assert_eq!(stub.state.commands.load(Ordering::SeqCst), 65, "every body parses as a slash command");
    assert_eq!(c.acks.get("200"), Some(&65));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!((c.responses, c.lost), (65, 0));
    assert_eq!(res.phases.len(), 3);
    assert_eq!(res.phases[1].arrival_rate, 0.0);
    assert_eq!(res.phases[2].start_offset_ms, 3000);
    assert!(res.by_command.contains_key("/echo") && res.by_command.contains_key("/deploy"), "{:?}", res.by_command);
    let echo = res.by_scenario["Echo command"].requests;
    let deploy = res.by_scenario["Deploy command"].requests;
    assert_eq!(echo + deploy, 65);
    assert!(echo > deploy, "weights 7:3 → {echo}:{deploy}");
    assert_eq!(res.thresholds.len(), 4, "{:?}", res.thresholds);
    assert!(res.thresholds.iter().all(|t| t.passed), "{:?}", res.thresholds);
    assert!(res.passed);
    assert!(res.test.notes.iter().any(|n| n.contains("slack-processor.js")), "{:?}", res.test.notes);
    assert!(res.summaries.first_response.min >= 20.0, "{:?}", res.summaries.first_response);
    // The results file is what was returned.
    let on_disk: chatops_core::results::LoadTestResults =
        serde_json::from_str(&std::fs::read_to_string(r.path("results.json")).unwrap()).unwrap();
    assert_eq!(&on_disk, res);
}
