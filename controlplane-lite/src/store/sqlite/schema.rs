//! On-disk layout and connection set-up shared by the writer and the readers.
//!
//! Values live only in `log` (one row per revision), so every write stores its value once;
//! `kv` is a small index from each live key to the log row holding its current value. The
//! event before a change is found through `prev_rev`, which is why compaction keeps any row
//! still referenced by `kv.mod_rev` or by a later row's `prev_rev`.

use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::super::{Event, EventType, KeyValue, Result, Revision, StoreError};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0), ('compact_done', 0);
";

/// `log.kind` values.
pub(super) const KIND_CREATE: i64 = 0;
pub(super) const KIND_UPDATE: i64 = 1;
pub(super) const KIND_DELETE: i64 = 2;

/// How long a connection waits on a lock before giving up; readers only meet one during
/// a WAL reset, the writer only while another process holds the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps a rusqlite error with the database path.
pub(super) fn sql_err(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Opens the single read-write connection and makes sure the schema exists.
pub(super) fn open_writer(path: &str, cache_kib: usize) -> Result<Connection> {
    let err = sql_err(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "sqlite store at {path}: cannot switch to WAL journal mode (got {mode})"
        )));
    }
    // FULL fsyncs the WAL on every commit: an acknowledged write survives a crash or kill.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&err)?;
    set_cache(&conn, cache_kib).map_err(&err)?;

    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Internal(format!(
            "sqlite store at {path}: schema version {version} is newer than this build \
             understands ({SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(&err)?;
    Ok(conn)
}

/// Opens one read-only connection; the writer must have created the file already.
pub(super) fn open_reader(path: &str, cache_kib: usize) -> Result<Connection> {
    let err = sql_err(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    set_cache(&conn, cache_kib).map_err(&err)?;
    Ok(conn)
}

fn set_cache(conn: &Connection, cache_kib: usize) -> rusqlite::Result<()> {
    // A negative cache_size is a size in KiB rather than in pages.
    let kib = i64::try_from(cache_kib).unwrap_or(i64::MAX);
    conn.pragma_update(None, "cache_size", -kib)
}

/// The latest committed revision as seen by `tx`. Compaction may have removed the newest
/// log row (a delete nobody refers to), so the compacted revision is a floor.
pub(super) fn head_revision(tx: &Connection) -> rusqlite::Result<Revision> {
    tx.prepare_cached(
        "SELECT max(coalesce((SELECT max(rev) FROM log), 0),
                    (SELECT value FROM meta WHERE name = 'compacted'))",
    )?
    .query_row([], |row| row.get(0))
}

pub(super) fn meta_get(tx: &Connection, name: &str) -> rusqlite::Result<Revision> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(super) fn meta_set(tx: &Connection, name: &str, value: Revision) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![name, value])?;
    Ok(())
}

/// The half-open byte range `[lo, hi)` of keys starting with `prefix`; `hi` is `None` when
/// no key bounds it from above (empty prefix, or one made only of 0xFF bytes).
pub(super) struct KeyRange {
    pub lo: Vec<u8>,
    pub hi: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn prefix(prefix: &str) -> Self {
        let lo = prefix.as_bytes().to_vec();
        let mut hi = lo.clone();
        while let Some(last) = hi.pop() {
            if last < 0xFF {
                hi.push(last + 1);
                return Self { lo, hi: Some(hi) };
            }
        }
        Self { lo, hi: None }
    }

    /// The SQL condition on `column` for this range, over the named parameters `:lo` and
    /// (when bounded) `:hi`. Two spellings rather than `:hi IS NULL OR ...` so that sqlite
    /// can use the key index.
    pub fn condition(&self, column: &str) -> String {
        match self.hi {
            Some(_) => format!("{column} >= :lo AND {column} < :hi"),
            None => format!("{column} >= :lo"),
        }
    }
}

pub(super) fn key_string(path: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        StoreError::Internal(format!(
            "sqlite store at {path}: stored key is not UTF-8: {e}"
        ))
    })
}

/// One `log` row joined with the value of the row it replaced.
pub(super) struct LogRow {
    pub rev: Revision,
    pub key: Vec<u8>,
    pub kind: i64,
    pub value: Option<Vec<u8>>,
    pub create_rev: Revision,
    pub prev_rev: Revision,
    pub prev_value: Option<Vec<u8>>,
}

/// Selects the columns [`LogRow::from_row`] expects, from `log l LEFT JOIN log p`.
pub(super) const LOG_ROW_COLUMNS: &str =
    "l.rev, l.key, l.kind, l.value, l.create_rev, l.prev_rev, p.value";

impl LogRow {
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            rev: row.get(0)?,
            key: row.get(1)?,
            kind: row.get(2)?,
            value: row.get(3)?,
            create_rev: row.get(4)?,
            prev_rev: row.get(5)?,
            prev_value: row.get(6)?,
        })
    }

    pub fn into_event(self, path: &str) -> Result<Event> {
        let key = key_string(path, self.key)?;
        let missing = |what: &str| {
            StoreError::Internal(format!(
                "sqlite store at {path}: log row {} for {key} has no {what}",
                self.rev
            ))
        };
        let prev = |value: Vec<u8>| KeyValue {
            key: key.clone(),
            value,
            create_revision: self.create_rev,
            mod_revision: self.prev_rev,
        };
        let event = match self.kind {
            KIND_CREATE => Event {
                kind: EventType::Create,
                kv: KeyValue {
                    key: key.clone(),
                    value: self.value.ok_or_else(|| missing("value"))?,
                    create_revision: self.create_rev,
                    mod_revision: self.rev,
                },
                prev: None,
            },
            KIND_UPDATE => Event {
                kind: EventType::Update,
                kv: KeyValue {
                    key: key.clone(),
                    value: self.value.ok_or_else(|| missing("value"))?,
                    create_revision: self.create_rev,
                    mod_revision: self.rev,
                },
                prev: Some(prev(
                    self.prev_value.ok_or_else(|| missing("previous value"))?,
                )),
            },
            KIND_DELETE => {
                let last = self.prev_value.ok_or_else(|| missing("previous value"))?;
                Event {
                    kind: EventType::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        value: last.clone(),
                        create_revision: self.create_rev,
                        mod_revision: self.rev,
                    },
                    prev: Some(prev(last)),
                }
            }
            other => {
                return Err(StoreError::Internal(format!(
                    "sqlite store at {path}: log row {} has unknown kind {other}",
                    self.rev
                )));
            }
        };
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyRange, open_reader, open_writer};

    #[test]
    fn writer_is_durable_wal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.db").display().to_string();
        let conn = open_writer(&path, 1024).expect("open writer");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        // 2 = FULL: the WAL is synced on every commit.
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 2);
        let reader = open_reader(&path, 256).expect("open reader");
        let tables: i64 = reader
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('kv', 'log', 'meta')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(tables, 3);
        // Opening again keeps the schema and its version.
        drop(conn);
        let again = open_writer(&path, 1024).expect("reopen writer");
        let version: i64 = again
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, super::SCHEMA_VERSION);
    }

    #[test]
    fn prefix_ranges() {
        let r = KeyRange::prefix("/registry/pods/");
        assert_eq!(r.lo, b"/registry/pods/");
        assert_eq!(r.hi.as_deref(), Some(&b"/registry/pods0"[..]));
        assert!(KeyRange::prefix("").hi.is_none());
        let r = KeyRange::prefix("a\u{7f}");
        assert_eq!(r.hi.as_deref(), Some(&b"a\x80"[..]));
        let r = KeyRange::prefix("\u{10FFFF}");
        // U+10FFFF is F4 8F BF BF: the last byte below 0xFF is the final one.
        assert_eq!(r.hi.as_deref(), Some(&[0xF4, 0x8F, 0xBF, 0xC0][..]));
    }
}
