//! Pass/fail conditions (Artillery's `ensure`, plus the threshold flags) and their
//! evaluation against a finished test's results.
//!
//! Artillery metric names map to our measures: `http.response_time.*` is the ack latency
//! (from the *scheduled* send time, so a stalled target cannot hide), `vusers.failed` the
//! error count, and so on. Our own names cover what Artillery cannot see: `e2e.*` (first
//! answer at the response receiver), `e2e.last_response.*`, `e2e.all_answers.*` (every
//! expected answer in), `service_time.*`, `lost`, `incomplete`, `dropped`. An unknown metric is refused when the profile loads, not at the end of a
//! ten-minute test.

use chatops_core::results::{LoadTestResults, ThresholdResult};
use chatops_core::stats::LatencySummary;

/// A latency measure of the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Scheduled send → HTTP answer.
    Ack,
    /// Actual send → HTTP answer.
    ServiceTime,
    /// Scheduled send → first post at the receiver.
    FirstResponse,
    /// Scheduled send → last post at the receiver.
    LastResponse,
    /// Scheduled send → last post, of commands that got every expected answer.
    AllAnswers,
}

/// Something a condition can measure.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Latency(Measure, String),
    /// Errors over requests, in percent (Artillery's `maxErrorRate` unit).
    ErrorRatePct,
    Requests,
    /// Arrivals that became requests (scheduled − dropped).
    Arrivals,
    Errors,
    Completed,
    Lost,
    /// Commands with some but not all of their expected answers.
    Incomplete,
    Dropped,
    Responses,
    /// Mean achieved requests per second over the test.
    RequestRate,
    StatusCode(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => measured == limit,
            Op::Ne => measured != limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
}

/// A condition as written, in disjunctive form: it holds when every comparison of at least
/// one clause holds (`and` binds tighter than `or`, as in Artillery's expressions).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    pub any_of: Vec<Vec<Comparison>>,
    /// A non-strict condition that fails is reported but does not fail the test.
    pub strict: bool,
}

/// Longest expression accepted.
const MAX_EXPRESSION_LEN: usize = 2048;

impl Condition {
    /// Parses `http.response_time.p99 < 500 and vusers.failed == 0`.
    pub fn parse(text: &str, strict: bool) -> Result<Self, String> {
        if text.len() > MAX_EXPRESSION_LEN {
            return Err(format!("expression is longer than {MAX_EXPRESSION_LEN} characters"));
        }
        let mut any_of = Vec::new();
        for clause in split_words(text, "or") {
            let mut all_of = Vec::new();
            for cmp in split_words(clause, "and") {
                all_of.push(parse_comparison(cmp.trim())?);
            }
            any_of.push(all_of);
        }
        Ok(Condition { text: text.trim().to_owned(), any_of, strict })
    }

    /// One comparison, e.g. from `--p99 500` or the short form `p99: 500`.
    pub fn single(metric_name: &str, op: Op, limit: f64) -> Result<Self, String> {
        let metric = parse_metric(metric_name)?;
        let text = format!("{metric_name} {} {limit}", op_str(op));
        Ok(Condition { text, any_of: vec![vec![Comparison { metric, op, limit }]], strict: true })
    }

    /// It reads an answer at the response receiver (`e2e.*`), which `--no-receiver` never
    /// measures.
    pub fn needs_receiver(&self) -> bool {
        self.any_of.iter().flatten().any(|c| {
            matches!(
                c.metric,
                Metric::Latency(Measure::FirstResponse | Measure::LastResponse | Measure::AllAnswers, _)
                    | Metric::Lost
                    | Metric::Incomplete
                    | Metric::Responses
            )
        })
    }

    /// Evaluates against the results. Limit and measured come from the first comparison
    /// that failed (or the first one, when the condition holds).
    pub fn evaluate(&self, results: &LoadTestResults) -> ThresholdResult {
        let mut first: Option<(f64, f64)> = None;
        let mut first_failed: Option<(f64, f64)> = None;
        let mut passed = false;
        let mut no_data = false;
        for clause in &self.any_of {
            let mut clause_ok = true;
            for cmp in clause {
                // A latency nobody measured (e.g. no answer ever came) cannot hold.
                let (measured, known) = match measure(&cmp.metric, results) {
                    Some(v) => (v, true),
                    None => (0.0, false),
                };
                first.get_or_insert((cmp.limit, measured));
                if !known || !cmp.op.holds(measured, cmp.limit) {
                    clause_ok = false;
                    if first_failed.is_none() {
                        first_failed = Some((cmp.limit, measured));
                        no_data = !known;
                    }
                }
            }
            passed |= clause_ok;
        }
        let shown = if passed { first } else { first_failed.or(first) };
        let (limit, measured) = shown.unwrap_or((0.0, 0.0));
        ThresholdResult {
            condition: self.text.clone(),
            limit,
            measured,
            passed,
            strict: self.strict,
            no_data: no_data && !passed,
        }
    }
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Eq => "==",
        Op::Ne => "!=",
    }
}

/// Splits on a whole word (` and `, ` or `), case-sensitively as Artillery does.
fn split_words<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    let sep = format!(" {word} ");
    text.split(sep.as_str()).collect()
}

fn parse_comparison(text: &str) -> Result<Comparison, String> {
    let ops = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
    for (sym, op) in ops {
        if let Some(at) = text.find(sym) {
            let metric = text[..at].trim();
            let value = text[at + sym.len()..].trim();
            let limit: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| format!("`{value}` in `{text}` is not a number"))?;
            return Ok(Comparison { metric: parse_metric(metric)?, op, limit });
        }
    }
    Err(format!("`{text}` is not a comparison `<metric> <op> <number>` (op: < <= > >= == !=)"))
}

/// Maps a metric name (Artillery's or ours) to what we measure.
pub fn parse_metric(name: &str) -> Result<Metric, String> {
    let unknown = || {
        format!(
            "unknown metric `{name}` (known: http.response_time.<stat>, e2e.<stat>, e2e.first_response.<stat>, \
             e2e.last_response.<stat>, e2e.all_answers.<stat>, service_time.<stat>, http.requests, \
             http.request_rate, http.codes.<code>, vusers.created, vusers.failed, vusers.completed, errors, \
             error_rate, lost, incomplete, dropped, responses; \
             stat: min, mean, median, p50, p90, p95, p99, p999, max)"
        )
    };
    let n = name.trim();
    let n = n.strip_prefix("engine.").or_else(|| n.strip_prefix("core.")).unwrap_or(n);
    let n = n.strip_prefix("chatops.").unwrap_or(n);
    let latency = |measure, stat: &str| {
        if LatencySummary::default().get(stat).is_some() {
            Ok(Metric::Latency(measure, stat.to_owned()))
        } else {
            Err(unknown())
        }
    };
    let prefixes = [
        ("http.response_time.", Measure::Ack),
        ("ack.", Measure::Ack),
        ("service_time.", Measure::ServiceTime),
        ("e2e.first_response.", Measure::FirstResponse),
        ("e2e.last_response.", Measure::LastResponse),
        ("e2e.all_answers.", Measure::AllAnswers),
        ("e2e.", Measure::FirstResponse),
    ];
    for (prefix, measure) in prefixes {
        if let Some(stat) = n.strip_prefix(prefix) {
            return latency(measure, stat);
        }
    }
    if let Some(code) = n.strip_prefix("http.codes.") {
        return code.parse().ok().filter(|c| (100..600).contains(c)).map(Metric::StatusCode).ok_or_else(unknown);
    }
    Ok(match n {
        "http.requests" | "requests" => Metric::Requests,
        "http.request_rate" | "request_rate" => Metric::RequestRate,
        "vusers.created" | "vusers.created.total" => Metric::Arrivals,
        "vusers.failed" | "errors" | "http.errors" => Metric::Errors,
        "vusers.completed" => Metric::Completed,
        "error_rate" | "http.error_rate" => Metric::ErrorRatePct,
        "lost" => Metric::Lost,
        "incomplete" => Metric::Incomplete,
        "dropped" => Metric::Dropped,
        "responses" => Metric::Responses,
        _ => return Err(unknown()),
    })
}

/// The measured value of a metric (latencies in ms, rates per second, error rate in %);
/// None for a latency with no samples.
pub fn measure(metric: &Metric, r: &LoadTestResults) -> Option<f64> {
    let c = &r.counters;
    let errors = c.errors.values().sum::<u64>();
    Some(match metric {
        Metric::Latency(measure, stat) => {
            let s = match measure {
                Measure::Ack => &r.summaries.ack,
                Measure::ServiceTime => &r.summaries.service_time,
                Measure::FirstResponse => &r.summaries.first_response,
                Measure::LastResponse => &r.summaries.last_response,
                Measure::AllAnswers => &r.summaries.all_answers,
            };
            if s.count == 0 {
                return None;
            }
            return s.get(stat);
        }
        Metric::ErrorRatePct => c.error_rate() * 100.0,
        Metric::Requests => c.requests as f64,
        Metric::Arrivals => c.scheduled.saturating_sub(c.dropped) as f64,
        Metric::Errors => errors as f64,
        Metric::Completed => c.requests.saturating_sub(errors) as f64,
        Metric::Lost => c.lost as f64,
        Metric::Incomplete => c.incomplete as f64,
        Metric::Dropped => c.dropped as f64,
        Metric::Responses => c.responses as f64,
        Metric::RequestRate => {
            let secs = r.phases.iter().map(|p| p.duration_ms).sum::<u64>() as f64 / 1000.0;
            if secs > 0.0 { c.requests as f64 / secs } else { 0.0 }
        }
        Metric::StatusCode(code) => c.acks.get(&code.to_string()).copied().unwrap_or(0) as f64,
    })
}

/// The line printed for a failed condition: what, limit, measured.
pub fn failure_line(t: &ThresholdResult) -> String {
    let kind = if t.strict { "threshold failed" } else { "threshold failed (not strict, ignored)" };
    if t.no_data {
        return format!("{kind}: {} (limit {}, measured nothing: no samples)", t.condition, fmt_num(t.limit));
    }
    format!("{kind}: {} (limit {}, measured {})", t.condition, fmt_num(t.limit), fmt_num(t.measured))
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_core::results::{Counters, Summaries, TestInfo, TimeSeries};

    fn results(p99: f64, errors: u64, requests: u64) -> LoadTestResults {
        let mut counters = Counters { requests, scheduled: requests, ..Default::default() };
        if errors > 0 {
            counters.errors.insert("status_5xx".into(), errors);
        }
        LoadTestResults {
            schema_version: 1,
            test: TestInfo {
                profile: "t".into(),
                target: "t".into(),
                start_ms: 0,
                end_ms: 0,
                duration_ms: 0,
                tool_version: "0".into(),
                host: "h".into(),
                os: "linux".into(),
                cpus: 1,
                rate_scale: 1.0,
                duration_scale: 1.0,
                spawned: false,
                bot_log: None,
                requests_file: None,
                notes: vec![],
            },
            phases: vec![],
            counters,
            summaries: Summaries { ack: LatencySummary { count: 1, p99, ..Default::default() }, ..Default::default() },
            by_command: Default::default(),
            by_scenario: Default::default(),
            time_series: TimeSeries::default(),
            thresholds: vec![],
            passed: true,
        }
    }

    #[test]
    fn artillery_expression_with_and_or() {
        let c = Condition::parse("http.response_time.p99 < 500 and vusers.failed == 0 or http.requests > 1000", true)
            .unwrap();
        assert_eq!(c.any_of.len(), 2);
        assert_eq!(c.any_of[0].len(), 2);
        assert!(c.evaluate(&results(400.0, 0, 10)).passed);
        let failed = c.evaluate(&results(600.0, 0, 10));
        assert!(!failed.passed);
        assert_eq!((failed.limit, failed.measured), (500.0, 600.0));
        assert!(c.evaluate(&results(600.0, 3, 2000)).passed, "the `or` clause holds");
    }

    #[test]
    fn maps_artillery_and_chatops_metric_names() {
        assert_eq!(parse_metric("engine.http.response_time.p95"), Ok(Metric::Latency(Measure::Ack, "p95".into())));
        assert_eq!(parse_metric("e2e.p99"), Ok(Metric::Latency(Measure::FirstResponse, "p99".into())));
        assert_eq!(
            parse_metric("chatops.e2e.last_response.max"),
            Ok(Metric::Latency(Measure::LastResponse, "max".into()))
        );
        assert_eq!(parse_metric("core.vusers.failed"), Ok(Metric::Errors));
        assert_eq!(parse_metric("http.codes.200"), Ok(Metric::StatusCode(200)));
        assert_eq!(parse_metric("incomplete"), Ok(Metric::Incomplete));
        assert_eq!(parse_metric("e2e.all_answers.p99"), Ok(Metric::Latency(Measure::AllAnswers, "p99".into())));
    }

    #[test]
    fn refuses_malformed_expressions() {
        for bad in [
            "http.response_time.p99",
            "http.response_time.p98 < 5",
            "http.response_time.p99 < fast",
            "http.response_time.p99 < NaN",
            "http.codes.999 > 1",
            "nonsense.metric < 1",
            "",
            " and ",
        ] {
            assert!(Condition::parse(bad, true).is_err(), "{bad}");
        }
        assert!(Condition::parse(&"a".repeat(5000), true).is_err());
    }

    #[test]
    fn latency_without_samples_fails() {
        let mut r = results(1.0, 0, 10);
        r.summaries.ack.count = 0;
        let t = Condition::single("http.response_time.p99", Op::Le, 100.0).unwrap().evaluate(&r);
        assert!(!t.passed && t.no_data);
        assert!(failure_line(&t).contains("no samples"), "{}", failure_line(&t));
    }

    #[test]
    fn error_rate_is_a_percentage() {
        let c = Condition::single("error_rate", Op::Le, 1.0).unwrap();
        assert!(c.evaluate(&results(1.0, 1, 100)).passed);
        let t = c.evaluate(&results(1.0, 2, 100));
        assert!(!t.passed);
        assert_eq!(t.measured, 2.0);
        assert_eq!(failure_line(&t), "threshold failed: error_rate <= 1 (limit 1, measured 2)");
    }

    /// The origin's thresholds that the built-in profiles carry: they pass on a healthy run
    /// and fail on a slow ack, a slow first answer or 2 % errors.
    #[test]
    fn builtin_profiles_carry_the_origins_thresholds() {
        let env = std::collections::HashMap::<String, String>::new();
        for name in ["minimal", "light", "standard", "full"] {
            let p = crate::profile::Profile::load(name, &env).unwrap();
            let texts: Vec<_> = p.ensure.iter().map(|c| c.text.as_str()).collect();
            assert_eq!(
                texts,
                [
                    "http.response_time.p95 <= 3000",
                    "http.response_time.p99 <= 5000",
                    "error_rate <= 1",
                    "e2e.p95 <= 3000",
                    "e2e.p99 <= 5000"
                ],
                "{name}"
            );
            assert_eq!(p.ensure.iter().filter(|c| c.needs_receiver()).count(), 2, "{name}");
            let verdict = |r: &LoadTestResults| p.ensure.iter().all(|c| c.evaluate(r).passed);
            let mut healthy = results(800.0, 0, 1000);
            healthy.summaries.ack.p95 = 500.0;
            healthy.summaries.first_response =
                LatencySummary { count: 1000, p95: 900.0, p99: 1200.0, ..Default::default() };
            assert!(verdict(&healthy), "{name}");
            let mut slow_ack = healthy.clone();
            slow_ack.summaries.ack.p99 = 5001.0;
            let mut slow_answer = healthy.clone();
            slow_answer.summaries.first_response.p95 = 3500.0;
            let mut no_answer = healthy.clone();
            no_answer.summaries.first_response = LatencySummary::default();
            let mut errors = healthy.clone();
            errors.counters.errors.insert("status_5xx".into(), 20);
            for (what, r) in
                [("ack p99", slow_ack), ("e2e p95", slow_answer), ("no answer", no_answer), ("2 %", errors)]
            {
                assert!(!verdict(&r), "{name}: {what} must fail");
            }
        }
        let smoke = crate::profile::Profile::load("smoke", &env).unwrap();
        assert!(smoke.ensure.is_empty(), "smoke stays a quick check without thresholds");
    }
}
