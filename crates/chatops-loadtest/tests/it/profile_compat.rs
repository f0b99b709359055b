//! The Artillery fixture `tests/fixtures/artillery-echo-light.yml` (engines, plugins,
//! variables, a payload CSV, a loop with think) parses into the plan it describes and runs a
//! short load against the verifying stub, every body carrying one payload row and every
//! answer checked by the fixture's `expect`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chatops_loadtest::inspect::Expectation;
use chatops_loadtest::profile::{Load, Profile, Step};
use chatops_loadtest::schedule;

use crate::helpers::{StubConfig, run, spawn_stub};

fn fixture() -> String {
    format!("{}/tests/fixtures/artillery-echo-light.yml", env!("CARGO_MANIFEST_DIR"))
}

/// The payload's rows, as `(user_id, user_name, text)`.
const ROWS: [(&str, &str, &str); 4] = [
    ("U0001", "alice", "hello from alice"),
    ("U0002", "bob, jr", "say \"hi\", bob"),
    ("U0003", "carol", "two\r\nlines"),
    ("U0004", "dave", "échos & ampersands = fine"),
];

#[test]
fn the_fixture_parses_into_the_plan_it_describes() {
    let p = Profile::load(&fixture(), &std::collections::HashMap::<String, String>::new()).unwrap();
    let phases: Vec<_> = p.phases.iter().map(|ph| (ph.name.as_str(), ph.duration.as_secs(), ph.load)).collect();
    assert_eq!(
        phases,
        [
            ("Warm up", 10, Load::Rate { from: 1.0, to: 5.0 }),
            ("Sustained light load", 20, Load::Rate { from: 5.0, to: 5.0 })
        ]
    );
    let conds: Vec<_> = p.ensure.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(conds, ["http.response_time.p95 <= 3000", "http.response_time.p99 <= 5000", "error_rate <= 1"]);
    for needle in ["config.engines", "slack-processor.js", "plugin expect", "users.csv: 4 rows"] {
        assert!(p.notes.iter().any(|n| n.contains(needle)), "{needle}: {:?}", p.notes);
    }
    let vars = p.vars.as_ref().unwrap();
    assert_eq!(vars.names(), ["channel", "team", "user_id", "user_name", "text"]);
    let shape: Vec<&str> = p.scenarios[0]
        .flow
        .iter()
        .map(|s| match s {
            Step::Request(r) => r.label.as_str(),
            Step::Think(d) => {
                assert_eq!(*d, Duration::from_millis(100));
                "think"
            }
        })
        .collect();
    assert_eq!(shape, ["echo", "think", "echo", "think"], "loop count 2 unrolled");
    let Step::Request(echo) = &p.scenarios[0].flow[0] else { panic!() };
    assert_eq!(echo.command_name(), Some("/echo"));
    let checks = echo.inspect.as_ref().expect("`expect: - statusCode: 200` is checked");
    assert!(matches!(checks.expectations.as_slice(), [Expectation::StatusCode(c)] if c == &[200]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_runs_a_short_load_with_payload_rows_in_every_body() {
    let stub =
        spawn_stub(StubConfig { answer_after: vec![Duration::from_millis(20)], capture: 1000, ..Default::default() })
            .await;
    // 10 s + 20 s scaled to 0.5 s + 1 s, at 1→5/s then 5/s: a handful of users.
    let r = run(&[&fixture(), "--target", &stub.url, "--duration-scale", "0.05", "--drain-timeout", "5s"]).await;
    let res = r.results();
    let mut plan = Profile::load(&fixture(), &std::collections::HashMap::<String, String>::new()).unwrap();
    plan.scale(1.0, 0.05).unwrap();
    let users = schedule::arrivals(&plan.phases).count() as u64;
    assert!(users >= 4, "{users}");
    let c = &res.counters;
    assert_eq!(c.requests, 2 * users, "each user loops twice");
    assert_eq!(stub.state.bad_signatures.load(Ordering::SeqCst), 0);
    assert_eq!(stub.state.commands.load(Ordering::SeqCst), 2 * users, "every body is a slash command");
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!((c.responses, c.lost), (2 * users, 0));

    let captured = stub.state.captured.lock().unwrap().clone();
    assert_eq!(captured.len() as u64, 2 * users);
    let (mut rows_seen, mut channels) = (BTreeSet::new(), BTreeSet::new());
    for (_, body) in &captured {
        let field = |k: &str| {
            form_urlencoded::parse(body).find(|(key, _)| key == k).map(|(_, v)| v.into_owned()).unwrap_or_default()
        };
        let row = (field("user_id"), field("user_name"), field("text"));
        let i = ROWS
            .iter()
            .position(|(u, n, t)| (*u, *n, *t) == (row.0.as_str(), row.1.as_str(), row.2.as_str()))
            .unwrap_or_else(|| panic!("a body mixes rows or mangles a value: {row:?}"));
        rows_seen.insert(i);
        channels.insert(field("channel_id"));
        assert_eq!(field("team_id"), "T0LOADTEST");
    }
    assert_eq!(rows_seen.len(), 4, "order: sequence reaches every row: {rows_seen:?}");
    assert_eq!(channels, BTreeSet::from(["C0LOADTEST1".to_owned(), "C0LOADTEST2".to_owned()]));

    assert_eq!(res.thresholds.len(), 3, "{:?}", res.thresholds);
    assert!(res.passed, "{:?}", res.thresholds);
    assert!(res.test.notes.iter().any(|n| n.contains("config.engines")), "{:?}", res.test.notes);
    assert!(res.test.profile.ends_with("artillery-echo-light.yml"), "{}", res.test.profile);
}
