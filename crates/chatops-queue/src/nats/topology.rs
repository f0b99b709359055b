//! The JetStream layout (see the parent module's docs): names derived from the prefix, the
//! JetStream check, and the streams and the bucket `chatops nats setup` (or an owner
//! process) creates.

use std::time::Duration;

use async_nats::client::Client;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use chatops_core::Quadrant;

use super::{NatsSettings, unavailable};
use crate::QueueError;

/// Names derived from the prefix.
#[derive(Debug, Clone)]
pub(super) struct Names {
    pub(super) jobs_stream: String,
    pub(super) dlq_stream: String,
    pub(super) done_stream: String,
    /// The approvals KV bucket (`<P>_APPROVALS`); its stream is `KV_<bucket>`.
    pub(super) approvals_bucket: String,
    pub(super) approvals_stream: String,
    pub(super) audit_stream: String,
    pub(super) subject_root: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Self {
        let upper = prefix.to_ascii_uppercase();
        Names {
            jobs_stream: format!("{upper}_JOBS"),
            dlq_stream: format!("{upper}_DLQ"),
            done_stream: format!("{upper}_DONE"),
            approvals_bucket: format!("{upper}_APPROVALS"),
            approvals_stream: format!("KV_{upper}_APPROVALS"),
            audit_stream: format!("{upper}_AUDIT"),
            subject_root: prefix.to_ascii_lowercase(),
        }
    }

    /// The subject of a key in the approvals bucket (KV keys are subjects under
    /// `$KV.<bucket>.`).
    pub(super) fn approval_key(&self, key: &str) -> String {
        format!("$KV.{}.{key}", self.approvals_bucket)
    }

    /// An audit record's subject: its id hex-encoded, so any id is one valid token.
    pub(super) fn audit_subject(&self, record_id: &str) -> String {
        format!("{}.audit.{}", self.subject_root, hex_token(record_id))
    }

    pub(super) fn job_subject(&self, q: Quadrant) -> String {
        format!("{}.jobs.{}", self.subject_root, q.short())
    }

    pub(super) fn wake_subject(&self, q: Quadrant) -> String {
        format!("{}.wake.{}", self.subject_root, q.short())
    }

    pub(super) fn dlq_subject(&self, q: Quadrant) -> String {
        format!("{}.dlq.{}", self.subject_root, q.short())
    }

    pub(super) fn done_subject(&self, idempotency_key: &str) -> String {
        format!("{}.done.{idempotency_key}", self.subject_root)
    }

    /// The effect-started record of a job's redrive generation (see `effect`).
    pub(super) fn started_subject(&self, redrives: u32, idempotency_key: &str) -> String {
        format!("{}.started.{redrives}.{idempotency_key}", self.subject_root)
    }

    pub(super) fn consumer(&self, q: Quadrant) -> String {
        format!("{}_{}", self.jobs_stream.trim_end_matches("_JOBS"), q.short().to_ascii_uppercase())
    }
}

/// `s`'s bytes as lowercase hex: a valid subject token (and KV key) for any string.
pub(super) fn hex_token(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::with_capacity(s.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Asks the server for JetStream's account info; a server without JetStream has no
/// responder for it.
pub(super) async fn check_jetstream(client: &Client, settings: &NatsSettings) -> Result<(), QueueError> {
    let no_jetstream = |why: String| {
        QueueError::Unavailable(
            format!(
                "the NATS server at {} has no JetStream ({why}); start it with `nats-server -js`",
                settings.servers.join(",")
            )
            .into(),
        )
    };
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request("$JS.API.INFO", Bytes::new()))
        .await
        .map_err(|_| no_jetstream("no answer within 5s".into()))?
        .map_err(|e| no_jetstream(e.to_string()))?;
    let info: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| no_jetstream(format!("unreadable answer: {e}")))?;
    if let Some(error) = info.get("error") {
        return Err(no_jetstream(error.to_string()));
    }
    Ok(())
}

pub(super) async fn create_streams(
    js: &jetstream::Context,
    names: &Names,
    settings: &NatsSettings,
) -> Result<(), QueueError> {
    let jobs_config = stream::Config {
        name: names.jobs_stream.clone(),
        subjects: vec![format!("{}.jobs.*", names.subject_root)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_messages_per_subject: settings.max_depth as i64,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        description: Some("chatops jobs, one subject per quadrant".into()),
        ..Default::default()
    };
    js.create_or_update_stream(jobs_config).await.map_err(|e| unavailable("creating the jobs stream", e))?;
    let dlq_config = stream::Config {
        name: names.dlq_stream.clone(),
        subjects: vec![format!("{}.dlq.*", names.subject_root)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        description: Some("chatops dead letters".into()),
        ..Default::default()
    };
    js.create_or_update_stream(dlq_config).await.map_err(|e| unavailable("creating the DLQ stream", e))?;
    let done_config = stream::Config {
        name: names.done_stream.clone(),
        // Effect-started records share the stream: the same one-per-subject limit and
        // retention, and dequeue reads both kinds from one stream.
        subjects: vec![format!("{}.done.>", names.subject_root), format!("{}.started.>", names.subject_root)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        max_age: settings.done_retention,
        num_replicas: settings.replicas,
        description: Some("chatops done-records and effect-started records".into()),
        ..Default::default()
    };
    js.create_or_update_stream(done_config).await.map_err(|e| unavailable("creating the done-record stream", e))?;
    js.create_or_update_stream(approvals_config(names, settings))
        .await
        .map_err(|e| unavailable("creating the approvals bucket", e))?;
    let audit_config = stream::Config {
        name: names.audit_stream.clone(),
        subjects: vec![format!("{}.audit.*", names.subject_root)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        // One message per record id: writing a record again replaces it.
        max_messages_per_subject: 1,
        max_age: settings.audit_retention,
        num_replicas: settings.replicas,
        description: Some("chatops audit trail, one subject per record".into()),
        ..Default::default()
    };
    js.create_or_update_stream(audit_config).await.map_err(|e| unavailable("creating the audit stream", e))?;
    Ok(())
}

/// The approvals bucket's stream, laid out as JetStream's KV buckets are (`KV_<bucket>`,
/// subjects `$KV.<bucket>.>`, history 1, rollups allowed, deletes denied, direct gets), so
/// `nats kv` tools can read it. It is created as a stream rather than through async-nats'
/// KV API, which this build does not enable; the engine's reads and compare-and-set
/// writes are the ones that API makes (`Nats-Expected-Last-Subject-Sequence`).
///
/// `max_age` is the approval retention: the bucket is the request's only copy, so it
/// must outlive every pending request (see `NatsSettings::approval_retention`).
fn approvals_config(names: &Names, settings: &NatsSettings) -> stream::Config {
    stream::Config {
        name: names.approvals_stream.clone(),
        subjects: vec![format!("$KV.{}.>", names.approvals_bucket)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        max_age: settings.approval_retention,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: settings.replicas,
        description: Some("chatops pending approvals (a KV bucket)".into()),
        ..Default::default()
    }
}
