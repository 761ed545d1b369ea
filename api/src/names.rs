//! Naming rules for object names, ports, environment variables and keys.
//!
//! Each `*_errors` function returns the list of problems in Kubernetes' own
//! wording (empty when the value is valid), because clients and tests compare
//! against those strings; the server turns each one into a field error. The
//! `validate_*` wrappers give the same result as a `Result` for callers that
//! only need a yes/no with a readable reason.

use std::sync::LazyLock;

use rand::Rng;
use regex::Regex;

/// Longest DNS-1123 label (and DNS-1035 label, and label-key name part).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest IANA service name (port name).
pub const IANA_SVC_NAME_MAX_LENGTH: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const C_IDENTIFIER_FMT: &str = "[A-Za-z_][A-Za-z0-9_]*";
const C_IDENTIFIER_ERR: &str = "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const RELAXED_ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// The alphabet Kubernetes draws generated-name suffixes from: no vowels (so
/// no accidental words) and no look-alike characters.
const GENERATE_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const GENERATE_NAME_RANDOM_LENGTH: usize = 5;

fn anchored(fmt: &str) -> Regex {
    // The patterns are compile-time constants; a failure here is a bug in this file.
    Regex::new(&format!("^{fmt}$")).expect("built-in naming regex must compile")
}

static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static C_IDENTIFIER_RE: LazyLock<Regex> = LazyLock::new(|| anchored(C_IDENTIFIER_FMT));
static ENV_VAR_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(ENV_VAR_NAME_FMT));
static CONFIG_MAP_KEY_RE: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));

/// A value broke a naming rule. `messages` are Kubernetes' strings, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {rule} {value:?}: {}", messages.join("; "))]
pub struct NameError {
    /// Which rule was checked, e.g. "DNS-1123 subdomain".
    pub rule: &'static str,
    /// The offending value.
    pub value: String,
    /// One entry per problem, worded as Kubernetes words it.
    pub messages: Vec<String>,
}

/// "must be no more than N characters".
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// "must be non-empty".
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// Kubernetes' wording for a regex mismatch, with its odd example separator
/// (`'a',  or 'b', `) reproduced because clients match on the whole string.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

/// Problems with `value` as a DNS-1123 label (e.g. a Namespace name).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(value) {
        if DNS1123_SUBDOMAIN_RE.is_match(value) {
            // A valid subdomain that is not a valid label can only fail on its dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Problems with `value` as a DNS-1123 subdomain (most object names).
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Problems with `value` as a DNS-1035 label (Service names).
pub fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Problems with `value` as a C identifier (format only, no length limit).
pub fn c_identifier_errors(value: &str) -> Vec<String> {
    if C_IDENTIFIER_RE.is_match(value) {
        Vec::new()
    } else {
        vec![regex_error(
            C_IDENTIFIER_ERR,
            C_IDENTIFIER_FMT,
            &["my_name", "MY_NAME", "MyName"],
        )]
    }
}

/// Kubernetes refuses names that would walk directories when used as paths.
fn chdir_prefix_errors(value: &str) -> Vec<String> {
    if value == "." {
        vec!["must not be '.'".to_string()]
    } else if value == ".." {
        vec!["must not be '..'".to_string()]
    } else if value.starts_with("..") {
        vec!["must not start with '..'".to_string()]
    } else {
        Vec::new()
    }
}

/// Problems with `value` as a container environment variable name (the
/// strict rule, used while the relaxed-validation feature is off).
pub fn env_var_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !ENV_VAR_NAME_RE.is_match(value) {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

/// Problems with `value` as an environment variable name under the relaxed
/// rule (any printable ASCII except '=').
pub fn relaxed_env_var_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push(format!("environment variable name {}", empty_error()));
    }
    if value.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(RELAXED_ENV_VAR_NAME_ERR.to_string());
    }
    errs
}

/// Problems with `value` as a ConfigMap or Secret data key.
pub fn config_map_key_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !CONFIG_MAP_KEY_RE.is_match(value) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(chdir_prefix_errors(value));
    errs
}

/// Problems with `value` as an IANA service name (a named container or
/// Service port): at most 15 characters of `[-a-z0-9]`, at least one letter,
/// no `--`, no leading or trailing `-`.
pub fn port_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > IANA_SVC_NAME_MAX_LENGTH {
        errs.push(max_len_error(IANA_SVC_NAME_MAX_LENGTH));
    }
    let charset_ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit());
    if !charset_ok {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if value.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if value.starts_with('-') || value.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// Problems with `name` as one segment of a REST path (every object name is
/// checked against this in addition to its kind's own rule).
pub fn path_segment_name_errors(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    path_segment_prefix_errors(name)
}

/// Like [`path_segment_name_errors`] for a `generateName` prefix, where `.`
/// alone is fine because a suffix follows.
pub fn path_segment_prefix_errors(prefix: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|bad| prefix.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

fn to_result(rule: &'static str, value: &str, messages: Vec<String>) -> Result<(), NameError> {
    if messages.is_empty() {
        Ok(())
    } else {
        Err(NameError {
            rule,
            value: value.to_string(),
            messages,
        })
    }
}

/// [`dns1123_subdomain_errors`] as a `Result`.
pub fn validate_dns1123_subdomain(value: &str) -> Result<(), NameError> {
    to_result("DNS-1123 subdomain", value, dns1123_subdomain_errors(value))
}

/// [`dns1123_label_errors`] as a `Result`.
pub fn validate_dns1123_label(value: &str) -> Result<(), NameError> {
    to_result("DNS-1123 label", value, dns1123_label_errors(value))
}

/// [`dns1035_label_errors`] as a `Result`.
pub fn validate_dns1035_label(value: &str) -> Result<(), NameError> {
    to_result("DNS-1035 label", value, dns1035_label_errors(value))
}

/// [`c_identifier_errors`] as a `Result`.
pub fn validate_c_identifier(value: &str) -> Result<(), NameError> {
    to_result("C identifier", value, c_identifier_errors(value))
}

/// [`env_var_name_errors`] as a `Result`.
pub fn validate_env_var_name(value: &str) -> Result<(), NameError> {
    to_result(
        "environment variable name",
        value,
        env_var_name_errors(value),
    )
}

/// [`config_map_key_errors`] as a `Result`.
pub fn validate_config_map_key(value: &str) -> Result<(), NameError> {
    to_result("config key", value, config_map_key_errors(value))
}

/// [`port_name_errors`] as a `Result`.
pub fn validate_port_name(value: &str) -> Result<(), NameError> {
    to_result("port name", value, port_name_errors(value))
}

/// A name for an object created with `metadata.generateName`: the prefix
/// (cut so the result fits a DNS label) plus five random characters.
pub fn generate_name(prefix: &str) -> String {
    let max_prefix = DNS1123_LABEL_MAX_LENGTH - GENERATE_NAME_RANDOM_LENGTH;
    let mut cut = prefix.len().min(max_prefix);
    // Never split a multi-byte character; such a prefix is invalid anyway,
    // and validation will say so with the whole name.
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut name = String::with_capacity(cut + GENERATE_NAME_RANDOM_LENGTH);
    name.push_str(&prefix[..cut]);
    let mut rng = rand::rng();
    for _ in 0..GENERATE_NAME_RANDOM_LENGTH {
        let idx = rng.random_range(0..GENERATE_NAME_ALPHABET.len());
        name.push(char::from(GENERATE_NAME_ALPHABET[idx]));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain() {
        assert!(dns1123_subdomain_errors("example.com").is_empty());
        assert!(dns1123_subdomain_errors("a").is_empty());
        assert!(dns1123_subdomain_errors("0-a.b-1").is_empty());
        assert_eq!(
            dns1123_subdomain_errors("Example"),
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        assert_eq!(dns1123_subdomain_errors("a-").len(), 1);
        assert_eq!(dns1123_subdomain_errors("a..b").len(), 1);
        assert_eq!(dns1123_subdomain_errors("").len(), 1);
        let long = "a".repeat(254);
        assert_eq!(
            dns1123_subdomain_errors(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
        assert!(dns1123_subdomain_errors(&"a".repeat(253)).is_empty());
    }

    #[test]
    fn label() {
        assert!(dns1123_label_errors("my-name").is_empty());
        assert!(dns1123_label_errors("123-abc").is_empty());
        assert_eq!(
            dns1123_label_errors("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert_eq!(
            dns1123_label_errors("-a"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            dns1123_label_errors(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn dns1035() {
        assert!(dns1035_label_errors("my-svc").is_empty());
        assert_eq!(
            dns1035_label_errors("1svc"),
            vec![
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(dns1035_label_errors("a.b").len(), 1);
    }

    #[test]
    fn identifiers() {
        assert!(c_identifier_errors("_a1").is_empty());
        assert_eq!(
            c_identifier_errors("1a"),
            vec![
                "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')"
            ]
        );
        assert!(env_var_name_errors("my.env-name").is_empty());
        assert!(env_var_name_errors("MY_ENV.NAME").is_empty());
        assert_eq!(
            env_var_name_errors("1X"),
            vec![
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
            ]
        );
        assert_eq!(env_var_name_errors(".."), vec!["must not be '..'"]);
        assert_eq!(env_var_name_errors("..x"), vec!["must not start with '..'"]);
        assert!(relaxed_env_var_name_errors("1 x").is_empty());
        assert_eq!(relaxed_env_var_name_errors("a=b").len(), 1);
        assert_eq!(
            relaxed_env_var_name_errors(""),
            vec!["environment variable name must be non-empty"]
        );
        assert!(config_map_key_errors("key.name").is_empty());
        assert_eq!(config_map_key_errors("a/b").len(), 1);
        assert_eq!(config_map_key_errors("."), vec!["must not be '.'"]);
    }

    #[test]
    fn port_names() {
        assert!(port_name_errors("http").is_empty());
        assert!(port_name_errors("h2c-80").is_empty());
        assert_eq!(
            port_name_errors("80"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name_errors("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(
            port_name_errors("-ab"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(
            port_name_errors("HTTP"),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)"
            ]
        );
        assert_eq!(
            port_name_errors("abcdefghijklmnop"),
            vec!["must be no more than 15 characters"]
        );
        assert!(validate_port_name("").is_err());
    }

    #[test]
    fn path_segments() {
        assert_eq!(path_segment_name_errors(".."), vec!["may not be '..'"]);
        assert_eq!(
            path_segment_name_errors("a/b%c"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert!(path_segment_name_errors("ok").is_empty());
        assert!(path_segment_prefix_errors(".").is_empty());
    }

    #[test]
    fn result_wrappers_name_the_value() {
        let err = validate_dns1123_subdomain("Bad_Name").unwrap_err();
        assert_eq!(err.value, "Bad_Name");
        assert!(err.to_string().contains("\"Bad_Name\""));
        assert!(validate_dns1123_label("ok").is_ok());
        assert!(validate_dns1035_label("ok").is_ok());
        assert!(validate_c_identifier("ok").is_ok());
        assert!(validate_env_var_name("ok").is_ok());
        assert!(validate_config_map_key("ok").is_ok());
    }

    #[test]
    fn generated_names() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(
            name[4..]
                .bytes()
                .all(|b| GENERATE_NAME_ALPHABET.contains(&b))
        );
        let long = generate_name(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(dns1123_label_errors(&long).is_empty());
        // Two draws colliding would be a 1-in-14-million event.
        assert_ne!(generate_name("a-"), generate_name("a-"));
    }
}
