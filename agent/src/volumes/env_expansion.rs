//! `$(VAR)` expansion for `subPathExpr`, with the container's environment as
//! far as the pod spec alone defines it: literal values (themselves expanded
//! against earlier ones), pod fields and resources. Values from ConfigMaps and
//! Secrets are not resolved here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::downward_api::{Allocatable, field_value, resource_value};

/// Kubernetes' expansion: `$(NAME)` is replaced by `lookup(NAME)` or left as
/// written when undefined, `$$` is a literal `$`, anything else is kept.
pub(crate) fn expand(input: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment as far as it can be known without the API.
pub(crate) fn container_env(
    pod: &Pod,
    container: &Container,
    allocatable: &Allocatable,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            Some(expand(value, |name| env.get(name).cloned()))
        } else if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path).ok()
            } else if let Some(resource) = &from.resource_field_ref {
                resource_value(pod, resource, Some(&container.name), allocatable).ok()
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    env
}

/// Expands a `subPathExpr`; every referenced variable must have a non-empty
/// value, else the names missing one are returned, sorted and joined.
pub(crate) fn expand_sub_path(
    expr: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut missing = std::collections::BTreeSet::new();
    let expanded = expand(expr, |name| match env.get(name) {
        Some(v) if !v.is_empty() => Some(v.clone()),
        _ => {
            missing.insert(name.to_string());
            Some(String::new())
        }
    });
    if missing.is_empty() {
        Ok(expanded)
    } else {
        Err(missing.into_iter().collect::<Vec<_>>().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_rules() {
        let vars = env(&[("A", "x"), ("B", "y")]);
        let look = |n: &str| vars.get(n).cloned();
        assert_eq!(expand("$(A)/$(B)", look), "x/y");
        assert_eq!(expand("$$(A)", look), "$(A)");
        assert_eq!(expand("$(C)-$A-$", look), "$(C)-$A-$");
        assert_eq!(expand("pre$(A", look), "pre$(A");
        assert_eq!(expand("$()", look), "$()");
    }

    #[test]
    fn sub_path_expr_reports_missing_variables() {
        let vars = env(&[("POD", "web-0"), ("EMPTY", "")]);
        assert_eq!(expand_sub_path("logs/$(POD)", &vars).unwrap(), "logs/web-0");
        assert_eq!(
            expand_sub_path("$(Z)/$(EMPTY)/$(POD)", &vars).unwrap_err(),
            "EMPTY, Z"
        );
    }
}
