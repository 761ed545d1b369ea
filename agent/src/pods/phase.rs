//! What kubelet derives from container states: whether to restart an exited container,
//! and the pod's phase.

/// The restart policy of a pod (`spec.restartPolicy`, default Always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn parse(s: Option<&str>) -> RestartPolicy {
        match s {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether an app container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Whether a failed init container is retried (init containers always run to success
    /// unless the pod never restarts).
    pub fn retries_init(self) -> bool {
        self != RestartPolicy::Never
    }
}

/// One container as the phase computation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Never ran yet (creating, pulling, or waiting for init containers).
    Waiting,
    Running,
    /// Ended with this code; a container waiting to be restarted counts with the code of
    /// its last run, as kubelet counts it.
    Exited(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// kubelet's `getPhase`: `init` are the ordinary init containers and `app` the app
/// containers, in spec order (sidecars do not decide the phase).
pub fn phase(policy: RestartPolicy, init: &[Observed], app: &[Observed]) -> Phase {
    let mut pending_init = false;
    for s in init {
        match s {
            Observed::Exited(0) => {}
            Observed::Exited(_) if !policy.retries_init() => return Phase::Failed,
            _ => pending_init = true,
        }
    }
    let app_started = app.iter().any(|s| *s != Observed::Waiting);
    if pending_init && !app_started {
        return Phase::Pending;
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in app {
        match s {
            Observed::Waiting => waiting += 1,
            Observed::Running => running += 1,
            Observed::Exited(code) => {
                stopped += 1;
                if *code == 0 {
                    succeeded += 1;
                }
            }
        }
    }
    if waiting > 0 {
        return Phase::Pending;
    }
    if running > 0 {
        return Phase::Running;
    }
    if stopped == 0 {
        // A pod without app containers does not exist past validation.
        return Phase::Pending;
    }
    match policy {
        RestartPolicy::Always => Phase::Running,
        _ if stopped == succeeded => Phase::Succeeded,
        RestartPolicy::Never => Phase::Failed,
        RestartPolicy::OnFailure => Phase::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::Observed::*;
    use super::*;

    #[test]
    fn phases_like_kubelet() {
        use RestartPolicy::*;
        assert_eq!(phase(Always, &[], &[Waiting, Waiting]), Phase::Pending);
        assert_eq!(phase(Always, &[Running], &[Waiting]), Phase::Pending);
        assert_eq!(phase(Never, &[Exited(1)], &[Waiting]), Phase::Failed);
        assert_eq!(phase(OnFailure, &[Exited(1)], &[Waiting]), Phase::Pending);
        // Every app container must have started for the pod to run.
        assert_eq!(
            phase(Always, &[Exited(0)], &[Running, Waiting]),
            Phase::Pending
        );
        assert_eq!(
            phase(Always, &[Exited(0)], &[Running, Running]),
            Phase::Running
        );
        assert_eq!(phase(Never, &[], &[Exited(0), Exited(0)]), Phase::Succeeded);
        assert_eq!(phase(Never, &[], &[Exited(0), Exited(2)]), Phase::Failed);
        assert_eq!(
            phase(OnFailure, &[], &[Exited(0), Exited(2)]),
            Phase::Running
        );
        assert_eq!(
            phase(OnFailure, &[], &[Exited(0), Exited(0)]),
            Phase::Succeeded
        );
        assert_eq!(phase(Always, &[], &[Exited(0)]), Phase::Running);
        assert_eq!(phase(Always, &[], &[Exited(1)]), Phase::Running);
        assert_eq!(phase(Never, &[], &[Running, Exited(1)]), Phase::Running);
        // Init containers restarting after the app ran do not make the pod pending again.
        assert_eq!(phase(Always, &[Running], &[Running]), Phase::Running);
    }

    #[test]
    fn restart_decisions() {
        assert!(RestartPolicy::parse(None).restarts(0));
        assert!(!RestartPolicy::parse(Some("OnFailure")).restarts(0));
        assert!(RestartPolicy::parse(Some("OnFailure")).restarts(137));
        assert!(!RestartPolicy::parse(Some("Never")).restarts(1));
        assert!(!RestartPolicy::Never.retries_init());
    }
}
