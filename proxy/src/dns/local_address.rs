//! The DNS address held on a device of its own (a dummy, or a bridge without ports where
//! the kernel has no dummy devices), so the kube-dns Service's IP is answered on
//! every node by that node's own proxy (NodeLocal DNSCache's model): no DNAT, no hop to
//! another node, and DNS keeps working on a node cut off from the others.

use std::net::IpAddr;
use std::process::Output;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum LocalAddressError {
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("reading the output of {command}: {message}")]
    Parse { command: String, message: String },
}

async fn ip(args: &[&str]) -> Result<Output, LocalAddressError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|source| LocalAddressError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LocalAddressError::Failed {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Whether some interface of this network namespace holds `addr`.
async fn is_local(addr: IpAddr) -> Result<bool, LocalAddressError> {
    let out = ip(&["-j", "addr", "show"]).await?;
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| LocalAddressError::Parse {
            command: "ip -j addr show".into(),
            message: e.to_string(),
        })?;
    let wanted = addr.to_string();
    Ok(links.as_array().into_iter().flatten().any(|link| {
        link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|info| info["local"].as_str() == Some(wanted.as_str()))
    }))
}

async fn link_exists(link: &str) -> Result<bool, LocalAddressError> {
    match ip(&["link", "show", "dev", link]).await {
        Ok(_) => Ok(true),
        Err(LocalAddressError::Failed { stderr, .. }) if stderr.contains("does not exist") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Makes `addr` local: nothing to do when an interface already holds it; otherwise it is
/// added to the dummy device `link`, created if missing. Returns whether it added it.
pub async fn ensure(addr: IpAddr, link: &str) -> Result<bool, LocalAddressError> {
    if is_local(addr).await? {
        return Ok(false);
    }
    if !link_exists(link).await? {
        match ip(&["link", "add", link, "type", "dummy"]).await {
            Ok(_) => {}
            // A kernel built without dummy devices: a bridge with no ports is as inert,
            // and its addresses are just as local.
            Err(LocalAddressError::Failed { stderr, .. })
                if stderr.contains("Unknown device type") =>
            {
                ip(&["link", "add", link, "type", "bridge"]).await?;
            }
            Err(e) => return Err(e),
        }
    }
    let prefix = if addr.is_ipv4() { 32 } else { 128 };
    let cidr = format!("{addr}/{prefix}");
    // nodad: an IPv6 address would otherwise be unusable for a second or two.
    let mut args = vec!["addr", "replace", cidr.as_str(), "dev", link];
    if addr.is_ipv6() {
        args.push("nodad");
    }
    ip(&args).await?;
    ip(&["link", "set", link, "up"]).await?;
    Ok(true)
}

/// Removes the dummy device and its addresses; nothing if it is not there.
pub async fn remove(link: &str) -> Result<(), LocalAddressError> {
    if link_exists(link).await? {
        ip(&["link", "del", link]).await?;
    }
    Ok(())
}
