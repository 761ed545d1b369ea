use std::net::IpAddr;

use super::allocator::{Ledger, allocate};
use super::config::{IpamConfig, data_dir_of, requested_ips};
use super::resolv;
use super::store::{Owner, Store, StoreError};
use crate::spec::{CniResult, Dns, Environment, Error, ErrorCode, IpConfig, NetConf, Plugin};

/// The skiff-ipam plugin: host-local's configuration, files and allocation order, so the
/// two can replace each other on a node without losing an address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ipam;

impl Plugin for Ipam {
    fn known_args(&self) -> &[&str] {
        &["IP"]
    }

    fn add(&self, env: &Environment, conf: &NetConf) -> Result<CniResult, Error> {
        let cfg = IpamConfig::from_netconf(conf)?;
        let wanted = per_set(&cfg, requested_ips(conf, env)?, &conf.name)?;
        let dns = match &cfg.resolv_conf {
            Some(path) => resolv::read(path)?,
            None => Dns::default(),
        };
        let store = Store::open(&cfg.data_dir, &conf.name)?;
        let mut ledger = Ledger::new(store.scan()?);
        let mut ips = Vec::with_capacity(cfg.range_sets.len());
        let mut made = Vec::new();
        for (i, set) in cfg.range_sets.iter().enumerate() {
            let grant = allocate(
                &store,
                &mut ledger,
                i,
                set,
                &env.container_id,
                &env.ifname,
                wanted[i],
            );
            match grant {
                Ok(g) => {
                    if g.new {
                        made.push(g.ip.address.addr());
                    }
                    ips.push(g.ip);
                }
                Err(e) => {
                    undo(&store, &made);
                    return Err(e);
                }
            }
        }
        if !made.is_empty()
            && let Err(e) = store.sync(&made)
        {
            undo(&store, &made);
            return Err(e.into());
        }
        tracing::debug!(network = %conf.name, container = %env.container_id, ifname = %env.ifname, ?ips, "addresses assigned");
        Ok(CniResult {
            ips,
            routes: cfg.routes,
            dns,
            ..CniResult::default()
        })
    }

    /// Needs neither the netns nor valid ranges: only the network's directory.
    fn del(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let Some(store) = Store::open_existing(&data_dir_of(conf)?, &conf.name)? else {
            return Ok(());
        };
        let all = store.scan()?;
        let exact: Vec<IpAddr> = all
            .iter()
            .filter(|a| a.owner.is_exactly(&env.container_id, &env.ifname))
            .map(|a| a.ip)
            .collect();
        // As host-local does, old id-only files count only when no exact file exists, so
        // deleting one interface of a container leaves its other interfaces alone.
        let mine = if exact.is_empty() {
            all.iter()
                .filter(|a| matches!(&a.owner, Owner::Container(id) if *id == env.container_id))
                .map(|a| a.ip)
                .collect()
        } else {
            exact
        };
        release_all(&store, &mine)
    }

    fn check(&self, env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let cfg = IpamConfig::from_netconf(conf)?;
        let Some(prev) = &conf.prev_result else {
            return Err(Error::config("CHECK needs prevResult in the configuration"));
        };
        let who = format!("container {} ({})", env.container_id, env.ifname);
        let held = match Store::open_existing(&cfg.data_dir, &conf.name)? {
            Some(store) => Ledger::new(store.scan()?).held_by(&env.container_id, &env.ifname),
            None => Vec::new(),
        };
        for (i, set) in cfg.range_sets.iter().enumerate() {
            let have: Vec<IpAddr> = held
                .iter()
                .copied()
                .filter(|ip| set.contains(*ip))
                .collect();
            let listed: Vec<IpAddr> = prev
                .ips
                .iter()
                .map(|c| c.address.addr())
                .filter(|ip| set.contains(*ip))
                .collect();
            if have.is_empty() {
                return Err(Error::new(
                    ErrorCode::Internal,
                    format!(
                        "{who} holds no address in range set {i} ({set}) of network {}",
                        conf.name
                    ),
                ));
            }
            if let Some(ip) = listed.iter().find(|ip| !have.contains(ip)) {
                return Err(Error::new(
                    ErrorCode::Internal,
                    format!(
                        "prevResult lists {ip}, but {who} does not hold it (it holds {have:?})"
                    ),
                ));
            }
            if let Some(ip) = have.iter().find(|ip| !listed.contains(ip)) {
                return Err(Error::new(
                    ErrorCode::Internal,
                    format!("{who} holds {ip}, but prevResult does not list it"),
                ));
            }
        }
        Ok(())
    }

    fn status(&self, _env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let cfg = IpamConfig::from_netconf(conf)?;
        let Some(store) = Store::open_existing(&cfg.data_dir, &conf.name)? else {
            return Ok(());
        };
        let ledger = Ledger::new(store.scan()?);
        match cfg
            .range_sets
            .iter()
            .find(|s| ledger.first_free(s).is_none())
        {
            Some(set) => Err(Error::new(
                ErrorCode::NotAvailable,
                format!("no IP addresses available in range set: {set}"),
            )),
            None => Ok(()),
        }
    }

    fn gc(&self, _env: &Environment, conf: &NetConf) -> Result<(), Error> {
        let Some(valid) = &conf.valid_attachments else {
            return Err(Error::config(
                "GC needs cni.dev/valid-attachments in the configuration",
            ));
        };
        let Some(store) = Store::open_existing(&data_dir_of(conf)?, &conf.name)? else {
            return Ok(());
        };
        let stale: Vec<IpAddr> = store
            .scan()?
            .into_iter()
            .filter(|a| !a.owner.is_any_of(valid))
            .map(|a| a.ip)
            .collect();
        if !stale.is_empty() {
            tracing::debug!(network = %conf.name, ?stale, "releasing addresses of gone attachments");
        }
        release_all(&store, &stale)
    }
}

impl Ipam {
    /// The addresses an attachment holds in this network, shaped as ADD returned them,
    /// without changing anything.
    pub fn held(
        &self,
        conf: &NetConf,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<IpConfig>, Error> {
        let cfg = IpamConfig::from_netconf(conf)?;
        let Some(store) = Store::open_existing(&cfg.data_dir, &conf.name)? else {
            return Ok(Vec::new());
        };
        let held = Ledger::new(store.scan()?).held_by(container_id, ifname);
        let mut out: Vec<(usize, IpConfig)> = held
            .into_iter()
            .map(|ip| {
                let found = cfg
                    .set_for(ip)
                    .and_then(|(i, s)| s.range_for(ip).map(|r| (i, r)));
                let config = IpConfig {
                    interface: None,
                    address: found.map_or_else(|| ip.into(), |(_, r)| r.with_prefix(ip)),
                    gateway: found.map(|(_, r)| r.gateway),
                };
                (found.map_or(usize::MAX, |(i, _)| i), config)
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, c)| c).collect())
    }
}

/// Sorts the requested addresses into their range sets, refusing any that no range
/// holds, that is a gateway, or that shares a set with another.
fn per_set(
    cfg: &IpamConfig,
    requested: Vec<IpAddr>,
    network: &str,
) -> Result<Vec<Option<IpAddr>>, Error> {
    let mut wanted = vec![None; cfg.range_sets.len()];
    for ip in requested {
        let Some((i, set)) = cfg.set_for(ip) else {
            let sets: Vec<String> = cfg.range_sets.iter().map(ToString::to_string).collect();
            return Err(Error::config(format!(
                "requested IP address {ip} is not in any range of network {network} ({})",
                sets.join("; ")
            )));
        };
        if set.range_for(ip).is_some_and(|r| r.gateway == ip) {
            return Err(Error::config(format!(
                "requested IP address {ip} is the gateway of range set {i} ({set})"
            )));
        }
        if let Some(other) = wanted[i].replace(ip) {
            return Err(Error::config(format!(
                "requested IP addresses {other} and {ip} are both in range set {i} ({set}); an attachment gets one address per range set"
            )));
        }
    }
    Ok(wanted)
}

fn undo(store: &Store, made: &[IpAddr]) {
    for ip in made {
        if let Err(e) = store.release(*ip) {
            tracing::warn!(%ip, error = %e, "failed to release an address after a failed ADD");
        }
    }
}

/// Releases every address, carrying on past failures and reporting them all.
fn release_all(store: &Store, ips: &[IpAddr]) -> Result<(), Error> {
    let errors: Vec<StoreError> = ips
        .iter()
        .filter_map(|ip| store.release(*ip).err())
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let details: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Err(Error::new(
        ErrorCode::Io,
        format!(
            "failed to release {} of {} addresses",
            errors.len(),
            ips.len()
        ),
    )
    .with_details(details.join("; ")))
}
