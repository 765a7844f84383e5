//! accel: chooses how QEMU runs the guest: KVM where hardware
//! virtualization is usable, else TCG (software emulation). Only decides;
//! the command line is vmm.rs's.

use std::fs::OpenOptions;
use std::path::Path;
use std::str::FromStr;

use crate::Error;

/// `vm.accel` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<AccelChoice, Error> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(Error::InvalidAccel {
                value: s.to_string(),
            }),
        }
    }
}

/// The accelerator a VM actually gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation with a translation cache of `tb_size_mib`.
    Tcg {
        tb_size_mib: u32,
    },
}

/// TCG translation-block cache. QEMU's default (1 GiB, mapped lazily) grows
/// the host footprint of every VM; a guest that runs one container needs far
/// less (see bench/results/vm.md for the figures behind this value).
pub const DEFAULT_TB_SIZE_MIB: u32 = 16;

/// Why KVM cannot be used here, or `None` if it can: /dev/kvm must open
/// read-write AND a hardware module (kvm_intel, kvm_amd) must be loaded.
/// Other KVM flavours (e.g. kvm_pvm in nested clouds) cannot boot a
/// standard guest kernel.
pub fn kvm_unusable_reason() -> Option<String> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Some(format!("/dev/kvm cannot be opened ({e})"));
    }
    if !["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| Path::new("/sys/module").join(m).exists())
    {
        return Some(
            "neither kvm_intel nor kvm_amd is loaded (hardware virtualization is absent)".into(),
        );
    }
    None
}

/// Resolves `choice`; Auto falls back to TCG with a one-line warning.
pub fn resolve(choice: AccelChoice, tb_size_mib: u32) -> Result<Accel, Error> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg { tb_size_mib }),
        AccelChoice::Kvm => match kvm_unusable_reason() {
            None => Ok(Accel::Kvm),
            Some(reason) => Err(Error::KvmUnusable { reason }),
        },
        AccelChoice::Auto => match kvm_unusable_reason() {
            None => Ok(Accel::Kvm),
            Some(reason) => {
                tracing::warn!("KVM is not usable ({reason}): the VM runs under TCG software emulation, which is much slower");
                Ok(Accel::Tcg { tb_size_mib })
            }
        },
    }
}
