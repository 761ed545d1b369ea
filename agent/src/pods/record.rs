//! What the agent knows about each container of a pod: its state as Kubernetes reports it,
//! its restarts and back-off, its probe results. Pure data with the transitions the pod
//! worker applies; [`super::plan`] decides from it and [`super::status`] reports it.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::phase::Observed;

/// Go's rendering of whole-second durations, as kubelet's messages show them (`10s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs / 60) % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Where a container sits in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An init container that runs to completion before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`: started in init order, then kept
    /// running beside the app containers.
    Sidecar,
    App,
}

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `ContainerCannotRun`.
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: String,
}

/// A container's state in Kubernetes' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `ErrImagePull`, `ImagePullBackOff`,
        /// `CrashLoopBackOff`, `CreateContainerConfigError`, `CreateContainerError`...
        reason: String,
        message: Option<String>,
    },
    Running {
        container_id: String,
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

/// The result of a probe kind, once thresholds are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeState {
    #[default]
    Unknown,
    Success,
    Failure,
}

/// One container of the pod.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub name: String,
    pub kind: Kind,
    /// The image as the spec names it.
    pub image: String,
    /// `<repo>@<digest>` of what runs, once known.
    pub image_id: Option<String>,
    /// How often the container was restarted (the attempt number of the next start).
    pub restart_count: u32,
    /// Whether it was ever started (the first start is not a restart).
    pub started_once: bool,
    pub state: State,
    pub last_state: Option<Terminated>,
    pub backoff: Backoff,
    /// The back-off of failed image pulls.
    pub pull_backoff: Backoff,
    /// When the last pull failed, while the container still shows `ErrImagePull`.
    pub pull_back_off_from: Option<Instant>,
    /// No start before this (crash-loop or pull back-off).
    pub not_before: Option<Instant>,
    /// A start or stop is being carried out.
    pub busy: bool,
    pub startup: ProbeState,
    pub readiness: ProbeState,
    pub liveness: ProbeState,
    /// Why the agent is stopping a running container (e.g. a failed liveness probe),
    /// reported as the reason of its termination when it does not say otherwise.
    pub stop_reason: Option<String>,
    /// The spec this record was made for, to notice changes (an image update restarts
    /// the container, as kubelet does).
    pub spec_hash: u64,
    pub has_startup_probe: bool,
    pub has_readiness_probe: bool,
    /// It was once started as Kubernetes counts it (running, past its startup probe): a
    /// sidecar that was, no longer holds back the containers after it.
    pub ever_started: bool,
}

impl ContainerRecord {
    pub fn new(c: &Container, kind: Kind, waiting_reason: &str) -> ContainerRecord {
        ContainerRecord {
            name: c.name.clone(),
            kind,
            image: c.image.clone().unwrap_or_default(),
            image_id: None,
            restart_count: 0,
            started_once: false,
            state: State::Waiting {
                reason: waiting_reason.to_string(),
                message: None,
            },
            last_state: None,
            backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            pull_back_off_from: None,
            not_before: None,
            busy: false,
            startup: ProbeState::Unknown,
            readiness: ProbeState::Unknown,
            liveness: ProbeState::Unknown,
            stop_reason: None,
            spec_hash: spec_hash(c),
            has_startup_probe: c.startup_probe.is_some(),
            has_readiness_probe: c.readiness_probe.is_some(),
            ever_started: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub fn container_id(&self) -> Option<&str> {
        match &self.state {
            State::Running { container_id, .. } => Some(container_id),
            State::Terminated(t) => Some(&t.container_id),
            State::Waiting { .. } => None,
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match &self.state {
            State::Terminated(t) => Some(t.exit_code),
            _ => None,
        }
    }

    /// The attempt number the next start gets.
    pub fn next_attempt(&self) -> u32 {
        if self.started_once {
            self.restart_count + 1
        } else {
            0
        }
    }

    /// Started: probes are reset, the restart counted, the previous run kept as lastState.
    pub fn started(&mut self, container_id: String, at: Timestamp, attempt: u32) {
        if let State::Terminated(t) = &self.state {
            self.last_state = Some(t.clone());
        }
        self.restart_count = if self.started_once {
            attempt.max(self.restart_count + 1)
        } else {
            attempt
        };
        self.started_once = true;
        self.state = State::Running {
            container_id,
            started_at: at,
        };
        self.busy = false;
        self.not_before = None;
        self.startup = ProbeState::Unknown;
        self.readiness = ProbeState::Unknown;
        self.liveness = ProbeState::Unknown;
        self.ever_started |= !self.has_startup_probe;
    }

    /// A startup probe decided.
    pub fn set_startup(&mut self, state: ProbeState) {
        self.startup = state;
        self.ever_started |= state == ProbeState::Success && self.is_running();
    }

    /// The process ended. `restarts` says whether the pod's policy starts it again; if so
    /// the back-off is armed (first restart at once, then 10 s doubling), and while it
    /// runs the container waits in `CrashLoopBackOff` with this run as its lastState.
    /// `pod` names the pod in kubelet's back-off message.
    pub fn exited(&mut self, t: Terminated, restarts: bool, now: Instant, pod: &str) {
        let ran = t
            .started_at
            .map(|s| t.finished_at.duration_since(s).unsigned_abs())
            .unwrap_or(Duration::ZERO);
        let mut t = t;
        if let Some(reason) = self.stop_reason.take()
            && t.reason != "OOMKilled"
        {
            t.message.get_or_insert(reason);
        }
        self.busy = false;
        self.readiness = ProbeState::Unknown;
        self.liveness = ProbeState::Unknown;
        self.startup = ProbeState::Unknown;
        if !restarts {
            self.state = State::Terminated(t);
            return;
        }
        // Any exit counts, clean ones too: a container that keeps exiting 0 under
        // `restartPolicy: Always` backs off like one that crashes.
        let delay = self.backoff.after_failure(ran);
        if delay.is_zero() {
            self.state = State::Terminated(t);
            self.not_before = None;
        } else {
            self.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {} restarting failed container={} pod={pod}",
                    go_duration(delay),
                    self.name
                )),
            };
            self.last_state = Some(t);
            self.not_before = Some(now + delay);
        }
    }

    /// How the phase computation sees this container.
    pub fn observed(&self) -> Observed {
        match &self.state {
            State::Running { .. } => Observed::Running,
            State::Terminated(t) => Observed::Exited(t.exit_code),
            State::Waiting { .. } => match &self.last_state {
                Some(t) if self.started_once => Observed::Exited(t.exit_code),
                _ => Observed::Waiting,
            },
        }
    }

    /// A start that failed before the process ran (pull, configuration, runtime error).
    pub fn failed_to_start(&mut self, reason: &str, message: String, retry_at: Option<Instant>) {
        self.state = State::Waiting {
            reason: reason.to_string(),
            message: Some(message),
        };
        self.busy = false;
        self.not_before = retry_at;
    }

    /// Started as Kubernetes counts it: running, and past its startup probe if it has one.
    pub fn is_started(&self) -> bool {
        self.is_running() && (!self.has_startup_probe || self.startup == ProbeState::Success)
    }

    /// Ready as Kubernetes counts it: started, and passing its readiness probe if it has one.
    pub fn is_ready(&self) -> bool {
        self.is_started() && (!self.has_readiness_probe || self.readiness == ProbeState::Success)
    }
}

/// A stable digest of the parts of a container spec that, when changed, mean a new
/// container (kubelet restarts a container whose spec hash changed; only the image is
/// mutable in a running pod).
pub fn spec_hash(c: &Container) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.image.hash(&mut h);
    h.finish()
}

/// The containers of a pod, init (and sidecar) containers first, in spec order.
pub fn containers_of(pod: &Pod) -> Vec<(&Container, Kind)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<(&Container, Kind)> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                Kind::Sidecar
            } else {
                Kind::Init
            };
            (c, kind)
        })
        .collect();
    out.extend(spec.containers.iter().map(|c| (c, Kind::App)));
    out
}
