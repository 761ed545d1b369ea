//! From pod specs to cgroup values, as kubelet computes them: cpu requests become
//! shares (v1) or weight (v2), cpu limits a CFS quota, memory limits a byte limit;
//! pod-level values sum the containers with the init-container maximum rule.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::{Value, json};
use skiff_api::quantity::Quantity;

use super::error::CgroupError;
use super::qos::{QosClass, qos_class};

pub(crate) const CPU: &str = "cpu";
pub(crate) const MEMORY: &str = "memory";
pub(crate) type ResourceList = BTreeMap<String, K8sQuantity>;

/// The fewest cpu shares a cgroup gets (what a zero cpu request means).
pub const MIN_SHARES: u64 = 2;
/// The most cpu shares the kernel accepts.
pub const MAX_SHARES: u64 = 262_144;
/// Shares per whole cpu.
pub const SHARES_PER_CPU: u64 = 1024;
/// The CFS period kubelet uses, in microseconds.
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota kubelet sets, in microseconds.
pub const MIN_CFS_QUOTA_US: i64 = 1000;

/// Kubelet's `MilliCPUToShares`: 1024 shares per cpu, at least 2.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = i128::from(milli_cpu) * i128::from(SHARES_PER_CPU) / 1000;
    u64::try_from(shares)
        .unwrap_or(MAX_SHARES)
        .clamp(MIN_SHARES, MAX_SHARES)
}

/// The cgroup v2 `cpu.weight` for v1 shares, by the linear map runc and kubelet use
/// (2..=262144 onto 1..=10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Kubelet's `MilliCPUToQuota`: the CFS quota for a cpu limit over `period_us`,
/// at least 1 ms; `None` for no limit.
pub fn milli_cpu_to_quota(milli_cpu: i64, period_us: u64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    let quota = i128::from(milli_cpu) * i128::from(period_us) / 1000;
    Some(
        i64::try_from(quota)
            .unwrap_or(i64::MAX)
            .max(MIN_CFS_QUOTA_US),
    )
}

/// The values one cgroup gets. Every field is written, so applying the same value
/// twice is a no-op and dropping a limit really lifts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupResources {
    /// cpu.shares on v1; converted to cpu.weight on v2.
    pub cpu_shares: u64,
    /// CFS quota per period in microseconds; `None` is unlimited.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period_us: u64,
    /// Memory limit in bytes; `None` is unlimited.
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of tasks; `None` is unlimited.
    pub pids_limit: Option<i64>,
}

impl Default for CgroupResources {
    /// The kernel's defaults: 1024 shares, nothing limited.
    fn default() -> Self {
        CgroupResources {
            cpu_shares: SHARES_PER_CPU,
            cpu_quota_us: None,
            cpu_period_us: CFS_PERIOD_US,
            memory_limit_bytes: None,
            pids_limit: None,
        }
    }
}

impl CgroupResources {
    /// Unlimited, with `shares` cpu shares (QoS cgroups).
    pub fn with_shares(shares: u64) -> Self {
        CgroupResources {
            cpu_shares: shares,
            ..Default::default()
        }
    }
}

/// How the host says "no swap" in an OCI spec, decided by the cgroup backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSwap {
    /// v1 with swap accounting: memory+swap limit equal to the memory limit.
    MemswEqualsLimit,
    /// v2 with the swap controller: `memory.swap.max = 0`.
    SwapMaxZero,
    /// No swap accounting to configure.
    Unavailable,
}

/// The OCI `linux.resources` object for a container (runc converts shares and
/// swap to their v2 form on v2 hosts), with swap disabled as kubelet does.
pub(crate) fn oci_linux_resources(res: &CgroupResources, no_swap: NoSwap) -> Value {
    let mut cpu = json!({ "shares": res.cpu_shares, "period": res.cpu_period_us });
    if let Some(quota) = res.cpu_quota_us {
        cpu["quota"] = json!(quota);
    }
    let mut out = json!({ "cpu": cpu });
    if let Some(limit) = res.memory_limit_bytes {
        let mut memory = json!({ "limit": limit });
        if no_swap == NoSwap::MemswEqualsLimit {
            memory["swap"] = json!(limit);
        }
        out["memory"] = memory;
    }
    if let Some(limit) = res.pids_limit {
        out["pids"] = json!({ "limit": limit });
    }
    if no_swap == NoSwap::SwapMaxZero {
        out["unified"] = json!({ "memory.swap.max": "0" });
    }
    out
}

/// [`oci_linux_resources`] as the runtime's container spec takes it.
pub(crate) fn spec_resources(
    res: &CgroupResources,
    no_swap: NoSwap,
) -> crate::runtime::spec::Resources {
    let mut unified = std::collections::BTreeMap::new();
    if no_swap == NoSwap::SwapMaxZero {
        unified.insert("memory.swap.max".to_string(), "0".to_string());
    }
    crate::runtime::spec::Resources {
        cpu_shares: Some(res.cpu_shares),
        cpu_quota: res.cpu_quota_us,
        cpu_period: Some(res.cpu_period_us),
        memory_limit: res.memory_limit_bytes,
        memory_swap: res
            .memory_limit_bytes
            .filter(|_| no_swap == NoSwap::MemswEqualsLimit),
        pids_limit: res.pids_limit,
        unified,
    }
}

/// The pod cgroup's values, as kubelet's `ResourceConfigForPod` computes them:
/// Guaranteed pods get shares, quota and memory limit; Burstable pods get shares,
/// plus a quota only when every container limits cpu and a memory limit only when
/// every container limits memory; BestEffort pods get 2 shares. `pids_limit` is
/// node configuration and left unset.
pub fn pod_resources(pod: &Pod) -> Result<CgroupResources, CgroupError> {
    let qos = qos_class(pod);
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(CgroupResources::with_shares(MIN_SHARES));
    };
    if qos == QosClass::BestEffort {
        return Ok(CgroupResources::with_shares(MIN_SHARES));
    }
    let requests = pod_requests(spec)?;
    let limits = pod_limits(spec)?;
    let shares = milli_cpu_to_shares(requests.cpu_milli());
    let quota = milli_cpu_to_quota(limits.amounts.cpu_milli(), CFS_PERIOD_US);
    let memory = Some(limits.amounts.memory_bytes()).filter(|m| *m > 0);
    let mut res = CgroupResources::with_shares(shares);
    match qos {
        QosClass::Guaranteed => {
            res.cpu_quota_us = quota;
            res.memory_limit_bytes = memory;
        }
        _ => {
            if limits.cpu_declared {
                res.cpu_quota_us = quota;
            }
            if limits.memory_declared {
                res.memory_limit_bytes = memory;
            }
        }
    }
    Ok(res)
}

/// A container's values for its OCI spec, as kubelet's `calculateLinuxResources`:
/// shares from the cpu request (or the limit when no request), quota from the cpu
/// limit, memory limit in bytes.
pub fn container_resources(container: &Container) -> Result<CgroupResources, CgroupError> {
    let res = container.resources.as_ref();
    let object = |kind| format!("container {} {kind}", container.name);
    let requests = Amounts::parse(res.and_then(|r| r.requests.as_ref()), &object("requests"))?;
    let limits = Amounts::parse(res.and_then(|r| r.limits.as_ref()), &object("limits"))?;
    let cpu_request = requests.cpu_milli();
    let cpu_limit = limits.cpu_milli();
    let shares_from = if cpu_request == 0 && cpu_limit != 0 {
        cpu_limit
    } else {
        cpu_request
    };
    Ok(CgroupResources {
        cpu_shares: milli_cpu_to_shares(shares_from),
        cpu_quota_us: milli_cpu_to_quota(cpu_limit, CFS_PERIOD_US),
        cpu_period_us: CFS_PERIOD_US,
        memory_limit_bytes: Some(limits.memory_bytes()).filter(|m| *m != 0),
        pids_limit: None,
    })
}

/// The cpu shares of the burstable QoS cgroup: the summed cpu requests of the
/// Burstable pods, as kubelet's QoS manager sets them. Pods whose quantities do not
/// parse count as requesting nothing.
pub fn burstable_cpu_shares<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> u64 {
    let milli: i64 = pods
        .into_iter()
        .filter(|p| qos_class(p) == QosClass::Burstable)
        .filter_map(|p| p.spec.as_ref())
        .filter_map(|spec| match pod_requests(spec) {
            Ok(r) => Some(r.cpu_milli()),
            Err(e) => {
                tracing::warn!(error = %e, "pod requests ignored for burstable cpu shares");
                None
            }
        })
        .fold(0i64, i64::saturating_add);
    milli_cpu_to_shares(milli)
}

/// Cpu and memory amounts of a resource list; `None` where the list has no entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Amounts {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

impl Amounts {
    fn parse(list: Option<&ResourceList>, object: &str) -> Result<Amounts, CgroupError> {
        let get = |name: &str| -> Result<Option<Quantity>, CgroupError> {
            list.and_then(|l| l.get(name))
                .map(|q| {
                    Quantity::try_from(q).map_err(|source| CgroupError::Quantity {
                        object: object.to_string(),
                        resource: name.to_string(),
                        source,
                    })
                })
                .transpose()
        };
        Ok(Amounts {
            cpu: get(CPU)?,
            memory: get(MEMORY)?,
        })
    }

    /// Kubernetes' `addResourceList`.
    fn add(&mut self, other: &Amounts) {
        fn add(slot: &mut Option<Quantity>, q: Option<Quantity>) {
            if let Some(q) = q {
                *slot = Some(slot.map_or(q, |s| s + q));
            }
        }
        add(&mut self.cpu, other.cpu);
        add(&mut self.memory, other.memory);
    }

    /// Kubernetes' `maxResourceList`.
    fn max(&mut self, other: &Amounts) {
        fn max(slot: &mut Option<Quantity>, q: Option<Quantity>) {
            if let Some(q) = q {
                *slot = Some(slot.map_or(q, |s| s.max(q)));
            }
        }
        max(&mut self.cpu, other.cpu);
        max(&mut self.memory, other.memory);
    }

    /// Adds `other` only where this list already has an entry (overhead on limits).
    fn add_where_present(&mut self, other: &Amounts) {
        if let (Some(s), Some(o)) = (self.cpu.as_mut(), other.cpu) {
            *s = *s + o;
        }
        if let (Some(s), Some(o)) = (self.memory.as_mut(), other.memory) {
            *s = *s + o;
        }
    }

    /// Replaces the entries `other` has.
    fn override_with(&mut self, other: &Amounts) {
        if other.cpu.is_some() {
            self.cpu = other.cpu;
        }
        if other.memory.is_some() {
            self.memory = other.memory;
        }
    }

    pub fn cpu_milli(&self) -> i64 {
        self.cpu.map_or(0, |q| q.to_milli())
    }

    pub fn memory_bytes(&self) -> i64 {
        self.memory.map_or(0, |q| q.value())
    }
}

/// Requests as API defaulting leaves them: every limit without a request becomes
/// the request.
pub(crate) fn default_requests(
    requests: Option<&ResourceList>,
    limits: Option<&ResourceList>,
) -> ResourceList {
    let mut out = requests.cloned().unwrap_or_default();
    for (name, q) in limits.into_iter().flatten() {
        out.entry(name.clone()).or_insert_with(|| q.clone());
    }
    out
}

/// Pod-level resources (`spec.resources`), when they set cpu or memory.
pub(crate) fn pod_level(spec: &PodSpec) -> Option<&ResourceRequirements> {
    let res = spec.resources.as_ref()?;
    let sets = |l: &Option<ResourceList>| {
        l.as_ref()
            .is_some_and(|l| l.contains_key(CPU) || l.contains_key(MEMORY))
    };
    (sets(&res.requests) || sets(&res.limits)).then_some(res)
}

/// A quantity for rules that cannot fail (QoS); unparsable ones count as absent.
pub(crate) fn quantity_lenient(name: &str, q: &K8sQuantity) -> Option<Quantity> {
    match Quantity::try_from(q) {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(resource = name, error = %e, "ignoring an unparsable quantity");
            None
        }
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn container_requests(c: &Container) -> Result<Amounts, CgroupError> {
    let res = c.resources.as_ref();
    let limits = res.and_then(|r| r.limits.as_ref());
    let requests = default_requests(res.and_then(|r| r.requests.as_ref()), limits);
    Amounts::parse(Some(&requests), &format!("container {} requests", c.name))
}

fn container_limits(c: &Container) -> Result<Amounts, CgroupError> {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    Amounts::parse(limits, &format!("container {} limits", c.name))
}

fn overhead(spec: &PodSpec) -> Result<Amounts, CgroupError> {
    Amounts::parse(spec.overhead.as_ref(), "pod overhead")
}

/// The pod's effective cpu (millicores) and memory (bytes) requests, as the scheduler and
/// kubelet's admission count them.
pub fn pod_request_totals(pod: &Pod) -> Result<(i64, i64), CgroupError> {
    match pod.spec.as_ref() {
        Some(spec) => {
            let r = pod_requests(spec)?;
            Ok((r.cpu_milli(), r.memory_bytes()))
        }
        None => Ok((0, 0)),
    }
}

/// Kubernetes' `PodRequests`: app containers and sidecars summed, each ordinary init
/// container (plus the sidecars started before it) as a floor, pod-level requests
/// over all of that, plus overhead.
fn pod_requests(spec: &PodSpec) -> Result<Amounts, CgroupError> {
    let mut reqs = Amounts::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c)?);
    }
    let mut sidecars = Amounts::default();
    let mut init = Amounts::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        let effective = if is_sidecar(c) {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars
        } else {
            let mut t = r;
            t.add(&sidecars);
            t
        };
        init.max(&effective);
    }
    reqs.max(&init);
    if let Some(pod_res) = pod_level(spec) {
        let limits = pod_res.limits.as_ref();
        let pod_reqs = Amounts::parse(
            Some(&default_requests(pod_res.requests.as_ref(), limits)),
            "pod requests",
        )?;
        reqs.override_with(&pod_reqs);
    }
    reqs.add(&overhead(spec)?);
    Ok(reqs)
}

struct PodLimits {
    amounts: Amounts,
    /// Every container (init ones counting the sidecars before them) limits cpu.
    cpu_declared: bool,
    memory_declared: bool,
}

/// Kubernetes' `PodLimits`, noting whether every container declared each limit.
fn pod_limits(spec: &PodSpec) -> Result<PodLimits, CgroupError> {
    let mut cpu_declared = true;
    let mut memory_declared = true;
    let mut note = |a: &Amounts| {
        if a.cpu.is_none_or(|q| q.is_zero()) {
            cpu_declared = false;
        }
        if a.memory.is_none_or(|q| q.is_zero()) {
            memory_declared = false;
        }
    };
    let mut limits = Amounts::default();
    for c in &spec.containers {
        let l = container_limits(c)?;
        note(&l);
        limits.add(&l);
    }
    let mut sidecars = Amounts::default();
    let mut init = Amounts::default();
    for c in spec.init_containers.iter().flatten() {
        let l = container_limits(c)?;
        let effective = if is_sidecar(c) {
            limits.add(&l);
            sidecars.add(&l);
            sidecars
        } else {
            let mut t = l;
            t.add(&sidecars);
            t
        };
        note(&effective);
        init.max(&effective);
    }
    limits.max(&init);
    if let Some(pod_res) = pod_level(spec) {
        let pod_limits = Amounts::parse(pod_res.limits.as_ref(), "pod limits")?;
        limits.override_with(&pod_limits);
        if pod_limits.cpu.is_some_and(|q| !q.is_zero()) {
            cpu_declared = true;
        }
        if pod_limits.memory.is_some_and(|q| !q.is_zero()) {
            memory_declared = true;
        }
    }
    limits.add_where_present(&overhead(spec)?);
    Ok(PodLimits {
        amounts: limits,
        cpu_declared,
        memory_declared,
    })
}

#[cfg(test)]
pub(crate) mod test_pods {
    use super::*;

    fn list(entries: &[(&str, &str)]) -> Option<ResourceList> {
        (!entries.is_empty()).then(|| {
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
                .collect()
        })
    }

    pub fn ctr(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn sidecar(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..ctr(requests, limits)
        }
    }

    pub fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: (!init.is_empty()).then_some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn set_pod_level(p: &mut Pod, requests: &[(&str, &str)], limits: &[(&str, &str)]) {
        if let Some(spec) = p.spec.as_mut() {
            spec.resources = Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            });
        }
    }

    pub fn set_overhead(p: &mut Pod, overhead: &[(&str, &str)]) {
        if let Some(spec) = p.spec.as_mut() {
            spec.overhead = list(overhead);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_pods::*;
    use super::*;

    #[test]
    fn shares_follow_kubelet() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(2), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1500), 1536);
        assert_eq!(milli_cpu_to_shares(i64::MAX), MAX_SHARES);
    }

    #[test]
    fn weight_follows_the_linear_map() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(MAX_SHARES), 10000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(102), 4);
        assert_eq!(shares_to_weight(0), 1);
    }

    #[test]
    fn quota_follows_kubelet() {
        assert_eq!(milli_cpu_to_quota(0, CFS_PERIOD_US), None);
        assert_eq!(milli_cpu_to_quota(1, CFS_PERIOD_US), Some(1000));
        assert_eq!(milli_cpu_to_quota(10, CFS_PERIOD_US), Some(1000));
        assert_eq!(milli_cpu_to_quota(250, CFS_PERIOD_US), Some(25_000));
        assert_eq!(milli_cpu_to_quota(2000, CFS_PERIOD_US), Some(200_000));
        assert_eq!(milli_cpu_to_quota(i64::MAX, CFS_PERIOD_US), Some(i64::MAX));
    }

    #[test]
    fn guaranteed_pods_get_everything() {
        let c = || ctr(&[], &[("cpu", "500m"), ("memory", "64Mi")]);
        let p = pod(vec![c(), c()], vec![]);
        let r = pod_resources(&p).unwrap();
        assert_eq!(r.cpu_shares, 1024);
        assert_eq!(r.cpu_quota_us, Some(100_000));
        assert_eq!(r.memory_limit_bytes, Some(128 << 20));
        assert_eq!(r.cpu_period_us, CFS_PERIOD_US);
        assert_eq!(r.pids_limit, None);
    }

    #[test]
    fn burstable_pods_get_limits_only_when_every_container_declares_them() {
        // Both limit memory, only one limits cpu.
        let a = ctr(&[("cpu", "100m")], &[("cpu", "200m"), ("memory", "100Mi")]);
        let b = ctr(&[("cpu", "300m")], &[("memory", "50Mi")]);
        let r = pod_resources(&pod(vec![a, b], vec![])).unwrap();
        assert_eq!(r.cpu_shares, milli_cpu_to_shares(400));
        assert_eq!(r.cpu_quota_us, None);
        assert_eq!(r.memory_limit_bytes, Some(150 << 20));

        // An init container without a cpu limit also drops the pod's quota.
        let a = ctr(&[("cpu", "100m")], &[("cpu", "200m")]);
        let init = ctr(&[("cpu", "100m")], &[]);
        let r = pod_resources(&pod(vec![a.clone()], vec![init])).unwrap();
        assert_eq!(r.cpu_quota_us, None);
        assert_eq!(r.memory_limit_bytes, None);
        let r = pod_resources(&pod(vec![a], vec![])).unwrap();
        assert_eq!(r.cpu_quota_us, Some(20_000));
    }

    #[test]
    fn best_effort_pods_get_two_shares() {
        let r = pod_resources(&pod(vec![ctr(&[], &[])], vec![])).unwrap();
        assert_eq!(r, CgroupResources::with_shares(2));
    }

    #[test]
    fn init_containers_set_a_floor() {
        // app: 200m + 300m = 500m; the init container alone wants 1 cpu.
        let apps = vec![
            ctr(&[("cpu", "200m"), ("memory", "10Mi")], &[]),
            ctr(&[("cpu", "300m"), ("memory", "10Mi")], &[]),
        ];
        let init = ctr(&[("cpu", "1"), ("memory", "5Mi")], &[]);
        let spec = pod(apps, vec![init]).spec.unwrap();
        let r = pod_requests(&spec).unwrap();
        assert_eq!(r.cpu_milli(), 1000);
        assert_eq!(r.memory_bytes(), 20 << 20);
    }

    #[test]
    fn sidecars_add_to_apps_and_to_later_init_containers() {
        let app = ctr(&[("cpu", "100m")], &[]);
        let side = sidecar(&[("cpu", "200m")], &[]);
        let late_init = ctr(&[("cpu", "250m")], &[]);
        let spec = pod(vec![app], vec![side, late_init]).spec.unwrap();
        // app + sidecar = 300m; the later init runs beside the sidecar: 450m.
        assert_eq!(pod_requests(&spec).unwrap().cpu_milli(), 450);
    }

    #[test]
    fn overhead_adds_to_requests_and_to_present_limits() {
        let mut p = pod(
            vec![ctr(&[("cpu", "100m")], &[("memory", "100Mi")])],
            vec![],
        );
        set_overhead(&mut p, &[("cpu", "50m"), ("memory", "10Mi")]);
        let spec = p.spec.clone().unwrap();
        let reqs = pod_requests(&spec).unwrap();
        assert_eq!(reqs.cpu_milli(), 150);
        // The memory request defaulted from the limit: 100Mi + 10Mi.
        assert_eq!(reqs.memory_bytes(), 110 << 20);
        let limits = pod_limits(&spec).unwrap();
        assert_eq!(limits.amounts.memory_bytes(), 110 << 20);
        // No cpu limit anywhere, so no overhead on it either.
        assert_eq!(limits.amounts.cpu, None);
        let r = pod_resources(&p).unwrap();
        assert_eq!(r.cpu_shares, milli_cpu_to_shares(150));
        assert_eq!(r.memory_limit_bytes, Some(110 << 20));
    }

    #[test]
    fn pod_level_resources_override_containers() {
        let mut p = pod(vec![ctr(&[("cpu", "100m")], &[])], vec![]);
        set_pod_level(&mut p, &[], &[("cpu", "2"), ("memory", "1Gi")]);
        let r = pod_resources(&p).unwrap();
        assert_eq!(r.cpu_shares, 2048);
        assert_eq!(r.cpu_quota_us, Some(200_000));
        assert_eq!(r.memory_limit_bytes, Some(1 << 30));
    }

    #[test]
    fn containers_follow_kubelet() {
        let r = container_resources(&ctr(&[("cpu", "250m")], &[("cpu", "1"), ("memory", "1Gi")]))
            .unwrap();
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota_us, Some(100_000));
        assert_eq!(r.memory_limit_bytes, Some(1 << 30));
        // Shares from the limit when no request.
        let r = container_resources(&ctr(&[], &[("cpu", "500m")])).unwrap();
        assert_eq!(r.cpu_shares, 512);
        let r = container_resources(&ctr(&[], &[])).unwrap();
        assert_eq!(r, CgroupResources::with_shares(2));
    }

    #[test]
    fn bad_quantities_name_their_place() {
        let mut c = ctr(&[("cpu", "lots")], &[]);
        c.name = "app".into();
        let e = container_resources(&c).unwrap_err();
        assert!(e.to_string().contains("container app requests"), "{e}");
        assert!(
            pod_resources(&pod(
                vec![c.clone(), ctr(&[], &[("memory", "1Gi")])],
                vec![]
            ))
            .is_err()
        );
    }

    #[test]
    fn burstable_shares_sum_burstable_pods_only() {
        let burst = pod(vec![ctr(&[("cpu", "300m")], &[])], vec![]);
        let guaranteed = pod(vec![ctr(&[], &[("cpu", "1"), ("memory", "1Gi")])], vec![]);
        let best = pod(vec![ctr(&[], &[])], vec![]);
        let pods = [burst.clone(), burst, guaranteed, best];
        assert_eq!(burstable_cpu_shares(&pods), milli_cpu_to_shares(600));
        assert_eq!(burstable_cpu_shares(&[]), 2);
    }

    #[test]
    fn oci_resources_disable_swap_the_host_way() {
        let r = CgroupResources {
            cpu_shares: 512,
            cpu_quota_us: Some(50_000),
            cpu_period_us: CFS_PERIOD_US,
            memory_limit_bytes: Some(1 << 20),
            pids_limit: None,
        };
        let v1 = oci_linux_resources(&r, NoSwap::MemswEqualsLimit);
        assert_eq!(
            v1,
            json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000},
                   "memory": {"limit": 1048576, "swap": 1048576}})
        );
        let v2 = oci_linux_resources(&r, NoSwap::SwapMaxZero);
        assert_eq!(v2["unified"], json!({"memory.swap.max": "0"}));
        assert_eq!(v2["memory"], json!({"limit": 1048576}));
        let none = oci_linux_resources(&CgroupResources::with_shares(2), NoSwap::Unavailable);
        assert_eq!(none, json!({"cpu": {"shares": 2, "period": 100000}}));
    }

    #[test]
    fn spec_resources_match_the_oci_json() {
        let r = CgroupResources {
            cpu_shares: 512,
            cpu_quota_us: Some(50_000),
            cpu_period_us: CFS_PERIOD_US,
            memory_limit_bytes: Some(1 << 20),
            pids_limit: Some(64),
        };
        for no_swap in [
            NoSwap::MemswEqualsLimit,
            NoSwap::SwapMaxZero,
            NoSwap::Unavailable,
        ] {
            let spec = spec_resources(&r, no_swap);
            let oci = crate::runtime::spec::generate(
                &crate::runtime::ContainerSpec {
                    id: "c".into(),
                    command: vec!["sh".into()],
                    resources: spec,
                    ..Default::default()
                },
                &Default::default(),
                &Default::default(),
            )
            .unwrap();
            let mut generated = serde_json::to_value(&oci.linux.resources).unwrap();
            generated.as_object_mut().unwrap().remove("devices");
            assert_eq!(generated, oci_linux_resources(&r, no_swap), "{no_swap:?}");
        }
    }
}
