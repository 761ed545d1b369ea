//! The kernel-facing backends: one [`Dataplane`] trait, chosen once at start-up.

pub mod nftables;

use std::collections::BTreeSet;

use crate::model::{ProxyState, ServicePortName};

/// Which backend programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Nftables,
    Iptables,
    Ipvs,
}

/// Why programming the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The kernel or host cannot run this mode (e.g. no IPVS module).
    #[error("{mode} mode is not available on this host: {reason}")]
    Unavailable { mode: &'static str, reason: String },
    #[error("{backend}: {message}")]
    Program {
        backend: &'static str,
        message: String,
    },
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Rules (or virtual servers and real servers) programmed in total after the sync.
    pub rules: usize,
    /// Whether the whole state was written, or only what changed.
    pub full: bool,
}

/// A backend. `sync` makes the kernel match `state`; `changed` names the service ports that
/// differ from the previous sync (all of them on the first), so a backend rewrites only
/// those. Implementations keep their own record of what they programmed.
#[async_trait::async_trait]
pub trait Dataplane: Send {
    fn name(&self) -> &'static str;

    async fn sync(
        &mut self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<SyncStats, DataplaneError>;

    /// Removes everything this backend programmed.
    async fn cleanup(&mut self) -> Result<(), DataplaneError>;
}
