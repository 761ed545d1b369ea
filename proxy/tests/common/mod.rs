//! Asking a DNS server with Debian's `dig` and reading what it prints.

#![allow(dead_code)]

pub mod upstream;

use std::net::SocketAddr;

/// What dig printed, by section.
#[derive(Debug, Default)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Vec<String>>,
    pub authority: Vec<Vec<String>>,
    pub additional: Vec<Vec<String>>,
}

impl Dig {
    /// The data fields (after name, TTL, class, type) of the answers of type `t`.
    pub fn answers(&self, t: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answer
            .iter()
            .filter(|r| r[3] == t)
            .map(|r| r[4..].join(" "))
            .collect();
        v.sort();
        v
    }

    pub fn has_soa(&self) -> bool {
        self.authority
            .iter()
            .any(|r| r[3] == "SOA" && r[0] == "cluster.local.")
    }
}

pub async fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    dig_in(None, server, args).await
}

/// `dig`, run inside network namespace `netns` when one is given.
pub async fn dig_in(netns: Option<&str>, server: SocketAddr, args: &[&str]) -> Dig {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "dig"]);
            c
        }
        None => tokio::process::Command::new("dig"),
    };
    let out = cmd
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+tries=1", "+time=3"])
        .args(args)
        .output()
        .await
        .expect("running dig (Debian package bind9-dnsutils; scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "dig {args:?} failed:\n{text}");
    let mut d = Dig::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = "";
        } else {
            let fields: Vec<String> = line.split_whitespace().map(String::from).collect();
            match section {
                "answer" => d.answer.push(fields),
                "authority" => d.authority.push(fields),
                "additional" => d.additional.push(fields),
                _ => {}
            }
        }
    }
    d
}
