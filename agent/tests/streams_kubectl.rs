//! `kubectl exec`, `cp` and `port-forward` end to end: the real kubectl, through the API
//! server's pod subresources, to the agent's sessions on real containerd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn running(p: &serde_json::Value, name: &str) -> bool {
    container_status(p, name)["state"]["running"].is_object()
}

/// Sends one HTTP/1.0 GET through `port` on loopback and returns the whole answer.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts `kubectl port-forward pod/web 0:<remote>` and returns it with the local port it
/// chose.
fn port_forward(c: &Cluster, remote: u16) -> (std::process::Child, u16) {
    let mut pf =
        c.cp.kubectl_cmd(&["port-forward", "pod/web", &format!("0:{remote}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(pf.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line:?}"));
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = lines.read_to_string(&mut sink);
    });
    (pf, port)
}

#[test]
fn exec_cp_and_port_forward_with_kubectl() {
    let c = Cluster::start("node-kstream", &[]);
    c.apply(&pod_yaml(
        "web",
        "node-kstream",
        "",
        "    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/etc\"]",
    ));
    c.wait_pod("web", "running", Duration::from_secs(30), |p| {
        running(p, "app")
    });
    let cp = &c.cp;

    // exec: output on both streams and the exit code.
    let out = cp.kubectl(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    assert_eq!(cp.kubectl_ok(&["exec", "web", "--", "true"]), "");
    // exec with stdin.
    assert_eq!(
        cp.kubectl_stdin(&["exec", "-i", "web", "--", "cat"], "through stdin\n"),
        "through stdin\n"
    );
    // Errors in Kubernetes' words.
    let err = cp.kubectl_err(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    // exec -it: the process starts with the client's terminal size. `script` gives kubectl
    // a terminal of its own, sized first.
    let inner = format!(
        "stty cols 123 rows 45; kubectl --kubeconfig {} exec -it web -- stty size",
        cp.kubeconfig().display()
    );
    // The agent waits up to a second for kubectl's first size; a kubectl starved of CPU by
    // a loaded machine can be slower, so a few tries are allowed (without the wait, every
    // try fails).
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = std::process::Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("45 123") {
            seen.clear();
            break;
        }
        seen.push(text);
    }
    assert!(seen.is_empty(), "{seen:?}");

    // cp both ways (exec and tar underneath).
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("up.txt");
    std::fs::write(&local, "copied up\n").unwrap();
    cp.kubectl_ok(&["cp", local.to_str().unwrap(), "web:/tmp/up.txt"]);
    assert_eq!(
        cp.kubectl_ok(&["exec", "web", "--", "cat", "/tmp/up.txt"]),
        "copied up\n"
    );
    let back = dir.path().join("hostname");
    cp.kubectl_ok(&["cp", "web:/etc/hostname", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap().trim(), "web");

    // port-forward: HTTP through it, two connections at once.
    let (mut pf, port) = port_forward(&c, 8080);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| get(port, "/hostname"));
        let b = s.spawn(|| get(port, "/hostname"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for answer in [a, b] {
        assert!(
            answer.starts_with("HTTP/1.") && answer.ends_with("web\n"),
            "{answer}"
        );
    }
    let _ = pf.kill();
    let _ = pf.wait();

    // A port nothing listens on: the connection is closed, kubectl reports why.
    let (mut pf, port) = port_forward(&c, 81);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let _ = pf.kill();
    let out = pf.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error forwarding port 81") && err.contains("connection refused"),
        "{err}"
    );
}
