//! Shared helpers for the integration suites: starting skiff processes on free loopback
//! ports in throwaway directories, and driving the real `kubectl` against them.
//!
//! Everything started here is stopped by PID when its guard drops, even when a test fails.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket")?;
    Ok(l.local_addr()?.port())
}

/// A child process killed (SIGKILL, by PID) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        // SAFETY: plain kill(2) on a PID this guard owns and has not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        // SAFETY: as above.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// A `skiff-controlplane` process on its own data directory and port.
pub struct ControlPlane {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub args: Vec<String>,
    pub proc: Option<Proc>,
    pub startup: Duration,
}

impl ControlPlane {
    /// Starts the binary at `bin` with `extra` arguments and waits until it serves.
    pub fn start(bin: &Path, extra: &[&str]) -> Result<ControlPlane> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-cp-")
            .tempdir()
            .context("creating a data dir")?;
        let mut cp = ControlPlane {
            bin: bin.to_path_buf(),
            dir,
            port: free_port()?,
            args: extra.iter().map(|s| s.to_string()).collect(),
            proc: None,
            startup: Duration::ZERO,
        };
        cp.launch()?;
        Ok(cp)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same directory and port; waits for its "ready" line.
    pub fn launch(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--secure-port")
            .arg(self.port.to_string())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let proc = Proc {
            child,
            name: "skiff-controlplane".into(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("ready:") => {}
            Ok(line) => bail!("control plane printed {line:?} instead of ready"),
            Err(_) => bail!("control plane did not become ready within 20 s"),
        }
        self.startup = t0.elapsed();
        self.proc = Some(proc);
        Ok(())
    }

    /// kill -9, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// A `kubectl` command pointed at this server.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("running kubectl {args:?}: {e} (is kubectl on PATH?)"))
    }

    /// Runs kubectl and returns stdout; panics with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs kubectl with `input` on stdin; returns stdout, panics on failure.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin_output(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `input` on stdin, whatever its outcome.
    pub fn kubectl_stdin_output(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// The admin bearer token (for raw HTTP checks).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pki/admin.token"))
            .expect("reading admin token")
            .trim()
            .to_string()
    }
}

/// An `etcd` server on free loopback ports in a throwaway directory.
pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub client_url: String,
    pub proc: Proc,
}

impl Etcd {
    pub fn start() -> Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("skiff-etcd-").tempdir()?;
        let client = free_port()?;
        let peer = free_port()?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(format!("skiff-test-{client}"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("skiff-test-{client}={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (install Debian's etcd-server)")?;
        let proc = Proc {
            child,
            name: "etcd".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return Ok(Etcd {
                    dir,
                    client_url,
                    proc,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("etcd did not listen on {client_url} within 20 s")
    }
}

/// Polls `f` until it returns Some, or panics after `timeout` with `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A binary of another workspace crate, from the target directory this test binary runs
/// in (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo nextest run
/// --workspace` builds every binary before running tests.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary is not under target/<profile>/deps")?;
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} not built: run the tests with `cargo nextest run --workspace` (or `cargo build --workspace` first)",
            bin.display()
        );
    }
    Ok(bin)
}
