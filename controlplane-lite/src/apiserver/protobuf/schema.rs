//! The vocabulary of the field tables: what a field's bytes mean and how its JSON looks.
//!
//! Kubernetes' .proto files are generated from Go structs and carry no more than proto2
//! types, so the decoder needs to know what the Go side means: which fields are special
//! apimachinery types with their own JSON form, and which zero values a JSON client would
//! have left out.

pub use super::tables::ROOTS;

/// What one field value is, on the wire and in JSON.
#[derive(Clone, Copy)]
pub enum Ty {
    /// Length-delimited UTF-8 → JSON string.
    String,
    /// Length-delimited bytes → standard base64 with padding, as Go's encoding/json writes `[]byte`.
    Bytes,
    /// Varint → true/false.
    Bool,
    /// Varint, truncated to 32 bits as proto int32 is → JSON number.
    Int32,
    /// Varint → JSON number.
    Int64,
    /// 64-bit IEEE float → JSON number.
    Double,
    /// resource.Quantity: a message whose field 1 is the canonical string → JSON string.
    Quantity,
    /// metav1.Time: message {1 seconds, 2 nanos}; JSON has seconds precision.
    Time,
    /// metav1.MicroTime: like Time, with microseconds in JSON.
    MicroTime,
    /// intstr.IntOrString: message {1 type, 2 intVal, 3 strVal} → JSON number or string.
    IntOrString,
    /// runtime.RawExtension: message {1 raw}; raw is the embedded object's JSON.
    RawExtension,
    /// metav1.FieldsV1: message {1 raw}; raw is the managed-fields JSON document.
    FieldsV1,
    /// An ordinary message → JSON object.
    Message(&'static Message),
}

/// How a field occurs and how its zero value shows in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// Present in JSON whenever present on the wire: Go pointers (nil is simply not
    /// written), fields without `omitempty`, and struct values.
    Keep,
    /// A non-pointer Go scalar with `omitempty`: Go's protobuf encoder writes it even when
    /// zero, but a JSON client would have omitted it, so a zero value means absent.
    OmitZero,
    /// `repeated`: a JSON array. Numeric fields accept packed and unpacked encodings.
    Repeated,
    /// `map<string, Ty>`: a JSON object.
    Map,
    /// A Go struct embedded with `json:",inline"`: its own proto message, but its fields
    /// belong to the enclosing JSON object. Only with [`Ty::Message`].
    Inline,
}

pub struct Field {
    pub tag: u32,
    /// The JSON name exactly as Kubernetes spells it (`hostIPC`, `clusterIPs`); empty for
    /// [`Shape::Inline`].
    pub json: &'static str,
    pub ty: Ty,
    pub shape: Shape,
}

pub struct Message {
    /// The full proto name, e.g. `k8s.io.api.core.v1.PodSpec`; used in error messages.
    pub name: &'static str,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .and_then(|i| self.fields.get(i))
    }

    /// The proto name without its package, for messages a person reads.
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }
}

/// Keeps the tables to one line per field.
pub const fn f(tag: u32, json: &'static str, ty: Ty, shape: Shape) -> Field {
    Field {
        tag,
        json,
        ty,
        shape,
    }
}

/// The message for a kind named in the envelope's TypeMeta.
pub fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    ROOTS
        .iter()
        .find(|(av, k, _)| *k == kind && (*av == "*" || *av == api_version))
        .map(|(_, _, m)| *m)
}
