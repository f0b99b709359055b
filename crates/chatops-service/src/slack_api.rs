//! Slack's Web API, the three methods the bot calls: `chat.postMessage` and `chat.update`
//! (a long command's progress as one channel message, see [`crate::progress`]) and
//! `usergroups.users.list` (who belongs to a user group). A small typed client on the bot's
//! own reqwest stack; the README's "Progress in the channel" says why not slack-morphism.
//!
//! The bot token travels only in `Authorization: Bearer` (marked sensitive), never in a URL,
//! so neither a URL nor an error text can show it, and [`SlackApi`]'s `Debug` shows only the
//! base URL. Slack answers most errors with HTTP 200 and `{"ok":false,"error":"code"}`: that
//! becomes [`SlackApiError::Slack`] with the code. A 429 waits for `Retry-After` (at most
//! 30 s), and that wait holds back every call of the same method through this client, since
//! Slack limits each method per workspace; 5xx and transport errors back off with jitter.
//! `chat.update` is also paced for the whole client at Slack's published rate for it
//! ([`UPDATES_PER_MINUTE`], Tier 3), so many commands editing their messages at once slow
//! down together instead of running into 429s.
//! `chat.postMessage` is not repeated once a request may have reached Slack without an
//! answer (a timeout), so a message is not posted twice by the client. Answers are read up
//! to [`MAX_ANSWER_BYTES`], so a hostile or broken server cannot make the bot buffer without
//! bound. No redirects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatops_core::slack::SlackMessage;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::spec::{Backoff, SlackApiSettings};

/// Larger answers are refused (and not read further). A `usergroups.users.list` answer of
/// 70 000 members fits.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Longest wait honoured from a `Retry-After` header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Between tries of one call on 5xx and transport errors: 200 ms, 400 ms ... capped at 5 s,
/// ±50% jitter.
const CALL_BACKOFF: Backoff = Backoff { base: Duration::from_millis(200), max: Duration::from_secs(5), jitter: 0.5 };

/// `chat.update` calls per minute through one client (Slack's Tier 3: "50+ per minute"),
/// after a burst of [`UPDATE_BURST`].
pub const UPDATES_PER_MINUTE: u32 = 50;
pub const UPDATE_BURST: u32 = 10;

/// Slack's channel ids, timestamps and user ids are short; longer values in an answer are
/// refused rather than stored and echoed.
const MAX_ID_LEN: usize = 64;

/// A message the bot posted: where, and its timestamp (Slack's id of a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    pub channel: String,
    pub ts: String,
}

/// Why a Web API call failed. Never holds the token, a URL or an answer's raw text.
#[derive(Debug, thiserror::Error)]
pub enum SlackApiError {
    /// Slack answered `ok: false`: `code` is its error code (`channel_not_found`,
    /// `not_in_channel`, `invalid_auth`, ...), or `unrecognised_error` when it sent none or
    /// one that does not look like a code.
    #[error("Slack's {method} refused the call: {code}")]
    Slack { method: &'static str, code: String },
    /// 429, 5xx or transport errors until the retries ran out.
    #[error("Slack's {method} kept failing after {attempts} tries: {last}")]
    Exhausted { method: &'static str, attempts: u32, last: String },
    /// A 4xx other than 429: the call itself is wrong (or the base URL is).
    #[error("Slack's {method} answered HTTP {status}")]
    Rejected { method: &'static str, status: u16 },
    /// The answer was not the method's JSON (too large, not JSON, missing fields).
    #[error("Slack's {method} gave an answer the bot cannot use: {reason}")]
    BadAnswer { method: &'static str, reason: &'static str },
}

impl SlackApiError {
    /// Slack's error code, for `ok: false` answers.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackApiError::Slack { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether a later call may succeed (the service was failing), as opposed to an answer
    /// about this call or this token.
    pub fn is_transient(&self) -> bool {
        matches!(self, SlackApiError::Exhausted { .. })
    }
}

/// The client. Cheap to clone (shared pointers); clones share the connection pool and the
/// rate-limit holds.
#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    api_base: Url,
    token: SecretString,
    max_retries: u32,
    /// Per method: no call before this instant (set by a 429's `Retry-After`).
    holds: Arc<Mutex<HashMap<&'static str, Instant>>>,
    /// Paces `chat.update` for every message together.
    update_pace: Arc<governor::DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("api_base", &self.api_base.as_str())
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// How a method is called.
#[derive(Clone, Copy)]
enum Call<'a> {
    /// POST with a JSON body.
    Json(&'a serde_json::Value),
    /// GET with query parameters (read methods do not take JSON bodies).
    Query(&'a [(&'a str, &'a str)]),
}

/// Whether a call may be sent again when its answer was lost: posting twice makes two
/// messages, editing twice is harmless.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeatable {
    Yes,
    OnlyIfNotSent,
}

impl SlackApi {
    /// The client of `settings`, or `None` when no bot token is configured.
    pub fn from_settings(settings: &SlackApiSettings) -> Result<Option<Self>, reqwest::Error> {
        let Some(token) = &settings.bot_token else { return Ok(None) };
        Self::new(settings, token.clone()).map(Some)
    }

    pub fn new(settings: &SlackApiSettings, token: SecretString) -> Result<Self, reqwest::Error> {
        let http = crate::respond::slack_http_client(settings.connect_timeout, settings.request_timeout).build()?;
        Ok(SlackApi {
            http,
            api_base: settings.api_base.clone(),
            token,
            max_retries: settings.max_retries,
            holds: Arc::default(),
            update_pace: Arc::new(governor::RateLimiter::direct(update_quota())),
        })
    }

    /// `chat.postMessage`: posts `message` (its text and blocks) in `channel`.
    pub async fn post_message(&self, channel: &str, message: &SlackMessage) -> Result<MessageRef, SlackApiError> {
        const METHOD: &str = "chat.postMessage";
        let mut body = serde_json::json!({ "channel": channel, "text": message.text });
        if !message.blocks.is_empty() {
            body["blocks"] = message.blocks.clone().into();
        }
        let answer: PostAnswer = self.call(METHOD, Call::Json(&body), Repeatable::OnlyIfNotSent).await?;
        let bad = |reason| SlackApiError::BadAnswer { method: METHOD, reason };
        let channel = answer.channel.filter(|c| is_plain_id(c)).ok_or(bad("no usable `channel`"))?;
        let ts = answer.ts.filter(|t| is_plain_id(t)).ok_or(bad("no usable `ts`"))?;
        Ok(MessageRef { channel, ts })
    }

    /// `chat.update`: replaces the text and blocks of a message the bot posted. An empty
    /// `blocks` is sent as `[]`, so blocks of an earlier version do not linger.
    pub async fn update_message(&self, at: &MessageRef, message: &SlackMessage) -> Result<(), SlackApiError> {
        const METHOD: &str = "chat.update";
        let body = serde_json::json!({
            "channel": at.channel,
            "ts": at.ts,
            "text": message.text,
            "blocks": message.blocks,
        });
        self.update_pace.until_ready().await;
        let _: OkAnswer = self.call(METHOD, Call::Json(&body), Repeatable::Yes).await?;
        Ok(())
    }

    /// `usergroups.users.list`: the user ids of a user group's members (scope
    /// `usergroups:read`).
    pub async fn usergroup_members(&self, usergroup_id: &str) -> Result<Vec<String>, SlackApiError> {
        const METHOD: &str = "usergroups.users.list";
        let answer: MembersAnswer =
            self.call(METHOD, Call::Query(&[("usergroup", usergroup_id)]), Repeatable::Yes).await?;
        if !answer.users.iter().all(|u| is_plain_id(u)) {
            return Err(SlackApiError::BadAnswer { method: METHOD, reason: "a member id that is not an id" });
        }
        Ok(answer.users)
    }

    fn endpoint(&self, method: &str) -> Url {
        let base = self.api_base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{method}")).expect("a valid base URL followed by a method name is a valid URL")
    }

    fn bearer(&self) -> HeaderValue {
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.token.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }

    /// Waits out the method's hold (a recent 429), then holds it for `wait` from now.
    async fn wait_for_hold(&self, method: &'static str) {
        let until = self.holds.lock().unwrap_or_else(|p| p.into_inner()).get(method).copied();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    fn hold(&self, method: &'static str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut holds = self.holds.lock().unwrap_or_else(|p| p.into_inner());
        let slot = holds.entry(method).or_insert(until);
        *slot = (*slot).max(until);
    }

    /// One call with its retries; the answer's JSON as `T` once `ok` is true.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &'static str,
        call: Call<'_>,
        repeatable: Repeatable,
    ) -> Result<T, SlackApiError> {
        let attempts = self.max_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            self.wait_for_hold(method).await;
            let wait = match self.try_once(method, call).await {
                Ok(bytes) => return parse_answer(method, &bytes),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::RateLimited(retry_after)) => {
                    last = "HTTP 429".into();
                    let wait = retry_after.unwrap_or_else(|| CALL_BACKOFF.delay(attempt));
                    self.hold(method, wait);
                    Duration::ZERO
                }
                Err(Failure::Retry { what, sent }) => {
                    last = what;
                    if sent && repeatable == Repeatable::OnlyIfNotSent {
                        return Err(SlackApiError::Exhausted { method, attempts: attempt, last });
                    }
                    CALL_BACKOFF.delay(attempt)
                }
            };
            tracing::warn!(method, attempt, error.message = %last, "Slack Web API call failed");
            if attempt < attempts {
                tokio::time::sleep(wait).await;
            }
        }
        Err(SlackApiError::Exhausted { method, attempts, last })
    }

    async fn try_once(&self, method: &'static str, call: Call<'_>) -> Result<Vec<u8>, Failure> {
        let mut url = self.endpoint(method);
        let request = match call {
            Call::Json(body) => self
                .http
                .post(url)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(serde_json::to_vec(body).expect("a JSON value always serialises")),
            Call::Query(pairs) => {
                url.query_pairs_mut().extend_pairs(pairs.iter().copied());
                self.http.get(url)
            }
        };
        let response = request
            .header(AUTHORIZATION, self.bearer())
            .send()
            .await
            .map_err(|e| Failure::Retry { what: transport_error_kind(&e).to_owned(), sent: !e.is_connect() })?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::RateLimited(retry_after(response.headers().get(RETRY_AFTER))));
        }
        if status.is_server_error() {
            return Err(Failure::Retry { what: format!("HTTP {}", status.as_u16()), sent: true });
        }
        if !status.is_success() {
            return Err(Failure::Final(SlackApiError::Rejected { method, status: status.as_u16() }));
        }
        read_capped(response, MAX_ANSWER_BYTES).await.map_err(|e| match e {
            ReadError::TooLarge => Failure::Final(SlackApiError::BadAnswer { method, reason: "answer over 1 MiB" }),
            ReadError::Transport(e) => Failure::Retry { what: transport_error_kind(&e).to_owned(), sent: true },
        })
    }
}

fn update_quota() -> governor::Quota {
    let per_minute = std::num::NonZeroU32::new(UPDATES_PER_MINUTE).expect("a positive constant");
    let burst = std::num::NonZeroU32::new(UPDATE_BURST).expect("a positive constant");
    governor::Quota::per_minute(per_minute).allow_burst(burst)
}

/// How one try failed.
enum Failure {
    /// Not worth retrying.
    Final(SlackApiError),
    /// 429, with its `Retry-After` if it had a usable one.
    RateLimited(Option<Duration>),
    /// 5xx or transport: `sent` when the request may have reached Slack.
    Retry { what: String, sent: bool },
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a body, refusing (and not reading further than) `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The answer as `T` when `ok` is true; `ok: false` becomes [`SlackApiError::Slack`].
fn parse_answer<T: for<'de> Deserialize<'de>>(method: &'static str, bytes: &[u8]) -> Result<T, SlackApiError> {
    let bad = |reason| SlackApiError::BadAnswer { method, reason };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
    match value.get("ok").and_then(serde_json::Value::as_bool) {
        Some(true) => T::deserialize(value).map_err(|_| bad("not this method's answer")),
        Some(false) => {
            let code = value.get("error").and_then(serde_json::Value::as_str).filter(|c| is_error_code(c));
            Err(SlackApiError::Slack { method, code: code.unwrap_or("unrecognised_error").to_owned() })
        }
        None => Err(bad("no `ok` field")),
    }
}

/// Slack's error codes are short snake_case words; anything else (which would go into logs
/// and messages) is not taken as one.
fn is_error_code(code: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Channel ids (`C0123ABC`), timestamps (`1712345678.123456`) and user ids (`U0123ABC`).
fn is_plain_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

/// `Retry-After` in seconds (Slack's form), capped at [`MAX_RETRY_AFTER`]; `None` when
/// missing or unreadable (the caller backs off instead).
pub fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn transport_error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "transport error"
    }
}

#[derive(Deserialize)]
struct OkAnswer {}

#[derive(Deserialize)]
struct PostAnswer {
    channel: Option<String>,
    ts: Option<String>,
}

#[derive(Deserialize)]
struct MembersAnswer {
    users: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TOKEN: &str = "xoxb-unit-test-token-5f3a";

    /// One request the fake Slack saw.
    #[derive(Debug, Clone)]
    struct Seen {
        at: std::time::Instant,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: serde_json::Value,
    }

    /// An answer: status, extra header, body; and a delay before it.
    #[derive(Clone)]
    struct Answer {
        status: u16,
        header: Option<(&'static str, &'static str)>,
        body: String,
        delay: Duration,
    }

    fn ok(body: serde_json::Value) -> Answer {
        Answer { status: 200, header: None, body: body.to_string(), delay: Duration::ZERO }
    }

    fn status(status: u16) -> Answer {
        Answer { status, header: None, body: String::new(), delay: Duration::ZERO }
    }

    /// A local server playing Slack's Web API: answers from `answers` in order (the last
    /// one again when they run out), recording every request.
    async fn fake_slack(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let app = axum::Router::new().fallback({
            let seen = seen.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (seen, answers) = (seen.clone(), answers.clone());
                async move {
                    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    seen.lock().unwrap().push(Seen { at: std::time::Instant::now(), method, uri, headers, body });
                    let answer = {
                        let mut answers = answers.lock().unwrap();
                        if answers.len() > 1 { answers.pop_front().unwrap() } else { answers[0].clone() }
                    };
                    tokio::time::sleep(answer.delay).await;
                    let mut response = axum::response::Response::new(axum::body::Body::from(answer.body));
                    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
                    if let Some((name, value)) = answer.header {
                        response.headers_mut().insert(name, HeaderValue::from_static(value));
                    }
                    response
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn settings(base: &str) -> SlackApiSettings {
        SlackApiSettings {
            api_base: Url::parse(base).unwrap(),
            bot_token: Some(SecretString::from(TOKEN)),
            bot_token_warning: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_retries: 2,
        }
    }

    fn client(base: &str) -> SlackApi {
        SlackApi::from_settings(&settings(base)).unwrap().expect("a token is configured")
    }

    #[tokio::test]
    async fn posts_and_updates_a_message_with_the_bearer_token_and_json() {
        let (base, seen) = fake_slack(vec![
            ok(serde_json::json!({"ok": true, "channel": "C0CHAN", "ts": "1712345678.000100"})),
            ok(serde_json::json!({"ok": true, "channel": "C0CHAN", "ts": "1712345678.000100", "text": "x"})),
        ])
        .await;
        let api = client(&base);
        let blocks = vec![chatops_core::slack::message::section_block("*hi*")];
        let at = api.post_message("C0CHAN", &SlackMessage::in_channel("hi").with_blocks(blocks)).await.unwrap();
        assert_eq!(at, MessageRef { channel: "C0CHAN".into(), ts: "1712345678.000100".into() });
        api.update_message(&at, &SlackMessage::in_channel("done")).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for s in seen.iter() {
            assert_eq!(s.method, Method::POST);
            assert_eq!(s.headers["authorization"], format!("Bearer {TOKEN}").as_str());
            assert_eq!(s.headers["content-type"], "application/json; charset=utf-8");
        }
        assert_eq!(seen[0].uri.path(), "/api/chat.postMessage");
        assert_eq!(seen[0].body["channel"], "C0CHAN");
        assert_eq!(seen[0].body["text"], "hi");
        assert_eq!(seen[0].body["blocks"][0]["type"], "section");
        assert!(seen[0].body.get("response_type").is_none(), "the Web API takes no response_type");
        assert_eq!(seen[1].uri.path(), "/api/chat.update");
        assert_eq!((&seen[1].body["ts"], &seen[1].body["text"]), (&"1712345678.000100".into(), &"done".into()));
        assert_eq!(seen[1].body["blocks"], serde_json::json!([]), "earlier blocks are cleared");
    }

    #[tokio::test]
    async fn ok_false_becomes_a_typed_error_carrying_slacks_code_and_is_not_retried() {
        let (base, seen) = fake_slack(vec![ok(serde_json::json!({"ok": false, "error": "channel_not_found"}))]).await;
        let err = client(&base).post_message("C0NOPE", &SlackMessage::in_channel("hi")).await.unwrap_err();
        assert!(
            matches!(&err, SlackApiError::Slack { method: "chat.postMessage", code } if code == "channel_not_found")
        );
        assert_eq!(err.code(), Some("channel_not_found"));
        assert!(!err.is_transient());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn hostile_or_malformed_answers_are_refused_without_echoing_them() {
        let cases = [
            (ok(serde_json::json!({"ok": false, "error": "<!channel>\nxoxb-forged token"})), "unrecognised_error"),
            (ok(serde_json::json!({"ok": false, "error": "x".repeat(500)})), "unrecognised_error"),
            (ok(serde_json::json!({"ok": false})), "unrecognised_error"),
            (ok(serde_json::json!({"ok": true, "channel": "C1"})), "no usable `ts`"),
            (ok(serde_json::json!({"ok": true, "channel": "C1", "ts": "1.2\n<@U1>"})), "no usable `ts`"),
            (ok(serde_json::json!({"ok": true, "channel": "C".repeat(65), "ts": "1.2"})), "no usable `channel`"),
            (ok(serde_json::json!({"okay": true})), "no `ok` field"),
            (ok(serde_json::json!({"ok": "yes"})), "no `ok` field"),
            (Answer { body: "<html>502</html>".into(), ..status(200) }, "not JSON"),
            (Answer { body: String::new(), ..status(200) }, "not JSON"),
        ];
        for (answer, expected) in cases {
            let (base, _) = fake_slack(vec![answer]).await;
            let err = client(&base).post_message("C1", &SlackMessage::in_channel("hi")).await.unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should say {expected}");
            assert!(!err.contains("xoxb") && !err.contains('\n') && !err.contains("<!channel>"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_4xx_is_rejected_at_once_and_a_5xx_is_retried_a_bounded_number_of_times() {
        let (base, seen) = fake_slack(vec![status(404)]).await;
        let err = client(&base)
            .update_message(&MessageRef { channel: "C1".into(), ts: "1.2".into() }, &SlackMessage::in_channel("x"))
            .await;
        assert!(matches!(err, Err(SlackApiError::Rejected { status: 404, .. })), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);

        let (base, seen) = fake_slack(vec![status(503)]).await;
        let err = client(&base).usergroup_members("S1").await.unwrap_err();
        assert!(matches!(&err, SlackApiError::Exhausted { attempts: 3, .. }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(seen.lock().unwrap().len(), 3, "max_retries 2: three tries");
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let header = |v: &'static str| HeaderValue::from_static(v);
        assert_eq!(retry_after(Some(&header("1"))), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(Some(&header(" 7 "))), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some(&header("0"))), Some(Duration::ZERO));
        assert_eq!(retry_after(Some(&header("86400"))), Some(MAX_RETRY_AFTER), "a hostile wait is capped");
        assert_eq!(retry_after(Some(&header("99999999999999999999999"))), None);
        assert_eq!(retry_after(Some(&header("-3"))), None);
        assert_eq!(retry_after(Some(&header("1.5"))), None);
        assert_eq!(retry_after(Some(&header("Wed, 21 Oct 2015 07:28:00 GMT"))), None, "Slack sends seconds");
        assert_eq!(retry_after(None), None);
    }

    #[tokio::test]
    async fn a_429_waits_for_retry_after_and_holds_back_the_same_method() {
        let limited = Answer { header: Some(("retry-after", "1")), ..status(429) };
        let (base, seen) =
            fake_slack(vec![limited, ok(serde_json::json!({"ok": true})), ok(serde_json::json!({"ok": true}))]).await;
        let api = client(&base);
        let at = MessageRef { channel: "C1".into(), ts: "1.2".into() };
        let started = std::time::Instant::now();
        let (a, b) = (SlackMessage::in_channel("a"), SlackMessage::in_channel("b"));
        let (first, second) = tokio::join!(api.update_message(&at, &a), async {
            // Sent after the 429 arrived: it waits for the same hold instead of hammering.
            tokio::time::sleep(Duration::from_millis(300)).await;
            api.update_message(&at, &b).await
        });
        first.unwrap();
        second.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "the 429 and two calls after the hold: {seen:?}");
        for later in &seen[1..] {
            let gap = later.at - seen[0].at;
            assert!(gap >= Duration::from_millis(950), "a call {gap:?} after the 429, inside its Retry-After");
        }
    }

    #[tokio::test]
    async fn a_timed_out_post_is_not_repeated_but_a_timed_out_update_is() {
        let slow = Answer { delay: Duration::from_secs(3), ..ok(serde_json::json!({"ok": true})) };
        let (base, seen) = fake_slack(vec![slow]).await;
        let api = SlackApi::new(
            &SlackApiSettings { request_timeout: Duration::from_millis(200), ..settings(&base) },
            SecretString::from(TOKEN),
        )
        .unwrap();
        let err = api.post_message("C1", &SlackMessage::in_channel("hi")).await.unwrap_err();
        assert!(matches!(&err, SlackApiError::Exhausted { attempts: 1, last, .. } if last == "timeout"), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "a post that may have arrived is not posted again");
        let at = MessageRef { channel: "C1".into(), ts: "1.2".into() };
        assert!(api.update_message(&at, &SlackMessage::in_channel("x")).await.is_err());
        assert_eq!(seen.lock().unwrap().len(), 4, "an edit is tried max_retries + 1 times");
    }

    #[tokio::test]
    async fn usergroup_members_are_read_with_a_get_and_checked() {
        let (base, seen) = fake_slack(vec![
            ok(serde_json::json!({"ok": true, "users": ["U0AAA", "W0BBB"]})),
            ok(serde_json::json!({"ok": true, "users": ["U0AAA", "<!here>"]})),
            ok(serde_json::json!({"ok": true, "users": "U0AAA"})),
        ])
        .await;
        let api = client(&base);
        assert_eq!(api.usergroup_members("S0 G&R").await.unwrap(), ["U0AAA", "W0BBB"]);
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen[0].method, Method::GET);
            assert_eq!(seen[0].uri.path(), "/api/usergroups.users.list");
            assert_eq!(seen[0].uri.query(), Some("usergroup=S0+G%26R"), "the id is one encoded query value");
            assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}").as_str());
        }
        assert!(matches!(api.usergroup_members("S1").await, Err(SlackApiError::BadAnswer { .. })));
        assert!(matches!(api.usergroup_members("S1").await, Err(SlackApiError::BadAnswer { .. })));
    }

    /// A raw server: answers 200 with `head` and then streams `total` bytes of JSON-ish
    /// filler; returns the bytes it managed to write before the client hung up.
    async fn flooding_server(head: &'static str, total: usize) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            socket.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b' '; 64 * 1024];
            let mut written = 0;
            while written < total {
                match tokio::time::timeout(Duration::from_secs(5), socket.write_all(&chunk)).await {
                    Ok(Ok(())) => written += chunk.len(),
                    _ => break,
                }
            }
            written
        });
        (base, task)
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused_without_being_read_whole() {
        let total = 256 * 1024 * 1024;
        let (base, server) = flooding_server(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"ok\":true,\"users\":[",
            total,
        )
        .await;
        let err = client(&base).usergroup_members("S1").await.unwrap_err();
        assert!(err.to_string().contains("over 1 MiB"), "{err}");
        let written = server.await.unwrap();
        assert!(written < total / 4, "the client stopped reading early; the server wrote {written} bytes");

        let (base, _server) = flooding_server(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 999999999\r\n\r\n",
            0,
        )
        .await;
        let err = client(&base).usergroup_members("S1").await.unwrap_err();
        assert!(err.to_string().contains("over 1 MiB"), "a declared length is refused before reading: {err}");
    }

    #[tokio::test]
    async fn the_token_shows_in_no_debug_output_error_or_log_line() {
        let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let logs = logs.clone();
            move || CaptureWriter(logs.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        // Other tests on other threads may have registered this module's
        // callsites while no subscriber wanted them; tracing caches that
        // "never" interest, so recompute it now that ours exists.
        tracing::callsite::rebuild_interest_cache();
        let (base, _) =
            fake_slack(vec![status(500), ok(serde_json::json!({"ok": false, "error": "invalid_auth"}))]).await;
        let api = client(&base);
        let err = api.post_message("C1", &SlackMessage::in_channel("hi")).await.unwrap_err();
        let unreachable = SlackApi::new(&settings("http://127.0.0.1:1/api"), SecretString::from(TOKEN)).unwrap();
        let transport = unreachable.usergroup_members("S1").await.unwrap_err();
        let shown = format!("{api:?} {err} {err:?} {transport} {transport:?} {:?}", settings(&base));
        assert!(!shown.contains(TOKEN), "{shown}");
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("Slack Web API call failed"), "the retries were logged: {logs}");
        assert!(!logs.contains(TOKEN), "{logs}");
    }

    struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for CaptureWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn edits_are_paced_for_the_whole_client_after_a_burst() {
        let (base, seen) = fake_slack(vec![ok(serde_json::json!({"ok": true}))]).await;
        let api = client(&base);
        let started = std::time::Instant::now();
        for i in 0..UPDATE_BURST + 2 {
            // Different messages: the pace is Slack's per-method limit, not per message.
            let at = MessageRef { channel: "C1".into(), ts: format!("1.{i}") };
            api.update_message(&at, &SlackMessage::in_channel("x")).await.unwrap();
        }
        let one = Duration::from_secs(60) / UPDATES_PER_MINUTE;
        assert!(started.elapsed() >= one, "two edits past the burst wait about {one:?}: {:?}", started.elapsed());
        assert_eq!(seen.lock().unwrap().len(), (UPDATE_BURST + 2) as usize);
    }

    #[test]
    fn no_token_means_no_client() {
        let s = SlackApiSettings { bot_token: None, ..settings("https://slack.com/api") };
        assert!(SlackApi::from_settings(&s).unwrap().is_none());
    }

    #[test]
    fn endpoints_follow_the_base_with_or_without_a_trailing_slash() {
        for base in ["https://slack.com/api", "https://slack.com/api/"] {
            assert_eq!(client(base).endpoint("chat.update").as_str(), "https://slack.com/api/chat.update");
        }
    }
}
