//! Effect-started records on JetStream: one message per job and redrive generation on
//! `<p>.started.<redrives>.<idempotency key>` in the done-record stream (one per subject,
//! the same retention), whose payload is `<attempt> <unix ms>`.
//!
//! The redrive generation is in the subject so that a redrive, which republishes the job
//! with `redrives + 1`, finds no record without anything having to be deleted: the old
//! generation's record simply expires with the done retention.

use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};

use crate::{EffectStarted, QueueError};

use super::unavailable;

/// A dead letter's header with the record it had (`<attempt> <unix ms>`), for the operator.
pub(super) const HEADER_EFFECT_STARTED: &str = "Chatops-Effect-Started";

/// The record as text: a message payload, and a dead letter's header value.
pub(super) fn encode(record: EffectStarted) -> String {
    format!("{} {}", record.attempt, record.at_ms)
}

/// An unreadable record still says that an effect started (attempt 0): losing that would
/// be the dangerous mistake.
pub(super) fn decode(payload: &[u8]) -> EffectStarted {
    let text = std::str::from_utf8(payload).unwrap_or_default();
    let mut parts = text.split(' ');
    let attempt = parts.next().and_then(|a| a.parse().ok());
    let at_ms = parts.next().and_then(|t| t.parse().ok());
    match (attempt, at_ms) {
        (Some(attempt), Some(at_ms)) => EffectStarted { attempt, at_ms },
        _ => EffectStarted { attempt: 0, at_ms: 0 },
    }
}

/// Reads the record on `subject`. Unlike the done-record check, a failed lookup is an
/// error, not "no record": guessing "not started" could start an effect twice.
pub(super) async fn lookup(done_stream: &stream::Stream, subject: &str) -> Result<Option<EffectStarted>, QueueError> {
    match done_stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(Some(decode(&message.payload))),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable("reading the effect-started record", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_garbage_still_counts_as_started() {
        let record = EffectStarted { attempt: 3, at_ms: 1_712_345_678_901 };
        assert_eq!(decode(encode(record).as_bytes()), record);
        assert_eq!(decode(b"not a record"), EffectStarted { attempt: 0, at_ms: 0 });
        assert_eq!(decode(b"\xff\xfe"), EffectStarted { attempt: 0, at_ms: 0 });
    }
}
