//! Reading an agent's (or a kubelet's) `/metrics/resource` answer: the Prometheus text
//! format, of which only the cumulative CPU, working-set and start-time series matter.

use std::collections::BTreeMap;

/// One reading of a node or a container: cumulative CPU time and the working set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// When it was read, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// CPU time consumed since the start, in nanoseconds.
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    /// When the container started, in milliseconds since the epoch (0: not said).
    pub start_ms: i64,
}

/// A pod by namespace and name.
pub type PodKey = (String, String);

/// Everything one scrape of one node gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrape {
    /// The node's own reading, when complete.
    pub node: Option<Point>,
    /// Per pod, per container; only pods whose every container reading is complete.
    pub pods: BTreeMap<PodKey, BTreeMap<String, Point>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// A label's name and (unescaped) value.
type Label<'a> = (&'a str, String);

/// One sample line: the metric name, its labels, the value and the timestamp if given.
type Sample<'a> = (&'a str, Vec<Label<'a>>, f64, Option<i64>);

/// The labels up to the closing brace, and what follows it.
fn parse_labels(s: &str) -> Result<(Vec<Label<'_>>, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without a value")?;
        let name = rest[..eq].trim();
        if name.is_empty() {
            return Err("an empty label name".into());
        }
        let mut chars = rest[eq + 1..].trim_start().char_indices();
        let value_src = rest[eq + 1..].trim_start();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {name}: the value is not quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or_else(|| format!("label {name}: unterminated value"))?;
        labels.push((name, value));
        rest = value_src[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_line(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a metric name without a value")?;
    let name = &line[..name_end];
    let (labels, rest) = match line[name_end..].trim_start().strip_prefix('{') {
        Some(inner) => parse_labels(inner)?,
        None => (Vec::new(), &line[name_end..]),
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is not a number"))?;
    let timestamp = match fields.next() {
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not an integer"))?,
        ),
        None => None,
    };
    Ok((name, labels, value, timestamp))
}

fn label<'a>(labels: &'a [(&str, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// The reading of the container the labels name, made empty if new.
fn container_point<'a>(
    pods: &'a mut BTreeMap<PodKey, BTreeMap<String, Point>>,
    labels: &[(&str, String)],
) -> &'a mut Point {
    let key = (
        label(labels, "namespace").to_string(),
        label(labels, "pod").to_string(),
    );
    let c = label(labels, "container").to_string();
    pods.entry(key).or_default().entry(c).or_default()
}

/// Seconds (as the text format writes them) to nanoseconds, rounded to undo the decimal
/// notation's binary error; nonsense (negative, NaN) becomes 0.
fn nanos(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

/// Parses a whole answer. Samples without a timestamp get `default_ms`. A node reading
/// missing its time, CPU or memory is dropped, and so is a pod with any incomplete
/// container, as metrics-server does: a rate from half a reading would be wrong.
pub fn parse(text: &str, default_ms: i64) -> Result<Scrape, ParseError> {
    let mut node = Point::default();
    let mut pods: BTreeMap<PodKey, BTreeMap<String, Point>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, value, ts) = parse_line(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
        })?;
        let ts = ts.unwrap_or(default_ms);
        match name {
            "node_cpu_usage_seconds_total" => {
                node.cpu_ns = nanos(value);
                node.timestamp_ms = ts;
            }
            "node_memory_working_set_bytes" => {
                node.memory_bytes = value as u64;
                node.timestamp_ms = ts;
            }
            "container_cpu_usage_seconds_total" => {
                let p = container_point(&mut pods, &labels);
                p.cpu_ns = nanos(value);
                p.timestamp_ms = ts;
            }
            "container_memory_working_set_bytes" => {
                let p = container_point(&mut pods, &labels);
                p.memory_bytes = value as u64;
                p.timestamp_ms = ts;
            }
            "container_start_time_seconds" => {
                container_point(&mut pods, &labels).start_ms = (value * 1e3).round() as i64;
            }
            _ => {}
        }
    }
    let complete = |p: &Point| p.timestamp_ms > 0 && p.cpu_ns > 0 && p.memory_bytes > 0;
    pods.retain(|_, containers| !containers.is_empty() && containers.values().all(complete));
    Ok(Scrape {
        node: complete(&node).then_some(node),
        pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="busy"} 12.5 1733400000002
container_cpu_usage_seconds_total{container="side",namespace="default",pod="busy"} 0.25 1733400000003
container_cpu_usage_seconds_total{container="app",namespace="kube-system",pod="half"} 3 1733400000004
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="busy"} 1.2288e+06 1733400000002
container_memory_working_set_bytes{container="side",namespace="default",pod="busy"} 4096 1733400000003
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="busy"} 1.7333999905e+09 1733400000002
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 123456.789 1733400000001
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2e+09 1733400000001
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="busy"} 12.75 1733400000005
# TYPE scrape_error gauge
scrape_error 0
"#;

    #[test]
    fn reads_kubelets_resource_metrics() {
        let s = parse(KUBELET, 7).unwrap();
        assert_eq!(
            s.node,
            Some(Point {
                timestamp_ms: 1_733_400_000_001,
                cpu_ns: 123_456_789_000_000,
                memory_bytes: 2_000_000_000,
                start_ms: 0,
            })
        );
        // "half" has no memory reading: left out whole.
        assert_eq!(s.pods.len(), 1);
        let busy = &s.pods[&("default".to_string(), "busy".to_string())];
        assert_eq!(
            busy["app"],
            Point {
                timestamp_ms: 1_733_400_000_002,
                cpu_ns: 12_500_000_000,
                memory_bytes: 1_228_800,
                start_ms: 1_733_399_990_500,
            }
        );
        assert_eq!(busy["side"].cpu_ns, 250_000_000);
        assert_eq!(busy["side"].start_ms, 0);
    }

    #[test]
    fn missing_timestamps_take_the_scrape_time() {
        let s = parse(
            "node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 5\n",
            42,
        )
        .unwrap();
        assert_eq!(s.node.unwrap().timestamp_ms, 42);
        assert_eq!(
            parse("node_cpu_usage_seconds_total 1 9\n", 1).unwrap().node,
            None
        );
    }

    #[test]
    fn labels_with_escapes_spaces_and_trailing_commas() {
        let (name, labels, value, ts) = parse_line(r#"m{ b="x\"y\\z" , a="1\n2",} +Inf"#).unwrap();
        assert_eq!(name, "m");
        assert_eq!(
            labels,
            [("b", "x\"y\\z".to_string()), ("a", "1\n2".to_string())]
        );
        assert!(value.is_infinite());
        assert_eq!(ts, None);
        assert_eq!(parse_line("m 1.5e3 12").unwrap().2, 1500.0);
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        let e = parse("# ok\nnode_cpu_usage_seconds_total abc\n", 0).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("m{a=1} 2", 0).is_err());
        assert!(parse("m{a=\"1} 2", 0).is_err());
        assert!(parse("m 2 x", 0).is_err());
        assert!(parse("m", 0).is_err());
    }
}
