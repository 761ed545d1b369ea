use super::ProbeKind;

/// A prober's thresholded result, kept as kubelet's probe worker keeps it: attempts are
/// counted in runs of equal outcomes, and the result moves only when a run reaches the
/// success or failure threshold. Pure, so the rules are tested without probing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    success_threshold: u32,
    failure_threshold: u32,
    /// The outcome of the current run of equal attempts, and its length.
    last: Option<bool>,
    run: u32,
    /// The thresholded result: `None` while unknown.
    result: Option<bool>,
    /// Whether a threshold was ever reached.
    decided: bool,
}

impl ProbeState {
    /// A fresh state with kubelet's initial results: readiness starts failed (a container is
    /// not ready until it says so), liveness succeeded (it lives until proven dead), startup
    /// unknown. Thresholds below 1 count as 1.
    pub fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Self {
        ProbeState {
            kind,
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            last: None,
            run: 0,
            result: match kind {
                ProbeKind::Readiness => Some(false),
                ProbeKind::Liveness => Some(true),
                ProbeKind::Startup => None,
            },
            decided: false,
        }
    }

    /// The current thresholded result (`None`: unknown).
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Feeds one attempt's outcome (a warning counts as a success; an attempt that could not
    /// be made is not fed at all). Returns the new result when it changed, the first
    /// decision always counting as a change.
    pub fn step(&mut self, success: bool) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let changed = !self.decided || self.result != Some(success);
        self.decided = true;
        self.result = Some(success);
        changed.then_some(success)
    }

    /// Whether probing this container is over: a failed liveness or startup probe means the
    /// container is restarted (and a new prober started for the new one), and a startup probe
    /// that succeeded has done its job.
    pub fn done(&self) -> bool {
        match (self.kind, self.decided, self.result) {
            (_, false, _) => false,
            (ProbeKind::Liveness, true, Some(false)) => true,
            (ProbeKind::Startup, true, Some(_)) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut ProbeState, outcomes: &[bool]) -> Vec<Option<bool>> {
        outcomes.iter().map(|&o| state.step(o)).collect()
    }

    #[test]
    fn initial_results() {
        assert_eq!(
            ProbeState::new(ProbeKind::Readiness, 1, 3).result(),
            Some(false)
        );
        assert_eq!(
            ProbeState::new(ProbeKind::Liveness, 1, 3).result(),
            Some(true)
        );
        assert_eq!(ProbeState::new(ProbeKind::Startup, 1, 3).result(), None);
    }

    #[test]
    fn first_decision_counts_as_a_change() {
        // Readiness starts failed, yet its first thresholded failure is reported.
        let mut s = ProbeState::new(ProbeKind::Readiness, 1, 3);
        assert_eq!(
            feed(&mut s, &[false, false, false, false]),
            [None, None, Some(false), None]
        );
        // Liveness starts succeeded, yet its first success is reported.
        let mut s = ProbeState::new(ProbeKind::Liveness, 1, 3);
        assert_eq!(feed(&mut s, &[true, true]), [Some(true), None]);
    }

    #[test]
    fn failures_must_be_consecutive() {
        let mut s = ProbeState::new(ProbeKind::Liveness, 1, 3);
        assert_eq!(
            feed(&mut s, &[false, false, true, false, false, false]),
            [None, None, Some(true), None, None, Some(false)]
        );
        assert_eq!(s.result(), Some(false));
    }

    #[test]
    fn readiness_flaps_only_across_thresholds() {
        let mut s = ProbeState::new(ProbeKind::Readiness, 2, 3);
        assert_eq!(
            feed(
                &mut s,
                &[
                    true, true, false, false, true, false, false, false, true, true
                ]
            ),
            [
                None,
                Some(true),
                None,
                None,
                None,
                None,
                None,
                Some(false),
                None,
                Some(true)
            ]
        );
    }

    #[test]
    fn success_after_one_when_threshold_is_one() {
        let mut s = ProbeState::new(ProbeKind::Readiness, 1, 1);
        assert_eq!(
            feed(&mut s, &[true, false, true, true]),
            [Some(true), Some(false), Some(true), None]
        );
    }

    #[test]
    fn thresholds_below_one_count_as_one() {
        let mut s = ProbeState::new(ProbeKind::Readiness, 0, 0);
        assert_eq!(feed(&mut s, &[false, true]), [Some(false), Some(true)]);
    }

    #[test]
    fn when_probing_ends() {
        let mut live = ProbeState::new(ProbeKind::Liveness, 1, 2);
        live.step(true);
        assert!(!live.done());
        live.step(false);
        assert!(!live.done());
        live.step(false);
        assert!(live.done(), "a dead container is restarted");

        let mut start = ProbeState::new(ProbeKind::Startup, 1, 3);
        start.step(false);
        assert!(!start.done());
        start.step(true);
        assert!(start.done(), "a started container needs no startup probe");

        let mut start = ProbeState::new(ProbeKind::Startup, 1, 2);
        start.step(false);
        start.step(false);
        assert!(start.done());
        assert_eq!(start.result(), Some(false));

        let mut ready = ProbeState::new(ProbeKind::Readiness, 1, 1);
        ready.step(false);
        ready.step(true);
        assert!(
            !ready.done(),
            "readiness is probed for the container's whole life"
        );
    }
}
