//! The nftables backend: tables of our own for each family (`ip`, `ip6`), written with
//! `nft -f -`: a main table (reject, masquerade, hairpin) and NAT tables the Services are
//! spread over by name, so that a change makes the kernel re-validate one of them only.
//!
//! The first sync (and any sync after a failed one) replaces all tables in one
//! transaction. Later syncs rewrite only the chains of the changed service ports and add or
//! delete only the map and set elements that differ, again in one transaction.

mod config;
mod exec;
mod family;
mod ruleset;

pub use config::{ClusterCidrs, IpCidr, NftablesConfig};
pub use family::Family;
pub use ruleset::{Collection, chain_name};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::model::{Endpoint, ProxyState, ServicePort, ServicePortName};

use super::conntrack::{self, Flush, UdpRecord, udp_flushes};
use super::{Dataplane, DataplaneError, SyncStats};
use ruleset::{AffinitySet, Elements};

/// An element of one of the table's collections.
type Key = (Collection, String);
/// The service ports that want an element, with the value each wants. The programmed value
/// is the first one's, so when two Services claim one address and port the result does not
/// depend on the order of events.
type Wanted = BTreeMap<ServicePortName, String>;

/// What the kernel holds, as far as this backend knows, indexed so that an incremental sync
/// costs in proportion to the change, not to the number of Services.
#[derive(Debug, Default)]
struct Programmed {
    /// Chains of every programmed service port (cluster chain first) and their rule count.
    chains: BTreeMap<ServicePortName, Chains>,
    rules: usize,
    wants: HashMap<Key, Wanted>,
    keys_of: HashMap<ServicePortName, Vec<Key>>,
    /// Affinity sets of the service ports that have them.
    sets: HashMap<ServicePortName, Vec<AffinitySet>>,
    /// UDP service ports: what their stale conntrack entries would be found by.
    udp: HashMap<ServicePortName, UdpRecord>,
}

/// The UDP record of one family of a service port (none if it is not UDP or not
/// programmed in that family).
fn udp_record(
    family: Family,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Option<UdpRecord> {
    if name.protocol != crate::model::Protocol::Udp || !ruleset::programs(family, port) {
        return None;
    }
    let addresses = port
        .cluster_ips
        .iter()
        .chain(&port.external_ips)
        .chain(&port.load_balancer_ips)
        .copied()
        .filter(|ip| family.has(ip))
        .collect();
    let eps = ruleset::family_endpoints(family, endpoints)
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
    Some(UdpRecord::of_family(
        family == Family::V6,
        addresses,
        port,
        eps,
    ))
}

/// The elements one service port wants (none if this backend does not program it).
fn wanted_elements(
    cfg: &NftablesConfig,
    family: Family,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Elements {
    let mut elements = Elements::new();
    ruleset::service_elements(cfg, family, name, port, endpoints, &mut elements);
    elements
}

/// A service port's chains (cluster chain first) and their rule count.
type Chains = (Vec<String>, usize);

/// How the record changes once a transaction is committed.
#[derive(Debug)]
enum Delta {
    Full(Programmed),
    Incremental {
        chains: Vec<(ServicePortName, Option<Chains>)>,
        wants: Vec<(Key, Wanted)>,
        keys_of: Vec<(ServicePortName, Vec<Key>)>,
        sets: Vec<(ServicePortName, Vec<AffinitySet>)>,
        udp: Vec<(ServicePortName, Option<UdpRecord>)>,
    },
}

/// A transaction and how the record changes once it is committed.
#[derive(Debug)]
pub struct Plan {
    pub text: String,
    pub full: bool,
    /// Stale UDP flows to delete once the transaction is committed.
    pub conntrack: Vec<Flush>,
    /// Per family, in the order of [`Nftables::tables`].
    deltas: Vec<Delta>,
}

/// One family's part of a plan.
struct Part {
    text: String,
    full: bool,
    conntrack: Vec<Flush>,
    delta: Delta,
}

/// The nftables [`Dataplane`].
#[derive(Debug)]
pub struct Nftables {
    cfg: NftablesConfig,
    /// One per configured family, each `None` until a full sync succeeded, and again after
    /// any failure.
    tables: Vec<(Family, Option<Programmed>)>,
}

impl Nftables {
    pub fn new(cfg: NftablesConfig) -> Self {
        let mut families = cfg.families.clone();
        families.sort();
        families.dedup();
        Nftables {
            cfg,
            tables: families.into_iter().map(|f| (f, None)).collect(),
        }
    }

    pub fn config(&self) -> &NftablesConfig {
        &self.cfg
    }

    /// The transaction the next sync would run: pure, so it is tested without a kernel.
    /// Both families' commands go into one transaction.
    pub fn plan(&self, state: &ProxyState, changed: &BTreeSet<ServicePortName>) -> Plan {
        let mut plan = Plan {
            text: String::new(),
            full: false,
            conntrack: Vec::new(),
            deltas: Vec::with_capacity(self.tables.len()),
        };
        for (family, programmed) in &self.tables {
            let part = match programmed {
                None => self.plan_full(*family, state),
                Some(old) => self.plan_incremental(*family, old, state, changed),
            };
            plan.text.push_str(&part.text);
            plan.full |= part.full;
            plan.conntrack.extend(part.conntrack);
            plan.deltas.push(part.delta);
        }
        plan
    }

    /// Records that `plan` is what the kernel now holds.
    fn commit(&mut self, plan: Plan) {
        for ((_, programmed), delta) in self.tables.iter_mut().zip(plan.deltas) {
            Self::commit_one(programmed, delta);
        }
    }

    fn commit_one(programmed: &mut Option<Programmed>, delta: Delta) {
        match delta {
            Delta::Full(full) => *programmed = Some(full),
            Delta::Incremental {
                chains,
                wants,
                keys_of,
                sets,
                udp,
            } => {
                let Some(p) = programmed.as_mut() else {
                    return;
                };
                for (name, chain) in chains {
                    let old = match chain {
                        Some(chain) => {
                            p.rules += chain.1;
                            p.chains.insert(name, chain)
                        }
                        None => p.chains.remove(&name),
                    };
                    p.rules -= old.map_or(0, |(_, n)| n);
                }
                for (key, wanted) in wants {
                    if wanted.is_empty() {
                        p.wants.remove(&key);
                    } else {
                        p.wants.insert(key, wanted);
                    }
                }
                for (name, keys) in keys_of {
                    if keys.is_empty() {
                        p.keys_of.remove(&name);
                    } else {
                        p.keys_of.insert(name, keys);
                    }
                }
                for (name, record) in udp {
                    match record {
                        Some(record) => p.udp.insert(name, record),
                        None => p.udp.remove(&name),
                    };
                }
                for (name, service_sets) in sets {
                    if service_sets.is_empty() {
                        p.sets.remove(&name);
                    } else {
                        p.sets.insert(name, service_sets);
                    }
                }
            }
        }
    }

    /// The NAT table a service port's chains and affinity sets live in.
    fn service_table(&self, family: Family, name: &ServicePortName) -> String {
        let shard = self.cfg.shard_of(&name.namespace, &name.name);
        format!("{} {}", family.nft(), self.cfg.nat_table(shard))
    }

    /// The table an element lives in: the NAT table of the service port that holds it, for
    /// the collections whose verdicts point at service chains; the main table otherwise.
    fn element_table(&self, collection: Collection, holder: &ServicePortName) -> String {
        if collection.in_nat_table() {
            self.cfg
                .nat_table(self.cfg.shard_of(&holder.namespace, &holder.name))
        } else {
            self.cfg.table.clone()
        }
    }

    fn plan_full(&self, family: Family, state: &ProxyState) -> Part {
        let mut text = String::with_capacity(128 * state.services.len() + 4096);
        // `add` then `delete` removes a table left by an earlier run whether or not there is
        // one; the kernel applies the whole file atomically, so traffic never sees a gap.
        for table in self.cfg.tables() {
            let _ = writeln!(text, "add table {} {table}", family.nft());
            let _ = writeln!(text, "delete table {} {table}", family.nft());
        }
        let mut skeleton_rules = ruleset::skeleton(&self.cfg, family, &mut text);
        for shard in 0..self.cfg.shards() {
            skeleton_rules += ruleset::nat_skeleton(&self.cfg, family, shard, &mut text);
        }
        let mut programmed = Programmed {
            rules: skeleton_rules,
            ..Programmed::default()
        };
        for (name, (port, endpoints)) in &state.services {
            if !ruleset::programs(family, port) {
                continue;
            }
            let t = self.service_table(family, name);
            let sets = ruleset::affinity_sets(family, name, port, endpoints);
            for set in &sets {
                let _ = writeln!(text, "add set {t} {}", set.declaration());
            }
            if !sets.is_empty() {
                programmed.sets.insert(name.clone(), sets);
            }
            if let Some(record) = udp_record(family, name, port, endpoints) {
                programmed.udp.insert(name.clone(), record);
            }
            let mut names = Vec::new();
            let mut count = 0;
            for (chain, rules) in ruleset::service_chains(&self.cfg, family, name, port, endpoints)
            {
                let _ = writeln!(text, "add chain {t} {chain}");
                for rule in &rules {
                    let _ = writeln!(text, "add rule {t} {chain} {rule}");
                }
                count += rules.len();
                names.push(chain);
            }
            programmed.rules += count;
            programmed.chains.insert(name.clone(), (names, count));
            let elements = wanted_elements(&self.cfg, family, name, port, endpoints);
            let mut keys = Vec::with_capacity(elements.len());
            for (key, value) in elements {
                programmed
                    .wants
                    .entry(key.clone())
                    .or_default()
                    .insert(name.clone(), value);
                keys.push(key);
            }
            programmed.keys_of.insert(name.clone(), keys);
        }
        let elements: Vec<(String, &Key, &String)> = programmed
            .wants
            .iter()
            .filter_map(|(key, wanted)| {
                let (holder, value) = wanted.iter().next()?;
                Some((self.element_table(key.0, holder), key, value))
            })
            .collect();
        ruleset::element_commands(
            family,
            "add",
            elements.iter().map(|(t, k, v)| (t.as_str(), *k, *v)),
            &mut text,
        );
        Part {
            text,
            full: true,
            conntrack: Vec::new(),
            delta: Delta::Full(programmed),
        }
    }

    fn plan_incremental(
        &self,
        family: Family,
        old: &Programmed,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Part {
        let mut chains_text = String::new();
        let mut removed = Vec::new();
        let mut chains = Vec::new();
        // The wants of every key a changed service port had or has, after the change.
        let mut touched: HashMap<Key, Wanted> = HashMap::new();
        let mut keys_of = Vec::new();
        let mut sets = Vec::new();
        let mut udp = Vec::new();
        let mut flushes = Vec::new();
        let no_sets = Vec::new();
        for name in changed {
            let t = self.service_table(family, name);
            let old_sets = old.sets.get(name).unwrap_or(&no_sets);
            let old_udp = old.udp.get(name);
            let new_udp = state
                .services
                .get(name)
                .and_then(|(port, endpoints)| udp_record(family, name, port, endpoints));
            flushes.extend(udp_flushes(old_udp, new_udp.as_ref()));
            if old_udp != new_udp.as_ref() {
                udp.push((name.clone(), new_udp));
            }
            for key in old.keys_of.get(name).into_iter().flatten() {
                touched
                    .entry(key.clone())
                    .or_insert_with(|| old.wants.get(key).cloned().unwrap_or_default())
                    .remove(name);
            }
            let wanted = state
                .services
                .get(name)
                .filter(|(port, _)| ruleset::programs(family, port));
            let mut keys = Vec::new();
            match wanted {
                Some((port, endpoints)) => {
                    let service_chains =
                        ruleset::service_chains(&self.cfg, family, name, port, endpoints);
                    let new_sets = ruleset::affinity_sets(family, name, port, endpoints);
                    let old_names: &[String] = old.chains.get(name).map_or(&[], |(n, _)| n);
                    // `add chain` is a no-op for an existing chain; `flush` empties it.
                    for (chain, _) in &service_chains {
                        let _ = writeln!(chains_text, "add chain {t} {chain}");
                        let _ = writeln!(chains_text, "flush chain {t} {chain}");
                    }
                    let gone: Vec<String> = old_names
                        .iter()
                        .filter(|c| !service_chains.iter().any(|(n, _)| n == *c))
                        .cloned()
                        .collect();
                    for chain in &gone {
                        let _ = writeln!(chains_text, "flush chain {t} {chain}");
                    }
                    if !gone.is_empty() {
                        removed.push((t.clone(), gone, Vec::new()));
                    }
                    // Only this service port's chains use its sets: once they are flushed,
                    // the sets that went (or changed timeout) can go, and new ones come in.
                    for set in old_sets.iter().filter(|s| !new_sets.contains(s)) {
                        let _ = writeln!(chains_text, "delete set {t} {}", set.name);
                    }
                    for set in new_sets.iter().filter(|s| !old_sets.contains(s)) {
                        let _ = writeln!(chains_text, "add set {t} {}", set.declaration());
                    }
                    if new_sets != *old_sets {
                        sets.push((name.clone(), new_sets));
                    }
                    let mut names = Vec::new();
                    let mut count = 0;
                    for (chain, rules) in service_chains {
                        for rule in &rules {
                            let _ = writeln!(chains_text, "add rule {t} {chain} {rule}");
                        }
                        count += rules.len();
                        names.push(chain);
                    }
                    chains.push((name.clone(), Some((names, count))));
                    for (key, value) in wanted_elements(&self.cfg, family, name, port, endpoints) {
                        touched
                            .entry(key.clone())
                            .or_insert_with(|| old.wants.get(&key).cloned().unwrap_or_default())
                            .insert(name.clone(), value);
                        keys.push(key);
                    }
                }
                None => {
                    if let Some((names, _)) = old.chains.get(name) {
                        removed.push((t.clone(), names.clone(), old_sets.clone()));
                        chains.push((name.clone(), None));
                        if !old_sets.is_empty() {
                            sets.push((name.clone(), Vec::new()));
                        }
                    }
                }
            }
            keys_of.push((name.clone(), keys));
        }

        // An element changes when its value or its table (the holder's shard) does.
        let mut stale: Vec<(String, &Key, String)> = Vec::new();
        let mut fresh: Vec<(String, &Key, String)> = Vec::new();
        for (key, wanted) in &touched {
            let placed = |holder: &ServicePortName, value: &String| {
                (self.element_table(key.0, holder), value.clone())
            };
            let before = old
                .wants
                .get(key)
                .and_then(|w| w.iter().next())
                .map(|(h, v)| placed(h, v));
            let after = wanted.iter().next().map(|(h, v)| placed(h, v));
            if before != after {
                if let Some((table, _)) = before {
                    stale.push((table, key, String::new()));
                }
                if let Some((table, value)) = after {
                    fresh.push((table, key, value));
                }
            }
        }
        // Deterministic text: the same change always makes the same transaction.
        stale.sort();
        fresh.sort();

        // Elements first: nothing may point at a chain when it is flushed or deleted.
        let mut text = String::new();
        ruleset::element_commands(
            family,
            "delete",
            stale.iter().map(|(t, k, v)| (t.as_str(), *k, v)),
            &mut text,
        );
        text.push_str(&chains_text);
        for (t, names, chain_sets) in removed {
            for chain in &names {
                let _ = writeln!(text, "flush chain {t} {chain}");
            }
            for set in chain_sets {
                let _ = writeln!(text, "delete set {t} {}", set.name);
            }
            for chain in &names {
                let _ = writeln!(text, "delete chain {t} {chain}");
            }
        }
        ruleset::element_commands(
            family,
            "add",
            fresh.iter().map(|(t, k, v)| (t.as_str(), *k, v)),
            &mut text,
        );
        Part {
            text,
            full: false,
            conntrack: flushes,
            delta: Delta::Incremental {
                chains,
                wants: touched.into_iter().collect(),
                keys_of,
                sets,
                udp,
            },
        }
    }
}

#[async_trait::async_trait]
impl Dataplane for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    async fn sync(
        &mut self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<SyncStats, DataplaneError> {
        let mut plan = self.plan(state, changed);
        if !plan.text.is_empty() {
            // Whatever happens, the kernel's state is unknown until this succeeds: a failed
            // transaction (or a cancelled sync) leads to a full rewrite next time.
            let records: Vec<Option<Programmed>> =
                self.tables.iter_mut().map(|(_, p)| p.take()).collect();
            exec::run_nft(&self.cfg.nft_command, &plan.text).await?;
            for ((_, p), record) in self.tables.iter_mut().zip(records) {
                *p = record;
            }
        }
        tracing::debug!(
            table = %self.cfg.table,
            full = plan.full,
            bytes = plan.text.len(),
            "nftables synced"
        );
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
            rules: self
                .tables
                .iter()
                .filter_map(|(_, p)| p.as_ref())
                .map(|p| p.rules)
                .sum(),
            full,
        })
    }

    async fn cleanup(&mut self) -> Result<(), DataplaneError> {
        let mut text = String::new();
        for (family, programmed) in &mut self.tables {
            *programmed = None;
            for table in self.cfg.tables() {
                let t = format!("{} {table}", family.nft());
                let _ = writeln!(text, "add table {t}\ndelete table {t}");
            }
        }
        exec::run_nft(&self.cfg.nft_command, &text).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::fixtures::{ep, name, port, state};
    use crate::model::{Protocol, changed_service_ports};
    use ruleset::{NAT_SKELETON_RULES, SKELETON_RULES};
    use std::net::IpAddr;

    /// One NAT table, so the expected transactions name `t-nat0`.
    fn test_cfg() -> NftablesConfig {
        let mut cfg = NftablesConfig::new("t");
        cfg.nat_shards = 1;
        cfg
    }

    /// The IPv4 table's record.
    fn v4(nft: &Nftables) -> &Programmed {
        nft.tables[0].1.as_ref().unwrap()
    }

    /// A backend that believes `state` is programmed.
    fn synced(state: &ProxyState) -> Nftables {
        let mut cfg = test_cfg();
        cfg.node_name = Some("here".into());
        let mut nft = Nftables::new(cfg);
        let plan = nft.plan(state, &state.services.keys().cloned().collect());
        nft.commit(plan);
        nft
    }

    #[test]
    fn the_first_sync_replaces_the_whole_table() {
        let s = state(&[
            ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
            ("b", "10.96.0.2", &[]),
        ]);
        let nft = Nftables::new(test_cfg());
        let plan = nft.plan(&s, &BTreeSet::new());
        assert!(plan.full);
        assert!(plan.text.starts_with(
            "add table ip t\ndelete table ip t\nadd table ip t-nat0\ndelete table ip t-nat0\nadd table ip t\n"
        ));
        assert!(
            plan.text
                .contains("add chain ip t-nat0 svc-default/a/tcp/http\n")
        );
        assert!(plan.text.contains(
            "add rule ip t-nat0 svc-default/a/tcp/http numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.1:8080\n"
        ));
        assert!(plan.text.contains(
            "add element ip t-nat0 service-ips { 10.96.0.1 . tcp . 80 : goto svc-default/a/tcp/http }\n"
        ));
        assert!(plan.text.contains(
            "add element ip t no-endpoint-services { 10.96.0.2 . tcp . 80 : goto reject-service }\n"
        ));
        let mut nft = nft;
        nft.commit(plan);
        assert_eq!(v4(&nft).rules, SKELETON_RULES + NAT_SKELETON_RULES + 2);
    }

    #[test]
    fn an_unchanged_state_needs_no_transaction() {
        let s = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
        let nft = synced(&s);
        assert_eq!(nft.plan(&s, &BTreeSet::new()).text, "");
    }

    #[test]
    fn an_endpoint_change_rewrites_one_chain_and_the_changed_elements() {
        let old = state(&[
            ("a", "10.96.0.1", &["10.244.0.1"]),
            ("b", "10.96.0.2", &["10.244.0.9"]),
        ]);
        let new = state(&[
            ("a", "10.96.0.1", &["10.244.0.3"]),
            ("b", "10.96.0.2", &["10.244.0.9"]),
        ]);
        let nft = synced(&old);
        let plan = nft.plan(&new, &changed_service_ports(&old, &new));
        assert!(!plan.full);
        assert_eq!(
            plan.text,
            "delete element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             add chain ip t-nat0 svc-default/a/tcp/http\n\
             flush chain ip t-nat0 svc-default/a/tcp/http\n\
             add rule ip t-nat0 svc-default/a/tcp/http meta l4proto tcp dnat to 10.244.0.3:8080\n\
             add element ip t hairpin { 10.244.0.3 . 10.244.0.3 }\n"
        );
    }

    #[test]
    fn losing_every_endpoint_moves_the_address_to_the_reject_map() {
        let old = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
        let new = state(&[("a", "10.96.0.1", &[])]);
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        assert_eq!(
            plan.text,
            "delete element ip t-nat0 service-ips { 10.96.0.1 . tcp . 80 }\n\
             delete element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             add chain ip t-nat0 svc-default/a/tcp/http\n\
             flush chain ip t-nat0 svc-default/a/tcp/http\n\
             add element ip t no-endpoint-services { 10.96.0.1 . tcp . 80 : goto reject-service }\n"
        );
    }

    #[test]
    fn a_removed_service_loses_its_elements_before_its_chain() {
        let old = state(&[
            ("a", "10.96.0.1", &["10.244.0.1"]),
            ("b", "10.96.0.2", &["10.244.0.2"]),
        ]);
        let new = state(&[("b", "10.96.0.2", &["10.244.0.2"])]);
        let mut nft = synced(&old);
        let plan = nft.plan(&new, &changed_service_ports(&old, &new));
        assert_eq!(
            plan.text,
            "delete element ip t-nat0 service-ips { 10.96.0.1 . tcp . 80 }\n\
             delete element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             flush chain ip t-nat0 svc-default/a/tcp/http\n\
             delete chain ip t-nat0 svc-default/a/tcp/http\n"
        );
        nft.commit(plan);
        let programmed = v4(&nft);
        assert_eq!(programmed.chains.len(), 1);
        assert_eq!(programmed.rules, SKELETON_RULES + NAT_SKELETON_RULES + 1);
        assert_eq!(programmed.wants.len(), 2);
    }

    #[test]
    fn an_endpoint_shared_by_two_services_keeps_its_hairpin_element() {
        let old = state(&[
            ("a", "10.96.0.1", &["10.244.0.1"]),
            ("b", "10.96.0.2", &["10.244.0.1"]),
        ]);
        let new = state(&[("b", "10.96.0.2", &["10.244.0.1"])]);
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        assert!(!plan.text.contains("hairpin"));
    }

    fn effective(p: &Programmed) -> Elements {
        p.wants
            .iter()
            .filter_map(|(k, w)| w.values().next().map(|v| (k.clone(), v.clone())))
            .collect()
    }

    #[test]
    fn incremental_syncs_keep_the_same_record_as_a_full_rebuild() {
        let shared = |s: &mut ProxyState, n: &str| {
            let entry = s.services.get_mut(&name(n)).unwrap();
            entry.0.external_ips = vec!["192.0.2.1".parse().unwrap()];
        };
        let mut s0 = state(&[
            ("a", "10.96.0.1", &["10.244.0.1"]),
            ("b", "10.96.0.2", &["10.244.0.1"]),
        ]);
        shared(&mut s0, "a");
        shared(&mut s0, "b");
        let mut s1 = s0.clone();
        s1.services.remove(&name("a"));
        let mut s2 = s1.clone();
        s2.services.insert(name("a"), (port("10.96.0.1"), vec![]));
        shared(&mut s2, "a");
        let mut s3 = state(&[("c", "10.96.0.3", &["10.244.0.3", "10.244.0.4"])]);
        s3.services.get_mut(&name("c")).unwrap().0.affinity =
            Some(std::time::Duration::from_secs(60));
        let mut s4 = state(&[("c", "10.96.0.3", &["10.244.0.4", "10.244.0.5"])]);
        s4.services.get_mut(&name("c")).unwrap().0.affinity =
            Some(std::time::Duration::from_secs(60));
        let mut s5 = s4.clone();
        s5.services.get_mut(&name("c")).unwrap().0.affinity =
            Some(std::time::Duration::from_secs(90));

        let mut nft = synced(&s0);
        let mut previous = s0.clone();
        let mut s6 = s5.clone();
        {
            let (p, eps) = s6.services.get_mut(&name("c")).unwrap();
            p.external_local = true;
            p.node_port = Some(30080);
            eps[0].node_name = Some("here".into());
        }
        let mut s7 = s6.clone();
        s7.services.get_mut(&name("c")).unwrap().1[0].node_name = None;
        for next in [s1, s2, s3, s4, s5, s6, s7, s0] {
            let plan = nft.plan(&next, &changed_service_ports(&previous, &next));
            nft.commit(plan);
            let rebuilt = synced(&next);
            let (inc, full) = (v4(&nft), v4(&rebuilt));
            assert_eq!(effective(inc), effective(full));
            assert_eq!(inc.chains, full.chains);
            assert_eq!(inc.sets, full.sets);
            assert_eq!(inc.udp, full.udp);
            assert_eq!(inc.rules, full.rules);
            previous = next;
        }
    }

    #[test]
    fn a_shared_external_address_passes_to_the_next_service_when_the_first_goes() {
        let mut old = state(&[
            ("a", "10.96.0.1", &["10.244.0.1"]),
            ("b", "10.96.0.2", &["10.244.0.2"]),
        ]);
        for n in ["a", "b"] {
            old.services.get_mut(&name(n)).unwrap().0.external_ips =
                vec!["192.0.2.1".parse().unwrap()];
        }
        let mut new = old.clone();
        new.services.remove(&name("a"));
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        assert!(
            plan.text
                .contains("delete element ip t-nat0 service-ips { "),
            "{}",
            plan.text
        );
        assert!(
            plan.text
                .contains("192.0.2.1 . tcp . 80 : goto svc-default/b/tcp/http"),
            "{}",
            plan.text
        );
        assert!(
            !plan.text.contains("external-keys"),
            "the key stays in the set: {}",
            plan.text
        );
    }

    #[test]
    fn affinity_sets_follow_the_endpoints_and_go_with_their_service() {
        let mut old = state(&[("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"])]);
        old.services.get_mut(&name("a")).unwrap().0.affinity =
            Some(std::time::Duration::from_secs(60));
        let mut new = state(&[("a", "10.96.0.1", &["10.244.0.2", "10.244.0.3"])]);
        new.services.get_mut(&name("a")).unwrap().0.affinity =
            Some(std::time::Duration::from_secs(60));
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        let flush = plan
            .text
            .find("flush chain ip t-nat0 svc-default/a/tcp/http")
            .unwrap();
        let delete = plan
            .text
            .find("delete set ip t-nat0 aff-default/a/tcp/http/10.244.0.1/8080\n")
            .unwrap();
        let add = plan
            .text
            .find("add set ip t-nat0 aff-default/a/tcp/http/10.244.0.3/8080 {")
            .unwrap();
        let rule = plan
            .text
            .find("add rule ip t-nat0 svc-default/a/tcp/http")
            .unwrap();
        assert!(
            flush < delete && delete < add && add < rule,
            "{}",
            plan.text
        );
        assert!(
            !plan
                .text
                .contains("add set ip t-nat0 aff-default/a/tcp/http/10.244.0.2/8080"),
            "kept set re-created: {}",
            plan.text
        );

        let gone = ProxyState::default();
        let plan = synced(&new).plan(&gone, &changed_service_ports(&new, &gone));
        let delete_set = plan
            .text
            .find("delete set ip t-nat0 aff-default/a/tcp/http/10.244.0.2/8080")
            .unwrap();
        let delete_chain = plan
            .text
            .find("delete chain ip t-nat0 svc-default/a/tcp/http")
            .unwrap();
        let flush = plan
            .text
            .find("flush chain ip t-nat0 svc-default/a/tcp/http")
            .unwrap();
        assert!(
            flush < delete_set && delete_set < delete_chain,
            "{}",
            plan.text
        );
    }

    #[test]
    fn a_dual_stack_service_is_programmed_in_both_tables_in_one_transaction() {
        let mut s = state(&[("a", "10.96.0.1", &["10.244.0.1", "fd00:244::1"])]);
        s.services.get_mut(&name("a")).unwrap().0.cluster_ips =
            vec!["10.96.0.1".parse().unwrap(), "fd00:96::1".parse().unwrap()];
        let nft = synced(&ProxyState::default());
        let plan = nft.plan(&s, &changed_service_ports(&ProxyState::default(), &s));
        assert_eq!(
            plan.text,
            "add chain ip t-nat0 svc-default/a/tcp/http\n\
             flush chain ip t-nat0 svc-default/a/tcp/http\n\
             add rule ip t-nat0 svc-default/a/tcp/http meta l4proto tcp dnat to 10.244.0.1:8080\n\
             add element ip t-nat0 service-ips { 10.96.0.1 . tcp . 80 : goto svc-default/a/tcp/http }\n\
             add element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             add chain ip6 t-nat0 svc-default/a/tcp/http\n\
             flush chain ip6 t-nat0 svc-default/a/tcp/http\n\
             add rule ip6 t-nat0 svc-default/a/tcp/http meta l4proto tcp dnat to [fd00:244::1]:8080\n\
             add element ip6 t-nat0 service-ips { fd00:96::1 . tcp . 80 : goto svc-default/a/tcp/http }\n\
             add element ip6 t hairpin { fd00:244::1 . fd00:244::1 }\n"
        );
        // A full sync writes both tables, the IPv6 one after the IPv4 one.
        let full = Nftables::new(test_cfg()).plan(&s, &BTreeSet::new());
        let v6 = full
            .text
            .find("add table ip6 t\ndelete table ip6 t\n")
            .unwrap();
        assert!(full.text[..v6].contains("dnat to 10.244.0.1:8080"));
        assert!(full.text[v6..].contains("dnat to [fd00:244::1]:8080"));
        assert!(!full.text[v6..].contains("10.244.0.1"));

        // An IPv4-only configuration writes no ip6 table.
        let mut cfg = test_cfg();
        cfg.families = vec![Family::V4];
        let v4only = Nftables::new(cfg).plan(&s, &BTreeSet::new());
        assert!(!v4only.text.contains("ip6"));
    }

    #[test]
    fn services_are_spread_over_nat_tables_and_a_change_touches_one() {
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let services: Vec<(&str, String, Vec<&str>)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), format!("10.96.1.{i}"), vec!["10.244.0.1"]))
            .collect();
        let s = {
            let mut s = ProxyState::default();
            for (n, ip, eps) in &services {
                s.services
                    .insert(name(n), (port(ip), eps.iter().map(|e| ep(e)).collect()));
            }
            s
        };
        let cfg = NftablesConfig::new("t");
        let shards: BTreeSet<usize> = names.iter().map(|n| cfg.shard_of("default", n)).collect();
        assert!(shards.len() >= 6, "40 Services in only {shards:?}");
        let mut nft = Nftables::new(cfg.clone());
        let plan = nft.plan(&s, &BTreeSet::new());
        for table in cfg.tables() {
            assert!(plan.text.contains(&format!("add table ip {table}\n")));
        }
        nft.commit(plan);
        let mut next = s.clone();
        next.services.get_mut(&name("s7")).unwrap().1 = vec![ep("10.244.0.9")];
        let plan = nft.plan(&next, &changed_service_ports(&s, &next));
        let home = cfg.nat_table(cfg.shard_of("default", "s7"));
        for line in plan.text.lines() {
            assert!(
                line.contains(&format!("ip {home} ")) || line.contains("ip t hairpin"),
                "{line}"
            );
        }
    }

    #[test]
    fn a_shared_address_moves_to_the_next_holders_nat_table() {
        let cfg = NftablesConfig::new("t");
        let (first, second) = (0..50)
            .map(|i| format!("z{i}"))
            .find(|n| cfg.shard_of("default", n) != cfg.shard_of("default", "a"))
            .map(|other| ("a".to_string(), other))
            .unwrap();
        let mut old = ProxyState::default();
        for (n, ip) in [(&first, "10.96.0.1"), (&second, "10.96.0.2")] {
            let mut p = port(ip);
            p.external_ips = vec!["192.0.2.1".parse().unwrap()];
            old.services.insert(name(n), (p, vec![ep("10.244.0.1")]));
        }
        let mut nft = Nftables::new(cfg.clone());
        nft.commit(nft.plan(&old, &BTreeSet::new()));
        let mut new = old.clone();
        new.services.remove(&name(&first));
        let plan = nft.plan(&new, &changed_service_ports(&old, &new));
        let (from, to) = (
            cfg.nat_table(cfg.shard_of("default", &first)),
            cfg.nat_table(cfg.shard_of("default", &second)),
        );
        assert!(
            plan.text.contains(&format!(
                "delete element ip {from} service-ips {{ 10.96.0.1 . tcp . 80, 192.0.2.1 . tcp . 80 }}"
            )),
            "{}",
            plan.text
        );
        assert!(
            plan.text.contains(&format!(
                "add element ip {to} service-ips {{ 192.0.2.1 . tcp . 80 : goto svc-default/{second}/tcp/http }}"
            )),
            "{}",
            plan.text
        );
        assert!(
            plan.text.contains(&format!(
                "add element ip {to} external-keys {{ 192.0.2.1 . tcp . 80 }}"
            )),
            "{}",
            plan.text
        );
    }

    #[test]
    fn stale_ipv6_udp_flows_are_deleted_with_the_ipv6_family() {
        let udp6 = |eps: &[&str]| {
            let mut s = udp_state(eps);
            for (p, _) in s.services.values_mut() {
                p.cluster_ips = vec!["fd00:96::a".parse().unwrap()];
            }
            s
        };
        let old = udp6(&["fd00:244::1", "fd00:244::2"]);
        let new = udp6(&["fd00:244::2"]);
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        let endpoint: IpAddr = "fd00:244::1".parse().unwrap();
        assert_eq!(
            plan.conntrack,
            vec![
                Flush::ToEndpoint {
                    address: Some("fd00:96::a".parse().unwrap()),
                    port: Some(53),
                    endpoint
                },
                Flush::ToEndpoint {
                    address: None,
                    port: Some(30053),
                    endpoint
                },
            ]
        );
        let empty = udp6(&[]);
        let plan = synced(&empty).plan(&new, &changed_service_ports(&empty, &new));
        assert!(
            plan.conntrack
                .iter()
                .all(|f| matches!(f, Flush::ToService { ipv6: true, .. }))
        );
        assert_eq!(plan.conntrack.len(), 2);
    }

    fn udp_state(eps: &[&str]) -> ProxyState {
        let mut s = ProxyState::default();
        let mut n = name("dns");
        n.protocol = Protocol::Udp;
        let mut p = port("10.96.0.10");
        p.port = 53;
        p.node_port = Some(30053);
        s.services
            .insert(n, (p, eps.iter().map(|e| ep(e)).collect()));
        s
    }

    #[test]
    fn a_removed_udp_endpoint_has_its_flows_deleted() {
        let old = udp_state(&["10.244.0.1", "10.244.0.2"]);
        let new = udp_state(&["10.244.0.2"]);
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        let endpoint: IpAddr = "10.244.0.1".parse().unwrap();
        assert_eq!(
            plan.conntrack,
            vec![
                Flush::ToEndpoint {
                    address: Some("10.96.0.10".parse().unwrap()),
                    port: Some(53),
                    endpoint
                },
                Flush::ToEndpoint {
                    address: None,
                    port: Some(30053),
                    endpoint
                },
            ]
        );
    }

    #[test]
    fn a_udp_service_getting_its_first_endpoint_has_its_flows_deleted() {
        let old = udp_state(&[]);
        let new = udp_state(&["10.244.0.1"]);
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        assert_eq!(
            plan.conntrack,
            vec![
                Flush::ToService {
                    address: Some("10.96.0.10".parse().unwrap()),
                    port: Some(53),
                    ipv6: false,
                },
                Flush::ToService {
                    address: None,
                    port: Some(30053),
                    ipv6: false,
                },
            ]
        );
        // Adding a second endpoint touches nothing; TCP never does.
        let more = udp_state(&["10.244.0.1", "10.244.0.2"]);
        let mut nft = synced(&new);
        assert!(
            nft.plan(&more, &changed_service_ports(&new, &more))
                .conntrack
                .is_empty()
        );
        let tcp_old = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
        let tcp_new = state(&[("a", "10.96.0.1", &[])]);
        nft = synced(&tcp_old);
        assert!(
            nft.plan(&tcp_new, &changed_service_ports(&tcp_old, &tcp_new))
                .conntrack
                .is_empty()
        );
    }
}
