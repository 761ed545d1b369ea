//! The bridge plugin's firewall: masquerade of pod traffic (`ipMasq`), hostPort DNAT
//! (the `portMappings` capability, so no portmap plugin is needed) and the MAC spoof
//! check of pod bridge ports (`macspoofchk`, nftables only).
//!
//! Two backends behind one `Driver` trait, picked once: nftables (default, one
//! `nft -f -` transaction per operation) and iptables (one `iptables-restore --noflush`
//! per family). What `add` installed is recorded per attachment in a state directory,
//! so `del`, `check` and `gc` work from the record alone — without the netns, without
//! prevResult, after a reboot emptied the kernel tables — and always undo with the
//! backend that installed.
//!
//! Every kernel object is named from a prefix (production: [`DEFAULT_PREFIX`]), so tests
//! and independent installations coexist on one machine; the state directory and the
//! network namespace the commands run in are parameters too.

mod error;
mod exec;
mod iptables;
mod nftables;
mod rules;
mod state;

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::FirewallError;
pub use nftables::{LAYOUT as NFT_LAYOUT, skeleton as nftables_skeleton};
pub use rules::{AttachmentKey, PortMapping, Protocol, Rules, SpoofCheck};

use exec::Exec;
use iptables::Iptables;
use nftables::Nftables;
use state::{Record, StateDir};

/// The nft table / iptables chain prefix in production.
pub const DEFAULT_PREFIX: &str = "skiff-cni";

/// The packet mark bit that asks postrouting to masquerade a hostPort connection which
/// must come back through us: hairpin (from the target pod's own bridge, whose reply
/// would otherwise bypass the un-DNAT) and localhost. Bit 13, as the reference portmap
/// plugin uses, which keeps clear of kube-proxy's 0x4000/0x8000.
pub const HAIRPIN_MARK: u32 = 0x2000;

/// The longest prefix that leaves iptables chain names room for an 8-character hash.
const MAX_PREFIX: usize = 17;

/// Name of the file under the state directory caching which backend works here, so
/// detection costs one probe per machine rather than one exec per plugin call.
const BACKEND_CACHE: &str = ".backend";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = FirewallError;

    fn from_str(s: &str) -> Result<Backend, FirewallError> {
        match s.trim() {
            "nftables" | "nft" => Ok(Backend::Nftables),
            "iptables" => Ok(Backend::Iptables),
            other => Err(FirewallError::InvalidRules(format!(
                "unknown firewall backend {other:?} (nftables or iptables)"
            ))),
        }
    }
}

/// One firewall backend. Removal must succeed when what it removes is already gone.
trait Driver {
    /// Installs `new` for `key` atomically, replacing `old` (what the record said
    /// `key` had, installed by this same backend).
    fn install(
        &self,
        key: &AttachmentKey,
        old: Option<&Rules>,
        new: &Rules,
    ) -> Result<(), FirewallError>;

    /// Removes what each attachment installed, batched.
    fn remove(&self, all: &[(&AttachmentKey, &Rules)]) -> Result<(), FirewallError>;

    /// What of `rules` the kernel lacks, described; empty when all is there.
    fn missing(&self, key: &AttachmentKey, rules: &Rules) -> Result<Vec<String>, FirewallError>;

    /// Removes every kernel object of this prefix.
    fn purge(&self) -> Result<(), FirewallError>;
}

impl Driver for Nftables<'_> {
    fn install(
        &self,
        _key: &AttachmentKey,
        old: Option<&Rules>,
        new: &Rules,
    ) -> Result<(), FirewallError> {
        Nftables::install(self, old, new)
    }

    fn remove(&self, all: &[(&AttachmentKey, &Rules)]) -> Result<(), FirewallError> {
        let rules: Vec<&Rules> = all.iter().map(|(_, r)| *r).collect();
        Nftables::remove(self, &rules)
    }

    fn missing(&self, _key: &AttachmentKey, rules: &Rules) -> Result<Vec<String>, FirewallError> {
        Nftables::check(self, rules)
    }

    fn purge(&self) -> Result<(), FirewallError> {
        Nftables::purge(self)
    }
}

impl Driver for Iptables<'_> {
    fn install(
        &self,
        key: &AttachmentKey,
        old: Option<&Rules>,
        new: &Rules,
    ) -> Result<(), FirewallError> {
        Iptables::install(self, key, old, new)
    }

    fn remove(&self, all: &[(&AttachmentKey, &Rules)]) -> Result<(), FirewallError> {
        Iptables::remove(self, all)
    }

    fn missing(&self, key: &AttachmentKey, rules: &Rules) -> Result<Vec<String>, FirewallError> {
        Iptables::check(self, key, rules)
    }

    fn purge(&self) -> Result<(), FirewallError> {
        Iptables::purge(self)
    }
}

/// The pod firewall of one node (or one network namespace).
#[derive(Debug, Clone)]
pub struct Firewall {
    backend: Backend,
    prefix: String,
    state: StateDir,
    exec: Exec,
}

fn validate_prefix(prefix: &str) -> Result<(), FirewallError> {
    let reason = if prefix.is_empty() || prefix.len() > MAX_PREFIX {
        Some("must be 1-17 characters, to leave room in iptables chain names")
    } else if !prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("must be a letter followed by [A-Za-z0-9_-], to be an nft identifier")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FirewallError::InvalidPrefix {
            prefix: prefix.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Firewall {
    /// Picks nftables when `nft` works here, else iptables; `prefer` overrides (from
    /// config). Error if neither works. The probe's answer is cached in the state
    /// directory, so only the first call on a machine pays for it.
    pub fn detect(
        prefix: &str,
        state_dir: &Path,
        prefer: Option<Backend>,
    ) -> Result<Firewall, FirewallError> {
        Firewall::detect_in(prefix, state_dir, prefer, None)
    }

    /// [`Firewall::detect`] for the network namespace at `netns` (a path such as
    /// `/run/netns/NAME`): every command then runs there.
    pub fn detect_in(
        prefix: &str,
        state_dir: &Path,
        prefer: Option<Backend>,
        netns: Option<&Path>,
    ) -> Result<Firewall, FirewallError> {
        validate_prefix(prefix)?;
        let exec = Exec {
            netns: netns.map(Path::to_path_buf),
        };
        let backend = match prefer {
            Some(b) => b,
            None => probe(&exec, state_dir)?,
        };
        Ok(Firewall {
            backend,
            prefix: prefix.to_string(),
            state: StateDir::new(state_dir),
            exec,
        })
    }

    /// Runs every command in the network namespace at `path` instead of this process's.
    pub fn in_netns(mut self, path: impl Into<PathBuf>) -> Firewall {
        self.exec.netns = Some(path.into());
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this backend can enforce [`Rules::spoof_check`]; callers that know they
    /// will ask for it can fail before making anything else.
    pub fn spoof_check_available(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::Nftables => Ok(()),
            Backend::Iptables => Err(FirewallError::Unsupported {
                backend: "iptables",
                what: "check pod source MACs (macspoofchk)",
                why: "that needs bridge-family filtering, which here only nftables offers \
                      (there is no ebtables); use the nftables backend",
            }),
        }
    }

    /// Where `add` records `key`.
    pub fn state_path(&self, key: &AttachmentKey) -> PathBuf {
        self.state.path(key)
    }

    fn driver(&self, backend: Backend) -> Box<dyn Driver + '_> {
        match backend {
            Backend::Nftables => Box::new(Nftables {
                table: &self.prefix,
                exec: &self.exec,
            }),
            Backend::Iptables => Box::new(Iptables {
                prefix: &self.prefix,
                exec: &self.exec,
            }),
        }
    }

    /// Installs the rules for one attachment (ADD again for the same key replaces them)
    /// and records them; one nft exec, or one iptables-restore per family.
    pub fn add(&self, key: &AttachmentKey, rules: &Rules) -> Result<(), FirewallError> {
        key.validate()?;
        rules.validate()?;
        // Refused before anything is recorded or removed, so a refused ADD changes nothing.
        if rules.spoof_check.is_some() {
            self.spoof_check_available()?;
        }
        let _lock = self.state.lock()?;
        let old = match self.state.read(key) {
            Ok(old) => old,
            // The record is replaced anyway; what it described cannot be known.
            Err(e @ FirewallError::StateFormat { .. }) => {
                tracing::warn!(%key, error = %e, "ignoring corrupt firewall record");
                None
            }
            Err(e) => return Err(e),
        };
        // nftables refuses a taken hostPort in the kernel; iptables has no such arbiter,
        // so the records (under the lock) are.
        if self.backend == Backend::Iptables {
            self.check_conflicts(key, rules)?;
        }
        let mut replaced = None;
        if let Some(old) = &old {
            if old.backend == self.backend {
                replaced = Some(&old.rules);
            } else {
                self.driver(old.backend).remove(&[(key, &old.rules)])?;
            }
        }
        let record = Record {
            backend: self.backend,
            key: key.clone(),
            rules: rules.clone(),
            boot_id: state::boot_id(),
        };
        // Recorded before the kernel is touched: a record without rules is harmless to
        // DEL, rules without a record would leak.
        self.state.write(&record)?;
        let installed = self.driver(self.backend).install(key, replaced, rules);
        if let Err(err) = installed {
            let restored = match &old {
                Some(old) => self.state.write(old),
                None => self.state.remove(key),
            };
            if let Err(e) = restored {
                tracing::warn!(%key, error = %e, "could not restore the firewall record");
            }
            return Err(self.name_owner(err));
        }
        tracing::debug!(%key, backend = %self.backend, "firewall rules installed");
        Ok(())
    }

    fn check_conflicts(&self, key: &AttachmentKey, rules: &Rules) -> Result<(), FirewallError> {
        let mine = rules.dnats()?;
        let boot = state::boot_id();
        for other in self.state.list_all() {
            if &other.key == key || !other.is_of_this_boot(boot.as_deref()) {
                continue;
            }
            let Ok(theirs) = other.rules.dnats() else {
                continue;
            };
            if let Some(d) = mine
                .iter()
                .find(|d| theirs.iter().any(|t| t.slot() == d.slot()))
            {
                return Err(FirewallError::PortConflict {
                    mapping: d.describe(),
                    owner: Some(other.key),
                });
            }
        }
        Ok(())
    }

    /// Fills in who holds a conflicting hostPort, from the records.
    fn name_owner(&self, err: FirewallError) -> FirewallError {
        let FirewallError::PortConflict {
            mapping,
            owner: None,
        } = err
        else {
            return err;
        };
        let boot = state::boot_id();
        let owner = self.state.list_all().into_iter().find_map(|r| {
            if !r.is_of_this_boot(boot.as_deref()) {
                return None;
            }
            r.rules
                .dnats()
                .ok()?
                .iter()
                .any(|d| d.describe() == mapping)
                .then_some(r.key)
        });
        FirewallError::PortConflict { mapping, owner }
    }

    /// Removes what `add` installed for the key, from its record; no record is Ok.
    pub fn del(&self, key: &AttachmentKey) -> Result<(), FirewallError> {
        key.validate()?;
        let _lock = self.state.lock()?;
        let record = match self.state.read(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(()),
            // Nothing can be undone from it, and failing DEL would wedge the pod.
            Err(e @ FirewallError::StateFormat { .. }) => {
                tracing::warn!(%key, error = %e, "dropping corrupt firewall record");
                return self.state.remove(key);
            }
            Err(e) => return Err(e),
        };
        self.driver(record.backend)
            .remove(&[(key, &record.rules)])?;
        self.state.remove(key)
    }

    /// Verifies the kernel still holds this key's rules (CNI CHECK).
    pub fn check(&self, key: &AttachmentKey) -> Result<(), FirewallError> {
        key.validate()?;
        let record = self
            .state
            .read(key)?
            .ok_or_else(|| FirewallError::NotFound { key: key.clone() })?;
        let missing = self.driver(record.backend).missing(key, &record.rules)?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FirewallError::Missing {
                key: key.clone(),
                what: missing.join(", "),
            })
        }
    }

    /// Removes every attachment of `network` whose (container_id, ifname) is not in
    /// `keep` (CNI GC), in one transaction per backend.
    pub fn gc(&self, network: &str, keep: &HashSet<(String, String)>) -> Result<(), FirewallError> {
        rules::validate_network(network)?;
        let _lock = self.state.lock()?;
        let (records, unreadable) = self.state.list(network)?;
        for e in unreadable {
            tracing::warn!(network, error = %e, "skipping unreadable firewall record");
        }
        let stale: Vec<&Record> = records
            .iter()
            .filter(|r| !keep.contains(&(r.key.container_id.clone(), r.key.ifname.clone())))
            .collect();
        let mut errors = Vec::new();
        for backend in [Backend::Nftables, Backend::Iptables] {
            let batch: Vec<(&AttachmentKey, &Rules)> = stale
                .iter()
                .filter(|r| r.backend == backend)
                .map(|r| (&r.key, &r.rules))
                .collect();
            if batch.is_empty() {
                continue;
            }
            match self.driver(backend).remove(&batch) {
                Ok(()) => {
                    for (key, _) in &batch {
                        if let Err(e) = self.state.remove(key) {
                            errors.push(e);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        tracing::debug!(network, removed = stale.len(), "firewall gc");
        FirewallError::collect(errors)
    }

    /// Removes everything this prefix owns in the kernel, in both backends where their
    /// tools exist, and every record in the state directory: for uninstalling, and for
    /// tests to leave nothing behind.
    pub fn purge(&self) -> Result<(), FirewallError> {
        let _lock = self.state.lock()?;
        let mut errors = Vec::new();
        if exec::find_tool("nft").is_ok()
            && let Err(e) = self.driver(Backend::Nftables).purge()
        {
            errors.push(e);
        }
        if exec::find_tool("iptables-save").is_ok()
            && let Err(e) = self.driver(Backend::Iptables).purge()
        {
            errors.push(e);
        }
        for record in self.state.list_all() {
            if let Err(e) = self.state.remove(&record.key) {
                errors.push(e);
            }
        }
        FirewallError::collect(errors)
    }
}

/// Whether `add` recorded `key` under `state_dir`: lets DEL skip backend detection for
/// attachments that never had firewall rules.
pub fn has_state(state_dir: &Path, key: &AttachmentKey) -> bool {
    key.validate().is_ok() && StateDir::new(state_dir).path(key).is_file()
}

/// Whether any attachment of `network` is recorded under `state_dir` (GC's shortcut).
pub fn has_network_state(state_dir: &Path, network: &str) -> bool {
    rules::validate_network(network).is_ok()
        && fs::read_dir(state_dir.join(network)).is_ok_and(|mut entries| {
            entries.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')))
        })
}

/// Which backend works here: the cached answer, or nft's if it can list tables, or
/// iptables' if it can save the nat table.
fn probe(exec: &Exec, state_dir: &Path) -> Result<Backend, FirewallError> {
    let cache = state_dir.join(BACKEND_CACHE);
    if let Some(b) = fs::read_to_string(&cache)
        .ok()
        .and_then(|s| s.parse::<Backend>().ok())
    {
        return Ok(b);
    }
    let backend = match exec.run("nft", &["list", "tables"], None) {
        Ok(_) => Backend::Nftables,
        Err(nft) => match exec.run("iptables-save", &["-t", "nat"], None) {
            Ok(_) => Backend::Iptables,
            Err(ipt) => {
                return Err(FirewallError::NoBackend {
                    nftables: Box::new(nft),
                    iptables: Box::new(ipt),
                });
            }
        },
    };
    // Only an optimisation: a state directory we cannot write fails later, with context.
    if fs::create_dir_all(state_dir).is_ok() {
        let _ = fs::write(&cache, backend.as_str());
    }
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for ok in ["skiff-cni", "skt-4194304-99", "a", "abcdefghijklmnopq"] {
            validate_prefix(ok).unwrap();
        }
        for bad in ["", "1abc", "a b", "abcdefghijklmnopqr", "x;y", "a.b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backend_names() {
        assert_eq!("nftables".parse::<Backend>().unwrap(), Backend::Nftables);
        assert_eq!("iptables".parse::<Backend>().unwrap(), Backend::Iptables);
        assert!("ipvs".parse::<Backend>().is_err());
        assert_eq!(
            serde_json::to_string(&Backend::Iptables).unwrap(),
            "\"iptables\""
        );
    }

    #[test]
    fn cached_backend_skips_the_probe() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(BACKEND_CACHE), "iptables").unwrap();
        let exec = Exec {
            netns: Some("/nonexistent/netns".into()),
        };
        assert_eq!(probe(&exec, dir.path()).unwrap(), Backend::Iptables);
    }
}
