//! A `Probe` from the pod spec, checked and resolved against its container once, before any
//! probing starts.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::action::Action;
use super::http::{HttpGet, Purpose};
use super::{ProbeError, ProbeKind, ProbeProblem, ProbeTarget};
use crate::volumes::env_expansion::expand;

/// When and how often to probe, and how results are thresholded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A probe ready to run.
#[derive(Clone, Debug)]
pub(crate) struct ProbeSpec {
    pub timing: Timing,
    pub action: Action,
}

impl ProbeSpec {
    pub(crate) fn new(
        kind: ProbeKind,
        probe: &Probe,
        target: &ProbeTarget,
    ) -> Result<Self, ProbeError> {
        let fail = |problem| ProbeError {
            kind,
            container: target.container.name.clone(),
            problem,
        };
        let timing = timing(kind, probe).map_err(fail)?;
        let action = action(probe, &target.container, target.pod_ip).map_err(fail)?;
        Ok(ProbeSpec { timing, action })
    }
}

/// Reads one of the probe's integer settings: unset or 0 means the API's default (the API
/// server fills those in; a bare pod spec may not have them), negative values are refused.
fn setting(
    value: Option<i32>,
    field: &'static str,
    default: i32,
    min: i32,
) -> Result<u32, ProbeProblem> {
    match value {
        None | Some(0) => Ok(default.unsigned_abs()),
        Some(v) if v < min => Err(ProbeProblem::Setting {
            field,
            rule: if min > 0 { "positive" } else { "non-negative" },
            value: i64::from(v),
        }),
        Some(v) => Ok(v.unsigned_abs()),
    }
}

fn timing(kind: ProbeKind, probe: &Probe) -> Result<Timing, ProbeProblem> {
    let initial_delay = setting(probe.initial_delay_seconds, "initialDelaySeconds", 0, 0)?;
    let period = setting(probe.period_seconds, "periodSeconds", 10, 1)?;
    let timeout = setting(probe.timeout_seconds, "timeoutSeconds", 1, 1)?;
    let success_threshold = setting(probe.success_threshold, "successThreshold", 1, 1)?;
    let failure_threshold = setting(probe.failure_threshold, "failureThreshold", 3, 1)?;
    if kind != ProbeKind::Readiness && success_threshold != 1 {
        return Err(ProbeProblem::Setting {
            field: "successThreshold",
            rule: "1 for liveness and startup probes",
            value: i64::from(success_threshold),
        });
    }
    Ok(Timing {
        initial_delay: Duration::from_secs(u64::from(initial_delay)),
        period: Duration::from_secs(u64::from(period)),
        timeout: Duration::from_secs(u64::from(timeout)),
        success_threshold,
        failure_threshold,
    })
}

fn action(
    probe: &Probe,
    container: &Container,
    pod_ip: Option<IpAddr>,
) -> Result<Action, ProbeProblem> {
    let mut handlers = Vec::new();
    if probe.exec.is_some() {
        handlers.push("exec");
    }
    if probe.http_get.is_some() {
        handlers.push("httpGet");
    }
    if probe.tcp_socket.is_some() {
        handlers.push("tcpSocket");
    }
    if probe.grpc.is_some() {
        handlers.push("grpc");
    }
    if handlers.len() > 1 {
        return Err(ProbeProblem::ManyHandlers(handlers.join(", ")));
    }
    if let Some(exec) = &probe.exec {
        let command = exec.command.as_deref().unwrap_or_default();
        if command.is_empty() {
            return Err(ProbeProblem::Handler("exec: command is empty".into()));
        }
        return Ok(Action::Exec(expand_command(command, container)));
    }
    if let Some(get) = &probe.http_get {
        let get =
            HttpGet::new(get, container, pod_ip, Purpose::Probe).map_err(|e| e.into_problem())?;
        return Ok(Action::Http(get));
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, container).map_err(ProbeProblem::Port)?;
        let host = host_or_pod_ip(tcp.host.as_deref(), pod_ip)?;
        return Ok(Action::Tcp { host, port });
    }
    if let Some(grpc) = &probe.grpc {
        let port = check_port(i64::from(grpc.port)).map_err(ProbeProblem::Port)?;
        // gRPC probes have no host field: always the pod.
        let host = host_or_pod_ip(None, pod_ip)?;
        let service = grpc.service.clone().unwrap_or_default();
        return Ok(Action::Grpc {
            host,
            port,
            service,
        });
    }
    Err(ProbeProblem::NoHandler)
}

pub(crate) fn host_or_pod_ip(
    host: Option<&str>,
    pod_ip: Option<IpAddr>,
) -> Result<String, ProbeProblem> {
    match (host.filter(|h| !h.is_empty()), pod_ip) {
        (Some(host), _) => Ok(host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()),
        (None, Some(ip)) => Ok(ip.to_string()),
        (None, None) => Err(ProbeProblem::NoHost),
    }
}

/// kubelet expands `$(VAR)` in exec probe commands with the container's literal `env` values
/// (not those from ConfigMaps, Secrets or the downward API, which it does not know here).
fn expand_command(command: &[String], container: &Container) -> Vec<String> {
    let env = container.env.as_deref().unwrap_or_default();
    command
        .iter()
        .map(|arg| {
            expand(arg, |name| {
                env.iter()
                    .rev()
                    .find(|var| var.name == name)
                    .map(|var| var.value.clone().unwrap_or_default())
            })
        })
        .collect()
}

/// A probe's or hook's port: a number, one of the container's named ports, or a number
/// written as a string. Errors are kubelet's text.
pub(crate) fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => check_port(i64::from(*n)),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            if let Some(p) = named {
                return check_port(i64::from(p.container_port));
            }
            match name.parse::<i64>() {
                Ok(n) => check_port(n),
                Err(e) => {
                    let why = match e.kind() {
                        std::num::IntErrorKind::PosOverflow
                        | std::num::IntErrorKind::NegOverflow => "value out of range",
                        _ => "invalid syntax",
                    };
                    Err(format!(
                        "strconv.Atoi: parsing {}: {why}",
                        super::gofmt::quote(name)
                    ))
                }
            }
        }
    }
}

fn check_port(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port number: {n}")),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerPort, EnvVar, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction,
    };

    use super::*;

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "DIR".into(),
                    value: Some("/tmp".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "EMPTY".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: Some("10.0.0.5".parse().unwrap()),
            container_id: "c1".into(),
            runtime: std::sync::Arc::new(crate::runtime::fake::FakeRuntime::new()),
            container: container(),
            pod: Default::default(),
        }
    }

    fn tcp(port: IntOrString) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction { port, host: None }),
            ..Default::default()
        }
    }

    fn problem(kind: ProbeKind, probe: &Probe) -> ProbeProblem {
        ProbeSpec::new(kind, probe, &target()).unwrap_err().problem
    }

    #[test]
    fn defaults() {
        let spec =
            ProbeSpec::new(ProbeKind::Liveness, &tcp(IntOrString::Int(80)), &target()).unwrap();
        assert_eq!(
            spec.timing,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let Action::Tcp { host, port } = spec.action else {
            panic!("not tcp")
        };
        assert_eq!((host.as_str(), port), ("10.0.0.5", 80));
    }

    #[test]
    fn explicit_settings() {
        let probe = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(4),
            failure_threshold: Some(6),
            ..tcp(IntOrString::String("http".into()))
        };
        let spec = ProbeSpec::new(ProbeKind::Readiness, &probe, &target()).unwrap();
        assert_eq!(spec.timing.initial_delay, Duration::from_secs(5));
        assert_eq!(spec.timing.period, Duration::from_secs(2));
        assert_eq!(spec.timing.timeout, Duration::from_secs(3));
        assert_eq!(spec.timing.success_threshold, 4);
        assert_eq!(spec.timing.failure_threshold, 6);
        assert!(matches!(spec.action, Action::Tcp { port: 8080, .. }));
    }

    #[test]
    fn invalid_probes() {
        assert_eq!(
            problem(ProbeKind::Readiness, &Probe::default()),
            ProbeProblem::NoHandler
        );
        let two = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..tcp(IntOrString::Int(80))
        };
        assert_eq!(
            problem(ProbeKind::Readiness, &two),
            ProbeProblem::ManyHandlers("exec, tcpSocket".into())
        );
        let threshold = Probe {
            success_threshold: Some(2),
            ..tcp(IntOrString::Int(80))
        };
        assert!(matches!(
            problem(ProbeKind::Liveness, &threshold),
            ProbeProblem::Setting {
                field: "successThreshold",
                ..
            }
        ));
        assert!(matches!(
            problem(ProbeKind::Startup, &threshold),
            ProbeProblem::Setting { .. }
        ));
        assert!(ProbeSpec::new(ProbeKind::Readiness, &threshold, &target()).is_ok());
        let negative = Probe {
            period_seconds: Some(-1),
            ..tcp(IntOrString::Int(80))
        };
        assert!(matches!(
            problem(ProbeKind::Readiness, &negative),
            ProbeProblem::Setting {
                field: "periodSeconds",
                ..
            }
        ));
        assert_eq!(
            problem(
                ProbeKind::Readiness,
                &tcp(IntOrString::String("grpc".into()))
            ),
            ProbeProblem::Port(r#"strconv.Atoi: parsing "grpc": invalid syntax"#.into())
        );
        assert_eq!(
            problem(ProbeKind::Readiness, &tcp(IntOrString::Int(70000))),
            ProbeProblem::Port("invalid port number: 70000".into())
        );
        let empty = Probe {
            exec: Some(ExecAction {
                command: Some(vec![]),
            }),
            ..Default::default()
        };
        assert!(matches!(
            problem(ProbeKind::Liveness, &empty),
            ProbeProblem::Handler(_)
        ));
        let scheme = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(80),
                scheme: Some("FTP".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            problem(ProbeKind::Liveness, &scheme),
            ProbeProblem::Handler(_)
        ));
    }

    #[test]
    fn no_host() {
        let mut t = target();
        t.pod_ip = None;
        let grpc = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
            }),
            ..Default::default()
        };
        let err = ProbeSpec::new(ProbeKind::Liveness, &grpc, &t).unwrap_err();
        assert_eq!(err.problem, ProbeProblem::NoHost);
        assert_eq!(
            err.to_string(),
            "Liveness probe of container \"app\": no host to probe: the probe names none and the pod has no IP"
        );
        let named = Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                host: Some("db.local".into()),
            }),
            ..Default::default()
        };
        let spec = ProbeSpec::new(ProbeKind::Liveness, &named, &t).unwrap();
        assert!(matches!(spec.action, Action::Tcp { ref host, .. } if host == "db.local"));
    }

    #[test]
    fn ports() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c),
            Ok(9090)
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(0), &c),
            Err("invalid port number: 0".into())
        );
        assert_eq!(
            resolve_port(&IntOrString::String("".into()), &c),
            Err(r#"strconv.Atoi: parsing "": invalid syntax"#.into())
        );
        assert_eq!(
            resolve_port(&IntOrString::String("99999999999999999999".into()), &c),
            Err(r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#.into())
        );
    }

    #[test]
    fn exec_commands_expand_literal_env() {
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "cat".into(),
                    "$(DIR)/ready".into(),
                    "$(EMPTY)$(UNSET)$$(DIR)".into(),
                ]),
            }),
            ..Default::default()
        };
        let spec = ProbeSpec::new(ProbeKind::Readiness, &probe, &target()).unwrap();
        let Action::Exec(command) = spec.action else {
            panic!("not exec")
        };
        assert_eq!(command, ["cat", "/tmp/ready", "$(UNSET)$(DIR)"]);
    }
}
