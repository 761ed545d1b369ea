//! What the nftables backend is told at start-up.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::family::Family;

/// A network in CIDR notation, either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpCidr {
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{s:?}: bad address: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?;
        Ok(IpCidr { addr, prefix })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The cluster's pod ranges: at most one per family, written comma-separated like
/// kube-proxy's `--cluster-cidr` (`10.244.0.0/16,fd00:10:244::/56`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCidrs(Vec<IpCidr>);

impl ClusterCidrs {
    /// The range of one family, if one was given.
    pub fn of(&self, family: Family) -> Option<IpCidr> {
        self.0.iter().copied().find(|c| c.family() == family)
    }
}

impl FromStr for ClusterCidrs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cidrs: Vec<IpCidr> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let cidr: IpCidr = part.parse()?;
            if cidrs.iter().any(|c| c.family() == cidr.family()) {
                return Err(format!("{s:?}: more than one {} CIDR", cidr.family()));
            }
            cidrs.push(cidr);
        }
        if cidrs.is_empty() {
            return Err(format!("{s:?}: no CIDR"));
        }
        Ok(ClusterCidrs(cidrs))
    }
}

impl fmt::Display for ClusterCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(IpCidr::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Configuration of [`super::Nftables`].
#[derive(Debug, Clone)]
pub struct NftablesConfig {
    /// Name of the tables the backend owns, one `ip` and one `ip6` (created, rewritten and
    /// deleted whole).
    pub table: String,
    /// The address families programmed: both by default; a host without IPv6 takes `[V4]`.
    pub families: Vec<Family>,
    /// The command that reads a ruleset on stdin, without the `-f -`: `["nft"]`, or e.g.
    /// `["ip", "netns", "exec", "NAME", "nft"]` to program another network namespace.
    pub nft_command: Vec<String>,
    /// Pod addresses. Traffic to a ClusterIP from outside its family's range is
    /// masqueraded; a family without a range keeps ClusterIP traffic's source.
    pub cluster_cidr: Option<ClusterCidrs>,
    /// This node's name: endpoints on it serve the `Local` traffic policies.
    pub node_name: Option<String>,
    /// The node addresses NodePorts answer on, either family.
    pub node_port_addresses: Vec<IpAddr>,
    /// The packet-mark bit that asks for masquerading in postrouting.
    pub masquerade_mark: u32,
    /// The `conntrack` command that deletes stale UDP flows (prefixed like `nft_command`).
    pub conntrack_command: Vec<String>,
    /// How many tables the Services' NAT chains are spread over (per family), by a hash of
    /// the Service's namespace and name. The kernel re-validates only the tables a
    /// transaction changed, so a one-Service change walks one of them; the price is as many
    /// NAT base chains on the path of a connection's first packet.
    pub nat_shards: usize,
}

impl NftablesConfig {
    /// Defaults for tables of the given name, programmed with the host's `nft`.
    pub fn new(table: impl Into<String>) -> Self {
        NftablesConfig {
            table: table.into(),
            families: Family::ALL.to_vec(),
            nft_command: vec!["nft".to_string()],
            cluster_cidr: None,
            node_name: None,
            node_port_addresses: Vec::new(),
            masquerade_mark: 0x4000,
            conntrack_command: vec!["conntrack".to_string()],
            nat_shards: 8,
        }
    }

    /// The NAT table of one shard: `<table>-nat<k>`.
    pub fn nat_table(&self, shard: usize) -> String {
        format!("{}-nat{shard}", self.table)
    }

    /// Every table this configuration writes per family: the main one, then the NAT ones.
    pub fn tables(&self) -> Vec<String> {
        std::iter::once(self.table.clone())
            .chain((0..self.shards()).map(|k| self.nat_table(k)))
            .collect()
    }

    pub fn shards(&self) -> usize {
        self.nat_shards.max(1)
    }

    /// The NAT shard of a Service: FNV-1a of `namespace/name`, stable across runs and
    /// builds, so all ports of one Service share a table.
    pub fn shard_of(&self, namespace: &str, name: &str) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in namespace.bytes().chain([b'/']).chain(name.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % self.shards() as u64) as usize
    }

    /// The pod range of one family.
    pub fn cluster_cidr_of(&self, family: Family) -> Option<IpCidr> {
        self.cluster_cidr.as_ref().and_then(|c| c.of(family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_print() {
        let c: IpCidr = "10.244.0.0/16".parse().unwrap();
        assert_eq!(c.prefix, 16);
        assert_eq!(c.to_string(), "10.244.0.0/16");
        let c: IpCidr = "fd00:10:244::/56".parse().unwrap();
        assert_eq!(c.family(), Family::V6);
        assert_eq!(c.to_string(), "fd00:10:244::/56");
        assert!("10.244.0.0".parse::<IpCidr>().is_err());
        assert!("10.244.0.0/33".parse::<IpCidr>().is_err());
        assert!("fd00::/129".parse::<IpCidr>().is_err());
        assert!("x/8".parse::<IpCidr>().is_err());
    }

    #[test]
    fn cluster_cidrs_take_one_range_per_family() {
        let c: ClusterCidrs = "10.244.0.0/16,fd00:10:244::/56".parse().unwrap();
        assert_eq!(c.of(Family::V4).unwrap().to_string(), "10.244.0.0/16");
        assert_eq!(c.of(Family::V6).unwrap().to_string(), "fd00:10:244::/56");
        assert_eq!(c.to_string(), "10.244.0.0/16,fd00:10:244::/56");
        let v4: ClusterCidrs = "10.244.0.0/16".parse().unwrap();
        assert!(v4.of(Family::V6).is_none());
        assert!(
            "10.244.0.0/16,10.245.0.0/16"
                .parse::<ClusterCidrs>()
                .is_err()
        );
        assert!("".parse::<ClusterCidrs>().is_err());
    }
}
