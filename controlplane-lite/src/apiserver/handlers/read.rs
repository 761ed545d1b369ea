//! get and list.

use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Api, Reply, Request, decode_stored, object_reply, partial_metadata};
use crate::apiserver::codec;
use crate::apiserver::response;
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::ApiError;
use crate::store::{KeyValue, Revision};

pub async fn get(api: &Api, req: &Request, name: &str) -> Reply {
    let info = req.res.info;
    match api.read(info, req.namespace(), name).await? {
        Some((obj, _)) => object_reply(req, StatusCode::OK, &obj),
        None => Err(ApiError::not_found(info, name)),
    }
}

/// The opaque `continue` token: where the next page starts and the revision of the first.
fn encode_continue(rev: Revision, last_key_suffix: &str) -> String {
    let doc = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": last_key_suffix});
    base64::engine::general_purpose::URL_SAFE.encode(doc.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let doc: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = doc.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = doc.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rev, start.to_string()))
}

pub struct Listed {
    /// The matching stored entries (raw bytes: decoding is left to the caller).
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// Lists a collection with selectors and paging; the list and watch handlers share it.
pub async fn list_items(
    api: &Api,
    req: &Request,
    sel: &Selectors,
    limit: usize,
) -> Result<Listed, ApiError> {
    let info = req.res.info;
    let prefix = api.prefix(info, req.namespace());
    let (mut at, mut start_after) = match req.query.get("continue") {
        Some(tok) => {
            let (rev, start) = decode_continue(tok)?;
            (Some(rev), Some(format!("{prefix}{start}")))
        }
        None => {
            let exact = req.query.get("resourceVersionMatch") == Some("Exact");
            let rv = match req.query.get("resourceVersion") {
                Some(s) if s != "0" => Some(s.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
                _ => None,
            };
            (if exact { rv } else { None }, None)
        }
    };
    let mut items = Vec::new();
    loop {
        // With a selector, read ahead in bigger pages: most keys may not match.
        let page = if limit == 0 {
            0
        } else if sel.is_empty() {
            limit - items.len()
        } else {
            (limit - items.len()).max(500)
        };
        let res = api
            .store
            .list(&prefix, start_after.as_deref(), page, at)
            .await
            .map_err(|e| ApiError::from_store(info, "", e))?;
        at = Some(res.revision);
        let n = res.kvs.len();
        let mut last_key = None;
        for kv in &res.kvs {
            last_key = Some(kv.key.clone());
            if sel.is_empty() || sel.matches(&decode_stored(kv)?) {
                items.push(kv.clone());
                if limit > 0 && items.len() == limit {
                    break;
                }
            }
        }
        let cut_in_page = limit > 0
            && items.len() == limit
            && last_key.as_ref() != res.kvs.last().map(|kv| &kv.key);
        let more = res.more || cut_in_page;
        if limit > 0 && items.len() == limit && more {
            let suffix = last_key
                .as_deref()
                .and_then(|k| k.strip_prefix(&prefix))
                .unwrap_or("");
            return Ok(Listed {
                items,
                revision: res.revision,
                continue_token: Some(encode_continue(res.revision, suffix)),
            });
        }
        if !res.more || n == 0 || limit == 0 {
            return Ok(Listed {
                items,
                revision: res.revision,
                continue_token: None,
            });
        }
        start_after = last_key;
    }
}

pub async fn list(api: &Api, req: &Request) -> Reply {
    let info = req.res.info;
    let sel = Selectors::from_query(info, &req.query)?;
    let limit: usize = match req.query.get("limit") {
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {s:?}")))?,
        None => 0,
    };
    let listed = list_items(api, req, &sel, limit).await?;
    let mut meta = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(c) = &listed.continue_token {
        meta["continue"] = json!(c);
    }
    if req.wants_table() || req.wants_partial_metadata() {
        let objects = listed
            .items
            .iter()
            .map(decode_stored)
            .collect::<Result<Vec<Value>, ApiError>>()?;
        if req.wants_partial_metadata() {
            let items: Vec<Value> = objects.iter().map(partial_metadata).collect();
            return Ok(response::json(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            ));
        }
        let mut table = crate::apiserver::printers::table(
            info.kind,
            &objects,
            jiff::Timestamp::now(),
            req.query.get("includeObject").unwrap_or("Metadata"),
        );
        table["metadata"] = meta;
        return Ok(response::json(StatusCode::OK, &table));
    }
    // Items are spliced in as stored (with their resourceVersion stamped), never parsed:
    // a list of 10,000 pods costs a memcpy each, not a parse and a re-serialization.
    // Only a version other than the stored one is parsed, to be converted.
    let served = req.res.served;
    let head = json!({"kind": format!("{}List", info.kind), "apiVersion": served.api_version(), "metadata": meta});
    let mut out = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
    out.pop();
    out.extend_from_slice(b",\"items\":[");
    for (i, kv) in listed.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if served.is_storage() {
            out.extend_from_slice(&codec::stamped(kv)?);
        } else {
            let obj = crate::apiserver::conversion::from_storage(served, &decode_stored(kv)?);
            serde_json::to_writer(&mut out, &obj).map_err(|e| ApiError::internal(e.to_string()))?;
        }
    }
    out.extend_from_slice(b"]}");
    Ok(response::raw_json(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_round_trip() {
        let t = encode_continue(42, "default/web-1");
        assert_eq!(
            decode_continue(&t).expect("decode"),
            (42, "default/web-1".to_string())
        );
        assert!(decode_continue("garbage!").is_err());
    }
}
