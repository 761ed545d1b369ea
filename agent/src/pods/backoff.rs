//! kubelet's crash-loop back-off: the first restart is immediate, then 10 s, doubling up
//! to 5 min, and forgotten once a container has run for 10 minutes.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off of one container of one pod (or of one image pull).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The wait the next failure gets; `None` until the first failure.
    next: Option<Duration>,
}

impl Backoff {
    /// Records a failure after the container ran for `ran`, and returns how long to wait
    /// before the next start: nothing the first time, then 10 s, 20 s, ... 5 min.
    pub fn after_failure(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.next = None;
        }
        match self.next {
            None => {
                self.next = Some(INITIAL);
                Duration::ZERO
            }
            Some(d) => {
                self.next = Some((d * 2).min(MAX));
                d
            }
        }
    }

    /// Like [`Backoff::after_failure`], but waits from the first failure on (image pulls:
    /// 10 s, 20 s, ... 5 min).
    pub fn after_pull_failure(&mut self) -> Duration {
        let d = self.next.unwrap_or(INITIAL);
        self.next = Some((d * 2).min(MAX));
        d
    }

    /// Forgets every failure.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_then_doubling_to_five_minutes_and_reset_after_ten() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let seq: Vec<u64> = (0..8).map(|_| b.after_failure(quick).as_secs()).collect();
        assert_eq!(seq, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.after_failure(Duration::from_secs(601)), Duration::ZERO);
        assert_eq!(b.after_failure(quick), INITIAL);
    }

    #[test]
    fn pulls_wait_from_the_first_failure() {
        let mut b = Backoff::default();
        let seq: Vec<u64> = (0..7).map(|_| b.after_pull_failure().as_secs()).collect();
        assert_eq!(seq, vec![10, 20, 40, 80, 160, 300, 300]);
        b.reset();
        assert_eq!(b.after_pull_failure(), INITIAL);
    }
}
