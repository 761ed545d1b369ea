//! Registry credentials from a pod's image pull secrets, found the way kubelet's keyring finds
//! them: `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, with `auths`) and
//! `kubernetes.io/dockercfg` (`.dockercfg`) secrets map registry locations to credentials; a
//! location matches an image when its host labels match (a label may be a `*` wildcard), its
//! port is the same and its path is a prefix of the image's repository path. More specific
//! locations come first, and Docker Hub's `index.docker.io/v1/` serves `docker.io` images.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use crate::runtime::RegistryAuth;
use crate::runtime::reference::normalize;

pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// The key Docker Hub's credentials are filed under once `https://index.docker.io/v1/` is
/// cut down to its host.
const DEFAULT_REGISTRY_KEY: &str = "index.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("image pull secret {secret}: {reason}")]
    InvalidSecret { secret: String, reason: String },
}

/// The credentials `secrets` hold for `image`, most specific location first; empty when
/// none match (pull anonymously). Secrets of other types are ignored, as kubelet does.
pub fn credentials_for(image: &str, secrets: &[Secret]) -> Result<Vec<RegistryAuth>, KeyringError> {
    let mut keyring = Keyring::default();
    for secret in secrets {
        let Some(entries) = secret_entries(secret)? else {
            continue;
        };
        for (location, auth) in entries {
            keyring.add(&location, auth);
        }
    }
    Ok(keyring.lookup(&repository_of(image)))
}

/// The image without tag or digest, normalized as kubelet does before looking it up
/// (`busybox` is `docker.io/library/busybox`).
fn repository_of(image: &str) -> String {
    let full = normalize(image).unwrap_or_else(|| image.trim().to_string());
    let name = full.split('@').next().unwrap_or("");
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => name[..last_slash + i].to_string(),
        None => name.to_string(),
    }
}

fn secret_name(secret: &Secret) -> String {
    let name = secret.metadata.name.as_deref().unwrap_or("(unnamed)");
    match secret.metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.as_bytes().to_vec())
        })
}

/// One credentials entry of a Docker config.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

#[derive(Debug, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// The (location, credentials) pairs of a pull secret; None for secrets of other types.
fn secret_entries(secret: &Secret) -> Result<Option<Vec<(String, RegistryAuth)>>, KeyringError> {
    let invalid = |reason: String| KeyringError::InvalidSecret {
        secret: secret_name(secret),
        reason,
    };
    let kind = secret.type_.as_deref().unwrap_or("");
    let (key, entries) = match kind {
        DOCKER_CONFIG_JSON_TYPE => {
            let data = secret_value(secret, DOCKER_CONFIG_JSON_KEY)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| invalid(format!("{kind} secret has no {DOCKER_CONFIG_JSON_KEY}")))?;
            let cfg: DockerConfigJson = serde_json::from_slice(&data)
                .map_err(|e| invalid(format!("{DOCKER_CONFIG_JSON_KEY} is not valid: {e}")))?;
            (DOCKER_CONFIG_JSON_KEY, cfg.auths)
        }
        DOCKERCFG_TYPE => {
            let data = secret_value(secret, DOCKERCFG_KEY)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| invalid(format!("{kind} secret has no {DOCKERCFG_KEY}")))?;
            let cfg: BTreeMap<String, Entry> = serde_json::from_slice(&data)
                .map_err(|e| invalid(format!("{DOCKERCFG_KEY} is not valid: {e}")))?;
            (DOCKERCFG_KEY, cfg)
        }
        _ => return Ok(None),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (location, e) in entries {
        let (mut username, mut password) = (e.username, e.password);
        if !e.auth.is_empty() {
            (username, password) = decode_auth(&e.auth).ok_or_else(|| {
                invalid(format!(
                    "{key}: the auth field of {location:?} is not base64(username:password)"
                ))
            })?;
        }
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        out.push((
            location,
            RegistryAuth {
                username,
                password,
                identity_token: non_empty(e.identitytoken),
                registry_token: non_empty(e.registrytoken),
            },
        ));
    }
    Ok(Some(out))
}

fn decode_auth(field: &str) -> Option<(String, String)> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let raw = engines.iter().find_map(|e| e.decode(field.trim()).ok())?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Locations, reduced to `host[/path]`, and their credentials in the order they were added.
#[derive(Debug, Default)]
struct Keyring {
    creds: BTreeMap<String, Vec<RegistryAuth>>,
}

impl Keyring {
    fn add(&mut self, location: &str, auth: RegistryAuth) {
        let (host, path) = split_location(location);
        // `/v1/` and `/v2/` paths (Docker's API roots) stand for the host itself.
        let path = path
            .strip_prefix("/v2/")
            .or_else(|| path.strip_prefix("/v1/"))
            .map_or(path, |rest| &path[path.len() - rest.len() - 1..]);
        let key = if path.is_empty() || path == "/" {
            host.to_string()
        } else {
            format!("{host}{path}")
        };
        let list = self.creds.entry(key).or_default();
        if !list.contains(&auth) {
            list.push(auth);
        }
    }

    fn lookup(&self, repository: &str) -> Vec<RegistryAuth> {
        // Reverse order puts `host/longer/path` before `host/path` before `host`.
        let mut out: Vec<RegistryAuth> = Vec::new();
        for (key, creds) in self.creds.iter().rev() {
            if location_matches(key, repository) {
                out.extend(creds.iter().cloned());
            }
        }
        if out.is_empty()
            && is_default_registry(repository)
            && let Some(creds) = self.creds.get(DEFAULT_REGISTRY_KEY)
        {
            out.extend(creds.iter().cloned());
        }
        out
    }
}

/// `host` and `/path` of a location with or without a scheme (query and fragment dropped).
fn split_location(location: &str) -> (&str, &str) {
    let rest = location.trim();
    let rest = rest
        .strip_prefix("https://")
        .or_else(|| rest.strip_prefix("http://"))
        .unwrap_or(rest);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

/// Splits `host[:port]` (or `[v6]:port`) into its dot-separated labels and its port.
fn host_labels(host: &str) -> (Vec<&str>, &str) {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').unwrap_or("")),
            None => (host, ""),
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p),
            _ => (host, ""),
        }
    };
    (name.split('.').collect(), port)
}

/// Whether a keyring location matches an image repository (both without scheme).
fn location_matches(location: &str, repository: &str) -> bool {
    let (glob_host, glob_path) = split_location(location);
    let (host, path) = split_location(repository);
    let (glob_labels, glob_port) = host_labels(glob_host);
    let (labels, port) = host_labels(host);
    glob_port == port
        && glob_labels.len() == labels.len()
        && path.starts_with(glob_path)
        && glob_labels
            .iter()
            .zip(&labels)
            .all(|(g, l)| glob_match(g.as_bytes(), l.as_bytes()))
}

/// Shell-style matching of one host label: `*` any run of characters, `?` one character.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// Whether an image comes from Docker Hub: no registry host in its name, or `docker.io`.
fn is_default_registry(repository: &str) -> bool {
    match repository.split_once('/') {
        None => !repository.is_empty(),
        Some(("", _)) => false,
        Some((first, _)) => {
            first == "docker.io" || first == "index.docker.io" || !first.contains(['.', ':'])
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(name: &str, kind: &str, key: &str, data: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            type_: Some(kind.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(data.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    /// A dockerconfigjson secret whose entries' users are named after their locations.
    fn json_secret(name: &str, locations: &[&str]) -> Secret {
        let auths: serde_json::Map<String, serde_json::Value> = locations
            .iter()
            .map(|l| {
                (
                    l.to_string(),
                    serde_json::json!({"username": l, "password": "pw"}),
                )
            })
            .collect();
        let data = serde_json::json!({ "auths": auths }).to_string();
        secret(name, DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, &data)
    }

    fn users(image: &str, secrets: &[Secret]) -> Vec<String> {
        credentials_for(image, secrets)
            .unwrap()
            .into_iter()
            .map(|a| a.username)
            .collect()
    }

    #[test]
    fn docker_hub_forms() {
        for loc in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "index.docker.io/v1/",
            "docker.io",
            "https://docker.io",
        ] {
            let s = [json_secret("hub", &[loc])];
            for image in [
                "busybox",
                "busybox:1.36",
                "library/busybox",
                "docker.io/library/busybox:latest",
                "me/app@sha256:abc",
            ] {
                assert_eq!(users(image, &s), vec![loc.to_string()], "{loc} for {image}");
            }
            assert!(users("quay.io/me/app", &s).is_empty(), "{loc}");
        }
        // A user name that looks like a Hub namespace is no host.
        let s = [json_secret("hub", &["https://index.docker.io/v1/"])];
        assert_eq!(users("localhost:5000/app", &s), Vec::<String>::new());
    }

    #[test]
    fn wildcards_match_one_label() {
        let s = [json_secret(
            "w",
            &["*.kubernetes.io", "prefix.*.io", "*-suffix.io"],
        )];
        assert_eq!(users("foo.kubernetes.io/app", &s), vec!["*.kubernetes.io"]);
        assert!(users("kubernetes.io/app", &s).is_empty());
        assert!(users("a.b.kubernetes.io/app", &s).is_empty());
        assert_eq!(users("prefix.anything.io/app", &s), vec!["prefix.*.io"]);
        assert_eq!(users("my-suffix.io/app", &s), vec!["*-suffix.io"]);
        assert!(users("my-suffix.io.evil.test/app", &s).is_empty());
    }

    #[test]
    fn ports_must_match() {
        let s = [json_secret("p", &["registry.test:5000", "plain.test"])];
        assert_eq!(
            users("registry.test:5000/app:1", &s),
            vec!["registry.test:5000"]
        );
        assert!(users("registry.test/app", &s).is_empty());
        assert!(users("registry.test:5001/app", &s).is_empty());
        assert!(users("plain.test:443/app", &s).is_empty());
        assert_eq!(users("plain.test/app", &s), vec!["plain.test"]);
        let s = [json_secret("l", &["http://127.0.0.1:5000", "[::1]:5000"])];
        assert_eq!(
            users("127.0.0.1:5000/app", &s),
            vec!["http://127.0.0.1:5000"]
        );
        assert_eq!(users("[::1]:5000/app", &s), vec!["[::1]:5000"]);
    }

    #[test]
    fn paths_are_prefixes_and_most_specific_comes_first() {
        let s = [json_secret(
            "paths",
            &[
                "quay.io",
                "quay.io/team",
                "quay.io/team/app",
                "https://quay.io/v2/other",
            ],
        )];
        assert_eq!(
            users("quay.io/team/app:1", &s),
            vec!["quay.io/team/app", "quay.io/team", "quay.io"]
        );
        assert_eq!(
            users("quay.io/team/web", &s),
            vec!["quay.io/team", "quay.io"]
        );
        assert_eq!(users("quay.io/nobody/x", &s), vec!["quay.io"]);
        // /v2/ stands for the root: "https://quay.io/v2/other" is "quay.io/other".
        assert_eq!(
            users("quay.io/other/x", &s),
            vec!["https://quay.io/v2/other", "quay.io"]
        );
    }

    #[test]
    fn entry_forms() {
        let data = serde_json::json!({"auths": {
            "a.test": {"username": "u", "password": "p", "email": "e@x"},
            "b.test": {"auth": b64("bu:b:p"), "username": "ignored"},
            "c.test": {"identitytoken": "refresh"},
            "d.test": {"registrytoken": "bearer"},
        }})
        .to_string();
        let s = [secret(
            "forms",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &data,
        )];
        let a = &credentials_for("a.test/x", &s).unwrap()[0];
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        let b = &credentials_for("b.test/x", &s).unwrap()[0];
        assert_eq!((b.username.as_str(), b.password.as_str()), ("bu", "b:p"));
        let c = &credentials_for("c.test/x", &s).unwrap()[0];
        assert_eq!(c.identity_token.as_deref(), Some("refresh"));
        let d = &credentials_for("d.test/x", &s).unwrap()[0];
        assert_eq!(d.registry_token.as_deref(), Some("bearer"));

        // The legacy form: the map itself, no "auths".
        let data = serde_json::json!({"old.test": {"auth": b64("o:p")}}).to_string();
        let s = [secret("old", DOCKERCFG_TYPE, DOCKERCFG_KEY, &data)];
        assert_eq!(users("old.test/x", &s), vec!["o"]);
    }

    #[test]
    fn several_secrets_in_order_and_others_ignored() {
        let opaque = secret("opaque", "Opaque", "x", "not json");
        let s = [
            json_secret("one", &["reg.test"]),
            opaque,
            json_secret("two", &["reg.test", "other.test"]),
        ];
        let creds = credentials_for("reg.test/app", &s).unwrap();
        assert_eq!(creds.len(), 1, "identical credentials once: {creds:?}");
        let data = serde_json::json!({"auths": {"reg.test": {"username": "second"}}}).to_string();
        let s = [
            json_secret("one", &["reg.test"]),
            secret(
                "two",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                &data,
            ),
        ];
        assert_eq!(users("reg.test/app", &s), vec!["reg.test", "second"]);
        assert!(credentials_for("reg.test/app", &[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_secrets_are_named() {
        let bad_json = secret(
            "broken",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            "{",
        );
        let e = credentials_for("reg.test/app", &[bad_json]).unwrap_err();
        assert!(e.to_string().contains("ns/broken"), "{e}");
        assert!(e.to_string().contains(".dockerconfigjson"), "{e}");

        let data = serde_json::json!({"auths": {"reg.test": {"auth": b64("nocolon")}}}).to_string();
        let bad_auth = secret(
            "nocolon",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &data,
        );
        let e = credentials_for("reg.test/app", &[bad_auth]).unwrap_err();
        assert!(e.to_string().contains("ns/nocolon"), "{e}");
        assert!(e.to_string().contains("auth field"), "{e}");

        let data = serde_json::json!({"auths": {"reg.test": {"auth": "%%%"}}}).to_string();
        let not_b64 = secret(
            "garbage",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &data,
        );
        assert!(credentials_for("reg.test/app", &[not_b64]).is_err());

        let missing = secret("empty", DOCKERCFG_TYPE, "wrong-key", "{}");
        let e = credentials_for("reg.test/app", &[missing]).unwrap_err();
        assert!(e.to_string().contains("ns/empty"), "{e}");
        assert!(e.to_string().contains(".dockercfg"), "{e}");
    }

    #[test]
    fn glob_labels() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(!glob_match(b"abc", b"abd"));
    }
}
