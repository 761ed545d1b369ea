//! What every controller shares: the cluster to write to, one informer per kind (one watch
//! and one cache each, however many controllers read them), and the settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use tokio::task::JoinHandle;

use super::runtime::{FakeCluster, Informer};

/// One informer per kind the controllers and the scheduler read.
#[derive(Clone)]
pub struct Informers {
    pub pods: Informer<Pod>,
    pub nodes: Informer<Node>,
    pub namespaces: Informer<Namespace>,
    pub services: Informer<Service>,
    pub endpoints: Informer<Endpoints>,
    pub endpoint_slices: Informer<EndpointSlice>,
    pub service_accounts: Informer<ServiceAccount>,
    pub replica_sets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
    pub stateful_sets: Informer<StatefulSet>,
    pub daemon_sets: Informer<DaemonSet>,
    pub controller_revisions: Informer<ControllerRevision>,
    pub jobs: Informer<Job>,
    pub cron_jobs: Informer<CronJob>,
    pub pvcs: Informer<PersistentVolumeClaim>,
    pub pvs: Informer<PersistentVolume>,
    pub storage_classes: Informer<StorageClass>,
    pub leases: Informer<Lease>,
    pub hpas: Informer<HorizontalPodAutoscaler>,
    pub csrs: Informer<CertificateSigningRequest>,
    pub pdbs: Informer<PodDisruptionBudget>,
}

impl Informers {
    /// Informers on the API server; the handles run the watches.
    pub fn start(client: &kube::Client) -> (Informers, Vec<JoinHandle<()>>) {
        let mut tasks = Vec::new();
        macro_rules! start {
            () => {{
                let (i, t) = Informer::start(client.clone());
                tasks.push(t);
                i
            }};
        }
        let informers = Informers {
            pods: start!(),
            nodes: start!(),
            namespaces: start!(),
            services: start!(),
            endpoints: start!(),
            endpoint_slices: start!(),
            service_accounts: start!(),
            replica_sets: start!(),
            deployments: start!(),
            stateful_sets: start!(),
            daemon_sets: start!(),
            controller_revisions: start!(),
            jobs: start!(),
            cron_jobs: start!(),
            pvcs: start!(),
            pvs: start!(),
            storage_classes: start!(),
            leases: start!(),
            hpas: start!(),
            csrs: start!(),
            pdbs: start!(),
        };
        (informers, tasks)
    }

    /// Informers on a [`FakeCluster`], for unit tests.
    pub fn fake(c: &FakeCluster) -> Informers {
        Informers {
            pods: c.informer(),
            nodes: c.informer(),
            namespaces: c.informer(),
            services: c.informer(),
            endpoints: c.informer(),
            endpoint_slices: c.informer(),
            service_accounts: c.informer(),
            replica_sets: c.informer(),
            deployments: c.informer(),
            stateful_sets: c.informer(),
            daemon_sets: c.informer(),
            controller_revisions: c.informer(),
            jobs: c.informer(),
            cron_jobs: c.informer(),
            pvcs: c.informer(),
            pvs: c.informer(),
            storage_classes: c.informer(),
            leases: c.informer(),
            hpas: c.informer(),
            csrs: c.informer(),
            pdbs: c.informer(),
        }
    }

    /// Waits until every informer has its first list.
    pub async fn synced(&self) {
        self.pods.synced().await;
        self.nodes.synced().await;
        self.namespaces.synced().await;
        self.services.synced().await;
        self.endpoints.synced().await;
        self.endpoint_slices.synced().await;
        self.service_accounts.synced().await;
        self.replica_sets.synced().await;
        self.deployments.synced().await;
        self.stateful_sets.synced().await;
        self.daemon_sets.synced().await;
        self.controller_revisions.synced().await;
        self.jobs.synced().await;
        self.cron_jobs.synced().await;
        self.pvcs.synced().await;
        self.pvs.synced().await;
        self.storage_classes.synced().await;
        self.leases.synced().await;
        self.hpas.synced().await;
        self.csrs.synced().await;
        self.pdbs.synced().await;
    }
}

/// Settings of the controllers, with kube-controller-manager's defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A node whose Lease is older than this is Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace: Duration,
    /// How long pods tolerate an unreachable or not-ready node when they do not say
    /// (`--default-unreachable-toleration-seconds`, `--default-not-ready-toleration-seconds`).
    pub default_toleration_seconds: i64,
    /// Where the built-in local-path provisioner makes volumes on nodes.
    pub local_path_dir: PathBuf,
    /// The image of the helper pod that removes a deleted local-path volume's directory.
    pub local_path_helper_image: String,
    /// Nodes per second (per zone) that get a NoExecute taint, evicting their pods
    /// (`--node-eviction-rate`).
    pub node_eviction_rate: f64,
    /// The same, in a large zone where most nodes are down (`--secondary-node-eviction-rate`).
    pub secondary_node_eviction_rate: f64,
    /// Worker tasks per controller.
    pub workers: usize,
    /// How often each HorizontalPodAutoscaler is evaluated
    /// (`--horizontal-pod-autoscaler-sync-period`).
    pub hpa_sync_period: Duration,
    /// How far the usage ratio may stray from 1.0 before the HPA acts
    /// (`--horizontal-pod-autoscaler-tolerance`).
    pub hpa_tolerance: f64,
    /// The scale-down stabilization window of HPAs that set none
    /// (`--horizontal-pod-autoscaler-downscale-stabilization`).
    pub hpa_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples may be skipped as start-up noise
    /// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
    pub hpa_cpu_initialization_period: Duration,
    /// How long after a pod starts an unready pod counts as never having been ready
    /// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
    pub hpa_initial_readiness_delay: Duration,
    /// Where pods reach the API server, published as the `default/kubernetes` Endpoints
    /// (`--advertise-address`, the secure port); `None` publishes nothing.
    pub apiserver_endpoint: Option<std::net::SocketAddr>,
    /// The addresses LoadBalancer Services get (`--load-balancer-pool`); empty: none.
    pub load_balancer_pool: crate::controllers::service_lb::pool::Pool,
    /// Node IPAM (`--allocate-node-cidrs`, `--cluster-cidr`, `--node-cidr-mask-size`);
    /// `None` allocates nothing.
    pub node_ipam: Option<super::nodeipam::NodeIpamSettings>,
    /// The CA the CSR signer issues certificates with (`--cluster-signing-cert-file`,
    /// `--cluster-signing-key-file`); `None` signs nothing.
    pub cluster_signing_cert_file: Option<PathBuf>,
    pub cluster_signing_key_file: Option<PathBuf>,
    /// The longest validity the signer gives (`--cluster-signing-duration`).
    pub cluster_signing_duration: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_monitor_grace: Duration::from_secs(40),
            default_toleration_seconds: 300,
            local_path_dir: "/var/lib/skiff/local-path".into(),
            local_path_helper_image: "busybox:1.36".into(),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            workers: 4,
            hpa_sync_period: Duration::from_secs(15),
            hpa_tolerance: 0.1,
            hpa_downscale_stabilization: Duration::from_secs(300),
            hpa_cpu_initialization_period: Duration::from_secs(300),
            hpa_initial_readiness_delay: Duration::from_secs(30),
            apiserver_endpoint: None,
            load_balancer_pool: Default::default(),
            node_ipam: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// What a controller is started with.
pub struct Ctx<C> {
    pub cluster: Arc<C>,
    pub informers: Informers,
    pub settings: Settings,
}

impl<C> Clone for Ctx<C> {
    fn clone(&self) -> Self {
        Ctx {
            cluster: self.cluster.clone(),
            informers: self.informers.clone(),
            settings: self.settings.clone(),
        }
    }
}
