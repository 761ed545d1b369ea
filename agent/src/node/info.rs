//! What the node reports about itself: capacity, addresses and nodeInfo, read from the
//! machine.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{NodeAddress, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// kubelet's default hard eviction threshold (`memory.available<100Mi`), kept out of
/// allocatable so pods cannot use what eviction would reclaim.
pub const EVICTION_MEMORY_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineFacts {
    pub hostname: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub architecture: String,
}

impl MachineFacts {
    /// Reads the facts; `root_dir` is where pod data lives (its filesystem is the
    /// node's ephemeral storage).
    pub fn read(root_dir: &Path) -> MachineFacts {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        MachineFacts {
            hostname: read("/proc/sys/kernel/hostname"),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: meminfo_kib("MemTotal").unwrap_or(0) * 1024,
            ephemeral_storage_bytes: statvfs(root_dir).map(|(total, _)| total).unwrap_or(0),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
        }
    }

    pub fn capacity(&self, max_pods: u32) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_bytes / 1024)),
            ),
            ("pods".to_string(), Quantity(max_pods.to_string())),
            (
                "ephemeral-storage".to_string(),
                Quantity(format!("{}Ki", self.ephemeral_storage_bytes / 1024)),
            ),
        ])
    }

    /// Capacity minus the eviction reserve (kubelet's default: 100Mi of memory, 10% of
    /// the ephemeral storage).
    pub fn allocatable(&self, max_pods: u32) -> BTreeMap<String, Quantity> {
        let memory = self.memory_bytes.saturating_sub(EVICTION_MEMORY_BYTES);
        let storage = self.ephemeral_storage_bytes - self.ephemeral_storage_bytes / 10;
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", memory / 1024)),
            ),
            ("pods".to_string(), Quantity(max_pods.to_string())),
            (
                "ephemeral-storage".to_string(),
                Quantity(storage.to_string()),
            ),
        ])
    }

    pub fn system_info(&self, runtime_version: &str) -> NodeSystemInfo {
        NodeSystemInfo {
            architecture: self.architecture.clone(),
            boot_id: self.boot_id.clone(),
            container_runtime_version: runtime_version.to_string(),
            kernel_version: self.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: crate::node::AGENT_VERSION.to_string(),
            machine_id: self.machine_id.clone(),
            operating_system: "linux".to_string(),
            os_image: self.os_image.clone(),
            system_uuid: self.machine_id.clone(),
            ..Default::default()
        }
    }
}

pub fn addresses(node_ip: Option<IpAddr>, hostname: &str) -> Vec<NodeAddress> {
    let mut out = Vec::new();
    if let Some(ip) = node_ip.or_else(default_route_ip) {
        out.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        });
    }
    out.push(NodeAddress {
        type_: "Hostname".into(),
        address: hostname.to_string(),
    });
    out
}

/// The source address the kernel would use to leave the node: no packet is sent, a UDP
/// socket is only connected.
pub fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    s.local_addr()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

pub fn meminfo_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text, key)
}

fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, rest) = l.split_once(':')?;
        (k == key).then(|| rest.split_whitespace().next()?.parse().ok())?
    })
}

/// (total, available) bytes of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-parameter of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// Kubernetes names architectures as Go does.
fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_machine_files() {
        assert_eq!(
            parse_meminfo("MemTotal:       24576000 kB\nMemFree: 1 kB\n", "MemTotal"),
            Some(24_576_000)
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n", "MemAvailable"), None);
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(go_arch("x86_64"), "amd64");
    }

    #[test]
    fn allocatable_keeps_the_eviction_reserve() {
        let f = MachineFacts {
            hostname: "n".into(),
            cpus: 2,
            memory_bytes: 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 1000,
            kernel_version: String::new(),
            os_image: String::new(),
            machine_id: String::new(),
            boot_id: String::new(),
            architecture: "amd64".into(),
        };
        let a = f.allocatable(110);
        assert_eq!(a["memory"].0, "946176Ki");
        assert_eq!(a["ephemeral-storage"].0, "900");
        assert_eq!(f.capacity(110)["pods"].0, "110");
    }
}
