//! gRPC probes: one `grpc.health.v1.Health/Check` call over cleartext HTTP/2, spoken
//! directly (a gRPC message is a 5-byte prefix and a protobuf), with kubelet's messages.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, TE, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::time::Instant;

use super::action::Attempt;
use super::gofmt::{self, quote};
use super::net;

const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// How long to wait between connection attempts at first; gRPC clients keep redialling
/// until the call's deadline.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckResponse {
    /// grpc.health.v1.HealthCheckResponse.ServingStatus.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub(crate) const SERVING: i32 = 1;

/// The ServingStatus names, as the health protocol's enum spells them.
pub(crate) fn status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// gRPC status code names as grpc-go prints them.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("Code({code})"))
}

/// A gRPC message: uncompressed flag, big-endian length, protobuf.
pub(crate) fn frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.put_slice(&body);
    out.freeze()
}

/// The first message of a gRPC body.
pub(crate) fn unframe(body: &[u8]) -> Result<&[u8], String> {
    if body.len() < 5 {
        return Err("server closed the stream without sending a message".into());
    }
    if body[0] != 0 {
        return Err("grpc: compressed message but no compression was negotiated".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + len)
        .ok_or_else(|| "grpc: message truncated".to_string())
}

/// `grpc-message` is percent-encoded.
fn decode_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let Some(hex) = raw.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The call's outcome: a status code and message, from trailers or (trailers-only) headers.
fn grpc_status(headers: &HeaderMap) -> Option<(u32, String)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .map(|m| decode_message(m.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

struct ConnGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Dials and starts HTTP/2 until it works or the deadline passes.
async fn connect(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Option<(SendRequest<Full<Bytes>>, ConnGuard)> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = async {
            let tcp = net::dial(host, port).await.ok()?;
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(tcp))
                .await
                .ok()?;
            let guard = ConnGuard(tokio::spawn(async move {
                let _ = conn.await;
            }));
            Some((sender, guard))
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Err(_) => return None,
            Ok(Some(connected)) => return Some(connected),
            Ok(None) => {
                if Instant::now() + backoff >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return None;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The health call after connecting. `Err` is the text after `error: health rpc probe
/// failed: `, or a complete message for the cases kubelet words on their own.
async fn check(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    service: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<i32, String> {
    let unavailable = |e: &dyn std::fmt::Display| {
        format!("error: health rpc probe failed: rpc error: code = Unavailable desc = {e}")
    };
    sender.ready().await.map_err(|e| unavailable(&e))?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let millis = remaining.as_millis().clamp(1, 99_999_999);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{authority}{CHECK_PATH}"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .header(TE, HeaderValue::from_static("trailers"))
        .header("grpc-timeout", format!("{millis}m"))
        .header(
            USER_AGENT,
            format!("kube-probe/{}", super::http::kube_minor_version()),
        )
        .body(Full::new(frame(&HealthCheckRequest {
            service: service.to_string(),
        })))
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(&e))?;
    let http_status = response.status();
    let head_status = grpc_status(response.headers());
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unavailable(&e))?;
    let status = head_status.or_else(|| collected.trailers().and_then(grpc_status));
    let (code, message) = match (http_status.as_u16(), status) {
        (200, Some(status)) => status,
        (200, None) => (
            13,
            "server closed the stream without sending trailers".into(),
        ),
        (other, _) => (
            http_code(other),
            format!("unexpected HTTP status code received from server: {other}"),
        ),
    };
    match code {
        0 => {}
        12 => {
            return Err(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
            ));
        }
        4 => {
            return Err(format!(
                "timeout: health rpc did not complete within {}",
                gofmt::duration(timeout)
            ));
        }
        code => {
            return Err(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {message}",
                code_name(code)
            ));
        }
    }
    let body = collected.to_bytes();
    let message = unframe(&body).map_err(|e| {
        format!("error: health rpc probe failed: rpc error: code = Internal desc = {e}")
    })?;
    let response = HealthCheckResponse::decode(message).map_err(|e| {
        format!("error: health rpc probe failed: rpc error: code = Internal desc = grpc: failed to unmarshal the received message: {e}")
    })?;
    Ok(response.status)
}

/// gRPC's mapping of HTTP statuses to codes, for servers that answer without gRPC.
fn http_code(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

pub(crate) async fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> Attempt {
    let deadline = Instant::now() + timeout;
    let authority = gofmt::join_host_port(host, port);
    let Some((mut sender, _conn)) = connect(host, port, deadline).await else {
        return Attempt::Failure(format!(
            "timeout: failed to connect service {} within {}: context deadline exceeded",
            quote(&authority),
            gofmt::duration(timeout)
        ));
    };
    let call = check(&mut sender, &authority, service, deadline, timeout);
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Attempt::Failure(format!(
            "timeout: health rpc did not complete within {}",
            gofmt::duration(timeout)
        )),
        Ok(Err(message)) => Attempt::Failure(message),
        Ok(Ok(SERVING)) => Attempt::Success,
        Ok(Ok(status)) => Attempt::Failure(format!(
            "service unhealthy (responded with {})",
            quote(&status_name(status))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let framed = frame(&HealthCheckRequest {
            service: "db".into(),
        });
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 4]);
        let decoded = HealthCheckRequest::decode(unframe(&framed).unwrap()).unwrap();
        assert_eq!(decoded.service, "db");
        // An empty service encodes to an empty message.
        assert_eq!(&frame(&HealthCheckRequest::default())[..], &[0, 0, 0, 0, 0]);
        assert!(unframe(&[0, 0, 0, 0, 9, 1]).is_err());
        assert!(unframe(&[1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(status_name(2), "NOT_SERVING");
        assert_eq!(status_name(7), "7");
        assert_eq!(code_name(14), "Unavailable");
        assert_eq!(code_name(99), "Code(99)");
    }

    #[test]
    fn statuses_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", HeaderValue::from_static("5"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("unknown%20service%3A db"),
        );
        assert_eq!(grpc_status(&h), Some((5, "unknown service: db".into())));
    }
}
