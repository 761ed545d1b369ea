//! Running `iptables-restore` and `iptables-save`: one process per transaction.

use std::process::Stdio;

use tokio::process::Command;

use crate::dataplane::{DataplaneError, process};

/// Seconds `iptables-restore` waits for the xtables lock another program may hold.
const LOCK_WAIT_SECONDS: &str = "5";

fn failed(message: String) -> DataplaneError {
    DataplaneError::Program {
        backend: "iptables",
        message,
    }
}

/// Runs `command -w 5 --noflush` with `rules` on stdin. Each table's section is committed
/// atomically; chains and rules the input does not name are left alone.
pub async fn restore(command: &[String], rules: &str) -> Result<(), DataplaneError> {
    let out = process::run(
        "iptables",
        command,
        &["-w", LOCK_WAIT_SECONDS, "--noflush"],
        Some(rules),
    )
    .await?;
    if !out.success {
        let head = out.stderr_head();
        // iptables-restore names the failing line by number; show it too.
        let line = head
            .lines()
            .find_map(|l| l.split("line: ").nth(1))
            .and_then(|n| {
                n.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse::<usize>()
                    .ok()
            })
            .and_then(|n| rules.lines().nth(n.saturating_sub(1)))
            .map(|l| format!(" (line: {l})"))
            .unwrap_or_default();
        return Err(failed(format!(
            "iptables-restore failed ({}): {head}{line}",
            out.status
        )));
    }
    Ok(())
}

/// `command -t table`'s output: the table's chains and rules in iptables-save format.
pub async fn save(command: &[String], table: &str) -> Result<String, DataplaneError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| failed("empty iptables-save command".to_string()))?;
    let output = Command::new(program)
        .args(args)
        .args(["-t", table])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "iptables-save -t {table} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout).map_err(|e| {
        failed(format!(
            "iptables-save -t {table}: output is not UTF-8: {e}"
        ))
    })
}
