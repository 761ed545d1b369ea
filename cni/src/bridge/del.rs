use std::path::PathBuf;

use super::add::key;
use super::config::BridgeConf;
use super::{firewall, ipam, net_err};
use crate::netlink::{NetlinkError, netns};
use crate::spec::{Command, Environment, Error, NetConf};

/// Tears an attachment down. Every step runs even when an earlier one failed, the
/// address is released first so it can never leak, and a netns that is already gone
/// (reboot, crashed runtime) is not an error.
pub async fn del(env: &Environment, conf: &NetConf, bc: &BridgeConf) -> Result<(), Error> {
    let mut errors: Vec<Error> = Vec::new();
    // Firewall removal (an exec) and the address release overlap the link deletion,
    // which is the slow part: the kernel waits for an RCU grace period.
    let firewall_job =
        crate::firewall::has_state(std::path::Path::new(&bc.state_dir), &key(conf, env)).then(
            || {
                let (bc, key) = (bc.clone(), key(conf, env));
                std::thread::spawn(move || {
                    firewall(&bc)?
                        .del(&key)
                        .map_err(|e| Error::internal("failed to remove firewall rules", e))
                })
            },
        );
    let ipam_job = {
        let (env, conf, ipam_type) = (env.clone(), conf.clone(), bc.ipam_type(conf).to_string());
        std::thread::spawn(move || ipam::call(Command::Del, &env, &conf, &ipam_type).map(|_| ()))
    };
    if !env.netns.is_empty() {
        let path = PathBuf::from(&env.netns);
        match netns::open(&path) {
            Ok(_) => {
                let ifname = env.ifname.clone();
                let removed = netns::run_in(&path, move |nl| async move {
                    if let Some(link) = nl.link_by_name(&ifname).await? {
                        nl.delete_link(link.index).await?;
                    }
                    Ok(())
                })
                .await;
                if let Err(e) = removed {
                    errors.push(net_err("failed to delete the container interface", e));
                }
            }
            Err(NetlinkError::NetnsNotFound(_)) => {}
            Err(e) => {
                tracing::warn!(netns = %env.netns, error = %e, "netns unusable; its interfaces go with it")
            }
        }
    }
    for job in std::iter::once(ipam_job).chain(firewall_job) {
        match job.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.insert(0, e),
            Err(_) => errors.push(Error::new(
                crate::spec::ErrorCode::Internal,
                "teardown thread panicked",
            )),
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
