//! Pulling from a real registry (Debian's `docker-registry`) into a real containerd: each test
//! starts its own registry on a free loopback port (config, storage, certificates and
//! passwords in a private directory), pushes the locally built busybox image to it over the
//! distribution API, pulls it through its own supervised containerd, and runs a container
//! from what it pulled. Everything is stopped by PID and removed, even when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::image::{Descriptor, Index, Manifest, Platform, media_type};
use skiff_agent::runtime::registry::RegistryConfig;
use skiff_agent::runtime::spec::LogTarget;
use skiff_agent::runtime::supervise::{self, SuperviseConfig, Supervisor};
use skiff_agent::runtime::testimage::{BuiltImage, TestImage};
use skiff_agent::runtime::{ContainerSpec, Error, PullErrorKind, RegistryAuth, Runtime};

mod common;

use common::host::{free_port, remove_cgroups, unique, unmount_under};
use common::registry::{PASSWORD, Registry, RegistryOptions, USER};

const NAMESPACE: &str = "skiff";

/// One test's private containerd.
struct Env {
    dir: PathBuf,
    cgroup_parent: String,
    sup: Option<Supervisor>,
    socket: PathBuf,
    rt: Arc<Containerd>,
}

impl Env {
    async fn new(tag: &str, registries: RegistryConfig) -> Env {
        let name = unique(&format!("skiff-pull-{tag}"));
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let sup = Supervisor::start(SuperviseConfig::new(&dir)).await.unwrap();
        let socket = sup.socket().to_path_buf();
        let mut cfg = sup.client_config(NAMESPACE);
        cfg.registries = registries;
        let rt = Arc::new(Containerd::connect(cfg).await.unwrap());
        Env {
            cgroup_parent: format!("/{name}"),
            dir,
            sup: Some(sup),
            socket,
            rt,
        }
    }

    /// Another connection to the same containerd, with other registry settings.
    async fn connect(&self, registries: RegistryConfig) -> Containerd {
        let mut cfg = ContainerdConfig::new(&self.socket, NAMESPACE);
        cfg.runc_root = self
            .sup
            .as_ref()
            .unwrap()
            .client_config(NAMESPACE)
            .runc_root;
        cfg.registries = registries;
        Containerd::connect(cfg).await.unwrap()
    }

    /// Runs `echo <word>` in a container of `image`; returns its exit code and output.
    async fn run_echo(&self, image: &str, word: &str) -> (u32, String) {
        let id = unique("pulled");
        let mut spec = ContainerSpec::new(&id, image);
        spec.command = vec!["sh".into(), "-c".into(), format!("echo {word}")];
        spec.cgroups_path = Some(format!("{}/{id}", self.cgroup_parent));
        let log = self.dir.join("logs").join(format!("{id}.log"));
        spec.log = LogTarget::File(log.clone());
        let id = self.rt.create_container(&spec).await.unwrap();
        self.rt.start(&id).await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(30), self.rt.wait(&id))
            .await
            .expect("container did not exit")
            .unwrap();
        self.rt.delete(&id).await.unwrap();
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        (exit.code, out.trim().to_string())
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
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn busybox(marker: &str) -> BuiltImage {
    let mut image = TestImage::busybox("unused");
    image.gzip = true;
    image
        .files
        .push(("/etc/marker".into(), marker.as_bytes().to_vec(), 0o644));
    image.build().unwrap()
}

fn pull_error(e: Error) -> (PullErrorKind, String) {
    let message = e.to_string();
    match e {
        Error::Pull { kind, .. } => (kind, message),
        other => panic!("not a pull error: {other:?}"),
    }
}

#[tokio::test]
async fn pulls_over_plain_http_then_again_and_by_digest() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let env = Env::new("http", RegistryConfig::default()).await;
    let built = busybox("one");
    reg.push_image("busybox", "1", &built).await;

    let image = reg.image("busybox:1");
    let pulled = env.rt.pull_image(&image, &[]).await.unwrap();
    assert_eq!(pulled.name, image);
    assert_eq!(pulled.digest, built.manifest.digest);
    let cfg = env.rt.image_config(&image).await.unwrap();
    assert_eq!(cfg.config_digest, built.config.digest);
    assert_eq!(cfg.diff_ids, vec![built.diff_id.clone()]);
    assert_eq!(env.run_echo(&image, "pulled").await, (0, "pulled".into()));
    assert_eq!(
        reg.requests("GET /v2/busybox/blobs/"),
        2,
        "config and layer"
    );

    // Again: only the manifest is asked for (a HEAD); the blobs are not fetched again.
    let heads = reg.requests("HEAD /v2/busybox/manifests/");
    let gets = reg.requests("GET /v2/busybox/manifests/");
    let again = env.rt.pull_image(&image, &[]).await.unwrap();
    assert_eq!(again, pulled);
    assert_eq!(reg.requests("GET /v2/busybox/blobs/"), 2);
    assert_eq!(reg.requests("HEAD /v2/busybox/manifests/"), heads + 1);
    assert_eq!(reg.requests("GET /v2/busybox/manifests/"), gets);

    // By digest, an image this containerd has never seen.
    let other = busybox("two");
    reg.push_image("other", "x", &other).await;
    let by_digest = reg.image(&format!("other@{}", other.manifest.digest));
    let pulled = env.rt.pull_image(&by_digest, &[]).await.unwrap();
    assert_eq!(pulled.digest, other.manifest.digest);
    assert_eq!(pulled.name, by_digest);
    assert_eq!(reg.requests("GET /v2/other/blobs/"), 2);
    assert_eq!(
        env.run_echo(&by_digest, "digest").await,
        (0, "digest".into())
    );
    // A tag and a digest together: the digest is what is fetched.
    let both = reg.image(&format!("other:x@{}", other.manifest.digest));
    assert_eq!(
        env.rt.pull_image(&both, &[]).await.unwrap().digest,
        other.manifest.digest
    );
    // A digest the registry does not have.
    let absent = reg.image(&format!("other@sha256:{}", "0".repeat(64)));
    let (kind, message) = pull_error(env.rt.pull_image(&absent, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::NotFound, "{message}");
    env.finish().await;
}

#[tokio::test]
async fn chooses_this_platforms_manifest_from_an_index() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let env = Env::new("index", RegistryConfig::default()).await;
    let built = busybox("multi");
    reg.push_image("multi", &built.manifest.digest, &built)
        .await;

    // The other platform's image: its own config and a layer that is no tar at all, so
    // choosing it could not go unnoticed.
    let host = skiff_agent::runtime::image::host_platform();
    let other_arch = if host.architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let bogus_layer = b"not a layer".to_vec();
    let bogus_layer_desc = Descriptor::of(media_type::OCI_LAYER_GZIP, &bogus_layer);
    let other_config = serde_json::to_vec(&serde_json::json!({
        "architecture": other_arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]},
    }))
    .unwrap();
    let other_config_desc = Descriptor::of(media_type::OCI_CONFIG, &other_config);
    let other_manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: other_config_desc.clone(),
        layers: vec![bogus_layer_desc.clone()],
        annotations: Default::default(),
    })
    .unwrap();
    let other_manifest_desc = Descriptor::of(media_type::OCI_MANIFEST, &other_manifest);
    reg.push_blob("multi", &bogus_layer_desc, &bogus_layer)
        .await;
    reg.push_blob("multi", &other_config_desc, &other_config)
        .await;
    reg.push_manifest(
        "multi",
        &other_manifest_desc.digest,
        media_type::OCI_MANIFEST,
        &other_manifest,
    )
    .await;

    let entry = |desc: &Descriptor, arch: &str| {
        let mut d = desc.clone();
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        });
        d
    };
    // The other platform first: taking the first entry would be wrong.
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: vec![
            entry(&other_manifest_desc, other_arch),
            entry(&built.manifest, &host.architecture),
        ],
        annotations: Default::default(),
    })
    .unwrap();
    let index_desc = Descriptor::of(media_type::OCI_INDEX, &index);
    reg.push_manifest("multi", "latest", media_type::OCI_INDEX, &index)
        .await;

    let image = reg.image("multi:latest");
    let pulled = env.rt.pull_image(&image, &[]).await.unwrap();
    // The name points at the index (the repo digest), the image runs this platform's manifest.
    assert_eq!(pulled.digest, index_desc.digest);
    let cfg = env.rt.image_config(&image).await.unwrap();
    assert_eq!(cfg.target_digest, index_desc.digest);
    assert_eq!(cfg.manifest_digest, built.manifest.digest);
    assert_eq!(cfg.config_digest, built.config.digest);
    assert_eq!(
        reg.requests(&format!(
            "GET /v2/multi/manifests/{}",
            other_manifest_desc.digest
        )),
        0
    );
    assert_eq!(
        reg.requests(&format!("GET /v2/multi/blobs/{}", bogus_layer_desc.digest)),
        0
    );
    assert_eq!(
        reg.requests(&format!("GET /v2/multi/blobs/{}", other_config_desc.digest)),
        0
    );
    assert_eq!(
        env.run_echo(&image, "platform").await,
        (0, "platform".into())
    );
    env.finish().await;
}

#[tokio::test]
async fn missing_images_and_unreachable_registries_fail_clearly() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let env = Env::new("errors", RegistryConfig::default()).await;
    reg.push_image("busybox", "1", &busybox("e")).await;

    let image = reg.image("busybox:nope");
    let (kind, message) = pull_error(env.rt.pull_image(&image, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::NotFound, "{message}");
    assert!(
        message.starts_with(&format!(
            "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
        )),
        "{message}"
    );
    // The registry's own words.
    assert!(message.contains("manifest unknown"), "{message}");

    let image = reg.image("nosuchrepo:1");
    let (kind, message) = pull_error(env.rt.pull_image(&image, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::NotFound, "{message}");
    assert!(message.contains("manifest unknown"), "{message}");
    assert!(!env.rt.image_exists(&image).await.unwrap());

    let nowhere = format!("127.0.0.1:{}/busybox:1", free_port());
    let (kind, message) = pull_error(env.rt.pull_image(&nowhere, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Network, "{message}");
    assert!(message.contains("onnection refused"), "{message}");

    let (kind, message) = pull_error(env.rt.pull_image("Not A Name", &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Invalid, "{message}");
    env.finish().await;
}

#[tokio::test]
async fn basic_authentication_over_tls() {
    let reg = Registry::start(RegistryOptions {
        tls: true,
        htpasswd: true,
    })
    .await;
    let ca = reg.ca.clone().unwrap();
    let env = Env::new(
        "auth",
        RegistryConfig {
            insecure: vec![],
            ca_files: vec![ca.clone()],
        },
    )
    .await;
    let built = busybox("secret");
    reg.push_image("private/busybox", "1", &built).await;
    let image = reg.image("private/busybox:1");
    let auth = |user: &str, password: &str| RegistryAuth {
        username: user.into(),
        password: password.into(),
        ..Default::default()
    };

    // No credentials, wrong credentials: refused, in the registry's words.
    let (kind, message) = pull_error(env.rt.pull_image(&image, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Unauthorized, "{message}");
    assert!(message.contains("authentication required"), "{message}");
    let wrong = auth(USER, "wrong");
    let (kind, message) = pull_error(
        env.rt
            .pull_image(&image, std::slice::from_ref(&wrong))
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, PullErrorKind::Unauthorized, "{message}");
    assert!(message.contains("UNAUTHORIZED"), "{message}");
    assert!(
        !message.contains("wrong"),
        "no password in messages: {message}"
    );
    assert!(!env.rt.image_exists(&image).await.unwrap());

    // The right ones, after a wrong one: the next credentials are tried.
    let pulled = env
        .rt
        .pull_image(&image, &[wrong, auth(USER, PASSWORD)])
        .await
        .unwrap();
    assert_eq!(pulled.digest, built.manifest.digest);
    assert_eq!(
        env.run_echo(&image, "authorized").await,
        (0, "authorized".into())
    );

    // Without the CA the registry's certificate is not trusted, loopback or not.
    let untrusting = env.connect(RegistryConfig::default()).await;
    let (kind, message) = pull_error(
        untrusting
            .pull_image(&image, &[auth(USER, PASSWORD)])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, PullErrorKind::Network, "{message}");
    assert!(message.contains("certificate"), "{message}");

    // A CA file that is not there fails the pull, not the connection.
    let broken = env
        .connect(RegistryConfig {
            insecure: vec![],
            ca_files: vec![ca.with_file_name("missing.pem")],
        })
        .await;
    let (_, message) = pull_error(broken.pull_image(&image, &[]).await.unwrap_err());
    assert!(message.contains("missing.pem"), "{message}");
    env.finish().await;
}

#[tokio::test]
async fn concurrent_pulls_of_different_and_equal_images() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let env = Env::new("concurrent", RegistryConfig::default()).await;
    let (a, b) = (busybox("a"), busybox("b"));
    reg.push_image("a", "1", &a).await;
    reg.push_image("b", "1", &b).await;
    let (ia, ib) = (reg.image("a:1"), reg.image("b:1"));

    let (ra, rb, ra2) = tokio::join!(
        env.rt.pull_image(&ia, &[]),
        env.rt.pull_image(&ib, &[]),
        env.rt.pull_image(&ia, &[]),
    );
    assert_eq!(ra.unwrap().digest, a.manifest.digest);
    assert_eq!(rb.unwrap().digest, b.manifest.digest);
    assert_eq!(ra2.unwrap().digest, a.manifest.digest);
    assert_eq!(env.run_echo(&ia, "a").await, (0, "a".into()));
    assert_eq!(env.run_echo(&ib, "b").await, (0, "b".into()));
    env.finish().await;
}

/// A token-authenticating front for a registry, as Docker Hub works: requests without a
/// token it issued get a 401 with a Bearer challenge naming its token service, which hands
/// out tokens for USER / PASSWORD (GET with Basic) or an identity token (POST, OAuth2
/// refresh grant). Authorized requests are passed on to the registry behind.
struct TokenGate {
    host: String,
    token_requests: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

const IDENTITY_TOKEN: &str = "refresh-me";
const STATIC_TOKEN: &str = "given-as-is";

impl TokenGate {
    /// With `corrupt`, blobs come back with their last byte changed.
    async fn start(upstream: String, corrupt: bool) -> TokenGate {
        use hyper::body::Bytes;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let token_requests = Arc::new(AtomicU32::new(0));
        let issued = Arc::new(std::sync::Mutex::new(vec![STATIC_TOKEN.to_string()]));
        let http = reqwest::Client::new();
        let (gate_host, counter) = (host.clone(), token_requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (issued, http, upstream, gate_host, counter) = (
                    issued.clone(),
                    http.clone(),
                    upstream.clone(),
                    gate_host.clone(),
                    counter.clone(),
                );
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (issued, http, upstream, gate_host, counter) = (
                        issued.clone(),
                        http.clone(),
                        upstream.clone(),
                        gate_host.clone(),
                        counter.clone(),
                    );
                    async move {
                        use http_body_util::{BodyExt, Full};
                        let reply = |status: u16, body: String| {
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap()
                        };
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let path = req.uri().path().to_string();
                        if path == "/token" {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let query = req.uri().query().unwrap_or("").to_string();
                            let is_post = req.method() == hyper::Method::POST;
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let form = String::from_utf8_lossy(&body).to_string();
                            let basic_ok = auth
                                == format!(
                                    "Basic {}",
                                    base64::Engine::encode(
                                        &base64::engine::general_purpose::STANDARD,
                                        format!("{USER}:{PASSWORD}")
                                    )
                                );
                            let refresh_ok = is_post
                                && form.contains("grant_type=refresh_token")
                                && form.contains(&format!("refresh_token={IDENTITY_TOKEN}"));
                            let scoped = query.contains("scope=repository%3Agated%3Apull")
                                || form.contains("scope=repository%3Agated%3Apull");
                            if !(basic_ok || refresh_ok) || !scoped {
                                let e = r#"{"errors":[{"code":"UNAUTHORIZED","message":"token service says no"}]}"#;
                                return Ok::<_, std::convert::Infallible>(reply(401, e.into()));
                            }
                            let token = unique("token");
                            issued.lock().unwrap().push(token.clone());
                            let key = if is_post { "access_token" } else { "token" };
                            return Ok(reply(
                                200,
                                serde_json::json!({key: token, "expires_in": 300}).to_string(),
                            ));
                        }
                        let authorized = auth
                            .strip_prefix("Bearer ")
                            .is_some_and(|t| issued.lock().unwrap().iter().any(|i| i == t));
                        if !authorized {
                            let mut r = reply(
                                401,
                                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#
                                    .into(),
                            );
                            let challenge = format!(
                                "Bearer realm=\"http://{gate_host}/token\",service=\"skiff-gate\",scope=\"repository:gated:pull\""
                            );
                            r.headers_mut()
                                .insert("www-authenticate", challenge.parse().unwrap());
                            return Ok(r);
                        }
                        let mut up =
                            http.request(req.method().clone(), format!("{upstream}{}", req.uri()));
                        if let Some(a) = req.headers().get("accept") {
                            up = up.header("accept", a.clone());
                        }
                        let resp = up.send().await.unwrap();
                        let mut out = hyper::Response::builder().status(resp.status().as_u16());
                        for name in ["content-type", "content-length", "docker-content-digest"] {
                            if let Some(v) = resp.headers().get(name) {
                                out = out.header(name, v.clone());
                            }
                        }
                        let mut body = resp.bytes().await.unwrap().to_vec();
                        if corrupt
                            && path.contains("/blobs/")
                            && let Some(last) = body.last_mut()
                        {
                            *last ^= 0xff;
                        }
                        Ok(out.body(Full::new(Bytes::from(body))).unwrap())
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenGate {
            host,
            token_requests,
            task,
        }
    }

    fn tokens_issued(&self) -> u32 {
        self.token_requests.load(Ordering::SeqCst)
    }
}

impl Drop for TokenGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn bearer_tokens_from_the_registrys_token_service() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let built = busybox("gated");
    reg.push_image("gated", "1", &built).await;
    let gate = TokenGate::start(reg.url(""), false).await;
    let env = Env::new("token", RegistryConfig::default()).await;
    let image = format!("{}/gated:1", gate.host);

    // Anonymous: the token service refuses, and says so.
    let (kind, message) = pull_error(env.rt.pull_image(&image, &[]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Unauthorized, "{message}");
    assert!(message.contains("token service says no"), "{message}");

    // Username and password buy a token; the pull (manifest and both blobs) needs one.
    let creds = RegistryAuth {
        username: USER.into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let before = gate.tokens_issued();
    let pulled = env
        .rt
        .pull_image(&image, std::slice::from_ref(&creds))
        .await
        .unwrap();
    assert_eq!(pulled.digest, built.manifest.digest);
    assert_eq!(
        gate.tokens_issued(),
        before + 1,
        "one token for the whole pull"
    );
    assert_eq!(env.run_echo(&image, "gated").await, (0, "gated".into()));

    // Pulling again uses the cached token.
    let heads = reg.requests("HEAD /v2/gated/manifests/");
    env.rt.pull_image(&image, &[creds]).await.unwrap();
    assert_eq!(gate.tokens_issued(), before + 1, "token cached");
    assert_eq!(reg.requests("HEAD /v2/gated/manifests/"), heads + 1);

    // An identity token (OAuth2 refresh grant) and a registry token sent as is, each on a
    // connection of its own so that nothing is cached.
    let fresh = env.connect(RegistryConfig::default()).await;
    let identity = RegistryAuth {
        identity_token: Some(IDENTITY_TOKEN.into()),
        ..Default::default()
    };
    let tokens = gate.tokens_issued();
    fresh.pull_image(&image, &[identity]).await.unwrap();
    assert_eq!(gate.tokens_issued(), tokens + 1);
    let fresh = env.connect(RegistryConfig::default()).await;
    let given = RegistryAuth {
        registry_token: Some(STATIC_TOKEN.into()),
        ..Default::default()
    };
    fresh.pull_image(&image, &[given]).await.unwrap();
    assert_eq!(
        gate.tokens_issued(),
        tokens + 1,
        "a registry token needs no service"
    );
    let wrong = RegistryAuth {
        registry_token: Some("forged".into()),
        ..Default::default()
    };
    let (kind, message) = pull_error(fresh.pull_image(&image, &[wrong]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Unauthorized, "{message}");
    assert!(message.contains("token required"), "{message}");
    env.finish().await;
}

#[tokio::test]
async fn blobs_that_do_not_match_their_digest_are_refused() {
    let reg = Registry::start(RegistryOptions::default()).await;
    let built = busybox("corrupt");
    reg.push_image("gated", "1", &built).await;
    let gate = TokenGate::start(reg.url(""), true).await;
    let env = Env::new("corrupt", RegistryConfig::default()).await;
    let image = format!("{}/gated:1", gate.host);
    let creds = RegistryAuth {
        username: USER.into(),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let (kind, message) = pull_error(env.rt.pull_image(&image, &[creds]).await.unwrap_err());
    assert_eq!(kind, PullErrorKind::Invalid, "{message}");
    assert!(message.contains("digest"), "{message}");
    assert!(!env.rt.image_exists(&image).await.unwrap());
    for (desc, _) in &built.blobs {
        if desc.digest != built.manifest.digest {
            assert!(
                env.rt.content_info(&desc.digest).await.unwrap().is_none(),
                "{} stored",
                desc.digest
            );
        }
    }
    env.finish().await;
}
