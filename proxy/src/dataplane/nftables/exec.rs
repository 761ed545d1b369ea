//! Running `nft -f -`: one process per transaction, the ruleset on stdin.

use crate::dataplane::{DataplaneError, process};

/// Runs `command -f -` with `ruleset` on stdin; nft applies the whole input atomically or not
/// at all.
pub async fn run_nft(command: &[String], ruleset: &str) -> Result<(), DataplaneError> {
    let out = process::run("nftables", command, &["-f", "-"], Some(ruleset)).await?;
    if !out.success {
        return Err(DataplaneError::Program {
            backend: "nftables",
            message: format!("nft -f failed ({}): {}", out.status, out.stderr_head()),
        });
    }
    Ok(())
}
