//! The network configuration a node gets when it has none: skiff-bridge with skiff-ipam on
//! the node's pod CIDR, state kept under the agent's own directory so several agents on one
//! machine do not share it.

use std::path::Path;

use serde_json::json;

/// The file the agent writes.
pub const FILE: &str = "10-skiff.conflist";
/// The bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "skiff0";
/// The nftables table (and iptables chain prefix) of the default network.
pub const DEFAULT_FIREWALL_TABLE: &str = "skiff";

/// The default configuration list for `pod_cidr`, keeping its state under `root_dir/cni`;
/// pod traffic to `non_masquerade` ranges (the cluster's pod range, when pods on other
/// nodes are routed to) keeps its source address; `mtu` is the pods' link MTU (below the
/// node's when pod traffic is tunnelled).
pub fn default_conflist(
    root_dir: &Path,
    pod_cidr: &str,
    non_masquerade: &[&str],
    mtu: Option<u32>,
) -> serde_json::Value {
    let cni = root_dir.join("cni");
    let mut v = json!({
        "cniVersion": "1.1.0",
        "name": "skiff",
        "plugins": [{
            "type": "skiff-bridge",
            "bridge": DEFAULT_BRIDGE,
            "firewallTable": DEFAULT_FIREWALL_TABLE,
            "isGateway": true,
            "isDefaultGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "stateDir": cni.join("bridge"),
            "capabilities": {"portMappings": true},
            "ipam": {
                "type": "skiff-ipam",
                "dataDir": cni.join("ipam"),
                "ranges": [[{"subnet": pod_cidr}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }],
    });
    if !non_masquerade.is_empty() {
        v["plugins"][0]["nonMasqueradeCIDRs"] = json!(non_masquerade);
    }
    if let Some(mtu) = mtu {
        v["plugins"][0]["mtu"] = json!(mtu);
    }
    v
}

/// Writes the default configuration into `conf_dir` unless a configuration is there already
/// (the node's own choice wins).
pub fn ensure(
    conf_dir: &Path,
    root_dir: &Path,
    pod_cidr: &str,
    non_masquerade: &[&str],
    mtu: Option<u32>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    let has_config = std::fs::read_dir(conf_dir)?.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        [".conf", ".conflist", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext))
    });
    if has_config {
        return Ok(());
    }
    let text =
        serde_json::to_vec_pretty(&default_conflist(root_dir, pod_cidr, non_masquerade, mtu))
            .map_err(std::io::Error::other)?;
    let tmp = conf_dir.join(format!(".{FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, conf_dir.join(FILE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn written_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        ensure(
            &conf,
            dir.path(),
            "10.244.3.0/24",
            &["10.244.0.0/16"],
            Some(1450),
        )
        .unwrap();
        let text = std::fs::read_to_string(conf.join(FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["name"], "skiff");
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "skiff-bridge");
        assert_eq!(bridge["bridge"], DEFAULT_BRIDGE);
        assert_eq!(bridge["firewallTable"], DEFAULT_FIREWALL_TABLE);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(bridge["nonMasqueradeCIDRs"], json!(["10.244.0.0/16"]));
        assert_eq!(bridge["mtu"], 1450);
        assert!(
            default_conflist(dir.path(), "10.244.3.0/24", &[], None)["plugins"][0]
                .get("nonMasqueradeCIDRs")
                .is_none()
        );
        assert_eq!(
            bridge["ipam"]["dataDir"],
            dir.path().join("cni/ipam").display().to_string()
        );
        // A configuration of the node's own is left alone.
        std::fs::write(conf.join(FILE), "{}").unwrap();
        ensure(&conf, dir.path(), "10.244.3.0/24", &[], None).unwrap();
        assert_eq!(std::fs::read_to_string(conf.join(FILE)).unwrap(), "{}");
    }
}
