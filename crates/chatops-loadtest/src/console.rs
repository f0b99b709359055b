//! What a person sees: the live line while the test runs (indicatif, on stderr, hidden when
//! stderr is not a terminal) and the summary table at the end.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chatops_core::results::LoadTestResults;
use chatops_core::stats::LatencySummary;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::profile::Phase;
use crate::record::Live;
use crate::schedule;

/// The live line; stops drawing when dropped.
pub(crate) struct LiveLine {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

pub(crate) fn start_live_line(live: Arc<Live>, phases: Vec<Phase>, start: Instant, quiet: bool) -> Option<LiveLine> {
    if quiet {
        return None;
    }
    let total: Duration = phases.iter().map(|p| p.duration).sum();
    let bar = ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        return None;
    }
    bar.set_style(ProgressStyle::with_template("{bar:24} {msg}").expect("static template is valid"));
    let b = bar.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let (mut last_sent, mut last_at) = (0u64, Instant::now());
        loop {
            tick.tick().await;
            let elapsed = start.elapsed();
            let sent = live.sent.load(Ordering::Relaxed);
            let dt = last_at.elapsed().as_secs_f64().max(1e-3);
            let achieved = sent.saturating_sub(last_sent) as f64 / dt;
            (last_sent, last_at) = (sent, Instant::now());
            let phase =
                if elapsed >= total { "draining" } else { phases[schedule::phase_at(&phases, elapsed)].name.as_str() };
            let target = schedule::rate_at(&phases, elapsed);
            b.set_position((elapsed.as_millis() as u64).min(total.as_millis() as u64));
            b.set_message(format!(
                "{phase} {:.0}/{:.0}s | rate {achieved:.0}/{target:.0}/s | in-flight {} | errors {} | lost {} | incomplete {} | dropped {} | p99 {:.1} ms",
                elapsed.as_secs_f64().min(total.as_secs_f64() + 999.0),
                total.as_secs_f64(),
                live.in_flight.load(Ordering::Relaxed),
                live.errors.load(Ordering::Relaxed),
                live.lost.load(Ordering::Relaxed),
                live.incomplete.load(Ordering::Relaxed),
                live.dropped.load(Ordering::Relaxed),
                live.ack_p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
            ));
        }
    });
    Some(LiveLine { bar, task })
}

/// The summary table printed after a run.
pub fn summary_table(r: &LoadTestResults) -> String {
    let c = &r.counters;
    let errors: u64 = c.errors.values().sum();
    let mut out = String::new();
    let secs = r.test.duration_ms as f64 / 1000.0;
    let _ = writeln!(out, "chatops loadtest: {} → {} ({secs:.1} s)", r.test.profile, r.test.target);
    let _ = writeln!(
        out,
        "requests: {} scheduled, {} sent, {} dropped, {} errors ({:.2}%), {} responses, {} lost, {} incomplete, {} unmatched, {} late",
        c.scheduled,
        c.requests,
        c.dropped,
        errors,
        c.error_rate() * 100.0,
        c.responses,
        c.lost,
        c.incomplete,
        c.unmatched_responses,
        c.late_responses
    );
    if c.connections > 0 {
        let per_conn = c.requests as f64 / c.connections as f64;
        let _ = write!(out, "connections: {} opened ({per_conn:.1} requests each)", c.connections);
        let _ = if r.test.target.starts_with("https://") {
            writeln!(out, ", {} TLS handshakes ({:.2}/s)", c.tls_handshakes, c.tls_handshakes as f64 / secs.max(1e-3))
        } else {
            writeln!(out)
        };
    }
    if !c.errors.is_empty() {
        let list: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "errors: {}", list.join(", "));
    }
    if !c.failed_expectations.is_empty() {
        let list: Vec<String> = c.failed_expectations.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "failed expectations: {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "{:<16}{:>8}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}  (ms)",
        "", "count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"
    );
    let row = |out: &mut String, name: &str, s: &LatencySummary| {
        let _ = writeln!(
            out,
            "{name:<16}{:>8}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
            s.count, s.min, s.mean, s.p50, s.p90, s.p95, s.p99, s.p999, s.max
        );
    };
    row(&mut out, "ack", &r.summaries.ack);
    row(&mut out, "service time", &r.summaries.service_time);
    row(&mut out, "send lag", &r.summaries.send_lag);
    row(&mut out, "first response", &r.summaries.first_response);
    row(&mut out, "last response", &r.summaries.last_response);
    row(&mut out, "all answers", &r.summaries.all_answers);
    if !r.by_command.is_empty() {
        let _ = writeln!(
            out,
            "{:<24}{:>9}{:>8}{:>7}{:>11}{:>11}{:>11}{:>11}",
            "command", "requests", "errors", "lost", "incomplete", "ack p99", "e2e p50", "e2e p99"
        );
        for (name, b) in &r.by_command {
            let name: String = name.chars().take(23).collect();
            let _ = writeln!(
                out,
                "{name:<24}{:>9}{:>8}{:>7}{:>11}{:>11.2}{:>11.2}{:>11.2}",
                b.requests, b.errors, b.lost, b.incomplete, b.ack.p99, b.first_response.p50, b.first_response.p99
            );
        }
    }
    for t in &r.thresholds {
        let mark = if t.passed { "ok  " } else { "FAIL" };
        let measured = if t.no_data { "nothing".to_owned() } else { format!("{:.3}", t.measured) };
        let _ = writeln!(out, "{mark} {} (limit {}, measured {measured})", t.condition, t.limit);
    }
    for note in &r.test.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// What `chatops loadtest` prints on stderr once the results are written: the summary table
/// and the results path (unless `quiet`), then one line per failed condition (always, so CI
/// logs say why the exit code is 1).
pub fn end_of_run(run: &crate::RunResults, quiet: bool) -> String {
    let mut out = String::new();
    if !quiet {
        out.push_str(&summary_table(&run.results));
        let _ = writeln!(out, "results: {}", run.path.display());
    }
    for line in &run.failures {
        let _ = writeln!(out, "{line}");
    }
    out
}
