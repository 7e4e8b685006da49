//! `harp conflicts [FOLDER]`: the conflict copies sync set aside, with the file each belongs
//! to, when and from which device. Read from the index (no daemon needed).

use std::process::ExitCode;

use crate::sync::apply::parse_conflict_name;

/// Arguments of `harp conflicts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this folder (label, id or path); default: every folder.
    pub folder: Option<String>,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp conflicts`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let folders = match &args.folder {
        Some(name) => vec![node.config.folder(name)?.clone()],
        None => node.config.folders.clone(),
    };
    let index = node.index()?;
    let mut list = Vec::new();
    for f in &folders {
        let mut rows: Vec<_> = index
            .files(&f.id)?
            .into_values()
            .filter(|r| !r.deleted)
            .filter_map(|r| parse_conflict_name(&r.path).map(|c| (r, c)))
            .collect();
        rows.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        for (row, c) in rows {
            list.push(serde_json::json!({
                "folder": f.label,
                "path": row.path,
                "original": c.original,
                "set_aside": c.stamp,
                "device": c.device,
                "size": row.size,
                "absolute": f.path.join(&row.path),
            }));
        }
    }
    if args.json {
        super::print_json(&list)?;
    } else if list.is_empty() {
        println!("No conflict copies.");
    } else {
        for c in &list {
            println!(
                "{}: {}  (a version of {} from device {}…, set aside {} UTC, {} bytes)",
                c["folder"].as_str().unwrap_or("?"),
                c["path"].as_str().unwrap_or("?"),
                c["original"].as_str().unwrap_or("?"),
                c["device"].as_str().unwrap_or("?"),
                c["set_aside"].as_str().unwrap_or("?"),
                c["size"]
            );
        }
        println!(
            "Keep what you want: delete a copy, or move it over its original (the replaced \
             version is kept in .harp/versions)."
        );
    }
    Ok(ExitCode::SUCCESS)
}
