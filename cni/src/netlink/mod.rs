//! The kernel's network configuration over rtnetlink: links (bridge, veth, vxlan),
//! addresses, routes, neighbours and bridge fdb, bridge ports and VLANs, plus
//! network namespaces and sysctls. Shared by the CNI plugins and the agent.
//!
//! A [`Netlink`] talks to the namespace of the thread that opened it; to work
//! inside another namespace use [`netns::run_in`]. Every call is one or two
//! netlink round trips: lookups go by name or index, and dumps are filtered by the
//! kernel, so nothing here lists all links to find one.

mod addr;
mod bridge;
mod conn;
mod error;
mod link;
mod mac;
mod neigh;
pub mod netns;
mod route;
pub mod sysctl;
mod veth;
mod vxlan;

pub use bridge::BridgeOptions;
pub use conn::Netlink;
pub use error::NetlinkError;
pub use link::Link;
pub use mac::{format_mac, parse_mac};
pub use route::{Family, RouteSpec};
pub use veth::random_veth_name;
pub use vxlan::VxlanOptions;
