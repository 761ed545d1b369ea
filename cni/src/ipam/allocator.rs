use std::collections::HashMap;
use std::net::IpAddr;

use super::range::RangeSet;
use super::store::{Allocation, Owner, Store};
use crate::spec::{Error, ErrorCode, IpConfig};

/// A network's allocations as read at the start of an operation (under the lock), kept
/// current as the operation reserves more, so each address is looked up in memory
/// instead of probed on disk.
#[derive(Debug, Default)]
pub struct Ledger {
    owners: HashMap<IpAddr, Owner>,
}

impl Ledger {
    pub fn new(allocations: Vec<Allocation>) -> Ledger {
        Ledger {
            owners: allocations.into_iter().map(|a| (a.ip, a.owner)).collect(),
        }
    }

    pub fn owner(&self, ip: IpAddr) -> Option<&Owner> {
        self.owners.get(&ip)
    }

    /// The addresses held by the attachment (old-format files of its container included),
    /// lowest first so the answer does not depend on directory order.
    pub fn held_by(&self, container_id: &str, ifname: &str) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .owners
            .iter()
            .filter(|(_, o)| o.is(container_id, ifname))
            .map(|(ip, _)| *ip)
            .collect();
        ips.sort();
        ips
    }

    fn take(&mut self, ip: IpAddr, owner: Owner) {
        self.owners.insert(ip, owner);
    }

    /// The first free address of `set` in allocation order, if any.
    pub fn first_free(&self, set: &RangeSet) -> Option<IpAddr> {
        set.candidates(None)
            .map(|(_, ip)| ip)
            .find(|ip| !self.owners.contains_key(ip))
    }
}

/// An address of one range set given to an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub ip: IpConfig,
    /// Reserved by this call, as opposed to already held: only these are undone when a
    /// later range set fails.
    pub new: bool,
}

/// Gives the attachment one address of range set `index`: the one it already holds
/// there (ADD is idempotent), else `requested`, else the next free one after the last
/// handed out. `requested` must already be known to lie in `set`.
pub fn allocate(
    store: &Store,
    ledger: &mut Ledger,
    index: usize,
    set: &RangeSet,
    container_id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<Grant, Error> {
    let grant = |ip: IpAddr, new: bool| {
        let range = set.range_for(ip);
        Grant {
            ip: IpConfig {
                interface: None,
                address: range.map_or_else(|| ip.into(), |r| r.with_prefix(ip)),
                gateway: range.map(|r| r.gateway),
            },
            new,
        }
    };
    let held: Vec<IpAddr> = ledger
        .held_by(container_id, ifname)
        .into_iter()
        .filter(|ip| set.contains(*ip))
        .collect();
    if let Some(&first) = held.first() {
        return match requested {
            Some(want) if !held.contains(&want) => Err(Error::new(
                ErrorCode::Internal,
                format!(
                    "container {container_id} ({ifname}) already holds {first} in range set {set}; it cannot also take the requested {want}"
                ),
            )),
            Some(want) => Ok(grant(want, false)),
            None => Ok(grant(first, false)),
        };
    }
    let owner = || Owner::Attachment {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
    };
    if let Some(want) = requested {
        if let Some(holder) = ledger.owner(want) {
            return Err(Error::new(
                ErrorCode::Internal,
                format!(
                    "requested IP address {want} is not available in range set {set}: {}",
                    describe(holder)
                ),
            ));
        }
        if !store.reserve(want, container_id, ifname)? {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("requested IP address {want} is not available in range set {set}"),
            ));
        }
        ledger.take(want, owner());
        store.set_last_reserved(index, want)?;
        return Ok(grant(want, true));
    }
    let last = store.last_reserved(index);
    for (_, ip) in set.candidates(last) {
        if ledger.owner(ip).is_some() {
            continue;
        }
        if store.reserve(ip, container_id, ifname)? {
            ledger.take(ip, owner());
            store.set_last_reserved(index, ip)?;
            return Ok(grant(ip, true));
        }
        // Taken behind the scan's back (a file this process could not parse as owned).
        ledger.take(ip, Owner::Nobody);
    }
    Err(Error::new(
        ErrorCode::Internal,
        format!("no IP addresses available in range set: {set}"),
    ))
}

fn describe(owner: &Owner) -> String {
    match owner {
        Owner::Attachment {
            container_id,
            ifname,
        } => format!("held by container {container_id} ({ifname})"),
        Owner::Container(id) => format!("held by container {id}"),
        Owner::Nobody => "its file exists but names no container".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::range::Range;

    fn set(subnet: &str, start: &str, end: &str) -> RangeSet {
        RangeSet::new(vec![
            Range::new(
                subnet.parse().unwrap(),
                Some(start.parse().unwrap()),
                Some(end.parse().unwrap()),
                None,
            )
            .unwrap(),
        ])
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_round_robin_and_wraps() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set("10.0.0.0/24", "10.0.0.1", "10.0.0.4");
        let mut ledger = Ledger::default();
        let mut got = Vec::new();
        for c in ["a", "b", "c"] {
            let g = allocate(&store, &mut ledger, 0, &s, c, "eth0", None).unwrap();
            assert!(g.new);
            assert_eq!(g.ip.gateway, Some(ip("10.0.0.1")));
            got.push(g.ip.address.to_string());
        }
        assert_eq!(got, ["10.0.0.2/24", "10.0.0.3/24", "10.0.0.4/24"]);
        let err = allocate(&store, &mut ledger, 0, &s, "d", "eth0", None).unwrap_err();
        assert_eq!(
            err.msg,
            "no IP addresses available in range set: 10.0.0.1-10.0.0.4"
        );
        // Freeing .3 makes it next even though .2 was handed out earlier.
        store.release(ip("10.0.0.3")).unwrap();
        store.release(ip("10.0.0.2")).unwrap();
        let mut ledger = Ledger::new(store.scan().unwrap());
        let g = allocate(&store, &mut ledger, 0, &s, "d", "eth0", None).unwrap();
        assert_eq!(g.ip.address.addr(), ip("10.0.0.2"));
        let g = allocate(&store, &mut ledger, 0, &s, "e", "eth0", None).unwrap();
        assert_eq!(g.ip.address.addr(), ip("10.0.0.3"));
    }

    #[test]
    fn existing_allocation_is_returned() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set("10.0.0.0/24", "10.0.0.1", "10.0.0.9");
        let mut ledger = Ledger::default();
        let first = allocate(&store, &mut ledger, 0, &s, "a", "eth0", None).unwrap();
        let mut ledger = Ledger::new(store.scan().unwrap());
        let again = allocate(&store, &mut ledger, 0, &s, "a", "eth0", None).unwrap();
        assert_eq!(again.ip, first.ip);
        assert!(!again.new);
        let other_if = allocate(&store, &mut ledger, 0, &s, "a", "eth1", None).unwrap();
        assert_ne!(other_if.ip, first.ip);
        let e = allocate(
            &store,
            &mut ledger,
            0,
            &s,
            "a",
            "eth0",
            Some(ip("10.0.0.7")),
        );
        assert!(e.unwrap_err().msg.contains("already holds 10.0.0.2"));
    }

    #[test]
    fn requested_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "n").unwrap();
        let s = set("10.0.0.0/24", "10.0.0.1", "10.0.0.9");
        let mut ledger = Ledger::default();
        let g = allocate(
            &store,
            &mut ledger,
            0,
            &s,
            "a",
            "eth0",
            Some(ip("10.0.0.7")),
        )
        .unwrap();
        assert_eq!(g.ip.address.to_string(), "10.0.0.7/24");
        let e = allocate(
            &store,
            &mut ledger,
            0,
            &s,
            "b",
            "eth0",
            Some(ip("10.0.0.7")),
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "requested IP address 10.0.0.7 is not available in range set 10.0.0.1-10.0.0.9: held by container a (eth0)"
        );
        // Round-robin continues after the requested address.
        let g = allocate(&store, &mut ledger, 0, &s, "b", "eth0", None).unwrap();
        assert_eq!(g.ip.address.addr(), ip("10.0.0.8"));
        assert_eq!(ledger.first_free(&s), Some(ip("10.0.0.2")));
    }
}
