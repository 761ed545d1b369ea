//! Embedded sqlite backend: one file in WAL mode, fsync on every commit.
//!
//! Writes go through one writer thread that commits them in groups ([`writer`]); reads use a
//! small pool of read-only connections on tokio's blocking pool ([`read`]); watchers share a
//! ring of recent events and fall back to the on-disk log for older history ([`watch`]).
//! The layout on disk is described in [`schema`].

mod read;
mod schema;
mod watch;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;

use super::{KeyValue, ListResult, Result, Revision, Store, StoreError, WatchStream};
use read::{ListQuery, ReadPool};
use schema::{head_revision, meta_get, sql_err};
use watch::{Hub, Ring};
use writer::{Op, Reply, Start, WriterHandle};

/// Tuning knobs; the defaults suit an API server holding tens of thousands of objects in
/// well under 100 MiB.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Read-only connections serving gets, lists and watch catch-up concurrently.
    pub read_connections: usize,
    /// Page cache of the writer connection, in KiB.
    pub writer_cache_kib: usize,
    /// Page cache of each read connection, in KiB.
    pub reader_cache_kib: usize,
    /// Most recent events kept in memory for watchers.
    pub watch_ring_events: usize,
    /// Upper bound on the bytes of keys and values held by that ring.
    pub watch_ring_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            writer_cache_kib: 8 * 1024,
            reader_cache_kib: 2 * 1024,
            watch_ring_events: 4096,
            watch_ring_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What the writer publishes for lock-free reads.
pub(super) struct Counters {
    committed: AtomicI64,
    compacted: AtomicI64,
    batches: AtomicU64,
    writes: AtomicU64,
}

/// Counters of the writer, for metrics and for checking that group commit groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteStats {
    /// Write transactions committed (one fsync each).
    pub batches: u64,
    /// Requests those transactions carried, failed compare-and-swaps included.
    pub writes: u64,
}

/// The sqlite-backed [`Store`].
pub struct SqliteStore {
    path: String,
    counters: Arc<Counters>,
    reads: Arc<ReadPool>,
    hub: Arc<Hub>,
    writer: WriterHandle,
    /// Released only after the writer has stopped (fields drop in order).
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `path` with default options.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if missing) the store at `path`. Reopening an existing file serves
    /// everything in it and continues its revisions. Blocks briefly on file I/O.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Arc<Self>> {
        let path_str = path.display().to_string();
        let lock = lock_exclusively(path)?;
        let conn = schema::open_writer(&path_str, options.writer_cache_kib)?;
        let start = {
            let tx = conn.unchecked_transaction().map_err(sql_err(&path_str))?;
            let start = Start {
                head: head_revision(&tx).map_err(sql_err(&path_str))?,
                compacted: meta_get(&tx, "compacted").map_err(sql_err(&path_str))?,
                compact_done: meta_get(&tx, "compact_done").map_err(sql_err(&path_str))?,
            };
            tx.commit().map_err(sql_err(&path_str))?;
            start
        };
        let reads = Arc::new(ReadPool::open(
            &path_str,
            options.read_connections,
            options.reader_cache_kib,
        )?);
        let counters = Arc::new(Counters {
            committed: AtomicI64::new(start.head),
            compacted: AtomicI64::new(start.compacted),
            batches: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        let (hub, published) = Hub::new(Ring::new(
            start.head,
            options.watch_ring_events,
            options.watch_ring_bytes,
        ));
        let hub = Arc::new(hub);
        tracing::info!(path = %path_str, revision = start.head, compacted = start.compacted, "opened sqlite store");
        let writer = WriterHandle::spawn(
            conn,
            &path_str,
            start,
            Arc::clone(&counters),
            Arc::clone(&hub),
            published,
        )?;
        Ok(Arc::new(Self {
            path: path_str,
            counters,
            reads,
            hub,
            writer,
            _lock: lock,
        }))
    }

    /// The file this store lives in.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    fn unexpected(&self, op: &str) -> StoreError {
        StoreError::Internal(format!(
            "sqlite store at {}: writer sent the wrong kind of reply to {op}",
            self.path
        ))
    }
}

/// Takes `<path>-lock` for the lifetime of the store. Two writers on one file would hand out
/// the same revisions; sqlite's own locks only serialise their transactions.
fn lock_exclusively(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push("-lock");
    let lock_path = PathBuf::from(lock_path);
    let fail = |why: String| {
        StoreError::Internal(format!(
            "sqlite store at {}: {why} ({})",
            path.display(),
            lock_path.display()
        ))
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("cannot open the lock file: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(fail("already open in another store".into())),
        Err(TryLockError::Error(e)) => Err(fail(format!("cannot lock: {e}"))),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        // The writer stores this after the commit and before answering anyone, so every
        // acknowledged write is covered.
        Ok(self.counters.committed.load(Ordering::Acquire))
    }

    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let key = key.to_owned();
        self.reads
            .run(move |tx, path| read::get(tx, path, &key))
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult> {
        let query = ListQuery {
            prefix: prefix.to_owned(),
            start_after: start_after.map(str::to_owned),
            limit,
            revision,
        };
        self.reads
            .run(move |tx, path| read::list(tx, path, &query))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.reads
            .run(move |tx, path| read::count(tx, path, &prefix))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
        };
        match self.writer.submit(op).await? {
            Reply::Written(rev) => Ok(rev),
            _ => Err(self.unexpected("create")),
        }
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let op = Op::Update {
            key: key.to_owned(),
            value,
            expected,
        };
        match self.writer.submit(op).await? {
            Reply::Written(rev) => Ok(rev),
            _ => Err(self.unexpected("update")),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let op = Op::Delete {
            key: key.to_owned(),
            expected,
        };
        match self.writer.submit(op).await? {
            Reply::Deleted(rev, kv) => Ok((rev, kv)),
            _ => Err(self.unexpected("delete")),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.counters.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(watch::stream(
            Arc::clone(&self.hub),
            Arc::clone(&self.reads),
            prefix,
            after,
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.writer.submit(Op::Compact { revision }).await? {
            Reply::Compacted => Ok(()),
            _ => Err(self.unexpected("compact")),
        }
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.counters.compacted.load(Ordering::Acquire))
    }
}
