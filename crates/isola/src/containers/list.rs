//! `ps` and `inspect`: list containers in docker's table (or JSON lines),
//! and show one container's configuration and state as JSON.

use anyhow::bail;
use chrono::Utc;
use engine::filters::LabelFilter;
use engine::state::Status;
use engine::store::ContainerRecord;
use engine::units::human_duration;
use engine::Engine;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only print container ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: status=<created|running|paused|restarting|exited|dead>, name=<substring>, id=<prefix>, isolation=<mode>, label=<key>[=<value>], volume=<name|destination>.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Output format: table (default), json (one object per line), or a Go
    /// template ('{{.ID}} {{.Names}}'; 'table {{.ID}}\t{{.Status}}' adds headers).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the n last created containers (in any state).
    #[arg(short = 'n', long, default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the last created container (in any state).
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Show each container's size: its writable layer (and with its image).
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Go template to print instead of JSON, e.g. '{{.State.Pid}} {{.Name}}'.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only objects of this type: container or image (default: a container,
    /// else an image of that name, as docker looks).
    #[arg(long = "type", value_name = "container|image")]
    pub kind: Option<ObjectKind>,
    /// Container or image names or IDs.
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

/// What `inspect --type` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectKind {
    Container,
    Image,
}

fn matches(rec: &ContainerRecord, filters: &[(String, String)]) -> bool {
    // docker: the same key ORs, different keys AND.
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.into_iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, v)| match key {
                "status" => rec.state.status.as_str() == v,
                "name" => rec.config.name.contains(v.as_str()),
                "id" => rec.config.id.starts_with(v.as_str()),
                "isolation" => rec.config.isolation.to_string() == *v,
                // Every label filter must hold (docker's rule), not any.
                "label" => filters
                    .iter()
                    .filter(|(k, _)| k == "label")
                    .all(|(_, l)| LabelFilter::parse(l).matches(&rec.config.labels)),
                "volume" => rec
                    .config
                    .mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(v.as_str()) || m.destination == *v),
                _ => false,
            })
    })
}

fn parse_filters(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid filter {f:?}: expected key=value"))?;
            match k {
                "status" => {
                    v.parse::<Status>().map_err(anyhow::Error::msg)?;
                }
                "name" | "id" | "isolation" | "label" | "volume" => {}
                _ => bail!("invalid filter {k:?}: isola filters on status, name, id, isolation, label and volume"),
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The COMMAND column: the args, quoted, truncated to 20 characters.
fn command_column(rec: &ContainerRecord, trunc: bool) -> String {
    let cmd = rec.config.args.join(" ");
    let cmd = if trunc && cmd.chars().count() > 20 {
        format!("{}…", cmd.chars().take(19).collect::<String>())
    } else {
        cmd
    };
    format!("\"{cmd}\"")
}

/// Prints rows with columns padded to their widest cell (docker's tabwriter).
pub fn print_table(titles: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] + 3 - c.chars().count();
                s.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", s.trim_end());
    };
    line(titles.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn ps(engine: &Engine, args: PsArgs) -> anyhow::Result<u8> {
    let filters = parse_filters(&args.filter)?;
    let has_status_filter = filters.iter().any(|(k, _)| k == "status");
    let now = Utc::now();
    // docker: -l is -n 1; a positive -n shows every state, newest first.
    let last = if args.latest && args.last < 0 {
        1
    } else {
        args.last
    };
    let limit = usize::try_from(last).ok().filter(|&n| n > 0);
    let recs: Vec<ContainerRecord> = engine
        .list()?
        .into_iter()
        .filter(|r| args.all || limit.is_some() || has_status_filter || r.state.status.is_active())
        .filter(|r| matches(r, &filters))
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if args.quiet {
        for r in &recs {
            println!(
                "{}",
                if args.no_trunc {
                    r.config.id.as_str()
                } else {
                    engine::ids::short(&r.config.id)
                }
            );
        }
        return Ok(0);
    }
    let size_of = |r: &ContainerRecord| -> String {
        match engine.container_size(r) {
            Ok((rw, virt)) => format!(
                "{} (virtual {})",
                crate::images::human_size(rw),
                crate::images::human_size(virt)
            ),
            Err(_) => "--".into(),
        }
    };
    let row = |r: &ContainerRecord| {
        json!({
            "Size": if args.size { size_of(r) } else { String::new() },
            "ID": engine::ids::short(&r.config.id),
            "Image": r.config.image,
            "Command": command_column(r, false),
            "CreatedAt": r.config.created.to_rfc3339(),
            "RunningFor": format!("{} ago", human_duration(now - r.config.created)),
            "State": r.state.status.as_str(),
            "Status": r.state.describe(now),
            "Ports": ports_column(r),
            "Names": r.config.name,
            "Isolation": r.config.isolation.to_string(),
            "Labels": r.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "Mounts": r.config.mounts.iter().map(|m| m.destination.clone()).collect::<Vec<_>>().join(","),
        })
    };
    match crate::format::Format::parse(&args.format) {
        crate::format::Format::Json => {
            for r in &recs {
                println!("{}", row(r));
            }
        }
        crate::format::Format::Template { template, header } => {
            let rows: Vec<serde_json::Value> = recs.iter().map(&row).collect();
            print!(
                "{}",
                crate::format::template_rows(&template, header, &[], rows.iter())?
            );
        }
        crate::format::Format::Table => {
            let rows: Vec<Vec<String>> = recs
                .iter()
                .map(|r| {
                    let mut cells = vec![
                        if args.no_trunc {
                            r.config.id.clone()
                        } else {
                            engine::ids::short(&r.config.id).to_string()
                        },
                        r.config.image.clone(),
                        command_column(r, !args.no_trunc),
                        format!("{} ago", human_duration(now - r.config.created)),
                        r.state.describe(now),
                        ports_column(r),
                        r.config.name.clone(),
                        r.config.isolation.to_string(),
                    ];
                    if args.size {
                        cells.push(size_of(r));
                    }
                    cells
                })
                .collect();
            let mut titles = vec![
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
                "ISOLATION",
            ];
            if args.size {
                titles.push("SIZE");
            }
            print_table(&titles, &rows);
        }
    }
    Ok(0)
}

/// The PORTS column: "0.0.0.0:8080->80/tcp, ..." of a running container.
fn ports_column(r: &ContainerRecord) -> String {
    r.state
        .network
        .iter()
        .flat_map(|n| n.ports.iter())
        .map(|m| {
            format!(
                "{}:{}->{}/{}",
                m.host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                m.host_port,
                m.container_port,
                m.protocol.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The object `name` names, as docker's `inspect` looks: a container
/// first, then an image; None if neither.
fn inspect_object(
    engine: &Engine,
    name: &str,
    kind: Option<ObjectKind>,
) -> anyhow::Result<Option<Value>> {
    if kind != Some(ObjectKind::Image) {
        match engine.lookup(name) {
            Ok(rec) => return Ok(Some(engine::inspect::container(engine, &rec))),
            Err(engine::Error::Store(engine::store::StoreError::NotFound(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if kind != Some(ObjectKind::Container) {
        if let Some(img) = engine.find_image(name)? {
            let dirs = engine.image_layer_dirs(&img)?;
            return Ok(Some(serde_json::to_value(engine::inspect::image(
                &img, &dirs,
            ))?));
        }
    }
    Ok(None)
}

pub fn inspect(engine: &Engine, args: InspectArgs) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &args.containers {
        match inspect_object(engine, name, args.kind)? {
            Some(v) => out.push(v),
            None => missing.push(name),
        }
    }
    match &args.format {
        Some(f) => {
            for v in &out {
                println!("{}", crate::format::render(f, v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&Value::Array(out))?),
    }
    // docker: what was found is printed, each name not found is one line,
    // and the exit code is 1.
    for name in &missing {
        let what = match args.kind {
            Some(ObjectKind::Container) => "container",
            Some(ObjectKind::Image) => "image",
            None => "object",
        };
        eprintln!("isola: no such {what}: {name}");
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}
