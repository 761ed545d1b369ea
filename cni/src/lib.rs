//! skiff's CNI plugins (`skiff-bridge`, `skiff-ipam`) and the kernel-facing pieces they
//! share with the agent.

pub mod bridge;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod spec;
