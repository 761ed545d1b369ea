//! skiff-proxy: makes Services real on a node and answers cluster DNS.
//!
//! It watches Services and EndpointSlices through the Kubernetes API and keeps a
//! [`model::ProxyState`] — every service port with the endpoints that may serve it. A
//! [`dataplane::Dataplane`] (nftables by default, iptables or IPVS) programs the kernel from
//! that state, changing only what changed; the DNS server answers from the same watches.

pub mod daemon;
pub mod dataplane;
pub mod dns;
pub mod http;
pub mod metrics;
pub mod model;
pub mod sync;
