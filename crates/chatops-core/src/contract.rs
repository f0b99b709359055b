//! The log contract: the two metric lines every stage of the bot writes, with the field names
//! of the origin system (a TypeScript bot on AWS Lambda), so that existing Logs Insights
//! queries and dashboards keep working. Times are milliseconds.
//!
//! The timed fields are one table, [`metric_fields!`](crate::metric_fields): the bot's emitters, the analyzer's
//! fast scanner and its serde path, and every report are generated from or read through
//! it, so a field renamed here is renamed everywhere (and a test that parses a line the bot
//! really wrote checks the table against it). The segments a breakdown splits E2E time
//! into are [`Segment`], shared by the analyzer and the report.

use serde::{Deserialize, Serialize};

/// `message` of the router's line (one per HTTP request).
pub const ROUTER_METRICS_MESSAGE: &str = "Router performance metrics";
/// `message` of a worker's line (one per job attempt).
pub const WORKER_METRICS_MESSAGE: &str = "Performance metrics";

/// The named stages of a command's life. Names exist once, here, and are shared by logs,
/// metrics and the analyzer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Router receive → start of the durable enqueue (verify, parse, route); for a command
    /// that needs approvals, router receive → the request stored as pending.
    Router,
    /// Request stored as pending → the approval that completed it: the time a human took,
    /// kept apart from the queue's so that neither hides the other.
    ApprovalWait,
    /// Durable enqueue (the write the ack waits for).
    Enqueue,
    /// Durably enqueued → dequeued by a worker.
    QueueWait,
    /// The command's handler, response posts included.
    Handler,
    /// First `response_url` post.
    SyncResponse,
    /// Last `response_url` post, when there are two or more.
    AsyncResponse,
    /// Any one `response_url` post (metrics record each post under this stage).
    Response,
    /// Dequeue → job done.
    Worker,
    /// Router receive → job done.
    E2e,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Router,
        Stage::ApprovalWait,
        Stage::Enqueue,
        Stage::QueueWait,
        Stage::Handler,
        Stage::SyncResponse,
        Stage::AsyncResponse,
        Stage::Response,
        Stage::Worker,
        Stage::E2e,
    ];

    /// Label for metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Router => "router",
            Stage::ApprovalWait => "approval_wait",
            Stage::Enqueue => "enqueue",
            Stage::QueueWait => "queue_wait",
            Stage::Handler => "handler",
            Stage::SyncResponse => "sync_response",
            Stage::AsyncResponse => "async_response",
            Stage::Response => "response",
            Stage::Worker => "worker",
            Stage::E2e => "e2e",
        }
    }
}

/// The one table of the metric lines' timed fields, in report order: `Variant => "logField",
/// stage (when the figure is one of [`Stage`]), "label";`. It calls back `$then!` with the
/// rows, so code that must spell every field (a `tracing` call, a `match`) is generated
/// from it instead of restating the names.
///
/// `duration` is the router line's time in the router (ack included); `enqueueMs` is on
/// both lines; every other field is on the worker's line only. A field is written only when
/// the job has the figure: `approvalWaitMs` only for a job that waited for approvals, the
/// response figures only for the responses it posted.
#[macro_export]
macro_rules! metric_fields {
    ($then:ident) => {
        $then! {
            RouterDuration => "duration", None, "router (ack)";
            TotalE2e => "totalE2eMs", Some($crate::Stage::E2e), "e2e total";
            WorkerDuration => "workerDurationMs", Some($crate::Stage::Worker), "worker";
            ApprovalWait => "approvalWaitMs", Some($crate::Stage::ApprovalWait), "approval wait";
            QueueWait => "queueWaitMs", Some($crate::Stage::QueueWait), "queue wait";
            SyncResponse => "syncResponseMs", Some($crate::Stage::SyncResponse), "sync response";
            AsyncResponse => "asyncResponseMs", Some($crate::Stage::AsyncResponse), "async response";
            Router => "routerMs", Some($crate::Stage::Router), "router";
            Enqueue => "enqueueMs", Some($crate::Stage::Enqueue), "enqueue";
            Handler => "handlerMs", Some($crate::Stage::Handler), "handler";
            FirstResponseE2e => "firstResponseE2eMs", None, "e2e first response";
            LastResponseE2e => "lastResponseE2eMs", None, "e2e last response";
        }
    };
}

macro_rules! define_metric {
    ($($variant:ident => $field:literal, $stage:expr, $label:literal;)*) => {
        /// One timed figure of the metric lines, named by the log field that carries it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $(
                #[doc = concat!("`", $field, "`: ", $label, ".")]
                $variant,
            )*
        }

        impl Metric {
            /// Report order: what a reader asks first (router, E2E, where the time went),
            /// then detail.
            pub const ALL: [Metric; [$(Metric::$variant),*].len()] = [$(Metric::$variant),*];
            /// How many there are (array-indexed accumulators are this long).
            pub const COUNT: usize = Metric::ALL.len();

            /// The log field carrying the figure.
            pub const fn field(self) -> &'static str {
                match self {
                    $(Metric::$variant => $field,)*
                }
            }

            /// The figure a log field carries, from the raw bytes of its key (the
            /// analyzer's scanner calls this for every key of every line).
            pub fn from_field_bytes(key: &[u8]) -> Option<Metric> {
                #[allow(non_upper_case_globals)]
                mod keys {
                    $(pub(super) const $variant: &[u8] = $field.as_bytes();)*
                }
                match key {
                    $(keys::$variant => Some(Metric::$variant),)*
                    _ => None,
                }
            }

            /// The stage of the log contract this figure measures, when it is one.
            pub fn stage(self) -> Option<Stage> {
                match self {
                    $(Metric::$variant => $stage,)*
                }
            }

            /// Short human label for tables and charts.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Metric::$variant => $label,)*
                }
            }
        }
    };
}

metric_fields!(define_metric);

impl Metric {
    /// Position in [`Metric::ALL`], for array-indexed accumulators.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`Metric::field`].
    pub fn from_field(field: &str) -> Option<Metric> {
        Metric::from_field_bytes(field.as_bytes())
    }

    /// True for the figure read from the router's line rather than a worker's.
    pub fn is_router_line(self) -> bool {
        self == Metric::RouterDuration
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.field())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let field = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Metric::from_field(&field).ok_or_else(|| serde::de::Error::custom(format!("unknown metric field `{field}`")))
    }
}

/// A slice of a command's E2E time, as the analyzer's breakdowns split it and the report
/// colours it. The first eight split a worker line's `totalE2eMs`; the join of client and
/// server records splits the client-observed time with the last three in place of the
/// handler's. [`Segment::ApprovalWait`] is in a breakdown only when one of its jobs waited
/// for approvals, so the breakdowns of commands that need none are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    Router,
    /// Waited for a human's approval (only jobs that needed approvals have it).
    ApprovalWait,
    Enqueue,
    QueueWait,
    Handler,
    SyncResponse,
    AsyncResponse,
    /// What the stages of a worker line do not account for.
    Other,
    HandlerToFirstResponse,
    FirstToLastResponse,
    /// Client-observed time no server stamp accounts for (network, clocks).
    Unexplained,
}

impl Segment {
    /// The worker-line breakdown, in path order; the last is the remainder.
    pub const BREAKDOWN: [Segment; 8] = [
        Segment::Router,
        Segment::ApprovalWait,
        Segment::Enqueue,
        Segment::QueueWait,
        Segment::Handler,
        Segment::SyncResponse,
        Segment::AsyncResponse,
        Segment::Other,
    ];
    /// The client × server join, in path order; the last is the remainder.
    pub const JOIN: [Segment; 7] = [
        Segment::Router,
        Segment::ApprovalWait,
        Segment::Enqueue,
        Segment::QueueWait,
        Segment::HandlerToFirstResponse,
        Segment::FirstToLastResponse,
        Segment::Unexplained,
    ];

    /// Stable key in summaries (the stage's name where it is one).
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Router => Stage::Router.as_str(),
            Segment::ApprovalWait => Stage::ApprovalWait.as_str(),
            Segment::Enqueue => Stage::Enqueue.as_str(),
            Segment::QueueWait => Stage::QueueWait.as_str(),
            Segment::Handler => Stage::Handler.as_str(),
            Segment::SyncResponse => Stage::SyncResponse.as_str(),
            Segment::AsyncResponse => Stage::AsyncResponse.as_str(),
            Segment::Other => "other",
            Segment::HandlerToFirstResponse => "handler_to_first_response",
            Segment::FirstToLastResponse => "first_to_last_response",
            Segment::Unexplained => "unexplained",
        }
    }

    /// Human label for tables, legends and tooltips.
    pub fn label(self) -> &'static str {
        match self {
            Segment::Router => "router",
            Segment::ApprovalWait => "approval wait (human)",
            Segment::Enqueue => "durable enqueue",
            Segment::QueueWait => "queue wait",
            Segment::Handler => "handler",
            Segment::SyncResponse => "sync response",
            Segment::AsyncResponse => "async response",
            Segment::Other => "other (unattributed)",
            Segment::HandlerToFirstResponse => "handler → first response",
            Segment::FirstToLastResponse => "first → last response",
            Segment::Unexplained => "unexplained (network, clock)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_log_contract() {
        let fields: Vec<&str> = Metric::ALL.iter().map(|m| m.field()).collect();
        assert_eq!(
            fields,
            [
                "duration",
                "totalE2eMs",
                "workerDurationMs",
                "approvalWaitMs",
                "queueWaitMs",
                "syncResponseMs",
                "asyncResponseMs",
                "routerMs",
                "enqueueMs",
                "handlerMs",
                "firstResponseE2eMs",
                "lastResponseE2eMs"
            ]
        );
        for m in Metric::ALL {
            assert_eq!(Metric::ALL[m.index()], m);
            assert_eq!(Metric::from_field(m.field()), Some(m));
            assert_eq!(Metric::from_field_bytes(m.field().as_bytes()), Some(m));
        }
        assert_eq!(Metric::from_field("durationMs"), None);
        assert_eq!(Metric::from_field_bytes(b"totalE2eM"), None);
    }

    #[test]
    fn metrics_serialize_as_the_field_name() {
        assert_eq!(serde_json::to_string(&Metric::QueueWait).unwrap(), "\"queueWaitMs\"");
        assert_eq!(serde_json::from_str::<Metric>("\"duration\"").unwrap(), Metric::RouterDuration);
        assert!(serde_json::from_str::<Metric>("\"nope\"").is_err());
    }

    #[test]
    fn approval_wait_is_one_stage_with_one_field_and_one_segment() {
        assert_eq!(Stage::ApprovalWait.as_str(), "approval_wait");
        assert_eq!(Metric::from_field("approvalWaitMs").and_then(Metric::stage), Some(Stage::ApprovalWait));
        assert_eq!(Segment::ApprovalWait.as_str(), Stage::ApprovalWait.as_str());
        // Path order: the human's wait comes after the router stored the request, before
        // the durable enqueue of the approved job.
        let position = |s| Segment::BREAKDOWN.iter().position(|&b| b == s);
        assert_eq!(position(Segment::ApprovalWait), Some(1));
        assert_eq!(Segment::JOIN[1], Segment::ApprovalWait);
        let mut names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Stage::ALL.len(), "stage names are distinct");
    }

    #[test]
    fn segments_serialize_as_their_name() {
        for s in Segment::BREAKDOWN.into_iter().chain(Segment::JOIN) {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
    }
}
