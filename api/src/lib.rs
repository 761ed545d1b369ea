//! skiff shared API model: the pure rules every component agrees on.
//!
//! Nothing here does I/O (but `prom` reading `/proc/self` for process metrics); the API server, scheduler, controllers and agent
//! call these to parse, match, validate and patch exactly as Kubernetes does.

pub mod fields;
pub mod labels;
pub mod names;
pub mod prom;
pub mod quantity;
pub mod strategic_merge;
