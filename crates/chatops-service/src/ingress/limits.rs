//! Limits that keep the ingress answering legitimate commands while someone floods it.
//!
//! Two budgets, so that unauthenticated clients cannot take what verified ones need:
//!
//! - *Unverified bodies*: a request whose headers passed the cheap checks (content type,
//!   length, a fresh timestamp, a well-formed signature) may read its body only with a
//!   permit, at most `max_unverified_bodies` at once in total and
//!   `max_unverified_bodies_per_peer` per client address, for at most `body_read_timeout`.
//!   A client that trickles its body holds one of these, never a slot of the other budget.
//! - *Requests in progress*: a request whose signature verified takes a slot for the rest
//!   of its handling (parse, enqueue); 503 beyond `max_concurrent_requests`.
//!
//! Plus a per-user command rate (an ephemeral "slow down" beyond it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitSettings;

pub struct IngressLimits {
    in_progress: Arc<Semaphore>,
    unverified: Arc<Semaphore>,
    unverified_by_peer: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_unverified_per_peer: usize,
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
            unverified: Arc::new(Semaphore::new(settings.max_unverified_bodies)),
            unverified_by_peer: Arc::default(),
            max_unverified_per_peer: settings.max_unverified_bodies_per_peer,
            per_user,
            per_user_per_minute: settings.per_user_per_minute,
            body_read_timeout: settings.body_read_timeout,
        }
    }

    /// A slot for one request, or `None` when the cap is reached.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.in_progress.clone().try_acquire_owned().ok()
    }

    /// A permit to read one unauthenticated body from `peer`, or `None` when the peer or
    /// all peers together already read as many as allowed.
    pub fn try_read_unverified(&self, peer: IpAddr) -> Option<UnverifiedBodyPermit> {
        let total = self.unverified.clone().try_acquire_owned().ok()?;
        let mut by_peer = self.unverified_by_peer.lock().unwrap_or_else(|p| p.into_inner());
        let n = by_peer.entry(peer).or_insert(0);
        if *n >= self.max_unverified_per_peer {
            if *n == 0 {
                by_peer.remove(&peer);
            }
            return None;
        }
        *n += 1;
        Some(UnverifiedBodyPermit { _total: total, peer, by_peer: self.unverified_by_peer.clone() })
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

/// Held while an unauthenticated body is read; gives its place back when dropped.
pub struct UnverifiedBodyPermit {
    _total: OwnedSemaphorePermit,
    peer: IpAddr,
    by_peer: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for UnverifiedBodyPermit {
    fn drop(&mut self) {
        let mut by_peer = self.by_peer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                by_peer.remove(&self.peer);
            }
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
            max_connections: 100,
            max_unverified_bodies: 4,
            max_unverified_bodies_per_peer: 2,
            metrics_listen: None,
            metrics_on_ingress: false,
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

    #[test]
    fn unverified_bodies_are_bounded_per_peer_and_in_total() {
        let limits = IngressLimits::new(&settings(0, 1, 10));
        let (a, b, c) = ([127, 0, 0, 2].into(), [127, 0, 0, 3].into(), [127, 0, 0, 4].into());
        let a1 = limits.try_read_unverified(a).unwrap();
        let _a2 = limits.try_read_unverified(a).unwrap();
        assert!(limits.try_read_unverified(a).is_none(), "a third body from one peer");
        let _b1 = limits.try_read_unverified(b).unwrap();
        let _b2 = limits.try_read_unverified(b).unwrap();
        assert!(limits.try_read_unverified(c).is_none(), "the total budget is spent");
        drop(a1);
        assert!(limits.try_read_unverified(c).is_some(), "a finished read gives its place back");
        assert!(limits.try_enter().is_some(), "verified requests have their own budget");
    }
}
