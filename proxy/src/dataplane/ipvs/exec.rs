//! Running the companion tools (`ip`, `ipset`, `iptables-restore`, `sysctl`).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::dataplane::DataplaneError;

use super::netlink::failed;

/// What a finished command said.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub status: String,
}

/// Runs `command` (a program and its prefix arguments) with `args`, writing `input` to its
/// stdin. Fails only when it cannot be run; the caller judges the exit status.
pub async fn run(
    command: &[String],
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, DataplaneError> {
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

/// Runs the command and fails with its first lines of stderr when it fails.
pub async fn check(
    command: &[String],
    args: &[&str],
    input: Option<&str>,
) -> Result<String, DataplaneError> {
    let out = run(command, args, input).await?;
    if !out.success {
        let head: Vec<&str> = out.stderr.lines().take(8).collect();
        return Err(failed(format!(
            "{} {} failed ({}): {}",
            command.join(" "),
            args.join(" "),
            out.status,
            head.join("\n")
        )));
    }
    Ok(out.stdout)
}
