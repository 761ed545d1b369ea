//! `skiff-controlplane`: serve the Kubernetes API until Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use skiff_controlplane::Config;

// mimalloc's per-thread free lists avoid the arena-lock contention and the retained
// fragmentation glibc malloc shows under many small JSON allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = Config::parse();
    skiff_controlplane::tune_allocator();
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
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
