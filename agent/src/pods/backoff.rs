//! kubelet's crash-loop back-off: 10 s after the first crash, doubling up to 5 min, and
//! forgotten once a container has run for 10 minutes.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off of one container of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    current: Option<Duration>,
}

impl Backoff {
    /// Records an exit after the container ran for `ran`, and returns how long to wait
    /// before the next start.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.current = None;
        }
        let d = match self.current {
            None => INITIAL,
            Some(d) => (d * 2).min(MAX),
        };
        self.current = Some(d);
        d
    }

    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_and_resets_after_ten() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let seq: Vec<u64> = (0..7).map(|_| b.next(quick).as_secs()).collect();
        assert_eq!(seq, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next(Duration::from_secs(601)), INITIAL);
        assert_eq!(b.next(quick), Duration::from_secs(20));
    }
}
