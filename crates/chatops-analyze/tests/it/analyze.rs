//! `chatops analyze` on real files: exact figures on known values, windows, gzip, folders,
//! hostile input, JSON output.

use std::io::Write;

use chatops_analyze::summary::{MetricsSummary, WindowSource};
use chatops_analyze::{AnalyzeError, Metric};

use crate::support::{analyze, analyze_args, copy_fixture_dir, fixture, s};

fn keys(groups: &[chatops_analyze::summary::Group]) -> Vec<(&str, u64, u64)> {
    groups.iter().map(|g| (g.key.as_str(), g.router_lines, g.worker_lines)).collect()
}

#[test]
fn counts_every_line_and_computes_exact_percentiles_on_known_values() {
    let (out, _) = analyze(&[s(&fixture("known.log"))]);
    let m = &out.summary;
    let l = &m.lines;
    assert_eq!((l.total, l.router, l.worker), (37, 20, 12));
    assert_eq!((l.not_json, l.not_metric, l.malformed, l.outside_window, l.oversized), (2, 1, 2, 0, 0));

    assert_eq!((m.router.requests, m.router.errors, m.router.error_rate), (20, 2, 0.1));
    let by_status: Vec<(&str, u64)> = m.router.by_status.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(by_status, [("200", 18), ("401", 1), ("503", 1)]);
    let by_type: Vec<(&str, u64)> = m.router.errors_by_type.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(by_type, [("QueueFull", 1), ("SignatureInvalid", 1)]);
    assert_eq!((m.worker.attempts, m.worker.failures, m.worker.retries), (12, 1, 1));

    // Router `duration`: 1..=20 ms.
    let d = m.stage(Metric::RouterDuration).unwrap();
    assert_eq!((d.count, d.min, d.mean, d.p50, d.p95, d.p99, d.max), (20, 1.0, 10.5, 10.0, 19.0, 20.0, 20.0));
    // `totalE2eMs`: 10, 20, ..., 100 and 1000, 2000 (nearest rank).
    let e = m.stage(Metric::TotalE2e).unwrap();
    assert_eq!((e.count, e.p50, e.p95, e.p99, e.max), (12, 60.0, 2000.0, 2000.0, 2000.0));
    assert_eq!(e.mean, 295.833);
    // Figures only some lines carry are counted over those lines.
    assert_eq!(m.stage(Metric::Handler).unwrap().count, 10);
    assert_eq!(m.stage(Metric::Handler).unwrap().p50, 20.0);
    let order: Vec<Metric> = m.stages.iter().map(|s| s.metric).collect();
    // known.log has no job that waited for approvals (approvals.log has).
    let present: Vec<Metric> = Metric::ALL.into_iter().filter(|&m| m != Metric::ApprovalWait).collect();
    assert_eq!(order, present, "every figure present, in report order");

    assert_eq!(keys(&m.groups.by_component), [("lw-worker", 0, 2), ("sr-worker", 0, 10)]);
    assert_eq!(keys(&m.groups.by_command), [("/deploy", 0, 2), ("/echo", 20, 10)]);
    assert_eq!(keys(&m.groups.by_quadrant), [("long-write", 0, 2), ("short-read", 20, 10)]);
    assert_eq!(keys(&m.groups.by_status), [("200", 18, 0), ("401", 1, 0), ("503", 1, 0)]);
    assert_eq!(
        keys(&m.groups.by_outcome),
        [("QueueFull", 1, 0), ("SignatureInvalid", 1, 0), ("Timeout", 0, 1), ("success", 18, 11)]
    );
    let echo = &m.groups.by_command[1];
    let echo_e2e = echo.stage(Metric::TotalE2e).unwrap();
    assert_eq!((echo_e2e.count, echo_e2e.p50, echo_e2e.p95, echo_e2e.mean), (10, 50.0, 100.0, 55.0));
    assert_eq!(echo.stage(Metric::RouterDuration).unwrap().count, 20);
    assert_eq!(echo.router_errors, 2);

    let b = &m.e2e_breakdown;
    assert_eq!((b.lines, b.total_mean_ms), (12, 295.833));
    let sum: f64 = b.segments.iter().map(|s| s.mean_ms).sum();
    assert!((sum - b.total_mean_ms).abs() < 0.01, "{sum}");
    assert_eq!(m.window.source, WindowSource::All);
    assert_eq!(m.window.first_line_ms, Some(1_795_867_201_000));
    assert!(m.bins.is_none() && m.join.is_none());
    assert!(out.json_path.is_none(), "no JSON unless asked or from results");
    assert_eq!(out.exit_code(), 0);
}

#[test]
fn window_from_results_cuts_the_file_in_the_middle_and_writes_the_json_beside_it() {
    let dir = copy_fixture_dir("run");
    let results = dir.path().join("results.json");
    // The test ran 12:00:10 .. 12:00:20; with a 5 s buffer lines up to 12:00:25 count.
    let (out, table) = analyze(&["--from-results", s(&results), "--buffer", "5s"]);
    let m = &out.summary;
    assert_eq!(m.inputs, [s(&dir.path().join("bot.log"))], "the bot log named by the results");
    assert_eq!((m.lines.router, m.lines.worker, m.lines.outside_window), (11, 5, 16));
    assert_eq!((m.router.requests, m.router.errors), (11, 2));
    let d = m.stage(Metric::RouterDuration).unwrap();
    assert_eq!((d.min, d.p50, d.max, d.mean), (10.0, 15.0, 20.0, 15.0));
    assert_eq!(m.stage(Metric::TotalE2e).unwrap().max, 50.0);
    assert_eq!(m.window.source, WindowSource::Results);
    assert_eq!(
        (m.window.start_ms, m.window.end_ms, m.window.buffer_ms),
        (Some(1_795_867_210_000), Some(1_795_867_225_000), 5000)
    );
    assert_eq!((m.window.first_line_ms, m.window.last_line_ms), (Some(1_795_867_210_000), Some(1_795_867_225_000)));

    let json_path = dir.path().join("results.metrics.json");
    assert_eq!(out.json_path.as_deref(), Some(json_path.as_path()));
    let back = MetricsSummary::read(&json_path).unwrap();
    assert_eq!(&back, m, "the JSON round-trips to the same summary");
    assert!(table.contains("metrics summary written to"), "{table}");
}

#[test]
fn no_json_suppresses_the_default_file() {
    let dir = copy_fixture_dir("run");
    let (out, _) = analyze(&["--from-results", s(&dir.path().join("results.json")), "--no-json"]);
    assert!(out.json_path.is_none());
    assert!(!dir.path().join("results.metrics.json").exists());
}

#[test]
fn explicit_start_and_end_accept_rfc3339_and_epoch_milliseconds_inclusively() {
    let (out, _) = analyze(&[
        "--start",
        "2026-11-28T12:00:05Z",
        "--end",
        "1795867206000", // 12:00:06.000
        s(&fixture("known.log")),
    ]);
    let m = out.summary;
    assert_eq!((m.lines.router, m.lines.worker), (2, 0));
    assert_eq!(m.stage(Metric::RouterDuration).unwrap().mean, 5.5);
    assert_eq!(m.window.source, WindowSource::Explicit);
}

#[test]
fn since_keeps_only_recent_lines() {
    let now_ms = (chatops_core::time::now_unix_ns() / 1_000_000) as i64;
    let line = |ts: Option<i64>| match ts {
        Some(ms) => format!(
            "{{\"timestamp\":\"{}\",\"message\":\"Router performance metrics\",\"duration\":1}}\n",
            chatops_core::time::format_rfc3339_ms(ms)
        ),
        None => "{\"message\":\"Router performance metrics\",\"duration\":1}\n".to_owned(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.log");
    let text = [line(Some(now_ms - 3_600_000)), line(Some(now_ms - 600_000)), line(None)].concat();
    std::fs::write(&path, text).unwrap();
    let (out, _) = analyze(&["--since", "15m", s(&path)]);
    let l = &out.summary.lines;
    assert_eq!((l.router, l.outside_window, l.no_timestamp), (1, 1, 1));
    assert_eq!(out.summary.window.source, WindowSource::Since);
}

#[test]
fn an_inverted_window_is_an_error() {
    let err = chatops_analyze::run_analyze_to(
        &analyze_args(&["--start", "2000", "--end", "1000", s(&fixture("known.log"))]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, AnalyzeError::Args(_)), "{err}");
}

#[test]
fn reads_gzip_files_and_folders_recursively() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let known = std::fs::read(fixture("known.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("a/b/bot.log.1.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&known).unwrap();
    gz.finish().unwrap();
    // A gzip file without the .gz name is recognised by its magic bytes.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&known).unwrap();
    std::fs::write(dir.path().join("a/rotated"), gz.finish().unwrap()).unwrap();
    std::fs::copy(fixture("origin-cloudwatch.log"), dir.path().join("origin.log")).unwrap();
    std::fs::write(dir.path().join("old.metrics.json"), "{\"message\":\"Performance metrics\",\"totalE2eMs\":1}")
        .unwrap();

    let (out, _) = analyze(&[s(dir.path())]);
    let m = out.summary;
    assert_eq!(m.inputs.len(), 3, "{:?}", m.inputs);
    assert_eq!((m.lines.router, m.lines.worker), (2 * 20 + 2, 2 * 12 + 2));
    assert_eq!(m.stage(Metric::RouterDuration).unwrap().count, 42);
}

#[test]
fn hostile_and_oversized_lines_are_counted_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.log");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"\x00\x01\x02\xff\xfe binary\n").unwrap();
    f.write_all(format!("{{\"message\":\"Performance metrics\",\"pad\":\"{}\"}}\n", "x".repeat(2 << 20)).as_bytes())
        .unwrap();
    f.write_all(format!("{{\"message\":\"Router performance metrics\",\"x\":{}}}\n", "[".repeat(100_000)).as_bytes())
        .unwrap();
    f.write_all(b"{\"message\":\"Router performance metrics\",\"command\":\"\xc3\x28\",\"duration\":1}\n").unwrap();
    f.write_all(b"{\"message\":\"Router performance metrics\",\"duration\":-5,\"statusCode\":99999}\n").unwrap();
    f.write_all(b"{\"message\":\"Router performance metrics\",\"duration\":7,\"statusCode\":200,\"command\":\"/ok\"}")
        .unwrap();
    drop(f);
    let (out, _) = analyze(&[s(&path)]);
    let l = &out.summary.lines;
    assert_eq!((l.total, l.oversized, l.not_json, l.malformed, l.router), (5, 1, 1, 2, 2));
    let d = out.summary.stage(Metric::RouterDuration).unwrap();
    assert_eq!((d.count, d.min, d.max), (2, 0.0, 7.0), "a negative duration counts as 0");
    assert_eq!(out.summary.router.by_status.get("unknown"), Some(&1), "status 99999 is not a status");
}

#[test]
fn a_truncated_gzip_file_keeps_its_lines_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..200 {
        gz.write_all(&std::fs::read(fixture("known.log")).unwrap()).unwrap();
    }
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() * 3 / 4);
    let path = dir.path().join("cut.log.gz");
    std::fs::write(&path, bytes).unwrap();
    let (out, table) = analyze(&[s(&path)]);
    assert_eq!(out.summary.lines.read_errors, 1);
    assert!(out.summary.lines.router > 1000, "{:?}", out.summary.lines);
    assert!(out.summary.notes[0].contains("cut.log.gz"), "{:?}", out.summary.notes);
    assert!(table.contains("note:"), "{table}");
}

#[test]
fn missing_inputs_are_errors_not_empty_analyses() {
    let run = |args: &[&str]| chatops_analyze::run_analyze_to(&analyze_args(args), &mut Vec::new()).unwrap_err();
    assert!(matches!(run(&["/nonexistent/bot.log"]), AnalyzeError::Input { .. }));
    assert!(matches!(run(&[]), AnalyzeError::NoInput));
    assert!(matches!(run(&["--from-results", "/nonexistent/r.json"]), AnalyzeError::Results { .. }));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("r.json");
    std::fs::write(&bad, "{\"schemaVersion\": 7}").unwrap();
    let err = run(&["--from-results", s(&bad), s(&fixture("known.log"))]);
    assert!(format!("{:?}", err).contains("NewerSchema"), "{err:?}");
    assert!(matches!(run(&["--bin", "0s", s(&fixture("known.log"))]), AnalyzeError::Args(_)));
}

#[test]
fn the_wait_for_approvals_is_its_own_stage_and_segment_where_jobs_had_one() {
    let (out, printed) = analyze(&["--json", "-", s(&fixture("approvals.log"))]);
    let m = &out.summary;
    assert_eq!((m.lines.router, m.lines.worker, m.lines.malformed), (4, 4, 0));
    let wait = m.stage(Metric::ApprovalWait).unwrap();
    assert_eq!((wait.count, wait.min, wait.max), (2, 60_000.0, 120_000.0), "over the lines that carry it");
    assert_eq!(m.stage(Metric::Router).unwrap().max, 2.0, "the router's own time, not the wait");

    let segment = |b: &chatops_analyze::summary::E2eBreakdown, name: &str| {
        b.segments.iter().find(|s| s.name.as_str() == name).map(|s| s.mean_ms)
    };
    let b = &m.e2e_breakdown;
    assert_eq!((b.lines, b.total_mean_ms), (4, 45_021.0));
    assert_eq!(segment(b, "approval_wait"), Some(45_000.0));
    assert_eq!(segment(b, "queue_wait"), Some(4.0), "the queue's wait stays the queue's");
    let sum: f64 = b.segments.iter().map(|s| s.mean_ms).sum();
    assert!((sum - b.total_mean_ms).abs() < 0.01, "segments add up: {sum}");
    assert_eq!(segment(b, "other"), Some(1.5), "only the workers' own overhead is unattributed");

    let group = |key: &str| m.groups.by_command.iter().find(|g| g.key == key).unwrap().e2e_breakdown.clone().unwrap();
    assert_eq!(segment(&group("/deploy"), "approval_wait"), Some(90_000.0));
    assert_eq!(segment(&group("/echo"), "approval_wait"), None, "no approval row for /echo");

    let json: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let names: Vec<&str> =
        json["e2eBreakdown"]["segments"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["router", "approval_wait", "enqueue"], "named in the JSON, in path order");
    assert!(
        json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["metric"] == "approvalWaitMs" && s["stage"] == "approval_wait")
    );
}

#[test]
fn json_dash_prints_the_summary_instead_of_the_table() {
    let (out, printed) = analyze(&["--json", "-", s(&fixture("known.log"))]);
    let parsed: MetricsSummary = serde_json::from_str(&printed).unwrap();
    assert_eq!(parsed, out.summary);
    assert_eq!(parsed.kind, "chatops.metrics");
    assert!(out.json_path.is_none());
}

#[test]
fn time_bins_count_lines_per_interval() {
    let (out, _) = analyze(&["--bin", "10s", s(&fixture("known.log"))]);
    let bins = out.summary.bins.unwrap();
    assert_eq!((bins.width_ms, bins.requested_width_ms), (10_000, 10_000));
    let got: Vec<(i64, u64, u64, u64, u64)> = bins
        .points
        .iter()
        .map(|p| (p.start_ms - 1_795_867_200_000, p.router_lines, p.router_errors, p.worker_lines, p.worker_failures))
        .collect();
    assert_eq!(got, [(0, 9, 0, 0, 0), (10_000, 10, 1, 0, 0), (20_000, 1, 1, 9, 0), (30_000, 0, 0, 3, 1)]);
    assert_eq!(bins.points[0].router.p50, 5.0);
    assert_eq!(bins.points[2].e2e.max, 90.0);
}

#[test]
fn a_hostile_results_file_cannot_make_analyze_read_outside_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("results");
    let outside = root.path().join("elsewhere");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // A perfectly readable bot log outside the folder: only the rule can keep analyze out.
    std::fs::copy(fixture("run/bot.log"), outside.join("bot.log")).unwrap();
    std::fs::copy(fixture("run/bot.log"), folder.join("bot.log")).unwrap();
    std::os::unix::fs::symlink(outside.join("bot.log"), folder.join("link.log")).unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("linkdir")).unwrap();
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("run/results.json")).unwrap()).unwrap();
    let outside_abs = outside.join("bot.log").to_str().unwrap().to_owned();
    let hostile = [
        ("botLog", outside_abs.as_str(), "absolute"),
        ("botLog", "../elsewhere/bot.log", ".."),
        ("botLog", "sub/../../elsewhere/bot.log", ".."),
        ("botLog", "link.log", "symlink"),
        ("botLog", "linkdir/bot.log", "symlink"),
        ("requestsFile", "/etc/passwd", "absolute"),
        ("requestsFile", "../elsewhere/bot.log", ".."),
    ];
    for (key, value, reason) in hostile {
        let mut results = template.clone();
        results["test"][key] = serde_json::Value::from(value);
        let path = folder.join("results.json");
        std::fs::write(&path, serde_json::to_vec(&results).unwrap()).unwrap();
        let args = analyze_args(&["--from-results", s(&path), "--no-json"]);
        let err = chatops_analyze::run_analyze_to(&args, &mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AnalyzeError::UnsafeResultsPath { .. }), "{key}={value}: {err:?}");
        assert!(msg.contains(&format!("test.{key}")) && msg.contains(reason), "{key}={value}: {msg}");
    }
    // The same file with a plain name in its own folder still works.
    let mut results = template.clone();
    results["test"]["botLog"] = serde_json::Value::from("./bot.log");
    let path = folder.join("results.json");
    std::fs::write(&path, serde_json::to_vec(&results).unwrap()).unwrap();
    let (out, _) = analyze(&["--from-results", s(&path), "--no-json"]);
    assert_eq!(out.summary.lines.router, 11, "the log inside the folder is read");
}

/// About `mib` MiB of router and worker lines with some noise, `n_commands` distinct commands
/// (introduced in order, so that a key cap keeps the first ones), the last line unterminated.
fn big_log(mib: usize, n_commands: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(mib << 20);
    let mut i = 0u64;
    while out.len() < mib << 20 {
        let ts = chatops_core::time::format_rfc3339_ms(1_764_331_200_000 + (i * 7) as i64);
        let cmd = format!("/c{}", (i * 7919 % 100_003) as usize % n_commands.min(1 + i as usize / 40));
        let ms = (i * 2_654_435_761 % 1_000_000) as f64 / 997.0;
        match i % 41 {
            0 => out.extend_from_slice(b"plain text between the JSON lines"),
            1 => out.extend_from_slice(b"{\"message\":\"Router performance metrics\",\"duration\":\xff}"),
            n if n % 2 == 0 => write!(
                out,
                r#"{{"timestamp":"{ts}","level":"INFO","message":"Router performance metrics","command":"{cmd}","statusCode":{},"duration":{ms:.3},"success":{},"enqueueMs":{:.3},"target":"chatops_service::ingress"}}"#,
                if n == 2 { 503 } else { 200 },
                n != 2,
                ms / 9.0
            )
            .unwrap(),
            n => write!(
                out,
                r#"{{"timestamp":"{ts}","level":"INFO","message":"Performance metrics","command":"{cmd}","component":"w{}","totalE2eMs":{:.3},"routerMs":{:.3},"queueWaitMs":{ms:.3},"workerDurationMs":{:.3},"success":{},"attempt":1}}"#,
                n % 3,
                ms * 2.5,
                ms / 11.0,
                ms / 1.7,
                n != 3
            )
            .unwrap(),
        }
        out.push(b'\n');
        i += 1;
    }
    out.pop();
    out
}

fn analyze_json(args: &[&str]) -> String {
    let (_, printed) = analyze(&[&["--json", "-"], args].concat());
    printed
}

#[test]
fn every_thread_count_gives_the_single_threaded_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    // Past several 4 MiB blocks, so that both threads get some.
    std::fs::write(&path, big_log(14, 12)).unwrap();
    for extra in [&[][..], &["--bin", "1s"], &["--start", "1764331300000", "--end", "1764331400000"]] {
        let one = analyze_json(&[&["--threads", "1", s(&path)], extra].concat());
        let summary: MetricsSummary = serde_json::from_str(&one).unwrap();
        assert!(summary.lines.router > 5_000 && summary.lines.worker > 5_000, "{:?}", summary.lines);
        assert!(summary.lines.not_json > 0 && summary.lines.malformed > 0, "{:?}", summary.lines);
        for threads in ["2", "3"] {
            assert_eq!(
                analyze_json(&[&["--threads", threads, s(&path)], extra].concat()),
                one,
                "{threads} threads {extra:?}"
            );
        }
        assert_eq!(analyze_json(&[&[s(&path)], extra].concat()), one, "the default thread count");
    }
}

#[test]
fn more_keys_than_the_caps_still_give_the_single_threaded_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.log");
    // 400 commands, introduced one every 40 lines, over 10 MiB.
    std::fs::write(&path, big_log(10, 400)).unwrap();
    let one = analyze_json(&["--threads", "1", s(&path)]);
    let summary: MetricsSummary = serde_json::from_str(&one).unwrap();
    assert!(summary.groups.by_command.iter().any(|g| g.key == chatops_analyze::aggregate::OTHER_KEY));
    assert_eq!(analyze_json(&["--threads", "2", s(&path)]), one);
}

#[test]
fn a_thread_count_of_zero_is_refused() {
    let parsed = std::panic::catch_unwind(|| analyze_args(&["--threads", "0", "x.log"]));
    assert!(parsed.is_err());
}
