//! The single writer thread and its group commit.
//!
//! Every mutation is a request on a channel. The writer takes all requests waiting, applies
//! each as its own compare-and-swap inside one transaction (a savepoint per request, so a
//! failed one leaves nothing behind and does not disturb the others), commits once (one
//! fsync for the whole batch), publishes the events, and only then answers the callers.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{oneshot, watch};

use super::super::{Event, EventType, KeyValue, Result, Revision, StoreError};
use super::Counters;
use super::schema::{KIND_CREATE, KIND_DELETE, KIND_UPDATE, meta_set, sql_err};
use super::watch::Hub;

/// The most requests one transaction carries.
const MAX_BATCH: usize = 1024;
/// How long the writer may hold a batch open waiting for callers it expects (see `gather`).
/// Small next to an fsync (≈4 ms on this class of disk), which it saves.
const GATHER_WINDOW: Duration = Duration::from_micros(500);
/// Revisions of history removed per compaction transaction, so that a large compaction
/// never stalls writes for long.
const COMPACT_CHUNK: Revision = 5_000;
/// While a compaction is being applied, writes get this many batches between its chunks.
const BATCHES_PER_COMPACT_CHUNK: u32 = 8;

pub(super) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

pub(super) enum Reply {
    Written(Revision),
    Deleted(Revision, KeyValue),
    Compacted,
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
}

/// What the store keeps of its writer: the request channel and the thread to join.
pub(super) struct WriterHandle {
    path: String,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Option<JoinHandle<()>>,
}

/// Where the writer starts from, read from the file at open.
pub(super) struct Start {
    pub head: Revision,
    pub compacted: Revision,
    pub compact_done: Revision,
}

impl WriterHandle {
    pub fn spawn(
        conn: Connection,
        path: &str,
        start: Start,
        counters: Arc<Counters>,
        hub: Arc<Hub>,
        published: watch::Sender<Revision>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            path: path.to_owned(),
            rx,
            rev: start.head,
            compacted: start.compacted,
            compact_done: start.compact_done,
            compact_blocked: false,
            batches_since_chunk: 0,
            last_batch: 1,
            counters,
            hub,
            published,
        };
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| {
                StoreError::Internal(format!(
                    "sqlite store at {path}: cannot start writer thread: {e}"
                ))
            })?;
        Ok(Self {
            path: path.to_owned(),
            tx: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    pub async fn submit(&self, op: Op) -> Result<Reply> {
        let stopped =
            || StoreError::Internal(format!("sqlite store at {}: writer has stopped", self.path));
        let (reply, answer) = oneshot::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = tx.as_ref().ok_or_else(stopped)?;
            tx.send(Request { op, reply }).map_err(|_| stopped())?;
        }
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish its current batch and exit; joining
        // means the file is closed once the store is gone, so it can be reopened at once.
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(path = %self.path, "sqlite writer thread panicked");
        }
    }
}

struct Writer {
    conn: Connection,
    path: String,
    rx: Receiver<Request>,
    /// The last committed revision.
    rev: Revision,
    compacted: Revision,
    /// History at or below this has been physically removed.
    compact_done: Revision,
    /// Set when a compaction chunk failed, so an idle writer does not retry in a loop.
    compact_blocked: bool,
    batches_since_chunk: u32,
    last_batch: usize,
    counters: Arc<Counters>,
    hub: Arc<Hub>,
    published: watch::Sender<Revision>,
}

impl Writer {
    fn run(mut self) {
        tracing::debug!(path = %self.path, rev = self.rev, "sqlite writer started");
        loop {
            let compaction_due = self.compact_done < self.compacted && !self.compact_blocked;
            let first = if compaction_due {
                match self.rx.try_recv() {
                    Ok(request) => request,
                    Err(TryRecvError::Empty) => {
                        self.compact_chunk();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                }
            };
            let batch = self.gather(first);
            self.commit_batch(batch);
            self.compact_blocked = false;
            self.batches_since_chunk += 1;
            if self.compact_done < self.compacted
                && self.batches_since_chunk >= BATCHES_PER_COMPACT_CHUNK
            {
                self.compact_chunk();
            }
        }
        tracing::debug!(path = %self.path, rev = self.rev, "sqlite writer stopped");
    }

    /// Collects the requests waiting behind `first`. Concurrent callers send their next
    /// write right after the previous commit answers them, so they trickle in over a few
    /// microseconds; when fewer than the previous batch have arrived, waiting a moment for
    /// the rest lets them share this fsync instead of each paying for one.
    fn gather(&mut self, first: Request) -> Vec<Request> {
        let mut batch = vec![first];
        self.drain_into(&mut batch);
        let target = self.last_batch.min(MAX_BATCH);
        if batch.len() < target {
            let deadline = Instant::now() + GATHER_WINDOW;
            while batch.len() < target {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                match self.rx.recv_timeout(left) {
                    Ok(request) => {
                        batch.push(request);
                        self.drain_into(&mut batch);
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        self.last_batch = batch.len();
        batch
    }

    fn drain_into(&mut self, batch: &mut Vec<Request>) {
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        let started = Instant::now();
        let size = batch.len();
        let mut rev = self.rev;
        let mut compacted = self.compacted;
        let mut outcomes = Vec::with_capacity(size);
        let mut events = Vec::with_capacity(size);

        let mut tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot begin a write transaction");
                for request in batch {
                    let _ = request.reply.send(Err(copy_sql_error(&self.path, &e)));
                }
                return;
            }
        };

        for Request { op, reply } in batch {
            let mut op_compacted = compacted;
            let result = tx.savepoint().map_err(sql_err(&self.path)).and_then(|sp| {
                let applied = apply(&sp, &self.path, op, rev, &mut op_compacted)?;
                sp.commit().map_err(sql_err(&self.path))?;
                compacted = op_compacted;
                Ok(applied)
            });
            let result = result.map(|(reply, event)| {
                if let Some(event) = event {
                    rev = event.revision();
                    events.push(event);
                }
                reply
            });
            outcomes.push((reply, result));
        }

        if let Err(e) = tx.commit() {
            tracing::warn!(path = %self.path, error = %e, size, "write batch failed to commit");
            for (reply, result) in outcomes {
                let result = result.and(Err(copy_sql_error(&self.path, &e)));
                let _ = reply.send(result);
            }
            return;
        }

        self.rev = rev;
        self.compacted = compacted;
        self.counters.committed.store(rev, Ordering::Release);
        self.counters.compacted.store(compacted, Ordering::Release);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .writes
            .fetch_add(u64::try_from(size).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.hub.publish(events, &self.published);
        for (reply, result) in outcomes {
            let _ = reply.send(result);
        }
        tracing::trace!(size, rev, elapsed = ?started.elapsed(), "write batch committed");
    }

    /// Removes one chunk of compacted history. A row at or below the compacted revision is
    /// kept while it is a key's current value or the value a later change replaced: those
    /// are what reads at the compacted revision and events after it still need.
    fn compact_chunk(&mut self) {
        self.batches_since_chunk = 0;
        let from = self.compact_done;
        let to = (from + COMPACT_CHUNK).min(self.compacted);
        let started = Instant::now();
        let result = (|| -> rusqlite::Result<usize> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let removed = tx
                .prepare_cached(
                    "DELETE FROM log WHERE rev > ?1 AND rev <= ?2
                     AND rev NOT IN (SELECT mod_rev FROM kv)
                     AND rev NOT IN (SELECT prev_rev FROM log WHERE rev > ?3)",
                )?
                .execute(params![from, to, self.compacted])?;
            meta_set(&tx, "compact_done", to)?;
            tx.commit()?;
            Ok(removed)
        })();
        match result {
            Ok(removed) => {
                self.compact_done = to;
                tracing::debug!(from, to, removed, elapsed = ?started.elapsed(), "compacted history");
            }
            Err(e) => {
                self.compact_blocked = true;
                tracing::warn!(path = %self.path, from, to, error = %e, "compaction chunk failed");
            }
        }
    }
}

/// Applies one request at revision `last + 1` (if it writes). Returns the reply and the
/// event it produced. Compare failures are detected before anything is written.
fn apply(
    conn: &Connection,
    path: &str,
    op: Op,
    last: Revision,
    compacted: &mut Revision,
) -> Result<(Reply, Option<Event>)> {
    let err = sql_err(path);
    let rev = last + 1;
    match op {
        Op::Create { key, value } => {
            if lookup(conn, &key).map_err(&err)?.is_some() {
                return Err(StoreError::AlreadyExists { key });
            }
            insert_log(conn, rev, &key, KIND_CREATE, Some(&value), rev, 0).map_err(&err)?;
            conn.prepare_cached("INSERT INTO kv (key, create_rev, mod_rev) VALUES (?1, ?2, ?2)")
                .and_then(|mut s| s.execute(params![key.as_bytes(), rev]))
                .map_err(&err)?;
            let kv = KeyValue {
                key,
                value,
                create_revision: rev,
                mod_revision: rev,
            };
            let event = Event {
                kind: EventType::Create,
                kv,
                prev: None,
            };
            Ok((Reply::Written(rev), Some(event)))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let prev = current(conn, path, &key, Some(expected))?;
            insert_log(
                conn,
                rev,
                &key,
                KIND_UPDATE,
                Some(&value),
                prev.create_revision,
                prev.mod_revision,
            )
            .map_err(&err)?;
            conn.prepare_cached("UPDATE kv SET mod_rev = ?2 WHERE key = ?1")
                .and_then(|mut s| s.execute(params![key.as_bytes(), rev]))
                .map_err(&err)?;
            let event = Event {
                kind: EventType::Update,
                kv: KeyValue {
                    key,
                    value,
                    create_revision: prev.create_revision,
                    mod_revision: rev,
                },
                prev: Some(prev),
            };
            Ok((Reply::Written(rev), Some(event)))
        }
        Op::Delete { key, expected } => {
            let prev = current(conn, path, &key, expected)?;
            insert_log(
                conn,
                rev,
                &key,
                KIND_DELETE,
                None,
                prev.create_revision,
                prev.mod_revision,
            )
            .map_err(&err)?;
            conn.prepare_cached("DELETE FROM kv WHERE key = ?1")
                .and_then(|mut s| s.execute(params![key.as_bytes()]))
                .map_err(&err)?;
            let event = Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    key,
                    value: prev.value.clone(),
                    create_revision: prev.create_revision,
                    mod_revision: rev,
                },
                prev: Some(prev.clone()),
            };
            Ok((Reply::Deleted(rev, prev), Some(event)))
        }
        Op::Compact { revision } => {
            if revision > last {
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current: last,
                });
            }
            if revision > *compacted {
                meta_set(conn, "compacted", revision).map_err(&err)?;
                *compacted = revision;
            }
            Ok((Reply::Compacted, None))
        }
    }
}

/// The current value of `key`, checked against `expected`.
fn current(
    conn: &Connection,
    path: &str,
    key: &str,
    expected: Option<Revision>,
) -> Result<KeyValue> {
    let err = sql_err(path);
    let Some((create_revision, mod_revision)) = lookup(conn, key).map_err(&err)? else {
        return Err(StoreError::NotFound {
            key: key.to_owned(),
        });
    };
    if let Some(expected) = expected
        && expected != mod_revision
    {
        return Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            actual: mod_revision,
        });
    }
    let value: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM log WHERE rev = ?1")
        .and_then(|mut s| s.query_row([mod_revision], |row| row.get(0)).optional())
        .map_err(&err)?
        .flatten();
    let value = value.ok_or_else(|| {
        StoreError::Internal(format!(
            "sqlite store at {path}: {key} points at log row {mod_revision}, which has no value"
        ))
    })?;
    Ok(KeyValue {
        key: key.to_owned(),
        value,
        create_revision,
        mod_revision,
    })
}

fn lookup(conn: &Connection, key: &str) -> rusqlite::Result<Option<(Revision, Revision)>> {
    conn.prepare_cached("SELECT create_rev, mod_rev FROM kv WHERE key = ?1")?
        .query_row([key.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

fn insert_log(
    conn: &Connection,
    rev: Revision,
    key: &str,
    kind: i64,
    value: Option<&[u8]>,
    create_rev: Revision,
    prev_rev: Revision,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO log (rev, key, kind, value, create_rev, prev_rev)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        rev,
        key.as_bytes(),
        kind,
        value,
        create_rev,
        prev_rev
    ])?;
    Ok(())
}

/// rusqlite errors are not `Clone`; a failed commit must be reported to every caller of the
/// batch, so rebuild the error from its sqlite codes.
fn copy_sql_error(path: &str, e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => StoreError::Sqlite {
            path: path.to_owned(),
            source: rusqlite::Error::SqliteFailure(*code, message.clone()),
        },
        other => StoreError::Internal(format!("sqlite store at {path}: {other}")),
    }
}
