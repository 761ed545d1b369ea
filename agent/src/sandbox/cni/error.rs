use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network configuration (*.conflist, *.conf, *.json) in {}", dir.display())]
    NoConfig { dir: PathBuf },
    #[error("invalid CNI configuration {}: {reason}", path.display())]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("CNI plugin {plugin:?} of network {network} not found in {dirs:?}")]
    PluginNotFound {
        network: String,
        plugin: String,
        dirs: Vec<PathBuf>,
    },
    #[error("invalid CNI {what} {value:?}: {reason}")]
    InvalidRuntimeConf {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("CNI plugin {plugin} ({command}): failed to run {}: {source}", binary.display())]
    Spawn {
        plugin: String,
        command: &'static str,
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("CNI plugin {plugin} ({command}) did not finish within {timeout:?}; killed")]
    Timeout {
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("CNI plugin {plugin} failed ({command}): {msg}{} (code {code})", details_suffix(.details))]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} failed ({command}) with {status} and no CNI error: {output}")]
    Crashed {
        plugin: String,
        command: &'static str,
        status: String,
        output: String,
    },
    #[error("CNI plugin {plugin} ({command}) printed an invalid result: {reason}")]
    BadResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    #[error("network {network} (cniVersion {version}) does not support {command}")]
    Unsupported {
        network: String,
        version: String,
        command: &'static str,
    },
    #[error("no cached CNI result for {container_id}/{ifname} on network {network}")]
    NotCached {
        network: String,
        container_id: String,
        ifname: String,
    },
    #[error("{}", join(.0))]
    Multiple(Vec<CniError>),
}

impl CniError {
    /// The CNI error code, when the plugin reported one.
    pub fn plugin_code(&self) -> Option<u32> {
        match self {
            CniError::Plugin { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// One error from many: `None` for none, the error itself for one.
    pub(crate) fn collect(mut errors: Vec<CniError>) -> Option<CniError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(CniError::Multiple(errors)),
        }
    }
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(": {details}")
    }
}

fn join(errors: &[CniError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
