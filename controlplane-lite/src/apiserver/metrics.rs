//! The API server's Prometheus metrics: what kube-apiserver counts per request, by the
//! same names and labels, so dashboards built for it read skiff too.

use std::sync::LazyLock;
use std::time::Duration;

use http::Method;
use skiff_api::prom::{self, CounterVec, GaugeVec, HistogramVec};

use super::route::{self, Query, Route};

static REQUESTS: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "apiserver_request_total",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
        &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"],
    )
});

static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "apiserver_request_duration_seconds",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
        &["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"],
        &[
            0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0,
            8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
        ],
    )
});

static INFLIGHT: LazyLock<GaugeVec> = LazyLock::new(|| {
    prom::global().gauge(
        "apiserver_current_inflight_requests",
        "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
        &["request_kind"],
    )
});

/// What a request is, in kube-apiserver's metric labels.
#[derive(Debug, Clone, Default)]
pub struct RequestLabels {
    verb: &'static str,
    dry_run: &'static str,
    group: String,
    version: String,
    resource: String,
    subresource: String,
    scope: &'static str,
    /// Watches and streams live as long as the client wants; their duration says nothing.
    long_running: bool,
    mutating: bool,
}

impl RequestLabels {
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> RequestLabels {
        let q = Query::parse(query);
        let route = route::parse(path);
        let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let dry_run = if q.get("dryRun").is_some() { "All" } else { "" };
        let Route::Resource(r) = route else {
            return RequestLabels {
                verb: verb_plain(method),
                dry_run,
                mutating,
                ..Default::default()
            };
        };
        let sub = r.subresource.clone().unwrap_or_default();
        let connect = matches!(sub.as_str(), "exec" | "attach" | "portforward" | "proxy")
            || (sub == "log" && q.flag("follow"));
        let watch = q.flag("watch");
        let verb = if connect {
            "CONNECT"
        } else if watch {
            "WATCH"
        } else {
            match (method.clone(), r.name.is_some()) {
                (Method::GET | Method::HEAD, true) => "GET",
                (Method::GET | Method::HEAD, false) => "LIST",
                (Method::POST, _) => "POST",
                (Method::PUT, _) => "PUT",
                (Method::PATCH, _) => "PATCH",
                (Method::DELETE, true) => "DELETE",
                (Method::DELETE, false) => "DELETECOLLECTION",
                _ => "OTHER",
            }
        };
        let scope = if r.name.is_some() {
            "resource"
        } else if r.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        RequestLabels {
            verb,
            dry_run,
            group: r.info.group.to_string(),
            version: r.info.version.to_string(),
            resource: r.info.plural.to_string(),
            subresource: sub,
            scope,
            long_running: connect || watch,
            mutating,
        }
    }

    /// Counts a request as in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        let kind = if self.mutating {
            "mutating"
        } else {
            "readOnly"
        };
        INFLIGHT.with(&[kind]).inc();
        InFlight(kind)
    }

    /// Records a finished request.
    pub fn observe(&self, code: u16, elapsed: Duration) {
        let code = code.to_string();
        let base = [
            self.verb,
            self.dry_run,
            self.group.as_str(),
            self.version.as_str(),
            self.resource.as_str(),
            self.subresource.as_str(),
            self.scope,
            "apiserver",
        ];
        let mut with_code = base.to_vec();
        with_code.push(&code);
        REQUESTS.with(&with_code).inc();
        if !self.long_running {
            DURATION.with(&base).observe(elapsed.as_secs_f64());
        }
    }
}

fn verb_plain(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(&'static str);

impl Drop for InFlight {
    fn drop(&mut self) {
        INFLIGHT.with(&[self.0]).dec();
    }
}

/// Everything the control plane process counts, for `/metrics`.
pub fn render() -> String {
    prom::global().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_scopes_follow_kube_apiserver() {
        let l = RequestLabels::of(&Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!(
            (l.verb, l.scope, l.resource.as_str()),
            ("LIST", "namespace", "pods")
        );
        let l = RequestLabels::of(&Method::GET, "/api/v1/pods", Some("watch=true"));
        assert_eq!((l.verb, l.scope), ("WATCH", "cluster"));
        assert!(l.long_running);
        let l = RequestLabels::of(
            &Method::PATCH,
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            Some("dryRun=All"),
        );
        assert_eq!(
            (
                l.verb,
                l.scope,
                l.group.as_str(),
                l.subresource.as_str(),
                l.dry_run
            ),
            ("PATCH", "resource", "apps", "scale", "All")
        );
        let l = RequestLabels::of(&Method::POST, "/api/v1/namespaces/a/pods/p/exec", None);
        assert_eq!(l.verb, "CONNECT");
        let l = RequestLabels::of(&Method::DELETE, "/api/v1/namespaces/a/pods", None);
        assert_eq!(l.verb, "DELETECOLLECTION");
        let l = RequestLabels::of(&Method::GET, "/healthz", None);
        assert_eq!((l.verb, l.resource.as_str()), ("GET", ""));
    }
}
