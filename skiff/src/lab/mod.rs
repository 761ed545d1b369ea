//! `skiff lab`: a cluster of N workers on one machine. The control plane runs on the host,
//! bound to the host's address on a lab bridge; each worker is a network namespace on that
//! bridge in which `skiff join` runs its own containerd, agent and proxy. Every process is
//! recorded by PID in `WORKDIR/lab.json`; `lab down` stops them by PID and removes
//! everything the lab made.

mod machine;
mod net;
mod node;
mod state;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::PostParams;

use net::Subnet;
use state::{Join, Pid, State, Worker};

const DEFAULT_WORKDIR: &str = "/var/lib/skiff-lab";

#[derive(clap::Args, Debug, Clone)]
pub struct Workdir {
    /// Where the lab keeps its state, kubeconfig, logs and the workers' data.
    #[arg(long, default_value = DEFAULT_WORKDIR)]
    workdir: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// How many workers (w1..wN).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    nodes: u32,
    #[command(flatten)]
    workdir: Workdir,
    /// The host's bridge the workers are attached to.
    #[arg(long, default_value = "skiff-lab0")]
    bridge: String,
    /// The lab's subnet: the host has its first address, worker K the (10+K)th.
    #[arg(long, default_value = "172.31.0.0/24")]
    subnet: Subnet,
    /// Workers' network namespaces are named PREFIX + worker name.
    #[arg(long, default_value = "skiff-lab-")]
    netns_prefix: String,
    /// The API server's port (on the host's lab address).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// How long a node may miss heartbeats before it is NotReady (e.g. 40s).
    #[arg(long, default_value = "40s")]
    node_monitor_grace_period: String,
    /// How long to wait for every node to be Ready, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// How pods reach pods on other workers: `vxlan` or `host-gw` (the workers share the
    /// lab bridge, so both work).
    #[arg(long, default_value = "vxlan")]
    pod_network: skiff_agent::network::Mode,
    /// How many pods each worker takes.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The prefix length of each worker's pod range, cut from the cluster's 10.244.0.0/16
    /// (24: ~250 addresses per worker; 23 for more pods than that).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(17..=30))]
    node_cidr_mask_size: u8,
}

/// The control plane as `skiff lab up` runs it (a process of its own).
#[derive(clap::Args, Debug, Clone)]
pub struct ControlPlaneArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    bind_address: String,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "40s")]
    node_monitor_grace_period: String,
    #[arg(long)]
    local_path_dir: PathBuf,
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabCmd {
    /// Start a control plane and N workers, each in its own network namespace; wait until
    /// every node is Ready, then leave them running.
    Up(UpArgs),
    /// Stop every process of the lab and remove its namespaces, bridge, cgroups and
    /// directory.
    Down {
        #[command(flatten)]
        workdir: Workdir,
    },
    /// SIGKILL a worker's node and its containerd, as a machine failure would.
    KillNode {
        name: String,
        #[command(flatten)]
        workdir: Workdir,
    },
    /// Start a stopped worker again with the credentials it has.
    RestartNode {
        name: String,
        #[command(flatten)]
        workdir: Workdir,
        /// How long to wait for the node to be Ready, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_seconds: u64,
    },
    /// Stop the control plane (SIGTERM, or SIGKILL with --kill) and start it again on the
    /// same store; the workers carry on meanwhile.
    RestartControlPlane {
        #[command(flatten)]
        workdir: Workdir,
        /// SIGKILL instead of a clean shutdown, as a machine failure would.
        #[arg(long)]
        kill: bool,
    },
    #[command(hide = true)]
    Controlplane(ControlPlaneArgs),
}

pub async fn run(cmd: LabCmd) -> anyhow::Result<()> {
    match cmd {
        LabCmd::Up(args) => {
            let workdir = args.workdir.workdir.clone();
            up(args).await.with_context(|| {
                format!(
                    "skiff lab up (`skiff lab down --workdir {}` removes what was made)",
                    workdir.display()
                )
            })
        }
        LabCmd::Down { workdir } => down(&workdir.workdir).await.context("skiff lab down"),
        LabCmd::KillNode { name, workdir } => kill_node(&workdir.workdir, &name)
            .await
            .context("skiff lab kill-node"),
        LabCmd::RestartNode {
            name,
            workdir,
            timeout_seconds,
        } => restart_node(
            &workdir.workdir,
            &name,
            Duration::from_secs(timeout_seconds),
        )
        .await
        .context("skiff lab restart-node"),
        LabCmd::RestartControlPlane { workdir, kill } => {
            restart_controlplane(&workdir.workdir, kill)
                .await
                .context("skiff lab restart-control-plane")
        }
        LabCmd::Controlplane(args) => controlplane(args).await.context("lab control plane"),
    }
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the skiff executable")
}

pub(crate) async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("loading {}", kubeconfig.display()))?;
    kube::Client::try_from(cfg).context("building the API client")
}

/// The last lines of a log, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let workdir = args.workdir.workdir.clone();
    if State::load(&workdir)?.is_some() {
        bail!(
            "a lab already runs in {0}: `skiff lab down --workdir {0}` first",
            workdir.display()
        );
    }
    net::check_ifname(&args.bridge)?;
    if net::link_exists(&args.bridge) {
        bail!(
            "a link named {} exists already: choose another --bridge",
            args.bridge
        );
    }
    let subnet = args.subnet;
    let host = subnet.host()?;
    subnet
        .worker(args.nodes)
        .with_context(|| format!("{} workers", args.nodes))?;
    let grace = skiff_controlplane::config::parse_duration(&args.node_monitor_grace_period)
        .map_err(|e| anyhow::anyhow!("--node-monitor-grace-period: {e}"))?;
    let mut workers = Vec::new();
    for k in 1..=args.nodes {
        let name = format!("w{k}");
        let netns = format!("{}{name}", args.netns_prefix);
        let host_link = format!("{}-{k}", args.bridge);
        net::check_ifname(&host_link)
            .with_context(|| format!("the host end of {name}'s link (a shorter --bridge?)"))?;
        if net::netns_exists(&netns) || net::link_exists(&host_link) {
            bail!(
                "{netns} or {host_link} exists already: choose another --netns-prefix or --bridge"
            );
        }
        workers.push(Worker {
            address: subnet.worker(k)?.to_string(),
            cgroup_root: format!("/{netns}"),
            dir: workdir.join(&name),
            name,
            netns,
            host_link,
            process: None,
        });
    }
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let workdir = workdir
        .canonicalize()
        .with_context(|| format!("resolving {}", workdir.display()))?;
    for w in &mut workers {
        w.dir = workdir.join(&w.name);
    }
    // Recorded before anything exists, so `lab down` removes whatever part got made.
    let mut st = State {
        workdir: workdir.clone(),
        bridge: args.bridge.clone(),
        host_address: format!("{host}/{}", subnet.prefix),
        netns_prefix: args.netns_prefix.clone(),
        port: args.port,
        controlplane: None,
        controlplane_args: Vec::new(),
        join: None,
        workers,
        node_flags: vec![
            format!("--pod-network={}", args.pod_network),
            format!("--max-pods={}", args.max_pods),
        ],
    };
    st.save()?;

    net::ensure_bridge(&args.bridge, &subnet)?;
    let exe = exe()?;
    let cp_dir = st.controlplane_dir();
    std::fs::create_dir_all(&cp_dir).with_context(|| format!("creating {}", cp_dir.display()))?;
    let cp_log = st.controlplane_log();
    st.controlplane_args = vec![
        "lab".into(),
        "controlplane".into(),
        "--data-dir".into(),
        cp_dir.display().to_string(),
        "--bind-address".into(),
        host.to_string(),
        "--port".into(),
        args.port.to_string(),
        "--node-monitor-grace-period".into(),
        format!("{}s", grace.as_secs()),
        "--local-path-dir".into(),
        workdir.join("local-path").display().to_string(),
        "--node-cidr-mask-size".into(),
        args.node_cidr_mask_size.to_string(),
    ];
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(&st.controlplane_args);
    let cp = node::spawn_detached(cmd, &cp_log).context("starting the control plane")?;
    st.controlplane = Some(cp);
    st.save()?;
    let client = wait_for_api(&st, &cp).await?;
    std::fs::copy(st.controlplane_kubeconfig(), st.kubeconfig())
        .with_context(|| format!("writing {}", st.kubeconfig().display()))?;
    st.join = Some(create_token(&client).await?);
    st.save()?;

    let join = st.join.clone().context("no join token")?;
    for i in 0..st.workers.len() {
        let w = st.workers[i].clone();
        net::create_worker(
            &w.netns,
            &w.host_link,
            &args.bridge,
            &subnet,
            w.address.parse().context("worker address")?,
        )
        .with_context(|| format!("the network of worker {}", w.name))?;
        st.workers[i].process = Some(node::start(&exe, &w, &join, &st.node_flags)?);
        st.save()?;
    }
    let names: Vec<String> = st.workers.iter().map(|w| w.name.clone()).collect();
    wait_ready(
        &client,
        &st,
        &names,
        None,
        Duration::from_secs(args.timeout_seconds),
    )
    .await?;
    for w in &st.workers {
        import_busybox(&exe, w)?;
    }

    println!("the lab is up: {} workers", st.workers.len());
    println!(
        "API server: https://{host}:{} (control plane log: {})",
        args.port,
        cp_log.display()
    );
    println!("kubeconfig: {}", st.kubeconfig().display());
    println!("{:<6}{:<16}{:<22}LOG", "NODE", "ADDRESS", "NETNS");
    for w in &st.workers {
        println!(
            "{:<6}{:<16}{:<22}{}",
            w.name,
            w.address,
            w.netns,
            w.log().display()
        );
    }
    println!();
    println!("  export KUBECONFIG={}", st.kubeconfig().display());
    println!("  kubectl get nodes -o wide");
    println!(
        "  skiff lab kill-node w1 --workdir {0}; skiff lab restart-node w1 --workdir {0}",
        workdir.display()
    );
    println!("  skiff lab down --workdir {}", workdir.display());
    Ok(())
}

/// Waits until the control plane answers with its kubeconfig; fails early if it exits.
async fn wait_for_api(st: &State, cp: &Pid) -> anyhow::Result<kube::Client> {
    let (kubeconfig, log) = (st.controlplane_kubeconfig(), st.controlplane_log());
    let (kubeconfig, log) = (kubeconfig.as_path(), log.as_path());
    // The port is tried first: a client refused a connection logs it as an error.
    let host = st
        .host_address
        .split('/')
        .next()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .context("the lab's host address")?;
    let addr = std::net::SocketAddr::new(host, st.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if !cp.alive() {
            bail!(
                "the control plane exited; {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        if kubeconfig.exists()
            && tokio::net::TcpStream::connect(addr).await.is_ok()
            && let Ok(c) = client(kubeconfig).await
            && c.apiserver_version().await.is_ok()
        {
            return Ok(c);
        }
        if Instant::now() >= deadline {
            bail!(
                "the control plane did not answer within 60s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bootstrap token for the workers, and where they join.
async fn create_token(client: &kube::Client) -> anyhow::Result<Join> {
    let token = crate::token::random_token();
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .context("token expiry")?;
    let secret = crate::token::token_secret(&token, Some(expires), Some("skiff lab workers"))?;
    kube::Api::<Secret>::namespaced(client.clone(), crate::token::NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the workers' bootstrap token")?;
    let (server, ca_cert_hash) = crate::token::join_target(client).await?;
    Ok(Join {
        server,
        token,
        ca_cert_hash,
    })
}

/// Ready, as reported at or after `since` (a Ready condition from before a restart says
/// nothing about the restarted node). Times are whole seconds on the wire.
fn node_ready(n: &Node, since: Option<jiff::Timestamp>) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && since.is_none_or(|t| {
                        c.last_heartbeat_time
                            .as_ref()
                            .is_some_and(|h| h.0.as_second() >= t.as_second())
                    })
            })
        })
}

/// Waits until the named nodes are Ready with a pod range; fails early when a worker's
/// process is gone.
async fn wait_ready(
    client: &kube::Client,
    st: &State,
    names: &[String],
    since: Option<jiff::Timestamp>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for name in names {
            let w = st.worker(name)?;
            if !w.process.is_some_and(|p| p.alive()) {
                bail!(
                    "worker {name} exited; {}:\n{}",
                    w.log().display(),
                    tail(&w.log(), 20)
                );
            }
            let ready = match nodes.get_opt(name).await {
                Ok(Some(n)) => {
                    node_ready(&n, since)
                        && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
                }
                _ => false,
            };
            if !ready {
                waiting.push(name.as_str());
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "not Ready within {timeout:?}: {} (logs: {}/<node>/node.log)",
                waiting.join(", "),
                st.workdir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The busybox image, into the worker's containerd (its socket is a file under the
/// worker's directory; the command runs in the worker's namespace all the same).
fn import_busybox(exe: &Path, w: &Worker) -> anyhow::Result<()> {
    let out = net::in_netns(&w.netns, exe)
        .args(["image", "busybox", "--data-dir"])
        .arg(&w.dir)
        .output()
        .context("running skiff image busybox")?;
    if !out.status.success() {
        bail!(
            "importing busybox into {}: {}",
            w.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn down(workdir: &Path) -> anyhow::Result<()> {
    let Some(st) = State::load(workdir)? else {
        println!("no lab in {}", workdir.display());
        return Ok(());
    };
    let exe = exe()?;
    let mut problems = Vec::new();
    futures::future::join_all(
        st.workers
            .iter()
            .map(|w| node::stop(w, Duration::from_secs(20))),
    )
    .await;
    for w in &st.workers {
        if let Err(e) = node::cleanup(&exe, w) {
            problems.push(format!("{e:#}"));
        }
        net::delete_worker(&w.netns, &w.host_link);
        remove_cgroups(&w.cgroup_root);
    }
    if let Some(cp) = st.controlplane {
        cp.stop(Duration::from_secs(10)).await;
    }
    net::delete_bridge(&st.bridge);
    for w in &st.workers {
        if net::netns_exists(&w.netns) {
            problems.push(format!("namespace {} is still there", w.netns));
        }
        if net::link_exists(&w.host_link) {
            problems.push(format!("link {} is still there", w.host_link));
        }
    }
    if net::link_exists(&st.bridge) {
        problems.push(format!("bridge {} is still there", st.bridge));
    }
    if !problems.is_empty() {
        // The state stays, so `lab down` can try again.
        bail!(
            "the lab in {} is not entirely gone: {}",
            workdir.display(),
            problems.join("; ")
        );
    }
    if let Err(e) = std::fs::remove_dir_all(workdir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        bail!("removing {}: {e}", workdir.display());
    }
    println!("the lab in {} is down", workdir.display());
    Ok(())
}

/// Empty cgroups left under a worker's cgroup root in every hierarchy, deepest first
/// (the agent's cleanup removes them; this catches a cleanup that failed half-way).
fn remove_cgroups(root: &str) {
    let Ok(mounts) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let rel = root.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    for m in mounts.flatten() {
        let top = m.path().join(rel);
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
    // On a cgroup2-only host the tree is directly under /sys/fs/cgroup, done above.
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

async fn kill_node(workdir: &Path, name: &str) -> anyhow::Result<()> {
    let st = State::load(workdir)?.with_context(|| format!("no lab in {}", workdir.display()))?;
    let w = st.worker(name)?;
    node::kill(w).await;
    println!("worker {name} killed, with its containers");
    Ok(())
}

async fn restart_node(workdir: &Path, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let mut st =
        State::load(workdir)?.with_context(|| format!("no lab in {}", workdir.display()))?;
    let w = st.worker(name)?.clone();
    if w.process.is_some_and(|p| p.alive()) {
        bail!("worker {name} is running: `skiff lab kill-node {name}` first");
    }
    let join = st
        .join
        .clone()
        .context("the lab has no join token (its `up` failed early)")?;
    if !net::netns_exists(&w.netns) {
        bail!("worker {name}'s namespace {} is gone", w.netns);
    }
    let started = jiff::Timestamp::now();
    let pid = node::start(&exe()?, &w, &join, &st.node_flags)?;
    st.worker_mut(name)?.process = Some(pid);
    st.save()?;
    let client = client(&st.kubeconfig()).await?;
    wait_ready(&client, &st, &[name.to_string()], Some(started), timeout).await?;
    println!("worker {name} is back and Ready");
    Ok(())
}

async fn restart_controlplane(workdir: &Path, kill: bool) -> anyhow::Result<()> {
    let mut st =
        State::load(workdir)?.with_context(|| format!("no lab in {}", workdir.display()))?;
    if st.controlplane_args.is_empty() {
        bail!("the lab's state does not say how its control plane was started");
    }
    if let Some(cp) = st.controlplane {
        if kill {
            cp.kill().await;
        } else {
            cp.stop(Duration::from_secs(20)).await;
        }
        if cp.alive() {
            bail!("the control plane (PID {}) did not stop", cp.pid);
        }
    }
    let mut cmd = std::process::Command::new(exe()?);
    cmd.args(&st.controlplane_args);
    let log = st.controlplane_log();
    let cp = node::spawn_detached(cmd, &log).context("starting the control plane")?;
    st.controlplane = Some(cp);
    st.save()?;
    wait_for_api(&st, &cp).await?;
    println!(
        "the control plane is back (PID {}; log: {})",
        cp.pid,
        log.display()
    );
    Ok(())
}

/// The control plane of a lab, bound to the host's lab address only.
async fn controlplane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    skiff_controlplane::tune_allocator();
    let mut cfg = skiff_controlplane::Config::for_dir(&args.data_dir);
    cfg.bind_address = args.bind_address;
    cfg.secure_port = args.port;
    cfg.node_monitor_grace_period =
        skiff_controlplane::config::parse_duration(&args.node_monitor_grace_period)
            .map_err(|e| anyhow::anyhow!("--node-monitor-grace-period: {e}"))?;
    cfg.local_path_dir = args.local_path_dir;
    cfg.node_cidr_mask_size = args.node_cidr_mask_size;
    let running = skiff_controlplane::start(cfg)
        .await
        .context("starting the control plane")?;
    println!(
        "ready: https://{} kubeconfig: {}",
        running.address,
        running.kubeconfig.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    running.shutdown().await;
    Ok(())
}
