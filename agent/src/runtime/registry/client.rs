//! The OCI distribution API, the part a puller needs: resolving a reference to a descriptor,
//! fetching manifests and indexes (verified, whole) and blobs (verified, streamed), with the
//! registry's authentication done on the way.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::TryStreamExt as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;
use tokio::sync::OnceCell;

use super::auth::{Challenge, TokenCache, TokenKey, TokenResponse, parse_challenges};
use super::verify::VerifyingReader;
use super::{ImageName, RegistryConfig};
use crate::runtime::image::{Descriptor, is_index, is_manifest, is_valid_digest, media_type};
use crate::runtime::{PullErrorKind, RegistryAuth};

/// Manifests and indexes larger than this are refused.
pub const MAX_MANIFEST: usize = 16 << 20;
/// What is read of an error response: enough for the registry's error JSON.
const MAX_ERROR_BODY: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A download that sends nothing for this long is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const DIGEST_HEADER: &str = "docker-content-digest";

/// Every manifest type a puller understands, best first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A failed registry operation; `message` is meant for people and carries the registry's
/// own reason when it gave one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub kind: PullErrorKind,
    pub message: String,
}

impl RegistryError {
    fn new(kind: PullErrorKind, message: impl Into<String>) -> Self {
        RegistryError {
            kind,
            message: message.into(),
        }
    }
}

/// A client for every registry, shared by all pulls: the HTTP connections, the bearer tokens
/// and what was learnt about each registry (plain HTTP or TLS, Basic auth).
pub struct RegistryClient {
    http: reqwest::Client,
    config: RegistryConfig,
    tokens: TokenCache,
    /// The scheme each insecure registry turned out to speak.
    schemes: Mutex<HashMap<String, &'static str>>,
    /// Registries that asked for Basic credentials: every request to them carries them.
    basic: Mutex<HashSet<String>>,
    /// The last bearer challenge of each registry and repository, so that the next pull
    /// sends its (cached) token at once instead of being refused first.
    challenges: Mutex<HashMap<(String, String), Challenge>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client trusting the system's certificate authorities and the configured ones.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let invalid = |m: String| RegistryError::new(PullErrorKind::Other, m);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")));
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            tracing::debug!(error = %e, "cannot load a system certificate");
        }
        for der in &system.certs {
            match reqwest::Certificate::from_der(der) {
                Ok(c) => builder = builder.add_root_certificate(c),
                Err(e) => tracing::debug!(error = %e, "skipping an unusable system certificate"),
            }
        }
        for path in &config.ca_files {
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("read CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid(format!("CA file {}: {}", path.display(), chain(&e))))?;
            if certs.is_empty() {
                return Err(invalid(format!(
                    "CA file {}: no certificates in it",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("build HTTP client: {}", chain(&e))))?;
        Ok(RegistryClient {
            http,
            config,
            tokens: TokenCache::default(),
            schemes: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashSet::new()),
            challenges: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The bearer tokens held.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Talks to `name`'s repository with `auth` (anonymously when None).
    pub fn session<'a>(&'a self, name: &ImageName, auth: Option<&'a RegistryAuth>) -> Session<'a> {
        let credential = auth.map_or_else(String::new, |a| {
            let mut h = Sha256::new();
            for part in [
                a.username.as_str(),
                a.password.as_str(),
                a.identity_token.as_deref().unwrap_or(""),
                a.registry_token.as_deref().unwrap_or(""),
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            format!("{:x}", h.finalize())
        });
        let host = name.api_host().to_string();
        let bearer = self
            .challenges
            .lock()
            .ok()
            .and_then(|c| c.get(&(host.clone(), name.repository.clone())).cloned());
        Session {
            client: self,
            name: name.clone(),
            host,
            auth,
            credential,
            bearer: Mutex::new(bearer),
            base: OnceCell::new(),
        }
    }

    /// `https://host` or, for an insecure registry that does not speak TLS, `http://host`.
    async fn base_url(&self, host: &str) -> Result<String, RegistryError> {
        if !self.config.is_insecure(host) {
            return Ok(format!("https://{host}"));
        }
        if let Some(s) = self.schemes.lock().ok().and_then(|m| m.get(host).copied()) {
            return Ok(format!("{s}://{host}"));
        }
        let scheme = self.probe(host).await?;
        if let Ok(mut m) = self.schemes.lock() {
            m.insert(host.to_string(), scheme);
        }
        tracing::debug!(registry = host, scheme, "insecure registry probed");
        Ok(format!("{scheme}://{host}"))
    }

    /// Which scheme an insecure registry speaks: TLS if it answers a TLS handshake (its
    /// certificate must still be trusted), else plain HTTP.
    async fn probe(&self, host: &str) -> Result<&'static str, RegistryError> {
        let https = format!("https://{host}/v2/");
        let tls_err = match self.http.get(&https).send().await {
            Ok(_) => return Ok("https"),
            Err(e) if is_certificate_error(&e) => {
                return Err(network(&Method::GET, &https, &e));
            }
            Err(e) => e,
        };
        let http = format!("http://{host}/v2/");
        match self.http.get(&http).send().await {
            Ok(_) => Ok("http"),
            // Both failed: the first reason is the interesting one (nothing listening, ...).
            Err(_) => Err(network(&Method::GET, &https, &tls_err)),
        }
    }
}

/// One pull's conversation with one repository, under one set of credentials. Safe to use
/// from several tasks at once (parallel layer downloads).
pub struct Session<'a> {
    client: &'a RegistryClient,
    name: ImageName,
    host: String,
    auth: Option<&'a RegistryAuth>,
    /// Identifies the credentials in token cache keys without holding the secrets.
    credential: String,
    /// The bearer challenge the registry made, whose token service hands out tokens.
    bearer: Mutex<Option<Challenge>>,
    base: OnceCell<String>,
}

/// What a reference resolved to: the descriptor, and the document when it had to be
/// fetched whole to learn its digest.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub desc: Descriptor,
    pub bytes: Option<Vec<u8>>,
}

/// The `Authorization` value sent, and the cached token it came from (to drop it if refused).
struct Sent {
    value: String,
    token: Option<(TokenKey, String)>,
    basic: bool,
}

impl Session<'_> {
    pub fn name(&self) -> &ImageName {
        &self.name
    }

    /// Resolves a tag or digest to the descriptor of the manifest or index it names: a HEAD
    /// request when the registry says enough, else a GET.
    pub async fn resolve(&self, reference: &str) -> Result<Resolved, RegistryError> {
        let expected = reference.contains(':').then_some(reference);
        let url = self.url(&format!("manifests/{reference}")).await?;
        let resp = self.send(Method::HEAD, &url, Some(MANIFEST_ACCEPT)).await?;
        if resp.status().is_success() {
            let headers = resp.headers();
            let digest = header_str(headers, DIGEST_HEADER)
                .filter(|d| is_valid_digest(d))
                .or(expected.filter(|d| is_valid_digest(d)));
            let mt = content_type(headers).filter(|m| is_index(m) || is_manifest(m));
            let size = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok());
            if let (Some(digest), Some(mt), Some(size)) = (digest, mt, size) {
                if let Some(e) = expected
                    && e != digest
                {
                    return Err(RegistryError::new(
                        PullErrorKind::Invalid,
                        format!("{}: registry says its digest is {digest}", self.name),
                    ));
                }
                return Ok(Resolved {
                    desc: Descriptor::new(&mt, digest.to_string(), size),
                    bytes: None,
                });
            }
        }
        // HEAD said too little, or failed (its answer has no body saying why): GET.
        let (desc, bytes) = self.fetch_manifest(reference, expected).await?;
        Ok(Resolved {
            desc,
            bytes: Some(bytes),
        })
    }

    /// Fetches a manifest or index by tag or digest, whole, and checks it against `expected`
    /// (a digest) and against the digest the registry reports.
    pub async fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&str>,
    ) -> Result<(Descriptor, Vec<u8>), RegistryError> {
        let url = self.url(&format!("manifests/{reference}")).await?;
        let resp = self.send(Method::GET, &url, Some(MANIFEST_ACCEPT)).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, &url, resp, true).await);
        }
        let invalid = |m: String| RegistryError::new(PullErrorKind::Invalid, m);
        let header_digest = header_str(resp.headers(), DIGEST_HEADER).map(str::to_string);
        let header_type = content_type(resp.headers());
        let bytes = read_limited(resp, MAX_MANIFEST)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => invalid(format!(
                    "manifest {} of {}: larger than {MAX_MANIFEST} bytes",
                    reference, self.name
                )),
                ReadError::Http(e) => network(&Method::GET, &url, &e),
            })?;
        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        for claimed in [expected, header_digest.as_deref()].into_iter().flatten() {
            // Only sha256 digests can be checked; a registry may report another algorithm.
            if claimed.starts_with("sha256:") && claimed != digest {
                return Err(invalid(format!(
                    "manifest {reference} of {}: expected digest {claimed}, got {digest}",
                    self.name
                )));
            }
        }
        if let Some(e) = expected
            && !e.starts_with("sha256:")
        {
            return Err(invalid(format!(
                "{}: unsupported digest algorithm in {e}",
                self.name
            )));
        }
        let mt = manifest_media_type(header_type.as_deref(), &bytes).ok_or_else(|| {
            invalid(format!(
                "{}: unsupported manifest media type {}",
                self.name,
                header_type.as_deref().unwrap_or("(none)")
            ))
        })?;
        let desc = Descriptor::new(&mt, digest, bytes.len() as u64);
        Ok((desc, bytes))
    }

    /// Streams a blob, checked against its descriptor as it goes (the reader fails with a
    /// [`super::verify::BlobMismatch`] inside an `InvalidData` error on any difference).
    pub async fn fetch_blob(
        &self,
        desc: &Descriptor,
    ) -> Result<VerifyingReader<impl AsyncRead + Send + Unpin + use<>>, RegistryError> {
        let invalid = |m: String| RegistryError::new(PullErrorKind::Invalid, m);
        if !is_valid_digest(&desc.digest) {
            return Err(invalid(format!("unsupported blob digest {}", desc.digest)));
        }
        let size = u64::try_from(desc.size)
            .map_err(|_| invalid(format!("blob {}: negative size", desc.digest)))?;
        let url = self.url(&format!("blobs/{}", desc.digest)).await?;
        let resp = self.send(Method::GET, &url, None).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, &url, resp, false).await);
        }
        if let Some(len) = resp.content_length()
            && len != size
        {
            return Err(invalid(format!(
                "blob {}: registry sends {len} bytes, its descriptor says {size}",
                desc.digest
            )));
        }
        let stream = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
        let reader = tokio_util::io::StreamReader::new(stream);
        Ok(VerifyingReader::new(reader, &desc.digest, size))
    }

    async fn url(&self, path: &str) -> Result<String, RegistryError> {
        let base = self
            .base
            .get_or_try_init(|| self.client.base_url(&self.host))
            .await?;
        Ok(format!("{base}/v2/{}/{path}", self.name.repository))
    }

    /// Sends a request, answering one authentication challenge if the registry makes one.
    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut answered = false;
        loop {
            let sent = self.authorization().await?;
            let mut req = self.client.http.request(method.clone(), url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(s) = &sent {
                req = req.header(AUTHORIZATION, &s.value);
            }
            let resp = req.send().await.map_err(|e| network(&method, url, &e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(resp);
            }
            answered = true;
            if !self.learn(resp.headers(), sent.as_ref()) {
                return Ok(resp);
            }
        }
    }

    /// Takes in a 401's challenges; true when a new attempt could succeed.
    fn learn(&self, headers: &HeaderMap, sent: Option<&Sent>) -> bool {
        let Some(auth) = self.auth else {
            return self.learn_anonymous(headers, sent);
        };
        if auth.registry_token.is_some() {
            // A token given as is: nothing else to try with it.
            return false;
        }
        let challenges = challenges(headers);
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self.take_bearer(c, sent);
        }
        if challenges.iter().any(|c| c.scheme == "basic")
            && !auth.username.is_empty()
            && !sent.is_some_and(|s| s.basic)
        {
            if let Ok(mut b) = self.client.basic.lock() {
                b.insert(self.host.clone());
            }
            return true;
        }
        false
    }

    fn learn_anonymous(&self, headers: &HeaderMap, sent: Option<&Sent>) -> bool {
        // Without credentials only a token service can let us in.
        match challenges(headers).iter().find(|c| c.scheme == "bearer") {
            Some(c) => self.take_bearer(c, sent),
            None => false,
        }
    }

    fn take_bearer(&self, c: &Challenge, sent: Option<&Sent>) -> bool {
        if c.param("realm").is_none() {
            return false;
        }
        if let Some((key, token)) = sent.and_then(|s| s.token.as_ref()) {
            self.client.tokens.invalidate(key, token);
        }
        if let Ok(mut b) = self.bearer.lock() {
            *b = Some(c.clone());
        }
        if let Ok(mut all) = self.client.challenges.lock() {
            all.insert((self.host.clone(), self.name.repository.clone()), c.clone());
        }
        true
    }

    /// What to send in `Authorization`, fetching a token when the registry wants one.
    async fn authorization(&self) -> Result<Option<Sent>, RegistryError> {
        if let Some(token) = self.auth.and_then(|a| a.registry_token.as_deref()) {
            return Ok(Some(Sent {
                value: format!("Bearer {token}"),
                token: None,
                basic: false,
            }));
        }
        let challenge = self.bearer.lock().ok().and_then(|b| b.clone());
        if let Some(c) = challenge {
            let key = self.token_key(&c);
            let token = match self.client.tokens.get(&key, Instant::now()) {
                Some(t) => t,
                None => {
                    let (token, lifetime) = self.fetch_token(&c, &key.scope).await?;
                    self.client.tokens.insert(
                        key.clone(),
                        token.clone(),
                        Instant::now() + lifetime,
                    );
                    token
                }
            };
            return Ok(Some(Sent {
                value: format!("Bearer {token}"),
                token: Some((key, token)),
                basic: false,
            }));
        }
        let wants_basic = self
            .client
            .basic
            .lock()
            .is_ok_and(|b| b.contains(&self.host));
        if wants_basic && let Some(a) = self.auth.filter(|a| !a.username.is_empty()) {
            return Ok(Some(Sent {
                value: basic(&a.username, &a.password),
                token: None,
                basic: true,
            }));
        }
        Ok(None)
    }

    fn token_key(&self, c: &Challenge) -> TokenKey {
        let scope = c
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{}:pull", self.name.repository));
        TokenKey {
            registry: self.host.clone(),
            service: c.param("service").unwrap_or_default().to_string(),
            scope,
            credential: self.credential.clone(),
        }
    }

    /// Asks the token service for a token: with an identity token through OAuth2's refresh
    /// grant, else a GET with Basic credentials (or none).
    async fn fetch_token(
        &self,
        c: &Challenge,
        scope: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let realm = c.param("realm").unwrap_or_default();
        let unauthorized = |m: String| RegistryError::new(PullErrorKind::Unauthorized, m);
        let parsed = reqwest::Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| unauthorized(format!("invalid token service realm {realm:?}")))?;
        let service = c.param("service").unwrap_or_default();
        let identity = self.auth.and_then(|a| a.identity_token.as_deref());
        let (method, req) = if let Some(refresh) = identity {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh)
                .append_pair("service", service)
                .append_pair("scope", scope)
                .append_pair("client_id", "skiff")
                .finish();
            let req = self
                .client
                .http
                .post(parsed.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body);
            (Method::POST, req)
        } else {
            let mut url = parsed.clone();
            {
                let mut q = url.query_pairs_mut();
                if !service.is_empty() {
                    q.append_pair("service", service);
                }
                q.append_pair("scope", scope);
            }
            let mut req = self.client.http.get(url);
            if let Some(a) = self.auth.filter(|a| !a.username.is_empty()) {
                req = req.header(AUTHORIZATION, basic(&a.username, &a.password));
            }
            (Method::GET, req)
        };
        let resp = req.send().await.map_err(|e| network(&method, realm, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let server = server_message(resp).await;
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PullErrorKind::Unauthorized,
                _ => PullErrorKind::Other,
            };
            let mut m = format!(
                "failed to fetch {} token: unexpected status from {method} request to {realm}: {status}",
                if self.auth.is_some() {
                    "oauth"
                } else {
                    "anonymous"
                }
            );
            if let Some(s) = server {
                m.push_str(&format!(": server message: {s}"));
            }
            return Err(RegistryError::new(kind, m));
        }
        let bytes = read_limited(resp, MAX_ERROR_BODY)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => {
                    RegistryError::new(PullErrorKind::Invalid, "token response too large")
                }
                ReadError::Http(e) => network(&method, realm, &e),
            })?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::new(
                PullErrorKind::Invalid,
                format!("token service {realm}: invalid answer: {e}"),
            )
        })?;
        let token = parsed.bearer().ok_or_else(|| {
            RegistryError::new(
                PullErrorKind::Invalid,
                format!("token service {realm} answered no token"),
            )
        })?;
        Ok((token.to_string(), parsed.lifetime()))
    }

    /// The error for a response that is not a success, with the registry's reason.
    async fn status_error(
        &self,
        method: &Method,
        url: &str,
        resp: Response,
        manifest: bool,
    ) -> RegistryError {
        let status = resp.status();
        let server = server_message(resp).await;
        let with_server = |m: String| match &server {
            Some(s) => format!("{m}: server message: {s}"),
            None => m,
        };
        match status {
            StatusCode::NOT_FOUND if manifest => RegistryError::new(
                PullErrorKind::NotFound,
                with_server(format!("{}: not found", self.name)),
            ),
            StatusCode::NOT_FOUND => RegistryError::new(
                PullErrorKind::NotFound,
                with_server(format!(
                    "unexpected status from {method} request to {url}: {status}"
                )),
            ),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::new(
                PullErrorKind::Unauthorized,
                with_server(format!(
                    "pull access denied, repository does not exist or may require authorization: {status}"
                )),
            ),
            _ => RegistryError::new(
                PullErrorKind::Other,
                with_server(format!(
                    "unexpected status from {method} request to {url}: {status}"
                )),
            ),
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The media type of `Content-Type`, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = header_str(headers, CONTENT_TYPE.as_str())?;
    let mt = v.split(';').next().unwrap_or("").trim();
    (!mt.is_empty()).then(|| mt.to_ascii_lowercase())
}

/// The media type of a manifest document: from `Content-Type` when it is one we know, else
/// from the document's own `mediaType`, else from its shape (some registries say only
/// `application/json`).
pub(crate) fn manifest_media_type(header: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(h) = header.filter(|h| is_index(h) || is_manifest(h)) {
        return Some(h.to_string());
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
        schema_version: Option<u32>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = shape.media_type {
        return (is_index(&mt) || is_manifest(&mt)).then_some(mt);
    }
    if shape.schema_version != Some(2) {
        return None;
    }
    if shape.manifests.is_some() {
        Some(media_type::OCI_INDEX.to_string())
    } else if shape.config.is_some() {
        Some(media_type::OCI_MANIFEST.to_string())
    } else {
        None
    }
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

async fn read_limited(mut resp: Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The registry's reason from an error response: its error JSON's codes and messages, else
/// the start of the body's text.
async fn server_message(resp: Response) -> Option<String> {
    let body = match read_limited(resp, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(_) => return None,
    };
    registry_reason(&body)
}

/// `CODE: message` for each of a distribution error document's errors; the trimmed text of
/// anything else.
pub(crate) fn registry_reason(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') {
        return None;
    }
    Some(text.chars().take(200).collect())
}

/// An error and its causes, as one line.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

fn network(method: &Method, url: &str, e: &reqwest::Error) -> RegistryError {
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "failed to do request"
    };
    // reqwest's own message repeats the URL; its causes say what happened.
    let cause = e.source().map_or_else(|| e.to_string(), chain);
    RegistryError::new(
        PullErrorKind::Network,
        format!("{what}: {method} {url}: {cause}"),
    )
}

/// True when a TLS handshake failed on the peer's certificate (as opposed to the peer not
/// speaking TLS at all).
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                t,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            );
        }
        // An io::Error's source skips the error it wraps; step into that instead.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => None,
            },
            None => err.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_reasons() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(
            registry_reason(body).as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"},{"code":"DENIED"}]}"#;
        assert_eq!(
            registry_reason(body).as_deref(),
            Some("UNAUTHORIZED: authentication required; DENIED")
        );
        assert_eq!(
            registry_reason(b"  upstream down\n").as_deref(),
            Some("upstream down")
        );
        assert_eq!(registry_reason(b"<html>oops</html>"), None);
        assert_eq!(registry_reason(b""), None);
    }

    #[test]
    fn manifest_types_from_header_or_body() {
        let oci = media_type::OCI_MANIFEST;
        assert_eq!(manifest_media_type(Some(oci), b"").as_deref(), Some(oci));
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert_eq!(
            manifest_media_type(Some("application/json"), body).as_deref(),
            Some(media_type::DOCKER_MANIFEST_LIST)
        );
        let body = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            manifest_media_type(None, body).as_deref(),
            Some(media_type::OCI_INDEX)
        );
        let body = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            manifest_media_type(None, body).as_deref(),
            Some(media_type::OCI_MANIFEST)
        );
        // Docker schema 1 is not supported.
        let body = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert_eq!(
            manifest_media_type(
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                body
            ),
            None
        );
    }
}
