//! `chatops loadtest` through the real binary against the real (spawned) bot: commands are
//! counted against their `expectAnswers`, `--max-incomplete` sets the exit code like
//! `--max-lost`, and `--json` and the failure line show the incomplete ones.

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
