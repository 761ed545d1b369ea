//! The node's health as the Ready condition reports it: containerd answering, and the CNI
//! network configured and answering STATUS.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::node::Health;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;

/// How often health is checked.
const PERIOD: Duration = Duration::from_secs(5);
/// A check that takes longer than this counts as a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One health check.
pub async fn check(runtime: &dyn Runtime, sandbox: &Sandbox) -> Health {
    let runtime_ok = match tokio::time::timeout(TIMEOUT, runtime.version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("containerd did not answer within {TIMEOUT:?}")),
    };
    let network = match sandbox.cni() {
        None => Err("cni config uninitialized".to_string()),
        Some(cni) => match tokio::time::timeout(TIMEOUT, cni.status()).await {
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

/// Checks health periodically and publishes changes.
pub async fn watch(runtime: Arc<dyn Runtime>, sandbox: Arc<Sandbox>, tx: watch::Sender<Health>) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        let h = check(runtime.as_ref(), &sandbox).await;
        tx.send_if_modified(|old| {
            if *old == h {
                false
            } else {
                if let Err(e) = &h.runtime {
                    tracing::warn!(error = %e, "container runtime not ready");
                }
                if let Err(e) = &h.network {
                    tracing::warn!(error = %e, "network not ready");
                }
                *old = h;
                true
            }
        });
    }
}
