//! Engine selection in one place: the queue URL (`sqlite://PATH` or
//! `nats://[user:pass@]host:port,...`) is parsed here and only here into [`EngineSettings`],
//! and [`open`] is the one function that opens an engine, for the bot (as the owner) and for
//! admin commands (`chatops dlq`) alike.
//!
//! Credentials never travel in anything that is logged: userinfo in a NATS URL becomes
//! user/password (or token) authentication and is stripped from the server list, and
//! [`EngineSettings`]' `Display` shows where the queue is, never how to log in.

use std::fmt;
use std::sync::Arc;

use crate::approvals::ApprovalStore;
use crate::audit::AuditLog;
use crate::nats::{NatsAuth, NatsQueue, NatsSettings};
use crate::sqlite::{self, SqliteQueue, SqliteSettings};
use crate::{Cause, Queue, QueueError};

/// The prefix of NATS stream and consumer names when none is configured.
pub const DEFAULT_NATS_PREFIX: &str = "CHATOPS";

/// Which engine, and everything needed to open it.
#[derive(Debug, Clone)]
pub enum EngineSettings {
    /// The embedded default: one SQLite file, owned by one process.
    Sqlite(SqliteSettings),
    /// NATS JetStream: any number of routers and workers share it.
    Nats(Box<NatsSettings>),
}

/// Why a queue URL was refused. The message never repeats the URL's userinfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineUrlError {
    #[error("sqlite:// needs a file path, e.g. sqlite://data/queue.db")]
    MissingPath,
    #[error("nats:// names no server, e.g. nats://127.0.0.1:4222")]
    NoServer,
    #[error("`{0}` is neither sqlite://PATH nor nats://HOST:PORT[,HOST:PORT...]")]
    UnknownScheme(String),
    #[error("NATS server `{0}` has no host")]
    MissingHost(String),
    #[error("the NATS servers in the URL carry different credentials; give them once")]
    ConflictingCredentials,
    #[error("credentials are given both in the NATS URL and as --nats-user/password or token; give them once")]
    CredentialsTwice,
}

impl EngineSettings {
    /// Parses a queue URL. `sqlite://PATH` gives the embedded engine at PATH with default
    /// settings; `nats://...` gives NATS with `auth` (plus any userinfo of the URL moved
    /// into it). Callers then adjust the engine's other settings.
    pub fn from_url(url: &str, auth: NatsAuth) -> Result<EngineSettings, EngineUrlError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(EngineUrlError::MissingPath);
            }
            return Ok(EngineSettings::Sqlite(SqliteSettings::new(path)));
        }
        if url.starts_with("nats://") || url.starts_with("tls://") {
            let (servers, auth) = parse_nats_servers(url, auth)?;
            let mut nats = NatsSettings::new(servers);
            nats.prefix = DEFAULT_NATS_PREFIX.to_owned();
            nats.auth = auth;
            return Ok(EngineSettings::Nats(Box::new(nats)));
        }
        // The scheme alone: the rest may hold a password.
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        Err(EngineUrlError::UnknownScheme(format!("{scheme}://…")))
    }

    /// The embedded engine in `data_dir` (`<data_dir>/queue.db`): what an empty URL means.
    pub fn sqlite_in(data_dir: &std::path::Path) -> EngineSettings {
        EngineSettings::Sqlite(SqliteSettings::new(data_dir.join("queue.db")))
    }

    pub fn is_nats(&self) -> bool {
        matches!(self, EngineSettings::Nats(_))
    }

    /// Where the queue is, for logs and messages: no userinfo, no password, no token.
    pub fn redacted(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EngineSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineSettings::Sqlite(s) => write!(f, "sqlite://{}", s.path.display()),
            EngineSettings::Nats(n) => {
                // Rebuilt from host:port only, so even a server string that somehow kept
                // userinfo is shown without it.
                let servers: Vec<String> = n.servers.iter().map(|s| strip_userinfo(s)).collect();
                write!(f, "{} (prefix {}, auth {})", servers.join(","), n.prefix, auth_kind(&n.auth))?;
                if n.auth.require_tls || n.auth.tls_ca_file.is_some() {
                    write!(f, ", tls")?;
                }
                Ok(())
            }
        }
    }
}

/// Names the kind of credentials only.
fn auth_kind(auth: &NatsAuth) -> &'static str {
    if auth.creds_file.is_some() {
        "creds-file"
    } else if auth.user.is_some() {
        "user-password"
    } else if auth.token.is_some() {
        "token"
    } else {
        "none"
    }
}

fn strip_userinfo(server: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("nats", server));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{host}")
}

/// Splits `nats://[user:pass@]host:port[,[nats://][user:pass@]host:port...]` into server
/// URLs without userinfo and the authentication they imply.
fn parse_nats_servers(url: &str, mut auth: NatsAuth) -> Result<(Vec<String>, NatsAuth), EngineUrlError> {
    let (first_scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    let mut servers = Vec::new();
    let mut userinfo: Option<String> = None;
    for part in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (scheme, addr) = part.split_once("://").unwrap_or((first_scheme, part));
        let (info, host) = match addr.rsplit_once('@') {
            Some((info, host)) => (Some(info), host),
            None => (None, addr),
        };
        if host.is_empty() {
            return Err(EngineUrlError::MissingHost(format!("{scheme}://")));
        }
        if let Some(info) = info {
            match &userinfo {
                Some(seen) if seen != info => return Err(EngineUrlError::ConflictingCredentials),
                _ => userinfo = Some(info.to_owned()),
            }
        }
        servers.push(format!("{scheme}://{host}"));
    }
    if servers.is_empty() {
        return Err(EngineUrlError::NoServer);
    }
    if let Some(info) = userinfo {
        if auth.user.is_some() || auth.password.is_some() || auth.token.is_some() {
            return Err(EngineUrlError::CredentialsTwice);
        }
        match info.split_once(':') {
            Some((user, password)) => {
                auth.user = Some(percent_decode(user));
                auth.password = Some(percent_decode(password));
            }
            // `nats://TOKEN@host`, as the NATS clients read it.
            None => auth.token = Some(percent_decode(&info)),
        }
    }
    Ok((servers, auth))
}

/// `%XX` escapes of URL userinfo (a password with `@` or `:` must be written escaped).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the process owns the queue or only administers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A bot process: SQLite takes the exclusive lock and recovers leases; NATS creates or
    /// updates its streams and consumers.
    Owner,
    /// An admin command: SQLite without the lock (the bot may be running; the file must
    /// exist); NATS connects to existing streams and changes nothing.
    Admin,
}

/// How to open the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMode {
    pub access: Access,
    /// Whether this process runs worker pools: on NATS they need the watcher that
    /// dead-letters jobs whose deliveries ran out.
    pub runs_workers: bool,
}

impl OpenMode {
    /// For `chatops dlq` and other admin commands.
    pub const ADMIN: OpenMode = OpenMode { access: Access::Admin, runs_workers: false };

    /// For a bot process.
    pub fn owner(runs_workers: bool) -> OpenMode {
        OpenMode { access: Access::Owner, runs_workers }
    }
}

/// An open queue and the background tasks it needs in this process.
pub struct OpenedQueue {
    pub queue: Arc<dyn Queue>,
    /// The same engine's pending approvals.
    pub approvals: Arc<dyn ApprovalStore>,
    /// The same engine's audit trail.
    pub audit: Arc<dyn AuditLog>,
    pub background: Vec<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for OpenedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedQueue").field("background", &self.background.len()).finish_non_exhaustive()
    }
}

/// Opens the engine: the one place a queue is opened.
pub async fn open(settings: &EngineSettings, mode: OpenMode) -> Result<OpenedQueue, QueueError> {
    match settings {
        EngineSettings::Sqlite(s) => {
            let sqlite_mode = match mode.access {
                Access::Owner => sqlite::OpenMode::Owner,
                Access::Admin => {
                    // An admin must not create an empty queue beside the real one.
                    if !s.path.exists() {
                        return Err(QueueError::Unavailable(
                            format!("no queue at {} (is --data-dir or --queue right?)", s.path.display()).into(),
                        ));
                    }
                    sqlite::OpenMode::Admin
                }
            };
            let queue = Arc::new(SqliteQueue::open(s.clone(), sqlite_mode)?);
            Ok(OpenedQueue { queue: queue.clone(), approvals: queue.clone(), audit: queue, background: Vec::new() })
        }
        EngineSettings::Nats(n) => {
            let queue = connect_nats(n, mode.access).await?;
            let mut background = Vec::new();
            if mode.runs_workers {
                background.push(queue.watch_exhausted_deliveries().await?);
            }
            let queue = Arc::new(queue);
            Ok(OpenedQueue { queue: queue.clone(), approvals: queue.clone(), audit: queue, background })
        }
    }
}

/// Creates or updates the NATS streams and consumers and describes them (`chatops nats
/// setup`).
pub async fn setup_nats(settings: &EngineSettings) -> Result<Vec<String>, QueueError> {
    let EngineSettings::Nats(n) = settings else {
        return Err(QueueError::Unavailable(
            "`nats setup` needs --queue nats://HOST:PORT (or queue.url in the config file)".into(),
        ));
    };
    connect_nats(n, Access::Owner).await?.describe().await
}

async fn connect_nats(n: &NatsSettings, access: Access) -> Result<NatsQueue, QueueError> {
    warn_if_plaintext(n);
    let connected = match access {
        Access::Owner => NatsQueue::connect(n).await,
        Access::Admin => NatsQueue::connect_existing(n).await,
    };
    connected.map_err(explain_auth_failure)
}

/// A refused login says which options carry credentials, so the operator need not guess.
fn explain_auth_failure(e: QueueError) -> QueueError {
    match e {
        QueueError::Unavailable(cause) if cause.to_string().to_ascii_lowercase().contains("authorization") => {
            // Keep the refusal as the source; the advice goes into the context.
            let advice = "NATS refused the credentials (give --nats-user with CHATOPS_NATS_PASSWORD or \
                          --nats-password-file, --nats-creds, CHATOPS_NATS_TOKEN, or user:password@ in --queue)";
            QueueError::Unavailable(Cause::new(advice, cause))
        }
        other => other,
    }
}

/// Credentials and jobs (response_urls are bearer tokens) cross the network in clear text
/// when a remote broker is reached without TLS: say so once at startup.
fn warn_if_plaintext(n: &NatsSettings) {
    if n.auth.require_tls || n.auth.tls_ca_file.is_some() || n.auth.tls_client_cert.is_some() {
        return;
    }
    for server in &n.servers {
        if server.starts_with("tls://") || is_loopback_server(server) {
            continue;
        }
        tracing::warn!(
            server = %strip_userinfo(server),
            "connecting to a non-loopback NATS server without TLS: credentials and jobs cross the network \
             in clear text (use --nats-require-tls / --nats-tls-ca)"
        );
    }
}

fn is_loopback_server(server: &str) -> bool {
    let host_port = strip_userinfo(server);
    let host_port = host_port.split_once("://").map_or(host_port.as_str(), |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn nats(url: &str) -> NatsSettings {
        match EngineSettings::from_url(url, NatsAuth::default()).unwrap() {
            EngineSettings::Nats(n) => *n,
            EngineSettings::Sqlite(_) => panic!("{url} is not nats"),
        }
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        let EngineSettings::Sqlite(s) = EngineSettings::from_url("sqlite:///tmp/q.db", NatsAuth::default()).unwrap()
        else {
            panic!("not sqlite")
        };
        assert_eq!(s.path, PathBuf::from("/tmp/q.db"));
        assert_eq!(
            EngineSettings::from_url("sqlite://", NatsAuth::default()).unwrap_err(),
            EngineUrlError::MissingPath
        );
    }

    #[test]
    fn nats_servers_are_split_and_get_a_scheme() {
        let n = nats("nats://a:4222, b:4223,nats://c:4224");
        assert_eq!(n.servers, ["nats://a:4222", "nats://b:4223", "nats://c:4224"]);
        assert_eq!(n.prefix, DEFAULT_NATS_PREFIX);
        assert_eq!(EngineSettings::from_url("nats://", NatsAuth::default()).unwrap_err(), EngineUrlError::NoServer);
    }

    #[test]
    fn userinfo_becomes_authentication_and_leaves_the_servers() {
        let n = nats("nats://alice:p%40ss%3Aword@a:4222,nats://alice:p%40ss%3Aword@b:4222");
        assert_eq!(n.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(n.auth.user.as_deref(), Some("alice"));
        assert_eq!(n.auth.password.as_deref(), Some("p@ss:word"));
        let t = nats("nats://s3cr3ttoken@a:4222");
        assert_eq!(t.auth.token.as_deref(), Some("s3cr3ttoken"));
        assert_eq!(t.servers, ["nats://a:4222"]);
    }

    #[test]
    fn credentials_are_given_once() {
        let err = EngineSettings::from_url("nats://a:x@h:1,nats://b:y@h:2", NatsAuth::default()).unwrap_err();
        assert_eq!(err, EngineUrlError::ConflictingCredentials);
        let flags = NatsAuth { user: Some("bob".into()), ..Default::default() };
        assert_eq!(EngineSettings::from_url("nats://a:x@h:1", flags).unwrap_err(), EngineUrlError::CredentialsTwice);
    }

    #[test]
    fn display_and_errors_never_show_credentials() {
        let settings = EngineSettings::from_url("nats://alice:hunter2@a:4222", NatsAuth::default()).unwrap();
        let shown = settings.redacted();
        assert!(!shown.contains("hunter2") && !shown.contains("alice"), "{shown}");
        assert!(shown.contains("nats://a:4222") && shown.contains("user-password"), "{shown}");
        let err = EngineSettings::from_url("redis://u:hunter2@h", NatsAuth::default()).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("redis://"), "{err}");
        // Even a server string that kept its userinfo is shown without it.
        let mut raw = NatsSettings::new(vec!["nats://alice:hunter2@a:4222".into()]);
        raw.auth.user = Some("alice".into());
        let shown = EngineSettings::Nats(Box::new(raw)).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn loopback_servers_are_recognised() {
        for s in ["nats://127.0.0.1:4222", "nats://localhost:4222", "nats://[::1]:4222", "nats://u:p@127.0.0.2:1"] {
            assert!(is_loopback_server(s), "{s}");
        }
        for s in ["nats://10.0.0.1:4222", "nats://broker.example:4222", "nats://[2001:db8::1]:4222"] {
            assert!(!is_loopback_server(s), "{s}");
        }
    }
}
