//! The toolkit end to end, through the real binary: `loadtest --spawn` writes results, the
//! bot's log and the per-request records; `analyze` joins them; `report` renders them;
//! `compare` judges them; and every artefact's numbers agree with the others. Also: a load
//! test leaves no secret in any log line, metric or artefact.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn chatops(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatops")).current_dir(dir).args(args).output().unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn results_file(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("test-") && name.ends_with(".json") && !name.contains(".metrics.")
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

#[test]
fn loadtest_analyze_report_and_compare_agree() {
    let dir = tempfile::tempdir().unwrap();
    let run = chatops(
        dir.path(),
        &["loadtest", "--profile", "smoke", "--spawn", "--quiet", "--record-requests", "results/requests.ndjson"],
    );
    assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let results_path = results_file(dir.path());
    let results = read_json(&results_path);
    let requests = results["counters"]["requests"].as_u64().unwrap();
    assert!(requests >= 5, "smoke sends a handful of commands");
    assert_eq!(results["counters"]["lost"], 0);
    assert_eq!(results["counters"]["responses"].as_u64().unwrap(), 2 * requests, "two answers per /echo");
    assert_eq!(results["test"]["spawned"], true);
    let bot_log = results_path.parent().unwrap().join(results["test"]["botLog"].as_str().unwrap());
    assert!(bot_log.exists(), "the spawned bot's log sits beside the results");

    // analyze finds the log and the requests file from the results alone.
    let analyzed = chatops(dir.path(), &["analyze", "--from-results", results_path.to_str().unwrap()]);
    assert!(analyzed.status.success(), "{}", String::from_utf8_lossy(&analyzed.stderr));
    let metrics_path = results_path.with_extension("metrics.json");
    let metrics = read_json(&metrics_path);
    assert_eq!(metrics["router"]["requests"].as_u64(), Some(requests), "one router line per request sent");
    assert_eq!(metrics["worker"]["attempts"].as_u64(), Some(requests), "one worker line per command");
    let join = &metrics["join"];
    assert_eq!(join["overall"]["requests"].as_u64(), Some(requests));
    assert_eq!(join["overall"]["complete"].as_u64(), Some(requests), "every client record joined its server lines");
    // The client's E2E (scheduled send → last answer) covers the server's router → last answer.
    let client_e2e = results["summaries"]["lastResponse"]["mean"].as_f64().unwrap();
    let server_e2e = metrics["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == "lastResponseE2eMs")
        .map(|s| s["stats"]["mean"].as_f64().unwrap())
        .unwrap();
    assert!(client_e2e + 0.5 >= server_e2e, "client E2E {client_e2e} ms covers server E2E {server_e2e} ms");

    // The same log through stdin gives the same counts.
    let mut piped = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .current_dir(dir.path())
        .args(["analyze", "-", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut piped.stdin.take().unwrap(), &std::fs::read(&bot_log).unwrap()).unwrap();
    let piped = piped.wait_with_output().unwrap();
    assert!(piped.status.success());
    let from_stdin: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(from_stdin["router"]["requests"], metrics["router"]["requests"]);
    assert_eq!(from_stdin["worker"]["attempts"], metrics["worker"]["attempts"]);

    // report renders both, offline, with the same request count.
    let html_path = dir.path().join("report.html");
    let png_path = dir.path().join("report.png");
    let reported = chatops(
        dir.path(),
        &[
            "report",
            results_path.to_str().unwrap(),
            "-o",
            html_path.to_str().unwrap(),
            "--png",
            png_path.to_str().unwrap(),
        ],
    );
    assert!(reported.status.success(), "{}", String::from_utf8_lossy(&reported.stderr));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains(&requests.to_string()));
    assert!(html.contains("Where the E2E time goes") || html.contains("E2E breakdown"), "server side rendered");
    let png = std::fs::read(&png_path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // compare: a run against itself is no regression; a made-up slower candidate is.
    let same = chatops(dir.path(), &["compare", results_path.to_str().unwrap(), results_path.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let mut slower = results.clone();
    for summary in ["ack", "firstResponse", "lastResponse"] {
        for stat in ["p50", "p95", "p99", "mean", "max"] {
            let v = slower["summaries"][summary][stat].as_f64().unwrap();
            slower["summaries"][summary][stat] = Value::from(v * 3.0 + 50.0);
        }
    }
    let slower_path = dir.path().join("slower.json");
    std::fs::write(&slower_path, serde_json::to_string(&slower).unwrap()).unwrap();
    let regressed = chatops(dir.path(), &["compare", results_path.to_str().unwrap(), slower_path.to_str().unwrap()]);
    assert_eq!(regressed.status.code(), Some(1), "{}", String::from_utf8_lossy(&regressed.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_test_leaves_no_secret_in_logs_metrics_or_artefacts() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackReceiver::start().await;
    let config = test_config_file(dir.path(), "");
    let log = dir.path().join("bot.log");
    let bot = BotProcess::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().join("data").to_str().unwrap()],
        &log,
        &[("CHATOPS_CONFIG", config.to_str().unwrap())],
    );
    // A profile whose response_url carries a token, as Slack's do; the generator's own
    // receiver is off so the bot posts to that URL.
    let token = "T0KENsecretPATH";
    let profile = format!(
        r#"config:
  target: "{target}"
  phases:
    - duration: 3
      arrivalRate: 10
scenarios:
  - name: echo
    flow:
      - post:
          url: "/slack/commands"
          headers:
            Content-Type: "application/x-www-form-urlencoded"
          body: "token=legacy&team_id=T1&user_id=U{{{{ $randomNumber(1, 1000000) }}}}&command=%2Fecho&text=hi&response_url=http%3A%2F%2F{addr}%2Fhook%2F{token}{{{{ $randomString(8) }}}}"
          beforeRequest: generateSlackSignature
"#,
        target = bot.base,
        addr = slack.addr,
    );
    std::fs::write(dir.path().join("profile.yml"), profile).unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            Command::new(env!("CARGO_BIN_EXE_chatops"))
                .current_dir(&dir)
                .args([
                    "loadtest",
                    "--profile",
                    "profile.yml",
                    "--no-receiver",
                    "--quiet",
                    "--record-requests",
                    "results/requests.ndjson",
                ])
                .env("SLACK_SIGNING_SECRET", SECRET)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Wait for the answers, so the workers' lines are written.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slack.total_posts() < 60 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slack.total_posts() >= 60, "30 commands answered twice ({} posts)", slack.total_posts());
    let metrics = http().get(format!("{}/metrics", bot.metrics_base)).send().await.unwrap().text().await.unwrap();
    let mut texts =
        vec![("metrics".to_owned(), metrics), ("stdout".to_owned(), String::from_utf8_lossy(&out.stdout).into_owned())];
    texts.push(("bot log".to_owned(), std::fs::read_to_string(&log).unwrap()));
    for entry in std::fs::read_dir(dir.path().join("results")).unwrap() {
        let path = entry.unwrap().path();
        texts.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
    }
    let log_text = &texts[2].1;
    assert!(
        log_text.lines().filter(|l| l.contains("Performance metrics")).count() >= 30,
        "the log has the worker lines"
    );
    for (name, text) in &texts {
        assert!(!text.contains(SECRET), "the signing secret appears in {name}");
        assert!(!text.contains(token), "a response_url token appears in {name}");
    }
}
