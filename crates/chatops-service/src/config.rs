//! Configuration of `chatops serve`: the built-in defaults (`config/default.toml`, compiled
//! in), an optional `--config` file, then `CHATOPS_*` environment variables and flags.
//!
//! Files are deserialised into `Raw*` structs whose fields are all optional (so a user file
//! only names what it changes, and an unknown key is an error with its line), merged field
//! by field over the defaults, and converted once into the validated [`Settings`] with typed
//! values. Nothing downstream parses strings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chatops_core::Quadrant;
use chatops_core::slack::AllowedHosts;
use chatops_queue::engine::{DEFAULT_NATS_PREFIX, EngineSettings};
use chatops_queue::nats::NatsAuth;
use chatops_queue::sqlite::Durability;
use secrecy::SecretString;
use serde::Deserialize;

use crate::registry::{CommandSpec, HandlerSpec, RegistryError};

/// The compiled-in defaults; also the reference documentation of every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "no Slack signing secret: set SLACK_SIGNING_SECRET or pass --signing-secret-file FILE \
         (Slack app settings → Basic Information → App Credentials → Signing Secret)"
    )]
    MissingSigningSecret,
}

fn invalid(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.to_string() }
}

/// A duration written as text (`"30s"`, `"5m"`, `"500ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration like \"30s\" or \"5m\": {e}")))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    respond: RawRespond,
    #[serde(default)]
    workers: BTreeMap<String, RawPool>,
    /// When true, the file's `[[commands]]` replace the built-in ones instead of adding to
    /// (and overriding by name) them.
    #[serde(default)]
    replace_builtin_commands: bool,
    #[serde(default)]
    commands: Vec<RawCommand>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    ack_budget: Option<HumanDuration>,
    shutdown_grace: Option<HumanDuration>,
    allow_response_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_concurrent_requests: Option<usize>,
    per_user_per_minute: Option<u32>,
    per_user_burst: Option<u32>,
    max_header_bytes: Option<usize>,
    header_read_timeout: Option<HumanDuration>,
    body_read_timeout: Option<HumanDuration>,
    max_connections: Option<usize>,
    max_unverified_bodies: Option<usize>,
    max_unverified_bodies_per_peer: Option<usize>,
    metrics_listen: Option<String>,
    metrics_on_ingress: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    url: Option<String>,
    nats_prefix: Option<String>,
    duplicate_window: Option<HumanDuration>,
    replicas: Option<usize>,
    durability: Option<String>,
    max_depth: Option<u64>,
    done_retention: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    base_delay: Option<HumanDuration>,
    max_delay: Option<HumanDuration>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRespond {
    connect_timeout: Option<HumanDuration>,
    request_timeout: Option<HumanDuration>,
    max_retries: Option<u32>,
    max_posts: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    concurrency: Option<usize>,
    lease: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommand {
    pub name: String,
    pub quadrant: String,
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub requires_approval: bool,
    #[serde(default)]
    pub description: String,
    pub usage: Option<String>,
    pub handler: String,
    pub max_attempts: Option<u32>,
    /// simulate: total work time.
    pub work: Option<HumanDuration>,
    /// simulate: number of posts.
    pub answers: Option<u32>,
}

/// Values given on the command line or in the environment; they win over files.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub allow_response_hosts: Vec<String>,
    pub durability: Option<Durability>,
    pub signing_secret: Option<SecretString>,
    /// `sqlite://PATH` or `nats://HOST:PORT[,HOST:PORT...]`.
    pub queue_url: Option<String>,
    pub nats_prefix: Option<String>,
    pub nats_auth: NatsAuth,
    pub metrics_listen: Option<SocketAddr>,
}

/// One quadrant's worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub concurrency: usize,
    pub lease: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl RetrySettings {
    /// Delay before attempt `attempt + 1`: exponential, capped, with ±20% jitter so that
    /// jobs failing together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.8 + fastrand::f64() * 0.4)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespondSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub max_posts: u32,
}

/// Abuse resistance of the ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    pub max_concurrent_requests: usize,
    /// 0 disables the per-user rate limit.
    pub per_user_per_minute: u32,
    pub per_user_burst: u32,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Open connections on one listener; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Bodies read at once before their signature could be checked, in total and per
    /// client address.
    pub max_unverified_bodies: usize,
    pub max_unverified_bodies_per_peer: usize,
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve `/metrics` on the Slack-facing listener.
    pub metrics_on_ingress: bool,
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Which engine and how to reach it (built by [`chatops_queue::engine`], the one place a
    /// queue URL is parsed). `startup::open_queue` applies the values below to it again
    /// when it opens the queue, so a caller that changes them after `load` is obeyed.
    pub engine: EngineSettings,
    /// SQLite only; for NATS see the docs on `sync_interval`.
    pub durability: Durability,
    pub max_depth: u64,
    pub done_retention: Duration,
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    /// Required by processes that run the ingress (`serve`, `router`), not by workers.
    pub signing_secret: Option<SecretString>,
    pub allowed_hosts: AllowedHosts,
    pub max_body_bytes: usize,
    pub ack_budget: Duration,
    pub shutdown_grace: Duration,
    pub limits: LimitSettings,
    pub queue: QueueSettings,
    pub retry: RetrySettings,
    pub respond: RespondSettings,
    /// Indexed like [`Quadrant::ALL`].
    pub workers: [PoolSettings; 4],
    pub commands: Vec<CommandSpec>,
}

impl Settings {
    pub fn pool(&self, q: Quadrant) -> PoolSettings {
        self.workers[Quadrant::ALL.iter().position(|&x| x == q).expect("ALL lists every quadrant")]
    }

    /// The highest `max_attempts` of the quadrant's commands: JetStream's `MaxDeliver`.
    pub fn max_attempts_in(&self, q: Quadrant) -> u32 {
        self.commands
            .iter()
            .filter(|c| c.quadrant == q)
            .map(|c| c.max_attempts)
            .max()
            .unwrap_or(self.retry.max_attempts)
    }
}

fn parse_raw(text: &str, origin: &str) -> Result<RawSettings, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_owned(), message: e.to_string() })
}

/// Loads the settings: defaults, then the file, then the overrides.
pub fn load(config_file: Option<&Path>, overrides: Overrides) -> Result<Settings, ConfigError> {
    let defaults = parse_raw(DEFAULT_CONFIG, "<built-in defaults>")?;
    let user = match config_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            parse_raw(&text, &path.display().to_string())?
        }
        None => RawSettings::default(),
    };
    build(defaults, user, overrides)
}

fn build(d: RawSettings, u: RawSettings, o: Overrides) -> Result<Settings, ConfigError> {
    let signing_secret = o.signing_secret;
    let listen = match o.listen {
        Some(addr) => addr,
        None => {
            let raw = u.server.listen.or(d.server.listen).unwrap_or_default();
            raw.parse().map_err(|e| invalid("server.listen", format!("`{raw}`: {e}")))?
        }
    };
    let data_dir = o.data_dir.or(u.server.data_dir).or(d.server.data_dir).unwrap_or_else(|| PathBuf::from("data"));
    let max_body_bytes = u.server.max_body_bytes.or(d.server.max_body_bytes).unwrap_or(16 * 1024);
    if !(256..=1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid("server.max_body_bytes", "must be between 256 and 1048576"));
    }
    let ack_budget = pick(u.server.ack_budget, d.server.ack_budget, "server.ack_budget")?;
    if ack_budget >= Duration::from_secs(3) {
        return Err(invalid("server.ack_budget", "must be under 3s: Slack gives up after 3 seconds"));
    }
    let mut allowed_hosts = AllowedHosts::default();
    let hosts = u.server.allow_response_hosts.or(d.server.allow_response_hosts).unwrap_or_default();
    for host in hosts.iter().chain(&o.allow_response_hosts) {
        allowed_hosts.allow(host).map_err(|e| invalid("server.allow_response_hosts", format!("`{host}`: {e}")))?;
    }
    let durability = match o.durability {
        Some(d) => d,
        None => {
            let raw = u.queue.durability.or(d.queue.durability).unwrap_or_else(|| "full".into());
            raw.parse().map_err(|e| invalid("queue.durability", e))?
        }
    };
    let retry = RetrySettings {
        base_delay: pick(u.retry.base_delay, d.retry.base_delay, "retry.base_delay")?,
        max_delay: pick(u.retry.max_delay, d.retry.max_delay, "retry.max_delay")?,
        max_attempts: u.retry.max_attempts.or(d.retry.max_attempts).unwrap_or(3).max(1),
    };
    let respond = RespondSettings {
        connect_timeout: pick(u.respond.connect_timeout, d.respond.connect_timeout, "respond.connect_timeout")?,
        request_timeout: pick(u.respond.request_timeout, d.respond.request_timeout, "respond.request_timeout")?,
        max_retries: u.respond.max_retries.or(d.respond.max_retries).unwrap_or(3),
        max_posts: u.respond.max_posts.or(d.respond.max_posts).unwrap_or(5).clamp(1, 5),
    };
    for key in u.workers.keys() {
        key.parse::<Quadrant>().map_err(|e| invalid(&format!("workers.{key}"), e))?;
    }
    let mut workers = [PoolSettings { concurrency: 1, lease: Duration::from_secs(30) }; 4];
    for (slot, q) in workers.iter_mut().zip(Quadrant::ALL) {
        let (up, dp) = (
            u.workers.get(q.as_str()).cloned().unwrap_or_default(),
            d.workers.get(q.as_str()).cloned().unwrap_or_default(),
        );
        let key = format!("workers.{q}");
        slot.concurrency = up.concurrency.or(dp.concurrency).unwrap_or(16);
        if !(1..=10_000).contains(&slot.concurrency) {
            return Err(invalid(&format!("{key}.concurrency"), "must be between 1 and 10000"));
        }
        slot.lease = pick(up.lease, dp.lease, &format!("{key}.lease"))?;
        if slot.lease < Duration::from_millis(100) {
            return Err(invalid(&format!("{key}.lease"), "must be at least 100ms"));
        }
    }
    let raw_commands = if u.replace_builtin_commands {
        u.commands
    } else {
        let mut merged: Vec<RawCommand> =
            d.commands.into_iter().filter(|dc| !u.commands.iter().any(|uc| uc.name == dc.name)).collect();
        merged.extend(u.commands);
        merged
    };
    let commands =
        raw_commands.into_iter().map(|c| command_spec(c, retry.max_attempts)).collect::<Result<Vec<_>, _>>()?;
    let max_depth = u.queue.max_depth.or(d.queue.max_depth).unwrap_or(100_000);
    let done_retention = pick(u.queue.done_retention, d.queue.done_retention, "queue.done_retention")?;
    at_least_replay_memory("queue.done_retention", done_retention)?;
    let mut engine = queue_engine(o.queue_url.or(u.queue.url).or(d.queue.url), &data_dir, o.nats_auth)?;
    match &mut engine {
        EngineSettings::Sqlite(sqlite) => {
            sqlite.durability = durability;
            sqlite.max_depth = max_depth;
            sqlite.done_retention = done_retention;
        }
        EngineSettings::Nats(nats) => {
            nats.prefix = o
                .nats_prefix
                .or(u.queue.nats_prefix)
                .or(d.queue.nats_prefix)
                .unwrap_or_else(|| DEFAULT_NATS_PREFIX.into());
            if nats.prefix.is_empty() || !nats.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(invalid("queue.nats_prefix", "letters, digits and _ only"));
            }
            nats.duplicate_window = pick(u.queue.duplicate_window, d.queue.duplicate_window, "queue.duplicate_window")?;
            at_least_replay_memory("queue.duplicate_window", nats.duplicate_window)?;
            nats.replicas = u.queue.replicas.or(d.queue.replicas).unwrap_or(1).clamp(1, 5);
            nats.max_depth = max_depth;
            nats.done_retention = done_retention;
        }
    }
    let metrics_listen = match o.metrics_listen {
        Some(addr) => Some(addr),
        None => match u.limits.metrics_listen.or(d.limits.metrics_listen).filter(|s| !s.is_empty()) {
            Some(raw) => Some(raw.parse().map_err(|e| invalid("limits.metrics_listen", format!("`{raw}`: {e}")))?),
            None => None,
        },
    };
    let limits = LimitSettings {
        max_concurrent_requests: u
            .limits
            .max_concurrent_requests
            .or(d.limits.max_concurrent_requests)
            .unwrap_or(1024)
            .max(1),
        per_user_per_minute: u.limits.per_user_per_minute.or(d.limits.per_user_per_minute).unwrap_or(0),
        per_user_burst: u.limits.per_user_burst.or(d.limits.per_user_burst).unwrap_or(20).max(1),
        max_header_bytes: u
            .limits
            .max_header_bytes
            .or(d.limits.max_header_bytes)
            .unwrap_or(16 * 1024)
            .clamp(8192, 1 << 20),
        header_read_timeout: pick(
            u.limits.header_read_timeout,
            d.limits.header_read_timeout,
            "limits.header_read_timeout",
        )?,
        body_read_timeout: pick(u.limits.body_read_timeout, d.limits.body_read_timeout, "limits.body_read_timeout")?,
        max_connections: at_least_one(u.limits.max_connections.or(d.limits.max_connections), "limits.max_connections")?,
        max_unverified_bodies: at_least_one(
            u.limits.max_unverified_bodies.or(d.limits.max_unverified_bodies),
            "limits.max_unverified_bodies",
        )?,
        max_unverified_bodies_per_peer: at_least_one(
            u.limits.max_unverified_bodies_per_peer.or(d.limits.max_unverified_bodies_per_peer),
            "limits.max_unverified_bodies_per_peer",
        )?,
        metrics_listen,
        metrics_on_ingress: u.limits.metrics_on_ingress.or(d.limits.metrics_on_ingress).unwrap_or(false),
    };
    Ok(Settings {
        listen,
        data_dir,
        log_file: o.log_file,
        signing_secret,
        allowed_hosts,
        max_body_bytes,
        ack_budget,
        limits,
        shutdown_grace: pick(u.server.shutdown_grace, d.server.shutdown_grace, "server.shutdown_grace")?,
        queue: QueueSettings { engine, durability, max_depth, done_retention },
        retry,
        respond,
        workers,
        commands,
    })
}

/// The shortest memory of past requests that still catches every replay: a signed request
/// is accepted for 5 minutes either side of its timestamp, so a replay can arrive up to 10
/// minutes after the original; 15 leaves room for clock skew and a slow first attempt.
pub const MIN_REPLAY_MEMORY: Duration = Duration::from_secs(15 * 60);

fn at_least_replay_memory(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value < MIN_REPLAY_MEMORY {
        return Err(invalid(
            key,
            format!(
                "{} is too short: must be at least 15m, because a signed Slack request can be replayed for \
                 10 minutes and a shorter memory would run the replay as a new job",
                humantime::format_duration(value)
            ),
        ));
    }
    Ok(())
}

/// `sqlite://PATH`, `nats://...`, or nothing (the embedded queue in the data directory).
/// The URL itself is parsed by `chatops_queue::engine`, the one place that knows its forms.
fn queue_engine(url: Option<String>, data_dir: &Path, auth: NatsAuth) -> Result<EngineSettings, ConfigError> {
    match url.as_deref() {
        None | Some("") => Ok(EngineSettings::sqlite_in(data_dir)),
        Some(u) => EngineSettings::from_url(u, auth).map_err(|e| invalid("queue.url", e)),
    }
}

fn at_least_one(value: Option<usize>, key: &str) -> Result<usize, ConfigError> {
    match value {
        None => Err(invalid(key, "missing (and no built-in default)")),
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(n) => Ok(n),
    }
}

fn pick(user: Option<HumanDuration>, default: Option<HumanDuration>, key: &str) -> Result<Duration, ConfigError> {
    user.or(default).map(|d| d.0).ok_or_else(|| invalid(key, "missing (and no built-in default)"))
}

fn command_spec(c: RawCommand, default_attempts: u32) -> Result<CommandSpec, ConfigError> {
    let key = format!("commands[{}]", c.name);
    if !chatops_core::slack::command::is_valid_command_name(&c.name) {
        return Err(invalid(&key, "name must look like /deploy (letters, digits, -, _ or . after the slash)"));
    }
    let quadrant = c.quadrant.parse::<Quadrant>().map_err(|e| invalid(&format!("{key}.quadrant"), e))?;
    let handler = match c.handler.as_str() {
        "simulate" => HandlerSpec::Simulate {
            work: c.work.map(|d| d.0).unwrap_or(Duration::from_secs(1)),
            answers: c.answers.unwrap_or(2).clamp(1, 5),
        },
        other => {
            if c.work.is_some() || c.answers.is_some() {
                return Err(invalid(
                    &key,
                    format!("`work` and `answers` apply to the simulate handler, not `{other}`"),
                ));
            }
            HandlerSpec::Kind(other.to_owned())
        }
    };
    Ok(CommandSpec {
        name: c.name,
        quadrant,
        timeout: c.timeout.map(|d| d.0).unwrap_or(if quadrant.is_long() {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(30)
        }),
        requires_approval: c.requires_approval,
        description: c.description,
        usage: c.usage,
        handler,
        max_attempts: c.max_attempts.unwrap_or(default_attempts).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Overrides {
        Overrides { signing_secret: Some(SecretString::from("s3cret")), ..Default::default() }
    }

    fn load_str(text: &str, o: Overrides) -> Result<Settings, ConfigError> {
        build(parse_raw(DEFAULT_CONFIG, "defaults").unwrap(), parse_raw(text, "test.toml")?, o)
    }

    #[test]
    fn built_in_defaults_are_valid() {
        let s = load(None, secret()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(s.max_body_bytes, 16 * 1024);
        assert_eq!(s.queue.durability, Durability::Full);
        for name in ["/echo", "/help", "/check-status", "/status", "/deploy", "/build", "/report"] {
            assert!(s.commands.iter().any(|c| c.name == name), "{name} missing from defaults");
        }
        let deploy = s.commands.iter().find(|c| c.name == "/deploy").unwrap();
        assert_eq!(deploy.quadrant, Quadrant::LongWrite);
        assert!(matches!(deploy.handler, HandlerSpec::Simulate { .. }));
    }

    #[test]
    fn queue_url_selects_the_engine() {
        let s = load_str("", secret()).unwrap();
        assert!(matches!(&s.queue.engine, EngineSettings::Sqlite(q) if q.path.ends_with("data/queue.db")));
        let nats = Overrides { queue_url: Some("nats://a:4222,b:4223".into()), ..secret() };
        let EngineSettings::Nats(n) = load_str("", nats).unwrap().queue.engine else { panic!("not nats") };
        assert_eq!(n.servers, ["nats://a:4222", "nats://b:4223"]);
        assert_eq!(n.prefix, "CHATOPS");
        let file = load_str("[queue]\nurl = \"sqlite:///tmp/q.db\"", secret()).unwrap();
        assert!(matches!(&file.queue.engine, EngineSettings::Sqlite(q) if q.path == Path::new("/tmp/q.db")));
        for bad in ["redis://x", "sqlite://", "nats://"] {
            let o = Overrides { queue_url: Some(bad.into()), ..secret() };
            assert!(load_str("", o).unwrap_err().to_string().contains("queue.url"), "{bad}");
        }
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let text =
            "[server]\nlisten = \"127.0.0.1:4000\"\ndata_dir = \"/tmp/x\"\n[workers.long-write]\nconcurrency = 3\n";
        let s = load_str(text, secret()).unwrap();
        assert_eq!(s.listen.port(), 4000);
        assert_eq!(s.pool(Quadrant::LongWrite).concurrency, 3);
        assert_eq!(s.pool(Quadrant::LongWrite).lease, Duration::from_secs(60), "unset keys keep defaults");
        let flags = Overrides { listen: Some("127.0.0.1:5000".parse().unwrap()), ..secret() };
        assert_eq!(load_str(text, flags).unwrap().listen.port(), 5000);
    }

    #[test]
    fn user_commands_add_to_and_override_builtins() {
        let text = r#"
[[commands]]
name = "/echo"
quadrant = "short-write"
handler = "echo"

[[commands]]
name = "/rollback"
quadrant = "long-write"
handler = "simulate"
work = "1s"
answers = 2
requires_approval = true
"#;
        let s = load_str(text, secret()).unwrap();
        assert_eq!(s.commands.iter().find(|c| c.name == "/echo").unwrap().quadrant, Quadrant::ShortWrite);
        assert!(s.commands.iter().any(|c| c.name == "/rollback" && c.requires_approval));
        assert!(s.commands.iter().any(|c| c.name == "/deploy"));
        let only = load_str(&format!("replace_builtin_commands = true\n{text}"), secret()).unwrap();
        assert_eq!(only.commands.len(), 2);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = load_str("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n", secret()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("listen_port") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[server]\nack_budget = \"5s\"", "server.ack_budget"),
            ("[server]\nack_budget = \"soon\"", "not a duration"),
            ("[queue]\ndurability = \"maybe\"", "queue.durability"),
            ("[workers.medium]\nconcurrency = 1", "workers.medium"),
            ("[workers.short-read]\nconcurrency = 0", "concurrency"),
            ("[server]\nallow_response_hosts = [\"not a host\"]", "allow_response_hosts"),
            ("[[commands]]\nname = \"deploy\"\nquadrant = \"long-write\"\nhandler = \"simulate\"", "commands[deploy]"),
            ("[[commands]]\nname = \"/x\"\nquadrant = \"sideways\"\nhandler = \"echo\"", "quadrant"),
            ("[[commands]]\nname = \"/x\"\nquadrant = \"short-read\"\nhandler = \"echo\"\nwork = \"1s\"", "simulate"),
        ];
        for (text, needle) in cases {
            let err = load_str(text, secret()).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}, expected it to mention {needle:?}");
        }
    }

    #[test]
    fn replay_memories_shorter_than_fifteen_minutes_are_refused() {
        let nats = || Overrides { queue_url: Some("nats://127.0.0.1:4222".into()), ..secret() };
        let err = load_str("[queue]\ndone_retention = \"10m\"", secret()).unwrap_err().to_string();
        assert!(err.contains("queue.done_retention") && err.contains("15m"), "{err}");
        let err = load_str("[queue]\ndone_retention = \"14m 59s\"", nats()).unwrap_err().to_string();
        assert!(err.contains("queue.done_retention"), "{err}");
        let err = load_str("[queue]\nduplicate_window = \"10m\"", nats()).unwrap_err().to_string();
        assert!(err.contains("queue.duplicate_window") && err.contains("15m"), "{err}");
        let ok = load_str("[queue]\nduplicate_window = \"15m\"\ndone_retention = \"15m\"", nats()).unwrap();
        let EngineSettings::Nats(n) = ok.queue.engine else { panic!("not nats") };
        assert_eq!(n.duplicate_window, MIN_REPLAY_MEMORY);
        assert_eq!(n.done_retention, MIN_REPLAY_MEMORY);
        assert!(load(None, nats()).is_ok(), "the built-in defaults pass the rule");
    }

    #[test]
    fn nats_userinfo_becomes_authentication() {
        let o = Overrides { queue_url: Some("nats://ops:hunter2@10.0.0.1:4222".into()), ..secret() };
        let s = load_str("", o).unwrap();
        let shown = s.queue.engine.to_string();
        let EngineSettings::Nats(n) = s.queue.engine else { panic!("not nats") };
        assert_eq!(n.servers, ["nats://10.0.0.1:4222"]);
        assert_eq!((n.auth.user.as_deref(), n.auth.password.as_deref()), (Some("ops"), Some("hunter2")));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r =
            RetrySettings { base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(10), max_attempts: 5 };
        let first = r.backoff(1);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200), "{first:?}");
        let third = r.backoff(3);
        assert!(third >= Duration::from_millis(3200) && third <= Duration::from_millis(4800), "{third:?}");
        assert!(r.backoff(30) <= Duration::from_secs(12));
    }
}
