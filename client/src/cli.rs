//! The command line: argument parsing, and one module per subcommand.
//!
//! Every command prints one clear line on failure (with a hint where there is one) and exits
//! non-zero; listings take `--json`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod verify;

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
    /// Check a version proof offline: exits 0 if it holds, 1 if not, with one line saying why.
    Verify(verify::Args),
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify::run(&args),
    }
}
