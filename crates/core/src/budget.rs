//! The event's one budget, in one place: when it ends, how long a running job is waited for,
//! the backoff and jitter of every retry and poll, and the transient failures got past.
//!
//! The session owns it. A classified upload gets it lent with its plan
//! ([`crate::classified::UploadPlan::budget`]) and hands it back in its report, so chunk retries
//! are timed, bounded and counted by the very same rules as the session's own: nothing is sent
//! or slept past [`Budget::ends_ms`], and every failure shows in the outcome's `retries`.

use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::outcome::Retries;

/// The least time an event gets for its requests and retries, even with
/// GCR_USAGE_WAIT_SECONDS=0 ("do not wait for the job"): submitting still takes a round trip
/// or three, and a transient error deserves a retry or two.
pub const MIN_BUDGET: Duration = Duration::from_secs(10);
/// Per-request timeout bounds: a request never outlives the budget, but always gets a moment.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Budget {
    /// max(wait, MIN_BUDGET) from the start: no request is sent and no retry slept past it, so
    /// slow but successful answers cannot stretch an event beyond its budget either.
    ends_ms: u64,
    /// GCR_USAGE_WAIT_SECONDS from the start: how long a running job is polled.
    wait_until_ms: u64,
    total: Duration,
    retries: Backoff,
    polls: Backoff,
    jitter: Jitter,
    failures: u32,
    last_failure: Option<String>,
}

impl Budget {
    /// `seed` is the host's randomness for this event (jitter).
    pub fn new(wait: Duration, now_ms: u64, seed: u64) -> Budget {
        let total = wait.max(MIN_BUDGET);
        Budget {
            ends_ms: now_ms.saturating_add(millis(total)),
            wait_until_ms: now_ms.saturating_add(millis(wait)),
            total,
            retries: Backoff::retries(),
            polls: Backoff::polling(),
            jitter: Jitter::new(seed),
            failures: 0,
            last_failure: None,
        }
    }

    /// Monotonic ms at which the budget is spent.
    pub fn ends_ms(&self) -> u64 {
        self.ends_ms
    }

    /// The timeout of a request started now, or `None`: the budget is spent, send nothing.
    pub fn request_timeout(&self, now_ms: u64) -> Option<Duration> {
        (now_ms < self.ends_ms)
            .then(|| Duration::from_millis(self.ends_ms - now_ms).clamp(MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT))
    }

    /// A transient failure (`what` in the loader's words), counted. `Ok`: sleep this long, then
    /// try again. `Err`: the sleep would end past the budget — the message to give up with.
    pub fn retry(&mut self, what: String, now_ms: u64) -> Result<Duration, String> {
        self.failures += 1;
        let delay = self.retries.next_delay(self.jitter.next_u64());
        if now_ms.saturating_add(millis(delay)) > self.ends_ms {
            return Err(format!(
                "{what} (gave up after {} tries within the event's {} s budget; the trigger should redeliver)",
                self.failures,
                self.total.as_secs()
            ));
        }
        self.last_failure = Some(what);
        Ok(delay)
    }

    /// Something went through (a job's state was read, a chunk was stored): the next failure
    /// starts the backoff from the beginning.
    pub fn progressed(&mut self) {
        self.retries = Backoff::retries();
    }

    /// The next poll of a running job, or `None` when it would end past the wait deadline.
    pub fn poll(&mut self, now_ms: u64) -> Option<Duration> {
        let delay = self.polls.next_delay(self.jitter.next_u64());
        (now_ms.saturating_add(millis(delay)) <= self.wait_until_ms).then_some(delay)
    }

    /// A new attempt's job is polled from the shortest delay again.
    pub fn new_attempt(&mut self) {
        self.polls = Backoff::polling();
    }

    /// The failures got past, for the outcome (none when there were none).
    pub fn retries(&self) -> Option<Retries> {
        self.last_failure.clone().map(|last| Retries { count: self.failures, last })
    }

    /// How long the event may take in all: max(GCR_USAGE_WAIT_SECONDS, [`MIN_BUDGET`]).
    pub fn total(&self) -> Duration {
        self.total
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_past_the_end_and_every_failure_counted() {
        let mut b = Budget::new(Duration::ZERO, 1_000, 7);
        assert_eq!(b.ends_ms(), 11_000, "GCR_USAGE_WAIT_SECONDS=0 still gets MIN_BUDGET");
        assert_eq!(b.request_timeout(10_999), Some(MIN_REQUEST_TIMEOUT));
        assert_eq!(b.request_timeout(11_000), None);
        let mut now = 1_000;
        let mut slept = 0;
        let last = loop {
            match b.retry(format!("failure {slept}"), now) {
                Ok(d) => {
                    now += millis(d);
                    slept += 1;
                    assert!(now <= b.ends_ms());
                }
                Err(message) => break message,
            }
        };
        assert!(last.contains(&format!("gave up after {} tries within the event's 10 s budget", slept + 1)), "{last}");
        assert_eq!(b.retries().unwrap().count, slept + 1);
        assert!(b.poll(1_000).is_none(), "no wait: no poll");
        let mut waiting = Budget::new(Duration::from_secs(30), 0, 1);
        assert!(waiting.poll(0).is_some() && waiting.retries().is_none());
    }
}
