//! The key-value store under the API server.
//!
//! Keys are `/registry/<group>/<resource>/<namespace>/<name>` strings; values are the
//! object's JSON bytes. Every mutation gets the next global revision, which the API server
//! hands out as `resourceVersion`. Two backends implement [`Store`]: an embedded sqlite file
//! (the default) and etcd v3.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod etcd;
pub mod sqlite;

/// A global, monotonically increasing store revision. `0` means "none yet".
pub type Revision = i64;

/// One stored key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which this key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last change to this key.
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The key was created (it did not exist before this revision).
    Create,
    /// The key existed and was changed.
    Update,
    /// The key was deleted; `kv` holds the last value, with `mod_revision` set to the
    /// revision of the deletion.
    Delete,
}

/// One change, as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub kv: KeyValue,
    /// The value before this change (`None` for a create).
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// The result of a range read.
#[derive(Debug, Clone, Default)]
pub struct ListResult {
    /// Matching keys in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// True when `limit` cut the result and more keys follow the last one returned.
    pub more: bool,
}

/// What a watch yields: events in revision order, or an error that ends the stream.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// A compare-and-swap lost: the key's current mod revision is not the expected one.
    #[error("key {key} has been modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// The requested revision is older than the compacted history.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than anything stored.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A watcher fell too far behind and its stream was cut; it must re-list.
    #[error("watch on {prefix} fell behind and was closed")]
    WatchLagged { prefix: String },
    #[error("sqlite store at {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("etcd store: {context}: {source}")]
    Etcd {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("store: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The storage contract the API server is written against.
///
/// All reads and writes are linearizable. `create`/`update`/`delete` are compare-and-swap
/// operations: they either apply entirely at one new revision or fail with nothing written.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current (latest committed) revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Reads one key at the latest revision. Returns the value (if any) and the revision the
    /// read was served at.
    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)>;

    /// Reads every key that starts with `prefix`, in ascending key order, strictly after
    /// `start_after` when given, at most `limit` keys when `limit > 0`.
    ///
    /// With `revision = Some(r)` the read is served as of revision `r` (a consistent
    /// snapshot for paginated lists); `Compacted` if `r` is older than the history kept,
    /// `FutureRevision` if it is newer than the current revision.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult>;

    /// Counts keys under `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Creates `key`; `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Replaces `key` if its mod revision equals `expected` (`Conflict` otherwise,
    /// `NotFound` if absent). Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if its mod revision equals `expected` when that is given. Returns the
    /// revision of the deletion and the deleted value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Streams every change to keys under `prefix` with revision strictly greater than
    /// `after`, in revision order, then live changes as they commit. `Compacted` (as the
    /// first item or from the call) when history after `after` is no longer kept.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Discards history at and below `revision` (the current value of every key is kept).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The newest revision that has been compacted away (`0` if none).
    async fn compacted_revision(&self) -> Result<Revision>;
}

pub type DynStore = Arc<dyn Store>;
