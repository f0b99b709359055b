//! Correlation ids: the one key that joins a command's router line, worker lines, response
//! posts, queue records and the load generator's client record.

use serde::{Deserialize, Serialize};

/// Longest id accepted from an `X-Request-Id` header.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// A correlation id: either taken from a well-formed `X-Request-Id` or a fresh UUIDv7, which
/// sorts by creation time and never collides the way Slack's one-second timestamps do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        CorrelationId(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts 1..=128 characters of `[A-Za-z0-9._:-]`, so that an id can go into a log
    /// line, a header or a NATS header without escaping.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_CORRELATION_ID_LEN
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| CorrelationId(raw.to_owned()))
    }

    /// Takes the header value when it is well formed, otherwise generates an id.
    pub fn from_header_or_generate(header: Option<&[u8]>) -> Self {
        header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(CorrelationId::parse)
            .unwrap_or_else(CorrelationId::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_time_ordered() {
        let ids: Vec<_> = (0..1000).map(|_| CorrelationId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert_eq!(sorted, ids, "UUIDv7 ids generated in sequence sort in sequence");
    }

    #[test]
    fn accepts_well_formed_header() {
        let id = CorrelationId::from_header_or_generate(Some(b"req-42.a_b:c"));
        assert_eq!(id.as_str(), "req-42.a_b:c");
    }

    #[test]
    fn replaces_hostile_or_oversized_header() {
        for bad in [&b""[..], b"a b", b"x\r\nSet-Cookie: y", b"\xff", b"{\"json\":1}", &[b'a'; 129][..]] {
            let id = CorrelationId::from_header_or_generate(Some(bad));
            assert_ne!(id.as_str().as_bytes(), bad);
            assert_eq!(id.as_str().len(), 36, "a generated UUID replaces {bad:?}");
        }
    }
}
