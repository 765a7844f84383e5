//! backend::vm::settings: the `[vm]` table of the host's config file
//! (/etc/isola/config.toml): `kernel` (a bzImage to boot instead of the
//! cached build), `accel` (`auto`, `kvm` or `tcg`) and `template` (start VMs
//! from a saved template VM, default true; `ISOLA_VM_TEMPLATE=0|1` overrides
//! it), `template_dir` (where templates are kept; `ISOLA_VM_TEMPLATE_DIR`)
//! and `rootfs` (`disks` or `share`; `ISOLA_VM_ROOTFS`). It reads; it checks nothing beyond the file's syntax.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[vm]` in the config file; every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSettings {
    pub kernel: Option<PathBuf>,
    pub accel: Option<String>,
    pub template: Option<bool>,
    /// Where VM templates are kept (default /var/cache/isola/templates);
    /// `ISOLA_VM_TEMPLATE_DIR` overrides it.
    pub template_dir: Option<PathBuf>,
    /// How a VM container's files reach its guest (default `disks`);
    /// `ISOLA_VM_ROOTFS` overrides it.
    pub rootfs: Option<VmRootfs>,
}

/// How a VM container's root filesystem reaches its guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmRootfs {
    /// The image as a read-only disk and a writable disk of its own
    /// (image/store/disks.rs): the guest's own page cache, the host off
    /// the files while the VM runs.
    Disks,
    /// The snapshot directory over 9p: every file operation a round trip
    /// through QEMU, the host's view live.
    Share,
}

impl VmSettings {
    /// Whether VMs start from templates: `ISOLA_VM_TEMPLATE` (0 or 1), else
    /// `vm.template`, else yes.
    pub fn template(&self) -> bool {
        match std::env::var("ISOLA_VM_TEMPLATE").as_deref() {
            Ok("0") | Ok("false") => false,
            Ok("1") | Ok("true") => true,
            _ => self.template.unwrap_or(true),
        }
    }

    /// How VM containers' files reach their guests: `ISOLA_VM_ROOTFS`
    /// (`disks` or `share`), else `vm.rootfs`, else disks.
    pub fn rootfs(&self) -> VmRootfs {
        match std::env::var("ISOLA_VM_ROOTFS").as_deref() {
            Ok("share") => VmRootfs::Share,
            Ok("disks") => VmRootfs::Disks,
            _ => self.rootfs.unwrap_or(VmRootfs::Disks),
        }
    }

    /// Where VM templates are kept: `ISOLA_VM_TEMPLATE_DIR`, else
    /// `vm.template_dir`, else the cache's `templates`.
    pub fn template_dir(&self) -> PathBuf {
        std::env::var_os("ISOLA_VM_TEMPLATE_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.template_dir.clone())
            .unwrap_or_else(|| PathBuf::from(vm::kernel::DEFAULT_CACHE).join("templates"))
    }
}

#[derive(Debug, Default, Deserialize)]
struct HostFile {
    #[serde(default)]
    vm: VmSettings,
}

/// Errors reading the `[vm]` settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing the [vm] table of {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// The `[vm]` settings of `file`; all defaults when it does not exist.
pub fn load(file: &Path) -> Result<VmSettings, SettingsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => toml::from_str::<HostFile>(&text)
            .map(|h| h.vm)
            .map_err(|source| SettingsError::Parse {
                path: file.into(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VmSettings::default()),
        Err(source) => Err(SettingsError::Read {
            path: file.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_table_is_read_next_to_the_default_isolation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        assert_eq!(load(&file).unwrap(), VmSettings::default());
        std::fs::write(
            &file,
            "default_isolation = \"vm\"\n[vm]\nkernel = \"/boot/guest\"\naccel = \"tcg\"\ntemplate = false\n",
        )
        .unwrap();
        let s = load(&file).unwrap();
        assert_eq!(s.kernel.as_deref(), Some(Path::new("/boot/guest")));
        assert_eq!(s.accel.as_deref(), Some("tcg"));
        assert_eq!(s.template, Some(false));
        std::fs::write(&file, "[vm]\nkernal = \"typo\"\n").unwrap();
        let e = load(&file).unwrap_err();
        assert!(e.to_string().contains("config.toml"), "{e}");
    }
}
