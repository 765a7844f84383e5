//! kernel: finds the guest kernel (a bzImage) a VM boots, and the static
//! agent binary that becomes its /init. It only locates and checks files;
//! building the kernel is scripts/guest-kernel.sh's job.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Error;

/// The cache root the build script writes to (`ISOLA_CACHE` overrides it).
pub const DEFAULT_CACHE: &str = "/var/cache/isola";

fn cache_root() -> PathBuf {
    std::env::var_os("ISOLA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// A guest kernel image to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestKernel {
    path: PathBuf,
}

impl GuestKernel {
    /// `configured` (vm.kernel / --vm-kernel) if given, else `ISOLA_VM_KERNEL`,
    /// else the newest build in the cache (`<cache>/kernel/latest/bzImage`).
    pub fn locate(configured: Option<&Path>) -> Result<GuestKernel, Error> {
        if let Some(p) = configured {
            return GuestKernel::at(p);
        }
        if let Some(p) = std::env::var_os("ISOLA_VM_KERNEL") {
            return GuestKernel::at(Path::new(&p));
        }
        let cached = cache_root().join("kernel/latest/bzImage");
        if cached.is_file() {
            return Ok(GuestKernel { path: cached });
        }
        Err(Error::KernelMissing {
            looked: vec![cached],
        })
    }

    /// A kernel at an explicit path, which must exist.
    pub fn at(path: &Path) -> Result<GuestKernel, Error> {
        if path.is_file() {
            Ok(GuestKernel {
                path: path.to_path_buf(),
            })
        } else {
            Err(Error::KernelNotFound {
                path: path.to_path_buf(),
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The agent binary packed as the guest's /init; must be statically linked
/// (the initramfs holds no libc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinary {
    path: PathBuf,
}

impl AgentBinary {
    /// `configured` if given, else `ISOLA_AGENT`, else `isola-agent` next to the
    /// running executable, else the static build in the cargo target directory
    /// the executable lives in (`target/x86_64-unknown-linux-gnu/{release,debug}/agent`).
    pub fn locate(configured: Option<&Path>) -> Result<AgentBinary, Error> {
        let mut looked = Vec::new();
        if let Some(p) = configured {
            looked.push(p.to_path_buf());
        } else if let Some(p) = std::env::var_os("ISOLA_AGENT") {
            looked.push(PathBuf::from(p));
        } else if let Ok(exe) = std::env::current_exe() {
            let dir = exe.parent().unwrap_or(Path::new("/"));
            looked.push(dir.join("isola-agent"));
            // target/<profile>/x or target/<profile>/deps/x (tests, examples).
            for up in [dir.parent(), dir.parent().and_then(Path::parent)]
                .into_iter()
                .flatten()
            {
                for profile in ["release", "debug"] {
                    looked.push(
                        up.join("x86_64-unknown-linux-gnu")
                            .join(profile)
                            .join("agent"),
                    );
                }
            }
        }
        let path = looked
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or(Error::AgentMissing { looked })?;
        check_static(&path)?;
        Ok(AgentBinary { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Refuses an ELF that needs a dynamic loader or shared libraries: as /init
/// it would fail with a bare "No such file" and a kernel panic.
fn check_static(path: &Path) -> Result<(), Error> {
    let not_static = |reason: &str| Error::AgentNotStatic {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(Error::io("read", path))?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(not_static("not a 64-bit little-endian ELF"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    let phoff = u64_at(0x20).unwrap_or(0);
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let Some(p_type) = bytes.get(ph..ph + 4) else {
            return Err(not_static("truncated program headers"));
        };
        match u32::from_le_bytes(p_type.try_into().expect("4 bytes")) {
            3 => return Err(not_static("it has a dynamic loader (PT_INTERP)")),
            2 => {
                // PT_DYNAMIC: a DT_NEEDED entry means a shared library is required.
                let (off, size) = (u64_at(ph + 8).unwrap_or(0), u64_at(ph + 32).unwrap_or(0));
                for entry in (off..off + size).step_by(16) {
                    match u64_at(entry) {
                        Some(0) | None => break,
                        Some(1) => return Err(not_static("it needs shared libraries (DT_NEEDED)")),
                        Some(_) => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_is_refused_as_agent() {
        // /bin/sh on Debian is dynamically linked; busybox-static is not.
        let err = check_static(Path::new("/bin/sh")).unwrap_err();
        assert!(err.to_string().contains("statically linked"), "{err}");
        check_static(Path::new("/bin/busybox")).unwrap();
    }

    #[test]
    fn a_missing_configured_kernel_names_the_path_and_the_fix() {
        let err = GuestKernel::locate(Some(Path::new("/nonexistent/bzImage"))).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/bzImage") && msg.contains("scripts/guest-kernel.sh"),
            "{msg}"
        );
    }
}
