//! `kubectl logs` and the agent's HTTPS API, end to end: every flag of `kubectl logs`, `-f`
//! across rotations and to the container's end, `--previous` after a restart, the errors
//! for containers that never ran, and the agent refusing anyone but the control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use skiff_tests::eventually;

fn running(p: &serde_json::Value, name: &str) -> bool {
    container_status(p, name)["state"]["running"].is_object()
}

#[test]
fn kubectl_logs_with_every_flag() {
    let c = Cluster::start(
        "node-logs",
        &[
            "--container-log-max-size",
            "2Ki",
            "--container-log-max-files",
            "3",
        ],
    );
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  nodeName: node-logs
  terminationGracePeriodSeconds: 1
  containers:
  - name: counter
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done"]
  - name: errs
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo out1; echo err1 >&2; sleep 2; echo out2; exec sleep 100000"]
---
apiVersion: v1
kind: Pod
metadata: {{name: short}}
spec:
  nodeName: node-logs
  restartPolicy: Never
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo begin; sleep 4; echo finish"]
"#
    ));
    c.wait_pod("talker", "running", Duration::from_secs(30), |p| {
        running(p, "counter") && running(p, "errs")
    });
    let cp = &c.cp;

    // Which container: kube-apiserver's words (kubectl itself defaults to the first).
    let err = cp.kubectl_err(&["get", "--raw", "/api/v1/namespaces/default/pods/talker/log"]);
    assert!(
        err.contains(
            "a container name must be specified for pod talker, choose one of: [counter errs]"
        ),
        "{err}"
    );
    let err = cp.kubectl_err(&["logs", "talker", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod talker"),
        "{err}"
    );

    // Both streams, then --tail, --limit-bytes, --timestamps, --since, --since-time.
    let out = eventually(Duration::from_secs(10), "out2 logged", || {
        let out = cp.kubectl_ok(&["logs", "talker", "-c", "errs"]);
        out.contains("out2").then_some(out)
    });
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["err1", "out1", "out2"], "{out}");
    assert_eq!(
        cp.kubectl_ok(&["logs", "talker", "-c", "errs", "--tail=1"]),
        "out2\n"
    );
    assert_eq!(
        cp.kubectl_ok(&["logs", "talker", "-c", "errs", "--tail=0"]),
        ""
    );
    let first3 = cp.kubectl_ok(&["logs", "talker", "-c", "errs", "--limit-bytes=3"]);
    assert_eq!(first3.len(), 3, "{first3}");
    let stamped = cp.kubectl_ok(&["logs", "talker", "-c", "errs", "--timestamps"]);
    for l in stamped.lines() {
        let (ts, text) = l.split_once(' ').unwrap();
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{l}");
        assert!(["out1", "err1", "out2"].contains(&text), "{l}");
    }
    assert_eq!(
        cp.kubectl_ok(&["logs", "talker", "-c", "errs", "--since=1h"])
            .lines()
            .count(),
        3
    );
    // out2 came two seconds after the others: a since between them keeps only it.
    let out2_time = stamped
        .lines()
        .find(|l| l.ends_with(" out2"))
        .and_then(|l| l.split_once(' '))
        .map(|(t, _)| t.to_string())
        .unwrap();
    assert_eq!(
        cp.kubectl_ok(&[
            "logs",
            "talker",
            "-c",
            "errs",
            &format!("--since-time={out2_time}")
        ]),
        "out2\n"
    );
    let all = cp.kubectl_ok(&["logs", "talker", "--all-containers", "--tail=1"]);
    assert!(all.contains("out2") && all.contains("line "), "{all}");
    let prefixed = cp.kubectl_ok(&["logs", "talker", "--all-containers", "--prefix", "--tail=1"]);
    assert!(prefixed.contains("[pod/talker/errs] out2"), "{prefixed}");

    // -f across rotations: consecutive numbers, none lost or repeated.
    let mut follow = cp
        .kubectl_cmd(&["logs", "-f", "talker", "-c", "counter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    std::thread::sleep(Duration::from_secs(8));
    follow.kill().unwrap();
    follow.wait().unwrap();
    let followed = reader.join().unwrap();
    let numbers: Vec<u64> = followed
        .lines()
        .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert!(numbers.len() > 80, "{} lines followed", numbers.len());
    for w in numbers.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or repeat while following");
    }
    let p = c.pod("talker").unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let dir = c
        .node
        .logs_dir()
        .join(format!("default_talker_{uid}"))
        .join("counter");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 3, "max-files 3: {files:?}");
    assert!(files.iter().all(|f| f.starts_with("0.log")), "{files:?}");
    // The live file starts where the last rotated one stopped, in the CRI format.
    let live = std::fs::read_to_string(dir.join("0.log")).unwrap();
    let first = live.lines().next().unwrap();
    assert!(first.contains(" stdout F line "), "{first}");

    // -f ends with the container.
    let t0 = Instant::now();
    let out = cp.kubectl_ok(&["logs", "-f", "short"]);
    assert_eq!(out, "begin\nfinish\n");
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn previous_and_not_yet_started() {
    let c = Cluster::start("node-logs-prev", &[]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: restarter}}
spec:
  nodeName: node-logs-prev
  terminationGracePeriodSeconds: 1
  volumes: [{{name: d, emptyDir: {{}}}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    volumeMounts: [{{name: d, mountPath: /d}}]
    command: ["sh", "-c", "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo run $n; sleep 8; exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {{name: waiting}}
spec:
  nodeName: node-logs-prev
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["true"]
---
apiVersion: v1
kind: Pod
metadata: {{name: unscheduled}}
spec:
  containers:
  - name: app
    image: {IMAGE}
"#
    ));
    c.wait_pod("restarter", "running", Duration::from_secs(30), |p| {
        running(p, "app")
    });
    let cp = &c.cp;
    let err = cp.kubectl_err(&["logs", "restarter", "--previous"]);
    assert!(
        err.contains(r#"previous terminated container "app" in pod "restarter" not found"#),
        "{err}"
    );
    eventually(Duration::from_secs(5), "run 1 logged", || {
        (cp.kubectl_ok(&["logs", "restarter"]) == "run 1\n").then_some(())
    });
    c.wait_pod("restarter", "restarted", Duration::from_secs(30), |p| {
        container_status(p, "app")["restartCount"] == 1 && running(p, "app")
    });
    eventually(Duration::from_secs(5), "run 2 logged", || {
        (cp.kubectl_ok(&["logs", "restarter"]) == "run 2\n").then_some(())
    });
    assert_eq!(cp.kubectl_ok(&["logs", "restarter", "-p"]), "run 1\n");

    c.wait_pod("waiting", "initializing", Duration::from_secs(30), |p| {
        container_status(p, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    });
    let err = cp.kubectl_err(&["logs", "waiting", "-c", "app"]);
    assert!(
        err.contains(r#"container "app" in pod "waiting" is waiting to start: PodInitializing"#),
        "{err}"
    );
    // A pod on no node has no logs, and that is no error.
    assert_eq!(cp.kubectl_ok(&["logs", "unscheduled"]), "");
}

/// GET `url` with an optional client identity: (status, body).
fn get(url: &str, identity: Option<(&str, &str)>) -> (u16, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let res = client(identity).get(url).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    })
}

fn client(identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn issue(ca_cert: &str, ca_key: &str, cn: &str, org: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::from_pem(ca_key).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn self_signed_ca() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stranger-ca");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn the_agent_api_lets_in_only_the_control_plane() {
    let c = Cluster::start("node-api", &[]);
    let port = c.node.port;
    let published = c.cp.kubectl_ok(&[
        "get",
        "node",
        "node-api",
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    assert_eq!(published, port.to_string());
    let url = format!("https://127.0.0.1:{port}/pods");
    let pki = c.cp.data_dir().join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();

    assert_eq!(get(&url, None), (401, "Unauthorized".into()));

    let (sca, skey) = self_signed_ca();
    let (cert, key) = issue(&sca, &skey, KUBELET_USER, "system:masters");
    assert_eq!(get(&url, Some((&cert, &key))).0, 401);

    let (cert, key) = issue(
        &read("ca.crt"),
        &read("ca.key"),
        "system:node:x",
        "system:nodes",
    );
    assert_eq!(
        get(&url, Some((&cert, &key))),
        (
            403,
            "Forbidden (user=system:node:x, verb=get, resource=nodes, subresource=proxy)".into()
        )
    );

    let (cert, key) = (
        read("apiserver-kubelet-client.crt"),
        read("apiserver-kubelet-client.key"),
    );
    let (status, body) = get(&url, Some((&cert, &key)));
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");

    // Through the API server: nodes/<name>/proxy.
    assert_eq!(
        c.cp.kubectl_ok(&["get", "--raw", "/api/v1/nodes/node-api/proxy/healthz"]),
        "ok"
    );
    let pods =
        c.cp.kubectl_ok(&["get", "--raw", "/api/v1/nodes/node-api/proxy/pods"]);
    assert!(pods.contains("\"PodList\""), "{pods}");
}

const KUBELET_USER: &str = "kube-apiserver-kubelet-client";
