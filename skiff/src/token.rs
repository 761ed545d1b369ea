//! `skiff token create|list|delete`: bootstrap tokens, as `kubeadm token` manages them
//! (Secrets `kube-system/bootstrap-token-<id>`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};

use crate::join::{ca_cert_hash, kubeconfig_cluster};

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const NAMESPACE: &str = "kube-system";
pub const DEFAULT_GROUP: &str = "system:bootstrappers:skiff:default-node-token";

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The admin kubeconfig to manage tokens with.
    #[arg(long, conflicts_with = "data_dir")]
    kubeconfig: Option<PathBuf>,
    /// The cluster's data directory (its `admin.kubeconfig`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl Target {
    fn kubeconfig(&self) -> PathBuf {
        match (&self.kubeconfig, &self.data_dir) {
            (Some(k), _) => k.clone(),
            (None, Some(d)) => d.join("admin.kubeconfig"),
            (None, None) => PathBuf::from("/var/lib/skiff/admin.kubeconfig"),
        }
    }

    async fn client(&self) -> anyhow::Result<kube::Client> {
        let path = self.kubeconfig();
        let kc = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .with_context(|| format!("loading {}", path.display()))?;
        kube::Client::try_from(cfg).context("building the API client")
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a bootstrap token and print it with the `skiff join` command that uses it.
    Create {
        /// How long the token is valid (`24h`, `90m`, `0` for ever).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// A note shown by `skiff token list`.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the bootstrap tokens.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a bootstrap token (by id or whole token).
    Delete {
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// A Go-style duration of hours, minutes and seconds (`24h`, `1h30m`, `90s`, `0`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => bail!("invalid duration {s:?}: unit {c:?} (use h, m or s)"),
        };
    }
    if !num.is_empty() {
        bail!("invalid duration {s:?}: missing unit after {num}");
    }
    Ok(Duration::from_secs(total))
}

fn token_id(s: &str) -> &str {
    s.split('.').next().unwrap_or(s)
}

pub fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}.{}", pick(6), pick(16))
}

/// The Secret that makes `token` valid until `expires` (`None`: for ever).
pub fn token_secret(
    token: &str,
    expires: Option<jiff::Timestamp>,
    description: Option<&str>,
) -> anyhow::Result<Secret> {
    let Some((id, secret)) = token.split_once('.') else {
        bail!("a token is <id>.<secret>");
    };
    let mut data = BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        (
            "usage-bootstrap-authentication".to_string(),
            "true".to_string(),
        ),
        ("usage-bootstrap-signing".to_string(), "true".to_string()),
        ("auth-extra-groups".to_string(), DEFAULT_GROUP.to_string()),
    ]);
    if let Some(t) = expires {
        data.insert(
            "expiration".into(),
            t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        );
    }
    if let Some(d) = description {
        data.insert("description".into(), d.to_string());
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(format!("bootstrap-token-{id}")),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        string_data: Some(data),
        ..Default::default()
    })
}

/// The server and CA hash a joining node uses, from `kube-public/cluster-info`.
pub(crate) async fn join_target(client: &kube::Client) -> anyhow::Result<(String, String)> {
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-public");
    let ci = cms
        .get("cluster-info")
        .await
        .context("reading kube-public/cluster-info")?;
    let kc = ci
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .context("cluster-info has no kubeconfig")?;
    let (server, ca) = kubeconfig_cluster(kc)?;
    Ok((server, ca_cert_hash(&ca)?))
}

pub async fn run(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            ttl,
            description,
            target,
        } => {
            let ttl = parse_duration(&ttl)?;
            let client = target.client().await?;
            let token = random_token();
            let expires = (!ttl.is_zero())
                .then(|| {
                    jiff::Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_secs(ttl.as_secs() as i64))
                })
                .transpose()
                .context("the ttl is too long")?;
            let secret = token_secret(&token, expires, description.as_deref())?;
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), NAMESPACE);
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .context("creating the token's secret")?;
            let (server, hash) = join_target(&client).await?;
            println!("{token}");
            println!("skiff join --server {server} --token {token} --ca-cert-hash {hash}");
            Ok(())
        }
        TokenCmd::List { target } => {
            let client = target.client().await?;
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client, NAMESPACE);
            let list = secrets
                .list(&ListParams::default())
                .await
                .context("listing bootstrap tokens")?;
            println!(
                "{:<8}{:<12}{:<22}{:<32}{:<28}EXTRA GROUPS",
                "ID", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"
            );
            let now = jiff::Timestamp::now();
            for s in list.items {
                if s.type_.as_deref() != Some(SECRET_TYPE) {
                    continue;
                }
                let data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?)))
                    .collect();
                let get = |k: &str| data.get(k).map(String::as_str).unwrap_or("");
                let (ttl, expires) = match get("expiration") {
                    "" => ("<forever>".to_string(), "<never>".to_string()),
                    e => match e.parse::<jiff::Timestamp>() {
                        Ok(t) if t <= now => ("<expired>".to_string(), e.to_string()),
                        Ok(t) => {
                            let left = t.duration_since(now).as_secs();
                            let human = if left >= 3600 {
                                format!("{}h", left / 3600)
                            } else {
                                format!("{}m", left / 60)
                            };
                            (human, e.to_string())
                        }
                        Err(_) => ("<invalid>".to_string(), e.to_string()),
                    },
                };
                let usages: Vec<&str> = data
                    .iter()
                    .filter(|(_, v)| v.as_str() == "true")
                    .filter_map(|(k, _)| k.strip_prefix("usage-bootstrap-"))
                    .collect();
                println!(
                    "{:<8}{:<12}{:<22}{:<32}{:<28}{}",
                    get("token-id"),
                    ttl,
                    expires,
                    usages.join(","),
                    match get("description") {
                        "" => "<none>",
                        d => d,
                    },
                    get("auth-extra-groups")
                );
            }
            Ok(())
        }
        TokenCmd::Delete { id, target } => {
            let client = target.client().await?;
            let secrets: kube::Api<Secret> = kube::Api::namespaced(client, NAMESPACE);
            let id = token_id(&id);
            secrets
                .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
                .await
                .with_context(|| format!("deleting bootstrap token {id}"))?;
            println!("bootstrap token \"{id}\" deleted");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn tokens_and_their_secrets() {
        let t = random_token();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        let s = token_secret(&t, None, Some("ci")).unwrap();
        assert_eq!(s.metadata.name.unwrap(), format!("bootstrap-token-{id}"));
        let d = s.string_data.unwrap();
        assert_eq!(d["auth-extra-groups"], DEFAULT_GROUP);
        assert!(!d.contains_key("expiration"));
        assert_eq!(token_id(&t), id);
    }
}
