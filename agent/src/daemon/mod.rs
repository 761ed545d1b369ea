//! The running agent: every part wired together from one [`AgentConfig`] — containerd (given
//! or supervised), cgroups, CNI, sandboxes, volumes, the node object and its heartbeats, and
//! the pod manager. `skiff-agent` is a thin command line over [`run`].

mod cni_default;
mod down;
mod health;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cgroups::{self, CgroupConfig};
use crate::network::{self, Mode};
use crate::node::{NodeConfig, NodeReporter};
use crate::pods::admission::NodeResources;
use crate::pods::api::KubePodApi;
use crate::pods::context::{PodContext, PodSettings};
use crate::pods::events::KubeEvents;
use crate::pods::images::ImageService;
use crate::pods::manager::{ManagerSettings, PodManager};
use crate::runtime::containerd::{Containerd, ContainerdConfig};
use crate::runtime::registry::RegistryConfig;
use crate::runtime::supervise::{SuperviseConfig, Supervisor};
use crate::runtime::{Runtime, Version};
use crate::sandbox::files::DnsSettings;
use crate::sandbox::{Sandbox, SandboxParams};
use crate::server::{self, ApiState, ServerConfig};
use crate::stats::{Collector, HostFiles};
use crate::volumes::{Allocatable, VolumeManager};

pub use cni_default::{DEFAULT_BRIDGE, DEFAULT_FIREWALL_TABLE, default_conflist};
pub use down::{Leftovers, down};

/// Why the agent could not start: what it was doing, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StartError {
    pub context: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

type Result<T, E = StartError> = std::result::Result<T, E>;

/// Adds what the agent was doing to an error.
trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| StartError {
            context: what.into(),
            source: Box::new(e),
        })
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| StartError {
            context: what(),
            source: Box::new(e),
        })
    }
}

/// The containerd namespace the agent's containers live in.
pub const NAMESPACE: &str = "skiff";

/// Everything the agent is told at start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// State: pods' sandboxes and volumes, CNI state, a supervised containerd.
    pub root_dir: PathBuf,
    /// containerd's socket; `None` runs a private containerd under `root_dir`.
    pub containerd_socket: Option<PathBuf>,
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Where the CNI configuration is; `None` is `root_dir/cni/net.d`, where the agent
    /// writes a skiff-bridge configuration when there is none.
    pub cni_conf_dir: Option<PathBuf>,
    /// The node's pod range (`--pod-cidr`): the Node registers with it and the written
    /// configuration uses it. `None` waits for the control plane's node IPAM to give the
    /// Node one.
    pub pod_cidr: Option<String>,
    /// How pods reach pods on other nodes (`--pod-network`).
    pub pod_network: crate::network::Mode,
    /// The range of every node's pod range (`--cluster-cidr`): pod traffic to it keeps its
    /// source address.
    pub cluster_cidr: String,
    /// How long the agent waits for its Node's `spec.podCIDR`.
    pub pod_cidr_timeout: Duration,
    pub max_pods: u32,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub node_ip: Option<IpAddr>,
    pub node_labels: Vec<(String, String)>,
    pub pod_logs_dir: PathBuf,
    /// The cgroup mount root and the pod tree's cgroup.
    pub cgroup_mount_root: PathBuf,
    pub cgroup_root: String,
    /// The node's resolv.conf for `Default` pods; `None` as kubelet's `--resolv-conf=""`.
    pub resolv_conf: Option<PathBuf>,
    pub registries: RegistryConfig,
    pub allowed_unsafe_sysctls: Vec<String>,
    pub volume_refresh: Duration,
    /// The port of the agent's HTTPS API, also published in the Node's daemonEndpoints;
    /// `None` serves no API.
    pub port: Option<u16>,
    /// The address the API listens on.
    pub address: IpAddr,
    /// The CA of accepted client certificates; `None` is the kubeconfig's CA.
    pub client_ca_file: Option<PathBuf>,
    /// How container log files are rotated.
    pub log_rotation: crate::logs::Rotation,
    /// The binary containers' shims run as their log driver; `None` is this executable.
    pub logger_bin: Option<PathBuf>,
}

impl AgentConfig {
    /// Defaults for everything but the essentials.
    pub fn new(kubeconfig: PathBuf, node_name: String, root_dir: PathBuf) -> Self {
        AgentConfig {
            kubeconfig,
            node_name,
            root_dir,
            containerd_socket: None,
            cni_bin_dirs: default_cni_bin_dirs(),
            cni_conf_dir: None,
            pod_cidr: None,
            pod_network: crate::network::Mode::Vxlan,
            cluster_cidr: "10.244.0.0/16".into(),
            pod_cidr_timeout: Duration::from_secs(120),
            max_pods: 110,
            cluster_dns: vec![IpAddr::from([10, 96, 0, 10])],
            cluster_domain: "cluster.local".into(),
            node_ip: None,
            node_labels: Vec::new(),
            pod_logs_dir: "/var/log/pods".into(),
            cgroup_mount_root: "/sys/fs/cgroup".into(),
            cgroup_root: "/kubepods".into(),
            resolv_conf: Some("/etc/resolv.conf".into()),
            registries: RegistryConfig::default(),
            allowed_unsafe_sysctls: Vec::new(),
            volume_refresh: Duration::from_secs(10),
            port: Some(10250),
            address: IpAddr::from([0, 0, 0, 0]),
            client_ca_file: None,
            log_rotation: crate::logs::Rotation::default(),
            logger_bin: None,
        }
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.cni_conf_dir
            .clone()
            .unwrap_or_else(|| self.root_dir.join("cni/net.d"))
    }
}

/// The agent's own directory (where skiff-bridge and skiff-ipam are installed beside it),
/// then the usual plugin directories.
pub fn default_cni_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    dirs.extend(["/opt/cni/bin".into(), "/usr/lib/cni".into()]);
    dirs
}

/// The network configuration the agent writes when it is given no directory.
struct DefaultNetwork<'a> {
    root_dir: &'a Path,
    conf_dir: &'a Path,
    mode: Mode,
    cluster_cidr: &'a str,
    node_ip: Option<IpAddr>,
}

impl DefaultNetwork<'_> {
    fn write(&self, pod_cidr: &str) -> Result<()> {
        // Between nodes, pods see each other's own addresses: traffic to the cluster's
        // range is not masqueraded.
        let keep_source: Vec<&str> = match self.mode {
            Mode::None => Vec::new(),
            _ => vec![self.cluster_cidr],
        };
        // Tunnelled pod traffic carries VXLAN's headers: pods' links are as much smaller
        // as the VXLAN device's.
        let mtu = match (self.mode, self.node_ip) {
            (Mode::Vxlan, Some(IpAddr::V4(ip))) => network::vxlan::underlay(ip)
                .ok()
                .map(|(_, mtu)| mtu.saturating_sub(network::VXLAN_OVERHEAD)),
            _ => None,
        };
        cni_default::ensure(self.conf_dir, self.root_dir, pod_cidr, &keep_source, mtu)
            .context("writing the default CNI configuration")
    }
}

/// A running agent. Dropping it leaves pods running (as stopping kubelet does); call
/// [`Agent::stop`] to stop the supervised containerd too.
pub struct Agent {
    pub runtime: Arc<dyn Runtime>,
    supervisor: Option<Supervisor>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Stops the agent's tasks and its private containerd. Containers keep running in their
    /// shims; a new agent on the same directory adopts them.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(s) = self.supervisor.take()
            && let Err(e) = s.stop().await
        {
            tracing::warn!(error = %e, "stopping containerd");
        }
    }
}

async fn kube_client(path: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("using kubeconfig {}", path.display()))?;
    kube::Client::try_from(cfg).context("building the API client")
}

fn runtime_version(v: &Version) -> String {
    format!("containerd://{}", v.version.trim_start_matches('v'))
}

/// The executable containers' shims run as their log driver.
fn logger_bin(cfg: &AgentConfig) -> Option<PathBuf> {
    match cfg
        .logger_bin
        .clone()
        .map_or_else(std::env::current_exe, Ok)
    {
        Ok(bin) => Some(bin),
        Err(e) => {
            tracing::warn!(error = %e, "cannot find the agent's executable; container logs are not rotated");
            None
        }
    }
}

/// Serves the agent's HTTPS API: a serving certificate for the node's name and addresses,
/// client certificates from the cluster CA.
async fn start_api(
    cfg: &AgentConfig,
    port: u16,
    node_ips: &[IpAddr],
    state: Arc<ApiState>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut sans = vec![cfg.node_name.clone()];
    sans.extend(node_ips.iter().map(IpAddr::to_string));
    let (cert_pem, key_pem) =
        server::serving_cert(&cfg.root_dir.join("pki"), &sans).context("the API's certificate")?;
    let client_ca_pem = match &cfg.client_ca_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => server::kubeconfig_ca(&cfg.kubeconfig).context("the API's client CA")?,
    };
    server::start(
        ServerConfig {
            addr: std::net::SocketAddr::new(cfg.address, port),
            client_ca_pem,
            cert_pem,
            key_pem,
        },
        state,
    )
    .await
    .context("starting the agent's API")
}

/// Starts the agent and returns once it runs.
pub async fn run(cfg: AgentConfig) -> Result<Agent> {
    std::fs::create_dir_all(&cfg.root_dir)
        .with_context(|| format!("creating {}", cfg.root_dir.display()))?;
    let client = kube_client(&cfg.kubeconfig).await?;

    // containerd: the node's, or a private one.
    let (mut cd_cfg, supervisor) = match &cfg.containerd_socket {
        Some(socket) => (ContainerdConfig::new(socket, NAMESPACE), None),
        None => {
            let s = Supervisor::start(SuperviseConfig::new(&cfg.root_dir))
                .await
                .context("starting the private containerd")?;
            (s.client_config(NAMESPACE), Some(s))
        }
    };
    cd_cfg.registries = cfg.registries.clone();
    let containerd = Containerd::connect(cd_cfg)
        .await
        .context("connecting to containerd")?;
    let runtime: Arc<dyn Runtime> = Arc::new(containerd);
    let version = runtime
        .version()
        .await
        .context("asking containerd for its version")?;

    let cgroups: Arc<dyn cgroups::CgroupManager> = Arc::from(
        cgroups::open(&CgroupConfig::new(&cfg.cgroup_mount_root, &cfg.cgroup_root))
            .context("opening the cgroup tree")?,
    );
    cgroups
        .ensure_qos_tree()
        .context("creating the QoS cgroups")?;

    // The node object first: its podCIDR (when the control plane assigns one) decides the
    // network configuration.
    let node_cfg = NodeConfig {
        name: cfg.node_name.clone(),
        root_dir: cfg.root_dir.clone(),
        max_pods: cfg.max_pods,
        node_ip: cfg.node_ip,
        labels: cfg.node_labels.iter().cloned().collect(),
        daemon_port: cfg.port,
        pod_cidr: cfg.pod_cidr.clone(),
    };
    let mut reporter = NodeReporter::new(client.clone(), node_cfg, runtime_version(&version));
    let facts = reporter.facts().clone();
    // Without a route out, the node is reachable on loopback only.
    let node_ips: Vec<IpAddr> = vec![
        cfg.node_ip
            .or_else(crate::node::info::default_route_ip)
            .unwrap_or(IpAddr::from([127, 0, 0, 1])),
    ];

    let conf_dir = cfg.cni_conf_dir();
    let network = DefaultNetwork {
        root_dir: &cfg.root_dir,
        conf_dir: &conf_dir,
        mode: cfg.pod_network,
        cluster_cidr: &cfg.cluster_cidr,
        node_ip: node_ips.first().copied(),
    };
    let writes_config = cfg.cni_conf_dir.is_none();
    if writes_config && let Some(c) = &cfg.pod_cidr {
        network.write(c)?;
    }
    let cni_source = health::CniSource {
        conf_dir: conf_dir.clone(),
        bin_dirs: cfg.cni_bin_dirs.clone(),
        cache_dir: cfg.root_dir.join("cni/cache"),
    };
    let (cni, cni_error) = match cni_source.load() {
        Ok(c) => (Some(c), None),
        // Written once the control plane gives the node its range: expected.
        Err(e) if writes_config && cfg.pod_cidr.is_none() => (None, Some(e)),
        Err(e) => {
            tracing::warn!(error = %e, "no usable CNI configuration yet; only host-network pods can run");
            (None, Some(e))
        }
    };
    let sandbox = Arc::new(Sandbox::new(
        SandboxParams {
            root: cfg.root_dir.join("pods"),
            ifname: "eth0".into(),
            dns: DnsSettings {
                cluster_dns: cfg.cluster_dns.clone(),
                cluster_domain: cfg.cluster_domain.clone(),
                node_ips: node_ips.clone(),
            },
            resolv_conf: cfg.resolv_conf.clone(),
            hosts_file: "/etc/hosts".into(),
        },
        cni,
    ));

    let allocatable_map = facts.allocatable(cfg.max_pods);
    let allocatable = Allocatable(
        allocatable_map
            .iter()
            .filter_map(|(k, q)| {
                skiff_api::quantity::Quantity::try_from(q)
                    .ok()
                    .map(|q| (k.clone(), q))
            })
            .collect(),
    );
    let volumes = Arc::new(
        VolumeManager::new(&cfg.root_dir, "/proc").with_node_allocatable(allocatable.0.clone()),
    );
    let resources = NodeResources {
        cpu_milli: i64::from(facts.cpus) * 1000,
        memory_bytes: allocatable
            .0
            .get("memory")
            .map_or(0, skiff_api::quantity::Quantity::value),
        pods: i64::from(cfg.max_pods),
    };

    let health = health::check(runtime.as_ref(), &sandbox, cni_error.as_deref()).await;
    reporter
        .register(&health)
        .await
        .context("registering the node")?;

    // Without a range of its own the node waits for the control plane's, then writes the
    // network configuration for it.
    let needs_range = writes_config || cfg.pod_network != Mode::None;
    let mut late_config: Option<Option<String>> = None;
    let pod_cidr = match (&cfg.pod_cidr, needs_range) {
        (Some(c), _) => {
            // A Node registered before with another range keeps it (podCIDR is set once):
            // the other nodes route that one here.
            if cfg.pod_network != Mode::None
                && let Ok(held) =
                    network::wait_for_pod_cidr(client.clone(), &cfg.node_name, Duration::ZERO).await
                && held.to_string() != *c
            {
                tracing::warn!(node = %cfg.node_name, pod_cidr = %c, node_pod_cidr = %held, "the Node holds another pod range than --pod-cidr; other nodes route the Node's to this one");
            }
            Some(c.clone())
        }
        (None, true) => {
            let c =
                network::wait_for_pod_cidr(client.clone(), &cfg.node_name, cfg.pod_cidr_timeout)
                    .await
                    .context("waiting for the node's pod range")?
                    .to_string();
            if writes_config {
                network.write(&c)?;
                late_config = Some(match cni_source.load() {
                    Ok(cni) => {
                        sandbox.set_cni(Some(cni));
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the written network configuration does not load");
                        Some(e)
                    }
                });
            }
            Some(c)
        }
        (None, false) => None,
    };
    let health = match &late_config {
        Some(error) => health::check(runtime.as_ref(), &sandbox, error.as_deref()).await,
        None => health,
    };
    let pod_network = match (cfg.pod_network, pod_cidr) {
        (Mode::None, _) | (_, None) => None,
        (mode, Some(c)) => {
            let pod_cidr = c.parse().with_context(|| format!("the pod range {c}"))?;
            let node_ip = match node_ips.first() {
                Some(IpAddr::V4(ip)) => *ip,
                other => {
                    return Err(StartError {
                        context: "the pod network".into(),
                        source: format!("--pod-network {mode} needs an IPv4 node address (--node-ip), not {other:?}").into(),
                    });
                }
            };
            let pn = network::PodNetwork {
                mode,
                node_name: cfg.node_name.clone(),
                node_ip,
                pod_cidr,
                resync: Duration::from_secs(30),
            };
            Some(
                pn.start(client.clone())
                    .await
                    .with_context(|| format!("starting the {mode} pod network"))?,
            )
        }
    };
    let (health_tx, health_rx) = watch::channel(health);

    let ctx = Arc::new(PodContext {
        settings: PodSettings {
            node_name: cfg.node_name.clone(),
            node_ips: node_ips.clone(),
            log_dir: cfg.pod_logs_dir.clone(),
            logger: logger_bin(&cfg).map(|bin| (bin, cfg.log_rotation)),
            state_dir: cfg.root_dir.join("pods"),
            allocatable,
            memory_capacity: facts.memory_bytes,
        },
        runtime: runtime.clone(),
        sandbox: sandbox.clone(),
        volumes,
        cgroups: cgroups.clone(),
        api: Arc::new(KubePodApi::new(client.clone())),
        events: Arc::new(KubeEvents::start(client.clone(), &cfg.node_name)),
        images: ImageService::new(runtime.clone()),
    });
    let mut manager = PodManager::new(
        ctx,
        ManagerSettings {
            resources,
            allowed_unsafe_sysctls: cfg.allowed_unsafe_sysctls.clone(),
            volume_refresh: cfg.volume_refresh,
        },
    );
    manager
        .recover()
        .await
        .context("listing containers left by an earlier run")?;

    let mut tasks: Vec<_> = pod_network.into_iter().collect();
    if let Some(port) = cfg.port {
        let state = Arc::new(ApiState {
            pods: manager.running(),
            runtime: runtime.clone(),
            sandbox: sandbox.clone(),
            log_dir: cfg.pod_logs_dir.clone(),
            stats: Arc::new(Collector::new(
                cfg.node_name.clone(),
                manager.running(),
                runtime.clone(),
                cgroups,
                HostFiles {
                    proc_dir: "/proc".into(),
                    cgroup_mount_root: cfg.cgroup_mount_root.clone(),
                },
            )),
        });
        tasks.push(start_api(&cfg, port, &node_ips, state).await?);
    }
    tasks.extend([
        tokio::spawn(reporter.run(health_rx)),
        tokio::spawn(manager.run(client.clone())),
    ]);
    tasks.push(tokio::spawn(health::watch(
        runtime.clone(),
        sandbox,
        cni_source,
        health_tx,
    )));
    tracing::info!(node = %cfg.node_name, runtime = %version.version, "agent running");
    Ok(Agent {
        runtime,
        supervisor,
        tasks,
    })
}
