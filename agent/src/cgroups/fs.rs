//! Small cgroupfs file helpers shared by the v1 and v2 backends. Cgroup files are
//! in-memory kernel objects, so plain blocking I/O is fine; only removal waits, and
//! that happens in the manager.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::CgroupError;

/// `mount` + a cgroup path such as `/kubepods/pod123`.
pub(crate) fn join(mount: &Path, cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| CgroupError::io(format!("write {value:?} to"), path, e))
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))
}

/// Reads a file if it exists; `None` when it does not.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::io("read", path, e)),
    }
}

pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read(path)?;
    parse_u64(path, &s)
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64, CgroupError> {
    s.trim()
        .parse()
        .map_err(|_| parse_error(path, "an unsigned integer", s))
}

/// Reads a flat keyed file (`key value` per line: memory.stat, cpu.stat, memory.events,
/// memory.oom_control). Lines whose value is not a number are skipped.
pub(crate) fn read_keyed(path: &Path) -> Result<HashMap<String, u64>, CgroupError> {
    Ok(parse_keyed(&read(path)?))
}

pub(crate) fn parse_keyed(s: &str) -> HashMap<String, u64> {
    s.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

pub(crate) fn parse_error(path: &Path, what: &'static str, content: &str) -> CgroupError {
    let mut content = content.trim().to_string();
    if content.len() > 200 {
        let mut end = 200;
        while !content.is_char_boundary(end) {
            end -= 1;
        }
        content.truncate(end);
    }
    CgroupError::Parse {
        path: path.to_path_buf(),
        what,
        content,
    }
}

/// Creates `dir` and any missing parents; returns nothing special when it exists.
pub(crate) fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|e| CgroupError::io("mkdir", dir, e))
}

/// Names of the child directories of `dir`; empty when `dir` does not exist.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CgroupError::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CgroupError::io("list", dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| CgroupError::io("stat", entry.path(), e))?
            .is_dir();
        if is_dir && let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Removes a cgroup and its child cgroups, deepest first. Only directories are
/// removed (cgroupfs files vanish with their directory); an absent cgroup is fine.
/// The first failure is returned after trying the rest, so one busy child does not
/// keep its empty siblings around.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let mut first_error = None;
    for child in subdirs(dir)? {
        if let Err(e) = remove_tree(&dir.join(child)) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CgroupError::io("rmdir", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_cgroup_paths_under_a_mount() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(join(m, "/kubepods/pod1"), m.join("kubepods/pod1"));
        assert_eq!(join(m, "/"), m.to_path_buf());
    }

    #[test]
    fn parses_keyed_files() {
        let k = parse_keyed("usage_usec 1234\nuser_usec 1000\nbogus\nx notanumber\n");
        assert_eq!(k.get("usage_usec"), Some(&1234));
        assert_eq!(k.get("user_usec"), Some(&1000));
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn parse_errors_keep_the_content_short() {
        let long = "é".repeat(300);
        match parse_error(Path::new("/x"), "a number", &long) {
            CgroupError::Parse { content, .. } => assert!(content.len() <= 200),
            other => panic!("{other:?}"),
        }
    }
}
