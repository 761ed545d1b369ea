//! Cluster DNS on loopback: queries/s and latency for Service names answered from memory
//! (what `skiff bench dns` reports). `cargo run --release -p skiff-proxy --example dns_bench
//! -- [services] [clients] [seconds]`.

use std::time::Duration;

use skiff_proxy::dns::bench::{BenchConfig, measure};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut config = BenchConfig::default();
    if let Some(n) = args.next() {
        config.services = n.parse()?;
    }
    if let Some(n) = args.next() {
        config.clients = n.parse()?;
    }
    if let Some(n) = args.next() {
        config.duration = Duration::from_secs_f64(n.parse()?);
    }
    println!("{}", measure(config).await?);
    Ok(())
}
