use std::collections::HashMap;
use std::io::Read;

use serde_json::{Value, json};

use super::{
    CniResult, Command, Environment, Error, ErrorCode, NetConf, SUPPORTED_VERSIONS, Version,
};

/// One CNI plugin: what it does for each command. The dispatcher has already checked
/// the environment, the configuration's version and which commands that version has.
pub trait Plugin {
    /// `CNI_ARGS` keys this plugin understands, besides the Kubernetes ones.
    fn known_args(&self) -> &[&str] {
        &[]
    }
    fn add(&self, env: &Environment, conf: &NetConf) -> Result<CniResult, Error>;
    fn del(&self, env: &Environment, conf: &NetConf) -> Result<(), Error>;
    fn check(&self, env: &Environment, conf: &NetConf) -> Result<(), Error>;
    fn status(&self, env: &Environment, conf: &NetConf) -> Result<(), Error>;
    fn gc(&self, env: &Environment, conf: &NetConf) -> Result<(), Error>;
}

/// Runs `plugin` as a process: environment and stdin in, result or error on stdout,
/// exit status 0 or 1.
pub fn run(plugin: &dyn Plugin) -> ! {
    let vars: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CNI_"))
        .collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (out, code) = match read {
        Ok(_) => run_with(plugin, &vars, &stdin),
        Err(e) => (
            Error::io("failed to read stdin", e).to_json(Version::LATEST.as_str()),
            1,
        ),
    };
    if !out.is_empty() {
        println!("{out}");
    }
    std::process::exit(code)
}

/// The whole protocol as a function, so it is tested without spawning processes.
pub fn run_with(
    plugin: &dyn Plugin,
    vars: &HashMap<String, String>,
    stdin: &[u8],
) -> (String, i32) {
    let env = match Environment::from_vars(vars) {
        Ok(env) => env,
        Err(e) => return (e.to_json(version_hint(stdin)), 1),
    };
    if env.command == Command::Version {
        return (version_reply(stdin), 0);
    }
    let conf = match NetConf::parse(stdin) {
        Ok(c) => c,
        Err(e) => return (e.to_json(version_hint(stdin)), 1),
    };
    let version = conf.version;
    match dispatch(plugin, &env, &conf) {
        Ok(Some(result)) => (result.to_json(version), 0),
        Ok(None) => (String::new(), 0),
        Err(e) => {
            tracing::debug!(command = env.command.as_str(), error = %e, "plugin failed");
            (e.to_json(version.as_str()), 1)
        }
    }
}

fn dispatch(
    plugin: &dyn Plugin,
    env: &Environment,
    conf: &NetConf,
) -> Result<Option<CniResult>, Error> {
    let needs = match env.command {
        Command::Check => Some(Version::V0_4_0),
        Command::Status | Command::Gc => Some(Version::V1_1_0),
        _ => None,
    };
    if let Some(min) = needs
        && conf.version < min
    {
        return Err(Error::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "configuration version {} does not support the {} command (needs {min} or later)",
                conf.version,
                env.command.as_str()
            ),
        ));
    }
    if matches!(env.command, Command::Add | Command::Del | Command::Check) {
        env.args.check_known(plugin.known_args())?;
    }
    match env.command {
        Command::Add => plugin.add(env, conf).map(Some),
        Command::Del => plugin.del(env, conf).map(|_| None),
        Command::Check => {
            if conf.prev_result.is_none() {
                return Err(Error::config("CHECK needs prevResult in the configuration"));
            }
            plugin.check(env, conf).map(|_| None)
        }
        Command::Status => plugin.status(env, conf).map(|_| None),
        Command::Gc => plugin.gc(env, conf).map(|_| None),
        Command::Version => Ok(None),
    }
}

fn version_hint(stdin: &[u8]) -> &'static str {
    let asked = serde_json::from_slice::<Value>(stdin).ok().and_then(|v| {
        v.get("cniVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    asked
        .and_then(|v| Version::parse(&v).ok())
        .unwrap_or(Version::LATEST)
        .as_str()
}

fn version_reply(stdin: &[u8]) -> String {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| Version::LATEST.as_str().to_string());
    json!({ "cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nop;
    impl Plugin for Nop {
        fn add(&self, _: &Environment, _: &NetConf) -> Result<CniResult, Error> {
            Ok(CniResult::default())
        }
        fn del(&self, _: &Environment, _: &NetConf) -> Result<(), Error> {
            Ok(())
        }
        fn check(&self, _: &Environment, _: &NetConf) -> Result<(), Error> {
            Ok(())
        }
        fn status(&self, _: &Environment, _: &NetConf) -> Result<(), Error> {
            Err(Error::new(ErrorCode::NotAvailable, "range exhausted"))
        }
        fn gc(&self, _: &Environment, _: &NetConf) -> Result<(), Error> {
            Ok(())
        }
    }

    fn vars(cmd: &str) -> HashMap<String, String> {
        [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/x"),
            ("CNI_PATH", "/x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn version_echoes_the_input_version() {
        let (out, code) = run_with(&Nop, &vars("VERSION"), br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert!(
            v["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!("1.1.0"))
        );
    }

    #[test]
    fn commands_gated_by_version() {
        let (out, code) = run_with(
            &Nop,
            &vars("STATUS"),
            br#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#,
        );
        assert_eq!(code, 1);
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["code"], 1);
        let (out, _) = run_with(
            &Nop,
            &vars("STATUS"),
            br#"{"cniVersion":"1.1.0","name":"n","type":"t"}"#,
        );
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["code"], 50);
        let (out, _) = run_with(
            &Nop,
            &vars("CHECK"),
            br#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#,
        );
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["code"], 1);
    }

    #[test]
    fn errors_in_config_version() {
        let mut v = vars("ADD");
        v.insert("CNI_ARGS".into(), "BOGUS=1".into());
        let (out, code) = run_with(&Nop, &v, br#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#);
        assert_eq!(code, 1);
        let e: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(e["cniVersion"], "0.3.1");
        assert_eq!(e["code"], 4);
    }
}
