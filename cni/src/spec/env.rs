use std::collections::HashMap;

use super::{CniArgs, Error, ErrorCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, Error> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidEnvironment,
                    format!("unknown CNI_COMMAND: {other}"),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// What the runtime passes in `CNI_*` variables, validated for the command.
#[derive(Debug, Clone)]
pub struct Environment {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<String>,
}

impl Environment {
    pub fn from_process() -> Result<Environment, Error> {
        let vars: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .collect();
        Environment::from_vars(&vars)
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Environment, Error> {
        let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
        let command = match vars.get("CNI_COMMAND") {
            Some(c) => Command::parse(c)?,
            None => {
                return Err(Error::new(
                    ErrorCode::InvalidEnvironment,
                    "required env variables [CNI_COMMAND] missing",
                ));
            }
        };
        let mut missing = Vec::new();
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        if needs_container {
            if get("CNI_CONTAINERID").is_empty() {
                missing.push("CNI_CONTAINERID");
            }
            if get("CNI_IFNAME").is_empty() {
                missing.push("CNI_IFNAME");
            }
        }
        // DEL must work when the runtime has lost the namespace, so CNI_NETNS is optional there.
        if matches!(command, Command::Add | Command::Check) && get("CNI_NETNS").is_empty() {
            missing.push("CNI_NETNS");
        }
        if command != Command::Version && get("CNI_PATH").is_empty() {
            missing.push("CNI_PATH");
        }
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidEnvironment,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        let container_id = get("CNI_CONTAINERID").to_string();
        let ifname = get("CNI_IFNAME").to_string();
        if needs_container {
            validate_container_id(&container_id)?;
            validate_ifname(&ifname)?;
        }
        Ok(Environment {
            command,
            container_id,
            netns: get("CNI_NETNS").to_string(),
            ifname,
            args: CniArgs::parse(get("CNI_ARGS"))?,
            path: get("CNI_PATH")
                .split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

fn validate_container_id(id: &str) -> Result<(), Error> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(Error::new(
            ErrorCode::InvalidEnvironment,
            format!("invalid characters in containerID: {id:?}"),
        ));
    }
    Ok(())
}

/// Linux interface names: at most 15 bytes, no '/', ':' or whitespace, not "." or "..".
pub(crate) fn validate_ifname(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(Error::new(
            ErrorCode::InvalidEnvironment,
            format!("invalid interface name: {name:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_needs_netns_but_del_does_not() {
        let base = [
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let mut add = vars(&base);
        add.insert("CNI_COMMAND".into(), "ADD".into());
        let err = Environment::from_vars(&add).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidEnvironment);
        assert!(err.msg.contains("CNI_NETNS"), "{}", err.msg);
        let mut del = vars(&base);
        del.insert("CNI_COMMAND".into(), "DEL".into());
        assert!(Environment::from_vars(&del).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        let env = vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "a-name-longer-than-15"),
            ("CNI_PATH", "/x"),
        ]);
        assert_eq!(
            Environment::from_vars(&env).unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
        let env = vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "/etc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/x"),
        ]);
        assert_eq!(
            Environment::from_vars(&env).unwrap_err().code,
            ErrorCode::InvalidEnvironment
        );
    }

    #[test]
    fn version_needs_nothing_else() {
        assert!(Environment::from_vars(&vars(&[("CNI_COMMAND", "VERSION")])).is_ok());
        assert!(Environment::from_vars(&vars(&[("CNI_COMMAND", "FROB")])).is_err());
    }
}
