//! `harp folder add|share|join|list|direction|revert|override|...`: the synced folders of this
//! device.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

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
    /// Share a folder: with another user through the bridge (`--user`: their devices get the
    /// key wrapped to them), or with one device by an invitation printed for `harp folder
    /// join` there (`--with`: it holds the folder key in clear, pass it privately).
    Share {
        /// The folder (label, id or path).
        folder: String,
        /// The device to share with (its id, from `harp status` there).
        #[arg(
            long = "with",
            conflicts_with = "user",
            required_unless_present = "user"
        )]
        with: Option<String>,
        /// The bridge user to share with (needs `harp login`).
        #[arg(long)]
        user: Option<String>,
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
    /// Folders on the bridge that this device does not sync yet (shared with this user, or
    /// made on another of its devices).
    Offers {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync a folder from the bridge at PATH: its key, wrapped to this device by a member
    /// device, is unwrapped here; its metadata comes from the bridge, its files from peers.
    Accept {
        /// The folder id (from `harp folder offers`).
        id: String,
        /// Where the folder goes on this device.
        path: PathBuf,
        /// A name for it (default: the owner's label).
        #[arg(long)]
        label: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the folder's trust policy (the bridge's log key, witnesses and their quorum,
    /// trusted devices), or replace it with `--set FILE`. The daemon has the policy's
    /// witnesses cosign the folder log's checkpoints; proofs are verified against it.
    Policy {
        /// The folder (label, id or path).
        folder: String,
        /// A policy file to use from now on (lines `log KEY`, `witness KEY [URL]`, `quorum K`,
        /// `device ID`).
        #[arg(long, value_name = "FILE")]
        set: Option<PathBuf>,
        /// Print the policy as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop syncing a folder on this device. Its files stay where they are, `.harp/versions`
    /// included; this device forgets its index rows and document (stop the daemon first).
    Remove {
        /// The folder (label, id or path).
        folder: String,
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
    /// Show or set which way changes flow in a folder on this device: send-receive (the
    /// default), send-only (changes made here are sent, other devices' are not applied) or
    /// receive-only (other devices' changes are applied, changes made here are not sent).
    /// A running daemon takes the change at once.
    Direction {
        /// The folder (label, id or path).
        folder: String,
        /// The new direction: send-receive, send-only or receive-only.
        direction: Option<crate::config::Direction>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop scanning and syncing a folder on this device until `harp folder resume` (a
    /// running daemon stops at once; changes made meanwhile are scanned and synced on
    /// resume).
    Pause {
        /// The folder (label, id or path).
        folder: String,
    },
    /// Scan and sync a paused folder again.
    Resume {
        /// The folder (label, id or path).
        folder: String,
    },
    /// Ask the running daemon to scan the whole folder now (then sync), instead of waiting
    /// for the file watcher or the periodic rescan: for changes the watcher cannot see (a
    /// network file system, a folder changed while its disk was elsewhere).
    Rescan {
        /// The folder (label, id or path).
        folder: String,
    },
    /// Undo every change made here and not sent, in a receive-only folder: each file
    /// becomes the version the other devices have, files only this device has are removed.
    /// What is replaced or removed goes to the versions store. Needs the running daemon.
    Revert {
        /// The folder (label, id or path).
        folder: String,
        /// Print the round's report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make this device's version of every file the newest on every device, in a send-only
    /// folder: files the other devices changed, added or deleted get a new version saying
    /// what this device has. Needs the running daemon.
    Override {
        /// The folder (label, id or path).
        folder: String,
        /// Print the round's report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Asks the running daemon for a forced round (`revert`, `override`) and prints its report.
fn force(node: &crate::node::Node, folder: &str, what: &str, json: bool) -> anyhow::Result<()> {
    let cfg = node.config.folder(folder)?;
    let report = crate::daemon::request(
        &node.dirs.control_socket(),
        &serde_json::json!({"cmd": "force", "folder": cfg.id.to_string(), "force": what}),
    )?;
    if json {
        return super::print_json(&report);
    }
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    let waiting = report["deferred"].as_array().map(Vec::len).unwrap_or(0);
    match what {
        "revert" => println!(
            "{}: reverted: {} files put back as the other devices have them (what they              replaced or removed is in the versions store)",
            cfg.label,
            n("installed")
        ),
        _ => println!(
            "{}: overridden: {} files now have this device's version everywhere",
            cfg.label,
            n("published")
        ),
    }
    if waiting > 0 {
        println!("{waiting} could not be done yet (see harp status); run it again later:");
        for d in report["deferred"].as_array().into_iter().flatten().take(20) {
            println!(
                "  {}: {}",
                d[0].as_str().unwrap_or(""),
                d[1].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn folder_json(f: &crate::config::FolderConfig) -> serde_json::Value {
    serde_json::json!({
        "id": f.id.to_string(),
        "label": f.label,
        "path": f.path,
        "versioning": f.versioning,
        "direction": f.direction.name(),
        "paused": f.paused,
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
        Command::Share {
            folder,
            user: Some(user),
            json,
            ..
        } => {
            let cfg = node.config.folder(folder)?.clone();
            let client = bridge_client(&node)?;
            ensure_on_bridge(&node, &client, &cfg)?;
            client.add_member(&cfg.id, user)?;
            if *json {
                super::print_json(
                    &serde_json::json!({"folder": cfg.id.to_string(), "user": user}),
                )?;
            } else {
                println!(
                    "Shared {} with {user} through {}. Their devices get the key once this \
                     device's daemon has seen them; there: harp folder accept {} PATH",
                    cfg.label,
                    client.base(),
                    cfg.id
                );
            }
        }
        Command::Share {
            folder,
            with: Some(with),
            json,
            ..
        } => {
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
        Command::Share { .. } => anyhow::bail!("give --with DEVICE or --user USER"),
        Command::Offers { json } => {
            let client = bridge_client(&node)?;
            let offers: Vec<_> = client
                .folders()?
                .into_iter()
                .filter(|f| !node.config.folders.iter().any(|c| c.id == f.id))
                .collect();
            if *json {
                let list: Vec<_> = offers
                    .iter()
                    .map(|f| serde_json::json!({"id": f.id.to_string(), "label": f.label, "owner": f.owner}))
                    .collect();
                super::print_json(&list)?;
            } else if offers.is_empty() {
                println!(
                    "No folders on {} that this device does not sync.",
                    client.base()
                );
            } else {
                for f in &offers {
                    println!("{}  {}  (owner {})", f.id, f.label, f.owner);
                }
                println!("Sync one here: harp folder accept ID PATH");
            }
        }
        Command::Accept {
            id,
            path,
            label,
            json,
        } => {
            let id: harp_protocol::ids::FolderId = id
                .parse()
                .map_err(|e| anyhow::anyhow!("{id:?}: {e} (a folder id)"))?;
            let client = bridge_client(&node)?;
            let info = client.folder(&id)?.ok_or_else(|| {
                anyhow::anyhow!("no folder {id} on {} for {}", client.base(), client.user)
            })?;
            let me = node.device_id();
            let wrapped = client.get_key(&id, &me)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no key for this device yet: a member device wraps it when its daemon is \
                     running and has seen this device (within a minute); try again then"
                )
            })?;
            // The key counts only if a device the bridge lists as a member's wrapped and signed it.
            let member_devices: Vec<_> = info.devices.iter().map(|(_, d)| *d).collect();
            let key = harp_protocol::wrap::unwrap(
                &id,
                &wrapped,
                &me,
                &crate::bridge::x25519_secret(&node.dirs)?,
                |d| member_devices.contains(d),
            )?;
            let members: Vec<String> = member_devices
                .iter()
                .filter(|d| **d != me)
                .map(ToString::to_string)
                .collect();
            let label = label.clone().unwrap_or_else(|| info.label.clone());
            let f = node.add_folder_with(path, Some(&label), id, *key.as_bytes(), members)?;
            if *json {
                super::print_json(&folder_json(&f))?;
            } else {
                println!(
                    "Accepted folder {} ({}) at {}, owned by {}",
                    f.label,
                    f.id,
                    f.path.display(),
                    info.owner
                );
                println!("Next: harp daemon (restart it if it runs)");
            }
        }
        Command::Remove { folder, json } => {
            let cfg = node.config.folder(folder)?.clone();
            let _lock = crate::daemon::lock_data_dir(&node).map_err(|_| {
                anyhow::anyhow!(
                    "a harp daemon is running on this device: stop it first, then remove the folder"
                )
            })?;
            node.config.folders.retain(|f| f.id != cfg.id);
            node.config.save(&node.dirs)?;
            node.index()?.remove_folder(&cfg.id)?;
            for leftover in [
                node.dirs
                    .data
                    .join("docs")
                    .join(format!("{}.automerge", cfg.id)),
                node.dirs
                    .data
                    .join("bridge")
                    .join(format!("{}.json", cfg.id)),
            ] {
                match std::fs::remove_file(&leftover) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => eprintln!("harp: could not remove {}: {e}", leftover.display()),
                }
            }
            if *json {
                super::print_json(&folder_json(&cfg))?;
            } else {
                println!(
                    "Removed folder {} ({}): this device no longer syncs it. Its files stay in {} \
                     (old versions in .harp/versions); its key stays in {} for a later `harp folder join`.",
                    cfg.label,
                    cfg.id,
                    cfg.path.display(),
                    node.dirs.folder_key(&cfg.id).display()
                );
            }
        }
        Command::Policy { folder, set, json } => {
            let cfg = node.config.folder(folder)?.clone();
            if let Some(file) = set {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let p = crate::trust::save(&node.dirs, &cfg.id, &text)?;
                eprintln!(
                    "Policy of {} set: {} witness(es), quorum {} (a running daemon reads it \
                     at its next full bridge pass)",
                    cfg.label,
                    p.witnesses.len(),
                    p.quorum,
                );
            }
            let policy = crate::trust::load(&node.dirs, &cfg.id)?;
            if *json {
                super::print_json(&serde_json::json!({
                    "folder": cfg.id.to_string(),
                    "log": policy.log.as_ref().map(ToString::to_string),
                    "witnesses": policy.witnesses.iter().map(|w| serde_json::json!({
                        "key": w.key.to_string(), "url": w.url,
                    })).collect::<Vec<_>>(),
                    "quorum": policy.quorum,
                    "devices": policy.devices.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }))?;
            } else {
                print!("{}", policy.encode());
            }
        }
        Command::Direction {
            folder,
            direction,
            json,
        } => {
            let cfg = node.config.folder(folder)?.clone();
            let mut live = false;
            if let Some(d) = direction {
                if let Some(f) = node.config.folders.iter_mut().find(|f| f.id == cfg.id) {
                    f.direction = *d;
                }
                node.config.save(&node.dirs)?;
                live = crate::daemon::request(
                    &node.dirs.control_socket(),
                    &serde_json::json!({
                        "cmd": "direction",
                        "folder": cfg.id.to_string(),
                        "direction": d.name(),
                    }),
                )
                .is_ok();
            }
            let now = direction.unwrap_or(cfg.direction);
            if *json {
                super::print_json(&serde_json::json!({
                    "folder": cfg.id.to_string(),
                    "direction": now.name(),
                    "daemon_told": live,
                }))?;
            } else {
                println!("{}: {}", cfg.label, now.name());
                match (direction, live) {
                    (Some(_), true) => println!("(the running daemon uses it from now on)"),
                    (Some(_), false) => println!("(the daemon uses it from its next start)"),
                    _ => {}
                }
            }
        }
        Command::Pause { folder } | Command::Resume { folder } => {
            let paused = matches!(cmd, Command::Pause { .. });
            let cfg = node.config.folder(folder)?.clone();
            if let Some(f) = node.config.folders.iter_mut().find(|f| f.id == cfg.id) {
                f.paused = paused;
            }
            node.config.save(&node.dirs)?;
            let live = crate::daemon::request(
                &node.dirs.control_socket(),
                &serde_json::json!({"cmd": "pause", "folder": cfg.id.to_string(), "paused": paused}),
            )
            .is_ok();
            println!(
                "{}: {}{}",
                cfg.label,
                if paused { "paused" } else { "resumed" },
                if live {
                    " (the running daemon too)"
                } else {
                    " (from the daemon's next start)"
                }
            );
        }
        Command::Rescan { folder } => {
            let cfg = node.config.folder(folder)?.clone();
            let answer = crate::daemon::request(
                &node.dirs.control_socket(),
                &serde_json::json!({"cmd": "rescan", "folder": cfg.id.to_string()}),
            )
            .context("no daemon runs (start it with `harp daemon`)")?;
            if let Some(e) = answer["error"].as_str() {
                anyhow::bail!("{}: {e}", cfg.label);
            }
            println!("{}: rescan started (`harp status` shows it)", cfg.label);
        }
        Command::Revert { folder, json } => force(&node, folder, "revert", *json)?,
        Command::Override { folder, json } => force(&node, folder, "override", *json)?,
        Command::List { json } => {
            if *json {
                let list: Vec<_> = node.config.folders.iter().map(folder_json).collect();
                super::print_json(&list)?;
            } else if node.config.folders.is_empty() {
                println!("No folders yet: harp folder add PATH");
            } else {
                for f in &node.config.folders {
                    let one_way = match f.direction {
                        crate::config::Direction::SendReceive => "",
                        crate::config::Direction::SendOnly => "  (send-only)",
                        crate::config::Direction::ReceiveOnly => "  (receive-only)",
                    };
                    let paused = if f.paused { "  (paused)" } else { "" };
                    println!(
                        "{}  {}  {}{one_way}{paused}",
                        f.id,
                        f.label,
                        f.path.display()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bridge_client(node: &crate::node::Node) -> anyhow::Result<crate::bridge::Client> {
    let creds = crate::bridge::Credentials::load(&node.dirs)?.ok_or_else(|| {
        anyhow::anyhow!("this device is not logged in to a bridge: harp login URL")
    })?;
    Ok(crate::bridge::Client::new(&creds))
}

/// Puts a local folder on the bridge (owned by this user, its key wrapped for this device)
/// unless it is there.
fn ensure_on_bridge(
    node: &crate::node::Node,
    client: &crate::bridge::Client,
    cfg: &crate::config::FolderConfig,
) -> anyhow::Result<()> {
    if client.folder(&cfg.id)?.is_some() {
        return Ok(());
    }
    let key = harp_protocol::keys::FolderKey::from_bytes(crate::config::read_secret(
        &node.dirs.folder_key(&cfg.id),
    )?);
    let x = crate::bridge::x25519_secret(&node.dirs)?;
    client.register(&node.device, &x, &node.config.device_name)?;
    let me = node.device_id();
    let own = crate::bridge::wrap_for(
        &cfg.id,
        &key,
        &me,
        &harp_protocol::wrap::x25519_public(&x),
        &node.device,
    )?;
    client.create_folder(&cfg.id, &cfg.label, false, &own)?;
    Ok(())
}
