//! Throwaway kernel fixtures for the plugin suites: a private /24, bridge, nftables
//! tables (inet and bridge), state and IPAM directories and netns, all named after a
//! slot number this process holds a lock on, and all removed on drop even when the
//! test fails.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BRIDGE_BIN: &str = env!("CARGO_BIN_EXE_skiff-bridge");
pub const IPAM_BIN: &str = env!("CARGO_BIN_EXE_skiff-ipam");
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Directory holding the skiff plugins (CARGO_BIN_EXE_* all live in one target dir).
pub fn skiff_bin_dir() -> String {
    Path::new(BRIDGE_BIN)
        .parent()
        .unwrap()
        .display()
        .to_string()
}

pub struct Fixture {
    pub slot: u32,
    lock: PathBuf,
    pub dir: tempfile::TempDir,
    netns: Vec<String>,
    links: Vec<String>,
}

impl Fixture {
    /// Takes a free slot 1..=250 (its lock file is created with O_EXCL, so concurrent
    /// test processes never share names or subnets).
    pub fn new() -> Fixture {
        let locks = Path::new("/run/skiff-cni-tests");
        std::fs::create_dir_all(locks).unwrap();
        for slot in 1..=250u32 {
            let lock = locks.join(slot.to_string());
            let taken = OpenOptions::new().write(true).create_new(true).open(&lock);
            if let Ok(mut f) = taken {
                writeln!(f, "{}", std::process::id()).unwrap();
                let fx = Fixture {
                    slot,
                    lock,
                    dir: tempfile::tempdir().unwrap(),
                    netns: Vec::new(),
                    links: Vec::new(),
                };
                fx.clean_kernel();
                return fx;
            }
            // A slot left by a process that no longer exists is free again.
            let owner = std::fs::read_to_string(&lock)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            // SAFETY: kill(pid, 0) only probes for existence.
            if owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0) {
                let _ = std::fs::remove_file(&lock);
            }
        }
        panic!("no free test slot under /run/skiff-cni-tests");
    }

    pub fn bridge(&self) -> String {
        format!("skb{}", self.slot)
    }
    pub fn table(&self) -> String {
        format!("skt{}", self.slot)
    }
    pub fn network(&self) -> String {
        format!("sknet{}", self.slot)
    }
    /// 198.18.0.0/15 is reserved for benchmarking; each slot gets a /24 of it.
    pub fn subnet(&self) -> String {
        format!("198.18.{}.0/24", self.slot)
    }
    pub fn subnet6(&self) -> String {
        format!("fd5b:{:x}::/64", self.slot)
    }
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.slot as u8, 1)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A netns named after the slot (removed on drop); returns its path.
    pub fn netns(&mut self, name: &str) -> String {
        let full = format!("skn{}{}", self.slot, name);
        sh(&["ip", "netns", "add", &full]);
        sh(&["ip", "-n", &full, "link", "set", "lo", "up"]);
        self.netns.push(full.clone());
        format!("/var/run/netns/{full}")
    }

    pub fn track_link(&mut self, name: &str) {
        self.links.push(name.to_string());
    }

    /// The configuration the tests use unless they pass their own: a gateway bridge with
    /// masquerade on this slot's subnet.
    pub fn conf(&self, version: &str, ipam_type: &str, extra: &str) -> String {
        format!(
            r#"{{"cniVersion":"{version}","name":"{net}","type":"skiff-bridge","bridge":"{br}","isGateway":true,"ipMasq":true,
               "firewallTable":"{table}","stateDir":"{state}"{extra},
               "ipam":{{"type":"{ipam_type}","dataDir":"{data}","ranges":[[{{"subnet":"{subnet}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}}"#,
            net = self.network(),
            br = self.bridge(),
            table = self.table(),
            state = self.state_dir().display(),
            data = self.data_dir().display(),
            subnet = self.subnet(),
        )
    }

    fn clean_kernel(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .stderr(Stdio::null())
            .status();
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.table()])
                .stderr(Stdio::null())
                .status();
        }
        for l in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        self.clean_kernel();
        let _ = std::fs::remove_file(&self.lock);
    }
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("plugin printed non-JSON ({e}): {}", self.stdout))
    }
    pub fn ok(self) -> Outcome {
        assert_eq!(self.code, 0, "plugin failed: {}", self.stdout);
        self
    }
    pub fn err_code(&self) -> u64 {
        assert_ne!(
            self.code, 0,
            "plugin succeeded but should not have: {}",
            self.stdout
        );
        self.json()["code"].as_u64().unwrap()
    }
}

/// Runs a plugin binary exactly as a runtime does.
pub fn cni(
    bin: &str,
    command: &str,
    container: &str,
    netns: &str,
    ifname: &str,
    path: &str,
    conf: &str,
) -> Outcome {
    cni_env(
        bin,
        &[
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", path),
        ],
        conf,
    )
}

pub fn cni_env(bin: &str, vars: &[(&str, &str)], conf: &str) -> Outcome {
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread that has joined the netns at `path`, so sockets it opens live there.
pub fn in_netns<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = path.to_string();
    std::thread::spawn(move || {
        let ns = File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with an fd we own.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A TCP listener in `netns` (None: the host) that answers every connection with the
/// peer address it saw. Returns once it is listening.
pub fn echo_peer_server(netns: Option<&str>, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let netns = netns.map(str::to_string);
    let handle = std::thread::spawn(move || {
        if let Some(path) = netns {
            let ns = File::open(&path).unwrap();
            // SAFETY: as in `in_netns`.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
        }
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(false).unwrap();
        tx.send(()).unwrap();
        // Serves a few connections, then the thread ends with the test.
        for mut s in l.incoming().take(4).flatten() {
            let peer = s
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = s.write_all(peer.as_bytes());
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    handle
}

/// Connects from `netns` (None: the host) and returns what the server wrote.
pub fn connect_from(netns: Option<&str>, to: SocketAddr) -> std::io::Result<String> {
    let run = move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    };
    match netns {
        Some(p) => in_netns(p, run),
        None => run(),
    }
}
