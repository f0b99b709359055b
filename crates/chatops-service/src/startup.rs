//! Wiring: from [`Settings`] to a running bot. Opens the queue, builds the registry, binds
//! the listener (port 0 works, for tests), then runs the ingress and one worker pool per
//! quadrant until the shutdown future resolves, and stops them in that order: first stop
//! accepting commands, then drain the workers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatops_core::Quadrant;
use chatops_core::slack::SlackSigner;
use chatops_queue::Queue;
use chatops_queue::sqlite::{OpenMode, SqliteQueue, SqliteSettings};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::ingress::{self, IngressState};
use crate::registry::{Registry, RegistryBuilder, RegistryError};
use crate::status::BotState;
use crate::worker::respond::ResponseClient;
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
}

/// A bot that is bound and ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    ingress: Arc<IngressState>,
    workers: Arc<WorkerContext>,
    settings: Settings,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("listener", &self.listener).finish_non_exhaustive()
    }
}

/// Opens the embedded queue in the data directory, as its owner.
pub fn open_embedded_queue(settings: &Settings) -> Result<Arc<dyn Queue>, chatops_queue::QueueError> {
    let mut s = SqliteSettings::new(settings.queue_path());
    s.durability = settings.queue.durability;
    s.max_depth = settings.queue.max_depth;
    s.done_retention = settings.queue.done_retention;
    Ok(Arc::new(SqliteQueue::open(s, OpenMode::Owner)?))
}

impl Application {
    /// Builds the bot on the embedded queue with the built-in handler kinds.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let queue = open_embedded_queue(&settings)?;
        Self::build_with(settings, queue, RegistryBuilder::default()).await
    }

    /// Builds the bot on any queue engine, with extra handler kinds.
    pub async fn build_with(
        settings: Settings,
        queue: Arc<dyn Queue>,
        handlers: RegistryBuilder,
    ) -> Result<Self, StartupError> {
        let registry: Arc<Registry> = Arc::new(handlers.build(settings.commands.clone())?);
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
        let signer = SlackSigner::new(settings.signing_secret.expose_secret().as_bytes());
        let ingress = Arc::new(IngressState {
            signer,
            allowed_hosts: settings.allowed_hosts.clone(),
            registry: registry.clone(),
            queue: queue.clone(),
            max_body_bytes: settings.max_body_bytes,
            ack_budget: settings.ack_budget,
        });
        let bot =
            Arc::new(BotState { started: Instant::now(), registry, queue: queue.clone(), e2e: Default::default() });
        let workers = Arc::new(WorkerContext {
            queue,
            bot,
            client: ResponseClient::new(settings.respond)?,
            allowed_hosts: settings.allowed_hosts.clone(),
            retry: settings.retry,
        });
        Ok(Application { listener, ingress, workers, settings })
    }

    /// The address the ingress listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn queue(&self) -> Arc<dyn Queue> {
        self.workers.queue.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains the workers for up to
    /// the configured grace period, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let addr = self.local_addr();
        let Application { listener, ingress, workers, settings } = self;
        tracing::info!(
            listen = %addr,
            data_dir = %settings.data_dir.display(),
            durability = ?settings.queue.durability,
            response_hosts = ?settings.allowed_hosts.describe(),
            "chatops is serving"
        );
        let stop_ingress = CancellationToken::new();
        let stop_workers = CancellationToken::new();
        let app = ingress::router(ingress);
        let mut server = {
            let stop = stop_ingress.clone();
            tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await })
        };
        let pools: Vec<_> = Quadrant::ALL
            .into_iter()
            .map(|q| {
                let (ctx, stop, grace) = (workers.clone(), stop_workers.clone(), settings.shutdown_grace);
                tokio::spawn(worker::run_pool(ctx, q, settings.pool(q), stop, grace))
            })
            .collect();

        let server_failed = tokio::select! {
            _ = shutdown => None,
            r = &mut server => Some(r),
        };
        tracing::info!("shutting down: no new commands are accepted");
        stop_ingress.cancel();
        stop_workers.cancel();
        let ingress_drained = async {
            if server_failed.is_none() && tokio::time::timeout(INGRESS_DRAIN, &mut server).await.is_err() {
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
