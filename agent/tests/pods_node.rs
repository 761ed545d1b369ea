//! The node and the pod network end to end: pods' hosts and resolv.conf files, host-network
//! pods, pods reaching each other, and the node going NotReady (with kubelet's reason) while
//! its network plugin fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use skiff_tests::eventually;

#[test]
fn dns_files_host_network_and_pod_to_pod() {
    let c = Cluster::start(
        "node-net",
        &[
            "--cluster-dns",
            "10.96.0.10",
            "--cluster-domain",
            "cluster.local",
        ],
    );
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: default}}
spec:
  nodeName: node-net
  hostname: web
  subdomain: front
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello-from-server > /tmp/index.html; cat /etc/resolv.conf; cat /etc/hosts; hostname; httpd -f -p 8080 -h /tmp"]
  - name: shm-writer
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo shared-memory > /dev/shm/note; sleep 3600"]
  - name: shm-reader
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "until [ -e /dev/shm/note ]; do sleep 0.2; done; echo SHM=$(cat /dev/shm/note); sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  nodeName: node-net
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "hostname; sleep 3600"]
"#
    ));
    let s = c.wait_pod("server", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let server_ip = s["status"]["podIP"].as_str().unwrap().to_string();
    let log = c.wait_log("server", "app", 0, "search");
    assert!(log.contains("nameserver 10.96.0.10"), "{log}");
    assert!(
        log.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{log}"
    );
    assert!(log.contains("options ndots:5"), "{log}");
    assert!(
        log.contains(&format!(
            "{server_ip}\tweb.front.default.svc.cluster.local\tweb"
        )),
        "{log}"
    );
    c.wait_log("server", "shm-reader", 0, "SHM=shared-memory");
    let h = c.wait_pod("hostnet", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert_eq!(h["status"]["podIP"], "127.0.0.1");
    let node_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    c.wait_log("hostnet", "app", 0, node_hostname.trim());

    // A second pod fetches from the first across the bridge.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node-net
  restartPolicy: Never
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://{server_ip}:8080/index.html && exit 0; sleep 0.5; done; exit 1"]
"#
    ));
    let p = c.wait_pod("client", "Succeeded", Duration::from_secs(30), |p| {
        phase(p) == "Succeeded" || phase(p) == "Failed"
    });
    assert_eq!(phase(&p), "Succeeded");
    c.wait_log("client", "app", 0, "hello-from-server");
}

fn ready(c: &Cluster, node: &str) -> (String, String) {
    let out = c.cp.kubectl_ok(&["get", "node", node, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cond = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap();
    (
        cond["status"].as_str().unwrap().to_string(),
        cond["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn a_failing_network_plugin_makes_the_node_not_ready() {
    // A plugin that answers STATUS with an error while a flag file exists.
    let extra = tempfile::tempdir().unwrap();
    let flag = extra.path().join("broken");
    let script = extra.path().join("flaky");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$CNI_COMMAND\" in\n  VERSION) echo '{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}}' ;;\n  STATUS) if [ -e {flag} ]; then echo '{{\"cniVersion\":\"1.1.0\",\"code\":50,\"msg\":\"flaky is broken\"}}'; exit 1; fi ;;\nesac\nexit 0\n",
            flag = flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = extra.path().display().to_string();
    let c = Cluster::start("node-health", &["--cni-bin-dir", &bin]);
    assert_eq!(ready(&c, "node-health").0, "True");

    // The network configuration changes to one whose plugin fails: NotReady, in kubelet's
    // words and with the plugin's message.
    let conf = c.node.cni_conf_dir().join("10-e2e.conflist");
    let original = std::fs::read_to_string(&conf).unwrap();
    let mut broken: serde_json::Value = serde_json::from_str(&original).unwrap();
    broken["plugins"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "flaky"}));
    std::fs::write(&flag, "").unwrap();
    std::fs::write(&conf, serde_json::to_vec(&broken).unwrap()).unwrap();
    let message = eventually(Duration::from_secs(30), "NotReady", || {
        let (status, message) = ready(&c, "node-health");
        (status == "False").then_some(message)
    });
    assert!(message.contains("NetworkPluginNotReady"), "{message}");
    assert!(message.contains("flaky is broken"), "{message}");
    let table = c.cp.kubectl_ok(&["get", "nodes"]);
    assert!(table.contains("NotReady"), "{table}");

    // The plugin recovers: Ready again.
    std::fs::remove_file(&flag).unwrap();
    eventually(Duration::from_secs(30), "Ready again", || {
        (ready(&c, "node-health").0 == "True").then_some(())
    });
}
