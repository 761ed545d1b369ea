//! Probers and lifecycle hooks against real servers on 127.0.0.1 (HTTP, HTTPS with a
//! self-signed certificate, TCP, a gRPC health server) and against the fake runtime for exec,
//! checking the events the pod logic sees and kubelet's wording of them. No traffic leaves
//! the loopback interface.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, LifecycleHandler,
    Probe, SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use skiff_agent::probes::{
    ProbeEvent, ProbeKind, ProbeTarget, ProberHandle, pod_desc, run_handler, spawn_prober,
    spawn_prober_since,
};
use skiff_agent::runtime::fake::{Call, FakeRuntime};
use skiff_agent::runtime::{ContainerMeta, ContainerSpec, Error, ExecOutput, ImageConfig, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const CONTAINER: &str = "app";

/// Aborts a server task when the test ends, however it ends.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn container() -> Container {
    Container {
        name: CONTAINER.into(),
        ports: Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: 1,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// A target on loopback, whose named port `web` is `port`.
fn loopback(port: u16) -> ProbeTarget {
    let mut c = container();
    c.ports.as_mut().unwrap()[0].container_port = i32::from(port);
    ProbeTarget {
        pod_ip: Some("127.0.0.1".parse().unwrap()),
        container_id: "c1".into(),
        runtime: Arc::new(FakeRuntime::new()),
        container: c,
        pod: Default::default(),
    }
}

fn probe_every_second(failure_threshold: i32, success_threshold: i32) -> Probe {
    Probe {
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        success_threshold: Some(success_threshold),
        ..Default::default()
    }
}

fn http_probe(path: &str, headers: &[(&str, &str)]) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("web".into()),
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
        }),
        ..probe_every_second(1, 1)
    }
}

async fn next(rx: &mut UnboundedReceiver<ProbeEvent>) -> ProbeEvent {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("no probe event within 60s")
        .expect("prober gone")
}

fn changed(kind: ProbeKind, success: bool) -> ProbeEvent {
    ProbeEvent::Changed {
        container: CONTAINER.into(),
        container_id: "c1".into(),
        kind,
        success,
    }
}

fn failed(kind: ProbeKind, message: impl Into<String>) -> ProbeEvent {
    ProbeEvent::AttemptFailed {
        container: CONTAINER.into(),
        container_id: "c1".into(),
        kind,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 server: one request per connection, answers from a handler.

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    /// The request head, header names lowercased.
    head: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
        })
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: format!("status {status}"),
    }
}

fn redirect(status: u16, location: &str) -> Answer {
    Answer {
        status,
        headers: vec![("Location".into(), location.into())],
        body: "moved".into(),
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

struct HttpServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: Task,
}

impl HttpServer {
    async fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with(Arc::new(handler), None).await
    }

    async fn start_with(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_one(stream, &handler, &log).await;
                            }
                        }
                        None => serve_one(stream, &handler, &log).await,
                    }
                });
            }
        });
        HttpServer {
            addr,
            seen,
            _task: Task(task),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_one<S>(mut stream: S, handler: &Handler, log: &Mutex<Vec<Seen>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        // A TLS handshake (record type 22) to a plain server: refused as HTTP servers do.
        if head.first() == Some(&0x16) {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let seen = Seen { path, head };
    let answer = handler(&seen);
    log.lock().unwrap().push(seen);
    let mut response = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (n, v) in &answer.headers {
        response.push_str(&format!("{n}: {v}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&answer.body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A TLS acceptor with a fresh self-signed certificate.
fn self_signed() -> tokio_rustls::TlsAcceptor {
    let key = rcgen::generate_simple_self_signed(vec!["app.example".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A port on loopback where nothing listens (any longer).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn spawn(
    kind: ProbeKind,
    probe: &Probe,
    target: ProbeTarget,
) -> (ProberHandle, UnboundedReceiver<ProbeEvent>) {
    let (tx, rx) = unbounded_channel();
    let handle = spawn_prober(kind, probe, target, tx).unwrap();
    (handle, rx)
}

// ---------------------------------------------------------------------------------------
// httpGet

#[tokio::test]
async fn http_readiness_follows_the_status_across_thresholds() {
    let status = Arc::new(AtomicU16::new(200));
    let current = status.clone();
    let server = HttpServer::start(move |_| answer(current.load(Ordering::SeqCst))).await;
    let probe = Probe {
        failure_threshold: Some(2),
        success_threshold: Some(2),
        ..http_probe(
            "/healthz?full=1",
            &[("X-Probe", "yes"), ("Host", "app.example")],
        )
    };
    let (_handle, mut rx) = spawn(ProbeKind::Readiness, &probe, loopback(server.port()));
    let kind = ProbeKind::Readiness;

    // Two successes make it ready.
    assert_eq!(next(&mut rx).await, changed(kind, true));
    assert_eq!(server.seen().len(), 2);

    status.store(500, Ordering::SeqCst);
    let fail = failed(
        kind,
        "Readiness probe failed: HTTP probe failed with statuscode: 500",
    );
    assert_eq!(next(&mut rx).await, fail);
    assert_eq!(next(&mut rx).await, fail);
    assert_eq!(next(&mut rx).await, changed(kind, false));

    status.store(200, Ordering::SeqCst);
    assert_eq!(next(&mut rx).await, changed(kind, true));
    assert_eq!(server.seen().len(), 6, "one request per attempt");

    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/healthz?full=1");
    assert!(
        seen.head.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"),
        "{}",
        seen.head
    );
    assert_eq!(seen.header("host").as_deref(), Some("app.example"));
    assert_eq!(
        seen.header("user-agent").as_deref(),
        Some("kube-probe/1.33")
    );
    assert_eq!(seen.header("accept").as_deref(), Some("*/*"));
    assert_eq!(seen.header("x-probe").as_deref(), Some("yes"));
    assert_eq!(seen.header("connection").as_deref(), Some("close"));
    // Header names are written canonically, as Go writes them.
    assert!(seen.head.contains("\r\nUser-Agent: "), "{}", seen.head);
}

#[tokio::test]
async fn http_redirects() {
    let server = HttpServer::start(|seen| match seen.path.as_str() {
        "/start" => redirect(302, "/middle"),
        "/middle" => redirect(301, "/ok"),
        "/ok" => answer(200),
        "/loop" => redirect(307, "/loop"),
        "/away" => redirect(302, &format!("http://localhost:{}/ok", 1)),
        _ => answer(404),
    })
    .await;
    let port = server.port();

    // Followed on the same host.
    let (_h, mut rx) = spawn(
        ProbeKind::Liveness,
        &http_probe("/start", &[]),
        loopback(port),
    );
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, true));
    let paths: Vec<String> = server.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/start", "/middle", "/ok"]);
    assert_eq!(
        server.seen()[0].header("host"),
        Some(format!("127.0.0.1:{port}"))
    );
    assert_eq!(
        server.seen()[1].header("referer"),
        Some(format!("http://127.0.0.1:{port}/start"))
    );
    drop(_h);

    // Ten requests at most.
    let (_h, mut rx) = spawn(
        ProbeKind::Liveness,
        &http_probe("/loop", &[]),
        loopback(port),
    );
    assert_eq!(
        next(&mut rx).await,
        failed(
            ProbeKind::Liveness,
            r#"Liveness probe failed: Get "/loop": stopped after 10 redirects"#
        )
    );
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, false));
    let loops = server.seen().iter().filter(|s| s.path == "/loop").count();
    assert_eq!(loops, 10);
    drop(_h);

    // Another host: not followed; the redirect is a success with a warning.
    let before = server.seen().len();
    let (_h, mut rx) = spawn(
        ProbeKind::Readiness,
        &http_probe("/away", &[]),
        loopback(port),
    );
    assert_eq!(
        next(&mut rx).await,
        ProbeEvent::Warning {
            container: CONTAINER.into(),
            container_id: "c1".into(),
            kind: ProbeKind::Readiness,
            message: "Readiness probe warning: Probe terminated redirects, Response body: moved"
                .into(),
        }
    );
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Readiness, true));
    assert_eq!(server.seen().len(), before + 1);
}

#[tokio::test]
async fn https_without_verification() {
    let server =
        HttpServer::start_with(Arc::new(|_: &Seen| answer(200)), Some(self_signed())).await;
    let mut probe = http_probe("/secure", &[]);
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    let (_h, mut rx) = spawn(ProbeKind::Liveness, &probe, loopback(server.port()));
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, true));
    assert_eq!(server.seen()[0].path, "/secure");

    // HTTPS to a plain HTTP server.
    let plain = HttpServer::start(|_| answer(200)).await;
    let (_h, mut rx) = spawn(ProbeKind::Liveness, &probe, loopback(plain.port()));
    assert_eq!(
        next(&mut rx).await,
        failed(
            ProbeKind::Liveness,
            format!(
                r#"Liveness probe failed: Get "https://127.0.0.1:{}/secure": http: server gave HTTP response to HTTPS client"#,
                plain.port()
            )
        )
    );
}

#[tokio::test]
async fn http_connection_refused_and_timeout() {
    let port = closed_port().await;
    let (_h, mut rx) = spawn(
        ProbeKind::Liveness,
        &http_probe("/healthz", &[]),
        loopback(port),
    );
    assert_eq!(
        next(&mut rx).await,
        failed(
            ProbeKind::Liveness,
            format!(
                r#"Liveness probe failed: Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: connection refused"#
            )
        )
    );
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, false));

    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _silent = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    }));
    let started = std::time::Instant::now();
    let (_h, mut rx) = spawn(ProbeKind::Liveness, &http_probe("/", &[]), loopback(port));
    assert_eq!(
        next(&mut rx).await,
        failed(
            ProbeKind::Liveness,
            format!(
                r#"Liveness probe failed: Get "http://127.0.0.1:{port}/": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"#
            )
        )
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn http_body_is_read_up_to_10k() {
    let big = "x".repeat(64 * 1024);
    let server = HttpServer::start(move |_| Answer {
        status: 302,
        headers: vec![("Location".into(), "http://localhost:1/".into())],
        body: big.clone(),
    })
    .await;
    let (_h, mut rx) = spawn(
        ProbeKind::Readiness,
        &http_probe("/", &[]),
        loopback(server.port()),
    );
    let ProbeEvent::Warning { message, .. } = next(&mut rx).await else {
        panic!("expected a warning")
    };
    let prefix = "Readiness probe warning: Probe terminated redirects, Response body: ";
    assert_eq!(message.len(), prefix.len() + 10 * 1024);
}

// ---------------------------------------------------------------------------------------
// tcpSocket

#[tokio::test]
async fn tcp_liveness_fails_when_the_listener_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        ..probe_every_second(2, 1)
    };
    let (handle, mut rx) = spawn(ProbeKind::Liveness, &probe, loopback(port));
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, true));
    drop(listener);
    let refused = failed(
        ProbeKind::Liveness,
        format!("Liveness probe failed: dial tcp 127.0.0.1:{port}: connect: connection refused"),
    );
    assert_eq!(next(&mut rx).await, refused);
    assert_eq!(next(&mut rx).await, refused);
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, false));
    // A dead container is restarted: this prober is done.
    assert!(rx.recv().await.is_none());
    assert!(handle.is_finished());
}

// ---------------------------------------------------------------------------------------
// gRPC

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// A gRPC health server: the service "" answers with `status`, others are unknown.
struct HealthServer {
    port: u16,
    status: Arc<AtomicI32>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
    _task: Task,
}

impl HealthServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicI32::new(SERVING));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, log) = (status.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (st, log) = (st.clone(), log.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (st, log) = (st.clone(), log.clone());
                        async move { Ok::<_, Infallible>(health(req, &st, &log).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HealthServer {
            port,
            status,
            requests,
            _task: Task(task),
        }
    }
}

type GrpcBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn health(
    req: http::Request<Incoming>,
    status: &AtomicI32,
    log: &Mutex<Vec<(String, String)>>,
) -> http::Response<GrpcBody> {
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let request = HealthCheckRequest::decode(&body[5..]).unwrap();
    log.lock().unwrap().push((
        path.clone(),
        format!("{content_type} service={}", request.service),
    ));
    let mut trailers = http::HeaderMap::new();
    let message = if request.service.is_empty() {
        trailers.insert("grpc-status", "0".parse().unwrap());
        let msg = HealthCheckResponse {
            status: status.load(Ordering::SeqCst),
        }
        .encode_to_vec();
        let mut framed = vec![0u8];
        framed.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&msg);
        framed
    } else {
        trailers.insert("grpc-status", "5".parse().unwrap());
        trailers.insert("grpc-message", "unknown%20service".parse().unwrap());
        Vec::new()
    };
    let body = Full::new(Bytes::from(message))
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

fn grpc_probe(port: u16, service: Option<&str>) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: i32::from(port),
            service: service.map(String::from),
        }),
        ..probe_every_second(1, 1)
    }
}

#[tokio::test]
async fn grpc_health_checks() {
    let server = HealthServer::start().await;
    let kind = ProbeKind::Readiness;
    let (_h, mut rx) = spawn(kind, &grpc_probe(server.port, None), loopback(server.port));
    assert_eq!(next(&mut rx).await, changed(kind, true));
    server.status.store(NOT_SERVING, Ordering::SeqCst);
    assert_eq!(
        next(&mut rx).await,
        failed(
            kind,
            r#"Readiness probe failed: service unhealthy (responded with "NOT_SERVING")"#
        )
    );
    assert_eq!(next(&mut rx).await, changed(kind, false));
    server.status.store(SERVING, Ordering::SeqCst);
    assert_eq!(next(&mut rx).await, changed(kind, true));
    drop(_h);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(
        requests[0],
        (
            "/grpc.health.v1.Health/Check".to_string(),
            "application/grpc service=".to_string()
        )
    );

    // A service the server does not know.
    let (_h, mut rx) = spawn(
        kind,
        &grpc_probe(server.port, Some("db")),
        loopback(server.port),
    );
    assert_eq!(
        next(&mut rx).await,
        failed(
            kind,
            "Readiness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
        )
    );
    drop(_h);

    // Nothing listening: gRPC keeps dialling until the timeout.
    let port = closed_port().await;
    let started = std::time::Instant::now();
    let (_h, mut rx) = spawn(kind, &grpc_probe(port, None), loopback(port));
    assert_eq!(
        next(&mut rx).await,
        failed(
            kind,
            format!(
                r#"Readiness probe failed: timeout: failed to connect service "127.0.0.1:{port}" within 1s: context deadline exceeded"#
            )
        )
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

// ---------------------------------------------------------------------------------------
// exec, on the fake runtime and a paused clock

/// A fake runtime with one running container named [`CONTAINER`]; returns it and its id.
async fn fake_container() -> (Arc<FakeRuntime>, String) {
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image(ImageConfig {
        name: "img".into(),
        cmd: vec!["sh".into()],
        ..Default::default()
    });
    let mut spec = ContainerSpec::new("c1", "img");
    spec.meta = Some(ContainerMeta {
        pod_uid: "uid".into(),
        container_name: CONTAINER.into(),
        ..Default::default()
    });
    let id = rt.create_container(&spec).await.unwrap();
    rt.start(&id).await.unwrap();
    (rt, id)
}

fn exec_target(rt: &Arc<FakeRuntime>, id: &str) -> ProbeTarget {
    ProbeTarget {
        pod_ip: None,
        container_id: id.to_string(),
        runtime: rt.clone(),
        container: container(),
        pod: Default::default(),
    }
}

fn exec_probe(command: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
        }),
        ..Default::default()
    }
}

fn output(code: u32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        exit_code: code,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

fn execs(rt: &FakeRuntime) -> usize {
    rt.calls()
        .iter()
        .filter(|c| matches!(c, Call::Exec(..)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn exec_liveness_on_schedule() {
    let (rt, id) = fake_container().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    let n = Arc::new(AtomicUsize::new(0));
    let (log, count) = (times.clone(), n.clone());
    rt.on_exec(CONTAINER, move |cmd| {
        assert_eq!(cmd, ["cat", "/tmp/healthy"]);
        log.lock().unwrap().push(Instant::now());
        match count.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Ok(output(0, "", "")),
            _ => Ok(output(
                1,
                "",
                "cat: can't open '/tmp/healthy': No such file or directory\n",
            )),
        }
    });
    // Defaults: every 10s, fail after 3.
    let probe = Probe {
        initial_delay_seconds: Some(5),
        ..exec_probe(&["cat", "/tmp/healthy"])
    };
    let start = Instant::now();
    let (handle, mut rx) = spawn(ProbeKind::Liveness, &probe, exec_target(&rt, &id));
    let kind = ProbeKind::Liveness;
    assert_eq!(next(&mut rx).await, changed(kind, true));
    let fail = failed(
        kind,
        "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory\n",
    );
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await, fail);
    }
    assert_eq!(next(&mut rx).await, changed(kind, false));
    assert!(rx.recv().await.is_none(), "a failed liveness prober stops");
    assert!(handle.is_finished());
    let offsets: Vec<u64> = times
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - start).as_secs())
        .collect();
    assert_eq!(offsets, [5, 15, 25, 35, 45]);
}

#[tokio::test(start_paused = true)]
async fn exec_timeouts_and_runtime_errors() {
    let (rt, id) = fake_container().await;
    rt.on_exec(CONTAINER, |_| {
        Err(Error::Timeout {
            what: "exec".into(),
            after: Duration::ZERO,
        })
    });
    let probe = Probe {
        failure_threshold: Some(1),
        ..exec_probe(&["sleep", "10"])
    };
    let (_h, mut rx) = spawn(ProbeKind::Liveness, &probe, exec_target(&rt, &id));
    assert_eq!(
        next(&mut rx).await,
        failed(
            ProbeKind::Liveness,
            r#"Liveness probe failed: command "sleep 10" timed out"#
        )
    );
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, false));

    // A container that is gone: the attempt errors, is tried three times, reported, and
    // ignored: readiness keeps its initial value, without a Changed.
    rt.exit(&id, 0).unwrap();
    rt.clear_calls();
    let probe = Probe {
        failure_threshold: Some(1),
        ..exec_probe(&["true"])
    };
    let (_h, mut rx) = spawn(ProbeKind::Readiness, &probe, exec_target(&rt, &id));
    let ProbeEvent::AttemptFailed { message, .. } = next(&mut rx).await else {
        panic!("expected a failed attempt")
    };
    assert!(
        message.starts_with("Readiness probe errored and resulted in unknown state: "),
        "{message}"
    );
    assert!(message.contains("not running"), "{message}");
    assert_eq!(execs(&rt), 3);
    let ProbeEvent::AttemptFailed { .. } = next(&mut rx).await else {
        panic!("expected another failed attempt, and no Changed")
    };
    assert_eq!(execs(&rt), 6);
}

#[tokio::test(start_paused = true)]
async fn startup_then_liveness_counts_the_delay_from_the_start() {
    let (rt, id) = fake_container().await;
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    rt.on_exec(CONTAINER, move |_| {
        Ok(if count.fetch_add(1, Ordering::SeqCst) < 2 {
            output(1, "starting", "")
        } else {
            output(0, "", "")
        })
    });
    let started = Instant::now();
    let probe = Probe {
        period_seconds: Some(1),
        failure_threshold: Some(30),
        ..exec_probe(&["check"])
    };
    let (handle, mut rx) = spawn(ProbeKind::Startup, &probe, exec_target(&rt, &id));
    let kind = ProbeKind::Startup;
    assert_eq!(
        next(&mut rx).await,
        failed(kind, "Startup probe failed: starting")
    );
    assert_eq!(
        next(&mut rx).await,
        failed(kind, "Startup probe failed: starting")
    );
    assert_eq!(next(&mut rx).await, changed(kind, true));
    assert!(
        rx.recv().await.is_none(),
        "a started container needs no startup probe"
    );
    assert!(handle.is_finished());
    assert_eq!((Instant::now() - started).as_secs(), 2);

    // Liveness with a 10s initial delay, started 2s after the container: 8s to go.
    let (tx, mut rx) = unbounded_channel();
    let probe = Probe {
        initial_delay_seconds: Some(10),
        ..exec_probe(&["check"])
    };
    let _h = spawn_prober_since(
        ProbeKind::Liveness,
        &probe,
        exec_target(&rt, &id),
        started,
        tx,
    )
    .unwrap();
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Liveness, true));
    assert_eq!((Instant::now() - started).as_secs(), 10);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_probing() {
    let (rt, id) = fake_container().await;
    let probe = Probe {
        period_seconds: Some(1),
        ..exec_probe(&["true"])
    };
    let (handle, mut rx) = spawn(ProbeKind::Readiness, &probe, exec_target(&rt, &id));
    assert_eq!(next(&mut rx).await, changed(ProbeKind::Readiness, true));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(execs(&rt), 4);
    drop(handle);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(execs(&rt), 4);
    assert!(rx.recv().await.is_none());

    // A prober whose receiver is gone stops too.
    let (tx, rx) = unbounded_channel();
    let handle = spawn_prober(ProbeKind::Readiness, &probe, exec_target(&rt, &id), tx).unwrap();
    drop(rx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(handle.is_finished());
}

#[tokio::test]
async fn invalid_probes_start_nothing() {
    let (tx, _rx) = unbounded_channel();
    let target = loopback(80);
    let named = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("metrics".into()),
            host: None,
        }),
        ..Default::default()
    };
    let err = spawn_prober(ProbeKind::Readiness, &named, target.clone(), tx.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Readiness probe of container "app": port: strconv.Atoi: parsing "metrics": invalid syntax"#
    );
    let threshold = Probe {
        success_threshold: Some(3),
        ..exec_probe(&["true"])
    };
    assert!(spawn_prober(ProbeKind::Liveness, &threshold, target.clone(), tx.clone()).is_err());
    assert!(spawn_prober(ProbeKind::Startup, &Probe::default(), target, tx).is_err());
}

// ---------------------------------------------------------------------------------------
// lifecycle hooks

fn pod() -> String {
    pod_desc("web", "ns", "uid-1")
}

#[tokio::test(start_paused = true)]
async fn exec_hooks() {
    let (rt, id) = fake_container().await;
    rt.on_exec(CONTAINER, |cmd| {
        Ok(match cmd.last().map(String::as_str) {
            Some("exit 3") => output(3, "out\n", "oops\n"),
            Some("sleep 100") => {
                return Err(Error::Timeout {
                    what: "exec".into(),
                    after: Duration::ZERO,
                });
            }
            _ => output(0, "", ""),
        })
    });
    let hook = |script: &str| LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        }),
        ..Default::default()
    };
    let target = exec_target(&rt, &id);
    let timeout = Duration::from_secs(30);
    assert_eq!(
        run_handler(&hook("true"), &target, &pod(), timeout).await,
        Ok(())
    );
    assert_eq!(
        run_handler(&hook("exit 3"), &target, &pod(), timeout).await,
        Err(r#"Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web_ns(uid-1)" failed - error: command 'sh -c exit 3' exited with 3: oops
, message: "out\noops\n""#
            .to_string())
    );
    assert_eq!(
        run_handler(&hook("sleep 100"), &target, &pod(), timeout).await,
        Err(r#"Exec lifecycle hook ([sh -c sleep 100]) for Container "app" in Pod "web_ns(uid-1)" failed - error: command "sh -c sleep 100" timed out, message: """#
            .to_string())
    );
    assert!(rt.calls().contains(&Call::Exec(
        id.clone(),
        vec!["sh".into(), "-c".into(), "exit 3".into()]
    )));
}

#[tokio::test]
async fn http_hooks() {
    let server = HttpServer::start(|_| answer(500)).await;
    let hook = |path: &str, scheme: Option<&str>| LifecycleHandler {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("web".into()),
            scheme: scheme.map(String::from),
            ..Default::default()
        }),
        ..Default::default()
    };
    let timeout = Duration::from_secs(5);
    // Any answer will do, even a 500.
    let target = loopback(server.port());
    assert_eq!(
        run_handler(&hook("/start", None), &target, &pod(), timeout).await,
        Ok(())
    );
    let seen = &server.seen()[0];
    assert_eq!(seen.path, "/start");
    assert_eq!(
        seen.header("user-agent").as_deref(),
        Some("kube-lifecycle/1.33")
    );

    // HTTPS answered in plain HTTP: retried over HTTP.
    assert_eq!(
        run_handler(&hook("/tls", Some("HTTPS")), &target, &pod(), timeout).await,
        Ok(())
    );
    assert_eq!(server.seen().last().unwrap().path, "/tls");

    let port = closed_port().await;
    assert_eq!(
        run_handler(&hook("/stop", None), &loopback(port), &pod(), timeout).await,
        Err(format!(
            r#"HTTP lifecycle hook (/stop) for Container "app" in Pod "web_ns(uid-1)" failed - error: Get "http://127.0.0.1:{port}/stop": dial tcp 127.0.0.1:{port}: connect: connection refused"#
        ))
    );

    let mut nowhere = loopback(port);
    nowhere.pod_ip = None;
    assert_eq!(
        run_handler(&hook("/stop", None), &nowhere, &pod(), timeout).await,
        Err(r#"HTTP lifecycle hook (/stop) for Container "app" in Pod "web_ns(uid-1)" failed - error: failed to find networking container"#.to_string())
    );
}

#[tokio::test(start_paused = true)]
async fn sleep_and_unsupported_hooks() {
    let target = loopback(80);
    let sleep = |seconds| LifecycleHandler {
        sleep: Some(SleepAction { seconds }),
        ..Default::default()
    };
    let start = Instant::now();
    assert_eq!(
        run_handler(&sleep(5), &target, &pod(), Duration::from_secs(30)).await,
        Ok(())
    );
    assert_eq!((Instant::now() - start).as_secs(), 5);
    assert_eq!(
        run_handler(&sleep(60), &target, &pod(), Duration::from_secs(30)).await,
        Err(r#"Sleep lifecycle hook (60) for Container "app" in Pod "web_ns(uid-1)" failed - error: container terminated before sleep hook finished"#.to_string())
    );
    assert_eq!((Instant::now() - start).as_secs(), 35);

    let tcp = LifecycleHandler {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(8080),
            host: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        run_handler(&tcp, &target, &pod(), Duration::from_secs(1)).await,
        Err("Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{0 8080 },Host:,},Sleep:nil,}".to_string())
    );
}
