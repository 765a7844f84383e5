//! devices: `linux.resources.devices` rules as cgroup v2 enforces them, an
//! eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE that the kernel runs on
//! every open and mknod of a device node by a task of the cgroup.
//!
//! The rules are first reduced the way the v1 device controller reduces
//! them ([`DeviceAccess`]: a default plus exceptions; an `a` rule resets
//! both), so a config means the same on v1 and v2, as runc's device filter
//! does. The program is then assembled from that reduced form. This module
//! only computes; loading and attaching are in `sys` (the bpf syscall).
//!
//! Why hand-assembled: the program is a handful of compare-and-jump
//! instructions built at run time from the container's rules. The Rust BPF
//! crates (aya, libbpf-rs) load programs compiled ahead of time into ELF
//! objects, which cannot express per-container rules without generating code
//! anyway; runc and crun generate the same instructions directly.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Access bits as the kernel passes them (BPF_DEVCG_ACC_*).
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device types as the kernel passes them (BPF_DEVCG_DEV_*).
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;

/// One exception: a device type (block or char; `None` for both), major
/// and minor (`None` for any) and the access bits it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl Exception {
    fn matches(&self, kind: u32, major: u32, minor: u32) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }

    fn same_device(&self, other: &Exception) -> bool {
        self.kind == other.kind && self.major == other.major && self.minor == other.minor
    }
}

/// The device controller's state: allow or deny by default, and the
/// exceptions to that default, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAccess {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

/// A rule that names an access letter other than r, w or m.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access {access:?} (letters r, w and m)")]
pub struct InvalidAccess {
    pub access: String,
}

fn access_bits(access: Option<&str>) -> Result<u32, InvalidAccess> {
    let Some(text) = access.filter(|a| !a.is_empty()) else {
        return Ok(ACC_ALL);
    };
    text.chars().try_fold(0, |bits, c| match c {
        'm' => Ok(bits | ACC_MKNOD),
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        _ => Err(InvalidAccess {
            access: text.to_string(),
        }),
    })
}

fn number(n: Option<i64>) -> Option<u32> {
    n.filter(|&n| n >= 0).and_then(|n| u32::try_from(n).ok())
}

impl DeviceAccess {
    /// What a cgroup without rules allows: everything (as a new v1 cgroup
    /// below an unrestricted parent).
    pub fn allow_all() -> DeviceAccess {
        DeviceAccess {
            default_allow: true,
            exceptions: Vec::new(),
        }
    }

    /// Applies `rules` in order, as writes to v1's devices.allow and
    /// devices.deny would. FIFO rules (`p`) are skipped: the controller does
    /// not cover FIFOs.
    pub fn from_rules<'a>(
        rules: impl IntoIterator<Item = &'a LinuxDeviceCgroup>,
    ) -> Result<DeviceAccess, InvalidAccess> {
        let mut state = DeviceAccess::allow_all();
        for rule in rules {
            let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => None,
                LinuxDeviceType::B => Some(DEV_BLOCK),
                LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
                LinuxDeviceType::P => continue,
            };
            let access = access_bits(rule.access().as_deref())?;
            let Some(kind) = kind else {
                // "a" resets the controller, whatever numbers follow it (the
                // kernel reads only the first letter).
                state = DeviceAccess {
                    default_allow: rule.allow(),
                    exceptions: Vec::new(),
                };
                continue;
            };
            state.apply(
                rule.allow(),
                Exception {
                    kind: Some(kind),
                    major: number(rule.major()),
                    minor: number(rule.minor()),
                    access,
                },
            );
        }
        Ok(state)
    }

    /// One allow or deny write: against the default it adds an exception
    /// (merging access with an exception for the same devices), along the
    /// default it takes those access bits out of the exception for the same
    /// devices (the kernel's dev_exception_add / dev_exception_rm).
    fn apply(&mut self, allow: bool, rule: Exception) {
        let existing = self.exceptions.iter().position(|e| e.same_device(&rule));
        if allow != self.default_allow {
            match existing {
                Some(i) => self.exceptions[i].access |= rule.access,
                None => self.exceptions.push(rule),
            }
        } else if let Some(i) = existing {
            self.exceptions[i].access &= !rule.access;
            if self.exceptions[i].access == 0 {
                self.exceptions.remove(i);
            }
        }
    }

    /// Whether an access of `access` bits to the device is allowed: with a
    /// default deny, an exception must cover every bit asked for; with a
    /// default allow, any exception sharing a bit refuses it (the kernel's
    /// match_exception and match_exception_partial).
    pub fn allows(&self, kind: u32, major: u32, minor: u32, access: u32) -> bool {
        let matching = self
            .exceptions
            .iter()
            .filter(|e| e.matches(kind, major, minor));
        if self.default_allow {
            !matching.into_iter().any(|e| e.access & access != 0)
        } else {
            matching.into_iter().any(|e| access & !e.access == 0)
        }
    }

    /// The cgroup device program deciding as [`DeviceAccess::allows`] does.
    pub fn program(&self) -> Vec<Insn> {
        let mut p = vec![
            // r2 = ctx->access_type (access << 16 | type), r3 = type, r4 = access
            Insn::ldx_w(2, 1, 0),
            Insn::mov64_reg(3, 2),
            Insn::and64_imm(3, 0xffff),
            Insn::mov64_reg(4, 2),
            Insn::rsh64_imm(4, 16),
            // r5 = ctx->major, r6 = ctx->minor
            Insn::ldx_w(5, 1, 4),
            Insn::ldx_w(6, 1, 8),
        ];
        let verdict = i32::from(!self.default_allow);
        for e in &self.exceptions {
            let mut tests: Vec<(u8, Option<u32>)> = vec![(3, e.kind), (5, e.major), (6, e.minor)];
            tests.retain(|(_, v)| v.is_some());
            // Each test jumps past the rest of the block when it fails: its
            // offset counts the instructions left after it.
            let block_len = tests.len() + 5;
            for (i, (reg, value)) in tests.iter().enumerate() {
                let after = block_len - i - 1;
                p.push(Insn::jne_imm(*reg, value.unwrap_or(0) as i32, after as i16));
            }
            p.push(Insn::mov64_reg(7, 4));
            if self.default_allow {
                // Refused when the access shares a bit with the exception.
                p.push(Insn::and64_imm(7, e.access as i32));
                p.push(Insn::jeq_imm(7, 0, 2));
            } else {
                // Allowed when the exception covers every bit asked for.
                p.push(Insn::and64_imm(7, (!e.access & ACC_ALL) as i32));
                p.push(Insn::jne_imm(7, 0, 2));
            }
            p.push(Insn::mov64_imm(0, verdict));
            p.push(Insn::exit());
        }
        p.push(Insn::mov64_imm(0, i32::from(self.default_allow)));
        p.push(Insn::exit());
        p
    }
}

/// The devices every container may use whatever its config says (runc's
/// list): mknod of any device, /dev/null, zero, full, random, urandom, tty,
/// console, ptmx and the pty slaves. Config rules come first, so a
/// config's "deny all" does not take these away.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major, minor, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
    ]
}

/// One eBPF instruction (struct bpf_insn): opcode, dst and src registers
/// (4 bits each), a signed offset and a signed immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used above (linux/bpf.h, linux/bpf_common.h).
pub const LDX_MEM_W: u8 = 0x61;
pub const ALU64_AND_K: u8 = 0x57;
pub const ALU64_RSH_K: u8 = 0x77;
pub const ALU64_MOV_K: u8 = 0xb7;
pub const ALU64_MOV_X: u8 = 0xbf;
pub const JMP_JEQ_K: u8 = 0x15;
pub const JMP_JNE_K: u8 = 0x55;
pub const JMP_EXIT: u8 = 0x95;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    /// The instruction as the kernel reads a struct bpf_insn: code, then
    /// dst_reg in the low and src_reg in the high nibble (the bitfield
    /// order of little-endian machines, the only ones isola builds for),
    /// then off and imm in native byte order.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
    pub fn dst(&self) -> usize {
        usize::from(self.regs & 0x0f)
    }
    pub fn src(&self) -> usize {
        usize::from(self.regs >> 4)
    }
    fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(LDX_MEM_W, dst, src, off, 0)
    }
    fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::new(ALU64_MOV_X, dst, src, 0, 0)
    }
    fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_MOV_K, dst, 0, 0, imm)
    }
    fn and64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_AND_K, dst, 0, 0, imm)
    }
    fn rsh64_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(ALU64_RSH_K, dst, 0, 0, imm)
    }
    fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP_JNE_K, dst, 0, off, imm)
    }
    fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP_JEQ_K, dst, 0, off, imm)
    }
    fn exit() -> Insn {
        Insn::new(JMP_EXIT, 0, 0, 0, 0)
    }
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
