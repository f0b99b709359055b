//! What a NATS queue is opened with: servers, prefix, credentials and TLS, stream limits and
//! the per-quadrant consumers. Filled by `engine::EngineSettings` from a queue URL and options.

use std::time::Duration;

/// Authentication and TLS, as async-nats supports them.
#[derive(Debug, Clone, Default)]
pub struct NatsAuth {
    pub creds_file: Option<std::path::PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub tls_client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub require_tls: bool,
}

/// Per-quadrant consumer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Redelivery delay after a worker stops acknowledging (crash).
    pub ack_wait: Duration,
    /// Deliveries before JetStream gives up (then the watcher dead-letters the job).
    pub max_deliver: u32,
}

#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port` URLs.
    pub servers: Vec<String>,
    /// Prefix of stream, consumer, bucket and subject names, so several deployments (or
    /// tests) can share one server.
    pub prefix: String,
    pub auth: NatsAuth,
    pub max_depth: u64,
    pub done_retention: Duration,
    /// At least 15 minutes: the signature check accepts timestamps 5 minutes either side of
    /// now, so a replay can arrive up to 10 minutes after the original.
    pub duplicate_window: Duration,
    /// Indexed like [`Quadrant::ALL`](chatops_core::Quadrant::ALL).
    pub consumers: [ConsumerSettings; 4],
    /// `max_age` of the approvals bucket: how long a request is kept after its last write
    /// (its decision, or its creation while pending). Approval timeouts must stay well
    /// below it, or a pending request vanishes before it expires.
    pub approval_retention: Duration,
    /// `max_age` of the audit stream: how long a record is kept after it was written.
    pub audit_retention: Duration,
    pub replicas: usize,
    /// How long a JetStream API request (stream info, dead letters, done-records) waits
    /// for its answer. An enqueue is bounded by its own deadline instead.
    pub publish_timeout: Duration,
}

impl NatsSettings {
    pub fn new(servers: Vec<String>) -> Self {
        NatsSettings {
            servers,
            prefix: "CHATOPS".into(),
            auth: NatsAuth::default(),
            max_depth: 100_000,
            done_retention: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(15 * 60),
            consumers: [ConsumerSettings { ack_wait: Duration::from_secs(30), max_deliver: 3 }; 4],
            approval_retention: crate::approvals::DEFAULT_RETENTION,
            audit_retention: crate::audit::DEFAULT_RETENTION,
            replicas: 1,
            publish_timeout: Duration::from_secs(2),
        }
    }
}
