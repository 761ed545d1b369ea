//! How objects are laid out in the store, and stamping resourceVersion on the way out.
//!
//! A stored object always begins with `{"metadata":{` and never holds resourceVersion (the
//! store's revision is the resourceVersion). That lets reads stamp it by splicing bytes,
//! so lists and watches need not parse and re-serialize every object.

use serde_json::{Map, Value};

use super::status::ApiError;
use crate::store::KeyValue;

const PREFIX: &[u8] = b"{\"metadata\":{";

/// Serializes an object for storage: metadata first, without resourceVersion or selfLink.
pub fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let err = |e: serde_json::Error| ApiError::internal(format!("encoding object: {e}"));
    let Some(top) = obj.as_object() else {
        return Err(ApiError::internal("encoding object: not a JSON object"));
    };
    let mut meta = top
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"metadata\":");
    serde_json::to_writer(&mut out, &meta).map_err(err)?;
    for (k, v) in top.iter().filter(|(k, _)| k.as_str() != "metadata") {
        out.push(b',');
        serde_json::to_writer(&mut out, k).map_err(err)?;
        out.push(b':');
        serde_json::to_writer(&mut out, v).map_err(err)?;
    }
    out.push(b'}');
    Ok(out)
}

/// The stored bytes with `metadata.resourceVersion` set to the key's revision.
pub fn stamped(kv: &KeyValue) -> Result<Vec<u8>, ApiError> {
    let v = &kv.value;
    if v.starts_with(PREFIX) {
        let rv = kv.mod_revision.to_string();
        let mut out = Vec::with_capacity(v.len() + rv.len() + 24);
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(rv.as_bytes());
        out.push(b'"');
        if v.get(PREFIX.len()) != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(&v[PREFIX.len()..]);
        return Ok(out);
    }
    // Anything not laid out as above goes the slow way.
    let value = decode(kv)?;
    serde_json::to_vec(&value).map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// Parses a stored value and stamps its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    if let Some(o) = v.as_object_mut() {
        let m = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(value: Vec<u8>, rev: i64) -> KeyValue {
        KeyValue {
            key: "/k".into(),
            value,
            create_revision: rev,
            mod_revision: rev,
        }
    }

    #[test]
    fn stamping_matches_decoding() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "{\"metadata\":{"}, "metadata": {"name": "x", "resourceVersion": "9"}}),
            json!({"kind": "X", "metadata": {}}),
            json!({"kind": "X"}),
        ] {
            let bytes = encode(&obj).expect("encode");
            assert!(bytes.starts_with(PREFIX));
            let stored = kv(bytes, 42);
            let fast: Value =
                serde_json::from_slice(&stamped(&stored).expect("stamp")).expect("json");
            assert_eq!(fast, decode(&stored).expect("decode"));
            assert_eq!(fast["metadata"]["resourceVersion"], "42");
        }
        let legacy = kv(br#"{"kind":"X","metadata":{"name":"a"}}"#.to_vec(), 7);
        let v: Value = serde_json::from_slice(&stamped(&legacy).expect("stamp")).expect("json");
        assert_eq!(v["metadata"]["resourceVersion"], "7");
    }
}
