//! The kernel-facing backends: one [`Dataplane`] trait, chosen once at start-up.

pub mod cidr;
pub mod conntrack;
pub mod endpoints;
#[cfg(test)]
mod fixtures;
pub mod iptables;
pub mod ipvs;
pub mod nftables;
pub mod process;

use std::collections::BTreeSet;

use crate::model::{ProxyState, ServicePortName};

/// Which backend programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Nftables,
    Iptables,
    Ipvs,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nftables => "nftables",
            Mode::Iptables => "iptables",
            Mode::Ipvs => "ipvs",
        }
    }

    /// Fails with [`DataplaneError::Unavailable`] when this host (or this build) cannot run
    /// the mode. `proc` is where procfs is mounted (normally `/proc`).
    pub fn check_available(self, proc: &std::path::Path) -> Result<(), DataplaneError> {
        let unavailable = |reason: &str| DataplaneError::Unavailable {
            mode: self.as_str(),
            reason: reason.to_string(),
        };
        match self {
            Mode::Nftables => Ok(()),
            Mode::Iptables => match std::process::Command::new("iptables-restore")
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(unavailable(&format!(
                    "iptables-restore --version failed ({}): {}; install iptables or use --mode nftables",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))),
                Err(e) => Err(unavailable(&format!(
                    "cannot run iptables-restore ({e}); install iptables or use --mode nftables"
                ))),
            },
            Mode::Ipvs if !proc.join("net/ip_vs").exists() => Err(unavailable(
                "the kernel has no IPVS (no net/ip_vs in procfs; load the ip_vs module or use --mode nftables)",
            )),
            Mode::Ipvs => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_is_unavailable_without_the_kernel_module() {
        let proc = std::env::temp_dir().join(format!("skiff-proxy-noproc-{}", std::process::id()));
        let err = Mode::Ipvs.check_available(&proc).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ipvs mode is not available on this host: the kernel has no IPVS"),
            "{err}"
        );
        assert!(Mode::Nftables.check_available(&proc).is_ok());
    }

    #[test]
    fn ipvs_is_available_when_procfs_shows_it() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("net")).unwrap();
        std::fs::write(
            proc.path().join("net/ip_vs"),
            "IP Virtual Server version 1.2.1\n",
        )
        .unwrap();
        Mode::Ipvs.check_available(proc.path()).unwrap();
    }

    #[test]
    fn iptables_is_available_where_iptables_restore_runs() {
        // The test hosts have iptables (scripts/install-deps.sh).
        assert!(
            Mode::Iptables
                .check_available(std::path::Path::new("/proc"))
                .is_ok()
        );
    }
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
