//! user: turns `-u user[:group]` (names or numbers) into uid, gid and
//! supplementary gids using the container's own /etc/passwd and /etc/group,
//! as docker does. The container controls those files: they are read with
//! [`runtime::rootfile`] (resolved inside the rootfs, regular files only, a
//! size limit), never by a plain path join on the host.

use std::path::{Path, PathBuf};

use runtime::rootfile::{self, RootFileError};

/// A user resolved against the rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From /etc/passwd, for `HOME` when the image sets none.
    pub home: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {user}: no matching entries in {passwd}")]
    UnknownUser { user: String, passwd: PathBuf },
    #[error("unable to find group {group}: no matching entries in {group_file}")]
    UnknownGroup { group: String, group_file: PathBuf },
    #[error("looking up -u {spec:?}")]
    ContainerFile {
        spec: String,
        #[source]
        source: RootFileError,
    },
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// The lines of `path` in `rootfs`, split at ':'; none if it is missing.
fn read_lines(rootfs: &Path, path: &str) -> Result<Vec<Vec<String>>, RootFileError> {
    let data = rootfile::read(rootfs, Path::new(path), rootfile::DEFAULT_LIMIT)?;
    Ok(String::from_utf8_lossy(&data.unwrap_or_default())
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

fn passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, RootFileError> {
    Ok(read_lines(rootfs, "/etc/passwd")?
        .into_iter()
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.clone(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).cloned().unwrap_or_default(),
            })
        })
        .collect())
}

/// (name, gid, members)
fn groups(rootfs: &Path) -> Result<Vec<(String, u32, Vec<String>)>, RootFileError> {
    Ok(read_lines(rootfs, "/etc/group")?
        .into_iter()
        .filter_map(|f| {
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some((f.first()?.clone(), f.get(2)?.parse().ok()?, members))
        })
        .collect())
}

/// A file the container broke fails an explicit `-u`; the default user
/// (root) still resolves without it, so that `exec` can repair the
/// container, as it could if the file were missing.
fn lenient<T>(spec: &str, read: Result<Vec<T>, RootFileError>) -> Result<Vec<T>, UserError> {
    match read {
        Err(e) if spec.is_empty() => {
            tracing::warn!("ignoring the container's {e}");
            Ok(Vec::new())
        }
        r => r.map_err(|source| UserError::ContainerFile {
            spec: spec.into(),
            source,
        }),
    }
}

/// Resolves `spec` (`""`, `user`, `uid`, `user:group`, `uid:gid`) in `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = lenient(spec, passwd(rootfs))?;
    let entry = if user.is_empty() {
        users.iter().find(|e| e.uid == 0)
    } else {
        users.iter().find(|e| e.name == user).or_else(|| {
            user.parse::<u32>()
                .ok()
                .and_then(|u| users.iter().find(|e| e.uid == u))
        })
    };
    let (uid, mut gid, name, home) = match (entry, user.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.clone()), Some(e.home.clone())),
        (None, Ok(uid)) => (uid, 0, None, None),
        (None, Err(_)) if user.is_empty() => (0, 0, None, None),
        (None, Err(_)) => {
            return Err(UserError::UnknownUser {
                user: user.into(),
                passwd: PathBuf::from("/etc/passwd"),
            })
        }
    };
    let all_groups = lenient(spec, groups(rootfs))?;
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match all_groups.iter().find(|(n, _, _)| n == g) {
            Some((_, id, _)) => *id,
            None => g.parse().map_err(|_| UserError::UnknownGroup {
                group: g.into(),
                group_file: PathBuf::from("/etc/group"),
            })?,
        };
    }
    // Supplementary groups only when no group was forced, like docker.
    let additional_gids = match (&name, group) {
        (Some(n), None) => all_groups
            .iter()
            .filter(|(_, id, members)| *id != gid && members.contains(n))
            .map(|(_, id, _)| *id)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: home.filter(|h| !h.is_empty()),
    })
}

/// [`resolve`], with the gids of `group_add` ([`group_ids`]) among its
/// additional groups: a container's process user.
pub fn resolve_with_groups(
    rootfs: &Path,
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser, UserError> {
    let mut user = resolve(rootfs, spec)?;
    user.additional_gids.extend(group_ids(rootfs, group_add)?);
    Ok(user)
}

/// The gids of `--group-add` entries: numbers, or names in the
/// container's /etc/group.
fn group_ids(rootfs: &Path, names: &[String]) -> Result<Vec<u32>, UserError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let all = lenient("", groups(rootfs))?;
    names
        .iter()
        .map(|g| match all.iter().find(|(n, _, _)| n == g) {
            Some((_, id, _)) => Ok(*id),
            None => g.parse().map_err(|_| UserError::UnknownGroup {
                group: g.clone(),
                group_file: PathBuf::from("/etc/group"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nweb:x:1000:1000::/srv:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\nweb:x:1000:\naudio:x:29:web,other\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_and_numbers() {
        let r = rootfs();
        let u = resolve(r.path(), "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (0, 0, Some("/root")));
        let u = resolve(r.path(), "web").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![29])
        );
        let u = resolve(r.path(), "nobody:web").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 1000));
        let u = resolve(r.path(), "4242:4343").unwrap();
        assert_eq!((u.uid, u.gid, u.home), (4242, 4343, None));
        assert!(resolve(r.path(), "ghost")
            .unwrap_err()
            .to_string()
            .contains("ghost"));
        assert!(resolve(r.path(), "web:ghosts").is_err());
    }

    #[test]
    fn a_fifo_passwd_fails_an_explicit_user_at_once_and_not_the_default() {
        let r = rootfs();
        let p = r.path().join("etc/passwd");
        std::fs::remove_file(&p).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = resolve(r.path(), "nobody").unwrap_err();
        assert!(matches!(e, UserError::ContainerFile { .. }), "{e:?}");
        assert!(runtime::error_chain(&e).contains("/etc/passwd"), "{e}");
        let u = resolve(r.path(), "").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
    }
}
