use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why a range or range set is refused. The configuration layer prefixes the path of the
/// offending object (`ipam.ranges[0][1]`), so each message names only the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("subnet {subnet} has host bits set (the network address is {network})")]
    HostBits { subnet: IpNet, network: IpAddr },
    #[error("subnet {0} is too small to allocate from")]
    TooSmall(IpNet),
    #[error("{field} {ip} is not the same address family as subnet {subnet}")]
    Family {
        field: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    #[error("{field} {ip} is not in subnet {subnet}")]
    Outside {
        field: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    #[error("{field} {ip} is the network address of subnet {subnet}")]
    NetworkAddress {
        field: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    #[error("{field} {ip} is the broadcast address of subnet {subnet}")]
    Broadcast {
        field: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    #[error("rangeStart {start} is after rangeEnd {end}")]
    Reversed { start: IpAddr, end: IpAddr },
    #[error("empty range set")]
    Empty,
    #[error("mixes IPv4 and IPv6 ranges")]
    MixedFamilies,
    #[error("ranges {0} and {1} overlap")]
    Overlap(String, String),
}

/// One contiguous block of a subnet that addresses are handed out from, both ends
/// inclusive. The gateway is never handed out, even when it lies inside the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

impl Range {
    /// Fills in the defaults host-local uses (gateway and rangeStart the first address
    /// after the network address, rangeEnd the last one before the IPv4 broadcast or the
    /// last IPv6 address) and checks what was given.
    pub fn new(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, RangeError> {
        if subnet.addr() != subnet.network() {
            return Err(RangeError::HostBits {
                subnet,
                network: subnet.network(),
            });
        }
        // A /31 or /32 (/127, /128) has no address left once the network address and
        // the gateway are taken out.
        if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
            return Err(RangeError::TooSmall(subnet));
        }
        let first = next(subnet.network());
        let last = if subnet.addr().is_ipv4() {
            prev(subnet.broadcast())
        } else {
            subnet.broadcast()
        };
        let gateway = match gateway {
            None => first,
            Some(ip) => {
                same_family("gateway", ip, subnet)?;
                if !subnet.contains(&ip) {
                    return Err(RangeError::Outside {
                        field: "gateway",
                        ip,
                        subnet,
                    });
                }
                ip
            }
        };
        let start = match start {
            None => first,
            Some(ip) => usable("rangeStart", ip, subnet)?,
        };
        let end = match end {
            None => last,
            Some(ip) => usable("rangeEnd", ip, subnet)?,
        };
        if num(start) > num(end) {
            return Err(RangeError::Reversed { start, end });
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && num(self.start) <= num(ip)
            && num(ip) <= num(self.end)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && num(self.start) <= num(other.end)
            && num(other.start) <= num(self.end)
    }

    /// The address with this range's prefix, as results carry it.
    pub fn with_prefix(&self, ip: IpAddr) -> IpNet {
        IpNet::new(ip, self.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

fn same_family(field: &'static str, ip: IpAddr, subnet: IpNet) -> Result<(), RangeError> {
    if ip.is_ipv4() != subnet.addr().is_ipv4() {
        return Err(RangeError::Family { field, ip, subnet });
    }
    Ok(())
}

fn usable(field: &'static str, ip: IpAddr, subnet: IpNet) -> Result<IpAddr, RangeError> {
    same_family(field, ip, subnet)?;
    if !subnet.contains(&ip) {
        return Err(RangeError::Outside { field, ip, subnet });
    }
    if ip == subnet.network() {
        return Err(RangeError::NetworkAddress { field, ip, subnet });
    }
    if ip.is_ipv4() && ip == subnet.broadcast() {
        return Err(RangeError::Broadcast { field, ip, subnet });
    }
    Ok(ip)
}

/// The ranges one address per container is taken from; a configuration with two sets
/// (one IPv4, one IPv6) gives every container two addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    pub ranges: Vec<Range>,
}

impl RangeSet {
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, RangeError> {
        let Some(head) = ranges.first() else {
            return Err(RangeError::Empty);
        };
        if ranges
            .iter()
            .any(|r| r.start.is_ipv4() != head.start.is_ipv4())
        {
            return Err(RangeError::MixedFamilies);
        }
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(RangeError::Overlap(a.to_string(), b.to_string()));
            }
        }
        Ok(RangeSet { ranges })
    }

    pub fn is_ipv4(&self) -> bool {
        self.ranges.first().is_some_and(|r| r.start.is_ipv4())
    }

    /// The range holding `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// Every address of the set once, gateways left out, in host-local's round-robin
    /// order: from just after `last` (the last address handed out) when it is still in
    /// the set, else from the first range's start; wrapping from a range's end to the
    /// next range's start and from the last range to the first.
    pub fn candidates(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let resume = last.and_then(|ip| {
            self.ranges
                .iter()
                .position(|r| r.contains(ip))
                .map(|i| (i, num(ip)))
        });
        Candidates {
            set: self,
            idx: resume.map_or(0, |(i, _)| i),
            cur: resume.map(|(_, n)| n),
            first: None,
            done: self.ranges.is_empty(),
        }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// See [`RangeSet::candidates`]. Lazy, because an IPv6 set can hold 2^64 addresses and
/// allocation stops at the first free one.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<u128>,
    first: Option<(usize, u128)>,
    done: bool,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (&'a Range, IpAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let ranges = &self.set.ranges;
        while !self.done {
            let range = &ranges[self.idx];
            let cur = match self.cur {
                None => num(range.start),
                Some(c) if c == num(range.end) => {
                    self.idx = (self.idx + 1) % ranges.len();
                    num(ranges[self.idx].start)
                }
                Some(c) => c + 1,
            };
            self.cur = Some(cur);
            let here = (self.idx, cur);
            match self.first {
                None => self.first = Some(here),
                Some(first) if first == here => {
                    self.done = true;
                    break;
                }
                Some(_) => {}
            }
            let range = &ranges[self.idx];
            let ip = addr(cur, range.start.is_ipv4());
            if ip != range.gateway {
                return Some((range, ip));
            }
        }
        None
    }
}

pub(crate) fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addr(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

fn next(ip: IpAddr) -> IpAddr {
    addr(num(ip).wrapping_add(1), ip.is_ipv4())
}

fn prev(ip: IpAddr) -> IpAddr {
    addr(num(ip).wrapping_sub(1), ip.is_ipv4())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Range {
        Range::new(
            subnet.parse().unwrap(),
            start.map(ip),
            end.map(ip),
            gw.map(ip),
        )
        .unwrap()
    }

    fn order(set: &RangeSet, last: Option<&str>) -> Vec<String> {
        set.candidates(last.map(ip))
            .map(|(_, a)| a.to_string())
            .collect()
    }

    #[test]
    fn defaults_like_host_local() {
        let r = range("10.1.0.0/24", None, None, None);
        assert_eq!(r.gateway, ip("10.1.0.1"));
        assert_eq!(r.start, ip("10.1.0.1"));
        assert_eq!(r.end, ip("10.1.0.254"));
        let r = range("fd00::/120", None, None, None);
        assert_eq!(r.gateway, ip("fd00::1"));
        assert_eq!(r.end, ip("fd00::ff"));
        let set = RangeSet::new(vec![range("10.1.0.0/24", None, None, None)]).unwrap();
        assert_eq!(set.candidates(None).next().unwrap().1, ip("10.1.0.2"));
        assert_eq!(set.to_string(), "10.1.0.1-10.1.0.254");
    }

    #[test]
    fn refuses_bad_ranges() {
        let bad = |subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>| {
            Range::new(
                subnet.parse().unwrap(),
                start.map(ip),
                end.map(ip),
                gw.map(ip),
            )
            .unwrap_err()
        };
        assert!(matches!(
            bad("10.1.0.5/24", None, None, None),
            RangeError::HostBits { .. }
        ));
        assert!(matches!(
            bad("10.1.0.0/31", None, None, None),
            RangeError::TooSmall(_)
        ));
        assert!(matches!(
            bad("fd00::/127", None, None, None),
            RangeError::TooSmall(_)
        ));
        let e = bad("10.1.0.0/24", Some("10.2.0.1"), None, None);
        assert_eq!(
            e.to_string(),
            "rangeStart 10.2.0.1 is not in subnet 10.1.0.0/24"
        );
        assert!(matches!(
            bad("10.1.0.0/24", None, Some("10.1.0.255"), None),
            RangeError::Broadcast { .. }
        ));
        assert!(matches!(
            bad("10.1.0.0/24", Some("10.1.0.0"), None, None),
            RangeError::NetworkAddress { .. }
        ));
        assert!(matches!(
            bad("10.1.0.0/24", Some("10.1.0.9"), Some("10.1.0.3"), None),
            RangeError::Reversed { .. }
        ));
        assert!(matches!(
            bad("10.1.0.0/24", None, None, Some("fd00::1")),
            RangeError::Family {
                field: "gateway",
                ..
            }
        ));
        assert!(matches!(
            bad("10.1.0.0/24", None, None, Some("10.2.0.1")),
            RangeError::Outside {
                field: "gateway",
                ..
            }
        ));
        // /30 has two addresses; one is the gateway.
        let r = range("10.1.0.0/30", None, None, None);
        assert_eq!(order(&RangeSet::new(vec![r]).unwrap(), None), ["10.1.0.2"]);
    }

    #[test]
    fn refuses_bad_sets() {
        let a = range("10.1.0.0/24", None, Some("10.1.0.100"), None);
        let b = range("10.1.0.0/24", Some("10.1.0.100"), None, None);
        let e = RangeSet::new(vec![a.clone(), b]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ranges 10.1.0.1-10.1.0.100 and 10.1.0.100-10.1.0.254 overlap"
        );
        let v6 = range("fd00::/64", None, None, None);
        assert_eq!(
            RangeSet::new(vec![a, v6]).unwrap_err(),
            RangeError::MixedFamilies
        );
        assert_eq!(RangeSet::new(vec![]).unwrap_err(), RangeError::Empty);
    }

    #[test]
    fn round_robin_wraps_across_ranges_and_skips_gateways() {
        let set = RangeSet::new(vec![
            range("10.1.0.0/24", Some("10.1.0.1"), Some("10.1.0.3"), None),
            range(
                "10.2.0.0/24",
                Some("10.2.0.5"),
                Some("10.2.0.7"),
                Some("10.2.0.6"),
            ),
        ])
        .unwrap();
        assert_eq!(
            order(&set, None),
            ["10.1.0.2", "10.1.0.3", "10.2.0.5", "10.2.0.7"]
        );
        assert_eq!(
            order(&set, Some("10.1.0.3")),
            ["10.2.0.5", "10.2.0.7", "10.1.0.2", "10.1.0.3"]
        );
        assert_eq!(
            order(&set, Some("10.2.0.7")),
            ["10.1.0.2", "10.1.0.3", "10.2.0.5", "10.2.0.7"]
        );
        // A last address no longer in the set restarts at the beginning.
        assert_eq!(order(&set, Some("10.9.0.1"))[0], "10.1.0.2");
    }

    #[test]
    fn ipv6_is_lazy_and_reaches_the_last_address() {
        let set = RangeSet::new(vec![range("fd00::/64", None, None, None)]).unwrap();
        let mut it = set.candidates(Some(ip("fd00::ffff:ffff:ffff:fffe")));
        assert_eq!(it.next().unwrap().1, ip("fd00::ffff:ffff:ffff:ffff"));
        assert_eq!(it.next().unwrap().1, ip("fd00::2"));
        let top = RangeSet::new(vec![range("ffff::/120", None, None, None)]).unwrap();
        assert_eq!(top.candidates(None).count(), 254);
    }

    #[test]
    fn contains_respects_the_bounds() {
        let r = range("10.1.0.0/24", Some("10.1.0.10"), Some("10.1.0.20"), None);
        assert!(r.contains(ip("10.1.0.10")));
        assert!(r.contains(ip("10.1.0.20")));
        assert!(!r.contains(ip("10.1.0.21")));
        assert!(!r.contains(ip("::a01:a")));
        assert_eq!(r.with_prefix(ip("10.1.0.12")).to_string(), "10.1.0.12/24");
    }
}
