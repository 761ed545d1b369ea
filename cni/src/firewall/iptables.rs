//! The iptables fallback, shaped like the reference plugins: per attachment a
//! masquerade chain `<prefix>-M-<hash>` and a hostPort chain `<prefix>-D-<hash>`, and
//! jumps to them from the built-in nat chains, each carrying a comment that starts with
//! the attachment's tag `<prefix>-<hash>`. Everything for one family goes through one
//! `iptables-restore --noflush`.
//!
//! iptables-restore aborts on deleting a rule that is not there, so removal first reads
//! `iptables-save -t nat` and deletes only what it shows: our jumps are found by their
//! tag, our chains by name.
//!
//! There is no MAC spoof check here: it filters bridged frames, which takes ebtables,
//! absent on these hosts, so `Firewall::add` refuses it before reaching this backend.

use std::collections::HashSet;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::exec::Exec;
use super::rules::{AttachmentKey, Family, Rules};
use super::{FirewallError, HAIRPIN_MARK};

/// iptables limits chain names to 28 characters.
const MAX_CHAIN: usize = 28;
const BUILTIN: &[&str] = &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"];

/// How many hash characters fit after `<prefix>-M-`.
pub(super) fn hash_len(prefix: &str) -> usize {
    MAX_CHAIN.saturating_sub(prefix.len() + 3).min(16)
}

struct Names {
    tag: String,
    masq: String,
    dnat: String,
    comment: String,
}

fn names(prefix: &str, key: &AttachmentKey) -> Names {
    let mut h = Sha256::new();
    for part in [&key.network, &key.container_id, &key.ifname] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(hash_len(prefix))
        .collect();
    let tag = format!("{prefix}-{hex}");
    Names {
        masq: format!("{prefix}-M-{hex}"),
        dnat: format!("{prefix}-D-{hex}"),
        comment: format!(
            "{tag} net={} id={} if={}",
            key.network, key.container_id, key.ifname
        ),
        tag,
    }
}

fn tools(f: Family) -> (&'static str, &'static str) {
    match f {
        Family::V4 => ("iptables-save", "iptables-restore"),
        Family::V6 => ("ip6tables-save", "ip6tables-restore"),
    }
}

fn host_len(f: Family) -> u8 {
    match f {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// What one attachment adds to one family's nat table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rendered {
    chains: Vec<String>,
    /// `-A CHAIN …` lines, built-in jumps included.
    rules: Vec<String>,
}

impl Rendered {
    fn builtin_count(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| BUILTIN.iter().any(|b| r.starts_with(&format!("-A {b} "))))
            .count()
    }

    fn count_in(&self, chain: &str) -> usize {
        let p = format!("-A {chain} ");
        self.rules.iter().filter(|r| r.starts_with(&p)).count()
    }
}

fn render(
    prefix: &str,
    key: &AttachmentKey,
    rules: &Rules,
    f: Family,
) -> Result<Rendered, FirewallError> {
    let n = names(prefix, key);
    let c = &n.comment;
    let len = host_len(f);
    let mut out = Rendered::default();
    let masq: Vec<_> = rules
        .masquerades()
        .into_iter()
        .filter(|m| m.family == f)
        .collect();
    if !masq.is_empty() {
        out.chains.push(n.masq.clone());
        for m in &masq {
            out.rules.push(format!(
                "-A POSTROUTING -s {}/{len} -m comment --comment \"{c}\" -j {}",
                m.pod, n.masq
            ));
        }
        for m in rules
            .masquerade_exceptions()
            .into_iter()
            .filter(|m| m.family == f)
        {
            out.rules.push(format!(
                "-A {} -s {}/{len} -d {} -j RETURN",
                n.masq, m.pod, m.subnet
            ));
        }
        let multicast = match f {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        };
        out.rules
            .push(format!("-A {} ! -d {multicast} -j MASQUERADE", n.masq));
    }
    let dnats: Vec<_> = rules
        .dnats()?
        .into_iter()
        .filter(|d| d.family == f)
        .collect();
    if !dnats.is_empty() {
        out.chains.push(n.dnat.clone());
        for hook in ["PREROUTING", "OUTPUT"] {
            out.rules.push(format!(
                "-A {hook} -m addrtype --dst-type LOCAL -m comment --comment \"{c}\" -j {}",
                n.dnat
            ));
        }
        let mark = format!("{HAIRPIN_MARK:#x}/{HAIRPIN_MARK:#x}");
        let mut targets = Vec::new();
        for d in &dnats {
            let dst = d
                .host_ip
                .map(|ip| format!("-d {ip}/{len} "))
                .unwrap_or_default();
            let m = format!("{dst}-p {} --dport {}", d.protocol, d.host_port);
            let chain = &n.dnat;
            out.rules.push(format!(
                "-A {chain} -i {} {m} -j MARK --set-xmark {mark}",
                rules.bridge
            ));
            if f == Family::V4 {
                out.rules.push(format!(
                    "-A {chain} -s 127.0.0.0/8 {m} -j MARK --set-xmark {mark}"
                ));
            }
            let to = match f {
                Family::V4 => format!("{}:{}", d.target, d.target_port),
                Family::V6 => format!("[{}]:{}", d.target, d.target_port),
            };
            out.rules
                .push(format!("-A {chain} {m} -j DNAT --to-destination {to}"));
            if !targets.contains(&d.target) {
                targets.push(d.target);
            }
        }
        for t in targets {
            out.rules.push(format!(
                "-A POSTROUTING -d {t}/{len} -m mark --mark {mark} -m comment --comment \"{c}\" -j MASQUERADE"
            ));
        }
    }
    Ok(out)
}

/// The nat table as `iptables-save -t nat` printed it.
#[derive(Debug, Default)]
struct Saved {
    chains: HashSet<String>,
    rules: Vec<String>,
}

fn parse_save(text: &str) -> Saved {
    let mut saved = Saved::default();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            if let Some(name) = decl.split_whitespace().next() {
                saved.chains.insert(name.to_string());
            }
        } else if line.starts_with("-A ") {
            saved.rules.push(line.to_string());
        }
    }
    saved
}

impl Saved {
    /// Our jumps from the built-in chains, by their comment's tag.
    fn tagged(&self, tag: &str) -> impl Iterator<Item = &String> {
        let needle = format!("--comment \"{tag} ");
        self.rules.iter().filter(move |r| {
            r.contains(&needle) && BUILTIN.iter().any(|b| r.starts_with(&format!("-A {b} ")))
        })
    }

    fn count_in(&self, chain: &str) -> usize {
        let p = format!("-A {chain} ");
        self.rules.iter().filter(|r| r.starts_with(&p)).count()
    }
}

/// Restore lines deleting what `saved` shows of the attachments tagged `tags` and of
/// `chains`; chains in `keep` are left for a `:chain` line to flush.
fn removal(saved: &Saved, tags: &[String], chains: &[String], keep: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags
        .iter()
        .flat_map(|t| saved.tagged(t))
        .map(|r| format!("-D {}", &r[3..]))
        .collect();
    for chain in chains {
        if saved.chains.contains(chain) && !keep.contains(chain) {
            out.push(format!("-F {chain}"));
            out.push(format!("-X {chain}"));
        }
    }
    out
}

pub(super) struct Iptables<'a> {
    pub prefix: &'a str,
    pub exec: &'a Exec,
}

impl Iptables<'_> {
    fn save(&self, f: Family) -> Result<Saved, FirewallError> {
        let out = self.exec.run(tools(f).0, &["-t", "nat"], None)?;
        Ok(parse_save(&out.stdout))
    }

    fn restore(&self, f: Family, chains: &[String], lines: &[String]) -> Result<(), FirewallError> {
        if chains.is_empty() && lines.is_empty() {
            return Ok(());
        }
        let mut input = String::from("*nat\n");
        for c in chains {
            let _ = writeln!(input, ":{c} - [0:0]");
        }
        for l in lines {
            input.push_str(l);
            input.push('\n');
        }
        input.push_str("COMMIT\n");
        self.exec
            .run(tools(f).1, &["-w", "5", "--noflush"], Some(&input))
            .map(|_| ())
    }

    /// Installs `new` for `key`, replacing `old`: one restore per family, preceded by a
    /// save only when there is an old installation to take out.
    pub(super) fn install(
        &self,
        key: &AttachmentKey,
        old: Option<&Rules>,
        new: &Rules,
    ) -> Result<(), FirewallError> {
        let n = names(self.prefix, key);
        let mut families = new.families();
        if let Some(old) = old {
            families.extend(old.families());
        }
        families.sort();
        families.dedup();
        for f in families {
            let add = render(self.prefix, key, new, f)?;
            let mut lines = Vec::new();
            if old.is_some_and(|o| o.families().contains(&f)) {
                let saved = self.save(f)?;
                lines = removal(
                    &saved,
                    std::slice::from_ref(&n.tag),
                    &[n.masq.clone(), n.dnat.clone()],
                    &add.chains,
                );
            }
            lines.extend(add.rules);
            self.restore(f, &add.chains, &lines)?;
        }
        Ok(())
    }

    pub(super) fn remove(&self, all: &[(&AttachmentKey, &Rules)]) -> Result<(), FirewallError> {
        let mut families: Vec<Family> = all.iter().flat_map(|(_, r)| r.families()).collect();
        families.sort();
        families.dedup();
        let mut tags = Vec::new();
        let mut chains = Vec::new();
        for (key, _) in all {
            let n = names(self.prefix, key);
            tags.push(n.tag);
            chains.push(n.masq);
            chains.push(n.dnat);
        }
        let mut errors = Vec::new();
        for f in families {
            let result = self
                .save(f)
                .and_then(|saved| self.restore(f, &[], &removal(&saved, &tags, &chains, &[])));
            if let Err(e) = result {
                errors.push(e);
            }
        }
        FirewallError::collect(errors)
    }

    pub(super) fn check(
        &self,
        key: &AttachmentKey,
        rules: &Rules,
    ) -> Result<Vec<String>, FirewallError> {
        let n = names(self.prefix, key);
        let mut missing = Vec::new();
        for f in rules.families() {
            let want = render(self.prefix, key, rules, f)?;
            let saved = self.save(f)?;
            let (save, _) = tools(f);
            let have = saved.tagged(&n.tag).count();
            if have != want.builtin_count() {
                missing.push(format!(
                    "{save}: {have} of {} jumps tagged {}",
                    want.builtin_count(),
                    n.tag
                ));
            }
            for chain in &want.chains {
                if !saved.chains.contains(chain) {
                    missing.push(format!("{save}: chain {chain}"));
                } else if saved.count_in(chain) != want.count_in(chain) {
                    missing.push(format!(
                        "{save}: {} of {} rules of chain {chain}",
                        saved.count_in(chain),
                        want.count_in(chain)
                    ));
                }
            }
        }
        Ok(missing)
    }

    /// Removes every chain and tagged jump of this prefix, in both families.
    pub(super) fn purge(&self) -> Result<(), FirewallError> {
        let hl = hash_len(self.prefix);
        let ours = |name: &str, infix: &str| {
            name.strip_prefix(self.prefix)
                .and_then(|r| r.strip_prefix(infix))
                .is_some_and(|h| h.len() == hl && h.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        let mut errors = Vec::new();
        for f in [Family::V4, Family::V6] {
            let result = self.save(f).and_then(|saved| {
                let mut lines: Vec<String> = saved
                    .rules
                    .iter()
                    .filter(|r| BUILTIN.iter().any(|b| r.starts_with(&format!("-A {b} "))))
                    .filter(|r| {
                        r.split("--comment \"")
                            .nth(1)
                            .is_some_and(|c| c.split(' ').next().is_some_and(|tag| ours(tag, "-")))
                    })
                    .map(|r| format!("-D {}", &r[3..]))
                    .collect();
                let mut chains: Vec<&String> = saved
                    .chains
                    .iter()
                    .filter(|c| ours(c, "-M-") || ours(c, "-D-"))
                    .collect();
                chains.sort();
                for c in chains {
                    lines.push(format!("-F {c}"));
                    lines.push(format!("-X {c}"));
                }
                self.restore(f, &[], &lines)
            });
            if let Err(e) = result {
                errors.push(e);
            }
        }
        FirewallError::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rules::{PortMapping, Protocol};

    fn key() -> AttachmentKey {
        AttachmentKey::new("net", "c1", "eth0")
    }

    fn rules() -> Rules {
        Rules {
            bridge: "cni0".into(),
            masquerade: vec!["10.22.0.5/16".parse().unwrap()],
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: Some("192.168.1.2".parse().unwrap()),
            }],
            container_ips: vec!["10.22.0.5".parse().unwrap()],
            spoof_check: None,
            non_masquerade: Vec::new(),
        }
    }

    #[test]
    fn chain_names_fit_iptables() {
        for prefix in ["skiff-cni", "skt-4194304-99", "abcdefghijklmnopq"] {
            let n = names(prefix, &key());
            assert!(n.masq.len() <= MAX_CHAIN, "{}", n.masq);
            assert!(hash_len(prefix) >= 8);
        }
        let n = names("skiff-cni", &key());
        assert_eq!(n.masq.len(), "skiff-cni-M-".len() + 16);
        assert_ne!(
            names("skiff-cni", &AttachmentKey::new("net", "c1", "eth1")).tag,
            n.tag
        );
    }

    #[test]
    fn non_masquerade_ranges_return_before_the_masquerade() {
        let r = Rules {
            non_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
            port_mappings: Vec::new(),
            ..rules()
        };
        let out = render("p", &key(), &r, Family::V4).unwrap();
        let m = names("p", &key()).masq;
        let masq: Vec<&String> = out
            .rules
            .iter()
            .filter(|l| l.starts_with(&format!("-A {m} ")))
            .collect();
        assert_eq!(
            masq,
            [
                &format!("-A {m} -s 10.22.0.5/32 -d 10.22.0.0/16 -j RETURN"),
                &format!("-A {m} -s 10.22.0.5/32 -d 10.244.0.0/16 -j RETURN"),
                &format!("-A {m} ! -d 224.0.0.0/4 -j MASQUERADE"),
            ]
        );
    }

    #[test]
    fn v4_rendering() {
        let r = render("p", &key(), &rules(), Family::V4).unwrap();
        let n = names("p", &key());
        let (m, d, c) = (&n.masq, &n.dnat, &n.comment);
        assert_eq!(r.chains, [m.clone(), d.clone()]);
        assert_eq!(
            r.rules,
            [
                format!("-A POSTROUTING -s 10.22.0.5/32 -m comment --comment \"{c}\" -j {m}"),
                format!("-A {m} -s 10.22.0.5/32 -d 10.22.0.0/16 -j RETURN"),
                format!("-A {m} ! -d 224.0.0.0/4 -j MASQUERADE"),
                format!(
                    "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"{c}\" -j {d}"
                ),
                format!(
                    "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment \"{c}\" -j {d}"
                ),
                format!(
                    "-A {d} -i cni0 -d 192.168.1.2/32 -p tcp --dport 8080 -j MARK --set-xmark 0x2000/0x2000"
                ),
                format!(
                    "-A {d} -s 127.0.0.0/8 -d 192.168.1.2/32 -p tcp --dport 8080 -j MARK --set-xmark 0x2000/0x2000"
                ),
                format!(
                    "-A {d} -d 192.168.1.2/32 -p tcp --dport 8080 -j DNAT --to-destination 10.22.0.5:80"
                ),
                format!(
                    "-A POSTROUTING -d 10.22.0.5/32 -m mark --mark 0x2000/0x2000 -m comment --comment \"{c}\" -j MASQUERADE"
                ),
            ]
        );
        assert_eq!(r.builtin_count(), 4);
        assert!(
            render("p", &key(), &rules(), Family::V6)
                .unwrap()
                .rules
                .is_empty()
        );
    }

    #[test]
    fn removal_deletes_only_what_is_saved() {
        let n = names("p", &key());
        let saved = parse_save(&format!(
            "*nat\n:POSTROUTING ACCEPT [0:0]\n:{m} - [0:0]\n\
             -A POSTROUTING -s 10.22.0.5/32 -m comment --comment \"{c}\" -j {m}\n\
             -A POSTROUTING -s 10.9.0.5/32 -m comment --comment \"other\" -j X\n\
             -A {m} ! -d 224.0.0.0/4 -j MASQUERADE\nCOMMIT\n",
            m = n.masq,
            c = n.comment
        ));
        let lines = removal(
            &saved,
            std::slice::from_ref(&n.tag),
            &[n.masq.clone(), n.dnat.clone()],
            &[],
        );
        assert_eq!(
            lines,
            [
                format!(
                    "-D POSTROUTING -s 10.22.0.5/32 -m comment --comment \"{}\" -j {}",
                    n.comment, n.masq
                ),
                format!("-F {}", n.masq),
                format!("-X {}", n.masq),
            ]
        );
        let kept = removal(
            &saved,
            std::slice::from_ref(&n.tag),
            std::slice::from_ref(&n.masq),
            std::slice::from_ref(&n.masq),
        );
        assert_eq!(kept.len(), 1);
    }
}
