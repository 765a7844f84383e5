//! build: images from Dockerfiles. Parses the Dockerfile, runs each RUN
//! step in a container of the chosen isolation through the engine (so a
//! VM build's steps run in utility VMs, as Windows' `docker build
//! --isolation=hyperv`), copies COPY/ADD sources in from the host side,
//! turns each step's filesystem changes into a layer in the image store,
//! and caches every step's result under docker's key (parent state,
//! instruction, build args, copied content). Progress is reported as typed
//! events; the CLI words them. Also `commit`: a container's changes as an
//! image.

pub mod context;
pub mod dockerfile;
mod layer;
mod state;
mod steps;
pub mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use engine::isolation::IsolationChoice;
use engine::state::NetworkMode;
use engine::Engine;

pub use steps::commit;
pub use steps::CommitOptions;

/// What went wrong, and where in the Dockerfile.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error(".dockerignore line {line}: {message}")]
    Ignore { line: usize, message: String },
    #[error("build context {path}")]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read Dockerfile {path}")]
    Dockerfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Dockerfile line {line}: COPY source {path:?} is outside the build context")]
    OutsideContext { line: usize, path: String },
    #[error("Dockerfile line {line}: COPY source {path:?}: no such file or directory in the build context")]
    SourceMissing { line: usize, path: String },
    #[error("Dockerfile line {line}: {path:?}: no such file or directory in {from}")]
    StageSourceMissing {
        line: usize,
        path: String,
        from: String,
    },
    #[error("Dockerfile line {line}: `{text}` returned a non-zero code: {code}{last}")]
    RunFailed {
        line: usize,
        text: String,
        code: i32,
        /// `; last output: ...`, or nothing.
        last: String,
    },
    #[error("Dockerfile line {line}: `{text}` could not start: {message}")]
    RunStart {
        line: usize,
        text: String,
        message: String,
    },
    #[error("target stage {target:?} could not be found (stages: {stages})")]
    UnknownTarget { target: String, stages: String },
    #[error("Dockerfile line {line}: {source}")]
    Word {
        line: usize,
        #[source]
        source: words::WordError,
    },
    #[error("Dockerfile line {line}: {message}")]
    Step { line: usize, message: String },
    #[error("Dockerfile line {line}: {what}")]
    Io {
        line: usize,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Dockerfile line {line}")]
    Engine {
        line: usize,
        #[source]
        source: Box<engine::Error>,
    },
    #[error(transparent)]
    Outside(#[from] engine::Error),
    #[error("image store")]
    Image(#[source] image::Error),
    #[error("Dockerfile line {line}: No such image: {image} (--pull=never)")]
    NoPull { line: usize, image: String },
    #[error("invalid tag {tag:?}")]
    Tag {
        tag: String,
        #[source]
        source: image::ReferenceError,
    },
}

impl BuildError {
    /// The exit code docker's client prints for a failed RUN, else 1.
    pub fn run_exit_code(&self) -> Option<i32> {
        match self {
            BuildError::RunFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What `isola build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// `-f`; `<context>/Dockerfile` if None.
    pub dockerfile: Option<PathBuf>,
    /// `-t`, each `name[:tag]`.
    pub tags: Vec<String>,
    /// `--build-arg K=V`, or `K` alone (its value from the environment).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    /// Where RUN steps run.
    pub isolation: Option<IsolationChoice>,
    /// The network of RUN steps (`None`: the default network).
    pub network: Option<NetworkMode>,
    pub no_cache: bool,
    /// `--pull`: when FROM images are pulled (`Always`: even when present;
    /// `Never`: a missing one is an error).
    pub pull: engine::images::PullPolicy,
    /// `--label`, set on the image built.
    pub labels: BTreeMap<String, String>,
    /// `--platform` for FROM images (`linux/arm64`).
    pub platform: Option<String>,
    /// `SOURCE_DATE_EPOCH`: times in layers and the config clamped to it.
    pub source_date_epoch: Option<u64>,
    /// `-q`: no pull progress.
    pub quiet: bool,
}

/// What a build reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// `Step n/N : TEXT`.
    Step {
        n: usize,
        total: usize,
        text: &'a str,
    },
    /// The base image had ONBUILD triggers; they run now.
    Triggers { count: usize },
    /// The step's result came from the cache.
    UsingCache,
    /// A RUN step's container started.
    Running { container: &'a str },
    /// What the step's command wrote (stdout and stderr).
    Output(&'a [u8]),
    /// The step's container was removed.
    Removed { container: &'a str },
    /// The state after the step (`sha256:...`).
    Done { id: &'a str },
    /// A `--build-arg` no ARG declared.
    UnusedArgs(&'a [String]),
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub image: image::Image,
    /// Tags given, as stored (familiar form is the CLI's to print).
    pub tags: Vec<String>,
}

/// Build arguments every build knows without an ARG declaring them in
/// the global scope (the proxies are passed to RUN without one).
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Builds the image a Dockerfile describes.
pub fn build(
    engine: &Engine,
    opts: &BuildOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Built, BuildError> {
    for t in &opts.tags {
        image::Reference::parse(t).map_err(|source| BuildError::Tag {
            tag: t.clone(),
            source,
        })?;
    }
    let ctx = context::Context::open(&opts.context)?;
    let path = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| ctx.root().join("Dockerfile"));
    let text = std::fs::read_to_string(&path).map_err(|source| BuildError::Dockerfile {
        path: path.clone(),
        source,
    })?;
    let df = dockerfile::parse(&text)?;
    let mut b = steps::Builder::new(engine, opts, &ctx, df.escape, on)?;
    let total = df.step_count();
    let mut n = 0;
    for step in &df.global_args {
        n += 1;
        b.event(Event::Step {
            n,
            total,
            text: &step.text,
        });
        b.global_arg(step)?;
    }
    let names: Vec<Option<String>> = df
        .stages
        .iter()
        .map(|s| match &s.from.inst {
            dockerfile::Inst::From { name, .. } => name.clone(),
            _ => None,
        })
        .collect();
    let target = match &opts.target {
        None => df.stages.len() - 1,
        Some(t) => names
            .iter()
            .position(|n| n.as_deref() == Some(&t.to_lowercase()))
            .ok_or_else(|| BuildError::UnknownTarget {
                target: t.clone(),
                stages: {
                    let named: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
                    if named.is_empty() {
                        "none named".into()
                    } else {
                        named.join(", ")
                    }
                },
            })?,
    };
    let mut last = None;
    for stage in &df.stages[..=target] {
        n += 1;
        b.event(Event::Step {
            n,
            total,
            text: &stage.from.text,
        });
        b.from(&stage.from)?;
        let id = b.current_id();
        b.event(Event::Done { id: &id });
        for step in &stage.steps {
            n += 1;
            b.event(Event::Step {
                n,
                total,
                text: &step.text,
            });
            b.step(step)?;
        }
        let name = match &stage.from.inst {
            dockerfile::Inst::From { name, .. } => name.clone(),
            _ => None,
        };
        last = Some(b.end_stage(name));
    }
    let unused: Vec<String> = opts
        .build_args
        .keys()
        .filter(|k| !b.used_args().contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unused.is_empty() {
        b.event(Event::UnusedArgs(&unused));
    }
    let mut state = last.expect("at least one stage");
    state.add_labels(&opts.labels);
    let img = b.commit_state(&state)?;
    for t in &opts.tags {
        engine.tag_image(&img.id, t)?;
    }
    Ok(Built {
        image: img,
        tags: opts.tags.clone(),
    })
}

/// The names `used_args` can hold: declared ARGs given a value by `--build-arg`.
pub(crate) type ArgSet = BTreeSet<String>;

/// docker's classic builder output, the wire format both `docker build`
/// readers expect: the CLI prints it, the API sends it as `stream` lines.
/// Keeps track of whether a step's output ended its line.
#[derive(Debug)]
pub struct ClassicProgress {
    at_line_start: bool,
}

impl Default for ClassicProgress {
    fn default() -> ClassicProgress {
        ClassicProgress {
            at_line_start: true,
        }
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

impl ClassicProgress {
    /// The bytes `e` shows as.
    pub fn render(&mut self, e: &Event<'_>) -> Vec<u8> {
        if let Event::Output(b) = e {
            if !b.is_empty() {
                self.at_line_start = b.ends_with(b"\n");
            }
            return b.to_vec();
        }
        let mut out = String::new();
        if !self.at_line_start {
            out.push('\n');
            self.at_line_start = true;
        }
        let line = match e {
            Event::Step { n, total, text } => format!("Step {n}/{total} : {text}"),
            Event::Triggers { count } => format!(
                "# Executing {count} build trigger{}",
                if *count == 1 { "" } else { "s" }
            ),
            Event::UsingCache => " ---> Using cache".to_string(),
            Event::Running { container } => {
                format!(" ---> Running in {}", engine::ids::short(container))
            }
            Event::Removed { container } => format!(
                "Removing intermediate container {}",
                engine::ids::short(container)
            ),
            Event::Done { id } => format!(" ---> {}", short_id(id)),
            Event::UnusedArgs(args) => format!(
                "[Warning] One or more build-args [{}] were not consumed",
                args.join(" ")
            ),
            Event::Output(_) => unreachable!("handled above"),
        };
        out.push_str(&line);
        out.push('\n');
        out.into_bytes()
    }

    /// The lines that end a build that made `built`.
    pub fn finished(&mut self, built: &Built) -> Vec<String> {
        let mut lines = vec![format!(
            "Successfully built {}\n",
            short_id(&built.image.id)
        )];
        for t in &built.tags {
            let shown = image::Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.clone());
            lines.push(format!("Successfully tagged {shown}\n"));
        }
        lines
    }
}
