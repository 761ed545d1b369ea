//! Exec probes and hooks through the runtime.

use std::time::Duration;

use super::action::Attempt;
use super::gofmt::quote;
use super::{ProbeTarget, http::MAX_BODY};
use crate::runtime::{Error, ExecOutput};

/// How long past its own timeout the runtime may take to report an exec before we stop
/// waiting for it.
const RUNTIME_GRACE: Duration = Duration::from_secs(5);

/// What running a command came to.
pub(crate) enum Ran {
    Exited(ExecOutput),
    TimedOut,
    Failed(Error),
}

pub(crate) async fn run(target: &ProbeTarget, command: &[String], timeout: Duration) -> Ran {
    let exec = target
        .runtime
        .exec_sync(&target.container_id, command, timeout);
    match tokio::time::timeout(timeout + RUNTIME_GRACE, exec).await {
        Err(_) | Ok(Err(Error::Timeout { .. })) => Ran::TimedOut,
        Ok(Err(e)) => Ran::Failed(e),
        Ok(Ok(output)) => Ran::Exited(output),
    }
}

/// kubelet's message for a command that ran out of time: `command "sleep 10" timed out`.
pub(crate) fn timed_out(command: &[String]) -> String {
    format!("command {} timed out", quote(&command.join(" ")))
}

/// Standard output then standard error, as kubelet joins them, cut at 10 KiB.
pub(crate) fn combined(output: &ExecOutput) -> String {
    let mut all = output.stdout.clone();
    all.extend_from_slice(&output.stderr);
    all.truncate(MAX_BODY);
    String::from_utf8_lossy(&all).into_owned()
}

pub(crate) async fn probe(target: &ProbeTarget, command: &[String], timeout: Duration) -> Attempt {
    match run(target, command, timeout).await {
        Ran::Exited(output) if output.exit_code == 0 => Attempt::Success,
        Ran::Exited(output) => Attempt::Failure(combined(&output)),
        Ran::TimedOut => Attempt::Failure(timed_out(command)),
        Ran::Failed(e) => Attempt::Errored {
            state: "unknown",
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_stdout_then_stderr_cut_at_10k() {
        let out = ExecOutput {
            exit_code: 1,
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
        };
        assert_eq!(combined(&out), "out\nerr\n");
        let big = ExecOutput {
            exit_code: 1,
            stdout: vec![b'a'; 12 * 1024],
            stderr: b"lost".to_vec(),
        };
        assert_eq!(combined(&big).len(), 10 * 1024);
    }

    #[test]
    fn timeout_message() {
        let cmd = ["sleep", "10"].map(String::from);
        assert_eq!(timed_out(&cmd), r#"command "sleep 10" timed out"#);
    }
}
