//! skiff's CNI plugins (`skiff-bridge`, `skiff-ipam`) and the kernel-facing pieces they
//! share with the agent.

pub mod spec;
