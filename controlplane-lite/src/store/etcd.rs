//! etcd v3 backend.
//!
//! Every mutation is one etcd transaction whose compare is the precondition, so the
//! compare-and-swap happens inside etcd and its revision is the store revision. A failed
//! compare reads the key in the same transaction to tell `NotFound` from `Conflict`.
//!
//! etcd has no call that reports the compacted revision, so the store remembers the newest
//! one it has seen (its own compactions, and those etcd reports to watchers) and applies it
//! before asking etcd; compactions done by other clients surface as etcd's own errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::StreamExt;

use super::{
    Event, EventType, KeyValue, ListResult, Result, Revision, Store, StoreError, WatchStream,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 keep-alive, so a watch on a dead connection fails instead of hanging forever.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

const ERR_COMPACTED: &str = "required revision has been compacted";
const ERR_FUTURE: &str = "required revision is a future revision";

/// The etcd-backed [`Store`].
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    /// The newest compaction this client knows of.
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn etcd_err(context: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Etcd { context, source }
}

fn grpc_message(e: &etcd_client::Error) -> Option<&str> {
    match e {
        etcd_client::Error::GRpcStatus(status) => Some(status.message()),
        _ => None,
    }
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    grpc_message(e).is_some_and(|m| m.contains(ERR_COMPACTED))
}

fn is_future(e: &etcd_client::Error) -> bool {
    grpc_message(e).is_some_and(|m| m.contains(ERR_FUTURE))
}

/// The smallest key greater than every key starting with `prefix`; `[0]` (etcd's "to the
/// end") when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>, what: &str) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Internal(format!("etcd answered {what} without a header")))
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = kv
        .key_str()
        .map_err(etcd_err("stored key is not UTF-8"))?
        .to_owned();
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn to_event(e: &etcd_client::Event) -> Result<Event> {
    let kv = e
        .kv()
        .ok_or_else(|| StoreError::Internal("etcd sent a watch event without a key".into()))?;
    let prev = e.prev_kv().map(to_kv).transpose()?;
    Ok(match e.event_type() {
        etcd_client::EventType::Put if kv.version() == 1 => Event {
            kind: EventType::Create,
            kv: to_kv(kv)?,
            prev: None,
        },
        etcd_client::EventType::Put => Event {
            kind: EventType::Update,
            kv: to_kv(kv)?,
            prev,
        },
        // etcd's delete event carries only the key; the contract wants the last value,
        // which prev_kv holds unless etcd compacted it away.
        etcd_client::EventType::Delete => {
            let mut last = to_kv(kv)?;
            if let Some(prev) = &prev {
                last.value = prev.value.clone();
                last.create_revision = prev.create_revision;
            }
            Event {
                kind: EventType::Delete,
                kv: last,
                prev,
            }
        }
    })
}

/// The reading of the key put in a transaction's failure branch.
fn failed_compare(resp: &TxnResponse, key: &str, expected: Option<Revision>) -> Result<StoreError> {
    let current = resp.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.mod_revision())),
        _ => None,
    });
    match current {
        Some(None) => Ok(StoreError::NotFound {
            key: key.to_owned(),
        }),
        Some(Some(actual)) => Ok(StoreError::Conflict {
            key: key.to_owned(),
            expected: expected.unwrap_or(actual),
            actual,
        }),
        None => Err(StoreError::Internal(format!(
            "etcd transaction on {key} failed without reading the key"
        ))),
    }
}

impl EtcdStore {
    /// Connects to an etcd cluster and checks that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<Arc<Self>> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(etcd_err(format!("connecting to {endpoints:?}")))?;
        let store = Self {
            client,
            endpoints: endpoints.to_vec(),
            compacted: Arc::new(AtomicI64::new(0)),
        };
        let revision = store.current_revision().await?;
        tracing::info!(?endpoints, revision, "connected to etcd");
        Ok(Arc::new(store))
    }

    fn kv(&self) -> KvClient {
        self.client.kv_client()
    }

    fn known_compacted(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }

    /// Maps an error of a read at `requested` to the contract's revision errors.
    async fn revision_error(
        &self,
        e: etcd_client::Error,
        requested: Revision,
        context: String,
    ) -> StoreError {
        if is_compacted(&e) {
            // etcd does not say how far; the compaction is at least past `requested`.
            let compacted = self.known_compacted().max(requested + 1);
            return StoreError::Compacted {
                requested,
                compacted,
            };
        }
        if is_future(&e) {
            let current = self.current_revision().await.unwrap_or(requested - 1);
            return StoreError::FutureRevision { requested, current };
        }
        etcd_err(context)(e)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        // Any read reports the revision it was served at; count a key nobody uses.
        let resp = self
            .kv()
            .get(vec![0u8], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(etcd_err("reading the current revision"))?;
        header_revision(resp.header(), "a range")
    }

    async fn get(&self, key: &str) -> Result<(Option<KeyValue>, Revision)> {
        let resp = self
            .kv()
            .get(key, None)
            .await
            .map_err(etcd_err(format!("getting {key}")))?;
        let revision = header_revision(resp.header(), "a get")?;
        let kv = resp.kvs().first().map(to_kv).transpose()?;
        Ok((kv, revision))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult> {
        if let Some(r) = revision {
            let compacted = self.known_compacted();
            if r < compacted {
                return Err(StoreError::Compacted {
                    requested: r,
                    compacted,
                });
            }
            if r <= 0 {
                // etcd reads "revision 0" as "latest"; before the first write nothing existed.
                return Ok(ListResult {
                    revision: r,
                    ..ListResult::default()
                });
            }
        }
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        if let Some(after) = start_after
            && after.as_bytes() >= prefix.as_bytes()
        {
            from = after.as_bytes().to_vec();
            from.push(0);
        }
        let exhausted = end != [0] && from >= end;
        if from.is_empty() {
            from.push(0);
        }
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut options = GetOptions::new().with_range(end).with_limit(limit_i);
        if exhausted {
            // start_after is past the prefix: nothing to read, but report a revision.
            options = options.with_count_only();
        }
        if let Some(r) = revision {
            options = options.with_revision(r);
        }
        let context = format!("listing {prefix}");
        let resp = match self.kv().get(from, Some(options)).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(self.revision_error(e, revision.unwrap_or(0), context).await);
            }
        };
        if exhausted {
            return Ok(ListResult {
                kvs: Vec::new(),
                revision: revision.map_or_else(|| header_revision(resp.header(), "a list"), Ok)?,
                more: false,
            });
        }
        Ok(ListResult {
            kvs: resp.kvs().iter().map(to_kv).collect::<Result<_>>()?,
            revision: revision.map_or_else(|| header_revision(resp.header(), "a list"), Ok)?,
            more: resp.more(),
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let mut from = prefix.as_bytes().to_vec();
        if from.is_empty() {
            from.push(0);
        }
        let options = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_count_only();
        let resp = self
            .kv()
            .get(from, Some(options))
            .await
            .map_err(etcd_err(format!("counting {prefix}")))?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(etcd_err(format!("creating {key}")))?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        header_revision(resp.header(), "a create")
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        // A missing key compares as mod_revision 0, so also require that it exists.
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(etcd_err(format!("updating {key}")))?;
        if !resp.succeeded() {
            return Err(failed_compare(&resp, key, Some(expected))?);
        }
        header_revision(resp.header(), "an update")
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut compares = vec![Compare::version(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(etcd_err(format!("deleting {key}")))?;
        if !resp.succeeded() {
            return Err(failed_compare(&resp, key, expected)?);
        }
        let revision = header_revision(resp.header(), "a delete")?;
        let deleted = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(del) => del.prev_kvs().first().map(to_kv),
            _ => None,
        });
        match deleted {
            Some(kv) => Ok((revision, kv?)),
            None => Err(StoreError::Internal(format!(
                "etcd deleted {key} without returning its value"
            ))),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.known_compacted();
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let mut options = WatchOptions::new()
            .with_start_revision(after.max(0) + 1)
            .with_prev_key();
        options = if prefix.is_empty() {
            options.with_all_keys()
        } else {
            options.with_prefix()
        };
        let stream = self
            .client
            .watch_client()
            .watch(prefix, Some(options))
            .await
            .map_err(etcd_err(format!("watching {prefix}")))?;
        let watcher = Watcher {
            stream,
            prefix: prefix.to_owned(),
            last: after,
            compacted: Arc::clone(&self.compacted),
            done: false,
        };
        Ok(futures::stream::unfold(watcher, |mut w| async move {
            let batch = w.step().await?;
            Some((futures::stream::iter(batch), w))
        })
        .flatten()
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision <= self.known_compacted() {
            return Ok(());
        }
        match self.kv().compact(revision, None).await {
            Ok(_) => {}
            // Someone compacted at least this far already: the request is satisfied.
            Err(e) if is_compacted(&e) => {}
            Err(e) if is_future(&e) => {
                let current = self.current_revision().await?;
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current,
                });
            }
            Err(e) => return Err(etcd_err(format!("compacting at {revision}"))(e)),
        }
        self.compacted.fetch_max(revision, Ordering::AcqRel);
        tracing::debug!(revision, "compacted etcd history");
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.known_compacted())
    }
}

struct Watcher {
    /// Holds the request half too: dropping it would make etcd end the watch.
    stream: etcd_client::WatchStream,
    prefix: String,
    /// The revision of the last event delivered (or the start).
    last: Revision,
    compacted: Arc<AtomicI64>,
    done: bool,
}

impl Watcher {
    async fn step(&mut self) -> Option<Vec<Result<Event>>> {
        loop {
            if self.done {
                return None;
            }
            let resp = match self.stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    return self.end(StoreError::Internal(format!(
                        "etcd closed the watch on {}",
                        self.prefix
                    )));
                }
                Err(e) => return self.end(etcd_err(format!("watching {}", self.prefix))(e)),
            };
            if resp.compact_revision() > 0 {
                let compacted = resp.compact_revision();
                self.compacted.fetch_max(compacted, Ordering::AcqRel);
                return self.end(StoreError::Compacted {
                    requested: self.last,
                    compacted,
                });
            }
            if resp.canceled() {
                return self.end(StoreError::Internal(format!(
                    "etcd cancelled the watch on {}: {}",
                    self.prefix,
                    resp.cancel_reason()
                )));
            }
            let mut batch = Vec::with_capacity(resp.events().len());
            for event in resp.events() {
                match to_event(event) {
                    Ok(event) => {
                        self.last = event.revision();
                        batch.push(Ok(event));
                    }
                    Err(e) => {
                        self.done = true;
                        batch.push(Err(e));
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }

    fn end(&mut self, error: StoreError) -> Option<Vec<Result<Event>>> {
        self.done = true;
        Some(vec![Err(error)])
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0");
        assert_eq!(prefix_end(b""), [0]);
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
    }
}
