//! The delay before a Job replaces failed pods: 10 s after the first failure since the last
//! success, doubling with each further one up to a maximum (6 min), counted from when the
//! last failed pod finished.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::pods;
use crate::controllers::clock;

/// Failures since the last success, and when the latest of them happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub failures: u32,
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// The record after pods newly seen succeeded or failed.
    pub fn after(self, succeeded: &[&Pod], failed: &[&Pod]) -> Record {
        let mut failed_at: Vec<Timestamp> = failed.iter().map(|p| pods::finished_at(p)).collect();
        failed_at.sort_unstable();
        let last_success = succeeded.iter().map(|p| pods::finished_at(p)).max();
        match last_success {
            None => match failed_at.last() {
                None => self,
                Some(last) => Record {
                    failures: self.failures + failed_at.len() as u32,
                    last_failure: Some(*last),
                },
            },
            Some(success) => {
                // Only failures after the latest success count.
                let later: Vec<Timestamp> =
                    failed_at.into_iter().filter(|t| *t > success).collect();
                Record {
                    failures: later.len() as u32,
                    last_failure: later.last().copied(),
                }
            }
        }
    }

    /// How long new pods must still wait at `now`.
    pub fn remaining(&self, now: Timestamp, base: Duration, max: Duration) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let mut delay = base;
        for _ in 1..self.failures {
            delay = delay.saturating_mul(2);
            if delay >= max {
                delay = max;
                break;
            }
        }
        delay.saturating_sub(clock::until(last, now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn failed_at(t: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "finishedAt": t}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn delay_doubles_up_to_the_maximum() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        let t0: Timestamp = "2025-01-01T00:00:10Z".parse().unwrap();
        let p = failed_at("2025-01-01T00:00:10Z");
        let r = Record::default().after(&[], &[&p]);
        assert_eq!(r.failures, 1);
        assert_eq!(r.remaining(t0, base, max), Duration::from_secs(10));
        assert_eq!(
            r.remaining(clock::after(t0, Duration::from_secs(4)), base, max),
            Duration::from_secs(6)
        );
        let r2 = r.after(&[], &[&p, &p]);
        assert_eq!(r2.failures, 3);
        assert_eq!(r2.remaining(t0, base, max), Duration::from_secs(40));
        let many = Record {
            failures: 12,
            last_failure: Some(t0),
        };
        assert_eq!(many.remaining(t0, base, max), max);
        assert_eq!(
            many.remaining(clock::after(t0, Duration::from_secs(400)), base, max),
            Duration::ZERO
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let failed = failed_at("2025-01-01T00:00:05Z");
        let mut ok = failed_at("2025-01-01T00:00:08Z");
        ok.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let later = failed_at("2025-01-01T00:00:09Z");
        let r = Record {
            failures: 4,
            last_failure: None,
        }
        .after(&[&ok], &[&failed, &later]);
        assert_eq!(r.failures, 1);
        assert_eq!(
            r.last_failure,
            Some("2025-01-01T00:00:09Z".parse().unwrap())
        );
        let r = r.after(&[&ok], &[]);
        assert_eq!(r, Record::default());
    }
}
