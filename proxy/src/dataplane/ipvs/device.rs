//! The dummy device the service addresses are bound to, so the kernel takes packets to them
//! as local and IPVS (on the input path) sees them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::dataplane::DataplaneError;

use super::exec;
use super::netlink::failed;

/// Creates the device when it is missing. It stays down, as kube-proxy's does: its
/// addresses are local all the same, and it never answers ARP.
pub async fn ensure(ip: &[String], device: &str, kind: &str) -> Result<(), DataplaneError> {
    if exec::run(ip, &["link", "show", "dev", device], None)
        .await?
        .success
    {
        return Ok(());
    }
    exec::check(ip, &["link", "add", device, "type", kind], None).await?;
    Ok(())
}

/// The IPv4 addresses on the device (none when it does not exist).
pub async fn addresses(ip: &[String], device: &str) -> Result<Vec<Ipv4Addr>, DataplaneError> {
    let out = exec::run(ip, &["-j", "-4", "addr", "show", "dev", device], None).await?;
    if !out.success {
        return Ok(Vec::new());
    }
    parse_addresses(&out.stdout)
}

/// The addresses in `ip -j addr show` output.
pub fn parse_addresses(json: &str) -> Result<Vec<Ipv4Addr>, DataplaneError> {
    let links: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| failed(format!("parsing ip -j addr output: {e}")))?;
    let mut out = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = info["local"].as_str().and_then(|s| s.parse().ok()) {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

/// `ip -batch` lines that add and delete addresses.
pub fn batch(device: &str, add: &[Ipv4Addr], del: &[Ipv4Addr]) -> String {
    let mut out = String::new();
    for a in del {
        let _ = writeln!(out, "address del {a}/32 dev {device}");
    }
    for a in add {
        let _ = writeln!(out, "address add {a}/32 dev {device}");
    }
    out
}

/// Adds and deletes addresses in one `ip` process. An address already there (or already
/// gone) is not an error.
pub async fn change(
    ip: &[String],
    device: &str,
    add: &[Ipv4Addr],
    del: &[Ipv4Addr],
) -> Result<(), DataplaneError> {
    if add.is_empty() && del.is_empty() {
        return Ok(());
    }
    let out = exec::run(
        ip,
        &["-force", "-batch", "-"],
        Some(&batch(device, add, del)),
    )
    .await?;
    if out.success {
        return Ok(());
    }
    let real = real_errors(&out.stderr);
    if real.is_empty() {
        return Ok(());
    }
    Err(failed(format!(
        "changing the addresses of {device}: {}",
        real.join("\n")
    )))
}

/// The lines of `ip -force -batch` errors other than "already there" and "already gone"
/// (worded differently by iproute2 versions).
fn real_errors(stderr: &str) -> Vec<&str> {
    const BENIGN: [&str; 4] = [
        "File exists",
        "Address already assigned",
        "Cannot assign requested address",
        "Address not found",
    ];
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Command failed"))
        .filter(|l| !BENIGN.iter().any(|b| l.contains(b)))
        .take(8)
        .collect()
}

/// Deletes the device and with it every address on it.
pub async fn delete(ip: &[String], device: &str) -> Result<(), DataplaneError> {
    let out = exec::run(ip, &["link", "del", device], None).await?;
    if out.success || out.stderr.contains("Cannot find device") {
        return Ok(());
    }
    Err(failed(format!("deleting {device}: {}", out.stderr.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_batch_lines() {
        let json = r#"[{"ifindex":9,"ifname":"skiff-ipvs0","addr_info":[
            {"family":"inet","local":"10.96.0.1","prefixlen":32},
            {"family":"inet","local":"10.96.0.10","prefixlen":32}]}]"#;
        assert_eq!(
            parse_addresses(json).unwrap(),
            vec![
                "10.96.0.1".parse::<Ipv4Addr>().unwrap(),
                "10.96.0.10".parse().unwrap()
            ]
        );
        assert_eq!(
            batch(
                "skiff-ipvs0",
                &["10.96.0.2".parse().unwrap()],
                &["10.96.0.1".parse().unwrap()]
            ),
            "address del 10.96.0.1/32 dev skiff-ipvs0\naddress add 10.96.0.2/32 dev skiff-ipvs0\n"
        );
        let stderr = "Error: ipv4: Address already assigned.\nCommand failed -:2\n\
                      Error: ipv4: Address not found.\nCommand failed -:3\n\
                      Cannot find device \"nosuch\"\nCommand failed -:4\n";
        assert_eq!(real_errors(stderr), vec!["Cannot find device \"nosuch\""]);
    }
}
