//! httpGet for probes and hooks: one fresh connection per request (kubelet disables
//! keep-alive), HTTPS without certificate verification, redirects followed on the same host
//! only, at most 10 KiB of body read, and Go's client error text.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, CONNECTION, HOST, HeaderName, HeaderValue, LOCATION, REFERER, USER_AGENT,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use url::Url;

use super::gofmt::{self, quote};
use super::{ProbeProblem, net, tls};

/// kubelet reads at most this much of a probe's response body.
pub(crate) const MAX_BODY: usize = 10 * 1024;

/// Go's client follows at most this many redirects.
const MAX_REDIRECTS: usize = 10;

/// Who is asking: it shows in the User-Agent (`kube-probe/1.33`, `kube-lifecycle/1.33`) and in
/// how a timeout reads (probes have a client timeout, hooks are bounded from outside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Probe,
    Lifecycle,
}

impl Purpose {
    fn user_agent(self) -> String {
        let purpose = match self {
            Purpose::Probe => "probe",
            Purpose::Lifecycle => "lifecycle",
        };
        format!("kube-{purpose}/{}", kube_minor_version())
    }
}

/// `1.33` from the agent's `v1.33.0-skiff`.
pub(crate) fn kube_minor_version() -> String {
    let v = crate::node::AGENT_VERSION.trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => v.to_string(),
    }
}

/// Why an httpGet action cannot be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpecError {
    /// kubelet's text for the port.
    Port(String),
    NoHost,
    Invalid(String),
}

impl SpecError {
    pub(crate) fn into_problem(self) -> ProbeProblem {
        match self {
            SpecError::Port(text) => ProbeProblem::Port(text),
            SpecError::NoHost => ProbeProblem::NoHost,
            SpecError::Invalid(text) => ProbeProblem::Handler(format!("httpGet: {text}")),
        }
    }

    /// The error as kubelet words it when a hook fails for it.
    pub(crate) fn message(&self) -> String {
        match self {
            SpecError::Port(text) | SpecError::Invalid(text) => text.clone(),
            SpecError::NoHost => "failed to find networking container".to_string(),
        }
    }
}

/// An httpGet request, resolved against the container and the pod's IP.
#[derive(Clone, Debug)]
pub(crate) struct HttpGet {
    url: Url,
    /// The URL as Go prints it (the port always written).
    display: String,
    /// Headers besides Host, in order.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// An explicit `Host` header, which replaces the URL's host in the request.
    host_header: Option<HeaderValue>,
}

/// What a GET came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HttpResult {
    /// A final response: its status and up to [`MAX_BODY`] bytes of its body.
    Response { status: u16, body: Vec<u8> },
    /// The request failed: Go's client error (`Get "http://...": dial tcp ...`).
    Failed(String),
    /// The response came but its body could not be read.
    BodyFailed(String),
}

impl HttpGet {
    pub(crate) fn new(
        action: &HTTPGetAction,
        container: &Container,
        pod_ip: Option<IpAddr>,
        purpose: Purpose,
    ) -> Result<Self, SpecError> {
        let scheme = action
            .scheme
            .as_deref()
            .unwrap_or("http")
            .to_ascii_lowercase();
        let scheme = match scheme.as_str() {
            "" | "http" => "http",
            "https" => "https",
            other => {
                return Err(SpecError::Invalid(format!(
                    "unsupported protocol scheme {}",
                    quote(other)
                )));
            }
        };
        let host = super::spec::host_or_pod_ip(action.host.as_deref(), pod_ip)
            .map_err(|_| SpecError::NoHost)?;
        let port = super::spec::resolve_port(&action.port, container).map_err(SpecError::Port)?;
        let path = action.path.as_deref().unwrap_or_default();
        let (url, display) = build_url(scheme, &host, port, path).map_err(SpecError::Invalid)?;

        let mut headers = Vec::new();
        let mut host_header = None;
        let mut host_seen = false;
        for h in action.http_headers.iter().flatten() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                SpecError::Invalid(format!(
                    "net/http: invalid header field name {}",
                    quote(&h.name)
                ))
            })?;
            let value = HeaderValue::from_str(&h.value).map_err(|_| {
                SpecError::Invalid(format!(
                    "net/http: invalid header field value for {}",
                    quote(&h.name)
                ))
            })?;
            if name == HOST {
                // Go takes the first Host value; an empty one means the URL's host.
                if !host_seen && !value.is_empty() {
                    host_header = Some(value);
                }
                host_seen = true;
                continue;
            }
            headers.push((name, value));
        }
        let has = |headers: &[(HeaderName, HeaderValue)], n: &HeaderName| {
            headers
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| v.is_empty())
        };
        match has(&headers, &USER_AGENT) {
            None => {
                let ua = HeaderValue::from_str(&purpose.user_agent())
                    .map_err(|e| SpecError::Invalid(e.to_string()))?;
                headers.push((USER_AGENT, ua));
            }
            // Go sends no User-Agent when it is set to "".
            Some(true) => headers.retain(|(name, _)| name != USER_AGENT),
            Some(false) => {}
        }
        match has(&headers, &ACCEPT) {
            None => headers.push((ACCEPT, HeaderValue::from_static("*/*"))),
            // An Accept set to "" removes the default.
            Some(true) => headers.retain(|(name, _)| name != ACCEPT),
            Some(false) => {}
        }
        Ok(HttpGet {
            url,
            display,
            headers,
            host_header,
        })
    }

    pub(crate) fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The same request over plain HTTP, without credentials (kubelet's fallback for hooks
    /// whose HTTPS request met a plain HTTP server).
    pub(crate) fn downgraded(&self) -> Self {
        let mut plain = self.clone();
        // Setting a special scheme to another special one cannot fail.
        let _ = plain.url.set_scheme("http");
        plain.display = plain.display.replacen("https://", "http://", 1);
        plain
            .headers
            .retain(|(name, _)| name != http::header::AUTHORIZATION);
        plain
    }

    /// Sends the GET, following redirects within the same host, all within `timeout`.
    pub(crate) async fn get(&self, timeout: Duration, purpose: Purpose) -> HttpResult {
        let deadline = Instant::now() + timeout;
        let timed_out = match purpose {
            Purpose::Probe => {
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            }
            Purpose::Lifecycle => "context deadline exceeded",
        };
        let mut url = self.url.clone();
        let mut display = self.display.clone();
        let mut host_header = self.host_header.clone();
        let mut referer: Option<String> = None;
        let mut sent = 0;
        loop {
            sent += 1;
            let exchange = exchange(
                &url,
                &self.headers,
                host_header.as_ref(),
                referer.as_deref(),
            );
            let (response, conn) = match tokio::time::timeout_at(deadline, exchange).await {
                Err(_) => {
                    return HttpResult::Failed(format!("Get {}: {timed_out}", quote(&display)));
                }
                Ok(Err(e)) => return HttpResult::Failed(format!("Get {}: {e}", quote(&display))),
                Ok(Ok(answer)) => answer,
            };
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                .filter(|l| !l.is_empty());
            if let (true, Some(location)) = (is_followed_redirect(status), location) {
                let next = match url.join(&location) {
                    Ok(next) => next,
                    Err(e) => {
                        return HttpResult::Failed(format!(
                            "Get {}: failed to parse Location header {}: {e}",
                            quote(&display),
                            quote(&location)
                        ));
                    }
                };
                // kubelet follows redirects only within the host it was asked to probe; the
                // redirect itself is then the answer.
                if next.host_str() != self.url.host_str() {
                    return read_response(response, conn, deadline).await;
                }
                if sent >= MAX_REDIRECTS {
                    return HttpResult::Failed(format!(
                        "Get {}: stopped after {MAX_REDIRECTS} redirects",
                        quote(&location)
                    ));
                }
                let next_display = go_display(&next);
                if next.scheme() != "http" && next.scheme() != "https" {
                    return HttpResult::Failed(format!(
                        "Get {}: unsupported protocol scheme {}",
                        quote(&next_display),
                        quote(next.scheme())
                    ));
                }
                // Go keeps an explicit Host header only through relative redirects, and sends
                // no Referer from HTTPS to HTTP.
                if Url::parse(&location).is_ok() {
                    host_header = None;
                }
                referer = (!(url.scheme() == "https" && next.scheme() == "http"))
                    .then(|| display.clone());
                url = next;
                display = next_display;
                continue;
            }
            return read_response(response, conn, deadline).await;
        }
    }
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn build_url(scheme: &str, host: &str, port: u16, path: &str) -> Result<(Url, String), String> {
    let authority = gofmt::join_host_port(host, port);
    let mut url = Url::parse(&format!("{scheme}://{authority}/"))
        .map_err(|e| format!("parse {}: {e}", quote(&format!("{scheme}://{authority}"))))?;
    let path = path.split('#').next().unwrap_or_default();
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    url.set_path(p);
    url.set_query(q);
    let display = if path.is_empty() {
        format!("{scheme}://{authority}")
    } else {
        go_display(&url)
    };
    Ok((url, display))
}

/// A URL as Go prints the ones kubelet builds: with its port even when it is the default.
fn go_display(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let mut out = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port_or_known_default() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Ends the connection's task when the exchange is over or abandoned.
struct ConnGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request on a fresh connection.
async fn exchange(
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    host_header: Option<&HeaderValue>,
    referer: Option<&str>,
) -> Result<(Response<Incoming>, ConnGuard), String> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("http: no Host in request URL".to_string()),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("unsupported protocol scheme {}", quote(url.scheme())))?;
    let tcp = net::dial(&host, port).await?;
    let (local, peer) = (tcp.local_addr().ok(), tcp.peer_addr().ok());

    let mut request = Request::builder()
        .method(Method::GET)
        .uri(request_target(url));
    let authority = match host_header {
        Some(h) => h.clone(),
        None => HeaderValue::from_str(&gofmt::join_host_port(&host, port))
            .map_err(|e| format!("http: invalid Host header: {e}"))?,
    };
    request = request.header(HOST, authority);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(referer) = referer
        && let Ok(value) = HeaderValue::from_str(referer)
    {
        request = request.header(REFERER, value);
    }
    // kubelet's transport keeps no connections alive.
    request = request.header(CONNECTION, HeaderValue::from_static("close"));
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("net/http: {e}"))?;

    if url.scheme() == "https" {
        let config = tls::client_config()?;
        let name = tls::server_name(&host)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| tls::handshake_error(&e, local, peer))?;
        send(stream, request, local, peer).await
    } else {
        send(tcp, request, local, peer).await
    }
}

async fn send<T>(
    io: T,
    request: Request<Empty<Bytes>>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
) -> Result<(Response<Incoming>, ConnGuard), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // Go writes canonical header names; some servers care.
        .title_case_headers(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_error(&e, local, peer))?;
    let guard = ConnGuard(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| hyper_error(&e, local, peer))?;
    Ok((response, guard))
}

fn request_target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Go's text for what hyper reports.
fn hyper_error(err: &hyper::Error, local: Option<SocketAddr>, peer: Option<SocketAddr>) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return net::conn_error(io, local, peer);
        }
        source = e.source();
    }
    if err.is_incomplete_message() {
        return "EOF".to_string();
    }
    if err.is_parse() {
        return format!(
            "net/http: HTTP/1.x transport connection broken: malformed HTTP response: {err}"
        );
    }
    err.to_string()
}

async fn read_response(
    response: Response<Incoming>,
    conn: ConnGuard,
    deadline: Instant,
) -> HttpResult {
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let read = async {
        let mut out = Vec::new();
        while out.len() < MAX_BODY {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    return Err(if e.is_incomplete_message() {
                        "unexpected EOF".to_string()
                    } else {
                        hyper_error(&e, None, None)
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let take = data.len().min(MAX_BODY - out.len());
                        out.extend_from_slice(&data[..take]);
                    }
                }
            }
        }
        Ok(out)
    };
    let result = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => HttpResult::BodyFailed(
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                .to_string(),
        ),
        Ok(Err(e)) => HttpResult::BodyFailed(e),
        Ok(Ok(body)) => HttpResult::Response { status, body },
    };
    drop(conn);
    result
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::HTTPHeader;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

    fn action(path: &str, headers: &[(&str, &str)]) -> HTTPGetAction {
        HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(8080),
            http_headers: Some(
                headers
                    .iter()
                    .map(|(n, v)| HTTPHeader {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn get(action: &HTTPGetAction) -> HttpGet {
        HttpGet::new(
            action,
            &Container::default(),
            Some("10.0.0.5".parse().unwrap()),
            Purpose::Probe,
        )
        .unwrap()
    }

    fn header<'a>(g: &'a HttpGet, name: &HeaderName) -> Vec<&'a str> {
        g.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn urls_as_kubelet_builds_them() {
        let g = get(&action("/healthz", &[]));
        assert_eq!(g.display, "http://10.0.0.5:8080/healthz");
        let g = get(&action("healthz?full=1", &[]));
        assert_eq!(g.display, "http://10.0.0.5:8080/healthz?full=1");
        assert_eq!(request_target(&g.url), "/healthz?full=1");
        let g = get(&action("", &[]));
        assert_eq!(g.display, "http://10.0.0.5:8080");
        assert_eq!(request_target(&g.url), "/");
        let mut a = action("/", &[]);
        a.scheme = Some("HTTPS".into());
        a.host = Some("::1".into());
        a.port = IntOrString::Int(443);
        let g = get(&a);
        assert_eq!(g.display, "https://[::1]:443/");
        assert!(g.is_https());
        assert_eq!(g.downgraded().display, "http://[::1]:443/");
    }

    #[test]
    fn default_and_overridden_headers() {
        let version = kube_minor_version();
        assert!(version.starts_with("1."), "{version}");
        let g = get(&action("/", &[]));
        assert_eq!(header(&g, &USER_AGENT), [format!("kube-probe/{version}")]);
        assert_eq!(header(&g, &ACCEPT), ["*/*"]);
        assert!(g.host_header.is_none());

        let g = get(&action(
            "/",
            &[
                ("user-agent", "mine"),
                ("Accept", "application/json"),
                ("Host", "app.example"),
                ("X-Custom", "a"),
                ("X-Custom", "b"),
            ],
        ));
        assert_eq!(header(&g, &USER_AGENT), ["mine"]);
        assert_eq!(header(&g, &ACCEPT), ["application/json"]);
        assert_eq!(g.host_header.as_ref().unwrap(), "app.example");
        assert_eq!(header(&g, &HeaderName::from_static("x-custom")), ["a", "b"]);

        let g = get(&action("/", &[("Accept", ""), ("User-Agent", "")]));
        assert!(header(&g, &ACCEPT).is_empty());
        assert!(header(&g, &USER_AGENT).is_empty());

        let hook = HttpGet::new(
            &action("/", &[]),
            &Container::default(),
            Some("10.0.0.5".parse().unwrap()),
            Purpose::Lifecycle,
        )
        .unwrap();
        assert_eq!(
            header(&hook, &USER_AGENT),
            [format!("kube-lifecycle/{version}")]
        );
    }

    #[test]
    fn invalid_requests() {
        let bad = HttpGet::new(
            &action("/", &[("bad name", "x")]),
            &Container::default(),
            Some("10.0.0.5".parse().unwrap()),
            Purpose::Probe,
        );
        assert_eq!(
            bad.unwrap_err(),
            SpecError::Invalid(r#"net/http: invalid header field name "bad name""#.into())
        );
        let none = HttpGet::new(
            &action("/", &[]),
            &Container::default(),
            None,
            Purpose::Lifecycle,
        );
        assert_eq!(
            none.unwrap_err().message(),
            "failed to find networking container"
        );
    }
}
