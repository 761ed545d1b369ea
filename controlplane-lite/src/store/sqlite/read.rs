//! Reads: a small pool of read-only connections used from tokio's blocking pool. WAL mode
//! lets them run alongside the writer; each read is one transaction, so everything it
//! returns (including the revision it reports) comes from one snapshot.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, ToSql, Transaction};
use tokio::sync::Semaphore;

use super::super::{Event, KeyValue, ListResult, Result, Revision, StoreError};
use super::schema::{
    self, KIND_CREATE, KeyRange, LOG_ROW_COLUMNS, LogRow, head_revision, key_string, meta_get,
    sql_err,
};

pub(super) struct ReadPool {
    path: String,
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub fn open(path: &str, size: usize, cache_kib: usize) -> Result<Self> {
        let size = size.max(1);
        let conns = (0..size)
            .map(|_| schema::open_reader(path, cache_kib))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            path: path.to_owned(),
            conns: Mutex::new(conns),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `f` inside one read transaction on a pooled connection, off the async runtime.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &str) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Internal(format!("sqlite store at {}: closed", self.path)))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // The permit travels with the connection so that a cancelled caller cannot let a
            // second reader in before this one has put the connection back.
            let _permit = permit;
            let mut conn = pool
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .ok_or_else(|| {
                    StoreError::Internal(format!(
                        "sqlite store at {}: no read connection left in the pool",
                        pool.path
                    ))
                })?;
            let result = match conn.transaction() {
                Ok(tx) => f(&tx, &pool.path),
                Err(e) => Err(sql_err(&pool.path)(e)),
            };
            pool.conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("sqlite read task failed: {e}")))?
    }
}

pub(super) fn get(
    tx: &Transaction<'_>,
    path: &str,
    key: &str,
) -> Result<(Option<KeyValue>, Revision)> {
    let err = sql_err(path);
    let head = head_revision(tx).map_err(&err)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT k.create_rev, k.mod_rev, l.value FROM kv k
             JOIN log l ON l.rev = k.mod_rev WHERE k.key = ?1",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([key.as_bytes()]).map_err(&err)?;
    let kv = match rows.next().map_err(&err)? {
        Some(row) => Some(KeyValue {
            key: key.to_owned(),
            create_revision: row.get(0).map_err(&err)?,
            mod_revision: row.get(1).map_err(&err)?,
            value: row.get(2).map_err(&err)?,
        }),
        None => None,
    };
    Ok((kv, head))
}

pub(super) fn count(tx: &Transaction<'_>, path: &str, prefix: &str) -> Result<u64> {
    let err = sql_err(path);
    let range = KeyRange::prefix(prefix);
    let sql = format!(
        "SELECT count(*) FROM kv k WHERE {}",
        range.condition("k.key")
    );
    let mut params: Vec<(&str, &dyn ToSql)> = vec![(":lo", &range.lo)];
    if let Some(hi) = &range.hi {
        params.push((":hi", hi));
    }
    let n: i64 = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row(params.as_slice(), |row| row.get(0)))
        .map_err(&err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A key as read, before its bytes are checked to be UTF-8.
struct RawKv {
    key: Vec<u8>,
    create_rev: Revision,
    mod_rev: Revision,
    value: Vec<u8>,
}

impl RawKv {
    fn into_kv(self, path: &str) -> Result<KeyValue> {
        Ok(KeyValue {
            key: key_string(path, self.key)?,
            value: self.value,
            create_revision: self.create_rev,
            mod_revision: self.mod_rev,
        })
    }
}

pub(super) struct ListQuery {
    pub prefix: String,
    pub start_after: Option<String>,
    pub limit: usize,
    pub revision: Option<Revision>,
}

pub(super) fn list(tx: &Transaction<'_>, path: &str, q: &ListQuery) -> Result<ListResult> {
    let err = sql_err(path);
    let head = head_revision(tx).map_err(&err)?;
    let at = match q.revision {
        Some(r) if r < head => {
            let compacted = meta_get(tx, "compacted").map_err(&err)?;
            if r < compacted {
                return Err(StoreError::Compacted {
                    requested: r,
                    compacted,
                });
            }
            Some(r)
        }
        Some(r) if r > head => {
            return Err(StoreError::FutureRevision {
                requested: r,
                current: head,
            });
        }
        _ => None,
    };

    let range = KeyRange::prefix(&q.prefix);
    let after = q.start_after.as_ref().map(|s| s.as_bytes().to_vec());
    // One row more than asked tells whether the limit cut the result.
    let fetch: i64 = if q.limit == 0 {
        -1
    } else {
        i64::try_from(q.limit).unwrap_or(i64::MAX - 1) + 1
    };
    let mut params: Vec<(&str, &dyn ToSql)> = vec![(":lo", &range.lo), (":limit", &fetch)];
    if let Some(hi) = &range.hi {
        params.push((":hi", hi));
    }
    if let Some(after) = &after {
        params.push((":after", after));
    }
    let after_cond = if after.is_some() {
        "AND k.key > :after"
    } else {
        ""
    };

    let mut kvs = match at {
        None => {
            let sql = format!(
                "SELECT k.key, k.create_rev, k.mod_rev, l.value FROM kv k
                 JOIN log l ON l.rev = k.mod_rev
                 WHERE {} {after_cond} ORDER BY k.key LIMIT :limit",
                range.condition("k.key")
            );
            query_kvs(tx, &sql, &params).map_err(&err)?
        }
        Some(r) => {
            params.push((":rev", &r));
            // Keys untouched since r are current; every other key's state at r is the one
            // its first change after r replaced (absent when that change created it).
            let unchanged = format!(
                "SELECT k.key, k.create_rev, k.mod_rev, l.value FROM kv k
                 JOIN log l ON l.rev = k.mod_rev
                 WHERE {} {after_cond} AND k.mod_rev <= :rev
                 ORDER BY k.key LIMIT :limit",
                range.condition("k.key")
            );
            let rewound = format!(
                "SELECT f.key, f.create_rev, f.prev_rev, p.value
                 FROM (SELECT k.key AS key, min(k.rev) AS first FROM log k
                       WHERE k.rev > :rev AND {} {after_cond} GROUP BY k.key) g
                 JOIN log f ON f.rev = g.first
                 JOIN log p ON p.rev = f.prev_rev
                 WHERE f.kind != {KIND_CREATE}
                 ORDER BY f.key LIMIT :limit",
                range.condition("k.key")
            );
            let a = query_kvs(tx, &unchanged, &params).map_err(&err)?;
            let b = query_kvs(tx, &rewound, &params).map_err(&err)?;
            merge_by_key(a, b)
        }
    };

    let more = q.limit > 0 && kvs.len() > q.limit;
    if more {
        kvs.truncate(q.limit);
    }
    Ok(ListResult {
        kvs: kvs
            .into_iter()
            .map(|kv| kv.into_kv(path))
            .collect::<Result<_>>()?,
        revision: at.unwrap_or(head),
        more,
    })
}

fn query_kvs(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[(&str, &dyn ToSql)],
) -> rusqlite::Result<Vec<RawKv>> {
    let mut stmt = tx.prepare_cached(sql)?;
    // Bind only what this statement names: sqlite rejects unknown parameter names.
    let bound: Vec<(&str, &dyn ToSql)> = params
        .iter()
        .filter(|(name, _)| stmt.parameter_index(name).ok().flatten().is_some())
        .copied()
        .collect();
    let rows = stmt.query_map(bound.as_slice(), |row| {
        Ok(RawKv {
            key: row.get(0)?,
            create_rev: row.get(1)?,
            mod_rev: row.get(2)?,
            value: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Merges two key-sorted, disjoint lists.
fn merge_by_key(a: Vec<RawKv>, b: Vec<RawKv>) -> Vec<RawKv> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.key.cmp(&y.key) != Ordering::Greater,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

/// Up to `limit` events under `prefix` with revision > `after`, from the log, and the
/// revision the scan covered (the last event returned when the limit was hit, else the
/// snapshot's head), from which the caller continues.
pub(super) fn history(
    tx: &Transaction<'_>,
    path: &str,
    prefix: &str,
    after: Revision,
    limit: usize,
) -> Result<(Vec<Event>, Revision)> {
    let err = sql_err(path);
    let compacted = meta_get(tx, "compacted").map_err(&err)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let head = head_revision(tx).map_err(&err)?;
    let range = KeyRange::prefix(prefix);
    let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut params: Vec<(&str, &dyn ToSql)> = vec![
        (":lo", &range.lo),
        (":after", &after),
        (":head", &head),
        (":limit", &limit_i),
    ];
    if let Some(hi) = &range.hi {
        params.push((":hi", hi));
    }
    let sql = format!(
        "SELECT {LOG_ROW_COLUMNS} FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
         WHERE l.rev > :after AND l.rev <= :head AND {} ORDER BY l.rev LIMIT :limit",
        range.condition("l.key")
    );
    let rows: Vec<LogRow> = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params.as_slice(), LogRow::from_row)?
                .collect()
        })
        .map_err(&err)?;
    let scanned_to = if rows.len() == limit {
        rows.last().map_or(head, |r| r.rev)
    } else {
        head
    };
    let events = rows
        .into_iter()
        .map(|row| row.into_event(path))
        .collect::<Result<Vec<_>>>()?;
    Ok((events, scanned_to))
}
