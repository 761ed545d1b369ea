//! The node's own object and heartbeats: registration with capacity, addresses, nodeInfo
//! and conditions, the Lease in `kube-node-lease` renewed every 10 s, and a status
//! report whenever the conditions change (and at least every minute).

pub mod conditions;
pub mod info;
mod lease;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

pub use conditions::Health;
pub use info::MachineFacts;

/// The version the agent reports as `kubeletVersion`: the Kubernetes API it follows.
pub const AGENT_VERSION: &str = "v1.33.0-skiff";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const HEARTBEAT: Duration = Duration::from_secs(10);
const STATUS_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("failed to {action} node {node:?}: {source}")]
    Api {
        action: &'static str,
        node: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub root_dir: PathBuf,
    pub max_pods: u32,
    pub node_ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
    /// The agent's HTTPS port, published as status.daemonEndpoints.
    pub daemon_port: Option<u16>,
    /// A pod range the node registers with (`--pod-cidr`); `None` leaves it to the control
    /// plane's node IPAM.
    pub pod_cidr: Option<String>,
}

pub struct NodeReporter {
    client: kube::Client,
    cfg: NodeConfig,
    facts: MachineFacts,
    runtime_version: String,
    last: Vec<NodeCondition>,
}

impl NodeReporter {
    pub fn new(client: kube::Client, cfg: NodeConfig, runtime_version: String) -> NodeReporter {
        let facts = MachineFacts::read(&cfg.root_dir);
        NodeReporter {
            client,
            cfg,
            facts,
            runtime_version,
            last: Vec::new(),
        }
    }

    pub fn facts(&self) -> &MachineFacts {
        &self.facts
    }

    fn err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> NodeError + '_ {
        move |source| NodeError::Api {
            action,
            node: self.cfg.name.clone(),
            source,
        }
    }

    /// Creates the Node (or takes over an existing one with the same name, as kubelet
    /// does after a restart), then reports its status.
    pub async fn register(&mut self, health: &Health) -> Result<(), NodeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.cfg.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "kubernetes.io/arch".to_string(),
                self.facts.architecture.clone(),
            ),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "beta.kubernetes.io/arch".to_string(),
                self.facts.architecture.clone(),
            ),
        ]);
        labels.extend(self.cfg.labels.clone());
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.cfg.name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            spec: self
                .cfg
                .pod_cidr
                .as_ref()
                .map(|c| k8s_openapi::api::core::v1::NodeSpec {
                    pod_cidr: Some(c.clone()),
                    pod_cidrs: Some(vec![c.clone()]),
                    ..Default::default()
                }),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %self.cfg.name, "registered node"),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let patch = json!({ "metadata": { "labels": labels } });
                api.patch(
                    &self.cfg.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(self.err("update"))?;
                tracing::info!(node = %self.cfg.name, "node already registered; taking it over");
            }
            Err(e) => return Err(self.err("register")(e)),
        }
        self.report(health).await
    }

    /// Writes the whole status: capacity, allocatable, addresses, nodeInfo, conditions.
    pub async fn report(&mut self, health: &Health) -> Result<(), NodeError> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let conds = conditions::conditions(health, &now, &self.last);
        let mut status = json!({
            "capacity": self.facts.capacity(self.cfg.max_pods),
            "allocatable": self.facts.allocatable(self.cfg.max_pods),
            "addresses": info::addresses(self.cfg.node_ip, &self.facts.hostname),
            "nodeInfo": self.facts.system_info(&self.runtime_version),
            "conditions": conds,
        });
        if let Some(port) = self.cfg.daemon_port {
            status["daemonEndpoints"] = json!({ "kubeletEndpoint": { "Port": port } });
        }
        let api: Api<Node> = Api::all(self.client.clone());
        api.patch_status(
            &self.cfg.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(self.err("report the status of"))?;
        self.last = conds;
        Ok(())
    }

    /// Renews the Lease every [`HEARTBEAT`] and reports the status when `health`
    /// changes its conditions, or every minute. Returns when `health`'s sender is gone.
    pub async fn run(mut self, mut health: watch::Receiver<Health>) {
        let lease = lease::LeaseKeeper::new(self.client.clone(), &self.cfg.name);
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut last_report = tokio::time::Instant::now();
        // Health that changed between registration and now (the network configuration is
        // written once the control plane gives the node its pod range) is reported at
        // once: the channel's first value never shows as a change.
        let h = health.borrow_and_update().clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        if conditions::changed(&self.last, &conditions::conditions(&h, &now, &self.last)) {
            match self.report(&h).await {
                Ok(()) => last_report = tokio::time::Instant::now(),
                Err(e) => tracing::warn!(error = %e, "node status report failed"),
            }
        }
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = lease.renew().await {
                        tracing::warn!(node = %self.cfg.name, error = %e, "lease renewal failed");
                    }
                    if last_report.elapsed() >= STATUS_REFRESH {
                        let h = health.borrow().clone();
                        match self.report(&h).await {
                            Ok(()) => last_report = tokio::time::Instant::now(),
                            Err(e) => tracing::warn!(error = %e, "node status report failed"),
                        }
                    }
                }
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let h = health.borrow_and_update().clone();
                    let now = Time(k8s_openapi::jiff::Timestamp::now());
                    if conditions::changed(&self.last, &conditions::conditions(&h, &now, &self.last)) {
                        match self.report(&h).await {
                            Ok(()) => last_report = tokio::time::Instant::now(),
                            Err(e) => tracing::warn!(error = %e, "node status report failed"),
                        }
                    }
                }
            }
        }
    }
}
