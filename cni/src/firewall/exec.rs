//! Running nft / iptables-restore, optionally inside another network namespace.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::FirewallError;

/// Runtimes often exec plugins with a PATH that lacks the sbin directories.
const FALLBACK_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"];

pub(super) fn find_tool(program: &'static str) -> Result<PathBuf, FirewallError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or(FirewallError::ToolNotFound { program })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where the commands run: this process's network namespace, or the one at `netns`.
#[derive(Debug, Clone, Default)]
pub(super) struct Exec {
    pub netns: Option<PathBuf>,
}

pub(super) struct Output {
    pub stdout: String,
}

impl Exec {
    /// Runs `program args…` with `stdin`, returning stdout; a non-zero exit is an error
    /// carrying stderr.
    pub(super) fn run(
        &self,
        program: &'static str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, FirewallError> {
        let command_line = || format!("{program} {}", args.join(" "));
        let tool = find_tool(program)?;
        let mut cmd = Command::new(&tool);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Opened here, not in the child, so a bad path is reported with context; the
        // descriptor must outlive spawn().
        let netns = match &self.netns {
            Some(path) => Some(File::open(path).map_err(|source| FirewallError::Netns {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        if let Some(ns) = &netns {
            let fd = ns.as_raw_fd();
            // SAFETY: setns is async-signal-safe and touches no memory of the parent;
            // the fd stays open in the child until exec (it is closed on exec).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| FirewallError::Spawn {
            command: command_line(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error means the tool exited early; its status and stderr say why.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| FirewallError::Spawn {
                command: command_line(),
                source,
            })?;
        drop(netns);
        tracing::debug!(
            command = %command_line(),
            elapsed_us = started.elapsed().as_micros() as u64,
            status = %out.status,
            "firewall exec"
        );
        if !out.status.success() {
            return Err(FirewallError::Command {
                command: command_line(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }
}
