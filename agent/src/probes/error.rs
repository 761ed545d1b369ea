use super::ProbeKind;

/// A probe that cannot be run as written.
#[derive(Debug, thiserror::Error)]
#[error("{kind} probe of container {container:?}: {problem}")]
pub struct ProbeError {
    pub kind: ProbeKind,
    pub container: String,
    pub problem: ProbeProblem,
}

/// What is wrong with a probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeProblem {
    #[error("no handler: one of exec, httpGet, tcpSocket or grpc is required")]
    NoHandler,
    #[error("more than one handler: {0}")]
    ManyHandlers(String),
    #[error("{field} must be {rule}, not {value}")]
    Setting {
        field: &'static str,
        rule: &'static str,
        value: i64,
    },
    /// The port is neither a number in range nor one of the container's named ports; the
    /// text is kubelet's (`strconv.Atoi: parsing "http": invalid syntax`).
    #[error("port: {0}")]
    Port(String),
    #[error("{0}")]
    Handler(String),
    #[error("no host to probe: the probe names none and the pod has no IP")]
    NoHost,
}
