//! Image config to runtime defaults: what the engine puts in the OCI
//! runtime config's `process` (args, env, cwd, user) from the image's
//! Entrypoint/Cmd/Env/WorkingDir/User, with docker's precedence for what
//! the user gave on the command line. Pure: no I/O, no engine knowledge.

use oci_spec::image::ImageConfiguration;

use crate::Error;

/// Docker's default `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user gave on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--entrypoint`; `Some(vec![])` (`--entrypoint ""`) clears the
    /// image's entrypoint. Giving one also drops the image's Cmd.
    pub entrypoint: Option<Vec<String>>,
    /// Arguments after the image name; empty means the image's Cmd.
    pub cmd: Vec<String>,
    /// `-e KEY=VALUE`, replacing the image's value of KEY.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
}

/// The values for the OCI runtime config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessDefaults {
    pub args: Vec<String>,
    /// Image env, then overrides replacing by key; `PATH` added if absent.
    pub env: Vec<String>,
    /// `/` when neither image nor user sets one.
    pub cwd: String,
    /// `""` means root.
    pub user: String,
    /// `80/tcp`, ... sorted.
    pub exposed_ports: Vec<String>,
    /// Paths, sorted.
    pub volumes: Vec<String>,
}

/// Applies docker's precedence: the user's `--entrypoint` replaces the
/// image's Entrypoint and drops its Cmd; args after the image name replace
/// Cmd; env entries replace by key; `-w` and `-u` replace WorkingDir and User.
pub fn runtime_defaults(
    config: &ImageConfiguration,
    overrides: &Overrides,
) -> Result<ProcessDefaults, Error> {
    let image = config.config().clone().unwrap_or_default();
    let (entrypoint, image_cmd) = match &overrides.entrypoint {
        Some(ep) => (ep.clone(), Vec::new()),
        None => (
            image.entrypoint().clone().unwrap_or_default(),
            image.cmd().clone().unwrap_or_default(),
        ),
    };
    let cmd = if overrides.cmd.is_empty() {
        image_cmd
    } else {
        overrides.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand);
    }

    let mut env: Vec<String> = Vec::new();
    for e in image.env().iter().flatten().chain(overrides.env.iter()) {
        let key = env_key(e);
        match env.iter_mut().find(|x| env_key(x) == key) {
            Some(slot) => *slot = e.clone(),
            None => env.push(e.clone()),
        }
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }

    let cwd = match &overrides.workdir {
        Some(w) if !w.is_empty() => {
            if !w.starts_with('/') {
                return Err(Error::RelativeWorkdir(w.clone()));
            }
            w.clone()
        }
        _ => match image.working_dir().as_deref() {
            Some(w) if !w.is_empty() => {
                // Docker resolves a relative image WorkingDir against "/".
                if w.starts_with('/') {
                    w.to_string()
                } else {
                    format!("/{w}")
                }
            }
            _ => "/".to_string(),
        },
    };
    let user = overrides
        .user
        .clone()
        .or_else(|| image.user().clone())
        .unwrap_or_default();
    let mut exposed_ports = image.exposed_ports().clone().unwrap_or_default();
    exposed_ports.sort();
    let mut volumes = image.volumes().clone().unwrap_or_default();
    volumes.sort();
    Ok(ProcessDefaults {
        args,
        env,
        cwd,
        user,
        exposed_ports,
        volumes,
    })
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> ImageConfiguration {
        let full = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": json,
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        serde_json::from_value(full).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn image_entrypoint_and_cmd_combine() {
        let c = config(serde_json::json!({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"]}));
        let d = runtime_defaults(&c, &Overrides::default()).unwrap();
        assert_eq!(d.args, s(&["/bin/app", "--serve"]));
        assert_eq!(d.cwd, "/");
        assert_eq!(d.user, "");
        assert_eq!(d.env, s(&[DEFAULT_PATH]));
    }

    #[test]
    fn user_args_replace_cmd_but_keep_entrypoint() {
        let c = config(serde_json::json!({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"]}));
        let o = Overrides {
            cmd: s(&["--help"]),
            ..Default::default()
        };
        assert_eq!(
            runtime_defaults(&c, &o).unwrap().args,
            s(&["/bin/app", "--help"])
        );
    }

    #[test]
    fn user_entrypoint_drops_image_cmd() {
        let c = config(serde_json::json!({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"]}));
        let o = Overrides {
            entrypoint: Some(s(&["/bin/sh"])),
            ..Default::default()
        };
        assert_eq!(runtime_defaults(&c, &o).unwrap().args, s(&["/bin/sh"]));
        let o = Overrides {
            entrypoint: Some(s(&["/bin/sh", "-c"])),
            cmd: s(&["echo hi"]),
            ..Default::default()
        };
        assert_eq!(
            runtime_defaults(&c, &o).unwrap().args,
            s(&["/bin/sh", "-c", "echo hi"])
        );
    }

    #[test]
    fn empty_entrypoint_clears_it_and_needs_a_command() {
        let c = config(serde_json::json!({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"]}));
        let o = Overrides {
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        let e = runtime_defaults(&c, &o).unwrap_err();
        assert!(e.to_string().starts_with("no command specified"), "{e}");
        let o = Overrides {
            entrypoint: Some(vec![]),
            cmd: s(&["ls"]),
            ..Default::default()
        };
        assert_eq!(runtime_defaults(&c, &o).unwrap().args, s(&["ls"]));
    }

    #[test]
    fn no_command_at_all_is_an_error() {
        let c = config(serde_json::json!({}));
        assert!(matches!(
            runtime_defaults(&c, &Overrides::default()),
            Err(Error::NoCommand)
        ));
        let bare: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        assert!(runtime_defaults(&bare, &Overrides::default()).is_err());
    }

    #[test]
    fn env_overrides_replace_by_key_and_keep_order() {
        let c = config(serde_json::json!({
            "Cmd": ["sh"],
            "Env": ["PATH=/opt/bin", "A=1", "B=2"]
        }));
        let o = Overrides {
            env: s(&["B=3", "C=4", "A=one=1"]),
            ..Default::default()
        };
        let d = runtime_defaults(&c, &o).unwrap();
        assert_eq!(d.env, s(&["PATH=/opt/bin", "A=one=1", "B=3", "C=4"]));
    }

    #[test]
    fn workdir_user_ports_volumes() {
        let c = config(serde_json::json!({
            "Cmd": ["sh"],
            "WorkingDir": "srv",
            "User": "1000:1000",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}, "/cache": {}}
        }));
        let d = runtime_defaults(&c, &Overrides::default()).unwrap();
        assert_eq!(d.cwd, "/srv");
        assert_eq!(d.user, "1000:1000");
        assert_eq!(d.exposed_ports, s(&["53/udp", "8080/tcp"]));
        assert_eq!(d.volumes, s(&["/cache", "/data"]));
        let o = Overrides {
            workdir: Some("/tmp".into()),
            user: Some("nobody".into()),
            ..Default::default()
        };
        let d = runtime_defaults(&c, &o).unwrap();
        assert_eq!((d.cwd.as_str(), d.user.as_str()), ("/tmp", "nobody"));
        let o = Overrides {
            workdir: Some("tmp".into()),
            ..Default::default()
        };
        assert!(matches!(
            runtime_defaults(&c, &o),
            Err(Error::RelativeWorkdir(_))
        ));
    }
}
