//! `harp device`: the devices a bridge lists, and which of them this device trusts (see
//! [`crate::approval`]).

use std::process::ExitCode;

use anyhow::Context as _;
use harp_protocol::ids::DeviceId;
use serde_json::json;

use crate::approval::{self, Mode};
use crate::config::{Config, Dirs};

/// `harp device ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the devices approved here and those waiting for approval.
    List {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Trust a device the bridge lists (compare its id with what `harp init` prints on it).
    Approve {
        /// The device id.
        device: String,
        /// Also trust the devices it approves (its signed introductions, carried by the
        /// bridge): approve your own devices as introducers of each other, and a device
        /// approved on one of them is trusted on all.
        #[arg(long)]
        introducer: bool,
    },
    /// Stop trusting a device approved before: from the bridge link's next pass it gets no
    /// key from this device, nothing is served to it and its new chain entries are refused.
    Forget {
        /// The device id.
        device: String,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse(device: &str) -> anyhow::Result<DeviceId> {
    device
        .trim()
        .parse()
        .with_context(|| format!("{device:?} is not a device id (as `harp init` prints it)"))
}

/// Asks a running daemon's bridge link for a full pass now; says what follows.
fn tell_daemon(dirs: &Dirs) -> &'static str {
    match crate::daemon::request(&dirs.control_socket(), &json!({"cmd": "bridge_refresh"})) {
        Ok(v) if v["linked"] == true => "The running daemon applies it now.",
        Ok(_) => "(The running daemon has no bridge link.)",
        Err(_) => "The daemon applies it when it starts.",
    }
}

/// Runs `harp device ...`.
pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::from_env()?;
    let mode = Config::load(&dirs)?.device_approval;
    match cmd {
        Command::List { json } => {
            let approved = approval::approved(&dirs)?;
            let waiting = approval::waiting(&dirs)?;
            let introduced = approval::introduced(&dirs)?;
            if *json {
                super::print_json(&json!({
                    "mode": mode,
                    "approved": approved
                        .iter()
                        .map(|(d, a)| json!({"device": d.to_string(), "approved_ms": a.approved_ms, "introducer": a.introducer}))
                        .collect::<Vec<_>>(),
                    "introduced": introduced
                        .iter()
                        .map(|(d, i)| json!({"device": d, "by": i.by, "at_ms": i.at_ms}))
                        .collect::<Vec<_>>(),
                    "waiting": waiting
                        .iter()
                        .map(|(d, w)| json!({"device": d, "user": w.user, "folders": w.folders, "first_seen_ms": w.first_seen_ms}))
                        .collect::<Vec<_>>(),
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            match mode {
                Mode::Bridge => println!(
                    "device_approval = \"bridge\": every device the bridge lists is trusted \
                     (set \"manual\" in the config to approve each one here)"
                ),
                Mode::Manual => {
                    println!("device_approval = \"manual\": only approved devices are trusted")
                }
            }
            if waiting.is_empty() {
                println!("No device waits for approval.");
            }
            for (d, w) in &waiting {
                let folders: Vec<&str> = w.folders.iter().map(String::as_str).collect();
                println!(
                    "waiting   {d}  user {}  folders {}  (harp device approve {d})",
                    w.user,
                    folders.join(", ")
                );
            }
            for (d, a) in &approved {
                let role = if a.introducer { "  (introducer)" } else { "" };
                println!("approved  {d}{role}");
            }
            for (d, i) in &introduced {
                println!("trusted   {d}  introduced by {}", i.by);
            }
        }
        Command::Approve { device, introducer } => {
            let d = parse(device)?;
            let what = if *introducer { " as an introducer" } else { "" };
            if approval::approve(&dirs, d, now_ms(), *introducer)? {
                println!("Approved {d}{what}. {}", tell_daemon(&dirs));
            } else {
                println!("{d} was approved{what} already.");
            }
            if mode == Mode::Bridge {
                println!("(device_approval is \"bridge\": every listed device is trusted anyway)");
            }
        }
        Command::Forget { device } => {
            let d = parse(device)?;
            if !approval::forget(&dirs, &d)? {
                anyhow::bail!("{d} was not approved on this device");
            }
            println!("{d} is no longer approved here. {}", tell_daemon(&dirs));
        }
    }
    Ok(ExitCode::SUCCESS)
}
