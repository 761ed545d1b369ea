//! Running a network configuration list for an attachment, as libcni does: ADD in
//! order with each result as the next plugin's `prevResult`, DEL in reverse with the
//! cached result, CHECK, STATUS and GC.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};
use skiff_cni::spec::{Attachment, CniResult, Command, Version};

use super::cache::{CachedAttachment, ResultCache};
use super::exec::{Invocation, exec};
use super::runtime_conf::args_env;
use super::{CniConfig, CniError, PluginConf, RuntimeConf};

/// Long enough for a plugin waiting on a busy IPAM lock or a slow firewall
/// transaction, short enough that a hung plugin does not hold a pod forever.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// A node's network: its configuration, where results are cached, and how long one
/// plugin may run.
#[derive(Debug, Clone)]
pub struct Cni {
    config: CniConfig,
    cache: ResultCache,
    exec_timeout: Duration,
}

impl Cni {
    /// `cache_dir` is libcni's cache directory (`/var/lib/cni` on most nodes).
    pub fn new(config: CniConfig, cache_dir: &Path) -> Cni {
        Cni {
            config,
            cache: ResultCache::new(cache_dir),
            exec_timeout: DEFAULT_EXEC_TIMEOUT,
        }
    }

    pub fn with_exec_timeout(mut self, timeout: Duration) -> Cni {
        self.exec_timeout = timeout;
        self
    }

    pub fn config(&self) -> &CniConfig {
        &self.config
    }

    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// ADD through the whole list. The attachment is recorded in the cache before
    /// the first plugin runs, so a crash half-way still leaves DEL and GC what they
    /// need. When a plugin fails, the list is deleted again (in reverse, without a
    /// prevResult) so the failure leaves nothing behind; should that clean-up fail
    /// too, the cache entry stays for a later DEL or GC.
    pub async fn add(&self, rt: &RuntimeConf) -> Result<CniResult, CniError> {
        rt.validate()?;
        let mut entry = self.cache_entry(rt);
        self.cache.put(&entry)?;
        let mut prev: Option<Value> = None;
        for plugin in self.config.plugins() {
            let conf = plugin_config(&self.config, plugin, prev.as_ref(), &rt.capability_args)?;
            let step = self
                .run(Command::Add, plugin, Some(rt), &conf)
                .await
                .and_then(|out| parse_result(plugin, &out));
            match step {
                Ok(value) => prev = Some(value),
                Err(e) => {
                    self.roll_back(rt).await;
                    return Err(e);
                }
            }
        }
        let Some(value) = prev else {
            return Err(CniError::InvalidConfig {
                path: self.config.source().to_path_buf(),
                reason: "no plugins".into(),
            });
        };
        let result = match CniResult::from_value(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                self.roll_back(rt).await;
                let plugin = self.config.plugins().last().map(|p| p.plugin_type.clone());
                return Err(CniError::BadResult {
                    plugin: plugin.unwrap_or_default(),
                    command: Command::Add.as_str(),
                    reason: e.to_string(),
                });
            }
        };
        entry.result = Some(value);
        self.cache.put(&entry)?;
        Ok(result)
    }

    async fn roll_back(&self, rt: &RuntimeConf) {
        if let Err(e) = self.del(rt).await {
            tracing::warn!(
                container_id = %rt.container_id,
                error = %e,
                "could not undo a failed CNI ADD; the cached attachment is kept for GC"
            );
        }
    }

    /// DEL through the list in reverse. Uses the configuration and result cached by
    /// the ADD when there is one (on any network name), so it works after the node's
    /// configuration changed, after a restart, and when the netns is gone. Stops at
    /// the first failing plugin, keeping the cache entry so DEL can be retried.
    pub async fn del(&self, rt: &RuntimeConf) -> Result<(), CniError> {
        rt.validate()?;
        let cached = match self
            .cache
            .get(self.config.name(), &rt.container_id, &rt.ifname)?
        {
            Some(c) => Some(c),
            None => self.cache.find(&rt.container_id, &rt.ifname)?,
        };
        let (config, prev, rt) = match &cached {
            Some(c) => self.as_cached(c, rt),
            None => (self.config.clone(), None, rt.clone()),
        };
        // The spec gives DEL a prevResult from 0.4.0 on.
        let prev = prev.filter(|_| config.version() >= Version::V0_4_0);
        for plugin in config.plugins().iter().rev() {
            let conf = plugin_config(&config, plugin, prev.as_ref(), &rt.capability_args)?;
            self.run(Command::Del, plugin, Some(&rt), &conf).await?;
        }
        self.cache
            .remove(config.name(), &rt.container_id, &rt.ifname)?;
        if let Some(c) = &cached {
            self.cache.remove(&c.network, &c.container_id, &c.ifname)?;
        }
        Ok(())
    }

    /// The configuration, result and capability arguments an ADD ran with, falling
    /// back to the current ones for what the entry lacks or no longer parses.
    fn as_cached(
        &self,
        cached: &CachedAttachment,
        rt: &RuntimeConf,
    ) -> (CniConfig, Option<Value>, RuntimeConf) {
        let config = if cached.config.is_empty() || cached.config == self.config.bytes() {
            self.config.clone()
        } else {
            match CniConfig::from_list_bytes(
                &cached.config,
                &PathBuf::from(format!("cached configuration of {}", cached.network)),
                self.config.bin_dirs(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cached CNI configuration unusable; deleting with the current one");
                    self.config.clone()
                }
            }
        };
        let mut rt = rt.clone();
        if rt.capability_args.is_empty() {
            rt.capability_args = cached.capability_args.clone();
        }
        (config, cached.result.clone(), rt)
    }

    /// CHECK through the list with the cached result (spec 0.4.0 and later).
    pub async fn check(&self, rt: &RuntimeConf) -> Result<(), CniError> {
        rt.validate()?;
        if self.config.version() < Version::V0_4_0 {
            return Err(self.unsupported("CHECK"));
        }
        if self.config.disable_check() {
            return Ok(());
        }
        let prev = self
            .cache
            .get(self.config.name(), &rt.container_id, &rt.ifname)?
            .and_then(|c| c.result)
            .ok_or_else(|| CniError::NotCached {
                network: self.config.name().into(),
                container_id: rt.container_id.clone(),
                ifname: rt.ifname.clone(),
            })?;
        for plugin in self.config.plugins() {
            let conf = plugin_config(&self.config, plugin, Some(&prev), &rt.capability_args)?;
            self.run(Command::Check, plugin, Some(rt), &conf).await?;
        }
        Ok(())
    }

    /// Whether the network is ready for ADDs. Lists older than 1.1.0 have no STATUS
    /// and count as ready.
    pub async fn status(&self) -> Result<(), CniError> {
        if self.config.version() < Version::V1_1_0 {
            return Ok(());
        }
        for plugin in self.config.plugins() {
            let conf = plugin_config(&self.config, plugin, None, &Map::new())?;
            self.run(Command::Status, plugin, None, &conf).await?;
        }
        Ok(())
    }

    /// Removes what belongs to attachments not in `valid`: first a DEL of every
    /// cached attachment of this network that is not valid (any version, as libcni),
    /// then, for 1.1.0 lists, the GC command so plugins sweep what no cache knows.
    pub async fn gc(&self, valid: &[Attachment]) -> Result<(), CniError> {
        if self.config.disable_gc() {
            return Ok(());
        }
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        let mut errors = Vec::new();
        for cached in self.cache.list()? {
            if cached.network != self.config.name()
                || keep.contains(&(cached.container_id.as_str(), cached.ifname.as_str()))
            {
                continue;
            }
            let mut rt = RuntimeConf::new(&cached.container_id, &cached.netns, &cached.ifname);
            rt.args = cached
                .cni_args
                .iter()
                .map(|[k, v]| (k.clone(), v.clone()))
                .collect();
            tracing::info!(container_id = %rt.container_id, ifname = %rt.ifname, "deleting stale CNI attachment");
            if let Err(e) = self.del(&rt).await {
                errors.push(e);
            }
        }
        if self.config.version() >= Version::V1_1_0 {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
                .collect();
            for plugin in self.config.plugins() {
                let mut conf = base_config(&self.config, plugin);
                conf.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(attachments.clone()),
                );
                // libcni also sends the key under the name an earlier spec draft used.
                conf.insert(
                    "cni.dev/attachments".into(),
                    Value::Array(attachments.clone()),
                );
                let bytes = encode(&self.config, conf)?;
                if let Err(e) = self.run(Command::Gc, plugin, None, &bytes).await {
                    errors.push(e);
                }
            }
        }
        CniError::collect(errors).map_or(Ok(()), Err)
    }

    /// Whether an attachment of `container_id`/`ifname` is cached (on any network).
    pub fn has_attachment(&self, container_id: &str, ifname: &str) -> Result<bool, CniError> {
        Ok(self.cache.find(container_id, ifname)?.is_some())
    }

    fn cache_entry(&self, rt: &RuntimeConf) -> CachedAttachment {
        let mut entry = CachedAttachment::new(
            self.config.name(),
            self.config.bytes(),
            &rt.container_id,
            &rt.ifname,
            &rt.netns,
        );
        entry.cni_args = rt.cni_args();
        entry.capability_args = rt.capability_args.clone();
        entry
    }

    fn unsupported(&self, command: &'static str) -> CniError {
        CniError::Unsupported {
            network: self.config.name().into(),
            version: self.config.version().to_string(),
            command,
        }
    }

    async fn run(
        &self,
        command: Command,
        plugin: &PluginConf,
        rt: Option<&RuntimeConf>,
        conf: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let path = std::env::join_paths(self.config.bin_dirs())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut vars: Vec<(&'static str, String)> = Vec::with_capacity(5);
        if let Some(rt) = rt {
            vars.push(("CNI_CONTAINERID", rt.container_id.clone()));
            vars.push(("CNI_NETNS", rt.netns.display().to_string()));
            vars.push(("CNI_IFNAME", rt.ifname.clone()));
            vars.push(("CNI_ARGS", args_env(&rt.cni_args())));
        }
        vars.push(("CNI_PATH", path));
        exec(Invocation {
            command,
            plugin: &plugin.plugin_type,
            binary: &plugin.binary,
            vars: &vars,
            stdin: conf,
            timeout: self.exec_timeout,
        })
        .await
    }
}

/// The plugin's own configuration with the list's name and version.
fn base_config(list: &CniConfig, plugin: &PluginConf) -> Map<String, Value> {
    let mut conf = plugin.conf.clone();
    conf.insert("name".into(), Value::String(list.name().into()));
    conf.insert(
        "cniVersion".into(),
        Value::String(list.version().as_str().into()),
    );
    conf
}

/// What one plugin of the list reads on stdin: its configuration, the list's name and
/// version, the previous result, and the capability arguments it declared.
fn plugin_config(
    list: &CniConfig,
    plugin: &PluginConf,
    prev: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Result<Vec<u8>, CniError> {
    let mut conf = base_config(list, plugin);
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime: Map<String, Value> = plugin
        .capabilities
        .iter()
        .filter_map(|cap| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect();
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    encode(list, conf)
}

fn encode(list: &CniConfig, conf: Map<String, Value>) -> Result<Vec<u8>, CniError> {
    serde_json::to_vec(&Value::Object(conf)).map_err(|e| CniError::InvalidConfig {
        path: list.source().to_path_buf(),
        reason: e.to_string(),
    })
}

fn parse_result(plugin: &PluginConf, out: &[u8]) -> Result<Value, CniError> {
    let bad = |reason: String| CniError::BadResult {
        plugin: plugin.plugin_type.clone(),
        command: Command::Add.as_str(),
        reason,
    };
    match serde_json::from_slice::<Value>(out) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad("not a JSON object".into())),
        Err(e) => Err(bad(format!(
            "{e}: {}",
            String::from_utf8_lossy(out)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}
