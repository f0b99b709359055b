//! The eleven figures the analyzer reports per stage, named by the log field that carries
//! them. Worker field names come from [`chatops_core::Stage::worker_field`], so they exist once.

use std::fmt;

use chatops_core::Stage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One reported figure. The router line carries [`Metric::RouterDuration`]; each worker line
/// (one per job attempt) carries the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Router line `duration`: time in the router, ack included.
    RouterDuration,
    /// `totalE2eMs`: router receive → job done.
    TotalE2e,
    /// `workerDurationMs`: dequeue → job done.
    WorkerDuration,
    /// `queueWaitMs`: durably enqueued → dequeued.
    QueueWait,
    /// `syncResponseMs`: the first `response_url` post.
    SyncResponse,
    /// `asyncResponseMs`: the last `response_url` post, when there were two or more.
    AsyncResponse,
    /// `routerMs`: router receive → start of the durable enqueue.
    Router,
    /// `enqueueMs`: the durable enqueue.
    Enqueue,
    /// `handlerMs`: the handler, response posts included.
    Handler,
    /// `firstResponseE2eMs`: router receive → first response delivered.
    FirstResponseE2e,
    /// `lastResponseE2eMs`: router receive → last response delivered.
    LastResponseE2e,
}

impl Metric {
    /// Report order: what a reader asks first (router, E2E, where the time went), then detail.
    pub const ALL: [Metric; 11] = [
        Metric::RouterDuration,
        Metric::TotalE2e,
        Metric::WorkerDuration,
        Metric::QueueWait,
        Metric::SyncResponse,
        Metric::AsyncResponse,
        Metric::Router,
        Metric::Enqueue,
        Metric::Handler,
        Metric::FirstResponseE2e,
        Metric::LastResponseE2e,
    ];

    /// Position in [`Metric::ALL`], for array-indexed accumulators.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stage of the log contract this figure measures, when it is one.
    pub fn stage(self) -> Option<Stage> {
        Some(match self {
            Metric::TotalE2e => Stage::E2e,
            Metric::WorkerDuration => Stage::Worker,
            Metric::QueueWait => Stage::QueueWait,
            Metric::SyncResponse => Stage::SyncResponse,
            Metric::AsyncResponse => Stage::AsyncResponse,
            Metric::Router => Stage::Router,
            Metric::Enqueue => Stage::Enqueue,
            Metric::Handler => Stage::Handler,
            Metric::RouterDuration | Metric::FirstResponseE2e | Metric::LastResponseE2e => return None,
        })
    }

    /// The log field carrying the figure.
    pub fn field(self) -> &'static str {
        match self {
            Metric::RouterDuration => "duration",
            Metric::FirstResponseE2e => "firstResponseE2eMs",
            Metric::LastResponseE2e => "lastResponseE2eMs",
            other => other.stage().expect("every other metric is a contract stage").worker_field(),
        }
    }

    /// Inverse of [`Metric::field`].
    pub fn from_field(field: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.field() == field)
    }

    /// Short human label for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Metric::RouterDuration => "router (ack)",
            Metric::TotalE2e => "e2e total",
            Metric::WorkerDuration => "worker",
            Metric::QueueWait => "queue wait",
            Metric::SyncResponse => "sync response",
            Metric::AsyncResponse => "async response",
            Metric::Router => "router",
            Metric::Enqueue => "enqueue",
            Metric::Handler => "handler",
            Metric::FirstResponseE2e => "e2e first response",
            Metric::LastResponseE2e => "e2e last response",
        }
    }

    /// True for the figures read from the router's line rather than a worker's.
    pub fn is_router_line(self) -> bool {
        self == Metric::RouterDuration
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.field())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let field = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Metric::from_field(&field).ok_or_else(|| serde::de::Error::custom(format!("unknown metric field `{field}`")))
    }
}

#[cfg(test)]
impl schemars::JsonSchema for Metric {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Metric".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let fields: Vec<&str> = Metric::ALL.iter().map(|m| m.field()).collect();
        schemars::json_schema!({
            "description": "A reported figure, named by the log field that carries it.",
            "type": "string",
            "enum": fields,
        })
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
        }
        assert_eq!(Metric::from_field("durationMs"), None);
    }

    #[test]
    fn serializes_as_the_field_name() {
        assert_eq!(serde_json::to_string(&Metric::QueueWait).unwrap(), "\"queueWaitMs\"");
        assert_eq!(serde_json::from_str::<Metric>("\"duration\"").unwrap(), Metric::RouterDuration);
        assert!(serde_json::from_str::<Metric>("\"nope\"").is_err());
    }
}
