//! isolation: which isolation mode a container gets (`--isolation`), the
//! host's default (config file, then `ISOLA_ISOLATION`, then `process`), and
//! the create-time check that an image's platform can run natively on this
//! host. It decides; it does not start anything.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The host-wide configuration file that may set the default isolation.
pub const CONFIG_FILE: &str = "/etc/isola/config.toml";
/// The environment variable consulted after the config file.
pub const ENV_VAR: &str = "ISOLA_ISOLATION";

/// How a container is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces, cgroups, capabilities on the host kernel.
    Process,
    /// A utility VM per container, with its own kernel.
    Vm,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Process => "process",
            Isolation::Vm => "vm",
        })
    }
}

/// Errors choosing an isolation mode.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    #[error("invalid isolation {value:?}{origin}: expected process, vm, hyperv or default")]
    Invalid { value: String, origin: String },
    #[error("reading {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("image platform {image} cannot run with process isolation on this {host} host (it shares the host kernel); use --isolation=vm to run it in a utility VM with its own kernel")]
    Incompatible { image: String, host: String },
    #[error("image platform {image} cannot run with process isolation on this {host} host (it shares the host kernel); VM mode could run it under an emulator, but none is installed")]
    IncompatibleWithoutEmulator {
        image: String,
        host: String,
        #[source]
        source: Box<vm::Error>,
    },
    #[error("image platform {image} cannot run in a VM on this {host} host")]
    NoEmulator {
        image: String,
        host: String,
        #[source]
        source: Box<vm::Error>,
    },
}

/// What the user asked for with `--isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationChoice {
    Explicit(Isolation),
    Default,
}

/// Parses a mode name: `process`, `vm`, `hyperv` (alias of vm); `default` only
/// where `allow_default`.
fn parse_mode(value: &str, origin: &str) -> Result<Option<Isolation>, IsolationError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "process" => Ok(Some(Isolation::Process)),
        "vm" | "hyperv" => Ok(Some(Isolation::Vm)),
        "default" | "" => Ok(None),
        _ => Err(IsolationError::Invalid {
            value: value.into(),
            origin: origin.into(),
        }),
    }
}

impl std::str::FromStr for IsolationChoice {
    type Err = IsolationError;
    fn from_str(value: &str) -> Result<Self, IsolationError> {
        Ok(match parse_mode(value, "")? {
            Some(m) => IsolationChoice::Explicit(m),
            None => IsolationChoice::Default,
        })
    }
}

/// Where the default isolation came from, for `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DefaultSource {
    ConfigFile(PathBuf),
    Environment,
    BuiltIn,
}

impl fmt::Display for DefaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultSource::ConfigFile(p) => {
                write!(f, "set by default_isolation in {}", p.display())
            }
            DefaultSource::Environment => write!(f, "set by the environment variable {ENV_VAR}"),
            DefaultSource::BuiltIn => {
                f.write_str("built-in default (no config file entry, no environment variable)")
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct HostConfig {
    default_isolation: Option<String>,
}

/// The default isolation and why: the config file's `default_isolation`,
/// then the environment variable, then `process`.
pub fn default_isolation(
    config_file: &Path,
    env: Option<&str>,
) -> Result<(Isolation, DefaultSource), IsolationError> {
    match std::fs::read_to_string(config_file) {
        Ok(text) => {
            let cfg: HostConfig =
                toml::from_str(&text).map_err(|source| IsolationError::ParseConfig {
                    path: config_file.into(),
                    source,
                })?;
            if let Some(v) = cfg.default_isolation {
                let origin = format!(" (default_isolation in {})", config_file.display());
                if let Some(m) = parse_mode(&v, &origin)? {
                    return Ok((m, DefaultSource::ConfigFile(config_file.into())));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(IsolationError::ReadConfig {
                path: config_file.into(),
                source,
            })
        }
    }
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        if let Some(m) = parse_mode(v, &format!(" (from {ENV_VAR})"))? {
            return Ok((m, DefaultSource::Environment));
        }
    }
    Ok((Isolation::Process, DefaultSource::BuiltIn))
}

/// The host's default isolation from the real config file and environment.
pub fn host_default() -> Result<(Isolation, DefaultSource), IsolationError> {
    let env = std::env::var(ENV_VAR).ok();
    default_isolation(Path::new(CONFIG_FILE), env.as_deref())
}

/// Resolves a choice to a mode.
pub fn resolve(choice: IsolationChoice) -> Result<Isolation, IsolationError> {
    match choice {
        IsolationChoice::Explicit(m) => Ok(m),
        IsolationChoice::Default => host_default().map(|(m, _)| m),
    }
}

/// The host's platform in OCI terms: (os, architecture, variant).
pub fn host_platform() -> (String, String, Option<String>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    let variant = (arch == "arm64").then(|| "v8".to_string());
    (std::env::consts::OS.into(), arch.into(), variant)
}

/// `os/arch[/variant]`, as OCI and `--platform` spell a platform.
pub fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

/// Refuses an image whose platform the host cannot run: in process mode
/// any foreign one (it shares the host's kernel); in VM mode a Linux image
/// of another architecture runs under its user-mode emulator inside the
/// VM ([`vm::emulator`]), so only one without an emulator, or not Linux.
pub fn check_platform(
    mode: Isolation,
    image: (&str, &str, Option<&str>),
) -> Result<(), IsolationError> {
    let (host_os, host_arch, host_variant) = host_platform();
    let (os, arch, variant) = image;
    // An image that names no os/arch (some hand-made ones) is taken as native.
    let os_ok = os.is_empty() || os == host_os;
    let arch_ok = arch.is_empty() || arch == host_arch;
    // arm64 images without a variant, or with v8, run on any arm64 host.
    let variant_ok = match (variant, host_variant.as_deref()) {
        (None, _) | (Some(""), _) => true,
        (Some(v), Some(h)) => v == h,
        (Some(_), None) => false,
    };
    if os_ok && arch_ok && variant_ok {
        return Ok(());
    }
    let image_platform = platform_string(os, arch, variant);
    let host = platform_string(&host_os, &host_arch, host_variant.as_deref());
    // Another variant of the host's architecture is not emulated.
    let emulator = match (os_ok, arch_ok) {
        (true, false) => Some(vm::emulator::Emulator::find(arch)),
        _ => None,
    };
    match (mode, emulator) {
        (Isolation::Vm, Some(Ok(_))) => Ok(()),
        (Isolation::Vm, Some(Err(source))) => Err(IsolationError::NoEmulator {
            image: image_platform,
            host,
            source: Box::new(source),
        }),
        (Isolation::Process, Some(Err(source))) => {
            Err(IsolationError::IncompatibleWithoutEmulator {
                image: image_platform,
                host,
                source: Box::new(source),
            })
        }
        (Isolation::Vm, None) if os_ok => Ok(()),
        (Isolation::Vm, None) => Err(IsolationError::NoEmulator {
            image: image_platform.clone(),
            host,
            source: Box::new(vm::Error::EmulatorMissing {
                arch: image_platform,
                package: vm::emulator::PACKAGE,
            }),
        }),
        (Isolation::Process, _) => Err(IsolationError::Incompatible {
            image: image_platform,
            host,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!(
            "hyperv".parse::<IsolationChoice>().unwrap(),
            IsolationChoice::Explicit(Isolation::Vm)
        );
        assert_eq!(
            "default".parse::<IsolationChoice>().unwrap(),
            IsolationChoice::Default
        );
        let e = "foo".parse::<IsolationChoice>().unwrap_err().to_string();
        assert!(e.contains("\"foo\"") && e.contains("process, vm"), "{e}");
    }

    #[test]
    fn default_chain_file_then_env_then_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        assert_eq!(
            default_isolation(&file, None).unwrap(),
            (Isolation::Process, DefaultSource::BuiltIn)
        );
        assert_eq!(
            default_isolation(&file, Some("vm")).unwrap(),
            (Isolation::Vm, DefaultSource::Environment)
        );
        std::fs::write(&file, "default_isolation = \"process\"\n").unwrap();
        assert_eq!(
            default_isolation(&file, Some("vm")).unwrap(),
            (Isolation::Process, DefaultSource::ConfigFile(file.clone()))
        );
        std::fs::write(&file, "default_isolation = \"bogus\"\n").unwrap();
        let e = default_isolation(&file, None).unwrap_err().to_string();
        assert!(e.contains("config.toml"), "{e}");
        assert!(default_isolation(&dir.path().join("none"), Some("x")).is_err());
    }

    #[test]
    fn foreign_platform_refused_in_process_mode_only() {
        let (os, arch, _) = host_platform();
        check_platform(Isolation::Process, (&os, &arch, None)).unwrap();
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        let e = check_platform(Isolation::Process, ("linux", other, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(other) && e.contains(&arch) && e.contains("--isolation=vm"),
            "{e}"
        );
        // VM mode runs it where its emulator is found.
        let vm = check_platform(Isolation::Vm, ("linux", other, None));
        assert_eq!(
            vm.is_ok(),
            vm::emulator::Emulator::find(other).is_ok(),
            "{vm:?}"
        );
        assert!(check_platform(Isolation::Process, ("windows", &arch, None)).is_err());
    }
}
