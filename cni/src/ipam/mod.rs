//! skiff-ipam: a drop-in replacement for the reference `host-local` IPAM plugin. Same
//! configuration, same files under the data dir, same lock and allocation order, so a
//! node can switch between the two (or run both) without losing an address. The bridge
//! plugin calls [`Ipam`] in-process; the `skiff-ipam` binary runs it through the CNI
//! protocol for any other runtime or plugin.

mod allocator;
mod config;
mod plugin;
mod range;
mod resolv;
mod store;

pub use config::{DEFAULT_DATA_DIR, IpamConfig};
pub use plugin::Ipam;
pub use range::{Range, RangeError, RangeSet};
