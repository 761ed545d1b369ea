//! LoadBalancer addresses from a pool, for clusters without a cloud provider (what
//! MetalLB's controller does): every Service of `type: LoadBalancer` without a
//! `loadBalancerClass` gets one address of `--load-balancer-pool` in
//! `status.loadBalancer.ingress`. An address asked for (`spec.loadBalancerIP`, or
//! MetalLB's `metallb.universe.tf/loadBalancerIPs` annotation) is given when it is in the
//! pool and free. The table of who holds what lives here, rebuilt from the Services'
//! status on start, so an address stays with its Service across restarts; a Service that
//! cannot get one gets an `AllocationFailed` event and waits for an address to be
//! released.

pub mod pool;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue,
    itself, run, watch,
};
use pool::Pool;

pub const COMPONENT: &str = "service-lb-controller";
/// MetalLB's annotation naming the addresses a Service wants.
pub const IPS_ANNOTATION: &str = "metallb.universe.tf/loadBalancerIPs";

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    if ctx.settings.load_balancer_pool.is_empty() {
        return Vec::new();
    }
    let q = WorkQueue::new();
    let c = Arc::new(ServiceLbController::new(ctx, q.clone()));
    vec![
        watch(&ctx.informers.services, q.clone(), itself),
        run(c, q, 1),
    ]
}

#[derive(Default)]
struct Table {
    rebuilt: bool,
    by_ip: HashMap<Ipv4Addr, ObjectKey>,
    by_key: HashMap<ObjectKey, Ipv4Addr>,
    /// Services that could not get an address: looked at again when one is released.
    waiting: BTreeSet<ObjectKey>,
}

impl Table {
    fn claim(&mut self, key: &ObjectKey, ip: Ipv4Addr) {
        self.by_ip.insert(ip, key.clone());
        self.by_key.insert(key.clone(), ip);
        self.waiting.remove(key);
    }

    /// Frees what `key` holds; the Services waiting for an address, to wake.
    fn release(&mut self, key: &ObjectKey) -> Vec<ObjectKey> {
        self.waiting.remove(key);
        match self.by_key.remove(key) {
            Some(ip) => {
                self.by_ip.remove(&ip);
                std::mem::take(&mut self.waiting).into_iter().collect()
            }
            None => Vec::new(),
        }
    }

    fn holder(&self, ip: Ipv4Addr) -> Option<&ObjectKey> {
        self.by_ip.get(&ip)
    }
}

pub struct ServiceLbController<C> {
    cluster: Arc<C>,
    services: Informer<Service>,
    pool: Pool,
    table: Mutex<Table>,
    queue: WorkQueue<ObjectKey>,
}

/// Whether this controller gives the Service its address.
fn wants_address(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_ref()).is_none()
}

fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The IPv4 addresses in the Service's `status.loadBalancer.ingress`.
fn status_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn has_ingress(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty())
}

/// The address the Service asks for, as written (the annotation wins, as in MetalLB).
fn requested(svc: &Service) -> Option<String> {
    let annotated = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IPS_ANNOTATION))
        .and_then(|v| v.split(',').map(str::trim).find(|s| !s.is_empty()))
        .map(str::to_string);
    annotated.or_else(|| {
        svc.spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// What the reconcile decided for a Service that wants an address.
enum Decision {
    Use(Ipv4Addr, bool),
    Fail(String),
}

impl<C: Cluster> ServiceLbController<C> {
    pub fn new(ctx: &Ctx<C>, queue: WorkQueue<ObjectKey>) -> Self {
        ServiceLbController {
            cluster: ctx.cluster.clone(),
            services: ctx.informers.services.clone(),
            pool: ctx.settings.load_balancer_pool.clone(),
            table: Mutex::new(Table::default()),
            queue,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims every pool address a Service already shows, oldest Service first, so the
    /// addresses handed out before a restart stay where they are.
    fn rebuild(&self, t: &mut Table) {
        let mut services: Vec<_> = self
            .services
            .list()
            .into_iter()
            .filter(|s| wants_address(s))
            .collect();
        services.sort_by(|a, b| {
            let ts = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ts(a)
                .cmp(&ts(b))
                .then_with(|| ObjectKey::of(a.as_ref()).cmp(&ObjectKey::of(b.as_ref())))
        });
        for svc in services {
            let key = ObjectKey::of(svc.as_ref());
            if let Some(ip) = status_ips(&svc).into_iter().next()
                && self.pool.contains(ip)
                && t.holder(ip).is_none()
            {
                t.claim(&key, ip);
            }
        }
        t.rebuilt = true;
    }

    fn decide(&self, t: &mut Table, key: &ObjectKey, svc: &Service) -> Decision {
        let held = t.by_key.get(key).copied();
        if let Some(want) = requested(svc) {
            let Ok(ip) = want.parse::<Ipv4Addr>() else {
                return Decision::Fail(format!(
                    "requested address {want:?} is not an IPv4 address"
                ));
            };
            if held == Some(ip) {
                return Decision::Use(ip, false);
            }
            // The Service asks for something else than it has: the old one goes back.
            let wake = t.release(key);
            self.wake(wake);
            if !self.pool.contains(ip) {
                return Decision::Fail(format!(
                    "requested address {ip} is not in the load-balancer pool"
                ));
            }
            if let Some(other) = t.holder(ip) {
                let msg = format!("requested address {ip} is already allocated to {other}");
                t.waiting.insert(key.clone());
                return Decision::Fail(msg);
            }
            t.claim(key, ip);
            return Decision::Use(ip, true);
        }
        if let Some(ip) = held {
            return Decision::Use(ip, false);
        }
        // An address the Service shows and nobody holds is kept (a lost table entry).
        if let Some(ip) = status_ips(svc).into_iter().next()
            && self.pool.contains(ip)
            && t.holder(ip).is_none()
        {
            t.claim(key, ip);
            return Decision::Use(ip, false);
        }
        let free = self.pool.addresses().find(|ip| t.holder(*ip).is_none());
        match free {
            Some(ip) => {
                t.claim(key, ip);
                Decision::Use(ip, true)
            }
            None => {
                t.waiting.insert(key.clone());
                Decision::Fail("no available addresses in the load-balancer pool".into())
            }
        }
    }

    fn wake(&self, keys: Vec<ObjectKey>) {
        for k in keys {
            self.queue.add(k);
        }
    }

    async fn set_ingress(&self, svc: &Service, ip: Option<Ipv4Addr>) -> Result<(), ReconcileError> {
        let ingress = match ip {
            Some(ip) => json!([{"ip": ip.to_string(), "ipMode": "VIP"}]),
            None => serde_json::Value::Null,
        };
        let current = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            .unwrap_or(serde_json::Value::Null);
        if current == ingress {
            return Ok(());
        }
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        let m = &svc.metadata;
        match self
            .cluster
            .patch_status::<Service>(
                m.namespace.as_deref(),
                m.name.as_deref().unwrap_or_default(),
                &patch,
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()).map_err(Into::into),
        }
    }
}

impl<C: Cluster> Reconciler for ServiceLbController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let svc = self.services.get(key.namespace.as_deref(), &key.name);
        let decision = {
            let mut t = self.table();
            if !t.rebuilt {
                self.rebuild(&mut t);
            }
            match &svc {
                Some(svc) if wants_address(svc) && svc.metadata.deletion_timestamp.is_none() => {
                    Some(self.decide(&mut t, key, svc))
                }
                _ => {
                    let wake = t.release(key);
                    self.wake(wake);
                    None
                }
            }
        };
        let Some(svc) = svc else {
            return Ok(Requeue::Done);
        };
        match decision {
            Some(Decision::Use(ip, new)) => {
                self.set_ingress(&svc, Some(ip)).await?;
                if new {
                    self.cluster.record(
                        ObjectEvent::normal(
                            svc.as_ref(),
                            "IPAllocated",
                            format!("Assigned IP [\"{ip}\"]"),
                        )
                        .from(COMPONENT),
                    );
                }
            }
            Some(Decision::Fail(msg)) => {
                // Whatever it showed is no longer its own.
                if status_ips(&svc).iter().any(|ip| self.pool.contains(*ip)) {
                    self.set_ingress(&svc, None).await?;
                }
                self.cluster.record(
                    ObjectEvent::warning(
                        svc.as_ref(),
                        "AllocationFailed",
                        format!("Failed to allocate IP for \"{key}\": {msg}"),
                    )
                    .from(COMPONENT),
                );
            }
            None => {
                // As upstream's service controller: a Service that is no longer a
                // LoadBalancer has its load-balancer status cleared.
                if !is_load_balancer(&svc) && has_ingress(&svc) {
                    self.set_ingress(&svc, None).await?;
                }
            }
        }
        Ok(Requeue::Done)
    }
}
