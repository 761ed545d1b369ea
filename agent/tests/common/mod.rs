//! What the end-to-end pod suites share: a control plane with one agent node, kubectl
//! helpers, and pod manifests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod host;
pub mod registry;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skiff_agent::daemon::NAMESPACE;
use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::testimage::TestImage;
use skiff_agent::runtime::{ContainerInfo, Runtime};
use skiff_tests::{AgentNode, ControlPlane, eventually, workspace_bin};

pub const IMAGE: &str = "skiff.test/busybox:1";

pub struct Cluster {
    // Dropped first: the node goes before its control plane.
    pub node: AgentNode,
    pub cp: ControlPlane,
}

impl Cluster {
    pub fn start(node_name: &str, extra: &[&str]) -> Cluster {
        Cluster::start_with(node_name, &[], extra)
    }

    /// A cluster whose control plane gets `cp_extra` flags, its node `extra`.
    pub fn start_with(node_name: &str, cp_extra: &[&str], extra: &[&str]) -> Cluster {
        let cp =
            ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), cp_extra).unwrap();
        let node = AgentNode::start(&cp, node_name, extra).unwrap();
        node.import_busybox(IMAGE).unwrap();
        let c = Cluster { node, cp };
        eventually(Duration::from_secs(20), "node Ready", || {
            let out = c.cp.kubectl(&[
                "get",
                "node",
                node_name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        c
    }

    pub fn apply(&self, yaml: &str) {
        self.cp.kubectl_stdin(&["apply", "-f", "-"], yaml);
    }

    pub fn pod(&self, name: &str) -> Option<Value> {
        let out = self.cp.kubectl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(timeout, &format!("pod {name}: {what}"), || {
            self.pod(name).filter(|p| f(p))
        })
    }

    pub fn wait_gone(&self, name: &str, timeout: Duration) {
        eventually(timeout, &format!("pod {name} gone"), || {
            self.pod(name).is_none().then_some(())
        });
    }
}

pub fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

pub fn condition<'a>(p: &'a Value, t: &str) -> &'a str {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
}

pub fn pod_yaml(name: &str, node: &str, spec_extra: &str, container_extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 5
{spec_extra}
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: IfNotPresent
{container_extra}
"#
    )
}

impl Cluster {
    /// A connection to the node's containerd.
    pub async fn runtime(&self) -> Containerd {
        Containerd::connect(ContainerdConfig::new(self.node.socket(), NAMESPACE))
            .await
            .unwrap()
    }

    /// The node's containers of the pod with this uid.
    pub async fn containers_of(&self, uid: &str) -> Vec<ContainerInfo> {
        self.runtime()
            .await
            .list()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.meta.as_ref().is_some_and(|m| m.pod_uid == uid))
            .collect()
    }

    /// Builds `image` and imports it into the node.
    pub async fn import(&self, image: &TestImage) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        image.write_oci_archive(&path).unwrap();
        self.runtime().await.import_archive(&path).await.unwrap();
    }

    /// The log of a container's run.
    pub fn log(&self, pod: &Value, container: &str, attempt: u32) -> String {
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        let name = pod["metadata"]["name"].as_str().unwrap();
        let ns = pod["metadata"]["namespace"].as_str().unwrap();
        let path = self
            .node
            .logs_dir()
            .join(format!("{ns}_{name}_{uid}"))
            .join(container)
            .join(format!("{attempt}.log"));
        // The file is in the CRI format; the container's own output is what tests check.
        let raw = std::fs::read(path).unwrap_or_default();
        let mut out = Vec::new();
        for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(e) = skiff_agent::logs::cri::parse(line) {
                out.extend_from_slice(e.text);
                if !e.partial {
                    out.push(b'\n');
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits until the container's log of `attempt` contains `text`; returns the log.
    pub fn wait_log(&self, pod: &str, container: &str, attempt: u32, text: &str) -> String {
        eventually(
            Duration::from_secs(20),
            &format!("{pod}/{container} logs {text:?}"),
            || {
                let p = self.pod(pod)?;
                let log = self.log(&p, container, attempt);
                log.contains(text).then_some(log)
            },
        )
    }

    /// The events of a pod, as `reason: message` lines.
    pub fn events(&self, pod: &str) -> Vec<String> {
        let out = self.cp.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["reason"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    pub fn wait_event(&self, pod: &str, text: &str) -> String {
        eventually(
            Duration::from_secs(30),
            &format!("event {text:?} of {pod}"),
            || self.events(pod).into_iter().find(|e| e.contains(text)),
        )
    }

    pub fn delete_and_wait(&self, pod: &str) {
        self.cp.kubectl_ok(&["delete", "pod", pod, "--wait=false"]);
        self.wait_gone(pod, Duration::from_secs(60));
    }
}

/// A container's status by name (init containers too).
pub fn container_status<'a>(p: &'a Value, name: &str) -> &'a Value {
    for list in ["initContainerStatuses", "containerStatuses"] {
        if let Some(cs) = p["status"][list]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name))
        {
            return cs;
        }
    }
    &Value::Null
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
