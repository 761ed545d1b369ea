//! The replica calculator: from the pods a target selects and their usage samples to the
//! number of replicas a metric asks for, as kube-controller-manager's computes it.
//!
//! Usage is summed per pod and compared with the sum of the pods' requests (utilization
//! targets) or averaged (value targets). A ratio within the tolerance of 1 changes
//! nothing. Samples are distrusted conservatively: pods that are pending, or (for CPU) not
//! ready or still starting, and pods with no sample yet, are left out at first; if they
//! could change the answer, the calculation is rerun treating them as using nothing when
//! scaling up and their whole request (or the target) when scaling down, and a result
//! that then points the other way means no change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_api::quantity::Quantity;

use super::metrics::PodUsage;
use crate::controllers::clock::after;

/// One pod's usage of one resource, in milli-units (millicores, thousandths of a byte).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: Duration,
}

pub type PodMetrics = BTreeMap<String, Sample>;

/// What a calculation looks at: the pods the target selects, their samples, the time.
pub struct Observed<'a> {
    pub pods: &'a [&'a Pod],
    pub metrics: PodMetrics,
    pub now: Timestamp,
}

/// The samples of `resource` (`cpu` or `memory`) per pod; a pod whose sample lists no
/// containers is missing, as in the resource metrics client.
pub fn resource_metrics(usage: &[PodUsage], resource: &str) -> PodMetrics {
    usage
        .iter()
        .filter(|u| !u.containers.is_empty())
        .filter_map(|u| {
            let value = match resource {
                "cpu" => u.containers.iter().map(|c| c.1).sum::<i64>(),
                "memory" => u.containers.iter().map(|c| c.2.saturating_mul(1000)).sum(),
                _ => return None,
            };
            Some((
                u.name.clone(),
                Sample {
                    value,
                    timestamp: u.timestamp,
                    window: u.window,
                },
            ))
        })
        .collect()
}

/// The calculator's settings (kube-controller-manager's flags).
#[derive(Debug, Clone, Copy)]
pub struct Calculator {
    pub tolerance: f64,
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

/// A replica count and the current value it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub replicas: i32,
    /// Utilization in percent of the requests (utilization targets only).
    pub utilization: Option<i32>,
    /// The average per pod, in milli-units.
    pub average: i64,
}

struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn ceil_replicas(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

impl Calculator {
    fn within_tolerance(&self, ratio: f64) -> bool {
        (1.0 - self.tolerance) <= ratio && ratio <= (1.0 + self.tolerance)
    }

    /// Replicas for a utilization target (percent of the pods' requests).
    pub fn resource_replicas(
        &self,
        current: i32,
        target_utilization: i32,
        resource: &str,
        container: Option<&str>,
        observed: Observed<'_>,
    ) -> Result<Proposal, String> {
        let Observed {
            pods,
            mut metrics,
            now,
        } = observed;
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let g = self.group(pods, &metrics, resource, now);
        for p in g.ignored.iter().chain(&g.unready) {
            metrics.remove(p);
        }
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let requests = requests(pods, resource, container)?;
        let (ratio, utilization, average) =
            utilization_ratio(&metrics, &requests, target_utilization)?;
        let proposal = |replicas| Proposal {
            replicas,
            utilization: Some(utilization),
            average,
        };
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok(proposal(current));
            }
            return Ok(proposal(ceil_replicas(ratio * g.ready as f64)));
        }
        if ratio < 1.0 {
            // Scaling down: a pod without a sample may be as busy as its whole request
            // (or the target, when that is above 100%).
            let fallback = i64::from(target_utilization.max(100));
            for p in &g.missing {
                let request = requests.get(p).copied().unwrap_or(0);
                metrics.insert(p.clone(), zero_sample(request * fallback / 100, now));
            }
        } else if ratio > 1.0 {
            for p in &g.missing {
                metrics.insert(p.clone(), zero_sample(0, now));
            }
        }
        if scale_up_with_unready {
            for p in &g.unready {
                metrics.insert(p.clone(), zero_sample(0, now));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
        Ok(proposal(self.rerun(
            current,
            ratio,
            new_ratio,
            metrics.len(),
        )))
    }

    /// Replicas for an average value per pod (`target` in milli-units).
    pub fn plain_replicas(
        &self,
        current: i32,
        target: i64,
        resource: &str,
        observed: Observed<'_>,
    ) -> Result<Proposal, String> {
        let Observed {
            pods,
            mut metrics,
            now,
        } = observed;
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let g = self.group(pods, &metrics, resource, now);
        for p in g.ignored.iter().chain(&g.unready) {
            metrics.remove(p);
        }
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, average) = usage_ratio(&metrics, target);
        let proposal = |replicas| Proposal {
            replicas,
            utilization: None,
            average,
        };
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if self.within_tolerance(ratio) {
                return Ok(proposal(current));
            }
            return Ok(proposal(ceil_replicas(ratio * g.ready as f64)));
        }
        if ratio < 1.0 {
            // Scaling down: a pod without a sample may be using exactly the target.
            for p in &g.missing {
                metrics.insert(p.clone(), zero_sample(target, now));
            }
        } else if ratio > 1.0 {
            for p in &g.missing {
                metrics.insert(p.clone(), zero_sample(0, now));
            }
        }
        if scale_up_with_unready {
            for p in &g.unready {
                metrics.insert(p.clone(), zero_sample(0, now));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target);
        Ok(proposal(self.rerun(
            current,
            ratio,
            new_ratio,
            metrics.len(),
        )))
    }

    /// The answer of the second, conservative pass: no change when it is within the
    /// tolerance or points the other way than the first pass.
    fn rerun(&self, current: i32, ratio: f64, new_ratio: f64, pods: usize) -> i32 {
        if self.within_tolerance(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return current;
        }
        let replicas = ceil_replicas(new_ratio * pods as f64);
        if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
            return current;
        }
        replicas
    }

    fn group(&self, pods: &[&Pod], metrics: &PodMetrics, resource: &str, now: Timestamp) -> Groups {
        let mut g = Groups {
            ready: 0,
            unready: BTreeSet::new(),
            missing: BTreeSet::new(),
            ignored: BTreeSet::new(),
        };
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
            if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
                g.ignored.insert(name);
                continue;
            }
            if phase == "Pending" {
                g.unready.insert(name);
                continue;
            }
            let Some(sample) = metrics.get(&name) else {
                g.missing.insert(name);
                continue;
            };
            if resource == "cpu" && self.cpu_sample_unready(pod, sample, now) {
                g.unready.insert(name);
                continue;
            }
            g.ready += 1;
        }
        g
    }

    /// CPU is spiky while a pod starts: its sample is skipped while the pod is unready, or
    /// within the initialization period until a full window has passed since it became
    /// ready; later, only a pod that has never been ready is skipped.
    fn cpu_sample_unready(&self, pod: &Pod, sample: &Sample, now: Timestamp) -> bool {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        let (Some(ready), Some(start)) = (ready, start) else {
            return true;
        };
        let transition = ready
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::MIN, |t| t.0);
        if after(start, self.cpu_initialization_period) > now {
            ready.status == "False" || sample.timestamp < after(transition, sample.window)
        } else {
            ready.status == "False" && after(start, self.initial_readiness_delay) > transition
        }
    }
}

fn zero_sample(value: i64, now: Timestamp) -> Sample {
    Sample {
        value,
        timestamp: now,
        window: Duration::ZERO,
    }
}

/// Each pod's request of `resource` in milli-units: its containers' (and sidecars') sum,
/// or one container's.
fn requests(
    pods: &[&Pod],
    resource: &str,
    container: Option<&str>,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers: Vec<&Container> = spec
            .map(|s| s.containers.iter())
            .into_iter()
            .flatten()
            .chain(sidecars)
            .collect();
        let mut total = 0i64;
        let mut found = false;
        for c in containers {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .ok_or_else(|| {
                    format!(
                        "missing request for {resource} in container {} of Pod {name}",
                        c.name
                    )
                })?;
            let q = Quantity::parse(&request.0).map_err(|e| {
                format!(
                    "invalid request for {resource} in container {} of Pod {name}: {e}",
                    c.name
                )
            })?;
            total = total.saturating_add(q.to_milli());
            found = true;
            if container.is_some() {
                break;
            }
        }
        if let Some(want) = container
            && !found
        {
            return Err(format!("container {want} not found in Pod {name}"));
        }
        out.insert(name.to_string(), total);
    }
    Ok(out)
}

/// (usage ratio, utilization in percent, average usage per pod) over the pods that have
/// both a sample and a request.
fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, sample) in metrics {
        if let Some(r) = requests.get(pod) {
            used = used.saturating_add(sample.value);
            requested = requested.saturating_add(*r);
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        used / n,
    ))
}

/// (usage ratio, average usage per pod).
fn usage_ratio(metrics: &PodMetrics, target: i64) -> (f64, i64) {
    let total: i64 = metrics
        .values()
        .map(|s| s.value)
        .fold(0, i64::saturating_add);
    let average = total / metrics.len().max(1) as i64;
    (average as f64 / target as f64, average)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: &str = "2025-06-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("time")
    }

    /// A running pod, ready since long ago, requesting `cpu`.
    fn pod(name: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "app", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]},
            "status": {"phase": "Running", "startTime": "2025-06-01T10:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-01T10:00:10Z"}]},
        }))
        .expect("pod")
    }

    fn samples(values: &[(&str, i64)]) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    Sample {
                        value: *v,
                        timestamp: now(),
                        window: Duration::from_secs(15),
                    },
                )
            })
            .collect()
    }

    fn seen<'a>(pods: &'a [&'a Pod], metrics: PodMetrics) -> Observed<'a> {
        Observed {
            pods,
            metrics,
            now: now(),
        }
    }

    fn calc() -> Calculator {
        Calculator {
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }

    #[test]
    fn utilization_above_target_scales_up() {
        let (a, b) = (pod("a", "100m"), pod("b", "100m"));
        let p = calc()
            .resource_replicas(
                2,
                50,
                "cpu",
                None,
                seen(&[&a, &b], samples(&[("a", 100), ("b", 150)])),
            )
            .expect("computes");
        // 125% of requests against 50%: 2.5 × 2 pods.
        assert_eq!(
            p,
            Proposal {
                replicas: 5,
                utilization: Some(125),
                average: 125
            }
        );
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let (a, b) = (pod("a", "100m"), pod("b", "100m"));
        let p = calc()
            .resource_replicas(
                2,
                50,
                "cpu",
                None,
                seen(&[&a, &b], samples(&[("a", 52), ("b", 54)])),
            )
            .expect("computes");
        assert_eq!(p.replicas, 2);
        assert_eq!(p.utilization, Some(53));
    }

    #[test]
    fn missing_samples_are_conservative() {
        let (a, b, c) = (pod("a", "100m"), pod("b", "100m"), pod("c", "100m"));
        // Scaling down: the pod without a sample counts as using its whole request.
        let p = calc()
            .resource_replicas(
                3,
                50,
                "cpu",
                None,
                seen(&[&a, &b, &c], samples(&[("a", 10), ("b", 10)])),
            )
            .expect("computes");
        // (10 + 10 + 100) / 300 = 40% against 50%: ceil(0.8 × 3) = 3.
        assert_eq!(p.replicas, 3);
        // Scaling up: it counts as idle.
        let p = calc()
            .resource_replicas(
                3,
                50,
                "cpu",
                None,
                seen(&[&a, &b, &c], samples(&[("a", 200), ("b", 200)])),
            )
            .expect("computes");
        // (200 + 200 + 0) / 300 = 133% against 50%: ceil(2.66 × 3) = 8.
        assert_eq!(p.replicas, 8);
    }

    #[test]
    fn unready_and_starting_pods_do_not_push_cpu_up() {
        let a = pod("a", "100m");
        let mut b = pod("b", "100m");
        // Just started and not ready yet: its sample is start-up noise.
        b.status = serde_json::from_value(json!({"phase": "Running", "startTime": "2025-06-01T11:59:00Z",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2025-06-01T11:59:00Z"}]}))
        .expect("status");
        let p = calc()
            .resource_replicas(
                2,
                50,
                "cpu",
                None,
                seen(&[&a, &b], samples(&[("a", 100), ("b", 900)])),
            )
            .expect("computes");
        // a alone is at 100%; b counts as idle: (100 + 0) / 200 = 50% → no change.
        assert_eq!(p.replicas, 2);
        // A pending pod is left out the same way.
        let mut pending = pod("c", "100m");
        pending.status = serde_json::from_value(json!({"phase": "Pending"})).expect("status");
        let p = calc()
            .resource_replicas(
                2,
                50,
                "cpu",
                None,
                seen(&[&a, &pending], samples(&[("a", 100)])),
            )
            .expect("computes");
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn requests_must_be_there() {
        let mut a = pod("a", "100m");
        if let Some(spec) = a.spec.as_mut() {
            spec.containers[0].resources = None;
        }
        let err = calc()
            .resource_replicas(1, 50, "cpu", None, seen(&[&a], samples(&[("a", 100)])))
            .expect_err("no request");
        assert_eq!(err, "missing request for cpu in container app of Pod a");
        let err = calc()
            .resource_replicas(1, 50, "cpu", None, seen(&[], samples(&[("a", 100)])))
            .expect_err("no pods");
        assert_eq!(
            err,
            "no pods returned by selector while calculating replica count"
        );
    }

    #[test]
    fn average_values() {
        let (a, b) = (pod("a", "100m"), pod("b", "100m"));
        // Memory is in thousandths of a byte: 300Mi and 100Mi against 100Mi on average.
        let mi = 1024 * 1024 * 1000;
        let p = calc()
            .plain_replicas(
                2,
                100 * mi,
                "memory",
                seen(&[&a, &b], samples(&[("a", 300 * mi), ("b", 100 * mi)])),
            )
            .expect("computes");
        assert_eq!(
            p,
            Proposal {
                replicas: 4,
                utilization: None,
                average: 200 * mi
            }
        );
    }

    #[test]
    fn usage_from_samples() {
        let u = PodUsage {
            name: "a".into(),
            timestamp: now(),
            window: Duration::from_secs(15),
            containers: vec![("x".into(), 10, 1024), ("y".into(), 5, 1)],
        };
        assert_eq!(
            resource_metrics(std::slice::from_ref(&u), "cpu")["a"].value,
            15
        );
        assert_eq!(
            resource_metrics(std::slice::from_ref(&u), "memory")["a"].value,
            1_025_000
        );
        assert!(resource_metrics(&[u], "gpu").is_empty());
    }
}
