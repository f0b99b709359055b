//! Artillery's results through the real binary: a user's `artillery run --output out.json`
//! file (the real runs committed in chatops-analyze's `tests/fixtures/artillery`) goes
//! through `analyze --from-results` with the bot's log, `report` and `compare`, with the exit
//! codes of our own files; damaged files exit 2 with a message naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn chatops(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatops")).current_dir(dir).args(args).output().unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chatops-analyze/tests/fixtures")
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A temp dir with the Artillery run as `out.json`, the bot's log, the slow run and one of ours.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("artillery/artillery-echo-light.json", "out.json"),
        ("artillery/echo-light.bot.log", "bot.log"),
        ("artillery/artillery-echo-light-slow.json", "slow.json"),
        ("results-baseline.json", "ours.json"),
    ] {
        std::fs::copy(fixtures().join(from), dir.path().join(to)).unwrap();
    }
    dir
}

#[test]
fn an_artillery_file_goes_through_analyze_report_and_compare() {
    let dir = workdir();
    let d = dir.path();

    let analyzed = chatops(d, &["analyze", "--from-results", "out.json", "bot.log"]);
    assert_eq!(analyzed.status.code(), Some(0), "{}", text(&analyzed));
    let metrics: Value = serde_json::from_slice(&std::fs::read(d.join("out.metrics.json")).unwrap()).unwrap();
    let artillery: Value = serde_json::from_slice(&std::fs::read(d.join("out.json")).unwrap()).unwrap();
    let requests = artillery["aggregate"]["counters"]["http.requests"].as_u64().unwrap();
    assert_eq!(metrics["router"]["requests"].as_u64(), Some(requests), "each request Artillery sent, once");
    assert_eq!(metrics["window"]["startMs"], artillery["aggregate"]["firstCounterAt"]);

    let reported = chatops(d, &["report", "out.json", "--png", "out.png"]);
    assert_eq!(reported.status.code(), Some(0), "{}", text(&reported));
    assert!(String::from_utf8_lossy(&reported.stdout).contains("out.report.html"));
    let html = std::fs::read_to_string(d.join("out.report.html")).unwrap();
    let rt = &artillery["aggregate"]["summaries"]["http.response_time"];
    let row_start = html.find("Artillery&#39;s http.response_time)").expect("the ack row");
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    for stat in ["p50", "p95", "p99"] {
        let cell = format!("<td>{}</td>", chatops_analyze::table::fmt_ms(rt[stat].as_f64().unwrap()));
        assert!(row.contains(&cell), "{stat}: {cell} in {row}");
    }
    assert!(html.contains("id=\"chart-service-latency\""), "the analysis beside it fills the server side");
    assert_eq!(&std::fs::read(d.join("out.png")).unwrap()[1..4], b"PNG");

    let same = chatops(d, &["compare", "out.json", "out.json"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    let slower = chatops(d, &["compare", "out.json", "slow.json", "--json", "cmp.json"]);
    assert_eq!(slower.status.code(), Some(1), "{}", text(&slower));
    assert!(String::from_utf8_lossy(&slower.stdout).contains("REGRESSION in ack.p50"), "{}", text(&slower));
    let cmp: Value = serde_json::from_slice(&std::fs::read(d.join("cmp.json")).unwrap()).unwrap();
    assert_eq!(cmp["verdict"], "regression");

    let mixed = chatops(d, &["compare", "ours.json", "out.json", "--json", "-"]);
    assert!(matches!(mixed.status.code(), Some(0 | 1)), "{}", text(&mixed));
    let cmp: Value = serde_json::from_slice(&mixed.stdout).unwrap();
    let lost = cmp["figures"].as_array().unwrap().iter().find(|f| f["name"] == "lost").unwrap();
    assert_eq!(lost["verdict"], "not_applicable", "Artillery counts no lost commands");
    assert_eq!(mixed.status.code(), Some(u8::from(!cmp["regressions"].as_array().unwrap().is_empty()).into()));
}

#[test]
fn damaged_or_lonely_artillery_files_exit_2_naming_the_file() {
    let dir = workdir();
    let d = dir.path();
    let real = std::fs::read(d.join("out.json")).unwrap();
    std::fs::write(d.join("cut.json"), &real[..real.len() / 3]).unwrap();
    let mut v: Value = serde_json::from_slice(&real).unwrap();
    v["aggregate"]["firstCounterAt"] = "soon".into();
    std::fs::write(d.join("wrong.json"), serde_json::to_vec(&v).unwrap()).unwrap();

    for (args, want) in [
        (&["report", "cut.json"][..], "cut.json"),
        (&["report", "cut.json"][..], "truncated"),
        (&["analyze", "--from-results", "wrong.json", "bot.log"][..], "aggregate.firstCounterAt"),
        (&["compare", "out.json", "wrong.json"][..], "wrong.json"),
        (&["analyze", "--from-results", "out.json"][..], "name no bot log"),
    ] {
        let out = chatops(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{args:?}: want {want:?}: {}", text(&out));
    }
    assert!(!d.join("cut.report.html").exists());
}
