use std::fmt;

/// Which of a container's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

/// What a prober reports to the pod logic. Each event names the container and the runtime
/// id of the instance probed ([`ProbeTarget::container_id`]), so events still queued from a
/// container that has since been restarted can be told apart.
///
/// [`ProbeTarget::container_id`]: super::ProbeTarget::container_id
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The thresholded result changed (the first decision counts as a change): readiness
    /// became true or false, liveness failed (restart the container), startup succeeded
    /// (start liveness and readiness probing) or failed (restart the container).
    Changed {
        container: String,
        container_id: String,
        kind: ProbeKind,
        success: bool,
    },
    /// One attempt failed or could not be made: kubelet's `Unhealthy` event message, e.g.
    /// `Liveness probe failed: HTTP probe failed with statuscode: 500` or
    /// `Readiness probe errored and resulted in unknown state: ...`.
    AttemptFailed {
        container: String,
        container_id: String,
        kind: ProbeKind,
        message: String,
    },
    /// One attempt succeeded with a warning (an httpGet probe answered by a redirect to
    /// another host): kubelet's `ProbeWarning` event message, e.g.
    /// `Readiness probe warning: Probe terminated redirects, Response body: ...`.
    Warning {
        container: String,
        container_id: String,
        kind: ProbeKind,
        message: String,
    },
}

impl ProbeEvent {
    /// The reason of the Kubernetes event kubelet records for this, if any.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            ProbeEvent::Changed { .. } => None,
            ProbeEvent::AttemptFailed { .. } => Some("Unhealthy"),
            ProbeEvent::Warning { .. } => Some("ProbeWarning"),
        }
    }

    pub fn container(&self) -> &str {
        match self {
            ProbeEvent::Changed { container, .. }
            | ProbeEvent::AttemptFailed { container, .. }
            | ProbeEvent::Warning { container, .. } => container,
        }
    }

    /// The runtime id of the container instance probed.
    pub fn container_id(&self) -> &str {
        match self {
            ProbeEvent::Changed { container_id, .. }
            | ProbeEvent::AttemptFailed { container_id, .. }
            | ProbeEvent::Warning { container_id, .. } => container_id,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        match self {
            ProbeEvent::Changed { kind, .. }
            | ProbeEvent::AttemptFailed { kind, .. }
            | ProbeEvent::Warning { kind, .. } => *kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_print_as_kubelet_does() {
        assert_eq!(ProbeKind::Liveness.to_string(), "Liveness");
        assert_eq!(ProbeKind::Readiness.to_string(), "Readiness");
        assert_eq!(ProbeKind::Startup.to_string(), "Startup");
    }
}
