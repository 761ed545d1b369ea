//! A test image made from the host's busybox-static: `/bin/busybox`, a symlink per applet
//! (`busybox --list`), a small /etc/passwd and /etc/group, packed as an OCI image layout tar.
//! Byte-for-byte reproducible (fixed times and owners), so its digests are stable. Used by
//! tests and by `skiff image`; no registry, no internet. Blocking I/O.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::image::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, Index, Manifest, host_platform,
    media_type, sha256_digest,
};
use super::{Error, Result};

pub const DEFAULT_NAME: &str = "skiff.test/busybox:1";

/// The /etc/passwd of the image.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
skiff:x:1000:1000:skiff:/home/skiff:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// The /etc/group of the image: user skiff is also in group `extra` (3000).
pub const GROUP: &str = "root:x:0:\nskiff:x:1000:\nextra:x:3000:skiff\nnogroup:x:65534:\n";

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestImage {
    /// Full reference, e.g. `skiff.test/busybox:1`.
    pub name: String,
    pub busybox: PathBuf,
    /// None: the config has no `Env` at all (the runtime must supply PATH).
    pub env: Option<Vec<String>>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub gzip: bool,
    /// More files: absolute path in the image, contents, mode.
    pub files: Vec<(String, Vec<u8>, u32)>,
}

/// The built image's blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltImage {
    pub name: String,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
    /// Digest of the uncompressed layer.
    pub diff_id: String,
    /// Every blob: layer, config, manifest.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

impl BuiltImage {
    pub fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.blobs
            .iter()
            .find(|(d, _)| d.digest == digest)
            .map(|(_, b)| b.as_slice())
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, path, e)
}

/// The applets the busybox binary provides.
pub fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io("run", busybox))?;
    if !out.status.success() {
        return Err(Error::io(
            "run --list",
            busybox,
            std::io::Error::other(format!("exited with {}", out.status)),
        ));
    }
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.contains('/') && l != "busybox")
        .collect();
    list.sort();
    list.dedup();
    Ok(list)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl TestImage {
    pub fn busybox(name: &str) -> Self {
        TestImage {
            name: name.to_string(),
            busybox: "/bin/busybox".into(),
            env: Some(vec![format!("PATH={}", super::spec::DEFAULT_PATH)]),
            entrypoint: Vec::new(),
            cmd: vec!["sh".into()],
            user: None,
            working_dir: None,
            gzip: false,
            files: Vec::new(),
        }
    }

    fn layer_tar(&self) -> Result<Vec<u8>> {
        let busybox = std::fs::read(&self.busybox).map_err(io("read", &self.busybox))?;
        let applets = applets(&self.busybox)?;
        let mut b = tar::Builder::new(Vec::new());
        let tar_err = |e: std::io::Error| Error::io("build layer", &self.busybox, e);
        let dirs: [(&str, u32); 12] = [
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("home", 0o755),
            ("proc", 0o755),
            ("root", 0o700),
            ("run", 0o755),
            ("sys", 0o755),
            ("tmp", 0o1777),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("var", 0o755),
        ];
        for (d, mode) in dirs {
            let mut h = header(tar::EntryType::Directory, mode, 0);
            b.append_data(&mut h, format!("{d}/"), std::io::empty())
                .map_err(tar_err)?;
        }
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        h.set_uid(1000);
        h.set_gid(1000);
        b.append_data(&mut h, "home/skiff/", std::io::empty())
            .map_err(tar_err)?;
        let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
        b.append_data(&mut h, "bin/busybox", busybox.as_slice())
            .map_err(tar_err)?;
        for applet in &applets {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, format!("bin/{applet}"), "busybox")
                .map_err(tar_err)?;
        }
        let mut files: Vec<(String, Vec<u8>, u32)> = vec![
            ("etc/passwd".into(), PASSWD.as_bytes().to_vec(), 0o644),
            ("etc/group".into(), GROUP.as_bytes().to_vec(), 0o644),
        ];
        files.extend(
            self.files
                .iter()
                .map(|(p, c, m)| (p.trim_start_matches('/').to_string(), c.clone(), *m)),
        );
        for (path, contents, mode) in &files {
            let mut h = header(tar::EntryType::Regular, *mode, contents.len() as u64);
            b.append_data(&mut h, path, contents.as_slice())
                .map_err(tar_err)?;
        }
        b.into_inner().map_err(tar_err)
    }

    /// Builds the blobs in memory.
    pub fn build(&self) -> Result<BuiltImage> {
        let tar = self.layer_tar()?;
        let diff_id = sha256_digest(&tar);
        let (layer_bytes, layer_type) = if self.gzip {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&tar)
                .and_then(|()| gz.finish())
                .map(|bytes| (bytes, media_type::OCI_LAYER_GZIP))
                .map_err(io("compress layer", &self.busybox))?
        } else {
            (tar, media_type::OCI_LAYER)
        };
        let layer = Descriptor::of(layer_type, &layer_bytes);

        let platform = host_platform();
        let mut config = serde_json::Map::new();
        if let Some(env) = &self.env {
            config.insert("Env".into(), json!(env));
        }
        if !self.entrypoint.is_empty() {
            config.insert("Entrypoint".into(), json!(self.entrypoint));
        }
        config.insert("Cmd".into(), json!(self.cmd));
        if let Some(u) = &self.user {
            config.insert("User".into(), json!(u));
        }
        if let Some(w) = &self.working_dir {
            config.insert("WorkingDir".into(), json!(w));
        }
        let config_bytes = serde_json::to_vec(&json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "skiff testimage: busybox-static"}],
        }))
        .map_err(|source| Error::Json {
            what: "test image config".into(),
            source,
        })?;
        let config = Descriptor::of(media_type::OCI_CONFIG, &config_bytes);

        let manifest_bytes = serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: config.clone(),
            layers: vec![layer.clone()],
            annotations: Default::default(),
        })
        .map_err(|source| Error::Json {
            what: "test image manifest".into(),
            source,
        })?;
        let manifest = Descriptor::of(media_type::OCI_MANIFEST, &manifest_bytes);
        Ok(BuiltImage {
            name: self.name.clone(),
            manifest: manifest.clone(),
            config: config.clone(),
            layer: layer.clone(),
            diff_id,
            blobs: vec![
                (layer, layer_bytes),
                (config, config_bytes),
                (manifest, manifest_bytes),
            ],
        })
    }

    /// Writes the image as an OCI image layout tar at `path` (what `ctr import` and
    /// [`Runtime::import_archive`](super::Runtime::import_archive) read).
    pub fn write_oci_archive(&self, path: &Path) -> Result<BuiltImage> {
        let built = self.build()?;
        let tag = self
            .name
            .rsplit_once(':')
            .filter(|(repo, _)| !repo.is_empty())
            .map_or("latest", |(_, t)| t)
            .to_string();
        let mut target = built.manifest.clone();
        target
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.into(), self.name.clone());
        target.annotations.insert(ANNOTATION_REF_NAME.into(), tag);
        let index = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: vec![target],
            annotations: Default::default(),
        })
        .map_err(|source| Error::Json {
            what: "test image index".into(),
            source,
        })?;

        let file = std::fs::File::create(path).map_err(io("create", path))?;
        let mut b = tar::Builder::new(std::io::BufWriter::new(file));
        let tar_err = |e: std::io::Error| Error::io("write archive", path, e);
        let mut add = |name: &str, data: &[u8]| {
            let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            b.append_data(&mut h, name, data).map_err(tar_err)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (desc, bytes) in &built.blobs {
            add(
                &format!("blobs/{}", desc.digest.replacen(':', "/", 1)),
                bytes,
            )?;
        }
        add("index.json", &index)?;
        b.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(tar_err)?;
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::archive::{Archive, BlobData};

    #[test]
    fn archive_is_reproducible_and_readable() {
        let dir = std::env::temp_dir().join(format!("skiff-testimage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
        let mut img = TestImage::busybox("skiff.test/busybox:unit");
        img.gzip = true;
        let built = img.write_oci_archive(&a).unwrap();
        img.write_oci_archive(&b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(built.layer.media_type, media_type::OCI_LAYER_GZIP);

        let plan = Archive::open(&a).unwrap().plan().unwrap();
        assert_eq!(
            plan.images,
            vec![(
                "skiff.test/busybox:unit".to_string(),
                built.manifest.clone()
            )]
        );
        let digests: Vec<&str> = plan.blobs.iter().map(|b| b.desc.digest.as_str()).collect();
        assert_eq!(
            digests,
            vec![
                built.config.digest.as_str(),
                built.layer.digest.as_str(),
                built.manifest.digest.as_str()
            ]
        );
        let archive = Archive::open(&a).unwrap();
        for blob in &plan.blobs {
            let BlobData::Range(e) = blob.data else {
                panic!("range expected")
            };
            assert_eq!(e.size as i64, blob.desc.size);
        }
        let config = archive
            .read(&format!(
                "blobs/{}",
                built.config.digest.replacen(':', "/", 1)
            ))
            .unwrap();
        assert_eq!(sha256_digest(&config), built.config.digest);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_without_env() {
        let mut img = TestImage::busybox("skiff.test/busybox:noenv");
        img.env = None;
        let built = img.build().unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(built.blob(&built.config.digest).unwrap()).unwrap();
        assert!(config["config"].get("Env").is_none());
        assert_eq!(config["config"]["Cmd"][0], "sh");
        assert_eq!(config["rootfs"]["diff_ids"][0], built.diff_id);
    }

    #[test]
    fn applet_list_has_the_basics() {
        let list = applets(Path::new("/bin/busybox")).unwrap();
        for a in [
            "sh", "sleep", "cat", "echo", "id", "wget", "nc", "env", "ls",
        ] {
            assert!(list.iter().any(|x| x == a), "{a}");
        }
    }
}
