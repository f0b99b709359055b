//! An engine for tests that must open it more than once (a restart): its settings and the
//! temp dir or broker it lives in, opened through `engine::open` as the bot opens it.
//! `on_each_engine!` runs a test body, written once as `async fn(Kind)`, per engine.

use std::time::Duration;

use chatops_queue::engine::{self, EngineSettings, OpenMode, OpenedQueue};
use chatops_queue::nats::{ConsumerSettings, NatsSettings};
use chatops_queue::sqlite::SqliteSettings;
use chatops_testkit::NatsServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Nats,
}

/// Settings a test may change, applied to whichever engine it runs on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tuning {
    pub(crate) max_depth: Option<u64>,
    pub(crate) audit_retention: Option<Duration>,
}

pub(crate) struct Engine {
    pub(crate) kind: Kind,
    settings: EngineSettings,
    _dir: Option<tempfile::TempDir>,
    server: Option<NatsServer>,
}

impl Engine {
    pub(crate) fn start(kind: Kind) -> Engine {
        Self::start_with(kind, Tuning::default())
    }

    pub(crate) fn start_with(kind: Kind, tuning: Tuning) -> Engine {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let mut s = SqliteSettings::new(dir.path().join("queue.db"));
                s.maintenance_interval = Duration::from_millis(50);
                if let Some(depth) = tuning.max_depth {
                    s.max_depth = depth;
                }
                if let Some(retention) = tuning.audit_retention {
                    s.audit_retention = retention;
                }
                Engine { kind, settings: EngineSettings::Sqlite(s), _dir: Some(dir), server: None }
            }
            Kind::Nats => {
                let server = NatsServer::start();
                let mut n = NatsSettings::new(vec![server.url()]);
                n.consumers = [ConsumerSettings { ack_wait: Duration::from_secs(30), max_deliver: 5 }; 4];
                if let Some(depth) = tuning.max_depth {
                    n.max_depth = depth;
                }
                if let Some(retention) = tuning.audit_retention {
                    n.audit_retention = retention;
                }
                Engine { kind, settings: EngineSettings::Nats(Box::new(n)), _dir: None, server: Some(server) }
            }
        }
    }

    /// Opens the engine as a bot process does (SQLite: with the file's lock).
    pub(crate) async fn open(&self) -> OpenedQueue {
        engine::open(&self.settings, OpenMode::owner(false)).await.unwrap()
    }

    /// A second handle on the same store while the first is open, as another process has
    /// it: NATS, another router's connection; SQLite, an admin process's (no lock), with
    /// its own writer thread, so two transactions really do race.
    pub(crate) async fn open_second(&self) -> OpenedQueue {
        let mode = match self.kind {
            Kind::Sqlite => OpenMode::ADMIN,
            Kind::Nats => OpenMode::owner(false),
        };
        engine::open(&self.settings, mode).await.unwrap()
    }

    /// Closes `opened` and opens the engine again: a restart (SQLite: the file is closed
    /// and reopened; NATS: a new connection).
    pub(crate) async fn reopen(&self, opened: OpenedQueue) -> OpenedQueue {
        drop(opened);
        // The writer thread ends once its channel closes; give it a moment to let go.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.open().await
    }

    /// The SQLite file (for tests that corrupt it by hand).
    pub(crate) fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.settings {
            EngineSettings::Sqlite(s) => Some(s.path.clone()),
            EngineSettings::Nats(_) => None,
        }
    }

    pub(crate) fn nats_url(&self) -> Option<String> {
        self.server.as_ref().map(|s| s.url())
    }

    /// The NATS broker (panics on SQLite).
    pub(crate) fn broker(&mut self) -> &mut NatsServer {
        self.server.as_mut().expect("a NATS engine")
    }
}

/// Runs each named `async fn(Kind)` of the calling module once per engine.
#[macro_export]
macro_rules! on_each_engine {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::fixture::Kind::Sqlite).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::fixture::Kind::Nats).await;
                }
            )*
        }
    };
}
