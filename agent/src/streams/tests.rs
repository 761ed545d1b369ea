//! Sessions end to end over in-memory connections, against the fake runtime: the channel
//! protocols over WebSocket and SPDY, and port-forward stream pairing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::channel::{self, Streams};
use super::session;
use super::spdy;
use super::websocket::{self, Message};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::labels::ContainerMeta;
use crate::runtime::{ContainerSpec, ExecOptions, ExecOutput, ImageConfig, Runtime, TermSize};

async fn running(rt: &FakeRuntime) {
    rt.add_image(ImageConfig {
        name: "img".into(),
        ..Default::default()
    });
    let mut s = ContainerSpec::new("c1", "img");
    s.meta = Some(ContainerMeta {
        pod_uid: "u".into(),
        container_name: "app".into(),
        ..Default::default()
    });
    rt.create_container(&s).await.unwrap();
    rt.start("c1").await.unwrap();
}

fn opts(cmd: &[&str], stdin: bool, tty: bool) -> ExecOptions {
    ExecOptions {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout: true,
        stderr: !tty,
        tty,
        size: None,
    }
}

/// Serves an exec over WebSocket on one end of a pipe; the test is the client on the other.
fn ws_exec(rt: Arc<FakeRuntime>, o: ExecOptions, v5: bool) -> DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(channel::serve_websocket(
        server,
        v5,
        move |pipes| async move { session::exec(rt, "c1", o, pipes).await },
    ));
    client
}

async fn send(c: &mut DuplexStream, ch: u8, data: &[u8]) {
    let mut b = vec![ch];
    b.extend_from_slice(data);
    c.write_all(&websocket::encode(
        &Message::Binary(b.into()),
        Some([9, 8, 7, 6]),
    ))
    .await
    .unwrap();
}

/// Reads messages until the close: what came on each channel.
async fn ws_collect(c: DuplexStream) -> (Vec<u8>, Vec<u8>, serde_json::Value) {
    let mut r = websocket::Reader::new(c);
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), serde_json::Value::Null);
    while let Some(m) = tokio::time::timeout(Duration::from_secs(5), r.next())
        .await
        .unwrap()
        .unwrap()
    {
        match m {
            Message::Binary(b) => match b[0] {
                channel::STDOUT => out.extend_from_slice(&b[1..]),
                channel::STDERR => err.extend_from_slice(&b[1..]),
                channel::ERROR => status = serde_json::from_slice(&b[1..]).unwrap(),
                other => panic!("channel {other}"),
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    (out, err, status)
}

#[tokio::test]
async fn websocket_exec_reports_output_and_exit_code() {
    let rt = Arc::new(FakeRuntime::new());
    running(&rt).await;
    rt.on_exec("app", |_| {
        Ok(ExecOutput {
            exit_code: 3,
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        })
    });
    let c = ws_exec(
        rt.clone(),
        opts(&["sh", "-c", "exit 3"], false, false),
        false,
    );
    let (out, err, status) = ws_collect(c).await;
    assert_eq!(out, b"out");
    assert_eq!(err, b"err");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
}

#[tokio::test]
async fn websocket_v5_stdin_close_ends_cat_and_resizes_pass_through() {
    let rt = Arc::new(FakeRuntime::new());
    running(&rt).await;
    let mut c = ws_exec(rt.clone(), opts(&["cat"], true, true), true);
    send(&mut c, channel::RESIZE, br#"{"Width":120,"Height":30}"#).await;
    send(&mut c, channel::STDIN, b"hello ").await;
    send(&mut c, channel::STDIN, b"world").await;
    send(&mut c, channel::CLOSE, &[channel::STDIN]).await;
    let (out, err, status) = ws_collect(c).await;
    assert_eq!(out, b"hello world");
    assert!(err.is_empty());
    assert_eq!(status["status"], "Success");
    assert_eq!(
        rt.streams().resizes,
        vec![TermSize {
            width: 120,
            height: 30
        }]
    );
    assert_eq!(rt.streams().finished, 1);
}

#[tokio::test]
async fn a_dropped_client_ends_the_exec() {
    let rt = Arc::new(FakeRuntime::new());
    running(&rt).await;
    let mut c = ws_exec(rt.clone(), opts(&["sleep"], true, false), true);
    send(&mut c, channel::STDIN, b"x").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);
    for _ in 0..100 {
        if rt.streams().cancelled == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("exec not cancelled: {:?}", rt.streams());
}

#[tokio::test]
async fn exec_in_a_stopped_container_is_an_error_status() {
    let rt = Arc::new(FakeRuntime::new());
    running(&rt).await;
    rt.exit("c1", 0).unwrap();
    let c = ws_exec(rt.clone(), opts(&["ls"], false, false), true);
    let (_, _, status) = ws_collect(c).await;
    assert_eq!(status["status"], "Failure");
    let msg = status["message"].as_str().unwrap();
    assert!(msg.contains("is not running"), "{msg}");
}

/// A SPDY client's view of an exec: opens the streams, returns their ids and readers.
#[tokio::test]
async fn spdy_exec_with_stdin_and_exit_code() {
    let rt = Arc::new(FakeRuntime::new());
    running(&rt).await;
    let (client, server) = tokio::io::duplex(1 << 16);
    let o = opts(&["cat"], true, false);
    let want = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let rt2 = rt.clone();
    tokio::spawn(channel::serve_spdy(
        server,
        4,
        want,
        move |pipes| async move { session::exec(rt2, "c1", o, pipes).await },
    ));
    let (w, _incoming) = spdy::connect(client, false);
    let h = |t: &str| vec![("streamtype".to_string(), t.to_string())];
    let (_e, mut error) = w.open(h("error")).await.unwrap();
    let (stdin, _) = w.open(h("stdin")).await.unwrap();
    let (_o, mut stdout) = w.open(h("stdout")).await.unwrap();
    let (_r, mut stderr) = w.open(h("stderr")).await.unwrap();
    w.data(stdin, Bytes::from_static(b"via spdy"))
        .await
        .unwrap();
    w.fin(stdin).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = stdout.recv().await {
        out.extend_from_slice(&b);
    }
    assert_eq!(out, b"via spdy");
    assert_eq!(stderr.recv().await, None);
    let mut status = Vec::new();
    while let Some(b) = error.recv().await {
        status.extend_from_slice(&b);
    }
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["status"], "Success");
}

#[tokio::test]
async fn port_forward_pairs_streams_by_request_id() {
    // A server in our own network namespace stands in for the pod's.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64];
                let n = s.read(&mut buf).await.unwrap();
                s.write_all(&[b"echo:", &buf[..n]].concat()).await.unwrap();
            });
        }
    });
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let netns = std::path::PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(super::portforward::serve(server, netns));
    let (w, _incoming) = spdy::connect(client, false);
    let h = |t: &str, port: u16, req: u32| {
        vec![
            ("streamtype".to_string(), t.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), req.to_string()),
        ]
    };
    // Two connections at once, their streams interleaved; a third to a closed port.
    let (_e0, err0) = w.open(h("error", port, 0)).await.unwrap();
    let (_e1, err1) = w.open(h("error", port, 1)).await.unwrap();
    let (d1, data1) = w.open(h("data", port, 1)).await.unwrap();
    let (d0, data0) = w.open(h("data", port, 0)).await.unwrap();
    let (_e2, err2) = w.open(h("error", closed_port, 2)).await.unwrap();
    let (_d2, mut data2) = w.open(h("data", closed_port, 2)).await.unwrap();
    w.data(d0, Bytes::from_static(b"zero")).await.unwrap();
    w.data(d1, Bytes::from_static(b"one")).await.unwrap();
    let collect = |mut rx: tokio::sync::mpsc::Receiver<Bytes>| async move {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            v.extend_from_slice(&b);
        }
        String::from_utf8(v).unwrap()
    };
    assert_eq!(collect(data0).await, "echo:zero");
    assert_eq!(collect(data1).await, "echo:one");
    assert_eq!(collect(err0).await, "");
    assert_eq!(collect(err1).await, "");
    let msg = collect(err2).await;
    assert!(
        msg.starts_with(&format!(
            "error forwarding port {closed_port} to pod net, uid : "
        )),
        "{msg}"
    );
    assert!(msg.contains("connect: connection refused"), "{msg}");
    assert_eq!(data2.recv().await, None);
}

#[tokio::test]
async fn attach_follows_the_log_and_writes_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("0.log");
    std::fs::write(&log, "2024-01-01T00:00:00Z stdout F before the attach\n").unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image(ImageConfig {
        name: "img".into(),
        ..Default::default()
    });
    let mut s = ContainerSpec::new("c1", "img");
    s.stdin = true;
    s.log = crate::runtime::spec::LogTarget::File(log.clone());
    rt.create_container(&s).await.unwrap();
    rt.start("c1").await.unwrap();

    let (mut client, server) = tokio::io::duplex(1 << 16);
    let rt2 = rt.clone();
    tokio::spawn(channel::serve_websocket(
        server,
        true,
        move |pipes| async move { session::attach(rt2, "c1", true, true, true, pipes).await },
    ));
    send(&mut client, channel::STDIN, b"typed\n").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"2024-01-01T00:00:01Z stdout F out line\n2024-01-01T00:00:01Z stderr P err ")
            .unwrap();
        f.write_all(b"\n2024-01-01T00:00:01Z stderr F part\n")
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    rt.exit("c1", 0).unwrap();
    let (out, err, status) = ws_collect(client).await;
    assert_eq!(String::from_utf8(out).unwrap(), "out line\n");
    assert_eq!(String::from_utf8(err).unwrap(), "err part\n");
    assert_eq!(status["status"], "Success");
    assert_eq!(rt.streams().attach_input, b"typed\n");
    // Without a terminal, resizes are not passed on.
    assert_eq!(rt.streams().resizes, vec![]);
}

#[tokio::test]
async fn attach_to_a_terminal_passes_resizes_on() {
    let rt = Arc::new(FakeRuntime::new());
    rt.add_image(ImageConfig {
        name: "img".into(),
        ..Default::default()
    });
    let mut s = ContainerSpec::new("c1", "img");
    s.stdin = true;
    s.tty = true;
    rt.create_container(&s).await.unwrap();
    rt.start("c1").await.unwrap();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let rt2 = rt.clone();
    tokio::spawn(channel::serve_websocket(
        server,
        true,
        move |pipes| async move { session::attach(rt2, "c1", true, true, false, pipes).await },
    ));
    send(&mut client, channel::RESIZE, br#"{"Width":90,"Height":20}"#).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.exit("c1", 0).unwrap();
    let (_, _, status) = ws_collect(client).await;
    assert_eq!(status["status"], "Success");
    assert_eq!(
        rt.streams().resizes,
        vec![TermSize {
            width: 90,
            height: 20
        }]
    );
}

#[test]
fn attach_refusals() {
    assert_eq!(session::attach_refusal(true, true, true, true, "app"), None);
    let stdin = session::attach_refusal(false, true, true, false, "app").unwrap();
    assert!(stdin.contains("stdin"), "{stdin}");
    let tty = session::attach_refusal(true, false, false, true, "app").unwrap();
    assert!(tty.contains("tty"), "{tty}");
}

#[tokio::test]
async fn a_dropped_port_forward_client_closes_its_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (eof_tx, mut eof_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        // Never writes, never closes: only the agent can end this connection.
        let mut buf = [0u8; 16];
        while s.read(&mut buf).await.unwrap_or(0) > 0 {}
        let _ = eof_tx.send(()).await;
        std::future::pending::<()>().await;
    });
    let netns = std::path::PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(super::portforward::serve(server, netns));
    let (w, incoming) = spdy::connect(client, false);
    let h = |t: &str| {
        vec![
            ("streamtype".to_string(), t.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), "0".to_string()),
        ]
    };
    let (_e, _err) = w.open(h("error")).await.unwrap();
    let (d, _data) = w.open(h("data")).await.unwrap();
    w.data(d, Bytes::from_static(b"x")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.close().await;
    drop((w, incoming));
    tokio::time::timeout(Duration::from_secs(5), eof_rx.recv())
        .await
        .expect("the pod's side of the connection was not closed")
        .unwrap();
}
