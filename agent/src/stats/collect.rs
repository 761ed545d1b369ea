//! Reading the cgroups of the node, its pods and their running containers into a
//! [`Snapshot`], with CPU rates against the previous reading of each cgroup.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;

use super::StatsError;
use super::node::{self, HostFiles};
use super::rate::RateTracker;
use super::usage::{ContainerUsage, NodeUsage, PodUsage, Snapshot, Usage};
use crate::cgroups::{CgroupManager, CgroupStats};
use crate::pods::manager::RunningPods;
use crate::runtime::{ContainerInfo, Runtime, TaskStatus};

/// Collects the node's resource usage on demand; shared by the API's handlers.
pub struct Collector {
    node_name: String,
    pods: RunningPods,
    runtime: Arc<dyn Runtime>,
    cgroups: Arc<dyn CgroupManager>,
    host: HostFiles,
    rates: Mutex<RateTracker>,
}

impl Collector {
    pub fn new(
        node_name: impl Into<String>,
        pods: RunningPods,
        runtime: Arc<dyn Runtime>,
        cgroups: Arc<dyn CgroupManager>,
        host: HostFiles,
    ) -> Collector {
        Collector {
            node_name: node_name.into(),
            pods,
            runtime,
            cgroups,
            host,
            rates: Mutex::new(RateTracker::default()),
        }
    }

    /// One reading of everything. Containers whose cgroup vanished while being read (they
    /// just ended) are left out; failing to read the node or to list containers fails.
    pub async fn collect(&self) -> Result<Snapshot, StatsError> {
        let time = SystemTime::now();
        let containers = self.runtime.list().await?;
        let pods = self.pods.list();
        let (node_stats, meminfo, boot) = node::read_node(self.cgroups.as_ref(), &self.host)?;
        let node_time = SystemTime::now();
        let cgroups = self.cgroups.as_ref();
        let pod_path = |uid: &str| match cgroups.pod(uid) {
            Ok(p) => p.map(|p| p.path),
            Err(e) => {
                tracing::debug!(uid, error = %e, "no pod cgroup for stats");
                None
            }
        };
        let read = |path: &str| match cgroups.container_stats(path) {
            Ok(s) => Some((SystemTime::now(), s)),
            Err(e) => {
                tracing::debug!(path, error = %e, "cgroup stats not readable");
                None
            }
        };
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        let node_usage = usage(&mut rates, &mut seen, "/", node_time, &node_stats);
        let pods = pod_usages(&pods, &containers, pod_path, read, &mut rates, &mut seen);
        rates.retain(&seen);
        Ok(Snapshot {
            node_name: self.node_name.clone(),
            time,
            node: NodeUsage {
                start_time: boot,
                usage: node_usage,
                available_bytes: meminfo
                    .map(|m| m.total.saturating_sub(node_usage.memory_working_set_bytes)),
            },
            pods,
        })
    }
}

fn usage(
    rates: &mut RateTracker,
    seen: &mut HashSet<String>,
    key: &str,
    time: SystemTime,
    stats: &CgroupStats,
) -> Usage {
    seen.insert(key.to_string());
    Usage {
        time,
        cpu_usage_ns: stats.cpu_usage_ns,
        usage_nano_cores: rates.observe(key, time, stats.cpu_usage_ns),
        memory_usage_bytes: stats.memory_usage_bytes,
        memory_working_set_bytes: stats.memory_working_set_bytes,
    }
}

/// When the container's current run started: the pod status's word for it when that
/// status is about this very container, else when the runtime made it.
fn start_time(pod: &Pod, name: &str, info: &ContainerInfo) -> Option<SystemTime> {
    let status = pod.status.as_ref();
    let reported = [
        status.and_then(|s| s.container_statuses.as_ref()),
        status.and_then(|s| s.init_container_statuses.as_ref()),
        status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == name)
    .filter(|s| {
        s.container_id
            .as_deref()
            .is_some_and(|id| id.rsplit("://").next() == Some(info.id.as_str()))
    })
    .and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
    .map(|t| SystemTime::from(t.0));
    reported.or(info.created_at)
}

/// The readings of every pod with a running container: the pod cgroup found by
/// `pod_path(uid)`, each container at `<pod cgroup>/<container id>`, read by `read`.
pub(crate) fn pod_usages(
    pods: &[Arc<Pod>],
    containers: &[ContainerInfo],
    pod_path: impl Fn(&str) -> Option<String>,
    read: impl Fn(&str) -> Option<(SystemTime, CgroupStats)>,
    rates: &mut RateTracker,
    seen: &mut HashSet<String>,
) -> Vec<PodUsage> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            continue;
        };
        // The newest running attempt of each container name.
        let mut running: BTreeMap<&str, &ContainerInfo> = BTreeMap::new();
        for c in containers {
            let Some(meta) = c.meta.as_ref().filter(|m| m.pod_uid == uid) else {
                continue;
            };
            if c.task.status != TaskStatus::Running {
                continue;
            }
            let newer = running
                .get(meta.container_name.as_str())
                .and_then(|o| o.meta.as_ref())
                .is_none_or(|o| o.attempt < meta.attempt);
            if newer {
                running.insert(meta.container_name.as_str(), c);
            }
        }
        if running.is_empty() {
            continue;
        }
        let Some(pod_path) = pod_path(uid) else {
            continue;
        };
        let mut pod_containers = Vec::new();
        for (name, info) in running {
            let path = format!("{pod_path}/{}", info.id);
            if let Some((time, stats)) = read(&path) {
                pod_containers.push(ContainerUsage {
                    name: name.to_string(),
                    start_time: start_time(pod, name, info),
                    usage: usage(rates, seen, &path, time, &stats),
                });
            }
        }
        if pod_containers.is_empty() {
            continue;
        }
        let pod_usage = read(&pod_path).map(|(t, s)| usage(rates, seen, &pod_path, t, &s));
        out.push(PodUsage {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: uid.to_string(),
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| SystemTime::from(t.0)),
            usage: pod_usage,
            containers: pod_containers,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::runtime::{ContainerMeta, TaskState};

    fn pod(ns: &str, name: &str, uid: &str, statuses: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"namespace": ns, "name": name, "uid": uid},
                "status": {"startTime": "2025-01-01T00:00:00Z", "containerStatuses": statuses},
            }))
            .unwrap(),
        )
    }

    fn container(
        id: &str,
        uid: &str,
        name: &str,
        attempt: u32,
        status: TaskStatus,
    ) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            image: "img".into(),
            labels: Default::default(),
            meta: Some(ContainerMeta {
                pod_uid: uid.into(),
                pod_namespace: "default".into(),
                pod_name: "x".into(),
                container_name: name.into(),
                attempt,
            }),
            created_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)),
            task: TaskState {
                status,
                pid: 1,
                exit: None,
            },
        }
    }

    fn stats(cpu: u64, ws: u64) -> CgroupStats {
        CgroupStats {
            cpu_usage_ns: cpu,
            memory_usage_bytes: ws + 100,
            memory_working_set_bytes: ws,
            pids: None,
        }
    }

    #[test]
    fn pods_with_running_containers_and_their_cgroups() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        let pods = vec![
            pod(
                "default",
                "busy",
                "u1",
                serde_json::json!([{
                    "name": "app", "image": "img", "imageID": "", "ready": true, "restartCount": 1,
                    "containerID": "containerd://c1b",
                    "state": {"running": {"startedAt": "2025-01-01T00:00:05Z"}},
                }]),
            ),
            pod("default", "done", "u2", serde_json::json!([])),
            pod("a", "nocgroup", "u3", serde_json::json!([])),
        ];
        let containers = vec![
            container("c1a", "u1", "app", 0, TaskStatus::Stopped),
            container("c1b", "u1", "app", 1, TaskStatus::Running),
            container("c1s", "u1", "side", 0, TaskStatus::Running),
            container("c2", "u2", "app", 0, TaskStatus::Stopped),
            container("c3", "u3", "app", 0, TaskStatus::Running),
            container("gone", "u1", "late", 0, TaskStatus::Running),
        ];
        let files: HashMap<&str, CgroupStats> = HashMap::from([
            ("/kp/podu1", stats(30, 3000)),
            ("/kp/podu1/c1b", stats(10, 1000)),
            ("/kp/podu1/c1s", stats(20, 2000)),
        ]);
        let pod_path = |uid: &str| (uid != "u3").then(|| format!("/kp/pod{uid}"));
        let read = |p: &str| files.get(p).map(|s| (t0, *s));
        let mut rates = RateTracker::default();
        let mut seen = HashSet::new();
        let out = pod_usages(&pods, &containers, pod_path, read, &mut rates, &mut seen);
        assert_eq!(out.len(), 1, "{out:?}");
        let p = &out[0];
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
            ("default", "busy", "u1")
        );
        assert_eq!(p.usage.unwrap().memory_working_set_bytes, 3000);
        let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "side"]);
        assert_eq!(p.containers[0].usage.cpu_usage_ns, 10);
        // The status speaks of this run of "app"; "side" falls back to the runtime's time.
        assert_eq!(
            p.containers[0].start_time,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_605))
        );
        assert_eq!(
            p.containers[1].start_time,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000))
        );
        assert_eq!(seen.len(), 3);
        assert!(
            p.containers
                .iter()
                .all(|c| c.usage.usage_nano_cores.is_none())
        );

        // A second reading a second later has rates.
        let t1 = t0 + Duration::from_secs(1);
        let read = |p: &str| {
            files.get(p).map(|s| {
                (
                    t1,
                    CgroupStats {
                        cpu_usage_ns: s.cpu_usage_ns + 500_000_000,
                        ..*s
                    },
                )
            })
        };
        let out = pod_usages(&pods, &containers, pod_path, read, &mut rates, &mut seen);
        assert_eq!(
            out[0].containers[0].usage.usage_nano_cores,
            Some(500_000_000)
        );
        assert_eq!(out[0].usage.unwrap().usage_nano_cores, Some(500_000_000));
    }
}
