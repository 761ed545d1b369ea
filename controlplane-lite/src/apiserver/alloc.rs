//! ClusterIP and NodePort allocation for Services.
//!
//! The allocators live in memory, rebuilt from the stored Services at start-up; every
//! Service write that allocates holds the allocator lock across the store write, so two
//! creates can never get the same address or port.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::Value;

pub const NODE_PORT_MIN: u16 = 30000;
pub const NODE_PORT_MAX: u16 = 32767;

#[derive(Debug, thiserror::Error)]
pub enum CidrError {
    #[error("invalid CIDR {0:?}: expected an IPv4 network like 10.96.0.0/12")]
    Parse(String),
    #[error("CIDR {0} is too small for a service range (need at most /29)")]
    TooSmall(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Parse(s.into()))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| CidrError::Parse(s.into()))?;
        let prefix: u8 = prefix.parse().map_err(|_| CidrError::Parse(s.into()))?;
        if prefix > 32 {
            return Err(CidrError::Parse(s.into()));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Ipv4Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl Ipv4Cidr {
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == self.base
    }

    /// The n-th address of the range.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(n))
    }
}

#[derive(Debug)]
pub struct ServiceAllocator {
    pub range: Ipv4Cidr,
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// Kubernetes' words: "provided IP is already allocated".
    IpInUse(Ipv4Addr),
    IpOutOfRange(Ipv4Addr, String),
    IpsExhausted,
    PortInUse(u16),
    PortOutOfRange(u16),
    PortsExhausted,
}

impl std::fmt::Display for AllocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllocError::IpInUse(ip) => write!(
                f,
                "failed to allocate IP {ip}: provided IP is already allocated"
            ),
            AllocError::IpOutOfRange(ip, r) => write!(
                f,
                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {r}"
            ),
            AllocError::IpsExhausted => write!(f, "failed to allocate a serviceIP: range is full"),
            AllocError::PortInUse(_) => write!(f, "provided port is already allocated"),
            AllocError::PortOutOfRange(_) => write!(
                f,
                "provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"
            ),
            AllocError::PortsExhausted => write!(f, "range is full"),
        }
    }
}

impl ServiceAllocator {
    pub fn new(range: Ipv4Cidr) -> Result<ServiceAllocator, CidrError> {
        if range.prefix > 29 {
            return Err(CidrError::TooSmall(range.to_string()));
        }
        Ok(ServiceAllocator {
            range,
            ips: HashSet::new(),
            ports: HashSet::new(),
        })
    }

    /// The address the `kubernetes` Service gets: the first of the range.
    pub fn apiserver_ip(&self) -> Ipv4Addr {
        self.range.nth(1)
    }

    /// Marks what a stored Service holds as taken.
    pub fn observe(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.ips.insert(ip);
        }
        for p in node_ports(svc) {
            self.ports.insert(p);
        }
    }

    pub fn release(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.ips.remove(&ip);
        }
        for p in node_ports(svc) {
            self.ports.remove(&p);
        }
    }

    pub fn allocate_ip(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, AllocError> {
        if let Some(ip) = wanted {
            if !self.range.contains(ip) {
                return Err(AllocError::IpOutOfRange(ip, self.range.to_string()));
            }
            if !self.ips.insert(ip) {
                return Err(AllocError::IpInUse(ip));
            }
            return Ok(ip);
        }
        // Network and broadcast addresses are never handed out; start at a random offset
        // so addresses don't get reused at once after a delete.
        let usable = (self.range.size() - 2).min(u64::from(u32::MAX)) as u32;
        let start: u32 = rand::random::<u32>() % usable;
        for i in 0..usable {
            let ip = self.range.nth(1 + (start + i) % usable);
            if self.ips.insert(ip) {
                return Ok(ip);
            }
        }
        Err(AllocError::IpsExhausted)
    }

    pub fn allocate_port(&mut self, wanted: Option<u16>) -> Result<u16, AllocError> {
        if let Some(p) = wanted {
            if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&p) {
                return Err(AllocError::PortOutOfRange(p));
            }
            if !self.ports.insert(p) {
                return Err(AllocError::PortInUse(p));
            }
            return Ok(p);
        }
        let span = u32::from(NODE_PORT_MAX - NODE_PORT_MIN) + 1;
        let start = rand::random::<u32>() % span;
        for i in 0..span {
            let p = NODE_PORT_MIN + ((start + i) % span) as u16;
            if self.ports.insert(p) {
                return Ok(p);
            }
        }
        Err(AllocError::PortsExhausted)
    }

    pub fn free_ip(&mut self, ip: Ipv4Addr) {
        self.ips.remove(&ip);
    }

    pub fn free_port(&mut self, p: u16) {
        self.ports.remove(&p);
    }
}

pub fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    if let Some(ip) = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        out.push(ip);
    }
    for ip in svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok())
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

pub fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_ports() {
        let mut a = ServiceAllocator::new("10.96.0.0/28".parse().expect("cidr")).expect("alloc");
        assert_eq!(a.apiserver_ip(), Ipv4Addr::new(10, 96, 0, 1));
        let ip = a
            .allocate_ip(Some(Ipv4Addr::new(10, 96, 0, 1)))
            .expect("first");
        assert_eq!(a.allocate_ip(Some(ip)), Err(AllocError::IpInUse(ip)));
        let mut seen = HashSet::new();
        for _ in 0..13 {
            let ip = a.allocate_ip(None).expect("free ip");
            assert!(seen.insert(ip));
            assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 0));
            assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 15));
        }
        assert_eq!(a.allocate_ip(None), Err(AllocError::IpsExhausted));
        assert!(a.allocate_ip(Some(Ipv4Addr::new(10, 97, 0, 1))).is_err());
        let p = a.allocate_port(None).expect("port");
        assert!((NODE_PORT_MIN..=NODE_PORT_MAX).contains(&p));
        assert_eq!(a.allocate_port(Some(p)), Err(AllocError::PortInUse(p)));
        assert_eq!(
            a.allocate_port(Some(80)),
            Err(AllocError::PortOutOfRange(80))
        );
    }
}
