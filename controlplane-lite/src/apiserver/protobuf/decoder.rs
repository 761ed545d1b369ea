//! The walk from protobuf bytes to JSON, driven by the field tables.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{Field, Message, Shape, Ty};
use super::wire::{Reader, WireError, WireType};
use super::{MAX_DEPTH, ProtoError};

const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";

/// Go's time.Time JSON only covers years 0001..=9999 (RFC 3339 has four year digits).
const MIN_UNIX_SECONDS: i64 = -62_135_596_800;
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// One step of the JSON path to the value being decoded, kept for error messages.
enum Seg<'a> {
    Field(&'static str),
    Index(usize),
    Key(&'a str),
}

#[derive(Default)]
pub(super) struct Decoder<'a> {
    path: Vec<Seg<'a>>,
    depth: usize,
}

impl<'a> Decoder<'a> {
    /// Decodes `buf` as `msg` into `obj`. Decoding into an existing object is protobuf's
    /// merge: a singular message that occurs twice is the union of both occurrences.
    pub(super) fn message(
        &mut self,
        msg: &'static Message,
        buf: &'a [u8],
        obj: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        if self.depth >= MAX_DEPTH {
            return Err(ProtoError::TooDeep {
                path: self.path(),
                max: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let res = self.fields(msg, buf, obj);
        self.depth -= 1;
        res
    }

    fn fields(
        &mut self,
        msg: &'static Message,
        buf: &'a [u8],
        obj: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let (tag, wt) = r.key().map_err(|e| self.wire(msg.name, e))?;
            let field = msg.field(tag).ok_or_else(|| ProtoError::UnknownField {
                message: msg.name.to_owned(),
                tag,
                path: self.path(),
            })?;
            if field.shape == Shape::Inline {
                // Inlined Go structs share the parent's JSON object and path.
                let Ty::Message(inner) = field.ty else {
                    return Err(self.invalid("schema error: an inline field that is not a message"));
                };
                let bytes = self.expect_len(msg.name, field.tag, wt, &mut r)?;
                self.message(inner, bytes, obj)?;
                continue;
            }
            self.path.push(Seg::Field(field.json));
            let res = match field.shape {
                Shape::Repeated => self.repeated(msg, field, wt, &mut r, obj),
                Shape::Map => self.map(msg, field, wt, &mut r, obj),
                _ => self.single(msg, field, wt, &mut r, obj),
            };
            self.path.pop();
            res?;
        }
        Ok(())
    }

    fn single(
        &mut self,
        msg: &'static Message,
        field: &'static Field,
        wt: WireType,
        r: &mut Reader<'a>,
        obj: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        if let Ty::Message(inner) = field.ty {
            let bytes = self.expect_len(msg.name, field.tag, wt, r)?;
            let slot = obj
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(existing) = slot {
                return self.message(inner, bytes, existing);
            }
            let mut fresh = Map::new();
            self.message(inner, bytes, &mut fresh)?;
            *slot = Value::Object(fresh);
            return Ok(());
        }
        match self.value(msg.name, field.tag, field.ty, wt, r)? {
            Some(v) if !(field.shape == Shape::OmitZero && is_zero(field.ty, &v)) => {
                obj.insert(field.json.to_owned(), v);
            }
            // Last occurrence wins, as in protobuf, even when it means "absent".
            _ => {
                obj.remove(field.json);
            }
        }
        Ok(())
    }

    fn repeated(
        &mut self,
        msg: &'static Message,
        field: &'static Field,
        wt: WireType,
        r: &mut Reader<'a>,
        obj: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        let slot = obj
            .entry(field.json)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let Value::Array(items) = slot else {
            return Ok(());
        };
        let natural = natural_wire_type(field.ty);
        if wt == WireType::Len && natural != WireType::Len {
            // Packed numbers: one length-delimited run of values. Go writes Kubernetes'
            // repeated numbers unpacked, but protobuf readers must accept both.
            let bytes = self.expect_len(msg.name, field.tag, wt, r)?;
            let mut packed = Reader::new(bytes);
            while !packed.is_empty() {
                self.path.push(Seg::Index(items.len()));
                let v = self.value(msg.name, field.tag, field.ty, natural, &mut packed);
                self.path.pop();
                items.push(v?.unwrap_or(Value::Null));
            }
            return Ok(());
        }
        self.path.push(Seg::Index(items.len()));
        let v = self.value(msg.name, field.tag, field.ty, wt, r);
        self.path.pop();
        items.push(v?.unwrap_or(Value::Null));
        Ok(())
    }

    /// One `map<string, T>` entry: a message with key = 1 and value = 2.
    fn map(
        &mut self,
        msg: &'static Message,
        field: &'static Field,
        wt: WireType,
        r: &mut Reader<'a>,
        obj: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        let entry = self.expect_len(msg.name, field.tag, wt, r)?;
        // Only for error messages: each entry is a synthetic message of its own.
        let entry_name = format!("{}.{}Entry", msg.name, field.json);
        let mut er = Reader::new(entry);
        let mut key = "";
        let mut value = None;
        while !er.is_empty() {
            let (tag, wt) = er.key().map_err(|e| self.wire(&entry_name, e))?;
            match tag {
                1 => {
                    let bytes = self.expect_len(&entry_name, tag, wt, &mut er)?;
                    key = self.utf8(bytes)?;
                }
                2 => {
                    // Go writes the key first, so the path names the entry.
                    self.path.push(Seg::Key(key));
                    let v = self.value(&entry_name, tag, field.ty, wt, &mut er);
                    self.path.pop();
                    value = Some(v?.unwrap_or(Value::Null));
                }
                _ => {
                    return Err(ProtoError::UnknownField {
                        message: entry_name,
                        tag,
                        path: self.path(),
                    });
                }
            }
        }
        let value = value.unwrap_or_else(|| zero_value(field.ty));
        let slot = obj
            .entry(field.json)
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(m) = slot {
            m.insert(key.to_owned(), value);
        }
        Ok(())
    }

    /// Reads one value of `ty`; `None` means the value stands for "absent" (a zero Time).
    fn value(
        &mut self,
        message: &str,
        tag: u32,
        ty: Ty,
        wt: WireType,
        r: &mut Reader<'a>,
    ) -> Result<Option<Value>, ProtoError> {
        let want = natural_wire_type(ty);
        if wt != want {
            return Err(ProtoError::WrongWireType {
                message: message.to_owned(),
                tag,
                path: self.path(),
                got: wt,
                want,
            });
        }
        let v = match ty {
            Ty::Bool => Value::Bool(self.varint(message, r)? != 0),
            // Protobuf's int32 is the low 32 bits of the varint; negatives arrive
            // sign-extended to 64 bits.
            Ty::Int32 => Value::from(self.varint(message, r)? as i64 as i32),
            Ty::Int64 => Value::from(self.varint(message, r)? as i64),
            Ty::Double => {
                let bits = r.fixed64().map_err(|e| self.wire(message, e))?;
                let n = Number::from_f64(f64::from_bits(bits))
                    .ok_or_else(|| self.invalid("a number that is not finite has no JSON form"))?;
                Value::Number(n)
            }
            Ty::String => {
                let bytes = self.len(message, r)?;
                Value::String(self.utf8(bytes)?.to_owned())
            }
            Ty::Bytes => {
                let bytes = self.len(message, r)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Ty::Quantity => {
                let bytes = self.len(message, r)?;
                self.quantity(bytes)?
            }
            Ty::Time | Ty::MicroTime => {
                let bytes = self.len(message, r)?;
                return self.time(bytes, matches!(ty, Ty::MicroTime));
            }
            Ty::IntOrString => {
                let bytes = self.len(message, r)?;
                self.int_or_string(bytes)?
            }
            Ty::RawExtension | Ty::FieldsV1 => {
                let bytes = self.len(message, r)?;
                let name = if matches!(ty, Ty::FieldsV1) {
                    FIELDS_V1
                } else {
                    RAW_EXTENSION
                };
                self.raw_json(name, bytes)?
            }
            Ty::Message(inner) => {
                let bytes = self.len(message, r)?;
                let mut m = Map::new();
                self.message(inner, bytes, &mut m)?;
                Value::Object(m)
            }
        };
        Ok(Some(v))
    }

    /// resource.Quantity {1: string}. Go always writes the string; a missing one is zero.
    fn quantity(&mut self, buf: &'a [u8]) -> Result<Value, ProtoError> {
        let mut s = "0";
        self.special(QUANTITY, buf, |d, tag, wt, r| match tag {
            1 => {
                let bytes = d.expect_len(QUANTITY, tag, wt, r)?;
                let text = d.utf8(bytes)?;
                if !text.is_empty() {
                    s = text;
                }
                Ok(true)
            }
            _ => Ok(false),
        })?;
        Ok(Value::String(s.to_owned()))
    }

    /// metav1.Time / MicroTime {1: int64 seconds, 2: int32 nanos}. Go writes a zero Time as
    /// an empty message, and zero means unset (JSON null), so that decodes to absent.
    fn time(&mut self, buf: &'a [u8], micro: bool) -> Result<Option<Value>, ProtoError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let name = if micro { MICRO_TIME } else { TIME };
        let (mut secs, mut nanos) = (0i64, 0i64);
        self.special(name, buf, |d, tag, wt, r| match tag {
            1 => {
                d.expect(name, tag, wt, WireType::Varint)?;
                secs = d.varint(name, r)? as i64;
                Ok(true)
            }
            2 => {
                d.expect(name, tag, wt, WireType::Varint)?;
                nanos = i64::from(d.varint(name, r)? as i64 as i32);
                Ok(true)
            }
            _ => Ok(false),
        })?;
        if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&secs) {
            return Err(self.invalid(format!(
                "timestamp {secs}s since 1970 is outside years 0001..9999"
            )));
        }
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(self.invalid(format!("timestamp nanoseconds {nanos} out of range")));
        }
        let ts = jiff::Timestamp::from_second(secs)
            .map_err(|e| self.invalid(format!("timestamp {secs}: {e}")))?;
        let mut text = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        // Time's JSON has whole seconds (Go drops the nanos it reads); MicroTime's has six
        // fraction digits, always.
        if micro {
            let _ = write!(text, ".{:06}", nanos / 1000);
        }
        text.push('Z');
        Ok(Some(Value::String(text)))
    }

    /// intstr.IntOrString {1: type (0 int, 1 string), 2: intVal, 3: strVal}.
    fn int_or_string(&mut self, buf: &'a [u8]) -> Result<Value, ProtoError> {
        let name = INT_OR_STRING;
        let (mut kind, mut int, mut text) = (0u64, 0i32, "");
        self.special(name, buf, |d, tag, wt, r| match tag {
            1 => {
                d.expect(name, tag, wt, WireType::Varint)?;
                kind = d.varint(name, r)?;
                Ok(true)
            }
            2 => {
                d.expect(name, tag, wt, WireType::Varint)?;
                int = d.varint(name, r)? as i64 as i32;
                Ok(true)
            }
            3 => {
                let bytes = d.expect_len(name, tag, wt, r)?;
                text = d.utf8(bytes)?;
                Ok(true)
            }
            _ => Ok(false),
        })?;
        match kind {
            0 => Ok(Value::from(int)),
            1 => Ok(Value::String(text.to_owned())),
            other => Err(self.invalid(format!(
                "IntOrString type {other} is neither 0 (int) nor 1 (string)"
            ))),
        }
    }

    /// RawExtension / FieldsV1 {1: raw}: raw holds JSON, which becomes part of the object.
    fn raw_json(&mut self, name: &'static str, buf: &'a [u8]) -> Result<Value, ProtoError> {
        let mut raw: &[u8] = &[];
        self.special(name, buf, |d, tag, wt, r| match tag {
            1 => {
                raw = d.expect_len(name, tag, wt, r)?;
                Ok(true)
            }
            _ => Ok(false),
        })?;
        if raw.is_empty() {
            return Ok(Value::Null);
        }
        // serde_json caps nesting itself, and the input is bounded by the body.
        serde_json::from_slice(raw).map_err(|e| {
            self.invalid(format!(
                "embedded raw object is not JSON ({e}); only JSON raw content is supported"
            ))
        })
    }

    /// Walks one of the small apimachinery messages; `each` returns false for a tag it does
    /// not know, which is then an error like any other unknown field.
    fn special(
        &mut self,
        name: &'static str,
        buf: &'a [u8],
        mut each: impl FnMut(&mut Self, u32, WireType, &mut Reader<'a>) -> Result<bool, ProtoError>,
    ) -> Result<(), ProtoError> {
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let (tag, wt) = r.key().map_err(|e| self.wire(name, e))?;
            if !each(self, tag, wt, &mut r)? {
                return Err(ProtoError::UnknownField {
                    message: name.to_owned(),
                    tag,
                    path: self.path(),
                });
            }
        }
        Ok(())
    }

    fn expect(
        &self,
        message: &str,
        tag: u32,
        got: WireType,
        want: WireType,
    ) -> Result<(), ProtoError> {
        if got == want {
            return Ok(());
        }
        Err(ProtoError::WrongWireType {
            message: message.to_owned(),
            tag,
            path: self.path(),
            got,
            want,
        })
    }

    fn expect_len(
        &self,
        message: &str,
        tag: u32,
        wt: WireType,
        r: &mut Reader<'a>,
    ) -> Result<&'a [u8], ProtoError> {
        self.expect(message, tag, wt, WireType::Len)?;
        self.len(message, r)
    }

    fn len(&self, message: &str, r: &mut Reader<'a>) -> Result<&'a [u8], ProtoError> {
        r.len_delimited().map_err(|e| self.wire(message, e))
    }

    fn varint(&self, message: &str, r: &mut Reader<'a>) -> Result<u64, ProtoError> {
        r.varint().map_err(|e| self.wire(message, e))
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, ProtoError> {
        std::str::from_utf8(bytes).map_err(|e| self.invalid(format!("string is not UTF-8 ({e})")))
    }

    fn wire(&self, message: &str, source: WireError) -> ProtoError {
        ProtoError::Wire {
            message: message.to_owned(),
            path: self.path(),
            source,
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> ProtoError {
        ProtoError::InvalidValue {
            path: self.path(),
            reason: reason.into(),
        }
    }

    /// The JSON path being decoded, e.g. `spec.template.spec.containers[0].ports[1]`.
    fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                Seg::Key(k) => {
                    let _ = write!(out, "[{k:?}]");
                }
            }
        }
        if out.is_empty() {
            out.push_str("the top level");
        }
        out
    }
}

fn natural_wire_type(ty: Ty) -> WireType {
    match ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => WireType::Varint,
        Ty::Double => WireType::Fixed64,
        _ => WireType::Len,
    }
}

/// The zero values a JSON client leaves out of an `omitempty` field.
fn is_zero(ty: Ty, v: &Value) -> bool {
    match ty {
        Ty::String | Ty::Bytes => v.as_str() == Some(""),
        Ty::Bool => v == &Value::Bool(false),
        Ty::Int32 | Ty::Int64 => v.as_i64() == Some(0),
        Ty::Double => v.as_f64() == Some(0.0),
        // Go's JSON would send `0` for an unset non-pointer IntOrString (ServicePort's
        // targetPort), and Kubernetes treats that 0 as unset: leaving it out keeps the
        // server's "absent" defaulting path the only one.
        Ty::IntOrString => v.as_i64() == Some(0),
        // A zero Quantity is "0" in Go's JSON too, not omitted; messages are always kept.
        Ty::Quantity
        | Ty::Time
        | Ty::MicroTime
        | Ty::RawExtension
        | Ty::FieldsV1
        | Ty::Message(_) => false,
    }
}

/// A map entry without a value holds the value type's zero.
fn zero_value(ty: Ty) -> Value {
    match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 | Ty::IntOrString => Value::from(0),
        Ty::Double => Value::from(0.0),
        Ty::Quantity => Value::String("0".into()),
        Ty::Time | Ty::MicroTime | Ty::RawExtension | Ty::FieldsV1 => Value::Null,
        Ty::Message(_) => Value::Object(Map::new()),
    }
}
