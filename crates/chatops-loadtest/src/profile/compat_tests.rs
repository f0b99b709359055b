//! What real Artillery configs contain, key by key: `engines`, `plugins`, `variables`,
//! `payload`, `json:`, `loop`/`count`, `think`, `capture`/`expect`, and our own
//! `expectAnswers`. Each is accepted, accepted with a note, or refused with its line and
//! what to use instead.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::inspect::{Answer, CaptureSource, ContentType, ExpectKind, Expectation};
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
    assert!(p.notes.iter().any(|n| n.contains("plugin expect") && n.contains("is checked")), "{:?}", p.notes);
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

/// Two steps: the first captures `pet_id` (JSON) and `trace` (a header) and checks its
/// answer; the second sends both back.
const CAPTURE_FLOW: &str = "          capture:\n            - json: \"$.pet['id']\"\n              as: pet_id\n            - header: X-Trace\n              as: trace\n              strict: false\n          expect:\n            - statusCode: [200, 201]\n            - contentType: json\n            - hasProperty: pet.tags[0]\n            - equals:\n                - \"{{ pet_id }}\"\n                - 42\n      - get:\n          url: \"/pets/{{ pet_id }}\"\n          headers:\n            X-Trace: \"{{ trace }}\"\n";

#[test]
fn capture_and_expect_compile_into_the_steps_checks() {
    let p = parse(&with("", CAPTURE_FLOW)).unwrap();
    assert!(!p.notes.iter().any(|n| n.contains("capture") || n.contains("expect")), "no warnings: {:?}", p.notes);
    let steps = requests(&p);
    let inspect = steps[0].inspect.as_ref().expect("the first step checks its answer");
    let sources: Vec<String> = inspect
        .captures
        .iter()
        .map(|c| match &c.source {
            CaptureSource::Json(path) => format!("json {} -> {} strict {}", path.as_str(), c.slot, c.strict),
            CaptureSource::Header(h) => format!("header {h} -> {} strict {}", c.slot, c.strict),
        })
        .collect();
    assert_eq!(sources, ["json $.pet['id'] -> 0 strict true", "header x-trace -> 1 strict false"]);
    let kinds: Vec<ExpectKind> = inspect.expectations.iter().map(Expectation::kind).collect();
    assert_eq!(kinds, ExpectKind::ALL);
    assert!(matches!(&inspect.expectations[0], Expectation::StatusCode(c) if c == &[200, 201]));
    assert!(matches!(&inspect.expectations[1], Expectation::ContentType(ContentType::Json)));
    assert!(steps[1].inspect.is_none(), "a step without capture/expect keeps nothing of its answer");
    assert!(steps[1].url.as_static().is_none(), "the URL reads a captured value per user");

    // What the first answer captures, the second request sends.
    let mut vu = vars::Vu::without_bindings();
    let mut headers = hyper::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-trace", "tr-9".parse().unwrap());
    let body = br#"{"pet": {"id": 42, "tags": ["cat"]}}"#;
    let findings = inspect.apply(&Answer { status: 201, headers: &headers, body }, Some(&mut vu));
    assert_eq!(findings, Default::default(), "every expectation holds");
    let mut url = String::new();
    steps[1].url.render_vu_into(Some(&vu), &mut url);
    assert_eq!(url, "/pets/42");
    let mut trace = String::new();
    steps[1].headers[0].1.render_vu_into(Some(&vu), &mut trace);
    assert_eq!(trace, "tr-9");
    // The single-map forms are read too.
    let single = "          capture:\n            json: \"$.id\"\n            as: id\n          expect:\n            statusCode: 200\n";
    let p = parse(&with("", single)).unwrap();
    let inspect = requests(&p)[0].inspect.clone().unwrap();
    assert_eq!((inspect.captures.len(), inspect.expectations.len()), (1, 1));
}

#[test]
fn captured_names_are_scoped_to_later_steps_of_their_scenario() {
    // Used before it is captured: in the capturing request itself, or in another scenario.
    let own = "          body: \"command=%2Fecho&text={{ id }}\"\n          capture:\n            - json: \"$.id\"\n              as: id\n";
    refused(&with("", own), 11, &["`{{ id }}` is captured, but not by an earlier step"]);
    let other = format!(
        "{}  - name: t\n    flow:\n      - get:\n          url: \"/x/{{{{ id }}}}\"\n",
        with("", "          capture:\n            - json: \"$.id\"\n              as: id\n")
    );
    refused(&other, 17, &["captured, but not by an earlier step"]);
    // A name that nothing captures and nothing defines.
    let unknown = "          capture:\n            - json: \"$.id\"\n              as: id\n      - get:\n          url: \"/x/{{ nope }}\"\n";
    refused(&with("", unknown), 15, &["nope", "captured by an earlier step", "defined: id"]);
    // Inside a loop, a value captured by an earlier step of the body is in scope after it.
    let looped = "scenarios:\n  - flow:\n      - loop:\n          - get:\n              url: /a\n              capture:\n                json: \"$.n\"\n                as: n\n          - get:\n              url: \"/b/{{ n }}\"\n        count: 2\n      - get:\n          url: \"/c/{{ n }}\"\n";
    let p = parse(&format!("{HEAD}{looped}")).unwrap();
    assert_eq!(p.scenarios[0].flow.len(), 5);
}

#[test]
fn bad_captures_and_expectations_are_refused_with_their_line() {
    let capture = |body: &str| with("", &format!("          capture:\n            - {body}"));
    refused(&capture("json: \"$..id\"\n              as: id\n"), 12, &["capture json", "recursive descent", "$..id"]);
    refused(&capture("json: \"id\"\n              as: id\n"), 12, &["must start with `$`"]);
    refused(&capture("json: \"$.id\"\n"), 12, &["needs `as: name`"]);
    refused(&capture("as: id\n"), 12, &["needs `json"]);
    refused(&capture("json: \"$.a\"\n              header: x\n              as: id\n"), 13, &["not both"]);
    refused(&capture("regexp: \"id=(\\\\d+)\"\n              as: id\n"), 12, &["`regexp` is not supported", "json"]);
    refused(&capture("xpath: \"//a\"\n              as: id\n"), 12, &["`xpath` is not supported"]);
    refused(&capture("header: \"bad header\"\n              as: id\n"), 12, &["not a header name"]);
    refused(&capture("json: \"$.a\"\n              as: \"has space\"\n"), 13, &["not a usable name"]);
    refused(&capture("json: \"$.a\"\n              as: id\n              from: x\n"), 14, &["from"]);
    refused(
        &with("  variables:\n    id: 1\n", "          capture:\n            - json: \"$.a\"\n              as: id\n"),
        15,
        &["already a config.variables name"],
    );
    let many: String = (0..33).map(|i| format!("            - json: \"$.a\"\n              as: c{i}\n")).collect();
    refused(&with("", &format!("          capture:\n{many}")), 12, &["more than 32 captures"]);

    let expect = |body: &str| with("", &format!("          expect:\n            - {body}\n"));
    refused(&expect("statusCode: 99"), 12, &["statusCode `99`", "100-599"]);
    refused(&expect("statusCode: [200, abc]"), 12, &["statusCode `abc`"]);
    refused(&expect("statusCode: []"), 12, &["statusCode"]);
    refused(&expect("contentType: \"\""), 12, &["contentType", "media type"]);
    refused(&expect("hasProperty: \"a[*]\""), 12, &["hasProperty", "wildcard"]);
    refused(&expect("hasProperty: \"{{ x }}\""), 12, &["not a template"]);
    refused(&expect("equals: x"), 12, &["at least two values"]);
    refused(&expect("equals: [x]"), 12, &["2 to 16 values"]);
    refused(&expect("equals: [\"{{ nope }}\", x]"), 12, &["nope"]);
    refused(&expect("matchesRegexp: \"^a\""), 12, &["`matchesRegexp` is not supported", "statusCode"]);
    refused(&expect("hasHeader: x-a"), 12, &["`hasHeader` is not supported"]);
    refused(&expect("statuscode: 200"), 12, &["statuscode"]);
    refused(&with("", "          expect:\n            - {}\n"), 12, &["empty expectation"]);
}

#[test]
fn expect_answers_sets_the_answers_a_command_waits_for() {
    let slack = "          body: \"command=%2Fdeploy&response_url=https%3A%2F%2Fhooks.slack.com%2Fx\"\n";
    let p = parse(&with("", &format!("{slack}          expectAnswers: 3\n"))).unwrap();
    assert_eq!(requests(&p)[0].expect_answers, 3);
    let p = parse(&with("", slack)).unwrap();
    assert_eq!(requests(&p)[0].expect_answers, 1, "one answer unless the profile says otherwise");
    let p = parse(&with("", &format!("{slack}          expectAnswers: 0\n"))).unwrap();
    assert_eq!(requests(&p)[0].expect_answers, 0);
    refused(&with("", &format!("{slack}          expectAnswers: 6\n")), 12, &["expectAnswers 6", "at most 5"]);
    refused(&with("", &format!("{slack}          expectAnswers: -1\n")), 12, &["u64"]);
    refused(&with("", &format!("{slack}          expectAnswers: two\n")), 12, &["u64"]);
    // Without a response_url the bot has nowhere to answer: said once, not an error.
    let p = parse(&with("", "          body: \"command=%2Fecho\"\n          expectAnswers: 2\n")).unwrap();
    assert!(p.notes.iter().any(|n| n.contains("expectAnswers (line 12)") && n.contains("no answer")), "{:?}", p.notes);
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
