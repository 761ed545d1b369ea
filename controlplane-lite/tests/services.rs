//! The Services the control plane keeps itself, through the real kubectl: the
//! `default/kubernetes` endpoints at the advertise address, the `kube-system/kube-dns`
//! Service and its reserved address, and LoadBalancer addresses from a pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skiff_tests::{ControlPlane, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");
const WAIT: Duration = Duration::from_secs(20);

fn start(extra: &[&str]) -> ControlPlane {
    ControlPlane::start(BIN.as_ref(), extra).expect("control plane starts")
}

fn json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = cp.kubectl(&a);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn lb_service(name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: LoadBalancer
  selector:
    app: {name}
  ports:
  - port: 80
{extra_spec}
"#
    )
}

/// The EXTERNAL-IP column of `kubectl get svc NAME`.
fn external_ip(cp: &ControlPlane, name: &str) -> String {
    let out = cp.kubectl_ok(&["get", "svc", name, "--no-headers"]);
    out.split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn kubernetes_service_endpoints_name_the_advertise_address_and_come_back() {
    let cp = start(&["--advertise-address", "127.0.0.2"]);
    let port = cp.port;
    let ep = eventually(WAIT, "default/kubernetes Endpoints", || {
        json(&cp, &["get", "endpoints", "kubernetes"])
    });
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.2");
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "https");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], port);
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let table = cp.kubectl_ok(&["get", "endpoints", "kubernetes"]);
    assert!(table.contains(&format!("127.0.0.2:{port}")), "{table}");

    let slices = eventually(WAIT, "the kubernetes EndpointSlice", || {
        let l = json(
            &cp,
            &[
                "get",
                "endpointslice",
                "-l",
                "kubernetes.io/service-name=kubernetes",
            ],
        )?;
        (l["items"].as_array()?.len() == 1).then_some(l)
    });
    let s = &slices["items"][0];
    assert_eq!(s["metadata"]["name"], "kubernetes");
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(s["endpoints"][0]["addresses"][0], "127.0.0.2");
    assert_eq!(s["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(s["ports"][0]["name"], "https");
    assert_eq!(s["ports"][0]["port"], port);
    let table = cp.kubectl_ok(&[
        "get",
        "endpointslice",
        "-l",
        "kubernetes.io/service-name=kubernetes",
    ]);
    assert!(
        table.contains("127.0.0.2") && table.contains(&port.to_string()),
        "{table}"
    );

    // Deleted or edited, both are put back.
    cp.kubectl_ok(&["delete", "endpoints", "kubernetes"]);
    cp.kubectl_ok(&["delete", "endpointslice", "kubernetes"]);
    eventually(WAIT, "the Endpoints to come back", || {
        let ep = json(&cp, &["get", "endpoints", "kubernetes"])?;
        (ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.2").then_some(())
    });
    eventually(WAIT, "the EndpointSlice to come back", || {
        json(&cp, &["get", "endpointslice", "kubernetes"]).map(|_| ())
    });
    cp.kubectl_ok(&[
        "patch",
        "endpoints",
        "kubernetes",
        "--type=merge",
        "-p",
        r#"{"subsets":[{"addresses":[{"ip":"10.9.9.9"}],"ports":[{"name":"https","port":1}]}]}"#,
    ]);
    eventually(WAIT, "the edit to be undone", || {
        let ep = json(&cp, &["get", "endpoints", "kubernetes"])?;
        (ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.2").then_some(())
    });
}

#[test]
fn kube_dns_service_holds_its_address_across_restarts() {
    let mut cp = start(&[]);
    let check = |cp: &ControlPlane| {
        let table = cp.kubectl_ok(&["-n", "kube-system", "get", "svc", "kube-dns"]);
        assert!(table.contains("10.96.0.10"), "{table}");
        assert!(table.contains("53/UDP,53/TCP,9153/TCP"), "{table}");
        let svc = json(cp, &["-n", "kube-system", "get", "svc", "kube-dns"]).unwrap();
        let labels = &svc["metadata"]["labels"];
        assert_eq!(labels["k8s-app"], "kube-dns");
        assert_eq!(labels["kubernetes.io/name"], "CoreDNS");
        assert_eq!(
            labels["service.kubernetes.io/service-proxy-name"],
            "skiff-node-dns"
        );
        assert!(svc["spec"].get("selector").is_none());
        let shown = cp.kubectl_ok(&[
            "-n",
            "kube-system",
            "get",
            "svc",
            "-l",
            "service.kubernetes.io/service-proxy-name=skiff-node-dns",
            "-o",
            "name",
        ]);
        assert_eq!(shown.trim(), "service/kube-dns");
        let taken = r#"apiVersion: v1
kind: Service
metadata:
  name: squatter
spec:
  clusterIP: 10.96.0.10
  ports:
  - port: 53
"#;
        let out = cp.kubectl_stdin_output(&["apply", "-f", "-"], taken);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already allocated"), "{err}");
    };
    check(&cp);
    cp.crash();
    cp.launch().expect("restart on the same dir");
    check(&cp);
    let uid = |cp: &ControlPlane| {
        json(cp, &["-n", "kube-system", "get", "svc", "kube-dns"]).unwrap()["metadata"]["uid"]
            .clone()
    };
    let before = uid(&cp);
    cp.crash();
    cp.launch().expect("restart on the same dir");
    assert_eq!(uid(&cp), before, "made once, kept after");
}

#[test]
fn kube_dns_service_follows_the_flag() {
    let cp = start(&["--dns-service-ip", ""]);
    let err = cp.kubectl_err(&["-n", "kube-system", "get", "svc", "kube-dns"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    let cp = start(&["--dns-service-ip", "10.96.0.53"]);
    let svc = json(&cp, &["-n", "kube-system", "get", "svc", "kube-dns"]).unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.53");
}

#[test]
fn load_balancer_services_get_distinct_addresses_from_the_pool() {
    let mut cp = start(&["--load-balancer-pool", "10.200.0.0/30"]);
    cp.kubectl_stdin(&["apply", "-f", "-"], &lb_service("a", ""));
    cp.kubectl_stdin(&["apply", "-f", "-"], &lb_service("b", ""));
    let pool = ["10.200.0.1", "10.200.0.2"];
    let a = eventually(WAIT, "a's EXTERNAL-IP", || {
        let ip = external_ip(&cp, "a");
        pool.contains(&ip.as_str()).then_some(ip)
    });
    let b = eventually(WAIT, "b's EXTERNAL-IP", || {
        let ip = external_ip(&cp, "b");
        pool.contains(&ip.as_str()).then_some(ip)
    });
    assert_ne!(a, b);
    let svc = json(&cp, &["get", "svc", "a"]).unwrap();
    assert_eq!(svc["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");

    // The pool is spent: c waits, with an event saying why.
    cp.kubectl_stdin(&["apply", "-f", "-"], &lb_service("c", ""));
    eventually(WAIT, "AllocationFailed on c", || {
        let ev = cp.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=c"]);
        ev.contains("AllocationFailed").then_some(())
    });
    assert_eq!(external_ip(&cp, "c"), "<pending>");

    // Asking for a taken or a foreign address fails; a's stays with a.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &lb_service("d", &format!("  loadBalancerIP: {a}")),
    );
    eventually(WAIT, "AllocationFailed on d", || {
        let ev = cp.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=d"]);
        ev.contains("AllocationFailed").then_some(())
    });
    assert_eq!(external_ip(&cp, "d"), "<pending>");
    assert_eq!(external_ip(&cp, "a"), a);

    // b stops being a LoadBalancer: its status is cleared and c gets the address.
    cp.kubectl_ok(&[
        "patch",
        "svc",
        "b",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/type","value":"ClusterIP"},{"op":"remove","path":"/spec/ports/0/nodePort"}]"#,
    ]);
    eventually(WAIT, "b's load-balancer status cleared", || {
        let svc = json(&cp, &["get", "svc", "b"])?;
        svc["status"]["loadBalancer"]
            .get("ingress")
            .is_none_or(|i| i.as_array().is_none_or(Vec::is_empty))
            .then_some(())
    });
    eventually(WAIT, "c to get b's address", || {
        (external_ip(&cp, "c") == b).then_some(())
    });

    // Across a restart every address stays where it is; deleting a frees its address
    // for d, which asked for it.
    cp.crash();
    cp.launch().expect("restart on the same dir");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(external_ip(&cp, "a"), a);
    assert_eq!(external_ip(&cp, "c"), b);
    cp.kubectl_ok(&["delete", "svc", "a"]);
    eventually(WAIT, "d to get the address it asked for", || {
        (external_ip(&cp, "d") == a).then_some(())
    });
}

#[test]
fn control_planes_sharing_etcd_publish_each_other_until_one_stops() {
    let etcd = skiff_tests::Etcd::start().expect("etcd starts");
    let store = [
        "--store",
        "etcd",
        "--etcd-endpoints",
        etcd.client_url.as_str(),
    ];
    let mut one_args = vec![
        "--bind-address",
        "127.0.0.2",
        "--advertise-address",
        "127.0.0.2",
    ];
    one_args.extend(store);
    let one = start(&one_args);
    // The second listens on the same port (upstream's servers all share one) at another
    // loopback address.
    let mut two_args = vec![
        "--bind-address",
        "127.0.0.3",
        "--advertise-address",
        "127.0.0.3",
    ];
    two_args.extend(store);
    let mut two = start(&two_args);
    two.crash();
    two.port = one.port;
    two.launch()
        .expect("second control plane on the first's port");

    let ips = |cp: &ControlPlane| -> Option<Vec<String>> {
        let ep = json(cp, &["get", "endpoints", "kubernetes"])?;
        let mut ips: Vec<String> = ep["subsets"][0]["addresses"]
            .as_array()?
            .iter()
            .filter_map(|a| a["ip"].as_str().map(str::to_string))
            .collect();
        ips.sort();
        Some(ips)
    };
    let both = vec!["127.0.0.2".to_string(), "127.0.0.3".to_string()];
    eventually(Duration::from_secs(40), "both addresses published", || {
        (ips(&one)? == both).then_some(())
    });
    let slice = json(&one, &["get", "endpointslice", "kubernetes"]).unwrap();
    assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);

    // The second one stops renewing: its lease expires and its address goes.
    two.crash();
    eventually(
        Duration::from_secs(45),
        "the stopped one's address dropped",
        || (ips(&one)? == ["127.0.0.2"]).then_some(()),
    );
}
