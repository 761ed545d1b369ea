use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::{CniResult, Command, Environment, Error, ErrorCode};

/// Finds a plugin binary named `plugin_type` in the `CNI_PATH` directories.
pub fn find_plugin(plugin_type: &str, path: &[String]) -> Result<PathBuf, Error> {
    if plugin_type.is_empty() || plugin_type.contains('/') {
        return Err(Error::config(format!(
            "invalid plugin type {plugin_type:?}"
        )));
    }
    path.iter()
        .map(|dir| Path::new(dir).join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::config(format!(
                "failed to find plugin {plugin_type:?} in path {path:?}"
            ))
        })
}

/// Runs another plugin (an IPAM plugin) as the spec's delegation protocol says: the
/// same configuration on stdin, the same environment, and `command` as `CNI_COMMAND`.
/// Returns the delegate's result for ADD, `None` otherwise.
pub fn delegate(
    plugin_type: &str,
    conf_bytes: &[u8],
    env: &Environment,
    command: Command,
) -> Result<Option<CniResult>, Error> {
    let binary = find_plugin(plugin_type, &env.path)?;
    let mut child = Process::new(&binary)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", env.args.to_env())
        .env("CNI_PATH", env.path.join(":"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::io(
                format!("failed to run delegate plugin {}", binary.display()),
                e,
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(conf_bytes)
            .map_err(|e| Error::io(format!("failed to write configuration to {plugin_type}"), e))?;
    }
    let out = child.wait_with_output().map_err(|e| {
        Error::io(
            format!("failed to wait for delegate plugin {plugin_type}"),
            e,
        )
    })?;
    if !out.status.success() {
        return Err(delegate_error(plugin_type, &out.stdout, &out.stderr));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::new(
            ErrorCode::Decode,
            format!("failed to decode the result of delegate plugin {plugin_type}"),
        )
        .with_details(e.to_string())
    })?;
    CniResult::from_value(value).map(Some).map_err(|e| {
        Error::new(
            ErrorCode::Decode,
            format!("failed to decode the result of delegate plugin {plugin_type}"),
        )
        .with_details(e.to_string())
    })
}

/// A delegate's error is passed up with its own code and message.
fn delegate_error(plugin_type: &str, stdout: &[u8], stderr: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct Wire {
        code: u32,
        msg: String,
        #[serde(default)]
        details: String,
    }
    if let Ok(w) = serde_json::from_slice::<Wire>(stdout) {
        let code = match w.code {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::NotAvailableDegraded,
            _ => ErrorCode::Internal,
        };
        return Error::new(code, w.msg).with_details(w.details);
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    Error::new(
        ErrorCode::Internal,
        format!("delegate plugin {plugin_type} failed"),
    )
    .with_details(text.trim().to_string())
}
