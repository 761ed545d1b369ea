//! The HorizontalPodAutoscaler controller, as kube-controller-manager's: every sync period
//! each HPA reads its target's scale (Deployments, ReplicaSets, StatefulSets), the usage of
//! the pods the target selects (from the resource metrics API) and their requests,
//! proposes a replica count per metric (the largest wins), stabilizes and limits it
//! (`behavior`, or the classic rules), writes the target's `scale` subresource and its own
//! status, and records `SuccessfulRescale` and failure events as
//! "horizontal-pod-autoscaler".
//!
//! Only resource metrics (`Resource`, `ContainerResource`) are served: there is no custom
//! or external metrics API, so `Pods`, `Object` and `External` metrics report that, as
//! upstream does on a cluster without one.

pub mod behavior;
pub mod metrics;
pub mod replicas;
pub mod status;
pub mod target;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_api::labels::Selector;
use skiff_api::quantity::Quantity;
use tokio::task::JoinHandle;

use self::behavior::{Behavior, History, limit_with_rules};
use self::metrics::{MetricsApi, MetricsError, NoMetricsApi, PodMetricsSource, PodUsage};
use self::replicas::{Calculator, Observed, PodMetrics, Proposal, Sample, resource_metrics};
use self::status::{ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED, set_condition};
use self::target::{Scale, TargetKind};
use crate::controllers::clock::{Clock, SystemClock, after, until};
use crate::controllers::context::{Ctx, Informers};
use crate::controllers::runtime::{
    Cluster, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue, itself, run,
    watch,
};

pub const COMPONENT: &str = "horizontal-pod-autoscaler";

/// Starts the controller, reading pod metrics from the API server the cluster's client
/// talks to.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let metrics: Arc<dyn PodMetricsSource> = match ctx.cluster.api_client() {
        Some(client) => Arc::new(MetricsApi::new(client)),
        None => Arc::new(NoMetricsApi),
    };
    start_with(ctx, metrics, Arc::new(SystemClock))
}

/// [`start`] with a given metrics source and clock.
pub fn start_with<C: Cluster>(
    ctx: &Ctx<C>,
    metrics: Arc<dyn PodMetricsSource>,
    clock: Arc<dyn Clock>,
) -> Vec<JoinHandle<()>> {
    let c = Arc::new(HpaController::new(ctx, metrics, clock));
    let q = WorkQueue::new();
    vec![
        watch(&ctx.informers.hpas, q.clone(), itself),
        run(c, q, ctx.settings.workers),
    ]
}

/// What the controller keeps about one HPA between syncs.
#[derive(Default)]
struct Memory {
    uid: String,
    last_sync: Option<Timestamp>,
    history: History,
    /// The pod selector of its target, for telling HPAs that share pods apart.
    selector: Option<Selector>,
}

pub struct HpaController<C> {
    cluster: Arc<C>,
    informers: Informers,
    metrics: Arc<dyn PodMetricsSource>,
    clock: Arc<dyn Clock>,
    calc: Calculator,
    sync_period: Duration,
    downscale_window: Duration,
    memory: Mutex<HashMap<ObjectKey, Memory>>,
}

/// One sync of one HPA: the object, the status being built, the time.
struct Pass {
    key: ObjectKey,
    hpa: Arc<HorizontalPodAutoscaler>,
    status: HorizontalPodAutoscalerStatus,
    now: Timestamp,
}

impl Pass {
    fn condition(&mut self, type_: &str, value: bool, reason: &str, message: impl Into<String>) {
        set_condition(&mut self.status, type_, value, reason, message, self.now);
    }

    fn namespace(&self) -> &str {
        self.key.namespace.as_deref().unwrap_or("")
    }

    /// The whole status anew from the controller's findings, as upstream's setStatus.
    fn set_status(
        &mut self,
        current: i32,
        desired: i32,
        metrics: Vec<MetricStatus>,
        rescaled: bool,
    ) {
        self.status.current_replicas = Some(current).filter(|n| *n != 0);
        self.status.desired_replicas = desired;
        self.status.current_metrics = Some(metrics).filter(|m| !m.is_empty());
        self.status.observed_generation = None;
        if rescaled {
            self.status.last_scale_time = Some(Time(self.now));
        }
    }
}

/// A metric's result: the proposal, its description for events, its status.
struct Computed {
    replicas: i32,
    metric: String,
    status: MetricStatus,
}

/// A metric's failure: the ScalingActive reason, the error as the condition and the
/// event of that reason tell it, and as the metrics' summary error wraps it.
struct Failed {
    reason: &'static str,
    message: String,
    error: String,
}

/// What the metrics asked for.
struct Outcome {
    /// None when no metric could be computed (or one failed while the rest would shrink).
    replicas: Option<i32>,
    metric: String,
    statuses: Vec<MetricStatus>,
    error: Option<String>,
}

fn labels(pod: &Pod) -> std::collections::BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn milli_quantity(milli: i64) -> K8sQuantity {
    K8sQuantity(Quantity::from_milli(milli).canonical())
}

fn seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

impl<C: Cluster> HpaController<C> {
    pub fn new(ctx: &Ctx<C>, metrics: Arc<dyn PodMetricsSource>, clock: Arc<dyn Clock>) -> Self {
        let s = &ctx.settings;
        HpaController {
            cluster: ctx.cluster.clone(),
            informers: ctx.informers.clone(),
            metrics,
            clock,
            calc: Calculator {
                tolerance: s.hpa_tolerance,
                cpu_initialization_period: s.hpa_cpu_initialization_period,
                initial_readiness_delay: s.hpa_initial_readiness_delay,
            },
            sync_period: s.hpa_sync_period,
            downscale_window: s.hpa_downscale_stabilization,
            memory: Mutex::new(HashMap::new()),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Memory>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn warn(&self, hpa: &HorizontalPodAutoscaler, reason: &str, message: impl Into<String>) {
        self.cluster
            .record(ObjectEvent::warning(hpa, reason, message).from(COMPONENT));
    }

    /// One sync, as upstream's reconcileAutoscaler.
    async fn sync(&self, mut p: Pass) -> Result<(), ReconcileError> {
        let old_status = p.hpa.status.clone().unwrap_or_default();
        let spec = p.hpa.spec.clone().unwrap_or_default();
        let r = &spec.scale_target_ref;
        let reference = format!("{}/{}/{}", r.kind, p.namespace(), r.name);

        let found = target::resolve(r).and_then(|kind| {
            target::scale_of(&self.informers, kind, p.namespace(), &r.name).map(|s| (kind, s))
        });
        let (kind, scale) = match found {
            Ok(found) => found,
            Err(e) => {
                self.warn(&p.hpa, "FailedGetScale", e.clone());
                p.condition(
                    ABLE_TO_SCALE,
                    false,
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                );
                tracing::debug!(hpa = %p.key, "failed to query scale subresource for {reference}: {e}");
                return self.write_status(&p, &old_status).await;
            }
        };
        p.condition(
            ABLE_TO_SCALE,
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        let current = scale.spec_replicas;
        self.with_history(&p.key, |h| h.record_initial(current, p.now));

        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut statuses = Vec::new();
        let mut desired = 0;
        let mut reason = String::new();
        let mut rescale = true;
        if current == 0 && min != 0 {
            rescale = false;
            p.condition(
                SCALING_ACTIVE,
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            let metric_specs = spec.metrics.clone().unwrap_or_default();
            let outcome = self.compute(&mut p, &scale, &metric_specs).await;
            statuses = outcome.statuses;
            let Some(proposed) = outcome.replicas else {
                let error = outcome.error.unwrap_or_default();
                let desired = p.status.desired_replicas;
                p.set_status(current, desired, statuses, false);
                self.write_status(&p, &old_status).await?;
                self.warn(&p.hpa, "FailedComputeMetricsReplicas", error.clone());
                tracing::debug!(hpa = %p.key, "failed to compute desired number of replicas based on listed metrics for {reference}: {error}");
                return Ok(());
            };
            if let Some(e) = &outcome.error {
                tracing::debug!(hpa = %p.key, error = %e, "some metrics failed; scaling on the rest");
            }
            let mut rescale_metric = String::new();
            if proposed > desired {
                desired = proposed;
                rescale_metric = outcome.metric;
            }
            if desired > current {
                reason = format!("{rescale_metric} above target");
            }
            if desired < current {
                reason = "All metrics below target".into();
            }
            desired = match &spec.behavior {
                None => self.normalize(&mut p, current, desired, min, max),
                Some(b) => {
                    let b = Behavior::from_spec(b, self.downscale_window);
                    self.normalize_with_behavior(&mut p, &b, current, desired, min, max)
                }
            };
            rescale = desired != current;
        }

        if rescale {
            let ns = Some(p.namespace().to_string());
            let written = match kind {
                TargetKind::Deployment => {
                    self.cluster
                        .scale::<Deployment>(ns.as_deref(), &r.name, desired)
                        .await
                }
                TargetKind::ReplicaSet => {
                    self.cluster
                        .scale::<ReplicaSet>(ns.as_deref(), &r.name, desired)
                        .await
                }
                TargetKind::StatefulSet => {
                    self.cluster
                        .scale::<StatefulSet>(ns.as_deref(), &r.name, desired)
                        .await
                }
            };
            if let Err(e) = written {
                self.warn(
                    &p.hpa,
                    "FailedRescale",
                    format!(
                        "New size: {desired}; reason: {reason}; error: {}",
                        e.message
                    ),
                );
                p.condition(
                    ABLE_TO_SCALE,
                    false,
                    "FailedUpdateScale",
                    format!(
                        "the HPA controller was unable to update the target scale: {}",
                        e.message
                    ),
                );
                let old_desired = p.status.desired_replicas;
                p.set_status(current, old_desired, statuses, false);
                self.write_status(&p, &old_status).await?;
                return Err(e.into());
            }
            p.condition(
                ABLE_TO_SCALE,
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.cluster.record(
                ObjectEvent::normal(
                    &*p.hpa,
                    "SuccessfulRescale",
                    format!("New size: {desired}; reason: {reason}"),
                )
                .from(COMPONENT),
            );
            let b = spec
                .behavior
                .as_ref()
                .map(|b| Behavior::from_spec(b, self.downscale_window));
            self.with_history(&p.key, |h| {
                h.store_scale_event(b.as_ref(), current, desired, p.now);
            });
            tracing::info!(hpa = %p.key, current, desired, %reason, "rescaled {reference}");
        } else {
            desired = current;
        }
        p.set_status(current, desired, statuses, rescale);
        self.write_status(&p, &old_status).await
    }

    fn with_history<T>(&self, key: &ObjectKey, f: impl FnOnce(&mut History) -> T) -> T {
        let mut memory = self.memory();
        f(&mut memory.entry(key.clone()).or_default().history)
    }

    /// Without behavior: the classic downscale stabilization and rate rule.
    fn normalize(&self, p: &mut Pass, current: i32, desired: i32, min: i32, max: i32) -> i32 {
        let now = p.now;
        let window = self.downscale_window;
        let stabilized = self.with_history(&p.key, |h| h.stabilize(desired, window, now));
        if stabilized != desired {
            p.condition(
                ABLE_TO_SCALE,
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            );
        } else {
            p.condition(
                ABLE_TO_SCALE,
                true,
                "ReadyForNewScale",
                "recommended size matches current size",
            );
        }
        let limited = limit_with_rules(current, stabilized, min, max);
        p.condition(
            SCALING_LIMITED,
            limited.replicas != stabilized,
            limited.reason,
            limited.message,
        );
        limited.replicas
    }

    fn normalize_with_behavior(
        &self,
        p: &mut Pass,
        b: &Behavior,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
    ) -> i32 {
        let now = p.now;
        let (stabilized, reason, message) =
            self.with_history(&p.key, |h| h.stabilize_with(b, current, desired, now));
        if stabilized != desired {
            p.condition(ABLE_TO_SCALE, true, reason, message);
        } else {
            p.condition(
                ABLE_TO_SCALE,
                true,
                "ReadyForNewScale",
                "recommended size matches current size",
            );
        }
        let limited = self.with_history(&p.key, |h| {
            h.rate_limit(b, min, max, current, stabilized, now)
        });
        p.condition(
            SCALING_LIMITED,
            limited.replicas != stabilized,
            limited.reason,
            limited.message,
        );
        limited.replicas
    }

    /// Writes the status if it changed.
    async fn write_status(
        &self,
        p: &Pass,
        old: &HorizontalPodAutoscalerStatus,
    ) -> Result<(), ReconcileError> {
        if &p.status == old {
            return Ok(());
        }
        let written: Result<HorizontalPodAutoscaler, _> = self
            .cluster
            .patch_status(
                p.key.namespace.as_deref(),
                &p.key.name,
                &status::patch(&p.status),
            )
            .await;
        if let Err(e) = written {
            self.warn(&p.hpa, "FailedUpdateStatus", e.message.clone());
            return Err(e.into());
        }
        Ok(())
    }

    /// The target's pods, and the check that no other HPA scales any of them.
    fn selected_pods(&self, p: &mut Pass, selector: &str) -> Result<Vec<Arc<Pod>>, String> {
        if selector.is_empty() {
            let e = "selector is required";
            self.warn(&p.hpa, "SelectorRequired", e);
            p.condition(
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            );
            return Err(e.into());
        }
        let parsed = match Selector::parse(selector) {
            Ok(s) => s,
            Err(e) => {
                let e = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                self.warn(&p.hpa, "InvalidSelector", e.clone());
                p.condition(SCALING_ACTIVE, false, "InvalidSelector", e.clone());
                return Err(e);
            }
        };
        let ns = p.namespace().to_string();
        let pods: Vec<Arc<Pod>> = self
            .informers
            .pods
            .list()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|pod| parsed.matches(&labels(pod)))
            .collect();
        let controlling: BTreeSet<String> = {
            let mut memory = self.memory();
            memory.entry(p.key.clone()).or_default().selector = Some(parsed);
            memory
                .iter()
                .filter(|(k, _)| k.namespace.as_deref() == Some(ns.as_str()))
                .filter(|(_, m)| {
                    m.selector
                        .as_ref()
                        .is_some_and(|s| pods.iter().any(|pod| s.matches(&labels(pod))))
                })
                .map(|(k, _)| k.to_string())
                .collect()
        };
        if controlling.len() > 1 {
            let list: Vec<String> = controlling.into_iter().collect();
            let e = format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                list.join(" ")
            );
            self.warn(&p.hpa, "AmbiguousSelector", e.clone());
            p.condition(SCALING_ACTIVE, false, "AmbiguousSelector", e.clone());
            return Err(e);
        }
        Ok(pods)
    }

    /// The replicas the metrics ask for, as upstream's computeReplicasForMetrics.
    async fn compute(&self, p: &mut Pass, scale: &Scale, specs: &[MetricSpec]) -> Outcome {
        let pods = match self.selected_pods(p, &scale.selector) {
            Ok(pods) => pods,
            Err(e) => {
                return Outcome {
                    replicas: None,
                    metric: String::new(),
                    statuses: Vec::new(),
                    error: Some(e),
                };
            }
        };
        let pods: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let mut usage: Option<Result<Vec<PodUsage>, MetricsError>> = None;
        let mut statuses = Vec::with_capacity(specs.len());
        let (mut replicas, mut metric) = (0, String::new());
        let mut first_failure: Option<Failed> = None;
        let mut failures = 0;
        for spec in specs {
            match self.compute_one(p, spec, scale, &pods, &mut usage).await {
                Ok(c) => {
                    if replicas == 0 || c.replicas > replicas {
                        replicas = c.replicas;
                        metric = c.metric;
                    }
                    statuses.push(c.status);
                }
                Err(f) => {
                    failures += 1;
                    first_failure.get_or_insert(f);
                    statuses.push(MetricStatus::default());
                }
            }
        }
        let error = first_failure.as_ref().map(|f| {
            format!(
                "invalid metrics ({failures} invalid out of {}), first error is: {}",
                specs.len(),
                f.error
            )
        });
        if let Some(f) = &first_failure
            && (failures >= specs.len() || replicas < scale.spec_replicas)
        {
            p.condition(
                SCALING_ACTIVE,
                false,
                f.reason,
                format!(
                    "the HPA was unable to compute the replica count: {}",
                    f.message
                ),
            );
            return Outcome {
                replicas: None,
                metric,
                statuses,
                error,
            };
        }
        p.condition(
            SCALING_ACTIVE,
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Outcome {
            replicas: Some(replicas),
            metric,
            statuses,
            error,
        }
    }

    /// The pods' usage, fetched once per sync.
    async fn usage<'a>(
        &self,
        p: &Pass,
        selector: &str,
        cache: &'a mut Option<Result<Vec<PodUsage>, MetricsError>>,
    ) -> &'a Result<Vec<PodUsage>, MetricsError> {
        let fresh = match cache.take() {
            Some(r) => r,
            None => self.metrics.pod_metrics(p.namespace(), selector).await,
        };
        cache.insert(fresh)
    }

    /// One metric, as upstream's computeReplicasForMetric. A failure records the event
    /// of its reason.
    async fn compute_one(
        &self,
        p: &mut Pass,
        spec: &MetricSpec,
        scale: &Scale,
        pods: &[&Pod],
        usage: &mut Option<Result<Vec<PodUsage>, MetricsError>>,
    ) -> Result<Computed, Failed> {
        let ns = p.namespace().to_string();
        // (reason, the error, what the summary prefixes it with)
        let failed: (&'static str, String, String) = match spec.type_.as_str() {
            "Resource" | "ContainerResource" => {
                let container = (spec.type_ == "ContainerResource").then(|| {
                    spec.container_resource
                        .as_ref()
                        .map(|c| c.container.clone())
                        .unwrap_or_default()
                });
                let what = match &container {
                    Some(c) => format!("failed to get {c} container metric value"),
                    None => format!(
                        "failed to get {} resource metric value",
                        spec.resource.as_ref().map_or("", |r| r.name.as_str())
                    ),
                };
                match self
                    .resource_metric(p, spec, scale, pods, usage, container)
                    .await
                {
                    Ok(c) => return Ok(c),
                    Err((reason, e)) => (reason, e, what),
                }
            }
            "Pods" => {
                let name = spec
                    .pods
                    .as_ref()
                    .map(|s| s.metric.name.as_str())
                    .unwrap_or("");
                (
                    "FailedGetPodsMetric",
                    format!(
                        "unable to get metric {name}: unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
                    ),
                    "failed to get pods metric value".to_string(),
                )
            }
            "Object" => {
                let (name, kind, object) = spec
                    .object
                    .as_ref()
                    .map(|s| {
                        (
                            s.metric.name.as_str(),
                            s.described_object.kind.as_str(),
                            s.described_object.name.as_str(),
                        )
                    })
                    .unwrap_or_default();
                (
                    "FailedGetObjectMetric",
                    format!(
                        "unable to get metric {name}: {kind} on {ns} {object}/unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
                    ),
                    "failed to get object metric value".to_string(),
                )
            }
            "External" => {
                let name = spec
                    .external
                    .as_ref()
                    .map(|s| s.metric.name.as_str())
                    .unwrap_or("");
                (
                    "FailedGetExternalMetric",
                    format!(
                        "unable to get external metric {ns}/{name}: unable to fetch metrics from external metrics API: no external metrics API (external.metrics.k8s.io) registered"
                    ),
                    format!(
                        "failed to get {name} external metric value: failed to get {name} external metric"
                    ),
                )
            }
            other => (
                "InvalidMetricSourceType",
                format!("unknown metric source type {other:?}"),
                String::new(),
            ),
        };
        let (reason, message, what) = failed;
        self.warn(&p.hpa, reason, message.clone());
        let error = if what.is_empty() {
            message.clone()
        } else {
            format!("{what}: {message}")
        };
        Err(Failed {
            reason,
            message,
            error,
        })
    }

    /// A Resource or ContainerResource metric; fails with the reason and the error.
    async fn resource_metric(
        &self,
        p: &mut Pass,
        spec: &MetricSpec,
        scale: &Scale,
        pods: &[&Pod],
        cache: &mut Option<Result<Vec<PodUsage>, MetricsError>>,
        container: Option<String>,
    ) -> Result<Computed, (&'static str, String)> {
        let reason = if container.is_some() {
            "FailedGetContainerResourceMetric"
        } else {
            "FailedGetResourceMetric"
        };
        let fail = |error: String| (reason, error);
        let (resource, target) = match (&spec.resource, &spec.container_resource, &container) {
            (Some(r), _, None) => (r.name.clone(), r.target.clone()),
            (_, Some(r), Some(_)) => (r.name.clone(), r.target.clone()),
            _ => {
                return Err(fail(format!(
                    "invalid metric source: no {} source given",
                    spec.type_
                )));
            }
        };
        let usage = match self.usage(p, &scale.selector, cache).await {
            Ok(u) if u.is_empty() => {
                Err("no metrics returned from resource metrics API".to_string())
            }
            Ok(u) => match &container {
                None => Ok(resource_metrics(u, &resource)),
                Some(c) => container_metrics(u, &resource, c, p.namespace())
                    .map_err(|e| format!("failed to get container metrics: {e}")),
            },
            Err(e) => Err(format!(
                "unable to fetch metrics from resource metrics API: {e}"
            )),
        };
        let current = scale.spec_replicas;
        let (proposal, metric) = if let Some(q) = &target.average_value {
            let what = format!("failed to get {resource} usage");
            let target = Quantity::parse(&q.0).map_or(0, |q| q.to_milli());
            let metrics = usage.map_err(|e| {
                fail(format!(
                    "{what}: unable to get metrics for resource {resource}: {e}"
                ))
            })?;
            let proposal = self
                .calc
                .plain_replicas(
                    current,
                    target,
                    &resource,
                    Observed {
                        pods,
                        metrics,
                        now: p.now,
                    },
                )
                .map_err(|e| fail(format!("{what}: {e}")))?;
            (proposal, format!("{resource} resource"))
        } else if let Some(target) = target.average_utilization {
            let what = format!("failed to get {resource} utilization");
            let metrics = usage.map_err(|e| {
                fail(format!(
                    "{what}: unable to get metrics for resource {resource}: {e}"
                ))
            })?;
            let proposal = self
                .calc
                .resource_replicas(
                    current,
                    target,
                    &resource,
                    container.as_deref(),
                    Observed {
                        pods,
                        metrics,
                        now: p.now,
                    },
                )
                .map_err(|e| fail(format!("{what}: {e}")))?;
            let metric = if container.is_some() {
                format!("{resource} container resource utilization (percentage of request)")
            } else {
                format!("{resource} resource utilization (percentage of request)")
            };
            (proposal, metric)
        } else {
            return Err(fail(
                "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into(),
            ));
        };
        Ok(Computed {
            replicas: proposal.replicas,
            metric,
            status: resource_status(&resource, container, proposal),
        })
    }
}

/// One container's samples of `resource` per pod.
fn container_metrics(
    usage: &[PodUsage],
    resource: &str,
    container: &str,
    namespace: &str,
) -> Result<PodMetrics, String> {
    let mut out = PodMetrics::new();
    for u in usage {
        let Some(c) = u.containers.iter().find(|c| c.0 == container) else {
            return Err(format!(
                "container {container} not present in metrics for pod {namespace}/{}",
                u.name
            ));
        };
        let value = match resource {
            "cpu" => c.1,
            "memory" => c.2.saturating_mul(1000),
            _ => continue,
        };
        out.insert(
            u.name.clone(),
            Sample {
                value,
                timestamp: u.timestamp,
                window: u.window,
            },
        );
    }
    Ok(out)
}

/// The status of a resource metric: the average per pod (and the utilization).
fn resource_status(resource: &str, container: Option<String>, p: Proposal) -> MetricStatus {
    let current = MetricValueStatus {
        average_utilization: p.utilization,
        average_value: Some(milli_quantity(p.average)),
        value: None,
    };
    match container {
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource.to_string(),
                current,
            }),
            ..Default::default()
        },
        Some(container) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                name: resource.to_string(),
                container,
                current,
            }),
            ..Default::default()
        },
    }
}

impl<C: Cluster> Reconciler for HpaController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(hpa) = self.informers.hpas.get(key.namespace.as_deref(), &key.name) else {
            self.memory().remove(key);
            return Ok(Requeue::Done);
        };
        let now = self.clock.now();
        {
            // Each HPA is evaluated once per sync period, however often it changes (its
            // own status writes included), as upstream's rate-limited queue does.
            let mut memory = self.memory();
            let uid = hpa.metadata.uid.clone().unwrap_or_default();
            let m = memory.entry(key.clone()).or_default();
            if m.uid != uid {
                *m = Memory {
                    uid,
                    ..Memory::default()
                };
            }
            if let Some(last) = m.last_sync {
                let next = after(last, self.sync_period);
                if now < next {
                    return Ok(Requeue::After(until(now, next)));
                }
            }
            m.last_sync = Some(now);
        }
        let pass = Pass {
            key: key.clone(),
            status: hpa.status.clone().unwrap_or_default(),
            hpa,
            now: seconds(now),
        };
        self.sync(pass).await?;
        Ok(Requeue::After(self.sync_period))
    }
}
