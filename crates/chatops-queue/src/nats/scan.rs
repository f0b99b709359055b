//! Reading a whole stream (or the part under a subject filter) once: the approvals
//! bucket's records for the sweep and the gauge, the audit trail for a listing.
//!
//! An ephemeral pull consumer without acks is fetched from in no-wait batches until a
//! batch comes back empty, which is exactly "nothing left to deliver" (a push consumer's
//! pending count can go stale when messages age out during the read). The consumer is
//! deleted at the end, and the server removes it anyway once it is idle.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use super::unavailable;
use crate::QueueError;

/// Messages per fetch.
const BATCH: usize = 256;

/// How long one fetch may take before the read counts as failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An abandoned consumer (a crashed reader) is removed by the server after this.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// What to read.
pub(super) struct Scan {
    pub(super) filter_subject: String,
    pub(super) deliver_policy: consumer::DeliverPolicy,
    /// Headers only (with `Nats-Msg-Size`), no payloads.
    pub(super) headers_only: bool,
}

/// Hands every message `scan` selects to `each`, in stream order.
pub(super) async fn scan(
    stream: &stream::Stream,
    scan: Scan,
    mut each: impl FnMut(jetstream::Message),
) -> Result<(), QueueError> {
    let reader = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: scan.filter_subject,
            deliver_policy: scan.deliver_policy,
            headers_only: scan.headers_only,
            ack_policy: consumer::AckPolicy::None,
            replay_policy: consumer::ReplayPolicy::Instant,
            inactive_threshold: INACTIVE_THRESHOLD,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("creating a reader", e))?;
    let name = reader.cached_info().name.clone();
    let read = async {
        loop {
            let mut batch =
                reader.fetch().max_messages(BATCH).messages().await.map_err(|e| unavailable("reading a stream", e))?;
            let mut n = 0usize;
            while let Some(message) = tokio::time::timeout(FETCH_TIMEOUT, batch.next())
                .await
                .map_err(|_| QueueError::Unavailable(format!("a read took over {FETCH_TIMEOUT:?}").into()))?
            {
                each(message.map_err(|e| unavailable("reading a stream", e))?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
        }
    };
    let result = read.await;
    // Best effort: the inactive threshold removes it otherwise.
    let _ = stream.delete_consumer(&name).await;
    result
}
