//! Cluster DNS against a real control plane: Services and EndpointSlices made with the real
//! kubectl, answers asked with `dig`, each change followed within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Dig, dig};
use skiff_proxy::dns::{DnsConfig, DnsHandle, serve};
use skiff_tests::{ControlPlane, workspace_bin};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn start() -> (ControlPlane, DnsHandle) {
    let cp = ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), &[]).unwrap();
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Nothing here is meant to leave the cluster zone.
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
        upstream_timeout: Duration::from_millis(200),
        ..DnsConfig::default()
    };
    let dns = serve(client(&cp).await, config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dns.synced() {
        assert!(Instant::now() < deadline, "DNS never listed the cluster");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (cp, dns)
}

/// Asks until `ok` holds, for at most a second after the change; returns the time it took.
async fn within_a_second(
    at: SocketAddr,
    args: &[&str],
    what: &str,
    ok: impl Fn(&Dig) -> bool,
) -> Duration {
    let changed = Instant::now();
    loop {
        let d = dig(at, args).await;
        if ok(&d) {
            return changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "{what}: still {d:?} a second after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: dns-e2e}
spec:
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: dns-e2e}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: dns-e2e}
spec:
  type: ExternalName
  externalName: db.dns-e2e.svc.cluster.local
"#;

fn db_slice(ready_1: bool) -> String {
    format!(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: dns-e2e
  labels: {{kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{{name: pg, port: 5432, protocol: TCP}}]
endpoints:
- addresses: [10.244.0.10]
  hostname: db-0
  conditions: {{ready: true}}
- addresses: [10.244.0.11]
  hostname: db-1
  conditions: {{ready: {ready_1}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_kubectl_within_a_second() {
    let (cp, dns) = start().await;
    let at = dns.local_addr();

    // A namespace exists as soon as it is made: its name answers NODATA, not NXDOMAIN.
    cp.kubectl_ok(&["create", "namespace", "dns-e2e"]);
    within_a_second(
        at,
        &["dns-e2e.svc.cluster.local", "A"],
        "new namespace",
        |d| d.status == "NOERROR",
    )
    .await;

    cp.kubectl_stdin(&["apply", "-f", "-"], SERVICES);
    let ip = cp.kubectl_ok(&[
        "get",
        "service",
        "web",
        "-n",
        "dns-e2e",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let ip = ip.trim().to_string();
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "cluster IP {ip:?}"
    );
    let took = within_a_second(
        at,
        &["web.dns-e2e.svc.cluster.local", "A"],
        "new Service",
        |d| d.answers("A") == [ip.clone()],
    )
    .await;
    eprintln!("new Service answered after {took:?}");
    let d = dig(at, &["_http._tcp.web.dns-e2e.svc.cluster.local", "SRV"]).await;
    assert_eq!(
        d.answers("SRV"),
        ["0 100 80 web.dns-e2e.svc.cluster.local."]
    );
    let d = dig(at, &["-x", &ip]).await;
    assert_eq!(d.answers("PTR"), ["web.dns-e2e.svc.cluster.local."]);

    // Headless without endpoints does not exist yet; with a slice it answers its ready
    // addresses and each pod's hostname.
    let d = dig(at, &["db.dns-e2e.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NXDOMAIN");
    cp.kubectl_stdin(&["apply", "-f", "-"], &db_slice(true));
    let took = within_a_second(
        at,
        &["db.dns-e2e.svc.cluster.local", "A"],
        "new slice",
        |d| d.answers("A") == ["10.244.0.10", "10.244.0.11"],
    )
    .await;
    eprintln!("new EndpointSlice answered after {took:?}");
    let d = dig(at, &["db-1.db.dns-e2e.svc.cluster.local", "A"]).await;
    assert_eq!(d.answers("A"), ["10.244.0.11"]);
    let d = dig(at, &["_pg._tcp.db.dns-e2e.svc.cluster.local", "SRV"]).await;
    assert_eq!(
        d.answers("SRV"),
        [
            "0 50 5432 db-0.db.dns-e2e.svc.cluster.local.",
            "0 50 5432 db-1.db.dns-e2e.svc.cluster.local."
        ]
    );
    let d = dig(at, &["-x", "10.244.0.10"]).await;
    assert_eq!(d.answers("PTR"), ["db-0.db.dns-e2e.svc.cluster.local."]);
    // The ExternalName points inside the zone: followed to the addresses.
    let d = dig(at, &["ext.dns-e2e.svc.cluster.local", "A"]).await;
    assert_eq!(d.answers("CNAME"), ["db.dns-e2e.svc.cluster.local."]);
    assert_eq!(d.answers("A"), ["10.244.0.10", "10.244.0.11"]);

    // An endpoint that stops being ready leaves the answers.
    cp.kubectl_stdin(&["apply", "-f", "-"], &db_slice(false));
    within_a_second(
        at,
        &["db.dns-e2e.svc.cluster.local", "A"],
        "unready endpoint",
        |d| d.answers("A") == ["10.244.0.10"],
    )
    .await;
    within_a_second(
        at,
        &["db-1.db.dns-e2e.svc.cluster.local", "A"],
        "unready endpoint",
        |d| d.status == "NXDOMAIN",
    )
    .await;

    // Deleted: gone.
    cp.kubectl_ok(&["delete", "service", "web", "-n", "dns-e2e"]);
    within_a_second(
        at,
        &["web.dns-e2e.svc.cluster.local", "A"],
        "deleted Service",
        |d| d.status == "NXDOMAIN",
    )
    .await;
    cp.kubectl_ok(&["delete", "endpointslice", "db-1", "-n", "dns-e2e"]);
    within_a_second(
        at,
        &["db.dns-e2e.svc.cluster.local", "A"],
        "deleted slice",
        |d| d.status == "NXDOMAIN",
    )
    .await;

    // Services the control plane made itself answer too.
    let d = dig(at, &["kubernetes.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NOERROR");
    assert_eq!(d.answers("A").len(), 1, "{d:?}");
    dns.shutdown().await;
}
