//! mountinfo: the one parser of /proc/self/mountinfo in the runtime. It
//! reads the four fields isola needs from each line ([`Mount`]) and, from
//! those, decides the cgroup layout (v1, v2, or hybrid, which is used as v1).
//! `cgroupfs` (the container's view of /sys/fs/cgroup) reads the same
//! [`Mount`]s. Parsed by hand: only four fields of a line-oriented,
//! documented format (proc(5)) are needed, which does not justify the procfs
//! crate and its dependencies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Error;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Controllers (and named hierarchies such as `name=systemd`) mapped to the
/// mount point of the v1 hierarchy holding them.
pub type Hierarchies = BTreeMap<String, PathBuf>;

#[derive(Debug, PartialEq, Eq)]
pub enum Layout {
    V1(Hierarchies),
    /// Mount point of the unified hierarchy.
    V2(PathBuf),
}

/// One line of /proc/self/mountinfo: the fields isola reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where the mount starts inside its filesystem (`/` unless a bind mount).
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
}

/// The mounts of the calling process's mount namespace.
pub fn read() -> Result<Vec<Mount>, Error> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| Error::MountInfo {
        path: PathBuf::from(MOUNTINFO),
        source,
    })?;
    Ok(mounts(&text))
}

/// Parses mountinfo text; lines that do not have the documented shape are
/// skipped.
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let (left, right) = line.split_once(" - ")?;
            let mut left = left.split(' ').skip(3);
            let (root, mount_point) = (left.next()?, left.next()?);
            let mut right = right.split(' ');
            let (fs_type, _source, super_options) = (right.next()?, right.next()?, right.next()?);
            Some(Mount {
                root: unescape(root),
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_string(),
                super_options: super_options.to_string(),
            })
        })
        .collect()
}

pub fn detect() -> Result<Layout, Error> {
    layout(&read()?)
}

/// v1 wins when any v1 hierarchy carries a real controller (hybrid hosts);
/// otherwise the cgroup2 mount, preferring /sys/fs/cgroup.
pub fn layout(mounts: &[Mount]) -> Result<Layout, Error> {
    let mut hierarchies = Hierarchies::new();
    let mut unified: Vec<&Path> = Vec::new();
    for m in mounts {
        match m.fs_type.as_str() {
            "cgroup" => {
                for option in m.super_options.split(',') {
                    if is_controller(option) {
                        hierarchies
                            .entry(option.to_string())
                            .or_insert_with(|| m.mount_point.clone());
                    }
                }
            }
            "cgroup2" => unified.push(&m.mount_point),
            _ => {}
        }
    }
    if hierarchies.keys().any(|k| !k.starts_with("name=")) {
        return Ok(Layout::V1(hierarchies));
    }
    let preferred = Path::new("/sys/fs/cgroup");
    unified
        .iter()
        .find(|p| **p == preferred)
        .or(unified.first())
        .map(|p| Layout::V2(p.to_path_buf()))
        .ok_or(Error::NoCgroupMounts)
}

/// Super options of a v1 cgroup mount mix controllers with mount flags.
fn is_controller(option: &str) -> bool {
    const NOT_CONTROLLERS: &[&str] = &[
        "rw",
        "ro",
        "noprefix",
        "clone_children",
        "xattr",
        "cpuset_v2_mode",
        "favordynmods",
    ];
    !option.is_empty()
        && !NOT_CONTROLLERS.contains(&option)
        && !option.starts_with("release_agent=")
}

/// mountinfo escapes space, tab, newline and backslash as three octal
/// digits; anything else (a lone backslash) is kept as it is. Works on bytes
/// so that a name in UTF-8 comes out whole.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\')
            .then(|| b.get(i + 1..i + 4))
            .flatten()
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let value = d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0'));
                u8::try_from(value).ok()
            });
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn hybrid_is_v1_with_every_controller() {
        let Layout::V1(h) = layout(&mounts(HYBRID)).unwrap() else {
            panic!("expected v1")
        };
        assert_eq!(h["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h["cpuacct"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h["cpuset"], Path::new("/sys/fs/cgroup/cpuset"));
        assert_eq!(h["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
        assert_eq!(h["pids"], Path::new("/mnt/with space"));
        assert!(!h.contains_key("rw") && !h.contains_key("clone_children"));
        assert!(!h.contains_key("xattr"));
    }

    #[test]
    fn pure_v2() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            layout(&mounts(text)).unwrap(),
            Layout::V2(PathBuf::from("/sys/fs/cgroup"))
        );
        // A named-only v1 hierarchy (e.g. a leftover name=systemd) does not make it v1.
        let text = format!(
            "{text}40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
        );
        assert!(matches!(layout(&mounts(&text)).unwrap(), Layout::V2(_)));
    }

    #[test]
    fn nothing_mounted() {
        let err = layout(&mounts("22 1 0:5 / /proc rw - proc proc rw\n")).unwrap_err();
        assert!(matches!(err, Error::NoCgroupMounts));
    }

    #[test]
    fn mount_fields() {
        let m = &mounts(HYBRID)[0];
        assert_eq!(m.root, "/");
        assert_eq!(m.mount_point, Path::new("/sys/fs/cgroup"));
        assert_eq!(m.fs_type, "tmpfs");
        assert_eq!(m.super_options, "rw,mode=755");
        let bind = "60 23 0:29 /isola/c1 /x rw shared:7 - cgroup cgroup rw,memory\n";
        assert_eq!(mounts(bind)[0].root, "/isola/c1");
        assert!(mounts("not a mountinfo line\n").is_empty());
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/plain\0"), r"/plain\0");
        assert_eq!(unescape(r"/big\777"), r"/big\777");
        assert_eq!(unescape(r"/caf\303\251"), "/café");
    }
}
