//! Bridges to the shared patch and quantity rules in skiff-api.

use serde_json::Value;

/// A strategic merge patch on `old` for an object of `kind`.
pub fn strategic(kind: &str, old: &Value, patch: &Value) -> Result<Value, String> {
    let _ = kind;
    let mut doc = old.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// A resource quantity, compared by value.
#[derive(Debug, PartialEq, PartialOrd)]
pub struct Quantity(f64);

impl std::str::FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_string();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| err())?;
        let mult = match suffix {
            "" => 1.0,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "Ki" => 1024.0,
            "Mi" => 1024.0 * 1024.0,
            "Gi" => 1024.0 * 1024.0 * 1024.0,
            "Ti" => 1024f64.powi(4),
            _ => return Err(err()),
        };
        Ok(Quantity(n * mult))
    }
}
