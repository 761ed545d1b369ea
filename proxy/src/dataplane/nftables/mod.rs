//! The nftables backend: one `ip` table of our own, written with `nft -f -`.
//!
//! The first sync (and any sync after a failed one) replaces the whole table in one
//! transaction. Later syncs rewrite only the chains of the changed service ports and add or
//! delete only the map and set elements that differ, again in one transaction.

mod config;
mod exec;
mod ruleset;

pub use config::{Ipv4Cidr, NftablesConfig};
pub use ruleset::{Collection, chain_name};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::{ProxyState, ServicePortName};

use super::{Dataplane, DataplaneError, SyncStats};
use ruleset::{Elements, SKELETON_RULES};

/// What the kernel holds, as far as this backend knows.
#[derive(Debug, Default, Clone)]
struct Programmed {
    /// Chain of every programmed service port and its rule count.
    chains: BTreeMap<ServicePortName, (String, usize)>,
    elements: Elements,
}

impl Programmed {
    fn rules(&self) -> usize {
        SKELETON_RULES + self.chains.values().map(|(_, n)| n).sum::<usize>()
    }
}

/// A transaction and the record of what the kernel holds once it is committed.
#[derive(Debug)]
pub struct Plan {
    pub text: String,
    pub full: bool,
    programmed: Programmed,
}

/// The nftables [`Dataplane`].
#[derive(Debug)]
pub struct Nftables {
    cfg: NftablesConfig,
    /// `None` until a full sync succeeded, and again after any failure.
    programmed: Option<Programmed>,
}

impl Nftables {
    pub fn new(cfg: NftablesConfig) -> Self {
        Nftables {
            cfg,
            programmed: None,
        }
    }

    pub fn config(&self) -> &NftablesConfig {
        &self.cfg
    }

    /// The transaction the next sync would run: pure, so it is tested without a kernel.
    pub fn plan(&self, state: &ProxyState, changed: &BTreeSet<ServicePortName>) -> Plan {
        match &self.programmed {
            None => self.plan_full(state),
            Some(old) => self.plan_incremental(old, state, changed),
        }
    }

    fn desired_elements(state: &ProxyState) -> Elements {
        let mut elements = Elements::new();
        for (name, (port, endpoints)) in &state.services {
            ruleset::service_elements(name, port, endpoints, &mut elements);
        }
        elements
    }

    fn plan_full(&self, state: &ProxyState) -> Plan {
        let t = format!("ip {}", self.cfg.table);
        let mut text = String::with_capacity(128 * state.services.len() + 4096);
        // `add` then `delete` removes a table left by an earlier run whether or not there is
        // one; the kernel applies the whole file atomically, so traffic never sees a gap.
        let _ = writeln!(text, "add table {t}");
        let _ = writeln!(text, "delete table {t}");
        ruleset::skeleton(&self.cfg, &mut text);
        let mut programmed = Programmed::default();
        for (name, (port, endpoints)) in &state.services {
            if !ruleset::programs(port) {
                continue;
            }
            let chain = chain_name(name);
            let rules = ruleset::service_rules(&self.cfg, name, endpoints);
            let _ = writeln!(text, "add chain {t} {chain}");
            for rule in &rules {
                let _ = writeln!(text, "add rule {t} {chain} {rule}");
            }
            programmed.chains.insert(name.clone(), (chain, rules.len()));
        }
        programmed.elements = Self::desired_elements(state);
        ruleset::element_commands(&self.cfg, "add", programmed.elements.iter(), &mut text);
        Plan {
            text,
            full: true,
            programmed,
        }
    }

    fn plan_incremental(
        &self,
        old: &Programmed,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Plan {
        let t = format!("ip {}", self.cfg.table);
        let mut programmed = old.clone();
        programmed.elements = Self::desired_elements(state);
        let mut text = String::new();

        // Elements first: nothing may point at a chain when it is flushed or deleted.
        let stale = old
            .elements
            .iter()
            .filter(|(k, v)| programmed.elements.get(*k) != Some(*v));
        ruleset::element_commands(&self.cfg, "delete", stale, &mut text);

        let mut removed = Vec::new();
        for name in changed {
            let wanted = state
                .services
                .get(name)
                .filter(|(port, _)| ruleset::programs(port));
            match wanted {
                Some((_, endpoints)) => {
                    let chain = chain_name(name);
                    let rules = ruleset::service_rules(&self.cfg, name, endpoints);
                    // `add chain` is a no-op for an existing chain; `flush` empties it.
                    let _ = writeln!(text, "add chain {t} {chain}");
                    let _ = writeln!(text, "flush chain {t} {chain}");
                    for rule in &rules {
                        let _ = writeln!(text, "add rule {t} {chain} {rule}");
                    }
                    programmed.chains.insert(name.clone(), (chain, rules.len()));
                }
                None => {
                    if let Some((chain, _)) = programmed.chains.remove(name) {
                        removed.push(chain);
                    }
                }
            }
        }
        for chain in removed {
            let _ = writeln!(text, "flush chain {t} {chain}");
            let _ = writeln!(text, "delete chain {t} {chain}");
        }

        let fresh = programmed
            .elements
            .iter()
            .filter(|(k, v)| old.elements.get(*k) != Some(*v));
        ruleset::element_commands(&self.cfg, "add", fresh, &mut text);
        Plan {
            text,
            full: false,
            programmed,
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
        let plan = self.plan(state, changed);
        if !plan.text.is_empty() {
            // Whatever happens, the kernel's state is unknown until this succeeds: a failed
            // transaction leads to a full rewrite next time.
            self.programmed = None;
            exec::run_nft(&self.cfg.nft_command, &plan.text).await?;
        }
        let stats = SyncStats {
            rules: plan.programmed.rules(),
            full: plan.full,
        };
        tracing::debug!(
            table = %self.cfg.table,
            full = plan.full,
            bytes = plan.text.len(),
            "nftables synced"
        );
        self.programmed = Some(plan.programmed);
        Ok(stats)
    }

    async fn cleanup(&mut self) -> Result<(), DataplaneError> {
        let t = format!("ip {}", self.cfg.table);
        self.programmed = None;
        exec::run_nft(
            &self.cfg.nft_command,
            &format!("add table {t}\ndelete table {t}\n"),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort, changed_service_ports};

    fn name(n: &str) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: n.into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        }
    }

    fn port(ip: &str) -> ServicePort {
        ServicePort {
            cluster_ips: vec![ip.parse().unwrap()],
            port: 80,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
        }
    }

    fn ep(ip: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
        }
    }

    fn state(services: &[(&str, &str, &[&str])]) -> ProxyState {
        let mut s = ProxyState::default();
        for (n, ip, eps) in services {
            s.services
                .insert(name(n), (port(ip), eps.iter().map(|e| ep(e)).collect()));
        }
        s
    }

    /// A backend that believes `state` is programmed.
    fn synced(state: &ProxyState) -> Nftables {
        let mut nft = Nftables::new(NftablesConfig::new("t"));
        let plan = nft.plan(state, &state.services.keys().cloned().collect());
        nft.programmed = Some(plan.programmed);
        nft
    }

    #[test]
    fn the_first_sync_replaces_the_whole_table() {
        let s = state(&[
            ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
            ("b", "10.96.0.2", &[]),
        ]);
        let nft = Nftables::new(NftablesConfig::new("t"));
        let plan = nft.plan(&s, &BTreeSet::new());
        assert!(plan.full);
        assert!(
            plan.text
                .starts_with("add table ip t\ndelete table ip t\nadd table ip t\n")
        );
        assert!(
            plan.text
                .contains("add chain ip t svc-default/a/tcp/http\n")
        );
        assert!(plan.text.contains(
            "add rule ip t svc-default/a/tcp/http numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.1:8080\n"
        ));
        assert!(plan.text.contains(
            "add element ip t service-ips { 10.96.0.1 . tcp . 80 : goto svc-default/a/tcp/http }\n"
        ));
        assert!(plan.text.contains(
            "add element ip t no-endpoint-services { 10.96.0.2 . tcp . 80 : goto reject-service }\n"
        ));
        assert_eq!(plan.programmed.rules(), SKELETON_RULES + 2);
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
             add chain ip t svc-default/a/tcp/http\n\
             flush chain ip t svc-default/a/tcp/http\n\
             add rule ip t svc-default/a/tcp/http meta l4proto tcp dnat to 10.244.0.3:8080\n\
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
            "delete element ip t service-ips { 10.96.0.1 . tcp . 80 }\n\
             delete element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             add chain ip t svc-default/a/tcp/http\n\
             flush chain ip t svc-default/a/tcp/http\n\
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
        let plan = synced(&old).plan(&new, &changed_service_ports(&old, &new));
        assert_eq!(
            plan.text,
            "delete element ip t service-ips { 10.96.0.1 . tcp . 80 }\n\
             delete element ip t hairpin { 10.244.0.1 . 10.244.0.1 }\n\
             flush chain ip t svc-default/a/tcp/http\n\
             delete chain ip t svc-default/a/tcp/http\n"
        );
        assert_eq!(plan.programmed.chains.len(), 1);
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
}
