//! The pod network across nodes, in flannel's model: every node holds one pod range (its
//! `spec.podCIDR`, from the control plane's node IPAM) and the agent keeps, for every
//! *other* node with a range and an address, a route to that range.
//!
//! - `vxlan` (the default): a VXLAN device [`VXLAN_DEVICE`] carries pod traffic between
//!   nodes over UDP, so nodes only need to reach each other's addresses. Each remote range
//!   is routed via that node's VTEP address (the range's network address) `onlink` on the
//!   device, with a permanent neighbour entry for the VTEP address and a forwarding entry
//!   sending the VTEP's MAC to the node's address.
//! - `host-gw`: each remote range is routed via the node's own address; only possible
//!   where the nodes share a link.
//!
//! The agent owns what it makes: the VXLAN device, and routes of protocol
//! [`ROUTE_PROTOCOL`]. Everything acts on the agent's current network namespace.

pub mod hostgw;
pub mod ip;
pub mod node;
pub mod plan;
pub mod sync;
pub mod vxlan;

pub use node::NodeNet;
pub use plan::{Changes, Plan, Route};
pub use sync::{PodNetwork, wait_for_pod_cidr};

/// The VXLAN device (flannel's is `flannel.1`: the suffix is the VNI).
pub const VXLAN_DEVICE: &str = "skiff.1";
/// The VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// The UDP port VXLAN runs on (the Linux default, which flannel uses too).
pub const VXLAN_PORT: u16 = 8472;
/// What the VXLAN header and the outer headers take from the underlying link's MTU.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The route protocol of the routes the agent makes (`ip route show proto 83`): not one
/// of the reserved numbers in `/etc/iproute2/rt_protos`, so the agent finds its own routes
/// and leaves everyone else's alone.
pub const ROUTE_PROTOCOL: u8 = 0x53;
/// The annotation holding a node's VTEP MAC.
pub const ANNOTATION_VXLAN_MAC: &str = "skiff.dev/vxlan-mac";
/// The annotation holding the address other nodes reach a node's pods through.
pub const ANNOTATION_PUBLIC_IP: &str = "skiff.dev/public-ip";

/// How pods reach pods on other nodes (`--pod-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Vxlan,
    HostGw,
    /// No routes between nodes: each node's pods reach only the node's own pods.
    None,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "vxlan" => Ok(Mode::Vxlan),
            "host-gw" => Ok(Mode::HostGw),
            "none" => Ok(Mode::None),
            _ => Err(format!("{s:?}: expected vxlan, host-gw or none")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Vxlan => "vxlan",
            Mode::HostGw => "host-gw",
            Mode::None => "none",
        })
    }
}

/// Why the pod network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("running {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("reading the output of `{command}`: {reason}")]
    Output { command: String, reason: String },
    #[error("{0}")]
    Setup(String),
}

/// Removes what an agent made: its VXLAN device (with the neighbour and forwarding entries
/// on it) and its routes. Problems are returned, not fatal.
pub fn down() -> Vec<String> {
    let mut left = Vec::new();
    if let Err(e) = vxlan::remove() {
        left.push(format!("{VXLAN_DEVICE}: {e}"));
    }
    if let Err(e) = ip::flush_routes() {
        left.push(format!("routes of protocol {ROUTE_PROTOCOL}: {e}"));
    }
    left
}
