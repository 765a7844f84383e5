//! Running a Dockerfile's steps: each step's result is a [`State`], cached
//! under docker's key (the parent state, the instruction's text, the
//! build arguments it sees, and for COPY/ADD what is copied). RUN runs
//! the command in a container of the build's isolation made from the
//! state so far and keeps its filesystem changes as a layer; COPY and ADD
//! write what they copy straight into a layer ([`crate::layer`]), reading
//! the image through a container that is never started; every other
//! instruction changes only the config.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use engine::attach::AttachEvent;
use engine::isolation::IsolationChoice;
use engine::state::NetworkMode;
use engine::store::ContainerRecord;
use engine::{CreateRequest, Engine};
use image::store::{CachedStep, DiffOptions, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::dockerfile::{self, CommandForm, Inst, Step};
use crate::layer::{Meta, Source, WriteError, Writer};
use crate::state::State;
use crate::words::{self, Vars};
use crate::{ArgSet, BuildError, BuildOptions, Event, PROXY_ARGS};

/// Paths the runtime makes in a container's rootfs to mount over: not a
/// step's changes.
const MOUNT_POINTS: [&str; 7] = [
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
    "/dev/shm",
];

/// How much of a failed RUN's output its error repeats.
const LAST_OUTPUT: usize = 4096;

pub(crate) struct Builder<'a> {
    engine: &'a Engine,
    store: Store,
    opts: &'a BuildOptions,
    ctx: &'a Context,
    escape: char,
    on: &'a mut dyn FnMut(Event<'_>),
    /// ARGs before the first FROM, with their values.
    global: Vars,
    /// Stages done: their names and states.
    stages: Vec<(Option<String>, State)>,
    cur: State,
    /// The stage's ARGs with values.
    args: Vars,
    /// Whether the stage set CMD (ENTRYPOINT then keeps it).
    cmd_set: bool,
    used: ArgSet,
}

/// The context paths a COPY or ADD without `--from` copies, resolved once
/// for its cache key and its work, and their digest.
struct Copied {
    paths: Vec<PathBuf>,
    digest: String,
}

/// A container the build made, removed when dropped (a failed step
/// leaves no container or snapshot behind).
struct StepContainer<'e> {
    engine: &'e Engine,
    rec: ContainerRecord,
}

impl Drop for StepContainer<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.remove(&self.rec, true) {
            tracing::warn!(id = %self.rec.config.id, error = %e, "removing a build container");
        }
    }
}

fn now(epoch: Option<u64>) -> String {
    let t = match epoch {
        Some(s) => chrono::DateTime::from_timestamp(s as i64, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn sha256(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    image::digest::finish(h)
}

/// The build's automatic platform arguments (BuildKit's), declared by
/// an ARG without a value.
fn platform_args(os: &str, arch: &str, variant: Option<&str>) -> Vars {
    let platform = engine::isolation::platform_string(os, arch, variant);
    let (hos, harch, hvar) = engine::isolation::host_platform();
    let host = engine::isolation::platform_string(&hos, &harch, hvar.as_deref());
    [
        ("TARGETPLATFORM", platform),
        ("TARGETOS", os.to_string()),
        ("TARGETARCH", arch.to_string()),
        ("TARGETVARIANT", variant.unwrap_or_default().to_string()),
        ("BUILDPLATFORM", host),
        ("BUILDOS", hos),
        ("BUILDARCH", harch),
        ("BUILDVARIANT", hvar.unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(line: usize, flag: &str, v: &str) -> Result<u64, BuildError> {
    humantime::parse_duration(v)
        .map(|d| d.as_nanos() as u64)
        .map_err(|e| BuildError::Step {
            line,
            message: format!("HEALTHCHECK --{flag}={v}: {e}"),
        })
}

/// `path` (absolute, or relative to `state`'s WORKDIR) as a clean
/// absolute path: WORKDIR's value and a COPY's destination.
fn in_workdir(state: &State, path: &str) -> String {
    let joined = Path::new(&state.workdir()).join(path);
    let cleaned = crate::context::clean(&joined.to_string_lossy()).unwrap_or_default();
    format!("/{}", cleaned.display())
}

fn owner_of(line: usize, spec: &str) -> BuildError {
    BuildError::Step {
        line,
        message: format!("--chown={spec}: no such user or group in the image"),
    }
}

impl<'a> Builder<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        opts: &'a BuildOptions,
        ctx: &'a Context,
        escape: char,
        on: &'a mut dyn FnMut(Event<'_>),
    ) -> Result<Builder<'a>, BuildError> {
        let store = Store::open(engine.root()).map_err(BuildError::Image)?;
        let (os, arch, variant) = engine::isolation::host_platform();
        Ok(Builder {
            engine,
            store,
            opts,
            ctx,
            escape,
            on,
            global: Vars::new(),
            stages: Vec::new(),
            cur: State::scratch(&os, &arch, variant.as_deref()),
            args: Vars::new(),
            cmd_set: false,
            used: ArgSet::new(),
        })
    }

    pub(crate) fn event(&mut self, e: Event<'_>) {
        (self.on)(e)
    }

    /// The id of the state so far (what `Step n/N` lines end with).
    pub(crate) fn current_id(&self) -> String {
        self.cur.id()
    }

    pub(crate) fn used_args(&self) -> &ArgSet {
        &self.used
    }

    /// The value an ARG `key` takes: `--build-arg`, else its default.
    fn arg_value(&mut self, key: &str, default: Option<String>) -> Option<String> {
        match self.opts.build_args.get(key) {
            Some(given) => {
                self.used.insert(key.to_string());
                given
                    .clone()
                    .or_else(|| std::env::var(key).ok())
                    .or(default)
            }
            None => default,
        }
    }

    fn word_err(line: usize) -> impl Fn(words::WordError) -> BuildError {
        move |source| BuildError::Word { line, source }
    }

    /// Variables a word sees: the stage's ARGs, then its ENV over them.
    fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        v.extend(self.cur.env());
        v
    }

    fn expand(&self, line: usize, s: &str) -> Result<String, BuildError> {
        words::expand(s, &self.vars(), self.escape).map_err(Self::word_err(line))
    }

    pub(crate) fn global_arg(&mut self, step: &Step) -> Result<(), BuildError> {
        let Inst::Arg(text) = &step.inst else {
            unreachable!("only ARG comes before FROM")
        };
        let pairs = words::pairs(text, &self.global, self.escape, false)
            .map_err(Self::word_err(step.line))?;
        for (k, default) in pairs {
            if let Some(v) = self.arg_value(&k, default) {
                self.global.insert(k, v);
            } else {
                self.global.remove(&k);
            }
        }
        Ok(())
    }

    fn image_state(&self, img: &image::Image) -> Result<State, BuildError> {
        let bytes = self.store.config_bytes(img).map_err(BuildError::Image)?;
        let config: Value = serde_json::from_slice(&bytes).map_err(|e| BuildError::Step {
            line: 0,
            message: format!("image {}: config: {e}", img.id),
        })?;
        let layers = self
            .store
            .layer_descriptors(img)
            .map_err(BuildError::Image)?;
        Ok(State { config, layers })
    }

    /// The image FROM (or COPY --from) names: found here, else pulled
    /// (always with `--pull`).
    fn base_image(
        &mut self,
        line: usize,
        name: &str,
        platform: Option<&str>,
    ) -> Result<image::Image, BuildError> {
        let platform = platform
            .map(engine::images::Platform::parse)
            .transpose()
            .map_err(|e| BuildError::Step {
                line,
                message: e.to_string(),
            })?;
        let engine_err = |source: engine::Error| BuildError::Engine {
            line,
            source: Box::new(source),
        };
        let local = self.engine.find_image(name).map_err(engine_err)?;
        let fits = |img: &image::Image| {
            platform
                .as_ref()
                .is_none_or(|p| engine::images::matches(img, p))
        };
        use engine::images::PullPolicy;
        if let Some(img) = local.filter(|i| self.opts.pull != PullPolicy::Always && fits(i)) {
            return Ok(img);
        }
        if self.opts.pull == PullPolicy::Never {
            return Err(BuildError::NoPull {
                line,
                image: name.to_string(),
            });
        }
        let stream = engine::images::ProgressStream::Stdout;
        let pulled = self
            .engine
            .pull(&engine::images::PullRequest {
                reference: name.to_string(),
                platform,
                progress: Some(engine::images::ProgressMode::detect_on(
                    self.opts.quiet,
                    stream,
                )),
                progress_stream: stream,
                ..Default::default()
            })
            .map_err(engine_err)?;
        self.engine
            .find_image(&pulled.image.id)
            .map_err(engine_err)?
            .ok_or_else(|| BuildError::Step {
                line,
                message: format!("{name}: pulled, then not found"),
            })
    }

    fn stage_named(&self, name: &str) -> Option<&State> {
        let lower = name.to_lowercase();
        if let Some((_, s)) = self
            .stages
            .iter()
            .find(|(n, _)| n.as_deref() == Some(&lower))
        {
            return Some(s);
        }
        name.parse::<usize>()
            .ok()
            .and_then(|i| self.stages.get(i))
            .map(|(_, s)| s)
    }

    pub(crate) fn from(&mut self, step: &Step) -> Result<(), BuildError> {
        let Inst::From {
            image, platform, ..
        } = &step.inst
        else {
            unreachable!("a stage starts with FROM")
        };
        let line = step.line;
        let mut vars = self.global.clone();
        if let Some(p) = &self.opts.platform {
            vars.extend(platform_args_of(p));
        }
        let name = words::expand(image, &vars, self.escape).map_err(Self::word_err(line))?;
        if name.is_empty() {
            return Err(BuildError::Step {
                line,
                message: format!("FROM {image}: the image name is empty (an ARG used before FROM must be declared before it, with a value)"),
            });
        }
        let platform = platform
            .as_deref()
            .map(|p| words::expand(p, &vars, self.escape).map_err(Self::word_err(line)))
            .transpose()?
            .or_else(|| self.opts.platform.clone());
        self.args = Vars::new();
        self.cmd_set = false;
        self.cur = if name.eq_ignore_ascii_case("scratch") {
            let (os, arch, variant) = match &platform {
                Some(p) => {
                    let p = engine::images::Platform::parse(p).map_err(|e| BuildError::Step {
                        line,
                        message: e.to_string(),
                    })?;
                    (p.os, p.architecture, p.variant)
                }
                None => engine::isolation::host_platform(),
            };
            State::scratch(&os, &arch, variant.as_deref())
        } else if let Some(s) = self.stage_named(&name) {
            s.clone()
        } else {
            let img = self.base_image(line, &name, platform.as_deref())?;
            self.image_state(&img)?
        };
        let triggers = self.cur.strings("OnBuild").unwrap_or_default();
        if !triggers.is_empty() {
            self.cur.cfg().insert("OnBuild".into(), Value::Null);
            self.event(Event::Triggers {
                count: triggers.len(),
            });
            for t in triggers {
                let mut trigger = dockerfile::parse_one(&t).map_err(|e| BuildError::Step {
                    line,
                    message: format!("ONBUILD trigger {t:?}: {e}"),
                })?;
                trigger.line = line;
                self.step(&trigger)?;
            }
        }
        Ok(())
    }

    /// Ends a stage: its state, kept for later `COPY --from` and FROM.
    pub(crate) fn end_stage(&mut self, name: Option<String>) -> State {
        let s = self.cur.clone();
        self.stages.push((name, s.clone()));
        s
    }

    /// The ARGs a RUN sees as environment variables: the stage's ARGs
    /// the ENV does not set, and proxies given by `--build-arg`.
    fn run_args(&self) -> BTreeMap<String, String> {
        let env = self.cur.env();
        let mut out: BTreeMap<String, String> = self
            .args
            .iter()
            .filter(|(k, _)| !env.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for p in PROXY_ARGS {
            if let Some(Some(v)) = self.opts.build_args.get(p) {
                out.insert(p.to_string(), v.clone());
            }
        }
        out
    }

    /// Runs one step: from the cache when its key is there, else for real.
    pub(crate) fn step(&mut self, step: &Step) -> Result<(), BuildError> {
        let line = step.line;
        if matches!(step.inst, Inst::Arg(_)) {
            // ARG changes what later steps see, not the image.
            return self.arg(step);
        }
        let mut copied = None;
        // What else the key holds: the args a RUN sees, what COPY copies.
        let extra = match &step.inst {
            Inst::Run(_) => serde_json::to_string(&self.run_args()).expect("maps serialize"),
            Inst::Copy {
                from: None, srcs, ..
            } => {
                let mut paths = Vec::new();
                for s in srcs {
                    let s = self.expand(line, s)?;
                    paths.extend(self.ctx.resolve(&s, line)?);
                }
                let digest = self.ctx.digest(&paths).map_err(|source| BuildError::Io {
                    line,
                    what: "reading the build context".into(),
                    source,
                })?;
                let extra = digest.clone();
                copied = Some(Copied { paths, digest });
                extra
            }
            Inst::Copy { from: Some(f), .. } => {
                let f = self.expand(line, f)?;
                match self.stage_named(&f) {
                    Some(s) => s.id(),
                    None => f,
                }
            }
            _ => String::new(),
        };
        let vars = serde_json::to_string(&self.vars()).expect("maps serialize");
        let key = sha256(&[&self.cur.id(), &step.text, &vars, &extra]);
        if !self.opts.no_cache {
            if let Some(hit) = self.store.cached_step(&key).map_err(BuildError::Image)? {
                self.cur = State {
                    config: serde_json::from_str(&hit.config).map_err(|e| BuildError::Step {
                        line,
                        message: format!("build cache entry {key}: {e}"),
                    })?,
                    layers: hit.layers,
                };
                if matches!(step.inst, Inst::Cmd(_)) {
                    self.cmd_set = true;
                }
                self.event(Event::UsingCache);
                let id = self.cur.id();
                self.event(Event::Done { id: &id });
                return Ok(());
            }
        }
        self.run_step(step, copied)?;
        let entry = CachedStep {
            config: serde_json::to_string(&self.cur.config).expect("configs serialize"),
            layers: self.cur.layers.clone(),
            diff_ids: self.cur.diff_ids(),
        };
        self.store
            .cache_step(&key, &entry)
            .map_err(BuildError::Image)?;
        let id = self.cur.id();
        self.event(Event::Done { id: &id });
        Ok(())
    }

    fn arg(&mut self, step: &Step) -> Result<(), BuildError> {
        let Inst::Arg(text) = &step.inst else {
            unreachable!()
        };
        let (os, arch, variant) = self.cur.platform();
        let automatic = platform_args(&os, &arch, variant.as_deref());
        let pairs = words::pairs(text, &self.vars(), self.escape, false)
            .map_err(Self::word_err(step.line))?;
        for (k, default) in pairs {
            // A declared global ARG's value is this one's default.
            let default = default
                .or_else(|| self.global.get(&k).cloned())
                .or_else(|| automatic.get(&k).cloned());
            match self.arg_value(&k, default) {
                Some(v) => self.args.insert(k, v),
                None => self.args.remove(&k),
            };
        }
        let id = self.cur.id();
        self.event(Event::Done { id: &id });
        Ok(())
    }

    fn created(&self) -> String {
        now(self.opts.source_date_epoch)
    }

    /// A metadata step's history entry: docker's `#(nop)` form.
    fn nop(&mut self, what: &str) {
        let created = self.created();
        self.cur
            .history(&created, &format!("/bin/sh -c #(nop)  {what}"), true);
    }

    fn run_step(&mut self, step: &Step, copied: Option<Copied>) -> Result<(), BuildError> {
        match &step.inst {
            Inst::Run(c) => self.run(step, c),
            Inst::Copy {
                add,
                from,
                chown,
                chmod,
                srcs,
                dest,
            } => self.copy(
                step,
                *add,
                from.as_deref(),
                chown.as_deref(),
                chmod.as_deref(),
                srcs,
                dest,
                copied,
            ),
            _ => {
                let vars = self.vars();
                let shown = apply_meta(&mut self.cur, step, &vars, self.escape, &mut self.cmd_set)?;
                self.nop(&shown);
                Ok(())
            }
        }
    }

    /// A container of the state so far, not started.
    fn container(
        &self,
        line: usize,
        state: &State,
        cmd: Vec<String>,
        env: Vec<String>,
        network: Option<NetworkMode>,
        isolation: Option<IsolationChoice>,
    ) -> Result<StepContainer<'a>, BuildError> {
        let base = state.image().map_err(|e| BuildError::Step {
            line,
            message: format!("the image config so far: {e}"),
        })?;
        let rec = self
            .engine
            .create(&CreateRequest {
                image: base.id.clone(),
                cmd,
                entrypoint: Some(Vec::new()),
                env,
                network,
                isolation,
                base: Some(Box::new(base)),
                ..Default::default()
            })
            .map_err(|source| BuildError::Engine {
                line,
                source: Box::new(source),
            })?;
        Ok(StepContainer {
            engine: self.engine,
            rec,
        })
    }

    /// A container of `state` whose files a COPY reads or writes from the
    /// host side: never started, so its isolation and network are moot.
    fn files_only(&self, state: &State, line: usize) -> Result<StepContainer<'a>, BuildError> {
        self.container(
            line,
            state,
            vec!["true".into()],
            Vec::new(),
            Some(NetworkMode::None),
            Some(IsolationChoice::Explicit(
                engine::isolation::Isolation::Process,
            )),
        )
    }

    /// The container's changes as a new layer on the state.
    fn add_layer(
        &mut self,
        line: usize,
        c: &StepContainer<'_>,
        created_by: &str,
    ) -> Result<(), BuildError> {
        let layer = self
            .store
            .layer_from_snapshot(
                &c.rec.config.snapshot_key,
                &DiffOptions {
                    clamp_mtime: self.opts.source_date_epoch,
                    mount_points: MOUNT_POINTS.iter().map(|s| s.to_string()).collect(),
                },
            )
            .map_err(|e| BuildError::Step {
                line,
                message: format!("making the layer: {e}"),
            })?;
        self.push_layer(layer, created_by);
        Ok(())
    }

    /// A new layer on the state, with its history entry.
    fn push_layer(&mut self, layer: image::store::NewLayer, created_by: &str) {
        self.cur.push_layer(layer.descriptor, &layer.diff_id);
        let created = self.created();
        self.cur.history(&created, created_by, false);
    }

    fn run(&mut self, step: &Step, c: &CommandForm) -> Result<(), BuildError> {
        let line = step.line;
        let cmd = command(c, &self.cur);
        let args = self.run_args();
        let env: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let c = self.container(
            line,
            &self.cur,
            cmd.clone(),
            env.clone(),
            self.opts.network.clone(),
            self.opts.isolation,
        )?;
        let id = c.rec.config.id.clone();
        self.event(Event::Running { container: &id });
        let mut stream =
            self.engine
                .start_attached(&c.rec, None)
                .map_err(|e| BuildError::RunStart {
                    line,
                    text: step.text.clone(),
                    message: error_chain(&e),
                })?;
        let mut last: Vec<u8> = Vec::new();
        let code = loop {
            let ev = stream.next_event().map_err(|source| BuildError::Io {
                line,
                what: format!("reading the output of {id}"),
                source,
            })?;
            match ev {
                Some(AttachEvent::Stdout(b)) | Some(AttachEvent::Stderr(b)) => {
                    last.extend_from_slice(&b);
                    if last.len() > 2 * LAST_OUTPUT {
                        last.drain(..last.len() - LAST_OUTPUT);
                    }
                    self.event(Event::Output(&b));
                }
                Some(AttachEvent::Exit(code)) => break code,
                Some(AttachEvent::Failed(message)) => {
                    return Err(BuildError::RunStart {
                        line,
                        text: step.text.clone(),
                        message,
                    })
                }
                None => {
                    break self
                        .engine
                        .exit_code_after_disconnect(&id)
                        .ok()
                        .flatten()
                        .unwrap_or(255)
                }
            }
        };
        // Stopped for good (a VM's file server done) before its upper
        // directory is read.
        self.engine
            .wait_inactive(&id, Some(std::time::Duration::from_secs(30)))
            .map_err(|source| BuildError::Engine {
                line,
                source: Box::new(source),
            })?;
        if code != 0 {
            let text = String::from_utf8_lossy(&last);
            let tail = text.trim_end().lines().last().unwrap_or_default().trim();
            return Err(BuildError::RunFailed {
                line,
                text: step.text.clone(),
                code,
                last: if tail.is_empty() {
                    String::new()
                } else {
                    format!("; last output: {tail}")
                },
            });
        }
        let shown = if args.is_empty() {
            cmd.join(" ")
        } else {
            format!("|{} {} {}", args.len(), env.join(" "), cmd.join(" "))
        };
        self.add_layer(line, &c, &shown)?;
        drop(c);
        self.event(Event::Removed { container: &id });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        step: &Step,
        add: bool,
        from: Option<&str>,
        chown: Option<&str>,
        chmod: Option<&str>,
        srcs: &[String],
        dest: &str,
        copied: Option<Copied>,
    ) -> Result<(), BuildError> {
        let line = step.line;
        let keyword = if add { "ADD" } else { "COPY" };
        let syntax = |message: String| BuildError::Step { line, message };
        let dest_word = self.expand(line, dest)?;
        let into_dir = dest_word.ends_with('/') || srcs.len() > 1;
        let dest_abs = in_workdir(&self.cur, &dest_word);
        let mode = chmod
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .map_err(|_| syntax(format!("{keyword} --chmod={m}: not an octal mode")))
            })
            .transpose()?;
        if mode.is_some_and(|m| m > 0o7777) {
            return Err(syntax(format!(
                "{keyword} --chmod={}: not a file mode",
                chmod.unwrap_or_default()
            )));
        }
        let c = self.files_only(&self.cur, line)?;
        let owner = match chown {
            None => (0, 0),
            Some(spec) => {
                let spec = self.expand(line, spec)?;
                let u = self
                    .engine
                    .resolve_user_in(&c.rec, &spec)
                    .map_err(|_| owner_of(line, &spec))?;
                (u.uid, u.gid)
            }
        };
        let engine_err = |source: engine::Error| BuildError::Engine {
            line,
            source: Box::new(source),
        };
        let existing = self
            .engine
            .stat_in(&c.rec, &dest_abs, true)
            .map_err(engine_err)?;
        let dest_is_dir = into_dir || existing.as_ref().is_some_and(|(_, m)| m.is_dir());
        let meta = Meta { owner, mode };
        // What goes where: (the directory it lands in, what it is).
        let mut parts: Vec<(String, Source)> = Vec::new();
        let io = |what: String| move |source| BuildError::Io { line, what, source };
        let shown_src;
        // Kept until the layer is written: its files are read from there.
        let mut _source_container = None;
        match from {
            None => {
                let Copied { paths: all, digest } =
                    copied.expect("step() resolves a COPY's context sources");
                if all.len() > 1 && !dest_is_dir {
                    return Err(syntax(format!("{keyword} with more than one source needs a directory as destination, ending with /")));
                }
                shown_src = format!(
                    "{}:{}",
                    if all.len() == 1 && self.ctx.root().join(&all[0]).is_file() {
                        "file"
                    } else {
                        "dir"
                    },
                    digest.get(..16).unwrap_or_default()
                );
                for rel in all {
                    let full = self.ctx.root().join(&rel);
                    let is_dir = std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir());
                    if add && !is_dir {
                        if let Some(tar) = local_archive(&full)
                            .map_err(io(format!("reading {}", rel.display())))?
                        {
                            parts.push((dest_abs.clone(), Source::Archive(tar)));
                            continue;
                        }
                    }
                    let (target, name) = placement(&dest_abs, dest_is_dir, &rel, is_dir);
                    parts.push((target, Source::Context { rel, is_dir, name }));
                }
            }
            Some(f) => {
                let f = self.expand(line, f)?;
                let source = match self.stage_named(&f) {
                    Some(s) => s.clone(),
                    None => {
                        let img = self.base_image(line, &f, None)?;
                        self.image_state(&img)?
                    }
                };
                shown_src = format!("from {f}");
                let sc = self.files_only(&source, line)?;
                for s in srcs {
                    let s = self.expand(line, s)?;
                    if s.contains(['*', '?', '[']) {
                        return Err(syntax(format!(
                            "{keyword} --from: wildcard {s:?} is not supported"
                        )));
                    }
                    let path = format!(
                        "/{}",
                        crate::context::clean(&s).unwrap_or_default().display()
                    );
                    let mut archive = Vec::new();
                    self.engine
                        .copy_out(&sc.rec, &path, true, &mut archive)
                        .map_err(|_| BuildError::StageSourceMissing {
                            line,
                            path: s.clone(),
                            from: f.clone(),
                        })?;
                    let is_dir = self
                        .engine
                        .stat_in(&sc.rec, &path, true)
                        .map_err(engine_err)?
                        .is_some_and(|(_, m)| m.is_dir());
                    let rel = PathBuf::from(Path::new(&path).file_name().unwrap_or_default());
                    let (target, name) = placement(&dest_abs, dest_is_dir, &rel, is_dir);
                    parts.push((
                        target,
                        Source::Stage {
                            archive,
                            is_dir,
                            name,
                        },
                    ));
                }
                _source_container = Some(sc);
            }
        }
        let now = self
            .opts
            .source_date_epoch
            .unwrap_or_else(|| chrono::Utc::now().timestamp().max(0) as u64);
        let mut w = self.store.layer_writer().map_err(BuildError::Image)?;
        {
            let rec = &c.rec;
            let engine = self.engine;
            let is_symlink = |p: &str| {
                engine
                    .stat_in(rec, p, false)
                    .ok()
                    .flatten()
                    .is_some_and(|(_, m)| m.file_type().is_symlink())
            };
            let mut out = Writer::new(w.tar(), self.opts.source_date_epoch, &is_symlink);
            let written = |e: WriteError| match e {
                WriteError::Io(source) => BuildError::Io {
                    line,
                    what: format!("writing the {keyword} layer"),
                    source,
                },
                WriteError::OverSymlink(p) => syntax(format!(
                    "{keyword} would replace the image's symlink {p} with a directory"
                )),
                WriteError::BadEntry(p) => syntax(format!(
                    "{keyword}: archive entry {p:?} leaves its directory or is a whiteout name"
                )),
            };
            // Sources mostly share their target: its chain looked up once.
            let mut chains: BTreeMap<&str, (PathBuf, Vec<crate::layer::Parent>)> = BTreeMap::new();
            for (target, source) in &parts {
                if !chains.contains_key(target.as_str()) {
                    chains.insert(target, self.target_chain(line, rec, target)?);
                }
                let (target, chain) = &chains[target.as_str()];
                out.parents(chain, now).map_err(written)?;
                match source {
                    Source::Context { rel, is_dir, name } => {
                        let tree = self.ctx.tree(rel);
                        out.context(self.ctx.root(), &tree, target, (rel, *is_dir, name), &meta)
                            .map_err(written)?
                    }
                    Source::Archive(bytes) => out.archive(bytes, target, None).map_err(written)?,
                    Source::Stage {
                        archive,
                        is_dir,
                        name,
                    } => out
                        .archive(archive, target, Some((*is_dir, name, &meta)))
                        .map_err(written)?,
                }
            }
        }
        let layer = self.store.finish_layer(w).map_err(|e| BuildError::Step {
            line,
            message: format!("making the layer: {e}"),
        })?;
        self.push_layer(
            layer,
            &format!("/bin/sh -c #(nop) {keyword} {shown_src} in {dest_word} "),
        );
        Ok(())
    }

    /// The real path in the image of directory `logical` (symlinks on the
    /// way followed inside it), relative, and the directories down to it:
    /// with their metadata where the image has them, `None` where the COPY
    /// makes them.
    fn target_chain(
        &self,
        line: usize,
        rec: &ContainerRecord,
        logical: &str,
    ) -> Result<(PathBuf, Vec<crate::layer::Parent>), BuildError> {
        let mut real = PathBuf::new();
        let mut chain = Vec::new();
        let mut missing = false;
        for part in logical.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !missing {
                let at = format!("/{}/{part}", real.display());
                match self
                    .engine
                    .stat_in(rec, &at, true)
                    .map_err(|source| BuildError::Engine {
                        line,
                        source: Box::new(source),
                    })? {
                    Some((r, m)) if m.is_dir() => {
                        real = PathBuf::from(r.trim_start_matches('/'));
                        chain.push((real.clone(), Some(m)));
                        continue;
                    }
                    Some(_) => {
                        return Err(BuildError::Step {
                            line,
                            message: format!("{at}: not a directory in the image"),
                        })
                    }
                    None => missing = true,
                }
            }
            real.push(part);
            chain.push((real.clone(), None));
        }
        Ok((real, chain))
    }

    /// The image a build's state records, with its config bytes as the
    /// cache has them.
    pub(crate) fn commit_state(&self, state: &State) -> Result<image::Image, BuildError> {
        let bytes = serde_json::to_vec(&state.config).expect("configs serialize");
        self.store
            .commit_new(&bytes, &state.layers, None)
            .map_err(BuildError::Image)
    }
}

/// BuildKit's platform args for `--platform` (to FROM's expansion).
fn platform_args_of(p: &str) -> Vars {
    match engine::images::Platform::parse(p) {
        Ok(p) => platform_args(&p.os, &p.architecture, p.variant.as_deref()),
        Err(_) => Vars::new(),
    }
}

/// Where a copied source goes: the directory its entries land in and the
/// name of a single file (the destination's own name when it is not a
/// directory).
fn placement(dest: &str, dest_is_dir: bool, rel: &Path, src_is_dir: bool) -> (String, String) {
    let base = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if src_is_dir {
        return (dest.to_string(), base);
    }
    if dest_is_dir {
        return (dest.to_string(), base);
    }
    let d = Path::new(dest);
    (
        d.parent().unwrap_or(Path::new("/")).display().to_string(),
        d.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(base),
    )
}

/// A local file ADD unpacks: a tar, plain or compressed (gzip, zstd);
/// `None` for any other file.
fn local_archive(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let f = std::fs::File::open(path)?;
    let (_, stream) = image::unpack::decompress(f)?;
    let Some(mut tar) = image::unpack::expect_tar(stream)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    tar.read_to_end(&mut out)?;
    Ok(Some(out))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// What `isola commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]` to tag the image.
    pub reference: Option<String>,
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, ...).
    pub changes: Vec<String>,
    /// Pause a running container while its changes are read.
    pub pause: bool,
}

/// `isola commit`: a container's filesystem changes as a new layer on its
/// image, with its config (command, env, workdir, user) as the image's.
pub fn commit(
    engine: &Engine,
    rec: &ContainerRecord,
    opts: &CommitOptions,
) -> Result<image::Image, BuildError> {
    if let Some(r) = &opts.reference {
        image::Reference::parse(r).map_err(|source| BuildError::Tag {
            tag: r.clone(),
            source,
        })?;
    }
    let store = Store::open(engine.root()).map_err(BuildError::Image)?;
    let img = store
        .resolve(&rec.config.image_id)
        .map_err(BuildError::Image)?;
    let bytes = store.config_bytes(&img).map_err(BuildError::Image)?;
    let mut state = State {
        config: serde_json::from_slice(&bytes).map_err(|e| BuildError::Step {
            line: 0,
            message: format!("image {}: config: {e}", img.id),
        })?,
        layers: store.layer_descriptors(&img).map_err(BuildError::Image)?,
    };
    let cfg = &rec.config;
    {
        let c = state.cfg();
        c.insert("Env".into(), json!(cfg.env));
        c.insert("Cmd".into(), json!(cfg.args));
        c.insert("Entrypoint".into(), Value::Null);
        if !cfg.working_dir.is_empty() {
            c.insert("WorkingDir".into(), json!(cfg.working_dir));
        }
        if !cfg.user.is_empty() {
            c.insert("User".into(), json!(cfg.user));
        }
    }
    for change in &opts.changes {
        let step = dockerfile::parse_one(change)?;
        let allowed = matches!(
            step.inst,
            Inst::Cmd(_)
                | Inst::Entrypoint(_)
                | Inst::Env(_)
                | Inst::Expose(_)
                | Inst::Label(_)
                | Inst::User(_)
                | Inst::Volume(_)
                | Inst::Workdir(_)
                | Inst::Onbuild(_)
                | Inst::Stopsignal(_)
                | Inst::Healthcheck { .. }
                | Inst::Shell(_)
        );
        if !allowed {
            return Err(BuildError::Step {
                line: 1,
                message: format!("--change {change:?}: only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME and WORKDIR may be changed"),
            });
        }
        let vars = state.env();
        apply_meta(&mut state, &step, &vars, '\\', &mut true)?;
    }
    if let Some(a) = &opts.author {
        state.config["author"] = json!(a);
    }
    let paused = opts.pause && rec.state.status == engine::state::Status::Running;
    if paused {
        engine.pause(rec)?;
    }
    let layer = store.layer_from_snapshot(
        &rec.config.snapshot_key,
        &DiffOptions {
            clamp_mtime: None,
            mount_points: MOUNT_POINTS.iter().map(|s| s.to_string()).collect(),
        },
    );
    if paused {
        engine.unpause(&engine.lookup(&rec.config.id)?)?;
    }
    let layer = layer.map_err(BuildError::Image)?;
    state.push_layer(layer.descriptor, &layer.diff_id);
    let created = now(None);
    state.history(&created, "", false);
    if let Some(m) = &opts.message {
        if let Some(h) = state.config["history"]
            .as_array_mut()
            .and_then(|a| a.last_mut())
        {
            h["comment"] = json!(m);
        }
    }
    if let Some(a) = &opts.author {
        if let Some(h) = state.config["history"]
            .as_array_mut()
            .and_then(|a| a.last_mut())
        {
            h["author"] = json!(a);
        }
    }
    let bytes = serde_json::to_vec(&state.config).expect("configs serialize");
    let new = store
        .commit_new(&bytes, &state.layers, None)
        .map_err(BuildError::Image)?;
    if let Some(r) = &opts.reference {
        engine.tag_image(&new.id, r)?;
    }
    Ok(new)
}

/// A metadata instruction (everything but RUN, COPY, ADD, ARG, FROM)
/// applied to a config; returns the text of its history entry. Shared by
/// a build's steps and `commit --change`.
fn apply_meta(
    state: &mut State,
    step: &Step,
    vars: &Vars,
    escape: char,
    cmd_set: &mut bool,
) -> Result<String, BuildError> {
    let line = step.line;
    let syntax = |message: String| BuildError::Step { line, message };
    let expand = |s: &str| {
        words::expand(s, vars, escape).map_err(|source| BuildError::Word { line, source })
    };
    Ok(match &step.inst {
        Inst::Cmd(c) => {
            let cmd = command(c, state);
            state.cfg().insert("Cmd".into(), json!(cmd));
            *cmd_set = true;
            format!("CMD {}", json!(cmd))
        }
        Inst::Entrypoint(c) => {
            let ep = command(c, state);
            let cfg = state.cfg();
            cfg.insert("Entrypoint".into(), json!(ep));
            if !*cmd_set {
                // An inherited CMD was for the old entrypoint.
                cfg.insert("Cmd".into(), Value::Null);
            }
            format!("ENTRYPOINT {}", json!(ep))
        }
        Inst::Env(text) => {
            let pairs = words::pairs(text, vars, escape, true)
                .map_err(|source| BuildError::Word { line, source })?;
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let v =
                    v.ok_or_else(|| syntax(format!("ENV {k}: needs a value (ENV {k}=value)")))?;
                if k.is_empty() {
                    return Err(syntax("ENV names no variable".into()));
                }
                state.set_env(&k, &v);
                shown.push(format!("{k}={v}"));
            }
            format!("ENV {}", shown.join(" "))
        }
        Inst::Label(text) => {
            let pairs = words::pairs(text, vars, escape, false)
                .map_err(|source| BuildError::Word { line, source })?;
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let v =
                    v.ok_or_else(|| syntax(format!("LABEL {k}: needs a value (LABEL {k}=value)")))?;
                state.insert("Labels", &k, json!(v));
                shown.push(format!("{k}={v}"));
            }
            format!("LABEL {}", shown.join(" "))
        }
        Inst::Expose(ports) => {
            let mut shown = Vec::new();
            for p in ports {
                for p in words::expand_all(p, vars, escape)
                    .map_err(|source| BuildError::Word { line, source })?
                {
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let valid = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
                    let ok = match port.split_once('-') {
                        Some((a, b)) => valid(a) && valid(b),
                        None => valid(port),
                    };
                    if !ok || !["tcp", "udp", "sctp"].contains(&proto.to_lowercase().as_str()) {
                        return Err(syntax(format!("EXPOSE {p}: not a port (80, 80/udp)")));
                    }
                    let key = format!("{port}/{}", proto.to_lowercase());
                    state.insert("ExposedPorts", &key, json!({}));
                    shown.push(key);
                }
            }
            format!("EXPOSE {}", shown.join(" "))
        }
        Inst::Volume(vols) => {
            let mut shown = Vec::new();
            for v in vols {
                let v = expand(v)?;
                if v.is_empty() {
                    return Err(syntax("VOLUME names an empty path".into()));
                }
                state.insert("Volumes", &v, json!({}));
                shown.push(v);
            }
            format!("VOLUME {}", json!(shown))
        }
        Inst::Workdir(w) => {
            let dir = in_workdir(state, &expand(w)?);
            state.cfg().insert("WorkingDir".into(), json!(dir));
            format!("WORKDIR {dir}")
        }
        Inst::User(u) => {
            let u = expand(u)?;
            if u.is_empty() {
                return Err(syntax("USER names no user".into()));
            }
            state.cfg().insert("User".into(), json!(u));
            format!("USER {u}")
        }
        Inst::Shell(s) => {
            if s.is_empty() {
                return Err(syntax(
                    "SHELL needs a command in JSON form: SHELL [\"/bin/sh\", \"-c\"]".into(),
                ));
            }
            state.cfg().insert("Shell".into(), json!(s));
            format!("SHELL {}", json!(s))
        }
        Inst::Stopsignal(s) => {
            let s = expand(s)?;
            state.cfg().insert("StopSignal".into(), json!(s));
            format!("STOPSIGNAL {s}")
        }
        Inst::Healthcheck { cmd, options } => {
            let hc = match cmd {
                None => json!({"Test": ["NONE"]}),
                Some(c) => {
                    let test = match c {
                        CommandForm::Shell(s) => json!(["CMD-SHELL", s]),
                        CommandForm::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            json!(t)
                        }
                    };
                    let mut hc = json!({ "Test": test });
                    for (k, v) in options {
                        let (field, value) = match k.as_str() {
                            "interval" => ("Interval", json!(duration_ns(line, k, v)?)),
                            "timeout" => ("Timeout", json!(duration_ns(line, k, v)?)),
                            "start-period" => ("StartPeriod", json!(duration_ns(line, k, v)?)),
                            "start-interval" => ("StartInterval", json!(duration_ns(line, k, v)?)),
                            _ => (
                                "Retries",
                                json!(v.parse::<u32>().map_err(|_| syntax(format!(
                                    "HEALTHCHECK --retries={v}: not a number"
                                )))?),
                            ),
                        };
                        hc[field] = value;
                    }
                    hc
                }
            };
            state.cfg().insert("Healthcheck".into(), hc.clone());
            format!("HEALTHCHECK {}", hc["Test"])
        }
        Inst::Onbuild(t) => {
            let mut all = state.strings("OnBuild").unwrap_or_default();
            all.push(t.clone());
            state.cfg().insert("OnBuild".into(), json!(all));
            format!("ONBUILD {t}")
        }
        Inst::Maintainer(m) => {
            state.config["author"] = json!(m);
            format!("MAINTAINER {m}")
        }
        Inst::Arg(_) | Inst::From { .. } | Inst::Run(_) | Inst::Copy { .. } => {
            unreachable!("not a metadata instruction")
        }
    })
}

fn command(c: &CommandForm, state: &State) -> Vec<String> {
    match c {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut v = state.shell();
            v.push(s.clone());
            v
        }
    }
}
