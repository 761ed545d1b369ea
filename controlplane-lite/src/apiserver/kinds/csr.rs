//! `certificates.k8s.io/v1` CertificateSigningRequest: who asked is the server's to say,
//! the spec never changes after create, `/approval` changes only the conditions and
//! `/status` everything in status but the approval.

use base64::Engine;
use serde_json::{Value, json};

use crate::apiserver::server::Identity;
use crate::apiserver::status::Cause;

pub const KIND: &str = "CertificateSigningRequest";

/// Key usages a CSR may ask for (`certificates.k8s.io/v1` KeyUsage).
pub const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Records the requester in the spec, whatever the client sent there.
pub fn set_requester(obj: &mut Value, id: Option<&Identity>) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for k in ["username", "uid", "groups", "extra"] {
        spec.remove(k);
    }
    if let Some(id) = id {
        spec.insert("username".into(), json!(id.user));
        let mut groups = id.groups.clone();
        // Every authenticated request is also in system:authenticated, as Kubernetes adds.
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        spec.insert("groups".into(), json!(groups));
    }
}

fn condition_types(obj: &Value) -> Vec<&str> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

fn is_approval(c: &Value) -> bool {
    matches!(
        c.get("type").and_then(Value::as_str),
        Some("Approved" | "Denied")
    )
}

/// Fills `lastUpdateTime`/`lastTransitionTime` of conditions that lack them.
fn stamp_conditions(obj: &mut Value) {
    let now = crate::apiserver::object::now_rfc3339();
    if let Some(cs) = obj
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            for k in ["lastUpdateTime", "lastTransitionTime"] {
                if c.get(k).is_none_or(Value::is_null) {
                    c.insert(k.into(), json!(now));
                }
            }
        }
    }
}

/// The CSR part of an update, after the generic strategy ran: `/approval` takes only the
/// new conditions, `/status` keeps the approval conditions as stored, and the main
/// resource keeps its spec.
pub fn prepare_update(new: &mut Value, old: &Value, subresource: Option<&str>) {
    match subresource {
        Some("approval") => {
            let conditions = new
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = old.clone();
            let status = merged
                .as_object_mut()
                .map(|o| o.entry("status").or_insert_with(|| json!({})));
            if let Some(s) = status.and_then(Value::as_object_mut) {
                s.insert("conditions".into(), conditions);
            }
            *new = merged;
        }
        Some("status") => {
            let kept: Vec<Value> = old
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter(|c| is_approval(c)).cloned().collect())
                .unwrap_or_default();
            let mut conditions: Vec<Value> = new
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter(|c| !is_approval(c)).cloned().collect())
                .unwrap_or_default();
            conditions.splice(0..0, kept);
            if let Some(o) = new.as_object_mut() {
                let status = o.entry("status").or_insert_with(|| json!({}));
                if let Some(s) = status.as_object_mut() {
                    s.insert("conditions".into(), json!(conditions));
                }
            }
        }
        _ => {
            if let (Some(o), Some(spec)) = (new.as_object_mut(), old.get("spec")) {
                o.insert("spec".into(), spec.clone());
            }
        }
    }
    if let Some(cs) = new.pointer("/status/conditions").and_then(Value::as_array)
        && cs.is_empty()
        && let Some(s) = new.get_mut("status").and_then(Value::as_object_mut)
    {
        s.remove("conditions");
    }
    stamp_conditions(new);
}

/// The PEM in `spec.request` (stored base64, as every `[]byte` field).
pub fn request_pem(obj: &Value) -> Option<String> {
    let b64 = obj.pointer("/spec/request").and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

fn parses_as_csr(pem: &str) -> bool {
    use x509_parser::prelude::FromDer;
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    p.label == "CERTIFICATE REQUEST"
        && x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents)
            .is_ok()
}

pub fn validate(obj: &Value, old: Option<&Value>, c: &mut Vec<Cause>) {
    match obj.pointer("/spec/request").and_then(Value::as_str) {
        None | Some("") => c.push(Cause::required("spec.request")),
        Some(_) => {
            if !request_pem(obj).is_some_and(|p| parses_as_csr(&p)) {
                c.push(Cause::invalid(
                    "spec.request",
                    &json!("<request>"),
                    "PEM block type must be CERTIFICATE REQUEST",
                ));
            }
        }
    }
    match obj.pointer("/spec/signerName").and_then(Value::as_str) {
        None | Some("") => c.push(Cause::required("spec.signerName")),
        Some(s) if !s.contains('/') || s.starts_with('/') || s.ends_with('/') => {
            c.push(Cause::invalid(
                "spec.signerName",
                &json!(s),
                "must be a fully qualified domain and path of the form 'example.com/signer-name'",
            ))
        }
        Some(_) => {}
    }
    let usages: Vec<&str> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if usages.is_empty() {
        c.push(Cause::required("spec.usages"));
    }
    for (i, u) in usages.iter().enumerate() {
        if !KNOWN_USAGES.contains(u) {
            c.push(Cause::not_supported(
                format!("spec.usages[{i}]"),
                &json!(u),
                KNOWN_USAGES,
            ));
        }
    }
    if let Some(secs) = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && secs < 600
    {
        c.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(secs),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    let types = condition_types(obj);
    if types.contains(&"Approved") && types.contains(&"Denied") {
        c.push(Cause::invalid(
            "status.conditions",
            &json!("Denied"),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    let cert = obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(old) = old {
        let old_types = condition_types(old);
        for t in ["Approved", "Denied"] {
            if old_types.contains(&t) && !types.contains(&t) {
                c.push(Cause::forbidden(
                    "status.conditions",
                    format!("updates may not remove a condition of type \"{t}\""),
                ));
            }
        }
        let old_cert = old
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if old_cert.is_some() && cert != old_cert {
            c.push(Cause::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }
    if cert.is_some() && (!types.contains(&"Approved") || types.contains(&"Denied")) {
        c.push(Cause::forbidden(
            "status.certificate",
            "certificate may only be set if the Approved condition is present and Denied is not",
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn csr_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr() -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({"metadata": {"name": "c"}, "spec": {
            "request": b64.encode(csr_pem()),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            "username": "mallory", "groups": ["system:masters"],
        }})
    }

    #[test]
    fn requester_comes_from_the_identity() {
        let mut c = csr();
        set_requester(
            &mut c,
            Some(&Identity {
                user: "system:bootstrap:abcdef".into(),
                groups: vec!["system:bootstrappers".into()],
            }),
        );
        assert_eq!(c["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(
            c["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
    }

    #[test]
    fn validation() {
        let mut errs = Vec::new();
        validate(&csr(), None, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let mut bad = csr();
        bad["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("nope"));
        bad["spec"].as_object_mut().unwrap().remove("signerName");
        bad["spec"]["usages"] = json!([]);
        let mut errs = Vec::new();
        validate(&bad, None, &mut errs);
        let fields: Vec<&str> = errs.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.request", "spec.signerName", "spec.usages"]);
    }

    #[test]
    fn approval_changes_only_conditions() {
        let old = csr();
        let mut new = csr();
        new["spec"]["signerName"] = json!("example.com/other");
        new["status"] = json!({"certificate": "Zm9v", "conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]});
        prepare_update(&mut new, &old, Some("approval"));
        assert_eq!(new["spec"], old["spec"]);
        assert!(new["status"].get("certificate").is_none());
        assert_eq!(new["status"]["conditions"][0]["type"], "Approved");
        assert!(new["status"]["conditions"][0]["lastUpdateTime"].is_string());
        // The status subresource cannot take an approval away.
        let mut st = new.clone();
        st["status"] =
            json!({"certificate": "Zm9v", "conditions": [{"type": "Denied", "status": "True"}]});
        prepare_update(&mut st, &new, Some("status"));
        let types = condition_types(&st);
        assert_eq!(types, ["Approved"]);
        let mut errs = Vec::new();
        validate(&st, Some(&new), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        // A certificate needs an approval.
        let mut unapproved = csr();
        unapproved["status"] = json!({"certificate": "Zm9v"});
        let mut errs = Vec::new();
        validate(&unapproved, Some(&old), &mut errs);
        assert_eq!(errs.len(), 1);
    }
}
