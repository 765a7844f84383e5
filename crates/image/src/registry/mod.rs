//! image::registry: the client side of the Docker Registry HTTP API v2 /
//! OCI distribution, on the oci-client crate. Owns pulling (`pull`),
//! pushing (`push`), credentials (`login`, `logout`, `auth`) and the transport policy (HTTPS,
//! plain HTTP for loopback and insecure registries, timeouts). It writes
//! only through the store's verified `write_blob` and `commit_image`; it
//! must not touch blob files or unpack layers itself.

mod auth;
mod error;
mod fetch;
pub mod platform;
mod pull;
mod push;
mod transport;

pub use auth::{docker_config_path, verify_login, AuthStore, Credentials, AUTH_FILE};
pub use error::RegistryError;
pub use platform::{normalize_arch, Platform};
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};
pub use transport::{
    is_loopback, normalize_server, Transport, DEFAULT_TIMEOUT, HOST_CONFIG, TIMEOUT_ENV,
};

/// `isola login`: checks `creds` against `server`, then stores them in the
/// engine root's auth file. Returns the normalized server name.
pub fn login(
    auth: &AuthStore,
    transport: &Transport,
    server: &str,
    creds: &Credentials,
) -> Result<String, RegistryError> {
    let server = normalize_server(server);
    verify_login(transport, &server, creds)?;
    auth.store(&server, creds)?;
    Ok(server)
}

/// `isola logout`: forgets the stored credentials of `server`; false if
/// there were none.
pub fn logout(auth: &AuthStore, server: &str) -> Result<bool, RegistryError> {
    auth.remove(server)
}
