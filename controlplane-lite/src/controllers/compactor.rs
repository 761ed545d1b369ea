//! Periodic compaction of store history, as kube-apiserver does against etcd: each tick
//! compacts to the revision seen at the previous tick, so one interval of history is kept
//! for watchers to resume from.

use std::time::Duration;

use crate::store::DynStore;

pub async fn run(store: DynStore, interval: Duration) {
    let mut previous = None;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!(revision = rev, error = %e, "compaction failed");
            } else {
                tracing::debug!(revision = rev, "compacted");
            }
        }
        match store.current_revision().await {
            Ok(r) => previous = Some(r),
            Err(e) => tracing::warn!(error = %e, "reading the current revision"),
        }
    }
}
