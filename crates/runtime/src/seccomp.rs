//! seccomp: compiles an OCI `linux.seccomp` profile into a classic-BPF program
//! ([`compile`], in the parent, before fork: it allocates and calls libseccomp)
//! and installs it ([`install`], in the container's child just before execve:
//! one syscall, no allocation). It must not decide *when* the filter goes in
//! (process setup does: the kernel accepts it only with no_new_privs set or
//! with CAP_SYS_ADMIN still held) nor set no_new_privs itself.
//!
//! Why libseccomp and not seccompiler: an OCI profile (Docker's default one,
//! Kubernetes' RuntimeDefault) has a different action per rule (ERRNO with
//! several errno values, ALLOW, LOG, TRACE next to each other), several
//! architectures (x86_64 + x86 + x32), and syscalls named, not numbered.
//! seccompiler builds one filter with a single match action and a single
//! mismatch action for one architecture, and has no public name table; a
//! profile would need several stacked filters, whose combined semantics differ
//! from the profile's. libseccomp (what runc, crun and youki use) expresses all
//! of it: per-rule actions, multi-arch with per-arch syscall resolution,
//! argument comparisons including SCMP_CMP_MASKED_EQ. We use it only to
//! generate the BPF (`seccomp_export_bpf`), so the child needs nothing from it.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use std::path::Path;

use libseccomp::error::SeccompError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// The kernel's limit on one classic-BPF program (BPF_MAXINSNS).
const MAX_INSTRUCTIONS: usize = 4096;
/// Size of one `struct sock_filter` as libseccomp exports it.
const INSN_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("linux.seccomp.{field}: {value} is not supported by isola-runtime")]
    Unsupported { field: String, value: String },
    #[error("linux.seccomp.{field}: {value} is out of range ({reason})")]
    OutOfRange {
        field: String,
        value: u64,
        reason: &'static str,
    },
    #[error("libseccomp could not start a filter with default action {action:?}")]
    Init {
        action: ScmpAction,
        #[source]
        source: SeccompError,
    },
    #[error("linux.seccomp.architectures: libseccomp cannot add {arch:?}")]
    Arch {
        arch: Arch,
        #[source]
        source: SeccompError,
    },
    #[error("linux.seccomp.{field}: libseccomp rejected the rule for syscall {syscall:?}")]
    Rule {
        field: String,
        syscall: String,
        #[source]
        source: SeccompError,
    },
    #[error("cannot export the seccomp filter as BPF")]
    Export {
        #[source]
        source: SeccompError,
    },
    #[error("cannot read back the exported seccomp BPF program")]
    ExportIo {
        #[source]
        source: std::io::Error,
    },
    #[error("the compiled seccomp program has {len} instructions, over the kernel's limit of {MAX_INSTRUCTIONS} (shorten linux.seccomp.syscalls)")]
    TooLong { len: usize },
    #[error("a compiled seccomp program of {len} bytes is not whole BPF instructions of {INSN_SIZE} bytes")]
    NotInstructions { len: usize },
    #[error("loading the seccomp filter failed (the process needs no_new_privs or CAP_SYS_ADMIN)")]
    Install {
        #[source]
        source: std::io::Error,
    },
    #[error("linux.seccomp.listenerPath is missing but a rule's action is SCMP_ACT_NOTIFY (the notify fd needs a listener)")]
    NoListener,
}

/// A compiled seccomp filter, ready for [`install`]. Made in the parent so
/// that the child only has to hand it to the kernel.
#[derive(Debug, Clone)]
pub struct Program {
    filter: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl Program {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    /// Whether installing it yields a notify listener fd (SCMP_ACT_NOTIFY).
    pub fn has_listener(&self) -> bool {
        self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// The program as the kernel's `sock_filter` array in bytes (native
    /// endianness) and its seccomp(2) flags: how a host hands a program it
    /// compiled to a guest of its own architecture.
    pub fn to_bytes(&self) -> (Vec<u8>, u64) {
        let mut bytes = Vec::with_capacity(self.filter.len() * INSN_SIZE);
        for i in &self.filter {
            bytes.extend_from_slice(&i.code.to_ne_bytes());
            bytes.extend_from_slice(&[i.jt, i.jf]);
            bytes.extend_from_slice(&i.k.to_ne_bytes());
        }
        (bytes, self.flags)
    }

    /// The inverse of [`Program::to_bytes`]. The kernel checks the program
    /// itself when it is installed.
    pub fn from_bytes(bytes: &[u8], flags: u64) -> Result<Program, Error> {
        Ok(Program {
            filter: instructions(bytes)?,
            flags: flags as libc::c_ulong,
        })
    }
}

/// `bytes` as BPF instructions, at most [`MAX_INSTRUCTIONS`].
fn instructions(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, Error> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return Err(Error::NotInstructions { len: bytes.len() });
    }
    let filter: Vec<libc::sock_filter> = bytes
        .chunks_exact(INSN_SIZE)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    if filter.len() > MAX_INSTRUCTIONS {
        return Err(Error::TooLong { len: filter.len() });
    }
    Ok(filter)
}

/// [`compile`], through a cache of compiled programs in `cache_dir`: the
/// same profile (a container's default one, mostly) compiles once per
/// libseccomp version, instead of once per container (compiling docker's
/// allow list for three ABIs costs libseccomp ~10 ms). Entries are named by
/// the SHA-256 of the profile's JSON, the libseccomp version and the
/// architecture, written atomically; the directory is the state root's
/// (0700, root's), so only root could plant one, and the kernel checks
/// every program at install. A cache that cannot be read or written only
/// costs the compile.
pub fn compile_cached(profile: &LinuxSeccomp, cache_dir: &Path) -> Result<Program, Error> {
    use sha2::Digest;
    let version = libseccomp::ScmpVersion::current()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut hash = sha2::Sha256::new();
    hash.update(serde_json::to_vec(profile).unwrap_or_default());
    hash.update(version.as_bytes());
    hash.update(std::env::consts::ARCH.as_bytes());
    let key: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = cache_dir.join(format!("{key}.bpf"));
    if let Ok(data) = std::fs::read(&path) {
        if data.len() >= 8 {
            let flags = u64::from_ne_bytes(data[..8].try_into().unwrap_or_default());
            if let Ok(p) = Program::from_bytes(&data[8..], flags) {
                return Ok(p);
            }
        }
    }
    let program = compile(profile)?;
    let (bytes, flags) = program.to_bytes();
    let mut data = flags.to_ne_bytes().to_vec();
    data.extend_from_slice(&bytes);
    let tmp = cache_dir.join(format!(".{key}.{}", std::process::id()));
    let stored = std::fs::DirBuilder::new()
        .recursive(true)
        .create(cache_dir)
        .and_then(|()| std::fs::write(&tmp, &data))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = stored {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), error = %e, "caching a compiled seccomp profile");
    }
    Ok(program)
}

/// Compiles `profile` to BPF. Unknown syscall names are skipped (logged at
/// debug level), as runc does: profiles list syscalls newer than some kernels
/// and libseccomp versions. Everything else that cannot be honoured is an
/// error naming the field.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, Error> {
    if profile.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::Unsupported {
            field: "defaultAction".into(),
            value: "SCMP_ACT_NOTIFY (only a rule can notify)".into(),
        });
    }
    let notifies = profile
        .syscalls()
        .iter()
        .flatten()
        .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify);
    if notifies && profile.listener_path().is_none() {
        return Err(Error::NoListener);
    }
    let default_action = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultErrnoRet",
    )?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|source| Error::Init {
        action: default_action,
        source,
    })?;
    for &arch in profile.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch))
            .map_err(|source| Error::Arch { arch, source })?;
    }

    for (i, rule) in profile.syscalls().iter().flatten().enumerate() {
        let rule_action = action(
            rule.action(),
            rule.errno_ret(),
            &format!("syscalls[{i}].errnoRet"),
        )?;
        // libseccomp refuses rules whose action is the default one; they
        // change nothing, so skip them like runc does.
        if rule_action == default_action {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let mut comparisons = Vec::with_capacity(args.len());
        for (j, arg) in args.iter().enumerate() {
            comparisons.push(comparison(arg, &format!("syscalls[{i}].args[{j}]"))?);
        }
        // Several comparisons on the same argument cannot all hold in one
        // rule (libseccomp rejects it); runc turns them into one rule each
        // (an OR). Comparisons on distinct arguments stay one rule (an AND).
        let mut seen = [false; 6];
        let repeated = args
            .iter()
            .any(|a| std::mem::replace(&mut seen[a.index()], true));
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall name, rule skipped");
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, cmps: &[ScmpArgCompare]| {
                ctx.add_rule_conditional(rule_action, syscall, cmps)
                    .map(|_| ())
                    .map_err(|source| Error::Rule {
                        field: format!("syscalls[{i}]"),
                        syscall: name.clone(),
                        source,
                    })
            };
            if repeated {
                for cmp in &comparisons {
                    add(&mut ctx, std::slice::from_ref(cmp))?;
                }
            } else {
                add(&mut ctx, &comparisons)?;
            }
        }
    }

    let filter = export(&ctx)?;
    let flags = profile
        .flags()
        .iter()
        .flatten()
        .map(|flag| match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        })
        .fold(0, |acc, f| acc | f);
    // A notifying filter hands back a listener fd at install, which the
    // runtime passes on to linux.seccomp.listenerPath.
    let flags = if notifies {
        flags | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        flags
    };
    Ok(Program { filter, flags })
}

/// Installs `program` on the calling thread with seccomp(2). Safe to call in
/// a forked child: it allocates nothing. The caller must have set
/// no_new_privs or still hold CAP_SYS_ADMIN.
///
/// Returns the notify listener fd of a program with SCMP_ACT_NOTIFY rules.
pub fn install(program: &Program) -> Result<Option<OwnedFd>, Error> {
    let prog = libc::sock_fprog {
        // compile() guarantees len <= MAX_INSTRUCTIONS, which fits in u16.
        len: program.filter.len() as u16,
        filter: program.filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program.filter`, a live array of exactly
    // `len` instructions, for the duration of the call; the kernel copies it
    // and does not keep the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            program.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(Error::Install {
            source: std::io::Error::last_os_error(),
        });
    }
    if program.has_listener() {
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful call
        // returns a new fd that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }));
    }
    Ok(None)
}

/// Maps an OCI action; `errno_field` names its errnoRet.
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, Error> {
    let ret = |limit: u64, reason: &'static str| -> Result<u64, Error> {
        let value = u64::from(errno_ret.unwrap_or(libc::EPERM as u32));
        if value > limit {
            return Err(Error::OutOfRange {
                field: errno_field.to_string(),
                value,
                reason,
            });
        }
        Ok(value)
    };
    Ok(match action {
        // SCMP_ACT_KILL is libseccomp's (and the kernel's) KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(ret(4095, "the kernel caps an errno at 4095 (MAX_ERRNO)")? as i32)
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(
            u64::from(u16::MAX),
            "the kernel keeps 16 bits of SECCOMP_RET_DATA",
        )? as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn comparison(
    arg: &oci_spec::runtime::LinuxSeccompArg,
    field: &str,
) -> Result<ScmpArgCompare, Error> {
    let index = arg.index();
    if index > 5 {
        return Err(Error::OutOfRange {
            field: format!("{field}.index"),
            value: index as u64,
            reason: "syscalls take at most 6 arguments (0-5)",
        });
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // OCI (like libseccomp-golang): value is the mask, valueTwo the datum.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Exports the filter as raw `struct sock_filter`s. Debian 12's libseccomp
/// (2.5) lacks `seccomp_export_bpf_mem`, so it goes through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, Error> {
    let mut file: std::fs::File =
        nix::sys::memfd::memfd_create(c"isola-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|errno| Error::ExportIo {
                source: errno.into(),
            })?
            .into();
    ctx.export_bpf(&file)
        .map_err(|source| Error::Export { source })?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| Error::ExportIo { source })?;
    instructions(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Forks; the child sets no_new_privs, installs `program`, runs `check`
    /// and exits with its result. Returns how the child ended.
    fn in_filtered_child(program: &Program, check: fn() -> i32) -> WaitStatus {
        // SAFETY: the child only makes raw syscalls (prctl, seccomp, the
        // checked call) and _exit; it touches no lock another thread may hold.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // SAFETY: prctl with constant arguments; _exit never returns.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        libc::_exit(100);
                    }
                }
                let code = match install(program) {
                    Ok(_) => check(),
                    Err(_) => 101,
                };
                // SAFETY: ends the child without running the parent's atexit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    }

    #[test]
    fn compiled_programs_are_cached_and_a_bad_entry_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }));
        let first = compile_cached(&p, dir.path()).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(entries.len(), 1, "one cache entry");
        let again = compile_cached(&p, dir.path()).unwrap();
        assert_eq!(again.to_bytes(), first.to_bytes());
        assert_eq!(first.to_bytes(), compile(&p).unwrap().to_bytes());
        // A truncated entry is not trusted: the profile is compiled again.
        std::fs::write(entries[0].path(), [1u8, 2, 3]).unwrap();
        assert_eq!(
            compile_cached(&p, dir.path()).unwrap().to_bytes(),
            first.to_bytes()
        );
        // Another profile, another entry.
        let other = profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}),
        );
        compile_cached(&other, dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn denied_syscalls_return_the_configured_errno() {
        let program = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["getcwd", "mkdir", "mkdirat", "no_such_syscall_xyz"],
                 "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ]
        })))
        .unwrap();
        assert!(!program.is_empty());
        let status = in_filtered_child(&program, || {
            let mut buf = [0u8; 256];
            // SAFETY: buf is valid for 256 bytes.
            let cwd = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
            if !cwd.is_null() || errno() != libc::ENOSYS {
                return 1;
            }
            // SAFETY: a NUL-terminated path literal.
            let rc = unsafe { libc::mkdir(c"/tmp/isola-seccomp-must-not-exist".as_ptr(), 0o755) };
            if rc != -1 || errno() != libc::ENOSYS {
                return 2;
            }
            // An allowed syscall still works.
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } <= 0 {
                return 3;
            }
            0
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "{status:?}"
        );
        assert!(!std::path::Path::new("/tmp/isola-seccomp-must-not-exist").exists());

        // Through bytes and back (how a host hands its VM's guest a program),
        // the program filters the same.
        let (bytes, flags) = program.to_bytes();
        let again = Program::from_bytes(&bytes, flags).unwrap();
        assert_eq!(again.len(), program.len());
        let status = in_filtered_child(&again, || {
            let mut buf = [0u8; 256];
            // SAFETY: buf is valid for 256 bytes.
            let cwd = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
            i32::from(!cwd.is_null() || errno() != libc::ENOSYS)
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "{status:?}"
        );
        let err = Program::from_bytes(&bytes[..bytes.len() - 3], flags).unwrap_err();
        assert!(
            err.to_string().contains("not whole BPF instructions"),
            "{err}"
        );
    }

    #[test]
    fn argument_conditions_select_calls() {
        // close(fd) fails with ENOSYS only for fd == 9999 or fd & 0xff00 == 0x2700.
        let program = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 0, "value": 9999, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 65280, "valueTwo": 9984, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 2, "value": 0, "op": "SCMP_CMP_NE"}]},
            ]
        })))
        .unwrap();
        let status = in_filtered_child(&program, || {
            let close_errno = |fd| {
                // SAFETY: closing a descriptor number that is not open.
                unsafe { libc::close(fd) };
                errno()
            };
            if close_errno(9999) != libc::ENOSYS {
                return 1;
            }
            if close_errno(0x2701) != libc::ENOSYS {
                return 2;
            }
            if close_errno(0x2601) != libc::EBADF || close_errno(9000) != libc::EBADF {
                return 3;
            }
            // SAFETY: dup3 onto an unused descriptor number.
            if unsafe { libc::dup3(0, 900, libc::O_CLOEXEC) } != -1 || errno() != libc::EACCES {
                return 4;
            }
            // SAFETY: as above, flags 0 is not filtered.
            if unsafe { libc::dup3(0, 900, 0) } != 900 {
                return 5;
            }
            0
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "{status:?}"
        );
    }

    #[test]
    fn kill_process_action_kills_with_sigsys() {
        let program = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
        })))
        .unwrap();
        let status = in_filtered_child(&program, || {
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
            7
        });
        assert!(
            matches!(
                status,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{status:?}"
        );
    }

    #[test]
    fn default_errno_applies_to_unlisted_syscalls() {
        // Default ERRNO with defaultErrnoRet 22 (EINVAL) and an allow list
        // of what the child needs; mkdir is not listed.
        let program = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 22,
            "syscalls": [{"names": ["exit_group", "exit", "getpid"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        let status = in_filtered_child(&program, || {
            // SAFETY: a NUL-terminated path literal.
            let rc = unsafe { libc::mkdir(c"/tmp/isola-seccomp-default".as_ptr(), 0o755) };
            if rc != -1 || errno() != libc::EINVAL {
                return 1;
            }
            0
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "{status:?}"
        );
    }

    /// Docker's default profile in shape: ERRNO by default, an allow list
    /// of ~300 names (some unknown to this libseccomp or arch), three
    /// architectures, argument rules on personality and clone. It must fit
    /// the kernel's BPF limit and let a real program run.
    #[test]
    fn docker_like_allowlist_runs_a_program() {
        const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown \
            chown32 clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect \
            copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait \
            epoll_pwait2 epoll_wait eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 \
            fadvise64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchownat fcntl fdatasync \
            fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex \
            futex_waitv futimesat get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid \
            geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority \
            getrandom getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid \
            gettimeofday getuid getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch \
            io_cancel io_destroy io_getevents io_setup io_submit ioctl ioprio_get ioprio_set kill landlock_add_rule \
            lchown lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat \
            madvise membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap \
            mprotect mq_open mremap msgctl msgget msgrcv msgsnd msync munlock munmap nanosleep newfstatat \
            open openat openat2 pause pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6 \
            pwrite64 pwritev read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg \
            remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction \
            rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
            rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
            sched_yield seccomp select semctl semget semop send sendfile sendmmsg sendmsg sendto \
            set_robust_list set_thread_area set_tid_address setfsgid setfsuid setgid setgroups setitimer \
            setpgid setpriority setregid setresgid setresuid setreuid setrlimit setsid setsockopt setuid \
            shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 socket socketpair splice stat \
            statfs statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create \
            timer_delete timer_getoverrun timer_gettime timer_settime timerfd_create timerfd_gettime \
            timerfd_settime times tkill truncate ugetrlimit umask uname unlink unlinkat utime utimensat \
            utimes vfork wait4 waitid write writev arch_prctl modify_ldt not_a_syscall_at_all";
        let names: Vec<&str> = ALLOWED.split_whitespace().collect();
        let program = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": names, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ]
        })))
        .unwrap();
        assert!(
            program.len() > 100 && program.len() <= MAX_INSTRUCTIONS,
            "{}",
            program.len()
        );
        let status = in_filtered_child(&program, || {
            // A real program under the filter: busybox's shell runs a
            // pipeline (fork, exec, pipes) and exits 0; a namespace-creating
            // unshare(2) is refused with EPERM as it is not on the list.
            let args = [
                c"/bin/busybox".as_ptr(),
                c"sh".as_ptr(),
                c"-c".as_ptr(),
                c"echo ok | grep -q ok && ! unshare -n true 2>/dev/null".as_ptr(),
                std::ptr::null(),
            ];
            // SAFETY: NUL-terminated argv of C strings; execv only returns on error.
            unsafe { libc::execv(args[0], args.as_ptr()) };
            42
        });
        assert_eq!(
            status,
            WaitStatus::Exited(status.pid().unwrap(), 0),
            "{status:?}"
        );
    }

    #[test]
    fn unsupported_fields_are_named() {
        let err = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap_err();
        assert!(err.to_string().contains("listenerPath"), "{err}");
        let p = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .unwrap();
        assert!(p.has_listener());

        let err = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap_err();
        assert!(
            err.to_string().contains("syscalls[0].args[0].index"),
            "{err}"
        );

        let err = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000
        })))
        .unwrap_err();
        assert!(
            err.to_string().contains("defaultErrnoRet") && err.to_string().contains("4095"),
            "{err}"
        );

        // An unknown action is refused when the config is parsed, naming the value.
        let err = serde_json::from_value::<LinuxSeccomp>(serde_json::json!({
            "defaultAction": "SCMP_ACT_BOGUS"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_BOGUS"), "{err}");
    }
}
