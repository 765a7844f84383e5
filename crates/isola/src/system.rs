//! `isola system df` and `isola system prune`: what isola's objects take on
//! disk, and removing what nothing uses, in docker's words. Parses flags and
//! prints; the engine measures and removes.

use std::io::{BufRead, Write};

use engine::Engine;

use crate::images::human_size;

#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Show each image, container and volume.
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format: table (default) or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Remove anonymous volumes no container uses too.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

pub fn df(engine: &Engine, args: DfArgs) -> anyhow::Result<u8> {
    let usage = engine.disk_usage()?;
    if args.format == "json" {
        println!("{}", serde_json::to_string(&usage)?);
        return Ok(0);
    }
    if args.format != "table" {
        anyhow::bail!("invalid --format {:?}: expected table or json", args.format);
    }
    let summary = |kind: &str, objs: &[engine::disk::ObjectUsage], show_pct: bool| {
        let size: u64 = objs.iter().map(|o| o.size).sum();
        let reclaimable: u64 = objs.iter().filter(|o| !o.active).map(|o| o.size).sum();
        let pct = match (show_pct, size) {
            (true, 0) => " (0%)".to_string(),
            (true, s) => format!(" ({}%)", reclaimable * 100 / s),
            (false, _) => String::new(),
        };
        vec![
            kind.to_string(),
            objs.len().to_string(),
            objs.iter().filter(|o| o.active).count().to_string(),
            human_size(size),
            format!("{}{pct}", human_size(reclaimable)),
        ]
    };
    let rows = vec![
        summary("Images", &usage.images, true),
        summary("Containers", &usage.containers, true),
        summary("Local Volumes", &usage.volumes, true),
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    crate::containers::list::print_table(
        &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        &rows,
    );
    if args.verbose {
        for (title, objs) in [
            ("Images", &usage.images),
            ("Containers", &usage.containers),
            ("Local Volumes", &usage.volumes),
        ] {
            println!("\n{title} space usage:\n");
            let rows: Vec<Vec<String>> = objs
                .iter()
                .map(|o| vec![o.name.clone(), human_size(o.size), o.active.to_string()])
                .collect();
            crate::containers::list::print_table(&["NAME", "SIZE", "IN USE"], &rows);
        }
    }
    Ok(0)
}

pub fn prune(engine: &Engine, args: PruneArgs) -> anyhow::Result<u8> {
    if !args.force {
        let images = if args.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        let volumes = if args.volumes {
            "\n  - all anonymous volumes not used by at least one container"
        } else {
            ""
        };
        print!("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container{volumes}\n  - {images}\n\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let section = |title: &str, items: &[String]| {
        if !items.is_empty() {
            println!("Deleted {title}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    section("Containers", &engine.prune()?);
    section("Networks", &engine.prune_networks()?);
    let mut reclaimed = 0;
    if args.volumes {
        let v = engine.prune_volumes(false, &engine::volumes::VolumeFilters::default())?;
        reclaimed += v.reclaimed;
        section("Volumes", &v.removed);
    }
    let images = engine.prune_images(args.all)?;
    let lines: Vec<String> = images
        .untagged
        .iter()
        .map(|u| format!("untagged: {u}"))
        .chain(
            images
                .deleted_images
                .iter()
                .map(|d| format!("deleted: {d}")),
        )
        .collect();
    section("Images", &lines);
    reclaimed += images.reclaimed_bytes;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}
