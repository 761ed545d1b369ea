//! A private `docker-registry` for pull tests: its own config, storage, certificates and
//! passwords in a temporary directory, stopped by PID and removed on drop, with a pusher for
//! locally built images over the distribution API.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use skiff_agent::runtime::image::{Descriptor, media_type};
use skiff_agent::runtime::testimage::BuiltImage;

pub const USER: &str = "puller";
pub const PASSWORD: &str = "s3cret-pass";

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What kind of registry to start.
#[derive(Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate for 127.0.0.1 from a CA made for the test.
    pub tls: bool,
    /// Require Basic authentication (htpasswd) as USER / PASSWORD.
    pub htpasswd: bool,
}

/// A `docker-registry` process serving from a private directory.
pub struct Registry {
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// `127.0.0.1:port`, as image names write it.
    pub host: String,
    pub scheme: &'static str,
    pub ca: Option<PathBuf>,
    pub auth: bool,
    pub http: reqwest::Client,
}

impl Registry {
    pub async fn start(opts: RegistryOptions) -> Registry {
        let dir = std::env::temp_dir().join(unique("skiff-registry"));
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut http_cfg = format!("  addr: {host}\n  secret: skiff-test-secret\n");
        let mut auth_cfg = String::new();
        let mut ca = None;
        let mut client = reqwest::Client::builder().use_rustls_tls();
        if opts.tls {
            let (ca_pem, cert_pem, key_pem) = test_pki();
            let paths = [
                ("ca.pem", &ca_pem),
                ("cert.pem", &cert_pem),
                ("key.pem", &key_pem),
            ];
            for (name, pem) in paths {
                std::fs::write(dir.join(name), pem).unwrap();
            }
            http_cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("cert.pem").display(),
                dir.join("key.pem").display()
            ));
            client = client
                .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
            ca = Some(dir.join("ca.pem"));
        }
        if opts.htpasswd {
            let hash = bcrypt::hash(PASSWORD, 5).unwrap();
            std::fs::write(dir.join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n{http_cfg}{auth_cfg}",
            dir.join("storage").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("access.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) must be installed");
        let reg = Registry {
            dir,
            child: Some(child),
            host,
            scheme: if opts.tls { "https" } else { "http" },
            ca,
            auth: opts.htpasswd,
            http: client.build().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if reg.http.get(reg.url("/v2/")).send().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reg
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.host)
    }

    pub fn image(&self, repo_and_ref: &str) -> String {
        format!("{}/{repo_and_ref}", self.host)
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        if self.auth {
            r.basic_auth(USER, Some(PASSWORD))
        } else {
            r
        }
    }

    /// Uploads a blob (POST then a monolithic PUT, as the distribution spec allows).
    pub async fn push_blob(&self, repo: &str, desc: &Descriptor, bytes: &[u8]) {
        let resp = self
            .request(
                reqwest::Method::POST,
                &self.url(&format!("/v2/{repo}/blobs/uploads/")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            202,
            "start upload: {}",
            resp.text().await.unwrap()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let mut url = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", desc.digest));
        let resp = self
            .request(reqwest::Method::PUT, &url)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "upload: {}", resp.text().await.unwrap());
    }

    pub async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let resp = self
            .request(
                reqwest::Method::PUT,
                &self.url(&format!("/v2/{repo}/manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "push manifest: {}",
            resp.text().await.unwrap()
        );
    }

    /// Pushes the image's blobs, then its manifest under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, built: &BuiltImage) {
        for (desc, bytes) in &built.blobs {
            if desc.digest != built.manifest.digest {
                self.push_blob(repo, desc, bytes).await;
            }
        }
        let manifest = built.blob(&built.manifest.digest).unwrap();
        self.push_manifest(repo, tag, media_type::OCI_MANIFEST, manifest)
            .await;
    }

    /// How many requests the registry served whose request line starts with `prefix`
    /// (e.g. `GET /v2/busybox/blobs/`).
    pub fn requests(&self, prefix: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(&format!("\"{prefix}")))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// A CA, and a server certificate for 127.0.0.1 it signed: (CA PEM, cert PEM, key PEM).
pub fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "skiff pull test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
