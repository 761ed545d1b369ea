//! The table of node ranges carved out of the cluster CIDR: which blocks of the node mask
//! size are taken, and the next one to hand out.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range, IPv4 or IPv6, kept as its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn max_prefix(&self) -> u8 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn bits(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn from_bits(v4: bool, bits: u128, prefix: u8) -> Cidr {
        let addr = if v4 {
            IpAddr::from(std::net::Ipv4Addr::from(bits as u32))
        } else {
            IpAddr::from(std::net::Ipv6Addr::from(bits))
        };
        Cidr { addr, prefix }
    }

    /// The network address as bits, host part cleared.
    fn network(&self) -> u128 {
        let host = u32::from(self.max_prefix() - self.prefix);
        if host >= 128 {
            0
        } else {
            (self.bits() >> host) << host
        }
    }

    fn last(&self) -> u128 {
        let host = u32::from(self.max_prefix() - self.prefix);
        if host >= 128 {
            u128::MAX
        } else {
            self.network() | ((1u128 << host) - 1)
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    /// Parses `a.b.c.d/n` (or IPv6), clearing host bits as `net.ParseCIDR` reports them.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{s:?}: {p:?} is not a prefix length"))?;
        let c = Cidr { addr, prefix };
        if prefix > c.max_prefix() {
            return Err(format!("{s:?}: prefix length {prefix} is too long"));
        }
        Ok(Cidr::from_bits(addr.is_ipv4(), c.network(), prefix))
    }
}

/// Why a table cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrSetError {
    #[error(
        "node CIDR mask size {mask} must be between the cluster CIDR's prefix {cluster} and {max}"
    )]
    MaskSize { mask: u8, cluster: u8, max: u8 },
    #[error(
        "node CIDR mask size {mask} leaves more than 2^{MAX_BITS} node ranges in {cluster_cidr}"
    )]
    TooMany { mask: u8, cluster_cidr: Cidr },
}

/// At most this many bits between the cluster prefix and the node mask (as upstream, which
/// allows 16; a little more room here costs nothing).
const MAX_BITS: u8 = 20;

/// The blocks of `mask` bits inside `cluster`, with the taken ones.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    mask: u8,
    count: u128,
    used: BTreeSet<u128>,
    next: u128,
}

impl CidrSet {
    pub fn new(cluster: Cidr, mask: u8) -> Result<CidrSet, CidrSetError> {
        if mask < cluster.prefix || mask > cluster.max_prefix() {
            return Err(CidrSetError::MaskSize {
                mask,
                cluster: cluster.prefix,
                max: cluster.max_prefix(),
            });
        }
        if mask - cluster.prefix > MAX_BITS {
            return Err(CidrSetError::TooMany {
                mask,
                cluster_cidr: cluster,
            });
        }
        Ok(CidrSet {
            cluster,
            mask,
            count: 1u128 << (mask - cluster.prefix),
            used: BTreeSet::new(),
            next: 0,
        })
    }

    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    pub fn free(&self) -> u128 {
        self.count - self.used.len() as u128
    }

    fn shift(&self) -> u32 {
        u32::from(self.cluster.max_prefix() - self.mask)
    }

    fn block(&self, i: u128) -> Cidr {
        let bits = self.cluster.network() + (i << self.shift());
        Cidr::from_bits(self.cluster.addr.is_ipv4(), bits, self.mask)
    }

    /// The blocks `c` overlaps, or `None` when it is (partly) outside the cluster CIDR or
    /// of the other family.
    fn blocks_of(&self, c: &Cidr) -> Option<(u128, u128)> {
        if c.addr.is_ipv4() != self.cluster.addr.is_ipv4()
            || c.prefix < self.cluster.prefix
            || c.network() < self.cluster.network()
            || c.last() > self.cluster.last()
        {
            return None;
        }
        let base = self.cluster.network();
        let shift = self.shift();
        Some(((c.network() - base) >> shift, (c.last() - base) >> shift))
    }

    /// Whether `c` lies inside the cluster CIDR.
    pub fn contains(&self, c: &Cidr) -> bool {
        self.blocks_of(c).is_some()
    }

    /// Marks `c` taken; false when it lies outside the cluster CIDR.
    pub fn occupy(&mut self, c: &Cidr) -> bool {
        let Some((first, last)) = self.blocks_of(c) else {
            return false;
        };
        let mut i = first;
        loop {
            self.used.insert(i);
            if i == last {
                break;
            }
            i += 1;
        }
        true
    }

    /// Frees `c`; ranges outside the cluster CIDR are ignored.
    pub fn release(&mut self, c: &Cidr) {
        if let Some((first, last)) = self.blocks_of(c) {
            self.used.retain(|i| *i < first || *i > last);
        }
    }

    /// The next free block after the last one handed out (so a range just released is not
    /// handed out again at once), or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Cidr> {
        if self.free() == 0 {
            return None;
        }
        for k in 0..self.count {
            let i = (self.next + k) % self.count;
            if !self.used.contains(&i) {
                self.used.insert(i);
                self.next = (i + 1) % self.count;
                return Some(self.block(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_clears_host_bits() {
        assert_eq!(c("10.244.3.7/16").to_string(), "10.244.0.0/16");
        assert_eq!(c("fd00::1/64").to_string(), "fd00::/64");
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn allocates_in_order_and_never_twice() {
        let mut s = CidrSet::new(c("10.244.0.0/22"), 24).unwrap();
        assert!(s.occupy(&c("10.244.1.0/24")));
        let got: Vec<_> = (0..3).map(|_| s.allocate().unwrap().to_string()).collect();
        assert_eq!(got, ["10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24"]);
        assert_eq!(s.allocate(), None);
        s.release(&c("10.244.2.0/24"));
        assert_eq!(s.allocate(), Some(c("10.244.2.0/24")));
    }

    #[test]
    fn outside_and_wider_ranges() {
        let mut s = CidrSet::new(c("10.244.0.0/16"), 24).unwrap();
        assert!(!s.occupy(&c("192.168.0.0/24")));
        assert!(!s.occupy(&c("10.0.0.0/8")));
        assert!(!s.occupy(&c("fd00::/64")));
        // A wider node range inside the cluster takes every block it covers.
        assert!(s.occupy(&c("10.244.0.0/23")));
        assert_eq!(s.allocate(), Some(c("10.244.2.0/24")));
        assert_eq!(s.free(), 256 - 3);
    }

    #[test]
    fn mask_limits() {
        assert!(CidrSet::new(c("10.0.0.0/16"), 8).is_err());
        assert!(CidrSet::new(c("10.0.0.0/8"), 30).is_err());
        let mut v6 = CidrSet::new(c("fd00:10::/56"), 64).unwrap();
        assert_eq!(v6.allocate(), Some(c("fd00:10::/64")));
        assert_eq!(v6.allocate(), Some(c("fd00:10:0:1::/64")));
    }
}
