//! What real Artillery configs contain, key by key: `engines`, `plugins`, `variables`,
//! `payload`, `json:`, `loop`/`count`, `think`, `capture`/`expect`. Each is accepted,
//! accepted with a note, or refused with its line and what to use instead.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::request::HookTarget;

const HEAD: &str = "config:\n  target: http://127.0.0.1:1\n  phases:\n    - duration: 1\n      arrivalRate: 1\n";

fn env() -> HashMap<String, String> {
    HashMap::new()
}

fn parse(yaml: &str) -> Result<Profile, ProfileError> {
    Profile::parse(yaml, "test.yml", &env())
}

fn parse_in(yaml: &str, dir: &Path) -> Result<Profile, ProfileError> {
    Profile::parse_in(yaml, "test.yml", Some(dir), &env())
}

/// A profile with `config_extra` under config and one post whose request keys are `request`.
fn with(config_extra: &str, request: &str) -> String {
    format!(
        "{HEAD}{config_extra}scenarios:\n  - name: s\n    flow:\n      - post:\n          url: /slack/commands\n{request}"
    )
}

fn requests(p: &Profile) -> Vec<&crate::request::RequestSpec> {
    p.scenarios[0]
        .flow
        .iter()
        .filter_map(|s| match s {
            Step::Request(r) => Some(&**r),
            Step::Think(_) => None,
        })
        .collect()
}

fn render_body(spec: &crate::request::RequestSpec) -> String {
    let mut out = String::new();
    spec.body.render_into(None::<HookTarget<'_>>, &mut out);
    out
}

#[track_caller]
fn refused(yaml: &str, line: u64, needles: &[&str]) {
    let err = parse(yaml).unwrap_err().to_string();
    assert!(err.contains(&format!("line {line}")), "expected line {line}: {err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}`: {err}");
    }
}

#[test]
fn engines_are_accepted_with_one_note() {
    let p = parse(&with("  engines:\n    http:\n      timeout: 5\n    ws: {}\n", "")).unwrap();
    let notes: Vec<_> = p.notes.iter().filter(|n| n.contains("config.engines")).collect();
    assert_eq!(notes.len(), 1, "{:?}", p.notes);
    assert!(notes[0].contains("ignored") && notes[0].contains("line 7"), "{notes:?}");
}

#[test]
fn plugins_are_warned_about_by_name_and_ensure_maps_to_ours() {
    let plugins = "  plugins:\n    ensure:\n      p99: 5000\n      maxErrorRate: 1\n    metrics-by-endpoint:\n      useOnlyRequestNames: true\n    apdex:\n      threshold: 100\n    expect: {}\n    publish-metrics:\n      - type: datadog\n";
    let p = parse(&with(plugins, "")).unwrap();
    let conds: Vec<_> = p.ensure.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(conds, ["http.response_time.p99 <= 5000", "error_rate <= 1"]);
    for name in ["apdex", "publish-metrics"] {
        assert!(p.notes.iter().any(|n| n.starts_with("warning: plugin") && n.contains(name)), "{name}: {:?}", p.notes);
    }
    assert!(p.notes.iter().any(|n| n.contains("plugin expect") && n.contains("not applied yet")), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.contains("metrics-by-endpoint accepted")), "{:?}", p.notes);
    // An ensure plugin of another shape is a warning, not an error.
    let odd = parse(&with("  plugins:\n    ensure:\n      - p99\n", "")).unwrap();
    assert!(odd.notes.iter().any(|n| n.contains("plugin ensure (line 8)")), "{:?}", odd.notes);
    assert!(odd.ensure.is_empty());
    // A bad condition inside the plugin's ensure is still an error, at the plugin's line.
    refused(&with("  plugins:\n    ensure:\n      conditions:\n        - expression: \"p99 <\"\n", ""), 8, &["number"]);
}

#[test]
fn variables_cycle_per_user_and_scalars_are_constants() {
    let vars = "  variables:\n    channel:\n      - C1\n      - C2\n      - C3\n    team: T9\n    retries: 3\n";
    let req = "          headers:\n            X-Channel: \"{{ channel }}\"\n          form:\n            command: /echo\n            team_id: \"{{ team }}\"\n            channel_id: \"{{ channel }}\"\n            text: \"n={{ retries }} c={{ channel }}\"\n";
    let p = parse(&with(vars, req)).unwrap();
    let spec = requests(&p)[0];
    let bodies: Vec<String> = (0..4).map(|_| render_body(spec)).collect();
    let channels: Vec<&str> =
        bodies.iter().map(|b| b.split('&').find_map(|kv| kv.strip_prefix("channel_id=")).unwrap()).collect();
    assert_eq!(channels, ["C1", "C2", "C3", "C1"], "one user per body: {bodies:?}");
    for b in &bodies {
        assert!(b.contains("team_id=T9"), "{b}");
        let c = b.split('&').find_map(|kv| kv.strip_prefix("channel_id=")).unwrap();
        assert!(b.contains(&format!("text=n%3D3+c%3D{c}")), "both uses in one body read one user: {b}");
    }
    assert_eq!(spec.headers[0].1.bindings(), p.vars.as_ref(), "headers read the variables too");
    // A variable in a body string and in the URL.
    let p = parse(&with(vars, "          body: \"command=%2Fecho&channel_id={{ channel }}\"\n")).unwrap();
    assert!(render_body(requests(&p)[0]).starts_with("command=%2Fecho&channel_id=C"));
    let p = parse(&with(vars, "").replace("url: /slack/commands", "url: \"/slack/{{ team }}\"")).unwrap();
    assert_eq!(requests(&p)[0].url.as_static(), Some("/slack/T9"));
}

#[test]
fn unknown_and_bad_variables_are_refused_with_their_line() {
    let vars = "  variables:\n    channel: [C1, C2]\n";
    refused(&with(vars, "          body: \"text={{ user }}\"\n"), 13, &["user", "config.variables", "channel"]);
    refused(&with("  variables:\n    empty: []\n", ""), 7, &["config.variables", "empty list"]);
    refused(&with("  variables:\n    \"bad name\": 1\n", ""), 7, &["bad name"]);
    refused(
        &with("  variables:\n    nested:\n      a: 1\n", ""),
        8,
        &["a variable: a string, number or boolean, or a list"],
    );
}

const USERS: &str =
    "user_id,user_name,text\r\nU001,alice,hello\r\nU002,\"bob, jr\",\"say \"\"hi\"\"\"\r\nU003,carol,bye\r\n";

fn payload_dir(csv: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    dir
}

fn text_field(body: &str, key: &str) -> String {
    form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[test]
fn payload_rows_fill_fields_in_sequence_and_stay_together() {
    let dir = payload_dir(USERS);
    let payload = "  payload:\n    path: users.csv\n    fields: [user_id, user_name, text]\n    order: sequence\n    skipHeader: true\n";
    let req = "          form:\n            command: /echo\n            user_id: \"{{ user_id }}\"\n            user_name: \"{{ user_name }}\"\n            text: \"{{ text }}\"\n";
    let p = parse_in(&with(payload, req), dir.path()).unwrap();
    let spec = requests(&p)[0];
    let rows: Vec<(String, String, String)> = (0..4)
        .map(|_| {
            let b = render_body(spec);
            (text_field(&b, "user_id"), text_field(&b, "user_name"), text_field(&b, "text"))
        })
        .collect();
    let want = [
        ("U001", "alice", "hello"),
        ("U002", "bob, jr", "say \"hi\""),
        ("U003", "carol", "bye"),
        ("U001", "alice", "hello"),
    ];
    assert_eq!(rows, want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
    assert!(p.notes.iter().any(|n| n.contains("payload users.csv: 3 rows")), "{:?}", p.notes);
}

#[test]
fn payload_accepts_the_list_form_and_random_order() {
    let dir = payload_dir(USERS);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/channels.csv"), "C1;general\nC2;random\n").unwrap();
    let payload = "  payload:\n    - path: users.csv\n      fields: [user_id]\n      skipHeader: true\n    - path: data/channels.csv\n      fields: [channel_id, channel_name]\n      delimiter: \";\"\n      order: random\n";
    let req = "          body: \"command=%2Fecho&user_id={{ user_id }}&channel_id={{ channel_id }}&channel_name={{ channel_name }}\"\n";
    let p = parse_in(&with(payload, req), dir.path()).unwrap();
    let vars = p.vars.as_ref().unwrap();
    assert_eq!(vars.payloads().len(), 2);
    assert_eq!(vars.payloads()[1].order, vars::Order::Random);
    let spec = requests(&p)[0];
    let mut users = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let b = render_body(spec);
        users.insert(text_field(&b, "user_id"));
        let pair = (text_field(&b, "channel_id"), text_field(&b, "channel_name"));
        assert!(pair == ("C1".into(), "general".into()) || pair == ("C2".into(), "random".into()), "{b}");
    }
    assert_eq!(users.len(), 3, "random order reaches every row: {users:?}");
}

#[test]
fn payload_problems_are_clear_errors_with_their_line() {
    let dir = payload_dir(USERS);
    let refused_in = |payload: &str, line: u64, needles: &[&str]| {
        let err = parse_in(&with(payload, ""), dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("line {line}")), "expected line {line}: {err}");
        for n in needles {
            assert!(err.contains(n), "expected `{n}`: {err}");
        }
    };
    refused_in("  payload:\n    path: nope.csv\n    fields: [a]\n", 7, &["nope.csv", "does not exist"]);
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    refused_in("  payload:\n    path: adir\n    fields: [a]\n", 7, &["is a directory"]);
    refused_in("  payload:\n    path: users.csv\n", 7, &["needs `fields`"]);
    refused_in("  payload:\n    path: users.csv\n    fields: [a]\n    order: shuffled\n", 9, &["shuffled", "sequence"]);
    refused_in("  payload:\n    path: users.csv\n    fields: [a]\n    loadAll: true\n", 9, &["loadAll", "fields"]);
    refused_in("  payload:\n    path: users.csv\n    fields: [a]\n    delimiter: \"ab\"\n", 9, &["delimiter"]);
    refused_in("  payload:\n    path: users.csv\n    fields: [a, b, c, d]\n", 7, &["columns"]);
    refused_in("  variables:\n    text: x\n  payload:\n    path: users.csv\n    fields: [text]\n", 9, &["twice"]);
    refused_in("  payload:\n    path: users.csv\n    fields: [a]\n    encoding: latin1\n", 9, &["encoding"]);
    // Without a profile file there is no folder to read the payload from.
    refused(&with("  payload:\n    path: users.csv\n    fields: [a]\n", ""), 7, &["relative to the profile file"]);
}

#[test]
fn json_bodies_and_other_request_shapes_are_refused_with_what_to_use() {
    refused(&with("", "          json:\n            command: /echo\n"), 12, &["json:", "form:", "body:"]);
    refused(&with("", "          formData:\n            a: 1\n"), 12, &["formData", "form:"]);
    refused(&with("", "          qs:\n            a: 1\n"), 12, &["qs:", "url"]);
}

#[test]
fn capture_and_expect_are_accepted_with_a_warning() {
    let req = "          capture:\n            - json: \"$.text\"\n              as: text\n          expect:\n            - statusCode: 200\n";
    let mut yaml = with("", req);
    yaml.push_str("      - post:\n          url: /slack/commands\n          expect:\n            - statusCode: 200\n");
    let p = parse(&yaml).unwrap();
    assert_eq!(requests(&p).len(), 2);
    let warnings: Vec<_> = p.notes.iter().filter(|n| n.contains("not applied yet")).collect();
    assert_eq!(warnings.len(), 3, "capture, and expect at two lines: {warnings:?}");
    assert!(warnings.iter().any(|n| n.contains("`capture` (line 12)")), "{warnings:?}");
}

#[test]
fn loops_unroll_their_steps_count_times_with_think_inside() {
    let flow = "scenarios:\n  - flow:\n      - post:\n          url: /a\n      - loop:\n          - post:\n              url: /b\n          - think: 0.5\n          - loop:\n              - get:\n                  url: /c\n            count: 2\n        count: 3\n      - think: 1\n";
    let p = parse(&format!("{HEAD}{flow}")).unwrap();
    let shape: Vec<String> = p.scenarios[0]
        .flow
        .iter()
        .map(|s| match s {
            Step::Request(r) => r.url.as_static().unwrap().to_owned(),
            Step::Think(d) => format!("think {}", d.as_secs_f64()),
        })
        .collect();
    let inner = ["/b", "think 0.5", "/c", "/c"];
    let mut want = vec!["/a".to_owned()];
    for _ in 0..3 {
        want.extend(inner.iter().map(|s| (*s).to_owned()));
    }
    want.push("think 1".into());
    assert_eq!(shape, want);
}

#[test]
fn bad_loops_are_refused_with_their_line() {
    let flow = |step: &str| format!("{HEAD}scenarios:\n  - flow:\n{step}");
    refused(&flow("      - loop:\n          - get:\n              url: /x\n"), 8, &["loop", "count"]);
    refused(
        &flow("      - loop:\n          - get:\n              url: /x\n        over: [1, 2]\n"),
        11,
        &["over", "count"],
    );
    refused(
        &flow("      - loop:\n          - get:\n              url: /x\n        whileTrue: f\n"),
        11,
        &["whileTrue"],
    );
    refused(&flow("      - get:\n          url: /x\n        count: 2\n"), 8, &["count", "loop"]);
    refused(&flow("      - get:\n          url: /x\n        think: 1\n"), 8, &["exactly one"]);
    refused(
        &flow("      - loop:\n          - get:\n              url: /x\n        count: 20000\n"),
        11,
        &["10000 steps"],
    );
    refused(&flow("      - loop:\n          - get:\n              url: /x\n        count: -1\n"), 11, &["u64"]);
    refused(&flow("      - loop:\n          - think: 1\n        count: 0\n"), 7, &["no step"]);
    let mut deep = String::from("      - get:\n          url: /x\n");
    for _ in 0..9 {
        let indented: String = deep.lines().map(|l| format!("    {l}\n")).collect();
        deep = format!("      - loop:\n{indented}        count: 1\n");
    }
    assert!(parse(&flow(&deep)).is_err(), "loops nested too deep");
}

#[test]
fn a_loop_of_many_steps_stays_bounded_in_memory() {
    // 100 steps × 100 = 10 000: exactly the limit.
    let steps: String = (0..100).map(|i| format!("          - get:\n              url: /s{i}\n")).collect();
    let yaml = format!("{HEAD}scenarios:\n  - flow:\n      - loop:\n{steps}        count: 100\n");
    assert_eq!(parse(&yaml).unwrap().scenarios[0].flow.len(), MAX_FLOW_STEPS);
    let over = yaml.replace("count: 100", "count: 101");
    assert!(parse(&over).unwrap_err().to_string().contains("unrolled"));
}
