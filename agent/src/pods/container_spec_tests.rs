#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::sandbox::Namespaces as SandboxNamespaces;
use crate::sandbox::files::FilePaths;

fn sandbox(host_network: bool) -> SandboxInfo {
    let dir = PathBuf::from("/run/skiff/pods/u1");
    let ns = |n: &str| (!host_network).then(|| dir.join("ns").join(n));
    SandboxInfo {
        uid: "u1".into(),
        dir: dir.clone(),
        namespaces: SandboxNamespaces {
            dir: dir.join("ns"),
            net: ns("net"),
            ipc: Some(dir.join("ns/ipc")),
            uts: ns("uts"),
        },
        ips: vec!["10.1.0.7".parse().unwrap()],
        result: None,
        files: FilePaths::in_dir(&dir.join("etc")),
        hostname: "web".into(),
        shm: Some(dir.join("shm")),
        warnings: vec![],
    }
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap()
}

fn build(
    pod: &Pod,
    image: &ImageConfig,
    env: &[(String, String)],
    host_network: bool,
) -> Result<ContainerSpec, ConfigError> {
    let sb = sandbox(host_network);
    let cg = PodCgroup {
        uid: "u1".into(),
        qos: QosClass::Burstable,
        path: "/kubepods/burstable/podu1".into(),
    };
    let mounts = vec![volumes::Mount {
        volume: "data".into(),
        host_path: PathBuf::from("/var/lib/skiff/pods/u1/volumes/kubernetes.io~empty-dir/data"),
        container_path: "/data".into(),
        read_only: true,
        propagation: volumes::Propagation::HostToContainer,
    }];
    container_spec(&ContainerInputs {
        pod,
        container: &pod.spec.as_ref().unwrap().containers[0],
        attempt: 2,
        sandbox: &sb,
        image_name: "docker.io/library/busybox:1.36",
        image,
        env,
        volume_mounts: &mounts,
        cgroup: Some(&cg),
        limits: Resources {
            memory_limit: Some(64 << 20),
            ..Default::default()
        },
        qos: QosClass::Burstable,
        memory_capacity: 1 << 30,
        log_path: PathBuf::from("/var/log/pods/shop_web_u1/app/2.log"),
        logger: None,
        termination_log: Some(PathBuf::from("/run/term")),
    })
}

#[test]
fn ids_are_stable_and_distinct() {
    let a = container_id("u1", "app", 0);
    assert_eq!(a.len(), 64);
    assert_eq!(a, container_id("u1", "app", 0));
    assert_ne!(a, container_id("u1", "app", 1));
    assert_ne!(a, container_id("u2", "app", 0));
}

#[test]
fn a_full_container() {
    let p = pod(json!({
        "securityContext": {"runAsUser": 1000, "supplementalGroups": [5], "fsGroup": 2000,
                            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
        "containers": [{
            "name": "app", "image": "busybox:1.36",
            "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(GREETING) $(NOPE)"],
            "workingDir": "/data",
            "resources": {"requests": {"memory": "256Mi"}},
            "securityContext": {"runAsGroup": 3000, "readOnlyRootFilesystem": true,
                                "allowPrivilegeEscalation": false,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
        }],
    }));
    let env = vec![("GREETING".to_string(), "hi".to_string())];
    let s = build(&p, &ImageConfig::default(), &env, false).unwrap();
    assert_eq!(s.id, container_id("u1", "app", 2));
    assert_eq!(s.image, "docker.io/library/busybox:1.36");
    assert_eq!(s.command, vec!["sh", "-c"]);
    assert_eq!(s.args, vec!["echo hi $(GREETING) $(NOPE)"]);
    assert_eq!(s.working_dir.as_deref(), Some("/data"));
    assert_eq!(s.user.run_as_user, Some(1000));
    assert_eq!(s.user.run_as_group, Some(3000));
    assert_eq!(s.user.supplemental_groups, vec![5, 2000]);
    assert!(s.readonly_rootfs && s.no_new_privileges && !s.privileged);
    assert_eq!(s.capabilities.add, vec!["NET_ADMIN"]);
    assert_eq!(s.capabilities.drop, vec!["ALL"]);
    assert_eq!(
        s.cgroups_path.as_deref(),
        Some(format!("/kubepods/burstable/podu1/{}", s.id).as_str())
    );
    assert_eq!(s.resources.memory_limit, Some(64 << 20));
    // 256Mi of a 1Gi node: 1000 - 250.
    assert_eq!(s.oom_score_adj, Some(750));
    assert_eq!(s.hostname.as_deref(), Some("web"));
    assert_eq!(
        s.namespaces.network,
        NamespaceMode::Path("/run/skiff/pods/u1/ns/net".into())
    );
    assert_eq!(s.namespaces.pid, NamespaceMode::Private);
    assert_eq!(
        s.sysctls.get("net.ipv4.ip_unprivileged_port_start"),
        Some(&"0".to_string())
    );
    let dests: Vec<&str> = s.mounts.iter().map(|m| m.destination.as_str()).collect();
    assert_eq!(
        dests,
        vec![
            "/data",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/dev/shm",
            "/dev/termination-log"
        ]
    );
    assert!(s.mounts[0].readonly);
    assert_eq!(s.mounts[0].propagation, Propagation::HostToContainer);
    assert_eq!(
        s.mounts[1].source,
        Path::new("/run/skiff/pods/u1/etc/hosts")
    );
    let meta = s.meta.unwrap();
    assert_eq!(
        (
            meta.pod_namespace.as_str(),
            meta.pod_name.as_str(),
            meta.attempt
        ),
        ("shop", "web", 2)
    );
    assert_eq!(
        s.log,
        LogTarget::File("/var/log/pods/shop_web_u1/app/2.log".into())
    );
}

#[test]
fn host_network_uses_the_hosts_namespaces() {
    let p = pod(
        json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "app", "image": "x"}]}),
    );
    let s = build(&p, &ImageConfig::default(), &[], true).unwrap();
    assert_eq!(s.namespaces.network, NamespaceMode::Host);
    assert_eq!(s.namespaces.uts, NamespaceMode::Host);
    assert_eq!(s.namespaces.pid, NamespaceMode::Host);
    assert!(matches!(s.namespaces.ipc, NamespaceMode::Path(_)));
}

#[test]
fn run_as_non_root_is_checked_against_the_image() {
    let nonroot = |extra: serde_json::Value| {
        let mut sc = json!({"runAsNonRoot": true});
        sc.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        pod(json!({"containers": [{"name": "app", "image": "x", "securityContext": sc}]}))
    };
    let image = |user: &str| ImageConfig {
        user: user.into(),
        ..Default::default()
    };
    let err = build(&nonroot(json!({})), &image(""), &[], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "container has runAsNonRoot and image will run as root (pod: \"web_shop(u1)\", container: app)"
    );
    let err = build(&nonroot(json!({})), &image("nobody"), &[], false).unwrap_err();
    assert!(
        err.to_string().contains("non-numeric user (nobody)"),
        "{err}"
    );
    assert!(build(&nonroot(json!({})), &image("65534:65534"), &[], false).is_ok());
    assert!(build(&nonroot(json!({"runAsUser": 10})), &image(""), &[], false).is_ok());
    assert!(build(&nonroot(json!({"runAsUser": 0})), &image("10"), &[], false).is_err());
}

#[test]
fn oom_scores_like_kubelet() {
    assert_eq!(oom_score_adj(QosClass::Guaranteed, 1, 100), -997);
    assert_eq!(oom_score_adj(QosClass::BestEffort, 0, 100), 1000);
    assert_eq!(oom_score_adj(QosClass::Burstable, 0, 100), 999);
    assert_eq!(oom_score_adj(QosClass::Burstable, 100, 100), 3);
    assert_eq!(oom_score_adj(QosClass::Burstable, 50, 100), 500);
}
