//! The CNI protocol (spec 1.1): versions, configuration, results, errors, the
//! environment a runtime sets, delegation to other plugins, and the command dispatch
//! every skiff plugin shares.

mod args;
mod config;
mod delegate;
mod env;
mod error;
mod plugin;
mod result;
mod version;

pub use args::CniArgs;
pub use config::{Attachment, NetConf};
pub use delegate::{delegate, find_plugin};
pub use env::{Command, Environment};
pub use error::{Error, ErrorCode};
pub use plugin::{Plugin, run, run_with};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{SUPPORTED_VERSIONS, Version};
