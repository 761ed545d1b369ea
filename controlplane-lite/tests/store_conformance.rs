//! The `Store` contract, checked the same way against every backend.
//!
//! Each case in [`cases`] takes a fresh, empty store; `conformance!` instantiates every case
//! once per backend. The etcd cases run against a real `etcd` started per test on loopback
//! ports ([`etcd_server`]); a machine without `etcd` fails them. Backend-specific behaviour
//! (sqlite durability and reopening, watch lag, etcd compaction seen by another client) is
//! in [`sqlite_only`] and [`etcd_only`].

// The helpers shared by the tests are not `#[test]` functions, so clippy's
// allow-unwrap-in-tests does not reach them; here an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "store_conformance/cases.rs"]
mod cases;
#[path = "store_conformance/etcd_only.rs"]
mod etcd_only;
#[path = "store_conformance/etcd_server.rs"]
mod etcd_server;
#[path = "store_conformance/sqlite_only.rs"]
mod sqlite_only;

use std::sync::Arc;

use skiff_controlplane::store::DynStore;
use skiff_controlplane::store::etcd::EtcdStore;
use skiff_controlplane::store::sqlite::SqliteStore;

/// A store plus whatever must outlive it (a temp dir, an etcd process). Fields drop in
/// order: the store first, then its backing.
pub struct Fixture {
    pub store: DynStore,
    _backing: Box<dyn Send>,
}

pub async fn sqlite_fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .expect("create temp dir");
    let store: Arc<SqliteStore> =
        SqliteStore::open(&dir.path().join("state.db")).expect("open sqlite store");
    Fixture {
        store,
        _backing: Box::new(dir),
    }
}

pub async fn etcd_fixture() -> Fixture {
    let server = etcd_server::EtcdServer::start().await;
    let store: Arc<EtcdStore> = EtcdStore::connect(&[server.endpoint().to_owned()])
        .await
        .expect("connect to etcd");
    Fixture {
        store,
        _backing: Box::new(server),
    }
}

macro_rules! conformance {
    ($backend:ident, $fixture:path, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = $fixture().await;
                    crate::cases::$case(fixture.store.clone()).await;
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($case:ident),* $(,)?) => {
        conformance!(sqlite, crate::sqlite_fixture, [$($case),*]);
        conformance!(etcd, crate::etcd_fixture, [$($case),*]);
    };
}

all_backends!(
    create_get_duplicate,
    update_compare_and_swap,
    delete_with_and_without_expected,
    list_prefix_and_pagination,
    list_at_every_past_revision,
    list_future_revision,
    count_by_prefix,
    watch_history_from_zero_and_middle,
    watch_live_in_order,
    watch_prefix_filter,
    compaction,
    revisions_strictly_increasing,
    concurrent_writers,
    concurrent_compare_and_swap,
    watcher_sees_every_concurrent_write,
);
