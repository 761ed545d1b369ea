//! The REST paths and operations of the served resources, described once and rendered in
//! either Swagger 2.0 or OpenAPI 3.0 form.
//!
//! kubectl relies on three things here: every operation carries the
//! `x-kubernetes-group-version-kind` of the object it serves (explain finds a resource's kind
//! through them); every PATCH lists `fieldValidation` among its own parameters (that is how
//! kubectl decides the server validates fields, instead of validating client-side); and every
//! PATCH accepts `application/strategic-merge-patch+json` (otherwise `kubectl apply` falls back
//! to plain merge patches, which replace lists wholesale).

use serde_json::{Map, Value, json};

use super::schemas::{
    API_RESOURCE_LIST, BINDING, DELETE_OPTIONS, EVICTION, PATCH, SCALE, STATUS, V2_REF_PREFIX,
    V3_REF_PREFIX, list_definition,
};
use crate::apiserver::registry::{ResourceInfo, in_group_version};

/// The media types a PATCH body may have.
pub(super) const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const PRODUCES: &[&str] = &["application/json", "application/yaml"];
const PRODUCES_WATCH: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

#[derive(Debug, Clone, Copy)]
enum ParamType {
    String,
    Integer,
    Boolean,
}

#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: ParamType,
    description: &'static str,
}

const fn query(name: &'static str, ty: ParamType, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

const NAME: Param = Param {
    name: "name",
    location: "path",
    ty: ParamType::String,
    description: "name of the object",
};
const NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: ParamType::String,
    description: "object name and auth scope, such as for teams and projects",
};
const PRETTY: Param = query(
    "pretty",
    ParamType::String,
    "If 'true', the output is pretty printed.",
);

const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    ParamType::Boolean,
    "Asks for watch events of type BOOKMARK, which carry only a resourceVersion. Ignored when not watching.",
);
const CONTINUE: Param = query(
    "continue",
    ParamType::String,
    "The continue token returned by a previous list call that had a limit; fetches the next chunk.",
);
const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    ParamType::String,
    "Restricts the returned objects to those whose fields match. Defaults to everything.",
);
const LABEL_SELECTOR: Param = query(
    "labelSelector",
    ParamType::String,
    "Restricts the returned objects to those whose labels match. Defaults to everything.",
);
const LIMIT: Param = query(
    "limit",
    ParamType::Integer,
    "The maximum number of objects to return; when more exist, metadata.continue is set to fetch the rest.",
);
const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    ParamType::String,
    "The resource version the result must be at least as new as (or, with resourceVersionMatch=Exact, exactly at). For a watch, where to start.",
);
const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    ParamType::String,
    "How resourceVersion applies to a list call: NotOlderThan or Exact.",
);
const SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    ParamType::Boolean,
    "With watch=true, starts the watch with synthetic ADDED events for the current state, ended by a bookmark.",
);
const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    ParamType::Integer,
    "A limit on the duration of the list or watch call, regardless of activity.",
);
const WATCH: Param = query(
    "watch",
    ParamType::Boolean,
    "Watch for changes to the described objects and return them as a stream of add, update and delete notifications.",
);
const DRY_RUN: Param = query(
    "dryRun",
    ParamType::String,
    "When present ('All' is the only valid value), the request is processed fully but nothing is persisted.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    ParamType::String,
    "A name for the actor making the change, recorded in managedFields. At most 128 printable characters.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    ParamType::String,
    "What the server does with unknown or duplicate fields in the body: Ignore drops them, Warn drops them and returns a warning for each, Strict rejects the request. Defaults to Warn.",
);
const FORCE: Param = query(
    "force",
    ParamType::Boolean,
    "For apply patches only: take ownership of fields other managers own instead of failing with a conflict.",
);
const GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    ParamType::Integer,
    "Seconds before the object is deleted; zero means immediately. Defaults to the kind's own default.",
);
const IGNORE_STORE_READ_ERROR: Param = query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    ParamType::Boolean,
    "Deletes an object that cannot be read from storage (corrupt or undecryptable), skipping finalizers and admission. Use with care.",
);
const ORPHAN_DEPENDENTS: Param = query(
    "orphanDependents",
    ParamType::Boolean,
    "Deprecated: use propagationPolicy. Whether dependent objects are orphaned.",
);
const PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    ParamType::String,
    "Whether and how garbage collection deletes dependents: Orphan, Background or Foreground.",
);

const LIST_PARAMS: &[Param] = &[
    ALLOW_WATCH_BOOKMARKS,
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
    WATCH,
];
const WRITE_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
const DELETE_PARAMS: &[Param] = &[
    DRY_RUN,
    GRACE_PERIOD_SECONDS,
    IGNORE_STORE_READ_ERROR,
    ORPHAN_DEPENDENTS,
    PROPAGATION_POLICY,
];
const DELETE_COLLECTION_PARAMS: &[Param] = &[
    CONTINUE,
    DRY_RUN,
    FIELD_SELECTOR,
    GRACE_PERIOD_SECONDS,
    IGNORE_STORE_READ_ERROR,
    LABEL_SELECTOR,
    LIMIT,
    ORPHAN_DEPENDENTS,
    PROPAGATION_POLICY,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
];

/// What an operation takes as its body.
#[derive(Debug, Clone)]
enum Body {
    None,
    /// The object itself (create, replace).
    Object(String),
    /// A patch in any of [`PATCH_TYPES`].
    Patch,
    /// Optional `DeleteOptions`.
    DeleteOptions,
}

#[derive(Debug, Clone)]
struct Operation {
    method: &'static str,
    id: String,
    description: String,
    /// `x-kubernetes-action`.
    action: &'static str,
    /// `x-kubernetes-group-version-kind`; `None` for discovery-like operations.
    gvk: Option<Gvk>,
    params: &'static [Param],
    body: Body,
    /// Status codes answered with `response`.
    codes: &'static [&'static str],
    response: String,
    watchable: bool,
}

#[derive(Debug, Clone)]
struct PathItem {
    path: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(super) fn api_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// `CoreV1`, `AppsV1`, `NetworkingV1`: the group/version part of operation ids.
fn gv_ident(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let first = group.split('.').next().unwrap_or(group);
    format!("{}{}", capitalize(first), capitalize(version))
}

/// `core_v1`, `apps_v1`, `networking_v1`: the operation tag of a group/version.
fn gv_tag(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let first = group.split('.').next().unwrap_or(group);
    format!("{first}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

type Gvk = (&'static str, &'static str, &'static str);

impl Operation {
    fn new(method: &'static str, action: &'static str, id: String, description: String) -> Self {
        Operation {
            method,
            id,
            description,
            action,
            gvk: None,
            params: &[],
            body: Body::None,
            codes: &["200"],
            response: String::new(),
            watchable: false,
        }
    }

    fn gvk(mut self, gvk: Gvk) -> Self {
        self.gvk = Some(gvk);
        self
    }

    fn params(mut self, params: &'static [Param]) -> Self {
        self.params = params;
        self
    }

    fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    fn returns(mut self, codes: &'static [&'static str], definition: &str) -> Self {
        self.codes = codes;
        self.response = definition.to_string();
        self
    }
}

/// The paths of every resource in one group/version.
fn path_items(group: &str, version: &str) -> Vec<PathItem> {
    let prefix = api_prefix(group, version);
    let gv = gv_ident(group, version);
    let discovery = Operation::new(
        "get",
        "",
        format!("get{gv}APIResources"),
        "get available resources".into(),
    )
    .returns(&["200"], API_RESOURCE_LIST);
    let mut items = vec![PathItem {
        path: format!("{prefix}/"),
        params: Vec::new(),
        operations: vec![discovery],
    }];
    for r in in_group_version(group, version) {
        items.extend(resource_items(r, &prefix, &gv));
    }
    items.sort_by(|a, b| a.path.cmp(&b.path));
    items
}

fn resource_items(r: &'static ResourceInfo, prefix: &str, gv: &str) -> Vec<PathItem> {
    let gvk = (r.group, r.version, r.kind);
    let (kind, def) = (r.kind, r.definition);
    // Operation ids follow Kubernetes': verb, group/version, scope, kind, subresource.
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let id = |verb: &str, sub: &str| format!("{verb}{gv}{scope}{kind}{sub}");
    let (collection, collection_params) = if r.namespaced {
        let path = format!("{prefix}/namespaces/{{namespace}}/{}", r.plural);
        (path, vec![NAMESPACE, PRETTY])
    } else {
        (format!("{prefix}/{}", r.plural), vec![PRETTY])
    };
    let object = format!("{collection}/{{name}}");
    let mut object_params = vec![NAME];
    object_params.extend(collection_params.iter().copied());

    let list = Operation::new(
        "get",
        "list",
        id("list", ""),
        format!("list or watch objects of kind {kind}"),
    )
    .gvk(gvk)
    .params(LIST_PARAMS)
    .returns(&["200"], &list_definition(r));
    let list = Operation {
        watchable: true,
        ..list
    };
    let create = Operation::new("post", "post", id("create", ""), format!("create a {kind}"))
        .gvk(gvk)
        .params(WRITE_PARAMS)
        .body(Body::Object(def.into()))
        .returns(&["200", "201", "202"], def);
    let delete_collection = Operation::new(
        "delete",
        "deletecollection",
        format!("delete{gv}Collection{scope}{kind}"),
        format!("delete collection of {kind}"),
    )
    .gvk(gvk)
    .params(DELETE_COLLECTION_PARAMS)
    .body(Body::DeleteOptions)
    .returns(&["200"], STATUS);

    let mut items = Vec::new();
    if r.namespaced {
        // Listing across all namespaces; kubectl explain finds a kind through this path.
        let all = Operation {
            id: format!("list{gv}{kind}ForAllNamespaces"),
            ..list.clone()
        };
        items.push(PathItem {
            path: format!("{prefix}/{}", r.plural),
            params: vec![PRETTY],
            operations: vec![all],
        });
    }
    items.push(PathItem {
        path: collection,
        params: collection_params,
        operations: vec![list, create, delete_collection],
    });
    items.push(PathItem {
        path: object.clone(),
        params: object_params.clone(),
        operations: vec![
            Operation::new(
                "get",
                "get",
                id("read", ""),
                format!("read the specified {kind}"),
            )
            .gvk(gvk)
            .returns(&["200"], def),
            Operation::new(
                "put",
                "put",
                id("replace", ""),
                format!("replace the specified {kind}"),
            )
            .gvk(gvk)
            .params(WRITE_PARAMS)
            .body(Body::Object(def.into()))
            .returns(&["200", "201"], def),
            Operation::new(
                "patch",
                "patch",
                id("patch", ""),
                format!("partially update the specified {kind}"),
            )
            .gvk(gvk)
            .params(PATCH_PARAMS)
            .body(Body::Patch)
            .returns(&["200", "201"], def),
            Operation::new(
                "delete",
                "delete",
                id("delete", ""),
                format!("delete a {kind}"),
            )
            .gvk(gvk)
            .params(DELETE_PARAMS)
            .body(Body::DeleteOptions)
            .returns(&["200", "202"], STATUS),
        ],
    });

    for sub in r.subresources {
        let path = format!("{object}/{sub}");
        let operations = match *sub {
            // The scale subresource speaks autoscaling/v1 Scale whatever the parent kind.
            "status" | "scale" | "approval" => {
                let (def, gvk, title) = match *sub {
                    "status" => (def, gvk, "Status"),
                    "approval" => (def, gvk, "Approval"),
                    _ => (SCALE, ("autoscaling", "v1", "Scale"), "Scale"),
                };
                vec![
                    Operation::new(
                        "get",
                        "get",
                        id("read", title),
                        format!("read {sub} of the specified {kind}"),
                    )
                    .gvk(gvk)
                    .returns(&["200"], def),
                    Operation::new(
                        "put",
                        "put",
                        id("replace", title),
                        format!("replace {sub} of the specified {kind}"),
                    )
                    .gvk(gvk)
                    .params(WRITE_PARAMS)
                    .body(Body::Object(def.into()))
                    .returns(&["200", "201"], def),
                    Operation::new(
                        "patch",
                        "patch",
                        id("patch", title),
                        format!("partially update {sub} of the specified {kind}"),
                    )
                    .gvk(gvk)
                    .params(PATCH_PARAMS)
                    .body(Body::Patch)
                    .returns(&["200", "201"], def),
                ]
            }
            "binding" => vec![
                Operation::new(
                    "post",
                    "post",
                    id("create", "Binding"),
                    format!("create binding of a {kind}"),
                )
                .gvk(("", "v1", "Binding"))
                .params(WRITE_PARAMS)
                .body(Body::Object(BINDING.into()))
                .returns(&["200", "201", "202"], BINDING),
            ],
            "eviction" => vec![
                Operation::new(
                    "post",
                    "post",
                    id("create", "Eviction"),
                    format!("create eviction of a {kind}"),
                )
                .gvk(("policy", "v1", "Eviction"))
                .params(WRITE_PARAMS)
                .body(Body::Object(EVICTION.into()))
                .returns(&["200", "201", "202"], EVICTION),
            ],
            _ => continue,
        };
        items.push(PathItem {
            path,
            params: object_params.clone(),
            operations,
        });
    }
    items
}

/// Definitions the paths of one group/version refer to.
pub(super) fn referenced_definitions(group: &str, version: &str) -> Vec<String> {
    let mut out = vec![
        STATUS.to_string(),
        DELETE_OPTIONS.to_string(),
        PATCH.to_string(),
        API_RESOURCE_LIST.to_string(),
        super::schemas::WATCH_EVENT.to_string(),
    ];
    for item in path_items(group, version) {
        for op in item.operations {
            if let Body::Object(def) = op.body {
                out.push(def);
            }
            out.push(op.response);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn gvk_value((group, version, kind): Gvk) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn ref_to(prefix: &str, definition: &str) -> Value {
    json!({"$ref": format!("{prefix}{definition}")})
}

/// Fields common to both renderings of an operation.
fn operation_common(op: &Operation, tag: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("description".into(), op.description.clone().into());
    out.insert("operationId".into(), op.id.clone().into());
    out.insert("tags".into(), json!([tag]));
    if !op.action.is_empty() {
        out.insert("x-kubernetes-action".into(), op.action.into());
    }
    if let Some(gvk) = op.gvk {
        out.insert("x-kubernetes-group-version-kind".into(), gvk_value(gvk));
    }
    out
}

fn type_name(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Boolean => "boolean",
    }
}

fn param_v2(p: &Param) -> Value {
    let mut v = json!({
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "type": type_name(p.ty),
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn param_v3(p: &Param) -> Value {
    let mut v = json!({
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "schema": {"type": type_name(p.ty), "uniqueItems": true},
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn status_description(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

/// The paths of one group/version in Swagger 2.0 form.
pub(super) fn paths_v2(group: &str, version: &str) -> Map<String, Value> {
    let tag = gv_tag(group, version);
    let mut paths = Map::new();
    for item in path_items(group, version) {
        let mut path = Map::new();
        for op in &item.operations {
            let mut o = operation_common(op, &tag);
            let mut params = Vec::new();
            match &op.body {
                Body::None => {}
                Body::Object(def) => {
                    params.push(json!({"in": "body", "name": "body", "required": true, "schema": ref_to(V2_REF_PREFIX, def)}));
                }
                Body::Patch => {
                    params.push(json!({"in": "body", "name": "body", "required": true, "schema": ref_to(V2_REF_PREFIX, PATCH)}));
                }
                Body::DeleteOptions => {
                    params.push(json!({"in": "body", "name": "body", "schema": ref_to(V2_REF_PREFIX, DELETE_OPTIONS)}));
                }
            }
            params.extend(op.params.iter().map(param_v2));
            if !params.is_empty() {
                o.insert("parameters".into(), Value::Array(params));
            }
            let consumes: &[&str] = match op.body {
                Body::Patch => PATCH_TYPES,
                _ => &["*/*"],
            };
            o.insert("consumes".into(), json!(consumes));
            o.insert(
                "produces".into(),
                json!(if op.watchable {
                    PRODUCES_WATCH
                } else {
                    PRODUCES
                }),
            );
            o.insert("schemes".into(), json!(["https"]));
            let mut responses = Map::new();
            for code in op.codes {
                responses.insert(
                    (*code).into(),
                    json!({"description": status_description(code), "schema": ref_to(V2_REF_PREFIX, &op.response)}),
                );
            }
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            o.insert("responses".into(), Value::Object(responses));
            path.insert(op.method.into(), Value::Object(o));
        }
        if !item.params.is_empty() {
            path.insert(
                "parameters".into(),
                Value::Array(item.params.iter().map(param_v2).collect()),
            );
        }
        paths.insert(item.path, Value::Object(path));
    }
    paths
}

/// The paths of one group/version in OpenAPI 3.0 form.
pub(super) fn paths_v3(group: &str, version: &str) -> Map<String, Value> {
    let tag = gv_tag(group, version);
    let mut paths = Map::new();
    for item in path_items(group, version) {
        let mut path = Map::new();
        for op in &item.operations {
            let mut o = operation_common(op, &tag);
            if !op.params.is_empty() {
                o.insert(
                    "parameters".into(),
                    Value::Array(op.params.iter().map(param_v3).collect()),
                );
            }
            let body = match &op.body {
                Body::None => None,
                Body::Object(def) => Some(json!({
                    "content": {"*/*": {"schema": ref_to(V3_REF_PREFIX, def)}},
                    "required": true,
                })),
                Body::Patch => {
                    let content: Map<String, Value> = PATCH_TYPES
                        .iter()
                        .map(|t| {
                            (
                                (*t).to_string(),
                                json!({"schema": ref_to(V3_REF_PREFIX, PATCH)}),
                            )
                        })
                        .collect();
                    Some(json!({"content": content, "required": true}))
                }
                Body::DeleteOptions => Some(json!({
                    "content": {"*/*": {"schema": ref_to(V3_REF_PREFIX, DELETE_OPTIONS)}},
                })),
            };
            if let Some(body) = body {
                o.insert("requestBody".into(), body);
            }
            let media: &[&str] = if op.watchable {
                PRODUCES_WATCH
            } else {
                PRODUCES
            };
            let content: Map<String, Value> = media
                .iter()
                .map(|m| {
                    (
                        (*m).to_string(),
                        json!({"schema": ref_to(V3_REF_PREFIX, &op.response)}),
                    )
                })
                .collect();
            let mut responses = Map::new();
            for code in op.codes {
                responses.insert(
                    (*code).into(),
                    json!({"description": status_description(code), "content": content}),
                );
            }
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            o.insert("responses".into(), Value::Object(responses));
            path.insert(op.method.into(), Value::Object(o));
        }
        if !item.params.is_empty() {
            path.insert(
                "parameters".into(),
                Value::Array(item.params.iter().map(param_v3).collect()),
            );
        }
        paths.insert(item.path, Value::Object(path));
    }
    paths
}
