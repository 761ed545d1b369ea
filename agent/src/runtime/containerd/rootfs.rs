//! Reading a file of a container's root file system from its snapshot mounts without mounting
//! them: overlayfs layers are plain directories, searched top-down.

use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use containerd_client::types::Mount;

/// Files larger than this are not read (an /etc/passwd never is).
const MAX_FILE: u64 = 4 << 20;

/// The directories that make up the mounts, topmost first.
fn layer_dirs(mounts: &[Mount]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        match m.r#type.as_str() {
            "overlay" => {
                let opt = |name: &str| {
                    m.options
                        .iter()
                        .find_map(|o| o.strip_prefix(name).map(str::to_string))
                };
                if let Some(upper) = opt("upperdir=") {
                    dirs.push(PathBuf::from(upper));
                }
                if let Some(lower) = opt("lowerdir=") {
                    dirs.extend(
                        lower
                            .split(':')
                            .filter(|d| !d.is_empty())
                            .map(PathBuf::from),
                    );
                }
            }
            "bind" | "rbind" => dirs.push(PathBuf::from(&m.source)),
            _ => {}
        }
    }
    dirs
}

/// The contents of `path` (absolute, inside the container) as the container would see it, or
/// None if it does not exist, was deleted by an upper layer, or is not a regular file.
pub(crate) async fn read_file(mounts: &[Mount], path: &str) -> Option<String> {
    let rel = path.trim_start_matches('/');
    for dir in layer_dirs(mounts) {
        let candidate = dir.join(rel);
        let Ok(meta) = tokio::fs::symlink_metadata(&candidate).await else {
            continue;
        };
        let ft = meta.file_type();
        // A character device is an overlayfs whiteout: deleted in this layer.
        if ft.is_char_device() || !ft.is_file() || meta.len() > MAX_FILE {
            return None;
        }
        return tokio::fs::read_to_string(&candidate).await.ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(options: &[&str]) -> Mount {
        Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn overlay_layers_top_down() {
        let m = overlay(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"]);
        assert_eq!(
            layer_dirs(&[m]),
            vec![
                PathBuf::from("/u"),
                PathBuf::from("/l2"),
                PathBuf::from("/l1")
            ]
        );
        let b = Mount {
            r#type: "bind".into(),
            source: "/s".into(),
            target: String::new(),
            options: vec!["rbind".into(), "ro".into()],
        };
        assert_eq!(layer_dirs(&[b]), vec![PathBuf::from("/s")]);
    }

    #[tokio::test]
    async fn upper_layers_win_and_whiteouts_hide() {
        let base = std::env::temp_dir().join(format!("skiff-rootfs-test-{}", std::process::id()));
        let (upper, lower) = (base.join("upper"), base.join("lower"));
        for d in [&upper, &lower] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "lower").unwrap();
        std::fs::write(lower.join("etc/group"), "lower-group").unwrap();
        std::fs::write(upper.join("etc/passwd"), "upper").unwrap();
        let m = overlay(&[
            &format!("upperdir={}", upper.display()),
            &format!("lowerdir={}", lower.display()),
        ]);
        let mounts = [m];
        assert_eq!(
            read_file(&mounts, "/etc/passwd").await.as_deref(),
            Some("upper")
        );
        assert_eq!(
            read_file(&mounts, "/etc/group").await.as_deref(),
            Some("lower-group")
        );
        assert_eq!(read_file(&mounts, "/etc/shadow").await, None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
