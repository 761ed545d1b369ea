//! Interactive sessions against a real containerd: each test starts its own supervised
//! containerd, runs a busybox container, serves the session functions from a small HTTP
//! server on loopback and speaks the protocols to it as kubectl does (WebSocket channels,
//! SPDY/3.1 streams, port-forward over SPDY and over WebSocket).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::host::{remove_cgroups, unique, unmount_under};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use skiff_agent::runtime::containerd::Containerd;
use skiff_agent::runtime::spec::LogTarget;
use skiff_agent::runtime::supervise::{self, SuperviseConfig, Supervisor};
use skiff_agent::runtime::testimage::TestImage;
use skiff_agent::runtime::{ContainerSpec, Runtime};
use skiff_agent::streams::channel;
use skiff_agent::streams::spdy;
use skiff_agent::streams::websocket::{self, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const NAMESPACE: &str = "skiff";
const IMAGE: &str = "skiff.test/busybox:1";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Env {
    dir: PathBuf,
    cgroup_parent: String,
    sup: Option<Supervisor>,
    socket: PathBuf,
    exec_dir: PathBuf,
    rt: Arc<Containerd>,
}

impl Env {
    async fn new(tag: &str) -> Env {
        let name = unique(&format!("skiff-streams-{tag}"));
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let sup = Supervisor::start(SuperviseConfig::new(&dir)).await.unwrap();
        let socket = sup.socket().to_path_buf();
        let cfg = sup.client_config(NAMESPACE);
        let exec_dir = cfg.exec_dir.clone();
        let rt = Arc::new(Containerd::connect(cfg).await.unwrap());
        let env = Env {
            cgroup_parent: format!("/{name}"),
            dir,
            sup: Some(sup),
            socket,
            exec_dir,
            rt,
        };
        let archive = env.dir.join("busybox.tar");
        TestImage::busybox(IMAGE)
            .write_oci_archive(&archive)
            .unwrap();
        env.rt.import_archive(&archive).await.unwrap();
        env
    }

    /// Runs a container with a network namespace of its own; its id and first pid.
    async fn run(&self, tag: &str, command: &[&str]) -> (String, u32) {
        let id = unique(tag);
        let mut s = ContainerSpec::new(&id, IMAGE);
        s.command = command.iter().map(|a| a.to_string()).collect();
        s.cgroups_path = Some(format!("{}/{id}", self.cgroup_parent));
        s.log = LogTarget::Null;
        let id = self.rt.create_container(&s).await.unwrap();
        let pid = self.rt.start(&id).await.unwrap();
        (id, pid)
    }

    /// Serves `/exec/…?…` on container `id` and `/portForward` into process `pid`'s network
    /// namespace, as the agent's HTTPS server would.
    async fn serve(&self, id: &str, pid: u32) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rt: Arc<dyn Runtime> = self.rt.clone();
        let id = id.to_string();
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (rt, id, netns) = (rt.clone(), id.clone(), netns.clone());
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (rt, id, netns) = (rt.clone(), id.clone(), netns.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let res = if path.starts_with("/exec/") {
                            skiff_agent::streams::exec(req, rt, id).await
                        } else {
                            skiff_agent::streams::port_forward(req, netns).await
                        };
                        Ok::<_, std::convert::Infallible>(res)
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        addr
    }

    fn exec_dir_entries(&self) -> Vec<String> {
        match std::fs::read_dir(&self.exec_dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn finish(mut self) {
        for c in self.rt.list().await.unwrap() {
            self.rt.delete(&c.id).await.unwrap();
        }
        if let Some(sup) = self.sup.take() {
            sup.stop().await.unwrap();
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.sup.take());
        for pid in supervise::kill_shims(&self.socket) {
            eprintln!("killed shim {pid}");
        }
        remove_cgroups(&self.cgroup_parent);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends an upgrade request and reads the response head; the connection is left right
/// after it.
async fn upgrade(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("POST {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "connection closed in the response head"
        );
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

fn query(cmd: &[&str], flags: &str) -> String {
    let mut q = String::from("/exec/ns/pod/c?");
    for c in cmd {
        q.push_str(&format!(
            "command={}&",
            url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        ));
    }
    q.push_str(flags);
    q
}

async fn ws_exec(addr: SocketAddr, cmd: &[&str], flags: &str) -> TcpStream {
    let (s, head) = upgrade(
        addr,
        &query(cmd, flags),
        &[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            (
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            ),
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(
        lower.contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    s
}

async fn ws_send(s: &mut (impl AsyncWriteExt + Unpin), ch: u8, data: &[u8]) {
    let mut b = vec![ch];
    b.extend_from_slice(data);
    websocket::write(s, &Message::Binary(b.into()), Some([1, 2, 3, 4]))
        .await
        .unwrap();
}

/// Everything on stdout, stderr and the error channel until the server closes.
async fn ws_read_all(rd: impl tokio::io::AsyncRead + Unpin) -> (String, String, serde_json::Value) {
    let mut r = websocket::Reader::new(rd);
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), serde_json::Value::Null);
    loop {
        let m = tokio::time::timeout(TIMEOUT, r.next())
            .await
            .unwrap()
            .unwrap();
        match m {
            Some(Message::Binary(b)) => match b[0] {
                channel::STDOUT => out.extend_from_slice(&b[1..]),
                channel::STDERR => err.extend_from_slice(&b[1..]),
                channel::ERROR => status = serde_json::from_slice(&b[1..]).unwrap(),
                _ => {}
            },
            Some(Message::Close(_)) | None => break,
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        status,
    )
}

#[tokio::test]
async fn exec_over_websocket_with_stdin_and_exit_code() {
    let env = Env::new("ws").await;
    let (id, pid) = env.run("ws", &["sleep", "1000"]).await;
    let addr = env.serve(&id, pid).await;

    let mut s = ws_exec(
        addr,
        &["sh", "-c", "cat; echo done >&2; exit 7"],
        "stdin=1&stdout=1&stderr=1",
    )
    .await;
    ws_send(&mut s, channel::STDIN, b"from stdin\n").await;
    ws_send(&mut s, channel::CLOSE, &[channel::STDIN]).await;
    let (out, err, status) = ws_read_all(s).await;
    assert_eq!(out, "from stdin\n");
    assert_eq!(err, "done\n");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");

    // Success, and a missing command is an error status.
    let s = ws_exec(addr, &["true"], "stdout=1").await;
    assert_eq!(ws_read_all(s).await.2["status"], "Success");
    let s = ws_exec(addr, &["no-such-command"], "stdout=1").await;
    let status = ws_read_all(s).await.2;
    assert_eq!(status["status"], "Failure");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("no-such-command"),
        "{status}"
    );
    assert_eq!(env.exec_dir_entries(), Vec::<String>::new());
    env.finish().await;
}

#[tokio::test]
async fn tty_exec_with_a_resize() {
    let env = Env::new("tty").await;
    let (id, pid) = env.run("tty", &["sleep", "1000"]).await;
    let addr = env.serve(&id, pid).await;

    let mut s = ws_exec(
        addr,
        &["sh", "-c", "read line; stty size; exit 4"],
        "stdin=1&stdout=1&tty=1",
    )
    .await;
    ws_send(&mut s, channel::RESIZE, br#"{"Width":123,"Height":45}"#).await;
    // The resize is applied before the line that makes the shell ask for the size.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws_send(&mut s, channel::STDIN, b"go\n").await;
    let (out, err, status) = ws_read_all(s).await;
    assert!(out.contains("45 123"), "{out:?}");
    // A terminal has one output stream.
    assert_eq!(err, "");
    assert_eq!(status["details"]["causes"][0]["message"], "4", "{status}");
    env.finish().await;
}

#[tokio::test]
async fn exec_over_spdy_and_a_dropped_client() {
    let env = Env::new("spdy").await;
    let (id, pid) = env.run("spdy", &["sleep", "1000"]).await;
    let addr = env.serve(&id, pid).await;

    let (s, head) = upgrade(
        addr,
        &query(&["sh", "-c", "cat; exit 2"], "stdin=1&stdout=1&stderr=1"),
        &[
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
            ("X-Stream-Protocol-Version", "v3.channel.k8s.io"),
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    let (w, _incoming) = spdy::connect(s, false);
    let h = |t: &str| vec![("streamType".to_string(), t.to_string())];
    let (_e, mut error) = w.open(h("error")).await.unwrap();
    let (stdin, _) = w.open(h("stdin")).await.unwrap();
    let (_o, mut stdout) = w.open(h("stdout")).await.unwrap();
    let (_r, _stderr) = w.open(h("stderr")).await.unwrap();
    w.data(stdin, Bytes::from_static(b"over spdy"))
        .await
        .unwrap();
    w.fin(stdin).await.unwrap();
    let out = collect(&mut stdout).await;
    assert_eq!(out, "over spdy");
    let status: serde_json::Value = serde_json::from_str(&collect(&mut error).await).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "2", "{status}");

    // A client that goes away mid-exec: the process is killed and nothing is left.
    let mut s = ws_exec(
        addr,
        &["sh", "-c", "echo started; exec sleep 1000"],
        "stdout=1",
    )
    .await;
    let mut r = websocket::Reader::new(&mut s);
    let first = tokio::time::timeout(TIMEOUT, r.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        Some(Message::Binary(Bytes::from_static(b"\x01started\n")))
    );
    drop(r);
    drop(s);
    let mut left = String::new();
    for _ in 0..100 {
        let out = env
            .rt
            .exec_sync(&id, &["ps".into()], Duration::from_secs(10))
            .await
            .unwrap();
        left = String::from_utf8_lossy(&out.stdout).into_owned();
        if !left.contains("sleep 1000\n") || left.matches("sleep 1000").count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only the container's own `sleep 1000` is left.
    assert_eq!(left.matches("sleep 1000").count(), 1, "{left}");
    assert_eq!(env.exec_dir_entries(), Vec::<String>::new());
    env.finish().await;
}

async fn collect(rx: &mut mpsc::Receiver<Bytes>) -> String {
    let mut v = Vec::new();
    while let Some(b) = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap() {
        v.extend_from_slice(&b);
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// One port-forwarded HTTP request: the response, and what came on the error stream.
async fn forwarded_get(w: &spdy::Writer, port: u16, request_id: u32) -> (String, String) {
    let h = |t: &str| {
        vec![
            ("streamType".to_string(), t.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestID".to_string(), request_id.to_string()),
        ]
    };
    let (_e, mut error) = w.open(h("error")).await.unwrap();
    let (data, mut rx) = w.open(h("data")).await.unwrap();
    w.data(
        data,
        Bytes::from_static(b"GET /index.html HTTP/1.0\r\n\r\n"),
    )
    .await
    .unwrap();
    let body = collect(&mut rx).await;
    (body, collect(&mut error).await)
}

const HTTPD: &[&str] = &[
    "sh",
    "-c",
    "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 80 -h /www",
];

#[tokio::test]
async fn port_forward_over_websocket_and_spdy() {
    let env = Env::new("pf").await;
    let (id, pid) = env.run("pf", HTTPD).await;
    let addr = env.serve(&id, pid).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // kubectl 1.32's first choice: SPDY frames inside WebSocket binary messages.
    let (s, head) = upgrade(
        addr,
        "/portForward/ns/pod",
        &[
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io"),
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let tunnel = client_tunnel(s);
    let (w, _incoming) = spdy::connect(tunnel, false);
    // Several connections at once.
    let (a, b, refused) = tokio::join!(
        forwarded_get(&w, 80, 0),
        forwarded_get(&w, 80, 1),
        forwarded_get(&w, 81, 2)
    );
    for (body, err) in [a, b] {
        assert!(
            body.starts_with("HTTP/1.") && body.ends_with("hello-from-pod\n"),
            "{body}"
        );
        assert_eq!(err, "");
    }
    let (body, err) = refused;
    assert_eq!(body, "");
    assert!(err.starts_with("error forwarding port 81 to pod "), "{err}");
    assert!(err.contains("connect: connection refused"), "{err}");

    // The fallback: a plain SPDY/3.1 upgrade.
    let (s, head) = upgrade(
        addr,
        "/portForward/ns/pod",
        &[
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", "portforward.k8s.io"),
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (w, _incoming) = spdy::connect(s, false);
    let (body, err) = forwarded_get(&w, 80, 0).await;
    assert!(body.ends_with("hello-from-pod\n"), "{body}");
    assert_eq!(err, "");
    env.finish().await;
}

/// The client's end of a WebSocket tunnel: a byte stream whose writes go out as masked
/// binary messages.
fn client_tunnel(s: TcpStream) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (rd, mut wr) = s.into_split();
    let (mut brd, mut bwr) = tokio::io::split(ours);
    tokio::spawn(async move {
        let mut r = websocket::Reader::new(rd);
        while let Ok(Some(Message::Binary(b))) = r.next().await {
            if bwr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = bwr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = brd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
            if websocket::write(&mut wr, &m, Some([5, 6, 7, 8]))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    theirs
}

#[tokio::test]
async fn attach_writes_to_the_main_process_stdin() {
    let env = Env::new("attach").await;
    let id = unique("attach");
    let mut s = ContainerSpec::new(&id, IMAGE);
    s.command = [
        "sh",
        "-c",
        "read x; echo got-$x > /tmp/out; read y; echo end-$y >> /tmp/out; exec sleep 1000",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    s.cgroups_path = Some(format!("{}/{id}", env.cgroup_parent));
    s.log = LogTarget::File(env.dir.join("attach.log"));
    s.stdin = true;
    s.stdin_once = true;
    env.rt.create_container(&s).await.unwrap();
    env.rt.start(&id).await.unwrap();

    // Nothing attached yet: the process waits for input instead of reading end-of-file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = |path: &'static str| {
        let rt = env.rt.clone();
        let id = id.clone();
        async move {
            let out = rt
                .exec_sync(&id, &["cat".into(), path.into()], Duration::from_secs(10))
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    assert_eq!(read("/tmp/out").await, "");

    let target = env.rt.attach(&id, true).await.unwrap();
    assert!(target.stdin_enabled && target.running && !target.tty);
    assert_eq!(target.log_path, Some(env.dir.join("attach.log")));
    let mut stdin = target.stdin.unwrap();
    stdin.write_all(b"one\n").await.unwrap();
    let mut out = String::new();
    for _ in 0..50 {
        out = read("/tmp/out").await;
        if !out.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(out, "got-one\n");
    // stdinOnce: the end of the first session is the end of the process's input.
    drop(stdin);
    for _ in 0..50 {
        out = read("/tmp/out").await;
        if out.contains("end-") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(out, "got-one\nend-\n");
    env.finish().await;
}

#[tokio::test]
async fn a_terminal_container_is_resized_for_attach() {
    let env = Env::new("ttymain").await;
    let id = unique("ttymain");
    let mut s = ContainerSpec::new(&id, IMAGE);
    s.command = vec![
        "sh".into(),
        "-c".into(),
        "echo on-the-terminal; exec sleep 1000".into(),
    ];
    s.cgroups_path = Some(format!("{}/{id}", env.cgroup_parent));
    // A logging binary in containerd's protocol (streams on fds 3 and 4, ready once fd 5
    // is closed): the shim copies a terminal only to one.
    let logger = env.dir.join("logger.sh");
    let log = env.dir.join("tty.log");
    std::fs::write(
        &logger,
        format!("#!/bin/sh\nexec 5>&-\nexec cat <&3 >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    s.log = LogTarget::Binary {
        path: logger,
        args: Vec::new(),
    };
    s.stdin = true;
    s.tty = true;
    env.rt.create_container(&s).await.unwrap();
    env.rt.start(&id).await.unwrap();
    let target = env.rt.attach(&id, false).await.unwrap();
    assert!(target.tty && target.running);

    env.rt
        .resize_tty(
            &id,
            skiff_agent::runtime::TermSize {
                width: 77,
                height: 22,
            },
        )
        .await
        .unwrap();
    let out = env
        .rt
        .exec_sync(
            &id,
            &[
                "stty".into(),
                "-F".into(),
                "/dev/console".into(),
                "size".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "22 77\n", "{out:?}");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("on-the-terminal") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A terminal ends lines with CR LF.
    assert!(text.contains("on-the-terminal\r\n"), "{text:?}");

    // Logged to a file, a container that asks for a terminal runs without one.
    let id2 = unique("ttyfile");
    let mut s2 = ContainerSpec::new(&id2, IMAGE);
    s2.command = vec!["sleep".into(), "1000".into()];
    s2.cgroups_path = Some(format!("{}/{id2}", env.cgroup_parent));
    s2.log = LogTarget::File(env.dir.join("file.log"));
    s2.tty = true;
    env.rt.create_container(&s2).await.unwrap();
    env.rt.start(&id2).await.unwrap();
    assert!(!env.rt.attach(&id2, false).await.unwrap().tty);
    env.finish().await;
}
