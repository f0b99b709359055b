//! `chatops loadtest` through the real binary against the real (spawned) bot: commands are
//! counted against their `expectAnswers`, `--max-incomplete` sets the exit code like
//! `--max-lost`, and `--json` and the failure line show the incomplete ones; the spawned
//! bot's gauges, scraped from its `/metrics`, are in the time series.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::test_config_file;

fn loadtest(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatops"))
        .current_dir(dir)
        .arg("loadtest")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// Each user runs `/echo` (the bot posts twice) then `/build`, which the profile expects to
/// answer twice too but which this bot's config makes answer once.
const PROFILE: &str = r#"config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 2
      arrivalRate: 3
scenarios:
  - name: echo then build
    flow:
      - post:
          url: /slack/commands
          body: "command=%2Fecho&text=hi&user_id=U1&team_id=T1&channel_id=C1&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F3"
          expectAnswers: 2
      - post:
          url: /slack/commands
          body: "command=%2Fbuild&text=web&user_id=U1&team_id=T1&channel_id=C1&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F4"
          expectAnswers: 2
"#;

#[test]
fn a_bot_answering_fewer_times_than_expected_fails_max_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profile.yml"), PROFILE).unwrap();
    let config =
        test_config_file(dir.path(), "[[commands]]\nname = \"/build\"\nparams = { work = \"100ms\", answers = 1 }\n");
    let out = loadtest(
        dir.path(),
        &["profile.yml", "--spawn", "--quiet", "--json", "--max-incomplete", "0", "--max-lost", "0", "-o", "r.json"],
        &[("CHATOPS_CONFIG", config.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let results = stdout_json(&out);
    let c = &results["counters"];
    let echo = &results["byCommand"]["/echo"];
    let build = &results["byCommand"]["/build"];
    let users = echo["requests"].as_u64().unwrap();
    assert_eq!(users, 6);
    assert_eq!(build["requests"].as_u64(), Some(users), "every user ran both steps");
    assert_eq!((c["lost"].as_u64(), c["incomplete"].as_u64()), (Some(0), Some(users)), "{c}");
    assert_eq!((echo["incomplete"].as_u64(), build["incomplete"].as_u64()), (Some(0), Some(users)));
    assert_eq!(c["responses"].as_u64(), Some(users * 2 + users));
    assert_eq!(echo["allAnswers"]["count"].as_u64(), Some(users));
    assert_eq!(build["allAnswers"]["count"].as_u64(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l == format!("threshold failed: incomplete <= 0 (limit 0, measured {users})")),
        "{stderr}"
    );
    assert!(!stderr.contains("lost <= 0"), "--max-lost held: {stderr}");
    // The file holds what --json printed.
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(on_disk, results);
}

#[test]
fn the_builtin_profile_expects_both_answers_of_echo_from_the_real_bot() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadtest(
        dir.path(),
        &["--profile", "smoke", "--spawn", "--quiet", "--json", "--max-incomplete", "0", "-o", "r.json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let results = stdout_json(&out);
    let c = &results["counters"];
    let requests = c["requests"].as_u64().unwrap();
    assert!(requests >= 5);
    assert_eq!((c["lost"].as_u64(), c["incomplete"].as_u64()), (Some(0), Some(0)), "{c}");
    assert_eq!(results["summaries"]["allAnswers"]["count"].as_u64(), Some(requests), "both answers of every /echo");
    assert!(results["thresholds"].as_array().unwrap().iter().any(|t| t["condition"] == "incomplete <= 0"));
}

/// `--spawn` scrapes the spawned bot's `/metrics` once per interval: the time series carries
/// the bot's queue depth, jobs in flight and dead letters (a fresh bot has none), and the
/// plain-http target opened few connections for many requests.
#[test]
fn a_spawned_bot_s_gauges_are_in_the_time_series() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadtest(dir.path(), &["--profile", "smoke", "--spawn", "--quiet", "--json", "-o", "r.json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let results = stdout_json(&out);
    let points = results["timeSeries"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 5, "the smoke profile runs 5 s in 1 s intervals");
    let servers: Vec<&Value> = points.iter().filter_map(|p| p.get("server")).collect();
    assert!(servers.len() >= points.len() - 1, "most intervals were scraped: {points:?}");
    for s in &servers {
        for gauge in ["queueDepth", "jobsInFlight", "dlqSize"] {
            let v = s[gauge].as_f64().unwrap_or(-1.0);
            assert!(v >= 0.0 && v.fract() == 0.0, "{gauge} is a count: {s}");
        }
        assert_eq!(s["dlqSize"].as_f64(), Some(0.0), "a fresh bot has no dead letters: {s}");
    }
    let notes = results["test"]["notes"].as_array().cloned().unwrap_or_default();
    if servers.len() == points.len() {
        assert!(!notes.iter().any(|n| n.as_str().unwrap_or("").contains("scrapes failed")), "{notes:?}");
    }
    let c = &results["counters"];
    let (requests, connections) = (c["requests"].as_u64().unwrap(), c["connections"].as_u64().unwrap());
    assert!(connections >= 1 && connections < requests, "keep-alive reused connections: {c}");
    assert_eq!(c["tlsHandshakes"].as_u64(), Some(0), "the spawned bot is plain http: {c}");
}

/// Two `long-write` workers and `/build` taking a second, sent at five a second: a backlog
/// forms in the bot's queue, and the scraped gauges show it where it forms (in flight held at
/// the pool's size, queue depth growing).
#[test]
fn a_backlog_in_the_spawned_bot_shows_in_its_scraped_queue_depth() {
    let dir = tempfile::tempdir().unwrap();
    let profile = r#"config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 4
      arrivalRate: 5
scenarios:
  - name: build
    flow:
      - post:
          url: /slack/commands
          body: "command=%2Fbuild&text=web&user_id=U1&team_id=T1&channel_id=C1&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F4"
"#;
    std::fs::write(dir.path().join("profile.yml"), profile).unwrap();
    let config = test_config_file(
        dir.path(),
        "[workers.long-write]\nconcurrency = 2\nlease = \"60s\"\n\n[[commands]]\nname = \"/build\"\nparams = { work = \"1s\", answers = 1 }\n",
    );
    let out = loadtest(
        dir.path(),
        &["profile.yml", "--spawn", "--quiet", "--json", "--drain-timeout", "1s", "-o", "r.json"],
        &[("CHATOPS_CONFIG", config.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let results = stdout_json(&out);
    let servers: Vec<Value> =
        results["timeSeries"]["points"].as_array().unwrap().iter().filter_map(|p| p.get("server").cloned()).collect();
    let max = |gauge: &str| servers.iter().filter_map(|s| s[gauge].as_f64()).fold(0.0, f64::max);
    assert!(servers.len() >= 3, "{servers:?}");
    // 20 commands, two at a time for a second each: at most ~8 done by the end.
    assert!(max("queueDepth") >= 3.0, "the backlog is visible: {servers:?}");
    assert_eq!(max("jobsInFlight"), 2.0, "in flight is held at the pool's size: {servers:?}");
}
