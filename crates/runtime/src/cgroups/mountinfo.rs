//! mountinfo: finds the cgroup mounts in /proc/self/mountinfo and decides
//! the layout (v1, v2, or hybrid, which is used as v1). Parsed by hand: only
//! four fields of a line-oriented, documented format (proc(5)) are needed,
//! which does not justify the procfs crate and its dependencies.

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

pub fn detect() -> Result<Layout, Error> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| Error::MountInfo {
        path: PathBuf::from(MOUNTINFO),
        source,
    })?;
    parse(&text)
}

/// v1 wins when any v1 hierarchy carries a real controller (hybrid hosts);
/// otherwise the cgroup2 mount, preferring /sys/fs/cgroup.
pub fn parse(text: &str) -> Result<Layout, Error> {
    let mut hierarchies = Hierarchies::new();
    let mut unified: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        let mut right = right.split(' ');
        let (Some(fstype), _source, Some(options)) = (right.next(), right.next(), right.next())
        else {
            continue;
        };
        match fstype {
            "cgroup" => {
                for option in options.split(',') {
                    if is_controller(option) {
                        hierarchies
                            .entry(option.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
            }
            "cgroup2" => unified.push(mount_point),
            _ => {}
        }
    }
    if hierarchies.keys().any(|k| !k.starts_with("name=")) {
        return Ok(Layout::V1(hierarchies));
    }
    let preferred = Path::new("/sys/fs/cgroup");
    match unified.iter().find(|p| p.as_path() == preferred) {
        Some(p) => Ok(Layout::V2(p.clone())),
        None => unified
            .into_iter()
            .next()
            .map(Layout::V2)
            .ok_or(Error::NoCgroupMounts),
    }
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

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
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
        let Layout::V1(h) = parse(HYBRID).unwrap() else {
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
            parse(text).unwrap(),
            Layout::V2(PathBuf::from("/sys/fs/cgroup"))
        );
        // A named-only v1 hierarchy (e.g. a leftover name=systemd) does not make it v1.
        let text = format!(
            "{text}40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
        );
        assert!(matches!(parse(&text).unwrap(), Layout::V2(_)));
    }

    #[test]
    fn nothing_mounted() {
        let err = parse("22 1 0:5 / /proc rw - proc proc rw\n").unwrap_err();
        assert!(matches!(err, Error::NoCgroupMounts));
    }
}
