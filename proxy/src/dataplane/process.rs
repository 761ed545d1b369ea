//! Running the tools the backends drive (`nft`, `iptables-restore`, `ipset`, `ip`, …): one
//! process per call, input on stdin.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::DataplaneError;

/// What a finished command said.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub status: String,
}

impl Output {
    /// The first lines of stderr: tools echo the failing input, and a dozen lines is what
    /// a reader needs.
    pub fn stderr_head(&self) -> String {
        self.stderr.lines().take(12).collect::<Vec<_>>().join("\n")
    }
}

/// Runs `command` (a program and its prefix arguments, e.g. `ip netns exec NS nft`) with
/// `args`, writing `input` to its stdin. Fails only when it cannot be run; the caller judges
/// the exit status. Errors name `backend`.
pub async fn run(
    backend: &'static str,
    command: &[String],
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, DataplaneError> {
    let failed = |message: String| DataplaneError::Program { backend, message };
    let (program, prefix) = command
        .split_first()
        .ok_or_else(|| failed("empty command".to_string()))?;
    let mut child = Command::new(program)
        .args(prefix)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    let stdin = child.stdin.take();
    // Write and wait concurrently: the tool may fail and exit before reading it all.
    let write = async move {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            let _ = stdin.write_all(input.as_bytes()).await;
        }
    };
    let ((), output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(|e| failed(format!("waiting for {program}: {e}")))?;
    Ok(Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status.to_string(),
    })
}
