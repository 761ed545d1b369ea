//! The API server driven by the real `kubectl`, as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use skiff_tests::{ControlPlane, Etcd, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");

fn start() -> ControlPlane {
    ControlPlane::start(BIN.as_ref(), &[]).expect("control plane starts")
}

const MANIFEST_V1: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-index
  namespace: demo
data:
  index.html: "hello v1"
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: demo
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "80"]
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"#;

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// curl against the server with the admin token (or none).
fn curl(cp: &ControlPlane, args: &[&str], token: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(cp.data_dir().join("pki/ca.crt"));
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let out = c.args(args).output().expect("curl runs (install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn serves_at_once_and_refuses_anonymous() {
    let cp = start();
    let ns = cp.kubectl_ok(&["get", "ns", "-o", "name"]);
    for n in ["default", "kube-system", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{n}")), "{ns}");
    }
    let url = format!("{}/api/v1/namespaces", cp.url());
    let (code, body) = curl(&cp, &[&url], None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (code, _) = curl(&cp, &[&url], Some("not-a-token"));
    assert_eq!(code, 401);
    let (code, body) = curl(&cp, &[&url], Some(&cp.admin_token()));
    assert_eq!(code, 200, "{body}");
    // Health and version are public (kube-apiserver's system:public-info-viewer).
    let (code, _) = curl(&cp, &[&format!("{}/version", cp.url())], None);
    assert_eq!(code, 200, "version is public");
    let (code, _) = curl(&cp, &[&format!("{}/api", cp.url())], None);
    assert_eq!(code, 401, "discovery needs credentials");
    let version = cp.kubectl_ok(&["version", "-o", "json"]);
    assert!(
        json_of(&version)["serverVersion"]["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1."))
    );
}

#[test]
fn apply_twice_merges_three_ways() {
    let cp = start();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], MANIFEST_V1);
    for line in [
        "namespace/demo created",
        "configmap/web-index created",
        "secret/web-secret created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    // Someone else changes the live object between applies; apply must keep it.
    cp.kubectl_ok(&["-n", "demo", "annotate", "deployment", "web", "team=blue"]);
    let v2 = MANIFEST_V1
        .replace("hello v1", "hello v2")
        .replace("replicas: 2", "replicas: 3")
        .replace("        - {name: B, value: \"2\"}\n", "")
        .replace(
            "image: busybox:1.36\n        command: [\"httpd\"",
            "image: busybox:1.37\n        command: [\"httpd\"",
        );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &v2);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("namespace/demo unchanged"), "{out}");
    let d = json_of(&cp.kubectl_ok(&["-n", "demo", "get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 3);
    let c0 = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c0["image"], "busybox:1.37");
    assert_eq!(c0["env"].as_array().map(Vec::len), Some(1), "{c0}");
    assert_eq!(c0["env"][0]["name"], "A");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "busybox:1.36"
    );
    assert_eq!(d["metadata"]["annotations"]["team"], "blue");
    assert_eq!(d["metadata"]["generation"], 2);
    let cm = cp.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "web-index",
        "-o",
        "jsonpath={.data.index\\.html}",
    ]);
    assert_eq!(cm, "hello v2");
    let secret = cp.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "secret",
        "web-secret",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(secret, "czNjcmV0");
    // A third apply of the same file changes nothing.
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &v2);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
}

#[test]
fn get_in_every_format_and_describe() {
    let cp = start();
    cp.kubectl_stdin(&["apply", "-f", "-"], MANIFEST_V1);
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","namespace":"demo","labels":{"app":"web"}},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox:1.36"}]}}"#;
    cp.kubectl_stdin(&["create", "-f", "-"], pod);
    let table = cp.kubectl_ok(&["-n", "demo", "get", "pods"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("p1") && table.contains("0/1") && table.contains("Pending"),
        "{table}"
    );
    let wide = cp.kubectl_ok(&["-n", "demo", "get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap_or("").contains("NODE"), "{wide}");
    assert!(wide.contains("n1"), "{wide}");
    let svc = cp.kubectl_ok(&["-n", "demo", "get", "svc"]);
    assert!(svc.contains("NodePort") && svc.contains("80:3"), "{svc}");
    let deploy = cp.kubectl_ok(&["-n", "demo", "get", "deploy"]);
    assert!(
        deploy.starts_with("NAME") && deploy.contains("UP-TO-DATE"),
        "{deploy}"
    );
    let y = cp.kubectl_ok(&["-n", "demo", "get", "cm", "web-index", "-o", "yaml"]);
    assert!(
        y.contains("index.html: hello v1") && y.contains("resourceVersion:"),
        "{y}"
    );
    let j = json_of(&cp.kubectl_ok(&["-n", "demo", "get", "svc", "web", "-o", "json"]));
    let ip = j["spec"]["clusterIP"].as_str().expect("clusterIP");
    assert!(ip.starts_with("10.9") || ip.starts_with("10.1"), "{ip}");
    let np = j["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("nodePort");
    assert!((30000..=32767).contains(&np));
    let jp = cp.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(jp, "web");
    let names = cp.kubectl_ok(&["-n", "demo", "get", "all", "-o", "name"]);
    assert!(
        names.contains("pod/p1")
            && names.contains("deployment.apps/web")
            && names.contains("service/web"),
        "{names}"
    );
    let labels = cp.kubectl_ok(&["-n", "demo", "get", "pods", "--show-labels"]);
    assert!(labels.contains("app=web"), "{labels}");
    let sel = cp.kubectl_ok(&["-n", "demo", "get", "pods", "-l", "app=web", "-o", "name"]);
    // p1 and the Deployment's own pods.
    assert!(sel.lines().any(|l| l == "pod/p1"), "{sel}");
    assert!(
        sel.lines()
            .all(|l| l == "pod/p1" || l.starts_with("pod/web-")),
        "{sel}"
    );
    let none = cp.kubectl_ok(&["-n", "demo", "get", "pods", "-l", "app!=web", "-o", "name"]);
    assert_eq!(none.trim(), "");
    let fs = cp.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=n1,status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(fs.trim(), "pod/p1");
    let d = cp.kubectl_ok(&["-n", "demo", "describe", "pod", "p1"]);
    assert!(
        d.contains("Name:") && d.contains("p1") && d.contains("busybox:1.36"),
        "{d}"
    );
    for (kind, name) in [
        ("deployment", "web"),
        ("service", "web"),
        ("configmap", "web-index"),
        ("secret", "web-secret"),
    ] {
        let d = cp.kubectl_ok(&["-n", "demo", "describe", kind, name]);
        assert!(d.contains(name), "{kind}: {d}");
    }
    let d = cp.kubectl_ok(&["describe", "namespace", "demo"]);
    assert!(d.contains("Active"), "{d}");
}

#[test]
fn chunked_list_walks_every_page() {
    let cp = start();
    for i in 0..7 {
        cp.kubectl_ok(&[
            "create",
            "configmap",
            &format!("c{i}"),
            "--from-literal=k=v",
        ]);
    }
    let all = cp.kubectl_ok(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    assert_eq!(
        all.lines().filter(|l| l.starts_with("configmap/c")).count(),
        7,
        "{all}"
    );
    let url = format!("{}/api/v1/namespaces/default/configmaps?limit=3", cp.url());
    let (code, body) = curl(&cp, &[&url], Some(&cp.admin_token()));
    assert_eq!(code, 200);
    let page = json_of(&body);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3));
    assert!(
        page["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

#[test]
fn watch_streams_changes() {
    let cp = start();
    let mut child = cp
        .kubectl_cmd(&["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    cp.kubectl_ok(&["create", "configmap", "w1", "--from-literal=a=1"]);
    cp.kubectl_ok(&["label", "configmap", "w1", "x=y"]);
    cp.kubectl_ok(&["delete", "configmap", "w1"]);
    // Table rows: EVENT NAME DATA AGE.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => {
                let cols: Vec<&str> = l.split_whitespace().collect();
                if cols.get(1) == Some(&"w1") {
                    seen.push(format!("{} configmap/w1", cols[0]));
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen,
        [
            "ADDED configmap/w1",
            "MODIFIED configmap/w1",
            "DELETED configmap/w1"
        ],
        "watch output"
    );
}

#[test]
fn label_annotate_scale_patch_set_image_edit_replace() {
    let cp = start();
    cp.kubectl_stdin(&["apply", "-f", "-"], MANIFEST_V1);
    cp.kubectl_ok(&["-n", "demo", "label", "deploy", "web", "tier=front"]);
    cp.kubectl_ok(&["-n", "demo", "annotate", "deploy", "web", "note=hi"]);
    let out = cp.kubectl_ok(&["-n", "demo", "scale", "deploy", "web", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    cp.kubectl_ok(&[
        "-n",
        "demo",
        "set",
        "image",
        "deploy/web",
        "sidecar=busybox:1.37",
    ]);
    cp.kubectl_ok(&[
        "-n",
        "demo",
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":3}}"#,
    ]);
    cp.kubectl_ok(&[
        "-n",
        "demo",
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/revisionHistoryLimit","value":4}]"#,
    ]);
    cp.kubectl_ok(&["-n", "demo", "patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"httpd","env":[{"name":"C","value":"3"}]}]}}}}"#]);
    let d = json_of(&cp.kubectl_ok(&["-n", "demo", "get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["annotations"]["note"], "hi");
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["spec"]["minReadySeconds"], 3);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 4);
    let cs = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[1]["image"], "busybox:1.37");
    assert_eq!(cs[0]["image"], "busybox:1.36");
    let env: Vec<&str> = cs[0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        env,
        ["C", "A", "B"],
        "strategic merge adds C by name and keeps A and B"
    );
    // kubectl edit with a scripted editor.
    let editor = cp.data_dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/note: hi/note: edited/' \"$1\"\n",
    )
    .expect("editor");
    Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .expect("chmod");
    let out = cp
        .kubectl_cmd(&["-n", "demo", "edit", "deploy", "web"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = cp.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.annotations.note}",
    ]);
    assert_eq!(note, "edited");
    // replace with a stale resourceVersion is a conflict.
    let mut cm = json_of(&cp.kubectl_ok(&["-n", "demo", "get", "cm", "web-index", "-o", "json"]));
    cp.kubectl_ok(&["-n", "demo", "label", "cm", "web-index", "bump=1"]);
    cm["data"]["index.html"] = Value::String("stale".into());
    let out = cp.kubectl_stdin_output(&["replace", "-f", "-"], &cm.to_string());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn owned_configmap(name: &str, owner: &str, uid: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"{owner}","uid":"{uid}"}}]}}}}"#
    )
}

#[test]
fn delete_follows_cascade_flags() {
    let cp = start();
    for policy in ["background", "orphan", "foreground"] {
        let owner = format!("owner-{policy}");
        let dep = format!("dep-{policy}");
        cp.kubectl_ok(&["create", "configmap", &owner]);
        let uid = cp.kubectl_ok(&["get", "cm", &owner, "-o", "jsonpath={.metadata.uid}"]);
        cp.kubectl_stdin(&["create", "-f", "-"], &owned_configmap(&dep, &owner, &uid));
        let out = cp.kubectl_ok(&[
            "delete",
            "cm",
            &owner,
            &format!("--cascade={policy}"),
            "--timeout=20s",
        ]);
        assert!(out.contains("deleted"), "{out}");
        let gone = |name: &str| !cp.kubectl(&["get", "cm", name]).status.success();
        assert!(gone(&owner), "{policy}: owner is gone");
        if policy == "orphan" {
            let refs = cp.kubectl_ok(&[
                "get",
                "cm",
                &dep,
                "-o",
                "jsonpath={.metadata.ownerReferences}",
            ]);
            assert_eq!(refs, "", "orphaned dependent keeps no reference");
        } else {
            eventually(Duration::from_secs(10), "dependent collected", || {
                gone(&dep).then_some(())
            });
        }
    }
}

#[test]
fn namespace_deletion_empties_it_and_refuses_new_content() {
    let cp = start();
    cp.kubectl_ok(&["create", "namespace", "doomed"]);
    cp.kubectl_ok(&["-n", "doomed", "create", "configmap", "a"]);
    cp.kubectl_ok(&[
        "-n",
        "doomed",
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=k=v",
    ]);
    // A finalizer holds one object, so the namespace stays Terminating for a while.
    cp.kubectl_ok(&[
        "-n",
        "doomed",
        "patch",
        "cm",
        "a",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    cp.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let phase = cp.kubectl_ok(&["get", "ns", "doomed", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Terminating");
    let err = cp.kubectl_err(&["-n", "doomed", "create", "configmap", "b"]);
    assert!(err.contains("because it is being terminated"), "{err}");
    cp.kubectl_ok(&[
        "-n",
        "doomed",
        "patch",
        "cm",
        "a",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(Duration::from_secs(10), "namespace removed", || {
        (!cp.kubectl(&["get", "ns", "doomed"]).status.success()).then_some(())
    });
    let err = cp.kubectl_err(&["-n", "nowhere", "create", "configmap", "x"]);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
}

#[test]
fn bad_input_gets_kubernetes_errors_and_writes_nothing() {
    let cp = start();
    let err = cp.kubectl_err(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    cp.kubectl_ok(&["create", "configmap", "dup"]);
    let err = cp.kubectl_err(&["create", "configmap", "dup"]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    let bad_pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}}"#;
    let out = cp.kubectl_stdin_output(&["create", "-f", "-"], bad_pod);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is invalid")
            && err.contains("spec.containers[0].image: Required value")
            && err.contains("metadata.name"),
        "{err}"
    );
    let none = cp.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert_eq!(none.trim(), "", "a failed create writes nothing");
    let token = cp.admin_token();
    let url = format!("{}/api/v1/namespaces/default/configmaps", cp.url());
    let (code, body) = curl(
        &cp,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{not json",
            &url,
        ],
        Some(&token),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"reason\":\"BadRequest\""), "{body}");
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let file = cp.data_dir().join("big.json");
    std::fs::write(&file, big).expect("write big body");
    let (code, body) = curl(
        &cp,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", file.display()),
            &url,
        ],
        Some(&token),
    );
    assert_eq!(code, 413, "{body}");
    let (code, _) = curl(
        &cp,
        &[&format!("{}/api/v1/namespaces/default/widgets", cp.url())],
        Some(&token),
    );
    assert_eq!(code, 404);
    let err = cp.kubectl_err(&["get", "configmap", "missing"]);
    assert!(err.contains("configmaps \"missing\" not found"), "{err}");
    let out = cp.kubectl_stdin_output(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
    );
    assert!(!out.status.success());
}

#[test]
fn acknowledged_writes_survive_kill_9_and_watches_resume() {
    let mut cp = start();
    for i in 0..20 {
        cp.kubectl_ok(&[
            "create",
            "configmap",
            &format!("d{i}"),
            &format!("--from-literal=i={i}"),
        ]);
    }
    let rv =
        json_of(&cp.kubectl_ok(&["get", "cm", "d19", "-o", "json"]))["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string();
    cp.crash();
    cp.launch().expect("restart on the same dir");
    let names = cp.kubectl_ok(&["get", "cm", "-o", "name"]);
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("configmap/d"))
            .count(),
        20,
        "{names}"
    );
    cp.kubectl_ok(&["create", "configmap", "after"]);
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1",
        cp.url()
    );
    let (code, body) = curl(&cp, &[&url], Some(&cp.admin_token()));
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .lines()
        .filter(|l| !l.is_empty())
        .map(json_of)
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "after");
}

#[test]
fn watch_from_a_compacted_revision_is_gone() {
    let cp = ControlPlane::start(BIN.as_ref(), &["--compaction-interval", "300ms"]).expect("start");
    cp.kubectl_ok(&["create", "configmap", "c1"]);
    cp.kubectl_ok(&["create", "configmap", "c2"]);
    std::thread::sleep(Duration::from_millis(1200));
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1",
        cp.url()
    );
    let (_, body) = curl(&cp, &[&url], Some(&cp.admin_token()));
    assert!(
        body.contains("\"type\":\"ERROR\"") && body.contains("\"code\":410"),
        "{body}"
    );
}

#[test]
fn the_same_kubectl_flow_works_on_etcd() {
    let etcd = Etcd::start().expect("etcd starts");
    let cp = ControlPlane::start(
        BIN.as_ref(),
        &["--store", "etcd", "--etcd-endpoints", &etcd.client_url],
    )
    .expect("start on etcd");
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], MANIFEST_V1);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    cp.kubectl_ok(&["-n", "demo", "scale", "deploy", "web", "--replicas=4"]);
    let r = cp.kubectl_ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(r, "4");
    cp.kubectl_ok(&["delete", "namespace", "demo", "--timeout=30s"]);
}

fn post_json(cp: &ControlPlane, method: &str, path: &str, body: &str, ct: &str) -> (u16, Value) {
    let url = format!("{}{path}", cp.url());
    let (code, text) = curl(
        cp,
        &[
            "-X",
            method,
            "-H",
            &format!("Content-Type: {ct}"),
            "-d",
            body,
            &url,
        ],
        Some(&cp.admin_token()),
    );
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn subresources_graceful_deletion_and_allocation() {
    let cp = start();
    // binding sets spec.nodeName and PodScheduled, once.
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"default"},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}"#;
    let (code, created) = post_json(
        &cp,
        "POST",
        "/api/v1/namespaces/default/pods",
        pod,
        "application/json",
    );
    assert_eq!(code, 201, "{created}");
    let name = created["metadata"]["name"]
        .as_str()
        .expect("generated name")
        .to_string();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(created["status"]["qosClass"], "BestEffort");
    let binding = format!(
        r#"{{"apiVersion":"v1","kind":"Binding","metadata":{{"name":"{name}"}},"target":{{"kind":"Node","name":"n1"}}}}"#
    );
    let path = format!("/api/v1/namespaces/default/pods/{name}/binding");
    let (code, _) = post_json(&cp, "POST", &path, &binding, "application/json");
    assert_eq!(code, 201);
    let (code, again) = post_json(&cp, "POST", &path, &binding, "application/json");
    assert_eq!(code, 409, "{again}");
    let node = cp.kubectl_ok(&[
        "get",
        "pod",
        &name,
        "-o",
        "jsonpath={.spec.nodeName} {.status.conditions[0].type}",
    ]);
    assert_eq!(node, "n1 PodScheduled");
    // status is written only through /status.
    let status_patch = r#"{"status":{"phase":"Running","podIP":"10.244.0.5"}}"#;
    let (code, _) = post_json(
        &cp,
        "PATCH",
        &format!("/api/v1/namespaces/default/pods/{name}"),
        status_patch,
        "application/merge-patch+json",
    );
    assert_eq!(code, 200);
    let phase = cp.kubectl_ok(&["get", "pod", &name, "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Pending", "main resource ignores status");
    let (code, _) = post_json(
        &cp,
        "PATCH",
        &format!("/api/v1/namespaces/default/pods/{name}/status"),
        status_patch,
        "application/merge-patch+json",
    );
    assert_eq!(code, 200);
    let phase = cp.kubectl_ok(&[
        "get",
        "pod",
        &name,
        "-o",
        "jsonpath={.status.phase} {.status.podIP}",
    ]);
    assert_eq!(phase, "Running 10.244.0.5");
    // A pod on a node is deleted gracefully: it stays, marked, until forced.
    cp.kubectl_ok(&["delete", "pod", &name, "--wait=false"]);
    let ts = cp.kubectl_ok(&[
        "get",
        "pod",
        &name,
        "-o",
        "jsonpath={.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}",
    ]);
    assert!(ts.ends_with(" 30"), "{ts}");
    let table = cp.kubectl_ok(&["get", "pod", &name]);
    assert!(table.contains("Terminating"), "{table}");
    cp.kubectl_ok(&["delete", "pod", &name, "--grace-period=0", "--force"]);
    assert!(!cp.kubectl(&["get", "pod", &name]).status.success());
    // NodePorts and ClusterIPs are never handed out twice.
    let svc = |n: &str, port: u16| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{n}"}},"spec":{{"type":"NodePort","ports":[{{"port":80,"nodePort":{port}}}]}}}}"#
        )
    };
    cp.kubectl_stdin(&["create", "-f", "-"], &svc("a", 30080));
    let (code, err) = post_json(
        &cp,
        "POST",
        "/api/v1/namespaces/default/services",
        &svc("b", 30080),
        "application/json",
    );
    assert_eq!(code, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("provided port is already allocated"),
        "{err}"
    );
    let headless = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"h"},"spec":{"clusterIP":"None","selector":{"app":"x"},"ports":[{"port":80}]}}"#;
    cp.kubectl_stdin(&["create", "-f", "-"], headless);
    assert_eq!(
        cp.kubectl_ok(&["get", "svc", "h", "-o", "jsonpath={.spec.clusterIP}"]),
        "None"
    );
    cp.kubectl_ok(&["delete", "svc", "a"]);
    let (code, _) = post_json(
        &cp,
        "POST",
        "/api/v1/namespaces/default/services",
        &svc("b", 30080),
        "application/json",
    );
    assert_eq!(code, 201, "a deleted Service's node port is free again");
    // scale subresource and deletecollection.
    cp.kubectl_stdin(&["apply", "-f", "-"], MANIFEST_V1);
    let (code, scale) = post_json(
        &cp,
        "PATCH",
        "/apis/apps/v1/namespaces/demo/deployments/web/scale",
        r#"{"spec":{"replicas":7}}"#,
        "application/merge-patch+json",
    );
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 7);
    assert_eq!(scale["status"]["selector"], "app=web");
    for i in 0..3 {
        cp.kubectl_ok(&[
            "-n",
            "demo",
            "create",
            "configmap",
            &format!("bulk{i}"),
            "--from-literal=a=b",
        ]);
        cp.kubectl_ok(&[
            "-n",
            "demo",
            "label",
            "configmap",
            &format!("bulk{i}"),
            "batch=yes",
        ]);
    }
    let url = format!(
        "{}/api/v1/namespaces/demo/configmaps?labelSelector=batch%3Dyes",
        cp.url()
    );
    let (code, _) = curl(&cp, &["-X", "DELETE", &url], Some(&cp.admin_token()));
    assert_eq!(code, 200);
    let left = cp.kubectl_ok(&["-n", "demo", "get", "cm", "-o", "name"]);
    assert_eq!(left.trim(), "configmap/web-index", "{left}");
}

#[test]
fn watch_bookmarks_and_label_transitions() {
    let cp = start();
    cp.kubectl_ok(&["create", "configmap", "t1"]);
    let rv = json_of(&cp.kubectl_ok(&["get", "cm", "-o", "json"]))["metadata"]["resourceVersion"]
        .as_str()
        .expect("list rv")
        .to_string();
    let watcher = {
        let url = format!(
            "{}/api/v1/namespaces/default/configmaps?watch=1&labelSelector=keep%3Dyes&resourceVersion={rv}&timeoutSeconds=2",
            cp.url()
        );
        let ca = cp.data_dir().join("pki/ca.crt");
        let token = cp.admin_token();
        std::thread::spawn(move || {
            Command::new("curl")
                .args(["-s", "-N", "--cacert"])
                .arg(ca)
                .args(["-H", &format!("Authorization: Bearer {token}"), &url])
                .output()
                .expect("curl")
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cp.kubectl_ok(&["label", "cm", "t1", "keep=yes"]);
    cp.kubectl_ok(&["label", "cm", "t1", "other=1"]);
    cp.kubectl_ok(&["label", "cm", "t1", "keep=no", "--overwrite"]);
    let out = watcher.join().expect("watcher");
    let types: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| json_of(l)["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        types,
        ["ADDED", "MODIFIED", "DELETED"],
        "entering, changing and leaving the selector"
    );
}

#[test]
fn kubectl_create_generators_send_protobuf_and_work() {
    let cp = start();
    cp.kubectl_ok(&["create", "namespace", "gen"]);
    let n = |args: &[&str]| {
        let mut a = vec!["-n", "gen"];
        a.extend_from_slice(args);
        cp.kubectl_ok(&a)
    };
    n(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ]);
    n(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=pw",
    ]);
    n(&["create", "serviceaccount", "robot"]);
    n(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1.36",
        "--port=80",
        "--replicas=2",
        "--",
        "httpd",
        "-f",
    ]);
    n(&["create", "service", "nodeport", "web", "--tcp=80:8080"]);
    n(&[
        "create",
        "job",
        "once",
        "--image=busybox:1.36",
        "--",
        "true",
    ]);
    n(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox:1.36",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ]);
    n(&["create", "ingress", "web", "--rule=example.test/=web:80"]);
    let d = json_of(&n(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["command"][0],
        "httpd"
    );
    assert_eq!(n(&["get", "cm", "cfg", "-o", "jsonpath={.data.b}"]), "2");
    assert_eq!(
        n(&["get", "secret", "sec", "-o", "jsonpath={.data.password}"]),
        "cHc="
    );
    let svc = json_of(&n(&["get", "svc", "web", "-o", "json"]));
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(
        n(&["get", "cronjob", "tick", "-o", "jsonpath={.spec.schedule}"]),
        "*/5 * * * *"
    );
    assert_eq!(
        n(&["get", "job", "once", "-o", "jsonpath={.spec.backoffLimit}"]),
        "6"
    );
    let names = n(&["get", "sa,ing", "-o", "name"]);
    assert!(
        names.contains("serviceaccount/robot") && names.contains("ingress.networking.k8s.io/web"),
        "{names}"
    );
}

#[test]
fn every_kind_applies_gets_and_describes() {
    let cp = start();
    let manifest = include_str!("fixtures/every-kind.yaml");
    cp.kubectl_stdin(&["apply", "-f", "-"], manifest);
    let kinds = [
        "nodes",
        "pods",
        "services",
        "endpoints",
        "configmaps",
        "secrets",
        "events",
        "serviceaccounts",
        "persistentvolumes",
        "persistentvolumeclaims",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "endpointslices",
        "ingresses",
        "leases",
        "storageclasses",
        "namespaces",
    ];
    for kind in kinds {
        let wide = cp.kubectl_ok(&["get", kind, "-A", "-o", "wide"]);
        assert!(
            wide.is_empty() || wide.starts_with("NAMESPACE") || wide.starts_with("NAME"),
            "{kind}: {wide}"
        );
        let out = cp.kubectl(&["describe", kind, "-A"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panic"),
            "describe {kind}: {err}"
        );
    }
    let svc = cp.kubectl_ok(&["describe", "service", "web"]);
    assert!(
        svc.contains("Endpoints:") && svc.contains("10.244.0.5:80"),
        "{svc}"
    );
    let sc = cp.kubectl_ok(&["get", "storageclass"]);
    assert!(sc.contains("local (default)"), "{sc}");
}

const LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {a: "1"}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed}
  spec:
    replicas: 1
    selector:
      matchLabels: {app: listed}
    template:
      metadata:
        labels: {app: listed}
      spec:
        containers:
        - name: c
          image: busybox:1.36
          ports:
          - {containerPort: 80, protocol: TCP}
          resources:
            limits: {cpu: 100m, memory: 64Mi}
- apiVersion: v1
  kind: Service
  metadata: {name: listed}
  spec:
    selector: {app: listed}
    ports:
    - {port: 80, targetPort: 80}
"#;

/// A `kind: List` is validated by kubectl itself (no server-side field validation applies
/// to List), against the Swagger 2.0 document it asks for as protobuf.
#[test]
fn apply_a_list_with_client_side_validation() {
    let cp = start();
    let out = cp.kubectl_stdin(&["apply", "--validate=strict", "-f", "-"], LIST);
    for line in [
        "configmap/listed created",
        "deployment.apps/listed created",
        "service/listed created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    // The schemas are really used: a field no schema has is refused by kubectl itself.
    let bad = LIST.replace("data: {a: \"1\"}", "data: {a: \"1\"}\n  bogus: 1");
    let out = cp.kubectl_stdin_output(&["apply", "--validate=strict", "-f", "-"], &bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("error validating data")
            && err.contains("unknown field \"bogus\"")
            && err.contains("ConfigMap"),
        "{err}"
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], LIST);
    assert!(out.contains("configmap/listed unchanged"), "{out}");
}
