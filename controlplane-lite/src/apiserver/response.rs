//! Response bodies: whole JSON documents, or streams for watches.

use std::convert::Infallible;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::Value;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Response = http::Response<Body>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn json(code: StatusCode, v: &Value) -> Response {
    let bytes = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    raw_json(code, bytes)
}

pub fn raw_json(code: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = http::Response::new(full(bytes));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `bytes` as they are, of the static media type `content_type`.
pub fn raw(code: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response {
    let mut r = http::Response::new(full(bytes));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn text(code: StatusCode, s: &'static str) -> Response {
    let mut r = http::Response::new(full(s));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Prometheus metrics in the text exposition format.
pub fn prometheus(body: String) -> Response {
    let mut r = http::Response::new(full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(skiff_api::prom::CONTENT_TYPE),
    );
    r
}

/// A chunked JSON stream, one document per line (the watch wire format).
pub fn stream(s: impl Stream<Item = Bytes> + Send + Sync + 'static) -> Response {
    let body = StreamBody::new(s.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut r = http::Response::new(BodyExt::boxed(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

pub fn error(e: &super::status::ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &e.status_json())
}
