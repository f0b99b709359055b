//! Dead letters on JetStream: a failed job's payload published to `<p>.dlq.<quadrant>` with
//! its last error, attempt count, failure time and effect-started record in headers.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use chatops_core::Quadrant;
use chatops_core::time::now_unix_ns;

use super::effect::{self, HEADER_EFFECT_STARTED};
use super::topology::Names;
use super::unavailable;
use crate::{EffectStarted, QueueError};

pub(super) const HEADER_LAST_ERROR: &str = "Chatops-Last-Error";
pub(super) const HEADER_ATTEMPTS: &str = "Chatops-Attempts";
pub(super) const HEADER_FAILED_AT_MS: &str = "Chatops-Failed-At-Ms";

pub(super) async fn publish_dead_letter(
    js: &jetstream::Context,
    names: &Names,
    quadrant: Quadrant,
    payload: Bytes,
    error: &str,
    attempts: u32,
    effect_started: Option<EffectStarted>,
) -> Result<(), QueueError> {
    let mut headers = HeaderMap::new();
    // Header values cannot carry line breaks.
    headers.insert(HEADER_LAST_ERROR, error.replace(['\r', '\n'], " ").as_str());
    headers.insert(HEADER_ATTEMPTS, attempts.to_string().as_str());
    headers.insert(HEADER_FAILED_AT_MS, ((now_unix_ns() / 1_000_000) as i64).to_string().as_str());
    if let Some(record) = effect_started {
        headers.insert(HEADER_EFFECT_STARTED, effect::encode(record).as_str());
    }
    js.publish_with_headers(names.dlq_subject(quadrant), headers, payload)
        .await
        .map_err(|e| unavailable("publishing a dead letter", e))?
        .await
        .map_err(|e| unavailable("storing a dead letter", e))?;
    Ok(())
}
