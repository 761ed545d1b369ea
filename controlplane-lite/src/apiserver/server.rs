//! HTTPS serving: TLS with optional client certificates, authentication, routing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::handlers::{self, Api, MAX_BODY};
use super::response::{self, Response};
use super::route::{self, Query, Route};
use super::status::ApiError;
use super::{authz, discovery, metrics, openapi};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Bearer tokens the server accepts.
#[derive(Default)]
pub struct Authenticator {
    pub tokens: HashMap<String, Identity>,
}

/// The bearer token of a request, if it carries one.
fn bearer(req: &http::Request<Incoming>) -> Option<&str> {
    let h = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    h.strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
}

impl Authenticator {
    /// The static tokens first, then bootstrap tokens (which need a read of their Secret).
    async fn identify(&self, api: &Api, req: &http::Request<Incoming>) -> Option<Identity> {
        let token = bearer(req)?;
        if let Some(id) = self.tokens.get(token) {
            return Some(id.clone());
        }
        super::bootstrap_token::authenticate(api, token).await
    }
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("certificate PEM: {e}")))
}

pub fn tls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem)? {
        roots
            .add(c)
            .map_err(|e| ServeError::Tls(format!("CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServeError::Tls(format!("client verifier: {e}")))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(format!("key PEM: {e}")))?
        .ok_or_else(|| ServeError::Tls("no private key in PEM".into()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certs(cert_pem)?, key)
        .map_err(|e| ServeError::Tls(format!("serving certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Reads user (CN) and groups (O) from a verified client certificate.
fn identity_from_cert(der: &CertificateDer<'_>) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity { user, groups })
}

/// Accepts connections until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<Api>,
    auth: Arc<Authenticator>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let cert_identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(identity_from_cert);
            let svc = hyper::service::service_fn(move |req| {
                let api = api.clone();
                let auth = auth.clone();
                let ident = cert_identity.clone();
                async move { Ok::<_, std::convert::Infallible>(dispatch(api, auth, ident, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Upgrades: exec, attach and port-forward sessions passed through to agents.
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

async fn dispatch(
    api: Arc<Api>,
    auth: Arc<Authenticator>,
    cert_identity: Option<Identity>,
    req: http::Request<Incoming>,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let identity = match cert_identity {
        Some(id) => Some(id),
        None => auth.identify(&api, &req).await,
    };
    let labels = metrics::RequestLabels::of(&method, &path, req.uri().query());
    let in_flight = labels.in_flight();
    let attrs = authz::Attributes {
        method: &method,
        path: &path,
        query: req.uri().query(),
    };
    let decision = authz::authorize(identity.as_ref(), &attrs);
    let resp = match (authz::error(&decision, &path), identity) {
        (Some(e), _) => response::error(&e),
        (None, id) => route_request(&api, id, req).await,
    };
    drop(in_flight);
    labels.observe(resp.status().as_u16(), started.elapsed());
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    resp
}

/// `id` is `None` for the few anonymous requests the authorizer lets through.
async fn route_request(
    api: &Arc<Api>,
    id: Option<Identity>,
    req: http::Request<Incoming>,
) -> Response {
    let (parts, body) = req.into_parts();
    if crate::metrics_api::handles(parts.uri.path()) {
        return crate::metrics_api::handle(
            api,
            &api.metrics,
            &parts.method,
            &parts.uri,
            &parts.headers,
        )
        .await;
    }
    let route = route::parse(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    let not_found = || {
        response::error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    };
    let get_only = |r: Response| {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            r
        } else {
            response::error(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ))
        }
    };
    match route {
        Route::Version => get_only(response::json(StatusCode::OK, &discovery::version())),
        Route::Health => get_only(response::text(StatusCode::OK, "ok")),
        Route::Metrics => get_only(response::prometheus(metrics::render())),
        Route::CoreVersions => get_only(response::json(
            StatusCode::OK,
            &discovery::core_versions(&api.server_address),
        )),
        Route::Groups => get_only(response::json(StatusCode::OK, &discovery::groups())),
        Route::Group(g) => match discovery::group(&g) {
            Some(v) => get_only(response::json(StatusCode::OK, &v)),
            None => not_found(),
        },
        Route::GroupVersion(g, v) => match discovery::resource_list(&g, &v) {
            Some(v) => get_only(response::json(StatusCode::OK, &v)),
            None => not_found(),
        },
        Route::OpenApiV2 => {
            let accept = parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if openapi::wants_v2_protobuf(accept) {
                get_only(response::raw(
                    StatusCode::OK,
                    openapi::V2_PROTOBUF,
                    openapi::v2_protobuf().to_vec(),
                ))
            } else {
                get_only(response::raw_json(StatusCode::OK, openapi::v2().to_vec()))
            }
        }
        Route::OpenApiV3Index => get_only(response::raw_json(
            StatusCode::OK,
            openapi::v3_index().to_vec(),
        )),
        Route::OpenApiV3(p) => match openapi::v3_group(&p) {
            Some(doc) => get_only(response::raw_json(StatusCode::OK, doc.to_vec())),
            None => not_found(),
        },
        Route::NotFound => not_found(),
        Route::Resource(res) if handlers::connect::wants(&res) => {
            let req = http::Request::from_parts(parts, body);
            handlers::connect::handle(api, res, req)
                .await
                .unwrap_or_else(|e| response::error(&e))
        }
        Route::Resource(res) => {
            let body = match read_body(body).await {
                Ok(b) => b,
                Err(e) => return response::error(&e),
            };
            let r = handlers::Request {
                method: parts.method,
                res,
                query,
                headers: parts.headers,
                body,
                identity: id,
            };
            match handlers::handle(api, r).await {
                Ok(resp) => resp,
                Err(e) => response::error(&e),
            }
        }
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_BODY}"),
            ))
        }
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

/// Binds the listening socket.
pub async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("binding {addr}"),
            source,
        })
}
