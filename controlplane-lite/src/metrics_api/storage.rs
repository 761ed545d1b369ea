//! The last two readings of every node and container, and the usage they give: CPU as the
//! rate between them (the window being the time between their timestamps), memory as the
//! latest working set. The rules are metrics-server's, so `kubectl top` and the HPA see the
//! same numbers they would there: a container that restarted between two readings has no
//! rate until it has two readings of its new run, and a pod is shown only when every one of
//! its containers has a rate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

use super::parse::{PodKey, Point, Scrape};

/// A container that started less than this before its first reading is not given a rate
/// from its start (a rate over so short a window is too noisy).
const FRESH_CONTAINER_MIN_WINDOW_MS: i64 = 10_000;

/// The usage of a node or a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU in billionths of a core.
    pub cpu_nano_cores: u64,
    pub memory_bytes: u64,
}

/// When a usage was measured: the later reading's time and the span the rate covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub timestamp_ms: i64,
    pub window_ms: i64,
}

/// A node's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeUsage {
    pub window: Window,
    pub usage: Usage,
}

/// A pod's usage, container by container (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub window: Window,
    pub containers: Vec<(String, Usage)>,
}

#[derive(Debug, Default)]
struct ContainerSeries {
    last: Point,
    prev: Option<Point>,
}

#[derive(Debug, Default)]
struct NodeSeries {
    last: Option<Point>,
    prev: Option<Point>,
    pods: HashMap<PodKey, BTreeMap<String, ContainerSeries>>,
}

/// What the scraper has seen, by node.
#[derive(Debug)]
pub struct MetricsStore {
    resolution: Duration,
    nodes: RwLock<HashMap<String, NodeSeries>>,
}

/// The reading to keep as the previous one when `new` arrives: the stored last one if
/// `new` is newer, else the stored previous one if still older than `new`.
fn previous(new: &Point, last: Option<&Point>, prev: Option<&Point>) -> Option<Point> {
    let last = last?;
    if new.timestamp_ms > last.timestamp_ms {
        Some(*last)
    } else {
        prev.filter(|p| p.timestamp_ms < new.timestamp_ms).copied()
    }
}

/// The usage between two readings of the same run.
fn usage(last: &Point, prev: &Point) -> Option<(Usage, Window)> {
    if last.start_ms < prev.start_ms || last.cpu_ns < prev.cpu_ns {
        return None;
    }
    let window_ms = last.timestamp_ms - prev.timestamp_ms;
    if window_ms <= 0 {
        return None;
    }
    let rate = (last.cpu_ns - prev.cpu_ns) as f64 * 1000.0 / window_ms as f64;
    Some((
        Usage {
            cpu_nano_cores: rate as u64,
            memory_bytes: last.memory_bytes,
        },
        Window {
            timestamp_ms: last.timestamp_ms,
            window_ms,
        },
    ))
}

impl MetricsStore {
    /// A store for scrapes every `resolution`.
    pub fn new(resolution: Duration) -> MetricsStore {
        MetricsStore {
            resolution,
            nodes: RwLock::new(HashMap::new()),
        }
    }

    pub fn resolution(&self) -> Duration {
        self.resolution
    }

    /// Takes a node's new scrape; what the node no longer reports is forgotten.
    pub fn store(&self, node: &str, scrape: Scrape) {
        let resolution_ms = i64::try_from(self.resolution.as_millis()).unwrap_or(i64::MAX);
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let old = nodes.remove(node).unwrap_or_default();
        let mut series = NodeSeries {
            last: scrape.node,
            prev: scrape
                .node
                .and_then(|n| previous(&n, old.last.as_ref(), old.prev.as_ref())),
            pods: HashMap::new(),
        };
        if scrape.node.is_none() {
            // Keep what there was: the node's figures may come back at the next scrape.
            series.last = old.last;
            series.prev = old.prev;
        }
        for (key, containers) in scrape.pods {
            let old_pod = old.pods.get(&key);
            let mut pod = BTreeMap::new();
            for (name, new) in containers {
                let old_c = old_pod.and_then(|p| p.get(&name));
                let since_start = new.timestamp_ms - new.start_ms;
                let prev = if new.start_ms > 0
                    && since_start > 0
                    && since_start < resolution_ms
                    && since_start >= FRESH_CONTAINER_MIN_WINDOW_MS
                {
                    // A new container: its start is a reading of zero CPU.
                    Some(Point {
                        timestamp_ms: new.start_ms,
                        cpu_ns: 0,
                        ..new
                    })
                } else {
                    // Only a reading of the same run counts.
                    old_c
                        .filter(|c| new.start_ms < c.last.timestamp_ms)
                        .and_then(|c| previous(&new, Some(&c.last), c.prev.as_ref()))
                };
                pod.insert(name, ContainerSeries { last: new, prev });
            }
            series.pods.insert(key, pod);
        }
        nodes.insert(node.to_string(), series);
    }

    /// Drops a node's readings (its scrape failed: old figures would mislead).
    pub fn forget(&self, node: &str) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        nodes.remove(node);
    }

    /// Keeps only the nodes named.
    pub fn retain(&self, names: &HashSet<String>) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        nodes.retain(|n, _| names.contains(n));
    }

    /// The node's usage, once it has two readings.
    pub fn node(&self, name: &str) -> Option<NodeUsage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let s = nodes.get(name)?;
        let (usage, window) = usage(s.last.as_ref()?, s.prev.as_ref()?)?;
        Some(NodeUsage { window, usage })
    }

    /// The pod's usage, once every container of it has two readings of its current run.
    /// The window is the earliest container's.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        // A pod recreated on another node may linger on the old one until its next
        // scrape: the newest readings win.
        let containers = nodes
            .values()
            .filter_map(|n| n.pods.get(&key))
            .max_by_key(|p| p.values().map(|c| c.last.timestamp_ms).max())?;
        let mut out = Vec::new();
        let mut earliest: Option<Window> = None;
        for (cname, c) in containers {
            let prev = c.prev.as_ref()?;
            let Some((usage, window)) = usage(&c.last, prev) else {
                tracing::debug!(namespace, pod = name, container = %cname, "no usage from these readings");
                continue;
            };
            out.push((cname.clone(), usage));
            if earliest.is_none_or(|e| window.timestamp_ms < e.timestamp_ms) {
                earliest = Some(window);
            }
        }
        Some(PodUsage {
            window: earliest?,
            containers: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_733_400_000_000;

    fn point(ms: i64, cpu_ms: u64, mem: u64, start_ms: i64) -> Point {
        Point {
            timestamp_ms: T + ms,
            cpu_ns: cpu_ms * 1_000_000,
            memory_bytes: mem,
            start_ms: if start_ms == 0 { 0 } else { T + start_ms },
        }
    }

    fn scrape(node: Option<Point>, pods: &[(&str, &str, &str, Point)]) -> Scrape {
        let mut s = Scrape {
            node,
            pods: BTreeMap::new(),
        };
        for (ns, pod, c, p) in pods {
            s.pods
                .entry((ns.to_string(), pod.to_string()))
                .or_default()
                .insert(c.to_string(), *p);
        }
        s
    }

    #[test]
    fn node_cpu_is_the_rate_between_the_last_two_readings() {
        let m = MetricsStore::new(Duration::from_secs(15));
        m.store("n1", scrape(Some(point(0, 10_000, 100, 0)), &[]));
        assert_eq!(m.node("n1"), None);
        // 1.5 core-seconds over 1.5 s: one core.
        m.store("n1", scrape(Some(point(1_500, 11_500, 200, 0)), &[]));
        let u = m.node("n1").unwrap();
        assert_eq!(
            u.usage,
            Usage {
                cpu_nano_cores: 1_000_000_000,
                memory_bytes: 200
            }
        );
        assert_eq!(
            u.window,
            Window {
                timestamp_ms: T + 1_500,
                window_ms: 1_500
            }
        );
        // The same reading again changes nothing.
        m.store("n1", scrape(Some(point(1_500, 11_500, 200, 0)), &[]));
        assert_eq!(m.node("n1").unwrap().usage.cpu_nano_cores, 1_000_000_000);
        assert_eq!(m.node("n2"), None);
    }

    #[test]
    fn pods_need_every_container_twice() {
        let m = MetricsStore::new(Duration::from_secs(1));
        m.store(
            "n1",
            scrape(
                None,
                &[("default", "web", "app", point(0, 100, 10, -60_000))],
            ),
        );
        assert_eq!(m.pod("default", "web"), None);
        m.store(
            "n1",
            scrape(
                None,
                &[
                    ("default", "web", "app", point(1_000, 600, 20, -60_000)),
                    ("default", "web", "side", point(1_000, 5, 30, -60_000)),
                ],
            ),
        );
        // "side" is new: no rate for it yet, so no pod.
        assert_eq!(m.pod("default", "web"), None);
        m.store(
            "n1",
            scrape(
                None,
                &[
                    ("default", "web", "app", point(2_000, 1_100, 21, -60_000)),
                    ("default", "web", "side", point(2_004, 5, 31, -60_000)),
                ],
            ),
        );
        let p = m.pod("default", "web").unwrap();
        assert_eq!(
            p.containers,
            [
                (
                    "app".to_string(),
                    Usage {
                        cpu_nano_cores: 500_000_000,
                        memory_bytes: 21
                    }
                ),
                (
                    "side".to_string(),
                    Usage {
                        cpu_nano_cores: 0,
                        memory_bytes: 31
                    }
                ),
            ]
        );
        assert_eq!(
            p.window,
            Window {
                timestamp_ms: T + 2_000,
                window_ms: 1_000
            }
        );
    }

    #[test]
    fn a_restarted_container_starts_over() {
        let m = MetricsStore::new(Duration::from_secs(1));
        m.store(
            "n1",
            scrape(None, &[("d", "p", "c", point(0, 900, 1, -5_000))]),
        );
        m.store(
            "n1",
            scrape(None, &[("d", "p", "c", point(1_000, 950, 1, -5_000))]),
        );
        assert!(m.pod("d", "p").is_some());
        // Restarted at +1.5 s: its counter began again.
        m.store(
            "n1",
            scrape(None, &[("d", "p", "c", point(2_000, 20, 1, 1_500))]),
        );
        assert_eq!(m.pod("d", "p"), None);
        m.store(
            "n1",
            scrape(None, &[("d", "p", "c", point(3_000, 220, 1, 1_500))]),
        );
        assert_eq!(
            m.pod("d", "p").unwrap().containers[0].1.cpu_nano_cores,
            200_000_000
        );
    }

    #[test]
    fn a_fresh_container_is_measured_from_its_start_within_one_resolution() {
        let m = MetricsStore::new(Duration::from_secs(15));
        // Started 12 s before its first reading, with 3 s of CPU: a quarter core.
        m.store(
            "n1",
            scrape(None, &[("d", "p", "c", point(0, 3_000, 1, -12_000))]),
        );
        let p = m.pod("d", "p").unwrap();
        assert_eq!(p.containers[0].1.cpu_nano_cores, 250_000_000);
        assert_eq!(p.window.window_ms, 12_000);
        // Started 2 s before: too short a window to trust.
        m.store(
            "n2",
            scrape(None, &[("d", "q", "c", point(0, 1_000, 1, -2_000))]),
        );
        assert_eq!(m.pod("d", "q"), None);
    }

    #[test]
    fn failed_and_removed_nodes_are_forgotten() {
        let m = MetricsStore::new(Duration::from_secs(1));
        for ms in [0, 1_000] {
            m.store(
                "a",
                scrape(
                    Some(point(ms, ms as u64, 1, 0)),
                    &[("d", "p", "c", point(ms, ms as u64 + 1, 1, -9_000))],
                ),
            );
            m.store("b", scrape(Some(point(ms, ms as u64, 1, 0)), &[]));
        }
        assert!(m.node("a").is_some() && m.node("b").is_some() && m.pod("d", "p").is_some());
        m.forget("a");
        assert!(m.node("a").is_none() && m.pod("d", "p").is_none());
        m.retain(&HashSet::from(["a".to_string()]));
        assert!(m.node("b").is_none());
    }

    #[test]
    fn a_pod_moved_to_another_node_reads_from_the_newest() {
        let m = MetricsStore::new(Duration::from_secs(1));
        for ms in [0, 1_000] {
            m.store(
                "old",
                scrape(
                    None,
                    &[("d", "p", "c", point(ms, 2 * ms as u64, 1, -9_000))],
                ),
            );
        }
        for ms in [5_000, 6_000] {
            m.store(
                "new",
                scrape(None, &[("d", "p", "c", point(ms, ms as u64, 7, 4_000))]),
            );
        }
        let p = m.pod("d", "p").unwrap();
        assert_eq!(
            p.containers[0].1,
            Usage {
                cpu_nano_cores: 1_000_000_000,
                memory_bytes: 7
            }
        );
    }
}
