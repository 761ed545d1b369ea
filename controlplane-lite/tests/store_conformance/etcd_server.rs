//! A throwaway single-member etcd for one test: loopback ports only, a fresh data dir, a
//! unique member name; killed by PID and its directory removed when the guard drops, also
//! when the test panics.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where the etcd binary is looked for, unless `SKIFF_TEST_ETCD` names one.
const ETCD_CANDIDATES: &[&str] = &["/usr/bin/etcd", "/usr/local/bin/etcd"];
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

static SERVERS: AtomicUsize = AtomicUsize::new(0);

pub struct EtcdServer {
    child: Child,
    endpoint: String,
    // Declared last: removed after the process is gone.
    _dir: TempDir,
}

fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SKIFF_TEST_ETCD") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"));
    ETCD_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the etcd store tests need an `etcd` binary (Debian package etcd-server), \
                 and none was found in {ETCD_CANDIDATES:?} or on PATH; \
                 set SKIFF_TEST_ETCD to its path"
            )
        })
}

/// Two distinct free loopback ports. Another process could take one before etcd binds it;
/// `start` retries with new ports if etcd exits early.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    (
        a.local_addr().expect("port").port(),
        b.local_addr().expect("port").port(),
    )
}

impl EtcdServer {
    pub async fn start() -> Self {
        let bin = etcd_binary();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin).await {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "etcd ({}) did not start after {START_ATTEMPTS} attempts:\n{}",
            bin.display(),
            failures.join("\n---\n")
        );
    }

    async fn try_start(bin: &PathBuf) -> Result<Self, String> {
        let (client_port, peer_port) = free_ports();
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let name = format!(
            "skiff-test-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        );
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.path().join("etcd.log");
        let log = File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&name)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .args(["--initial-cluster-token", &name])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. It ties
        // etcd to this thread, so even a test process killed outright leaves no etcd behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut server = Self {
            child,
            endpoint: client_url,
            _dir: dir,
        };
        server.wait_ready(&log_path).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, log_path: &PathBuf) -> Result<(), String> {
        let log = || std::fs::read_to_string(log_path).unwrap_or_default();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited with {status}; its log:\n{}", log()));
            }
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(2));
            if let Ok(mut client) =
                etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await
                && client.get("ready-probe", None).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd did not answer on {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.endpoint,
                    log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops etcd with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
