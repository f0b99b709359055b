//! The `response_url` client: posts a handler's messages back to Slack.
//!
//! One shared HTTP client (connection pool, connect and overall timeouts, no redirects, so
//! a 30x cannot bounce a post to a host the allow-list would refuse). Each post is retried
//! on 5xx, transport errors and 429 (honouring `Retry-After`) with jittered backoff. A
//! [`Responder`] belongs to one job attempt: it enforces Slack's limit of 5 posts per
//! `response_url` and stamps each post for the E2E breakdown. URLs are logged redacted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatops_core::slack::{ResponseUrl, SlackMessage};
use chatops_core::time::now_unix_ns;

use tracing::Instrument;

use crate::metrics::{Metrics, OutcomeLabels};
use crate::spec::{Backoff, RespondSettings};

/// Why a post to `response_url` failed.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// Retries exhausted on 5xx, 429 or transport errors; trying the job later may help.
    #[error("response_url kept failing after {attempts} tries: {last}")]
    Exhausted { attempts: u32, last: String },
    /// Slack refused the post (4xx other than 429): expired or used URL, bad payload.
    #[error("response_url refused the post with HTTP {status}")]
    Rejected { status: u16 },
    #[error("Slack allows at most {0} posts per response_url")]
    TooManyPosts(u32),
}

impl RespondError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RespondError::Exhausted { .. })
    }
}

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Shared client for all jobs.
#[derive(Clone)]
pub struct ResponseClient {
    http: reqwest::Client,
    settings: RespondSettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ResponseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ResponseClient {
    pub fn new(settings: RespondSettings, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        // reqwest is built without a bundled crypto provider; use ring. Err means one is
        // already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .user_agent(concat!("chatops/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ResponseClient { http, settings, metrics })
    }

    /// A responder for one job attempt.
    pub fn responder(&self, url: ResponseUrl, correlation_id: &chatops_core::CorrelationId) -> Responder {
        Responder {
            client: self.clone(),
            url,
            correlation_id: correlation_id.clone(),
            posts: Arc::new(Mutex::new(Vec::new())),
        }
    }

    async fn post_with_retries(&self, url: &ResponseUrl, body: &[u8]) -> Result<(), RespondError> {
        let result = self.try_post(url, body).await;
        let outcome = match &result {
            Ok(()) => "delivered",
            Err(RespondError::Rejected { .. }) => "rejected",
            Err(_) => "failed",
        };
        self.metrics.response_posts.get_or_create(&OutcomeLabels { outcome }).inc();
        result
    }

    async fn try_post(&self, url: &ResponseUrl, body: &[u8]) -> Result<(), RespondError> {
        let mut last = String::new();
        let attempts = self.settings.max_retries + 1;
        for attempt in 1..=attempts {
            let sent = self
                .http
                .post(url.expose().clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .send()
                .await;
            let wait = match sent {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    last = "HTTP 429".into();
                    retry_after(&resp).unwrap_or_else(|| POST_BACKOFF.delay(attempt))
                }
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("HTTP {}", resp.status().as_u16());
                    POST_BACKOFF.delay(attempt)
                }
                Ok(resp) => return Err(RespondError::Rejected { status: resp.status().as_u16() }),
                Err(e) => {
                    // reqwest's error text includes the URL; keep only the kind.
                    last = transport_error_kind(&e).to_owned();
                    POST_BACKOFF.delay(attempt)
                }
            };
            tracing::warn!(url = %url, attempt, error.message = %last, "response_url post failed");
            if attempt < attempts {
                self.metrics.response_retries.inc();
                tokio::time::sleep(wait).await;
            }
        }
        Err(RespondError::Exhausted { attempts, last })
    }
}

fn transport_error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_request() {
        "request error"
    } else {
        "transport error"
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Between tries of one post: 100 ms, 200 ms, 400 ms ... capped at 5 s, ±50% jitter (a
/// post is retried within the job's attempt, so its waits are short).
const POST_BACKOFF: Backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5), jitter: 0.5 };

/// Posts for one job attempt, with their (start, end) stamps in unix ns.
#[derive(Clone)]
pub struct Responder {
    client: ResponseClient,
    url: ResponseUrl,
    correlation_id: chatops_core::CorrelationId,
    posts: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Responder {
    /// Posts one message. Counts against Slack's limit only when it is delivered.
    pub async fn post(&self, message: &SlackMessage) -> Result<(), RespondError> {
        let max = self.client.settings.max_posts;
        if self.delivered() >= max as usize {
            return Err(RespondError::TooManyPosts(max));
        }
        let body = serde_json::to_vec(message).expect("a SlackMessage always serialises");
        let start = now_unix_ns();
        let span = tracing::info_span!(
            "response_url.post",
            otel.kind = "client",
            correlation_id = %self.correlation_id,
            post = self.delivered() + 1,
        );
        self.client.post_with_retries(&self.url, &body).instrument(span).await?;
        let end = now_unix_ns();
        self.posts.lock().unwrap_or_else(|p| p.into_inner()).push((start, end));
        Ok(())
    }

    /// Number of posts delivered so far.
    pub fn delivered(&self) -> usize {
        self.posts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The delivered posts' stamps, in order.
    pub fn stamps(&self) -> Vec<(u64, u64)> {
        self.posts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn url(&self) -> &ResponseUrl {
        &self.url
    }
}
