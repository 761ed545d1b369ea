//! postStart and preStop hooks.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;

use super::ProbeTarget;
use super::exec::{self, Ran};
use super::gofmt::{self, quote};
use super::http::{HttpGet, HttpResult, Purpose};
use super::tls::HTTP_TO_HTTPS;

/// kubelet's name for a pod in hook messages: `name_namespace(uid)`.
pub fn pod_desc(name: &str, namespace: &str, uid: &str) -> String {
    format!("{name}_{namespace}({uid})")
}

/// Runs a postStart or preStop handler once, as kubelet does: an exec in the container (a
/// non-zero exit fails), an HTTP GET (any response succeeds, only a failed request fails;
/// an HTTPS request answered in plain HTTP is retried over HTTP), or a sleep. kubelet runs no
/// tcpSocket hooks: the field is deprecated and such a hook fails.
///
/// `pod` names the pod in messages (see [`pod_desc`]). `timeout` bounds the exec, the request
/// or the sleep, and running out of it fails the hook; kubelet records no event for a preStop
/// hook cut short by the grace period, so a caller that wants that should give a longer
/// `timeout` and bound the call itself.
///
/// The error is the message of kubelet's `FailedPostStartHook` / `FailedPreStopHook` event,
/// e.g. `Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web_ns(uid)"
/// failed - error: command 'sh -c exit 3' exited with 3: , message: ""`.
pub async fn run_handler(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    pod: &str,
    timeout: Duration,
) -> Result<(), String> {
    let container = quote(&target.container.name);
    let pod_q = quote(pod);
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (error, output) = match exec::run(target, &command, timeout).await {
            Ran::Exited(out) if out.exit_code == 0 => return Ok(()),
            Ran::Exited(out) => {
                let error = format!(
                    "command '{}' exited with {}: {}",
                    command.join(" "),
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr)
                );
                let mut output = out.stdout;
                output.extend_from_slice(&out.stderr);
                (error, output)
            }
            Ran::TimedOut => (exec::timed_out(&command), Vec::new()),
            Ran::Failed(e) => (e.to_string(), Vec::new()),
        };
        return Err(format!(
            "Exec lifecycle hook ({}) for Container {container} in Pod {pod_q} failed - error: {error}, message: {}",
            gofmt::list(&command),
            gofmt::quote_bytes(&output)
        ));
    }
    if let Some(action) = &handler.http_get {
        let path = action.path.as_deref().unwrap_or_default();
        let fail = |error: &str| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {container} in Pod {pod_q} failed - error: {error}"
            )
        };
        let get = HttpGet::new(action, &target.container, target.pod_ip, Purpose::Lifecycle)
            .map_err(|e| fail(&e.message()))?;
        let deadline = Instant::now() + timeout;
        let error = match get.get(timeout, Purpose::Lifecycle).await {
            HttpResult::Failed(error) => error,
            HttpResult::Response { .. } | HttpResult::BodyFailed(_) => return Ok(()),
        };
        if get.is_https() && error.ends_with(HTTP_TO_HTTPS) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !matches!(
                get.downgraded().get(remaining, Purpose::Lifecycle).await,
                HttpResult::Failed(_)
            ) {
                tracing::warn!(
                    container = %target.container.name,
                    pod,
                    "request to HTTPS lifecycle hook got HTTP response, retry with HTTP succeeded"
                );
                return Ok(());
            }
        }
        return Err(fail(&error));
    }
    if let Some(sleep) = &handler.sleep {
        let wanted = Duration::from_secs(sleep.seconds.max(0).unsigned_abs());
        if wanted <= timeout {
            tokio::time::sleep(wanted).await;
            return Ok(());
        }
        tokio::time::sleep(timeout).await;
        return Err(format!(
            "Sleep lifecycle hook ({}) for Container {container} in Pod {pod_q} failed - error: container terminated before sleep hook finished",
            sleep.seconds
        ));
    }
    Err(format!(
        "Cannot run handler: invalid handler: {}",
        describe(handler)
    ))
}

/// The handler as Go's `%v` prints it in kubelet's message for handlers it cannot run.
fn describe(handler: &LifecycleHandler) -> String {
    let tcp = match &handler.tcp_socket {
        None => "nil".to_string(),
        Some(TCPSocketAction { port, host }) => {
            let port = match port {
                IntOrString::Int(n) => format!("{{0 {n} }}"),
                IntOrString::String(s) => format!("{{1 0 {s}}}"),
            };
            format!(
                "&TCPSocketAction{{Port:{port},Host:{},}}",
                host.as_deref().unwrap_or_default()
            )
        }
    };
    format!("&LifecycleHandler{{Exec:nil,HTTPGet:nil,TCPSocket:{tcp},Sleep:nil,}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names() {
        assert_eq!(pod_desc("web", "default", "1234"), "web_default(1234)");
    }

    #[test]
    fn unsupported_handlers() {
        let tcp = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(8080),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            describe(&tcp),
            "&LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{0 8080 },Host:,},Sleep:nil,}"
        );
        let named = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("http".into()),
                host: Some("db".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            describe(&named),
            "&LifecycleHandler{Exec:nil,HTTPGet:nil,TCPSocket:&TCPSocketAction{Port:{1 0 http},Host:db,},Sleep:nil,}"
        );
    }
}
