//! `diff` and `export`: a container's filesystem, read from the host (both
//! isolation modes share the same snapshot). Parses flags and prints; the
//! engine reads the snapshot.

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
