//! Helpers shared by the printers: reading Kubernetes JSON defensively and
//! rendering values the way Kubernetes' printers render them.
//!
//! Objects on a real cluster have passed API defaulting before they are
//! printed. Where Kubernetes defaults a field, a printer here treats a missing
//! value as that default, so an object stored without defaulting still prints
//! like it would on a real cluster.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::Column;

/// Description Kubernetes attaches to every Name column (ObjectMeta.name).
pub(super) const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Description Kubernetes attaches to every Age column (ObjectMeta.creationTimestamp).
pub(super) const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(super) const CONTAINERS_DESCRIPTION: &str = "Names of each container in the template.";
pub(super) const IMAGES_DESCRIPTION: &str = "Images referenced by each container in the template.";

/// The Name column every printer starts with.
pub(super) const fn name_column() -> Column {
    Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: NAME_DESCRIPTION,
        priority: 0,
    }
}

/// The Age column (a human duration since creation).
pub(super) const fn age_column() -> Column {
    col("Age", "string", AGE_DESCRIPTION)
}

/// A column shown by default.
pub(super) const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
pub(super) const fn wide(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// Builds a row of cells from values of mixed types (strings, integers, booleans).
macro_rules! row {
    ($($cell:expr),* $(,)?) => {
        vec![$(serde_json::Value::from($cell)),*]
    };
}
pub(super) use row;

// ---- reading JSON ----------------------------------------------------------

/// The string at a JSON pointer, or "" when absent or not a string.
pub(super) fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The string at a JSON pointer, `None` when absent (distinct from "").
pub(super) fn opt_text<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// The integer at a JSON pointer, or 0 (Go's zero value) when absent.
pub(super) fn int(obj: &Value, pointer: &str) -> i64 {
    opt_int(obj, pointer).unwrap_or(0)
}

pub(super) fn opt_int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

pub(super) fn opt_bool(obj: &Value, pointer: &str) -> Option<bool> {
    obj.pointer(pointer).and_then(Value::as_bool)
}

pub(super) fn flag(obj: &Value, pointer: &str) -> bool {
    opt_bool(obj, pointer).unwrap_or(false)
}

/// The array at a JSON pointer, or an empty slice.
pub(super) fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at a JSON pointer, if there is one.
pub(super) fn map<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    obj.pointer(pointer).and_then(Value::as_object)
}

/// Number of keys of the object at a JSON pointer.
pub(super) fn key_count(obj: &Value, pointer: &str) -> usize {
    map(obj, pointer).map_or(0, Map::len)
}

pub(super) fn name(obj: &Value) -> &str {
    text(obj, "/metadata/name")
}

pub(super) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    map(obj, "/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub(super) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

// ---- time ------------------------------------------------------------------

/// Parses a metav1.Time / MicroTime value; absent, null or unparsable is `None`
/// (Go's zero time).
pub(super) fn time_value(value: Option<&Value>) -> Option<Timestamp> {
    value.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

pub(super) fn time(obj: &Value, pointer: &str) -> Option<Timestamp> {
    time_value(obj.pointer(pointer))
}

/// Human duration since `t`, "<unknown>" for a zero time (translateTimestampSince).
pub(super) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// The AGE cell.
pub(super) fn age(obj: &Value, now: Timestamp) -> String {
    since(time(obj, "/metadata/creationTimestamp"), now)
}

/// Kubernetes' `duration.HumanDuration`: about two significant figures, so
/// columns stay narrow ("45s", "5m12s", "17m", "3h4m", "20h", "3d5h", "45d", "2y30d").
pub fn human_duration(d: SignedDuration) -> String {
    // Go converts with int(d.Seconds()), which truncates towards zero, and
    // tolerates up to a second of clock skew before calling a time invalid.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        if days == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{days}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// Go's `printBool`.
pub(super) fn go_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

// ---- labels and selectors ---------------------------------------------------

/// `labels.FormatLabels`: "k=v" sorted by key, "<none>" when empty.
pub(super) fn format_labels(labels: Option<&Value>) -> String {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return "<none>".to_string();
    };
    if labels.is_empty() {
        return "<none>".to_string();
    }
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A metav1.LabelSelector rendered as `labels.Selector.String()` would render
/// it after `LabelSelectorAsSelector`; `Err` where that conversion fails.
/// A missing or empty selector renders as "".
pub(super) fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or("")),
            ));
        }
    }
    for expr in list(selector, "/matchExpressions") {
        let key = text(expr, "/key");
        let mut values: Vec<&str> = list(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let rendered = match text(expr, "/operator") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), rendered));
    }
    // Selector.Add sorts requirements by key.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: "<none>" when it selects nothing in
/// particular, "<error>" when invalid.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

// ---- containers and lists ---------------------------------------------------

/// Container names and images, each comma-joined (layoutContainerCells).
pub(super) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Kubernetes' `listWithMoreString`: at most `max` items, then "+ N more...".
pub(super) fn list_with_more(items: &[String], total: usize, max: usize) -> String {
    if total > max {
        let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
        return format!("{} + {} more...", shown.join(","), total - max);
    }
    if items.is_empty() {
        return "<unset>".to_string();
    }
    items.join(",")
}

/// `net.JoinHostPort`: IPv6 addresses get brackets.
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated.
pub(super) fn load_balancer_addresses(ingress: &[Value]) -> String {
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| {
            let ip = text(i, "/ip");
            let hostname = text(i, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !hostname.is_empty() {
                Some(hostname)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

// ---- storage ----------------------------------------------------------------

/// `GetAccessModesAsString`: fixed order, abbreviated, de-duplicated.
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QuantityFormat {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// `resource.Quantity.String()` of a quantity string: the canonical form the
/// API server stores ("1024Mi" prints as "1Gi", "0.5" as "500m").
/// Unparsable input (or input too large to handle exactly) is returned as is.
pub fn canonical_quantity(q: &str) -> String {
    parse_quantity(q)
        .and_then(|(mantissa, exp, format)| render_quantity(mantissa, exp, format))
        .unwrap_or_else(|| q.to_string())
}

/// Parses into `mantissa × 10^exp`, exactly.
fn parse_quantity(q: &str) -> Option<(i128, i32, QuantityFormat)> {
    let (negative, rest) = match q.as_bytes().first()? {
        b'-' => (true, &q[1..]),
        b'+' => (false, &q[1..]),
        _ => (false, q),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut exp = -i32::try_from(fraction.len()).ok()?;
    let (format, suffix_exp, binary_pow) = match suffix {
        "" => (QuantityFormat::DecimalSi, 0, 0),
        "n" => (QuantityFormat::DecimalSi, -9, 0),
        "u" => (QuantityFormat::DecimalSi, -6, 0),
        "m" => (QuantityFormat::DecimalSi, -3, 0),
        "k" => (QuantityFormat::DecimalSi, 3, 0),
        "M" => (QuantityFormat::DecimalSi, 6, 0),
        "G" => (QuantityFormat::DecimalSi, 9, 0),
        "T" => (QuantityFormat::DecimalSi, 12, 0),
        "P" => (QuantityFormat::DecimalSi, 15, 0),
        "E" => (QuantityFormat::DecimalSi, 18, 0),
        "Ki" => (QuantityFormat::BinarySi, 0, 1),
        "Mi" => (QuantityFormat::BinarySi, 0, 2),
        "Gi" => (QuantityFormat::BinarySi, 0, 3),
        "Ti" => (QuantityFormat::BinarySi, 0, 4),
        "Pi" => (QuantityFormat::BinarySi, 0, 5),
        "Ei" => (QuantityFormat::BinarySi, 0, 6),
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().ok()?;
            (QuantityFormat::DecimalExponent, e, 0)
        }
        _ => return None,
    };
    exp = exp.checked_add(suffix_exp)?;
    mantissa = mantissa.checked_mul(1024i128.checked_pow(binary_pow)?)?;
    if negative {
        mantissa = -mantissa;
    }
    // Kubernetes keeps nothing finer than nano units and rounds away from zero.
    if exp < -9 {
        let divisor = 10i128.checked_pow(u32::try_from(-9 - exp).ok()?)?;
        let rounded_up = mantissa.abs() / divisor + i128::from(mantissa % divisor != 0);
        mantissa = if mantissa < 0 {
            -rounded_up
        } else {
            rounded_up
        };
        exp = -9;
    }
    Some((mantissa, exp, format))
}

fn render_quantity(mut mantissa: i128, mut exp: i32, format: QuantityFormat) -> Option<String> {
    if mantissa == 0 {
        return Some("0".to_string());
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    let mut format = format;
    if format == QuantityFormat::BinarySi {
        // Small or fractional byte counts print in decimal to avoid rounding.
        let integer = if exp >= 0 {
            mantissa.checked_mul(10i128.checked_pow(u32::try_from(exp).ok()?)?)
        } else {
            None
        };
        match integer {
            Some(value) if value.abs() >= 1024 => {
                let mut value = value;
                let mut power = 0;
                while power < 6 && value % 1024 == 0 {
                    value /= 1024;
                    power += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
                return Some(format!("{value}{suffix}"));
            }
            _ => format = QuantityFormat::DecimalSi,
        }
    }
    // Decimal forms use an exponent that is a multiple of three.
    match exp.rem_euclid(3) {
        1 => {
            mantissa = mantissa.checked_mul(10)?;
            exp -= 1;
        }
        2 => {
            mantissa = mantissa.checked_mul(100)?;
            exp -= 2;
        }
        _ => {}
    }
    let suffix = match (format, exp) {
        (QuantityFormat::DecimalExponent, 0) => String::new(),
        (QuantityFormat::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".to_string(),
        (_, -6) => "u".to_string(),
        (_, -3) => "m".to_string(),
        (_, 0) => String::new(),
        (_, 3) => "k".to_string(),
        (_, 6) => "M".to_string(),
        (_, 9) => "G".to_string(),
        (_, 12) => "T".to_string(),
        (_, 15) => "P".to_string(),
        (_, 18) => "E".to_string(),
        (_, e) => format!("e{e}"),
    };
    Some(format!("{mantissa}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn human_duration_matches_kubernetes() {
        let cases = [
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (312, "5m12s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60 + 5, "3h4m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (8 * 86400, "8d"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (8 * 365 * 86400 + 30 * 86400, "8y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(secs(s)), want, "{s}s");
        }
        // Sub-second skew into the future still counts as "now".
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
    }

    #[test]
    fn since_zero_time_is_unknown() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().expect("timestamp");
        assert_eq!(since(None, now), "<unknown>");
        let obj = json!({"metadata": {"creationTimestamp": "2024-05-01T11:54:48Z"}});
        assert_eq!(age(&obj, now), "5m12s");
        let micro = json!({"t": "2024-05-01T11:59:30.123456Z"});
        assert_eq!(since(time(&micro, "/t"), now), "29s");
    }

    #[test]
    fn labels_and_selectors() {
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(
            format_labels(Some(&json!({"tier": "web", "app": "nginx"}))),
            "app=nginx,tier=web"
        );
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        let selector = json!({
            "matchLabels": {"app": "nginx"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(
            format_label_selector(Some(&selector)),
            "app=nginx,!canary,env in (dev,prod),gpu,zone notin (b)"
        );
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        assert_eq!(selector_string(Some(&bad)), Err(()));
    }

    #[test]
    fn quantities_print_canonically() {
        let cases = [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1025", "1025"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("0", "0"),
            ("0Gi", "0"),
            ("12e6", "12e6"),
            ("1.5e3", "1500"),
            ("5G", "5G"),
            ("-2k", "-2k"),
            ("0.0000000001", "1n"),
            ("banana", "banana"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_quantity(input), want, "{input}");
        }
    }

    #[test]
    fn access_modes_are_abbreviated_in_fixed_order() {
        let modes = json!(["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"]);
        assert_eq!(access_modes(list(&modes, "")), "RWO,RWX");
        assert_eq!(access_modes(&[]), "");
    }

    #[test]
    fn lists_are_capped() {
        let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(list_with_more(&items, 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&items[..2], 2, 3), "a,b");
        assert_eq!(list_with_more(&[], 0, 3), "<unset>");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
