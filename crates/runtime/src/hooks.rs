//! hooks: runs OCI lifecycle hooks (a program, its args and env, the
//! container's state JSON on stdin, an optional timeout). Which hooks run
//! when, and in which namespace, is decided by the callers.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} hook {path}: start")]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {path}: exited with {status}{}", stderr_suffix(.stderr))]
    Failed {
        kind: &'static str,
        path: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{kind} hook {path}: killed after its timeout of {seconds}s")]
    Timeout {
        kind: &'static str,
        path: PathBuf,
        seconds: i64,
    },
    #[error("{kind} hook {path}: wait")]
    Wait {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn stderr_suffix(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

/// The environment of a hook that has no `env` of its own, as runc gives
/// it: a hook's own `env` (even an empty one) replaces it.
#[derive(Debug, Clone, Copy)]
pub enum DefaultEnv<'a> {
    /// This process's environment: the runtime's, for the hooks that run in
    /// the runtime's namespaces (prestart, createRuntime, poststart, poststop).
    Inherit,
    /// The container process's environment, for the hooks that run in the
    /// container (createContainer, startContainer).
    Process(&'a [String]),
}

/// Runs `hooks` in order; stops at the first failure.
pub fn run_all(
    kind: &'static str,
    hooks: &[Hook],
    state_json: &str,
    env: DefaultEnv<'_>,
) -> Result<(), Error> {
    for h in hooks {
        run(kind, h, state_json, env)?;
    }
    Ok(())
}

/// Runs every one of `hooks`, in order, whatever the earlier ones did, and
/// returns their failures: poststart and poststop hooks, whose failures the
/// runtime spec has logged as warnings while the rest still run.
pub fn run_each(
    kind: &'static str,
    hooks: &[Hook],
    state_json: &str,
    env: DefaultEnv<'_>,
) -> Vec<Error> {
    hooks
        .iter()
        .filter_map(|h| run(kind, h, state_json, env).err())
        .collect()
}

/// Runs one hook to completion.
pub fn run(
    kind: &'static str,
    hook: &Hook,
    state_json: &str,
    env: DefaultEnv<'_>,
) -> Result<(), Error> {
    let path = hook.path().clone();
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    let own = hook.env().as_deref();
    let vars = match (own, env) {
        (Some(own), _) => Some(own),
        (None, DefaultEnv::Process(p)) => Some(p),
        (None, DefaultEnv::Inherit) => None,
    };
    if let Some(vars) = vars {
        cmd.env_clear();
        for kv in vars {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        kind,
        path: path.clone(),
        source,
    })?;
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut stdin = StdinFeed::new(child.stdin.take(), state_json.as_bytes());
    let mut stderr = StderrHead::new(child.stderr.take());
    let status = loop {
        // Both pipes are served while the hook runs, without blocking: a
        // hook that reads no stdin, or fills stderr, would otherwise stop
        // us, and its timeout with us.
        stdin.feed();
        stderr.drain();
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(source) => {
                return Err(Error::Wait {
                    kind,
                    path: path.clone(),
                    source,
                })
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                kind,
                path,
                seconds: hook.timeout().unwrap_or(0),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        stderr.drain();
        return Err(Error::Failed {
            kind,
            path,
            status,
            stderr: stderr.text(),
        });
    }
    Ok(())
}

/// The state JSON on its way into a hook's stdin; the pipe is closed once
/// all of it is written (the hook then reads EOF), or when the hook stops
/// reading (EPIPE: a hook need not read its stdin).
struct StdinFeed<'a> {
    pipe: Option<std::process::ChildStdin>,
    rest: &'a [u8],
}

impl<'a> StdinFeed<'a> {
    fn new(pipe: Option<std::process::ChildStdin>, data: &'a [u8]) -> StdinFeed<'a> {
        if let Some(p) = &pipe {
            set_nonblocking(p);
        }
        StdinFeed { pipe, rest: data }
    }

    /// Writes what the pipe takes now, without waiting.
    fn feed(&mut self) {
        let Some(pipe) = &mut self.pipe else { return };
        while !self.rest.is_empty() {
            match pipe.write(self.rest) {
                Ok(0) => break,
                Ok(n) => self.rest = &self.rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.pipe = None;
    }
}

fn set_nonblocking(fd: &impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(
        fd.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
}

/// The first bytes a hook writes to stderr (enough for an error message);
/// the rest is read and dropped so that the hook never blocks on the pipe.
struct StderrHead {
    pipe: Option<std::process::ChildStderr>,
    head: Vec<u8>,
}

const STDERR_KEPT: usize = 400;

impl StderrHead {
    fn new(pipe: Option<std::process::ChildStderr>) -> StderrHead {
        // Non-blocking: a process the hook left behind may hold the pipe
        // open after the hook itself exited.
        if let Some(p) = &pipe {
            set_nonblocking(p);
        }
        StderrHead {
            pipe,
            head: Vec::new(),
        }
    }

    /// Reads what the pipe holds now, without waiting.
    fn drain(&mut self) {
        use std::io::Read;
        let Some(pipe) = &mut self.pipe else { return };
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = STDERR_KEPT.saturating_sub(self.head.len());
                    self.head.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// What was kept, as text (a character cut at the end is replaced).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_and_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {0}; echo \" $X\" >> {0}", out.display())],
            "env": ["X=from-env"]
        }));
        run("test", &h, r#"{"id":"c"}"#, DefaultEnv::Inherit).unwrap();
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c\"} from-env\n"
        );
    }

    #[test]
    fn failure_and_timeout_are_reported() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo oops >&2; exit 3"]}),
        );
        let e = run("poststop", &h, "{}", DefaultEnv::Inherit)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("poststop hook /bin/sh") && e.contains("oops"),
            "{e}"
        );
        let h =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}));
        assert!(matches!(
            run("prestart", &h, "{}", DefaultEnv::Inherit),
            Err(Error::Timeout { .. })
        ));
    }

    #[test]
    fn a_hook_that_floods_stderr_is_waited_for_and_reported() {
        // 1 MiB of 'é' (two bytes each) is more than a pipe holds: the hook
        // exits only if its stderr is read while it runs, and the kept head
        // must end on a character boundary.
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", "yes é | head -c 1048576 >&2; exit 3"],
            // Only so that a regression fails instead of hanging.
            "timeout": 120
        }));
        match run("poststop", &h, "{}", DefaultEnv::Inherit) {
            Err(Error::Failed { status, stderr, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert!(stderr.starts_with("é\né\n"), "{stderr:?}");
                assert!(stderr.len() <= STDERR_KEPT + 3, "{}", stderr.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hook_that_reads_no_stdin_still_meets_its_timeout() {
        // 1 MiB of state is more than a pipe holds: writing it all before
        // waiting would block until the hook reads, which it never does.
        let state = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
        let h =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}));
        assert!(matches!(
            run("prestart", &h, &state, DefaultEnv::Inherit),
            Err(Error::Timeout { .. })
        ));
        // And a hook that reads it gets all of it, then EOF.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}", out.display())]
        }));
        run("prestart", &h, &state, DefaultEnv::Inherit).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), state);
    }

    use std::fs;
}
