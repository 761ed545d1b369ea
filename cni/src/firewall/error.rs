use std::io;
use std::path::PathBuf;

use super::rules::AttachmentKey;

/// Everything that can go wrong programming the pod firewall.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("invalid attachment key: {0}")]
    InvalidKey(String),

    #[error("invalid firewall rules: {0}")]
    InvalidRules(String),

    #[error("the {backend} backend cannot {what}: {why}")]
    Unsupported {
        backend: &'static str,
        what: &'static str,
        why: &'static str,
    },

    #[error("invalid table prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        prefix: String,
        reason: &'static str,
    },

    #[error("{program} not found in PATH or the usual sbin directories")]
    ToolNotFound { program: &'static str },

    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("unexpected output from {command}: {detail}")]
    Output { command: String, detail: String },

    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("firewall state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("firewall state {path} is corrupt: {source}")]
    StateFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("hostPort {mapping} is already mapped{}", owner.as_ref().map(|o| format!(" by {o}")).unwrap_or_default())]
    PortConflict {
        /// e.g. `tcp/8080 on 0.0.0.0`
        mapping: String,
        /// The attachment holding it, when the state directory knows.
        owner: Option<AttachmentKey>,
    },

    #[error("{key}: no firewall state recorded")]
    NotFound { key: AttachmentKey },

    #[error("{key}: {what} is missing from the kernel")]
    Missing { key: AttachmentKey, what: String },

    #[error("no firewall backend works here: nftables: {nftables}; iptables: {iptables}")]
    NoBackend {
        nftables: Box<FirewallError>,
        iptables: Box<FirewallError>,
    },

    /// Teardown keeps going past failures and reports them together.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<FirewallError>),
}

impl FirewallError {
    /// Folds the failures of a teardown that kept going into one result.
    pub(super) fn collect(mut errors: Vec<FirewallError>) -> Result<(), FirewallError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(FirewallError::Several(errors)),
        }
    }
}
