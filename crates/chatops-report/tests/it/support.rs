//! Shared helpers: the committed fixtures (a simulated 60 s run whose metrics summary was
//! produced by the real analyzer from the simulated bot log), hostile and oversized variants
//! of them, and small HTML probes.

use std::path::{Path, PathBuf};

use chatops_analyze::MetricsSummary;
use chatops_analyze::compare::Comparison;
use chatops_core::results::{Breakdown, LoadTestResults, TimePoint};

pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub(crate) fn results() -> LoadTestResults {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("run/results.json")).unwrap()).unwrap()
}

pub(crate) fn metrics() -> MetricsSummary {
    MetricsSummary::read(&fixture_dir().join("run/results.metrics.json")).unwrap()
}

/// The fixture run compared with the fixture baseline, as `chatops compare` computes it.
pub(crate) fn comparison() -> Comparison {
    let (baseline, candidate) = chatops_analyze::Run::load_pair(
        &fixture_dir().join("baseline/results.json"),
        &fixture_dir().join("run/results.json"),
    )
    .unwrap();
    chatops_analyze::compare(&baseline, &candidate, &chatops_analyze::Rules::default())
}

/// Markup, quotes, control characters and a very long unbroken word.
pub(crate) const HOSTILE: &str =
    "<script>window.__pwned=1</script>\"><img src=x onerror=\"window.__pwned=2\">'\u{1}&amp;";

pub(crate) fn long_word() -> String {
    "/".to_owned() + &"x".repeat(300)
}

/// Puts [`HOSTILE`] (and a long word) into every string the results, summary and comparison
/// carry that the report shows.
pub(crate) fn hostile() -> (LoadTestResults, MetricsSummary, Comparison) {
    let mut r = results();
    r.test.profile = format!("{HOSTILE} profile");
    r.test.target = format!("http://{HOSTILE}/");
    r.test.host = HOSTILE.into();
    r.test.os = HOSTILE.into();
    r.test.tool_version = HOSTILE.into();
    r.test.bot_log = Some(HOSTILE.into());
    r.test.notes.push(HOSTILE.into());
    r.phases[0].name = HOSTILE.into();
    r.counters.acks.insert(HOSTILE.into(), 3);
    r.counters.errors.insert(HOSTILE.into(), 2);
    r.by_command.insert(HOSTILE.into(), r.by_command["/echo"].clone());
    r.by_command.insert(long_word(), Breakdown::default());
    r.by_scenario.insert(HOSTILE.into(), Breakdown::default());
    r.thresholds[0].condition = HOSTILE.into();

    let mut m = metrics();
    m.inputs.push(HOSTILE.into());
    m.notes.push(HOSTILE.into());
    m.tool_version = HOSTILE.into();
    m.groups.by_command[0].key = HOSTILE.into();
    m.groups.by_component[0].key = long_word();
    m.e2e_breakdown.segments[0].label = HOSTILE.into();
    m.router.errors_by_type.insert(HOSTILE.into(), 1);
    m.worker.errors_by_type.insert(HOSTILE.into(), 1);
    m.stages[0].label = HOSTILE.into();
    if let Some(j) = m.join.as_mut() {
        j.overall.segments[0].label = HOSTILE.into();
        j.by_command[0].command = HOSTILE.into();
    }

    let mut c = comparison();
    c.baseline = HOSTILE.into();
    c.notes.push(HOSTILE.into());
    c.figures[0].name = HOSTILE.into();
    c.figures[0].unit = HOSTILE.into();
    (r, m, c)
}

/// A results file far larger than any real run: a day of one-second points and many commands.
pub(crate) fn oversized() -> LoadTestResults {
    let mut r = results();
    let template = r.time_series.points[40].clone();
    r.time_series.points = (0..86_400u64)
        .map(|i| TimePoint { offset_ms: i * 1000, ack_p99: template.ack_p99 + (i % 97) as f64, ..template.clone() })
        .collect();
    r.test.duration_ms = 86_400_000;
    let b = r.by_command["/echo"].clone();
    for i in 0..5_000 {
        r.by_command.insert(format!("/cmd-{i:05}"), b.clone());
        r.counters.acks.insert(format!("{}", 200 + i), 1);
    }
    r
}

/// The text content of the element with `id`: tags stripped, entities decoded, whitespace
/// (thin spaces included) collapsed to single spaces.
pub(crate) fn text_of(html: &str, id: &str) -> String {
    let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element #{id}"));
    let start = html[..at].rfind('<').unwrap();
    let tag: String = html[start + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    // Find the matching closing tag, counting nested elements of the same name.
    let (mut depth, mut i) = (0usize, start);
    let end = loop {
        let next_open = html[i + 1..].find(&open).map(|k| k + i + 1);
        let next_close = html[i + 1..].find(&close).map(|k| k + i + 1).expect("closing tag");
        match next_open {
            Some(o) if o < next_close => {
                depth += 1;
                i = o;
            }
            _ if depth == 0 => break next_close,
            _ => {
                depth -= 1;
                i = next_close;
            }
        }
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in html[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A fresh directory under the target dir for artefacts a person may want to look at.
pub(crate) fn artefact_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chatops-report").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `chatops report RESULTS` with every option at its default.
pub(crate) fn args(results: &Path) -> chatops_report::ReportArgs {
    chatops_report::ReportArgs {
        results: results.to_path_buf(),
        metrics: None,
        no_metrics: false,
        output: None,
        png: None,
        baseline: None,
        tolerance: chatops_analyze::args::Percent(chatops_analyze::Rules::DEFAULT.tolerance),
    }
}
