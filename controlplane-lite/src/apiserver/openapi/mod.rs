//! OpenAPI documents describing the served resources.
//!
//! kubectl reads them for `kubectl explain` (the v3 document of the resource's group/version),
//! for `kubectl apply` (strategic-merge patch metadata, and whether PATCH takes
//! `fieldValidation`, which decides between server- and client-side validation) and for
//! validation. `/openapi/v2` carries the same content in Swagger 2.0 form, as JSON or as the
//! protobuf client-go asks for: kubectl validates the items of a `kind: List` against it.
//!
//! The documents are built on first use and kept as bytes for the life of the process.

mod extensions;
mod paths;
mod schemas;
mod v2_proto;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::apiserver::registry::group_versions;

pub use v2_proto::MEDIA_TYPE as V2_PROTOBUF;

struct Group {
    /// `api/v1` or `apis/<group>/<version>`, as in the v3 index.
    path: String,
    document: Vec<u8>,
    hash: String,
}

struct Documents {
    v2: Vec<u8>,
    v2_protobuf: Vec<u8>,
    v3_index: Vec<u8>,
    groups: Vec<Group>,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(|| {
        let started = Instant::now();
        let docs = build();
        tracing::debug!(elapsed = ?started.elapsed(), "built OpenAPI documents");
        docs
    })
}

/// GET /openapi/v2 (JSON, Swagger 2.0).
pub fn v2() -> &'static [u8] {
    &documents().v2
}

/// GET /openapi/v2 as protobuf ([`V2_PROTOBUF`]), the form client-go asks for: the same
/// document as gnostic's `openapi.v2.Document` message.
pub fn v2_protobuf() -> &'static [u8] {
    &documents().v2_protobuf
}

/// GET /openapi/v3: the index, `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=<HASH>"}, ...}}`.
pub fn v3_index() -> &'static [u8] {
    &documents().v3_index
}

/// GET /openapi/v3/<path>, e.g. `api/v1` or `apis/apps/v1`: the OpenAPI 3.0 document of that
/// group/version. `None` for unknown paths. A leading `/` and a query string are ignored.
pub fn v3_group(path: &str) -> Option<&'static [u8]> {
    find_group(path).map(|g| g.document.as_slice())
}

/// The `hash` the index advertises for a v3 group document, for ETags and for telling a
/// request for the current document (cacheable for good) from one for an older version.
pub fn v3_hash(path: &str) -> Option<&'static str> {
    find_group(path).map(|g| g.hash.as_str())
}

/// Whether a client's Accept header prefers the protobuf form of `/openapi/v2` (client-go
/// asks for it alone): it is named before any JSON type or wildcard.
pub fn wants_v2_protobuf(accept: &str) -> bool {
    for media in accept.split(',') {
        let media = media.split(';').next().unwrap_or("").trim();
        if media.starts_with("application/com.github.proto-openapi.spec.v2") {
            return true;
        }
        if media.contains("json") || media == "*/*" || media == "application/*" {
            return false;
        }
    }
    false
}

fn find_group(path: &str) -> Option<&'static Group> {
    let path = path.split('?').next().unwrap_or(path);
    let path = path.trim_start_matches('/').trim_end_matches('/');
    documents().groups.iter().find(|g| g.path == path)
}

/// `api/v1` or `apis/<group>/<version>`.
fn group_path(group: &str, version: &str) -> String {
    paths::api_prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": "unversioned"})
}

fn build() -> Documents {
    let definitions = schemas::definitions();

    let mut v2_paths = Map::new();
    let mut groups = Vec::new();
    for (group, version) in group_versions() {
        v2_paths.extend(paths::paths_v2(group, version));

        let roots = paths::referenced_definitions(group, version);
        let components: Map<String, Value> = schemas::closure(&definitions, &roots)
            .into_iter()
            .map(|(name, schema)| (name.clone(), schemas::definition_to_v3(name, schema)))
            .collect();
        let document = json!({
            "openapi": "3.0.0",
            "info": info(),
            "paths": paths::paths_v3(group, version),
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "BearerToken": {
                        "description": "Bearer Token authentication",
                        "in": "header",
                        "name": "authorization",
                        "type": "apiKey",
                    },
                },
            },
            "security": [{"BearerToken": []}],
        });
        let document = document.to_string().into_bytes();
        groups.push(Group {
            path: group_path(group, version),
            hash: hash_hex(&document),
            document,
        });
    }
    v2_paths.sort_keys();

    let v2 = json!({
        "swagger": "2.0",
        "info": info(),
        "paths": v2_paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            },
        },
        "security": [{"BearerToken": []}],
    });

    let index: Map<String, Value> = groups
        .iter()
        .map(|g| {
            let url = format!("/openapi/v3/{}?hash={}", g.path, g.hash);
            (g.path.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();

    Documents {
        v2_protobuf: v2_proto::encode(&v2),
        v2: v2.to_string().into_bytes(),
        v3_index: json!({"paths": index}).to_string().into_bytes(),
        groups,
    }
}

/// FNV-1a over 128 bits, as upper-case hex. Only needs to change when the document does; it
/// is not a security boundary, so a cryptographic hash would buy nothing.
fn hash_hex(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}
