//! `run`, `create` and `start`: make a container, start its monitor, and
//! either print the id (detached) or attach and exit with the container's
//! exit code. A container whose start fails under `run` is removed again.

use std::time::Duration;

use engine::images::{self, PullPolicy};
use engine::store::ContainerRecord;
use engine::Engine;

use super::attach;
use super::flags::CreateFlags;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// The keys that detach from the container's terminal, leaving it running.
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    pub detach_keys: String,
    #[command(flatten)]
    pub flags: CreateFlags,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach stdout/stderr and exit with the container's exit code.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin too.
    #[arg(short, long)]
    pub interactive: bool,
    /// The keys that detach from the container's terminal, leaving it running.
    #[arg(long, default_value = attach::DEFAULT_DETACH_KEYS)]
    pub detach_keys: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// docker's exit codes for a container that could not run its command:
/// 127 when the command does not exist, 126 when it cannot be executed.
pub fn exit_code_for_start_error(message: &str) -> u8 {
    let m = message.to_ascii_lowercase();
    if m.contains("permission denied") && m.contains("exec") {
        126
    } else if m.contains("no such file") || m.contains("not found") && m.contains("exec") {
        127
    } else {
        125
    }
}

/// A start failure: the message, and the exit code to leave with.
pub fn start_failed(message: String) -> anyhow::Result<u8> {
    let code = exit_code_for_start_error(&message);
    eprintln!("isola: {message}");
    Ok(code)
}

/// Creates the container, pulling its image first as `--pull` says:
/// docker's messages and the pull's progress go to stderr (stdout is the
/// container's, or its id's).
fn create_pulling(engine: &Engine, flags: &CreateFlags) -> anyhow::Result<ContainerRecord> {
    let req = flags.to_request()?;
    let shown = || images::familiar_reference(&req.image);
    let platform = flags
        .platform
        .as_deref()
        .map(images::Platform::parse)
        .transpose()?;
    // With --platform, a local image of another platform counts as missing,
    // as docker has it.
    let local = |engine: &Engine| -> anyhow::Result<bool> {
        // has_image refuses a malformed reference, before any pull message.
        if !engine.has_image(&req.image)? {
            return Ok(false);
        }
        // The image itself only when a platform is asked for.
        Ok(match &platform {
            None => true,
            Some(p) => engine
                .find_image(&req.image)?
                .is_some_and(|img| images::matches(&img, p)),
        })
    };
    match flags.pull {
        PullPolicy::Always => pull(engine, &req.image, platform.clone(), flags.quiet)?,
        PullPolicy::Missing => {
            if !local(engine)? {
                eprintln!("Unable to find image '{}' locally", shown());
                pull(engine, &req.image, platform.clone(), flags.quiet)?;
            }
        }
        PullPolicy::Never => {
            if !engine.has_image(&req.image)? {
                anyhow::bail!("No such image: {}", shown());
            }
        }
    }
    if let Some(p) = &platform {
        if !local(engine)? {
            anyhow::bail!(
                "image {} was found but does not match the specified platform {}",
                shown(),
                p
            );
        }
    }
    Ok(engine.create(&req)?)
}

fn pull(
    engine: &Engine,
    reference: &str,
    platform: Option<images::Platform>,
    quiet: bool,
) -> anyhow::Result<()> {
    let stream = images::ProgressStream::Stderr;
    engine.pull(&images::PullRequest {
        reference: reference.to_string(),
        platform,
        progress: Some(images::ProgressMode::detect_on(quiet, stream)),
        progress_stream: stream,
        ..Default::default()
    })?;
    Ok(())
}

pub fn create(engine: &Engine, flags: CreateFlags) -> anyhow::Result<u8> {
    let rec = create_pulling(engine, &flags)?;
    println!("{}", rec.config.id);
    Ok(0)
}

pub fn run(engine: &Engine, args: RunArgs) -> anyhow::Result<u8> {
    let keys = attach::parse_detach_keys(&args.detach_keys)?;
    let rec = create_pulling(engine, &args.flags)?;
    if args.detach {
        let result = engine
            .start(&rec, false, None)
            .map_err(anyhow::Error::from)
            .and_then(|mut ready| Ok(ready.report()?));
        return match result {
            Ok(_) => {
                println!("{}", rec.config.id);
                Ok(0)
            }
            Err(e) => {
                let _ = engine.remove_with_volumes(&rec, true);
                start_failed(chain(&e))
            }
        };
    }
    let code = match run_attached(engine, &rec, args.flags.interactive, args.flags.tty, &keys) {
        // Detached: it runs on (and --rm removes it when it exits).
        Ok(attach::Outcome::Detached) => return Ok(0),
        Ok(attach::Outcome::Exited(c)) => Ok(c),
        Err(e) => Err(e),
    };
    if args.flags.rm {
        // The monitor removes the container; return once it is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while engine.store().container_dir(&rec.config.id).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    code
}

/// Starts `rec` with its monitor waiting for us, attaches, and returns the
/// container's exit code. On a start failure the container is removed.
fn run_attached(
    engine: &Engine,
    rec: &ContainerRecord,
    stdin: bool,
    tty: bool,
    detach_keys: &[u8],
) -> anyhow::Result<attach::Outcome> {
    let started = engine.start_attached(rec, tty.then(attach::terminal_size).flatten());
    let stream = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = engine.remove_with_volumes(rec, true);
            return start_failed(chain(&e.into())).map(attach::Outcome::Exited);
        }
    };
    attach::session(engine, rec, stream, stdin, tty, detach_keys)
}

pub fn start(engine: &Engine, args: StartArgs) -> anyhow::Result<u8> {
    if args.attach || args.interactive {
        if args.containers.len() != 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let keys = attach::parse_detach_keys(&args.detach_keys)?;
        let rec = engine.lookup(&args.containers[0])?;
        let stream = match engine
            .start_attached(&rec, rec.config.tty.then(attach::terminal_size).flatten())
        {
            Ok(s) => s,
            Err(e @ engine::Error::Monitor(_)) => return start_failed(chain(&e.into())),
            Err(e) => return Err(e.into()),
        };
        return Ok(attach::session(
            engine,
            &rec,
            stream,
            args.interactive && rec.config.open_stdin,
            rec.config.tty,
            &keys,
        )?
        .code());
    }
    let mut failed = false;
    for r in &args.containers {
        let result = engine
            .lookup(r)
            .map_err(anyhow::Error::from)
            .and_then(|rec| {
                if rec.state.status == engine::state::Status::Running {
                    return Ok(());
                }
                let mut ready = engine.start(&rec, false, None)?;
                ready.report()?;
                Ok(())
            });
        match result {
            Ok(()) => println!("{r}"),
            Err(e) => {
                eprintln!("isola: {}", chain(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// An error chain on one line, a repeated cause said once.
pub fn chain(e: &anyhow::Error) -> String {
    runtime::error_chain(e.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_exit_codes() {
        assert_eq!(
            exit_code_for_start_error("container setup: exec x: executable file not found"),
            127
        );
        assert_eq!(
            exit_code_for_start_error(
                "container setup: exec /etc/passwd: permission denied (not an executable file)"
            ),
            126
        );
        assert_eq!(exit_code_for_start_error("bringing up lo: EPERM"), 125);
    }
}
