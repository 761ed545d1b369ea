//! `csrsigning`: issues approved requests of the kubelet client and API server client
//! signers with the cluster CA, for `spec.expirationSeconds` capped by the signing
//! duration. A request a signer cannot honour gets a `Failed` condition.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestStatus,
};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

use super::{
    APISERVER_CLIENT_SIGNER, KUBELET_CLIENT_SIGNER, KUBELET_CLIENT_USAGES, client_usages,
    condition, has_condition, kubelet_client,
};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue,
};

pub const COMPONENT: &str = "csrsigning";
/// Certificates start this far in the past, so a node whose clock lags a little can use
/// its certificate at once (kube-controller-manager does the same).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Cert {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The cluster CA, ready to sign.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, SignError> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| SignError::Cert {
            what: "CA key",
            source,
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|source| SignError::Cert {
            what: "CA certificate",
            source,
        })?;
        Ok(Ca { issuer })
    }

    /// Signs `csr` (already checked against its signer's rules) valid from `now - BACKDATE`
    /// for `ttl`. Returns the certificate PEM.
    pub fn sign(
        &self,
        csr: &CertificateSigningRequest,
        now: std::time::SystemTime,
        ttl: Duration,
    ) -> Result<String, SignError> {
        let pem = std::str::from_utf8(&csr.spec.request.0)
            .map_err(|e| SignError::Invalid(format!("request is not PEM text: {e}")))?;
        let mut req =
            CertificateSigningRequestParams::from_pem(pem).map_err(|source| SignError::Cert {
                what: "parsing the request",
                source,
            })?;
        let p = &mut req.params;
        p.not_before = (now - BACKDATE).into();
        p.not_after = (now + ttl).into();
        p.is_ca = IsCa::ExplicitNoCa;
        let serial: [u8; 16] = rand::random();
        p.serial_number = Some(SerialNumber::from_slice(&serial[..]));
        p.use_authority_key_identifier_extension = true;
        p.key_usages.clear();
        p.extended_key_usages.clear();
        for u in csr.spec.usages.as_deref().unwrap_or_default() {
            match u.as_str() {
                "digital signature" => p.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => p.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "client auth" => p
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                other => {
                    return Err(SignError::Invalid(format!("usage {other:?} is not signed")));
                }
            }
        }
        let cert = req
            .signed_by(&self.issuer)
            .map_err(|source| SignError::Cert {
                what: "signing",
                source,
            })?;
        Ok(cert.pem())
    }
}

/// Whether the signer named in `csr` is one of ours, and whether the request meets its
/// rules (`Err`: the reason for a Failed condition).
pub fn check(csr: &CertificateSigningRequest) -> Option<Result<(), String>> {
    match csr.spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER => Some(kubelet_client(csr).map(|_| ())),
        APISERVER_CLIENT_SIGNER => {
            Some(super::subject(csr).and_then(|_| client_usages(csr, KUBELET_CLIENT_USAGES)))
        }
        _ => None,
    }
}

/// How long a certificate for `csr` lives: what it asks for, at most `max`.
pub fn validity(csr: &CertificateSigningRequest, max: Duration) -> Duration {
    csr.spec
        .expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(max, |s| Duration::from_secs(s).min(max))
}

pub struct Signer<C> {
    cluster: Arc<C>,
    csrs: Informer<CertificateSigningRequest>,
    ca: Ca,
    max: Duration,
}

impl<C: Cluster> Signer<C> {
    /// `None` when the settings name no CA.
    pub fn new(ctx: &Ctx<C>) -> Result<Option<Self>, SignError> {
        let s = &ctx.settings;
        let (Some(cert), Some(key)) = (&s.cluster_signing_cert_file, &s.cluster_signing_key_file)
        else {
            return Ok(None);
        };
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|source| SignError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        Ok(Some(Signer {
            cluster: ctx.cluster.clone(),
            csrs: ctx.informers.csrs.clone(),
            ca: Ca::from_pem(&read(cert)?, &read(key)?)?,
            max: s.cluster_signing_duration,
        }))
    }
}

impl<C: Cluster> Reconciler for Signer<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(csr) = self.csrs.get(None, &key.name) else {
            return Ok(Requeue::Done);
        };
        let issued = csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty());
        if issued
            || !has_condition(&csr, "Approved")
            || has_condition(&csr, "Denied")
            || has_condition(&csr, "Failed")
        {
            return Ok(Requeue::Done);
        }
        let Some(verdict) = check(&csr) else {
            return Ok(Requeue::Done);
        };
        let mut csr = (*csr).clone();
        let outcome = verdict.and_then(|()| {
            self.ca
                .sign(&csr, std::time::SystemTime::now(), validity(&csr, self.max))
                .map_err(|e| e.to_string())
        });
        if let Err(why) = &outcome {
            self.cluster.record(
                ObjectEvent::warning(&csr, "SignerValidationFailure", why.clone()).from(COMPONENT),
            );
        }
        let status = csr
            .status
            .get_or_insert_with(CertificateSigningRequestStatus::default);
        match outcome {
            Ok(pem) => status.certificate = Some(ByteString(pem.into_bytes())),
            Err(why) => {
                status
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(condition("Failed", "SignerValidationFailure", &why));
            }
        }
        match self.cluster.replace_status(&csr).await {
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

    fn ca_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
        let pki = crate::pki::Pki::load_or_create(dir, &[]).unwrap();
        (
            pki.dir.join(crate::pki::CA_CERT),
            pki.dir.join(crate::pki::CA_KEY),
            pki.ca_pem,
        )
    }

    #[tokio::test]
    async fn signs_approved_requests_with_the_cluster_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, ca_pem) = ca_files(dir.path());
        let cluster = Arc::new(FakeCluster::new());
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers: Informers::fake(&cluster),
            settings: Settings {
                cluster_signing_cert_file: Some(cert),
                cluster_signing_key_file: Some(key),
                ..Default::default()
            },
        };
        let s = Signer::new(&ctx).unwrap().unwrap();
        let usages = ["digital signature", "client auth"];
        let (mut csr, key) = request(
            "n1",
            "system:node:n1",
            &["system:nodes"],
            KUBELET_CLIENT_SIGNER,
            &usages,
            "system:bootstrap:abcdef",
            &["system:bootstrappers"],
        );
        csr.spec.expiration_seconds = Some(3600);
        cluster.put(&csr);
        // Not approved yet: nothing.
        s.reconcile(&ObjectKey::new(None, "n1")).await.unwrap();
        let got = cluster
            .get::<CertificateSigningRequest>(None, "n1")
            .unwrap();
        assert!(got.status.is_none());
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![condition("Approved", "AutoApproved", "test")]),
            ..Default::default()
        });
        cluster.put(&csr);
        s.reconcile(&ObjectKey::new(None, "n1")).await.unwrap();
        let got = cluster
            .get::<CertificateSigningRequest>(None, "n1")
            .unwrap();
        let pem = got.status.unwrap().certificate.unwrap().0;

        // The certificate chains to the CA, carries the request's key and subject, and
        // lives as long as asked.
        let (_, ca_der) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der.contents).unwrap();
        let (_, leaf_der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der.contents).unwrap();
        leaf.verify_signature(Some(ca.public_key())).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(
            leaf.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
        assert_eq!(
            leaf.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:node:n1"
        );
        assert_eq!(
            leaf.subject()
                .iter_organization()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:nodes"
        );
        let life = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
        assert_eq!(life, 3600 + BACKDATE.as_secs() as i64);
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!leaf.is_ca());
    }

    #[tokio::test]
    async fn a_request_its_signer_refuses_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = ca_files(dir.path());
        let cluster = Arc::new(FakeCluster::new());
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers: Informers::fake(&cluster),
            settings: Settings {
                cluster_signing_cert_file: Some(cert),
                cluster_signing_key_file: Some(key),
                ..Default::default()
            },
        };
        let s = Signer::new(&ctx).unwrap().unwrap();
        let (mut csr, _) = request(
            "x",
            "alice",
            &["devs"],
            KUBELET_CLIENT_SIGNER,
            &["client auth"],
            "admin",
            &[],
        );
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![condition("Approved", "KubectlApprove", "test")]),
            ..Default::default()
        });
        cluster.put(&csr);
        s.reconcile(&ObjectKey::new(None, "x")).await.unwrap();
        let got = cluster.get::<CertificateSigningRequest>(None, "x").unwrap();
        let st = got.status.unwrap();
        assert!(st.certificate.is_none());
        assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "Failed"));
        // The API server client signer takes any subject with client usages.
        let (mut ok, _) = request(
            "y",
            "alice",
            &["devs"],
            APISERVER_CLIENT_SIGNER,
            &["client auth"],
            "admin",
            &[],
        );
        ok.status = csr.status.clone();
        ok.status.as_mut().unwrap().conditions =
            Some(vec![condition("Approved", "KubectlApprove", "test")]);
        cluster.put(&ok);
        s.reconcile(&ObjectKey::new(None, "y")).await.unwrap();
        let got = cluster.get::<CertificateSigningRequest>(None, "y").unwrap();
        assert!(got.status.unwrap().certificate.is_some());
    }
}
