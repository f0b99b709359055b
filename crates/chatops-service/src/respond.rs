//! The `response_url` client: posts a handler's messages back to Slack.
//!
//! One shared HTTP client (connection pool, connect and overall timeouts, no redirects, so
//! a 30x cannot bounce a post to a host the allow-list would refuse). Each post is retried
//! on 5xx, transport errors and 429 (honouring `Retry-After`) with jittered backoff. A
//! [`Responder`] belongs to one job attempt: it enforces Slack's limit of 5 posts per
//! `response_url` and stamps each post for the E2E breakdown. URLs are logged redacted.
//!
//! The client also carries the Web API client when a bot token is configured, so that a
//! job's progress ([`crate::progress`]) can post one channel message instead; those posts
//! and edits are stamped with the job's responses too (they are what the user sees).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatops_core::slack::{ResponseUrl, SlackMessage};
use chatops_core::time::now_unix_ns;

use tracing::Instrument;

use crate::metrics::{Metrics, OutcomeLabels};
use crate::slack_api::SlackApi;
use crate::spec::{Backoff, RespondSettings};

/// The HTTP client configuration of every call to Slack (`response_url`, the Web API): the
/// timeouts, keep-alive, our user agent, and no redirects, so a 30x cannot bounce a call to
/// a host the allow-list would refuse.
pub(crate) fn slack_http_client(connect_timeout: Duration, request_timeout: Duration) -> reqwest::ClientBuilder {
    // reqwest is built without a bundled crypto provider; use ring. Err means one is
    // already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("chatops/", env!("CARGO_PKG_VERSION")))
}

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

/// Shared client for all jobs.
#[derive(Clone)]
pub struct ResponseClient {
    http: reqwest::Client,
    settings: RespondSettings,
    metrics: Arc<Metrics>,
    /// Set when a bot token is configured.
    slack_api: Option<SlackApi>,
}

impl std::fmt::Debug for ResponseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseClient")
            .field("settings", &self.settings)
            .field("slack_api", &self.slack_api)
            .finish_non_exhaustive()
    }
}

impl ResponseClient {
    pub fn new(settings: RespondSettings, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = slack_http_client(settings.connect_timeout, settings.request_timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(ResponseClient { http, settings, metrics, slack_api: None })
    }

    /// Gives jobs the Web API client too (for progress in the channel); `None` leaves
    /// everything on `response_url`.
    pub fn with_slack_api(mut self, slack_api: Option<SlackApi>) -> Self {
        self.slack_api = slack_api;
        self
    }

    /// A responder for one job attempt.
    pub fn responder(&self, url: ResponseUrl, correlation_id: &chatops_core::CorrelationId) -> Responder {
        Responder {
            client: self.clone(),
            url,
            correlation_id: correlation_id.clone(),
            posts: Arc::new(Mutex::new(Posts::default())),
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
    crate::slack_api::retry_after(resp.headers().get(reqwest::header::RETRY_AFTER))
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
    posts: Arc<Mutex<Posts>>,
}

/// What the user was shown, in order of delivery.
#[derive(Default)]
struct Posts {
    /// Every delivered post and Web API edit: (start, end).
    stamps: Vec<(u64, u64)>,
    /// How many of them went to `response_url` (Slack's limit counts these).
    to_response_url: usize,
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
        let mut posts = self.posts();
        posts.stamps.push((start, end));
        posts.to_response_url += 1;
        Ok(())
    }

    fn posts(&self) -> std::sync::MutexGuard<'_, Posts> {
        self.posts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of posts delivered to `response_url` so far.
    pub fn delivered(&self) -> usize {
        self.posts().to_response_url
    }

    /// The delivered posts' stamps, in order: `response_url` posts and, for progress in
    /// the channel, the Web API's post and edits of that message.
    pub fn stamps(&self) -> Vec<(u64, u64)> {
        self.posts().stamps.clone()
    }

    /// The Web API client, when a bot token is configured.
    pub fn slack_api(&self) -> Option<&SlackApi> {
        self.client.slack_api.as_ref()
    }

    /// Stamps a message the user saw that did not go through `response_url` (a Web API
    /// post or edit). It does not count against the `response_url` limit.
    pub(crate) fn record_web_api_post(&self, start_ns: u64, end_ns: u64) {
        self.posts().stamps.push((start_ns, end_ns));
    }

    pub fn url(&self) -> &ResponseUrl {
        &self.url
    }
}
