//! Running one plugin the way the CNI spec says: `CNI_*` variables in the
//! environment, the configuration on stdin, a result or an error object on stdout.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_cni::spec::Command;
use tokio::io::AsyncWriteExt;

use super::CniError;

/// How often a plugin that is "text file busy" is retried: a binary being written
/// (installed, or held open by a process forked meanwhile) becomes runnable shortly.
const BUSY_RETRIES: u32 = 5;
const BUSY_WAIT: Duration = Duration::from_millis(50);

pub(crate) struct Invocation<'a> {
    pub command: Command,
    pub plugin: &'a str,
    pub binary: &'a Path,
    /// `CNI_*` variables beyond `CNI_COMMAND`.
    pub vars: &'a [(&'static str, String)],
    pub stdin: &'a [u8],
    pub timeout: Duration,
}

/// Runs the plugin and returns its stdout when it exited 0.
pub(crate) async fn exec(inv: Invocation<'_>) -> Result<Vec<u8>, CniError> {
    let command = inv.command.as_str();
    let started = Instant::now();
    let mut child = spawn(&inv).await?;
    let mut stdin = child.stdin.take();
    let input = inv.stdin;
    let run = async {
        let write = async {
            if let Some(pipe) = stdin.as_mut() {
                // A plugin may exit without reading its input (VERSION, an early
                // error): a broken pipe is then not the failure to report.
                let _ = pipe.write_all(input).await;
            }
            drop(stdin);
        };
        let (_, out) = tokio::join!(write, child.wait_with_output());
        out
    };
    let out = match tokio::time::timeout(inv.timeout, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(source)) => {
            return Err(CniError::Spawn {
                plugin: inv.plugin.into(),
                command,
                binary: inv.binary.to_path_buf(),
                source,
            });
        }
        // The child is killed as its handle is dropped with the future.
        Err(_) => {
            return Err(CniError::Timeout {
                plugin: inv.plugin.into(),
                command,
                timeout: inv.timeout,
            });
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    tracing::debug!(
        plugin = inv.plugin,
        command,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        status = %out.status,
        stderr = %stderr.trim(),
        "CNI plugin ran"
    );
    if out.status.success() {
        return Ok(out.stdout);
    }
    #[derive(Deserialize)]
    struct Wire {
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if let Ok(w) = serde_json::from_slice::<Wire>(&out.stdout) {
        return Err(CniError::Plugin {
            plugin: inv.plugin.into(),
            command,
            code: w.code,
            msg: w.msg,
            details: w.details,
        });
    }
    let output = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        stderr.trim().to_string()
    } else {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    Err(CniError::Crashed {
        plugin: inv.plugin.into(),
        command,
        status: out.status.to_string(),
        output,
    })
}

async fn spawn(inv: &Invocation<'_>) -> Result<tokio::process::Child, CniError> {
    let mut attempt = 0;
    loop {
        let mut cmd = tokio::process::Command::new(inv.binary);
        // The agent's own environment (PATH for the plugin's helpers) without any
        // CNI_* of its own, which would leak into commands that do not set them.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CNI_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("CNI_COMMAND", inv.command.as_str())
            .envs(inv.vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(BUSY_WAIT).await;
            }
            Err(source) => {
                return Err(CniError::Spawn {
                    plugin: inv.plugin.into(),
                    command: inv.command.as_str(),
                    binary: inv.binary.to_path_buf(),
                    source,
                });
            }
        }
    }
}
