//! The commands that make and share images: `build`, `commit`, `push`
//! and `builder prune`. Parses their flags and words the build's events
//! as docker's classic builder prints them; the work is the `build`
//! crate's and the engine's.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use ::build::{BuildOptions, Event};
use anyhow::{bail, Context as _};
use engine::images::{ProgressMode, ProgressStream, PushRequest};
use engine::isolation::IsolationChoice;
use engine::state::NetworkMode;
use engine::Engine;

#[derive(Debug, clap::Subcommand)]
pub enum BuildCommand {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(BuilderSub),
}

#[derive(Debug, clap::Subcommand)]
pub enum BuilderSub {
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Remove the build cache.
    Prune(BuilderPruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Remove all of the cache (the only kind kept: accepted for docker's sake).
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag); repeatable.
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short, long = "file")]
    file: Option<PathBuf>,
    /// A build-time variable, KEY=VALUE (or KEY: its value from the environment).
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Build up to this stage (its name in `FROM ... AS name`).
    #[arg(long)]
    target: Option<String>,
    /// Where RUN steps run: process, vm (alias hyperv) or default.
    #[arg(long, default_value = "default")]
    isolation: String,
    /// Do not use the build cache.
    #[arg(long)]
    no_cache: bool,
    /// When to pull FROM images: missing (the default), always (also
    /// `--pull` alone), never.
    #[arg(long, value_name = "missing|always|never", default_value = "missing", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pull: String,
    /// Metadata for the image, KEY=VALUE; repeatable.
    #[arg(long)]
    label: Vec<String>,
    /// The platform of FROM images, os/arch[/variant].
    #[arg(long)]
    platform: Option<String>,
    /// The network of RUN steps: bridge (the default), none, host or a network's name.
    #[arg(long)]
    network: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// The build context: a directory.
    context: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author ("Jane <jane@example.com>").
    #[arg(short, long)]
    author: Option<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// A Dockerfile instruction applied to the image's config
    /// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR...); repeatable.
    #[arg(short, long)]
    change: Vec<String>,
    /// Pause the container while its changes are read.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container (name or id).
    container: String,
    /// REPOSITORY[:TAG] for the new image.
    reference: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Allow plain HTTP to this registry (host:port); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// NAME[:TAG] of a local image, naming the registry to push to
    /// (127.0.0.1:5000/app:1).
    name: String,
}

impl BuildCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        let engine = Engine::open(root)?;
        match self {
            BuildCommand::Build(a) => build(&engine, a),
            BuildCommand::Builder(BuilderSub::Build(a)) => build(&engine, *a),
            BuildCommand::Commit(a) => commit(&engine, a),
            BuildCommand::Push(a) => push(&engine, a),
            BuildCommand::Builder(BuilderSub::Prune(a)) => prune(&engine, a),
        }
    }
}

/// `--build-arg K=V`, or `K` alone: its value then comes from the
/// environment (None here), unlike a label's empty value.
fn build_args(items: &[String]) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (i.as_str(), None),
        };
        if k.is_empty() {
            bail!("invalid --build-arg {i:?}: expected KEY=VALUE");
        }
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// `SOURCE_DATE_EPOCH` from `--build-arg` (BuildKit's way) or the environment.
fn source_date_epoch(args: &BTreeMap<String, Option<String>>) -> anyhow::Result<Option<u64>> {
    let given = match args.get("SOURCE_DATE_EPOCH") {
        Some(v) => v
            .clone()
            .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok()),
        None => std::env::var("SOURCE_DATE_EPOCH").ok(),
    };
    match given.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => Ok(Some(v.parse().map_err(|_| {
            anyhow::anyhow!("invalid SOURCE_DATE_EPOCH {v:?}: expected seconds since 1970")
        })?)),
    }
}

/// `--pull`'s value: a policy, or docker's boolean (`true` is always).
fn pull_policy(v: &str) -> anyhow::Result<engine::images::PullPolicy> {
    Ok(match v {
        "true" => engine::images::PullPolicy::Always,
        "false" => engine::images::PullPolicy::Missing,
        other => other.parse()?,
    })
}

pub fn build(engine: &Engine, a: BuildArgs) -> anyhow::Result<u8> {
    let isolation: IsolationChoice = a.isolation.parse()?;
    let build_args = build_args(&a.build_arg)?;
    let labels = crate::networks::key_values("--label", &a.label)?;
    let network = match a.network.as_deref() {
        Some("") => bail!("invalid --network \"\": name a network, or none or host"),
        Some("default") | None => None,
        Some(n) => Some(NetworkMode::parse(n)),
    };
    let opts = BuildOptions {
        context: a.context,
        dockerfile: a.file,
        tags: a.tag,
        source_date_epoch: source_date_epoch(&build_args)?,
        build_args,
        target: a.target,
        isolation: Some(isolation),
        network,
        no_cache: a.no_cache,
        pull: pull_policy(&a.pull)?,
        labels,
        platform: a.platform,
        quiet: a.quiet,
    };
    let quiet = a.quiet;
    let mut out = io::stdout().lock();
    let mut progress = ::build::ClassicProgress::default();
    let mut on = |e: Event<'_>| {
        if !quiet {
            let _ = out.write_all(&progress.render(&e));
            let _ = out.flush();
        }
    };
    let built = match ::build::build(engine, &opts, &mut on) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("isola: {}", runtime::error_chain(&e));
            return Ok(e
                .run_exit_code()
                .filter(|c| *c > 0 && *c < 256)
                .unwrap_or(1) as u8);
        }
    };
    let mut out = io::stdout().lock();
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &built.image.id)
            .with_context(|| format!("writing --iidfile {}", f.display()))?;
    }
    if quiet {
        writeln!(out, "{}", built.image.id)?;
    } else {
        for l in progress.finished(&built) {
            out.write_all(l.as_bytes())?;
        }
    }
    Ok(0)
}

fn commit(engine: &Engine, a: CommitArgs) -> anyhow::Result<u8> {
    let rec = engine.lookup(&a.container)?;
    let img = ::build::commit(
        engine,
        &rec,
        &::build::CommitOptions {
            reference: a.reference,
            message: a.message,
            author: a.author,
            changes: a.change,
            pause: a.pause,
        },
    )?;
    println!("{}", img.id);
    Ok(0)
}

fn push(engine: &Engine, a: PushArgs) -> anyhow::Result<u8> {
    let stream = ProgressStream::Stdout;
    let pushed = engine.push(&PushRequest {
        source: a.name.clone(),
        target: None,
        insecure_registries: a.insecure_registries,
        progress: Some(ProgressMode::detect_on(a.quiet, stream)),
        progress_stream: stream,
    })?;
    // The progress ends with the digest line; quiet, only the reference.
    if a.quiet {
        println!("{}", pushed.reference);
    }
    Ok(0)
}

fn prune(engine: &Engine, a: BuilderPruneArgs) -> anyhow::Result<u8> {
    let _ = a.all;
    if !a.force {
        print!(
            "WARNING! This will remove all build cache.\nAre you sure you want to continue? [y/N] "
        );
        io::stdout().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = image::store::Store::open(engine.root())?;
    let (deleted, report) = store.prune_build_cache()?;
    if !deleted.is_empty() {
        println!("Deleted build cache objects:");
        for d in &deleted {
            println!("{}", d.strip_prefix("sha256:").unwrap_or(d));
        }
    }
    println!(
        "Total reclaimed space: {}",
        crate::images::human_size(report.reclaimed_bytes)
    );
    Ok(0)
}
