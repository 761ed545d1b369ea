//! kubelet's atomic writer: projected files appear in a running pod all at
//! once, never half-written.
//!
//! The volume directory holds
//! ```text
//! ..2026_11_23_10_11_12.123456789/   one complete version of the files
//! ..data -> ..2026_11_23_10_11_12.123456789
//! key -> ..data/key                  one symlink per top-level name
//! ```
//! An update writes a fresh timestamped directory, points a temporary
//! `..data_tmp` link at it and renames that over `..data` (one atomic step),
//! then adds and prunes the top-level links. Unlike kubelet, which deletes the
//! replaced version at once, the replaced version is kept until the next
//! update: a reader that resolved `..data` just before the swap still finds
//! its file, so an open racing one update never fails. Names starting with
//! `..` are reserved for this scheme.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path};

use super::error::VolumeError;
use super::payload::{FileProjection, Payload};

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Makes `target` show exactly `payload`. Returns whether anything was
/// written: an unchanged payload leaves the directory untouched.
pub(crate) fn write(target: &Path, payload: &Payload) -> Result<bool, VolumeError> {
    let payload = validate_payload(payload)?;
    fs::create_dir_all(target).map_err(|e| VolumeError::io("create directory", target, e))?;

    let data_link = target.join(DATA_DIR);
    let old_version = match fs::read_link(&data_link) {
        Ok(old) => Some(old),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(VolumeError::io("read link", &data_link, e)),
    };
    let visible: BTreeSet<&str> = payload
        .iter()
        .filter_map(|(path, _)| path.split('/').next())
        .collect();

    if let Some(old) = &old_version
        && is_version_name(old)
        && matches(&target.join(old), &payload)?
        && visible_links_present(target, &visible)
    {
        tracing::trace!(target = %target.display(), "no update required");
        return Ok(false);
    }

    let version = new_version_dir(target)?;
    let version_path = target.join(&version);
    if let Err(e) = write_files(&version_path, &payload) {
        let _ = fs::remove_dir_all(&version_path);
        return Err(e);
    }

    let tmp_link = target.join(DATA_DIR_TMP);
    match fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(VolumeError::io("remove", &tmp_link, e)),
    }
    symlink(&version, &tmp_link).map_err(|e| VolumeError::io("symlink", &tmp_link, e))?;
    fs::rename(&tmp_link, &data_link).map_err(|e| VolumeError::io("rename", &tmp_link, e))?;

    create_visible_links(target, &visible)?;
    prune_visible_links(target, &visible)?;
    let previous = old_version.as_deref().and_then(Path::to_str);
    remove_old_versions(target, &[version.as_str(), previous.unwrap_or_default()])?;
    tracing::debug!(target = %target.display(), %version, files = payload.len(), "projected files updated");
    Ok(true)
}

/// Validates paths like kubelet and normalizes them (`a//./b` → `a/b`).
fn validate_payload(payload: &Payload) -> Result<Vec<(String, &FileProjection)>, VolumeError> {
    let mut clean = Vec::with_capacity(payload.len());
    for (path, file) in payload {
        let invalid = |reason| VolumeError::InvalidPayloadPath {
            path: path.clone(),
            reason,
        };
        if path.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if path.starts_with('/') {
            return Err(invalid("must be relative path"));
        }
        if path.len() > MAX_PATH_LENGTH {
            return Err(invalid("must be less than or equal to 4096 characters"));
        }
        let mut parts = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(part) => {
                    let part = part.to_str().unwrap_or_default();
                    if part.len() > MAX_FILE_NAME_LENGTH {
                        return Err(invalid(
                            "filenames must be less than or equal to 255 characters",
                        ));
                    }
                    parts.push(part);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(invalid("must not contain '..'")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(invalid("must be relative path"));
                }
            }
        }
        match parts.first() {
            None => return Err(invalid("must not be empty")),
            Some(first) if first.starts_with("..") => {
                return Err(invalid("must not start with '..'"));
            }
            Some(_) => {}
        }
        clean.push((parts.join("/"), file));
    }
    Ok(clean)
}

fn is_version_name(name: &Path) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name.starts_with("..")
        && name != DATA_DIR
        && name != DATA_DIR_TMP
        && !name.contains('/')
        && name[2..].starts_with(|c: char| c.is_ascii_digit())
}

/// Whether `dir` holds exactly `payload`: same files, bytes and modes.
fn matches(dir: &Path, payload: &[(String, &FileProjection)]) -> Result<bool, VolumeError> {
    for (path, file) in payload {
        let full = dir.join(path);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(VolumeError::io("stat", &full, e)),
        };
        if !meta.is_file()
            || meta.permissions().mode() & 0o7777 != file.mode
            || meta.len() != file.data.len() as u64
        {
            return Ok(false);
        }
        let content = fs::read(&full).map_err(|e| VolumeError::io("read", &full, e))?;
        if content != file.data {
            return Ok(false);
        }
    }
    Ok(count_files(dir)? == payload.len())
}

fn count_files(dir: &Path) -> Result<usize, VolumeError> {
    let mut count = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(VolumeError::io("read directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("read directory", dir, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| VolumeError::io("stat", entry.path(), e))?;
        if kind.is_dir() {
            count += count_files(&entry.path())?;
        } else {
            count += 1;
        }
    }
    Ok(count)
}

fn visible_links_present(target: &Path, visible: &BTreeSet<&str>) -> bool {
    visible.iter().all(|name| {
        fs::read_link(target.join(name)).is_ok_and(|to| to == Path::new(DATA_DIR).join(name))
    })
}

fn new_version_dir(target: &Path) -> Result<String, VolumeError> {
    let stamp = k8s_openapi::jiff::Timestamp::now();
    let prefix = stamp.strftime("..%Y_%m_%d_%H_%M_%S.").to_string();
    let mut suffix = stamp.subsec_nanosecond().unsigned_abs();
    loop {
        let name = format!("{prefix}{suffix}");
        let path = target.join(&name);
        match fs::create_dir(&path) {
            Ok(()) => {
                // Group and others must be able to traverse, whatever the umask.
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| VolumeError::io("chmod", &path, e))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => suffix = suffix.wrapping_add(1),
            Err(e) => return Err(VolumeError::io("create directory", &path, e)),
        }
    }
}

fn write_files(dir: &Path, payload: &[(String, &FileProjection)]) -> Result<(), VolumeError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| VolumeError::io("create directory", parent, e))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&full)
            .map_err(|e| VolumeError::io("create", &full, e))?;
        out.write_all(&file.data)
            .map_err(|e| VolumeError::io("write", &full, e))?;
        // The umask may have narrowed the mode given at creation.
        fs::set_permissions(&full, fs::Permissions::from_mode(file.mode))
            .map_err(|e| VolumeError::io("chmod", &full, e))?;
    }
    Ok(())
}

fn create_visible_links(target: &Path, visible: &BTreeSet<&str>) -> Result<(), VolumeError> {
    for name in visible {
        let link = target.join(name);
        match fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {}
            Ok(_) => {
                tracing::warn!(path = %link.display(), "not a symlink; leaving it in place of the projected file");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                symlink(Path::new(DATA_DIR).join(name), &link)
                    .map_err(|e| VolumeError::io("symlink", &link, e))?;
            }
            Err(e) => return Err(VolumeError::io("stat", &link, e)),
        }
    }
    Ok(())
}

/// Removes the top-level links of names that are no longer projected (only
/// links this writer made: they point into `..data`).
fn prune_visible_links(target: &Path, visible: &BTreeSet<&str>) -> Result<(), VolumeError> {
    let entries = fs::read_dir(target).map_err(|e| VolumeError::io("read directory", target, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("read directory", target, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("..") || visible.contains(name) {
            continue;
        }
        let path = entry.path();
        if fs::read_link(&path).is_ok_and(|to| to.starts_with(DATA_DIR)) {
            fs::remove_file(&path).map_err(|e| VolumeError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Removes every version directory but those to `keep`: older ones and any
/// left behind by an interrupted write.
fn remove_old_versions(target: &Path, keep: &[&str]) -> Result<(), VolumeError> {
    let entries = fs::read_dir(target).map_err(|e| VolumeError::io("read directory", target, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("read directory", target, e))?;
        let name = entry.file_name();
        if keep.iter().any(|k| name == *k) || !is_version_name(Path::new(&name)) {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| VolumeError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileProjection {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn paths_are_validated_like_kubelet() {
        for (bad, reason) in [
            ("", "must not be empty"),
            ("/abs", "must be relative path"),
            ("a/../b", "must not contain '..'"),
            ("..hidden", "must not start with '..'"),
            ("./..x", "must not start with '..'"),
        ] {
            let err = validate_payload(&payload(&[(bad, "x", 0o644)])).unwrap_err();
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
        let long = "x".repeat(256);
        assert!(validate_payload(&payload(&[(&long, "x", 0o644)])).is_err());
        let files = payload(&[("a//./b", "x", 0o644), ("c..d", "y", 0o644)]);
        let ok = validate_payload(&files).unwrap();
        assert_eq!(ok[0].0, "a/b");
        assert_eq!(ok[1].0, "c..d");
    }

    #[test]
    fn version_names() {
        assert!(is_version_name(Path::new("..2026_11_23_10_11_12.123")));
        assert!(!is_version_name(Path::new("..data")));
        assert!(!is_version_name(Path::new("..data_tmp")));
        assert!(!is_version_name(Path::new("key")));
    }
}
