//! How isola talks to one registry: HTTPS or plain HTTP, timeouts, and the
//! oci-client `Client` built from them. Owns the insecure-registry policy
//! (loopback, `--insecure-registry`, `insecure_registries` in the host
//! config file); must not hold credentials (see `auth`).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::Client;

use super::error::RegistryError;

/// Host configuration file; only `insecure_registries` is read here.
pub const HOST_CONFIG: &str = "/etc/isola/config.toml";

/// Environment variable overriding the connect/read timeout, in seconds.
pub const TIMEOUT_ENV: &str = "ISOLA_REGISTRY_TIMEOUT";

/// Default connect and read timeout: long enough for a slow registry,
/// short enough that a hung one does not hang `isola pull` forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connect/read timeout: `ISOLA_REGISTRY_TIMEOUT` seconds if set and
/// valid, else [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

#[derive(Debug, Default, serde::Deserialize)]
struct HostConfig {
    #[serde(default)]
    insecure_registries: Vec<String>,
}

/// Registries listed as `insecure_registries = [...]` in `path`; an absent
/// file means none.
pub fn insecure_registries_from(path: &Path) -> Result<Vec<String>, RegistryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegistryError::ReadFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let cfg: HostConfig = toml::from_str(&text).map_err(|source| RegistryError::ParseConfig {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(cfg.insecure_registries)
}

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Registries (host[:port]) the user allows over plain HTTP.
    pub insecure: Vec<String>,
    pub timeout: Duration,
}

impl Transport {
    /// The host's policy: `extra` insecure registries (from the command
    /// line) plus those of [`HOST_CONFIG`], and the timeout from the environment.
    pub fn from_host(extra: &[String]) -> Result<Transport, RegistryError> {
        let mut insecure = insecure_registries_from(Path::new(HOST_CONFIG))?;
        insecure.extend(extra.iter().map(|r| normalize_server(r)));
        Ok(Transport {
            insecure,
            timeout: timeout_from_env(),
        })
    }

    /// Whether `registry` (host[:port]) is spoken to over plain HTTP.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    /// "http" or "https" for `registry`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if self.is_plain_http(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// An oci-client for `registry`, with our protocol choice and timeouts.
    /// Index resolution is ours (see `platform`), so the client's own
    /// platform resolver is off.
    pub fn client(&self, registry: &str) -> Client {
        let protocol = if self.is_plain_http(registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(self.timeout),
            read_timeout: Some(self.timeout),
            user_agent: concat!("isola/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        })
    }
}

/// `https://host:port/v2/` and friends → `host:port`, the form registries
/// are named by in references, auth files and the insecure list.
pub fn normalize_server(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// Whether `registry` (host[:port]) names this machine: `localhost`,
/// 127.0.0.0/8 or ::1. Traffic to these never leaves the host, so plain
/// HTTP is allowed as docker does.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        // [::1]:5000
        rest.split(']').next().unwrap_or(rest)
    } else if registry.matches(':').count() > 1 {
        // a bare IPv6 address, no port
        registry
    } else {
        registry.split(':').next().unwrap_or(registry)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_use_plain_http() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "quay.io", "localhostx:1"] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn insecure_list_allows_plain_http_for_named_registries_only() {
        let t = Transport {
            insecure: vec!["reg.lan:5000".into()],
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(t.scheme("reg.lan:5000"), "http");
        assert_eq!(t.scheme("reg.lan"), "https");
        assert_eq!(t.scheme("docker.io"), "https");
    }

    #[test]
    fn host_config_lists_insecure_registries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(insecure_registries_from(&path).unwrap().is_empty());
        std::fs::write(
            &path,
            "default_isolation = \"process\"\ninsecure_registries = [\"reg.lan:5000\"]\n",
        )
        .unwrap();
        assert_eq!(insecure_registries_from(&path).unwrap(), ["reg.lan:5000"]);
        std::fs::write(&path, "insecure_registries = 3").unwrap();
        assert!(matches!(
            insecure_registries_from(&path),
            Err(RegistryError::ParseConfig { .. })
        ));
    }

    #[test]
    fn servers_normalize_to_host_and_port() {
        assert_eq!(normalize_server("https://reg.lan:5000/v2/"), "reg.lan:5000");
        assert_eq!(normalize_server("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_server("https://index.docker.io/v1/"), "docker.io");
    }
}
