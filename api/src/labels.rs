//! Label selectors and label key/value rules.
//!
//! The string syntax and every error message follow Kubernetes, because
//! `kubectl` users see these messages verbatim in `Error from server
//! (BadRequest)` replies and scripts match on them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use regex::Regex;

use crate::names::{self, NameError, empty_error, max_len_error, regex_error};

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{QUALIFIED_NAME_FMT}$")).expect("built-in regex must compile")
});
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{LABEL_VALUE_FMT}$")).expect("built-in regex must compile")
});

/// Problems with `key` as a label key (Kubernetes calls this a "qualified
/// name"; annotation keys follow the same rule): an optional DNS-1123
/// subdomain prefix and `/`, then a name of at most 63 characters.
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    names::dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Problems with `value` as a label value (may be empty).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// [`label_key_errors`] as a `Result`.
pub fn validate_label_key(key: &str) -> Result<(), NameError> {
    let messages = label_key_errors(key);
    if messages.is_empty() {
        return Ok(());
    }
    Err(NameError {
        rule: "label key",
        value: key.to_string(),
        messages,
    })
}

/// [`label_value_errors`] as a `Result`.
pub fn validate_label_value(value: &str) -> Result<(), NameError> {
    let messages = label_value_errors(value);
    if messages.is_empty() {
        return Ok(());
    }
    Err(NameError {
        rule: "label value",
        value: value.to_string(),
        messages,
    })
}

/// A label selector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string form is malformed or names an invalid key or value;
    /// `message` is worded as Kubernetes words it and quotes the offending part.
    #[error("{message}")]
    Parse {
        /// The whole selector string.
        selector: String,
        /// Kubernetes' message.
        message: String,
    },
    /// A requirement (from a `LabelSelector` or built directly) is invalid.
    #[error("{message}")]
    InvalidRequirement {
        /// The requirement's key.
        key: String,
        /// Kubernetes' message (one field error, or `[a, b]` for several).
        message: String,
    },
    /// `matchExpressions[].operator` is not In, NotIn, Exists or DoesNotExist.
    #[error("{operator:?} is not a valid label selector operator")]
    UnknownOperator {
        /// The operator as given.
        operator: String,
    },
}

/// How a requirement relates its key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key in (a,b)`: present with one of the values.
    In,
    /// `key notin (a,b)`: absent, or present with none of the values.
    NotIn,
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `=`).
    DoubleEquals,
    /// `key!=value`: absent, or present with another value.
    NotEquals,
    /// `key`: present.
    Exists,
    /// `!key`: absent.
    DoesNotExist,
    /// `key>5`: present and numerically greater.
    GreaterThan,
    /// `key<5`: present and numerically smaller.
    LessThan,
}

impl Operator {
    /// Kubernetes' name for the operator (used in its messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One condition of a selector; a selector is the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Renders a string the way Go's `%q` does for the characters that occur in
/// practice, so messages match Kubernetes byte for byte.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Kubernetes renders non-string bad values of field errors as JSON.
fn json_list(values: Option<&[String]>) -> String {
    match values {
        None => "null".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "null".to_string()),
    }
}

/// Joins field errors the way Kubernetes' error aggregate does.
fn aggregate(errors: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

impl Requirement {
    /// Builds a requirement, checking it as Kubernetes does: a valid key,
    /// valid values, and a value count that fits the operator. `values` of
    /// `None` means "not given" (it shows as `null` in messages).
    pub fn new(
        key: &str,
        operator: Operator,
        values: Option<Vec<String>>,
    ) -> Result<Requirement, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(key),
                key_errs.join("; ")
            ));
        }
        let values_path = "values";
        let list = values.as_deref().unwrap_or(&[]);
        let shown = json_list(values.as_deref());
        match operator {
            Operator::In | Operator::NotIn => {
                if list.is_empty() {
                    errs.push(format!(
                        "{values_path}: Invalid value: {shown}: for 'in', 'notin' operators, values set can't be empty"
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if list.len() != 1 {
                    errs.push(format!(
                        "{values_path}: Invalid value: {shown}: exact-match compatibility requires one single value"
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !list.is_empty() {
                    errs.push(format!(
                        "{values_path}: Invalid value: {shown}: values set must be empty for exists and does not exist"
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if list.len() != 1 {
                    errs.push(format!(
                        "{values_path}: Invalid value: {shown}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in list.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "{values_path}[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
        }
        for (i, v) in list.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "{values_path}[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    value_errs.join("; ")
                ));
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError::InvalidRequirement {
                key: key.to_string(),
                message: aggregate(errs),
            });
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values: values.unwrap_or_default(),
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (empty for Exists/DoesNotExist).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), [want]) = (value, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(have), Ok(want)) = (have.parse::<i64>(), want.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut values = self.values.clone();
        values.sort();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements, or the special selector
/// that matches nothing (what a missing `LabelSelector` means).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches every label set.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Matches no label set.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses Kubernetes' string syntax, e.g. `app=web,tier in (a,b),!canary`.
    pub fn parse(selector: &str) -> Result<Selector, SelectorError> {
        let tokens = lex(selector);
        let mut parser = Parser {
            tokens,
            pos: 0,
            selector,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Requires every key of `set` to carry exactly its value (how
    /// `matchLabels` and Service selectors work). Not validated.
    pub fn from_set(set: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: set
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
            nothing: false,
        }
    }

    /// Converts an API `LabelSelector` (matchLabels + matchExpressions),
    /// validating it. An empty selector matches everything.
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Selector, SelectorError> {
        let labels = ls.match_labels.as_ref();
        let exprs = ls.match_expressions.as_deref().unwrap_or(&[]);
        let mut requirements = Vec::new();
        for (k, v) in labels.into_iter().flatten() {
            requirements.push(Requirement::new(
                k,
                Operator::Equals,
                Some(vec![v.clone()]),
            )?);
        }
        for expr in exprs {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        operator: other.to_string(),
                    });
                }
            };
            // Kubernetes passes an absent list and an empty list alike as nil.
            let values = expr.values.clone().filter(|v| !v.is_empty());
            requirements.push(Requirement::new(&expr.key, op, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Like [`Selector::from_label_selector`], where an absent selector
    /// matches nothing (the rule for e.g. a PodDisruptionBudget without one).
    pub fn from_optional_label_selector(
        ls: Option<&LabelSelector>,
    ) -> Result<Selector, SelectorError> {
        match ls {
            None => Ok(Selector::nothing()),
            Some(ls) => Selector::from_label_selector(ls),
        }
    }

    /// Adds a requirement (AND).
    pub fn add(&mut self, requirement: Requirement) {
        self.requirements.push(requirement);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector restricts nothing (matches everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// If the selector pins `key` to one value, that value (lets a store
    /// narrow a scan).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
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

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    Bang,
    DoubleEquals,
    Equals,
    Greater,
    Ident,
    In,
    Less,
    NotEquals,
    NotIn,
    OpenPar,
    Error,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn symbol(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::Bang,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::Greater,
        "<" => Tok::Less,
        "!=" => Tok::NotEquals,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

/// Splits a selector into tokens; operators are matched greedily (longest
/// run of symbol characters that is still an operator).
fn lex(input: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(chars[i]) {
            let mut buf = String::new();
            let mut best: Option<(Tok, String, usize)> = None;
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                buf.push(chars[j]);
                j += 1;
                if let Some(t) = symbol(&buf) {
                    best = Some((t, buf.clone(), j));
                } else if best.is_some() {
                    break;
                }
            }
            match best {
                Some((t, lit, end)) => {
                    out.push((t, lit));
                    i = end;
                }
                None => {
                    out.push((Tok::Error, format!("error expected: keyword found '{buf}'")));
                    i = j;
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !is_special(chars[i]) && !is_space(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
}

struct Parser<'a> {
    tokens: Vec<(Tok, String)>,
    pos: usize,
    selector: &'a str,
}

/// Inside a value list, `in` and `notin` are ordinary words.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

impl Parser<'_> {
    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        let (t, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        (Self::in_ctx(t, ctx), lit)
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.peek(ctx);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        item
    }

    fn in_ctx(t: Tok, ctx: Ctx) -> Tok {
        match (t, ctx) {
            (Tok::In | Tok::NotIn, Ctx::Values) => Tok::Ident,
            (t, _) => t,
        }
    }

    fn err(&self, message: String) -> SelectorError {
        SelectorError::Parse {
            selector: self.selector.to_string(),
            message,
        }
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut out = Vec::new();
        loop {
            let (t, lit) = self.peek(Ctx::Values);
            match t {
                Tok::Ident | Tok::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|m| self.err(format!("unable to parse requirement: {m}")))?;
                    out.push(r);
                    let (t, lit) = self.next(Ctx::Values);
                    match t {
                        Tok::End => return Ok(out),
                        Tok::Comma => {
                            let (t2, lit2) = self.peek(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::Bang {
                                return Err(self.err(format!(
                                    "found '{lit2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(self
                                .err(format!("found '{lit}', expected: ',' or 'end of string'")));
                        }
                    }
                }
                Tok::End => return Ok(out),
                _ => {
                    return Err(self.err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    /// Errors are bare messages; the caller adds Kubernetes' prefix.
    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut t, mut key) = self.next(Ctx::Values);
        let mut negated = false;
        if t == Tok::Bang {
            negated = true;
            (t, key) = self.next(Ctx::Values);
        }
        if t != Tok::Ident {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let key_errs = label_key_errors(&key);
        if !key_errs.is_empty() {
            // Kubernetes reports this one against an unset field path.
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&key),
                key_errs.join("; ")
            ));
        }
        // `!key` never takes an operator; whatever follows is left for the
        // caller to reject as a missing ','.
        let (after, _) = self.peek(Ctx::Values);
        if negated || after == Tok::End || after == Tok::Comma {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, Some(Vec::new())).map_err(|e| e.to_string());
        }
        let (t, lit) = self.next(Ctx::KeyAndOperator);
        let op = match t {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::Greater => Operator::GreaterThan,
            Tok::Less => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, Some(values)).map_err(|e| e.to_string())
    }

    /// `( a, b, ... )`; empty members are the empty string. Returns the
    /// values sorted and de-duplicated, as Kubernetes stores them.
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.next(Ctx::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.peek(Ctx::Values);
        let mut set = std::collections::BTreeSet::new();
        match t {
            Tok::Ident | Tok::Comma => {
                self.identifier_list(&mut set)?;
                let (t, _) = self.next(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                set.insert(String::new());
            }
            _ => {
                return Err(format!("found '{lit}', expected: ',', ')' or identifier"));
            }
        }
        Ok(set.into_iter().collect())
    }

    fn identifier_list(
        &mut self,
        set: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), String> {
        loop {
            let (t, lit) = self.next(Ctx::Values);
            match t {
                Tok::Ident => {
                    set.insert(lit);
                    let (t2, lit2) = self.peek(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(()),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.peek(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(());
                    }
                    if t2 == Tok::Comma {
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.peek(Ctx::Values);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.next(Ctx::Values);
        if t == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_err(s: &str) -> String {
        Selector::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("missing in (web)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("  app  =  web , tier in ( front , back )  ", true),
            ("app=", false),
            ("empty=", true),
        ];
        let mut l2 = l.clone();
        l2.insert("empty".into(), String::new());
        for (sel, want) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l2), want, "{sel}");
        }
    }

    #[test]
    fn keyword_words_are_values_inside_sets() {
        let s = Selector::parse("x in (in,notin)").unwrap();
        assert!(s.matches(&labels(&[("x", "in")])));
        assert!(s.matches(&labels(&[("x", "notin")])));
        let s = Selector::parse("x in (a,,b)").unwrap();
        assert_eq!(s.requirements()[0].values(), ["", "a", "b"]);
        let s = Selector::parse("x notin ()").unwrap();
        assert_eq!(s.requirements()[0].values(), [""]);
        let s = Selector::parse("x in (,a)").unwrap();
        assert_eq!(s.requirements()[0].values(), ["", "a"]);
    }

    #[test]
    fn string_form_is_sorted_and_canonical() {
        let s = Selector::parse("z=1, a in (c,b), !m, k, q notin (x), n>3").unwrap();
        assert_eq!(s.to_string(), "a in (b,c),k,!m,n>3,q notin (x),z=1");
        assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn syntax_errors_use_kubernetes_messages() {
        assert_eq!(
            parse_err("x=a,"),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            parse_err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("x y"),
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a=b c"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("!a=b"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x>a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_reported_like_kubernetes() {
        assert_eq!(
            parse_err("app=-foo"),
            "unable to parse requirement: values[0][app]: Invalid value: \"-foo\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            parse_err("-app=foo"),
            "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        match Selector::parse("a b").unwrap_err() {
            SelectorError::Parse { selector, .. } => assert_eq!(selector, "a b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_key_rules() {
        assert!(label_key_errors("app").is_empty());
        assert!(label_key_errors("example.com/My_Name.1").is_empty());
        assert!(label_key_errors(&"a".repeat(63)).is_empty());
        assert_eq!(
            label_key_errors(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            label_key_errors("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(label_key_errors("a/").len(), 2);
        assert_eq!(label_key_errors("a/")[0], "name part must be non-empty");
        assert!(
            label_key_errors("Example.com/a")[0]
                .starts_with("prefix part a lowercase RFC 1123 subdomain")
        );
        assert_eq!(
            label_key_errors("a/b/c"),
            vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
        assert_eq!(
            label_key_errors("a_"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert!(validate_label_key("ok/ok").is_ok());
        assert!(validate_label_key("").is_err());
    }

    #[test]
    fn label_value_rules() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("my_value-1.2").is_empty());
        assert_eq!(
            label_value_errors(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(label_value_errors("a b").len(), 1);
        assert!(validate_label_value("x.").is_err());
        assert!(validate_label_value("x").is_ok());
    }

    fn req(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_string(),
            operator: op.to_string(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn from_label_selector() {
        let ls = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                req("tier", "In", Some(&["front", "edge"])),
                req("canary", "DoesNotExist", None),
                req("env", "NotIn", Some(&["dev"])),
                req("team", "Exists", Some(&[])),
            ]),
        };
        let s = Selector::from_label_selector(&ls).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("team", "x"),
            ("canary", "1")
        ])));
        assert_eq!(s.requires_exact_match("app"), Some("web"));
        assert_eq!(s.requires_exact_match("tier"), None);

        let empty = Selector::from_label_selector(&LabelSelector::default()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[])));
        let none = Selector::from_optional_label_selector(None).unwrap();
        assert!(none.is_nothing());
        assert!(!none.is_empty());
        assert!(!none.matches(&labels(&[])));
    }

    #[test]
    fn label_selector_validation_errors() {
        let bad_in = LabelSelector {
            match_expressions: Some(vec![req("tier", "In", Some(&[]))]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(&bad_in)
                .unwrap_err()
                .to_string(),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        let bad_exists = LabelSelector {
            match_expressions: Some(vec![req("tier", "Exists", Some(&["a"]))]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(&bad_exists)
                .unwrap_err()
                .to_string(),
            "values: Invalid value: [\"a\"]: values set must be empty for exists and does not exist"
        );
        let bad_op = LabelSelector {
            match_expressions: Some(vec![req("tier", "Gt", Some(&["1"]))]),
            ..Default::default()
        };
        assert_eq!(
            Selector::from_label_selector(&bad_op)
                .unwrap_err()
                .to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
        let two = LabelSelector {
            match_expressions: Some(vec![req("-k", "In", None)]),
            ..Default::default()
        };
        let msg = Selector::from_label_selector(&two).unwrap_err().to_string();
        assert!(msg.starts_with("[key: Invalid value: \"-k\": name part must consist"));
        assert!(msg.ends_with(
            ", values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]"
        ));
        let bad_value = LabelSelector {
            match_labels: Some(labels(&[("app", "a b")])),
            ..Default::default()
        };
        assert!(
            Selector::from_label_selector(&bad_value)
                .unwrap_err()
                .to_string()
                .starts_with("values[0][app]: Invalid value: \"a b\": a valid label must be")
        );
    }

    #[test]
    fn from_set_and_add() {
        let mut s = Selector::from_set(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(s.to_string(), "a=1,b=2");
        s.add(Requirement::new("c", Operator::Exists, None).unwrap());
        assert_eq!(s.to_string(), "a=1,b=2,c");
        assert!(s.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "")])));
        assert!(Selector::everything().is_empty());
        assert!(Requirement::new("a", Operator::Equals, None).is_err());
        assert_eq!(Operator::NotIn.as_str(), "notin");
        let r = &s.requirements()[0];
        assert_eq!(
            (r.key(), r.operator(), r.values()),
            ("a", Operator::Equals, &["1".to_string()][..])
        );
    }
}
