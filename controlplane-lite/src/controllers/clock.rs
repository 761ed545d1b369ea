//! The wall clock controllers read (for `minReadySeconds`, progress deadlines, condition
//! times), replaceable in unit tests so a deadline passes without waiting for it.

use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A source of "now", at the second precision the API stores times with.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(super::pod_util::now_seconds))
    }

    /// A clock that stands still until [`ManualClock::advance`] moves it.
    pub fn manual(start: Timestamp) -> (Clock, ManualClock) {
        let t = Arc::new(Mutex::new(start));
        let read = t.clone();
        (
            Clock(Arc::new(move || {
                *read.lock().unwrap_or_else(|p| p.into_inner())
            })),
            ManualClock(t),
        )
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

/// The handle that moves a [`Clock::manual`].
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn advance(&self, by: SignedDuration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}
