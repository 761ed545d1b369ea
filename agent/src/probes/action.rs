//! One probe attempt of each kind, and what it came to.

use std::time::Duration;

use super::http::{HttpGet, HttpResult, Purpose};
use super::{ProbeTarget, exec, grpc, net};

/// What a probe does, resolved against its container.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// The command, `$(VAR)`s expanded.
    Exec(Vec<String>),
    Http(HttpGet),
    Tcp {
        host: String,
        port: u16,
    },
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
}

/// The outcome of one attempt, with kubelet's words for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    Success,
    /// Counts as a success, and is reported.
    Warning(String),
    Failure(String),
    /// The attempt could not be made (the runtime failed, the response body could not be
    /// read): kubelet retries it at once, twice, then reports it and ignores it. `state` is
    /// the result it would have had (`unknown`, `failure`).
    Errored {
        state: &'static str,
        message: String,
    },
}

/// kubelet makes up to this many attempts in a row while they error.
const MAX_TRIES: usize = 3;

impl Action {
    /// One probe: the attempt, repeated at once while it errors.
    pub(crate) async fn probe(&self, target: &ProbeTarget, timeout: Duration) -> Attempt {
        let mut attempt = self.attempt(target, timeout).await;
        for _ in 1..MAX_TRIES {
            if !matches!(attempt, Attempt::Errored { .. }) {
                break;
            }
            attempt = self.attempt(target, timeout).await;
        }
        attempt
    }

    async fn attempt(&self, target: &ProbeTarget, timeout: Duration) -> Attempt {
        match self {
            Action::Exec(command) => exec::probe(target, command, timeout).await,
            Action::Http(get) => http_attempt(get.get(timeout, Purpose::Probe).await),
            Action::Tcp { host, port } => tcp_attempt(host, *port, timeout).await,
            Action::Grpc {
                host,
                port,
                service,
            } => grpc::probe(host, *port, service, timeout).await,
        }
    }
}

fn http_attempt(result: HttpResult) -> Attempt {
    match result {
        HttpResult::Response { status, body } => match status {
            200..=299 => Attempt::Success,
            300..=399 => Attempt::Warning(format!(
                "Probe terminated redirects, Response body: {}",
                String::from_utf8_lossy(&body)
            )),
            _ => Attempt::Failure(format!("HTTP probe failed with statuscode: {status}")),
        },
        HttpResult::Failed(message) => Attempt::Failure(message),
        HttpResult::BodyFailed(message) => Attempt::Errored {
            state: "failure",
            message,
        },
    }
}

async fn tcp_attempt(host: &str, port: u16, timeout: Duration) -> Attempt {
    match tokio::time::timeout(timeout, net::dial(host, port)).await {
        Ok(Ok(_)) => Attempt::Success,
        Ok(Err(message)) => Attempt::Failure(message),
        Err(_) => Attempt::Failure(format!(
            "dial tcp {}: i/o timeout",
            super::gofmt::join_host_port(host, port)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses() {
        let answer = |status| HttpResult::Response {
            status,
            body: b"moved".to_vec(),
        };
        assert_eq!(http_attempt(answer(200)), Attempt::Success);
        assert_eq!(http_attempt(answer(204)), Attempt::Success);
        assert_eq!(
            http_attempt(answer(302)),
            Attempt::Warning("Probe terminated redirects, Response body: moved".into())
        );
        assert_eq!(
            http_attempt(answer(404)),
            Attempt::Failure("HTTP probe failed with statuscode: 404".into())
        );
        assert_eq!(
            http_attempt(answer(500)),
            Attempt::Failure("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(
            http_attempt(HttpResult::BodyFailed("unexpected EOF".into())),
            Attempt::Errored {
                state: "failure",
                message: "unexpected EOF".into()
            }
        );
    }
}
