//! cni: running a network's plugin chain per the CNI specification
//! (1.0.0): ADD in order, each plugin given the previous one's result,
//! DEL in reverse order with the cached result of the ADD. The plugin's
//! parameters go to the plugin process alone (`CNI_*` in its environment,
//! the configuration on its stdin), never into isola's own environment.
//!
//! Why by hand: the protocol is an exec with environment variables and two
//! JSON documents, and the Rust CNI crates are plugin-side libraries or
//! unmaintained; the plugins themselves are the well-kept reference ones.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Error, PortMapping};

/// Where the plugins are and where results are cached.
#[derive(Debug, Clone)]
pub struct Cni {
    /// The plugins' directory (Debian: /usr/lib/cni).
    pub plugin_dir: PathBuf,
    /// Results of ADD, kept for DEL.
    pub cache_dir: PathBuf,
}

/// What one container asks of a network.
#[derive(Debug, Clone)]
pub struct AttachRequest<'a> {
    pub container_id: &'a str,
    /// The container's network namespace (a bind-mounted file).
    pub netns: &'a Path,
    /// The interface inside it (eth0, eth1, ...).
    pub ifname: &'a str,
    pub ports: &'a [PortMapping],
    /// A fixed address (`--ip`); `None` lets host-local pick one.
    pub ip: Option<Ipv4Addr>,
    /// A fixed MAC address (`--mac-address`).
    pub mac: Option<&'a str>,
}

/// What the chain gave the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attachment {
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
}

/// The default plugin directory of Debian's containernetworking-plugins.
pub const DEBIAN_PLUGIN_DIR: &str = "/usr/lib/cni";

impl Cni {
    pub fn new(plugin_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Cni {
        Cni {
            plugin_dir: plugin_dir.into(),
            cache_dir: cache_dir.into(),
        }
    }

    /// Every plugin of `conflist` is installed (checked before anything is
    /// made, so a missing one fails cleanly).
    pub fn check_plugins(&self, conflist: &Value) -> Result<(), Error> {
        for plugin in plugins(conflist) {
            self.plugin_path(plugin)?;
        }
        Ok(())
    }

    fn plugin_path(&self, plugin: &Value) -> Result<PathBuf, Error> {
        let kind = plugin["type"].as_str().unwrap_or_default();
        let path = self.plugin_dir.join(kind);
        if kind.is_empty() || kind.contains('/') || !path.is_file() {
            return Err(Error::PluginMissing {
                plugin: kind.to_string(),
                dir: self.plugin_dir.clone(),
            });
        }
        Ok(path)
    }

    /// Whether an ADD for `container_id` left a cached result (on any
    /// network): then something may need a DEL.
    pub fn holds_results(&self, container_id: &str) -> bool {
        let marker = format!("-{container_id}-");
        std::fs::read_dir(&self.cache_dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(&marker))
            })
            .unwrap_or(false)
    }

    fn cache_file(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cache_dir
            .join(format!("{network}-{container_id}-{ifname}.json"))
    }

    /// Runs ADD through the chain. If a plugin fails, what the earlier ones
    /// made is deleted again before the error returns.
    pub fn add(&self, conflist: &Value, req: &AttachRequest<'_>) -> Result<Attachment, Error> {
        self.check_plugins(conflist)?;
        let network = conflist["name"].as_str().unwrap_or_default();
        let mut runtime_config = json!({
            "portMappings": req.ports.iter().map(PortMapping::to_cni).collect::<Vec<_>>(),
        });
        if let Some(ip) = req.ip {
            runtime_config["ips"] = json!([ip.to_string()]);
        }
        if let Some(mac) = req.mac {
            runtime_config["mac"] = json!(mac);
        }
        let mut prev: Option<Value> = None;
        for plugin in plugins(conflist) {
            let config = plugin_config(conflist, plugin, &runtime_config, prev.as_ref());
            match self.exec(
                plugin,
                "ADD",
                &config,
                req.container_id,
                Some(req.netns),
                req.ifname,
                network,
            ) {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    self.save(
                        network,
                        req.container_id,
                        req.ifname,
                        prev.as_ref(),
                        &runtime_config,
                    );
                    let _ = self.del(conflist, req.container_id, Some(req.netns), req.ifname);
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        self.save(
            network,
            req.container_id,
            req.ifname,
            Some(&result),
            &runtime_config,
        );
        attachment(&result, req.ifname).ok_or_else(|| Error::BadResult {
            plugin: plugins(conflist)
                .last()
                .and_then(|p| p["type"].as_str())
                .unwrap_or_default()
                .to_string(),
            reason: format!("no IPv4 address for {} in {result}", req.ifname),
        })
    }

    /// Keeps what DEL must be given: the result so far and the runtime
    /// configuration (portmap's DEL does nothing without the mappings).
    fn save(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        result: Option<&Value>,
        runtime_config: &Value,
    ) {
        let path = self.cache_file(network, container_id, ifname);
        let entry = json!({"result": result, "runtimeConfig": runtime_config});
        if let Err(e) = std::fs::create_dir_all(&self.cache_dir)
            .and_then(|()| std::fs::write(&path, entry.to_string()))
        {
            tracing::warn!(path = %path.display(), error = %e, "caching a CNI result");
        }
    }

    /// Runs DEL through the chain in reverse, each plugin given the cached
    /// ADD result; every plugin runs even when one fails (the first error
    /// is returned). `netns` may be gone already (after a reboot): plugins
    /// then release what lives outside it (addresses, rules, host veths).
    pub fn del(
        &self,
        conflist: &Value,
        container_id: &str,
        netns: Option<&Path>,
        ifname: &str,
    ) -> Result<(), Error> {
        self.check_plugins(conflist)?;
        let network = conflist["name"].as_str().unwrap_or_default();
        let cache = self.cache_file(network, container_id, ifname);
        let cached: Value = std::fs::read(&cache)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or(Value::Null);
        let prev = Some(cached["result"].clone()).filter(|r| !r.is_null());
        let runtime_config = cached["runtimeConfig"].clone();
        let mut first_error = None;
        for plugin in plugins(conflist).iter().rev() {
            let config = plugin_config(conflist, plugin, &runtime_config, prev.as_ref());
            if let Err(e) = self.exec(plugin, "DEL", &config, container_id, netns, ifname, network)
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                let _ = std::fs::remove_file(&cache);
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        plugin: &Value,
        command: &'static str,
        config: &Value,
        container_id: &str,
        netns: Option<&Path>,
        ifname: &str,
        network: &str,
    ) -> Result<Value, Error> {
        let path = self.plugin_path(plugin)?;
        let name = plugin["type"].as_str().unwrap_or_default().to_string();
        let netns = netns.filter(|p| p.exists());
        let mut child = Command::new(&path)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns.map(Path::as_os_str).unwrap_or_default())
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.plugin_dir)
            .env("CNI_ARGS", "")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::PluginSpawn {
                plugin: name.clone(),
                source,
            })?;
        let input = config.to_string();
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| Error::PluginSpawn {
                plugin: name.clone(),
                source,
            })?;
        tracing::debug!(plugin = %name, command, status = ?out.status, "CNI plugin");
        if !out.status.success() {
            return Err(Error::Plugin {
                plugin: name,
                command,
                network: network.to_string(),
                message: plugin_message(&out.stdout, &out.stderr),
            });
        }
        if command == "DEL" || out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(config.get("prevResult").cloned().unwrap_or(Value::Null));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| Error::BadResult {
            plugin: name,
            reason: e.to_string(),
        })
    }
}

fn plugins(conflist: &Value) -> Vec<&Value> {
    conflist["plugins"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// One plugin's stdin: its own object with the list's name and version,
/// the runtimeConfig keys it declared capabilities for, and the previous
/// result.
fn plugin_config(
    conflist: &Value,
    plugin: &Value,
    runtime_config: &Value,
    prev: Option<&Value>,
) -> Value {
    let mut config = plugin.clone();
    config["cniVersion"] = conflist["cniVersion"].clone();
    config["name"] = conflist["name"].clone();
    let mut wanted = serde_json::Map::new();
    if let Some(caps) = plugin["capabilities"].as_object() {
        for (cap, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = runtime_config.get(cap) {
                    wanted.insert(cap.clone(), v.clone());
                }
            }
        }
    }
    if !wanted.is_empty() {
        config["runtimeConfig"] = Value::Object(wanted);
    }
    if let Some(prev) = prev.filter(|p| !p.is_null()) {
        config["prevResult"] = prev.clone();
    }
    config
}

/// The error a plugin printed: its JSON `msg` and `details`, or its stderr.
fn plugin_message(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        let msg = v["msg"].as_str().unwrap_or_default();
        let details = v["details"].as_str().unwrap_or_default();
        if !msg.is_empty() {
            return if details.is_empty() {
                msg.to_string()
            } else {
                format!("{msg}: {details}")
            };
        }
    }
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if line.is_empty() {
        "failed without saying why".to_string()
    } else {
        line.trim().to_string()
    }
}

/// The container-side address of `ifname` in a CNI result.
fn attachment(result: &Value, ifname: &str) -> Option<Attachment> {
    let interfaces = result["interfaces"].as_array()?;
    let index = interfaces
        .iter()
        .position(|i| i["name"] == ifname && i.get("sandbox").is_some_and(|s| !s.is_null()))?;
    let mac = interfaces[index]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ip = result["ips"].as_array()?.iter().find(|ip| {
        ip["interface"].as_u64() == Some(index as u64)
            && ip["address"].as_str().is_some_and(|a| !a.contains(':'))
    })?;
    let net: ipnet::Ipv4Net = ip["address"].as_str()?.parse().ok()?;
    Some(Attachment {
        ifname: ifname.to_string(),
        ip: net.addr(),
        prefix_len: net.prefix_len(),
        gateway: ip["gateway"].as_str().and_then(|g| g.parse().ok()),
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_goes_only_to_plugins_that_declare_it() {
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "bridge", "capabilities": {"ips": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
        ]});
        let rc = json!({"portMappings": [{"hostPort": 1}], "ips": ["10.0.0.5"]});
        let p = plugins(&list);
        let bridge = plugin_config(&list, p[0], &rc, None);
        assert_eq!(bridge["runtimeConfig"], json!({"ips": ["10.0.0.5"]}));
        assert_eq!(bridge["name"], "n");
        let prev = json!({"ips": []});
        let portmap = plugin_config(&list, p[1], &rc, Some(&prev));
        assert_eq!(portmap["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert_eq!(portmap["prevResult"], prev);
        assert!(plugin_config(&list, p[2], &rc, None)
            .get("runtimeConfig")
            .is_none());
    }

    #[test]
    fn the_containers_address_is_read_from_a_result() {
        let result = json!({
            "interfaces": [{"name": "isola0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                           {"name": "eth0", "mac": "02:42:0a:d2:00:05", "sandbox": "/x"}],
            "ips": [{"address": "10.210.0.5/16", "gateway": "10.210.0.1", "interface": 2}]
        });
        let a = attachment(&result, "eth0").unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 210, 0, 5));
        assert_eq!(a.prefix_len, 16);
        assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 210, 0, 1)));
        assert_eq!(a.mac, "02:42:0a:d2:00:05");
        assert!(attachment(&result, "eth1").is_none());
    }

    #[test]
    fn plugin_errors_read_as_one_line() {
        let out = br#"{"code": 7, "msg": "failed to allocate", "details": "range is full"}"#;
        assert_eq!(
            plugin_message(out, b""),
            "failed to allocate: range is full"
        );
        assert_eq!(plugin_message(b"", b"warn\nreal reason\n"), "real reason");
    }
}
