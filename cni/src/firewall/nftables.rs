//! The nftables backend: one `inet` table whose chains never change per pod; pods are
//! elements of named sets and maps keyed by pod address or hostPort, so every
//! operation is one `nft -f -` transaction of element additions and deletions.
//!
//! The MAC spoof check lives in a `bridge` table of the same name, shaped the same way
//! (one static rule; pods are elements keyed by their bridge port) and declared only
//! once some attachment asks for it, so nodes that never do pay nothing per frame.
//! An attachment's elements of both tables go into the same transaction.
//!
//! Cost shapes the transactions. Adding elements is cheap (≈2.3 ms per exec here), but
//! anything the kernel must free after an RCU grace period — a deleted element, a
//! flushed rule, even re-declaring an existing chain — makes nft's final close() of its
//! netlink socket wait for that grace period (≈13 ms more here). So:
//! - ADD of a new attachment only adds elements, plus a no-op `add element` to the
//!   versioned marker set [`LAYOUT`]; if the table or that layout is missing, nft
//!   refuses the whole transaction with ENOENT (before reaching the kernel) and ADD
//!   retries once with the full skeleton (first pod on a node, after a reboot, after an
//!   upgrade of the layout).
//! - ADD again for a known key re-declares the skeleton too, which repairs damage.
//! - Deletion has to succeed when the elements (or the table) are already gone, and nft
//!   1.0.6 has no `destroy`: an element is deleted as `add element X; delete element X`,
//!   a no-op pair when X was absent. It pays one grace period; nothing avoids that.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::exec::Exec;
use super::rules::{Dnat, Family, Rules};
use super::{FirewallError, HAIRPIN_MARK};
use crate::netlink::format_mac;

/// Names the marker set whose presence says the table has this file's skeleton; bump
/// it whenever SKELETON changes, so existing tables get the new one.
pub const LAYOUT: &str = "layout_v1";

/// [`LAYOUT`] of the bridge table, versioned apart: bump it when BRIDGE_SKELETON changes.
const BRIDGE_LAYOUT: &str = "layout_v1";

/// The bridge table's static part, as SKELETON. Priority -300 runs before the bridge's
/// own forwarding decisions, as the reference plugin's check does. A port in
/// `spoofports` may only send from the MACs `spoofok` pairs it with; other ports (the
/// node's uplinks, pods without the check) pass untouched.
const BRIDGE_SKELETON: &str = r#"add table bridge {T}
add set bridge {T} {L} { type mark; }
add element bridge {T} {L} { 1 }
add set bridge {T} spoofports { type ifname; }
add set bridge {T} spoofok { type ifname . ether_addr; }
add chain bridge {T} filter { type filter hook prerouting priority -300; policy accept; }
flush chain bridge {T} filter
add rule bridge {T} filter iifname @spoofports iifname . ether saddr != @spoofok drop
"#;

/// The static part of the table, `{T}` standing for the table name and `{L}` for
/// [`LAYOUT`]. Declared whole (`flush chain` + `add rule`) whenever it is declared.
const SKELETON: &str = r#"add table inet {T}
add set inet {T} {L} { type mark; }
add element inet {T} {L} { 1 }
add set inet {T} masq4 { type ipv4_addr; }
add set inet {T} masq6 { type ipv6_addr; }
add set inet {T} ownnet4 { type ipv4_addr . ipv4_addr; flags interval; }
add set inet {T} ownnet6 { type ipv6_addr . ipv6_addr; flags interval; }
add map inet {T} hostport4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet {T} hostport6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet {T} hostipport4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet {T} hostipport6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add set inet {T} hairpin4 { type ifname . inet_proto . inet_service; }
add set inet {T} hairpin6 { type ifname . inet_proto . inet_service; }
add set inet {T} hairpinip4 { type ifname . ipv4_addr . inet_proto . inet_service; }
add set inet {T} hairpinip6 { type ifname . ipv6_addr . inet_proto . inet_service; }
add chain inet {T} prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain inet {T} output { type nat hook output priority -100; policy accept; }
add chain inet {T} postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain inet {T} hostports
flush chain inet {T} prerouting
flush chain inet {T} output
flush chain inet {T} postrouting
flush chain inet {T} hostports
add rule inet {T} prerouting iifname . ip daddr . meta l4proto . th dport @hairpinip4 meta mark set meta mark | {M}
add rule inet {T} prerouting iifname . ip6 daddr . meta l4proto . th dport @hairpinip6 meta mark set meta mark | {M}
add rule inet {T} prerouting fib daddr type local meta nfproto ipv4 iifname . meta l4proto . th dport @hairpin4 meta mark set meta mark | {M}
add rule inet {T} prerouting fib daddr type local meta nfproto ipv6 iifname . meta l4proto . th dport @hairpin6 meta mark set meta mark | {M}
add rule inet {T} prerouting jump hostports
add rule inet {T} output ip saddr 127.0.0.0/8 ip daddr . meta l4proto . th dport @hostipport4 meta mark set meta mark | {M}
add rule inet {T} output ip saddr 127.0.0.0/8 fib daddr type local meta l4proto . th dport @hostport4 meta mark set meta mark | {M}
add rule inet {T} output jump hostports
add rule inet {T} hostports dnat ip to ip daddr . meta l4proto . th dport map @hostipport4
add rule inet {T} hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @hostipport6
add rule inet {T} hostports fib daddr type local meta nfproto ipv4 dnat ip to meta l4proto . th dport map @hostport4
add rule inet {T} hostports fib daddr type local meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @hostport6
add rule inet {T} postrouting meta mark & {M} == {M} ct status dnat meta mark set meta mark ^ {M} masquerade
add rule inet {T} postrouting ip saddr . ip daddr @ownnet4 return
add rule inet {T} postrouting ip saddr @masq4 ip daddr != 224.0.0.0/4 masquerade
add rule inet {T} postrouting ip6 saddr . ip6 daddr @ownnet6 return
add rule inet {T} postrouting ip6 saddr @masq6 ip6 daddr != ff00::/8 masquerade
"#;

/// The ruleset `nft -f` would load for an empty table named `table`.
pub fn skeleton(table: &str) -> String {
    SKELETON
        .replace("{T}", table)
        .replace("{L}", LAYOUT)
        .replace("{M}", &format!("{HAIRPIN_MARK:#x}"))
}

/// The bridge table's skeleton for a table named `table`.
fn bridge_skeleton(table: &str) -> String {
    BRIDGE_SKELETON
        .replace("{T}", table)
        .replace("{L}", BRIDGE_LAYOUT)
}

/// The two tables a prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Inet,
    Bridge,
}

impl Table {
    fn family(self) -> &'static str {
        match self {
            Table::Inet => "inet",
            Table::Bridge => "bridge",
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Table::Inet => LAYOUT,
            Table::Bridge => BRIDGE_LAYOUT,
        }
    }

    fn skeleton(self, table: &str) -> String {
        match self {
            Table::Inet => skeleton(table),
            Table::Bridge => bridge_skeleton(table),
        }
    }
}

/// Which tables an operation needs declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needs {
    inet: bool,
    bridge: bool,
}

impl Needs {
    /// The inet table holds everything but the spoof check, which the bridge table
    /// holds. An attachment with nothing at all still gets the inet table, as it always
    /// did.
    fn of(rules: &Rules) -> Needs {
        let bridge = rules.spoof_check.is_some();
        Needs {
            inet: !bridge || !rules.masquerade.is_empty() || !rules.port_mappings.is_empty(),
            bridge,
        }
    }

    fn or(self, other: Needs) -> Needs {
        Needs {
            inet: self.inet || other.inet,
            bridge: self.bridge || other.bridge,
        }
    }

    fn tables(self) -> impl Iterator<Item = Table> {
        [(self.inet, Table::Inet), (self.bridge, Table::Bridge)]
            .into_iter()
            .filter_map(|(needed, t)| needed.then_some(t))
    }
}

/// One set or map element an attachment owns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    table: Table,
    set: &'static str,
    /// As written in an nft script.
    key: String,
    value: Option<String>,
    /// The hostPort behind a map element, to name it in a conflict.
    dnat: Option<Dnat>,
    /// For a hairpin element, the map element it belongs with (set, canonical form): a
    /// hairpin key names no pod, so whoever holds the hostPort holds the hairpin too.
    follows: Option<(&'static str, String)>,
}

impl Element {
    fn script(&self) -> String {
        match &self.value {
            Some(v) => format!("{} : {v}", self.key),
            None => self.key.clone(),
        }
    }

    /// As `canonical_json` renders what `nft -j` lists.
    fn canonical(&self) -> String {
        self.script().replace('"', "")
    }
}

/// The set of `f`'s family among a v4/v6 pair.
fn of_family(f: Family, v4: &'static str, v6: &'static str) -> &'static str {
    match f {
        Family::V4 => v4,
        Family::V6 => v6,
    }
}

/// Everything `rules` puts into the table.
fn elements(rules: &Rules) -> Result<Vec<Element>, FirewallError> {
    let mut out: Vec<Element> = Vec::new();
    let mut push = |e: Element| {
        if !out
            .iter()
            .any(|o| o.table == e.table && o.set == e.set && o.key == e.key)
        {
            out.push(e);
        }
    };
    for m in rules.masquerade_exceptions() {
        push(Element {
            table: Table::Inet,
            set: of_family(m.family, "masq4", "masq6"),
            key: m.pod.to_string(),
            value: None,
            dnat: None,
            follows: None,
        });
        // nft lists a full-length prefix as a plain address; so do we, to compare.
        let subnet = if m.subnet.prefix_len() == m.subnet.max_prefix_len() {
            m.subnet.addr().to_string()
        } else {
            m.subnet.to_string()
        };
        push(Element {
            table: Table::Inet,
            set: of_family(m.family, "ownnet4", "ownnet6"),
            key: format!("{} . {subnet}", m.pod),
            value: None,
            dnat: None,
            follows: None,
        });
    }
    for d in rules.dnats()? {
        let value = Some(format!("{} . {}", d.target, d.target_port));
        let (proto, port, bridge) = (d.protocol, d.host_port, &rules.bridge);
        match d.host_ip {
            None => {
                let map = Element {
                    table: Table::Inet,
                    set: of_family(d.family, "hostport4", "hostport6"),
                    key: format!("{proto} . {port}"),
                    value,
                    dnat: Some(d),
                    follows: None,
                };
                let follows = Some((map.set, map.canonical()));
                push(map);
                push(Element {
                    table: Table::Inet,
                    set: of_family(d.family, "hairpin4", "hairpin6"),
                    key: format!("\"{bridge}\" . {proto} . {port}"),
                    value: None,
                    dnat: None,
                    follows,
                });
            }
            Some(ip) => {
                let map = Element {
                    table: Table::Inet,
                    set: of_family(d.family, "hostipport4", "hostipport6"),
                    key: format!("{ip} . {proto} . {port}"),
                    value,
                    dnat: Some(d),
                    follows: None,
                };
                let follows = Some((map.set, map.canonical()));
                push(map);
                push(Element {
                    table: Table::Inet,
                    set: of_family(d.family, "hairpinip4", "hairpinip6"),
                    key: format!("\"{bridge}\" . {ip} . {proto} . {port}"),
                    value: None,
                    dnat: None,
                    follows,
                });
            }
        }
    }
    if let Some(sc) = &rules.spoof_check {
        let (port, mac) = (&sc.port, format_mac(sc.mac));
        push(Element {
            table: Table::Bridge,
            set: "spoofports",
            key: format!("\"{port}\""),
            value: None,
            dnat: None,
            follows: None,
        });
        push(Element {
            table: Table::Bridge,
            set: "spoofok",
            key: format!("\"{port}\" . {mac}"),
            value: None,
            dnat: None,
            follows: None,
        });
    }
    Ok(out)
}

/// An nft script being built, remembering which line creates which hostPort so a
/// kernel "File exists" can be traced back to it.
struct Script {
    text: String,
    lines: usize,
    creates: HashMap<usize, Dnat>,
}

impl Script {
    /// A transaction that declares the whole skeleton of the tables `needs` first.
    fn full(table: &str, needs: Needs) -> Script {
        Script::starting(needs.tables().map(|t| t.skeleton(table)).collect())
    }

    /// A transaction that assumes the skeletons of the tables `needs` are there, and
    /// fails if one is not.
    fn fast(table: &str, needs: Needs) -> Script {
        Script::starting(
            needs
                .tables()
                .map(|t| {
                    format!(
                        "add element {} {table} {} {{ 1 }}\n",
                        t.family(),
                        t.layout()
                    )
                })
                .collect(),
        )
    }

    fn starting(text: String) -> Script {
        let lines = text.lines().count();
        Script {
            text,
            lines,
            creates: HashMap::new(),
        }
    }

    fn line(&mut self, line: String) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.lines += 1;
    }

    /// The idempotent deletion: a no-op pair when absent, a deletion when present.
    fn remove(&mut self, table: &str, e: &Element) {
        let (family, set, el) = (e.table.family(), e.set, e.script());
        self.line(format!("add element {family} {table} {set} {{ {el} }}"));
        self.line(format!("delete element {family} {table} {set} {{ {el} }}"));
    }

    /// Map elements are created exclusively: the kernel refuses a hostPort that is
    /// already mapped, atomically, whoever races us.
    fn install(&mut self, table: &str, e: &Element) {
        let verb = if e.value.is_some() { "create" } else { "add" };
        self.line(format!(
            "{verb} element {} {table} {} {{ {} }}",
            e.table.family(),
            e.set,
            e.script()
        ));
        if let Some(d) = e.dnat {
            self.creates.insert(self.lines, d);
        }
    }
}

pub(super) struct Nftables<'a> {
    pub table: &'a str,
    pub exec: &'a Exec,
}

impl Nftables<'_> {
    fn nft(&self, script: &str) -> Result<(), FirewallError> {
        self.exec.run("nft", &["-f", "-"], Some(script)).map(|_| ())
    }

    /// Installs `new`, replacing `old` (what the state said this key had), atomically.
    /// A hostPort already mapped elsewhere fails with the conflicting mapping.
    pub(super) fn install(&self, old: Option<&Rules>, new: &Rules) -> Result<(), FirewallError> {
        let new_elements = elements(new)?;
        let needs = Needs::of(new);
        if old.is_none() {
            let mut script = Script::fast(self.table, needs);
            for e in &new_elements {
                script.install(self.table, e);
            }
            match self.nft(&script.text).map_err(|err| conflict(err, &script)) {
                Err(FirewallError::Command { stderr, .. })
                    if stderr.contains("No such file or directory") => {}
                done => return done,
            }
        }
        let needs = old.map_or(needs, |old| needs.or(Needs::of(old)));
        let mut script = Script::full(self.table, needs);
        let before = script.lines;
        if let Some(old) = old {
            for e in elements(old)? {
                script.remove(self.table, &e);
            }
        }
        let removals = before + 1..=script.lines;
        for e in &new_elements {
            script.install(self.table, e);
        }
        match self.nft(&script.text) {
            // Taking out the old installation failed: one of its hostPorts is mapped to
            // someone else now (it vanished, e.g. at reboot, and was taken since). Take
            // out what is still ours, then install afresh.
            Err(FirewallError::Command { stderr, .. })
                if old.is_some() && failed_lines(&stderr).any(|n| removals.contains(&n)) =>
            {
                self.remove(&old.into_iter().collect::<Vec<_>>())?;
                self.install(None, new)
            }
            other => other.map_err(|err| conflict(err, &script)),
        }
    }

    /// Removes what each of `all` installed, in one transaction.
    pub(super) fn remove(&self, all: &[&Rules]) -> Result<(), FirewallError> {
        let mut script = Script::starting(String::new());
        let mut owned = Vec::new();
        for rules in all {
            for e in elements(rules)? {
                script.remove(self.table, &e);
                owned.push(e);
            }
        }
        if owned.is_empty() {
            return Ok(());
        }
        match self.nft(&script.text) {
            // The pairs fail when a set is gone (the table was deleted, e.g. by a reboot)
            // or when the kernel maps one of our hostPorts to another pod (our rules
            // vanished and the port was taken since): delete just what is still ours.
            Err(FirewallError::Command { stderr, .. })
                if stderr.contains("File exists")
                    || stderr.contains("No such file or directory") =>
            {
                self.remove_present(&owned)
            }
            other => other,
        }
    }

    fn remove_present(&self, owned: &[Element]) -> Result<(), FirewallError> {
        let mut listings = HashMap::new();
        for e in owned {
            if let Entry::Vacant(v) = listings.entry(e.table) {
                v.insert(self.list(e.table)?);
            }
        }
        let mut script = String::new();
        let mut seen = HashSet::new();
        // A followed element is in the same table as its follower.
        let present = |table: Table, set: &str, canonical: &String| {
            listings
                .get(&table)
                .and_then(|l| l.elements.get(set))
                .is_some_and(|s| s.contains(canonical))
        };
        for e in owned {
            let ours = e
                .follows
                .as_ref()
                .is_none_or(|(set, c)| present(e.table, set, c));
            if ours
                && present(e.table, e.set, &e.canonical())
                && seen.insert((e.table, e.set, &e.key))
            {
                let key = &e.key;
                script.push_str(&format!(
                    "delete element {} {} {} {{ {key} }}\n",
                    e.table.family(),
                    self.table,
                    e.set
                ));
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.nft(&script)
    }

    /// Verifies the tables `rules` needs are whole and hold every element of `rules`.
    pub(super) fn check(&self, rules: &Rules) -> Result<Vec<String>, FirewallError> {
        let mut missing = Vec::new();
        let mut listings = HashMap::new();
        for t in Needs::of(rules).tables() {
            let listing = self.list(t)?;
            let of_table = format!("of table {} {}", t.family(), self.table);
            if !listing.elements.contains_key(t.layout()) {
                missing.push(format!("set {} {of_table}", t.layout()));
            }
            for (chain, count) in expected_rule_counts(t, self.table) {
                match listing.rules.get(chain.as_str()) {
                    None => missing.push(format!("chain {chain} {of_table}")),
                    Some(n) if *n != count => missing.push(format!(
                        "{} of {count} rules of chain {chain} {of_table}",
                        count.saturating_sub(*n),
                    )),
                    Some(_) => {}
                }
            }
            listings.insert(t, listing);
        }
        for e in elements(rules)? {
            if !listings
                .get(&e.table)
                .and_then(|l| l.elements.get(e.set))
                .is_some_and(|s| s.contains(&e.canonical()))
            {
                missing.push(format!(
                    "element {{ {} }} of set {} of table {}",
                    e.canonical(),
                    e.set,
                    e.table.family()
                ));
            }
        }
        Ok(missing)
    }

    /// Deletes both tables, where present.
    pub(super) fn purge(&self) -> Result<(), FirewallError> {
        let t = self.table;
        self.nft(&format!(
            "add table inet {t}\ndelete table inet {t}\nadd table bridge {t}\ndelete table bridge {t}\n"
        ))
    }

    fn list(&self, t: Table) -> Result<Listing, FirewallError> {
        let args = ["-j", "list", "table", t.family(), self.table];
        match self.exec.run("nft", &args, None) {
            Ok(out) => parse_listing(&out.stdout).map_err(|detail| FirewallError::Output {
                command: format!("nft {}", args.join(" ")),
                detail,
            }),
            Err(FirewallError::Command { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(Listing::default())
            }
            Err(e) => Err(e),
        }
    }
}

fn expected_rule_counts(t: Table, table: &str) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    let prefix = format!("add chain {} {table} ", t.family());
    let rule_prefix = format!("add rule {} {table} ", t.family());
    let sk = t.skeleton(table);
    for line in sk.lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let name = rest.split_whitespace().next().unwrap_or_default();
            counts.push((name.to_string(), 0));
        } else if let Some(rest) = line.strip_prefix(&rule_prefix) {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if let Some(c) = counts.iter_mut().find(|(n, _)| n == name) {
                c.1 += 1;
            }
        }
    }
    counts
}

/// A "File exists" on one of our `create element` lines is a hostPort conflict.
fn conflict(err: FirewallError, script: &Script) -> FirewallError {
    let FirewallError::Command { stderr, .. } = &err else {
        return err;
    };
    for n in failed_lines(stderr) {
        if let Some(d) = script.creates.get(&n) {
            return FirewallError::PortConflict {
                mapping: d.describe(),
                owner: None,
            };
        }
    }
    err
}

/// The script lines nft reports "File exists" for (`/dev/stdin:LINE:COLS: Error: …`).
fn failed_lines(stderr: &str) -> impl Iterator<Item = usize> + '_ {
    stderr
        .lines()
        .filter(|l| l.contains("File exists"))
        .filter_map(|l| l.split(':').nth(1)?.parse().ok())
}

/// What `nft -j list table` shows, reduced to what we compare.
#[derive(Debug, Default)]
struct Listing {
    /// Rules per chain.
    rules: HashMap<String, usize>,
    /// Canonical elements per set or map.
    elements: HashMap<String, HashSet<String>>,
}

fn parse_listing(json: &str) -> Result<Listing, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no nftables array")?;
    let mut listing = Listing::default();
    for item in items {
        if let Some(chain) = item.get("chain") {
            let name = chain
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            listing.rules.entry(name.to_string()).or_insert(0);
        } else if let Some(rule) = item.get("rule") {
            let name = rule
                .get("chain")
                .and_then(Value::as_str)
                .unwrap_or_default();
            *listing.rules.entry(name.to_string()).or_insert(0) += 1;
        } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
            let name = set.get("name").and_then(Value::as_str).unwrap_or_default();
            let is_map = item.get("map").is_some();
            let elems = listing.elements.entry(name.to_string()).or_default();
            for el in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = match (is_map, el.as_array().map(Vec::as_slice)) {
                    (true, Some([k, v])) => canonical_json(k)
                        .zip(canonical_json(v))
                        .map(|(k, v)| format!("{k} : {v}")),
                    _ => canonical_json(el),
                };
                elems.insert(text.ok_or_else(|| format!("element {el} of {name}"))?);
            }
        }
    }
    Ok(listing)
}

/// Renders a JSON element the way `Element::canonical` writes ours.
fn canonical_json(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(parts) = o.get("concat").and_then(Value::as_array) {
                let parts: Option<Vec<String>> = parts.iter().map(canonical_json).collect();
                return parts.map(|p| p.join(" . "));
            }
            if let Some(p) = o.get("prefix") {
                let addr = p.get("addr").and_then(Value::as_str)?;
                let len = p.get("len").and_then(Value::as_u64)?;
                return Some(format!("{addr}/{len}"));
            }
            if let Some([a, b]) = o.get("range").and_then(Value::as_array).map(Vec::as_slice) {
                return Some(format!("{}-{}", canonical_json(a)?, canonical_json(b)?));
            }
            // Elements with a timeout, counter or comment are wrapped.
            if let Some(val) = o.get("elem").and_then(|e| e.get("val")) {
                return canonical_json(val);
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rules::{PortMapping, Protocol, SpoofCheck};

    fn rules() -> Rules {
        Rules {
            bridge: "cni0".into(),
            masquerade: vec![
                "10.22.0.5/16".parse().unwrap(),
                "fd00:22::5/64".parse().unwrap(),
            ],
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some("192.168.1.2".parse().unwrap()),
                },
            ],
            container_ips: vec!["10.22.0.5".parse().unwrap(), "fd00:22::5".parse().unwrap()],
            spoof_check: None,
            non_masquerade: Vec::new(),
        }
    }

    #[test]
    fn elements_of_an_attachment() {
        let got: Vec<String> = elements(&rules())
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.set, e.script()))
            .collect();
        assert_eq!(
            got,
            [
                "masq4 10.22.0.5",
                "ownnet4 10.22.0.5 . 10.22.0.0/16",
                "masq6 fd00:22::5",
                "ownnet6 fd00:22::5 . fd00:22::/64",
                "hostport4 tcp . 8080 : 10.22.0.5 . 80",
                "hairpin4 \"cni0\" . tcp . 8080",
                "hostport6 tcp . 8080 : fd00:22::5 . 80",
                "hairpin6 \"cni0\" . tcp . 8080",
                "hostipport4 192.168.1.2 . udp . 5353 : 10.22.0.5 . 53",
                "hairpinip4 \"cni0\" . 192.168.1.2 . udp . 5353",
            ]
        );
    }

    #[test]
    fn non_masquerade_ranges_are_own_networks_too() {
        let r = Rules {
            non_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
            port_mappings: Vec::new(),
            ..rules()
        };
        let got: Vec<String> = elements(&r)
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.set, e.script()))
            .collect();
        assert_eq!(
            got,
            [
                "masq4 10.22.0.5",
                "ownnet4 10.22.0.5 . 10.22.0.0/16",
                "ownnet4 10.22.0.5 . 10.244.0.0/16",
                "masq6 fd00:22::5",
                "ownnet6 fd00:22::5 . fd00:22::/64",
            ]
        );
    }

    #[test]
    fn install_script_replaces_old_and_creates_map_elements() {
        let mut script = Script::full("t", Needs::of(&rules()));
        let base = script.lines;
        for e in elements(&rules()).unwrap() {
            script.install("t", &e);
        }
        let body: Vec<&str> = script.text.lines().skip(base).collect();
        assert_eq!(body[0], "add element inet t masq4 { 10.22.0.5 }");
        assert_eq!(
            body[4],
            "create element inet t hostport4 { tcp . 8080 : 10.22.0.5 . 80 }"
        );
        assert_eq!(script.creates.get(&(base + 5)).unwrap().host_port, 8080);
    }

    #[test]
    fn conflict_is_traced_to_its_line() {
        let mut script = Script::full("t", Needs::of(&rules()));
        for e in elements(&rules()).unwrap() {
            script.install("t", &e);
        }
        let line = script.creates.keys().max().copied().unwrap();
        let err = FirewallError::Command {
            command: "nft -f -".into(),
            status: "exit status: 1".into(),
            stderr: format!("/dev/stdin:{line}:29-38: Error: Could not process rule: File exists"),
        };
        match conflict(err, &script) {
            FirewallError::PortConflict { mapping, .. } => {
                assert_eq!(mapping, "udp/5353 on 192.168.1.2")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn listing_is_canonicalised_like_our_elements() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"chain": {"family": "inet", "table": "t", "name": "postrouting"}},
          {"rule": {"family": "inet", "table": "t", "chain": "postrouting", "expr": []}},
          {"set": {"name": "ownnet4", "elem": [{"concat": ["10.22.0.5", {"prefix": {"addr": "10.22.0.0", "len": 16}}]}]}},
          {"map": {"name": "hostport4", "elem": [[{"concat": ["tcp", 8080]}, {"concat": ["10.22.0.5", 80]}]]}},
          {"set": {"name": "hairpin4", "elem": [{"concat": ["cni0", "tcp", 8080]}]}}]}"#;
        let l = parse_listing(json).unwrap();
        assert_eq!(l.rules["postrouting"], 1);
        let els = elements(&rules()).unwrap();
        for set in ["ownnet4", "hostport4", "hairpin4"] {
            let e = els.iter().find(|e| e.set == set).unwrap();
            assert!(l.elements[set].contains(&e.canonical()), "{set}");
        }
    }

    #[test]
    fn skeleton_rule_counts() {
        let counts = expected_rule_counts(Table::Inet, "t");
        let get = |n: &str| counts.iter().find(|(c, _)| c == n).unwrap().1;
        assert_eq!(get("prerouting"), 5);
        assert_eq!(get("output"), 3);
        assert_eq!(get("hostports"), 4);
        assert_eq!(get("postrouting"), 5);
        assert_eq!(
            expected_rule_counts(Table::Bridge, "t"),
            [("filter".to_string(), 1)]
        );
    }

    fn spoof_checked(mut r: Rules) -> Rules {
        r.spoof_check = Some(SpoofCheck {
            port: "veth0a1b2c3d".into(),
            mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        });
        r
    }

    #[test]
    fn spoof_check_elements_go_to_the_bridge_table() {
        let els = elements(&spoof_checked(rules())).unwrap();
        let bridge: Vec<String> = els
            .iter()
            .filter(|e| e.table == Table::Bridge)
            .map(|e| format!("{} {}", e.set, e.script()))
            .collect();
        assert_eq!(
            bridge,
            [
                "spoofports \"veth0a1b2c3d\"",
                "spoofok \"veth0a1b2c3d\" . 02:42:ac:11:00:02",
            ]
        );
        assert_eq!(els.iter().filter(|e| e.table == Table::Inet).count(), 10);
    }

    #[test]
    fn fast_script_with_spoof_check_is_one_transaction_of_adds() {
        let r = spoof_checked(rules());
        let mut script = Script::fast("t", Needs::of(&r));
        for e in elements(&r).unwrap() {
            script.install("t", &e);
        }
        let lines: Vec<&str> = script.text.lines().collect();
        assert_eq!(lines[0], "add element inet t layout_v1 { 1 }");
        assert_eq!(lines[1], "add element bridge t layout_v1 { 1 }");
        assert_eq!(
            &lines[lines.len() - 2..],
            [
                "add element bridge t spoofports { \"veth0a1b2c3d\" }",
                "add element bridge t spoofok { \"veth0a1b2c3d\" . 02:42:ac:11:00:02 }",
            ]
        );
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("add element ") || l.starts_with("create element ")),
            "{}",
            script.text
        );
        // Only the check: the inet table is neither needed nor touched.
        let only = spoof_checked(Rules {
            bridge: "cni0".into(),
            ..Rules::default()
        });
        assert_eq!(
            Script::fast("t", Needs::of(&only)).text,
            "add element bridge t layout_v1 { 1 }\n"
        );
        // Without it, nothing about the bridge table.
        assert!(
            !Script::fast("t", Needs::of(&rules()))
                .text
                .contains("bridge")
        );
        assert!(
            !Script::full("t", Needs::of(&rules()))
                .text
                .contains("bridge")
        );
        assert!(
            !Script::full("t", Needs::of(&Rules::default()))
                .text
                .is_empty()
        );
    }

    #[test]
    fn full_script_declares_the_bridge_skeleton_and_removes_in_pairs() {
        let r = spoof_checked(rules());
        let mut script = Script::full("t", Needs::of(&r));
        for e in elements(&r).unwrap() {
            if e.table == Table::Bridge {
                script.remove("t", &e);
            }
        }
        let text = &script.text;
        assert!(text.starts_with("add table inet t\n"), "{text}");
        for want in [
            "add table bridge t\n",
            "add chain bridge t filter { type filter hook prerouting priority -300; policy accept; }\n",
            "flush chain bridge t filter\n",
            "add rule bridge t filter iifname @spoofports iifname . ether saddr != @spoofok drop\n",
            "add element bridge t spoofok { \"veth0a1b2c3d\" . 02:42:ac:11:00:02 }\n\
             delete element bridge t spoofok { \"veth0a1b2c3d\" . 02:42:ac:11:00:02 }\n",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }

    #[test]
    fn bridge_listing_is_canonicalised_like_our_elements() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
          {"set": {"family": "bridge", "name": "layout_v1", "table": "t", "type": "mark", "elem": [1]}},
          {"set": {"family": "bridge", "name": "spoofports", "table": "t", "type": "ifname", "elem": ["veth0a1b2c3d"]}},
          {"set": {"family": "bridge", "name": "spoofok", "table": "t", "type": ["ifname", "ether_addr"], "elem": [{"concat": ["veth0a1b2c3d", "02:42:ac:11:00:02"]}]}},
          {"chain": {"family": "bridge", "table": "t", "name": "filter"}},
          {"rule": {"family": "bridge", "table": "t", "chain": "filter", "expr": []}}]}"#;
        let l = parse_listing(json).unwrap();
        assert_eq!(l.rules["filter"], 1);
        for e in elements(&spoof_checked(rules()))
            .unwrap()
            .iter()
            .filter(|e| e.table == Table::Bridge)
        {
            assert!(l.elements[e.set].contains(&e.canonical()), "{}", e.set);
        }
    }
}
