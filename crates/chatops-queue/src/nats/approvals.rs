//! Pending approvals on this engine (see [`crate::approvals`]): the KV bucket
//! `<P>_APPROVALS` (history 1), changed only by compare-and-set on a key's revision.
//!
//! Keys:
//!
//! - `r.<hex of the idempotency key>`: the record (the [`ApprovalRecord`] as JSON, plus
//!   when it was approved and whether its job reached the queue). Keyed by the Slack
//!   request, so that "one request, one record" is the key's create-if-absent and needs no
//!   second index. Its state, expiry and enqueue marker are repeated in headers, so the
//!   sweep and the gauge read headers only.
//! - `i.<id>`: the idempotency key's hex, so a vote (which knows only the id from the
//!   button) finds its record. Written before the record; a pointer whose record is
//!   missing or has another id means "no such approval".
//! - `t.<id>`: a tombstone written behind a request whose deadline passed (like the
//!   enqueue's not-queued done-record): a record that was stored late anyway is not
//!   reported by the sweep when it expires, and a new request for the same Slack request
//!   replaces it instead of being told it is a duplicate.
//!
//! A vote reads the record, decides with [`crate::approvals::apply_vote`] and writes it
//! back expecting the revision it read; a conflict (another approver, a sweep) re-reads
//! and decides again, so of two approvers racing for the last approval exactly one wins
//! the deciding write. That write stores the state `approved` with `enqueued: false`; the
//! job is then published on the normal enqueue path (`Nats-Msg-Id` = the idempotency key),
//! and the record marked `enqueued: true`. A crash in between leaves an approved record
//! whose job may be missing: the sweep publishes it again, which JetStream's duplicate
//! window turns into nothing if the first publish did land. Outside that window (a router
//! down longer than `duplicate_window`) a second copy could be stored; the done-record
//! stops it if the first copy completed, and the effect-started record of a write command
//! stops it from starting its effect twice.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_trait::async_trait;
use bytes::Bytes;
use chatops_core::time::now_unix_ns;
use serde::{Deserialize, Serialize};

use super::scan::{Scan, scan};
use super::topology::hex_token;
use super::{NatsQueue, unavailable};
use crate::approvals::{
    ApprovalRecord, ApprovalRequested, ApprovalState, ApprovalStore, PendingApproval, Swept, Vote, VoteEffect,
    VoteOutcome, apply_vote, approved_job, expire, invalid_id_error, is_valid_id,
};
use crate::{Enqueued, QueueError};

const HEADER_STATE: &str = "Chatops-Approval-State";
const HEADER_EXPIRES_MS: &str = "Chatops-Approval-Expires-Ms";
const HEADER_ENQUEUED: &str = "Chatops-Approval-Enqueued";
const HEADER_KV_OPERATION: &str = "KV-Operation";

/// Rounds of read-decide-write one call makes before it gives up: each lost round means
/// another writer won one, so this bounds the concurrent writers a call outlasts.
const MAX_CAS_ROUNDS: usize = 64;

/// The record as the bucket holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredApproval {
    record: ApprovalRecord,
    /// The deciding approval's time (unix ns): the job's `approved_ns`, kept so that a
    /// repair publishes the very job the voter did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_ns: Option<u64>,
    /// The approved job reached the queue.
    #[serde(default)]
    enqueued: bool,
}

/// A key's current value, or its absence with the revision a create must expect.
enum Slot {
    Empty { revision: u64 },
    Value { revision: u64, payload: Bytes },
}

/// A compare-and-set write's result.
enum Cas {
    Written { revision: u64 },
    Conflict,
}

fn record_key(key_hex: &str) -> String {
    format!("r.{key_hex}")
}

fn pointer_key(id: &str) -> String {
    format!("i.{id}")
}

fn tombstone_key(id: &str) -> String {
    format!("t.{id}")
}

fn decode(payload: &[u8]) -> Result<StoredApproval, QueueError> {
    serde_json::from_slice(payload).map_err(|e| QueueError::unreadable("approval record", &e))
}

impl NatsQueue {
    async fn read_key(&self, bucket: &stream::Stream, key: &str) -> Result<Slot, QueueError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match bucket.get_last_raw_message_by_subject(&self.names.approval_key(key)).await {
            Ok(message) => {
                let deleted = message
                    .headers
                    .get(HEADER_KV_OPERATION)
                    .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
                Ok(if deleted {
                    Slot::Empty { revision: message.sequence }
                } else {
                    Slot::Value { revision: message.sequence, payload: message.payload }
                })
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Slot::Empty { revision: 0 }),
            Err(e) => Err(unavailable("reading the approvals bucket", e)),
        }
    }

    /// Writes `key` if its revision is still `expected` (0: the key has never been written).
    async fn write_key(
        &self,
        key: &str,
        mut headers: HeaderMap,
        payload: Bytes,
        expected: u64,
    ) -> Result<Cas, QueueError> {
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(self.names.approval_key(key), headers, payload)
            .await
            .map_err(|e| unavailable("writing to the approvals bucket", e))?
            .await;
        match ack {
            Ok(ack) => Ok(Cas::Written { revision: ack.sequence }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(Cas::Conflict),
            Err(e) => Err(unavailable("storing to the approvals bucket", e)),
        }
    }

    /// Writes the record expecting `expected`, with its state in headers.
    async fn write_record(&self, key_hex: &str, stored: &StoredApproval, expected: u64) -> Result<Cas, QueueError> {
        let payload = serde_json::to_vec(stored).map_err(QueueError::corrupt)?;
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_STATE, stored.record.state.as_str());
        headers.insert(HEADER_EXPIRES_MS, stored.record.request.expires_ms.to_string().as_str());
        headers.insert(HEADER_ENQUEUED, if stored.enqueued { "true" } else { "false" });
        self.write_key(&record_key(key_hex), headers, payload.into(), expected).await
    }

    async fn put_key(&self, key: &str, headers: HeaderMap, payload: Bytes) -> Result<(), QueueError> {
        self.js
            .publish_with_headers(self.names.approval_key(key), headers, payload)
            .await
            .map_err(|e| unavailable("writing to the approvals bucket", e))?
            .await
            .map_err(|e| unavailable("storing to the approvals bucket", e))
            .map(drop)
    }

    async fn is_tombstoned(&self, bucket: &stream::Stream, id: &str) -> Result<bool, QueueError> {
        Ok(matches!(self.read_key(bucket, &tombstone_key(id)).await?, Slot::Value { .. }))
    }

    /// The record `id` points to: `None` when there is none (or it belongs to another id).
    async fn find(
        &self,
        bucket: &stream::Stream,
        id: &str,
    ) -> Result<Option<(String, u64, StoredApproval)>, QueueError> {
        let Slot::Value { payload, .. } = self.read_key(bucket, &pointer_key(id)).await? else {
            return Ok(None);
        };
        let key_hex = String::from_utf8_lossy(&payload).into_owned();
        if key_hex.is_empty() || !key_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            tracing::warn!(approval_id = id, "ignoring an unreadable approval pointer");
            return Ok(None);
        }
        self.find_by_key(bucket, &key_hex, Some(id)).await
    }

    /// The record under `key_hex`, with its revision; `None` if absent, or if `id` is given
    /// and the record is another request's.
    async fn find_by_key(
        &self,
        bucket: &stream::Stream,
        key_hex: &str,
        id: Option<&str>,
    ) -> Result<Option<(String, u64, StoredApproval)>, QueueError> {
        let Slot::Value { revision, payload } = self.read_key(bucket, &record_key(key_hex)).await? else {
            return Ok(None);
        };
        let stored = decode(&payload)?;
        if id.is_some_and(|id| stored.record.request.id != id) {
            return Ok(None);
        }
        Ok(Some((key_hex.to_owned(), revision, stored)))
    }

    /// The steps of a request, under the caller's deadline.
    async fn store_request(&self, request: &PendingApproval) -> Result<ApprovalRequested, QueueError> {
        let bucket = self.approvals_stream().await?;
        let key_hex = hex_token(&request.job.idempotency_key);
        self.put_key(&pointer_key(&request.id), HeaderMap::new(), Bytes::from(key_hex.clone())).await?;
        let fresh = StoredApproval {
            record: ApprovalRecord {
                request: request.clone(),
                votes: Vec::new(),
                state: ApprovalState::Pending,
                decided_ms: None,
            },
            approved_ns: None,
            enqueued: false,
        };
        let mut expected = 0;
        for _ in 0..MAX_CAS_ROUNDS {
            if let Cas::Written { .. } = self.write_record(&key_hex, &fresh, expected).await? {
                return Ok(ApprovalRequested::Stored);
            }
            match self.read_key(bucket, &record_key(&key_hex)).await? {
                Slot::Empty { revision } => expected = revision,
                Slot::Value { revision, payload } => {
                    let existing = match decode(&payload) {
                        Ok(stored) => stored.record.request.id,
                        Err(e) => {
                            // Replaced: nothing can be done with it, and the new request
                            // must not be refused because of it.
                            tracing::warn!(error.message = %e, "replacing an unreadable approval record");
                            expected = revision;
                            continue;
                        }
                    };
                    if !self.is_tombstoned(bucket, &existing).await? {
                        return Ok(ApprovalRequested::Duplicate { id: existing });
                    }
                    if existing == request.id {
                        // This very request, stored late after an earlier attempt timed
                        // out: it is stored now, so its tombstone goes.
                        let mut headers = HeaderMap::new();
                        headers.insert(HEADER_KV_OPERATION, "PURGE");
                        headers.insert(async_nats::header::NATS_ROLLUP, "sub");
                        self.put_key(&tombstone_key(&existing), headers, Bytes::new()).await?;
                        return Ok(ApprovalRequested::Stored);
                    }
                    // A request whose caller was told "not stored": this one takes its place.
                    expected = revision;
                }
            }
        }
        Err(QueueError::Unavailable("the approval request kept changing under us; try again".into()))
    }

    /// Publishes an approved record's job and marks the record enqueued. The marker is an
    /// optimisation for the sweep: a conflict (another process marked it) or a failure
    /// only means a later sweep publishes it again, into the duplicate window.
    async fn enqueue_approved(
        &self,
        key_hex: &str,
        mut stored: StoredApproval,
        revision: u64,
    ) -> Result<Enqueued, QueueError> {
        let approved_ns = stored
            .approved_ns
            .unwrap_or_else(|| stored.record.decided_ms.map_or(0, |ms| u64::try_from(ms).unwrap_or(0) * 1_000_000));
        let job = approved_job(&stored.record, approved_ns);
        let enqueued = self.publish_job(&job).await?;
        stored.enqueued = true;
        if let Err(e) = self.write_record(key_hex, &stored, revision).await {
            tracing::warn!(
                approval_id = %stored.record.request.id,
                error.message = %e,
                "could not mark an approval's job enqueued; a sweep will find it in the duplicate window"
            );
        }
        Ok(enqueued)
    }

    /// The record subjects' headers: (key hex, state, expires_ms, enqueued); a record whose
    /// headers are missing or unreadable comes with `None` and is read in full.
    async fn record_headers(&self, bucket: &stream::Stream) -> Result<Vec<RecordHeaders>, QueueError> {
        let prefix = self.names.approval_key("r.");
        let mut out = Vec::new();
        scan(
            bucket,
            Scan {
                filter_subject: format!("{prefix}>"),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                headers_only: true,
            },
            |message| {
                let Some(key_hex) = message.subject.as_str().strip_prefix(&prefix).map(str::to_owned) else { return };
                let header =
                    |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
                if header(HEADER_KV_OPERATION).is_some() {
                    return;
                }
                let state = header(HEADER_STATE).and_then(|s| ApprovalState::parse(&s));
                let expires_ms = header(HEADER_EXPIRES_MS).and_then(|v| v.parse().ok());
                let enqueued = header(HEADER_ENQUEUED).is_some_and(|v| v == "true");
                out.push(RecordHeaders { key_hex, summary: state.zip(expires_ms).map(|(s, e)| (s, e, enqueued)) });
            },
        )
        .await?;
        Ok(out)
    }

    /// Expires the record under `key_hex` if it is still pending and due; `Some` if this
    /// call did (and it should be reported).
    async fn expire_one(
        &self,
        bucket: &stream::Stream,
        key_hex: &str,
        now_ms: i64,
    ) -> Result<Option<ApprovalRecord>, QueueError> {
        for _ in 0..MAX_CAS_ROUNDS {
            let Some((_, revision, mut stored)) = self.find_by_key(bucket, key_hex, None).await? else {
                return Ok(None);
            };
            let record = &mut stored.record;
            if record.state != ApprovalState::Pending || record.request.expires_ms >= now_ms {
                return Ok(None);
            }
            expire(record, now_ms);
            match self.write_record(key_hex, &stored, revision).await? {
                Cas::Conflict => continue,
                Cas::Written { .. } => {
                    let id = &stored.record.request.id;
                    // A request its caller was told was not stored: nobody to tell.
                    return Ok((!self.is_tombstoned(bucket, id).await?).then_some(stored.record));
                }
            }
        }
        Err(QueueError::Unavailable("an approval request kept changing during the sweep".into()))
    }
}

struct RecordHeaders {
    key_hex: String,
    /// State, expiry and the enqueue marker; `None` when the headers do not say.
    summary: Option<(ApprovalState, i64, bool)>,
}

#[async_trait]
impl ApprovalStore for NatsQueue {
    async fn request_approval(
        &self,
        request: &PendingApproval,
        deadline: tokio::time::Instant,
    ) -> Result<ApprovalRequested, QueueError> {
        if !is_valid_id(&request.id) {
            return Err(invalid_id_error(&request.id));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(QueueError::NotStoredInTime);
        }
        // As for an enqueue: a buffered publish would be sent after we answered.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(QueueError::Unavailable("not connected to NATS".into()));
        }
        match self.store_by(deadline, self.store_request(request)).await {
            Ok(answer) => Ok(answer),
            Err(e) => {
                // The record may have been sent and be stored late: its tombstone follows
                // it on the same connection.
                let subject = self.names.approval_key(&tombstone_key(&request.id));
                self.write_tombstone(subject, b"not-stored", request.job.correlation_id.as_str()).await;
                Err(e)
            }
        }
    }

    async fn vote(&self, id: &str, vote: &Vote) -> Result<VoteOutcome, QueueError> {
        if !is_valid_id(id) {
            return Ok(VoteOutcome::NotFound);
        }
        let bucket = self.approvals_stream().await?;
        let Some((key_hex, mut revision, mut stored)) = self.find(bucket, id).await? else {
            return Ok(VoteOutcome::NotFound);
        };
        for _ in 0..MAX_CAS_ROUNDS {
            let effect = apply_vote(&mut stored.record, vote);
            if !effect.changes_record() {
                return Ok(effect.outcome(stored.record));
            }
            if effect == VoteEffect::Approved {
                stored.approved_ns = Some(now_unix_ns());
                stored.enqueued = false;
            }
            match self.write_record(&key_hex, &stored, revision).await? {
                Cas::Written { revision } if effect == VoteEffect::Approved => {
                    let record = stored.record.clone();
                    let enqueued = self.enqueue_approved(&key_hex, stored, revision).await.map_err(|e| {
                        tracing::warn!(
                            approval_id = id,
                            error.message = %e,
                            "approved, but the job did not reach the queue yet; the next sweep enqueues it"
                        );
                        e
                    })?;
                    return Ok(VoteOutcome::Approved { record, enqueued });
                }
                Cas::Written { .. } => return Ok(effect.outcome(stored.record)),
                Cas::Conflict => match self.find_by_key(bucket, &key_hex, Some(id)).await? {
                    Some((_, now_revision, now_stored)) => (revision, stored) = (now_revision, now_stored),
                    None => return Ok(VoteOutcome::NotFound),
                },
            }
        }
        Err(QueueError::Unavailable("the approval request kept changing under the vote; try again".into()))
    }

    async fn sweep_approvals(&self, now_ms: i64) -> Result<Swept, QueueError> {
        let bucket = self.approvals_stream().await?;
        let mut swept = Swept::default();
        for header in self.record_headers(bucket).await? {
            let (state, expires_ms, enqueued) = match header.summary {
                Some(summary) => summary,
                None => match self.find_by_key(bucket, &header.key_hex, None).await {
                    Ok(Some((_, _, s))) => (s.record.state, s.record.request.expires_ms, s.enqueued),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error.message = %e, "sweep skipped an unreadable approval record");
                        continue;
                    }
                },
            };
            match state {
                ApprovalState::Pending if expires_ms < now_ms => {
                    match self.expire_one(bucket, &header.key_hex, now_ms).await {
                        Ok(Some(record)) => swept.expired.push(record),
                        Ok(None) => {}
                        Err(e @ QueueError::Corrupt(_)) => {
                            tracing::warn!(error.message = %e, "sweep skipped an unreadable approval record");
                        }
                        Err(e) => return Err(e),
                    }
                }
                ApprovalState::Approved if !enqueued => {
                    let Ok(Some((_, revision, stored))) = self.find_by_key(bucket, &header.key_hex, None).await else {
                        continue;
                    };
                    if stored.record.state != ApprovalState::Approved || stored.enqueued {
                        continue;
                    }
                    let id = stored.record.request.id.clone();
                    match self.enqueue_approved(&header.key_hex, stored, revision).await {
                        Ok(Enqueued::Stored { .. }) => {
                            tracing::info!(approval_id = %id, "enqueued the job of an approval a crash had interrupted");
                            swept.enqueued += 1;
                        }
                        // It had reached the queue; only the marker was missing.
                        Ok(Enqueued::Duplicate) => {}
                        Err(e) => {
                            tracing::warn!(approval_id = %id, error.message = %e, "an approved job still cannot be enqueued");
                        }
                    }
                }
                _ => {}
            }
        }
        swept.expired.sort_by_key(|r| (r.request.expires_ms, r.request.created_ms));
        Ok(swept)
    }

    async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>, QueueError> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let bucket = self.approvals_stream().await?;
        Ok(self.find(bucket, id).await?.map(|(_, _, stored)| stored.record))
    }

    async fn pending_approvals(&self) -> Result<u64, QueueError> {
        let bucket = self.approvals_stream().await?;
        let mut n = 0;
        for header in self.record_headers(bucket).await? {
            let pending = match header.summary {
                Some((state, ..)) => state == ApprovalState::Pending,
                None => matches!(
                    self.find_by_key(bucket, &header.key_hex, None).await,
                    Ok(Some((_, _, s))) if s.record.state == ApprovalState::Pending
                ),
            };
            n += u64::from(pending);
        }
        Ok(n)
    }
}
