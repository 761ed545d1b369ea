//! Registry authentication: `WWW-Authenticate` challenges and the cache of bearer tokens the
//! registry's token service hands out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// One challenge of a `WWW-Authenticate` header: its scheme (lower-cased) and parameters
/// (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a scheme and
/// comma-separated `name=value` parameters, values as tokens or quoted strings.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_separators();
        let Some(word) = p.token() else { break };
        p.skip_spaces();
        if p.peek() == Some(b'=')
            && let Some(current) = out.last_mut()
        {
            // A parameter of the current challenge.
            p.i += 1;
            p.skip_spaces();
            let value = p.value();
            current.params.insert(word.to_ascii_lowercase(), value);
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == b'=' || c == b',' || c == b' ' || c == b'\t' || c == b'"' {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self) -> String {
        if self.peek() != Some(b'"') {
            return self.token().unwrap_or_default();
        }
        self.i += 1;
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(c),
            }
        }
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// What a token service answers (Docker's token spec; `access_token` is the OAuth2 name).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn bearer(&self) -> Option<&str> {
        [self.token.as_str(), self.access_token.as_str()]
            .into_iter()
            .find(|t| !t.is_empty())
    }

    /// How long the token may be used. The spec says to assume 60 seconds when the service
    /// says nothing or less; a little is kept back so a token does not expire in flight.
    pub fn lifetime(&self) -> Duration {
        let secs = self.expires_in.unwrap_or(60).max(60);
        Duration::from_secs(secs.saturating_sub(10))
    }
}

/// Which token: for whom (registry, the token service's `service`), what (`scope`), and with
/// which credentials (a digest of them, so tokens of different users never mix).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub registry: String,
    pub service: String,
    pub scope: String,
    pub credential: String,
}

/// Bearer tokens until they expire, shared by every pull.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl TokenCache {
    pub fn get(&self, key: &TokenKey, now: Instant) -> Option<String> {
        let mut tokens = self.tokens.lock().ok()?;
        match tokens.get(key) {
            Some((t, until)) if *until > now => Some(t.clone()),
            Some(_) => {
                tokens.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: TokenKey, token: String, until: Instant) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, u)| *u > Instant::now());
            tokens.insert(key, (token, until));
        }
    }

    /// Forgets a token the registry refused, if it is still the one cached.
    pub fn invalidate(&self, key: &TokenKey, token: &str) {
        if let Ok(mut tokens) = self.tokens.lock()
            && tokens.get(key).is_some_and(|(t, _)| t == token)
        {
            tokens.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.lock().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_of_docker_hub() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn basic_and_several_challenges() {
        let c = parse_challenges(r#"Basic realm="basic-realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("basic-realm"));

        // Two challenges in one header; a scope with commas inside quotes; escapes; spaces.
        let c = parse_challenges(
            r#"Basic realm="r", Bearer realm="https://t.test/token", scope="repository:a:pull,push", error="invalid_token", note="a \"quoted\" word""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params.len(), 1);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("scope"), Some("repository:a:pull,push"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        assert_eq!(c[1].param("note"), Some(r#"a "quoted" word"#));

        // Unquoted values and upper-case names.
        let c = parse_challenges("BEARER Realm=https://t.test/token,Service=reg");
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://t.test/token"));
        assert_eq!(c[0].param("service"), Some("reg"));
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn tokens_are_cached_per_key_until_they_expire() {
        let cache = TokenCache::default();
        let key = |scope: &str, cred: &str| TokenKey {
            registry: "reg.test".into(),
            service: "reg".into(),
            scope: scope.into(),
            credential: cred.into(),
        };
        let now = Instant::now();
        let until = now + Duration::from_secs(50);
        cache.insert(key("repository:a:pull", "u1"), "t1".into(), until);
        assert_eq!(
            cache.get(&key("repository:a:pull", "u1"), now).as_deref(),
            Some("t1")
        );
        // Another scope or another user's credentials do not share it.
        assert_eq!(cache.get(&key("repository:b:pull", "u1"), now), None);
        assert_eq!(cache.get(&key("repository:a:pull", "u2"), now), None);
        // Expired: gone.
        assert_eq!(
            cache.get(
                &key("repository:a:pull", "u1"),
                until + Duration::from_secs(1)
            ),
            None
        );
        assert!(cache.is_empty());

        // A refused token is dropped, but not a newer one that replaced it.
        cache.insert(key("s", "u"), "old".into(), until);
        cache.invalidate(&key("s", "u"), "other");
        assert_eq!(cache.get(&key("s", "u"), now).as_deref(), Some("old"));
        cache.invalidate(&key("s", "u"), "old");
        assert_eq!(cache.get(&key("s", "u"), now), None);
    }

    #[test]
    fn token_lifetimes() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"token":"a","expires_in":300,"issued_at":"x"}"#).unwrap();
        assert_eq!(r.bearer(), Some("a"));
        assert_eq!(r.lifetime(), Duration::from_secs(290));
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"b"}"#).unwrap();
        assert_eq!(r.bearer(), Some("b"));
        assert_eq!(r.lifetime(), Duration::from_secs(50));
        let r: TokenResponse = serde_json::from_str(r#"{"expires_in":5}"#).unwrap();
        assert_eq!(r.bearer(), None);
        assert_eq!(r.lifetime(), Duration::from_secs(50));
    }
}
