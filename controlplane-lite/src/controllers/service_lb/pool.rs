//! The address pool of LoadBalancer Services: CIDRs and `A-B` ranges of IPv4 addresses.

use std::net::Ipv4Addr;

use crate::apiserver::alloc::Ipv4Cidr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid pool entry {0:?}: expected a CIDR (192.168.1.240/28) or a range (192.168.1.240-192.168.1.250)"
)]
pub struct PoolError(pub String);

/// Inclusive ranges of usable addresses, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pool {
    ranges: Vec<(u32, u32)>,
}

impl std::str::FromStr for Pool {
    type Err = PoolError;

    /// `""` is the empty pool (no addresses are handed out).
    fn from_str(s: &str) -> Result<Pool, PoolError> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || PoolError(part.to_string());
            if part.contains('/') {
                let cidr: Ipv4Cidr = part.parse().map_err(|_| bad())?;
                let first = cidr.base;
                let last = cidr.base + (cidr.size() - 1) as u32;
                // Network and broadcast addresses are unusable on a real subnet; /31 and
                // /32 have none (RFC 3021).
                if cidr.prefix < 31 {
                    ranges.push((first + 1, last - 1));
                } else {
                    ranges.push((first, last));
                }
            } else {
                let (a, b) = part.split_once('-').ok_or_else(bad)?;
                let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
                let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
                if u32::from(a) > u32::from(b) {
                    return Err(bad());
                }
                ranges.push((a.into(), b.into()));
            }
        }
        Ok(Pool { ranges })
    }
}

impl Pool {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&ip))
    }

    /// Every address of the pool, lowest range first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ranges
            .iter()
            .flat_map(|&(a, b)| (a..=b).map(Ipv4Addr::from))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn all(s: &str) -> Vec<String> {
        s.parse::<Pool>()
            .unwrap()
            .addresses()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn cidrs_skip_network_and_broadcast_ranges_are_inclusive() {
        assert_eq!(all("10.0.0.0/30"), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(all("10.0.0.4/31"), ["10.0.0.4", "10.0.0.5"]);
        assert_eq!(all("10.0.0.9/32"), ["10.0.0.9"]);
        assert_eq!(
            all("10.0.1.250-10.0.1.251, 10.0.0.0/30"),
            ["10.0.1.250", "10.0.1.251", "10.0.0.1", "10.0.0.2"]
        );
        assert!(all("").is_empty());
        let p: Pool = "10.0.0.0/30".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(!p.contains(Ipv4Addr::new(10, 0, 0, 3)));
        for bad in ["10.0.0.0", "10.0.0.5-10.0.0.1", "x/24", "10.0.0.1-y"] {
            assert!(bad.parse::<Pool>().is_err(), "{bad}");
        }
    }
}
