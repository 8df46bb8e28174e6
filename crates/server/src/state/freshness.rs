//! How current a node's snapshot is, and when it is too old to serve.
//!
//! One node (SQLite) is never stale: its snapshot changes only through its own writes. A node
//! of several (PostgreSQL) is current as of the start of its last catch-up that succeeded
//! ([`super::changes::follow`] runs one every second): every change committed before that
//! moment is in its snapshot. When the database cannot be reached, catch-ups fail and the
//! snapshot ages; requests are served from it while its age is within the bound
//! (`--state-max-staleness-secs`, [`DEFAULT_MAX_STALENESS`]) and refused with 503 after it.
//!
//! # Security
//! Staleness is what a revocation made on another node can lag by, so it is bounded: a node
//! past the bound serves nothing until a catch-up succeeds, and a catch-up reads every change
//! after the node's cursor (or reloads the whole snapshot), so a revocation it missed is in
//! force before it serves again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StateError;

/// The staleness bound when none is configured.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);

/// The age of a snapshot, and the bound past which it is not served.
#[derive(Debug)]
pub struct Freshness {
    /// `None`: never stale (one node).
    bound: Option<Duration>,
    inner: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    /// When the snapshot was last known to hold every committed change.
    current_at: Instant,
    /// Why the last catch-up failed, if it did.
    failure: Option<String>,
}

impl Freshness {
    /// A snapshot that is never stale (one node, which alone changes its state).
    pub fn never_stale() -> Freshness {
        Freshness::with_bound(None)
    }

    /// A snapshot current now, stale once older than `bound`.
    pub fn bounded(bound: Duration) -> Freshness {
        Freshness::with_bound(Some(bound))
    }

    fn with_bound(bound: Option<Duration>) -> Freshness {
        Freshness {
            bound,
            inner: Mutex::new(Seen {
                current_at: Instant::now(),
                failure: None,
            }),
        }
    }

    /// The bound (`None`: never stale).
    pub fn bound(&self) -> Option<Duration> {
        self.bound
    }

    /// Changes the bound of a snapshot that can go stale; one that cannot stays so.
    pub fn set_bound(&mut self, bound: Duration) {
        if self.bound.is_some() {
            self.bound = Some(bound);
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records that the snapshot holds every change committed before `at` (when a catch-up
    /// that succeeded began).
    pub fn current_as_of(&self, at: Instant) {
        let mut seen = self.seen();
        seen.current_at = seen.current_at.max(at);
        seen.failure = None;
    }

    /// Records why a catch-up failed.
    pub fn failed(&self, reason: &StateError) {
        self.seen().failure = Some(reason.to_string());
    }

    /// How old the snapshot is at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.seen().current_at)
    }

    /// Whether the snapshot may be served at `now`; if not, why (the bound, its age, the last
    /// failure), as [`StateError::Unavailable`].
    pub fn check(&self, now: Instant) -> Result<(), StateError> {
        let Some(bound) = self.bound else {
            return Ok(());
        };
        let seen = self.seen();
        let age = now.saturating_duration_since(seen.current_at);
        if age <= bound {
            return Ok(());
        }
        let why = match &seen.failure {
            Some(f) => format!(": {f}"),
            None => String::new(),
        };
        Err(StateError::Unavailable(format!(
            "the state snapshot is {}s old, more than the {}s allowed (--state-max-staleness-secs), and the state database has not been read since{why}",
            age.as_secs(),
            bound.as_secs()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_is_never_stale() {
        let f = Freshness::never_stale();
        let later = Instant::now() + Duration::from_secs(3600);
        f.failed(&StateError::Unavailable("down".into()));
        assert!(f.check(later).is_ok());
        let mut f = f;
        f.set_bound(Duration::from_secs(1));
        assert!(
            f.check(later).is_ok(),
            "a bound does not make one node stale"
        );
    }

    #[test]
    fn a_snapshot_is_served_within_the_bound_and_refused_after_it() {
        let f = Freshness::bounded(Duration::from_secs(30));
        let t0 = Instant::now();
        f.current_as_of(t0);
        f.failed(&StateError::Unavailable("connection refused".into()));
        assert!(f.check(t0 + Duration::from_secs(30)).is_ok());
        let e = f.check(t0 + Duration::from_secs(31)).unwrap_err();
        assert_eq!(e.status(), 503);
        assert_eq!(e.code(), "ServiceUnavailable");
        let text = e.to_string();
        assert!(
            text.contains("31s old") && text.contains("30s allowed"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        // A catch-up that succeeds makes it current again, and forgets the failure.
        f.current_as_of(t0 + Duration::from_secs(40));
        assert!(f.check(t0 + Duration::from_secs(41)).is_ok());
        assert_eq!(f.age(t0 + Duration::from_secs(41)), Duration::from_secs(1));
    }

    #[test]
    fn an_older_catch_up_does_not_move_currency_back() {
        let f = Freshness::bounded(Duration::from_secs(5));
        let t0 = Instant::now();
        f.current_as_of(t0 + Duration::from_secs(10));
        f.current_as_of(t0);
        assert!(f.check(t0 + Duration::from_secs(14)).is_ok());
    }
}
