//! Service ports and endpoints for the backends' `plan()` tests.

use crate::model::{Endpoint, Protocol, ProxyState, ServicePort, ServicePortName};

/// `default/<n>:http/tcp`.
pub fn name(n: &str) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: n.into(),
        port: "http".into(),
        protocol: Protocol::Tcp,
    }
}

/// Port 80 on cluster IP `ip`, nothing else set.
pub fn port(ip: &str) -> ServicePort {
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

/// A ready endpoint on port 8080.
pub fn ep(ip: &str) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        node_name: None,
    }
}

/// `(name, cluster IP, endpoints)` per Service.
pub fn state(services: &[(&str, &str, &[&str])]) -> ProxyState {
    let mut s = ProxyState::default();
    for (n, ip, eps) in services {
        s.services
            .insert(name(n), (port(ip), eps.iter().map(|e| ep(e)).collect()));
    }
    s
}
