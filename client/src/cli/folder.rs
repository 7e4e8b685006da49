//! `harp folder add|share|join|list`: the synced folders of this device.

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
    /// Share a folder with another device: it becomes a member, and an invitation is printed
    /// for `harp folder join` on that device (it holds the folder key: pass it privately).
    Share {
        /// The folder (label, id or path).
        folder: String,
        /// The device to share with (its id, from `harp status` there).
        #[arg(long = "with")]
        with: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Join a folder another device shared, at PATH (created if missing).
    Join {
        /// The invitation from `harp folder share`.
        invite: String,
        /// Where the folder goes on this device.
        path: PathBuf,
        /// A name for it (default: the sharer's label).
        #[arg(long)]
        label: Option<String>,
        /// An address of the sharing device (multiaddr), remembered as a peer.
        #[arg(long = "peer-addr")]
        peer_addr: Vec<String>,
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
        Command::Share { folder, with, json } => {
            let device: harp_protocol::ids::DeviceId = with.parse().map_err(|e| {
                anyhow::anyhow!("--with {with:?}: {e} (a device id, as `harp status` prints it)")
            })?;
            let cfg = node.config.folder(folder)?.clone();
            let key = crate::config::read_secret(&node.dirs.folder_key(&cfg.id))?;
            if device != node.device_id() {
                let f = node
                    .config
                    .folders
                    .iter_mut()
                    .find(|f| f.id == cfg.id)
                    .ok_or_else(|| anyhow::anyhow!("the folder vanished from the config"))?;
                if !f.members.contains(&device.to_string()) {
                    f.members.push(device.to_string());
                }
                node.config.save(&node.dirs)?;
            }
            let invite = crate::invite::Invite {
                folder: cfg.id,
                key,
                from: node.device_id(),
                label: cfg.label.clone(),
            }
            .encode();
            if *json {
                super::print_json(
                    &serde_json::json!({"folder": cfg.id.to_string(), "member": device.to_string(), "invite": invite}),
                )?;
            } else {
                println!("{invite}");
                eprintln!(
                    "Shared {} with {device}. On that device: harp folder join <the line above> PATH\n\
                     The invitation holds the folder key: pass it privately.",
                    cfg.label
                );
            }
        }
        Command::Join {
            invite,
            path,
            label,
            peer_addr,
            json,
        } => {
            let inv = crate::invite::Invite::decode(invite).map_err(|e| anyhow::anyhow!("{e}"))?;
            let label = label.clone().unwrap_or_else(|| inv.label.clone());
            let f = node.add_folder_with(
                path,
                Some(&label),
                inv.folder,
                inv.key,
                vec![inv.from.to_string()],
            )?;
            let from = inv.from.to_string();
            match node.config.peers.iter_mut().find(|p| p.device == from) {
                Some(p) => {
                    for a in peer_addr {
                        if !p.addresses.contains(a) {
                            p.addresses.push(a.clone());
                        }
                    }
                }
                None => node.config.peers.push(crate::config::PeerConfig {
                    device: from.clone(),
                    addresses: peer_addr.clone(),
                }),
            }
            node.config.save(&node.dirs)?;
            if *json {
                super::print_json(&folder_json(&f))?;
            } else {
                println!(
                    "Joined folder {} ({}) at {}, shared by {from}",
                    f.label,
                    f.id,
                    f.path.display()
                );
                println!("Next: harp daemon");
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
