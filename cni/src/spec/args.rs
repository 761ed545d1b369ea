use super::{Error, ErrorCode};

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by ';'. Keys a plugin does not know are an
/// error unless `IgnoreUnknown` is true, as in the reference plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// Keys every Kubernetes runtime sets; every plugin accepts them.
const WELL_KNOWN: &[&str] = &[
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    pub fn parse(raw: &str) -> Result<CniArgs, Error> {
        let mut pairs = Vec::new();
        for item in raw.split(';').filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(Error::new(
                    ErrorCode::InvalidEnvironment,
                    format!("ARGS: invalid pair {item:?}"),
                ));
            };
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(CniArgs { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `CNI_ARGS` string these pairs came from, for passing on to a delegate.
    pub fn to_env(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn ignore_unknown(&self) -> bool {
        self.get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    /// Checks that every key is either well known or in `known`.
    pub fn check_known(&self, known: &[&str]) -> Result<(), Error> {
        if self.ignore_unknown() {
            return Ok(());
        }
        let unknown: Vec<&str> = self
            .pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !WELL_KNOWN.contains(k) && !known.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::InvalidEnvironment,
                format!("ARGS: unknown args {unknown:?}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let a = CniArgs::parse("K8S_POD_NAME=web;K8S_POD_NAMESPACE=default;IP=10.0.0.5").unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("web"));
        assert!(a.check_known(&["IP"]).is_ok());
        assert!(a.check_known(&[]).is_err());
        let a = CniArgs::parse("IgnoreUnknown=1;FOO=bar").unwrap();
        assert!(a.check_known(&[]).is_ok());
        assert!(CniArgs::parse("novalue").is_err());
    }
}
