//! The queue's statistics and readiness as the HTTP endpoints see them, cached for about a
//! second.
//!
//! Every scrape of `/metrics` and every `/readyz` probe would otherwise query SQLite or
//! JetStream; a scraper (or anyone hammering `/readyz`) then competes with commands for
//! the queue. One query answers all callers within the cache's lifetime, and concurrent
//! callers wait for the one query in flight instead of starting their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatops_queue::{Queue, QueueStats};
use tokio::sync::Mutex;

/// How long one answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// How long one query may take before the queue counts as not answering.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

pub struct QueueProbe {
    queue: Arc<dyn Queue>,
    stats: Mutex<Option<(Instant, Option<QueueStats>)>>,
    ready: Mutex<Option<(Instant, bool)>>,
}

impl std::fmt::Debug for QueueProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueProbe").finish_non_exhaustive()
    }
}

impl QueueProbe {
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        QueueProbe { queue, stats: Mutex::new(None), ready: Mutex::new(None) }
    }

    /// The queue's statistics, at most [`CACHE_TTL`] old; `None` when the queue did not
    /// answer (the reason is logged, never shown to the caller).
    pub async fn stats(&self) -> Option<QueueStats> {
        let mut cached = self.stats.lock().await;
        if let Some((at, stats)) = cached.as_ref()
            && at.elapsed() < CACHE_TTL
        {
            return stats.clone();
        }
        let stats = match tokio::time::timeout(QUERY_TIMEOUT, self.queue.stats()).await {
            Ok(Ok(stats)) => Some(stats),
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "reading queue statistics failed");
                None
            }
            Err(_) => {
                tracing::warn!("reading queue statistics timed out after {QUERY_TIMEOUT:?}");
                None
            }
        };
        *cached = Some((Instant::now(), stats.clone()));
        stats
    }

    /// Whether the queue can take work, at most [`CACHE_TTL`] old.
    pub async fn is_ready(&self) -> bool {
        let mut cached = self.ready.lock().await;
        if let Some((at, ready)) = *cached
            && at.elapsed() < CACHE_TTL
        {
            return ready;
        }
        let ready = match tokio::time::timeout(QUERY_TIMEOUT, self.queue.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error.message = %e, "readiness: the queue cannot take work");
                false
            }
            Err(_) => {
                tracing::warn!("readiness: the queue did not answer within {QUERY_TIMEOUT:?}");
                false
            }
        };
        *cached = Some((Instant::now(), ready));
        ready
    }
}
