//! The IPVS backend, in the shape of kube-proxy's IPVS mode.
//!
//! Every service address (ClusterIP, externalIP, load-balancer ingress, and each NodePort
//! address) is an IPVS virtual server with the usable endpoints as masqueraded real
//! servers; the service addresses are bound to a dummy device so the kernel takes their
//! packets as local. Virtual and real servers are programmed over generic netlink, batched;
//! masquerading and rejection come from fixed iptables rules matching ipsets whose entries
//! follow the Services. The first sync reads what the kernel has and reconciles; later syncs
//! change only what the changed service ports need.

mod companion;
mod config;
mod device;
mod exec;
mod netlink;
mod plan;
mod socket;

pub use companion::{Entry, IpSet, ipset_full, iptables_rules};
pub use config::IpvsConfig;
pub use netlink::{Dest, Request, Service, ServiceKey, ServiceSpec};
pub use plan::{KernelView, Plan, Record, Wanted};

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use crate::model::{ProxyState, ServicePortName};

use super::conntrack;
use super::{Dataplane, DataplaneError, SyncStats};
use socket::IpvsSocket;

/// The IPVS [`Dataplane`].
#[derive(Debug)]
pub struct Ipvs {
    cfg: IpvsConfig,
    /// Opened at the first sync (the constructor does no I/O).
    socket: Option<IpvsSocket>,
    /// `None` until a full sync succeeded, and again after any failure.
    record: Option<Record>,
}

/// The sysctls IPVS NAT needs, as kube-proxy sets them: conntrack entries for IPVS
/// connections (so iptables can masquerade them), and connections to deleted real servers
/// dropped rather than left hanging.
const SYSCTLS: [&str; 3] = [
    "net.ipv4.vs.conntrack=1",
    "net.ipv4.vs.expire_nodest_conn=1",
    "net.ipv4.vs.expire_quiescent_template=1",
];

impl Ipvs {
    /// The backend; nothing is touched until the first sync. Check
    /// [`super::Mode::check_available`] first.
    pub fn new(cfg: IpvsConfig) -> Self {
        Ipvs {
            cfg,
            socket: None,
            record: None,
        }
    }

    pub fn config(&self) -> &IpvsConfig {
        &self.cfg
    }

    /// What the next sync would do, given what the kernel holds (read only for the first
    /// sync): pure, so it is tested without a kernel.
    pub fn plan(
        &self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
        kernel: Option<&KernelView>,
    ) -> Plan {
        plan::plan(&self.cfg, self.record.as_ref(), kernel, state, changed)
    }

    /// Runs `f` on the netlink socket on a blocking thread, opening the socket first if
    /// needed.
    async fn netlink<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut IpvsSocket) -> Result<T, DataplaneError> + Send + 'static,
    ) -> Result<T, DataplaneError> {
        let socket = self.socket.take();
        let netns = self.cfg.netns.clone();
        let (socket, result) = tokio::task::spawn_blocking(move || {
            let mut socket = match socket {
                Some(s) => s,
                None => match IpvsSocket::open(netns.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = f(&mut socket);
            (Some(socket), result)
        })
        .await
        .map_err(|e| netlink::failed(format!("the netlink thread failed: {e}")))?;
        self.socket = socket;
        result
    }

    /// What the kernel holds: every virtual server with its real servers (also those of
    /// virtual servers that are not ours: one may be at an address and port we want), and
    /// the device's addresses.
    async fn read_kernel(&mut self) -> Result<KernelView, DataplaneError> {
        let device_addresses = device::addresses(&self.cfg.ip_command, &self.cfg.device).await?;
        let services = self
            .netlink(move |socket| {
                let mut out = HashMap::new();
                for service in socket.services()? {
                    let dests = socket.dests(&service.key)?;
                    out.insert(
                        service.key,
                        Wanted {
                            spec: service.spec,
                            dests: dests
                                .into_iter()
                                .map(|d| ((d.addr, d.port), d.weight))
                                .collect(),
                        },
                    );
                }
                Ok(out)
            })
            .await?;
        Ok(KernelView {
            services,
            device_addresses,
        })
    }

    async fn ipset_restore(&self, text: &str) -> Result<(), DataplaneError> {
        if text.is_empty() {
            return Ok(());
        }
        exec::check(&self.cfg.ipset_command, &["restore"], Some(text)).await?;
        Ok(())
    }

    /// The jumps from the built-in chains, each inserted once.
    async fn ensure_jumps(&self) -> Result<(), DataplaneError> {
        let ipt = &self.cfg.iptables_command;
        for (table, chain, rule) in companion::jumps() {
            let mut check = vec!["-w", "-t", table, "-C", chain];
            check.extend(&rule);
            if exec::run(ipt, &check, None).await?.success {
                continue;
            }
            let mut insert = vec!["-w", "-t", table, "-I", chain, "1"];
            insert.extend(&rule);
            exec::check(ipt, &insert, None).await?;
        }
        Ok(())
    }

    /// Creates the dummy device, makes the ipsets hold exactly `entries` and writes the
    /// iptables rules and the jumps to them: the part of a full sync that needs no IPVS.
    pub async fn program_companion(&self, entries: &BTreeSet<Entry>) -> Result<(), DataplaneError> {
        device::ensure(
            &self.cfg.ip_command,
            &self.cfg.device,
            &self.cfg.device_kind,
        )
        .await?;
        // Sets before rules: the rules name them.
        self.ipset_restore(&companion::ipset_full(entries)).await?;
        exec::check(
            &self.cfg.iptables_restore_command,
            &["-w", "--noflush"],
            Some(&companion::iptables_rules(&self.cfg)),
        )
        .await?;
        self.ensure_jumps().await
    }

    /// Binds and unbinds service addresses on the dummy device.
    pub async fn change_addresses(
        &self,
        add: &[Ipv4Addr],
        del: &[Ipv4Addr],
    ) -> Result<(), DataplaneError> {
        device::change(&self.cfg.ip_command, &self.cfg.device, add, del).await
    }

    /// The addresses on the dummy device (none when it does not exist).
    pub async fn device_addresses(&self) -> Result<Vec<Ipv4Addr>, DataplaneError> {
        device::addresses(&self.cfg.ip_command, &self.cfg.device).await
    }

    async fn set_sysctls(&self) {
        let mut args = vec!["-w"];
        args.extend(SYSCTLS);
        if let Err(e) = exec::check(&self.cfg.sysctl_command, &args, None).await {
            tracing::warn!(error = %e, "setting the IPVS sysctls");
        }
    }

    async fn apply(
        &mut self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
        record: Option<Record>,
    ) -> Result<Record, DataplaneError> {
        let kernel = if record.is_none() {
            self.set_sysctls().await;
            Some(self.read_kernel().await?)
        } else {
            None
        };
        let mut plan = plan::plan(&self.cfg, record.as_ref(), kernel.as_ref(), state, changed);
        // New entries before the virtual servers, so masquerading is in place when
        // traffic starts to flow.
        if let Some(all) = &plan.all_entries {
            self.program_companion(all).await?;
        } else {
            self.ipset_restore(&companion::ipset_changes(&plan.add_entries, &[]))
                .await?;
        }
        let requests = std::mem::take(&mut plan.requests);
        let count = requests.len();
        if !requests.is_empty() {
            self.netlink(move |socket| socket.execute(&requests))
                .await?;
        }
        self.change_addresses(&plan.add_addresses, &plan.del_addresses)
            .await?;
        self.ipset_restore(&companion::ipset_changes(&[], &plan.del_entries))
            .await?;
        tracing::debug!(
            full = plan.full,
            requests = count,
            addresses_added = plan.add_addresses.len(),
            addresses_deleted = plan.del_addresses.len(),
            "ipvs synced"
        );
        let flushes = std::mem::take(&mut plan.conntrack);
        let record = plan::commit(record, plan);
        if !flushes.is_empty()
            && let Err(e) = conntrack::delete(&self.cfg.conntrack_command, &flushes).await
        {
            // The servers are in place; a flow that keeps its stale NAT is the lesser harm
            // than undoing the sync.
            tracing::warn!(error = %e, "deleting stale UDP conntrack entries");
        }
        Ok(record)
    }
}

#[async_trait::async_trait]
impl Dataplane for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    async fn sync(
        &mut self,
        state: &ProxyState,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<SyncStats, DataplaneError> {
        // Until this succeeds the kernel's state is unknown: a failure (or a cancelled
        // sync) leads to a full reconcile next time.
        let record = self.record.take();
        let full = record.is_none();
        let record = self.apply(state, changed, record).await?;
        let rules = record.size;
        self.record = Some(record);
        Ok(SyncStats { rules, full })
    }

    async fn cleanup(&mut self) -> Result<(), DataplaneError> {
        self.record = None;
        let mut first_error: Option<DataplaneError> = None;
        let mut keep = |r: Result<(), DataplaneError>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "ipvs cleanup");
                first_error.get_or_insert(e);
            }
        };
        // Virtual servers on our addresses, read before the device (and with it the
        // record of which addresses are ours) goes.
        let ours: Vec<IpAddr> = device::addresses(&self.cfg.ip_command, &self.cfg.device)
            .await?
            .into_iter()
            .chain(self.cfg.node_port_addresses.iter().copied())
            .map(IpAddr::V4)
            .collect();
        let removed = self
            .netlink(move |socket| {
                let requests: Vec<Request> = socket
                    .services()?
                    .into_iter()
                    .filter(|s| ours.contains(&s.key.addr))
                    .map(|s| Request::DelService(s.key))
                    .collect();
                socket.execute(&requests)
            })
            .await;
        match removed {
            // Without IPVS in the kernel there is nothing of ours in it.
            Err(e) if !std::path::Path::new("/proc/net/ip_vs").exists() => {
                tracing::debug!(error = %e, "no IPVS to clean up");
            }
            r => keep(r),
        }
        let ipt = &self.cfg.iptables_command;
        for (table, chain, rule) in companion::jumps() {
            let mut delete = vec!["-w", "-t", table, "-D", chain];
            delete.extend(&rule);
            // Absent jumps (a clean host) make this fail; that is fine.
            let _ = exec::run(ipt, &delete, None).await;
        }
        keep(
            exec::check(
                &self.cfg.iptables_restore_command,
                &["-w", "--noflush"],
                Some(&companion::iptables_cleanup()),
            )
            .await
            .map(drop),
        );
        keep(
            exec::check(
                &self.cfg.ipset_command,
                &["restore"],
                Some(&companion::ipset_destroy()),
            )
            .await
            .map(drop),
        );
        keep(device::delete(&self.cfg.ip_command, &self.cfg.device).await);
        first_error.map_or(Ok(()), Err)
    }
}
