//! mounts: parses `-v host:ctr[:opts]`, `-v name:ctr[:opts]`, `-v ctr` and
//! `--mount type=bind|volume|tmpfs,...` into [`MountPoint`]s, checking what
//! can be checked before anything is created (a bind source must exist, a
//! volume name must be valid). Finding or making the volumes is
//! volumes.rs's job at create; producing OCI mounts is spec.rs's.

use std::path::{Path, PathBuf};

use crate::state::{MountPoint, MOUNT_VOLUME};
use crate::volumes::{self, VolumeError};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid volume {0:?}: expected /host/path:/container/path[:ro|rw], name:/container/path[:ro|rw|nocopy] or /container/path")]
    InvalidVolume(String),
    #[error(transparent)]
    VolumeName(#[from] VolumeError),
    #[error("bind mount source path does not exist: {0}")]
    MissingSource(PathBuf),
    #[error("invalid --mount {spec:?}: {reason}")]
    InvalidMount { spec: String, reason: String },
    #[error("invalid mount destination {0:?}: it must be an absolute path other than /")]
    InvalidDestination(String),
}

fn check_destination(dest: &str) -> Result<(), MountError> {
    if !dest.starts_with('/') || dest.trim_end_matches('/').is_empty() {
        return Err(MountError::InvalidDestination(dest.into()));
    }
    Ok(())
}

fn check_source(src: &str) -> Result<(), MountError> {
    if !Path::new(src).exists() {
        return Err(MountError::MissingSource(src.into()));
    }
    Ok(())
}

/// `-v /host:/ctr[:opts]` (a bind), `-v name:/ctr[:opts]` (a named
/// volume, made on first use) or `-v /ctr` (a new anonymous volume), as
/// docker tells them apart: a source that is an absolute path is a bind.
pub fn parse_volume(spec: &str) -> Result<MountPoint, MountError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [s, d] => (Some(*s), *d, ""),
        [s, d, o] => (Some(*s), *d, *o),
        _ => return Err(MountError::InvalidVolume(spec.into())),
    };
    check_destination(dst)?;
    let (mut rw, mut nocopy) = (true, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => nocopy = true,
            // SELinux labels and propagation modes are accepted and ignored.
            "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "rshared" | "shared" => {}
            _ => return Err(MountError::InvalidVolume(spec.into())),
        }
    }
    match src {
        Some(src) if src.starts_with('/') => {
            if nocopy {
                return Err(MountError::InvalidVolume(spec.into()));
            }
            check_source(src)?;
            Ok(MountPoint {
                kind: "bind".into(),
                source: src.into(),
                destination: dst.into(),
                rw,
                ..Default::default()
            })
        }
        name => {
            if let Some(name) = name {
                volumes::check_name(name)?;
            }
            Ok(MountPoint {
                kind: MOUNT_VOLUME.into(),
                destination: dst.into(),
                rw,
                name: name.map(str::to_string),
                nocopy,
                ..Default::default()
            })
        }
    }
}

/// `--mount type=bind,source=/a,target=/b,readonly`,
/// `--mount type=volume[,source=name],target=/b[,volume-nocopy]` or
/// `--mount type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777`.
pub fn parse_mount(spec: &str) -> Result<MountPoint, MountError> {
    let bad = |reason: &str| MountError::InvalidMount {
        spec: spec.into(),
        reason: reason.into(),
    };
    let mut kind = "volume".to_string();
    let (mut src, mut dst) = (None, None);
    let mut rw = true;
    let mut nocopy = false;
    let mut options = Vec::new();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (field.trim(), None),
        };
        match (k, v) {
            ("type", Some(t)) => kind = t.into(),
            ("source" | "src", Some(s)) => src = Some(s.to_string()),
            ("target" | "destination" | "dst", Some(d)) => dst = Some(d.to_string()),
            ("readonly" | "ro", None | Some("true" | "1")) => rw = false,
            ("readonly" | "ro", Some("false" | "0")) => rw = true,
            ("tmpfs-size", Some(s)) => {
                let bytes =
                    crate::units::parse_bytes(s).ok_or_else(|| bad("tmpfs-size is not a size"))?;
                options.push(format!("size={bytes}"));
            }
            ("tmpfs-mode", Some(m)) => {
                u32::from_str_radix(m, 8).map_err(|_| bad("tmpfs-mode is not an octal mode"))?;
                options.push(format!("mode={m}"));
            }
            ("bind-propagation", Some(_)) => {}
            ("volume-nocopy", None | Some("true" | "1")) => nocopy = true,
            ("volume-nocopy", Some("false" | "0")) => nocopy = false,
            ("volume-driver", Some(volumes::LOCAL_DRIVER)) => {}
            _ => return Err(bad(&format!("unknown field {field:?}"))),
        }
    }
    let dst = dst.ok_or_else(|| bad("target is required"))?;
    check_destination(&dst)?;
    match kind.as_str() {
        "bind" => {
            let src = src.ok_or_else(|| bad("source is required for type=bind"))?;
            if !src.starts_with('/') {
                return Err(bad("source must be an absolute path"));
            }
            check_source(&src)?;
            Ok(MountPoint {
                kind,
                source: src,
                destination: dst,
                rw,
                options,
                ..Default::default()
            })
        }
        MOUNT_VOLUME => {
            if let Some(name) = &src {
                volumes::check_name(name)?;
            }
            Ok(MountPoint {
                kind,
                destination: dst,
                rw,
                name: src,
                nocopy,
                ..Default::default()
            })
        }
        "tmpfs" => {
            if src.is_some() {
                return Err(bad("type=tmpfs takes no source"));
            }
            Ok(MountPoint {
                kind,
                source: "tmpfs".into(),
                destination: dst,
                rw,
                options,
                ..Default::default()
            })
        }
        other => Err(bad(&format!(
            "type {other:?} is not supported (bind, volume or tmpfs)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let m = parse_volume("/tmp:/data:ro").unwrap();
        assert_eq!(
            (m.source.as_str(), m.destination.as_str(), m.rw),
            ("/tmp", "/data", false)
        );
        let m = parse_volume("/x").unwrap();
        assert_eq!((m.kind.as_str(), m.name.as_deref()), ("volume", None));
        let m = parse_volume("data:/x:ro,nocopy").unwrap();
        assert_eq!(m.name.as_deref(), Some("data"));
        assert!(m.kind == "volume" && !m.rw && m.nocopy);
        assert!(matches!(
            parse_volume("a:/x"),
            Err(MountError::VolumeName(VolumeError::InvalidName(_)))
        ));
        assert!(parse_volume("../x:/x").is_err());
        assert!(parse_volume("/tmp:/x:nocopy").is_err());
        let e = parse_volume("/no/such/dir:/x").unwrap_err().to_string();
        assert!(e.contains("/no/such/dir"), "{e}");
        assert!(parse_volume("/tmp:relative").is_err());
    }

    #[test]
    fn mounts() {
        let m = parse_mount("type=bind,source=/tmp,target=/t,readonly").unwrap();
        assert!(!m.rw && m.kind == "bind");
        let m = parse_mount("type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        assert_eq!(m.options, vec!["size=1048576", "mode=1777"]);
        let m = parse_mount("type=volume,target=/x").unwrap();
        assert!(m.kind == "volume" && m.name.is_none());
        let m = parse_mount("type=volume,src=data,target=/x,volume-nocopy").unwrap();
        assert!(m.name.as_deref() == Some("data") && m.nocopy);
        assert!(parse_mount("type=volume,src=x/y,target=/x").is_err());
        assert!(parse_mount("type=npipe,target=/x").is_err());
        assert!(parse_mount("type=bind,source=/nope-xyz,target=/x").is_err());
        assert!(parse_mount("type=tmpfs").is_err());
    }
}
