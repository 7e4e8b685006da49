//! `harp folder add|list`: the synced folders of this device.

use std::path::PathBuf;
use std::process::ExitCode;

/// `harp folder` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a folder (created if missing) with a new id and key.
    Add {
        /// The folder's path.
        path: PathBuf,
        /// A name for it (default: the directory name).
        #[arg(long)]
        label: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the folders.
    List {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn folder_json(f: &crate::config::FolderConfig) -> serde_json::Value {
    serde_json::json!({
        "id": f.id.to_string(),
        "label": f.label,
        "path": f.path,
        "versioning": f.versioning,
    })
}

/// Runs `harp folder ...`.
pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    let mut node = super::open_node()?;
    match cmd {
        Command::Add { path, label, json } => {
            let f = node.add_folder(path, label.as_deref())?;
            if *json {
                super::print_json(&folder_json(&f))?;
            } else {
                println!(
                    "Added folder {} ({}) at {}",
                    f.label,
                    f.id,
                    f.path.display()
                );
                println!("Next: harp scan {}", f.label);
            }
        }
        Command::List { json } => {
            if *json {
                let list: Vec<_> = node.config.folders.iter().map(folder_json).collect();
                super::print_json(&list)?;
            } else if node.config.folders.is_empty() {
                println!("No folders yet: harp folder add PATH");
            } else {
                for f in &node.config.folders {
                    println!("{}  {}  {}", f.id, f.label, f.path.display());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
