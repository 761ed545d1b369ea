//! The iptables backend: `SKIFF-*` chains in the `nat` and `filter` tables, written with
//! `iptables-restore --noflush`, in the shape of kube-proxy's iptables mode.
//!
//! The first sync (and any sync after a failed one) writes every chain and deletes the
//! `SKIFF-*` chains it no longer wants, found with `iptables-save`. Later syncs write only
//! the chains of the changed service ports whose rules differ, rewrite a dispatch chain
//! (`SKIFF-SERVICES`, …) only when its content changed, and delete the chains that went.
//! IPv4 only: IPv6 addresses are skipped.

mod config;
mod exec;
mod names;
mod ruleset;

pub use config::IptablesConfig;
pub use names::{endpoint_chain, external_chain, service_chain};
pub use ruleset::{Existing, Table};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::model::{ProxyState, ServicePortName};

use super::conntrack::{self, Flush, UdpRecord, udp_flushes};
use super::{Dataplane, DataplaneError, SyncStats};
use ruleset::{Dispatch, DispatchRules, ServiceRules};

/// What the kernel holds, as far as this backend knows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Programmed {
    /// Every programmed service port's chains and dispatch lines.
    services: BTreeMap<ServicePortName, ServiceRules>,
    /// The dispatch chains' content.
    dispatch: DispatchRules,
    /// Rules in the service ports' own chains.
    chain_rules: usize,
    /// UDP service ports: what their stale conntrack entries would be found by.
    udp: HashMap<ServicePortName, UdpRecord>,
}

/// How the record changes once a transaction is committed.
#[derive(Debug)]
enum Delta {
    Full(Programmed),
    Incremental {
        services: Vec<(ServicePortName, Option<ServiceRules>)>,
        dispatch: Vec<(Dispatch, Vec<String>)>,
        udp: Vec<(ServicePortName, Option<UdpRecord>)>,
    },
}

/// An `iptables-restore` input and how the record changes once it is applied.
#[derive(Debug)]
pub struct Plan {
    pub text: String,
    pub full: bool,
    /// Stale UDP flows to delete once the rules are in place.
    pub conntrack: Vec<Flush>,
    delta: Delta,
}

/// One table's part of an `iptables-restore` input: declarations (which create or flush a
/// chain) come first, then the jumps deleted from and inserted into chains that are not
/// ours, then new rules, then chain deletions.
#[derive(Debug, Default)]
struct Section {
    declare: Vec<String>,
    jumps: String,
    rules: String,
    delete_chains: String,
}

impl Section {
    fn declare(&mut self, chain: &str) {
        self.declare.push(chain.to_string());
    }

    fn chain(&mut self, chain: &str, rules: &[String]) {
        self.declare(chain);
        for rule in rules {
            let _ = writeln!(self.rules, "-A {chain} {rule}");
        }
    }

    /// Flushes and deletes a chain; whatever jumps to it must be gone by then.
    fn remove(&mut self, chain: &str) {
        self.declare(chain);
        let _ = writeln!(self.delete_chains, "-X {chain}");
    }

    fn is_empty(&self) -> bool {
        self.declare.is_empty()
            && self.jumps.is_empty()
            && self.rules.is_empty()
            && self.delete_chains.is_empty()
    }

    fn write(&self, table: Table, out: &mut String) {
        if self.is_empty() {
            return;
        }
        let _ = writeln!(out, "*{}", table.name());
        // In reverse name order: iptables-nft keeps a table's chains in a list sorted by
        // name and walks it from the head to insert one, so a chain that sorts first costs
        // nothing and a restore of thousands of chains in any other order is quadratic.
        let mut declare: Vec<&String> = self.declare.iter().collect();
        declare.sort_unstable_by(|a, b| b.cmp(a));
        for chain in declare {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        out.push_str(&self.jumps);
        out.push_str(&self.rules);
        out.push_str(&self.delete_chains);
        out.push_str("COMMIT\n");
    }
}

/// The `nat` and `filter` sections of one input.
#[derive(Debug, Default)]
struct Restore {
    nat: Section,
    filter: Section,
}

impl Restore {
    fn table(&mut self, table: Table) -> &mut Section {
        match table {
            Table::Nat => &mut self.nat,
            Table::Filter => &mut self.filter,
        }
    }

    fn text(&self) -> String {
        let mut out = String::with_capacity(
            32 * self.nat.declare.len() + self.nat.rules.len() + self.filter.rules.len() + 256,
        );
        self.nat.write(Table::Nat, &mut out);
        self.filter.write(Table::Filter, &mut out);
        out
    }
}

/// The iptables [`Dataplane`].
#[derive(Debug)]
pub struct Iptables {
    cfg: IptablesConfig,
    /// `None` until a full sync succeeded, and again after any failure.
    programmed: Option<Programmed>,
}

impl Iptables {
    pub fn new(cfg: IptablesConfig) -> Self {
        Iptables {
            cfg,
            programmed: None,
        }
    }

    pub fn config(&self) -> &IptablesConfig {
        &self.cfg
    }

    /// Whether the next sync writes everything (and so wants to know what exists).
    pub fn needs_full_sync(&self) -> bool {
        self.programmed.is_none()
    }

    /// The input the next sync would give `iptables-restore`: pure, so it is tested without
    /// a kernel. `existing` (what `iptables-save` found) is read only by a full sync.
    pub fn plan(
        &self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
        existing: &Existing,
    ) -> Plan {
        match &self.programmed {
            None => self.plan_full(state, existing),
            Some(old) => self.plan_incremental(old, state, changed),
        }
    }

    fn commit(&mut self, plan: Plan) {
        match plan.delta {
            Delta::Full(programmed) => self.programmed = Some(programmed),
            Delta::Incremental {
                services,
                dispatch,
                udp,
            } => {
                let Some(p) = self.programmed.as_mut() else {
                    return;
                };
                for (name, rules) in services {
                    let old = match rules {
                        Some(rules) => {
                            p.chain_rules += rules.chain_rules();
                            p.services.insert(name, rules)
                        }
                        None => p.services.remove(&name),
                    };
                    p.chain_rules -= old.map_or(0, |r| r.chain_rules());
                }
                for (d, rules) in dispatch {
                    p.dispatch[d as usize] = rules;
                }
                for (name, record) in udp {
                    match record {
                        Some(record) => p.udp.insert(name, record),
                        None => p.udp.remove(&name),
                    };
                }
            }
        }
    }

    /// Rules programmed in all: the fixed ones, the dispatch chains and the service chains.
    fn rules(&self) -> usize {
        self.programmed.as_ref().map_or(0, |p| {
            ruleset::fixed_rules(&self.cfg)
                + p.chain_rules
                + p.dispatch.iter().map(Vec::len).sum::<usize>()
        })
    }

    fn service_rules(&self, state: &ProxyState, name: &ServicePortName) -> Option<ServiceRules> {
        state
            .services
            .get(name)
            .map(|(port, endpoints)| ruleset::service_rules(&self.cfg, name, port, endpoints))
            .filter(|r| !r.is_empty())
    }

    fn plan_full(&self, state: &ProxyState, existing: &Existing) -> Plan {
        let mut restore = Restore::default();
        let mut programmed = Programmed::default();
        let mut wanted: BTreeSet<(Table, String)> = BTreeSet::new();
        for (table, chain, rules) in ruleset::fixed_chains(&self.cfg) {
            restore.table(table).chain(chain, &rules);
            wanted.insert((table, chain.to_string()));
        }
        for (name, (port, endpoints)) in &state.services {
            let rules = ruleset::service_rules(&self.cfg, name, port, endpoints);
            if let Some(record) = UdpRecord::new(name, port, endpoints) {
                programmed.udp.insert(name.clone(), record);
            }
            if rules.is_empty() {
                continue;
            }
            for (chain, chain_rules) in &rules.chains {
                restore.nat.chain(chain, chain_rules);
                wanted.insert((Table::Nat, chain.clone()));
            }
            programmed.chain_rules += rules.chain_rules();
            programmed.services.insert(name.clone(), rules);
        }
        for d in Dispatch::ALL {
            let rules = ruleset::dispatch_chain(&self.cfg, d, programmed.services.values());
            restore.table(d.table()).chain(d.chain(), &rules);
            wanted.insert((d.table(), d.chain().to_string()));
            programmed.dispatch[d as usize] = rules;
        }

        // Jumps from the built-in chains: exactly one each, as written now, whatever an
        // earlier run left (duplicates, or another shape of the same jump). A jump to a
        // chain that goes is deleted with it; someone else's jump to a chain that stays is
        // theirs.
        let jumps = ruleset::jumps();
        let mut kept: BTreeSet<(Table, &str, &str)> = BTreeSet::new();
        for (table, chain, rule, target) in &existing.jumps {
            let ours = jumps
                .iter()
                .find(|j| j.table == *table && j.chain == chain && j.target == target);
            let delete = match ours {
                Some(j) => j.rule != *rule || !kept.insert((j.table, j.chain, j.target)),
                None => !wanted.contains(&(*table, target.clone())),
            };
            if delete {
                let _ = writeln!(restore.table(*table).jumps, "-D {chain} {rule}");
            }
        }
        for jump in &jumps {
            if !kept.contains(&(jump.table, jump.chain, jump.target)) {
                let _ = writeln!(
                    restore.table(jump.table).jumps,
                    "-I {} 1 {}",
                    jump.chain,
                    jump.rule
                );
            }
        }
        // Chains of ours nobody wants any more (Services deleted while the proxy was down).
        for (table, chain) in &existing.chains {
            if !wanted.contains(&(*table, chain.clone())) {
                restore.table(*table).remove(chain);
            }
        }
        Plan {
            text: restore.text(),
            full: true,
            conntrack: Vec::new(),
            delta: Delta::Full(programmed),
        }
    }

    fn plan_incremental(
        &self,
        old: &Programmed,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Plan {
        let mut restore = Restore::default();
        let mut services = Vec::new();
        let mut udp = Vec::new();
        let mut flushes = Vec::new();
        let mut dispatch_touched = [false; 4];
        let no_rules = ServiceRules::default();
        for name in changed {
            let old_udp = old.udp.get(name);
            let new_udp = state
                .services
                .get(name)
                .and_then(|(port, endpoints)| UdpRecord::new(name, port, endpoints));
            flushes.extend(udp_flushes(old_udp, new_udp.as_ref()));
            if old_udp != new_udp.as_ref() {
                udp.push((name.clone(), new_udp));
            }

            let before = old.services.get(name);
            let after = self.service_rules(state, name);
            if before == after.as_ref() {
                continue;
            }
            let (b, a) = (
                before.unwrap_or(&no_rules),
                after.as_ref().unwrap_or(&no_rules),
            );
            // Only chains whose rules differ are written: an endpoint that stays keeps its
            // chain (and its affinity list) untouched.
            for (chain, rules) in &a.chains {
                if b.chains.get(chain) != Some(rules) {
                    restore.nat.chain(chain, rules);
                }
            }
            for chain in b.chains.keys().filter(|c| !a.chains.contains_key(*c)) {
                restore.nat.remove(chain);
            }
            for d in Dispatch::ALL {
                if b.dispatch(d) != a.dispatch(d) {
                    dispatch_touched[d as usize] = true;
                }
            }
            services.push((name.clone(), after));
        }

        let mut dispatch = Vec::new();
        if dispatch_touched.iter().any(|t| *t) {
            // The dispatch chains as they will be: the record with this sync's changes.
            let mut view: BTreeMap<&ServicePortName, &ServiceRules> = old.services.iter().collect();
            for (name, rules) in &services {
                match rules {
                    Some(r) => view.insert(name, r),
                    None => view.remove(name),
                };
            }
            for d in Dispatch::ALL
                .into_iter()
                .filter(|d| dispatch_touched[*d as usize])
            {
                let rules = ruleset::dispatch_chain(&self.cfg, d, view.values().copied());
                if rules != old.dispatch[d as usize] {
                    restore.table(d.table()).chain(d.chain(), &rules);
                    dispatch.push((d, rules));
                }
            }
        }
        Plan {
            text: restore.text(),
            full: false,
            conntrack: flushes,
            delta: Delta::Incremental {
                services,
                dispatch,
                udp,
            },
        }
    }

    /// What `iptables-save` shows of ours in both tables.
    async fn existing(&self) -> Result<Existing, DataplaneError> {
        let mut existing = Existing::default();
        for table in Table::ALL {
            let save = exec::save(&self.cfg.iptables_save_command, table.name()).await?;
            existing.parse(table, &save);
        }
        Ok(existing)
    }
}

#[async_trait::async_trait]
impl Dataplane for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    async fn sync(
        &mut self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<SyncStats, DataplaneError> {
        let existing = if self.needs_full_sync() {
            self.existing().await?
        } else {
            Existing::default()
        };
        let mut plan = self.plan(state, changed, &existing);
        if !plan.text.is_empty() {
            // Whatever happens, the kernel's state is unknown until this succeeds: a failed
            // restore (or a cancelled sync) leads to a full rewrite next time.
            let record = self.programmed.take();
            exec::restore(&self.cfg.iptables_restore_command, &plan.text).await?;
            self.programmed = record;
        }
        tracing::debug!(full = plan.full, bytes = plan.text.len(), "iptables synced");
        let full = plan.full;
        let flushes = std::mem::take(&mut plan.conntrack);
        self.commit(plan);
        if !flushes.is_empty()
            && let Err(e) = conntrack::delete(&self.cfg.conntrack_command, &flushes).await
        {
            // The rules are in place; a flow that keeps its stale NAT is the lesser harm
            // than undoing the sync.
            tracing::warn!(error = %e, "deleting stale UDP conntrack entries");
        }
        Ok(SyncStats {
            rules: self.rules(),
            full,
        })
    }

    /// Deletes every `SKIFF-*` chain and every jump into one, whatever run made them.
    async fn cleanup(&mut self) -> Result<(), DataplaneError> {
        self.programmed = None;
        let existing = self.existing().await?;
        let text = cleanup_text(&existing);
        if text.is_empty() {
            return Ok(());
        }
        exec::restore(&self.cfg.iptables_restore_command, &text).await
    }
}

/// The input that removes everything of ours `existing` lists.
pub fn cleanup_text(existing: &Existing) -> String {
    let mut restore = Restore::default();
    for (table, chain, rule, _) in &existing.jumps {
        let _ = writeln!(restore.table(*table).jumps, "-D {chain} {rule}");
    }
    for (table, chain) in &existing.chains {
        restore.table(*table).remove(chain);
    }
    restore.text()
}

#[cfg(test)]
mod tests;
