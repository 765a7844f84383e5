//! emulator: foreign-architecture images in the utility VM. A container
//! whose image is built for another CPU runs in its VM under the matching
//! static user-mode emulator of Debian's `qemu-user-static` (found on the
//! host as the package lays it out), registered with the *guest's*
//! binfmt_misc, never the host's: the emulator itself stays inside the VM.
//! The emulator reaches the guest as a read-only share of that one file,
//! never from the container's rootfs. It must not know about containers.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmdline::Share;
use crate::Error;

/// The Debian package that holds the emulators.
pub const PACKAGE: &str = "qemu-user-static";
/// Where `scripts/setup.sh` unpacks that package (without installing it).
pub const CACHE_ROOT: &str = "/var/cache/isola/qemu-user";

/// An OCI architecture's QEMU name (`qemu-<name>-static`), for those the
/// package has and a Linux image uses.
pub fn qemu_name(oci_arch: &str) -> Option<&'static str> {
    Some(match oci_arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "mipsle" => "mipsel",
        "mips" => "mips",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// One emulator, ready to share and register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The OCI architecture it runs (`arm64`).
    pub arch: String,
    /// QEMU's name for it (`aarch64`).
    pub qemu: String,
    /// The directory holding [`Emulator::file`].
    pub dir: PathBuf,
    /// `aarch64-binfmt-P`: the name QEMU takes as "binfmt_misc preserved
    /// argv[0]" (a link to `qemu-aarch64-static` in the package).
    pub file: String,
    /// The package's binfmt_misc line, its interpreter field empty.
    magic_mask: String,
}

/// The package roots searched, in order: `ISOLA_QEMU_USER_ROOT`, the
/// host's own `/` (the package installed), then [`CACHE_ROOT`].
pub fn roots() -> Vec<PathBuf> {
    match std::env::var_os("ISOLA_QEMU_USER_ROOT").filter(|v| !v.is_empty()) {
        Some(r) => vec![PathBuf::from(r)],
        None => vec![PathBuf::from("/"), PathBuf::from(CACHE_ROOT)],
    }
}

impl Emulator {
    /// The emulator for `oci_arch` under one of [`roots`].
    pub fn find(oci_arch: &str) -> Result<Emulator, Error> {
        let missing = || Error::EmulatorMissing {
            arch: oci_arch.to_string(),
            package: PACKAGE,
        };
        let qemu = qemu_name(oci_arch).ok_or_else(missing)?;
        roots()
            .iter()
            .find_map(|root| Emulator::at(root, oci_arch, qemu))
            .ok_or_else(missing)
    }

    fn at(root: &Path, arch: &str, qemu: &str) -> Option<Emulator> {
        let dir = root.join("usr/libexec/qemu-binfmt");
        let file = format!("{qemu}-binfmt-P");
        if !fs::metadata(dir.join(&file)).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let conf = root.join(format!("usr/lib/binfmt.d/qemu-{qemu}.conf"));
        // `:name:M::magic:mask:interpreter:flags`; magic and mask are
        // \x-escaped, so the line splits on its colons.
        let line = fs::read_to_string(conf).ok()?;
        let f: Vec<&str> = line.trim().split(':').collect();
        if f.len() != 8 || f[2] != "M" {
            return None;
        }
        Some(Emulator {
            arch: arch.to_string(),
            qemu: qemu.to_string(),
            dir,
            file,
            magic_mask: format!("{}:{}", f[4], f[5]),
        })
    }

    /// The 9p tag of its share (one per architecture, so VMs of each
    /// architecture have templates of their own).
    pub fn tag(&self) -> String {
        format!("emu-{}", self.qemu)
    }

    /// The read-only share of the emulator alone.
    pub fn share(&self) -> Share {
        Share {
            tag: self.tag(),
            host_path: self.dir.clone(),
            read_only: true,
            files: Some(vec![self.file.clone()]),
            live: false,
        }
    }

    /// The line the guest writes to binfmt_misc's `register`: the package's
    /// magic and mask, the interpreter at `guest_dir`, and flags F (the
    /// kernel opens the interpreter now, so it works in every container's
    /// mount namespace), O (it gets the binary open) and P (argv[0] kept).
    pub fn register_line(&self, guest_dir: &str) -> String {
        format!(
            ":isola-{}:M::{}:{guest_dir}/{}:FOP",
            self.qemu, self.magic_mask, self.file
        )
    }
}

/// The OCI architectures VM mode can run here: the host's own and every
/// emulator found (`isola info`).
pub fn runnable(host_arch: &str) -> Vec<String> {
    let mut archs = vec![host_arch.to_string()];
    for arch in [
        "arm64", "arm", "riscv64", "ppc64le", "s390x", "386", "amd64", "mips64le", "loong64",
    ] {
        if arch != host_arch && Emulator::find(arch).is_ok() {
            archs.push(arch.to_string());
        }
    }
    archs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packages_line_gets_the_guests_interpreter() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/libexec/qemu-binfmt")).unwrap();
        fs::create_dir_all(r.join("usr/lib/binfmt.d")).unwrap();
        fs::write(r.join("usr/libexec/qemu-binfmt/aarch64-binfmt-P"), b"elf").unwrap();
        fs::write(
            r.join("usr/lib/binfmt.d/qemu-aarch64.conf"),
            ":qemu-aarch64:M::\\x7fELF\\x02:\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF\n",
        )
        .unwrap();
        let e = Emulator::at(r, "arm64", "aarch64").unwrap();
        assert_eq!(e.tag(), "emu-aarch64");
        assert_eq!(
            e.register_line("/run/isola/shares/emu-aarch64"),
            ":isola-aarch64:M::\\x7fELF\\x02:\\xff\\xff\\xff:/run/isola/shares/emu-aarch64/aarch64-binfmt-P:FOP"
        );
        let share = e.share();
        assert!(share.read_only);
        assert_eq!(share.files, Some(vec!["aarch64-binfmt-P".to_string()]));
        assert!(Emulator::at(r, "riscv64", "riscv64").is_none());
        assert_eq!(qemu_name("arm64"), Some("aarch64"));
        assert_eq!(qemu_name("wasm"), None);
    }
}
