//! guest_spec: what of an OCI spec must travel into the guest besides the
//! spec itself. Host paths the spec binds (a container's /etc files,
//! volumes, --init) become 9p shares ([`Share`]), and each bind's source
//! becomes the guest path the agent mounts its share at. It reads no file
//! and knows nothing of who wrote the spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cmdline::Share;

/// The host path a spec mount binds, if it is a bind mount (type `bind`,
/// or a `bind`/`rbind` option, as runc reads it).
pub fn bind_source(mount: &Value) -> Option<&str> {
    let is_bind = mount["type"] == "bind"
        || mount["options"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
    mount["source"].as_str().filter(|_| is_bind)
}

/// A spec whose binds name host paths, and the shares that carry them.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    spec: Value,
    /// The shares the binds need, tagged `<prefix><n>`.
    pub shares: Vec<Share>,
    /// (mount index, share tag, file name within the shared directory)
    binds: Vec<(usize, String, Option<String>)>,
}

impl GuestSpec {
    /// The shares `spec` needs, tagged `<tag_prefix>0`, `<tag_prefix>1`...
    /// A bind from `read_only_dir` (the directory holding the caller's own
    /// records) is shared read-only whatever its options say, so that not
    /// even a compromised guest kernel can rewrite what is there.
    pub fn new(spec: Value, read_only_dir: Option<&Path>, tag_prefix: &str) -> GuestSpec {
        let mut shares: Vec<Share> = Vec::new();
        let mut by_dir: BTreeMap<(PathBuf, bool, bool), String> = BTreeMap::new();
        let mut binds = Vec::new();
        for (i, m) in spec["mounts"].as_array().into_iter().flatten().enumerate() {
            let Some(source) = bind_source(m) else {
                continue;
            };
            let ro = m["options"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o == "ro");
            let source = PathBuf::from(source);
            let (dir, file) = if source.is_dir() {
                (source.clone(), None)
            } else {
                (
                    source.parent().unwrap_or(Path::new("/")).to_path_buf(),
                    source.file_name().map(|n| n.to_string_lossy().into_owned()),
                )
            };
            let read_only = ro || Some(dir.as_path()) == read_only_dir;
            // A file bind shares only the files bound from its directory, never
            // their siblings (the jail stages each in a directory of its own).
            let tag = by_dir
                .entry((dir.clone(), read_only, file.is_some()))
                .or_insert_with(|| {
                    let tag = format!("{tag_prefix}{}", shares.len());
                    shares.push(Share {
                        tag: tag.clone(),
                        host_path: dir,
                        read_only,
                        files: file.as_ref().map(|_| Vec::new()),
                        live: false,
                    });
                    tag
                })
                .clone();
            if let (Some(name), Some(share)) = (&file, shares.iter_mut().find(|s| s.tag == tag)) {
                let files = share.files.get_or_insert_with(Vec::new);
                if !files.contains(name) {
                    files.push(name.clone());
                }
            }
            binds.push((i, tag, file));
        }
        GuestSpec {
            spec,
            shares,
            binds,
        }
    }

    /// The (tag, read-only) pairs the agent mounts before the container is made.
    pub fn share_mounts(&self) -> Vec<(&str, bool)> {
        self.shares
            .iter()
            .map(|s| (s.tag.as_str(), s.read_only))
            .collect()
    }

    /// The spec as the guest sees it: each bind's source is its share's
    /// guest path ([`crate::share_path`]).
    pub fn into_spec(mut self) -> Result<oci_spec::runtime::Spec, serde_json::Error> {
        for (i, tag, file) in &self.binds {
            let base = crate::share_path(tag);
            self.spec["mounts"][*i]["source"] = Value::String(match file {
                Some(f) => format!("{base}/{f}"),
                None => base,
            });
        }
        serde_json::from_value(self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_the_spec_binds_become_shared_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ctr = dir.path().join("ctr");
        let vol = dir.path().join("vol");
        std::fs::create_dir_all(ctr.join("bundle")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        for f in ["hosts", "hostname"] {
            std::fs::write(ctr.join(f), "x").unwrap();
        }
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": ctr.join("hosts"), "options": ["rbind"]},
                {"destination": "/etc/hostname", "type": "bind", "source": ctr.join("hostname"), "options": ["rbind"]},
                {"destination": "/data", "type": "bind", "source": vol, "options": ["rbind", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
            ]
        });
        let g = GuestSpec::new(spec, Some(&ctr), "isola");
        // One share for the container directory (both files), one for the volume.
        assert_eq!(g.shares.len(), 2, "{:?}", g.shares);
        assert_eq!(g.shares[0].host_path, ctr);
        assert!(
            g.shares[0].read_only,
            "the caller's records are read-only to the guest"
        );
        assert_eq!(
            g.shares[0].files.as_deref(),
            Some(&["hosts".to_string(), "hostname".to_string()][..])
        );
        assert_eq!(g.shares[1].host_path, vol);
        assert!(g.shares[1].read_only);
        for s in &g.shares {
            s.validate().unwrap();
        }
        assert_eq!(g.share_mounts(), [("isola0", true), ("isola1", true)]);
        let spec = g.into_spec().unwrap();
        let sources: Vec<String> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.source().as_ref().unwrap().display().to_string())
            .collect();
        assert_eq!(
            sources,
            [
                "proc".to_string(),
                format!("{}/hosts", crate::share_path("isola0")),
                format!("{}/hostname", crate::share_path("isola0")),
                crate::share_path("isola1"),
                "tmpfs".to_string(),
            ]
        );
    }
}
