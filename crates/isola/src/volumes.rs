//! `isola volume create|ls|inspect|rm|prune`: printing what the engine's
//! volumes say, docker's shapes.

use std::io::{self, BufRead, Write};
use std::path::Path;

use anyhow::bail;
use clap::{Args, Subcommand};
use engine::volumes::{VolumeCreate, VolumeFilters};
use engine::Engine;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeGroup),
}

#[derive(Debug, Subcommand)]
pub enum VolumeGroup {
    /// Create a volume (a random name if none is given); prints its name.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON.
    Inspect {
        /// A Go template over each volume (e.g. '{{.Mountpoint}}').
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses them, even with -f).
    #[command(alias = "remove")]
    Rm {
        /// A missing volume is no error.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (with -a, named ones too).
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: Option<String>,
    /// Driver: only local.
    #[arg(short, long, default_value = engine::volumes::LOCAL_DRIVER)]
    pub driver: String,
    /// key=value
    #[arg(long)]
    pub label: Vec<String>,
    /// Driver options, key=value (none is supported yet).
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only print volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// name=<substring>, label=<key>[=<value>], dangling=true|false, driver=local.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table (default), json (one object per line), or a Go template over
    /// docker's fields (Name, Driver, Scope, Mountpoint, Labels, Links,
    /// Size); `table TEMPLATE` adds docker's column titles.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove named volumes too, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// label=<key>[=<value>]
    #[arg(long)]
    pub filter: Vec<String>,
}

fn filters(raw: &[String]) -> anyhow::Result<VolumeFilters> {
    let mut pairs = Vec::new();
    for f in raw {
        let Some(kv) = f.split_once('=') else {
            bail!("invalid filter {f:?}: expected key=value");
        };
        pairs.push(kv);
    }
    Ok(VolumeFilters::parse(pairs)?)
}

impl VolumeCommand {
    pub fn run(self, root: &Path) -> anyhow::Result<u8> {
        let engine = Engine::open(root)?;
        let VolumeCommand::Volume(g) = self;
        g.run(&engine)
    }
}

impl VolumeGroup {
    fn run(self, engine: &Engine) -> anyhow::Result<u8> {
        match self {
            VolumeGroup::Create(a) => {
                let v = engine.create_volume(&VolumeCreate {
                    name: a.name,
                    driver: Some(a.driver),
                    labels: crate::networks::key_values("--label", &a.label)?,
                    options: crate::networks::key_values("--opt", &a.opt)?,
                })?;
                println!("{}", v.name);
                Ok(0)
            }
            VolumeGroup::Ls(a) => {
                let vols = engine.list_volumes(&filters(&a.filter)?)?;
                if a.quiet {
                    for v in &vols {
                        println!("{}", v.name);
                    }
                    return Ok(0);
                }
                let rows: Vec<serde_json::Value> = vols
                    .iter()
                    .map(|v| {
                        let labels: Vec<String> =
                            v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        json!({
                            "Driver": v.driver,
                            "Labels": labels.join(","),
                            "Links": "N/A",
                            "Mountpoint": v.mountpoint,
                            "Name": v.name,
                            "Scope": "local",
                            "Size": "N/A",
                        })
                    })
                    .collect();
                crate::format::print_rows(&a.format, &rows, &[("Name", "VOLUME NAME")], || {
                    let rows: Vec<Vec<String>> = vols
                        .iter()
                        .map(|v| vec![v.driver.clone(), v.name.clone()])
                        .collect();
                    crate::containers::list::print_table(&["DRIVER", "VOLUME NAME"], &rows);
                })?;
                Ok(0)
            }
            VolumeGroup::Inspect { format, volumes } => {
                let mut out = Vec::new();
                let mut failed = false;
                for name in &volumes {
                    match engine.volume(name) {
                        Ok(v) => out.push(engine::inspect::volume(&v)),
                        Err(e) => {
                            eprintln!("isola: {}", runtime::error_chain(&e));
                            failed = true;
                        }
                    }
                }
                crate::format::print_objects(format.as_deref(), out)?;
                Ok(u8::from(failed))
            }
            VolumeGroup::Rm { force, volumes } => {
                let mut failed = false;
                for name in &volumes {
                    match engine.remove_volume(name, force) {
                        Ok(()) => println!("{name}"),
                        Err(e) => {
                            eprintln!("isola: {}", runtime::error_chain(&e));
                            failed = true;
                        }
                    }
                }
                Ok(u8::from(failed))
            }
            VolumeGroup::Prune(a) => {
                let filters = filters(&a.filter)?;
                if filters.dangling.is_some() || !filters.name.is_empty() {
                    bail!("invalid --filter: volume prune filters on label only");
                }
                if !a.force {
                    let what = if a.all {
                        "all local volumes not used by at least one container"
                    } else {
                        "anonymous local volumes not used by at least one container"
                    };
                    print!(
                        "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
                    );
                    io::stdout().flush()?;
                    let mut answer = String::new();
                    io::stdin().lock().read_line(&mut answer)?;
                    if !matches!(answer.trim(), "y" | "Y" | "yes") {
                        return Ok(0);
                    }
                }
                let report = engine.prune_volumes(a.all, &filters)?;
                if !report.removed.is_empty() {
                    println!("Deleted Volumes:");
                    for n in &report.removed {
                        println!("{n}");
                    }
                    println!();
                }
                println!(
                    "Total reclaimed space: {}",
                    crate::images::human_size(report.reclaimed)
                );
                Ok(0)
            }
        }
    }
}
