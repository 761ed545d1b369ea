//! The Node's conditions, computed from what the agent observed.

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the agent knows about the node's health at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Err: why containerd is not usable.
    pub runtime: Result<(), String>,
    /// Err: why the CNI plugin is not usable.
    pub network: Result<(), String>,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
}

impl Health {
    pub fn healthy() -> Health {
        Health {
            runtime: Ok(()),
            network: Ok(()),
            memory_pressure: false,
            disk_pressure: false,
            pid_pressure: false,
        }
    }
}

/// The four conditions kubelet reports, in kubelet's words. A condition whose status
/// did not change keeps its lastTransitionTime.
pub fn conditions(h: &Health, now: &Time, previous: &[NodeCondition]) -> Vec<NodeCondition> {
    let pressure = |type_: &str, on: bool, yes: (&str, &str), no: (&str, &str)| {
        let (reason, message) = if on { yes } else { no };
        (
            type_.to_string(),
            if on { "True" } else { "False" },
            reason.to_string(),
            message.to_string(),
        )
    };
    let ready = match (&h.runtime, &h.network) {
        (Err(e), _) => (
            "Ready".to_string(),
            "False",
            "KubeletNotReady".to_string(),
            format!("container runtime is down: {e}"),
        ),
        (Ok(()), Err(e)) => (
            "Ready".to_string(),
            "False",
            "KubeletNotReady".to_string(),
            format!(
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: {e}"
            ),
        ),
        (Ok(()), Ok(())) => (
            "Ready".to_string(),
            "True",
            "KubeletReady".to_string(),
            "kubelet is posting ready status".to_string(),
        ),
    };
    let all = [
        pressure(
            "MemoryPressure",
            h.memory_pressure,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
        ),
        pressure(
            "DiskPressure",
            h.disk_pressure,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        pressure(
            "PIDPressure",
            h.pid_pressure,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ),
        ready,
    ];
    all.into_iter()
        .map(|(type_, status, reason, message)| {
            let since = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            NodeCondition {
                type_,
                status: status.to_string(),
                reason: Some(reason),
                message: Some(message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(since),
            }
        })
        .collect()
}

/// Whether the conditions differ in anything but their heartbeat times.
pub fn changed(a: &[NodeCondition], b: &[NodeCondition]) -> bool {
    let key = |c: &NodeCondition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        )
    };
    a.len() != b.len() || a.iter().zip(b).any(|(x, y)| key(x) != key(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn ready_and_not_ready_in_kubelets_words() {
        let c = conditions(&Health::healthy(), &t(10), &[]);
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        let mut h = Health::healthy();
        h.network = Err("no CNI configuration in /etc/cni/net.d".into());
        let c2 = conditions(&h, &t(20), &c);
        let ready = c2.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert!(
            ready
                .message
                .as_deref()
                .unwrap()
                .contains("NetworkPluginNotReady")
        );
        assert_eq!(ready.last_transition_time, Some(t(20)));
        let mem = c2.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(
            mem.last_transition_time,
            Some(t(10)),
            "unchanged condition keeps its transition time"
        );
        assert!(changed(&c, &c2));
        assert!(!changed(&c, &conditions(&Health::healthy(), &t(30), &c)));
    }
}
