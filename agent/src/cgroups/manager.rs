//! The pod logic both cgroup versions share, on top of a [`Backend`].

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::backend::Backend;
use super::error::CgroupError;
use super::layout::{Layout, PodCgroup, normalize};
use super::qos::QosClass;
use super::resources::{CgroupResources, MIN_SHARES, oci_linux_resources, spec_resources};
use super::stats::CgroupStats;
use super::{CgroupManager, CgroupVersion};

const QOS_CLASSES: [QosClass; 3] = [
    QosClass::Guaranteed,
    QosClass::Burstable,
    QosClass::BestEffort,
];
const FIRST_RETRY: Duration = Duration::from_millis(10);
const LONGEST_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Manager<B> {
    pub(crate) backend: B,
    pub(crate) version: CgroupVersion,
    pub(crate) layout: Layout,
    pub(crate) remove_timeout: Duration,
}

impl<B: Backend> Manager<B> {
    /// Where pod `uid`'s cgroup is, whichever class placed it.
    fn locate(&self, uid: &str) -> Result<Option<PodCgroup>, CgroupError> {
        for qos in QOS_CLASSES {
            let pod = self.layout.pod_cgroup(uid, qos)?;
            if self.backend.exists(&pod.path) {
                return Ok(Some(pod));
            }
        }
        Ok(None)
    }

    fn not_found(&self, uid: &str) -> CgroupError {
        CgroupError::PodNotFound {
            uid: uid.to_string(),
            root: self.layout.root().to_string(),
        }
    }

    /// One removal pass over every place the pod could be.
    fn try_remove(&self, uid: &str) -> Result<(), CgroupError> {
        let mut busy = None;
        for qos in QOS_CLASSES {
            let path = self.layout.pod_path(uid, qos)?;
            match self.backend.remove(&path) {
                Ok(()) => {}
                Err(e) if e.is_busy() => {
                    busy.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        busy.map_or(Ok(()), Err)
    }

    async fn remove_pod_async(&self, uid: &str) -> Result<(), CgroupError> {
        let start = Instant::now();
        let mut delay = FIRST_RETRY;
        loop {
            match self.try_remove(uid) {
                Ok(()) => {
                    tracing::debug!(uid, "pod cgroup removed");
                    return Ok(());
                }
                Err(e) if e.is_busy() => {
                    let waited = start.elapsed();
                    if waited >= self.remove_timeout {
                        let path = match e {
                            CgroupError::Io { path, .. } => path,
                            _ => self.layout.root().into(),
                        };
                        return Err(CgroupError::Busy { path, waited });
                    }
                    tracing::debug!(uid, error = %e, "pod cgroup busy, retrying");
                    tokio::time::sleep(delay.min(self.remove_timeout - waited)).await;
                    delay = (delay * 2).min(LONGEST_RETRY);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl<B: Backend> CgroupManager for Manager<B> {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn ensure_qos_tree(&self) -> Result<(), CgroupError> {
        for qos in QOS_CLASSES {
            self.backend.create(&self.layout.qos_path(qos))?;
        }
        self.backend.apply(
            &self.layout.qos_path(QosClass::BestEffort),
            &CgroupResources::with_shares(MIN_SHARES),
        )
    }

    fn update_qos_tree(
        &self,
        node: &CgroupResources,
        burstable_cpu_shares: u64,
    ) -> Result<(), CgroupError> {
        self.backend.apply(self.layout.root(), node)?;
        self.backend.apply(
            &self.layout.qos_path(QosClass::Burstable),
            &CgroupResources::with_shares(burstable_cpu_shares),
        )?;
        self.backend.apply(
            &self.layout.qos_path(QosClass::BestEffort),
            &CgroupResources::with_shares(MIN_SHARES),
        )
    }

    fn create_pod(
        &self,
        uid: &str,
        qos: QosClass,
        res: &CgroupResources,
    ) -> Result<PodCgroup, CgroupError> {
        let pod = self.layout.pod_cgroup(uid, qos)?;
        self.backend.create(&pod.path)?;
        self.backend.apply(&pod.path, res)?;
        tracing::debug!(uid, path = %pod.path, "pod cgroup created");
        Ok(pod)
    }

    fn update_pod(&self, uid: &str, res: &CgroupResources) -> Result<PodCgroup, CgroupError> {
        let pod = self.locate(uid)?.ok_or_else(|| self.not_found(uid))?;
        self.backend.apply(&pod.path, res)?;
        Ok(pod)
    }

    fn pod(&self, uid: &str) -> Result<Option<PodCgroup>, CgroupError> {
        self.locate(uid)
    }

    fn remove_pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), CgroupError>> {
        Box::pin(self.remove_pod_async(uid))
    }

    fn pod_stats(&self, uid: &str) -> Result<CgroupStats, CgroupError> {
        let pod = self.locate(uid)?.ok_or_else(|| self.not_found(uid))?;
        self.backend.stats(&pod.path)
    }

    fn container_stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        self.backend.stats(&normalize(path)?)
    }

    fn oom_kill_count(&self, path: &str) -> Result<Option<u64>, CgroupError> {
        self.backend.oom_kills(&normalize(path)?)
    }

    fn remove_tree(&self) -> Result<(), CgroupError> {
        self.backend.remove(self.layout.root())
    }

    fn list_pods(&self) -> Result<Vec<String>, CgroupError> {
        let mut uids = Vec::new();
        for qos in QOS_CLASSES {
            for name in self.backend.children(&self.layout.qos_path(qos))? {
                if let Some(uid) = Layout::uid_of(&name) {
                    uids.push(uid.to_string());
                }
            }
        }
        uids.sort();
        uids.dedup();
        Ok(uids)
    }

    fn oci_resources(&self, res: &CgroupResources) -> serde_json::Value {
        oci_linux_resources(res, self.backend.no_swap(self.layout.root()))
    }

    fn container_limits(&self, res: &CgroupResources) -> crate::runtime::spec::Resources {
        spec_resources(res, self.backend.no_swap(self.layout.root()))
    }
}
