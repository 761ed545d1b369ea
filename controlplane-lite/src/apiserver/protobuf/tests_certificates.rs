//! The CertificateSigningRequest table against k8s-pb's encoder, with the object built as
//! Go's encoder writes what `kubectl certificate approve` PUTs to `/approval`.

use k8s_pb::api::certificates::v1 as certs;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::json;

use super::decode;

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

#[test]
fn an_approval_decodes_as_kubectl_sent_it() {
    let csr = certs::CertificateSigningRequest {
        metadata: Some(meta::ObjectMeta {
            name: s("alice"),
            resource_version: s("42"),
            ..Default::default()
        }),
        spec: Some(certs::CertificateSigningRequestSpec {
            request: Some(b"PEM".to_vec()),
            signer_name: s("kubernetes.io/kube-apiserver-client"),
            expiration_seconds: Some(86400),
            usages: vec!["client auth".into()],
            username: s("skiff-admin"),
            uid: s(""),
            groups: vec!["system:masters".into()],
            ..Default::default()
        }),
        status: Some(certs::CertificateSigningRequestStatus {
            conditions: vec![certs::CertificateSigningRequestCondition {
                r#type: s("Approved"),
                status: s("True"),
                reason: s("KubectlApprove"),
                message: s("This CSR was approved by kubectl certificate approve."),
                last_update_time: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                last_transition_time: None,
            }],
            certificate: Some(Vec::new()),
        }),
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("certificates.k8s.io/v1"),
            kind: s("CertificateSigningRequest"),
        }),
        raw: Some(csr.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    let got = decode(&body).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "alice", "resourceVersion": "42"},
            "spec": {
                "request": "UEVN",
                "signerName": "kubernetes.io/kube-apiserver-client",
                "expirationSeconds": 86400,
                "usages": ["client auth"],
                "username": "skiff-admin",
                "groups": ["system:masters"],
            },
            "status": {"conditions": [{
                "type": "Approved",
                "status": "True",
                "reason": "KubectlApprove",
                "message": "This CSR was approved by kubectl certificate approve.",
                "lastUpdateTime": "2023-11-14T22:13:20Z",
            }]},
        })
    );
}
