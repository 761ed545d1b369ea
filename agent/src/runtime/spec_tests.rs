use super::*;
use std::path::PathBuf;

fn image() -> ImageConfig {
    ImageConfig {
        name: "skiff.test/busybox:1".into(),
        entrypoint: vec!["/entry".into()],
        cmd: vec!["serve".into(), "--port=80".into()],
        env: vec!["PATH=/image/bin".into(), "A=1".into(), "B=2".into()],
        working_dir: "/srv".into(),
        ..Default::default()
    }
}

fn base() -> ContainerSpec {
    ContainerSpec::new("c1", "skiff.test/busybox:1")
}

fn root() -> ResolvedUser {
    ResolvedUser::default()
}

fn gen_spec(spec: &ContainerSpec) -> oci::Spec {
    generate(spec, &image(), &root()).unwrap()
}

#[test]
fn defaults_match_containerd() {
    let s = gen_spec(&base());
    assert_eq!(s.root.path, "rootfs");
    assert!(!s.root.readonly);
    assert!(!s.process.terminal);
    assert!(!s.process.no_new_privileges);
    assert_eq!(s.process.cwd, "/srv");
    assert_eq!(s.process.args, vec!["/entry", "serve", "--port=80"]);
    let caps = s.process.capabilities.unwrap();
    assert_eq!(caps.bounding.len(), DEFAULT_CAPABILITIES.len());
    for c in DEFAULT_CAPABILITIES {
        assert!(caps.effective.iter().any(|e| e == c), "{c}");
    }
    assert!(!caps.bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
    assert_eq!(caps.bounding, caps.permitted);
    assert!(s.process.rlimits.is_empty(), "inherited from the runtime");
    let dests: Vec<&str> = s.mounts.iter().map(|m| m.destination.as_str()).collect();
    assert_eq!(
        dests,
        vec![
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/dev/shm",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
    let sys = s.mounts.iter().find(|m| m.destination == "/sys").unwrap();
    assert!(sys.options.contains(&"ro".to_string()));
    let kinds: Vec<(&str, bool)> = s
        .linux
        .namespaces
        .iter()
        .map(|n| (n.kind.as_str(), n.path.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("pid", false),
            ("ipc", false),
            ("uts", false),
            ("mount", false),
            ("network", false)
        ]
    );
    assert_eq!(s.linux.masked_paths.len(), MASKED_PATHS.len());
    assert!(s.linux.masked_paths.contains(&"/proc/kcore".to_string()));
    assert!(s.linux.readonly_paths.contains(&"/proc/sys".to_string()));
    assert_eq!(
        s.linux.resources.devices,
        vec![oci::DeviceCgroup {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: Some("rwm".into())
        }]
    );
    assert!(s.linux.resources.memory.is_none());
    assert!(s.linux.resources.cpu.is_none());
    assert!(s.linux.cgroups_path.is_none());
    assert!(s.hostname.is_none());
}

#[test]
fn command_and_args_follow_kubernetes_rules() {
    let mut spec = base();
    spec.command = vec!["/bin/sh".into(), "-c".into()];
    assert_eq!(
        process_args(&spec, &image()).unwrap(),
        vec!["/bin/sh", "-c"]
    );
    spec.args = vec!["echo hi".into()];
    assert_eq!(
        process_args(&spec, &image()).unwrap(),
        vec!["/bin/sh", "-c", "echo hi"]
    );
    spec.command.clear();
    assert_eq!(
        process_args(&spec, &image()).unwrap(),
        vec!["/entry", "echo hi"]
    );
    let mut img = image();
    img.entrypoint.clear();
    img.cmd.clear();
    let err = process_args(&base(), &img).unwrap_err();
    assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
}

#[test]
fn env_merges_over_image_and_defaults_path() {
    let mut spec = base();
    spec.env = vec![("B".into(), "two".into()), ("C".into(), "3=3".into())];
    spec.hostname = Some("web-0".into());
    assert_eq!(
        process_env(&spec, &image()),
        vec!["PATH=/image/bin", "A=1", "B=two", "C=3=3", "HOSTNAME=web-0"]
    );
    let mut img = image();
    img.env.clear();
    assert_eq!(
        process_env(&base(), &img),
        vec![format!("PATH={DEFAULT_PATH}")]
    );
    spec.env.push(("PATH".into(), "/mine".into()));
    spec.env.push(("HOSTNAME".into(), "other".into()));
    assert_eq!(
        process_env(&spec, &img),
        vec!["B=two", "C=3=3", "PATH=/mine", "HOSTNAME=other"]
    );
}

#[test]
fn user_cwd_and_process_options() {
    let mut spec = base();
    spec.working_dir = Some("/tmp".into());
    spec.no_new_privileges = true;
    spec.oom_score_adj = Some(-997);
    spec.nofile_limit = Some(4096);
    let user = ResolvedUser {
        uid: 1000,
        gid: 1001,
        additional_gids: vec![3000],
    };
    let s = generate(&spec, &image(), &user).unwrap();
    assert_eq!(
        s.process.user,
        oci::User {
            uid: 1000,
            gid: 1001,
            additional_gids: vec![3000]
        }
    );
    assert_eq!(s.process.cwd, "/tmp");
    assert!(s.process.no_new_privileges);
    assert_eq!(s.process.oom_score_adj, Some(-997));
    assert_eq!(
        s.process.rlimits,
        vec![oci::Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            hard: 4096,
            soft: 4096
        }]
    );
    let mut img = image();
    img.working_dir.clear();
    assert_eq!(generate(&base(), &img, &root()).unwrap().process.cwd, "/");
    spec.working_dir = Some("relative".into());
    assert!(generate(&spec, &image(), &root()).is_err());
}

#[test]
fn capabilities_add_and_drop() {
    let mut spec = base();
    spec.capabilities.add = vec!["net_admin".into(), "CAP_SYS_TIME".into()];
    spec.capabilities.drop = vec!["MKNOD".into(), "cap_net_raw".into()];
    let caps = capabilities(&spec).unwrap();
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(caps.contains(&"CAP_SYS_TIME".to_string()));
    assert!(!caps.contains(&"CAP_MKNOD".to_string()));
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
    assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
    // Number order, like the kernel's.
    let pos = |c: &str| ALL_CAPABILITIES.iter().position(|x| *x == c).unwrap();
    assert!(caps.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));

    spec.capabilities.drop = vec!["ALL".into()];
    spec.capabilities.add = vec!["NET_BIND_SERVICE".into()];
    assert_eq!(capabilities(&spec).unwrap(), vec!["CAP_NET_BIND_SERVICE"]);

    spec.capabilities.add = vec!["ALL".into()];
    assert_eq!(
        capabilities(&spec).unwrap().len(),
        held_capabilities().len()
    );

    spec.capabilities.add = vec!["FLY".into()];
    assert!(capabilities(&spec).is_err());
    spec.capabilities.add.clear();
    spec.capabilities.drop = vec!["SWIM".into()];
    assert!(capabilities(&spec).is_err());
}

#[test]
fn every_capability_is_what_the_process_holds() {
    assert_eq!(
        capabilities_in_mask(0x1fffeffffff).len(),
        ALL_CAPABILITIES.len() - 1
    );
    assert!(!capabilities_in_mask(0x1fffeffffff).contains(&"CAP_SYS_RESOURCE"));
    assert_eq!(capabilities_in_mask(1 << 12), vec!["CAP_NET_ADMIN"]);
    assert!(held_capabilities().contains(&"CAP_SYS_ADMIN"));
}

#[test]
fn privileged_gets_everything() {
    let mut spec = base();
    spec.privileged = true;
    spec.no_new_privileges = true;
    spec.capabilities.drop = vec!["ALL".into()];
    spec.devices = vec![oci::Device {
        kind: "c".into(),
        path: "/dev/fuse".into(),
        major: 10,
        minor: 229,
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    }];
    let s = gen_spec(&spec);
    let caps = s.process.capabilities.unwrap();
    assert_eq!(caps.bounding.len(), held_capabilities().len());
    assert!(caps.effective.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(!s.process.no_new_privileges);
    assert!(s.linux.masked_paths.is_empty());
    assert!(s.linux.readonly_paths.is_empty());
    assert_eq!(s.linux.resources.devices.len(), 1);
    assert!(s.linux.resources.devices[0].allow);
    assert_eq!(s.linux.devices.len(), 1);
    for dest in ["/sys", "/sys/fs/cgroup"] {
        let m = s.mounts.iter().find(|m| m.destination == dest).unwrap();
        assert!(m.options.contains(&"rw".to_string()), "{dest}");
        assert!(!m.options.contains(&"ro".to_string()), "{dest}");
    }
}

#[test]
fn extra_devices_are_allowed_for_unprivileged() {
    let mut spec = base();
    spec.devices = vec![oci::Device {
        kind: "c".into(),
        path: "/dev/fuse".into(),
        major: 10,
        minor: 229,
        file_mode: None,
        uid: None,
        gid: None,
    }];
    let s = gen_spec(&spec);
    assert_eq!(s.linux.resources.devices.len(), 2);
    assert!(!s.linux.resources.devices[0].allow);
    assert_eq!(s.linux.resources.devices[1].major, Some(10));
    assert!(s.linux.resources.devices[1].allow);
}

#[test]
fn bind_mounts() {
    let mut spec = base();
    spec.mounts = vec![
        BindMount {
            source: "/var/lib/skiff/pods/u/volumes/data/sub".into(),
            destination: "/data/sub".into(),
            readonly: false,
            propagation: Propagation::None,
        },
        BindMount {
            source: "/var/lib/skiff/pods/u/volumes/data".into(),
            destination: "/data/".into(),
            readonly: true,
            propagation: Propagation::HostToContainer,
        },
        BindMount {
            source: "/var/lib/skiff/pods/u/shm".into(),
            destination: "/dev/shm".into(),
            readonly: false,
            propagation: Propagation::None,
        },
        BindMount {
            source: "/var/lib/skiff/pods/u/etc-hosts".into(),
            destination: "/etc/hosts".into(),
            readonly: false,
            propagation: Propagation::None,
        },
    ];
    let s = gen_spec(&spec);
    let shm: Vec<_> = s
        .mounts
        .iter()
        .filter(|m| m.destination == "/dev/shm")
        .collect();
    assert_eq!(shm.len(), 1, "the pod's /dev/shm replaces the default one");
    assert_eq!(shm[0].kind, "bind");
    let pos = |d: &str| s.mounts.iter().position(|m| m.destination == d).unwrap();
    assert!(pos("/data") < pos("/data/sub"), "parents first");
    assert!(pos("/proc") < pos("/data"), "defaults first");
    let data = &s.mounts[pos("/data")];
    assert_eq!(data.options, vec!["rbind", "rslave", "ro"]);
    assert_eq!(data.source, "/var/lib/skiff/pods/u/volumes/data");
    let sub = &s.mounts[pos("/data/sub")];
    assert_eq!(sub.options, vec!["rbind", "rprivate", "rw"]);
    assert_eq!(s.linux.rootfs_propagation.as_deref(), Some("rslave"));

    spec.mounts[0].propagation = Propagation::Bidirectional;
    assert_eq!(
        gen_spec(&spec).linux.rootfs_propagation.as_deref(),
        Some("rshared")
    );

    spec.mounts[0].destination = "data".into();
    assert!(generate(&spec, &image(), &root()).is_err());
    spec.mounts[0].destination = "/a/../etc".into();
    assert!(generate(&spec, &image(), &root()).is_err());
    spec.mounts[0].destination = "/data/sub".into();
    spec.mounts[0].source = PathBuf::from("relative");
    assert!(generate(&spec, &image(), &root()).is_err());
}

#[test]
fn a_mount_over_dev_replaces_all_default_dev_mounts() {
    let mut spec = base();
    spec.mounts = vec![BindMount {
        source: "/dev".into(),
        destination: "/dev".into(),
        ..Default::default()
    }];
    let s = gen_spec(&spec);
    let dev: Vec<_> = s
        .mounts
        .iter()
        .filter(|m| m.destination.starts_with("/dev"))
        .collect();
    assert_eq!(dev.len(), 1);
    assert_eq!(dev[0].kind, "bind");
}

#[test]
fn namespaces_joined_by_path_or_shared_with_host() {
    let mut spec = base();
    spec.hostname = Some("web-0".into());
    spec.namespaces = Namespaces {
        network: NamespaceMode::Path("/run/skiff/pods/u/ns/net".into()),
        ipc: NamespaceMode::Path("/run/skiff/pods/u/ns/ipc".into()),
        uts: NamespaceMode::Path("/run/skiff/pods/u/ns/uts".into()),
        pid: NamespaceMode::Private,
    };
    let s = gen_spec(&spec);
    let ns: Vec<(&str, Option<&str>)> = s
        .linux
        .namespaces
        .iter()
        .map(|n| (n.kind.as_str(), n.path.as_deref()))
        .collect();
    assert_eq!(
        ns,
        vec![
            ("pid", None),
            ("ipc", Some("/run/skiff/pods/u/ns/ipc")),
            ("uts", Some("/run/skiff/pods/u/ns/uts")),
            ("mount", None),
            ("network", Some("/run/skiff/pods/u/ns/net")),
        ]
    );
    assert_eq!(s.hostname.as_deref(), Some("web-0"));

    spec.namespaces = Namespaces {
        network: NamespaceMode::Host,
        ipc: NamespaceMode::Host,
        uts: NamespaceMode::Host,
        pid: NamespaceMode::Host,
    };
    let s = gen_spec(&spec);
    let kinds: Vec<&str> = s.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, vec!["mount"]);
    assert!(s.hostname.is_none(), "no hostname without a UTS namespace");
}

#[test]
fn resources_and_cgroups_path() {
    let mut spec = base();
    spec.cgroups_path = Some("/kubepods/burstable/podu1/c1".into());
    spec.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(100),
        ..Default::default()
    };
    spec.sysctls = BTreeMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]);
    let s = gen_spec(&spec);
    assert_eq!(
        s.linux.cgroups_path.as_deref(),
        Some("/kubepods/burstable/podu1/c1")
    );
    assert_eq!(
        s.linux.resources.cpu,
        Some(oci::Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(100_000)
        })
    );
    assert_eq!(s.linux.resources.memory.unwrap().limit, Some(64 << 20));
    assert_eq!(s.linux.resources.pids.unwrap().limit, 100);
    assert_eq!(s.linux.sysctl.len(), 1);
}

#[test]
fn readonly_rootfs_and_annotations() {
    let mut spec = base();
    spec.readonly_rootfs = true;
    spec.annotations = BTreeMap::from([("io.skiff.note".into(), "x".into())]);
    let s = gen_spec(&spec);
    assert!(s.root.readonly);
    assert_eq!(
        s.annotations.get("io.skiff.note").map(String::as_str),
        Some("x")
    );
}

#[test]
fn json_uses_the_specification_field_names() {
    let mut spec = base();
    spec.cgroups_path = Some("/x/c1".into());
    spec.oom_score_adj = Some(5);
    spec.no_new_privileges = true;
    spec.readonly_rootfs = true;
    spec.nofile_limit = Some(1024);
    let user = ResolvedUser {
        uid: 1,
        gid: 2,
        additional_gids: vec![3],
    };
    let json = serde_json::to_value(generate(&spec, &image(), &user).unwrap()).unwrap();
    assert_eq!(json["ociVersion"], "1.0.2-dev");
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["process"]["oomScoreAdj"], 5);
    assert_eq!(json["process"]["user"]["additionalGids"][0], 3);
    assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert_eq!(json["root"]["readonly"], true);
    assert_eq!(json["linux"]["cgroupsPath"], "/x/c1");
    assert_eq!(json["linux"]["namespaces"][0]["type"], "pid");
    assert!(json["linux"]["namespaces"][0].get("path").is_none());
    assert!(json["linux"]["maskedPaths"].is_array());
    assert!(json["linux"]["readonlyPaths"].is_array());
    assert_eq!(json["linux"]["resources"]["devices"][0]["access"], "rwm");
    assert!(json["linux"]["resources"].get("memory").is_none());
    assert_eq!(json["mounts"][0]["type"], "proc");
    assert!(json.get("hostname").is_none());
    let back: oci::Spec = serde_json::from_value(json).unwrap();
    assert_eq!(back.linux.cgroups_path.as_deref(), Some("/x/c1"));
}

#[test]
fn labels_include_meta() {
    let mut spec = base();
    spec.labels.insert("extra".into(), "1".into());
    spec.meta = Some(ContainerMeta {
        pod_uid: "u1".into(),
        container_name: "app".into(),
        attempt: 2,
        ..Default::default()
    });
    let labels = spec.all_labels();
    assert_eq!(labels.get("extra").map(String::as_str), Some("1"));
    assert_eq!(
        labels
            .get(crate::runtime::labels::ATTEMPT)
            .map(String::as_str),
        Some("2")
    );
}

#[test]
fn host_devices_lists_device_nodes_only() {
    let devs = host_devices(std::path::Path::new("/dev"));
    let null = devs.iter().find(|d| d.path == "/dev/null").unwrap();
    assert_eq!((null.kind.as_str(), null.major, null.minor), ("c", 1, 3));
    assert!(devs.iter().all(|d| d.kind == "c" || d.kind == "b"));
    assert!(!devs.iter().any(|d| d.path.starts_with("/dev/pts/")));
}
