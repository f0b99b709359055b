//! Slack request signing (v0): computing a signature, as Slack and our load generator do,
//! and verifying one, as the router does before it parses anything.
//!
//! The signature is `v0=` + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + raw body)).
//! Verification works on the raw bytes, compares in constant time (via `Mac::verify_slice`)
//! and rejects timestamps outside a replay window around "now".

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Header that carries the request timestamp (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Header that carries `v0=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Slack's replay window: requests whose timestamp is further than this from now are refused.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;

/// Why a request's signature was refused. Every variant maps to HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("X-Slack-Request-Timestamp is not a unix timestamp in seconds")]
    MalformedTimestamp,
    #[error("request timestamp is more than {0} s in the past (possible replay)")]
    StaleTimestamp(u64),
    #[error("request timestamp is more than {0} s in the future")]
    FutureTimestamp(u64),
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("X-Slack-Signature is not of the form v0=<64 hex digits>")]
    MalformedSignature,
    #[error("signature does not match the request body")]
    BadSignature,
}

impl VerifyError {
    /// A short, stable label for logs and metrics (`errorType`).
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingTimestamp => "missing_timestamp",
            VerifyError::MalformedTimestamp => "malformed_timestamp",
            VerifyError::StaleTimestamp(_) => "stale_timestamp",
            VerifyError::FutureTimestamp(_) => "future_timestamp",
            VerifyError::MissingSignature => "missing_signature",
            VerifyError::MalformedSignature => "malformed_signature",
            VerifyError::BadSignature => "bad_signature",
        }
    }
}

/// Signs and verifies Slack requests with one signing secret.
///
/// The secret is kept only as a prepared HMAC key, and `Debug` never shows it.
#[derive(Clone)]
pub struct SlackSigner {
    mac: HmacSha256,
    max_skew_secs: u64,
}

impl std::fmt::Debug for SlackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSigner")
            .field("secret", &"[redacted]")
            .field("max_skew_secs", &self.max_skew_secs)
            .finish()
    }
}

impl SlackSigner {
    pub fn new(secret: &[u8]) -> Self {
        SlackSigner {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        }
    }

    /// Changes the replay window (default 300 s).
    pub fn with_max_skew_secs(mut self, secs: u64) -> Self {
        self.max_skew_secs = secs;
        self
    }

    fn mac_for(&self, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac
    }

    /// Returns `v0=<hex>` for the timestamp (unix seconds, as sent in the header) and body.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let tag = self.mac_for(timestamp, body).finalize().into_bytes();
        let mut out = String::with_capacity(3 + 64);
        out.push_str("v0=");
        out.push_str(&hex::encode(tag));
        out
    }

    /// Verifies the two header values against the raw body, with `now_unix_secs` as the clock.
    ///
    /// Order matters: the timestamp is checked before the HMAC so that a replayed request is
    /// refused even when its signature is valid.
    pub fn verify(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now_unix_secs: u64,
    ) -> Result<Verified, VerifyError> {
        self.check_headers(timestamp, signature, now_unix_secs)?.verify_body(self, body)
    }

    /// The checks that need no body: a fresh timestamp and a well-formed signature. The
    /// router runs them before it spends anything on reading the body.
    pub fn check_headers<'h>(
        &self,
        timestamp: Option<&'h [u8]>,
        signature: Option<&[u8]>,
        now_unix_secs: u64,
    ) -> Result<SignedHeaders<'h>, VerifyError> {
        let timestamp = timestamp.ok_or(VerifyError::MissingTimestamp)?;
        let timestamp = std::str::from_utf8(timestamp).map_err(|_| VerifyError::MalformedTimestamp)?;
        let ts = parse_unix_secs(timestamp).ok_or(VerifyError::MalformedTimestamp)?;
        if now_unix_secs > ts && now_unix_secs - ts > self.max_skew_secs {
            return Err(VerifyError::StaleTimestamp(self.max_skew_secs));
        }
        if ts > now_unix_secs && ts - now_unix_secs > self.max_skew_secs {
            return Err(VerifyError::FutureTimestamp(self.max_skew_secs));
        }
        let signature = signature.ok_or(VerifyError::MissingSignature)?;
        let hex_part = signature.strip_prefix(b"v0=").ok_or(VerifyError::MalformedSignature)?;
        let mut tag = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut tag).map_err(|_| VerifyError::MalformedSignature)?;
        Ok(SignedHeaders { timestamp, tag })
    }
}

/// Signature headers that passed [`SlackSigner::check_headers`]: fresh and well formed,
/// not yet checked against a body.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'h> {
    timestamp: &'h str,
    tag: [u8; 32],
}

impl SignedHeaders<'_> {
    /// Checks the HMAC over the raw body, in constant time.
    pub fn verify_body(self, signer: &SlackSigner, body: &[u8]) -> Result<Verified, VerifyError> {
        signer.mac_for(self.timestamp, body).verify_slice(&self.tag).map_err(|_| VerifyError::BadSignature)?;
        let timestamp = self.timestamp.parse().map_err(|_| VerifyError::MalformedTimestamp)?;
        Ok(Verified { timestamp, tag: self.tag })
    }
}

/// What a verified request was signed with: its timestamp and the decoded MAC bytes.
///
/// Anything derived from a request's signature (the idempotency key) is built from this,
/// never from the header text: hex is case-insensitive, so `v0=ABCD…` and `v0=abcd…` are
/// the same signature and must be the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: u64,
    pub tag: [u8; 32],
}

/// Parses a positive decimal number of seconds, refusing signs, spaces and absurd lengths.
fn parse_unix_secs(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from Slack's "Verifying requests from Slack" documentation.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn signer() -> SlackSigner {
        SlackSigner::new(DOC_SECRET.as_bytes())
    }

    #[test]
    fn signs_slack_documentation_example() {
        assert_eq!(signer().sign(DOC_TS, DOC_BODY.as_bytes()), DOC_SIG);
    }

    #[test]
    fn accepts_slack_documentation_example() {
        let now = 1531420618 + 10;
        let r = signer().verify(Some(DOC_TS.as_bytes()), Some(DOC_SIG.as_bytes()), DOC_BODY.as_bytes(), now);
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn rejects_tampered_body() {
        let body = DOC_BODY.replace("roadrunner", "coyote");
        let r = signer().verify(Some(DOC_TS.as_bytes()), Some(DOC_SIG.as_bytes()), body.as_bytes(), 1531420618);
        assert_eq!(r, Err(VerifyError::BadSignature));
    }

    #[test]
    fn rejects_request_with_stale_timestamp() {
        let now = 1531420618 + 301;
        let r = signer().verify(Some(DOC_TS.as_bytes()), Some(DOC_SIG.as_bytes()), DOC_BODY.as_bytes(), now);
        assert_eq!(r, Err(VerifyError::StaleTimestamp(300)));
    }

    #[test]
    fn rejects_request_from_the_future() {
        let now = 1531420618 - 301;
        let r = signer().verify(Some(DOC_TS.as_bytes()), Some(DOC_SIG.as_bytes()), DOC_BODY.as_bytes(), now);
        assert_eq!(r, Err(VerifyError::FutureTimestamp(300)));
    }

    #[test]
    fn accepts_edges_of_the_window() {
        let s = signer();
        let ok = |now| s.verify(Some(DOC_TS.as_bytes()), Some(DOC_SIG.as_bytes()), DOC_BODY.as_bytes(), now);
        assert!(ok(1531420618 + 300).is_ok());
        assert!(ok(1531420618 - 300).is_ok());
    }

    #[test]
    fn rejects_malformed_headers() {
        let s = signer();
        let body = DOC_BODY.as_bytes();
        let now = 1531420618;
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, VerifyError);
        let cases: &[Case<'_>] = &[
            (None, Some(DOC_SIG.as_bytes()), VerifyError::MissingTimestamp),
            (Some(b"-1531420618"), Some(DOC_SIG.as_bytes()), VerifyError::MalformedTimestamp),
            (Some(b" 1531420618"), Some(DOC_SIG.as_bytes()), VerifyError::MalformedTimestamp),
            (Some(b"1531420618.5"), Some(DOC_SIG.as_bytes()), VerifyError::MalformedTimestamp),
            (Some(b"99999999999999999999"), Some(DOC_SIG.as_bytes()), VerifyError::MalformedTimestamp),
            (Some(b"\xff\xfe"), Some(DOC_SIG.as_bytes()), VerifyError::MalformedTimestamp),
            (Some(DOC_TS.as_bytes()), None, VerifyError::MissingSignature),
            (Some(DOC_TS.as_bytes()), Some(b"v1=a2114d57"), VerifyError::MalformedSignature),
            (Some(DOC_TS.as_bytes()), Some(b"v0=zz"), VerifyError::MalformedSignature),
            (Some(DOC_TS.as_bytes()), Some(&DOC_SIG.as_bytes()[..60]), VerifyError::MalformedSignature),
        ];
        for (ts, sig, want) in cases {
            assert_eq!(s.verify(*ts, *sig, body, now).err(), Some(*want), "ts={ts:?} sig={sig:?}");
        }
    }

    #[test]
    fn the_case_of_the_hex_digits_does_not_change_what_was_verified() {
        let s = signer();
        let now = 1531420618;
        let upper = format!("v0={}", DOC_SIG[3..].to_ascii_uppercase());
        let mixed: String = DOC_SIG
            .char_indices()
            .map(|(i, c)| if i >= 3 && i % 2 == 0 { c.to_ascii_uppercase() } else { c })
            .collect();
        let verify = |sig: &str| s.verify(Some(DOC_TS.as_bytes()), Some(sig.as_bytes()), DOC_BODY.as_bytes(), now);
        let original = verify(DOC_SIG).unwrap();
        assert_eq!(verify(&upper).unwrap(), original);
        assert_eq!(verify(&mixed).unwrap(), original);
        assert_eq!(original.timestamp, 1531420618);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", signer());
        assert!(!shown.contains(DOC_SECRET));
        assert!(shown.contains("redacted"));
    }
}
