//! Limits that keep the ingress answering legitimate commands while someone floods it: a
//! cap on requests in progress (503 beyond it), a per-user command rate (an ephemeral
//! "slow down" beyond it), and a deadline for reading a request body.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitSettings;

pub struct IngressLimits {
    in_progress: Arc<Semaphore>,
    per_user: Option<DefaultKeyedRateLimiter<(String, String)>>,
    per_user_per_minute: u32,
    pub body_read_timeout: Duration,
}

impl std::fmt::Debug for IngressLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressLimits")
            .field("per_user_per_minute", &self.per_user_per_minute)
            .field("body_read_timeout", &self.body_read_timeout)
            .finish_non_exhaustive()
    }
}

impl IngressLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let per_user = NonZeroU32::new(settings.per_user_per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(settings.per_user_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        IngressLimits {
            in_progress: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            per_user,
            per_user_per_minute: settings.per_user_per_minute,
            body_read_timeout: settings.body_read_timeout,
        }
    }

    /// A slot for one request, or `None` when the cap is reached.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.in_progress.clone().try_acquire_owned().ok()
    }

    /// Whether this user may run another command now. On refusal, how long to wait.
    pub fn check_user(&self, team_id: &str, user_id: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.per_user else { return Ok(()) };
        limiter.check_key(&(team_id.to_owned(), user_id.to_owned())).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
        })
    }

    /// Forgets users whose bucket is full again, so memory does not grow with every user
    /// ever seen. Called periodically.
    pub fn forget_idle_users(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_minute: u32, burst: u32, concurrent: usize) -> LimitSettings {
        LimitSettings {
            max_concurrent_requests: concurrent,
            per_user_per_minute: per_minute,
            per_user_burst: burst,
            max_header_bytes: 16384,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            metrics_listen: None,
        }
    }

    #[test]
    fn a_user_gets_the_burst_then_waits_and_others_are_unaffected() {
        let limits = IngressLimits::new(&settings(60, 3, 10));
        for _ in 0..3 {
            assert!(limits.check_user("T1", "U1").is_ok());
        }
        let wait = limits.check_user("T1", "U1").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limits.check_user("T1", "U2").is_ok(), "another user has their own bucket");
        assert!(limits.check_user("T2", "U1").is_ok(), "the same user id in another team too");
    }

    #[test]
    fn zero_disables_the_rate_limit() {
        let limits = IngressLimits::new(&settings(0, 1, 10));
        for _ in 0..1000 {
            assert!(limits.check_user("T1", "U1").is_ok());
        }
    }

    #[test]
    fn the_concurrency_cap_refuses_beyond_its_size() {
        let limits = IngressLimits::new(&settings(0, 1, 2));
        let a = limits.try_enter().unwrap();
        let _b = limits.try_enter().unwrap();
        assert!(limits.try_enter().is_none());
        drop(a);
        assert!(limits.try_enter().is_some());
    }
}
