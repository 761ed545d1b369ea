//! The pod sandbox. skiff has no pause container: the agent makes each pod's
//! network, IPC and UTS namespaces itself and pins them with bind mounts, runs CNI on
//! the network namespace, and writes the pod's hosts, resolv.conf and hostname
//! files; every container of the pod joins the namespaces by path through its OCI
//! spec and gets the files bind-mounted.
//!
//! On disk, under the sandbox root, one directory per pod UID:
//! `sandbox.json` (written first, removed last), `ns/{net,ipc,uts}`,
//! `etc/{hosts,resolv.conf,hostname}`, and `shm/` (the pod's `/dev/shm`).

mod capabilities;
pub mod cni;
mod error;
pub mod files;
mod manager;
pub mod namespaces;
mod record;
mod shm;

pub use error::SandboxError;
pub use manager::{Sandbox, SandboxInfo, SandboxParams};
pub use namespaces::{HostNamespaces, NamespaceError, Namespaces};
pub use record::{RecoveredSandbox, SandboxRecord, recover};
