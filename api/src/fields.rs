//! Field selectors (`?fieldSelector=spec.nodeName=node1,status.phase!=Failed`).
//!
//! Only equality terms exist. Values may escape `\`, `,` and `=` with a
//! backslash; field names cannot be escaped, so the first operator in a term
//! splits it. Which fields a resource supports is the caller's business:
//! it reads [`FieldSelector::requirements`] and rejects unknown ones with
//! [`FieldSelectorError::UnsupportedField`], whose message is Kubernetes'.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A field selector could not be parsed or is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Malformed {
        /// The whole selector.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash is followed by something other than `\`, `,` or `=`, or
    /// ends the value.
    #[error("invalid field selector: invalid escape sequence: {sequence}")]
    InvalidEscape {
        /// The raw value.
        value: String,
        /// The bad sequence, e.g. `\n` or a lone `\`.
        sequence: String,
    },
    /// A value contains a bare `,` or `=`. Kubernetes prints the character
    /// as its code point (`61` for `=`), and so do we.
    #[error("invalid field selector: unescaped character in value: {}", *.character as u32)]
    UnescapedCharacter {
        /// The raw value.
        value: String,
        /// The character.
        character: char,
    },
    /// The resource cannot be filtered on this field.
    #[error("field label not supported: {label}")]
    UnsupportedField {
        /// The field path as given.
        label: String,
    },
}

/// How a term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value`.
    Equals,
    /// `field==value`.
    DoubleEquals,
    /// `field!=value`.
    NotEquals,
}

impl FieldOperator {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::DoubleEquals => "==",
            FieldOperator::NotEquals => "!=",
        }
    }
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name` or `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether `actual` (the object's value, `""` when absent) satisfies the term.
    pub fn matches_value(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::NotEquals => "!=",
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
        };
        write!(f, "{}{}{}", self.field, op, escape_value(&self.value))
    }
}

/// The AND of equality terms on an object's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Escapes `\`, `,` and `=` so an arbitrary string can be a selector value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`], rejecting unknown escapes and bare `,`/`=`.
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscape {
                    value: value.to_string(),
                    sequence: format!("\\{c}"),
                });
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(FieldSelectorError::UnescapedCharacter {
                    value: value.to_string(),
                    character: c,
                });
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err(FieldSelectorError::InvalidEscape {
            value: value.to_string(),
            sequence: "\\".to_string(),
        });
    }
    Ok(out)
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator; `!=` and `==` win over `=` at the
/// same position so no `=` is left on the value.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (text, op) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::DoubleEquals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

impl FieldSelector {
    /// Matches every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses `a=b,c!=d,e==f`. Empty terms are skipped; terms are kept in
    /// sorted order like Kubernetes does.
    pub fn parse(selector: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(FieldSelectorError::Malformed {
                    selector: selector.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// A selector with the single term `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> FieldSelector {
        FieldSelector {
            requirements: vec![FieldRequirement {
                field: field.to_string(),
                operator: FieldOperator::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, for checking which fields are used.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Fails with Kubernetes' "field label not supported" message for the
    /// first term whose field is not in `supported`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), FieldSelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(FieldSelectorError::UnsupportedField {
                label: r.field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether every term holds. `get` returns an object's value for a field
    /// path; a missing field compares as the empty string.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            r.matches_value(&actual)
        })
    }

    /// Like [`FieldSelector::matches`], reading fields from a JSON object by
    /// dotted path (see [`value_at_path`]).
    pub fn matches_json(&self, object: &Value) -> bool {
        self.matches(|path| value_at_path(object, path))
    }

    /// If a term pins `field` with `=`/`==`, its value (lets a store narrow
    /// a scan, e.g. pods by `spec.nodeName`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

/// Reads a dotted path (`metadata.name`, `spec.nodeName`,
/// `involvedObject.uid`) from a JSON object as the string Kubernetes
/// compares: strings as-is, booleans and numbers in their JSON spelling,
/// `None` for absent, null, or non-scalar values.
pub fn value_at_path(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "hostNetwork": false},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn parses_operators() {
        let s =
            FieldSelector::parse("status.phase!=Failed,metadata.name==web-1,spec.nodeName=node-a")
                .unwrap();
        let ops: Vec<_> = s
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("metadata.name", FieldOperator::DoubleEquals, "web-1"),
                ("spec.nodeName", FieldOperator::Equals, "node-a"),
                ("status.phase", FieldOperator::NotEquals, "Failed"),
            ]
        );
        assert!(s.matches_json(&pod()));
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("node-a"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
    }

    #[test]
    fn missing_fields_compare_as_empty() {
        let unscheduled = FieldSelector::parse("spec.nodeName=").unwrap();
        let scheduled = FieldSelector::parse("spec.nodeName!=").unwrap();
        let p = pod();
        assert!(!unscheduled.matches_json(&p));
        assert!(scheduled.matches_json(&p));
        let bare = json!({"metadata": {"name": "x"}});
        assert!(unscheduled.matches_json(&bare));
        assert!(!scheduled.matches_json(&bare));
        assert!(
            FieldSelector::parse("spec.hostNetwork=false")
                .unwrap()
                .matches_json(&p)
        );
        assert!(
            FieldSelector::parse("involvedObject.uid=u1")
                .unwrap()
                .matches(|f| (f == "involvedObject.uid").then(|| "u1".to_string()))
        );
    }

    #[test]
    fn escaping() {
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=y").unwrap();
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.requirements()[1].value, "y");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
        assert_eq!(unescape_value(&escape_value("x=,\\")).unwrap(), "x=,\\");
        // The first operator splits: the value keeps the second '='... and
        // Kubernetes rejects it as unescaped.
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\n").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \n"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            FieldSelector::parse("a=b,nonsense")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'a=b,nonsense'; can't understand 'nonsense'"
        );
        let s = FieldSelector::parse("metadata.name=x,spec.bogus=y").unwrap();
        assert_eq!(
            s.check_supported(&["metadata.name", "metadata.namespace"])
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.bogus"
        );
        assert!(s.check_supported(&["metadata.name", "spec.bogus"]).is_ok());
    }

    #[test]
    fn empty_and_helpers() {
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
        assert!(FieldSelector::everything().matches(|_| None));
        let s = FieldSelector::one_term_equal("metadata.name", "a,b");
        assert_eq!(s.to_string(), r"metadata.name=a\,b");
        assert_eq!(s, FieldSelector::parse(&s.to_string()).unwrap());
        assert_eq!(FieldOperator::NotEquals.as_str(), "!=");
        assert_eq!(value_at_path(&pod(), "metadata"), None);
        assert_eq!(value_at_path(&pod(), "metadata.name.x"), None);
    }
}
