//! `harp init`: create this device's identity and config.

use std::process::ExitCode;

use crate::config::Dirs;
use crate::node::Node;

/// Arguments of `harp init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A name for this device (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "harp-device".to_owned())
}

/// Runs `harp init`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::from_env()?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let (node, created) = Node::init(dirs, &name)?;
    if args.json {
        super::print_json(&serde_json::json!({
            "device_id": node.device_id().to_string(),
            "device_name": node.config.device_name,
            "created": created,
            "config": node.dirs.config_file(),
        }))?;
    } else if created {
        println!(
            "Set up device {} ({})",
            node.config.device_name,
            node.device_id()
        );
        println!("config: {}", node.dirs.config_file().display());
    } else {
        println!(
            "Already set up: device {} ({}); nothing was changed",
            node.config.device_name,
            node.device_id()
        );
    }
    Ok(ExitCode::SUCCESS)
}
