//! Which service ports differ between two states: what a backend has to rewrite.

use std::collections::BTreeSet;

use super::{ProxyState, ServicePortName};

/// The service ports added, removed or changed (addresses, ports, policies or endpoints)
/// from `old` to `new`.
pub fn changed_service_ports(old: &ProxyState, new: &ProxyState) -> BTreeSet<ServicePortName> {
    let mut changed = BTreeSet::new();
    for (name, value) in &new.services {
        if old.services.get(name) != Some(value) {
            changed.insert(name.clone());
        }
    }
    for name in old.services.keys() {
        if !new.services.contains_key(name) {
            changed.insert(name.clone());
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort};

    fn name(n: &str) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: n.into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        }
    }

    fn port(ip: &str) -> ServicePort {
        ServicePort {
            cluster_ips: vec![ip.parse().unwrap()],
            port: 80,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
        }
    }

    fn endpoint(ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready,
            serving: ready,
            terminating: false,
            node_name: None,
        }
    }

    #[test]
    fn names_added_removed_and_changed_ports_only() {
        let mut old = ProxyState::default();
        old.services.insert(
            name("same"),
            (port("10.96.0.1"), vec![endpoint("10.1.0.1", true)]),
        );
        old.services
            .insert(name("gone"), (port("10.96.0.2"), vec![]));
        old.services.insert(
            name("flip"),
            (port("10.96.0.3"), vec![endpoint("10.1.0.3", true)]),
        );
        let mut new = old.clone();
        new.services.remove(&name("gone"));
        new.services.insert(
            name("flip"),
            (port("10.96.0.3"), vec![endpoint("10.1.0.3", false)]),
        );
        new.services
            .insert(name("added"), (port("10.96.0.4"), vec![]));

        let changed = changed_service_ports(&old, &new);
        let expected: BTreeSet<_> = ["gone", "flip", "added"].into_iter().map(name).collect();
        assert_eq!(changed, expected);
        assert!(changed_service_ports(&new, &new).is_empty());
    }
}
