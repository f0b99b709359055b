//! Releasing arrivals on time: a wait that ends within tens of microseconds of a scheduled
//! instant instead of on tokio's next 1 ms timer tick.
//!
//! tokio's timer wheel rounds every deadline up to the next millisecond, so a shard that
//! sleeps with it sends up to a millisecond late (the send lag, measured from the scheduled
//! time, had a p99 of 1.4–1.8 ms). Each shard therefore owns a Linux `timerfd`, a kernel
//! high-resolution timer registered with the shard's own runtime like a socket, so while it
//! waits the runtime keeps driving the shard's connections. It is armed [`SPIN_LEAD`] before
//! the slot, and the wait ends in a loop that yields the core (`sched_yield`) and then the
//! task (so the runtime polls its sockets) until the slot is reached; that absorbs the
//! thread's wake-up latency. The loop is bounded: it runs for at most [`SPIN_LEAD`] per
//! arrival, only when the next slot is that close and only when slots are at least eight
//! leads apart ([`spin_lead_for`]), so at 100 arrivals/s it spins for at most 0.6 % of a
//! core and never for more than 12.5 %. At high rates a shard wakes at most every
//! [`MIN_WAKE_INTERVAL`] and sends what is due then, and above 20,000/s per shard
//! ([`COARSE_BELOW_GAP`]) it goes back to tokio's timer, which batches a millisecond. [`plan_wait`] is the pure decision.
//! Where no `timerfd` can be had (another OS, a refused syscall) the wait falls back to
//! tokio's timer, as before.

use std::time::{Duration, Instant};

/// How long before a slot the timer fires; the rest of the wait is a yielding spin. About
/// the wake-up latency of a thread on a busy 2-core machine, and at most 200 µs so that a
/// low rate does not keep a core busy.
pub const SPIN_LEAD: Duration = Duration::from_micros(60);

/// The shortest time between two timer wake-ups of a shard. At high rates the arrivals due
/// within it go out together, up to this much late, instead of one thread wake-up (and,
/// on a busy machine, one wait for a core) per arrival.
pub const MIN_WAKE_INTERVAL: Duration = Duration::from_micros(200);

/// Slots closer than this (over 20,000 arrivals/s per shard) are released on tokio's 1 ms
/// timer: there the goal is throughput, and one wake-up per millisecond costs less than the
/// timer's three system calls per wake-up (measured: 50,000/s held 37 k/s with tokio's timer
/// and 33 k/s with the precise one on the same loaded machine).
pub const COARSE_BELOW_GAP: Duration = Duration::from_micros(50);

/// How to wait for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The slot has come: send now.
    Ready,
    /// The slot is at most [`SPIN_LEAD`] away: yield to the runtime until it comes.
    Spin,
    /// Sleep on the timer until this instant ([`SPIN_LEAD`] before the slot), then spin.
    Timer(Instant),
}

/// Environment variable that overrides [`SPIN_LEAD`] in microseconds (0: no spin, the
/// timer fires at the slot), capped at 200; for measuring the trade-off on a machine.
pub const SPIN_LEAD_ENV: &str = "CHATOPS_LOADTEST_SPIN_US";

/// Decides how to wait from `now` until `due`, spinning for at most `spin_lead`.
pub fn plan_wait(now: Instant, due: Instant, spin_lead: Duration) -> Wait {
    match due.checked_duration_since(now) {
        None => Wait::Ready,
        Some(left) if left.is_zero() => Wait::Ready,
        Some(left) if left <= spin_lead => Wait::Spin,
        Some(_) => Wait::Timer(due - spin_lead),
    }
}

/// The spin allowed before `due`: `max_lead` when the slots are at least eight leads apart
/// (up to about 2,000 arrivals/s per shard), none when they are closer, so spinning takes at
/// most 12.5 % of a core at any rate. At high rates, where slots are microseconds apart, the
/// timer alone is precise enough for the goal (1 ms), and the cores go to the target and the
/// recorder instead of to spinning through the gaps.
pub fn spin_lead_for(max_lead: Duration, previous: Option<Instant>, due: Instant) -> Duration {
    match previous {
        Some(prev) if due.saturating_duration_since(prev) / 8 < max_lead => Duration::ZERO,
        _ => max_lead,
    }
}

/// One shard's precise timer. Create it inside the runtime that will await it.
pub struct Pacer {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    timer: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    spin_lead: Duration,
    /// The slot of the previous wait: the spacing of slots bounds the spin.
    last_due: Option<Instant>,
    /// When the last timer sleep ended ([`MIN_WAKE_INTERVAL`]).
    last_wake: Option<Instant>,
}

impl Pacer {
    pub fn new() -> Pacer {
        let spin_lead = std::env::var(SPIN_LEAD_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(SPIN_LEAD, |us| Duration::from_micros(us.min(200)));
        Pacer {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            timer: timerfd::create().ok(),
            spin_lead,
            last_due: None,
            last_wake: None,
        }
    }

    /// Whether waits are precise (a `timerfd` is in use) rather than on tokio's timer.
    pub fn is_precise(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            self.timer.is_some()
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            false
        }
    }

    /// Returns at `due` or just after it (never before). Cancel-safe: dropping the future
    /// leaves the timer armed at worst, and the next wait re-arms it.
    pub async fn wait_until(&mut self, due: Instant) {
        let lead = spin_lead_for(self.spin_lead, self.last_due, due);
        let coarse = self.last_due.is_some_and(|prev| due.saturating_duration_since(prev) < COARSE_BELOW_GAP);
        self.last_due = Some(due);
        if coarse {
            tokio::time::sleep_until(due.into()).await;
            return;
        }
        loop {
            match plan_wait(Instant::now(), due, lead) {
                Wait::Ready => return,
                Wait::Spin => {
                    // Give the core to another runnable thread first (on a shared machine,
                    // often the target), then let this runtime poll its connections.
                    std::thread::yield_now();
                    tokio::task::yield_now().await;
                }
                Wait::Timer(wake) => {
                    let wake = self.last_wake.map_or(wake, |last| wake.max(last + MIN_WAKE_INTERVAL));
                    self.sleep_until(wake).await;
                    self.last_wake = Some(Instant::now());
                }
            }
        }
    }

    async fn sleep_until(&mut self, wake: Instant) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(timer) = &self.timer {
            if timerfd::sleep_until(timer, wake).await.is_ok() {
                return;
            }
            // A timer that fails once is not trusted again: fall back for the rest of the run.
            self.timer = None;
        }
        tokio::time::sleep_until(wake.into()).await;
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod timerfd {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Instant;

    use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    pub(super) fn create() -> io::Result<AsyncFd<OwnedFd>> {
        let fd =
            rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        // The safe constructor is deprecated because an arbitrary `AsRawFd` may close or
        // swap its descriptor while registered; an `OwnedFd` owns its descriptor until it is
        // dropped with the `AsyncFd`, which is the condition the unsafe replacement asks for
        // (and the workspace forbids unsafe code).
        #[allow(deprecated)]
        AsyncFd::with_interest(fd, Interest::READABLE)
    }

    /// Arms the timer relative to now (std's `Instant` is CLOCK_MONOTONIC on Linux, but
    /// opaque, so an absolute time cannot be taken from it) and waits until it expires.
    pub(super) async fn sleep_until(timer: &AsyncFd<OwnedFd>, wake: Instant) -> io::Result<()> {
        let left = wake.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            // A zero value would disarm the timer; `left` is at least 1 ns here.
            it_value: Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) },
        };
        // Re-arming also resets the expiry count, so a stale expiry cannot end this wait.
        rustix::time::timerfd_settime(timer.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        loop {
            let mut ready = timer.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                // Readiness was stale (an expiry of an earlier, abandoned wait that the
                // re-arm cleared): try_io cleared it, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_wait_spins_only_close_to_the_slot() {
        let now = Instant::now();
        let lead = SPIN_LEAD;
        assert_eq!(plan_wait(now, now, lead), Wait::Ready);
        assert_eq!(plan_wait(now + Duration::from_millis(1), now, lead), Wait::Ready);
        assert_eq!(plan_wait(now, now + Duration::from_micros(10), lead), Wait::Spin);
        assert_eq!(plan_wait(now, now + lead, lead), Wait::Spin);
        let due = now + Duration::from_millis(5);
        assert_eq!(plan_wait(now, due, lead), Wait::Timer(due - lead));
        // No spin at all: the timer is armed for the slot itself.
        assert_eq!(plan_wait(now, due, Duration::ZERO), Wait::Timer(due));
        assert!(SPIN_LEAD <= Duration::from_micros(200), "the spin budget stays bounded");
    }

    #[test]
    fn spin_only_when_slots_are_eight_leads_apart() {
        let t = Instant::now();
        let lead = Duration::from_micros(60);
        assert_eq!(spin_lead_for(lead, None, t), lead);
        // 1,000/s: 1 ms apart, the whole lead.
        assert_eq!(spin_lead_for(lead, Some(t), t + Duration::from_millis(1)), lead);
        // 10,000/s: 100 µs apart, no spin.
        assert_eq!(spin_lead_for(lead, Some(t), t + Duration::from_micros(100)), Duration::ZERO);
        // A slot before the previous one (a new phase) does not underflow.
        assert_eq!(spin_lead_for(lead, Some(t + Duration::from_secs(1)), t), Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waits_never_end_before_the_slot() {
        let mut pacer = Pacer::new();
        for micros in [0u64, 30, 150, 700, 2_300] {
            let due = Instant::now() + Duration::from_micros(micros);
            pacer.wait_until(due).await;
            assert!(Instant::now() >= due, "{micros} µs");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn linux_waits_use_the_precise_timer_and_survive_a_cancelled_wait() {
        let mut pacer = Pacer::new();
        assert!(pacer.is_precise());
        // Abandon a wait whose timer is armed, let it expire unread, then wait again: the
        // stale expiry must not end the second wait early.
        let abandoned = Instant::now() + Duration::from_millis(2);
        let _ = tokio::time::timeout(Duration::from_micros(200), pacer.wait_until(abandoned)).await;
        std::thread::sleep(Duration::from_millis(3));
        let due = Instant::now() + Duration::from_millis(4);
        pacer.wait_until(due).await;
        assert!(Instant::now() >= due);
        assert!(pacer.is_precise(), "the timer did not fail");
    }
}
