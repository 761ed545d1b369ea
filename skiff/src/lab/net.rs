//! The lab's network: a bridge on the host holding the first address of the lab subnet,
//! and for each worker a network namespace joined to it by a veth, with its own address
//! and a default route through the host. Nothing is routed or masqueraded beyond the
//! bridge: lab traffic stays between the host and the workers.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Linux's limit on interface names (IFNAMSIZ less the NUL).
const MAX_IFNAME: usize = 15;

/// An IPv4 subnet, `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Subnet {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Subnet> {
        let (addr, len) = s
            .split_once('/')
            .with_context(|| format!("{s:?} is not a subnet like 172.31.0.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .with_context(|| format!("{len:?} is not a prefix length"))?;
        if !(8..=28).contains(&prefix) {
            bail!("a lab subnet's prefix is between /8 and /28, not /{prefix}");
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Subnet {
    fn nth(&self, n: u32) -> anyhow::Result<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        // The last address is the broadcast address.
        if u64::from(n) + 1 >= size {
            bail!("subnet {self} has no room for address number {n}");
        }
        Ok(Ipv4Addr::from(u32::from(self.network) + n))
    }

    /// The host's address on the bridge (the workers' gateway).
    pub fn host(&self) -> anyhow::Result<Ipv4Addr> {
        self.nth(1)
    }

    /// Worker `k`'s address (k from 1): the tenth address on.
    pub fn worker(&self, k: u32) -> anyhow::Result<Ipv4Addr> {
        self.nth(10 + k)
    }
}

/// Runs a command; fails with its stderr.
fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs a command whose failure means only that there was nothing to remove.
fn quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// `nsenter --net=/run/netns/NAME -- program`: only the network namespace changes.
/// (`ip netns exec` also mounts a fresh /sys for the namespace, which hides the host's
/// cgroup tree from the agent.)
pub fn in_netns(netns: &str, program: &std::path::Path) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns_path(netns).display()))
        .arg("--")
        .arg(program);
    c
}

/// Checks an interface name before anything is created with it.
pub fn check_ifname(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME || name.contains(['/', ' ', ':']) {
        bail!(
            "{name:?} cannot name a network interface (at most {MAX_IFNAME} characters, no '/', ':' or spaces)"
        );
    }
    Ok(())
}

/// The bridge with the host's address on it, up. Kept as it is when it exists.
pub fn ensure_bridge(bridge: &str, subnet: &Subnet) -> anyhow::Result<()> {
    check_ifname(bridge)?;
    if !link_exists(bridge) {
        run("ip", &["link", "add", bridge, "type", "bridge"])?;
    }
    let addr = format!("{}/{}", subnet.host()?, subnet.prefix);
    // `replace`: an address already there is not an error.
    run("ip", &["addr", "replace", &addr, "dev", bridge])?;
    run("ip", &["link", "set", bridge, "up"])
}

pub fn delete_bridge(bridge: &str) {
    quiet("ip", &["link", "del", bridge]);
}

/// A worker's namespace: its veth as `eth0` with `address`, lo up, the default route
/// through the host, and forwarding on (its pods' traffic to other workers and the API
/// server is routed through it).
pub fn create_worker(
    netns: &str,
    host_link: &str,
    bridge: &str,
    subnet: &Subnet,
    address: Ipv4Addr,
) -> anyhow::Result<()> {
    check_ifname(host_link)?;
    if !netns_exists(netns) {
        add_netns(netns)?;
    }
    if !link_exists(host_link) {
        run(
            "ip",
            &[
                "link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", netns,
            ],
        )?;
    }
    run("ip", &["link", "set", host_link, "master", bridge])?;
    run("ip", &["link", "set", host_link, "up"])?;
    let ns = |args: &[&str]| -> anyhow::Result<()> {
        let mut full = vec!["-n", netns];
        full.extend_from_slice(args);
        run("ip", &full)
    };
    ns(&["link", "set", "lo", "up"])?;
    ns(&[
        "addr",
        "replace",
        &format!("{address}/{}", subnet.prefix),
        "dev",
        "eth0",
    ])?;
    ns(&["link", "set", "eth0", "up"])?;
    ns(&[
        "route",
        "replace",
        "default",
        "via",
        &subnet.host()?.to_string(),
    ])?;
    let out = in_netns(netns, std::path::Path::new("sysctl"))
        .args(["-qw", "net.ipv4.ip_forward=1"])
        .output()
        .context("running sysctl in the worker's namespace")?;
    if !out.status.success() {
        bail!(
            "enabling forwarding in {netns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn add_netns(netns: &str) -> anyhow::Result<()> {
    run("ip", &["netns", "add", netns])
}

/// Deletes a worker's namespace (its links go with it) and the host end of its veth.
pub fn delete_worker(netns: &str, host_link: &str) {
    if netns_exists(netns) {
        quiet("ip", &["netns", "del", netns]);
    }
    if link_exists(host_link) {
        quiet("ip", &["link", "del", host_link]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn subnets_and_their_addresses() {
        let s: Subnet = "172.31.0.7/24".parse().unwrap();
        assert_eq!(s.to_string(), "172.31.0.0/24");
        assert_eq!(s.host().unwrap(), Ipv4Addr::new(172, 31, 0, 1));
        assert_eq!(s.worker(1).unwrap(), Ipv4Addr::new(172, 31, 0, 11));
        assert_eq!(s.worker(244).unwrap(), Ipv4Addr::new(172, 31, 0, 254));
        assert!(s.worker(245).is_err());
        assert!("172.31.0.0".parse::<Subnet>().is_err());
        assert!("172.31.0.0/30".parse::<Subnet>().is_err());
        let small: Subnet = "10.9.8.0/28".parse().unwrap();
        assert!(small.worker(5).is_err());
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("skiff-lab0").is_ok());
        assert!(check_ifname("a-name-far-too-long").is_err());
        assert!(check_ifname("").is_err());
    }
}
