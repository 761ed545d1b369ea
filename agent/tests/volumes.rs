#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pod volumes on the real kernel: directories, tmpfs and bind mounts made in
//! throwaway directories, each test with its own pod UID, all removed (and
//! unmounted) even when a test fails.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    ServiceAccountTokenProjection,
};
use serde_json::{Value, json};
use skiff_agent::volumes::{
    ApiSources, Propagation, SourceError, VolumeError, VolumeManager, VolumeSources,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory of the test's own; on drop everything mounted below it is
/// detached and the directory removed.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let path = std::env::temp_dir().join(unique("skiff-volumes"));
        fs::create_dir_all(&path).unwrap();
        Scratch {
            path: fs::canonicalize(&path).unwrap(),
        }
    }

    fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for _ in 0..8 {
            let mounted = mounts_under(&self.path);
            if mounted.is_empty() {
                break;
            }
            for m in mounted.iter().rev() {
                let c = std::ffi::CString::new(m.0.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid C string; the mount is one this test made.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// (mount point, fs type, super options) of mounts at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<(PathBuf, String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?.replace("\\040", " ");
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_string();
            let _source = right.next();
            let options = right.next().unwrap_or("").to_string();
            Some((PathBuf::from(point), fs_type, options))
        })
        .filter(|(p, _, _)| p.starts_with(dir))
        .collect()
}

fn mounts_at(path: &Path) -> Vec<(PathBuf, String, String)> {
    mounts_under(path)
        .into_iter()
        .filter(|(p, _, _)| p == path)
        .collect()
}

/// API objects in memory, changeable while a test runs.
#[derive(Default)]
struct Fake {
    config_maps: Mutex<BTreeMap<String, ConfigMap>>,
    secrets: Mutex<BTreeMap<String, Secret>>,
    claims: Mutex<BTreeMap<String, PersistentVolumeClaim>>,
    volumes: Mutex<BTreeMap<String, PersistentVolume>>,
    token: Mutex<Option<String>>,
}

impl Fake {
    fn config_map(&self, name: &str, data: &[(&str, &str)]) {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap();
        self.config_maps
            .lock()
            .unwrap()
            .insert(name.to_string(), cm);
    }

    fn secret(&self, name: &str, data: &[(&str, &[u8])]) {
        let mut s = Secret::default();
        s.metadata.name = Some(name.to_string());
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        );
        self.secrets.lock().unwrap().insert(name.to_string(), s);
    }

    fn claim(&self, claim: Value) {
        let claim: PersistentVolumeClaim = serde_json::from_value(claim).unwrap();
        let name = claim.metadata.name.clone().unwrap();
        self.claims.lock().unwrap().insert(name, claim);
    }

    fn volume(&self, volume: Value) {
        let volume: PersistentVolume = serde_json::from_value(volume).unwrap();
        let name = volume.metadata.name.clone().unwrap();
        self.volumes.lock().unwrap().insert(name, volume);
    }
}

impl VolumeSources for Fake {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        assert_eq!(ns, "default");
        Ok(self.config_maps.lock().unwrap().get(name).cloned())
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        assert_eq!(ns, "default");
        Ok(self.secrets.lock().unwrap().get(name).cloned())
    }

    async fn persistent_volume_claim(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        assert_eq!(ns, "default");
        Ok(self.claims.lock().unwrap().get(name).cloned())
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        Ok(self.volumes.lock().unwrap().get(name).cloned())
    }

    async fn service_account_token(
        &self,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<Option<String>, SourceError> {
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
        assert_eq!(projection.expiration_seconds, Some(3607));
        Ok(self.token.lock().unwrap().clone())
    }
}

/// Sources that implement only what the trait requires (no tokens).
struct Plain;

impl VolumeSources for Plain {
    async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, SourceError> {
        Ok(None)
    }
    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, SourceError> {
        Ok(None)
    }
    async fn persistent_volume_claim(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        Ok(None)
    }
    async fn persistent_volume(&self, _: &str) -> Result<Option<PersistentVolume>, SourceError> {
        Err("no volumes here".into())
    }
}

struct Env {
    scratch: Scratch,
    manager: VolumeManager,
    uid: String,
}

impl Env {
    fn new() -> Self {
        let scratch = Scratch::new();
        let manager = VolumeManager::new(scratch.join("root"), "/proc");
        Env {
            scratch,
            manager,
            uid: unique("uid"),
        }
    }

    fn pod(&self, volumes: Value) -> Pod {
        self.pod_with(volumes, json!([{"name": "app", "image": "busybox"}]))
    }

    fn pod_with(&self, volumes: Value, containers: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "default", "uid": self.uid,
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "say \"hi\""},
            },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "robot",
                "containers": containers,
                "volumes": volumes,
            },
            "status": {"podIP": "10.1.0.7", "hostIP": "192.168.1.2"},
        }))
        .unwrap()
    }

    fn volume_dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.scratch
            .join("root/pods")
            .join(&self.uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    }

    fn pod_dir(&self) -> PathBuf {
        self.scratch.join("root/pods").join(&self.uid)
    }
}

fn container(mounts: Value) -> Container {
    serde_json::from_value(json!({"name": "app", "volumeMounts": mounts})).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn empty_dir_is_a_shared_directory_removed_on_teardown() {
    let env = Arc::new(Env::new());
    let pod = env.pod(json!([{"name": "scratch", "emptyDir": {}}]));
    // Preparing runs fine on another task: the futures are Send.
    let prepared = {
        let (env, pod) = (env.clone(), pod.clone());
        tokio::spawn(async move { env.manager.prepare(&pod, &Fake::default()).await })
            .await
            .unwrap()
            .unwrap()
    };
    let dir = env.volume_dir("kubernetes.io~empty-dir", "scratch");
    assert!(dir.is_dir());
    assert_eq!(mode(&dir), 0o777);
    assert_eq!(prepared.host_path("scratch"), Some(dir.as_path()));

    let mounts = prepared
        .mounts_for(&container(
            json!([{"name": "scratch", "mountPath": "/data"}]),
        ))
        .unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].host_path, dir);
    assert_eq!(mounts[0].container_path, "/data");
    assert!(!mounts[0].read_only);
    assert_eq!(mounts[0].oci_options(), ["rbind", "rprivate", "rw"]);

    // Preparing again keeps the data.
    fs::write(dir.join("kept"), "x").unwrap();
    env.manager.prepare(&pod, &Fake::default()).await.unwrap();
    assert_eq!(fs::read_to_string(dir.join("kept")).unwrap(), "x");

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(!env.pod_dir().exists());
}

#[tokio::test]
async fn memory_empty_dir_is_a_sized_tmpfs_unmounted_on_teardown() {
    let env = Env::new();
    let pod = env.pod(json!([
        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "unsized", "emptyDir": {"medium": "Memory"}},
    ]));
    let sources = Fake::default();
    env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~empty-dir", "cache");
    let mounts = mounts_at(&dir);
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0].1, "tmpfs");
    assert!(
        mounts[0].2.split(',').any(|o| o == "size=65536k"),
        "{}",
        mounts[0].2
    );
    let unsized_dir = env.volume_dir("kubernetes.io~empty-dir", "unsized");
    assert_eq!(mounts_at(&unsized_dir).len(), 1);

    // Data lives in the tmpfs, and preparing again mounts nothing more.
    fs::write(dir.join("f"), "in memory").unwrap();
    env.manager.prepare(&pod, &sources).await.unwrap();
    assert_eq!(mounts_at(&dir).len(), 1);
    assert_eq!(fs::read_to_string(dir.join("f")).unwrap(), "in memory");

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(mounts_under(&env.pod_dir()).is_empty());
    assert!(!dir.exists());
    env.manager.teardown(&env.uid).await.unwrap();
}

fn config_map_pod(env: &Env, source: Value) -> Pod {
    env.pod(json!([{"name": "cfg", "configMap": source}]))
}

fn data_target(dir: &Path) -> String {
    fs::read_link(dir.join("..data"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn config_map_files_are_links_into_a_timestamped_data_dir() {
    let env = Env::new();
    let sources = Fake::default();
    sources.config_map("settings", &[("app.conf", "level=debug\n"), ("other", "2")]);
    let pod = config_map_pod(&env, json!({"name": "settings"}));
    let prepared = env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~configmap", "cfg");

    assert_eq!(
        fs::read_link(dir.join("app.conf")).unwrap(),
        Path::new("..data/app.conf")
    );
    let version = data_target(&dir);
    // ..YYYY_MM_DD_HH_MM_SS.<digits>
    let stamp = version.strip_prefix("..").unwrap();
    let (time, suffix) = stamp.split_once('.').unwrap();
    assert_eq!(time.len(), 19, "{version}");
    assert_eq!(time.split('_').count(), 6, "{version}");
    assert!(
        time.split('_')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    );
    assert!(!suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit()));

    assert_eq!(
        fs::read_to_string(dir.join("app.conf")).unwrap(),
        "level=debug\n"
    );
    assert_eq!(mode(&dir.join(&version).join("app.conf")), 0o644);
    assert_eq!(mode(&dir.join(&version)), 0o755);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected = vec![
        "..data".to_string(),
        version.clone(),
        "app.conf".into(),
        "other".into(),
    ];
    expected.sort();
    assert_eq!(names, expected);

    // Files from the API are mounted read-only whatever the mount says.
    let mounts = prepared
        .mounts_for(&container(
            json!([{"name": "cfg", "mountPath": "/etc/app", "readOnly": false}]),
        ))
        .unwrap();
    assert!(mounts[0].read_only);
    assert_eq!(mounts[0].host_path, dir);

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(!env.pod_dir().exists());
}

#[tokio::test]
async fn config_map_update_is_seen_through_the_same_path() {
    let env = Env::new();
    let sources = Fake::default();
    sources.config_map("settings", &[("app.conf", "version 1"), ("gone", "soon")]);
    let pod = config_map_pod(&env, json!({"name": "settings"}));
    env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~configmap", "cfg");
    let key = dir.join("app.conf");

    let mut before = fs::File::open(&key).unwrap();
    let first_version = data_target(&dir);

    // Nothing changed: nothing is rewritten.
    assert!(env.manager.update(&pod, &sources).await.unwrap().is_empty());
    assert_eq!(data_target(&dir), first_version);

    sources.config_map("settings", &[("app.conf", "version 2"), ("new", "here")]);
    assert_eq!(env.manager.update(&pod, &sources).await.unwrap(), ["cfg"]);
    assert_eq!(fs::read_to_string(&key).unwrap(), "version 2");
    assert_eq!(fs::read_to_string(dir.join("new")).unwrap(), "here");
    assert!(fs::symlink_metadata(dir.join("gone")).is_err());
    let second_version = data_target(&dir);
    assert_ne!(second_version, first_version);
    // The replaced version stays until the next update, for readers that
    // resolved `..data` just before the swap.
    assert!(dir.join(&first_version).is_dir());
    // A file opened before the update still holds the old contents: the new
    // ones were written beside it, not over it.
    let mut old = String::new();
    before.read_to_string(&mut old).unwrap();
    assert_eq!(old, "version 1");

    assert!(env.manager.update(&pod, &sources).await.unwrap().is_empty());
    assert_eq!(data_target(&dir), second_version);
    sources.config_map("settings", &[("app.conf", "version 3")]);
    assert_eq!(env.manager.update(&pod, &sources).await.unwrap(), ["cfg"]);
    assert_eq!(fs::read_to_string(&key).unwrap(), "version 3");
    assert!(!dir.join(&first_version).exists());
    assert!(dir.join(&second_version).is_dir());
    assert!(fs::symlink_metadata(dir.join("new")).is_err());

    env.manager.teardown(&env.uid).await.unwrap();
    // A pod that is gone has nothing to update.
    assert!(env.manager.update(&pod, &sources).await.unwrap().is_empty());
    assert!(!env.pod_dir().exists());
}

#[tokio::test]
async fn readers_never_see_a_partial_update() {
    const SIZE: usize = 64 * 1024;
    const MIN_UPDATES: usize = 100;
    const MIN_READS: usize = 2000;
    let env = Env::new();
    let sources = Fake::default();
    let content = |i: usize| String::from((b'a' + (i % 26) as u8) as char).repeat(SIZE);
    sources.config_map("big", &[("blob", &content(0))]);
    let pod = config_map_pod(&env, json!({"name": "big"}));
    env.manager.prepare(&pod, &sources).await.unwrap();
    let key = env
        .volume_dir("kubernetes.io~configmap", "cfg")
        .join("blob");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, reads, key) = (stop.clone(), reads.clone(), key.clone());
        std::thread::spawn(move || {
            let mut vanished = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match fs::read(&key) {
                    Ok(bytes) => {
                        assert_eq!(bytes.len(), SIZE, "a half-written file was read");
                        assert!(
                            bytes.iter().all(|b| *b == bytes[0]),
                            "a mix of two versions was read"
                        );
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    // Only when this open stalled across two whole updates (a
                    // replaced version is kept for one): a retry sees the new one.
                    Err(e) if e.kind() == ErrorKind::NotFound => vanished += 1,
                    Err(e) => panic!("read {}: {e}", key.display()),
                }
            }
            vanished
        })
    };
    // Keep updating while the reader reads, for long enough that they overlap.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut updates = 0;
    while updates < MIN_UPDATES || reads.load(Ordering::Relaxed) < MIN_READS {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader hardly ran"
        );
        assert!(!reader.is_finished(), "the reader failed");
        updates += 1;
        sources.config_map("big", &[("blob", &content(updates))]);
        assert_eq!(env.manager.update(&pod, &sources).await.unwrap(), ["cfg"]);
    }
    stop.store(true, Ordering::Relaxed);
    let vanished = reader.join().unwrap();
    let reads = reads.load(Ordering::Relaxed);
    eprintln!("{reads} complete reads, {vanished} raced a removal, {updates} updates");
    assert!(
        vanished * 10 < reads,
        "{vanished} of {reads} reads found no file"
    );
    assert_eq!(fs::read(&key).unwrap(), content(updates).as_bytes());
    env.manager.teardown(&env.uid).await.unwrap();
}

#[tokio::test]
async fn items_paths_and_modes() {
    let env = Env::new();
    let sources = Fake::default();
    sources.config_map("settings", &[("a", "A"), ("b", "B"), ("c", "C")]);
    let pod = config_map_pod(
        &env,
        json!({
            "name": "settings",
            "defaultMode": 0o600,
            "items": [
                {"key": "a", "path": "conf/a.txt", "mode": 0o440},
                {"key": "b", "path": "b.txt"},
            ],
        }),
    );
    env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~configmap", "cfg");
    assert_eq!(
        fs::read_link(dir.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
    assert_eq!(fs::read_to_string(dir.join("conf/a.txt")).unwrap(), "A");
    assert_eq!(mode(&dir.join("conf/a.txt")), 0o440);
    assert_eq!(mode(&dir.join("b.txt")), 0o600);
    assert!(!dir.join("c").exists() && !dir.join("a").exists());

    // A mode change alone is an update.
    let pod = config_map_pod(
        &env,
        json!({"name": "settings", "defaultMode": 0o644, "items": [{"key": "b", "path": "b.txt"}]}),
    );
    assert_eq!(env.manager.update(&pod, &sources).await.unwrap(), ["cfg"]);
    assert_eq!(mode(&dir.join("b.txt")), 0o644);
    assert!(fs::symlink_metadata(dir.join("conf")).is_err());
    env.manager.teardown(&env.uid).await.unwrap();
}

#[tokio::test]
async fn optional_and_missing_config_maps() {
    let env = Env::new();
    let sources = Fake::default();

    let pod = config_map_pod(&env, json!({"name": "absent", "optional": true}));
    env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~configmap", "cfg");
    let visible: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".."))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    // It appears once it exists.
    sources.config_map("absent", &[("k", "v")]);
    assert_eq!(env.manager.update(&pod, &sources).await.unwrap(), ["cfg"]);
    assert_eq!(fs::read_to_string(dir.join("k")).unwrap(), "v");
    env.manager.teardown(&env.uid).await.unwrap();

    let env = Env::new();
    let pod = config_map_pod(&env, json!({"name": "absent"}));
    let err = env
        .manager
        .prepare(&pod, &Fake::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found"
    );
    assert!(matches!(
        err.cause(),
        VolumeError::NotFound {
            kind: "configmap",
            ..
        }
    ));

    sources.config_map("present", &[("k", "v")]);
    let pod = config_map_pod(
        &env,
        json!({"name": "present", "items": [{"key": "missing", "path": "m"}]}),
    );
    let err = env.manager.prepare(&pod, &sources).await.unwrap_err();
    assert_eq!(
        err.cause().to_string(),
        "configmap references non-existent config key: missing"
    );
    let pod = config_map_pod(
        &env,
        json!({"name": "present", "optional": true, "items": [{"key": "missing", "path": "m"}, {"key": "k", "path": "k"}]}),
    );
    env.manager.prepare(&pod, &sources).await.unwrap();
    env.manager.teardown(&env.uid).await.unwrap();
    assert!(!env.pod_dir().exists());
}

#[tokio::test]
async fn secret_volume_is_on_tmpfs_with_decoded_bytes_and_modes() {
    let env = Env::new();
    let sources = Fake::default();
    sources.secret(
        "creds",
        &[("key.bin", &[0, 159, 255, b'\n']), ("user", b"admin")],
    );
    let pod = env
        .pod(json!([{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}]));
    let prepared = env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~secret", "creds");
    let mounts = mounts_at(&dir);
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].1, "tmpfs");
    assert_eq!(fs::read(dir.join("key.bin")).unwrap(), [0, 159, 255, b'\n']);
    assert_eq!(fs::read(dir.join("user")).unwrap(), b"admin");
    assert_eq!(mode(&dir.join("user")), 0o400);
    let m = prepared
        .mounts_for(&container(
            json!([{"name": "creds", "mountPath": "/secrets"}]),
        ))
        .unwrap();
    assert!(m[0].read_only);

    let missing = env.pod(json!([{"name": "creds", "secret": {"secretName": "nope"}}]));
    let err = env.manager.prepare(&missing, &sources).await.unwrap_err();
    assert_eq!(err.cause().to_string(), "secret \"nope\" not found");

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(mounts_under(&env.pod_dir()).is_empty());
    assert!(!env.pod_dir().exists());
}

#[tokio::test]
async fn downward_api_files() {
    let env = Env::new();
    let volumes = json!([{"name": "info", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o600},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
        {"path": "sa", "fieldRef": {"fieldPath": "spec.serviceAccountName"}},
        {"path": "ip/pod", "fieldRef": {"fieldPath": "status.podIP"}},
        {"path": "ip/host", "fieldRef": {"fieldPath": "status.hostIP"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}},
    ]}}]);
    let containers = json!([{"name": "app", "resources": {
        "limits": {"memory": "96Mi"}, "requests": {"cpu": "250m"}}}]);
    let pod = env.pod_with(volumes.clone(), containers.clone());
    env.manager.prepare(&pod, &Fake::default()).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~downward-api", "info");
    let read = |p: &str| fs::read_to_string(dir.join(p)).unwrap();
    assert_eq!(read("name"), "web");
    assert_eq!(read("ns"), "default");
    assert_eq!(read("uid"), env.uid);
    assert_eq!(read("labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(read("annotations"), "note=\"say \\\"hi\\\"\"");
    assert_eq!(mode(&dir.join("annotations")), 0o600);
    assert_eq!(read("tier"), "front");
    assert_eq!(read("node"), "node-a");
    assert_eq!(read("sa"), "robot");
    assert_eq!(read("ip/pod"), "10.1.0.7");
    assert_eq!(read("ip/host"), "192.168.1.2");
    assert_eq!(read("mem"), "96");
    assert_eq!(read("cpu"), "250");

    // A label change reaches the files.
    let mut relabelled = pod.clone();
    relabelled
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "back".into());
    assert_eq!(
        env.manager
            .update(&relabelled, &Fake::default())
            .await
            .unwrap(),
        ["info"]
    );
    assert_eq!(read("tier"), "back");
    assert!(
        env.manager
            .update(&relabelled, &Fake::default())
            .await
            .unwrap()
            .is_empty()
    );

    let bad = env.pod(json!([{"name": "info", "downwardAPI": {"items": [
        {"path": "x", "fieldRef": {"fieldPath": "spec.hostname"}}]}}]));
    let err = env
        .manager
        .prepare(&bad, &Fake::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.cause().to_string(),
        "unsupported fieldPath: spec.hostname"
    );
    env.manager.teardown(&env.uid).await.unwrap();
}

#[tokio::test]
async fn projected_volume_combines_sources() {
    let env = Env::new();
    let sources = Fake::default();
    sources.config_map("kube-root-ca.crt", &[("ca.crt", "CERT")]);
    sources.secret("extra", &[("password", b"hunter2")]);
    *sources.token.lock().unwrap() = Some("eyJ.token".to_string());
    let pod = env.pod(json!([{"name": "kube-api-access", "projected": {
        "defaultMode": 0o644,
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"secret": {"name": "extra", "items": [{"key": "password", "path": "creds/pw", "mode": 0o400}]}},
            {"secret": {"name": "absent", "optional": true}},
        ],
    }}]));
    env.manager.prepare(&pod, &sources).await.unwrap();
    let dir = env.volume_dir("kubernetes.io~projected", "kube-api-access");
    assert_eq!(
        mounts_at(&dir).len(),
        1,
        "projected volumes are memory-backed"
    );
    let read = |p: &str| fs::read_to_string(dir.join(p)).unwrap();
    assert_eq!(read("token"), "eyJ.token");
    assert_eq!(read("ca.crt"), "CERT");
    assert_eq!(read("namespace"), "default");
    assert_eq!(read("creds/pw"), "hunter2");
    assert_eq!(mode(&dir.join("creds/pw")), 0o400);
    assert_eq!(mode(&dir.join("token")), 0o644);

    // A refreshed token is an update.
    *sources.token.lock().unwrap() = Some("eyJ.fresh".to_string());
    assert_eq!(
        env.manager.update(&pod, &sources).await.unwrap(),
        ["kube-api-access"]
    );
    assert_eq!(read("token"), "eyJ.fresh");

    // Sources that cannot issue tokens give a clear error.
    *sources.token.lock().unwrap() = None;
    let err = env.manager.update(&pod, &sources).await.unwrap_err();
    assert!(
        matches!(err.cause(), VolumeError::TokenUnavailable),
        "{err}"
    );
    assert_eq!(
        read("token"),
        "eyJ.fresh",
        "a failed update keeps the old files"
    );
    env.manager.teardown(&env.uid).await.unwrap();

    let env = Env::new();
    let pod = env.pod(json!([{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]));
    let err = env.manager.prepare(&pod, &Plain).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"t\" : serviceAccountToken projection is not supported: this node's volume sources cannot issue tokens"
    );
    env.manager.teardown(&env.uid).await.unwrap();
}

fn host_path_pod(env: &Env, path: &Path, type_: &str) -> Pod {
    env.pod(json!([{"name": "host", "hostPath": {"path": path, "type": type_}}]))
}

async fn host_path_result(env: &Env, path: &Path, type_: &str) -> Result<(), String> {
    env.manager
        .prepare(&host_path_pod(env, path, type_), &Fake::default())
        .await
        .map(drop)
        .map_err(|e| e.cause().to_string())
}

#[tokio::test]
async fn host_path_type_checks() {
    let env = Env::new();
    let dir = env.scratch.join("host-dir");
    let file = env.scratch.join("host-file");
    let socket = env.scratch.join("host.sock");
    let chardev = env.scratch.join("null");
    let blockdev = env.scratch.join("loop");
    fs::create_dir(&dir).unwrap();
    fs::write(&file, "x").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (path, kind, dev) in [
        (&chardev, libc::S_IFCHR, libc::makedev(1, 3)),
        (&blockdev, libc::S_IFBLK, libc::makedev(7, 250)),
    ] {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; the node is created in the test's directory.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), kind | 0o600, dev) }, 0);
    }
    assert!(fs::metadata(&chardev).unwrap().file_type().is_char_device());
    let missing = env.scratch.join("missing");
    let fail = |p: &Path, what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not a {what}",
            p.display()
        ))
    };

    assert_eq!(host_path_result(&env, &missing, "").await, Ok(()));
    assert!(!missing.exists(), "no type, no check and nothing created");
    assert_eq!(host_path_result(&env, &dir, "Directory").await, Ok(()));
    assert_eq!(
        host_path_result(&env, &file, "Directory").await,
        fail(&file, "directory")
    );
    assert_eq!(
        host_path_result(&env, &missing, "Directory").await,
        fail(&missing, "directory")
    );
    assert_eq!(host_path_result(&env, &file, "File").await, Ok(()));
    assert_eq!(
        host_path_result(&env, &dir, "File").await,
        fail(&dir, "file")
    );
    assert_eq!(host_path_result(&env, &socket, "Socket").await, Ok(()));
    assert_eq!(
        host_path_result(&env, &file, "Socket").await,
        fail(&file, "socket file")
    );
    assert_eq!(host_path_result(&env, &chardev, "CharDevice").await, Ok(()));
    assert_eq!(
        host_path_result(&env, &blockdev, "CharDevice").await,
        fail(&blockdev, "character device")
    );
    assert_eq!(
        host_path_result(&env, &blockdev, "BlockDevice").await,
        Ok(())
    );
    assert_eq!(
        host_path_result(&env, &chardev, "BlockDevice").await,
        fail(&chardev, "block device")
    );
    assert_eq!(
        host_path_result(&env, &dir, "Folder").await,
        Err("Folder is an invalid volume type".to_string())
    );

    let created = env.scratch.join("made/by/kubelet");
    assert_eq!(
        host_path_result(&env, &created, "DirectoryOrCreate").await,
        Ok(())
    );
    assert!(created.is_dir());
    assert_eq!(mode(&created), 0o755);
    assert_eq!(
        host_path_result(&env, &file, "DirectoryOrCreate").await,
        fail(&file, "directory")
    );

    let new_file = env.scratch.join("new-file");
    assert_eq!(
        host_path_result(&env, &new_file, "FileOrCreate").await,
        Ok(())
    );
    assert!(new_file.is_file());
    assert_eq!(mode(&new_file), 0o644);
    assert_eq!(fs::read(&new_file).unwrap().len(), 0);
    assert_eq!(
        host_path_result(&env, &dir, "FileOrCreate").await,
        fail(&dir, "file")
    );
    // Like kubelet, FileOrCreate does not create parent directories.
    let orphan = env.scratch.join("no-parent/file");
    assert!(
        host_path_result(&env, &orphan, "FileOrCreate")
            .await
            .is_err()
    );

    // The mount binds the host path itself.
    let prepared = env
        .manager
        .prepare(&host_path_pod(&env, &dir, "Directory"), &Fake::default())
        .await
        .unwrap();
    let m = prepared
        .mounts_for(&container(
            json!([{"name": "host", "mountPath": "/host", "readOnly": true}]),
        ))
        .unwrap();
    assert_eq!(m[0].host_path, dir);
    assert!(m[0].read_only);
    assert!(!env.volume_dir("kubernetes.io~host-path", "host").exists());
    env.manager.teardown(&env.uid).await.unwrap();
}

fn bound_claim(name: &str, uid: &str, volume: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"volumeName": volume, "accessModes": ["ReadWriteOnce"]},
        "status": {"phase": "Bound"},
    })
}

fn pv(name: &str, claim_uid: &str, source: Value) -> Value {
    let mut spec = json!({"claimRef": {"name": "x", "namespace": "default", "uid": claim_uid}});
    for (k, v) in source.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn persistent_volume_claims() {
    let env = Env::new();
    let sources = Fake::default();
    let host = env.scratch.join("pv-host");
    let local = env.scratch.join("pv-local");
    fs::create_dir(&local).unwrap();
    sources.claim(bound_claim("data", "claim-1", "pv-1"));
    sources.volume(pv(
        "pv-1",
        "claim-1",
        json!({"hostPath": {"path": host, "type": "DirectoryOrCreate"}}),
    ));
    sources.claim(bound_claim("fast", "claim-2", "pv-2"));
    sources.volume(pv("pv-2", "claim-2", json!({"local": {"path": local}})));
    let pod = env.pod(json!([
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "fast", "persistentVolumeClaim": {"claimName": "fast", "readOnly": true}},
    ]));
    let prepared = env.manager.prepare(&pod, &sources).await.unwrap();
    assert!(host.is_dir(), "the hostPath type of the PV applies");
    let m = prepared
        .mounts_for(&container(json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "fast", "mountPath": "/fast"},
        ])))
        .unwrap();
    assert_eq!(
        (m[0].host_path.as_path(), m[0].read_only),
        (host.as_path(), false)
    );
    assert_eq!(
        (m[1].host_path.as_path(), m[1].read_only),
        (local.as_path(), true)
    );
    env.manager.teardown(&env.uid).await.unwrap();
    assert!(host.is_dir() && local.is_dir());

    let claim_error = |claim: &str| {
        let pod = env.pod(json!([{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]));
        let sources = &sources;
        let manager = &env.manager;
        async move {
            manager
                .prepare(&pod, sources)
                .await
                .unwrap_err()
                .cause()
                .to_string()
        }
    };
    sources.claim(json!({
        "metadata": {"name": "waiting", "namespace": "default", "uid": "claim-3"},
        "spec": {}, "status": {"phase": "Pending"},
    }));
    assert_eq!(
        claim_error("waiting").await,
        "PVC default/waiting has non-bound phase (\"Pending\") or empty pvc.Spec.VolumeName (\"\")"
    );
    assert_eq!(
        claim_error("nothing").await,
        "persistentvolumeclaim \"nothing\" not found"
    );
    sources.claim(bound_claim("orphan", "claim-4", "pv-missing"));
    assert_eq!(
        claim_error("orphan").await,
        "persistentvolume \"pv-missing\" not found"
    );
    sources.claim(bound_claim("stolen", "claim-5", "pv-1"));
    assert_eq!(
        claim_error("stolen").await,
        "found PV object pv-1 but its pv.Spec.ClaimRef.UID (\"claim-1\") does not point to claim.UID (\"claim-5\")"
    );
    sources.claim(bound_claim("remote", "claim-6", "pv-nfs"));
    sources.volume(pv(
        "pv-nfs",
        "claim-6",
        json!({"nfs": {"server": "nas", "path": "/export"}}),
    ));
    assert_eq!(
        claim_error("remote").await,
        "persistentvolume \"pv-nfs\": nfs volumes are not supported by this node (only hostPath and local)"
    );
    let mut deleting = bound_claim("deleting", "claim-7", "pv-1");
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    sources.claim(deleting);
    assert_eq!(
        claim_error("deleting").await,
        "can't start pod because PVC default/deleting is being deleted"
    );
    env.manager.teardown(&env.uid).await.unwrap();
}

#[tokio::test]
async fn unsupported_volume_types_are_refused() {
    let env = Env::new();
    for (volume, kind) in [
        (
            json!({"name": "v", "nfs": {"server": "nas", "path": "/"}}),
            "nfs",
        ),
        (
            json!({"name": "v", "csi": {"driver": "x.example.com"}}),
            "csi",
        ),
        (
            json!({"name": "v", "iscsi": {"targetPortal": "a", "iqn": "b", "lun": 0}}),
            "iscsi",
        ),
    ] {
        let err = env
            .manager
            .prepare(&env.pod(json!([volume])), &Fake::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "MountVolume.SetUp failed for volume \"v\" : {kind} volumes are not supported by this node"
            )
        );
    }
    // Persistent volume sources that fail are reported as such.
    let err = env
        .manager
        .prepare(
            &env.pod(json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}])),
            &Plain,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("persistentvolumeclaim \"c\" not found"),
        "{err}"
    );
    env.manager.teardown(&env.uid).await.unwrap();
}

#[tokio::test]
async fn sub_paths_stay_inside_their_volume() {
    let env = Env::new();
    let sources = Fake::default();
    sources.config_map("settings", &[("app.conf", "conf")]);
    let outside = env.scratch.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "host data").unwrap();
    let pod = env.pod_with(
        json!([
            {"name": "work", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "settings"}},
        ]),
        json!([{"name": "app", "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DIR", "value": "logs/$(POD_NAME)"},
        ]}]),
    );
    let prepared = env.manager.prepare(&pod, &sources).await.unwrap();
    let work = env.volume_dir("kubernetes.io~empty-dir", "work");
    let app = |mounts: Value| -> Container {
        let mut c = pod.spec.as_ref().unwrap().containers[0].clone();
        c.volume_mounts = serde_json::from_value(mounts).unwrap();
        c
    };

    // A missing subPath is created (with the volume's mode) and bind-mounted
    // under volume-subpaths; writes through it land in the volume.
    let m = prepared
        .mounts_for(&app(
            json!([{"name": "work", "mountPath": "/out", "subPath": "a/b"}]),
        ))
        .unwrap();
    let target = env.pod_dir().join("volume-subpaths/work/app/0");
    assert_eq!(m[0].host_path, target);
    assert_eq!(mode(&work.join("a/b")), 0o777);
    assert_eq!(mounts_at(&target).len(), 1);
    fs::write(target.join("written"), "through the bind").unwrap();
    assert_eq!(
        fs::read_to_string(work.join("a/b/written")).unwrap(),
        "through the bind"
    );
    // A restarted container reuses the bind.
    prepared
        .mounts_for(&app(
            json!([{"name": "work", "mountPath": "/out", "subPath": "a/b"}]),
        ))
        .unwrap();
    assert_eq!(mounts_at(&target).len(), 1);

    // subPathExpr expands the container's environment.
    let m = prepared
        .mounts_for(&app(
            json!([{"name": "work", "mountPath": "/logs", "subPathExpr": "$(DIR)"}]),
        ))
        .unwrap();
    assert!(work.join("logs/web").is_dir());
    assert_eq!(m[0].host_path, target);
    let err = prepared
        .mounts_for(&app(
            json!([{"name": "work", "mountPath": "/x", "subPathExpr": "$(NOPE)/$(DIR)"}]),
        ))
        .unwrap_err();
    assert_eq!(err.to_string(), "missing value for NOPE");

    // Escapes are refused: `..`, absolute paths, and symlinks out of the volume.
    let refuse = |sub: &str| {
        prepared
            .mounts_for(&app(
                json!([{"name": "work", "mountPath": "/x", "subPath": sub}]),
            ))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refuse("../../etc"),
        "unable to provision SubPath `../../etc`: must not contain '..'"
    );
    assert_eq!(
        refuse("/etc"),
        "error SubPath `/etc` must not be an absolute path"
    );
    symlink(&outside, work.join("evil")).unwrap();
    symlink("../../../../../../../../", work.join("up")).unwrap();
    fs::create_dir(work.join("nested")).unwrap();
    symlink(&outside, work.join("nested/link")).unwrap();
    for sub in [
        "evil",
        "evil/secret",
        "evil/new-dir",
        "up",
        "nested/link/made",
    ] {
        assert_eq!(
            refuse(sub),
            format!("subPath \"{sub}\" of volume \"work\" escapes the volume")
        );
    }
    assert!(!outside.join("new-dir").exists() && !outside.join("made").exists());
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "host data"
    );

    // Symlinks that stay inside are fine.
    symlink("a/b", work.join("inside")).unwrap();
    let m = prepared
        .mounts_for(&app(
            json!([{"name": "work", "mountPath": "/in", "subPath": "inside"}]),
        ))
        .unwrap();
    assert_eq!(
        fs::read_to_string(m[0].host_path.join("written")).unwrap(),
        "through the bind"
    );

    // A key of a ConfigMap resolves to the file itself, read-only, no bind.
    let m = prepared
        .mounts_for(&app(
            json!([{"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"}]),
        ))
        .unwrap();
    let cfg = env.volume_dir("kubernetes.io~configmap", "cfg");
    assert!(m[0].host_path.starts_with(&cfg));
    assert!(
        m[0].host_path.is_file() && !fs::symlink_metadata(&m[0].host_path).unwrap().is_symlink()
    );
    assert_eq!(fs::read_to_string(&m[0].host_path).unwrap(), "conf");
    assert!(m[0].read_only);
    assert!(mounts_under(&cfg).is_empty());

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(mounts_under(&env.pod_dir()).is_empty());
    assert!(!env.pod_dir().exists());
    assert_eq!(
        fs::read_to_string(outside.join("secret")).unwrap(),
        "host data"
    );
}

#[tokio::test]
async fn teardown_never_deletes_host_path_contents() {
    let env = Env::new();
    let host = env.scratch.join("precious");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("sub/data"), "keep me").unwrap();
    fs::write(host.join("top"), "keep me too").unwrap();
    let pod = env.pod(json!([
        {"name": "host", "hostPath": {"path": host, "type": "Directory"}},
        {"name": "work", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory"}},
    ]));
    let prepared = env.manager.prepare(&pod, &Fake::default()).await.unwrap();
    // A subPath of the hostPath is bind-mounted inside the pod directory, and
    // the pod left symlinks to the host path in its own volumes.
    let m = prepared
        .mounts_for(&container(json!([
            {"name": "host", "mountPath": "/h", "subPath": "sub"},
            {"name": "host", "mountPath": "/whole"},
        ])))
        .unwrap();
    assert_eq!(
        fs::read_to_string(m[0].host_path.join("data")).unwrap(),
        "keep me"
    );
    symlink(
        &host,
        env.volume_dir("kubernetes.io~empty-dir", "work")
            .join("to-host"),
    )
    .unwrap();
    symlink(
        &host,
        env.volume_dir("kubernetes.io~empty-dir", "mem")
            .join("to-host"),
    )
    .unwrap();
    symlink(
        host.join("top"),
        env.volume_dir("kubernetes.io~empty-dir", "work")
            .join("file"),
    )
    .unwrap();

    env.manager.teardown(&env.uid).await.unwrap();
    assert!(!env.pod_dir().exists());
    assert!(mounts_under(&env.pod_dir()).is_empty());
    assert_eq!(
        fs::read_to_string(host.join("sub/data")).unwrap(),
        "keep me"
    );
    assert_eq!(fs::read_to_string(host.join("top")).unwrap(), "keep me too");

    // Idempotent, and fine for pods never seen.
    env.manager.teardown(&env.uid).await.unwrap();
    env.manager.teardown("never-prepared").await.unwrap();
    assert!(env.manager.teardown("../escape").await.is_err());
}

#[tokio::test]
async fn mount_propagation_and_read_only() {
    let env = Env::new();
    let pod = env.pod(json!([{"name": "work", "emptyDir": {}}]));
    let prepared = env.manager.prepare(&pod, &Fake::default()).await.unwrap();
    let m = prepared
        .mounts_for(&container(json!([
            {"name": "work", "mountPath": "/a", "mountPropagation": "HostToContainer", "readOnly": true},
            {"name": "work", "mountPath": "relative"},
        ])))
        .unwrap();
    assert_eq!(m[0].propagation, Propagation::HostToContainer);
    assert_eq!(m[0].oci_options(), ["rbind", "rslave", "ro"]);
    assert_eq!(m[1].container_path, "/relative");

    let bidirectional =
        json!([{"name": "work", "mountPath": "/a", "mountPropagation": "Bidirectional"}]);
    let err = prepared
        .mounts_for(&container(bidirectional.clone()))
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "Bidirectional mount propagation is available only to privileged containers"
        )
    );
    let mut privileged = container(bidirectional);
    privileged.security_context = serde_json::from_value(json!({"privileged": true})).unwrap();
    assert_eq!(
        prepared.mounts_for(&privileged).unwrap()[0].oci_options()[1],
        "rshared"
    );

    let err = prepared
        .mounts_for(&container(json!([{"name": "nope", "mountPath": "/n"}])))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot find volume \"nope\" to mount into container \"app\""
    );
    env.manager.teardown(&env.uid).await.unwrap();
}

/// An API server stand-in for [`ApiSources`]: answers GETs of one ConfigMap
/// and TokenRequests (tokens numbered in order, expiring when asked), and
/// records every request.
fn fake_api(requests: Arc<Mutex<Vec<(String, String, Value)>>>) -> kube::Client {
    use http_body_util::BodyExt;
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let requests = requests.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
            let issued = {
                let mut requests = requests.lock().unwrap();
                requests.push((method.clone(), path.clone(), body.clone()));
                requests.iter().filter(|r| r.0 == "POST").count()
            };
            let (status, reply) = match (method.as_str(), path.as_str()) {
                ("GET", "/api/v1/namespaces/default/configmaps/settings") => (
                    200,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "settings", "namespace": "default"},
                        "data": {"k": "v"}}),
                ),
                ("POST", "/api/v1/namespaces/default/serviceaccounts/robot/token") => {
                    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap();
                    let now = k8s_openapi::jiff::Timestamp::now().as_second();
                    let expires = k8s_openapi::jiff::Timestamp::from_second(now + seconds).unwrap();
                    let mut reply = body.clone();
                    reply["status"] = json!({
                        "token": format!("token-{issued}"),
                        "expirationTimestamp": expires.to_string(),
                    });
                    (201, reply)
                }
                _ => (
                    404,
                    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                        "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
                ),
            };
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(
                    serde_json::to_vec(&reply).unwrap(),
                ))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test]
async fn api_sources_read_objects_and_reuse_tokens() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let sources = ApiSources::new(fake_api(requests.clone()));
    let cm = sources
        .config_map("default", "settings")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
    assert!(
        sources
            .config_map("default", "absent")
            .await
            .unwrap()
            .is_none()
    );
    assert!(sources.secret("default", "absent").await.unwrap().is_none());
    assert!(sources.persistent_volume("pv").await.unwrap().is_none());

    let env = Env::new();
    let pod = env.pod(json!([]));
    let hour = ServiceAccountTokenProjection {
        audience: Some("vault".into()),
        expiration_seconds: Some(3600),
        path: "token".into(),
    };
    let first = sources.service_account_token(&pod, &hour).await.unwrap();
    assert_eq!(first.as_deref(), Some("token-1"));
    // Reused while young: periodic updates do not rewrite the token file.
    assert_eq!(
        sources.service_account_token(&pod, &hour).await.unwrap(),
        first
    );
    let posts: Vec<Value> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == "POST")
        .map(|r| r.2.clone())
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["spec"]["audiences"], json!(["vault"]));
    assert_eq!(
        posts[0]["spec"]["boundObjectRef"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": env.uid})
    );

    // Renewed after 80% of its lifetime.
    let short = ServiceAccountTokenProjection {
        audience: None,
        expiration_seconds: Some(2),
        path: "token".into(),
    };
    assert_eq!(
        sources
            .service_account_token(&pod, &short)
            .await
            .unwrap()
            .as_deref(),
        Some("token-2")
    );
    assert_eq!(
        sources
            .service_account_token(&pod, &short)
            .await
            .unwrap()
            .as_deref(),
        Some("token-2")
    );
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(
        sources
            .service_account_token(&pod, &short)
            .await
            .unwrap()
            .as_deref(),
        Some("token-3")
    );
    assert_eq!(
        sources
            .service_account_token(&pod, &hour)
            .await
            .unwrap()
            .as_deref(),
        Some("token-1")
    );
}
