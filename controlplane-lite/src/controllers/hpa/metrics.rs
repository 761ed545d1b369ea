//! Where the HPA controller gets pod usage: the resource metrics API
//! (`metrics.k8s.io/v1beta1` PodMetrics, as metrics-server serves them), behind a trait so
//! the controller is tested with made-up samples.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use skiff_api::quantity::Quantity;

/// One pod's sample: when, over which window, and each container's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    pub name: String,
    pub timestamp: Timestamp,
    pub window: Duration,
    /// (container name, CPU in millicores, memory in bytes).
    pub containers: Vec<(String, i64, i64)>,
}

/// Why no samples could be had. The text is what client-go would report, since it ends up
/// in the HPA's conditions and events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The API answered with an error, or could not be reached.
    #[error("{0}")]
    Api(String),
    /// The answer was not a PodMetricsList.
    #[error("decoding the pod metrics: {0}")]
    Decode(String),
}

/// Pod usage for the pods of a namespace that a label selector picks. A pod with no sample
/// yet is simply absent.
#[async_trait]
pub trait PodMetricsSource: Send + Sync + 'static {
    async fn pod_metrics(&self, ns: &str, selector: &str) -> Result<Vec<PodUsage>, MetricsError>;
}

/// The resource metrics API of the API server the client talks to.
pub struct MetricsApi {
    client: kube::Client,
}

impl MetricsApi {
    pub fn new(client: kube::Client) -> Self {
        MetricsApi { client }
    }
}

#[async_trait]
impl PodMetricsSource for MetricsApi {
    async fn pod_metrics(&self, ns: &str, selector: &str) -> Result<Vec<PodUsage>, MetricsError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", selector)
            .finish();
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?{query}");
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| MetricsError::Api(e.to_string()))?;
        let list: Value = self
            .client
            .request(req)
            .await
            .map_err(|e| MetricsError::Api(describe(&e)))?;
        parse_pod_metrics_list(&list)
    }
}

/// A source for clusters without an API server behind them: the API is not there.
pub struct NoMetricsApi;

#[async_trait]
impl PodMetricsSource for NoMetricsApi {
    async fn pod_metrics(&self, _: &str, _: &str) -> Result<Vec<PodUsage>, MetricsError> {
        Err(MetricsError::Api(not_found()))
    }
}

fn not_found() -> String {
    "the server could not find the requested resource (get pods.metrics.k8s.io)".to_string()
}

/// client-go's words for a failed list of `pods.metrics.k8s.io`: kube-apiserver answers an
/// API group nobody serves with a bare 404, and a registered but unreachable one with 503,
/// which client-go turns into these generic messages.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => not_found(),
        kube::Error::Api(s) if s.code == 503 => {
            "the server is currently unable to handle the request (get pods.metrics.k8s.io)"
                .to_string()
        }
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Reads a `PodMetricsList` as metrics-server writes it.
pub fn parse_pod_metrics_list(list: &Value) -> Result<Vec<PodUsage>, MetricsError> {
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| MetricsError::Decode("no items".into()))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| MetricsError::Decode("an item has no name".into()))?;
        let bad = |what: &str| MetricsError::Decode(format!("pod {name}: {what}"));
        let timestamp: Timestamp = item
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("no valid timestamp"))?;
        let window = item
            .get("window")
            .and_then(Value::as_str)
            .and_then(parse_go_duration)
            .ok_or_else(|| bad("no valid window"))?;
        let mut containers = Vec::new();
        for c in item
            .get("containers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
            let usage = |resource: &str| {
                c.pointer(&format!("/usage/{resource}"))
                    .and_then(Value::as_str)
                    .map(Quantity::parse)
                    .transpose()
                    .map_err(|e| bad(&format!("container {cname}: {resource}: {e}")))
            };
            let cpu = usage("cpu")?.map_or(0, |q| q.to_milli());
            let memory = usage("memory")?.map_or(0, |q| q.value());
            containers.push((cname.to_string(), cpu, memory));
        }
        out.push(PodUsage {
            name: name.to_string(),
            timestamp,
            window,
            containers,
        });
    }
    Ok(out)
}

/// Go's `time.Duration` text (`15s`, `1m0s`, `1.5s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_metrics_server_writes() {
        let list = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": [
            {"metadata": {"name": "web-1", "namespace": "default"}, "timestamp": "2025-01-01T00:00:00Z", "window": "15s",
             "containers": [{"name": "app", "usage": {"cpu": "12345678n", "memory": "6789Ki"}}, {"name": "side", "usage": {"cpu": "1m", "memory": "1Mi"}}]},
        ]});
        let got = parse_pod_metrics_list(&list).expect("parses");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].window, Duration::from_secs(15));
        assert_eq!(
            got[0].containers,
            vec![
                ("app".to_string(), 13, 6789 * 1024),
                ("side".to_string(), 1, 1 << 20)
            ]
        );
        assert!(parse_pod_metrics_list(&json!({})).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("15"), None);
        assert_eq!(parse_go_duration("x"), None);
    }
}
