//! CPU rates from cumulative counters: kubelet's `usageNanoCores` is the CPU time used
//! between two readings of a cgroup divided by the time between them, so the previous
//! reading of every cgroup is kept.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Readings closer together than this give too noisy a rate: the last rate is repeated
/// and the older reading kept, so the next rate covers a longer window.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Reading {
    time: SystemTime,
    cpu_ns: u64,
    rate: Option<u64>,
}

/// The previous reading per cgroup path.
#[derive(Debug, Default)]
pub struct RateTracker {
    last: HashMap<String, Reading>,
}

impl RateTracker {
    /// Records a reading of `key` and returns its rate in nanocores, if an earlier reading
    /// allows one.
    pub fn observe(&mut self, key: &str, time: SystemTime, cpu_ns: u64) -> Option<u64> {
        let fresh = Reading {
            time,
            cpu_ns,
            rate: None,
        };
        let Some(prev) = self.last.get(key).copied() else {
            self.last.insert(key.to_string(), fresh);
            return None;
        };
        let window = match time.duration_since(prev.time) {
            Ok(w) => w,
            // The clock went back: start over.
            Err(_) => {
                self.last.insert(key.to_string(), fresh);
                return None;
            }
        };
        if window < MIN_WINDOW {
            return prev.rate;
        }
        if cpu_ns < prev.cpu_ns {
            // A counter never goes down in one cgroup; this is a new one under the old path.
            self.last.insert(key.to_string(), fresh);
            return None;
        }
        let used = u128::from(cpu_ns - prev.cpu_ns);
        let rate = u64::try_from(used * 1_000_000_000 / window.as_nanos().max(1)).ok();
        self.last.insert(key.to_string(), Reading { rate, ..fresh });
        rate
    }

    /// Forgets every cgroup not in `seen`, so removed containers do not accumulate.
    pub fn retain(&mut self, seen: &HashSet<String>) {
        self.last.retain(|k, _| seen.contains(k));
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn a_rate_needs_two_readings() {
        let mut r = RateTracker::default();
        assert_eq!(r.observe("/a", at(0), 1_000), None);
        // Half a core for two seconds.
        assert_eq!(r.observe("/a", at(2_000), 1_000_001_000), Some(500_000_000));
        // Idle for a second.
        assert_eq!(r.observe("/a", at(3_000), 1_000_001_000), Some(0));
    }

    #[test]
    fn close_readings_repeat_the_last_rate_and_keep_the_window_open() {
        let mut r = RateTracker::default();
        r.observe("/a", at(0), 0);
        assert_eq!(r.observe("/a", at(1_000), 250_000_000), Some(250_000_000));
        assert_eq!(r.observe("/a", at(1_200), 400_000_000), Some(250_000_000));
        // Measured against the reading at 1 s, not the one at 1.2 s.
        assert_eq!(
            r.observe("/a", at(2_000), 1_250_000_000),
            Some(1_000_000_000)
        );
    }

    #[test]
    fn a_counter_going_back_or_the_clock_going_back_restart_the_series() {
        let mut r = RateTracker::default();
        r.observe("/a", at(5_000), 900);
        assert_eq!(r.observe("/a", at(7_000), 100), None);
        assert_eq!(
            r.observe("/a", at(9_000), 2_000_000_100),
            Some(1_000_000_000)
        );
        assert_eq!(r.observe("/a", at(1_000), 0), None);
    }

    #[test]
    fn keys_are_independent_and_forgotten_when_gone() {
        let mut r = RateTracker::default();
        r.observe("/a", at(0), 0);
        r.observe("/b", at(0), 0);
        assert_eq!(
            r.observe("/b", at(1_000), 3_000_000_000),
            Some(3_000_000_000)
        );
        r.retain(&HashSet::from(["/a".to_string()]));
        assert_eq!(r.len(), 1);
        assert_eq!(r.observe("/b", at(2_000), 3_000_000_000), None);
    }
}
