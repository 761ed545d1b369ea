//! Image names as Kubernetes and Docker write them, made canonical the way containerd's CRI
//! plugin stores them: `busybox` is `docker.io/library/busybox:latest`.

/// The canonical form of an image reference: registry host, repository path, and a tag
/// (`latest` when neither tag nor digest is given). Returns None for a reference that
/// cannot be one (empty, or with upper-case repository characters).
pub fn normalize(reference: &str) -> Option<String> {
    let reference = reference.trim();
    if reference.is_empty() || reference.contains(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    // A tag is a ':' after the last '/', so a registry port is not mistaken for one.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if repo.is_empty() || tag.is_some_and(str::is_empty) {
        return None;
    }
    let first = repo.split('/').next().unwrap_or("");
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_host {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    let path = full.split_once('/').map_or("", |(_, p)| p);
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let mut out = full;
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn docker_hub_short_names() {
        assert_eq!(
            normalize("busybox").as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalize("busybox:1.36").as_deref(),
            Some("docker.io/library/busybox:1.36")
        );
        assert_eq!(
            normalize("me/app:v1").as_deref(),
            Some("docker.io/me/app:v1")
        );
    }

    #[test]
    fn registries_ports_and_digests() {
        assert_eq!(
            normalize("localhost:5000/app").as_deref(),
            Some("localhost:5000/app:latest")
        );
        assert_eq!(
            normalize("registry.k8s.io/pause:3.9").as_deref(),
            Some("registry.k8s.io/pause:3.9")
        );
        assert_eq!(
            normalize("skiff.test/busybox@sha256:abc").as_deref(),
            Some("skiff.test/busybox@sha256:abc")
        );
        assert_eq!(
            normalize("skiff.test/busybox:1@sha256:abc").as_deref(),
            Some("skiff.test/busybox:1@sha256:abc")
        );
        assert_eq!(
            normalize("localhost/app").as_deref(),
            Some("localhost/app:latest")
        );
    }

    #[test]
    fn invalid() {
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("a b"), None);
        assert_eq!(normalize("Busybox"), None);
        assert_eq!(normalize("busybox:"), None);
    }
}
