//! What a container is given, end to end: command, args and environment from every
//! source, the image's defaults, security contexts, and init containers — each read back
//! from inside the container through its log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_agent::runtime::testimage::TestImage;

#[test]
fn environment_from_every_source_and_image_defaults() {
    let c = Cluster::start("node-env", &[]);
    c.apply(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast, LEVEL: "3"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {PASSWORD: hunter2}
"#,
    );
    // An image with its own entrypoint, cmd, env, user and working directory.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut custom = TestImage::busybox("skiff.test/custom:1");
    custom.entrypoint = vec!["sh".into(), "-c".into()];
    custom.cmd = vec!["echo image cmd as $(id -u) in $PWD with $FROM_IMAGE; sleep 3600".into()];
    custom.env = Some(vec!["FROM_IMAGE=yes".into(), "PATH=/bin:/usr/bin".into()]);
    custom.user = Some("1000".into());
    custom.working_dir = Some("/home/skiff".into());
    let mut no_env = TestImage::busybox("skiff.test/noenv:1");
    no_env.env = None;
    rt.block_on(async {
        c.import(&custom).await;
        c.import(&no_env).await;
    });

    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: env, labels: {{app: shop}}}}
spec:
  nodeName: node-env
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    workingDir: /tmp
    command: ["sh", "-c"]
    args: ["echo GREETING=$GREETING; echo POD=$POD NS=$NS IP=$IP APP=$APP; echo LEVEL=$LEVEL PW=$PW MEM=$MEM; echo CFG_MODE=$CFG_MODE PASSWORD=$PASSWORD; echo PWD=$(pwd); echo PATH=$PATH; echo EXPANDED=$(GREETING); echo K8S=$KUBERNETES_SERVICE_HOST; sleep 3600"]
    envFrom:
    - configMapRef: {{name: settings}}
      prefix: CFG_
    - secretRef: {{name: creds}}
    env:
    - {{name: GREETING, value: "hello $(CFG_MODE)"}}
    - name: POD
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: NS
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    - name: IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
    - name: APP
      valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
    - name: LEVEL
      valueFrom: {{configMapKeyRef: {{name: settings, key: LEVEL}}}}
    - name: PW
      valueFrom: {{secretKeyRef: {{name: creds, key: PASSWORD}}}}
    - name: MEM
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    resources:
      limits: {{memory: 64Mi}}
  - name: image-defaults
    image: skiff.test/custom:1
    imagePullPolicy: Never
  - name: no-env
    image: skiff.test/noenv:1
    imagePullPolicy: Never
    command: ["sh", "-c", "echo PATH=$PATH; sleep 3600"]
"#
    ));
    let p = c.wait_pod("env", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    let log = c.wait_log("env", "app", 0, "K8S=");
    assert!(log.contains("GREETING=hello fast"), "{log}");
    assert!(
        log.contains(&format!("POD=env NS=default IP={ip} APP=shop")),
        "{log}"
    );
    assert!(log.contains("LEVEL=3 PW=hunter2 MEM=64"), "{log}");
    assert!(log.contains("CFG_MODE=fast PASSWORD=hunter2"), "{log}");
    assert!(log.contains("PWD=/tmp"), "{log}");
    assert!(log.contains("EXPANDED=hello fast"), "{log}");
    let log = c.wait_log("env", "image-defaults", 0, "image cmd");
    assert!(
        log.contains("image cmd as 1000 in /home/skiff with yes"),
        "{log}"
    );
    let log = c.wait_log("env", "no-env", 0, "PATH=");
    assert!(
        log.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{log}"
    );

    // A reference that does not resolve keeps the container waiting with kubelet's reason.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  nodeName: node-env
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    env:
    - name: X
      valueFrom: {{configMapKeyRef: {{name: settings, key: NOPE}}}}
"#
    ));
    let p = c.wait_pod(
        "missing",
        "CreateContainerConfigError",
        Duration::from_secs(20),
        |p| {
            container_status(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        },
    );
    assert_eq!(
        container_status(&p, "app")["state"]["waiting"]["message"],
        "couldn't find key NOPE in ConfigMap default/settings"
    );
    // Once the key exists, the container starts.
    c.cp.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"NOPE":"here"}}"#,
    ]);
    c.wait_pod("missing", "Running", Duration::from_secs(20), |p| {
        phase(p) == "Running"
    });
}

#[test]
fn security_contexts() {
    let c = Cluster::start("node-sec", &[]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: sec}}
spec:
  nodeName: node-sec
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}}
  containers:
  - name: user
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo ID=$(id -u):$(id -g):$(id -G); touch /ro-test && echo WROTE || echo READONLY; grep NoNewPrivs /proc/self/status; sleep 3600"]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
  - name: caps
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "grep CapEff /proc/self/status; sleep 3600"]
    securityContext:
      runAsUser: 0
      capabilities: {{drop: [ALL], add: [NET_ADMIN]}}
  - name: privileged
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "grep CapEff /proc/self/status; ls /dev | wc -l; sleep 3600"]
    securityContext: {{runAsUser: 0, privileged: true}}
"#
    ));
    c.wait_pod("sec", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let log = c.wait_log("sec", "user", 0, "NoNewPrivs");
    assert!(log.contains("ID=1000:3000:3000 4000"), "{log}");
    assert!(log.contains("READONLY"), "{log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    // NET_ADMIN is capability 12: only bit 12 set.
    let log = c.wait_log("sec", "caps", 0, "CapEff");
    assert!(log.contains("CapEff:\t0000000000001000"), "{log}");
    let log = c.wait_log("sec", "privileged", 0, "CapEff");
    let held = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = held
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(log.contains(&format!("CapEff:\t{bnd}")), "{log}");
    let devices: usize = log
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        devices > 10,
        "a privileged container sees the host's devices: {log}"
    );

    // runAsNonRoot against an image that runs as root.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: nonroot}}
spec:
  nodeName: node-sec
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    securityContext: {{runAsNonRoot: true}}
"#
    ));
    let p = c.wait_pod("nonroot", "refused", Duration::from_secs(20), |p| {
        container_status(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let msg = container_status(&p, "app")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("container has runAsNonRoot and image will run as root"),
        "{msg}"
    );
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let c = Cluster::start("node-init", &[]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: inits}}
spec:
  nodeName: node-init
  terminationGracePeriodSeconds: 1
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: first
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo first >> /work/order; sleep 1"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /work/order; echo app; sleep 3600"]
    volumeMounts: [{{name: work, mountPath: /work}}]
"#
    ));
    // While the first init container runs, the pod is initializing.
    let p = c.wait_pod("inits", "initializing", Duration::from_secs(20), |p| {
        container_status(p, "first")["state"]["running"].is_object()
    });
    assert_eq!(phase(&p), "Pending");
    assert_eq!(condition(&p, "Initialized"), "False");
    assert_eq!(
        container_status(&p, "app")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    let p = c.wait_pod("inits", "Running", Duration::from_secs(20), |p| {
        phase(p) == "Running"
    });
    assert_eq!(condition(&p, "Initialized"), "True");
    assert_eq!(
        container_status(&p, "second")["state"]["terminated"]["reason"],
        "Completed"
    );
    let log = c.wait_log("inits", "app", 0, "app");
    assert!(log.starts_with("first\nsecond\napp"), "{log}");

    // A failing init container of a Never pod fails the pod; the app never starts.
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: badinit}}
spec:
  nodeName: node-init
  restartPolicy: Never
  initContainers:
  - name: fail
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#
    ));
    let p = c.wait_pod("badinit", "Failed", Duration::from_secs(20), |p| {
        phase(p) == "Failed"
    });
    assert_eq!(
        container_status(&p, "fail")["state"]["terminated"]["exitCode"],
        3
    );
    assert_eq!(
        container_status(&p, "app")["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    let table = c.cp.kubectl_ok(&["get", "pod", "badinit"]);
    assert!(table.contains("Init:Error"), "{table}");
}
