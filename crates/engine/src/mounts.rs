//! mounts: parses `-v host:ctr[:opts]` and `--mount type=bind|tmpfs,...` into
//! [`MountPoint`]s, checking what can be checked before anything is created
//! (a bind source must exist). Producing OCI mounts is spec.rs's job.

use std::path::{Path, PathBuf};

use crate::state::MountPoint;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid volume {0:?}: expected /host/path:/container/path[:ro|rw]")]
    InvalidVolume(String),
    #[error(
        "invalid volume {0:?}: named volumes are not supported yet; give an absolute host path"
    )]
    NamedVolume(String),
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

/// `-v /host:/ctr[:ro|rw]`.
pub fn parse_volume(spec: &str) -> Result<MountPoint, MountError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(MountError::InvalidVolume(spec.into())),
    };
    if !src.starts_with('/') {
        return Err(MountError::NamedVolume(spec.into()));
    }
    check_destination(dst)?;
    let mut rw = true;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            // SELinux labels and propagation modes are accepted and ignored.
            "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "rshared" | "shared" => {}
            _ => return Err(MountError::InvalidVolume(spec.into())),
        }
    }
    check_source(src)?;
    Ok(MountPoint {
        kind: "bind".into(),
        source: src.into(),
        destination: dst.into(),
        rw,
        options: vec![],
    })
}

/// `--mount type=bind,source=/a,target=/b,readonly` or
/// `--mount type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777`.
pub fn parse_mount(spec: &str) -> Result<MountPoint, MountError> {
    let bad = |reason: &str| MountError::InvalidMount {
        spec: spec.into(),
        reason: reason.into(),
    };
    let mut kind = "volume".to_string();
    let (mut src, mut dst) = (None, None);
    let mut rw = true;
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
            })
        }
        other => Err(bad(&format!(
            "type {other:?} is not supported (bind or tmpfs)"
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
        assert!(matches!(
            parse_volume("/tmp"),
            Err(MountError::InvalidVolume(_))
        ));
        assert!(matches!(
            parse_volume("data:/x"),
            Err(MountError::NamedVolume(_))
        ));
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
        assert!(parse_mount("type=volume,target=/x").is_err());
        assert!(parse_mount("type=bind,source=/nope-xyz,target=/x").is_err());
        assert!(parse_mount("type=tmpfs").is_err());
    }
}
