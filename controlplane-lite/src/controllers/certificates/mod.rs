//! The certificate controllers of kube-controller-manager: `csrapproving` approves the
//! kubelet client certificates nodes ask for, `csrsigning` issues approved requests with
//! the cluster CA.

use std::sync::Arc;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{Cluster, WorkQueue, itself, run, watch};

pub mod approver;
pub mod signer;

pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let aq = WorkQueue::new();
    tasks.push(watch(&ctx.informers.csrs, aq.clone(), itself));
    tasks.push(run(Arc::new(approver::Approver::new(ctx)), aq, 1));
    match signer::Signer::new(ctx) {
        Ok(Some(s)) => {
            let sq = WorkQueue::new();
            tasks.push(watch(&ctx.informers.csrs, sq.clone(), itself));
            tasks.push(run(Arc::new(s), sq, 1));
        }
        Ok(None) => tracing::info!("no cluster signing CA: the CSR signer is off"),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the cluster signing CA: the CSR signer is off")
        }
    }
    tasks
}

pub fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

pub fn condition(kind: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: kind.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// What the signers and the approver read from a request's PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// Whether it asks for any subject alternative name.
    pub has_sans: bool,
}

/// Parses `spec.request` (verifying its self-signature).
pub fn subject(csr: &CertificateSigningRequest) -> Result<Subject, String> {
    use x509_parser::prelude::FromDer;
    let pem = &csr.spec.request.0;
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("PEM: {e}"))?;
    if p.label != "CERTIFICATE REQUEST" {
        return Err(format!("PEM block is {}, not CERTIFICATE REQUEST", p.label));
    }
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents)
            .map_err(|e| format!("certificate request: {e}"))?;
    req.verify_signature()
        .map_err(|e| format!("certificate request signature: {e}"))?;
    let info = &req.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    let organizations = info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    let has_sans = req.requested_extensions().is_some_and(|mut exts| {
        exts.any(|e| {
            matches!(
                e,
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(s)
                    if !s.general_names.is_empty()
            )
        })
    });
    Ok(Subject {
        common_name,
        organizations,
        has_sans,
    })
}

/// Whether the usages stay within `allowed` and include client auth.
pub fn client_usages(csr: &CertificateSigningRequest, allowed: &[&str]) -> Result<(), String> {
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if let Some(u) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Err(format!("usage {u:?} is not allowed (allowed: {allowed:?})"));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("usages must include \"client auth\"".into());
    }
    Ok(())
}

pub const KUBELET_CLIENT_USAGES: &[&str] =
    &["digital signature", "key encipherment", "client auth"];

/// A kubelet client certificate request: `CN=system:node:<name>`, `O=system:nodes` alone,
/// no alternative names, client usages only. Returns the node's name.
pub fn kubelet_client(csr: &CertificateSigningRequest) -> Result<String, String> {
    let s = subject(csr)?;
    if s.organizations != [NODES_GROUP] {
        return Err(format!(
            "organization must be [\"{NODES_GROUP}\"], not {:?}",
            s.organizations
        ));
    }
    let node = s
        .common_name
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            format!(
                "common name {:?} does not start with {NODE_USER_PREFIX}",
                s.common_name
            )
        })?;
    if s.has_sans {
        return Err("subject alternative names are not allowed".into());
    }
    client_usages(csr, KUBELET_CLIENT_USAGES)?;
    Ok(node.to_string())
}

#[cfg(test)]
pub(crate) mod fixtures {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A request for `cn` in `orgs`, with its private key.
    pub fn request(
        name: &str,
        cn: &str,
        orgs: &[&str],
        signer: &str,
        usages: &[&str],
        user: &str,
        groups: &[&str],
    ) -> (CertificateSigningRequest, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let pem = p.serialize_request(&key).unwrap().pem().unwrap();
        let csr = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            },
            status: None,
        };
        (csr, key)
    }
}
