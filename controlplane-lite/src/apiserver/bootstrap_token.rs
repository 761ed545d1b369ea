//! Bootstrap tokens (`abcdef.0123456789abcdef`): bearer tokens backed by Secrets of type
//! `bootstrap.kubernetes.io/token` in `kube-system`, as kube-apiserver's bootstrap token
//! authenticator reads them. A node that holds one may ask for its own credentials and
//! little else (see `authz`).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use super::handlers::Api;
use super::registry;
use super::server::Identity;

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const NAMESPACE: &str = "kube-system";
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
pub const USER_PREFIX: &str = "system:bootstrap:";

/// A token split into its public id and its secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

fn lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Token {
    /// `[a-z0-9]{6}.[a-z0-9]{16}`; anything else is not a bootstrap token (and may be
    /// another kind of bearer token).
    pub fn parse(s: &str) -> Option<Token> {
        let (id, secret) = s.split_once('.')?;
        (lower_alnum(id, 6) && lower_alnum(secret, 16)).then(|| Token {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A fresh random token.
    pub fn generate() -> Token {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Token {
            id: pick(6),
            secret: pick(16),
        }
    }

    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

/// Why a token was not accepted (logged, never told to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("no secret {0}")]
    NoSecret(String),
    #[error("secret is being deleted")]
    Deleting,
    #[error("secret type is not {SECRET_TYPE}")]
    WrongType,
    #[error("token id or secret does not match")]
    Mismatch,
    #[error("token has expired")]
    Expired,
    #[error("token is not marked for authentication")]
    NotForAuthentication,
    #[error("invalid extra group {0:?}")]
    BadGroup(String),
}

/// The Secret's `data`, decoded (values that are not base64 UTF-8 are left out).
pub fn secret_data(secret: &Value) -> BTreeMap<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    secret
        .get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let bytes = b64.decode(v.as_str()?).ok()?;
                    Some((k.clone(), String::from_utf8(bytes).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Constant-time comparison, so the secret part cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether `group` may be granted by a token: `system:bootstrappers:` and a suffix of
/// lowercase letters, digits, `:` and `-`, not ending in `:` or `-`.
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether a token whose Secret says `expiration` has expired at `now`. No expiration
/// never expires; one that does not parse counts as expired.
pub fn expired(expiration: Option<&str>, now: jiff::Timestamp) -> bool {
    match expiration {
        None => false,
        Some(e) => e.parse::<jiff::Timestamp>().map_or(true, |t| t <= now),
    }
}

/// Checks `token` against its Secret (`None`: there is none) at `now`.
pub fn check(
    token: &Token,
    secret: Option<&Value>,
    now: jiff::Timestamp,
) -> Result<Identity, Rejected> {
    let secret = secret.ok_or_else(|| Rejected::NoSecret(token.secret_name()))?;
    if secret.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(Rejected::Deleting);
    }
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err(Rejected::WrongType);
    }
    let data = secret_data(secret);
    let field = |k: &str| data.get(k).map(String::as_str);
    if !same(field("token-secret").unwrap_or(""), &token.secret)
        || field("token-id") != Some(token.id.as_str())
    {
        return Err(Rejected::Mismatch);
    }
    if expired(field("expiration"), now) {
        return Err(Rejected::Expired);
    }
    if field("usage-bootstrap-authentication") != Some("true") {
        return Err(Rejected::NotForAuthentication);
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for g in field("auth-extra-groups")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(g) {
            return Err(Rejected::BadGroup(g.to_string()));
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Ok(Identity {
        user: format!("{USER_PREFIX}{}", token.id),
        groups,
    })
}

/// Authenticates a bearer token as a bootstrap token; `None` when it is not one or its
/// Secret does not vouch for it.
pub async fn authenticate(api: &Api, bearer: &str) -> Option<Identity> {
    let token = Token::parse(bearer)?;
    let secrets = registry::lookup("", "v1", "secrets")?;
    let secret = match api
        .read(secrets, Some(NAMESPACE), &token.secret_name())
        .await
    {
        Ok(s) => s.map(|(v, _)| v),
        Err(e) => {
            tracing::warn!(error = %e, "reading a bootstrap token's secret");
            return None;
        }
    };
    match check(&token, secret.as_ref(), jiff::Timestamp::now()) {
        Ok(id) => Some(id),
        Err(why) => {
            tracing::debug!(token_id = %token.id, %why, "bootstrap token refused");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn secret(fields: &[(&str, &str)]) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(b64.encode(v))))
            .collect();
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
               "type": SECRET_TYPE, "data": data})
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("expiration", "2030-01-01T00:00:00Z"),
            (
                "auth-extra-groups",
                "system:bootstrappers:skiff:default-node-token",
            ),
        ]
    }

    fn now() -> jiff::Timestamp {
        "2029-06-01T00:00:00Z".parse().unwrap()
    }

    fn with(k: &'static str, v: &'static str) -> Value {
        let mut f = good();
        f.retain(|(x, _)| *x != k);
        f.push((k, v));
        secret(&f)
    }

    #[test]
    fn parses_only_the_token_shape() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id, "abcdef");
        assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef.x",
            "",
        ] {
            assert!(Token::parse(bad).is_none(), "{bad}");
        }
        let g = Token::generate();
        assert_eq!(Token::parse(&g.to_string()), Some(g));
    }

    #[test]
    fn a_valid_token_is_its_bootstrap_identity() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        let id = check(&t, Some(&secret(&good())), now()).unwrap();
        assert_eq!(id.user, "system:bootstrap:abcdef");
        assert_eq!(
            id.groups,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:skiff:default-node-token"
            ]
        );
    }

    #[test]
    fn refusals() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(
            check(&t, None, now()),
            Err(Rejected::NoSecret("bootstrap-token-abcdef".into()))
        );
        let wrong = Token::parse("abcdef.0123456789abcdee").unwrap();
        assert_eq!(
            check(&wrong, Some(&secret(&good())), now()),
            Err(Rejected::Mismatch)
        );
        assert_eq!(
            check(&t, Some(&with("token-id", "zzzzzz")), now()),
            Err(Rejected::Mismatch)
        );
        assert_eq!(
            check(&t, Some(&with("expiration", "2029-05-31T23:59:59Z")), now()),
            Err(Rejected::Expired)
        );
        assert_eq!(
            check(&t, Some(&with("expiration", "tomorrow")), now()),
            Err(Rejected::Expired)
        );
        assert_eq!(
            check(
                &t,
                Some(&with("usage-bootstrap-authentication", "false")),
                now()
            ),
            Err(Rejected::NotForAuthentication)
        );
        assert_eq!(
            check(
                &t,
                Some(&with("auth-extra-groups", "system:masters")),
                now()
            ),
            Err(Rejected::BadGroup("system:masters".into()))
        );
        let mut typed = secret(&good());
        typed["type"] = json!("Opaque");
        assert_eq!(check(&t, Some(&typed), now()), Err(Rejected::WrongType));
        let mut deleting = secret(&good());
        deleting["metadata"]["deletionTimestamp"] = json!("2029-01-01T00:00:00Z");
        assert_eq!(check(&t, Some(&deleting), now()), Err(Rejected::Deleting));
    }

    #[test]
    fn no_expiration_never_expires() {
        let t = Token::parse("abcdef.0123456789abcdef").unwrap();
        let mut f = good();
        f.retain(|(k, _)| *k != "expiration");
        assert!(check(&t, Some(&secret(&f)), now()).is_ok());
    }
}
