//! Configuration of `chatops serve`: the built-in defaults (`config/default.toml`, compiled
//! in), an optional `--config` file, then `CHATOPS_*` environment variables and flags.
//!
//! Configuration is merged as data: the user's TOML table is deep-merged over the defaults'
//! table, the result is deserialised once into `File*` structs that have no optional keys
//! (the defaults file supplies every key, and a test deserialises it alone, so a missing
//! default fails a test instead of hiding behind a literal), and then validated, with the
//! overrides applied, into [`Settings`]. Nothing downstream parses strings.
//!
//! Before merging, the user's file is checked against the defaults' keys, so an unknown
//! key is an error naming the key and its line. `[[commands]]` entries merge by name: an
//! entry with a `handler` defines the command (adding it, or replacing the entry of that
//! name); an entry without one configures an existing command (built-in or registered from
//! Rust) key by key, e.g. only its `params`. `replace_builtin_commands = true` drops the
//! built-in entries first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chatops_core::Quadrant;
use chatops_core::slack::secret_file::read_secret_file;
use chatops_core::slack::{AllowedHosts, ResponseType};
use chatops_queue::engine::EngineSettings;
use chatops_queue::nats::NatsAuth;
use chatops_queue::sqlite::Durability;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::guard::settings::{self as guard, AccessSettings, AuditSettings};
use crate::spec::{
    CommandSpec, HandlerSpec, HumanDuration, PoolSettings, RespondSettings, RetrySettings, SlackApiSettings,
};

/// The compiled-in defaults; also the reference documentation of every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

const DEFAULTS_ORIGIN: &str = "<built-in defaults>";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error(
        "no Slack signing secret: set SLACK_SIGNING_SECRET or pass --signing-secret-file FILE \
         (Slack app settings → Basic Information → App Credentials → Signing Secret)"
    )]
    MissingSigningSecret,
}

fn invalid(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), message: message.to_string() }
}

// ---------------------------------------------------------------------------------------
// The file's shape. No `Option` and no `#[serde(default)]` outside `[[commands]]`: every key
// comes from the defaults file.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    server: FileServer,
    limits: FileLimits,
    queue: FileQueue,
    retry: FileRetry,
    respond: FileRespond,
    access: guard::FileAccess,
    audit: guard::FileAudit,
    slack: FileSlack,
    workers: BTreeMap<String, FilePool>,
    /// When true, the file's `[[commands]]` replace the built-in ones instead of adding to
    /// (and overriding by name) them. `merge_over` reads it from the tables, since it decides
    /// the merge; here it only makes the defaults file name it.
    #[allow(dead_code)]
    replace_builtin_commands: bool,
    commands: Vec<CommandEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: String,
    data_dir: PathBuf,
    max_body_bytes: usize,
    ack_budget: HumanDuration,
    shutdown_grace: HumanDuration,
    allow_response_hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_concurrent_requests: usize,
    per_user_per_minute: u32,
    per_user_burst: u32,
    max_header_bytes: usize,
    header_read_timeout: HumanDuration,
    body_read_timeout: HumanDuration,
    max_connections: usize,
    max_unverified_bodies: usize,
    max_unverified_bodies_per_peer: usize,
    /// Empty: no metrics listener.
    metrics_listen: String,
    metrics_on_ingress: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQueue {
    /// Empty: the embedded queue in the data directory.
    url: String,
    nats_prefix: String,
    duplicate_window: HumanDuration,
    replicas: usize,
    durability: String,
    max_depth: u64,
    done_retention: HumanDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetry {
    base_delay: HumanDuration,
    max_delay: HumanDuration,
    max_attempts: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRespond {
    connect_timeout: HumanDuration,
    request_timeout: HumanDuration,
    max_retries: u32,
    max_posts: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSlack {
    api_base: String,
    /// Empty: no file (then `CHATOPS_SLACK_BOT_TOKEN`, if set).
    bot_token_file: PathBuf,
    connect_timeout: HumanDuration,
    request_timeout: HumanDuration,
    max_retries: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePool {
    concurrency: usize,
    lease: HumanDuration,
}

/// One `[[commands]]` entry after merging. Its optional keys are optional by nature (a
/// command without `usage`), not defaults in disguise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandEntry {
    name: String,
    quadrant: String,
    /// Default: [`crate::spec::default_timeout`] of the quadrant.
    timeout: Option<HumanDuration>,
    #[serde(default)]
    requires_approval: bool,
    /// Approvers, how many approvals, self-approval, expiry (for `requires_approval`).
    approval: Option<guard::RawApprovalRule>,
    /// Who may run it where (default: the `[access]` rule).
    access: Option<guard::RawAccessRule>,
    #[serde(default)]
    description: String,
    usage: Option<String>,
    /// Typed arguments (`name`, `kind`, `choices`, `pattern`, `min`, `max`, `optional`,
    /// `default`, `secret`, `description`), checked at the router.
    #[serde(default)]
    args: Vec<chatops_core::args::RawArgSpec>,
    handler: String,
    /// Default: `retry.max_attempts`.
    max_attempts: Option<u32>,
    /// Re-run an effect that a crash interrupted (default: tell the user instead).
    #[serde(default)]
    rerun_interrupted: bool,
    /// `"ephemeral"` (default) or `"in_channel"`.
    visibility: Option<ResponseType>,
    /// The handler's parameters, read by the handler with `ctx.params::<T>()`.
    #[serde(default)]
    params: toml::Table,
    /// Before `params` existed, `simulate` read these two top-level keys; still accepted
    /// for that kind and moved into `params`.
    work: Option<toml::Value>,
    answers: Option<toml::Value>,
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
    /// The Slack bot token from the environment (`CHATOPS_SLACK_BOT_TOKEN`); setting it
    /// and `slack.bot_token_file` both is an error.
    pub slack_bot_token: Option<SecretString>,
    /// `sqlite://PATH` or `nats://HOST:PORT[,HOST:PORT...]`.
    pub queue_url: Option<String>,
    pub nats_prefix: Option<String>,
    pub nats_auth: NatsAuth,
    pub metrics_listen: Option<SocketAddr>,
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
    pub slack: SlackApiSettings,
    /// Indexed like [`Quadrant::ALL`].
    pub workers: [PoolSettings; 4],
    pub commands: Vec<CommandSpec>,
    pub access: AccessSettings,
    pub audit: AuditSettings,
}

impl Settings {
    pub fn pool(&self, q: Quadrant) -> PoolSettings {
        self.workers[q.index()]
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

// ---------------------------------------------------------------------------------------
// Loading: text → tables → check → merge → deserialise → validate.

/// Loads the settings: defaults, then the file, then the overrides.
pub fn load(config_file: Option<&Path>, overrides: Overrides) -> Result<Settings, ConfigError> {
    load_with(config_file, overrides, &[])
}

/// [`load`], with commands registered from Rust code: each is a `[[commands]]` table that
/// sits over the built-in entries (and survives `replace_builtin_commands`), so the file can
/// configure it by name like any other command.
pub fn load_with(
    config_file: Option<&Path>,
    overrides: Overrides,
    code_commands: &[toml::Table],
) -> Result<Settings, ConfigError> {
    let user = match config_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            Some((text, path.display().to_string()))
        }
        None => None,
    };
    let user = user.as_ref().map(|(text, origin)| (text.as_str(), origin.as_str()));
    build(user, code_commands, overrides)
}

fn parse_error(origin: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Parse { path: origin.to_owned(), message: message.to_string().trim_end().to_owned() }
}

fn defaults_table() -> Result<toml::Table, ConfigError> {
    toml::from_str(DEFAULT_CONFIG).map_err(|e| parse_error(DEFAULTS_ORIGIN, e))
}

/// Merges `user` (text and where it came from) and the code's commands over the defaults,
/// then validates with the overrides.
fn build(
    user: Option<(&str, &str)>,
    code_commands: &[toml::Table],
    overrides: Overrides,
) -> Result<Settings, ConfigError> {
    let defaults = defaults_table()?;
    let mut merged = defaults.clone();
    let (user_table, user_keys) = match user {
        Some((text, origin)) => {
            let spanned = DeTable::parse(text).map_err(|e| parse_error(origin, e))?;
            check_keys(spanned.get_ref(), &merged, text).map_err(|m| parse_error(origin, m))?;
            let table = toml::from_str::<toml::Table>(text).map_err(|e| parse_error(origin, e))?;
            (table, Some((spanned.into_inner(), text)))
        }
        None => (toml::Table::new(), None),
    };
    merge_over(&mut merged, user_table, code_commands)?;
    let file = match FileSettings::deserialize(toml::Value::Table(merged.clone())) {
        Ok(file) => file,
        Err(e) => {
            let message = e.to_string().trim_end().to_owned();
            let path = culprit(&defaults, &merged).unwrap_or_default();
            let line = user_keys.as_ref().and_then(|(table, text)| line_of_path(table, &path, text));
            let key = if path.is_empty() { "configuration".to_owned() } else { path.join(".") };
            return Err(match line {
                Some(line) => invalid(&key, format!("{message} (line {line})")),
                None => invalid(&key, message),
            });
        }
    };
    validate(file, overrides)
}

/// The key whose merged value does not deserialise: the defaults deserialise, so putting
/// one merged value at a time into them isolates the culprit without a second schema.
fn culprit(defaults: &toml::Table, merged: &toml::Table) -> Option<Vec<String>> {
    for entry in merged.get("commands").and_then(toml::Value::as_array).into_iter().flatten() {
        let mut probe = defaults.clone();
        probe.insert("commands".into(), toml::Value::Array(vec![entry.clone()]));
        if breaks(probe) {
            let name = entry.get("name").and_then(toml::Value::as_str).unwrap_or("?");
            return Some(vec![format!("commands[{name}]")]);
        }
    }
    narrow(defaults, &mut Vec::new(), defaults, merged)
}

fn breaks(probe: toml::Table) -> bool {
    FileSettings::deserialize(toml::Value::Table(probe)).is_err()
}

/// Within the table at `path` (its default `here_default`, its merged value `here`), the
/// first key whose merged value alone breaks the defaults, as deep as it goes.
fn narrow(
    defaults: &toml::Table,
    path: &mut Vec<String>,
    here_default: &toml::Table,
    here: &toml::Table,
) -> Option<Vec<String>> {
    for (key, value) in here {
        if path.is_empty() && key == "commands" {
            continue;
        }
        path.push(key.clone());
        let mut probe = defaults.clone();
        set_at(&mut probe, path, value.clone());
        if breaks(probe) {
            let inner_default = here_default.get(key).and_then(toml::Value::as_table);
            if let (Some(inner), Some(inner_default)) = (value.as_table(), inner_default)
                && let Some(found) = narrow(defaults, path, inner_default, inner)
            {
                return Some(found);
            }
            return Some(path.clone());
        }
        path.pop();
    }
    None
}

/// Puts `value` at `path`, creating tables on the way.
fn set_at(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut here = table;
    for p in parents {
        let slot = here.entry(p.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !slot.is_table() {
            *slot = toml::Value::Table(toml::Table::new());
        }
        let Some(inner) = slot.as_table_mut() else { return };
        here = inner;
    }
    here.insert(last.clone(), value);
}

/// The line of a key path in the user's file, when the file names it.
fn line_of_path(table: &DeTable<'_>, path: &[String], text: &str) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    if first.starts_with("commands[") {
        let name = first.trim_start_matches("commands[").trim_end_matches(']');
        let commands = table.iter().find(|(k, _)| k.get_ref() == "commands")?.1;
        let DeValue::Array(entries) = commands.get_ref() else { return None };
        let entry =
            entries.iter().find(|e| e.get_ref().get("name").and_then(|n| n.get_ref().as_str()) == Some(name))?;
        return Some(line_of(text, entry.span().start));
    }
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first.as_str())?;
    match (rest.is_empty(), value.get_ref()) {
        (false, DeValue::Table(inner)) => line_of_path(inner, rest, text).or(Some(line_of(text, key.span().start))),
        _ => Some(line_of(text, key.span().start)),
    }
}

/// The line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Every key of the user's file must exist in the defaults (which hold every key; the
/// quadrants under `[workers]` included); `[[commands]]` entries are checked against
/// [`CommandEntry`]'s fields, and a command's `params` belong to its handler.
fn check_keys(user: &DeTable<'_>, schema: &toml::Table, text: &str) -> Result<(), String> {
    check_table(user, schema, "", text)
}

fn check_table(user: &DeTable<'_>, schema: &toml::Table, path: &str, text: &str) -> Result<(), String> {
    for (key, value) in user.iter() {
        let name: &str = key.get_ref();
        let full = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
        if full == "commands" {
            check_commands(value.get_ref(), text)?;
            continue;
        }
        match schema.get(name) {
            None => return Err(format!("unknown key `{full}` at line {}", line_of(text, key.span().start))),
            Some(toml::Value::Table(inner)) => {
                if let DeValue::Table(table) = value.get_ref() {
                    check_table(table, inner, &full, text)?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_commands(value: &DeValue<'_>, text: &str) -> Result<(), String> {
    let DeValue::Array(entries) = value else { return Ok(()) };
    let known = struct_fields::<CommandEntry>();
    for entry in entries.iter() {
        let DeValue::Table(table) = entry.get_ref() else { continue };
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                return Err(format!(
                    "unknown key `{name}` in [[commands]] at line {} (known: {})",
                    line_of(text, key.span().start),
                    known.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// The field names of a struct, asked of its own `Deserialize` impl, so the key check and
/// the struct cannot disagree.
fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Deep-merges `user` over `base` (tables key by key; any other value replaces), with the
/// `[[commands]]` rules of the module doc and the code's commands between the two.
fn merge_over(base: &mut toml::Table, mut user: toml::Table, code_commands: &[toml::Table]) -> Result<(), ConfigError> {
    let replace_builtin = user.get("replace_builtin_commands").and_then(toml::Value::as_bool).unwrap_or(false);
    let user_commands = match user.remove("commands") {
        None => Vec::new(),
        Some(toml::Value::Array(entries)) => entries,
        Some(other) => {
            return Err(invalid("commands", format!("must be [[commands]] tables, not a {}", other.type_str())));
        }
    };
    let mut commands: Vec<toml::Table> = match base.remove("commands") {
        Some(toml::Value::Array(entries)) if !replace_builtin => {
            entries.into_iter().filter_map(|e| if let toml::Value::Table(t) = e { Some(t) } else { None }).collect()
        }
        _ => Vec::new(),
    };
    for code in code_commands {
        let name = command_name(code)?;
        commands.retain(|c| command_name(c).ok() != Some(name));
        commands.push(code.clone());
    }
    let mut defined_by_user: Vec<String> = Vec::new();
    for entry in user_commands {
        let toml::Value::Table(entry) = entry else {
            return Err(invalid("commands", "every [[commands]] entry must be a table"));
        };
        let name = command_name(&entry)?.to_owned();
        let existing = commands.iter().position(|c| command_name(c).ok() == Some(name.as_str()));
        match (existing, entry.contains_key("handler")) {
            (_, true) if defined_by_user.contains(&name) => {
                return Err(invalid(&format!("commands[{name}]"), "defined twice in the file"));
            }
            (Some(i), true) => commands[i] = entry,
            (None, true) => commands.push(entry),
            (Some(i), false) => deep_merge(&mut commands[i], entry),
            (None, false) => {
                return Err(invalid(
                    &format!("commands[{name}]"),
                    "has no `handler`, and there is no built-in or registered command of that name to configure",
                ));
            }
        }
        defined_by_user.push(name);
    }
    deep_merge(base, user);
    base.insert("commands".into(), toml::Value::Array(commands.into_iter().map(toml::Value::Table).collect()));
    Ok(())
}

fn command_name(entry: &toml::Table) -> Result<&str, ConfigError> {
    entry
        .get("name")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| invalid("commands", "every [[commands]] entry needs a `name` (e.g. name = \"/deploy\")"))
}

fn deep_merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over_inner)) => deep_merge(inner, over_inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Validation: typed values, ranges, and the overrides.

fn validate(f: FileSettings, o: Overrides) -> Result<Settings, ConfigError> {
    let listen = match o.listen {
        Some(addr) => addr,
        None => parse_addr("server.listen", &f.server.listen)?,
    };
    let data_dir = o.data_dir.unwrap_or(f.server.data_dir);
    let max_body_bytes = f.server.max_body_bytes;
    if !(256..=1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid("server.max_body_bytes", "must be between 256 and 1048576"));
    }
    let ack_budget = f.server.ack_budget.0;
    if ack_budget >= Duration::from_secs(3) {
        return Err(invalid("server.ack_budget", "must be under 3s: Slack gives up after 3 seconds"));
    }
    let mut allowed_hosts = AllowedHosts::default();
    for host in f.server.allow_response_hosts.iter().chain(&o.allow_response_hosts) {
        allowed_hosts.allow(host).map_err(|e| invalid("server.allow_response_hosts", format!("`{host}`: {e}")))?;
    }
    let durability = match o.durability {
        Some(d) => d,
        None => f.queue.durability.parse().map_err(|e| invalid("queue.durability", e))?,
    };
    let retry = RetrySettings {
        base_delay: f.retry.base_delay.0,
        max_delay: f.retry.max_delay.0,
        max_attempts: f.retry.max_attempts.max(1),
    };
    let respond = RespondSettings {
        connect_timeout: f.respond.connect_timeout.0,
        request_timeout: f.respond.request_timeout.0,
        max_retries: f.respond.max_retries,
        max_posts: f.respond.max_posts.clamp(1, 5),
    };
    let slack = slack_settings(f.slack, o.slack_bot_token)?;
    for key in f.workers.keys() {
        key.parse::<Quadrant>().map_err(|e| invalid(&format!("workers.{key}"), e))?;
    }
    let mut workers = [PoolSettings { concurrency: 1, lease: Duration::from_secs(1) }; 4];
    for (slot, q) in workers.iter_mut().zip(Quadrant::ALL) {
        let key = format!("workers.{q}");
        let pool = f.workers.get(q.as_str()).ok_or_else(|| invalid(&key, "missing from the built-in defaults"))?;
        if !(1..=10_000).contains(&pool.concurrency) {
            return Err(invalid(&format!("{key}.concurrency"), "must be between 1 and 10000"));
        }
        if pool.lease.0 < Duration::from_millis(100) {
            return Err(invalid(&format!("{key}.lease"), "must be at least 100ms"));
        }
        *slot = PoolSettings { concurrency: pool.concurrency, lease: pool.lease.0 };
    }
    let commands =
        f.commands.into_iter().map(|c| command_spec(c, retry.max_attempts)).collect::<Result<Vec<_>, _>>()?;
    let access = guard::access_settings(f.access)?;
    guard::check_commands(&access, &commands)?;
    let audit = guard::audit_settings(f.audit)?;
    let (max_depth, done_retention) = (f.queue.max_depth, f.queue.done_retention.0);
    at_least_replay_memory("queue.done_retention", done_retention)?;
    let mut engine = queue_engine(o.queue_url.unwrap_or(f.queue.url), &data_dir, o.nats_auth)?;
    match &mut engine {
        EngineSettings::Sqlite(sqlite) => {
            sqlite.durability = durability;
            sqlite.max_depth = max_depth;
            sqlite.done_retention = done_retention;
            sqlite.audit_retention = audit.retention;
        }
        EngineSettings::Nats(nats) => {
            nats.prefix = o.nats_prefix.unwrap_or(f.queue.nats_prefix);
            if nats.prefix.is_empty() || !nats.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(invalid("queue.nats_prefix", "letters, digits and _ only"));
            }
            nats.duplicate_window = f.queue.duplicate_window.0;
            at_least_replay_memory("queue.duplicate_window", nats.duplicate_window)?;
            nats.replicas = f.queue.replicas.clamp(1, 5);
            nats.max_depth = max_depth;
            nats.done_retention = done_retention;
            nats.audit_retention = audit.retention;
        }
    }
    let metrics_listen = match o.metrics_listen {
        Some(addr) => Some(addr),
        None if f.limits.metrics_listen.is_empty() => None,
        None => Some(parse_addr("limits.metrics_listen", &f.limits.metrics_listen)?),
    };
    let l = f.limits;
    let limits = LimitSettings {
        max_concurrent_requests: l.max_concurrent_requests.max(1),
        per_user_per_minute: l.per_user_per_minute,
        per_user_burst: l.per_user_burst.max(1),
        max_header_bytes: l.max_header_bytes.clamp(8192, 1 << 20),
        header_read_timeout: l.header_read_timeout.0,
        body_read_timeout: l.body_read_timeout.0,
        max_connections: at_least_one(l.max_connections, "limits.max_connections")?,
        max_unverified_bodies: at_least_one(l.max_unverified_bodies, "limits.max_unverified_bodies")?,
        max_unverified_bodies_per_peer: at_least_one(
            l.max_unverified_bodies_per_peer,
            "limits.max_unverified_bodies_per_peer",
        )?,
        metrics_listen,
        metrics_on_ingress: l.metrics_on_ingress,
    };
    Ok(Settings {
        listen,
        data_dir,
        log_file: o.log_file,
        signing_secret: o.signing_secret,
        allowed_hosts,
        max_body_bytes,
        ack_budget,
        limits,
        shutdown_grace: f.server.shutdown_grace.0,
        queue: QueueSettings { engine, durability, max_depth, done_retention },
        retry,
        respond,
        slack,
        workers,
        commands,
        access,
        audit,
    })
}

/// `[slack]`: the API's base URL (https, or http to a loopback host for tests, so the token
/// never crosses a network in clear) and the bot token from its file or the environment.
fn slack_settings(f: FileSlack, env_token: Option<SecretString>) -> Result<SlackApiSettings, ConfigError> {
    let api_base =
        url::Url::parse(&f.api_base).map_err(|e| invalid("slack.api_base", format!("`{}`: {e}", f.api_base)))?;
    let loopback = match api_base.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match api_base.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(invalid("slack.api_base", "must be an https URL (http only to a loopback address, for tests)"));
        }
    }
    if api_base.query().is_some() || api_base.fragment().is_some() || !api_base.username().is_empty() {
        return Err(invalid("slack.api_base", "a base URL without query, fragment or credentials"));
    }
    let from_file = if f.bot_token_file.as_os_str().is_empty() {
        None
    } else {
        let file = read_secret_file(&f.bot_token_file).map_err(|e| invalid("slack.bot_token_file", e))?;
        Some((file.permission_warning(&f.bot_token_file), file.into_secret()))
    };
    let (bot_token, bot_token_warning) = match (from_file, env_token) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "slack.bot_token_file",
                "CHATOPS_SLACK_BOT_TOKEN is set too; give the bot token one way only",
            ));
        }
        (Some((warning, token)), None) => (Some(SecretString::from(token)), warning),
        (None, token) => (token, None),
    };
    // It becomes an HTTP header: visible ASCII, no spaces (Slack's tokens are xoxb-...).
    if bot_token.as_ref().is_some_and(|t| !t.expose_secret().bytes().all(|b| b.is_ascii_graphic())) {
        return Err(invalid("slack.bot_token", "the bot token has spaces or characters a token does not have"));
    }
    Ok(SlackApiSettings {
        api_base,
        bot_token,
        bot_token_warning,
        connect_timeout: f.connect_timeout.0,
        request_timeout: f.request_timeout.0,
        max_retries: f.max_retries.min(10),
    })
}

fn parse_addr(key: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|e| invalid(key, format!("`{raw}`: {e}")))
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

/// `sqlite://PATH`, `nats://...`, or empty (the embedded queue in the data directory).
/// The URL itself is parsed by `chatops_queue::engine`, the one place that knows its forms.
fn queue_engine(url: String, data_dir: &Path, auth: NatsAuth) -> Result<EngineSettings, ConfigError> {
    if url.is_empty() {
        return Ok(EngineSettings::sqlite_in(data_dir));
    }
    EngineSettings::from_url(&url, auth).map_err(|e| invalid("queue.url", e))
}

fn at_least_one(value: usize, key: &str) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(value)
}

fn command_spec(c: CommandEntry, default_attempts: u32) -> Result<CommandSpec, ConfigError> {
    let key = format!("commands[{}]", c.name);
    if !chatops_core::slack::command::is_valid_command_name(&c.name) {
        return Err(invalid(&key, "name must look like /deploy (letters, digits, -, _ or . after the slash)"));
    }
    let quadrant = c.quadrant.parse::<Quadrant>().map_err(|e| invalid(&format!("{key}.quadrant"), e))?;
    let mut params = c.params;
    for (legacy, value) in [("work", c.work), ("answers", c.answers)] {
        let Some(value) = value else { continue };
        if c.handler != "simulate" {
            return Err(invalid(
                &key,
                format!("`{legacy}` applies to the simulate handler, not `{}`; other kinds take `params`", c.handler),
            ));
        }
        if params.insert(legacy.to_owned(), value).is_some() {
            return Err(invalid(&key, format!("`{legacy}` is given both at the top and in `params`")));
        }
    }
    let args = chatops_core::args::ArgSpecs::new(c.args).map_err(|e| invalid(&format!("{key}.args"), e))?;
    let usage = c.usage.or_else(|| (!args.is_empty()).then(|| args.usage(&c.name)));
    Ok(CommandSpec {
        name: c.name,
        quadrant,
        timeout: c.timeout.map_or_else(|| crate::spec::default_timeout(quadrant), |d| d.0),
        approval: guard::command_approval(&key, c.requires_approval, c.approval)?,
        access: guard::command_access(&key, c.access)?,
        description: c.description,
        usage,
        args,
        handler: HandlerSpec { kind: c.handler, params },
        max_attempts: c.max_attempts.unwrap_or(default_attempts).max(1),
        rerun_interrupted: c.rerun_interrupted,
        visibility: c.visibility.unwrap_or(ResponseType::Ephemeral),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Overrides {
        Overrides { signing_secret: Some(SecretString::from("s3cret")), ..Default::default() }
    }

    fn load_str(text: &str, o: Overrides) -> Result<Settings, ConfigError> {
        build(Some((text, "test.toml")), &[], o)
    }

    fn command<'a>(s: &'a Settings, name: &str) -> &'a CommandSpec {
        s.commands.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} missing"))
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
        assert_eq!(deploy.handler, HandlerSpec::new("simulate").param("work", "3s").param("answers", 3));
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
approval = { approvers = ["U0LEAD"] }
"#;
        let s = load_str(text, secret()).unwrap();
        assert_eq!(s.commands.iter().find(|c| c.name == "/echo").unwrap().quadrant, Quadrant::ShortWrite);
        assert!(s.commands.iter().any(|c| c.name == "/rollback" && c.requires_approval()));
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
    fn the_defaults_alone_supply_every_key() {
        let defaults = defaults_table().unwrap();
        FileSettings::deserialize(toml::Value::Table(defaults.clone())).expect("the defaults deserialise strictly");
        // Every key of every section is needed: without it the defaults no longer load, so
        // a default cannot be dropped from the file and hide behind a literal in the code.
        let mut checked = 0;
        for (section, value) in &defaults {
            let toml::Value::Table(table) = value else { continue };
            let leaves: Vec<(Vec<String>, String)> = table
                .iter()
                .flat_map(|(k, v)| match v {
                    toml::Value::Table(inner) => inner.keys().map(|ik| (vec![k.clone()], ik.clone())).collect(),
                    _ => vec![(vec![], k.clone())],
                })
                .collect();
            for (parents, leaf) in leaves {
                let mut without = defaults.clone();
                let mut t = without[section].as_table_mut().unwrap();
                for p in &parents {
                    t = t[p].as_table_mut().unwrap();
                }
                t.remove(&leaf);
                let err = FileSettings::deserialize(toml::Value::Table(without)).unwrap_err().to_string();
                assert!(err.contains(&leaf), "removing {section}.{parents:?}.{leaf} gave {err}");
                checked += 1;
            }
        }
        assert!(checked >= 39, "only {checked} keys checked");
        let mut without = defaults;
        without.remove("replace_builtin_commands");
        assert!(FileSettings::deserialize(toml::Value::Table(without)).is_err());
    }

    #[test]
    fn an_entry_without_handler_configures_the_command_of_that_name() {
        let s = load_str("[[commands]]\nname = \"/deploy\"\ntimeout = \"7m\"\nparams = { work = \"1s\" }\n", secret())
            .unwrap();
        let deploy = command(&s, "/deploy");
        assert_eq!(deploy.quadrant, Quadrant::LongWrite, "unnamed keys keep the built-in's values");
        assert_eq!(deploy.timeout, Duration::from_secs(420));
        assert_eq!(deploy.usage.as_deref(), Some("/deploy SERVICE [VERSION]"));
        assert_eq!(deploy.handler, HandlerSpec::new("simulate").param("work", "1s").param("answers", 3));
        let err = load_str("[[commands]]\nname = \"/nothing\"\nparams = { a = 1 }\n", secret()).unwrap_err();
        assert!(err.to_string().contains("commands[/nothing]") && err.to_string().contains("handler"), "{err}");
    }

    #[test]
    fn simulate_reads_work_and_answers_from_params_or_the_old_top_level_keys() {
        let text = "[[commands]]\nname = \"/a\"\nquadrant = \"long-read\"\nhandler = \"simulate\"\nwork = \"2s\"\nanswers = 4\n\n\
                    [[commands]]\nname = \"/b\"\nquadrant = \"long-read\"\nhandler = \"simulate\"\nparams = { work = \"2s\", answers = 4 }\n";
        let s = load_str(text, secret()).unwrap();
        let expected = HandlerSpec::new("simulate").param("work", "2s").param("answers", 4);
        assert_eq!(command(&s, "/a").handler, expected);
        assert_eq!(command(&s, "/b").handler, expected);
        let both = "[[commands]]\nname = \"/c\"\nquadrant = \"long-read\"\nhandler = \"simulate\"\nwork = \"1s\"\nparams = { work = \"2s\" }\n";
        assert!(load_str(both, secret()).unwrap_err().to_string().contains("both"));
    }

    #[test]
    fn commands_registered_from_code_take_file_configuration_and_survive_replace() {
        let code: toml::Table = toml::from_str(
            "name = \"/greet\"\nquadrant = \"short-write\"\nhandler = \"/greet\"\ndescription = \"Say hello\"",
        )
        .unwrap();
        let text =
            "replace_builtin_commands = true\n[[commands]]\nname = \"/greet\"\nparams = { greeting = \"Howdy\" }\n";
        let s = build(Some((text, "test.toml")), std::slice::from_ref(&code), secret()).unwrap();
        assert_eq!(s.commands.len(), 1, "built-ins replaced, the code's command kept");
        let greet = command(&s, "/greet");
        assert_eq!((greet.quadrant, greet.description.as_str()), (Quadrant::ShortWrite, "Say hello"));
        assert_eq!(greet.handler, HandlerSpec::new("/greet").param("greeting", "Howdy"));
        let alone = build(None, std::slice::from_ref(&code), secret()).unwrap();
        assert!(
            alone.commands.iter().any(|c| c.name == "/deploy") && alone.commands.iter().any(|c| c.name == "/greet")
        );
    }

    #[test]
    fn unknown_command_keys_and_duplicates_are_errors() {
        let text = "[[commands]]\nname = \"/x\"\nquadrant = \"short-read\"\nhandler = \"echo\"\nhandle = \"echo\"\n";
        let msg = load_str(text, secret()).unwrap_err().to_string();
        assert!(msg.contains("`handle`") && msg.contains("line 5"), "{msg}");
        let twice = "[[commands]]\nname = \"/x\"\nquadrant = \"short-read\"\nhandler = \"echo\"\n\
                     [[commands]]\nname = \"/x\"\nquadrant = \"short-read\"\nhandler = \"help\"\n";
        assert!(load_str(twice, secret()).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let cases = [
            (
                "[server]\nlisten = \"127.0.0.1:1\"\n\n[workers.short-read]\nconcurrency = \"x\"",
                "workers.short-read.concurrency",
                "line 5",
            ),
            ("[server]\nack_budget = \"soon\"", "server.ack_budget", "line 2"),
            ("[retry]\nmax_attempts = -1", "retry.max_attempts", "line 2"),
            ("\n[[commands]]\nname = \"/x\"\nquadrant = 3\nhandler = \"echo\"", "commands[/x]", "line 2"),
        ];
        for (text, key, line) in cases {
            let msg = load_str(text, secret()).unwrap_err().to_string();
            assert!(msg.contains(&format!("`{key}`")) && msg.contains(line), "{text:?} gave {msg}");
        }
    }

    #[test]
    fn slack_web_api_settings_take_the_token_from_a_file_or_the_environment_never_both() {
        let s = load_str("", secret()).unwrap();
        assert_eq!(s.slack.api_base.as_str(), "https://slack.com/api");
        assert!(s.slack.bot_token.is_none(), "no token by default: progress stays on response_url");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bot-token");
        std::fs::write(&file, "xoxb-from-file\n").unwrap();
        let text = format!("[slack]\nbot_token_file = {:?}\napi_base = \"http://127.0.0.1:9/api\"\n", file);
        let s = load_str(&text, secret()).unwrap();
        assert_eq!(s.slack.bot_token.as_ref().unwrap().expose_secret(), "xoxb-from-file");
        assert_eq!(s.slack.api_base.as_str(), "http://127.0.0.1:9/api");
        assert!(!format!("{s:?}").contains("xoxb-from-file"), "Settings' Debug redacts the token");
        let env = || Overrides { slack_bot_token: Some(SecretString::from("xoxb-from-env")), ..secret() };
        let s = load_str("", env()).unwrap();
        assert_eq!(s.slack.bot_token.as_ref().unwrap().expose_secret(), "xoxb-from-env");
        let err = load_str(&text, env()).unwrap_err().to_string();
        assert!(err.contains("slack.bot_token_file") && err.contains("one way only"), "{err}");
        assert!(!err.contains("xoxb"), "{err}");
    }

    #[test]
    fn bad_slack_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("spaced");
        std::fs::write(&spaced, "xoxb-a b\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let cases = [
            ("[slack]\napi_base = \"http://slack.example.com/api\"".to_owned(), "slack.api_base"),
            ("[slack]\napi_base = \"ftp://127.0.0.1/api\"".to_owned(), "slack.api_base"),
            ("[slack]\napi_base = \"https://u:p@slack.com/api\"".to_owned(), "credentials"),
            ("[slack]\napi_base = \"not a url\"".to_owned(), "slack.api_base"),
            (format!("[slack]\nbot_token_file = {:?}", dir.path().join("missing")), "slack.bot_token_file"),
            (format!("[slack]\nbot_token_file = {empty:?}"), "empty"),
            (format!("[slack]\nbot_token_file = {spaced:?}"), "slack.bot_token"),
            ("[slack]\nbot_token = \"xoxb-inline\"".to_owned(), "bot_token"),
        ];
        for (text, needle) in cases {
            let err = load_str(&text, secret()).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}, expected it to mention {needle:?}");
            assert!(!err.contains("xoxb-a b"), "{err}");
        }
        for ok in ["https://slack.example.com/api", "http://localhost:8080/api", "http://[::1]:8080/api"] {
            assert!(load_str(&format!("[slack]\napi_base = {ok:?}"), secret()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn visibility_defaults_to_ephemeral_and_is_checked() {
        let s = load_str("", secret()).unwrap();
        assert!(s.commands.iter().all(|c| c.visibility == ResponseType::Ephemeral));
        let s = load_str("[[commands]]\nname = \"/deploy\"\nvisibility = \"in_channel\"\n", secret()).unwrap();
        assert_eq!(command(&s, "/deploy").visibility, ResponseType::InChannel);
        let err = load_str("[[commands]]\nname = \"/deploy\"\nvisibility = \"public\"\n", secret()).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("commands[/deploy]") && err.contains("in_channel"), "{err}");
    }

    #[test]
    fn unknown_keys_in_nested_tables_have_their_line() {
        let msg =
            load_str("\n[workers.long-read]\nconcurrency = 2\nleese = \"1s\"\n", secret()).unwrap_err().to_string();
        assert!(msg.contains("workers.long-read.leese") && msg.contains("line 4"), "{msg}");
    }
}
