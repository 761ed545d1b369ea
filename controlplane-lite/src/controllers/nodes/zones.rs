//! Disruption by zone and the eviction rate, as kube-controller-manager limits them: NoExecute
//! taints (which evict pods) go on at `--node-eviction-rate` nodes per second per zone; a
//! zone where most nodes are down slows to `--secondary-node-eviction-rate` (or stops, when
//! small); when every node of every zone is down the fault is more likely the control
//! plane's own network, so nothing is evicted at all.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

/// Zones above this many nodes keep evicting (slowly) when partially disrupted
/// (`--large-cluster-size-threshold`).
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// The share of not-ready nodes from which a zone counts as partially disrupted
/// (`--unhealthy-zone-threshold`).
pub const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Nodes with this label are left out of disruption checks.
pub const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// The node's zone: its region and zone labels.
pub fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.and_then(|l| l.get(*k)))
            .cloned()
            .unwrap_or_default()
    };
    let region = get(&[
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    ]);
    let zone = get(&[
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    ]);
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// The state of a zone with `ready` and `not_ready` nodes.
pub fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && not_ready as f64 / (not_ready + ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Zone → (ready, not ready) of the nodes that take part in disruption checks; `ready`
/// tells whether a node counts as ready.
pub fn census<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    ready: impl Fn(&Node) -> bool,
) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for n in nodes {
        if n.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION))
        {
            continue;
        }
        let e = out.entry(zone_of(n)).or_default();
        if ready(n) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    out
}

/// A token bucket of one token (upstream's burst), refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: 1.0,
            at: now,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token, or says how long until one is there (`None`: never, at rate 0).
    pub fn take(&mut self, now: Instant) -> Result<(), Option<Duration>> {
        if self.rate <= 0.0 {
            return Err(None);
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(1.0);
        self.at = now;
        // Float sums of refills land a hair under 1.0.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(Some(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rate,
            )))
        }
    }
}

/// The eviction rate of a zone in `state` with `size` nodes.
pub fn rate_for(state: ZoneState, size: usize, normal: f64, secondary: f64) -> f64 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => normal,
        ZoneState::PartialDisruption if size > LARGE_CLUSTER_THRESHOLD => secondary,
        ZoneState::PartialDisruption => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(zone_state(0, 1), ZoneState::FullDisruption);
        assert_eq!(zone_state(1, 1), ZoneState::Normal);
        assert_eq!(zone_state(2, 2), ZoneState::Normal);
        assert_eq!(zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(zone_state(10, 3), ZoneState::Normal);
        assert_eq!(zone_state(0, 0), ZoneState::Normal);
        assert_eq!(rate_for(ZoneState::PartialDisruption, 10, 0.1, 0.01), 0.0);
        assert_eq!(rate_for(ZoneState::PartialDisruption, 51, 0.1, 0.01), 0.01);
        assert_eq!(rate_for(ZoneState::FullDisruption, 3, 0.1, 0.01), 0.1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_lets_one_through_per_period() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0.1, t0);
        assert_eq!(b.take(t0), Ok(()));
        let wait = |r: Result<(), Option<Duration>>| r.unwrap_err().unwrap().as_secs_f64();
        assert!((wait(b.take(t0)) - 10.0).abs() < 1e-6);
        let t1 = t0 + Duration::from_secs(4);
        assert!((wait(b.take(t1)) - 6.0).abs() < 1e-6);
        assert_eq!(b.take(t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(Bucket::new(0.0, t0).take(t0), Err(None));
    }
}
