//! A container's environment as kubelet builds it: `envFrom` sources, then `env` entries in
//! order (literal values expanded against what came before, `fieldRef`,
//! `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef`), then the Service variables
//! (`KUBERNETES_SERVICE_HOST`, `WEB_PORT_80_TCP`, ...) under whatever the pod did not set.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

use crate::volumes::{Allocatable, VolumeSources, expand, field_value, resource_value};

/// Why a container's environment could not be built: kubelet's
/// `CreateContainerConfigError` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't get {kind} {namespace}/{name}: {reason}")]
    Source {
        kind: &'static str,
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("env var {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// The environment, in the order kubelet hands it to the runtime, and warnings for events
/// (names that `envFrom` skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    pub skipped: Vec<String>,
}

/// Everything the environment depends on besides ConfigMaps and Secrets. `pod` must carry the
/// pod's and host's IPs in its status (they are only known once the sandbox is up).
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub allocatable: &'a Allocatable,
    /// The Services of the pod's namespace (used when `enableServiceLinks` is not false)
    /// and the `kubernetes` Service of `default`, which every pod gets.
    pub services: &'a [Service],
}

/// A name kubelet accepts for a variable from `envFrom`: printable ASCII without `=`
/// (the relaxed rule, on by default since Kubernetes 1.32).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

struct Vars {
    order: Vec<String>,
    values: BTreeMap<String, String>,
}

impl Vars {
    fn set(&mut self, name: &str, value: String) {
        if self.values.insert(name.to_string(), value).is_none() {
            self.order.push(name.to_string());
        }
    }
}

/// How kubelet names a kind in its messages: lower case when the object is missing, as the
/// kind when a key is.
type KindNames = (&'static str, &'static str);
const CONFIG_MAP: KindNames = ("configmap", "ConfigMap");
const SECRET: KindNames = ("secret", "Secret");

/// The value of a `configMapKeyRef` / `secretKeyRef`: `found` is `None` when the object does
/// not exist, else the key's value if it has the key. Optional references resolve to nothing
/// instead of failing.
fn key_ref(
    found: Option<Option<String>>,
    optional: bool,
    (missing_kind, key_kind): KindNames,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, EnvError> {
    match found {
        Some(Some(v)) => Ok(Some(v)),
        _ if optional => Ok(None),
        Some(None) => Err(EnvError::MissingKey {
            kind: key_kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            key: key.to_string(),
        }),
        None => Err(EnvError::NotFound {
            kind: missing_kind,
            name: name.to_string(),
        }),
    }
}

fn config_map_value(cm: &ConfigMap, key: &str) -> Option<String> {
    if let Some(v) = cm.data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone());
    }
    cm.binary_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

/// Fetched objects, so a pod with many references to one ConfigMap reads it once.
struct Cache<'s, S> {
    sources: &'s S,
    namespace: String,
    config_maps: BTreeMap<String, Option<ConfigMap>>,
    secrets: BTreeMap<String, Option<Secret>>,
}

impl<S: VolumeSources> Cache<'_, S> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let got = self
                .sources
                .config_map(&self.namespace, name)
                .await
                .map_err(|e| EnvError::Source {
                    kind: "configmap",
                    namespace: self.namespace.clone(),
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
            self.config_maps.insert(name.to_string(), got);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let got = self
                .sources
                .secret(&self.namespace, name)
                .await
                .map_err(|e| EnvError::Source {
                    kind: "secret",
                    namespace: self.namespace.clone(),
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
            self.secrets.insert(name.to_string(), got);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// Builds the container's environment.
pub async fn container_env<S: VolumeSources>(
    sources: &S,
    ctx: &EnvContext<'_>,
) -> Result<Environment, EnvError> {
    let namespace = ctx
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut cache = Cache {
        sources,
        namespace: namespace.clone(),
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let mut vars = Vars {
        order: Vec::new(),
        values: BTreeMap::new(),
    };
    let mut skipped = Vec::new();

    for from in ctx.container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let mut add = |key: &str, value: String| {
            let name = format!("{prefix}{key}");
            if valid_env_name(&name) {
                vars.set(&name, value);
            } else {
                skipped.push(name);
            }
        };
        if let Some(r) = &from.config_map_ref {
            match cache.config_map(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        add(k, v.clone());
                    }
                    for (k, v) in cm.binary_data.iter().flatten() {
                        add(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::NotFound {
                        kind: "configmap",
                        name: r.name.clone(),
                    });
                }
            }
        } else if let Some(r) = &from.secret_ref {
            match cache.secret(&r.name).await? {
                Some(secret) => {
                    for (k, v) in secret.data.iter().flatten() {
                        add(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(EnvError::NotFound {
                        kind: "secret",
                        name: r.name.clone(),
                    });
                }
            }
        }
    }

    let service_vars = service_env(ctx.pod, ctx.services);
    for var in ctx.container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                Some(
                    field_value(ctx.pod, &f.field_path).map_err(|e| EnvError::Invalid {
                        name: var.name.clone(),
                        reason: e.to_string(),
                    })?,
                )
            } else if let Some(r) = &from.resource_field_ref {
                Some(
                    resource_value(ctx.pod, r, Some(&ctx.container.name), ctx.allocatable)
                        .map_err(|e| EnvError::Invalid {
                            name: var.name.clone(),
                            reason: e.to_string(),
                        })?,
                )
            } else if let Some(r) = &from.config_map_key_ref {
                let found = cache
                    .config_map(&r.name)
                    .await?
                    .map(|cm| config_map_value(cm, &r.key));
                key_ref(
                    found,
                    r.optional == Some(true),
                    CONFIG_MAP,
                    &namespace,
                    &r.name,
                    &r.key,
                )?
            } else if let Some(r) = &from.secret_key_ref {
                let found = cache
                    .secret(&r.name)
                    .await?
                    .map(|secret| secret_value(secret, &r.key));
                key_ref(
                    found,
                    r.optional == Some(true),
                    SECRET,
                    &namespace,
                    &r.name,
                    &r.key,
                )?
            } else {
                Some(String::new())
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            Some(expand(&raw, |name| {
                vars.values
                    .get(name)
                    .or_else(|| service_vars.get(name))
                    .cloned()
            }))
        };
        if let Some(v) = value {
            vars.set(&var.name, v);
        }
    }

    for (k, v) in service_vars {
        if !vars.values.contains_key(&k) {
            vars.set(&k, v);
        }
    }
    let Vars { order, mut values } = vars;
    let vars = order
        .into_iter()
        .filter_map(|k| values.remove(&k).map(|v| (k, v)))
        .collect();
    Ok(Environment { vars, skipped })
}

/// The Docker-link-style variables of each Service with a cluster IP: those of the pod's
/// namespace when service links are on, and always the `kubernetes` Service of `default`.
pub fn service_env(pod: &Pod, services: &[Service]) -> BTreeMap<String, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut out = BTreeMap::new();
    // The pod's own namespace wins over the master Service when both define a name.
    let mut chosen: Vec<&Service> = services
        .iter()
        .filter(|s| {
            s.metadata.namespace.as_deref() == Some("default")
                && s.metadata.name.as_deref() == Some("kubernetes")
        })
        .collect();
    if links {
        chosen.extend(
            services
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(namespace)),
        );
    }
    for svc in chosen {
        let Some(spec) = &svc.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let name = svc
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_ascii_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.insert(format!("{name}_SERVICE_HOST"), ip.to_string());
        let Some(first) = ports.first() else { continue };
        out.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
        for p in ports {
            if let Some(pname) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.insert(
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_ascii_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                );
            }
        }
        let url_ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.insert(
            format!("{name}_PORT"),
            format!(
                "{}://{url_ip}:{}",
                proto(first).to_ascii_lowercase(),
                first.port
            ),
        );
        for p in ports {
            let proto = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.insert(
                prefix.clone(),
                format!("{}://{url_ip}:{}", proto.to_ascii_lowercase(), p.port),
            );
            out.insert(format!("{prefix}_PROTO"), proto.to_ascii_lowercase());
            out.insert(format!("{prefix}_PORT"), p.port.to_string());
            out.insert(format!("{prefix}_ADDR"), ip.to_string());
        }
    }
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
