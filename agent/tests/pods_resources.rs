//! Resources end to end: the QoS tree and limits read back from the cgroup files, an OOM
//! kill, admission refusing what does not fit, and every volume type.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use skiff_tests::eventually;

fn cgroup_file(c: &Cluster, controller: &str, rel: &str, file: &str) -> String {
    let path = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(c.node.cgroup_root().trim_start_matches('/'))
        .join(rel)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn uid(p: &serde_json::Value) -> String {
    p["metadata"]["uid"].as_str().unwrap().to_string()
}

#[test]
fn limits_qos_oom_and_admission() {
    let c = Cluster::start("node-res", &[]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: guaranteed}}
spec:
  nodeName: node-res
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    resources:
      requests: {{cpu: 250m, memory: 64Mi}}
      limits: {{cpu: 250m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {{name: burstable}}
spec:
  nodeName: node-res
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    resources:
      requests: {{cpu: 100m}}
---
apiVersion: v1
kind: Pod
metadata: {{name: oom}}
spec:
  nodeName: node-res
  restartPolicy: Never
  containers:
  - name: hog
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "head -c 200m /dev/zero | tail"]
    resources:
      limits: {{memory: 32Mi}}
"#
    ));
    let g = c.wait_pod("guaranteed", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert_eq!(g["status"]["qosClass"], "Guaranteed");
    let pod = format!("pod{}", uid(&g));
    assert_eq!(
        cgroup_file(&c, "memory", &pod, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&c, "cpu", &pod, "cpu.cfs_quota_us"), "25000");
    let id = container_status(&g, "app")["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_string();
    let ctr = format!("{pod}/{id}");
    assert_eq!(
        cgroup_file(&c, "memory", &ctr, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&c, "cpu", &ctr, "cpu.shares"), "256");
    assert_eq!(cgroup_file(&c, "cpu", &ctr, "cpu.cfs_quota_us"), "25000");

    let b = c.wait_pod("burstable", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert_eq!(b["status"]["qosClass"], "Burstable");
    let pod = format!("burstable/pod{}", uid(&b));
    assert_eq!(cgroup_file(&c, "cpu", &pod, "cpu.shares"), "102");

    let o = c.wait_pod("oom", "Failed", Duration::from_secs(60), |p| {
        phase(p) == "Failed"
    });
    let t = &container_status(&o, "hog")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(o["status"]["qosClass"], "Burstable");

    // More cpu than the node has: rejected at once, as kubelet's admission does.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: huge}}
spec:
  nodeName: node-res
  containers:
  - name: app
    image: {IMAGE}
    command: ["sleep", "3600"]
    resources:
      requests: {{cpu: "500"}}
"#
    ));
    let h = c.wait_pod("huge", "rejected", Duration::from_secs(20), |p| {
        phase(p) == "Failed"
    });
    assert_eq!(h["status"]["reason"], "OutOfcpu");
    let msg = h["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Pod was rejected: Node didn't have enough resource: cpu, requested: 500000, used: 350, capacity: "),
        "{msg}"
    );
    c.wait_event("huge", "OutOfcpu");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(c.containers_of(&uid(&h))).is_empty());
    let table = c.cp.kubectl_ok(&["get", "pod", "huge"]);
    assert!(table.contains("OutOfcpu"), "{table}");
}

#[test]
fn volumes_of_every_kind() {
    let c = Cluster::start("node-vol", &[]);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("from-host"), "host data").unwrap();
    let pv_dir = tempfile::tempdir().unwrap();
    std::fs::write(pv_dir.path().join("claimed"), "pv data").unwrap();
    let made = host.path().join("made-by-pod");
    c.apply(&format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config}}
data: {{index.html: "version 1", other: "x"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: web-secret}}
stringData: {{token: s3cret}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-vol}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {pv}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  volumeName: pv-vol
"#,
        pv = pv_dir.path().display()
    ));
    // Bound by hand, as the volume binder would (the claim's uid in the volume's claimRef).
    let claim_uid =
        c.cp.kubectl_ok(&["get", "pvc", "claim", "-o", "jsonpath={.metadata.uid}"]);
    c.cp.kubectl_ok(&[
        "patch",
        "pv",
        "pv-vol",
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"claimRef":{{"namespace":"default","name":"claim","uid":"{claim_uid}"}}}}}}"#),
    ]);
    c.cp.kubectl_ok(&[
        "patch",
        "pvc",
        "claim",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound"}}"#,
    ]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: vols, labels: {{tier: web}}}}
spec:
  nodeName: node-vol
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: ram, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
  - {{name: host, hostPath: {{path: {host}, type: Directory}}}}
  - {{name: made, hostPath: {{path: {made}, type: DirectoryOrCreate}}}}
  - name: cfg
    configMap:
      name: web-config
      items: [{{key: index.html, path: site/index.html, mode: 0600}}]
  - {{name: sec, secret: {{secretName: web-secret, defaultMode: 0400}}}}
  - name: info
    downwardAPI:
      items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]
  - {{name: data, persistentVolumeClaim: {{claimName: claim}}}}
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "while true; do echo CFG=$(cat /cfg/site/index.html); sleep 0.3; done"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: ram, mountPath: /ram}}
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: made, mountPath: /made}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: data, mountPath: /data}}
    - {{name: scratch, mountPath: /sub, subPath: deep/dir}}
  - name: check
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo write > /scratch/shared; echo RAM=$(grep ' /ram ' /proc/mounts | cut -d' ' -f3,4); cat /host/from-host; echo; touch /host/nope 2>/dev/null && echo HOST-RW || echo HOST-RO; echo MODE=$(stat -L -c %a /cfg/site/index.html) SEC=$(cat /sec/token) $(stat -L -c %a /sec/token); cat /info/labels; echo; cat /data/claimed; echo; echo sub > /sub/file; echo made > /made/file; echo CHECKED; sleep 3600"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: ram, mountPath: /ram}}
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: made, mountPath: /made}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: sec, mountPath: /sec}}
    - {{name: info, mountPath: /info}}
    - {{name: data, mountPath: /data}}
    - {{name: scratch, mountPath: /sub, subPath: deep/dir}}
"#,
        host = host.path().display(),
        made = made.display(),
    ));
    c.wait_pod("vols", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let log = c.wait_log("vols", "check", 0, "CHECKED");
    assert!(
        log.contains("RAM=tmpfs") && log.contains("size=8192k"),
        "{log}"
    );
    assert!(log.contains("host data\nHOST-RO"), "{log}");
    assert!(log.contains("MODE=600 SEC=s3cret 400"), "{log}");
    assert!(log.contains("tier=\"web\""), "{log}");
    assert!(log.contains("pv data"), "{log}");
    assert_eq!(
        std::fs::read_to_string(made.join("file")).unwrap(),
        "made\n"
    );
    let p = c.pod("vols").unwrap();
    let scratch = c
        .node
        .root()
        .join("pods")
        .join(uid(&p))
        .join("volumes/kubernetes.io~empty-dir/scratch");
    assert_eq!(
        std::fs::read_to_string(scratch.join("deep/dir/file")).unwrap(),
        "sub\n"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.join("shared")).unwrap(),
        "write\n"
    );

    // A ConfigMap update reaches the running container.
    c.wait_log("vols", "app", 0, "CFG=version 1");
    c.cp.kubectl_ok(&[
        "patch",
        "configmap",
        "web-config",
        "--type=merge",
        "-p",
        r#"{"data":{"index.html":"version 2"}}"#,
    ]);
    c.wait_log("vols", "app", 0, "CFG=version 2");

    // A hostPath that must be a directory and is not: the pod cannot start, and says why.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: nohost}}
spec:
  nodeName: node-vol
  volumes: [{{name: h, hostPath: {{path: {missing}, type: Directory}}}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    volumeMounts: [{{name: h, mountPath: /h}}]
"#,
        missing = host.path().join("missing").display()
    ));
    let ev = c.wait_event("nohost", "FailedMount");
    assert!(
        ev.contains("MountVolume.SetUp failed for volume \"h\""),
        "{ev}"
    );
    let p = c.pod("nohost").unwrap();
    assert_eq!(phase(&p), "Pending");
    assert_eq!(
        container_status(&p, "app")["state"]["waiting"]["reason"],
        "ContainerCreating"
    );

    // Deleting the pod unmounts and removes its volumes and leaves hostPath data alone.
    c.delete_and_wait("vols");
    eventually(Duration::from_secs(10), "pod dir gone", || {
        (!scratch.exists()).then_some(())
    });
    assert!(host.path().join("from-host").exists());
    assert!(pv_dir.path().join("claimed").exists());
}
