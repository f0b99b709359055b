//! The `webhook` runner: one HTTP request (with retries) to a configured URL, and the
//! GitHub Actions presets built on it.
//!
//! Guarantees:
//! - **The host comes from the configuration only.** Placeholders are allowed only in the
//!   URL's path and query; scheme, host and port are literal and must be on the spec's
//!   `allow_hosts`. Values are percent-encoded (everything but `A-Z a-z 0-9 - . _ ~`), so
//!   `evil.com/x`, `@evil` or `?a=b` stay inside their segment, and the rendered URL is
//!   parsed again and checked: same origin, an allowed host, no user info, and no path or
//!   query the URL parser would rewrite (a value of `..` is refused, not normalised away).
//! - **No redirects** are followed (a 30x is a failure), so a redirect cannot move the
//!   request to another host.
//! - **JSON body** string leaves are templates; values are inserted as JSON strings by
//!   serde_json, so a value can never break out of its string.
//! - **Retries** on 5xx, timeouts and connection errors, with exponential backoff and
//!   jitter; a 4xx fails at once with the status and GitHub-style `message` (or a bounded
//!   snippet of the body).
//! - **Secrets** (header values) are read when the command runs, marked sensitive in the
//!   request, and never part of an error or a log line; transport errors are reported by
//!   kind only, because their text contains the URL.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::template::{Template, TemplateError, TemplateNames, TemplateValues};
use super::{SecretError, SecretRef, deserialize_duration};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How much of a non-JSON error body is quoted in a failure.
const ERROR_SNIPPET_CHARS: usize = 300;

/// A `webhook` command as written in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// `https://host/path/{arg}?q={arg}`: placeholders only after the host.
    pub url: String,
    /// Hosts the URL may name (exact, case-insensitive). Required: there is no default.
    pub allow_hosts: Vec<String>,
    #[serde(default = "default_method")]
    pub method: String,
    /// Header values: a template string, or a secret `{ file = "..." | env = "...", prefix = "Bearer " }`.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSpec>,
    /// A JSON value whose string leaves are templates. No body when absent.
    #[serde(default)]
    pub body: Option<Value>,
    /// Statuses that mean success; empty means any 2xx.
    #[serde(default)]
    pub success_status: Vec<u16>,
    /// Per attempt, connect to last byte (default 10 s).
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// Extra attempts after the first on 5xx, timeouts, connection errors (default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff; doubled each retry, capped at 30 s, with jitter (default 500 ms).
    #[serde(default = "default_retry_backoff", deserialize_with = "deserialize_duration")]
    pub retry_backoff: Duration,
    /// The response body is read up to this many bytes (default 256 KiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}
fn default_retry_backoff() -> Duration {
    DEFAULT_RETRY_BACKOFF
}
fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// One header's value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HeaderSpec {
    /// A template (`"{correlation_id}"`) or a plain value.
    Value(String),
    /// A secret, read when the command runs, with an optional prefix (`"Bearer "`).
    Secret(SecretHeader),
}

/// `{ file = "/run/secrets/token", prefix = "Bearer " }` or `{ env = "TOKEN" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSecretHeader")]
pub struct SecretHeader {
    pub secret: SecretRef,
    pub prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretHeader {
    file: Option<std::path::PathBuf>,
    env: Option<String>,
    #[serde(default)]
    prefix: String,
}

impl TryFrom<RawSecretHeader> for SecretHeader {
    type Error = String;

    fn try_from(raw: RawSecretHeader) -> Result<Self, String> {
        let secret = match (raw.file, raw.env) {
            (Some(file), None) => SecretRef::File(file),
            (None, Some(env)) if super::valid_env_name(&env) => SecretRef::Env(env),
            _ => return Err("a secret header is `{ file = \"...\" }` or `{ env = \"VAR\" }` (plus `prefix`)".into()),
        };
        Ok(SecretHeader { secret, prefix: raw.prefix })
    }
}

/// A configuration mistake in a `webhook` spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook: `url` `{0}` is not an absolute http(s) URL")]
    BadUrl(String),
    #[error(
        "webhook: `url` `{0}`: placeholders are allowed only in the path and the query, never in the scheme, host or port"
    )]
    TemplateInOrigin(String),
    #[error("webhook: `url` `{0}` has user info or a fragment; neither is allowed")]
    UserInfoOrFragment(String),
    #[error("webhook: `url` `{url}`: `{character}` must be percent-encoded in the configured text")]
    UnsafeCharacter { url: String, character: char },
    #[error("webhook: the host `{host}` is not in `allow_hosts` ({allowed})")]
    HostNotAllowed { host: String, allowed: String },
    #[error("webhook: `method` `{0}` is not an HTTP method")]
    BadMethod(String),
    #[error("webhook: `{0}` is not a valid header name")]
    BadHeaderName(String),
    #[error("webhook: header `{0}`: a value that is not a template must be valid header text")]
    BadHeaderValue(String),
    #[error("webhook: `success_status` {0} is not an HTTP status")]
    BadStatus(u16),
    #[error("webhook: `timeout` must be more than zero")]
    ZeroTimeout,
    #[error("webhook: {0}")]
    Template(#[from] TemplateError),
    #[error("webhook: the HTTP client could not be built: {0}")]
    Client(String),
}

/// Body templates: the JSON shape with string leaves parsed.
#[derive(Debug, Clone)]
enum JsonTemplate {
    Literal(Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    fn compile(value: &Value, names: &TemplateNames) -> Result<JsonTemplate, TemplateError> {
        Ok(match value {
            Value::String(text) => JsonTemplate::String(Template::parse_checked(text, names)?),
            Value::Array(items) => {
                JsonTemplate::Array(items.iter().map(|v| JsonTemplate::compile(v, names)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), JsonTemplate::compile(v, names)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    fn render(&self, values: &TemplateValues) -> Value {
        match self {
            JsonTemplate::Literal(value) => value.clone(),
            JsonTemplate::String(template) => Value::String(template.render(values)),
            JsonTemplate::Array(items) => Value::Array(items.iter().map(|t| t.render(values)).collect()),
            JsonTemplate::Object(fields) => {
                Value::Object(fields.iter().map(|(k, t)| (k.clone(), t.render(values))).collect())
            }
        }
    }
}

#[derive(Debug, Clone)]
enum CompiledHeader {
    Template(Template),
    Secret(SecretHeader),
}

/// A checked `webhook` spec with its HTTP client, ready to run any number of times.
#[derive(Debug, Clone)]
pub struct WebhookPlan {
    origin: url::Url,
    path: Template,
    query: Option<Template>,
    allow_hosts: Vec<String>,
    method: reqwest::Method,
    headers: Vec<(HeaderName, CompiledHeader)>,
    body: Option<JsonTemplate>,
    success_status: Vec<u16>,
    timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    max_response_bytes: usize,
    client: reqwest::Client,
}

/// A request that ended with a success status.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOutcome {
    pub status: u16,
    /// The response body if it is JSON (and within `max_response_bytes`).
    pub body_json: Option<Value>,
    /// 1 when the first attempt succeeded.
    pub attempts: u32,
    pub duration: Duration,
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No request left the bot: the effect has certainly not started.
    #[error("the request was not sent: {0}")]
    NotSent(#[source] NotSent),
    /// A 4xx: the API refused; retrying would not help.
    #[error("HTTP {status}: {message}")]
    Rejected { status: u16, message: String, attempts: u32 },
    /// A status that is neither success, 4xx nor 5xx (a redirect, say).
    #[error("unexpected HTTP {status}: {message}")]
    UnexpectedStatus { status: u16, message: String, attempts: u32 },
    /// Every attempt failed with a 5xx, a timeout or a transport error.
    #[error("failed after {attempts} attempts, last: {last}")]
    Exhausted { attempts: u32, last: String, status: Option<u16>, sent: bool },
}

/// The reasons for [`WebhookError::NotSent`].
#[derive(Debug, thiserror::Error)]
pub enum NotSent {
    #[error("header `{header}`: {source}")]
    Secret { header: String, source: SecretError },
    #[error("header `{0}`: the rendered value is not valid header text")]
    HeaderValue(String),
    #[error("the rendered URL was refused: {0}")]
    Url(String),
}

/// What a caller branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookErrorKind {
    NotSent,
    Rejected,
    Failed,
}

impl WebhookError {
    pub fn kind(&self) -> WebhookErrorKind {
        match self {
            WebhookError::NotSent(_) => WebhookErrorKind::NotSent,
            WebhookError::Rejected { .. } => WebhookErrorKind::Rejected,
            WebhookError::UnexpectedStatus { .. } | WebhookError::Exhausted { .. } => WebhookErrorKind::Failed,
        }
    }

    /// False only when no request reached the network (or every attempt failed to
    /// connect): then the effect certainly did not start.
    pub fn may_have_started(&self) -> bool {
        match self {
            WebhookError::NotSent(_) => false,
            WebhookError::Exhausted { sent, .. } => *sent,
            WebhookError::Rejected { .. } | WebhookError::UnexpectedStatus { .. } => true,
        }
    }

    /// The HTTP status of the last answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            WebhookError::Rejected { status, .. } | WebhookError::UnexpectedStatus { status, .. } => Some(*status),
            WebhookError::Exhausted { status, .. } => *status,
            WebhookError::NotSent(_) => None,
        }
    }
}

impl WebhookSpec {
    /// A spec with defaults: POST `url`, any 2xx, 10 s, 2 retries.
    pub fn new(url: impl Into<String>, allow_hosts: Vec<String>) -> WebhookSpec {
        WebhookSpec {
            url: url.into(),
            allow_hosts,
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            success_status: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Checks the spec, parses its templates against the command's names and builds the
    /// HTTP client.
    pub fn compile(&self, names: &TemplateNames) -> Result<WebhookPlan, WebhookConfigError> {
        let url_text = self.url.as_str();
        let bad_url = || WebhookConfigError::BadUrl(url_text.to_owned());
        let after_scheme = url_text.find("://").ok_or_else(bad_url)? + 3;
        let origin_end = url_text[after_scheme..].find(['/', '?', '#']).map_or(url_text.len(), |i| after_scheme + i);
        let (origin_text, rest) = url_text.split_at(origin_end);
        if origin_text.contains(['{', '}']) {
            return Err(WebhookConfigError::TemplateInOrigin(url_text.to_owned()));
        }
        if origin_text.contains('@') || rest.contains('#') {
            return Err(WebhookConfigError::UserInfoOrFragment(url_text.to_owned()));
        }
        // Characters the URL parser would re-encode would make the "nothing was rewritten"
        // check at run time fail; refuse them here, where the mistake is made.
        if let Some(character) = rest.chars().find(|&c| !is_url_safe_literal(c)) {
            return Err(WebhookConfigError::UnsafeCharacter { url: url_text.to_owned(), character });
        }
        let origin = url::Url::parse(origin_text).map_err(|_| bad_url())?;
        if !matches!(origin.scheme(), "http" | "https") || origin.host_str().is_none() {
            return Err(bad_url());
        }
        let allow_hosts: Vec<String> = self.allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        check_host(&origin, &allow_hosts)?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let path = Template::parse_checked(path, names)?;
        let query = query.map(|q| Template::parse_checked(q, names)).transpose()?;

        let method = reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| WebhookConfigError::BadMethod(self.method.clone()))?;
        let mut headers = Vec::new();
        for (name, spec) in &self.headers {
            let header_name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| WebhookConfigError::BadHeaderName(name.clone()))?;
            let compiled = match spec {
                HeaderSpec::Value(text) => {
                    let template = Template::parse_checked(text, names)?;
                    if template.is_literal() && HeaderValue::from_str(&template.render(&TemplateValues::new())).is_err()
                    {
                        return Err(WebhookConfigError::BadHeaderValue(name.clone()));
                    }
                    CompiledHeader::Template(template)
                }
                HeaderSpec::Secret(secret) => CompiledHeader::Secret(secret.clone()),
            };
            headers.push((header_name, compiled));
        }
        let body = self.body.as_ref().map(|b| JsonTemplate::compile(b, names)).transpose()?;
        if let Some(&status) = self.success_status.iter().find(|&&s| !(100..=599).contains(&s)) {
            return Err(WebhookConfigError::BadStatus(status));
        }
        if self.timeout.is_zero() {
            return Err(WebhookConfigError::ZeroTimeout);
        }
        // reqwest is built without a bundled crypto provider; use ring. Err means one is
        // already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookConfigError::Client(e.to_string()))?;
        Ok(WebhookPlan {
            origin,
            path,
            query,
            allow_hosts,
            method,
            headers,
            body,
            success_status: self.success_status.clone(),
            timeout: self.timeout,
            retries: self.retries,
            retry_backoff: self.retry_backoff,
            max_response_bytes: self.max_response_bytes,
            client,
        })
    }
}

fn check_host(url: &url::Url, allow_hosts: &[String]) -> Result<(), WebhookConfigError> {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    if allow_hosts.contains(&host) {
        Ok(())
    } else {
        Err(WebhookConfigError::HostNotAllowed { host, allowed: allow_hosts.join(", ") })
    }
}

/// Characters a configured path or query may hold literally: RFC 3986 unreserved,
/// sub-delims, `:` `@` `/` `?` `%`, and the template braces.
fn is_url_safe_literal(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%{}".contains(c)
}

/// Percent-encodes everything but the unreserved characters, so a value stays inside its
/// path segment or query component whatever it holds.
fn encode_component(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

impl WebhookPlan {
    /// The URL this plan would call with `values`, after every check. Exactly what
    /// [`WebhookPlan::run`] requests.
    pub fn url(&self, values: &TemplateValues) -> Result<url::Url, NotSent> {
        let path = self.path.render_with(values, encode_component);
        let query = self.query.as_ref().map(|q| q.render_with(values, encode_component));
        let mut text = self.origin.origin().ascii_serialization();
        text.push_str(&path);
        if let Some(query) = &query {
            text.push('?');
            text.push_str(query);
        }
        let url = url::Url::parse(&text).map_err(|e| NotSent::Url(format!("not a URL: {e}")))?;
        // Checked again after rendering: nothing a value holds may change where it goes.
        if url.origin() != self.origin.origin() || !url.username().is_empty() || url.password().is_some() {
            return Err(NotSent::Url("the rendered URL names another origin".into()));
        }
        check_host(&url, &self.allow_hosts).map_err(|e| NotSent::Url(e.to_string()))?;
        if url.path() != path || url.query() != query.as_deref() {
            return Err(NotSent::Url(
                "a value would change the URL's path when normalised (such as `.` or `..`)".into(),
            ));
        }
        Ok(url)
    }

    /// The JSON body this plan would send with `values`.
    pub fn body(&self, values: &TemplateValues) -> Option<Value> {
        self.body.as_ref().map(|b| b.render(values))
    }

    fn headers(&self, values: &TemplateValues) -> Result<HeaderMap, NotSent> {
        let mut map = HeaderMap::new();
        for (name, header) in &self.headers {
            let value = match header {
                CompiledHeader::Template(template) => HeaderValue::from_str(&template.render(values))
                    .map_err(|_| NotSent::HeaderValue(name.to_string()))?,
                CompiledHeader::Secret(secret) => {
                    let value =
                        secret.secret.read().map_err(|source| NotSent::Secret { header: name.to_string(), source })?;
                    let mut value = HeaderValue::from_str(&format!("{}{}", secret.prefix, value.expose_secret()))
                        .map_err(|_| NotSent::HeaderValue(name.to_string()))?;
                    // Keeps it out of hyper's and reqwest's Debug output.
                    value.set_sensitive(true);
                    value
                }
            };
            map.insert(name.clone(), value);
        }
        Ok(map)
    }

    /// Sends the request, retrying as configured.
    pub async fn run(&self, values: &TemplateValues) -> Result<WebhookOutcome, WebhookError> {
        let url = self.url(values).map_err(WebhookError::NotSent)?;
        let headers = self.headers(values).map_err(WebhookError::NotSent)?;
        let body = self.body(values).map(|b| b.to_string());
        let started = Instant::now();
        let attempts_allowed = self.retries.saturating_add(1);
        let mut sent = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.client.request(self.method.clone(), url.clone()).headers(headers.clone());
            if let Some(body) = &body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let result = tokio::time::timeout(self.timeout, async {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let body = read_bounded(response, self.max_response_bytes).await;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await;
            let (last, status) = match result {
                Ok(Ok((status, body))) => {
                    sent = true;
                    let json = serde_json::from_slice::<Value>(&body).ok();
                    if self.is_success(status) {
                        return Ok(WebhookOutcome {
                            status,
                            body_json: json,
                            attempts: attempt,
                            duration: started.elapsed(),
                        });
                    }
                    let message = error_message(json.as_ref(), &body);
                    match status {
                        400..=499 => return Err(WebhookError::Rejected { status, message, attempts: attempt }),
                        500..=599 => (format!("HTTP {status}: {message}"), Some(status)),
                        _ => return Err(WebhookError::UnexpectedStatus { status, message, attempts: attempt }),
                    }
                }
                Ok(Err(error)) => {
                    // Only a failed connect proves the request never left; anything later
                    // (a reset mid-body, a broken answer) may have reached the server.
                    sent |= !error.is_connect();
                    (transport_error_kind(&error).to_owned(), None)
                }
                Err(_elapsed) => {
                    sent = true;
                    (format!("no answer within {:?}", self.timeout), None)
                }
            };
            if attempt >= attempts_allowed {
                return Err(WebhookError::Exhausted { attempts: attempt, last, status, sent });
            }
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }

    fn is_success(&self, status: u16) -> bool {
        if self.success_status.is_empty() {
            (200..=299).contains(&status)
        } else {
            self.success_status.contains(&status)
        }
    }

    /// `retry_backoff * 2^(attempt-1)`, capped, then a random half to all of it, so
    /// retries from many jobs spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.retry_backoff.saturating_mul(1u32 << (attempt - 1).min(16)).min(MAX_BACKOFF);
        exponential.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Reads at most `limit` bytes of the body (more is dropped, memory stays bounded).
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// GitHub's (and most APIs') `message`, else the start of the body, one line.
fn error_message(json: Option<&Value>, body: &[u8]) -> String {
    if let Some(message) = json.and_then(|j| j.get("message")).and_then(Value::as_str) {
        return message.chars().take(ERROR_SNIPPET_CHARS).collect();
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_SNIPPET_CHARS)
        .collect();
    let text = text.trim();
    if text.is_empty() { "(empty body)".to_owned() } else { text.to_owned() }
}

/// A transport error by kind: its `Display` contains the URL.
fn transport_error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    }
}

// ---------------------------------------------------------------------------------------
// GitHub presets

/// The public GitHub API.
pub const GITHUB_API: &str = "https://api.github.com";

/// Where a GitHub preset sends its request, and with which token. Both presets' TOML
/// tables hold these keys next to their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubTarget {
    /// Default `https://api.github.com`; GitHub Enterprise: `https://HOST/api/v3`.
    pub api_base: String,
    /// The repository's owner and name: literals or templates (a value is encoded into
    /// its path segment and can never change the host).
    pub owner: String,
    pub repo: String,
    /// The token: `{ file = "..." }` or `{ env = "GITHUB_TOKEN" }`.
    pub token: SecretRef,
    pub timeout: Duration,
    pub retries: u32,
}

fn default_api_base() -> String {
    GITHUB_API.to_owned()
}

/// `github-workflow`: a `workflow_dispatch` of one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubWorkflow {
    #[serde(default = "default_api_base")]
    pub api_base: String,
    pub owner: String,
    pub repo: String,
    pub token: SecretRef,
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The workflow's file name (`deploy.yml`) or id.
    pub workflow: String,
    /// The branch or tag to run on (a template).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The workflow's inputs (templates).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

/// `github-repository-dispatch`: a `repository_dispatch` event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRepositoryDispatch {
    #[serde(default = "default_api_base")]
    pub api_base: String,
    pub owner: String,
    pub repo: String,
    pub token: SecretRef,
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The event type the workflow's `on: repository_dispatch: types:` lists (a template).
    pub event_type: String,
    /// Any JSON; string leaves are templates.
    #[serde(default)]
    pub client_payload: Option<Value>,
}

impl GithubTarget {
    fn spec(&self, path_after_repo: &str, body: Value) -> WebhookSpec {
        let base = self.api_base.trim_end_matches('/');
        let url = format!("{base}/repos/{}/{}/{path_after_repo}", self.owner, self.repo);
        let host = url::Url::parse(base).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        let mut spec = WebhookSpec::new(url, host.into_iter().collect());
        spec.headers.insert(
            "Authorization".into(),
            HeaderSpec::Secret(SecretHeader { secret: self.token.clone(), prefix: "Bearer ".into() }),
        );
        spec.headers.insert("Accept".into(), HeaderSpec::Value("application/vnd.github+json".into()));
        spec.headers.insert("X-GitHub-Api-Version".into(), HeaderSpec::Value("2022-11-28".into()));
        spec.headers.insert("User-Agent".into(), HeaderSpec::Value("chatops".into()));
        spec.body = Some(body);
        // Both dispatch endpoints answer 204 No Content on success.
        spec.success_status = vec![204];
        spec.timeout = self.timeout;
        spec.retries = self.retries;
        spec
    }

    /// The repository's Actions page, as a template (owner and repo may be templates):
    /// `https://github.com/{owner}/{repo}/actions` for the public API; for GitHub
    /// Enterprise the API base's `/api/v3` suffix is dropped (`https://HOST/api/v3` →
    /// `https://HOST`); any other base (a test server) is used as it is.
    pub fn actions_url_template(&self) -> String {
        let base = self.api_base.trim_end_matches('/');
        let html = if base.eq_ignore_ascii_case(GITHUB_API) {
            "https://github.com"
        } else {
            base.strip_suffix("/api/v3").unwrap_or(base)
        };
        format!("{html}/{}/{}/actions", self.owner, self.repo)
    }

    /// [`GithubTarget::actions_url_template`] rendered with `values` (encoded).
    pub fn actions_url(&self, values: &TemplateValues) -> String {
        match Template::parse(&self.actions_url_template()) {
            Ok(template) => template.render_with(values, encode_component),
            Err(_) => self.actions_url_template(),
        }
    }
}

impl GithubWorkflow {
    /// `POST {api_base}/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`
    /// with `{"ref": ..., "inputs": {...}}`.
    pub fn spec(&self) -> WebhookSpec {
        let inputs = self.inputs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let body = serde_json::json!({ "ref": self.git_ref, "inputs": Value::Object(inputs) });
        self.target().spec(&format!("actions/workflows/{}/dispatches", self.workflow), body)
    }

    pub fn target(&self) -> GithubTarget {
        GithubTarget {
            api_base: self.api_base.clone(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            token: self.token.clone(),
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}

impl GithubRepositoryDispatch {
    /// `POST {api_base}/repos/{owner}/{repo}/dispatches` with
    /// `{"event_type": ..., "client_payload": {...}}`.
    pub fn spec(&self) -> WebhookSpec {
        let payload = self.client_payload.clone().unwrap_or_else(|| Value::Object(Default::default()));
        let body = serde_json::json!({ "event_type": self.event_type, "client_payload": payload });
        self.target().spec("dispatches", body)
    }

    pub fn target(&self) -> GithubTarget {
        GithubTarget {
            api_base: self.api_base.clone(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            token: self.token.clone(),
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> TemplateNames {
        TemplateNames::with_args(["owner", "service", "env"])
    }

    fn values(pairs: &[(&str, &str)]) -> TemplateValues {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn placeholders_in_the_origin_are_configuration_errors() {
        for url in ["https://{owner}.example.com/x", "https://api.example.com:{env}/x", "{service}://h/x"] {
            let err = WebhookSpec::new(url, vec!["api.example.com".into()]).compile(&names()).unwrap_err();
            assert!(
                matches!(err, WebhookConfigError::TemplateInOrigin(_) | WebhookConfigError::BadUrl(_)),
                "{url}: {err}"
            );
        }
        let err = WebhookSpec::new("https://other.example.com/x", vec!["api.example.com".into()])
            .compile(&names())
            .unwrap_err();
        assert!(matches!(err, WebhookConfigError::HostNotAllowed { .. }), "{err}");
        let err = WebhookSpec::new("https://u@api.example.com/x", vec!["api.example.com".into()])
            .compile(&names())
            .unwrap_err();
        assert!(matches!(err, WebhookConfigError::UserInfoOrFragment(_)), "{err}");
    }

    #[test]
    fn values_stay_inside_their_segment_and_dot_segments_are_refused() {
        let plan =
            WebhookSpec::new("https://api.example.com/repos/{owner}/x?env={env}", vec!["API.example.com".into()])
                .compile(&names())
                .unwrap();
        let url = plan.url(&values(&[("owner", "evil.com/x@y:1"), ("env", "a&b=c#d")])).unwrap();
        assert_eq!(url.host_str(), Some("api.example.com"));
        assert_eq!(url.path(), "/repos/evil.com%2Fx%40y%3A1/x");
        assert_eq!(url.query(), Some("env=a%26b%3Dc%23d"));
        for dots in ["..", "."] {
            let err = plan.url(&values(&[("owner", dots), ("env", "")])).unwrap_err();
            assert!(matches!(err, NotSent::Url(_)), "{dots}: {err}");
        }
    }

    #[test]
    fn presets_build_githubs_requests() {
        let target = GithubTarget {
            api_base: "https://ghe.example.com/api/v3/".into(),
            owner: "acme".into(),
            repo: "{service}".into(),
            token: SecretRef::Env("GH_TOKEN".into()),
            timeout: DEFAULT_TIMEOUT,
            retries: 1,
        };
        let workflow: GithubWorkflow = toml::from_str(
            r#"
            api_base = "https://ghe.example.com/api/v3/"
            owner = "acme"
            repo = "{service}"
            token = { env = "GH_TOKEN" }
            retries = 1
            workflow = "deploy.yml"
            ref = "main"
            inputs = { env = "{env}" }
            "#,
        )
        .unwrap();
        assert_eq!(workflow.target(), target);
        let plan = workflow.spec().compile(&names()).unwrap();
        let v = values(&[("service", "web"), ("env", "production")]);
        assert_eq!(
            plan.url(&v).unwrap().as_str(),
            "https://ghe.example.com/api/v3/repos/acme/web/actions/workflows/deploy.yml/dispatches"
        );
        assert_eq!(plan.body(&v).unwrap(), serde_json::json!({"ref": "main", "inputs": {"env": "production"}}));
        assert_eq!(target.actions_url(&v), "https://ghe.example.com/acme/web/actions");
        let public = GithubTarget { api_base: GITHUB_API.into(), ..target };
        assert_eq!(public.actions_url(&v), "https://github.com/acme/web/actions");
    }

    #[test]
    fn spec_parses_from_toml_with_secret_headers() {
        let spec: WebhookSpec = toml::from_str(
            r#"
            url = "https://hooks.example.com/run/{service}"
            allow_hosts = ["hooks.example.com"]
            headers = { Authorization = { env = "HOOK_TOKEN", prefix = "Bearer " }, "X-Request-Id" = "{correlation_id}" }
            body = { service = "{service}", count = 3, nested = ["{env}"] }
            success_status = [200, 202]
            timeout = "5s"
            "#,
        )
        .unwrap();
        assert!(matches!(spec.headers["Authorization"], HeaderSpec::Secret(_)));
        let plan = spec.compile(&names()).unwrap();
        let body = plan.body(&values(&[("service", "a\"}b"), ("env", "x")])).unwrap();
        assert_eq!(body, serde_json::json!({"service": "a\"}b", "count": 3, "nested": ["x"]}));
        assert!(toml::from_str::<WebhookSpec>("url = \"https://h/x\"\nallow_hosts = []\nfollow = true").is_err());
    }
}
