//! Running the companion tools (`ip`, `ipset`, `iptables-restore`, `sysctl`).

use crate::dataplane::{DataplaneError, process};

use super::netlink::failed;

pub use crate::dataplane::process::Output;

/// Runs `command` (a program and its prefix arguments) with `args`, writing `input` to its
/// stdin. Fails only when it cannot be run; the caller judges the exit status.
pub async fn run(
    command: &[String],
    args: &[&str],
    input: Option<&str>,
) -> Result<Output, DataplaneError> {
    process::run("ipvs", command, args, input).await
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
