//! skiff-bridge: a drop-in for the reference `bridge` plugin. Pods get a veth pair
//! whose host end sits on a Linux bridge, addresses and routes from an IPAM plugin,
//! and, on request, masquerade and hostPort rules.

mod add;
mod check;
pub mod config;
mod del;
mod gateway;
mod ipam;

use std::collections::HashSet;
use std::path::Path;

use config::{BridgeConf, RuntimeArgs};

use crate::firewall::Firewall;
use crate::netlink::NetlinkError;
use crate::spec::{CniResult, Command, Environment, Error, ErrorCode, NetConf, Plugin};

pub struct Bridge;

impl Plugin for Bridge {
    fn known_args(&self) -> &[&str] {
        // host-local's key: the runtime passes CNI_ARGS through to the IPAM plugin.
        &["IP", "MAC"]
    }

    fn add(&self, env: &Environment, conf: &NetConf) -> Result<CniResult, Error> {
        let bc = BridgeConf::from_netconf(conf)?;
        let rt = RuntimeArgs::from_netconf(conf)?;
        block_on(add::add(env, conf, &bc, &rt))
    }

    fn del(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let bc = BridgeConf::from_netconf(conf)?;
        block_on(del::del(env, conf, &bc))
    }

    fn check(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let bc = BridgeConf::from_netconf(conf)?;
        let rt = RuntimeArgs::from_netconf(conf)?;
        block_on(check::check(env, conf, &bc, &rt))
    }

    fn status(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let bc = BridgeConf::from_netconf(conf)?;
        if bc.ip_masq || bc.macspoofchk {
            firewall(&bc).map_err(|e| {
                Error::new(ErrorCode::NotAvailable, e.msg.clone()).with_details(e.details)
            })?;
        }
        ipam::call(Command::Status, env, conf, bc.ipam_type(conf)).map(|_| ())
    }

    fn gc(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let bc = BridgeConf::from_netconf(conf)?;
        let mut first_err = ipam::call(Command::Gc, env, conf, bc.ipam_type(conf)).err();
        let keep: HashSet<(String, String)> = conf
            .valid_attachments
            .iter()
            .flatten()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        if crate::firewall::has_network_state(Path::new(&bc.state_dir), &conf.name) {
            let swept = firewall(&bc).and_then(|fw| {
                fw.gc(&conf.name, &keep)
                    .map_err(|e| Error::internal("failed to remove stale firewall rules", e))
            });
            if let Err(e) = swept {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn firewall(bc: &BridgeConf) -> Result<Firewall, Error> {
    Firewall::detect(&bc.firewall_table, Path::new(&bc.state_dir), bc.backend())
        .map_err(|e| Error::internal("no usable firewall (nftables or iptables)", e))
}

fn net_err(msg: &str, e: NetlinkError) -> Error {
    Error::internal(msg.to_string(), e)
}

/// The plugin is a short-lived process doing a handful of netlink round trips: one
/// current-thread runtime is all it needs.
fn block_on<T>(fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("failed to start the async runtime", e))?;
    rt.block_on(fut)
}
