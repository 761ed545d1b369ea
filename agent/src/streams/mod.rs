//! Interactive sessions with a pod, as kubelet serves them to the API server: `exec` and
//! `attach` (stdin, stdout, stderr, a terminal and its resizes) and `port-forward` (TCP
//! streams into the pod's network namespace), each over the upgraded HTTP connection the
//! API server passes through from kubectl.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;

use crate::runtime::Runtime;

/// Response bodies of the agent's HTTP API.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// `GET|POST /exec/{namespace}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…`
/// on the container `container_id`, already resolved from the pod by the caller.
pub async fn exec(
    req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    container_id: String,
) -> Response<Body> {
    let _ = (req, runtime, container_id);
    not_implemented("exec")
}

/// `GET|POST /attach/{namespace}/{pod}/{container}?stdin=…&stdout=…&stderr=…&tty=…`.
pub async fn attach(
    req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    container_id: String,
) -> Response<Body> {
    let _ = (req, runtime, container_id);
    not_implemented("attach")
}

/// `GET|POST /portForward/{namespace}/{pod}`: connections to the pod's ports, made from
/// inside its network namespace `netns`.
pub async fn port_forward(req: Request<Incoming>, netns: PathBuf) -> Response<Body> {
    let _ = (req, netns);
    not_implemented("port-forward")
}

fn not_implemented(what: &str) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from(format!(
            "{what} is not supported by this agent\n"
        )))
        .map_err(|never| match never {})
        .boxed(),
    );
    *res.status_mut() = StatusCode::NOT_IMPLEMENTED;
    res
}
