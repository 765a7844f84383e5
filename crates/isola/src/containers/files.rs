//! `diff`, `export` and `cp`: a container's filesystem from the host (both
//! isolation modes share the same snapshot). Parses flags and prints, and
//! packs or unpacks the host side of `cp`; the engine reads and writes the
//! container's side.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};
use engine::Engine;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container.
    pub container: String,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    /// The container.
    pub container: String,
}

/// `A /path`, `C /path`, `D /path`: what the container changed, by path.
pub fn diff(engine: &Engine, args: DiffArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    let mut out = std::io::stdout().lock();
    for c in engine.changes(&rec)? {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(0)
}

/// The container's filesystem as a tar archive.
pub fn export(engine: &Engine, args: ExportArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&args.container)?;
    match &args.output {
        Some(path) => {
            // Written aside and renamed: a failed export leaves no half file.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(std::path::Path::new(".")))
                .with_context(|| format!("creating a file beside {}", path.display()))?;
            engine.export(&rec, &mut std::io::BufWriter::new(tmp.as_file_mut()))?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect stdout");
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            engine.export(&rec, &mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Archive mode: keep the files' owners (uid and gid).
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symbolic link SRC names (its target is copied).
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH, a host path, or - for a tar stream on stdin.
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - for a tar stream on stdout.
    pub dest: String,
}

/// `CONTAINER:PATH` as docker reads it: a colon before any slash (a host
/// path with a colon is written `./a:b`).
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// `isola cp`: a file or directory between the host and a container, in
/// either direction, as docker's.
pub fn cp(engine: &Engine, args: CpArgs) -> anyhow::Result<u8> {
    match (container_path(&args.src), container_path(&args.dest)) {
        (Some((c, path)), None) => {
            let rec = engine.lookup(c)?;
            copy_to_host(engine, &rec, path, &args)
        }
        (None, Some((c, path))) => {
            let rec = engine.lookup(c)?;
            copy_to_container(engine, &rec, path, &args)
        }
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (None, None) => bail!("must specify at least one container source (CONTAINER:PATH)"),
    }
}

fn copy_to_host(
    engine: &Engine,
    rec: &engine::store::ContainerRecord,
    path: &str,
    args: &CpArgs,
) -> anyhow::Result<u8> {
    if args.dest == "-" {
        if std::io::stdout().is_terminal() {
            bail!("cowardly refusing to write a tar archive to a terminal: redirect stdout");
        }
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        engine.copy_out(rec, path, args.follow_link, &mut out)?;
        out.flush()?;
        return Ok(0);
    }
    let dest = std::path::Path::new(&args.dest);
    // The archive goes through a pipe: the container side is read as it
    // is unpacked on the host, whatever its size.
    let (reader, mut writer) = std::io::pipe()?;
    let unpacked = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let r = engine.copy_out(rec, path, args.follow_link, &mut writer);
            drop(writer);
            r
        });
        let r = unpack_on_host(reader, dest, args.archive);
        let produced = producer
            .join()
            .map_err(|_| anyhow::anyhow!("copying panicked"))?;
        produced?;
        r
    });
    unpacked?;
    Ok(0)
}

/// Unpacks a `cp` archive at `dest`: into it when it is a directory, else
/// as `dest` (unpacked beside it, then renamed into place).
fn unpack_on_host(
    reader: impl std::io::Read,
    dest: &std::path::Path,
    keep_owner: bool,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owner);
    archive.set_overwrite(true);
    if dest.is_dir() {
        archive
            .unpack(dest)
            .with_context(|| format!("unpacking into {}", dest.display()))?;
        return Ok(());
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        bail!("no such directory: {}", parent.display());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".isola-cp-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    archive
        .unpack(tmp.path())
        .with_context(|| format!("unpacking beside {}", dest.display()))?;
    let top = std::fs::read_dir(tmp.path())?
        .next()
        .ok_or_else(|| anyhow::anyhow!("the container sent an empty archive"))??
        .path();
    std::fs::rename(&top, dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

fn copy_to_container(
    engine: &Engine,
    rec: &engine::store::ContainerRecord,
    path: &str,
    args: &CpArgs,
) -> anyhow::Result<u8> {
    if args.src == "-" {
        engine.copy_in(rec, path, &mut std::io::stdin().lock(), args.archive)?;
        return Ok(0);
    }
    let src = std::path::Path::new(&args.src);
    let meta = if args.follow_link {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("no such file or directory: {}", src.display()))?;
    let name = src
        .file_name()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let (reader, writer) = std::io::pipe()?;
    let copied = std::thread::scope(|s| {
        let producer = s.spawn(move || -> std::io::Result<()> {
            let mut tar = tar::Builder::new(writer);
            tar.follow_symlinks(false);
            if meta.is_dir() {
                tar.append_dir_all(&name, src)?;
            } else if args.follow_link {
                tar.append_file(&name, &mut std::fs::File::open(src)?)?;
            } else {
                tar.append_path_with_name(src, &name)?;
            }
            tar.finish()
        });
        let mut reader = reader;
        let r = engine.copy_in(rec, path, &mut reader, args.archive);
        drop(reader);
        let produced = producer
            .join()
            .map_err(|_| anyhow::anyhow!("copying panicked"))?;
        r?;
        produced.with_context(|| format!("reading {}", src.display()))
    });
    copied?;
    Ok(0)
}
