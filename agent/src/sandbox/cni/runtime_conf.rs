use std::path::PathBuf;

use serde_json::{Map, Value};

use super::CniError;

/// The pod an attachment belongs to, passed to plugins in `CNI_ARGS` the way the
/// kubelet and containerd do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sArgs {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One attachment: what libcni calls the runtime configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The network namespace path; may be gone (or empty) for DEL.
    pub netns: PathBuf,
    pub ifname: String,
    pub k8s: Option<K8sArgs>,
    /// Further `CNI_ARGS` pairs, after the Kubernetes ones.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `dns`, `bandwidth`, ...): each plugin
    /// gets, in `runtimeConfig`, those it declares among its capabilities.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    pub fn new(
        container_id: impl Into<String>,
        netns: impl Into<PathBuf>,
        ifname: impl Into<String>,
    ) -> RuntimeConf {
        RuntimeConf {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            ..RuntimeConf::default()
        }
    }

    /// The `CNI_ARGS` pairs: `IgnoreUnknown=1` and the pod's identity first, so
    /// plugins that know no Kubernetes keys accept them.
    pub fn cni_args(&self) -> Vec<[String; 2]> {
        let mut pairs = Vec::new();
        if let Some(k8s) = &self.k8s {
            pairs.push(["IgnoreUnknown".into(), "1".into()]);
            pairs.push(["K8S_POD_NAMESPACE".into(), k8s.namespace.clone()]);
            pairs.push(["K8S_POD_NAME".into(), k8s.name.clone()]);
            pairs.push([
                "K8S_POD_INFRA_CONTAINER_ID".into(),
                self.container_id.clone(),
            ]);
            pairs.push(["K8S_POD_UID".into(), k8s.uid.clone()]);
        }
        pairs.extend(self.args.iter().map(|(k, v)| [k.clone(), v.clone()]));
        pairs
    }

    /// libcni's checks: plugins use both in file names and interface names.
    pub(crate) fn validate(&self) -> Result<(), CniError> {
        let id = &self.container_id;
        let mut chars = id.chars();
        if !(chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(CniError::InvalidRuntimeConf {
                what: "container ID",
                value: id.clone(),
                reason: "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
            });
        }
        let ifname = &self.ifname;
        if ifname.is_empty()
            || ifname.len() > 15
            || ifname == "."
            || ifname == ".."
            || ifname
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(CniError::InvalidRuntimeConf {
                what: "interface name",
                value: ifname.clone(),
                reason: "must be 1-15 bytes without '/', ':' or whitespace",
            });
        }
        Ok(())
    }
}

pub(crate) fn args_env(pairs: &[[String; 2]]) -> String {
    pairs
        .iter()
        .map(|[k, v]| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_args_come_first() {
        let mut rt = RuntimeConf::new("abc", "/run/netns/x", "eth0");
        rt.k8s = Some(K8sArgs {
            namespace: "shop".into(),
            name: "web-0".into(),
            uid: "u-1".into(),
        });
        rt.args.push(("IP".into(), "10.0.0.9".into()));
        assert_eq!(
            args_env(&rt.cni_args()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1;IP=10.0.0.9"
        );
        assert!(rt.validate().is_ok());
        assert!(RuntimeConf::new("../x", "", "eth0").validate().is_err());
        assert!(RuntimeConf::new("x", "", "eth0:1").validate().is_err());
        assert!(
            RuntimeConf::new("x", "", "a-very-long-ifname")
                .validate()
                .is_err()
        );
    }
}
