//! The time controllers act on, injectable so that schedules, deadlines and back-offs are
//! tested without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told, for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(next) = t.checked_add(jiff::SignedDuration::try_from(by).unwrap_or_default()) {
            *t = next;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `to - from`, zero when `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// `t + d`, saturating at the end of time.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// A cloneable handle on a clock that reads at the second precision the API stores times
/// with, so a time written into a status compares equal to the same time read back.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Clock>);

impl Default for WallClock {
    fn default() -> Self {
        WallClock::system()
    }
}

impl WallClock {
    pub fn system() -> WallClock {
        WallClock(Arc::new(SystemClock))
    }

    /// A clock that stands still until the returned handle moves it.
    pub fn manual(start: Timestamp) -> (WallClock, ManualClock) {
        let m = ManualClock::new(start);
        (WallClock(Arc::new(m.clone())), m)
    }

    pub fn now(&self) -> Timestamp {
        let now = self.0.now();
        Timestamp::from_second(now.as_second()).unwrap_or(now)
    }
}
