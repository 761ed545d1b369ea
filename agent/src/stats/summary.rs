//! `/stats/summary`: kubelet's Summary API document (`stats/v1alpha1`), with the CPU and
//! memory figures the agent has.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::usage::{Snapshot, Usage};

/// A time as Kubernetes writes `metav1.Time`: RFC 3339, whole seconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => jiff::Timestamp::from_second(ts.as_second())
            .unwrap_or(ts)
            .to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

fn cpu(u: &Usage) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(u.time)));
    if let Some(rate) = u.usage_nano_cores {
        m.insert("usageNanoCores".into(), json!(rate));
    }
    m.insert("usageCoreNanoSeconds".into(), json!(u.cpu_usage_ns));
    Value::Object(m)
}

fn memory(u: &Usage, available: Option<u64>) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339(u.time)));
    if let Some(a) = available {
        m.insert("availableBytes".into(), json!(a));
    }
    m.insert("usageBytes".into(), json!(u.memory_usage_bytes));
    m.insert("workingSetBytes".into(), json!(u.memory_working_set_bytes));
    Value::Object(m)
}

fn put_time(m: &mut Map<String, Value>, key: &str, t: Option<SystemTime>) {
    if let Some(t) = t {
        m.insert(key.into(), json!(rfc3339(t)));
    }
}

/// The Summary document.
pub fn render(s: &Snapshot) -> Value {
    let mut node = Map::new();
    node.insert("nodeName".into(), json!(s.node_name));
    put_time(&mut node, "startTime", s.node.start_time);
    node.insert("cpu".into(), cpu(&s.node.usage));
    node.insert(
        "memory".into(),
        memory(&s.node.usage, s.node.available_bytes),
    );
    let pods: Vec<Value> = s
        .pods
        .iter()
        .map(|p| {
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|c| {
                    let mut m = Map::new();
                    m.insert("name".into(), json!(c.name));
                    put_time(&mut m, "startTime", c.start_time);
                    m.insert("cpu".into(), cpu(&c.usage));
                    m.insert("memory".into(), memory(&c.usage, None));
                    Value::Object(m)
                })
                .collect();
            let mut m = Map::new();
            m.insert(
                "podRef".into(),
                json!({"name": p.name, "namespace": p.namespace, "uid": p.uid}),
            );
            put_time(&mut m, "startTime", p.start_time);
            m.insert("containers".into(), Value::Array(containers));
            if let Some(u) = &p.usage {
                m.insert("cpu".into(), cpu(u));
                m.insert("memory".into(), memory(u, None));
            }
            Value::Object(m)
        })
        .collect();
    json!({"node": node, "pods": pods})
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::usage::{ContainerUsage, NodeUsage, PodUsage};

    #[test]
    fn summary_document() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_733_400_000_750);
        let u = Usage {
            time: t,
            cpu_usage_ns: 9_000,
            usage_nano_cores: Some(480_000_000),
            memory_usage_bytes: 8_192,
            memory_working_set_bytes: 4_096,
        };
        let s = Snapshot {
            node_name: "n1".into(),
            time: t,
            node: NodeUsage {
                start_time: Some(SystemTime::UNIX_EPOCH),
                usage: Usage {
                    usage_nano_cores: None,
                    ..u
                },
                available_bytes: Some(1 << 30),
            },
            pods: vec![PodUsage {
                namespace: "default".into(),
                name: "busy".into(),
                uid: "u1".into(),
                start_time: None,
                usage: Some(u),
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    start_time: Some(t),
                    usage: u,
                }],
            }],
        };
        let v = render(&s);
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["startTime"], "1970-01-01T00:00:00Z");
        assert_eq!(v["node"]["cpu"]["time"], "2024-12-05T12:00:00Z");
        assert!(v["node"]["cpu"].get("usageNanoCores").is_none());
        assert_eq!(v["node"]["memory"]["availableBytes"], 1u64 << 30);
        let pod = &v["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "busy", "namespace": "default", "uid": "u1"})
        );
        assert!(pod.get("startTime").is_none());
        assert_eq!(pod["cpu"]["usageNanoCores"], 480_000_000);
        let c = &pod["containers"][0];
        assert_eq!(c["name"], "app");
        assert_eq!(c["cpu"]["usageCoreNanoSeconds"], 9_000);
        assert_eq!(c["memory"]["workingSetBytes"], 4_096);
        assert_eq!(c["memory"]["usageBytes"], 8_192);
    }
}
