use crate::ipam::Ipam;
use crate::spec::{CniResult, Command, Environment, Error, NetConf, Plugin, delegate};

/// Runs the configured IPAM plugin. skiff-ipam is called in-process (the same code its
/// binary runs, minus a fork and exec); any other type is delegated through the spec's
/// protocol, so host-local, static or dhcp work too.
pub fn call(
    command: Command,
    env: &Environment,
    conf: &NetConf,
    ipam_type: &str,
) -> Result<Option<CniResult>, Error> {
    if ipam_type == "skiff-ipam" {
        let ipam = Ipam;
        return match command {
            Command::Add => ipam.add(env, conf).map(Some),
            Command::Del => ipam.del(env, conf).map(|_| None),
            Command::Check => ipam.check(env, conf).map(|_| None),
            Command::Status => ipam.status(env, conf).map(|_| None),
            Command::Gc => ipam.gc(env, conf).map(|_| None),
            Command::Version => Ok(None),
        };
    }
    delegate(ipam_type, &conf.bytes, env, command)
}
