//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into
//! the JSON a JSON client would have sent for the same object.
//!
//! client-go prefers protobuf for built-in kinds, and `kubectl create <generator>` sends
//! its objects that way. Everything else in the server speaks JSON, so rather than a second
//! object model we translate at the door: a small wire reader ([`wire`]) walks the bytes,
//! and data tables ([`schema`], generated facts in `tables.rs`) say what each field number
//! means and how it is spelt in JSON.
//!
//! A field number the tables do not know is an error naming the message and tag. Silently
//! dropping it would store half an object that the client believes it created.

mod decoder;
pub mod schema;
mod tables;
mod tables_autoscaling;
mod tables_certificates;
mod tables_policy;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_autoscaling;
#[cfg(test)]
mod tests_certificates;
#[cfg(test)]
mod tests_policy;

use serde_json::{Map, Value};

use self::wire::{Reader, WireError, WireType};

/// The four bytes in front of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Kubernetes objects nest about 15 messages deep at most (CronJob → … → volume claim
/// template); the cap only stops hostile input from recursing without bound.
pub const MAX_DEPTH: usize = 64;

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error(
        "the body is not a Kubernetes protobuf message: it does not start with the 4-byte \"k8s\\0\" prefix"
    )]
    NoMagic,
    #[error("the protobuf envelope (runtime.Unknown) does not name the object's {0}")]
    NoTypeMeta(&'static str),
    #[error(
        "this server cannot decode kind {kind} of {api_version} from protobuf; send it as JSON (Content-Type: application/json)"
    )]
    UnsupportedKind { api_version: String, kind: String },
    #[error(
        "the protobuf envelope declares {what} {value:?}; only plain protobuf is supported, send JSON instead"
    )]
    UnsupportedEnvelope { what: &'static str, value: String },
    #[error("malformed protobuf in {message} at {path}: {source}")]
    Wire {
        message: String,
        path: String,
        #[source]
        source: WireError,
    },
    #[error(
        "{message} has no field number {tag} (at {path}); this server does not know that field and refuses the object rather than drop it, send it as JSON instead"
    )]
    UnknownField {
        message: String,
        tag: u32,
        path: String,
    },
    #[error("{path} ({message} field {tag}) arrived as a {got} value, but that field is {want}")]
    WrongWireType {
        message: String,
        tag: u32,
        path: String,
        got: WireType,
        want: WireType,
    },
    #[error("{path}: {reason}")]
    InvalidValue { path: String, reason: String },
    #[error("{path}: the object nests more than {max} messages deep")]
    TooDeep { path: String, max: usize },
}

/// The parts of the runtime.Unknown envelope the decoder uses.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: &'a str,
    kind: &'a str,
    raw: &'a [u8],
    content_encoding: &'a str,
    content_type: &'a str,
}

/// Decodes a Kubernetes protobuf request body (the "k8s\0" magic + runtime.Unknown envelope
/// whose typeMeta names apiVersion/kind and whose raw field holds the object's message) into
/// the object's JSON form, with "apiVersion" and "kind" set.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let env = envelope(rest)?;
    if env.api_version.is_empty() {
        return Err(ProtoError::NoTypeMeta("apiVersion"));
    }
    if env.kind.is_empty() {
        return Err(ProtoError::NoTypeMeta("kind"));
    }
    if !env.content_encoding.is_empty() {
        return Err(ProtoError::UnsupportedEnvelope {
            what: "contentEncoding",
            value: env.content_encoding.to_owned(),
        });
    }
    // client-go leaves contentType empty; anything else would mean raw is not protobuf.
    if !env.content_type.is_empty() && env.content_type != "application/vnd.kubernetes.protobuf" {
        return Err(ProtoError::UnsupportedEnvelope {
            what: "contentType",
            value: env.content_type.to_owned(),
        });
    }
    let msg =
        schema::root(env.api_version, env.kind).ok_or_else(|| ProtoError::UnsupportedKind {
            api_version: env.api_version.to_owned(),
            kind: env.kind.to_owned(),
        })?;
    let mut obj = Map::new();
    decoder::Decoder::default().message(msg, env.raw, &mut obj)?;
    obj.insert(
        "apiVersion".into(),
        Value::String(env.api_version.to_owned()),
    );
    obj.insert("kind".into(), Value::String(env.kind.to_owned()));
    Ok(Value::Object(obj))
}

fn envelope(buf: &[u8]) -> Result<Envelope<'_>, ProtoError> {
    let mut env = Envelope::default();
    for_each_len_field(UNKNOWN, buf, |tag, bytes| {
        match tag {
            1 => for_each_len_field(TYPE_META, bytes, |tag, bytes| {
                match tag {
                    1 => env.api_version = envelope_str(bytes, "typeMeta.apiVersion")?,
                    2 => env.kind = envelope_str(bytes, "typeMeta.kind")?,
                    _ => return Err(envelope_unknown(TYPE_META, tag)),
                }
                Ok(())
            })?,
            2 => env.raw = bytes,
            3 => env.content_encoding = envelope_str(bytes, "contentEncoding")?,
            4 => env.content_type = envelope_str(bytes, "contentType")?,
            _ => return Err(envelope_unknown(UNKNOWN, tag)),
        }
        Ok(())
    })?;
    Ok(env)
}

/// Walks a message whose fields are all length-delimited, as the envelope's are.
fn for_each_len_field<'a>(
    message: &str,
    buf: &'a [u8],
    mut each: impl FnMut(u32, &'a [u8]) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    let wire = |source| ProtoError::Wire {
        message: message.to_owned(),
        path: "the envelope".into(),
        source,
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wt) = r.key().map_err(wire)?;
        if wt != WireType::Len {
            return Err(ProtoError::WrongWireType {
                message: message.to_owned(),
                tag,
                path: "the envelope".into(),
                got: wt,
                want: WireType::Len,
            });
        }
        each(tag, r.len_delimited().map_err(wire)?)?;
    }
    Ok(())
}

fn envelope_str<'a>(bytes: &'a [u8], field: &str) -> Result<&'a str, ProtoError> {
    std::str::from_utf8(bytes).map_err(|_| ProtoError::InvalidValue {
        path: format!("the envelope's {field}"),
        reason: "not valid UTF-8".into(),
    })
}

fn envelope_unknown(message: &str, tag: u32) -> ProtoError {
    ProtoError::UnknownField {
        message: message.to_owned(),
        tag,
        path: "the envelope".into(),
    }
}
