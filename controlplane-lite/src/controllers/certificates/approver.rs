//! `csrapproving`: approves kubelet client certificates for new nodes (asked with a
//! bootstrap token) and for renewals (a node asking for its own name). Kubernetes decides
//! both with SubjectAccessReviews against `certificatesigningrequests/nodeclient` and
//! `/selfnodeclient`; skiff has no RBAC, so the rules that kubeadm's bindings give are
//! written here. Anything else stays pending for a person to approve or deny.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestStatus,
};

use super::{KUBELET_CLIENT_SIGNER, NODE_USER_PREFIX, condition, has_condition, kubelet_client};
use crate::apiserver::bootstrap_token::BOOTSTRAPPERS_GROUP;
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectKey, ReconcileError, Reconciler, Requeue,
};

pub const COMPONENT: &str = "csrapproving";
pub const REASON: &str = "AutoApproved";

pub struct Approver<C> {
    cluster: Arc<C>,
    csrs: Informer<CertificateSigningRequest>,
}

/// Why a request is approved: the message of its Approved condition.
pub fn decide(csr: &CertificateSigningRequest) -> Result<&'static str, String> {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Err(format!(
            "signer {} is not auto-approved",
            csr.spec.signer_name
        ));
    }
    let node = kubelet_client(csr)?;
    let user = csr.spec.username.as_deref().unwrap_or("");
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    if user == format!("{NODE_USER_PREFIX}{node}") {
        return Ok("Auto approving self kubelet client certificate after SubjectAccessReview.");
    }
    if groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP) {
        return Ok("Auto approving kubelet client certificate after SubjectAccessReview.");
    }
    Err(format!(
        "requester {user:?} is neither a bootstrapper nor node {node:?} itself"
    ))
}

impl<C: Cluster> Approver<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        Approver {
            cluster: ctx.cluster.clone(),
            csrs: ctx.informers.csrs.clone(),
        }
    }
}

impl<C: Cluster> Reconciler for Approver<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(csr) = self.csrs.get(None, &key.name) else {
            return Ok(Requeue::Done);
        };
        if has_condition(&csr, "Approved") || has_condition(&csr, "Denied") {
            return Ok(Requeue::Done);
        }
        let message = match decide(&csr) {
            Ok(m) => m,
            Err(why) => {
                tracing::debug!(csr = %key.name, %why, "not auto-approving");
                return Ok(Requeue::Done);
            }
        };
        let mut csr = (*csr).clone();
        let status = csr
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition("Approved", REASON, message));
        match self.cluster.replace_approval(&csr).await {
            Ok(_) => Ok(Requeue::Done),
            Err(e) if e.is_not_found() => Ok(Requeue::Done),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::controllers::certificates::fixtures::request;
    use crate::controllers::context::{Informers, Settings};
    use crate::controllers::runtime::FakeCluster;

    const CLIENT: &[&str] = &["digital signature", "client auth"];
    const BOOT: &[&str] = &["system:bootstrappers", "system:authenticated"];

    fn csr(
        cn: &str,
        orgs: &[&str],
        usages: &[&str],
        user: &str,
        groups: &[&str],
    ) -> CertificateSigningRequest {
        request("c", cn, orgs, KUBELET_CLIENT_SIGNER, usages, user, groups).0
    }

    #[test]
    fn rules() {
        let ok = |c: &CertificateSigningRequest| decide(c).is_ok();
        // A new node with a bootstrap token, and a node renewing its own certificate.
        assert!(ok(&csr(
            "system:node:n1",
            &["system:nodes"],
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT
        )));
        assert!(ok(&csr(
            "system:node:n1",
            &["system:nodes"],
            CLIENT,
            "system:node:n1",
            &["system:nodes"]
        )));
        // Not for anyone else's name, nor for another subject or more usages.
        assert!(!ok(&csr(
            "system:node:n2",
            &["system:nodes"],
            CLIENT,
            "system:node:n1",
            &["system:nodes"]
        )));
        assert!(!ok(&csr(
            "system:node:n1",
            &["system:nodes"],
            CLIENT,
            "alice",
            &["devs"]
        )));
        assert!(!ok(&csr(
            "alice",
            &["system:nodes"],
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT
        )));
        assert!(!ok(&csr(
            "system:node:n1",
            &["system:masters"],
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT
        )));
        assert!(!ok(&csr(
            "system:node:n1",
            &["system:nodes", "system:masters"],
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT
        )));
        assert!(!ok(&csr(
            "system:node:n1",
            &["system:nodes"],
            &["digital signature", "client auth", "server auth"],
            "system:bootstrap:abcdef",
            BOOT
        )));
        assert!(!ok(&csr(
            "system:node:n1",
            &["system:nodes"],
            &["digital signature"],
            "system:bootstrap:abcdef",
            BOOT
        )));
        let mut other = csr(
            "system:node:n1",
            &["system:nodes"],
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT,
        );
        other.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(!ok(&other));
    }

    #[tokio::test]
    async fn approves_once_and_leaves_others_pending() {
        let cluster = Arc::new(FakeCluster::new());
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers: Informers::fake(&cluster),
            settings: Settings::default(),
        };
        let a = Approver::new(&ctx);
        let (mut good, _) = request(
            "good",
            "system:node:n1",
            &["system:nodes"],
            KUBELET_CLIENT_SIGNER,
            CLIENT,
            "system:bootstrap:abcdef",
            BOOT,
        );
        good.metadata.name = Some("good".into());
        let (mut bad, _) = request(
            "bad",
            "system:node:n1",
            &["system:nodes"],
            KUBELET_CLIENT_SIGNER,
            CLIENT,
            "alice",
            &[],
        );
        bad.metadata.name = Some("bad".into());
        cluster.put(&good);
        cluster.put(&bad);
        for n in ["good", "bad", "good"] {
            a.reconcile(&ObjectKey::new(None, n)).await.unwrap();
        }
        let good = cluster
            .get::<CertificateSigningRequest>(None, "good")
            .unwrap();
        let conds = good.status.unwrap().conditions.unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, "Approved");
        assert_eq!(conds[0].reason.as_deref(), Some(REASON));
        let bad = cluster
            .get::<CertificateSigningRequest>(None, "bad")
            .unwrap();
        assert!(bad.status.and_then(|s| s.conditions).is_none());
    }
}
