//! The `default/kubernetes` Endpoints and EndpointSlice, as kube-apiserver's lease
//! endpoint reconciler keeps them: the advertise address of every live control plane on
//! the secure port, named `https`. Written at start, looked at again every 10 s and
//! whenever either object changes, so an edit or a delete is repaired.
//!
//! Each control plane renews a Lease `kube-system/apiserver-endpoint-<address>` (labelled
//! [`LEASE_LABEL`]) every 10 s, the counterpart of upstream's `/masterleases/<ip>` keys
//! with a 15 s TTL; the addresses of unexpired Leases are published, and expired ones are
//! deleted, so several control planes on one etcd publish each other instead of
//! overwriting each other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue, run, watch,
};

pub const COMPONENT: &str = "apiserver-endpoint-reconciler";
pub const NAMESPACE: &str = "default";
pub const NAME: &str = "kubernetes";
/// How often the objects are checked even when nothing changed (upstream's interval).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Keeps the EndpointSlice mirroring controller off these Endpoints: the slice is
/// written here, as upstream does.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Marks the Leases that carry a control plane's advertised endpoint.
pub const LEASE_LABEL: &str = "skiff.io/apiserver-endpoint";
pub const LEASE_NAMESPACE: &str = "kube-system";
/// How long a control plane's address is published after its last renewal (upstream's
/// master lease TTL).
pub const LEASE_SECONDS: i32 = 15;

/// The name of the Lease of the control plane at `addr`.
pub fn lease_name(addr: &SocketAddr) -> String {
    format!("apiserver-endpoint-{}", addr.ip()).replace(':', "-")
}

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let Some(addr) = ctx.settings.apiserver_endpoint else {
        return Vec::new();
    };
    let c = Arc::new(ApiserverEndpoints::new(ctx, addr));
    let q = WorkQueue::new();
    let ours = |ns: Option<&str>, name: Option<&str>| {
        if ns == Some(NAMESPACE) && name == Some(NAME) {
            vec![ObjectKey::new(Some(NAMESPACE), NAME)]
        } else {
            Vec::new()
        }
    };
    q.add(ObjectKey::new(Some(NAMESPACE), NAME));
    vec![
        watch(&ctx.informers.endpoints, q.clone(), move |ch| {
            let m = &ch.obj.metadata;
            ours(m.namespace.as_deref(), m.name.as_deref())
        }),
        watch(&ctx.informers.endpoint_slices, q.clone(), move |ch| {
            let m = &ch.obj.metadata;
            ours(m.namespace.as_deref(), m.name.as_deref())
        }),
        run(c, q, 1),
    ]
}

pub struct ApiserverEndpoints<C> {
    cluster: Arc<C>,
    endpoints: Informer<Endpoints>,
    slices: Informer<EndpointSlice>,
    leases: Informer<Lease>,
    addr: SocketAddr,
}

impl<C: Cluster> ApiserverEndpoints<C> {
    pub fn new(ctx: &Ctx<C>, addr: SocketAddr) -> Self {
        ApiserverEndpoints {
            cluster: ctx.cluster.clone(),
            endpoints: ctx.informers.endpoints.clone(),
            slices: ctx.informers.endpoint_slices.clone(),
            leases: ctx.informers.leases.clone(),
            addr,
        }
    }

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// Renews this control plane's Lease; the addresses of every live one (this one's
    /// first among equals: sorted), after deleting the expired.
    async fn live_addresses(&self) -> Result<Vec<String>, ReconcileError> {
        let now = Timestamp::now();
        let name = lease_name(&self.addr);
        let holder = self.addr.to_string();
        let spec = |rv: Option<&LeaseSpec>| LeaseSpec {
            holder_identity: Some(holder.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..rv.cloned().unwrap_or_default()
        };
        match self.leases.get(Some(LEASE_NAMESPACE), &name) {
            Some(cur) => {
                let mut l = (*cur).clone();
                l.spec = Some(spec(cur.spec.as_ref()));
                if let Err(e) = self.cluster.replace(&l).await
                    && !e.is_not_found()
                {
                    return Err(e.into());
                }
            }
            None => {
                let l = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        labels: Some([(LEASE_LABEL.to_string(), "true".to_string())].into()),
                        ..Default::default()
                    },
                    spec: Some(spec(None)),
                };
                match self.cluster.create(&l).await {
                    Err(e) if !e.is_already_exists() => return Err(e.into()),
                    _ => {}
                }
            }
        }
        let mut addrs = vec![self.addr.ip().to_string()];
        for l in self.leases.list() {
            let m = &l.metadata;
            let ours = m.namespace.as_deref() == Some(LEASE_NAMESPACE)
                && m.labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(LEASE_LABEL));
            if !ours || m.name.as_deref() == Some(name.as_str()) {
                continue;
            }
            let spec = l.spec.as_ref();
            let expires = spec.and_then(|s| {
                let renewed = s.renew_time.as_ref()?.0;
                let ttl = s.lease_duration_seconds.unwrap_or(LEASE_SECONDS);
                renewed
                    .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl)))
                    .ok()
            });
            let address = spec
                .and_then(|s| s.holder_identity.as_deref())
                .and_then(|h| h.parse::<SocketAddr>().ok());
            match (expires, address) {
                // One port for all, as upstream assumes: a server on another port (or
                // family) cannot share the subset.
                (Some(t), Some(a))
                    if t > now
                        && a.port() == self.addr.port()
                        && a.is_ipv6() == self.addr.is_ipv6() =>
                {
                    addrs.push(a.ip().to_string())
                }
                (Some(t), _) if t > now => {}
                _ => {
                    // Gone (its TTL passed): its address is dropped.
                    match self
                        .cluster
                        .delete::<Lease>(
                            Some(LEASE_NAMESPACE),
                            m.name.as_deref().unwrap_or_default(),
                            &Default::default(),
                        )
                        .await
                    {
                        Err(e) if !e.is_not_found() => return Err(e.into()),
                        _ => {}
                    }
                }
            }
        }
        addrs.sort();
        addrs.dedup();
        Ok(addrs)
    }

    fn subsets(&self, addrs: &[String]) -> Vec<EndpointSubset> {
        vec![EndpointSubset {
            addresses: Some(
                addrs
                    .iter()
                    .map(|ip| EndpointAddress {
                        ip: ip.clone(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: i32::from(self.addr.port()),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]
    }

    fn slice(&self, addrs: &[String]) -> EndpointSlice {
        EndpointSlice {
            metadata: Self::meta(&[(SERVICE_NAME, NAME)]),
            address_type: if self.addr.is_ipv6() { "IPv6" } else { "IPv4" }.into(),
            endpoints: addrs
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![SlicePort {
                name: Some("https".into()),
                port: Some(i32::from(self.addr.port())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }
    }

    async fn endpoints(&self, addrs: &[String]) -> Result<(), ReconcileError> {
        let subsets = self.subsets(addrs);
        let want_label = |l: &Option<BTreeMap<String, String>>| {
            l.as_ref()
                .and_then(|l| l.get(SKIP_MIRROR))
                .map(String::as_str)
                == Some("true")
        };
        match self.endpoints.get(Some(NAMESPACE), NAME) {
            Some(cur)
                if cur.subsets.as_ref() == Some(&subsets) && want_label(&cur.metadata.labels) => {}
            Some(cur) => {
                let mut ep = (*cur).clone();
                ep.subsets = Some(subsets);
                ep.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(SKIP_MIRROR.into(), "true".into());
                self.cluster.replace(&ep).await?;
            }
            None => {
                let ep = Endpoints {
                    metadata: Self::meta(&[(SKIP_MIRROR, "true")]),
                    subsets: Some(subsets),
                };
                match self.cluster.create(&ep).await {
                    Err(e) if !e.is_already_exists() => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn slice_write(&self, addrs: &[String]) -> Result<(), ReconcileError> {
        let want = self.slice(addrs);
        match self.slices.get(Some(NAMESPACE), NAME) {
            Some(cur)
                if cur.address_type == want.address_type
                    && cur.endpoints == want.endpoints
                    && cur.ports == want.ports
                    && cur
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME))
                        .map(String::as_str)
                        == Some(NAME) => {}
            Some(cur) if cur.address_type != want.address_type => {
                // addressType is immutable: the slice is made again.
                self.cluster
                    .delete::<EndpointSlice>(Some(NAMESPACE), NAME, &Default::default())
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })?;
                self.cluster.create(&want).await?;
            }
            Some(cur) => {
                let mut s = (*cur).clone();
                s.endpoints = want.endpoints;
                s.ports = want.ports;
                s.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(SERVICE_NAME.into(), NAME.into());
                self.cluster.replace(&s).await?;
            }
            None => match self.cluster.create(&want).await {
                Err(e) if !e.is_already_exists() => return Err(e.into()),
                _ => {}
            },
        }
        Ok(())
    }
}

impl<C: Cluster> Reconciler for ApiserverEndpoints<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, _key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let addrs = self.live_addresses().await?;
        self.endpoints(&addrs).await?;
        self.slice_write(&addrs).await?;
        Ok(Requeue::After(INTERVAL))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::controllers::context::{Informers, Settings};
    use crate::controllers::runtime::FakeCluster;

    fn setup(addr: &str) -> (Arc<FakeCluster>, ApiserverEndpoints<FakeCluster>) {
        let cluster = Arc::new(FakeCluster::new());
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers: Informers::fake(&cluster),
            settings: Settings::default(),
        };
        let c = ApiserverEndpoints::new(&ctx, addr.parse().unwrap());
        (cluster, c)
    }

    fn key() -> ObjectKey {
        ObjectKey::new(Some(NAMESPACE), NAME)
    }

    #[tokio::test]
    async fn writes_the_endpoints_and_slice_and_repairs_them() {
        let (cluster, c) = setup("192.168.5.7:6443");
        assert_eq!(c.reconcile(&key()).await.unwrap(), Requeue::After(INTERVAL));
        let ep: Endpoints = cluster.get(Some(NAMESPACE), NAME).unwrap();
        let v = serde_json::to_value(&ep).unwrap();
        assert_eq!(v["subsets"][0]["addresses"][0]["ip"], "192.168.5.7");
        assert_eq!(v["subsets"][0]["ports"][0]["name"], "https");
        assert_eq!(v["subsets"][0]["ports"][0]["port"], 6443);
        assert_eq!(v["metadata"]["labels"][SKIP_MIRROR], "true");
        let s: EndpointSlice = cluster.get(Some(NAMESPACE), NAME).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["addressType"], "IPv4");
        assert_eq!(v["metadata"]["labels"][SERVICE_NAME], "kubernetes");
        assert!(
            v["metadata"]["labels"]
                .get("endpointslice.kubernetes.io/managed-by")
                .is_none()
        );
        assert_eq!(v["endpoints"][0]["addresses"][0], "192.168.5.7");
        assert_eq!(v["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(v["ports"][0]["port"], 6443);

        // Nothing to do when all is as it should be, but renew the Lease.
        let others = |c: &FakeCluster| {
            c.writes()
                .into_iter()
                .filter(|w| !w.contains("Lease"))
                .count()
        };
        let writes = others(&cluster);
        c.reconcile(&key()).await.unwrap();
        assert_eq!(others(&cluster), writes);
        let lease: Lease = cluster
            .get(Some(LEASE_NAMESPACE), "apiserver-endpoint-192.168.5.7")
            .unwrap();
        assert_eq!(
            lease.spec.unwrap().holder_identity.as_deref(),
            Some("192.168.5.7:6443")
        );

        // An edit is undone, a delete is made good.
        let mut ep = ep;
        ep.subsets.as_mut().unwrap()[0].addresses.as_mut().unwrap()[0].ip = "10.9.9.9".into();
        cluster.put(&ep);
        cluster.remove::<EndpointSlice>(Some(NAMESPACE), NAME);
        c.reconcile(&key()).await.unwrap();
        let ep: Endpoints = cluster.get(Some(NAMESPACE), NAME).unwrap();
        assert_eq!(
            ep.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip,
            "192.168.5.7"
        );
        assert!(
            cluster
                .get::<EndpointSlice>(Some(NAMESPACE), NAME)
                .is_some()
        );
    }

    #[tokio::test]
    async fn every_live_control_plane_is_published_and_expired_ones_dropped() {
        let (cluster, c) = setup("192.168.5.7:6443");
        let lease = |name: &str, holder: &str, age_s: i64| -> Lease {
            let renewed = Timestamp::now() - jiff::SignedDuration::from_secs(age_s);
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "labels": {LEASE_LABEL: "true"}},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed.to_string()},
            }))
            .unwrap()
        };
        cluster.put(&lease(
            "apiserver-endpoint-192.168.5.9",
            "192.168.5.9:6443",
            3,
        ));
        cluster.put(&lease(
            "apiserver-endpoint-192.168.5.8",
            "192.168.5.8:6443",
            60,
        ));
        c.reconcile(&key()).await.unwrap();
        let ep: Endpoints = cluster.get(Some(NAMESPACE), NAME).unwrap();
        let ips: Vec<_> = ep.subsets.unwrap()[0]
            .addresses
            .clone()
            .unwrap()
            .into_iter()
            .map(|a| a.ip)
            .collect();
        assert_eq!(ips, ["192.168.5.7", "192.168.5.9"]);
        let s: EndpointSlice = cluster.get(Some(NAMESPACE), NAME).unwrap();
        assert_eq!(s.endpoints.len(), 2);
        assert!(
            cluster
                .get::<Lease>(Some(LEASE_NAMESPACE), "apiserver-endpoint-192.168.5.8")
                .is_none()
        );
        assert!(
            cluster
                .get::<Lease>(Some(LEASE_NAMESPACE), "apiserver-endpoint-192.168.5.9")
                .is_some()
        );
    }
}
