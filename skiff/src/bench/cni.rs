//! `skiff bench cni`: ADD and DEL latency of skiff-bridge + skiff-ipam against the
//! reference bridge + host-local, with the same configuration, in one run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{ms, percentile};

const REFERENCE_DIR: &str = "/usr/lib/cni";

struct Plugin {
    label: &'static str,
    bin: PathBuf,
    conf: String,
}

/// Everything the run creates, removed on drop even when a step fails.
struct Scratch {
    netns: Vec<String>,
    bridges: Vec<String>,
    table: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for b in &self.bridges {
            let _ = Command::new("ip")
                .args(["link", "del", b])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn run(pods: usize, rounds: usize) -> Result<()> {
    let our_dir = std::env::current_exe()?
        .parent()
        .context("skiff binary has no directory")?
        .to_path_buf();
    for bin in ["skiff-bridge", "skiff-ipam"] {
        if !our_dir.join(bin).is_file() {
            bail!(
                "{} not found next to skiff: build the workspace (cargo build --release)",
                our_dir.join(bin).display()
            );
        }
    }
    for bin in ["bridge", "host-local"] {
        if !Path::new(REFERENCE_DIR).join(bin).is_file() {
            bail!("{REFERENCE_DIR}/{bin} not found: apt-get install containernetworking-plugins");
        }
    }
    let pid = std::process::id();
    let dir = tempfile::tempdir()?;
    let mut scratch = Scratch {
        netns: Vec::new(),
        bridges: vec![
            format!("skbr{}", pid % 100_000),
            format!("skbs{}", pid % 100_000),
        ],
        table: format!("skbench{pid}"),
    };
    let conf = |plugin: &str, ipam: &str, bridge: &str, subnet: &str, extra: &str| {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"bench{pid}{bridge}","type":"{plugin}","bridge":"{bridge}","isGateway":true,"ipMasq":true{extra},
               "ipam":{{"type":"{ipam}","dataDir":"{data}","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}}"#,
            data = dir.path().join("ipam").display(),
        )
    };
    let ours_extra = format!(
        r#","firewallTable":"{}","stateDir":"{}""#,
        scratch.table,
        dir.path().join("state").display()
    );
    let plugins = [
        Plugin {
            label: "reference bridge + host-local",
            bin: Path::new(REFERENCE_DIR).join("bridge"),
            conf: conf(
                "bridge",
                "host-local",
                &scratch.bridges[0],
                "198.18.250.0/24",
                "",
            ),
        },
        Plugin {
            label: "skiff-bridge + skiff-ipam",
            bin: our_dir.join("skiff-bridge"),
            conf: conf(
                "skiff-bridge",
                "skiff-ipam",
                &scratch.bridges[1],
                "198.18.251.0/24",
                &ours_extra,
            ),
        },
    ];
    let cni_path = format!("{}:{REFERENCE_DIR}", our_dir.display());
    for i in 0..pods {
        let name = format!("skbench{pid}-{i}");
        sh(&["ip", "netns", "add", &name])?;
        scratch.netns.push(name);
    }
    println!(
        "CNI ADD/DEL latency, {pods} pods x {rounds} rounds, ipMasq on, cniVersion 1.0.0 (reference: {REFERENCE_DIR})"
    );

    let mut samples: Vec<(Vec<Duration>, Vec<Duration>)> =
        vec![(Vec::new(), Vec::new()); plugins.len()];
    for plugin in &plugins {
        // Warm-up: the first ADD creates the bridge; not what a pod start costs.
        let ns = format!("/var/run/netns/{}", scratch.netns[0]);
        invoke(plugin, "ADD", "warmup", &ns, &cni_path)?;
        invoke(plugin, "DEL", "warmup", &ns, &cni_path)?;
    }
    for _ in 0..rounds {
        for (p, plugin) in plugins.iter().enumerate() {
            for (i, ns) in scratch.netns.iter().enumerate() {
                let t = invoke(
                    plugin,
                    "ADD",
                    &format!("pod{i}"),
                    &format!("/var/run/netns/{ns}"),
                    &cni_path,
                )?;
                samples[p].0.push(t);
            }
            for (i, ns) in scratch.netns.iter().enumerate() {
                let t = invoke(
                    plugin,
                    "DEL",
                    &format!("pod{i}"),
                    &format!("/var/run/netns/{ns}"),
                    &cni_path,
                )?;
                samples[p].1.push(t);
            }
        }
    }
    let mut medians = Vec::new();
    println!(
        "{:<32} {:>11} {:>11} {:>11} {:>11}",
        "", "ADD median", "ADD p99", "DEL median", "DEL p99"
    );
    for (p, plugin) in plugins.iter().enumerate() {
        let (add, del) = &mut samples[p];
        add.sort();
        del.sort();
        let m = (
            percentile(add, 50.0),
            percentile(add, 99.0),
            percentile(del, 50.0),
            percentile(del, 99.0),
        );
        println!(
            "{:<32} {:>11} {:>11} {:>11} {:>11}",
            plugin.label,
            ms(m.0),
            ms(m.1),
            ms(m.2),
            ms(m.3)
        );
        medians.push(m);
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let (r, s) = (medians[0], medians[1]);
    println!(
        "ratio skiff/reference: ADD median {:.2}x, p99 {:.2}x; DEL median {:.2}x, p99 {:.2}x (target <= 0.5x)",
        ratio(s.0, r.0),
        ratio(s.1, r.1),
        ratio(s.2, r.2),
        ratio(s.3, r.3)
    );
    drop(scratch);
    Ok(())
}

fn invoke(
    plugin: &Plugin,
    command: &str,
    id: &str,
    netns: &str,
    cni_path: &str,
) -> Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new(&plugin.bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", plugin.bin.display()))?;
    child
        .stdin
        .take()
        .context("plugin stdin")?
        .write_all(plugin.conf.as_bytes())?;
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{} {command} {id} failed: {}",
            plugin.label,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(took)
}

fn sh(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .with_context(|| format!("running {args:?}"))?;
    if !st.success() {
        bail!("{args:?} failed");
    }
    Ok(())
}
