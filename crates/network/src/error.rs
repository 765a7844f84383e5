//! The network crate's errors: each names the network, plugin, port or
//! path it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "CNI plugin {plugin:?} not found in {dir} (install Debian's containernetworking-plugins)"
    )]
    PluginMissing { plugin: String, dir: PathBuf },
    #[error("running CNI plugin {plugin}")]
    PluginSpawn {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} ({command}) on network {network}: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        network: String,
        message: String,
    },
    #[error("CNI plugin {plugin} gave a result isola cannot read: {reason}")]
    BadResult { plugin: String, reason: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} network namespace {path}")]
    Netns {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("invalid published port {spec:?}: {reason}")]
    InvalidPort { spec: String, reason: String },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("invalid subnet {value:?}: {reason}")]
    InvalidSubnet { value: String, reason: String },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
