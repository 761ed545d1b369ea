//! What only the etcd backend has to get right: compactions made by another client, a
//! server that goes away, and its throughput for comparison with sqlite.

use std::time::Duration;

use futures::StreamExt;
use skiff_controlplane::store::etcd::EtcdStore;
use skiff_controlplane::store::{DynStore, StoreError};

use crate::cases::{concurrent_creates, expect_watch_compacted, next_event};
use crate::etcd_server::EtcdServer;

async fn client(server: &EtcdServer) -> DynStore {
    EtcdStore::connect(&[server.endpoint().to_owned()])
        .await
        .expect("connect to etcd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_by_another_client() {
    let server = EtcdServer::start().await;
    let a = client(&server).await;
    let b = client(&server).await;
    let r1 = a.create("/e/k", b"1".to_vec()).await.unwrap();
    let r2 = a.update("/e/k", b"2".to_vec(), r1).await.unwrap();
    let r3 = a.update("/e/k", b"3".to_vec(), r2).await.unwrap();
    a.compact(r3).await.unwrap();

    // b has not heard of the compaction; etcd tells it.
    assert_eq!(b.compacted_revision().await.unwrap(), 0);
    match b.list("/e/", None, 0, Some(r1)).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, r1),
        other => panic!("expected Compacted, got {other:?}"),
    }
    expect_watch_compacted(&b, "/e/", r1 - 1).await;
    assert_eq!(b.compacted_revision().await.unwrap(), r3);
    // Compacting below what etcd has already compacted is not an error.
    b.compact(r2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_ends_with_an_error_when_etcd_dies() {
    let mut server = EtcdServer::start().await;
    let s = client(&server).await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/dead/", start).await.unwrap();
    s.create("/dead/a", b"a".to_vec()).await.unwrap();
    next_event(&mut w).await;
    server.kill();
    match tokio::time::timeout(Duration::from_secs(30), w.next()).await {
        Ok(Some(Err(e))) => println!("watch ended with: {e}"),
        other => panic!("expected an error item after etcd died, got {other:?}"),
    }
    assert!(s.create("/dead/b", b"b".to_vec()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_to_nothing_fails() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        EtcdStore::connect(std::slice::from_ref(&endpoint)),
    )
    .await
    .expect("connect gave up in time");
    assert!(result.is_err(), "connected to nothing at {endpoint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput() {
    let server = EtcdServer::start().await;
    let s = client(&server).await;
    let (acks, elapsed) = concurrent_creates(&s, "/tp/", 16, 200, &[b'x'; 1024]).await;
    println!(
        "etcd: 16 writers {} creates in {elapsed:?} = {:.0} creates/s",
        acks.len(),
        acks.len() as f64 / elapsed.as_secs_f64()
    );
}
