//! Prometheus metrics of one bot process, served on `GET /metrics` in the OpenMetrics text
//! format. One registry per `Application` (no globals), so several bots in one test
//! process do not mix their numbers.
//!
//! Names follow `chatops_<noun>_<unit>`. Label values are bounded: `command` is a
//! registered command or `unknown`; `stage`, `quadrant`, `outcome`, `status` and `reason`
//! come from fixed sets.

use std::sync::Arc;

use chatops_core::{Quadrant, Stage};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Bucket bounds in seconds: 1 ms … 30 s, dense where a chat bot's latencies live, then
/// sparse up to an hour, where long commands and the wait for a human's approval (15 min
/// until a request expires, by default) end; beyond the top bucket a quantile only says
/// "more than that".
pub const BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// Label value for commands that are not in the registry.
pub const UNKNOWN_COMMAND: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: &'static str,
    pub command: String,
    pub quadrant: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub quadrant: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuadrantLabels {
    pub quadrant: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub command: String,
    pub rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApprovalLabels {
    pub command: String,
    /// requested, approved, denied, expired
    pub event: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric the bot records.
pub struct Metrics {
    registry: Registry,
    /// Per stage of a command, by command, quadrant and outcome.
    pub stage_seconds: HistogramFamily<StageLabels>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub signature_failures: Family<ReasonLabels, Counter>,
    /// Commands refused by the per-user rate limit or the concurrency cap.
    pub throttled: Family<ReasonLabels, Counter>,
    /// `response_url` posts by outcome (delivered, rejected, failed).
    pub response_posts: Family<OutcomeLabels, Counter>,
    /// Retries of single `response_url` posts (5xx, 429, timeouts).
    pub response_retries: Counter,
    /// Job attempts by outcome (completed, retrying, dead_lettered, unacknowledged).
    pub jobs: Family<JobLabels, Counter>,
    /// Jobs run again after a DLQ redrive.
    pub jobs_redriven: Family<QuadrantLabels, Counter>,
    pub queue_depth: Family<QuadrantLabels, Gauge>,
    pub jobs_in_flight: Family<QuadrantLabels, Gauge>,
    pub dlq_size: Gauge,
    pub worker_pool_size: Family<QuadrantLabels, Gauge>,
    /// Commands refused by access control, by command and rule.
    pub access_refusals: Family<RefusalLabels, Counter>,
    /// Approval requests by command and what happened to them.
    pub approvals: Family<ApprovalLabels, Counter>,
    /// Approval requests waiting for a decision (refreshed by the sweeper).
    pub approvals_pending: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chatops");
        let stage_seconds: HistogramFamily<StageLabels> = Family::new_with_constructor(latency_histogram);
        let http_requests = Family::<HttpLabels, Counter>::default();
        let signature_failures = Family::<ReasonLabels, Counter>::default();
        let throttled = Family::<ReasonLabels, Counter>::default();
        let response_posts = Family::<OutcomeLabels, Counter>::default();
        let response_retries = Counter::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let jobs_redriven = Family::<QuadrantLabels, Counter>::default();
        let queue_depth = Family::<QuadrantLabels, Gauge>::default();
        let jobs_in_flight = Family::<QuadrantLabels, Gauge>::default();
        let dlq_size = Gauge::default();
        let worker_pool_size = Family::<QuadrantLabels, Gauge>::default();
        let access_refusals = Family::<RefusalLabels, Counter>::default();
        let approvals = Family::<ApprovalLabels, Counter>::default();
        let approvals_pending = Gauge::default();
        registry.register(
            "stage_duration_seconds",
            "Time spent in each stage of a command (router, approval_wait, enqueue, queue_wait, handler, response, worker, e2e)",
            stage_seconds.clone(),
        );
        registry.register("http_requests", "HTTP requests by route and status code", http_requests.clone());
        registry.register(
            "signature_failures",
            "Requests refused by Slack signature verification",
            signature_failures.clone(),
        );
        registry.register(
            "throttled_requests",
            "Commands refused by the rate limit or the concurrency cap",
            throttled.clone(),
        );
        registry.register("response_posts", "Posts to response_url by outcome", response_posts.clone());
        registry.register("response_post_retries", "Retried posts to response_url", response_retries.clone());
        registry.register("jobs", "Job attempts by quadrant and outcome", jobs.clone());
        registry.register("jobs_redriven", "Jobs run again after a dead-letter redrive", jobs_redriven.clone());
        registry.register("queue_depth", "Jobs waiting per quadrant", queue_depth.clone());
        registry.register("jobs_in_flight", "Jobs leased by workers per quadrant", jobs_in_flight.clone());
        registry.register("dlq_size", "Jobs in the dead-letter queue", dlq_size.clone());
        registry.register("worker_pool_size", "Worker slots per quadrant in this process", worker_pool_size.clone());
        registry.register(
            "access_refusals",
            "Commands refused by access control, by command and rule (team, channel, user, default)",
            access_refusals.clone(),
        );
        registry.register(
            "approvals",
            "Approval requests by command and event (requested, approved, denied, expired)",
            approvals.clone(),
        );
        registry.register("approvals_pending", "Approval requests waiting for a decision", approvals_pending.clone());
        // Series with a known, bounded label set start at 0, so they are exported before
        // the first event and `rate()` sees the first increase.
        for reason in [
            "missing_timestamp",
            "malformed_timestamp",
            "stale_timestamp",
            "future_timestamp",
            "missing_signature",
            "malformed_signature",
            "bad_signature",
        ] {
            signature_failures.get_or_create(&ReasonLabels { reason }).inc_by(0);
        }
        for reason in ["user_rate", "concurrency"] {
            throttled.get_or_create(&ReasonLabels { reason }).inc_by(0);
        }
        for outcome in ["delivered", "rejected", "failed"] {
            response_posts.get_or_create(&OutcomeLabels { outcome }).inc_by(0);
        }
        for q in Quadrant::ALL {
            for outcome in ["completed", "retrying", "dead_lettered", "unacknowledged"] {
                jobs.get_or_create(&JobLabels { quadrant: q.as_str(), outcome }).inc_by(0);
            }
            jobs_redriven.get_or_create(&QuadrantLabels { quadrant: q.as_str() }).inc_by(0);
        }
        Metrics {
            registry,
            stage_seconds,
            http_requests,
            signature_failures,
            throttled,
            response_posts,
            response_retries,
            jobs,
            jobs_redriven,
            queue_depth,
            jobs_in_flight,
            dlq_size,
            worker_pool_size,
            access_refusals,
            approvals,
            approvals_pending,
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Records one stage's duration in milliseconds (negative values, from clock skew
    /// between machines, are recorded as 0).
    pub fn observe_stage(
        &self,
        stage: Stage,
        command: &str,
        quadrant: Option<Quadrant>,
        outcome: &'static str,
        ms: f64,
    ) {
        let labels = StageLabels {
            stage: stage.as_str(),
            command: command.to_owned(),
            quadrant: quadrant.map_or("none", Quadrant::as_str),
            outcome,
        };
        self.stage_seconds.get_or_create(&labels).observe((ms / 1000.0).max(0.0));
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_counters_and_gauges() {
        let m = Metrics::default();
        m.observe_stage(Stage::E2e, "/echo", Some(Quadrant::ShortRead), "completed", 12.0);
        m.http_requests.get_or_create(&HttpLabels { route: "/slack/commands", status: 200 }).inc();
        m.dlq_size.set(3);
        let text = m.render();
        assert!(text.contains("chatops_stage_duration_seconds_count{stage=\"e2e\",command=\"/echo\",quadrant=\"short-read\",outcome=\"completed\"} 1"), "{text}");
        assert!(text.contains("chatops_http_requests_total{route=\"/slack/commands\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("chatops_dlq_size 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
