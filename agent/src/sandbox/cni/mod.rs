//! A CNI runtime in the manner of libcni: loads the node's network configuration,
//! runs its plugins through the CNI protocol (exec, `CNI_*` environment, JSON on
//! stdin and stdout) for ADD, DEL, CHECK, STATUS and GC, and caches results so
//! teardown works across agent restarts. Any CNI plugin works, not only skiff's.

mod cache;
mod config;
mod error;
mod exec;
mod network;
mod runtime_conf;

pub use cache::{CachedAttachment, ResultCache};
pub use config::{CniConfig, PluginConf};
pub use error::CniError;
pub use network::{Cni, DEFAULT_EXEC_TIMEOUT};
pub use runtime_conf::{K8sArgs, RuntimeConf};
pub use skiff_cni::spec::{Attachment, CniResult};
