//! What only the sqlite backend promises: its file outlives the process (reopen, kill -9),
//! watchers are bounded (lag), history is physically compacted, group commit is fast, and
//! 10k pod-sized objects fit in a small memory budget.
//!
//! The kill -9 and memory tests re-run this test binary as a child process (selected by an
//! environment variable) so that the child can be killed or measured on its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_controlplane::store::sqlite::{SqliteOptions, SqliteStore};
use skiff_controlplane::store::{DynStore, EventType, Revision, StoreError};

use crate::cases::{
    concurrent_creates, drain_events, expect_watch_compacted, next_event, take_events,
};

const CHILD_DB: &str = "SKIFF_STORE_TEST_CHILD_DB";
const CHILD_ROUND: &str = "SKIFF_STORE_TEST_CHILD_ROUND";

fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("skiff-store-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("state.db");
    (dir, path)
}

fn open(path: &Path) -> DynStore {
    SqliteStore::open(path).expect("open sqlite store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reopen_after_drop() {
    let (_dir, path) = temp_db();
    let s = open(&path);
    // One writer per file: a second store on it would hand out the same revisions.
    let second = SqliteStore::open(&path);
    assert!(second.is_err(), "opened a file that is already open");
    let r1 = s.create("/o/a", b"1".to_vec()).await.unwrap();
    let r2 = s.update("/o/a", b"2".to_vec(), r1).await.unwrap();
    let rb = s.create("/o/b", b"b".to_vec()).await.unwrap();
    let r3 = s.update("/o/a", b"3".to_vec(), r2).await.unwrap();
    let (rd, _) = s.delete("/o/b", None).await.unwrap();
    let rc = s.create("/o/c", b"c".to_vec()).await.unwrap();
    s.compact(r2).await.unwrap();
    let head = s.current_revision().await.unwrap();
    assert_eq!(head, rc);
    drop(s);

    for _ in 0..2 {
        let s = open(&path);
        assert_eq!(s.current_revision().await.unwrap(), head);
        assert_eq!(s.compacted_revision().await.unwrap(), r2);
        let (a, _) = s.get("/o/a").await.unwrap();
        let a = a.expect("/o/a survives");
        assert_eq!(
            (a.value.as_slice(), a.create_revision, a.mod_revision),
            (&b"3"[..], r1, r3)
        );
        assert!(s.get("/o/b").await.unwrap().0.is_none());

        let snapshot = s.list("/o/", None, 0, Some(rb)).await.unwrap();
        let keys: Vec<_> = snapshot
            .kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision))
            .collect();
        assert_eq!(keys, [("/o/a", &b"2"[..], r2), ("/o/b", &b"b"[..], rb)]);

        let mut w = s.watch("/o/", r2).await.unwrap();
        let events = take_events(&mut w, 4).await;
        let got: Vec<_> = events.iter().map(|e| (e.kind, e.revision())).collect();
        assert_eq!(
            got,
            [
                (EventType::Create, rb),
                (EventType::Update, r3),
                (EventType::Delete, rd),
                (EventType::Create, rc),
            ]
        );
        assert_eq!(events[1].prev.as_ref().map(|p| p.mod_revision), Some(r2));
        assert_eq!(events[2].kv.value, b"b");
        expect_watch_compacted(&s, "/o/", r1).await;
    }

    // Revisions continue where the file left off.
    let s = open(&path);
    let next = s.create("/o/d", b"d".to_vec()).await.unwrap();
    assert_eq!(next, head + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_watcher_lags_without_blocking_writers() {
    let (_dir, path) = temp_db();
    let options = SqliteOptions {
        watch_ring_events: 16,
        ..SqliteOptions::default()
    };
    let s: DynStore = SqliteStore::open_with(&path, options).unwrap();
    let start = s.current_revision().await.unwrap();
    let mut slow = s.watch("/lag/", start).await.unwrap();
    s.create("/lag/first", b"x".to_vec()).await.unwrap();
    next_event(&mut slow).await;

    // The watcher stops reading; writers must not notice.
    let started = Instant::now();
    for i in 0..200 {
        s.create(&format!("/lag/{i:03}"), b"x".to_vec())
            .await
            .unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(60));

    let mut delivered = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(StoreError::WatchLagged { prefix }))) => {
                assert_eq!(prefix, "/lag/");
                break;
            }
            other => panic!("expected events then WatchLagged, got {other:?}"),
        }
    }
    assert!(
        delivered < 200,
        "a lagging watcher got everything ({delivered})"
    );
    assert!(
        slow.next().await.is_none(),
        "WatchLagged must be the last item"
    );

    // A fresh watcher from the same point catches up from disk.
    let mut again = s.watch("/lag/", start).await.unwrap();
    assert_eq!(take_events(&mut again, 201).await.len(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_older_than_the_ring_reads_the_log() {
    let (_dir, path) = temp_db();
    let options = SqliteOptions {
        watch_ring_events: 8,
        ..SqliteOptions::default()
    };
    let s: DynStore = SqliteStore::open_with(&path, options).unwrap();
    let (acks, _) = concurrent_creates(&s, "/old/", 4, 200, b"v").await;
    s.create("/elsewhere", b"x".to_vec()).await.unwrap();
    let mut revs: Vec<Revision> = acks.iter().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    let mut w = s.watch("/old/", 0).await.unwrap();
    let events = take_events(&mut w, revs.len()).await;
    let got: Vec<Revision> = events.iter().map(|e| e.revision()).collect();
    assert_eq!(got, revs);
    let live = s.create("/old/live", b"x".to_vec()).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_removes_history_from_disk() {
    let (_dir, path) = temp_db();
    let s = open(&path);
    let mut rev = s.create("/h/k", b"0".to_vec()).await.unwrap();
    for i in 1..=300 {
        rev = s
            .update("/h/k", i.to_string().into_bytes(), rev)
            .await
            .unwrap();
    }
    let gone = s.create("/h/gone", b"x".to_vec()).await.unwrap();
    s.delete("/h/gone", Some(gone)).await.unwrap();
    let other = s.create("/h/other", b"x".to_vec()).await.unwrap();
    s.compact(other).await.unwrap();

    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
            .unwrap();
        // Only the two live values are left.
        if rows == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "history not compacted: {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (k, _) = s.get("/h/k").await.unwrap();
    assert_eq!(k.map(|kv| kv.value), Some(b"300".to_vec()));
    let all = s.list("/h/", None, 0, Some(other)).await.unwrap();
    assert_eq!(all.kvs.len(), 2);
    let next = s.update("/h/k", b"301".to_vec(), rev).await.unwrap();
    let mut w = s.watch("/h/", other).await.unwrap();
    let e = next_event(&mut w).await;
    assert_eq!(e.revision(), next);
    assert_eq!(e.prev.map(|p| p.value), Some(b"300".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_throughput() {
    let (_dir, path) = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let s: DynStore = store.clone();
    let value = vec![b'x'; 1024];

    let started = Instant::now();
    for i in 0..100 {
        s.create(&format!("/seq/{i:04}"), value.clone())
            .await
            .unwrap();
    }
    let sequential = 100.0 / started.elapsed().as_secs_f64();

    let before = store.stats();
    let (acks, elapsed) = concurrent_creates(&s, "/tp/", 16, 400, &value).await;
    let after = store.stats();
    let concurrent = acks.len() as f64 / elapsed.as_secs_f64();
    let batches = after.batches - before.batches;
    let per_batch = (after.writes - before.writes) as f64 / batches as f64;
    println!(
        "sqlite: 1 writer {sequential:.0} creates/s; 16 writers {} creates in {elapsed:?} \
         = {concurrent:.0} creates/s, {batches} commits ({per_batch:.1} writes per fsync)",
        acks.len()
    );
    // Wall-clock rates depend on the disk and on what else runs; the grouping does not.
    assert!(
        per_batch >= 6.0,
        "16 writers shared only {per_batch:.1} writes per commit"
    );
}

/// Runs the test named `name` of this binary as a child with `env` set.
fn child(name: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Child side of the kill -9 test: write forever, print each acknowledged write.
fn kill9_child(path: &Path, round: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = open(path);
        for t in 0..8 {
            let s = s.clone();
            let round = round.to_owned();
            tokio::spawn(async move {
                let value = vec![b'v'; 2048];
                for i in 0.. {
                    let key = format!("/k9/{round}/{t}/{i:06}");
                    let rev = s.create(&key, value.clone()).await.unwrap();
                    println!("ACK {key} {rev}");
                }
            });
        }
        // The parent kills us long before this.
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[test]
fn kill9_durability() {
    if let Some(path) = std::env::var_os(CHILD_DB) {
        let round = std::env::var(CHILD_ROUND).unwrap_or_default();
        kill9_child(Path::new(&path), &round);
        return;
    }
    let (_dir, path) = temp_db();
    let mut acked: Vec<(String, Revision)> = Vec::new();
    for round in 0..3 {
        let mut cmd = child(
            "sqlite_only::kill9_durability",
            &[
                (CHILD_DB, path.display().to_string()),
                (CHILD_ROUND, round.to_string()),
            ],
        );
        let mut proc = cmd.spawn().expect("spawn child");
        let stdout = proc.stdout.take().expect("child stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print its own text on the same line first.
                if let Some(at) = line.find("ACK ") {
                    let mut parts = line[at + 4..].split_whitespace();
                    if let (Some(key), Some(rev)) = (parts.next(), parts.next()) {
                        let _ = tx.send((key.to_owned(), rev.parse::<Revision>().unwrap()));
                    }
                }
            }
        });
        // Kill at a different point each round, mid-stream.
        let target = 400 + round * 173;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < target {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(ack) => {
                    acked.push(ack);
                    seen += 1;
                }
                Err(e) => {
                    let _ = proc.kill();
                    panic!("child stopped acknowledging after {seen} writes: {e}");
                }
            }
        }
        proc.kill().expect("SIGKILL the child");
        proc.wait().expect("reap the child");
        reader.join().expect("reader thread");
        acked.extend(rx.try_iter());

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = open(&path);
            let head = s.current_revision().await.unwrap();
            for (key, rev) in &acked {
                let (kv, _) = s.get(key).await.unwrap();
                let kv = kv.unwrap_or_else(|| panic!("acknowledged {key}@{rev} lost"));
                assert_eq!(kv.mod_revision, *rev, "{key}");
                assert!(*rev <= head);
            }
            // Nothing half-written: the log and the current state agree.
            let count = s.count("/k9/").await.unwrap();
            let mut w = s.watch("/k9/", 0).await.unwrap();
            let events = take_events(&mut w, usize::try_from(count).unwrap()).await;
            assert!(events.iter().all(|e| e.kind == EventType::Create));
            let next = s
                .create(&format!("/after/{round}"), b"x".to_vec())
                .await
                .unwrap();
            assert_eq!(next, head + 1);
            println!(
                "round {round}: {} acknowledged writes survived SIGKILL ({} stored)",
                acked.len(),
                count
            );
        });
    }
}

fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Child side of the memory test: store 10k pod-sized objects, use them, report memory.
fn memory_child(path: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s: Arc<SqliteStore> = SqliteStore::open(path).unwrap();
        let s: DynStore = s;
        let pod = |i: usize| {
            let mut v =
                format!("{{\"kind\":\"Pod\",\"metadata\":{{\"name\":\"pod-{i}\"}},\"spec\":\"");
            while v.len() < 3000 {
                v.push_str("abcdefghij");
            }
            v.push_str("\"}");
            v.into_bytes()
        };
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in (t..10_000).step_by(16) {
                        s.create(&format!("/registry/pods/default/pod-{i:05}"), pod(i))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.count("/registry/pods/").await.unwrap(), 10_000);
        // Paginated lists, a full watch replay, and a round of updates.
        let mut after: Option<String> = None;
        let rev = s.current_revision().await.unwrap();
        loop {
            let page = s
                .list("/registry/pods/", after.as_deref(), 500, Some(rev))
                .await
                .unwrap();
            after = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more {
                break;
            }
        }
        let mut w = s.watch("/registry/pods/", 0).await.unwrap();
        drain_events(&mut w, 10_000).await;
        let watcher = tokio::spawn(async move { drain_events(&mut w, 2_000).await });
        for i in (0..10_000).step_by(5) {
            let key = format!("/registry/pods/default/pod-{i:05}");
            let (kv, _) = s.get(&key).await.unwrap();
            let kv = kv.unwrap();
            s.update(&key, pod(i), kv.mod_revision).await.unwrap();
        }
        assert_eq!(watcher.await.unwrap(), s.current_revision().await.unwrap());
        println!(
            "MEM rss_kib={} hwm_kib={}",
            proc_status_kib("VmRSS:"),
            proc_status_kib("VmHWM:")
        );
    });
}

#[test]
fn memory_with_10k_pods() {
    if let Some(path) = std::env::var_os(CHILD_DB) {
        memory_child(Path::new(&path));
        return;
    }
    let (_dir, path) = temp_db();
    let out = child(
        "sqlite_only::memory_with_10k_pods",
        &[(CHILD_DB, path.display().to_string())],
    )
    .output()
    .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.find("MEM ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("child printed no MEM line: {stdout}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let (rss, hwm) = (field("rss_kib="), field("hwm_kib="));
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "sqlite with 10k pods of 3 KiB: RSS {} MiB, peak {} MiB, file {} MiB",
        rss / 1024,
        hwm / 1024,
        size / (1024 * 1024)
    );
    assert!(hwm < 100 * 1024, "peak RSS {hwm} KiB is over 100 MiB");
}
