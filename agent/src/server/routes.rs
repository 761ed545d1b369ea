//! Request routing and the handlers of the API's plain (non-interactive) endpoints.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use jiff::Timestamp;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::auth::Access;
use super::{ApiState, resolve};
use crate::logs::reader::{self, LogOptions};
use crate::stats;
use crate::streams::{self, Body};

pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from(body.into()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn refused((status, msg): resolve::Refusal) -> Response<Body> {
    text(status, msg)
}

/// kubelet's authorization attributes of a path, for the words of a 403.
fn subresource(path: &str) -> &'static str {
    match path.trim_start_matches('/').split('/').next() {
        Some("metrics") => "metrics",
        Some("containerLogs") | Some("logs") => "log",
        Some("stats") => "stats",
        _ => "proxy",
    }
}

pub async fn handle(
    req: Request<Incoming>,
    access: &Access,
    state: Arc<ApiState>,
) -> Response<Body> {
    match access {
        Access::Allowed => {}
        Access::Unauthorized => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Access::Forbidden { user } => {
            let verb = if req.method() == Method::GET {
                "get"
            } else {
                "create"
            };
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden (user={user}, verb={verb}, resource=nodes, subresource={})",
                    subresource(req.uri().path())
                ),
            );
        }
    }
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = req.method() == Method::GET;
    let get_or_post = get || req.method() == Method::POST;
    match segs.as_slice() {
        ["healthz"] if get => text(StatusCode::OK, "ok"),
        ["metrics"] if get => {
            let mut res = text(StatusCode::OK, crate::metrics::render());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(skiff_api::prom::CONTENT_TYPE),
            );
            res
        }
        ["metrics", "resource"] if get => resource_metrics(&state).await,
        ["stats", "summary"] | ["stats", "summary", ""] if get => summary(&state).await,
        ["pods"] | ["pods", ""] if get => pods(&state),
        ["containerLogs", ns, pod, container] if get => {
            logs(
                &state,
                ns,
                pod,
                container,
                req.uri().query().unwrap_or_default(),
            )
            .await
        }
        ["exec", ns, pod, container] if get_or_post => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            match container_for_stream(&state, &ns, &pod, &container).await {
                Ok(id) => streams::exec(req, state.runtime.clone(), id).await,
                Err(r) => refused(r),
            }
        }
        ["attach", ns, pod, container] if get_or_post => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            match container_for_stream(&state, &ns, &pod, &container).await {
                Ok(id) => streams::attach(req, state.runtime.clone(), id).await,
                Err(r) => refused(r),
            }
        }
        ["portForward", ns, pod] if get_or_post => {
            let netns = resolve::pod(&state, ns, pod).and_then(|p| resolve::netns(&state, &p));
            match netns {
                Ok(netns) => streams::port_forward(req, netns).await,
                Err(r) => refused(r),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

async fn container_for_stream(
    state: &ApiState,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, resolve::Refusal> {
    let pod = resolve::pod(state, ns, pod)?;
    resolve::container(&pod, container)?;
    resolve::running_container(state, &pod, container).await
}

/// kubelet's `/metrics/resource`; a failed collection is reported in the body
/// (`scrape_error 1`), not by the status, as kubelet does.
async fn resource_metrics(state: &ApiState) -> Response<Body> {
    let snapshot = match state.stats.collect().await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "collecting resource metrics");
            None
        }
    };
    let body = stats::prometheus::render(snapshot.as_ref(), std::time::SystemTime::now());
    let mut res = text(StatusCode::OK, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(stats::prometheus::CONTENT_TYPE),
    );
    res
}

async fn summary(state: &ApiState) -> Response<Body> {
    match state.stats.collect().await {
        Ok(s) => {
            let mut res = text(StatusCode::OK, stats::summary::render(&s).to_string());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Error: failed to get node stats: {e}"),
        ),
    }
}

fn pods(state: &ApiState) -> Response<Body> {
    let items: Vec<_> = state
        .pods
        .list()
        .iter()
        .map(|p| p.as_ref().clone())
        .collect();
    let list = serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    });
    let mut res = text(StatusCode::OK, list.to_string());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The query of `containerLogs`, as kubelet reads it.
fn log_query(query: &str) -> Result<(LogOptions, bool), String> {
    let mut opts = LogOptions::default();
    let mut previous = false;
    let flag = |k: &str, v: &str| -> Result<bool, String> {
        match v {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{k}: {v:?} is not a boolean")),
        }
    };
    let number = |k: &str, v: &str| -> Result<i64, String> {
        v.parse::<i64>()
            .map_err(|_| format!("{k}: {v:?} is not an integer"))
    };
    let mut since_seconds = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "follow" => opts.follow = flag(&k, &v)?,
            "previous" => previous = flag(&k, &v)?,
            "timestamps" => opts.timestamps = flag(&k, &v)?,
            "tailLines" => opts.tail_lines = Some(number(&k, &v)?.max(0) as u64),
            "limitBytes" => {
                let n = number(&k, &v)?;
                if n < 1 {
                    return Err("limitBytes: must be greater than 0".into());
                }
                opts.limit_bytes = Some(n as u64);
            }
            "sinceSeconds" => {
                let n = number(&k, &v)?;
                if n < 1 {
                    return Err("sinceSeconds: must be greater than 0".into());
                }
                since_seconds = Some(n);
            }
            "sinceTime" => {
                opts.since = Some(
                    v.parse::<Timestamp>()
                        .map_err(|e| format!("sinceTime: {v:?}: {e}"))?,
                )
            }
            _ => {}
        }
    }
    if let Some(s) = since_seconds {
        if opts.since.is_some() {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into());
        }
        opts.since = Some(Timestamp::now() - jiff::SignedDuration::from_secs(s));
    }
    Ok((opts, previous))
}

async fn logs(
    state: &ApiState,
    ns: &str,
    pod_name: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let (opts, previous) = match log_query(query) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let pod = match resolve::pod(state, ns, pod_name) {
        Ok(p) => p,
        Err(r) => return refused(r),
    };
    if resolve::container(&pod, container).is_err() {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let id = match resolve::log_container_id(&pod, container, previous) {
        Ok(id) => id,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let Some(path) = resolve::log_path(state, &pod, container, &id) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod_name:?}: no log file for container {id}"),
        );
    };
    if !path.exists() {
        // Started, but its logger has not written yet.
        return text(StatusCode::OK, "");
    }
    let body = StreamBody::new(
        ReceiverStream::new(reader::stream(path, opts)).map(|r| r.map(Frame::data)),
    );
    let mut res = Response::new(BodyExt::boxed(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries() {
        let (o, prev) =
            log_query("follow=true&previous=true&tailLines=5&timestamps=true&limitBytes=9")
                .unwrap();
        assert!(o.follow && prev && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(9)));
        let (o, _) = log_query("sinceSeconds=10").unwrap();
        assert!(o.since.unwrap() < Timestamp::now());
        let (o, _) = log_query("sinceTime=2025-01-02T03:04:05Z").unwrap();
        assert_eq!(o.since.unwrap(), "2025-01-02T03:04:05Z".parse().unwrap());
        assert!(log_query("limitBytes=0").is_err());
        assert!(log_query("sinceSeconds=1&sinceTime=2025-01-02T03:04:05Z").is_err());
        assert!(log_query("tailLines=x").is_err());
    }
}
