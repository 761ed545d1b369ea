//! `skiff up`: the one-node cluster. Today that is the control plane on the embedded store.

use std::path::PathBuf;

use anyhow::Context;
use skiff_controlplane::Config;

pub async fn run(data_dir: PathBuf, port: u16) -> anyhow::Result<()> {
    skiff_controlplane::tune_allocator();
    let mut cfg = Config::for_dir(data_dir.join("controlplane"));
    cfg.secure_port = port;
    let running = skiff_controlplane::start(cfg)
        .await
        .context("starting the control plane")?;
    // Keep the kubeconfig where the README says it is.
    let kubeconfig = data_dir.join("admin.kubeconfig");
    std::fs::copy(&running.kubeconfig, &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!("skiff is up: API server at https://{}", running.address);
    println!("kubeconfig: {}", kubeconfig.display());
    println!();
    println!("Try:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    println!("  kubectl create deployment web --image=busybox:1.36 -- httpd -f -p 80");
    println!();
    println!("Ctrl-C stops the cluster; `skiff up` again brings it back as it was.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    println!("stopping skiff");
    running.shutdown().await;
    Ok(())
}
