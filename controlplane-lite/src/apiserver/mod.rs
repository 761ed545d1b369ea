//! The Kubernetes REST API server.

pub mod alloc;
pub mod authz;
pub mod bootstrap_token;
pub mod codec;
pub mod conversion;
pub mod discovery;
pub mod handlers;
pub mod kinds;
pub mod metrics;
pub mod nodes;
pub mod object;
pub mod openapi;
pub mod printers;
pub mod protobuf;
pub mod registry;
pub mod response;
pub mod route;
pub mod selectors;
pub mod server;
pub mod status;
