//! The files every container of a pod gets bind-mounted: `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`. Their content comes from pure functions of
//! the pod and the node's settings; [`write_files`] puts them on disk.

mod hostname;
mod hosts;
mod resolv;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use hostname::{PodHostname, pod_hostname};
pub use hosts::{host_network_hosts_file, hosts_file};
pub use resolv::{
    DnsSettings, HostDns, MAX_NAMESERVERS, MAX_SEARCH_LINE_CHARS, MAX_SEARCH_PATHS, ResolvConf,
    resolv_conf,
};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("pod {field} {reason}")]
    InvalidPod { field: &'static str, reason: String },
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The content of a pod's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFiles {
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
}

/// Where [`write_files`] put them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePaths {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

impl FilePaths {
    pub fn in_dir(dir: &Path) -> FilePaths {
        FilePaths {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname: dir.join("hostname"),
        }
    }
}

/// Writes `dir/hosts`, `dir/resolv.conf` and `dir/hostname` (creating `dir`).
pub fn write_files(dir: &Path, files: &PodFiles) -> Result<FilePaths, FilesError> {
    let io_err = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| FilesError::Io {
            path,
            action,
            source,
        }
    };
    fs::create_dir_all(dir).map_err(io_err(dir, "create"))?;
    let paths = FilePaths::in_dir(dir);
    let hostname = format!("{}\n", files.hostname);
    for (path, content) in [
        (&paths.hosts, files.hosts.as_str()),
        (&paths.resolv_conf, files.resolv_conf.as_str()),
        (&paths.hostname, hostname.as_str()),
    ] {
        fs::write(path, content).map_err(io_err(path, "write"))?;
    }
    Ok(paths)
}

/// Deletes what [`write_files`] wrote, and `dir` if that leaves it empty; Ok when
/// already gone.
pub fn remove_files(dir: &Path) -> Result<(), FilesError> {
    let paths = FilePaths::in_dir(dir);
    for path in [&paths.hosts, &paths.resolv_conf, &paths.hostname] {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(FilesError::Io {
                    path: path.clone(),
                    action: "remove",
                    source,
                });
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(source) => Err(FilesError::Io {
            path: dir.to_path_buf(),
            action: "remove",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_and_removes_the_three_files() {
        let tmp = std::env::temp_dir().join(format!("skiff-files-{}", std::process::id()));
        let dir = tmp.join("etc");
        let files = PodFiles {
            hosts: "127.0.0.1\tlocalhost\n".into(),
            resolv_conf: "nameserver 10.96.0.10\n".into(),
            hostname: "web".into(),
        };
        let paths = write_files(&dir, &files).unwrap();
        assert_eq!(fs::read_to_string(&paths.hostname).unwrap(), "web\n");
        assert_eq!(
            fs::read_to_string(&paths.resolv_conf).unwrap(),
            files.resolv_conf
        );
        remove_files(&dir).unwrap();
        assert!(!dir.exists());
        remove_files(&dir).unwrap();
        fs::remove_dir(&tmp).unwrap();
    }
}
