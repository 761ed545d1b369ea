//! The `default/kubernetes` Endpoints and EndpointSlice, as kube-apiserver's endpoint
//! reconciler keeps them: one address (the advertise address) on the secure port, named
//! `https`. Written at start, looked at again every 10 s and whenever either object
//! changes, so an edit or a delete is repaired.
//!
//! One control plane publishes one address: several control planes on one etcd would
//! each overwrite the others' (upstream keeps a lease per server under `/masterleases/`
//! and publishes them all).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
    addr: SocketAddr,
}

impl<C: Cluster> ApiserverEndpoints<C> {
    pub fn new(ctx: &Ctx<C>, addr: SocketAddr) -> Self {
        ApiserverEndpoints {
            cluster: ctx.cluster.clone(),
            endpoints: ctx.informers.endpoints.clone(),
            slices: ctx.informers.endpoint_slices.clone(),
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

    fn subsets(&self) -> Vec<EndpointSubset> {
        vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: self.addr.ip().to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: i32::from(self.addr.port()),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]
    }

    fn slice(&self) -> EndpointSlice {
        EndpointSlice {
            metadata: Self::meta(&[(SERVICE_NAME, NAME)]),
            address_type: if self.addr.is_ipv6() { "IPv6" } else { "IPv4" }.into(),
            endpoints: vec![Endpoint {
                addresses: vec![self.addr.ip().to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                ..Default::default()
            }],
            ports: Some(vec![SlicePort {
                name: Some("https".into()),
                port: Some(i32::from(self.addr.port())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }
    }

    async fn endpoints(&self) -> Result<(), ReconcileError> {
        let subsets = self.subsets();
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

    async fn slice_write(&self) -> Result<(), ReconcileError> {
        let want = self.slice();
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
        self.endpoints().await?;
        self.slice_write().await?;
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

        // Nothing to do when all is as it should be.
        let writes = cluster.writes().len();
        c.reconcile(&key()).await.unwrap();
        assert_eq!(cluster.writes().len(), writes);

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
}
