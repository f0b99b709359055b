//! Each command's answers counted against its `expectAnswers`: a stub bot that acks every
//! command and posts to its response_url twice, once or not at all, and the generator's
//! real receiver; exact lost and incomplete counts, the exit code of `--max-incomplete`,
//! and a drain that waits for the last expected answer (but not past the response window).

use std::time::{Duration, Instant};

use crate::helpers::{StubConfig, run, spawn_stub, write_profile};

/// `count` /echo commands over one second, each expecting `answers` posts.
fn profile(count: u64, answers: u8, ensure: &str) -> String {
    format!(
        r#"config:
  target: "http://127.0.0.1:9"
  phases:
    - duration: 1
      arrivalCount: {count}
{ensure}
scenarios:
  - name: echo
    flow:
      - post:
          url: /slack/commands
          body: "command=%2Fecho&text=hi&user_id=U1&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1%2F2%2F3"
          expectAnswers: {answers}
"#
    )
}

/// Request n gets 2, 1 or 0 answers as n mod 3 is 0, 1 or 2.
fn two_one_none(seq: u64) -> usize {
    [2, 1, 0][(seq % 3) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_drops_answers_gives_exact_lost_and_incomplete_counts() {
    let stub = spawn_stub(StubConfig {
        answer_after: vec![Duration::from_millis(20), Duration::from_millis(40)],
        answers_for: Some(two_one_none),
        ..Default::default()
    })
    .await;
    let ensure = "  ensure:\n    conditions:\n      - expression: \"incomplete <= 4 and lost == 4\"";
    let (_g, path) = write_profile(&profile(12, 2, ensure));
    let r = run(&[
        "--profile",
        &path,
        "--target",
        &stub.url,
        "--drain-timeout",
        "2s",
        "--max-lost",
        "4",
        "--max-incomplete",
        "0",
        "--record-requests",
        "{dir}/req.ndjson",
    ])
    .await;
    let res = r.results();
    let c = &res.counters;
    assert_eq!((c.requests, c.responses), (12, 4 * 2 + 4));
    assert_eq!((c.lost, c.incomplete), (4, 4), "a lost command is not also incomplete");
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(res.summaries.first_response.count, 8, "the first answer as before");
    assert_eq!(res.summaries.all_answers.count, 4, "only the commands with both answers");
    assert!(res.summaries.all_answers.min >= 40.0, "{:?}", res.summaries.all_answers);
    let echo = &res.by_command["/echo"];
    assert_eq!((echo.lost, echo.incomplete, echo.all_answers.count), (4, 4, 4));
    assert_eq!(res.by_scenario["echo"].incomplete, 4);

    // --max-incomplete 0 fails, like --max-lost, with its one line; the rest held.
    let o = r.ok();
    assert_eq!(o.exit_code(), 1);
    assert_eq!(o.failures, ["threshold failed: incomplete <= 0 (limit 0, measured 4)"]);
    let held: Vec<&str> = res.thresholds.iter().filter(|t| t.passed).map(|t| t.condition.as_str()).collect();
    assert_eq!(held, ["incomplete <= 4 and lost == 4", "lost <= 4"]);

    // The per-request record says what each command expected and got.
    let text = std::fs::read_to_string(r.path("req.ndjson")).unwrap();
    let mut got: Vec<(u64, u64, u64)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let seq = v["id"].as_str().unwrap().rsplit_once('-').unwrap().1.parse().unwrap();
            (seq, v["expectedAnswers"].as_u64().unwrap(), v["responses"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    let want: Vec<(u64, u64, u64)> = (0..12).map(|s| (s, 2, two_one_none(s) as u64)).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_every_expected_answer_but_not_past_the_response_window() {
    let stub = spawn_stub(StubConfig {
        answer_after: vec![Duration::from_millis(30), Duration::from_millis(1500)],
        ..Default::default()
    })
    .await;
    let (_g, path) = write_profile(&profile(5, 2, ""));
    // The second answer comes 1.5 s after its command: well after a first-answer drain
    // (which stopped 250 ms after the last first answer) would have ended.
    let waited = run(&["--profile", &path, "--target", &stub.url, "--drain-timeout", "20s"]).await;
    let c = &waited.results().counters;
    assert_eq!((c.requests, c.responses, c.lost, c.incomplete), (5, 10, 0, 0));
    let all = &waited.results().summaries.all_answers;
    assert_eq!(all.count, 5);
    assert!(all.min >= 1500.0, "{all:?}");

    // With a shorter response window no answer after it counts, so the drain stops there.
    let started = Instant::now();
    let cut =
        run(&["--profile", &path, "--target", &stub.url, "--drain-timeout", "20s", "--response-window", "700ms"]).await;
    let c = &cut.results().counters;
    assert_eq!((c.requests, c.lost, c.incomplete), (5, 0, 5));
    assert_eq!(cut.results().summaries.all_answers.count, 0);
    assert!(started.elapsed() < Duration::from_secs(15), "the drain took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_answers_zero_counts_nothing_lost() {
    let stub = spawn_stub(StubConfig::default()).await;
    let (_g, path) = write_profile(&profile(4, 0, ""));
    let r = run(&["--profile", &path, "--target", &stub.url, "--drain-timeout", "200ms", "--max-lost", "0"]).await;
    let c = &r.results().counters;
    assert_eq!((c.requests, c.responses, c.lost, c.incomplete), (4, 0, 0, 0));
    assert_eq!(r.ok().exit_code(), 0);
}
