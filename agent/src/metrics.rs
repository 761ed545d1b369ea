//! The agent's Prometheus metrics, served at `/metrics` on its API port: its requests here,
//! and what the pod workers and probers count into the process registry.

use std::sync::LazyLock;
use std::time::Instant;

use skiff_api::prom::{self, CounterVec, HistogramVec};

static HTTP_REQUESTS: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "kubelet_http_requests_total",
        "Number of the http requests received since the server started",
        &["method", "path", "server_type", "long_running"],
    )
});

static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "kubelet_http_requests_duration_seconds",
        "Duration in seconds to serve http requests",
        &["method", "path", "server_type", "long_running"],
        prom::LATENCY_BUCKETS,
    )
});

/// The first path segment, as kubelet labels requests (`pods`, `exec`, `containerLogs`).
fn path_label(path: &str) -> &'static str {
    match path.trim_start_matches('/').split('/').next() {
        Some("healthz") => "healthz",
        Some("metrics") => "metrics",
        Some("pods") => "pods",
        Some("stats") => "stats",
        Some("containerLogs") => "containerLogs",
        Some("exec") => "exec",
        Some("attach") => "attach",
        Some("portForward") => "portForward",
        _ => "other",
    }
}

/// Counts one request on the agent's API; streams count when they are set up.
pub fn request(method: &http::Method, path: &str, started: Instant) {
    let p = path_label(path);
    let long = matches!(p, "exec" | "attach" | "portForward") || path.contains("follow=true");
    let labels = [
        method.as_str(),
        p,
        "readwrite",
        if long { "true" } else { "false" },
    ];
    HTTP_REQUESTS.with(&labels).inc();
    HTTP_DURATION.with(&labels).observe_since(started);
}

/// The metrics in the Prometheus text exposition format.
pub fn render() -> String {
    prom::global().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_by_their_first_segment() {
        request(&http::Method::GET, "/pods", Instant::now());
        request(&http::Method::POST, "/exec/ns/p/c", Instant::now());
        let out = render();
        assert!(out.contains(
            "kubelet_http_requests_total{method=\"GET\",path=\"pods\",server_type=\"readwrite\",long_running=\"false\"} "
        ), "{out}");
        assert!(
            out.contains("path=\"exec\",server_type=\"readwrite\",long_running=\"true\""),
            "{out}"
        );
    }
}
