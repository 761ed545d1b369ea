//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount,
//! made when the namespace appears and again whenever it is deleted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue, itself, run,
    watch,
};

pub const COMPONENT: &str = "serviceaccount-controller";
pub const DEFAULT: &str = "default";

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(ServiceAccountController::new(ctx));
    let q = WorkQueue::new();
    vec![
        watch(&ctx.informers.namespaces, q.clone(), itself),
        // A deleted default ServiceAccount wakes its namespace.
        watch(&ctx.informers.service_accounts, q.clone(), |ch| {
            let sa = ch.obj.as_ref();
            match (&sa.metadata.namespace, sa.metadata.name.as_deref()) {
                (Some(ns), Some(DEFAULT)) if ch.deleted => vec![ObjectKey::new(None, ns)],
                _ => Vec::new(),
            }
        }),
        run(c, q, 1),
    ]
}

pub struct ServiceAccountController<C> {
    cluster: Arc<C>,
    namespaces: Informer<Namespace>,
    service_accounts: Informer<ServiceAccount>,
}

impl<C: Cluster> ServiceAccountController<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        ServiceAccountController {
            cluster: ctx.cluster.clone(),
            namespaces: ctx.informers.namespaces.clone(),
            service_accounts: ctx.informers.service_accounts.clone(),
        }
    }
}

impl<C: Cluster> Reconciler for ServiceAccountController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(ns) = self.namespaces.get(None, &key.name) else {
            return Ok(Requeue::Done);
        };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating
            || self
                .service_accounts
                .get(Some(&key.name), DEFAULT)
                .is_some()
        {
            return Ok(Requeue::Done);
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT.into()),
                namespace: Some(key.name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.cluster.create(&sa).await {
            Ok(_) => Ok(Requeue::Done),
            Err(e) if e.is_already_exists() => Ok(Requeue::Done),
            // The namespace began terminating meanwhile.
            Err(e) if e.code == 403 || e.is_not_found() => Ok(Requeue::Done),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::controllers::context::{Informers, Settings};
    use crate::controllers::runtime::FakeCluster;

    #[tokio::test]
    async fn every_namespace_gets_a_default_service_account() {
        let cluster = Arc::new(FakeCluster::new());
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers: Informers::fake(&cluster),
            settings: Settings::default(),
        };
        let c = ServiceAccountController::new(&ctx);
        let ns = |name: &str, phase: &str| -> Namespace {
            serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": phase}}))
                .unwrap()
        };
        cluster.put(&ns("team", "Active"));
        cluster.put(&ns("leaving", "Terminating"));
        for n in ["team", "leaving", "missing"] {
            c.reconcile(&ObjectKey::new(None, n)).await.unwrap();
        }
        assert!(
            cluster
                .get::<ServiceAccount>(Some("team"), "default")
                .is_some()
        );
        assert!(
            cluster
                .get::<ServiceAccount>(Some("leaving"), "default")
                .is_none()
        );
        // Already there: nothing written.
        let before = cluster.writes().len();
        c.reconcile(&ObjectKey::new(None, "team")).await.unwrap();
        assert_eq!(cluster.writes().len(), before);
        // Deleted: made again.
        cluster.remove::<ServiceAccount>(Some("team"), "default");
        c.reconcile(&ObjectKey::new(None, "team")).await.unwrap();
        assert!(
            cluster
                .get::<ServiceAccount>(Some("team"), "default")
                .is_some()
        );
    }
}
