//! The text exposition format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::{Family, Type, lock};

/// A sample value as Prometheus writes it.
pub(super) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `{a="x",b="y"}` plus an optional extra pair (a histogram's `le`); empty without labels.
fn labels(names: &[String], key: &str, extra: Option<(&str, &str)>) -> String {
    let mut out = String::new();
    let values: Vec<&str> = if names.is_empty() {
        Vec::new()
    } else {
        key.split('\u{1}').collect()
    };
    let mut first = true;
    for (n, v) in names.iter().zip(values.iter()) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape_label(v, &mut out);
        out.push('"');
    }
    if let Some((n, v)) = extra {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{n}=\"{v}\"");
    }
    if !first {
        out.push('}');
    }
    out
}

/// Writes one metric family: `# HELP`, `# TYPE` and its series.
pub(super) fn family(out: &mut String, f: &Family) {
    let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
    let cells = lock(&f.cells);
    for (key, cell) in cells.iter() {
        match f.kind {
            Type::Counter | Type::Gauge => {
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    f.name,
                    labels(&f.labels, key, None),
                    number(cell.get())
                );
            }
            Type::Histogram => {
                let mut cumulative = 0u64;
                for (i, bound) in f.bounds.iter().enumerate() {
                    cumulative += cell.buckets[i].load(Ordering::Relaxed);
                    let le = number(*bound);
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {cumulative}",
                        f.name,
                        labels(&f.labels, key, Some(("le", &le)))
                    );
                }
                let count = cell.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{}_bucket{} {count}",
                    f.name,
                    labels(&f.labels, key, Some(("le", "+Inf")))
                );
                let plain = labels(&f.labels, key, None);
                let _ = writeln!(out, "{}_sum{plain} {}", f.name, number(cell.get()));
                let _ = writeln!(out, "{}_count{plain} {count}", f.name);
            }
        }
    }
}
