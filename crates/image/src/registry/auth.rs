//! Registry credentials: isola's own `<engine root>/auth.json` (written by
//! `isola login`, docker config.json format, mode 0600, replaced atomically)
//! and, read-only, a docker `config.json` (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`). Also verifies credentials against a registry
//! for `login`. Must not decide transport (see `transport`).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::transport::{normalize_server, Transport};

/// The file name of isola's credential store under the engine root.
pub const AUTH_FILE: &str = "auth.json";

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn to_registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Basic(self.username.clone(), self.password.clone())
    }
}

/// docker's config.json shape; unknown keys (credHelpers, proxies, ...)
/// are kept so rewriting the file does not lose them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::ReadFile {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| RegistryError::ParseAuth {
            path: path.to_path_buf(),
            source,
        })
}

/// The keys under which docker-style files may list `registry`.
fn candidate_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v2/"),
        format!("https://{registry}/v1/"),
    ];
    if registry == "docker.io" {
        keys.extend(
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    keys
}

fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let Some(cfg) = read_config(path)? else {
        return Ok(None);
    };
    for key in candidate_keys(registry) {
        let Some(encoded) = cfg.auths.get(&key).and_then(|e| e.auth.as_deref()) else {
            continue;
        };
        let bad = || RegistryError::BadAuthEntry {
            server: key.clone(),
            path: path.to_path_buf(),
        };
        let decoded = BASE64.decode(encoded.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    Ok(None)
}

/// The docker client's config file, if the environment names one.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// isola's credential store under one engine root.
#[derive(Debug, Clone)]
pub struct AuthStore {
    path: PathBuf,
}

impl AuthStore {
    pub fn new(engine_root: &Path) -> AuthStore {
        AuthStore {
            path: engine_root.join(AUTH_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials for `registry`: isola's own file first, then docker's.
    /// None means anonymous access.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = lookup(&self.path, registry)? {
            return Ok(Some(c));
        }
        match docker_config_path() {
            Some(p) => lookup(&p, registry),
            None => Ok(None),
        }
    }

    /// Stores credentials for `server` (replacing any), mode 0600.
    pub fn store(&self, server: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let mut cfg = read_config(&self.path)?.unwrap_or_default();
        let encoded = BASE64.encode(format!("{}:{}", creds.username, creds.password));
        let entry = cfg.auths.entry(normalize_server(server)).or_default();
        entry.auth = Some(encoded);
        self.write(&cfg)
    }

    /// Removes the credentials for `server`; false if there were none.
    pub fn remove(&self, server: &str) -> Result<bool, RegistryError> {
        let Some(mut cfg) = read_config(&self.path)? else {
            return Ok(false);
        };
        let server = normalize_server(server);
        let before = cfg.auths.len();
        cfg.auths
            .retain(|k, _| !candidate_keys(&server).contains(k));
        if cfg.auths.len() == before {
            return Ok(false);
        }
        self.write(&cfg)?;
        Ok(true)
    }

    /// Temp file (0600 from creation, so the secret is never readable by
    /// others), fsync, rename, fsync the directory: a crash leaves the old
    /// file or the new one, never half of one.
    fn write(&self, cfg: &ConfigFile) -> Result<(), RegistryError> {
        let err = |source| RegistryError::WriteAuth {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(".{AUTH_FILE}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // An old temp file left by a crash may have other bits.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            let mut bytes = serde_json::to_vec_pretty(cfg).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }
}

/// Checks `creds` against `server` the way `docker login` does: `GET /v2/`,
/// then answer its challenge (Basic directly, Bearer through the token
/// realm with the credentials). oci-client cannot do this: its `auth`
/// accepts Basic credentials without sending them, and its token fetch
/// wants a repository scope, which a login does not have.
pub fn verify_login(
    transport: &Transport,
    server: &str,
    creds: &Credentials,
) -> Result<(), RegistryError> {
    let registry = normalize_server(server);
    let host = if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry.as_str()
    };
    let url = format!("{}://{host}/v2/", transport.scheme(&registry));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)?;
    let req_err = |source| RegistryError::LoginRequest {
        registry: registry.clone(),
        source,
    };
    let rejected = |reason: String| RegistryError::LoginRejected {
        registry: registry.clone(),
        reason,
    };
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .connect_timeout(transport.timeout)
            .read_timeout(transport.timeout)
            .build()
            .map_err(req_err)?;
        let res = http.get(&url).send().await.map_err(req_err)?;
        if res.status().is_success() {
            // A registry without auth: any credentials "work"; docker accepts this too.
            return Ok(());
        }
        if res.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Err(rejected(format!("GET {url} answered {}", res.status())));
        }
        let challenge = res
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let answer = if let Some(params) = challenge.strip_prefix("Bearer ") {
            let realm = challenge_param(params, "realm")
                .ok_or_else(|| rejected(format!("bearer challenge without realm: {challenge}")))?;
            let mut query = vec![("account", creds.username.clone())];
            if let Some(service) = challenge_param(params, "service") {
                query.push(("service", service));
            }
            http.get(&realm)
                .query(&query)
                .basic_auth(&creds.username, Some(&creds.password))
                .send()
                .await
                .map_err(req_err)?
        } else {
            http.get(&url)
                .basic_auth(&creds.username, Some(&creds.password))
                .send()
                .await
                .map_err(req_err)?
        };
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(rejected(format!(
                "credentials for user {:?} rejected ({})",
                creds.username,
                answer.status()
            )))
        }
    })
}

/// One `key="value"` parameter of a WWW-Authenticate challenge.
fn challenge_param(params: &str, key: &str) -> Option<String> {
    params.split(',').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn stored_credentials_round_trip_with_mode_0600() {
        let root = tempfile::tempdir().unwrap();
        let store = AuthStore::new(root.path());
        store
            .store("http://127.0.0.1:5000/", &creds("alice", "s3:cret"))
            .unwrap();
        store.store("reg.lan", &creds("bob", "pw")).unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(store.path()).unwrap();
        // docker's format: base64 of user:password under "auth".
        assert!(text.contains(&BASE64.encode("alice:s3:cret")), "{text}");
        assert_eq!(
            lookup(store.path(), "127.0.0.1:5000").unwrap(),
            Some(creds("alice", "s3:cret"))
        );
        assert!(store.remove("127.0.0.1:5000").unwrap());
        assert!(!store.remove("127.0.0.1:5000").unwrap());
        assert_eq!(lookup(store.path(), "127.0.0.1:5000").unwrap(), None);
        assert_eq!(
            lookup(store.path(), "reg.lan").unwrap(),
            Some(creds("bob", "pw"))
        );
    }

    #[test]
    fn docker_config_keys_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = BASE64.encode("u:p");
        fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"https://reg.lan:5000":{{"auth":"{auth}"}}}},"credsStore":"x"}}"#
            ),
        )
        .unwrap();
        assert_eq!(lookup(&path, "docker.io").unwrap(), Some(creds("u", "p")));
        assert_eq!(
            lookup(&path, "reg.lan:5000").unwrap(),
            Some(creds("u", "p"))
        );
        assert_eq!(lookup(&path, "quay.io").unwrap(), None);
    }

    #[test]
    fn challenge_params_parse() {
        let p = r#"realm="https://auth.lan/token",service="registry.lan",scope="x""#;
        assert_eq!(
            challenge_param(p, "realm").unwrap(),
            "https://auth.lan/token"
        );
        assert_eq!(challenge_param(p, "service").unwrap(), "registry.lan");
        assert_eq!(challenge_param(p, "nope"), None);
    }
}
