//! The image commands: `images` (`image ls`), `image inspect`, `tag`, `rmi`
//! (`image rm`), `load`, `save`, `import` and `image prune`. Parses flags,
//! calls the `image` library and prints what docker prints; owns no logic
//! of its own beyond formatting.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use image::progress::Mode;
use image::{archive, Image, Reference, Store};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images.
    Images(ListArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageSub),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Load images from a tar archive (docker-archive or OCI layout), from a file or STDIN.
    Load(LoadArgs),
    /// Save images to a tar archive (docker-archive), to a file or STDOUT.
    Save(SaveArgs),
    /// Import a root filesystem tarball as a one-layer image.
    Import(ImportArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageSub {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Show details of one or more images (JSON).
    Inspect(InspectArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images: dangling ones, or with -a all not used by a container.
    Prune(PruneArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag(TagArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Import a root filesystem tarball as a one-layer image.
    Import(ImportArgs),
    /// Show how an image was made: its history, newest first.
    History(HistoryArgs),
    /// Build an image from a Dockerfile.
    Build(crate::building::BuildArgs),
    /// Upload an image to a registry.
    Push(crate::building::PushArgs),
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The image (name[:tag], or id).
    pub image: String,
    /// Do not truncate the commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show the image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: table (default), json, or a Go template (ID,
    /// CreatedSince, CreatedAt, CreatedBy, Size, Comment).
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only images of this repository (and tag), e.g. busybox or busybox:1.36.
    pub reference: Option<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// Accepted for docker compatibility (there are no intermediate images).
    #[arg(short, long)]
    pub all: bool,
    /// Filter: dangling=true|false, reference=<name[:tag], * matches any
    /// characters but />, label=<key>[=<value>], before=<image>, since=<image>.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Output format: table (default), json (one object per line), or a Go
    /// template ('{{.Repository}}:{{.Tag}}'; 'table ...' adds headers).
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Go template to print for each image instead of JSON ('{{.Id}}').
    #[arg(short, long)]
    pub format: Option<String>,
    /// Image names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Image names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove even if a container uses it or it has several names.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from this tar archive instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load progress.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Images to save (names or IDs).
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Root filesystem tarball (plain, gzip or zstd), or - for STDIN.
    pub file: String,
    /// Name for the image, e.g. mybase:1.0.
    pub reference: Option<String>,
    /// The platform the rootfs is built for, os/arch[/variant] (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all images not used by a container, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

impl ImageCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        let store = Store::open(root).context("opening the image store")?;
        match self {
            ImageCommand::Images(a) | ImageCommand::Image(ImageSub::Ls(a)) => list(&store, a),
            ImageCommand::Image(ImageSub::Inspect(a)) => inspect(&store, a),
            // Through the engine, which records the tag/untag/delete events.
            ImageCommand::Tag(a) | ImageCommand::Image(ImageSub::Tag(a)) => {
                tag(&engine::Engine::open(root)?, a)
            }
            ImageCommand::Rmi(a) | ImageCommand::Image(ImageSub::Rm(a)) => {
                rmi(&engine::Engine::open(root)?, a)
            }
            ImageCommand::Load(a) | ImageCommand::Image(ImageSub::Load(a)) => {
                load(&engine::Engine::open(root)?, a)
            }
            ImageCommand::Save(a) | ImageCommand::Image(ImageSub::Save(a)) => save(&store, a),
            ImageCommand::Import(a) | ImageCommand::Image(ImageSub::Import(a)) => import(&store, a),
            ImageCommand::Image(ImageSub::Prune(a)) => prune(&store, a),
            ImageCommand::Image(ImageSub::History(a)) => history(&engine::Engine::open(root)?, a),
            ImageCommand::Image(ImageSub::Build(a)) => {
                crate::building::BuildCommand::Build(a).run(root)
            }
            ImageCommand::Image(ImageSub::Push(a)) => {
                crate::building::BuildCommand::Push(a).run(root)
            }
        }
    }
}

/// `image history`: the engine's history of the image, newest first.
fn history(engine: &engine::Engine, args: HistoryArgs) -> anyhow::Result<u8> {
    let img = engine
        .find_image(&args.image)?
        .ok_or_else(|| anyhow::anyhow!("No such image: {}", args.image))?;
    let short = img.short_id().to_string();
    let mut rows = Vec::new();
    for h in engine.image_history(&img)? {
        let created = h.created.unwrap_or_default();
        let id = match (h.id, args.no_trunc) {
            (Some(id), true) => id,
            (Some(_), false) => short.clone(),
            (None, _) => "<missing>".to_string(),
        };
        rows.push(json!({
            "ID": id,
            "CreatedAt": created,
            "CreatedSince": created_since(Some(&created)),
            "CreatedBy": h.created_by,
            "Size": human_size(h.size),
            "Comment": h.comment,
        }));
    }
    let mut out = io::stdout().lock();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    match crate::format::Format::parse(&args.format) {
        crate::format::Format::Json => {
            for r in &rows {
                writeln!(out, "{r}")?;
            }
        }
        crate::format::Format::Template { template, header } => write!(
            out,
            "{}",
            crate::format::template_rows(
                &template,
                header,
                &[("ID", "IMAGE"), ("CreatedSince", "CREATED")],
                rows.iter()
            )?
        )?,
        crate::format::Format::Table => {
            let s = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
            let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
                .map(String::from)
                .to_vec()];
            for r in &rows {
                let mut by = s(r, "CreatedBy");
                if !args.no_trunc && by.chars().count() > 45 {
                    by = by.chars().take(44).collect::<String>() + "…";
                }
                table.push(vec![
                    s(r, "ID"),
                    s(r, "CreatedSince"),
                    by,
                    s(r, "Size"),
                    s(r, "Comment"),
                ]);
            }
            write_table(&mut out, &table)?;
        }
    }
    Ok(0)
}

/// `images --filter`, as docker's.
struct ImageFilters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<engine::filters::LabelFilter>,
    /// Created before / after these (the images' `created` times).
    before: Option<String>,
    since: Option<String>,
}

impl ImageFilters {
    fn parse(raw: &[String], images: &[Image]) -> anyhow::Result<ImageFilters> {
        let mut f = ImageFilters {
            dangling: None,
            references: Vec::new(),
            labels: Vec::new(),
            before: None,
            since: None,
        };
        let created_of = |name: &str| -> anyhow::Result<String> {
            let img = images
                .iter()
                .find(|i| {
                    i.id == name
                        || i.short_id().starts_with(name) && name.len() >= 4
                        || i.names
                            .iter()
                            .any(|n| n.familiar() == name || n.to_string() == name)
                })
                .ok_or_else(|| anyhow::anyhow!("No such image: {name}"))?;
            Ok(img.created.clone().unwrap_or_default())
        };
        for r in raw {
            let (k, v) = r
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid filter {r:?}: expected key=value"))?;
            match k {
                "dangling" => f.dangling = Some(v.parse().map_err(|_| anyhow::anyhow!("invalid filter {r:?}: dangling is true or false"))?),
                "reference" => f.references.push(v.to_string()),
                "label" => f.labels.push(engine::filters::LabelFilter::parse(v)),
                "before" => f.before = Some(created_of(v)?),
                "since" => f.since = Some(created_of(v)?),
                _ => bail!("invalid filter {k:?}: isola filters images on dangling, reference, label, before and since"),
            }
        }
        Ok(f)
    }

    fn matches(&self, r: &Row) -> bool {
        let dangling = r.image.names.is_empty();
        let name = format!("{}:{}", r.repository, r.tag);
        let labels = r
            .image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
        let created = r.image.created.clone().unwrap_or_default();
        self.dangling.is_none_or(|d| d == dangling)
            && (self.references.is_empty()
                || self
                    .references
                    .iter()
                    .any(|p| glob(p, &name) || glob(p, &r.repository)))
            && self.labels.iter().all(|l| l.matches(&labels))
            && self.before.as_ref().is_none_or(|b| created < *b)
            && self.since.as_ref().is_none_or(|s| created > *s)
    }
}

/// docker's reference patterns: `*` matches any run of characters but `/`
/// (a few lines: the glob crates match paths, whose rules differ).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|&i| after.is_char_boundary(i))
                .take_while(|&i| !after[..i].contains('/'))
                .any(|i| glob(rest, &after[i..]))
        }
    }
}

/// One row of `images`: an image under one of its names (or none).
struct Row<'a> {
    image: &'a Image,
    repository: String,
    tag: String,
    digest: String,
}

fn rows<'a>(images: &'a [Image], filter: Option<&str>) -> anyhow::Result<Vec<Row<'a>>> {
    let filter = match filter {
        Some(f) => {
            let explicit_tag = f.rsplit('/').next().is_some_and(|last| last.contains(':'));
            Some((Reference::parse(f)?, explicit_tag))
        }
        None => None,
    };
    let mut out = Vec::new();
    for image in images {
        let digest_of = |repo: &str| {
            image
                .repo_digests
                .iter()
                .find_map(|d| {
                    Reference::parse(d)
                        .ok()
                        .filter(|r| r.name() == repo)
                        .and_then(|r| r.digest)
                })
                .unwrap_or_else(|| "<none>".to_string())
        };
        if image.names.is_empty() {
            if filter.is_none() {
                out.push(Row {
                    image,
                    repository: "<none>".into(),
                    tag: "<none>".into(),
                    digest: "<none>".into(),
                });
            }
            continue;
        }
        for name in &image.names {
            if let Some((f, explicit_tag)) = &filter {
                if f.name() != name.name() || (*explicit_tag && f.tag != name.tag) {
                    continue;
                }
            }
            out.push(Row {
                image,
                repository: name.familiar_name(),
                tag: name.tag.clone().unwrap_or_else(|| "<none>".into()),
                digest: digest_of(&name.name()),
            });
        }
    }
    Ok(out)
}

fn list(store: &Store, args: ListArgs) -> anyhow::Result<u8> {
    let images = store.list()?;
    let keep = ImageFilters::parse(&args.filter, &images)?;
    let rows: Vec<Row> = rows(&images, args.reference.as_deref())?
        .into_iter()
        .filter(|r| keep.matches(r))
        .collect();
    let id = |img: &Image| {
        if args.no_trunc {
            img.id.clone()
        } else {
            img.short_id().to_string()
        }
    };
    let mut out = io::stdout().lock();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", id(r.image))?;
        }
        return Ok(0);
    }
    let row = |r: &Row| {
        let size = human_size(r.image.size);
        json!({
            "Repository": r.repository,
            "Tag": r.tag,
            "Digest": r.digest,
            "ID": id(r.image),
            "CreatedAt": r.image.created.clone().unwrap_or_default(),
            "CreatedSince": created_since(r.image.created.as_deref()),
            "Size": size,
            "VirtualSize": size,
            "Containers": "N/A",
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
        })
    };
    match crate::format::Format::parse(&args.format) {
        crate::format::Format::Json => {
            for r in &rows {
                writeln!(out, "{}", row(r))?;
            }
        }
        crate::format::Format::Template { template, header } => {
            let objects: Vec<serde_json::Value> = rows.iter().map(&row).collect();
            write!(
                out,
                "{}",
                crate::format::template_rows(
                    &template,
                    header,
                    &[("ID", "IMAGE ID")],
                    objects.iter()
                )?
            )?
        }
        crate::format::Format::Table => {
            let mut table = vec![{
                let mut h = vec!["REPOSITORY", "TAG"];
                if args.digests {
                    h.push("DIGEST");
                }
                h.extend(["IMAGE ID", "CREATED", "SIZE"]);
                h.into_iter().map(String::from).collect::<Vec<_>>()
            }];
            for r in &rows {
                let mut cells = vec![r.repository.clone(), r.tag.clone()];
                if args.digests {
                    cells.push(r.digest.clone());
                }
                cells.extend([
                    id(r.image),
                    created_since(r.image.created.as_deref()),
                    human_size(r.image.size),
                ]);
                table.push(cells);
            }
            write_table(&mut out, &table)?;
        }
    }
    Ok(0)
}

/// Columns padded to their widest cell plus three spaces, as docker does.
fn write_table(out: &mut dyn Write, table: &[Vec<String>]) -> io::Result<()> {
    let cols = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn inspect(store: &Store, args: InspectArgs) -> anyhow::Result<u8> {
    let mut images = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match store.resolve(name) {
            Ok(img) => images.push(img),
            Err(e) => {
                eprintln!("isola: {}", runtime::error_chain(&e));
                failed = true;
            }
        }
    }
    let found = images
        .iter()
        .map(|i| {
            let dirs = i
                .layers
                .iter()
                .rev()
                .map(|l| store.layer_diff_dir(l))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(engine::inspect::image(i, &dirs))
        })
        .collect::<Result<Vec<_>, image::Error>>()?;
    let mut out = io::stdout().lock();
    if let Some(template) = &args.format {
        for img in &found {
            let v = serde_json::to_value(img)?;
            writeln!(out, "{}", crate::format::render(template, &v)?)?;
        }
        return Ok(if failed { 1 } else { 0 });
    }
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    serde::Serialize::serialize(&found, &mut ser)?;
    writeln!(out)?;
    Ok(if failed { 1 } else { 0 })
}

fn tag(engine: &engine::Engine, args: TagArgs) -> anyhow::Result<u8> {
    match engine.tag_image(&args.source, &args.target) {
        Ok(()) => Ok(0),
        // The store's own error, without the engine's "image store" context.
        Err(engine::Error::Image(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

fn rmi(engine: &engine::Engine, args: RmiArgs) -> anyhow::Result<u8> {
    let mut code = 0;
    for name in &args.images {
        let removed = engine.remove_image(name, args.force).map_err(|e| match e {
            engine::Error::Image(e) => anyhow::Error::from(e),
            e => e.into(),
        });
        match removed {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
            }
            Err(e) => {
                eprintln!("isola: {}", runtime::error_chain(e.as_ref()));
                code = 1;
            }
        }
    }
    Ok(code)
}

fn load(engine: &engine::Engine, args: LoadArgs) -> anyhow::Result<u8> {
    let progress = Mode::detect(args.quiet);
    let loaded = match &args.input {
        Some(path) => {
            let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            engine
                .load(&mut f, progress)
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is a terminal: give -i FILE or redirect a tar archive");
            }
            engine
                .load(&mut io::stdin().lock(), progress)
                .context("loading from stdin")?
        }
    };
    // The names the archive gave, not every name the image has here.
    for l in &loaded {
        if l.names.is_empty() {
            println!("Loaded image ID: {}", l.image.id);
        }
        for n in &l.names {
            println!("Loaded image: {}", n.familiar());
        }
    }
    Ok(0)
}

fn save(store: &Store, args: SaveArgs) -> anyhow::Result<u8> {
    // Resolve first: a missing image fails before any output exists.
    for name in &args.images {
        store.resolve(name)?;
    }
    match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".isola-save-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a temp file in {}", dir.display()))?;
            let mut w = BufWriter::new(tmp.as_file());
            archive::save(store, &args.images, &mut w)?;
            w.flush()?;
            drop(w);
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect stdout");
            }
            let mut w = BufWriter::new(io::stdout().lock());
            archive::save(store, &args.images, &mut w)?;
            w.flush()?;
        }
    }
    Ok(0)
}

fn import(store: &Store, args: ImportArgs) -> anyhow::Result<u8> {
    let name = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let platform = args
        .platform
        .as_deref()
        .map(image::registry::Platform::parse)
        .transpose()?;
    let image = if args.file == "-" {
        archive::import(
            store,
            &mut io::stdin().lock(),
            name.as_ref(),
            platform.as_ref(),
        )
        .context("importing from stdin")?
    } else {
        let mut f = File::open(&args.file).with_context(|| format!("opening {}", args.file))?;
        archive::import(store, &mut f, name.as_ref(), platform.as_ref())
            .with_context(|| format!("importing {}", args.file))?
    };
    println!("{}", image.id);
    Ok(0)
}

fn prune(store: &Store, args: PruneArgs) -> anyhow::Result<u8> {
    if !args.force {
        let what = if args.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        io::stdout().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let report = store.prune(args.all)?;
    if !report.untagged.is_empty() || !report.deleted_images.is_empty() {
        println!("Deleted Images:");
        for u in &report.untagged {
            println!("untagged: {u}");
        }
        for d in &report.deleted_images {
            println!("deleted: {d}");
        }
        for l in &report.deleted_layers {
            println!("deleted: {l}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    );
    Ok(0)
}

/// Docker's size format: decimal units, 3 significant digits ("4.26MB").
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.decimals$}");
    if s.parse::<f64>().unwrap_or(0.0) >= 1000.0 && i + 1 < UNITS.len() {
        // 999.6 kB rounds to 1000: carry into the next unit.
        i += 1;
        s = "1".to_string();
    }
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[i])
}

/// "2 hours ago", as docker's CREATED column says it.
fn created_since(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".to_string();
    };
    format!(
        "{} ago",
        engine::units::human_duration(chrono::Utc::now() - t.with_timezone(&chrono::Utc))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_600), "1MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }
}
