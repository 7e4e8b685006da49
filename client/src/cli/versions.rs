//! `harp versions PATH` and `harp restore PATH --version N`: the versions store.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::store;

/// Arguments of `harp versions`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// A file inside a Harp folder (it may be gone: deleted files have versions too).
    pub path: PathBuf,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `harp restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A file inside a Harp folder.
    pub path: PathBuf,
    /// Which version (the number `harp versions` shows; 1 is the oldest).
    #[arg(long)]
    pub version: usize,
}

/// Runs `harp versions`.
pub fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let (cfg, rel) = node.locate(&args.path)?;
    let index = node.index()?;
    let versions = index.versions(&cfg.id, &rel)?;
    if args.json {
        let list: Vec<_> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::json!({
                    "number": i + 1, "path": v.path, "size": v.size, "mode": v.mode,
                    "mtime_ns": v.mtime_ns, "kept_ms": v.kept_ms, "reason": v.reason,
                    "stored": cfg.path.join(".harp/versions").join(&v.stored),
                })
            })
            .collect();
        super::print_json(&list)?;
    } else if versions.is_empty() {
        println!("{rel}: no kept versions");
    } else {
        for (i, v) in versions.iter().enumerate() {
            println!(
                "{:>3}  {}  {:>10} bytes  kept on {}  ({})",
                i + 1,
                v.stored,
                v.size,
                v.reason,
                v.path
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `harp restore`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let (cfg, rel) = node.locate(&args.path)?;
    let folder = node.open_folder(cfg)?;
    let index = node.index()?;
    let v = store::restore(&index, &folder, &rel, args.version)?;
    println!(
        "Restored {rel} to version {} ({} bytes, kept on {}); the replaced file is now a version too",
        args.version, v.size, v.reason
    );
    Ok(ExitCode::SUCCESS)
}
