//! The subresources served by a node's agent: `pods/log` (streamed), the upgraded sessions
//! `pods/exec`, `pods/attach` and `pods/portforward`, and `nodes/<name>/proxy/<path>`. The
//! API server checks the pod and container, then passes the request through to the agent
//! and, after a `101 Switching Protocols`, copies bytes both ways until either side closes.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::Api;
use crate::apiserver::nodes::{self, str_at};
use crate::apiserver::response::{self, Response};
use crate::apiserver::route::{Query, ResourceRequest};
use crate::apiserver::status::ApiError;

/// Whether a request is one of these subresources (the caller then hands over the whole
/// request, body unread).
pub fn wants(res: &ResourceRequest) -> bool {
    match (res.info.kind, res.subresource.as_deref()) {
        ("Pod", Some("log" | "exec" | "attach" | "portforward")) => res.name.is_some(),
        ("Node", Some("proxy")) => res.name.is_some(),
        _ => false,
    }
}

pub async fn handle(
    api: &Arc<Api>,
    res: ResourceRequest,
    req: http::Request<Incoming>,
) -> Result<Response, ApiError> {
    let name = res.name.clone().unwrap_or_default();
    let sub = res.subresource.clone().unwrap_or_default();
    if res.info.kind == "Node" {
        return node_proxy(api, &name, req).await;
    }
    let ns = res.namespace.clone().unwrap_or_else(|| "default".into());
    let (pod, _) = api
        .read(res.info, Some(&ns), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(res.info, &name))?;
    let query = Query::parse(req.uri().query());
    match sub.as_str() {
        "log" => {
            if req.method() != http::Method::GET {
                return Err(ApiError::method_not_supported(
                    res.info,
                    req.method().as_str(),
                ));
            }
            logs(api, &pod, &ns, &name, &query).await
        }
        "exec" | "attach" | "portforward" => {
            let node = str_at(&pod, "/spec/nodeName").to_string();
            let path = if sub == "portforward" {
                format!("/portForward/{ns}/{name}")
            } else {
                let container = stream_container(&pod, &name, query.get("container"))?;
                if node.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "pod {name} does not have a host assigned"
                    )));
                }
                format!("/{sub}/{ns}/{name}/{container}")
            };
            if node.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            pass_through(api, &node, &path, req).await
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

fn has_container(pod: &Value, container: &str) -> bool {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|f| names(pod, f).iter().any(|n| n == container))
}

/// The container of a log request, chosen as kube-apiserver chooses it.
fn log_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    if let Some(c) = asked {
        if !has_container(pod, c) {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        return Ok(c.to_string());
    }
    let containers = names(pod, "containers");
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => {
            let all: Vec<String> = ["initContainers", "containers", "ephemeralContainers"]
                .iter()
                .flat_map(|f| names(pod, f))
                .collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )))
        }
    }
}

/// The container of an exec or attach, chosen as kube-apiserver chooses it.
fn stream_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    if let Some(c) = asked {
        if !has_container(pod, c) {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        return Ok(c.to_string());
    }
    let containers = names(pod, "containers");
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            let init = names(pod, "initContainers");
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// The log options kubectl sends, passed on to the agent.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
];

async fn logs(
    api: &Api,
    pod: &Value,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let container = log_container(pod, name, query.get("container"))?;
    for p in ["tailLines", "limitBytes", "sinceSeconds"] {
        if let Some(v) = query.get(p)
            && v.parse::<i64>().is_err()
        {
            return Err(ApiError::bad_request(format!(
                "{p}: invalid value {v:?}: must be an integer"
            )));
        }
    }
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        // Not scheduled: no logs yet, and no error (as kube-apiserver answers).
        return Ok(text_stream(StatusCode::OK, HeaderMap::new(), empty()));
    }
    let q = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for p in LOG_PARAMS {
            if let Some(v) = query.get(p) {
                q.append_pair(p, v);
            }
        }
        q.finish()
    };
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    if !q.is_empty() {
        path.push('?');
        path.push_str(&q);
    }
    let connector = connector(api)?;
    let req = http::Request::get(path)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let res = connector.send(api, node, req).await?;
    let status = res.status();
    if !status.is_success() {
        let text = nodes::error_text(res).await;
        return Err(match status.as_u16() {
            400 => ApiError::bad_request(text),
            404 => ApiError::new(404, "NotFound", text),
            403 => ApiError::forbidden(text),
            code => ApiError::new(if code >= 500 { 500 } else { code }, "InternalError", text),
        });
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(text_stream(StatusCode::OK, headers, relay(res.into_body())))
}

fn connector(api: &Api) -> Result<&nodes::NodeConnector, ApiError> {
    api.nodes
        .as_deref()
        .ok_or_else(|| ApiError::internal("this server has no credentials for nodes"))
}

fn empty() -> response::Body {
    response::full(Bytes::new())
}

fn text_stream(status: StatusCode, headers: HeaderMap, body: response::Body) -> Response {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// The agent's body, relayed as it comes; an error ends it.
fn relay(mut body: Incoming) -> response::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                break;
            }
        }
    });
    BodyExt::boxed(StreamBody::new(
        ReceiverStream::new(rx).map(|b| Ok(Frame::data(b))),
    ))
}

/// Headers not passed on: the client's credentials for this server, and those naming it.
fn forwarded(h: &header::HeaderName) -> bool {
    !matches!(
        h.as_str(),
        "authorization" | "host" | "proxy-authorization" | "impersonate-user" | "impersonate-group"
    )
}

/// Sends the request to the agent at `path` (the client's query kept) and relays the
/// answer; after a 101 the two connections are joined.
async fn pass_through(
    api: &Api,
    node: &str,
    path: &str,
    mut req: http::Request<Incoming>,
) -> Result<Response, ApiError> {
    let connector = connector(api)?;
    let mut uri = path.to_string();
    if let Some(q) = req.uri().query() {
        uri.push('?');
        uri.push_str(q);
    }
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let mut out = http::Request::builder()
        .method(req.method().clone())
        .uri(&uri);
    for (k, v) in req.headers() {
        if forwarded(k) {
            out = out.header(k, v);
        }
    }
    let out = out
        .body(req.into_body())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut res = connector.send(api, node, out).await?;
    let status = res.status();
    let headers = res.headers().clone();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal("the agent upgraded a plain request"));
        };
        let agent_upgrade = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            let (client, agent) = match tokio::try_join!(client_upgrade, agent_upgrade) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrading a pass-through connection");
                    return;
                }
            };
            let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
            // Large buffers: a port-forward download moves tens of MiB, and each read is a
            // TLS record or more on both sides.
            const BUF: usize = 256 * 1024;
            if let Err(e) =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut agent, BUF, BUF).await
            {
                tracing::debug!(error = %e, "pass-through connection ended");
            }
        });
        return Ok(text_stream(status, headers, empty()));
    }
    Ok(text_stream(status, headers, relay(res.into_body())))
}

async fn node_proxy(
    api: &Arc<Api>,
    node: &str,
    req: http::Request<Incoming>,
) -> Result<Response, ApiError> {
    let prefix = format!("/nodes/{node}/proxy");
    let path = req.uri().path();
    let rest = path
        .find(&prefix)
        .map(|i| &path[i + prefix.len()..])
        .unwrap_or_default();
    let rest = if rest.is_empty() { "/" } else { rest }.to_string();
    pass_through(api, node, &rest, req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice_and_words() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        assert_eq!(log_container(&pod, "p", Some("b")).unwrap(), "b");
        assert_eq!(
            log_container(&pod, "p", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        assert_eq!(
            log_container(&pod, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(
            stream_container(&pod, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(log_container(&one, "p", None).unwrap(), "only");
    }
}
