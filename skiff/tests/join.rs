//! Nodes joining with a bootstrap token, against a real control plane and the real
//! kubectl: `skiff token create`, what the token may and may not do, `skiff join`'s
//! TLS bootstrap, and the node credentials it ends with.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use skiff_tests::{ControlPlane, eventually, workspace_bin};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

fn control_plane() -> ControlPlane {
    let bin = workspace_bin("skiff-controlplane").expect("skiff-controlplane is built");
    ControlPlane::start(&bin, &[]).expect("control plane starts")
}

fn skiff(args: &[&str]) -> Output {
    Command::new(SKIFF)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running skiff")
}

fn stdout_ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skiff token create` on `cp`: (token, join command arguments after `skiff`).
fn create_token(cp: &ControlPlane) -> (String, Vec<String>) {
    let dir = cp.data_dir().to_str().expect("utf-8 dir");
    let out = stdout_ok(
        skiff(&[
            "token",
            "create",
            "--data-dir",
            dir,
            "--description",
            "ci node",
        ]),
        "skiff token create",
    );
    let mut lines = out.lines();
    let token = lines.next().expect("token line").to_string();
    let join = lines.next().expect("join line");
    assert!(
        join.starts_with(&format!(
            "skiff join --server {} --token {token} --ca-cert-hash sha256:",
            cp.url()
        )),
        "{join}"
    );
    let args = join
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    (token, args)
}

/// kubectl with a bearer token and nothing else.
fn kubectl_as(cp: &ControlPlane, token: &str, args: &[&str]) -> Output {
    let ca = cp.data_dir().join("pki/ca.crt");
    Command::new("kubectl")
        .args(["--kubeconfig", "/dev/null", "--server", &cp.url()])
        .arg("--certificate-authority")
        .arg(ca)
        .args(["--token", token])
        .args(args)
        .output()
        .expect("running kubectl")
}

fn kubectl_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("kubectl output")
}

/// A CertificateSigningRequest manifest for `cn` in `orgs`.
fn csr_manifest(name: &str, cn: &str, orgs: &[&str], signer: &str, usages: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    for o in orgs {
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    let pem = p.serialize_request(&key).expect("csr").pem().expect("pem");
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    let usages: Vec<String> = usages.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: {signer}\n  usages: [{}]\n",
        usages.join(", ")
    )
}

/// How kubectl reports a 401.
fn unauthorized(stderr: &str) -> bool {
    stderr.contains("Unauthorized")
        || stderr.contains("the server has asked for the client to provide credentials")
}

fn insecure_http() -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
}

#[test]
fn a_bootstrap_token_may_ask_for_a_certificate_and_nothing_else() {
    let cp = control_plane();
    let (token, _) = create_token(&cp);
    let id = token.split('.').next().expect("id");
    let dir = cp.data_dir().to_str().expect("utf-8 dir");
    let list = stdout_ok(
        skiff(&["token", "list", "--data-dir", dir]),
        "skiff token list",
    );
    assert!(
        list.contains(id) && list.contains("ci node") && list.contains("authentication,signing"),
        "{list}"
    );

    let out = kubectl_as(&cp, &token, &["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): pods is forbidden: User \"system:bootstrap:{id}\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        )),
        "{err}"
    );

    // A CSR of a signer nobody auto-approves: created with the token, denied by the admin.
    let manifest = csr_manifest(
        "alice",
        "alice",
        &["devs"],
        "kubernetes.io/kube-apiserver-client",
        &["client auth"],
    );
    let ca = cp.data_dir().join("pki/ca.crt");
    let mut create = Command::new("kubectl");
    create
        .args(["--kubeconfig", "/dev/null", "--server", &cp.url()])
        .arg("--certificate-authority")
        .arg(&ca)
        .args(["--token", &token, "create", "-f", "-"]);
    stdout_ok(
        kubectl_stdin(create, &manifest),
        "creating a CSR with the token",
    );
    let requestor = cp.kubectl_ok(&["get", "csr", "alice", "-o", "jsonpath={.spec.username}"]);
    assert_eq!(requestor, format!("system:bootstrap:{id}"));
    let out = cp.kubectl_ok(&["certificate", "deny", "alice"]);
    assert!(out.contains("denied"), "{out}");
    let table = cp.kubectl_ok(&["get", "csr", "alice"]);
    assert!(
        table.starts_with("NAME") && table.contains("SIGNERNAME") && table.contains("REQUESTOR"),
        "{table}"
    );
    assert!(table.contains("Denied"), "{table}");
    // The token cannot approve its own request.
    let out = kubectl_as(&cp, &token, &["certificate", "approve", "alice"]);
    assert!(!out.status.success());

    // Deleting the token ends it.
    stdout_ok(
        skiff(&["token", "delete", id, "--data-dir", dir]),
        "skiff token delete",
    );
    let out = kubectl_as(&cp, &token, &["get", "csr"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && unauthorized(&err), "{err}");
}

#[tokio::test]
async fn anonymous_requests_see_cluster_info_only() {
    let cp = control_plane();
    let http = insecure_http();
    let ci = http
        .get(format!(
            "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
            cp.url()
        ))
        .send()
        .await
        .expect("GET cluster-info");
    assert_eq!(ci.status(), 200);
    let body: serde_json::Value = ci.json().await.expect("json");
    let kc = body["data"]["kubeconfig"].as_str().expect("kubeconfig");
    assert!(kc.contains(&format!("server: {}", cp.url())), "{kc}");
    assert!(kc.contains("certificate-authority-data:"), "{kc}");
    assert!(!kc.contains("token"), "{kc}");
    for path in ["/version", "/healthz"] {
        let r = http
            .get(format!("{}{path}", cp.url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200, "{path}");
    }
    let pods = http
        .get(format!("{}/api/v1/namespaces/default/pods", cp.url()))
        .send()
        .await
        .expect("GET pods");
    assert_eq!(pods.status(), 401);
}

#[test]
fn an_expired_token_is_unauthorized() {
    let cp = control_plane();
    cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal",
        "token-id=abcdef",
        "--from-literal",
        "token-secret=0123456789abcdef",
        "--from-literal",
        "usage-bootstrap-authentication=true",
        "--from-literal",
        "expiration=2020-01-01T00:00:00Z",
    ]);
    let out = kubectl_as(&cp, "abcdef.0123456789abcdef", &["get", "csr"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && unauthorized(&err), "{err}");
    // The same Secret with a future expiration authenticates.
    cp.kubectl_ok(&[
        "patch",
        "secret",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
        "-p",
        "{\"stringData\":{\"expiration\":\"2999-01-01T00:00:00Z\"}}",
    ]);
    let out = kubectl_as(&cp, "abcdef.0123456789abcdef", &["get", "csr"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn skiff_join_gets_the_node_its_own_credentials() {
    let cp = control_plane();
    let (token, join) = create_token(&cp);
    let id = token.split('.').next().expect("id");
    let node_dir = tempfile::tempdir().expect("tempdir");
    let node_dir_s = node_dir.path().to_str().expect("utf-8");

    // A wrong CA hash is refused before the token is ever sent.
    let mut wrong: Vec<String> = join.clone();
    let at = wrong
        .iter()
        .position(|a| a == "--ca-cert-hash")
        .expect("hash flag");
    wrong[at + 1] = format!("sha256:{}", "0".repeat(64));
    let mut args: Vec<&str> = wrong.iter().map(String::as_str).collect();
    args.extend([
        "--node-name",
        "n1",
        "--data-dir",
        node_dir_s,
        "--bootstrap-only",
    ]);
    let out = skiff(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("matches no --ca-cert-hash"),
        "{err}"
    );
    assert!(!node_dir.path().join("node.kubeconfig").exists());
    let csrs = cp.kubectl_ok(&["get", "csr", "-o", "name"]);
    assert!(csrs.trim().is_empty(), "{csrs}");

    let mut args: Vec<&str> = join.iter().map(String::as_str).collect();
    args.extend([
        "--node-name",
        "n1",
        "--data-dir",
        node_dir_s,
        "--bootstrap-only",
        "--timeout-seconds",
        "60",
    ]);
    let out = stdout_ok(skiff(&args), "skiff join");
    assert!(out.contains("node n1 has its credentials"), "{out}");
    let kubeconfig = node_dir.path().join("node.kubeconfig");
    let mode = std::fs::metadata(&kubeconfig)
        .expect("node.kubeconfig")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second join finds the credentials and needs no token.
    let mut again: Vec<String> = join.clone();
    let at = again
        .iter()
        .position(|a| a == "--token")
        .expect("token flag");
    again[at + 1] = "zzzzzz.zzzzzzzzzzzzzzzz".into();
    let mut args: Vec<&str> = again.iter().map(String::as_str).collect();
    args.extend([
        "--node-name",
        "n1",
        "--data-dir",
        node_dir_s,
        "--bootstrap-only",
    ]);
    let out = stdout_ok(skiff(&args), "skiff join again");
    assert!(out.contains("uses its existing credentials"), "{out}");

    let table = cp.kubectl_ok(&["get", "csr"]);
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("node-csr-"))
        .collect();
    assert_eq!(rows.len(), 1, "{table}");
    let row = rows[0];
    assert!(
        row.contains("kubernetes.io/kube-apiserver-client-kubelet"),
        "{row}"
    );
    assert!(row.contains(&format!("system:bootstrap:{id}")), "{row}");
    assert!(row.trim_end().ends_with("Approved,Issued"), "{row}");

    let node_kubectl = |args: &[&str]| {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(&kubeconfig).args(args);
        c
    };
    let out = node_kubectl(&["get", "nodes"]).output().expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server knows the node by its certificate: a request it makes is recorded as
    // system:node:n1, and a renewal for its own name is approved on its own.
    let manifest = csr_manifest(
        "n1-renewal",
        "system:node:n1",
        &["system:nodes"],
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    stdout_ok(
        kubectl_stdin(node_kubectl(&["create", "-f", "-"]), &manifest),
        "creating a renewal CSR as the node",
    );
    let user = cp.kubectl_ok(&[
        "get",
        "csr",
        "n1-renewal",
        "-o",
        "jsonpath={.spec.username}",
    ]);
    assert_eq!(user, "system:node:n1");
    eventually(Duration::from_secs(20), "the renewal is issued", || {
        let t = cp.kubectl_ok(&["get", "csr", "n1-renewal", "--no-headers"]);
        t.contains("Approved,Issued").then_some(())
    });
    // Someone else's name is left for a person to decide.
    let manifest = csr_manifest(
        "n2-by-n1",
        "system:node:n2",
        &["system:nodes"],
        "kubernetes.io/kube-apiserver-client-kubelet",
        &["digital signature", "client auth"],
    );
    stdout_ok(
        kubectl_stdin(node_kubectl(&["create", "-f", "-"]), &manifest),
        "creating a CSR for another node",
    );
    std::thread::sleep(Duration::from_secs(2));
    let t = cp.kubectl_ok(&["get", "csr", "n2-by-n1", "--no-headers"]);
    assert!(t.contains("Pending"), "{t}");
}
