//! `/metrics/resource`: the usage figures metrics-server scrapes, in the Prometheus text
//! format, named and labelled as kubelet names them, each sample stamped with the time
//! its cgroup was read (in milliseconds) so rates use the true window.

use std::fmt::Write;
use std::time::SystemTime;

use super::usage::Snapshot;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Escapes a label value as the text format requires.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its header and samples (`labels`, value, time).
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: &'a str,
    samples: Vec<(String, f64, SystemTime)>,
}

impl Family<'_> {
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value, time) in &self.samples {
            let _ = writeln!(out, "{}{labels} {value} {}", self.name, millis(*time));
        }
    }
}

fn container_labels(container: &str, namespace: &str, pod: &str) -> String {
    format!(
        "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
        escape(container),
        escape(namespace),
        escape(pod)
    )
}

fn pod_labels(namespace: &str, pod: &str) -> String {
    format!(
        "{{namespace=\"{}\",pod=\"{}\"}}",
        escape(namespace),
        escape(pod)
    )
}

/// The endpoint's body: the snapshot's figures, or only the error flag when collecting
/// failed (`snapshot` is `None`).
pub fn render(snapshot: Option<&Snapshot>, now: SystemTime) -> String {
    let family = |name, help, kind| Family {
        name,
        help,
        kind,
        samples: Vec::new(),
    };
    let mut container_cpu = family(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative CPU time consumed by the container, in core-seconds",
        "counter",
    );
    let mut container_memory = family(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container, in bytes",
        "gauge",
    );
    let mut container_start = family(
        "container_start_time_seconds",
        "[STABLE] When the container started, in seconds since the Unix epoch",
        "gauge",
    );
    let mut node_cpu = family(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative CPU time consumed by the node, in core-seconds",
        "counter",
    );
    let mut node_memory = family(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node, in bytes",
        "gauge",
    );
    let mut pod_cpu = family(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative CPU time consumed by the pod, in core-seconds",
        "counter",
    );
    let mut pod_memory = family(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod, in bytes",
        "gauge",
    );
    let error = if snapshot.is_some() { 0.0 } else { 1.0 };
    let mut resource_scrape_error = family(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    resource_scrape_error
        .samples
        .push((String::new(), error, now));
    let mut scrape_error = family(
        "scrape_error",
        "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    scrape_error.samples.push((String::new(), error, now));

    if let Some(s) = snapshot {
        let u = &s.node.usage;
        node_cpu
            .samples
            .push((String::new(), u.cpu_usage_ns as f64 / 1e9, u.time));
        node_memory
            .samples
            .push((String::new(), u.memory_working_set_bytes as f64, u.time));
        for p in &s.pods {
            for c in &p.containers {
                let labels = container_labels(&c.name, &p.namespace, &p.name);
                let u = &c.usage;
                container_cpu
                    .samples
                    .push((labels.clone(), u.cpu_usage_ns as f64 / 1e9, u.time));
                container_memory.samples.push((
                    labels.clone(),
                    u.memory_working_set_bytes as f64,
                    u.time,
                ));
                if let Some(start) = c.start_time {
                    container_start
                        .samples
                        .push((labels, seconds(start), u.time));
                }
            }
            if let Some(u) = &p.usage {
                let labels = pod_labels(&p.namespace, &p.name);
                pod_cpu
                    .samples
                    .push((labels.clone(), u.cpu_usage_ns as f64 / 1e9, u.time));
                pod_memory
                    .samples
                    .push((labels, u.memory_working_set_bytes as f64, u.time));
            }
        }
    }
    let mut out = String::new();
    // Families in name order, as kubelet's registry writes them.
    for f in [
        &container_cpu,
        &container_memory,
        &container_start,
        &node_cpu,
        &node_memory,
        &pod_cpu,
        &pod_memory,
        &resource_scrape_error,
        &scrape_error,
    ] {
        f.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::usage::{ContainerUsage, NodeUsage, PodUsage, Usage};

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn usage(ms: u64, cpu: u64, ws: u64) -> Usage {
        Usage {
            time: at(ms),
            cpu_usage_ns: cpu,
            usage_nano_cores: None,
            memory_usage_bytes: ws * 2,
            memory_working_set_bytes: ws,
        }
    }

    #[test]
    fn renders_kubelets_families() {
        let s = Snapshot {
            node_name: "n1".into(),
            time: at(1_733_400_000_000),
            node: NodeUsage {
                start_time: None,
                usage: usage(1_733_400_000_001, 123_456_000_000_000, 2_000_000_000),
                available_bytes: None,
            },
            pods: vec![PodUsage {
                namespace: "default".into(),
                name: "busy".into(),
                uid: "u1".into(),
                start_time: None,
                usage: Some(usage(1_733_400_000_003, 1_500_000_000, 4_096_000)),
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    start_time: Some(at(1_733_399_990_500)),
                    usage: usage(1_733_400_000_002, 1_250_000_000, 409_600),
                }],
            }],
        };
        let text = render(Some(&s), at(1_733_400_000_004));
        let expected = [
            "# TYPE container_cpu_usage_seconds_total counter",
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"busy\"} 1.25 1733400000002",
            "container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"busy\"} 409600 1733400000002",
            "container_start_time_seconds{container=\"app\",namespace=\"default\",pod=\"busy\"} 1733399990.5 1733400000002",
            "node_cpu_usage_seconds_total 123456 1733400000001",
            "node_memory_working_set_bytes 2000000000 1733400000001",
            "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"busy\"} 1.5 1733400000003",
            "pod_memory_working_set_bytes{namespace=\"default\",pod=\"busy\"} 4096000 1733400000003",
            "resource_scrape_error 0 1733400000004",
            "scrape_error 0 1733400000004",
        ];
        for line in expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = families.clone();
        sorted.sort();
        assert_eq!(families, sorted);
    }

    #[test]
    fn a_failed_collection_is_only_the_error_flag() {
        let text = render(None, at(5_000));
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            ["resource_scrape_error 1 5000", "scrape_error 1 5000"]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
