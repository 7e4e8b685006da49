//! The command line: argument parsing, and one module per subcommand.
//!
//! Every command prints one clear line on failure (with a hint where there is one) and exits
//! non-zero; listings take `--json`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Dirs;
use crate::node::Node;

pub mod bench;
mod bench_summary;
mod bench_sync;
mod bench_syncthing;
mod bench_transfer;
pub mod check;
pub mod conflicts;
pub mod daemon;
pub mod device;
pub mod folder;
pub mod init;
pub mod login;
pub mod proof;
pub mod relay;
pub mod scan;
pub mod search;
pub mod verify;
pub mod versions;
pub mod witness;

/// Harp: peer-to-peer folder sync with verifiable version history.
#[derive(Debug, Parser)]
#[command(name = "harp", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set this device up: a device key and a config file (never replaces existing ones).
    Init(init::Args),
    /// Add, list and inspect synced folders.
    #[command(subcommand)]
    Folder(folder::Command),
    /// Scan a folder for changes and record them.
    Scan(scan::Args),
    /// List the conflict copies sync set aside, and the file each belongs to.
    Conflicts(conflicts::Args),
    /// List the kept old versions of a file.
    Versions(versions::ListArgs),
    /// Put an old version of a file back (the current one is kept as a version).
    Restore(versions::RestoreArgs),
    /// Write a proof of a file's version history, for `harp verify`.
    Proof(proof::Args),
    /// Verify the index, every chain and manifest (and with --read-data every file's bytes).
    Check(check::Args),
    /// Check a version proof offline: exits 0 if it holds, 1 if not, with one line saying why.
    Verify(verify::Args),
    /// Find files by name through the bridge's search index (encrypted words, or names).
    Search(search::Args),
    /// Connect this device to a bridge (Nextcloud with harpbridge, or harp-bridge).
    Login(login::Args),
    /// The devices a bridge lists, and which of them this device trusts (`device_approval`).
    #[command(subcommand)]
    Device(device::Command),
    /// Run this device: network node, chunk server, folder watchers, control API.
    Daemon(daemon::Args),
    /// List the peers the running daemon is connected to: direct or relayed, RTT, traffic.
    Peers(daemon::PeersArgs),
    /// Show the running daemon's device, addresses (direct and relayed) and folders.
    Status(daemon::StatusArgs),
    /// Print the address of the running daemon's web UI, with its access token.
    Ui(daemon::UiArgs),
    /// Run a public relay node (on a VPS): relay, DHT and reachability server for peers.
    Relay(relay::Args),
    /// Run a witness that cosigns bridges' checkpoints, or print its key.
    #[command(subcommand)]
    Witness(witness::Command),
    /// Measure Harp on this machine.
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Opens this device from the environment's directories.
pub(crate) fn open_node() -> anyhow::Result<Node> {
    Ok(Node::open(Dirs::from_env()?)?)
}

/// Prints `value` as one line of JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => return verify::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Folder(cmd) => folder::run(&cmd),
        Command::Scan(args) => scan::run(&args),
        Command::Conflicts(args) => conflicts::run(&args),
        Command::Versions(args) => versions::list(&args),
        Command::Restore(args) => versions::restore(&args),
        Command::Proof(args) => proof::run(&args),
        Command::Relay(args) => relay::run(&args),
        Command::Witness(cmd) => witness::run(&cmd),
        Command::Daemon(args) => daemon::run(&args),
        Command::Login(args) => login::run(&args),
        Command::Device(cmd) => device::run(&cmd),
        Command::Check(args) => check::run(&args),
        Command::Search(args) => search::run(&args),
        Command::Peers(args) => daemon::peers(&args),
        Command::Status(args) => daemon::status(&args),
        Command::Ui(args) => daemon::ui(&args),
        Command::Bench(cmd) => bench::run(&cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
