//! The shapes everything else agrees on: what a command is ([`CommandSpec`], [`HandlerSpec`]),
//! the settings handlers and workers need ([`PoolSettings`], [`RetrySettings`],
//! [`RespondSettings`], [`SlackApiSettings`]) and the one exponential [`Backoff`].
//!
//! This module is a leaf: it imports nothing from the crate, so `config` (which fills these
//! in), `registry` (which checks them), the handlers (which read them) and the worker (which
//! acts on them) all point at it and never at each other in a circle.

use std::time::Duration;

use chatops_core::Quadrant;
use chatops_core::slack::ResponseType;
use secrecy::SecretString;

/// How a command is handled: a handler kind and that kind's parameters, straight from the
/// command's `params` table in the configuration (read them with
/// [`crate::handler::HandlerContext::params`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSpec {
    /// `echo`, `help`, `check-status`, `simulate`, or a kind registered from Rust (a command
    /// registered with `App::builder().command(name, ..)` is its own kind, named `name`).
    pub kind: String,
    pub params: toml::Table,
}

impl HandlerSpec {
    /// A kind without parameters.
    pub fn new(kind: impl Into<String>) -> Self {
        HandlerSpec { kind: kind.into(), params: toml::Table::new() }
    }

    /// Sets one parameter (builder style, for code and tests).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<toml::Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
}

/// One registered command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    /// With the slash: `/deploy`.
    pub name: String,
    pub quadrant: Quadrant,
    /// The handler is stopped after this long; the attempt counts as failed.
    pub timeout: Duration,
    /// `Some` when the command runs only after approvals (`requires_approval = true`).
    pub approval: Option<ApprovalRule>,
    /// Who may run it where; `None`: the `[access]` rule shared by all commands.
    pub access: Option<AccessRule>,
    pub description: String,
    pub usage: Option<String>,
    /// Declared arguments, checked at the router before anything is enqueued.
    pub args: chatops_core::args::ArgSpecs,
    pub handler: HandlerSpec,
    /// Deliveries before the job goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Run the command's external effect again when a redelivery finds that an earlier
    /// attempt started it and never finished (a crash). Off: the user is told the outcome
    /// is unknown instead.
    pub rerun_interrupted: bool,
    /// Who sees the command's messages: `Ephemeral` (only the user who ran it, the
    /// default) or `InChannel` (everyone in the channel, and with a bot token its progress
    /// is one channel message updated in place). Applied to every message the handler posts
    /// through its context.
    pub visibility: ResponseType,
}

impl CommandSpec {
    /// A command with the quadrant's default timeout, no arguments, no guardrails beyond
    /// the shared ones, and 3 attempts (builder-style code and tests change the rest).
    pub fn new(name: impl Into<String>, quadrant: Quadrant, handler: HandlerSpec) -> Self {
        CommandSpec {
            name: name.into(),
            quadrant,
            timeout: default_timeout(quadrant),
            approval: None,
            access: None,
            description: String::new(),
            usage: None,
            args: Default::default(),
            handler,
            max_attempts: 3,
            rerun_interrupted: false,
            visibility: chatops_core::slack::ResponseType::Ephemeral,
        }
    }

    pub fn requires_approval(&self) -> bool {
        self.approval.is_some()
    }
}

/// Who may run a command, and where. An empty list does not restrict; when neither `users`
/// nor `usergroups` names anyone, `[access] default` decides who may.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// Slack user ids (`U…`, `W…`).
    pub users: Vec<String>,
    /// Slack user group ids (`S…`), resolved through the Web API.
    pub usergroups: Vec<String>,
    /// Channel ids (`C…`, `G…`, `D…`).
    pub channels: Vec<String>,
    /// Workspace (`T…`) or Enterprise Grid organisation (`E…`) ids.
    pub teams: Vec<String>,
}

impl AccessRule {
    /// Whether the rule says who may run the command (otherwise the default does).
    pub fn names_people(&self) -> bool {
        !self.users.is_empty() || !self.usergroups.is_empty()
    }
}

/// What a command that needs approval requires before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// Slack user ids who may approve.
    pub approvers: Vec<String>,
    /// User groups whose members may approve.
    pub usergroups: Vec<String>,
    /// Approvals needed (at least 1).
    pub required: u32,
    /// Whether the requester may approve their own request.
    pub allow_self: bool,
    /// How long a request stays open.
    pub expires_after: Duration,
}

/// A duration written as text (`"30s"`, `"5m"`, `"500ms"`): the one parser of durations in
/// the configuration and in handler parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        chatops_core::time::parse_duration(&s).map(HumanDuration).map_err(serde::de::Error::custom)
    }
}

/// The timeout of a command that does not set one: long quadrants get minutes, short ones
/// seconds. One function, so a config entry and a command registered from code agree.
pub fn default_timeout(quadrant: Quadrant) -> Duration {
    if quadrant.is_long() { Duration::from_secs(300) } else { Duration::from_secs(30) }
}

/// One quadrant's worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub concurrency: usize,
    pub lease: Duration,
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`, then scaled by
/// a random factor in `1 ± jitter` so that work failing together does not retry together.
/// The one implementation: job retries and `response_url` retries both use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Fraction of the delay, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1-based; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        // 2^20 times any sane base is already past any sane cap; the shift must not overflow.
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let jitter = self.jitter.clamp(0.0, 1.0);
        exp.min(self.max).mul_f64(1.0 - jitter + fastrand::f64() * 2.0 * jitter)
    }
}

/// How failed job attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl RetrySettings {
    /// Jitter of job retries: ±20%.
    pub const JITTER: f64 = 0.2;

    /// Delay before attempt `attempt + 1`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff { base: self.base_delay, max: self.max_delay, jitter: Self::JITTER }.delay(attempt)
    }
}

/// The `response_url` client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespondSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub max_posts: u32,
}

/// Slack's Web API client (`[slack]`), used for progress messages in the channel. Without
/// a bot token the bot never calls it.
#[derive(Debug, Clone)]
pub struct SlackApiSettings {
    /// `https://slack.com/api` (tests point it at a local server over plain http, which
    /// only loopback hosts may use).
    pub api_base: url::Url,
    /// A bot token (`xoxb-...`): `slack.bot_token_file` or `CHATOPS_SLACK_BOT_TOKEN`.
    /// `SecretString` keeps it out of `Debug` output.
    pub bot_token: Option<SecretString>,
    /// Set when the token file can be read by group or others: logged at startup.
    pub bot_token_warning: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries of one call on 429 (after `Retry-After`), 5xx and transport errors.
    pub max_retries: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, low_ms: u64, high_ms: u64) -> bool {
        d >= Duration::from_millis(low_ms) && d <= Duration::from_millis(high_ms)
    }

    #[test]
    fn backoff_doubles_from_base_is_capped_and_jittered_within_bounds() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5), jitter: 0.5 };
        for _ in 0..200 {
            assert!(within(b.delay(0), 50, 150), "attempt 0 counts as the first");
            assert!(within(b.delay(1), 50, 150));
            assert!(within(b.delay(3), 200, 600));
            assert!(within(b.delay(40), 2500, 7500), "capped at 5 s before jitter, no overflow");
        }
        let exact = Backoff { jitter: 0.0, ..b };
        assert_eq!(exact.delay(2), Duration::from_millis(200));
        let wild = Backoff { jitter: 7.0, ..b };
        assert!(wild.delay(1) <= Duration::from_millis(200), "jitter is clamped to 100%");
    }

    #[test]
    fn job_retries_use_the_backoff_with_twenty_percent_jitter() {
        let r =
            RetrySettings { base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(10), max_attempts: 5 };
        for _ in 0..200 {
            assert!(within(r.backoff(1), 800, 1200));
            assert!(within(r.backoff(3), 3200, 4800));
            assert!(r.backoff(30) <= Duration::from_secs(12));
        }
    }

    #[test]
    fn default_timeouts_follow_the_quadrant() {
        assert_eq!(default_timeout(Quadrant::ShortRead), Duration::from_secs(30));
        assert_eq!(default_timeout(Quadrant::LongWrite), Duration::from_secs(300));
    }
}
