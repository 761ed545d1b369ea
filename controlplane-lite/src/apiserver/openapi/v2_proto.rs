//! `/openapi/v2` as protobuf: the Swagger 2.0 document encoded as gnostic's
//! `openapi.v2.Document` message, the only form client-go's `OpenAPISchema()` accepts.
//! kubectl needs it to validate what no server-side field validation covers (the items of
//! a `kind: List`).
//!
//! The message is built from the JSON document, as gnostic builds it from a parsed one:
//! each Swagger object maps to a message with fixed field numbers, `x-` extensions and
//! free-form values (`default`, `enum`, `example`) travel as `Any` holding YAML text (JSON
//! is YAML). Proto3 leaves out zero values, so they are not written.

use serde_json::{Map, Value};

/// The media type of the answer. Clients ask for `...spec.v2@v1.0+protobuf`, but Go's
/// media type parser refuses the `@` in a Content-Type, so kube-apiserver answers with
/// this spelling.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Encodes a Swagger 2.0 document (as `super::build` makes it).
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    let Some(o) = doc.as_object() else {
        return m.0;
    };
    m.string(1, str_of(o, "swagger"));
    if let Some(info) = o.get("info").and_then(Value::as_object) {
        let mut i = Msg::default();
        i.string(1, str_of(info, "title"));
        i.string(2, str_of(info, "version"));
        i.string(3, str_of(info, "description"));
        i.extensions(7, info);
        m.message(2, i);
    }
    m.string(3, str_of(o, "host"));
    m.string(4, str_of(o, "basePath"));
    m.strings(5, o.get("schemes"));
    m.strings(6, o.get("consumes"));
    m.strings(7, o.get("produces"));
    if let Some(paths) = o.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        p.extensions(1, paths);
        for (name, item) in paths.iter().filter(|(k, _)| !k.starts_with("x-")) {
            p.named(2, name, path_item(item));
        }
        m.message(8, p);
    }
    if let Some(defs) = o.get("definitions").and_then(Value::as_object) {
        m.message(9, named_schemas(defs));
    }
    m.messages(12, o.get("security"), security_requirement);
    if let Some(defs) = o.get("securityDefinitions").and_then(Value::as_object) {
        let mut d = Msg::default();
        for (name, def) in defs {
            d.named(1, name, security_definition(def));
        }
        m.message(13, d);
    }
    m.extensions(16, o);
    m.0
}

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, v: Option<&Value>) {
        match v {
            Some(Value::Array(items)) => {
                for s in items.iter().filter_map(Value::as_str) {
                    // Repeated strings keep empty elements.
                    self.bytes(field, s.as_bytes());
                }
            }
            Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
            _ => {}
        }
    }

    /// A message field, written even when empty: a set `oneof` member must be seen.
    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    /// `{name = 1, value = 2}`, the entries of gnostic's ordered maps.
    fn named(&mut self, field: u32, name: &str, value: Msg) {
        let mut n = Msg::default();
        n.string(1, name);
        n.message(2, value);
        self.message(field, n);
    }

    fn bool(&mut self, field: u32, v: Option<&Value>) {
        if v.and_then(Value::as_bool) == Some(true) {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn double(&mut self, field: u32, v: Option<&Value>) {
        if let Some(f) = v.and_then(Value::as_f64)
            && f != 0.0
        {
            self.key(field, 1);
            self.0.extend_from_slice(&f.to_le_bytes());
        }
    }

    fn int64(&mut self, field: u32, v: Option<&Value>) {
        if let Some(i) = v.and_then(Value::as_i64)
            && i != 0
        {
            self.key(field, 0);
            self.varint(i as u64);
        }
    }

    /// An `Any` holding `v` as YAML text.
    fn any(&mut self, field: u32, v: Option<&Value>) {
        if let Some(v) = v {
            self.message(field, any(v));
        }
    }

    fn anys(&mut self, field: u32, v: Option<&Value>) {
        self.messages(field, v, any);
    }

    /// A repeated message field: `encode` of each element of the array `v`.
    fn messages(&mut self, field: u32, v: Option<&Value>, encode: fn(&Value) -> Msg) {
        for item in v.and_then(Value::as_array).into_iter().flatten() {
            self.message(field, encode(item));
        }
    }

    /// The object's `x-` members as `NamedAny`s.
    fn extensions(&mut self, field: u32, o: &Map<String, Value>) {
        for (name, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.named(field, name, any(v));
        }
    }
}

fn any(v: &Value) -> Msg {
    let mut a = Msg::default();
    a.string(2, &v.to_string());
    a
}

fn str_of<'a>(o: &'a Map<String, Value>, key: &str) -> &'a str {
    o.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `Definitions` and `Properties`: `{repeated NamedSchema additional_properties = 1}`.
fn named_schemas(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (name, s) in o {
        m.named(1, name, schema(s));
    }
    m
}

fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    m.string(1, str_of(o, "$ref"));
    m.string(2, str_of(o, "format"));
    m.string(3, str_of(o, "title"));
    m.string(4, str_of(o, "description"));
    m.any(5, o.get("default"));
    m.double(6, o.get("multipleOf"));
    m.double(7, o.get("maximum"));
    m.bool(8, o.get("exclusiveMaximum"));
    m.double(9, o.get("minimum"));
    m.bool(10, o.get("exclusiveMinimum"));
    m.int64(11, o.get("maxLength"));
    m.int64(12, o.get("minLength"));
    m.string(13, str_of(o, "pattern"));
    m.int64(14, o.get("maxItems"));
    m.int64(15, o.get("minItems"));
    m.bool(16, o.get("uniqueItems"));
    m.int64(17, o.get("maxProperties"));
    m.int64(18, o.get("minProperties"));
    m.strings(19, o.get("required"));
    m.anys(20, o.get("enum"));
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.message(21, a);
        }
        Some(s @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.message(1, schema(s));
            m.message(21, a);
        }
        _ => {}
    }
    if let Some(t) = o.get("type") {
        let mut ty = Msg::default();
        ty.strings(1, Some(t));
        m.message(22, ty);
    }
    match o.get("items") {
        Some(Value::Array(items)) => {
            let mut i = Msg::default();
            for s in items {
                i.message(1, schema(s));
            }
            m.message(23, i);
        }
        Some(s @ Value::Object(_)) => {
            let mut i = Msg::default();
            i.message(1, schema(s));
            m.message(23, i);
        }
        _ => {}
    }
    m.messages(24, o.get("allOf"), schema);
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        m.message(25, named_schemas(props));
    }
    m.string(26, str_of(o, "discriminator"));
    m.bool(27, o.get("readOnly"));
    m.any(30, o.get("example"));
    m.extensions(31, o);
    m
}

fn path_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    m.string(1, str_of(o, "$ref"));
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = o.get(method) {
            m.message(field, operation(op));
        }
    }
    m.messages(9, o.get("parameters"), parameters_item);
    m.extensions(10, o);
    m
}

fn operation(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    m.strings(1, o.get("tags"));
    m.string(2, str_of(o, "summary"));
    m.string(3, str_of(o, "description"));
    m.string(5, str_of(o, "operationId"));
    m.strings(6, o.get("produces"));
    m.strings(7, o.get("consumes"));
    m.messages(8, o.get("parameters"), parameters_item);
    if let Some(responses) = o.get("responses").and_then(Value::as_object) {
        let mut r = Msg::default();
        for (code, resp) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
            r.named(1, code, response_value(resp));
        }
        r.extensions(2, responses);
        m.message(9, r);
    }
    m.strings(10, o.get("schemes"));
    m.bool(11, o.get("deprecated"));
    m.messages(12, o.get("security"), security_requirement);
    m.extensions(13, o);
    m
}

/// `ParametersItem`: a parameter, or a reference to one.
fn parameters_item(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let mut j = Msg::default();
        j.string(1, r);
        j.string(2, str_of(o, "description"));
        m.message(2, j);
    } else {
        m.message(1, parameter(o));
    }
    m
}

fn parameter(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    let location = str_of(o, "in");
    if location == "body" {
        let mut b = Msg::default();
        b.string(1, str_of(o, "description"));
        b.string(2, str_of(o, "name"));
        b.string(3, location);
        b.bool(4, o.get("required"));
        if let Some(s) = o.get("schema") {
            b.message(5, schema(s));
        }
        b.extensions(6, o);
        m.message(1, b);
        return m;
    }
    // The four sub-schemas share their fields; query and formData have `allowEmptyValue`
    // at 5, which moves the rest one up.
    let (which, allows_empty) = match location {
        "header" => (1, false),
        "formData" => (2, true),
        "query" => (3, true),
        _ => (4, false),
    };
    let mut s = Msg::default();
    s.bool(1, o.get("required"));
    s.string(2, location);
    s.string(3, str_of(o, "description"));
    s.string(4, str_of(o, "name"));
    let first = if allows_empty {
        s.bool(5, o.get("allowEmptyValue"));
        6
    } else {
        5
    };
    primitive_fields(&mut s, o, first);
    let mut nb = Msg::default();
    nb.message(which, s);
    m.message(2, nb);
    m
}

/// The validation fields parameters and `PrimitivesItems` have in the same order, from
/// `type` at `first` to the extensions at `first + 17`.
fn primitive_fields(m: &mut Msg, o: &Map<String, Value>, first: u32) {
    m.string(first, str_of(o, "type"));
    m.string(first + 1, str_of(o, "format"));
    if let Some(items) = o.get("items").and_then(Value::as_object) {
        let mut i = Msg::default();
        primitive_fields(&mut i, items, 1);
        m.message(first + 2, i);
    }
    m.string(first + 3, str_of(o, "collectionFormat"));
    m.any(first + 4, o.get("default"));
    m.double(first + 5, o.get("maximum"));
    m.bool(first + 6, o.get("exclusiveMaximum"));
    m.double(first + 7, o.get("minimum"));
    m.bool(first + 8, o.get("exclusiveMinimum"));
    m.int64(first + 9, o.get("maxLength"));
    m.int64(first + 10, o.get("minLength"));
    m.string(first + 11, str_of(o, "pattern"));
    m.int64(first + 12, o.get("maxItems"));
    m.int64(first + 13, o.get("minItems"));
    m.bool(first + 14, o.get("uniqueItems"));
    m.anys(first + 15, o.get("enum"));
    m.double(first + 16, o.get("multipleOf"));
    m.extensions(first + 17, o);
}

/// `ResponseValue`: a response (description, schema), or a reference to one.
fn response_value(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let mut j = Msg::default();
        j.string(1, r);
        m.message(2, j);
        return m;
    }
    let mut r = Msg::default();
    r.string(1, str_of(o, "description"));
    if let Some(s) = o.get("schema") {
        let mut item = Msg::default();
        item.message(1, schema(s));
        r.message(2, item);
    }
    r.extensions(5, o);
    m.message(1, r);
    m
}

/// `{name: [scopes]}` as `SecurityRequirement`.
fn security_requirement(v: &Value) -> Msg {
    let mut m = Msg::default();
    for (name, scopes) in v.as_object().into_iter().flatten() {
        let mut a = Msg::default();
        a.strings(1, Some(scopes));
        m.named(1, name, a);
    }
    m
}

/// A security scheme; only API keys (the bearer token) are described.
fn security_definition(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    if str_of(o, "type") == "apiKey" {
        let mut k = Msg::default();
        k.string(1, "apiKey");
        k.string(2, str_of(o, "name"));
        k.string(3, str_of(o, "in"));
        k.string(4, str_of(o, "description"));
        k.extensions(5, o);
        m.message(2, k);
    }
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apiserver::protobuf::wire::{Reader, WireType};

    /// A message's length-delimited fields and varints, by number, in order.
    fn fields(buf: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while !r.is_empty() {
            let (n, wt) = r.key().expect("a key");
            let f = match wt {
                WireType::Len => Field::Bytes(r.len_delimited().expect("a run")),
                WireType::Varint => Field::Int(r.varint().expect("a varint")),
                WireType::Fixed64 => Field::Double(f64::from_bits(r.fixed64().expect("8 bytes"))),
                WireType::Fixed32 => panic!("no fixed32 field in the document"),
            };
            out.push((n, f));
        }
        out
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Field<'a> {
        Bytes(&'a [u8]),
        Int(u64),
        Double(f64),
    }

    fn all(buf: &[u8], n: u32) -> Vec<&[u8]> {
        fields(buf)
            .into_iter()
            .filter_map(|(k, f)| match f {
                Field::Bytes(b) if k == n => Some(b),
                _ => None,
            })
            .collect()
    }

    fn one(buf: &[u8], n: u32) -> &[u8] {
        let found = all(buf, n);
        assert_eq!(found.len(), 1, "field {n}");
        found[0]
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("UTF-8")
    }

    /// `{name = 1, value = 2}` entries of an ordered map, by name.
    fn named<'a>(buf: &'a [u8], n: u32, name: &str) -> Option<&'a [u8]> {
        all(buf, n)
            .into_iter()
            .find(|e| text(one(e, 1)) == name)
            .map(|e| one(e, 2))
    }

    #[test]
    fn a_schema_keeps_what_validation_reads() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "unversioned"},
            "definitions": {
                "io.k8s.api.core.v1.ConfigMap": {
                    "type": "object",
                    "required": ["a"],
                    "properties": {
                        "data": {"type": "object", "additionalProperties": {"type": "string"}},
                        "items": {"type": "array", "items": {"$ref": "#/definitions/x"}},
                        "n": {"type": "integer", "format": "int32", "minimum": 1.5, "enum": [1, 2]},
                        "any": {"additionalProperties": false},
                    },
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
                },
            },
        });
        let bytes = encode(&doc);
        assert_eq!(text(one(&bytes, 1)), "2.0");
        assert_eq!(text(one(one(&bytes, 2), 1)), "Kubernetes");
        let cm = named(one(&bytes, 9), 1, "io.k8s.api.core.v1.ConfigMap").expect("ConfigMap");
        assert_eq!(text(one(one(cm, 22), 1)), "object");
        assert_eq!(text(one(cm, 19)), "a");
        let gvk = named(cm, 31, "x-kubernetes-group-version-kind").expect("the GVK");
        let yaml: Value = serde_json::from_str(text(one(gvk, 2))).expect("JSON is YAML");
        assert_eq!(
            yaml,
            doc["definitions"]["io.k8s.api.core.v1.ConfigMap"]["x-kubernetes-group-version-kind"]
        );

        let props = one(cm, 25);
        let data = named(props, 1, "data").expect("data");
        let value = one(one(data, 21), 1);
        assert_eq!(text(one(one(value, 22), 1)), "string");
        let items = named(props, 1, "items").expect("items");
        assert_eq!(text(one(one(one(items, 23), 1), 1)), "#/definitions/x");
        let n = named(props, 1, "n").expect("n");
        assert_eq!(text(one(n, 2)), "int32");
        assert!(fields(n).contains(&(9, Field::Double(1.5))));
        let values: Vec<&str> = all(n, 20).into_iter().map(|a| text(one(a, 2))).collect();
        assert_eq!(values, ["1", "2"]);
        // additionalProperties: false is a set oneof member holding false.
        let closed = named(props, 1, "any").expect("any");
        assert_eq!(fields(one(closed, 21)), [(2, Field::Int(0))]);
    }

    #[test]
    fn operations_and_parameters_take_their_oneof_members() {
        let doc = json!({
            "paths": {
                "/api/v1/namespaces/{namespace}/configmaps": {
                    "post": {
                        "operationId": "createCoreV1NamespacedConfigMap",
                        "parameters": [
                            {"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/cm"}},
                            {"in": "query", "name": "fieldValidation", "type": "string", "uniqueItems": true},
                        ],
                        "responses": {"201": {"description": "Created", "schema": {"$ref": "#/definitions/cm"}}},
                        "x-kubernetes-action": "post",
                    },
                    "parameters": [{"in": "path", "name": "namespace", "required": true, "type": "string"}],
                },
            },
        });
        let bytes = encode(&doc);
        let item = named(
            one(&bytes, 8),
            2,
            "/api/v1/namespaces/{namespace}/configmaps",
        )
        .expect("the path");
        let post = one(item, 4);
        assert_eq!(text(one(post, 5)), "createCoreV1NamespacedConfigMap");
        let params = all(post, 8);
        let body = one(one(params[0], 1), 1);
        assert_eq!(text(one(body, 3)), "body");
        assert!(fields(body).contains(&(4, Field::Int(1))));
        assert_eq!(text(one(one(body, 5), 1)), "#/definitions/cm");
        let query = one(one(one(params[1], 1), 2), 3);
        assert_eq!(text(one(query, 4)), "fieldValidation");
        assert_eq!(text(one(query, 6)), "string");
        assert!(fields(query).contains(&(20, Field::Int(1))));
        let created = named(one(post, 9), 1, "201").expect("201");
        assert_eq!(
            text(one(one(one(one(created, 1), 2), 1), 1)),
            "#/definitions/cm"
        );
        assert!(named(post, 13, "x-kubernetes-action").is_some());
        let path_param = one(one(one(one(item, 9), 1), 2), 4);
        assert_eq!(text(one(path_param, 4)), "namespace");
        assert_eq!(text(one(path_param, 5)), "string");
    }

    #[test]
    fn the_served_document_encodes_every_definition_and_path() {
        let json: Value = serde_json::from_slice(super::super::v2()).expect("JSON");
        let bytes = super::super::v2_protobuf();
        let defs = json["definitions"].as_object().expect("definitions");
        assert_eq!(all(one(bytes, 9), 1).len(), defs.len());
        let paths = json["paths"].as_object().expect("paths");
        assert_eq!(all(one(bytes, 8), 2).len(), paths.len());
    }
}
