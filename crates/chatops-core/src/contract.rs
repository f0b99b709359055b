//! The log contract: the two metric lines every stage of the bot writes, with the field names
//! of the origin system (a TypeScript bot on AWS Lambda), so that existing Logs Insights
//! queries and dashboards keep working. The service writes these lines; `chatops analyze`
//! reads them with the structs below. Times are milliseconds.

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
    /// Router receive → start of the durable enqueue (verify, parse, route).
    Router,
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
    pub const ALL: [Stage; 9] = [
        Stage::Router,
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

    /// The field of the worker's "Performance metrics" line that carries this stage.
    pub fn worker_field(self) -> &'static str {
        match self {
            Stage::Router => "routerMs",
            Stage::Enqueue => "enqueueMs",
            Stage::QueueWait => "queueWaitMs",
            Stage::Handler => "handlerMs",
            Stage::SyncResponse => "syncResponseMs",
            Stage::AsyncResponse => "asyncResponseMs",
            Stage::Response => "responseMs",
            Stage::Worker => "workerDurationMs",
            Stage::E2e => "totalE2eMs",
        }
    }
}

/// The router's line. `duration` is the time spent in the router, ack included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterMetrics {
    pub correlation_id: String,
    #[serde(default)]
    pub command: Option<String>,
    pub status_code: u16,
    pub duration: f64,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Durable enqueue time inside `duration` (absent when nothing was enqueued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueue_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quadrant: Option<String>,
}

/// A worker's line, one per job attempt. The first block of fields is the origin's contract;
/// the second block is measured directly from stamps carried with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerMetrics {
    pub correlation_id: String,
    pub command: String,
    pub component: String,
    #[serde(default)]
    pub quadrant: Option<String>,
    pub total_e2e_ms: f64,
    pub worker_duration_ms: f64,
    pub queue_wait_ms: f64,
    #[serde(default)]
    pub sync_response_ms: Option<f64>,
    #[serde(default)]
    pub async_response_ms: Option<f64>,
    pub success: bool,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default = "one")]
    pub attempt: u32,

    #[serde(default)]
    pub router_ms: Option<f64>,
    #[serde(default)]
    pub enqueue_ms: Option<f64>,
    #[serde(default)]
    pub handler_ms: Option<f64>,
    #[serde(default)]
    pub first_response_e2e_ms: Option<f64>,
    #[serde(default)]
    pub last_response_e2e_ms: Option<f64>,
    #[serde(default)]
    pub responses: Option<u32>,
}

fn one() -> u32 {
    1
}
