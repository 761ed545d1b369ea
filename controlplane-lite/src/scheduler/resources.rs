//! Resource arithmetic as the scheduler counts it: what a pod requests (containers summed,
//! init containers as the peak they reach, sidecars for the pod's whole life, plus the
//! runtime overhead) and what a node can hold.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::quantity::Quantity as Q;

/// A container without a cpu request counts as this much when nodes are scored, so
/// best-effort pods still spread (kube-scheduler's `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Likewise for memory: 200 MiB (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    /// Extended resources and huge pages, by name (kept sorted).
    pub scalar: Vec<(String, i64)>,
}

/// Whether `name` is counted as a scalar resource (extended resources such as
/// `example.com/gpu`, and `hugepages-*`).
pub fn is_scalar(name: &str) -> bool {
    !matches!(
        name,
        "cpu" | "memory" | "ephemeral-storage" | "pods" | "storage"
    ) && (name.contains('/') || name.starts_with("hugepages-"))
}

fn parse(q: &Quantity, milli: bool) -> i64 {
    match Q::parse(&q.0) {
        Ok(q) if milli => q.to_milli(),
        Ok(q) => q.value(),
        Err(_) => 0,
    }
}

impl Resources {
    /// The resources of a resource list (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = parse(q, true),
                "memory" => r.memory = parse(q, false),
                "ephemeral-storage" => r.ephemeral_storage = parse(q, false),
                n if is_scalar(n) => r.set_scalar(n, parse(q, false)),
                _ => {}
            }
        }
        r
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.scalar[i].1)
            .unwrap_or(0)
    }

    fn set_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 = v,
            Err(i) => self.scalar.insert(i, (name.to_string(), v)),
        }
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        for (n, v) in &o.scalar {
            let cur = self.scalar(n);
            self.set_scalar(n, cur + v);
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        for (n, v) in &o.scalar {
            let cur = self.scalar(n);
            self.set_scalar(n, cur - v);
        }
    }

    /// Each resource raised to at least `o`'s amount.
    pub fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (n, v) in &o.scalar {
            let cur = self.scalar(n);
            if *v > cur {
                self.set_scalar(n, *v);
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// A container's requests; with `non_missing`, an absent cpu or memory request counts as
/// the scoring defaults (an explicit zero stays zero, as in kube-scheduler).
fn container_requests(c: &Container, non_missing: bool) -> Resources {
    let empty = BTreeMap::new();
    let list = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .unwrap_or(&empty);
    let mut r = Resources::from_list(list);
    if non_missing {
        if !list.contains_key("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.contains_key("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// Whether an init container is a sidecar (`restartPolicy: Always`): it keeps running
/// beside the app containers, so its requests count for the pod's whole life.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// What a pod requests: the app containers and sidecars summed, raised to the peak any
/// init container reaches (itself plus the sidecars started before it), plus the
/// overhead. `non_missing` applies the scoring defaults to every container.
pub fn pod_requests(spec: &PodSpec, non_missing: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_missing));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_missing);
        if is_sidecar(c) {
            reqs.add(&r);
            sidecars.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut during = r;
            during.add(&sidecars);
            init_peak.max_with(&during);
        }
    }
    reqs.max_with(&init_peak);
    if let Some(o) = &spec.overhead {
        reqs.add(&Resources::from_list(o));
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn containers_sum_and_init_containers_peak() {
        let s = spec(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}},
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        }));
        let r = pod_requests(&s, false);
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, 101 * 1024 * 1024);
        assert_eq!(r.scalar("example.com/gpu"), 1);
        let nz = pod_requests(&s, true);
        // "b" has no memory request: the scoring default stands in for it.
        assert_eq!(
            nz.memory,
            100 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST + 1024 * 1024
        );
    }

    #[test]
    fn sidecars_count_for_the_whole_life() {
        // A sidecar of 500m, then an init container of 1 cpu (peak 1.5), then the app at 200m.
        let s = spec(json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "1"}}},
            ],
        }));
        assert_eq!(pod_requests(&s, false).milli_cpu, 1500);
        let s = spec(json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "2"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
            ],
        }));
        assert_eq!(pod_requests(&s, false).milli_cpu, 2500);
    }

    #[test]
    fn explicit_zero_is_not_defaulted() {
        let s =
            spec(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "0"}}}]}));
        let nz = pod_requests(&s, true);
        assert_eq!(nz.milli_cpu, 0);
        assert_eq!(nz.memory, DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&s, false).is_zero());
    }
}
