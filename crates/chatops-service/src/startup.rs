//! Wiring: from [`Settings`] to a running bot. Checks the roles against the engine, opens
//! the queue (and owns its background tasks), builds the registry, binds the listener
//! (port 0 works, for tests), then runs the ingress and one worker pool per quadrant until
//! the shutdown future resolves, and stops them in that order: first stop accepting
//! commands, then drain the workers. [`crate::app::App`] is the way in with commands of
//! your own; [`Application::build`] is the same with the built-in ones only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatops_core::Quadrant;
use chatops_core::slack::SlackSigner;
use chatops_queue::Queue;
use chatops_queue::engine::{self, EngineSettings};
use chatops_queue::nats::{ConsumerSettings, NatsSettings};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Settings};
use crate::guard::access::{AccessPolicy, UsergroupCache};
use crate::guard::approvals::ApprovalFlow;
use crate::guard::audit::AuditTrail;
use crate::handler::{BotView, QueueStatsSource};
use crate::ingress::{self, IngressLimits, IngressState};
use crate::metrics::{Metrics, QuadrantLabels};
use crate::probe::QueueProbe;
use crate::registry::{Registry, RegistryBuilder, RegistryError};
use crate::respond::ResponseClient;
use crate::status::E2eWindow;
use crate::worker::{self, WorkerContext};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("opening the queue: {0}")]
    Queue(#[from] chatops_queue::QueueError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("building the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Roles(&'static str),
    /// Access control or approvals cannot work as configured.
    #[error("guardrails: {0}")]
    Guardrails(String),
}

/// What one process runs. `serve` runs everything; `router` and `worker` split it across
/// processes (NATS engine only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub ingress: bool,
    pub quadrants: Vec<Quadrant>,
}

impl Roles {
    pub fn all() -> Self {
        Roles { ingress: true, quadrants: Quadrant::ALL.to_vec() }
    }

    pub fn router() -> Self {
        Roles { ingress: true, quadrants: Vec::new() }
    }

    pub fn workers(quadrants: Vec<Quadrant>) -> Self {
        Roles { ingress: false, quadrants }
    }
}

/// A bot that is bound and ready to run.
pub struct Application {
    listener: Option<tokio::net::TcpListener>,
    metrics_listener: Option<tokio::net::TcpListener>,
    probe: Arc<QueueProbe>,
    ingress: Option<Arc<IngressState>>,
    workers: Arc<WorkerContext>,
    usergroups: Arc<UsergroupCache>,
    settings: Settings,
    roles: Roles,
    background: Background,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Background tasks (the queue's, the ingress's housekeeping), stopped when dropped.
#[derive(Default)]
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

pub use chatops_queue::engine::OpenedQueue;

/// The NATS settings of this configuration: consumers get the pool's lease as `AckWait`
/// and the quadrant's highest `max_attempts` as `MaxDeliver`.
pub fn nats_settings(settings: &Settings, engine: &NatsSettings) -> NatsSettings {
    let mut nats = engine.clone();
    nats.max_depth = settings.queue.max_depth;
    nats.done_retention = settings.queue.done_retention;
    nats.audit_retention = settings.audit.retention;
    for (slot, q) in nats.consumers.iter_mut().zip(Quadrant::ALL) {
        *slot = ConsumerSettings { ack_wait: settings.pool(q).lease, max_deliver: settings.max_attempts_in(q) };
    }
    nats
}

/// The configured engine with this configuration's queue settings applied (they may have
/// been changed after `config::load`), ready for [`engine::open`].
pub fn engine_settings(settings: &Settings) -> EngineSettings {
    match &settings.queue.engine {
        EngineSettings::Sqlite(sqlite) => {
            let mut s = sqlite.clone();
            s.durability = settings.queue.durability;
            s.max_depth = settings.queue.max_depth;
            s.done_retention = settings.queue.done_retention;
            s.audit_retention = settings.audit.retention;
            EngineSettings::Sqlite(s)
        }
        EngineSettings::Nats(nats) => EngineSettings::Nats(Box::new(nats_settings(settings, nats))),
    }
}

/// Opens the configured queue engine as its owner: the embedded one with its lock; a NATS
/// queue with its streams and consumers set up and, in processes that run workers, the
/// watcher that dead-letters jobs whose deliveries ran out.
pub async fn open_queue(settings: &Settings, roles: &Roles) -> Result<OpenedQueue, chatops_queue::QueueError> {
    engine::open(&engine_settings(settings), engine::OpenMode::owner(!roles.quadrants.is_empty())).await
}

/// Refuses split roles on an engine that cannot be shared between processes: a router
/// alone on an embedded queue would accept commands nobody runs.
pub fn check_roles(settings: &Settings, roles: &Roles) -> Result<(), StartupError> {
    if !roles.ingress && !settings.queue.engine.is_nats() {
        return Err(StartupError::Roles("a worker-only process needs a shared queue: pass --queue nats://HOST:PORT"));
    }
    if roles.ingress && roles.quadrants.is_empty() && !settings.queue.engine.is_nats() {
        return Err(StartupError::Roles(
            "a router-only process needs a shared queue: pass --queue nats://HOST:PORT (or run `serve`)",
        ));
    }
    Ok(())
}

/// The opened engine's three faces.
struct Stores {
    queue: Arc<dyn Queue>,
    approvals: Arc<dyn chatops_queue::approvals::ApprovalStore>,
    audit: Arc<dyn chatops_queue::audit::AuditLog>,
}

/// The queue as handlers see it: statistics only.
struct StatsOnly(Arc<dyn Queue>);

#[async_trait::async_trait]
impl QueueStatsSource for StatsOnly {
    async fn stats(&self) -> Result<chatops_queue::QueueStats, chatops_queue::QueueError> {
        self.0.stats().await
    }
}

impl Application {
    /// Builds the bot on the configured queue with the built-in handler kinds (after the
    /// role check). With commands of your own: [`crate::app::App::start`].
    pub async fn build(settings: Settings, roles: Roles) -> Result<Self, StartupError> {
        check_roles(&settings, &roles)?;
        let opened = open_queue(&settings, &roles).await?;
        Self::assemble(settings, roles, opened, RegistryBuilder::default()).await
    }

    /// Builds the bot on an opened queue; the application owns the queue's background
    /// tasks and stops them when dropped. Role checks are the caller's (see [`check_roles`]).
    pub(crate) async fn assemble(
        settings: Settings,
        roles: Roles,
        opened: OpenedQueue,
        handlers: RegistryBuilder,
    ) -> Result<Self, StartupError> {
        // Owned from here on: an early return below stops them too.
        let background = Background(opened.background);
        let registry = Arc::new(handlers.build(settings.commands.clone())?);
        let stores = Stores { queue: opened.queue, approvals: opened.approvals, audit: opened.audit };
        let mut app = Self::wire(settings, roles, stores, registry).await?;
        app.background = background;
        Ok(app)
    }

    async fn wire(
        settings: Settings,
        roles: Roles,
        stores: Stores,
        registry: Arc<Registry>,
    ) -> Result<Self, StartupError> {
        let queue = stores.queue;
        let metrics = Metrics::new();
        let slack = slack_api(&settings)?;
        let client = ResponseClient::new(settings.respond, metrics.clone())?.with_slack_api(slack.clone());
        for spec in registry.commands() {
            if let Some(rule) = &spec.approval
                && rule.approvers.is_empty()
                && rule.usergroups.is_empty()
            {
                return Err(StartupError::Guardrails(format!(
                    "{} requires approval but names no approvers: set its approval = {{ approvers = [...] }} \
                     in the configuration",
                    spec.name
                )));
            }
        }
        let fetch_members: Option<crate::guard::access::FetchMembers> = slack.clone().map(|api| {
            let fetch: crate::guard::access::FetchMembers = Arc::new(move |group: String| {
                let api = api.clone();
                Box::pin(async move { api.usergroup_members(&group).await.map_err(|e| e.to_string()) })
            });
            fetch
        });
        let usergroups = Arc::new(UsergroupCache::new(fetch_members, settings.access.usergroup_refresh));
        usergroups
            .load(&settings.access.usergroups(registry.commands().map(|c| &**c)))
            .await
            .map_err(StartupError::Guardrails)?;
        let policy = Arc::new(AccessPolicy::new(settings.access.clone(), usergroups.clone()));
        // Series with a known, bounded label set start at 0 (see `Metrics::default`): the
        // guarded commands' refusal rules and approval events.
        for spec in registry.commands() {
            let restricted = settings.access.rule_for(spec) != &crate::spec::AccessRule::default()
                || settings.access.default == crate::guard::settings::DefaultPolicy::Deny;
            for rule in ["team", "channel", "user", "default"].into_iter().filter(|_| restricted) {
                let labels = crate::metrics::RefusalLabels { command: spec.name.clone(), rule };
                metrics.access_refusals.get_or_create(&labels).inc_by(0);
            }
            for event in ["requested", "approved", "denied", "expired"].into_iter().filter(|_| spec.requires_approval())
            {
                let labels = crate::metrics::ApprovalLabels { command: spec.name.clone(), event };
                metrics.approvals.get_or_create(&labels).inc_by(0);
            }
        }
        let audit = AuditTrail::new(stores.audit, settings.audit);
        let probe = Arc::new(QueueProbe::new(queue.clone()));
        let metrics_listener = match settings.limits.metrics_listen {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?)
            }
            None => None,
        };
        let (listener, ingress) = if roles.ingress {
            let secret = settings.signing_secret.as_ref().ok_or(ConfigError::MissingSigningSecret)?;
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
            let ingress = Arc::new(IngressState {
                signer: SlackSigner::new(secret.expose_secret().as_bytes()),
                allowed_hosts: settings.allowed_hosts.clone(),
                registry: registry.clone(),
                queue: queue.clone(),
                max_body_bytes: settings.max_body_bytes,
                ack_budget: settings.ack_budget,
                limits: IngressLimits::new(&settings.limits),
                metrics: metrics.clone(),
                probe: probe.clone(),
                metrics_on_ingress: settings.limits.metrics_on_ingress,
                max_interaction_bytes: ingress::MAX_INTERACTION_BYTES,
                access: policy.clone(),
                approvals: Arc::new(ApprovalFlow {
                    store: stores.approvals,
                    registry: registry.clone(),
                    policy,
                    client: client.clone(),
                    allowed_hosts: settings.allowed_hosts.clone(),
                    audit: audit.clone(),
                    metrics: metrics.clone(),
                }),
                audit: audit.clone(),
            });
            (Some(listener), Some(ingress))
        } else {
            (None, None)
        };
        let e2e = Arc::new(E2eWindow::default());
        let bot = Arc::new(BotView::new(
            Instant::now(),
            registry.commands().cloned().collect(),
            Arc::new(StatsOnly(queue.clone())),
            e2e.clone(),
        ));
        let workers = Arc::new(WorkerContext {
            queue,
            registry,
            bot,
            e2e,
            client,
            allowed_hosts: settings.allowed_hosts.clone(),
            retry: settings.retry,
            metrics,
            audit,
        });
        Ok(Application {
            listener,
            metrics_listener,
            probe,
            ingress,
            workers,
            usergroups,
            settings,
            roles,
            background: Background::default(),
        })
    }

    /// The address the ingress listens on (the real port when configured with port 0);
    /// `None` in a worker-only process.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The address `/metrics` is served on (the real port when configured with port 0);
    /// `None` without a metrics listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn queue(&self) -> Arc<dyn Queue> {
        self.workers.queue.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains the workers for up to
    /// the configured grace period, and returns.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let metrics_addr = self.metrics_addr();
        let (listener, ingress) = (self.listener.take(), self.ingress.take());
        let (workers, settings, roles) = (self.workers.clone(), self.settings.clone(), self.roles.clone());
        tracing::info!(
            listen = addr.map(|a| a.to_string()),
            metrics_listen = metrics_addr.map(|a| a.to_string()),
            queue = %describe_engine(&settings.queue.engine),
            quadrants = ?roles.quadrants.iter().map(|q| q.as_str()).collect::<Vec<_>>(),
            response_hosts = ?settings.allowed_hosts.describe(),
            "chatops is serving"
        );
        let stop_ingress = CancellationToken::new();
        let stop_workers = CancellationToken::new();
        let limits = settings.limits;
        let mut server = match (listener, ingress) {
            (Some(listener), Some(ingress)) => {
                // Approval requests expire (and the pending gauge is refreshed) wherever
                // commands are accepted; the store reports each expiry to one sweeper.
                self.background.0.push(ingress.approvals.clone().spawn_sweeper(stop_ingress.clone()));
                self.background.0.push(self.usergroups.clone().spawn_refresh(stop_ingress.clone()));
                let state = ingress.clone();
                self.background.0.push(tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(60));
                    loop {
                        every.tick().await;
                        state.limits.forget_idle_users();
                    }
                }));
                let app = ingress::router(ingress);
                let stop = stop_ingress.clone();
                Some(tokio::spawn(async move { ingress::serve(listener, app, &limits, stop).await }))
            }
            _ => None,
        };
        if let Some(listener) = self.metrics_listener.take() {
            let app = ingress::metrics_router(workers.metrics.clone(), self.probe.clone());
            let stop = stop_ingress.clone();
            self.background.0.push(tokio::spawn(async move {
                let _ = ingress::serve(listener, app, &limits, stop).await;
            }));
        }
        for &q in &roles.quadrants {
            workers
                .metrics
                .worker_pool_size
                .get_or_create(&QuadrantLabels { quadrant: q.as_str() })
                .set(settings.pool(q).concurrency as i64);
        }
        let pools: Vec<_> = roles
            .quadrants
            .iter()
            .map(|&q| {
                let (ctx, stop, grace) = (workers.clone(), stop_workers.clone(), settings.shutdown_grace);
                tokio::spawn(worker::run_pool(ctx, q, settings.pool(q), stop, grace))
            })
            .collect();

        let server_failed = match server.as_mut() {
            Some(server) => tokio::select! {
                _ = shutdown => None,
                r = server => Some(r),
            },
            None => {
                shutdown.await;
                None
            }
        };
        tracing::info!("shutting down: no new commands are accepted");
        stop_ingress.cancel();
        stop_workers.cancel();
        let ingress_drained = async {
            if let (None, Some(server)) = (&server_failed, server.as_mut())
                && tokio::time::timeout(INGRESS_DRAIN, &mut *server).await.is_err()
            {
                tracing::warn!("open connections did not finish within {INGRESS_DRAIN:?}; closing them");
                server.abort();
            }
        };
        let workers_drained = async {
            for pool in pools {
                let _ = pool.await;
            }
        };
        tokio::join!(ingress_drained, workers_drained);
        tracing::info!("chatops stopped");
        match server_failed {
            Some(Ok(Err(e))) => Err(StartupError::Serve(e)),
            _ => Ok(()),
        }
    }
}

/// The queue engine for logs, without credentials (userinfo never reaches a log line).
/// The Web API client when a bot token is configured (progress in the channel), with the
/// token file's permission warning logged.
fn slack_api(settings: &Settings) -> Result<Option<crate::slack_api::SlackApi>, StartupError> {
    if let Some(warning) = &settings.slack.bot_token_warning {
        tracing::warn!("{warning}");
    }
    let api = crate::slack_api::SlackApi::from_settings(&settings.slack)?;
    if api.is_some() {
        tracing::info!(api_base = %settings.slack.api_base, "Slack Web API enabled: in_channel commands show progress in one channel message");
    }
    Ok(api)
}

fn describe_engine(engine: &EngineSettings) -> String {
    engine.redacted()
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// How long to wait for in-flight HTTP requests after shutdown begins.
pub const INGRESS_DRAIN: Duration = Duration::from_secs(5);
