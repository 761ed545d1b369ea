//! The node's health as the Ready condition reports it: containerd answering, and the CNI
//! network configured and answering STATUS. The network configuration is read again when its
//! directory changes, so a node whose network comes later (or changes) follows it, as kubelet
//! does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::node::Health;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::sandbox::cni::{Cni, CniConfig};

/// How often health is checked.
const PERIOD: Duration = Duration::from_secs(5);
/// A check that takes longer than this counts as a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the network configuration comes from.
#[derive(Debug, Clone)]
pub struct CniSource {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

impl CniSource {
    /// Loads the configuration (the first file in lexical order, as libcni picks it).
    pub fn load(&self) -> Result<Cni, String> {
        CniConfig::load(&self.conf_dir, &self.bin_dirs)
            .map(|c| Cni::new(c, &self.cache_dir))
            .map_err(|e| e.to_string())
    }

    /// What the directory holds: names, sizes and modification times.
    fn fingerprint(&self) -> Vec<(String, u64, Option<SystemTime>)> {
        let mut out: Vec<_> = std::fs::read_dir(&self.conf_dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let m = e.metadata().ok()?;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            m.len(),
                            m.modified().ok(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// One health check. `config_error` is why the network configuration could not be loaded.
pub async fn check(runtime: &dyn Runtime, sandbox: &Sandbox, config_error: Option<&str>) -> Health {
    let runtime_ok = match tokio::time::timeout(TIMEOUT, runtime.version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("containerd did not answer within {TIMEOUT:?}")),
    };
    let network = match (sandbox.cni(), config_error) {
        (_, Some(e)) => Err(e.to_string()),
        (None, None) => Err("cni config uninitialized".to_string()),
        (Some(cni), None) => match tokio::time::timeout(TIMEOUT, cni.status()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("CNI STATUS did not answer within {TIMEOUT:?}")),
        },
    };
    Health {
        runtime: runtime_ok,
        network,
        memory_pressure: false,
        disk_pressure: false,
        pid_pressure: false,
    }
}

/// Checks health periodically, reloads the network configuration when it changed, and
/// publishes changes.
pub async fn watch(
    runtime: Arc<dyn Runtime>,
    sandbox: Arc<Sandbox>,
    source: CniSource,
    tx: watch::Sender<Health>,
) {
    let mut tick = tokio::time::interval(PERIOD);
    let mut seen = source.fingerprint();
    let mut config_error: Option<String> = None;
    loop {
        tick.tick().await;
        let now = source.fingerprint();
        if now != seen {
            seen = now;
            match source.load() {
                Ok(cni) => {
                    tracing::info!(network = %cni.config().name(), "network configuration changed; loaded");
                    sandbox.set_cni(Some(cni));
                    config_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "network configuration changed and does not load");
                    config_error = Some(e);
                }
            }
        }
        let h = check(runtime.as_ref(), &sandbox, config_error.as_deref()).await;
        tx.send_if_modified(|old| {
            if *old == h {
                return false;
            }
            if let Err(e) = &h.runtime {
                tracing::warn!(error = %e, "container runtime not ready");
            }
            if let Err(e) = &h.network {
                tracing::warn!(error = %e, "network not ready");
            }
            *old = h;
            true
        });
    }
}
