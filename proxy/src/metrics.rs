//! The proxy's Prometheus families, under kube-proxy's names where kube-proxy has one, and
//! the health that `/healthz` reports.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skiff_api::prom::{self, CounterVec, GaugeVec, HistogramVec};

use crate::dataplane::{Mode, SyncStats};
use crate::sync::SyncObserver;

/// kube-proxy's buckets for sync durations: 1 ms to ~16 s.
fn sync_buckets() -> Vec<f64> {
    prom::exponential_buckets(0.001, 2.0, 15)
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What `/healthz` reads.
#[derive(Debug, Default)]
struct HealthState {
    last_synced: Option<SystemTime>,
    /// When the oldest change not yet programmed was noticed.
    pending_since: Option<Instant>,
}

/// The answer to `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub healthy: bool,
    /// The body: kube-proxy's JSON fields.
    pub body: String,
}

/// Whether the proxy keeps the kernel current: healthy once the first sync succeeded, and
/// for as long as no change has waited longer than `timeout` to be programmed (kube-proxy's
/// rule, so a node whose rules are stuck is taken out of load balancers).
#[derive(Debug, Clone)]
pub struct Health {
    state: Arc<Mutex<HealthState>>,
    timeout: Duration,
}

impl Health {
    pub fn new(timeout: Duration) -> Self {
        Health {
            state: Arc::default(),
            timeout,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HealthState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn report(&self) -> HealthReport {
        let now = SystemTime::now();
        let (last, pending) = self.with(|s| (s.last_synced, s.pending_since));
        let stuck = pending.is_some_and(|p| p.elapsed() > self.timeout);
        let healthy = last.is_some() && !stuck;
        let last_updated = last.map_or_else(|| "never".to_string(), rfc3339);
        let body = serde_json::json!({
            "lastUpdated": last_updated,
            "currentTime": rfc3339(now),
            "nodeEligible": true,
        })
        .to_string();
        HealthReport { healthy, body }
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// Records every sync in the registry and in [`Health`].
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    mode: Mode,
    health: Health,
    duration: HistogramVec,
    full: HistogramVec,
    partial: HistogramVec,
    last_sync: GaugeVec,
    last_queued: GaugeVec,
    rules: GaugeVec,
    failures: Option<CounterVec>,
    healthz: CounterVec,
}

impl ProxyMetrics {
    /// Registers the families in the process-wide registry.
    pub fn new(mode: Mode, health: Health) -> Self {
        let r = prom::global();
        let buckets = sync_buckets();
        // kube-proxy counts failures under a mode-specific name; IPVS mode has none.
        let failures = match mode {
            Mode::Nftables => Some(r.counter(
                "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                "Cumulative proxy nftables sync failures",
                &[],
            )),
            Mode::Iptables => Some(r.counter(
                "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
                "Cumulative proxy iptables restore failures",
                &[],
            )),
            Mode::Ipvs => None,
        };
        ProxyMetrics {
            mode,
            health,
            duration: r.histogram(
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
                &[],
                &buckets,
            ),
            full: r.histogram(
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
                &[],
                &buckets,
            ),
            partial: r.histogram(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
                &[],
                &buckets,
            ),
            last_sync: r.gauge(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "The last time proxy rules were successfully synced",
                &[],
            ),
            last_queued: r.gauge(
                "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                "The last time a sync of proxy rules was queued",
                &[],
            ),
            rules: r.gauge(
                "skiff_proxy_rules_programmed",
                "Rules (IPVS: virtual and real servers) the data plane holds after the last sync",
                &["mode"],
            ),
            failures,
            healthz: r.counter(
                "kubeproxy_healthz_total",
                "Cumulative proxy healthz HTTP status",
                &["code"],
            ),
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Counts one `/healthz` answer.
    pub fn healthz_answered(&self, code: u16) {
        self.healthz.with(&[&code.to_string()]).inc();
    }
}

impl SyncObserver for ProxyMetrics {
    fn queued(&mut self) {
        self.last_queued
            .with(&[])
            .set(unix_seconds(SystemTime::now()));
        self.health.with(|s| {
            s.pending_since.get_or_insert_with(Instant::now);
        });
    }

    fn unchanged(&mut self) {
        self.health.with(|s| s.pending_since = None);
    }

    fn synced(&mut self, elapsed: Duration, result: Result<&SyncStats, &str>) {
        let secs = elapsed.as_secs_f64();
        self.duration.with(&[]).observe(secs);
        match result {
            Ok(stats) => {
                if stats.full {
                    self.full.with(&[]).observe(secs);
                } else {
                    self.partial.with(&[]).observe(secs);
                }
                let now = SystemTime::now();
                self.last_sync.with(&[]).set(unix_seconds(now));
                self.rules
                    .with(&[self.mode.as_str()])
                    .set(stats.rules as f64);
                self.health.with(|s| {
                    s.last_synced = Some(now);
                    s.pending_since = None;
                });
            }
            Err(_) => {
                if let Some(f) = &self.failures {
                    f.with(&[]).inc();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_the_first_sync_then_while_a_change_waits_too_long() {
        let health = Health::new(Duration::from_millis(20));
        let mut m = ProxyMetrics::new(Mode::Nftables, health.clone());
        assert!(!health.report().healthy);
        assert!(health.report().body.contains("\"lastUpdated\":\"never\""));

        m.queued();
        m.synced(
            Duration::from_millis(3),
            Ok(&SyncStats {
                rules: 7,
                full: true,
            }),
        );
        assert!(health.report().healthy);

        // A change waiting past the timeout, with failing syncs: unhealthy.
        m.queued();
        m.synced(Duration::from_millis(1), Err("boom"));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!health.report().healthy);
        m.synced(
            Duration::from_millis(1),
            Ok(&SyncStats {
                rules: 7,
                full: false,
            }),
        );
        assert!(health.report().healthy);

        // A notice that needed nothing clears the wait too.
        m.queued();
        m.unchanged();
        std::thread::sleep(Duration::from_millis(30));
        assert!(health.report().healthy);

        let text = prom::global().render();
        assert!(text.contains("kubeproxy_sync_full_proxy_rules_duration_seconds_count 1"));
        assert!(text.contains("kubeproxy_sync_partial_proxy_rules_duration_seconds_count 1"));
        assert!(text.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1"));
        assert!(text.contains("skiff_proxy_rules_programmed{mode=\"nftables\"} 7"));
    }
}
