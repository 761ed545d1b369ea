//! watch: a stream of ADDED / MODIFIED / DELETED / BOOKMARK / ERROR events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Api, Reply, Request, decode_stored, partial_metadata};
use crate::apiserver::object;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::response;
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::ApiError;
use crate::store::{Event, EventType, Revision, StoreError};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Object,
    Table { include: &'static str },
    PartialMetadata,
}

struct Encoder {
    info: &'static ResourceInfo,
    /// The version the watcher asked for (objects are converted to it).
    served: &'static ResourceInfo,
    format: Format,
    sent_header: bool,
}

impl Encoder {
    fn line(&mut self, ty: &str, obj: &Value) -> Bytes {
        let object = match self.format {
            Format::Object if !self.served.is_storage() && ty != "BOOKMARK" => {
                crate::apiserver::conversion::from_storage(self.served, obj)
            }
            Format::Object => obj.clone(),
            Format::PartialMetadata => partial_metadata(obj),
            Format::Table { include } if ty != "BOOKMARK" && ty != "ERROR" => {
                let mut t = crate::apiserver::printers::table(
                    self.info.kind,
                    std::slice::from_ref(obj),
                    jiff::Timestamp::now(),
                    include,
                );
                // Column definitions go with the first event only, as Kubernetes does.
                if self.sent_header {
                    t["columnDefinitions"] = json!([]);
                }
                self.sent_header = true;
                t
            }
            Format::Table { .. } => obj.clone(),
        };
        let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }

    fn bookmark(&mut self, rev: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.served.api_version(), "metadata": meta});
        let mut v =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": "ERROR", "object": e.status_json()}))
        .unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// The wire line for an event when nothing needs the parsed object.
fn fast_line(ev: &Event, only: Option<&str>) -> Result<Option<Bytes>, ApiError> {
    if let Some(n) = only
        && ev.kv.key.rsplit('/').next() != Some(n)
    {
        return Ok(None);
    }
    let ty = match ev.kind {
        EventType::Create => "ADDED",
        EventType::Update => "MODIFIED",
        EventType::Delete => "DELETED",
    };
    let obj = crate::apiserver::codec::stamped(&ev.kv)?;
    let mut line = Vec::with_capacity(obj.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(ty.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&obj);
    line.extend_from_slice(b"}\n");
    Ok(Some(Bytes::from(line)))
}

/// Maps one store event through the selectors into the event a watcher sees.
fn translate(
    ev: &Event,
    sel: &Selectors,
    only: Option<&str>,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    let obj = decode_stored(&ev.kv)?;
    if only.is_some_and(|n| n != object::name(&obj)) {
        return Ok(None);
    }
    let prev_matched = match &ev.prev {
        Some(p) => sel.matches(&decode_stored(p)?),
        None => false,
    };
    let now_matches = sel.matches(&obj);
    let ty = match ev.kind {
        EventType::Create if now_matches => "ADDED",
        EventType::Create => return Ok(None),
        EventType::Delete if now_matches || prev_matched => "DELETED",
        EventType::Delete => return Ok(None),
        EventType::Update => match (prev_matched, now_matches) {
            (false, true) => "ADDED",
            (true, true) => "MODIFIED",
            (true, false) => "DELETED",
            (false, false) => return Ok(None),
        },
    };
    Ok(Some((ty, obj)))
}

pub async fn watch(api: &Arc<Api>, req: &Request) -> Reply {
    let info = req.res.info;
    let sel = Selectors::from_query(info, &req.query)?;
    let format = if req.wants_table() {
        let include = match req.query.get("includeObject") {
            Some("Object") => "Object",
            Some("None") => "None",
            _ => "Metadata",
        };
        Format::Table { include }
    } else if req.wants_partial_metadata() {
        Format::PartialMetadata
    } else {
        Format::Object
    };
    let bookmarks = req.query.flag("allowWatchBookmarks");
    let send_initial = req.query.flag("sendInitialEvents");
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let rv = req.query.get("resourceVersion").unwrap_or("");
    let mut enc = Encoder {
        info,
        served: req.res.served,
        format,
        sent_header: false,
    };
    let only = sel.exact_name();
    // Without selectors (a name pin aside) and in plain JSON, events are spliced from the
    // stored bytes: a hundred watchers cost a hundred memcpys per change, not parses.
    let plain = format == Format::Object && sel.only_pins_name() && req.res.served.is_storage();
    let prefix = api.prefix(info, req.namespace());
    let (tx, rx) = mpsc::channel::<Bytes>(64);

    // Where the stream starts: after a given revision, or after a fresh list whose items
    // are sent as ADDED first (resourceVersion unset or "0", or sendInitialEvents).
    let mut initial = Vec::new();
    let start = if rv.is_empty() || rv == "0" || send_initial {
        let listed = super::read::list_items(api, &without_paging(req), &sel, 0).await?;
        initial = listed.items;
        listed.revision
    } else {
        rv.parse::<Revision>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?
    };
    let stream = match api.store.watch(&prefix, start).await {
        Ok(s) => Some(s),
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            let e = ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            ));
            let _ = tx.try_send(error_line(&e));
            None
        }
        Err(e) => return Err(ApiError::from_store(info, "", e)),
    };
    if let Some(mut stream) = stream {
        tokio::spawn(async move {
            for kv in &initial {
                let line = match decode_stored(kv) {
                    Ok(obj) => enc.line("ADDED", &obj),
                    Err(e) => error_line(&e),
                };
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if send_initial && bookmarks && tx.send(enc.bookmark(start, true)).await.is_err() {
                return;
            }
            let mut last = start;
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(BOOKMARK_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = tx.closed() => return,
                    _ = tick.tick(), if bookmarks => {
                        if tx.send(enc.bookmark(last, false)).await.is_err() {
                            return;
                        }
                    }
                    item = stream.next() => {
                        let line = match item {
                            None => return,
                            Some(Ok(ev)) => {
                                last = ev.revision();
                                if plain {
                                    match fast_line(&ev, only.as_deref()) {
                                        Ok(Some(line)) => line,
                                        Ok(None) => continue,
                                        Err(e) => error_line(&e),
                                    }
                                } else {
                                match translate(&ev, &sel, only.as_deref()) {
                                    Ok(Some((ty, obj))) => enc.line(ty, &obj),
                                    Ok(None) => continue,
                                    Err(e) => error_line(&e),
                                }
                                }
                            }
                            Some(Err(StoreError::Compacted { requested, compacted })) => {
                                error_line(&ApiError::gone(format!("too old resource version: {requested} ({compacted})")))
                            }
                            Some(Err(e)) => {
                                // A watcher that fell behind is told to re-list, as etcd's
                                // watch cache does.
                                tracing::debug!(error = %e, "watch ended");
                                error_line(&ApiError::gone(format!("watch closed: {e}")))
                            }
                        };
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    } else {
        drop(tx);
    }
    Ok(response::stream(ReceiverStream::new(rx)))
}

/// The same request without `limit`/`continue`, for the initial list of a watch.
fn without_paging(req: &Request) -> Request {
    let mut q = req.query.clone();
    q.0.remove("limit");
    q.0.remove("continue");
    q.0.remove("resourceVersion");
    q.0.remove("resourceVersionMatch");
    Request {
        method: req.method.clone(),
        res: req.res.clone(),
        query: q,
        headers: req.headers.clone(),
        body: req.body.clone(),
        identity: req.identity.clone(),
    }
}
