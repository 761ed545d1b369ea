//! The whole proxy minus its `main`: a real control plane, the real kubectl writing a Service
//! and its EndpointSlice, the kube-rs watches and the sync loop, and the nftables backend
//! programming a node namespace that a client namespace sends real traffic through.
//! Needs root and the workspace's `skiff-controlplane` binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use skiff_proxy::dataplane::nftables::{Nftables, NftablesConfig};
use skiff_proxy::sync::{self, SyncSettings, Trigger};
use skiff_tests::{ControlPlane, workspace_bin};
use support::*;

// Not 10.96.0.10: that is the kube-dns Service's.
const CLUSTER_IP: &str = "10.96.0.20";

fn manifests(backend: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: {CLUSTER_IP}
  ports:
  - name: http
    port: 80
    targetPort: {BACKEND_PORT}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-manual
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: {BACKEND_PORT}
  protocol: TCP
endpoints:
- addresses: ["{backend}"]
  conditions:
    ready: true
"#
    )
}

/// Asks through the ClusterIP until `expected` answers or `timeout` passes.
fn wait_for_backend(client_ns: &str, expected: &str, timeout: Duration) -> Result<Duration> {
    let addr: SocketAddr = format!("{CLUSTER_IP}:80").parse()?;
    let start = Instant::now();
    loop {
        let reply = tcp_request(client_ns, addr)?;
        if let Ok(reply) = &reply
            && reply.starts_with(expected)
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("{expected} did not answer within {timeout:?}; last reply {reply:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_written_with_kubectl_are_served_and_follow_endpoint_changes() -> Result<()> {
    let cp = ControlPlane::start(&workspace_bin("skiff-controlplane")?, &[])?;
    let topology = Topology::new()?;

    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;

    let mut cfg = NftablesConfig::new(topology.table());
    cfg.nft_command = topology.nft_command();
    cfg.cluster_cidr = Some(CLUSTER_CIDR.parse().unwrap());
    let mut dataplane = Nftables::new(cfg);
    let (trigger, notices) = Trigger::new();
    let caches = sync::watch::start(client, trigger.clone());
    let settings = SyncSettings {
        min_interval: Duration::from_millis(100),
        retry_interval: Duration::from_millis(500),
    };
    let proxy = tokio::spawn(async move {
        sync::run(
            &mut dataplane,
            move || caches.snapshot(),
            notices,
            settings,
            &mut (),
        )
        .await
    });

    let client_ns = topology.client.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<()> {
        cp.kubectl_stdin(&["apply", "-f", "-"], &manifests(BACKEND1_IP));
        wait_for_backend(&client_ns, "backend1", Duration::from_secs(10))
            .context("the Service after kubectl apply")?;

        // Change the endpoint: traffic follows within a second of the write.
        let start = Instant::now();
        cp.kubectl_stdin(&["apply", "-f", "-"], &manifests(BACKEND2_IP));
        let written = start.elapsed();
        let moved = wait_for_backend(&client_ns, "backend2", Duration::from_secs(1))
            .context("the endpoint change")?;
        eprintln!("endpoint change: kubectl took {written:?}, traffic moved {moved:?} later");

        // Delete the slice: the Service has no endpoints and refuses connections.
        cp.kubectl_ok(&["delete", "endpointslice", "web-manual"]);
        let addr: SocketAddr = format!("{CLUSTER_IP}:80").parse()?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match tcp_request(&client_ns, addr)? {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                other if Instant::now() > deadline => bail!("expected refusal, got {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        Ok(())
    })
    .await?;
    proxy.abort();
    drop(trigger);
    result
}
