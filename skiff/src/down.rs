//! `skiff down`: removes everything `skiff up` made on this machine — pods and their
//! containers, containerd, sandboxes, volumes, cgroups, the pod network's bridge,
//! firewall table, VXLAN device and routes, and the state directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::bail;
use skiff_agent::daemon;

use crate::node::NodeLayout;
use crate::up::{agent_config, proxy_options};

pub async fn run(data_dir: PathBuf, layout: NodeLayout) -> anyhow::Result<()> {
    let mut cfg = agent_config(&data_dir);
    layout.or_recorded(&data_dir)?.apply(&mut cfg);
    let mut left = daemon::down(&cfg).await;
    if let Err(e) = skiff_proxy::daemon::cleanup(&proxy_options(&data_dir, &cfg)).await {
        left.0.push(format!("the service proxy's rules: {e:#}"));
    }
    // The default network's bridge and firewall table (see `daemon::default_conflist`).
    let quiet = |cmd: &str, args: &[&str]| {
        let _ = Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet("ip", &["link", "del", daemon::DEFAULT_BRIDGE]);
    for family in ["inet", "bridge"] {
        quiet(
            "nft",
            &["delete", "table", family, daemon::DEFAULT_FIREWALL_TABLE],
        );
    }
    if let Err(e) = std::fs::remove_dir_all(&data_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        bail!("removing {}: {e}", data_dir.display());
    }
    if !left.0.is_empty() {
        bail!("could not remove: {}", left.0.join("; "));
    }
    println!(
        "skiff is down: {} and everything it held are gone",
        data_dir.display()
    );
    Ok(())
}
