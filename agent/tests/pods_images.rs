//! Images for pods, end to end: pulls from a local registry (plain HTTP on loopback, and TLS
//! with a password from an image pull secret), the pull policies, and how failures show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::registry::{PASSWORD, Registry, RegistryOptions, USER};
use common::*;
use skiff_agent::runtime::testimage::TestImage;

fn built(marker: &str) -> skiff_agent::runtime::testimage::BuiltImage {
    let mut image = TestImage::busybox("unused");
    image.gzip = true;
    image
        .files
        .push(("/etc/marker".into(), marker.as_bytes().to_vec(), 0o644));
    image.build().unwrap()
}

fn pod(name: &str, image: &str, policy: &str, secret: Option<&str>) -> String {
    let secrets = secret
        .map(|s| format!("  imagePullSecrets: [{{name: {s}}}]\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: node-img
  terminationGracePeriodSeconds: 1
{secrets}  containers:
  - name: app
    image: {image}
    imagePullPolicy: {policy}
    command: ["sh", "-c", "cat /etc/marker; echo; sleep 3600"]
"#
    )
}

fn waiting(p: &serde_json::Value) -> (String, String) {
    let w = &container_status(p, "app")["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn pulls_from_registries_with_and_without_credentials() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open = rt.block_on(Registry::start(RegistryOptions::default()));
    let private = rt.block_on(Registry::start(RegistryOptions {
        tls: true,
        htpasswd: true,
    }));
    rt.block_on(open.push_image("app", "1", &built("open")));
    rt.block_on(private.push_image("secret/app", "1", &built("private")));
    let ca = private.ca.clone().unwrap();
    let c = Cluster::start("node-img", &["--registry-ca-file", ca.to_str().unwrap()]);

    // Plain HTTP on loopback needs no configuration.
    let image = open.image("app:1");
    c.apply(&pod("open", &image, "IfNotPresent", None));
    let p = c.wait_pod("open", "Running", Duration::from_secs(60), |p| {
        phase(p) == "Running"
    });
    let id = container_status(&p, "app")["imageID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        id.starts_with(&format!("{}/app@sha256:", open.host)),
        "{id}"
    );
    c.wait_log("open", "app", 0, "open");
    c.wait_event("open", &format!("Pulling image \"{image}\""));
    let pulled = c.wait_event("open", "Successfully pulled image");
    assert!(pulled.contains("Image size: "), "{pulled}");

    // Present now: IfNotPresent does not pull again, and says so.
    c.apply(&pod("again", &image, "IfNotPresent", None));
    c.wait_pod("again", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    c.wait_event("again", "already present on machine");

    // A tag the registry does not have: ErrImagePull with the registry's reason, then
    // ImagePullBackOff.
    let missing = open.image("app:nope");
    c.apply(&pod("missing", &missing, "IfNotPresent", None));
    let p = c.wait_pod("missing", "ErrImagePull", Duration::from_secs(30), |p| {
        waiting(p).0 == "ErrImagePull"
    });
    let (_, message) = waiting(&p);
    assert!(message.contains("not found"), "{message}");
    assert!(message.contains("manifest unknown"), "{message}");
    c.wait_pod(
        "missing",
        "ImagePullBackOff",
        Duration::from_secs(30),
        |p| {
            waiting(p)
                == (
                    "ImagePullBackOff".into(),
                    format!("Back-off pulling image \"{missing}\""),
                )
        },
    );
    c.wait_event("missing", "Failed to pull image");
    c.wait_event("missing", "Back-off pulling image");
    assert_eq!(phase(&c.pod("missing").unwrap()), "Pending");

    // Never, and absent.
    c.apply(&pod("never", "skiff.test/absent:1", "Never", None));
    let p = c.wait_pod("never", "ErrImageNeverPull", Duration::from_secs(30), |p| {
        waiting(p).0 == "ErrImageNeverPull"
    });
    assert_eq!(
        waiting(&p).1,
        "Container image \"skiff.test/absent:1\" is not present with pull policy of Never"
    );

    // A password-protected registry over TLS: refused without the pull secret, pulled with it.
    let secret_image = private.image("secret/app:1");
    c.apply(&pod("denied", &secret_image, "Always", None));
    let p = c.wait_pod("denied", "ErrImagePull", Duration::from_secs(30), |p| {
        waiting(p).0 == "ErrImagePull"
    });
    assert!(waiting(&p).1.contains("UNAUTHORIZED"), "{}", waiting(&p).1);
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, private.host);
    c.cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "regcred",
        "--type=kubernetes.io/dockerconfigjson",
        &format!("--from-literal=.dockerconfigjson={config}"),
    ]);
    c.apply(&pod("allowed", &secret_image, "Always", Some("regcred")));
    c.wait_pod("allowed", "Running", Duration::from_secs(60), |p| {
        phase(p) == "Running"
    });
    c.wait_log("allowed", "app", 0, "private");
}
