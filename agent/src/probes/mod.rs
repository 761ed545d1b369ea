//! kubelet's probes and lifecycle hook handlers (being written; this is the interface).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use crate::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        })
    }
}

pub struct ProbeTarget {
    pub pod_ip: Option<IpAddr>,
    pub container_id: String,
    pub runtime: Arc<dyn Runtime>,
    pub container: Container,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    Changed {
        container: String,
        kind: ProbeKind,
        success: bool,
    },
    AttemptFailed {
        container: String,
        kind: ProbeKind,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(String);

pub struct ProberHandle;

pub fn spawn_prober(
    _kind: ProbeKind,
    _probe: &Probe,
    _target: ProbeTarget,
    _tx: tokio::sync::mpsc::UnboundedSender<ProbeEvent>,
) -> Result<ProberHandle, ProbeError> {
    Err(ProbeError("probes are not implemented yet".into()))
}

pub async fn run_handler(
    _handler: &LifecycleHandler,
    _target: &ProbeTarget,
    _timeout: Duration,
    _pod: &str,
) -> Result<(), String> {
    Err("lifecycle hooks are not implemented yet".into())
}
