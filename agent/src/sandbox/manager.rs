//! [`Sandbox`]: a pod's namespaces, network and files, made and removed as one.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use tracing::Instrument;

use super::SandboxError;
use super::capabilities::capability_args;
use super::cni::{Attachment, Cni, CniResult, K8sArgs, RuntimeConf};
use super::files::{
    self, DnsSettings, FilePaths, HostDns, PodFiles, PodHostname, host_network_hosts_file,
    hosts_file, pod_hostname, resolv_conf, write_files,
};
use super::namespaces::{self, HostNamespaces, Namespaces};
use super::record::{ETC_DIR, NS_DIR, RECORD_FILE, RecoveredSandbox, SandboxRecord, recover};

/// Node-wide settings of every sandbox.
#[derive(Debug, Clone)]
pub struct SandboxParams {
    /// One directory per pod UID goes here (e.g. `<state dir>/pods`).
    pub root: PathBuf,
    /// The pod's interface name, `eth0` as everywhere in Kubernetes.
    pub ifname: String,
    pub dns: DnsSettings,
    /// The node's resolv.conf for `Default` pods and the search path of
    /// `ClusterFirst` ones; `None` as the kubelet's `--resolv-conf=""`.
    pub resolv_conf: Option<PathBuf>,
    /// The node's hosts file, which host-network pods see.
    pub hosts_file: PathBuf,
}

/// What the containers of a pod need from its sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxInfo {
    pub uid: String,
    pub dir: PathBuf,
    pub namespaces: Namespaces,
    /// The pod's IPs, IPv4 first: from CNI, or the node's for host-network pods.
    pub ips: Vec<IpAddr>,
    pub result: Option<CniResult>,
    /// `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, to bind-mount.
    pub files: FilePaths,
    pub hostname: String,
    /// The pod's `/dev/shm`, shared by its containers; `None` with the host's IPC namespace.
    pub shm: Option<PathBuf>,
    /// DNS settings that had to be changed to fit, for events on the pod.
    pub warnings: Vec<String>,
}

pub struct Sandbox {
    params: SandboxParams,
    cni: RwLock<Option<Arc<Cni>>>,
    /// Set-ups hold it shared, GC exclusively: GC must not see the CNI cache entry
    /// of a sandbox whose record it listed too early to count as valid.
    gc_lock: tokio::sync::RwLock<()>,
}

impl Sandbox {
    /// `cni` may come later ([`Sandbox::set_cni`]): until then only host-network
    /// pods can start, as with a kubelet whose network is not ready.
    pub fn new(params: SandboxParams, cni: Option<Cni>) -> Sandbox {
        Sandbox {
            params,
            cni: RwLock::new(cni.map(Arc::new)),
            gc_lock: tokio::sync::RwLock::new(()),
        }
    }

    /// Switches to a newly loaded network configuration. Attachments made with the
    /// old one are still deleted with the configuration they were made with.
    pub fn set_cni(&self, cni: Option<Cni>) {
        *self.cni.write().unwrap_or_else(|p| p.into_inner()) = cni.map(Arc::new);
    }

    pub fn cni(&self) -> Option<Arc<Cni>> {
        self.cni.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn params(&self) -> &SandboxParams {
        &self.params
    }

    pub fn dir(&self, uid: &str) -> PathBuf {
        self.params.root.join(uid)
    }

    /// Namespaces, CNI ADD, then the files (which need the pod's IPs). A failure
    /// removes whatever was made.
    pub async fn setup(&self, pod: &Pod) -> Result<SandboxInfo, SandboxError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        validate_uid(&uid)?;
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let span = tracing::info_span!("sandbox", pod = %format!("{namespace}/{name}"), uid);
        async move {
            let _no_gc = self.gc_lock.read().await;
            let started = Instant::now();
            let dir = self.dir(&uid);
            if dir.join(RECORD_FILE).exists() {
                return Err(SandboxError::Exists { uid, dir });
            }
            let spec = pod.spec.as_ref();
            let host = HostNamespaces {
                network: spec.and_then(|s| s.host_network).unwrap_or(false),
                ipc: spec.and_then(|s| s.host_ipc).unwrap_or(false),
            };
            let files_err = |source| SandboxError::Files {
                uid: uid.clone(),
                source,
            };
            let names = if host.network {
                node_hostname(&uid)?
            } else {
                pod_hostname(pod, &self.params.dns.cluster_domain).map_err(files_err)?
            };
            let node_dns = match &self.params.resolv_conf {
                Some(path) => Some(HostDns::parse(&read(path)?)),
                None => None,
            };
            let resolv = resolv_conf(pod, &self.params.dns, node_dns.as_ref());
            let (cni, caps) = if host.network {
                (None, Default::default())
            } else {
                let cni = self.cni().ok_or(SandboxError::NetworkNotReady)?;
                (Some(cni), capability_args(pod, &resolv)?)
            };
            fs::create_dir_all(&dir).map_err(|source| SandboxError::Io {
                path: dir.clone(),
                action: "create",
                source,
            })?;
            let mut record = SandboxRecord {
                uid: uid.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                container_id: uid.clone(),
                ifname: self.params.ifname.clone(),
                network: cni.as_ref().map(|c| c.config().name().to_string()),
                host_network: host.network,
                host_ipc: host.ipc,
                hostname: names.uts.clone(),
                ips: Vec::new(),
            };
            record.write(&dir)?;

            let ns = match Namespaces::create_with(&dir.join(NS_DIR), &names.uts, host) {
                Ok(ns) => ns,
                Err(source) => {
                    return Err(self
                        .undo(
                            &uid,
                            SandboxError::Namespaces {
                                uid: uid.clone(),
                                source,
                            },
                        )
                        .await);
                }
            };
            let ns_done = started.elapsed();
            let (result, ips) = match (&cni, &ns.net) {
                (Some(cni), Some(netns)) => {
                    let mut rt = RuntimeConf::new(&uid, netns, &self.params.ifname);
                    rt.k8s = Some(K8sArgs {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        uid: uid.clone(),
                    });
                    rt.capability_args = caps;
                    match cni.add(&rt).await {
                        Ok(result) => {
                            let ips = pod_ips(&result);
                            (Some(result), ips)
                        }
                        Err(source) => {
                            // ADD undid itself unless its cache entry is left.
                            if !cni.has_attachment(&uid, &rt.ifname).unwrap_or(true) {
                                record.network = None;
                                let _ = record.write(&dir);
                            }
                            let err = SandboxError::Cni {
                                uid: uid.clone(),
                                source,
                            };
                            return Err(self.undo(&uid, err).await);
                        }
                    }
                }
                _ => (None, self.params.dns.node_ips.clone()),
            };
            let cni_done = started.elapsed();
            let aliases = spec
                .and_then(|s| s.host_aliases.clone())
                .unwrap_or_default();
            let hosts = if host.network {
                match read(&self.params.hosts_file) {
                    Ok(node_hosts) => host_network_hosts_file(&node_hosts, &aliases),
                    Err(e) => return Err(self.undo(&uid, e).await),
                }
            } else {
                hosts_file(&ips, &names, &aliases)
            };
            let content = PodFiles {
                hosts,
                resolv_conf: resolv.render(),
                hostname: names.uts.clone(),
            };
            let paths = match write_files(&dir.join(ETC_DIR), &content) {
                Ok(p) => p,
                Err(source) => {
                    let err = SandboxError::Files {
                        uid: uid.clone(),
                        source,
                    };
                    return Err(self.undo(&uid, err).await);
                }
            };
            let shm = if host.ipc {
                None
            } else {
                match super::shm::create(&dir) {
                    Ok(p) => Some(p),
                    Err(e) => return Err(self.undo(&uid, e).await),
                }
            };
            record.ips = ips.clone();
            if let Err(e) = record.write(&dir) {
                return Err(self.undo(&uid, e).await);
            }
            tracing::debug!(
                namespaces_ms = ns_done.as_secs_f64() * 1e3,
                cni_ms = (cni_done - ns_done).as_secs_f64() * 1e3,
                total_ms = started.elapsed().as_secs_f64() * 1e3,
                ?ips,
                "sandbox ready"
            );
            Ok(SandboxInfo {
                uid,
                dir,
                namespaces: ns,
                ips,
                result,
                files: paths,
                hostname: names.uts,
                shm,
                warnings: resolv.warnings,
            })
        }
        .instrument(span)
        .await
    }

    async fn undo(&self, uid: &str, err: SandboxError) -> SandboxError {
        if let Err(cleanup) = self.teardown(uid).await {
            tracing::warn!(error = %cleanup, "could not remove the sandbox that failed to start");
        }
        err
    }

    /// CNI DEL, then the namespaces, files and record. Ok when nothing is left;
    /// works on half-made sandboxes and after the netns vanished (DEL then runs on
    /// the cached result). When DEL fails, nothing else is removed, so a retry has
    /// the netns and record it needs.
    pub async fn teardown(&self, uid: &str) -> Result<(), SandboxError> {
        validate_uid(uid)?;
        let dir = self.dir(uid);
        let span = tracing::info_span!("sandbox teardown", uid);
        async move {
            let record = SandboxRecord::read(&dir).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "sandbox record unreadable; tearing down what is there");
                None
            });
            let ifname = record
                .as_ref()
                .map_or(self.params.ifname.clone(), |r| r.ifname.clone());
            let container_id = record
                .as_ref()
                .map_or(uid.to_string(), |r| r.container_id.clone());
            let cni = self.cni();
            let attached = match (&record, &cni) {
                (Some(r), _) => r.network.is_some(),
                (None, Some(cni)) => cni.has_attachment(&container_id, &ifname).unwrap_or(true),
                (None, None) => false,
            };
            if attached {
                let cni = cni.ok_or(SandboxError::NetworkNotReady)?;
                let mut rt = RuntimeConf::new(&container_id, dir.join(NS_DIR).join("net"), &ifname);
                if let Some(r) = &record {
                    rt.k8s = Some(K8sArgs {
                        namespace: r.namespace.clone(),
                        name: r.name.clone(),
                        uid: r.uid.clone(),
                    });
                }
                cni.del(&rt).await.map_err(|source| SandboxError::Cni {
                    uid: uid.to_string(),
                    source,
                })?;
            }
            let mut errors = Vec::new();
            if let Err(source) = namespaces::remove_dir(&dir.join(NS_DIR)) {
                errors.push(SandboxError::Namespaces {
                    uid: uid.to_string(),
                    source,
                });
            }
            if let Err(e) = super::shm::remove(&dir) {
                errors.push(e);
            }
            if let Err(source) = files::remove_files(&dir.join(ETC_DIR)) {
                errors.push(SandboxError::Files {
                    uid: uid.to_string(),
                    source,
                });
            }
            if errors.is_empty() {
                for path in [
                    dir.join(RECORD_FILE),
                    dir.join(format!(".{RECORD_FILE}.tmp")),
                ] {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(source) => errors.push(SandboxError::Io {
                            path,
                            action: "remove",
                            source,
                        }),
                    }
                }
                // Other parts of the agent may keep files of the pod here.
                match fs::remove_dir(&dir) {
                    Ok(()) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                        ) => {}
                    Err(source) => errors.push(SandboxError::Io {
                        path: dir.clone(),
                        action: "remove",
                        source,
                    }),
                }
            }
            SandboxError::collect(errors)
        }
        .instrument(span)
        .await
    }

    /// The sandbox of pod `uid` as an earlier run of the agent made it, if it is whole: its
    /// record is there and its namespaces are still alive. Anything else is `None`, and the
    /// caller tears it down and makes a new one.
    pub fn adopt(&self, uid: &str) -> Result<Option<SandboxInfo>, SandboxError> {
        validate_uid(uid)?;
        let dir = self.dir(uid);
        let Some(record) = SandboxRecord::read(&dir)? else {
            return Ok(None);
        };
        let ns_dir = dir.join(NS_DIR);
        let namespaces = Namespaces {
            net: (!record.host_network).then(|| ns_dir.join("net")),
            ipc: (!record.host_ipc).then(|| ns_dir.join("ipc")),
            uts: (!record.host_network).then(|| ns_dir.join("uts")),
            dir: ns_dir,
        };
        let alive = [&namespaces.net, &namespaces.ipc, &namespaces.uts]
            .into_iter()
            .flatten()
            .all(|p| namespaces::is_namespace(p));
        let files = files::FilePaths::in_dir(&dir.join(ETC_DIR));
        let shm = (!record.host_ipc).then(|| dir.join(super::shm::SHM_DIR));
        let complete = (record.host_network || !record.ips.is_empty())
            && files.hosts.exists()
            && files.resolv_conf.exists()
            && shm.as_ref().is_none_or(|p| p.exists());
        if !alive || !complete {
            return Ok(None);
        }
        Ok(Some(SandboxInfo {
            uid: uid.to_string(),
            dir,
            namespaces,
            ips: record.ips.clone(),
            result: None,
            files,
            hostname: record.hostname.clone(),
            shm,
            warnings: Vec::new(),
        }))
    }

    /// The sandboxes on disk, for adoption or clean-up after a restart.
    pub fn recover(&self) -> Result<Vec<RecoveredSandbox>, SandboxError> {
        recover(&self.params.root)
    }

    /// CNI GC with every sandbox on disk as the valid attachments: releases what
    /// attachments of vanished sandboxes still hold.
    pub async fn gc_network(&self) -> Result<(), SandboxError> {
        let Some(cni) = self.cni() else {
            return Ok(());
        };
        let _exclusive = self.gc_lock.write().await;
        let valid: Vec<Attachment> = recover(&self.params.root)?
            .into_iter()
            .map(|s| match s.record {
                Some(r) => Attachment {
                    container_id: r.container_id,
                    ifname: r.ifname,
                },
                None => Attachment {
                    container_id: s.uid,
                    ifname: self.params.ifname.clone(),
                },
            })
            .collect();
        cni.gc(&valid)
            .await
            .map_err(|source| SandboxError::NetworkGc { source })
    }
}

/// The addresses on the pod's side (interfaces with a sandbox, or unattributed),
/// IPv4 first as containerd orders them.
fn pod_ips(result: &CniResult) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = result
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            Some(i) => result
                .interfaces
                .get(i)
                .is_none_or(|iface| iface.sandbox.as_deref().is_some_and(|s| !s.is_empty())),
            None => true,
        })
        .map(|ip| ip.address.addr())
        .collect();
    ips.sort_by_key(IpAddr::is_ipv6);
    ips.dedup();
    ips
}

/// UIDs name a directory and are the CNI container ID.
fn validate_uid(uid: &str) -> Result<(), SandboxError> {
    let mut chars = uid.chars();
    let ok = uid.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidPod {
            field: "metadata.uid",
            reason: format!("{uid:?} is not a valid UID"),
        })
    }
}

fn node_hostname(uid: &str) -> Result<PodHostname, SandboxError> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; the kernel NUL-terminates within it.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Err(SandboxError::Io {
            path: PathBuf::from(format!("hostname of pod {uid}")),
            action: "read the node hostname for",
            source: io::Error::last_os_error(),
        });
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let hostname = String::from_utf8_lossy(&buf[..end]).into_owned();
    Ok(PodHostname {
        uts: hostname.clone(),
        hostname,
        domain: None,
    })
}

fn read(path: &Path) -> Result<String, SandboxError> {
    fs::read_to_string(path).map_err(|source| SandboxError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skiff_cni::spec::{Interface, IpConfig};

    use super::*;

    #[test]
    fn pod_ips_are_the_sandbox_side_v4_first() {
        let result = CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    sandbox: Some("/run/netns/x".into()),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(0),
                    address: "10.1.0.1/24".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: None,
                },
            ],
            ..Default::default()
        };
        let ips: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(pod_ips(&result), ips);
    }

    #[test]
    fn uids_must_be_safe_names() {
        assert!(validate_uid("0b8e4b1c-7a5d-4c1e-9a39-2f1f7d3c1a00").is_ok());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(validate_uid(bad).is_err(), "{bad}");
        }
    }
}
