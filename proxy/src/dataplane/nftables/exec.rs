//! Running `nft -f -`: one process per transaction, the ruleset on stdin.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::dataplane::DataplaneError;

fn failed(message: String) -> DataplaneError {
    DataplaneError::Program {
        backend: "nftables",
        message,
    }
}

/// Runs `command -f -` with `ruleset` on stdin; nft applies the whole input atomically or not
/// at all.
pub async fn run_nft(command: &[String], ruleset: &str) -> Result<(), DataplaneError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| failed("empty nft command".to_string()))?;
    let mut child = Command::new(program)
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("nft has no stdin".to_string()))?;
    // Write and wait concurrently: nft may report an error and exit before reading it all.
    let write = async move {
        let result = stdin.write_all(ruleset.as_bytes()).await;
        drop(stdin);
        result
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(|e| failed(format!("waiting for {program}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // nft echoes the failing lines; the first few are what a reader needs.
        let head: Vec<&str> = stderr.lines().take(12).collect();
        return Err(failed(format!(
            "nft -f failed ({}): {}",
            output.status,
            head.join("\n")
        )));
    }
    written.map_err(|e| failed(format!("writing the ruleset to nft: {e}")))?;
    Ok(())
}
