//! `harp witness`: run a witness that cosigns bridges' checkpoints (C2SP tlog-witness), or
//! print its key for folders' policies. See [`crate::witness`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use harp_protocol::tlog::VerifierKey;

use crate::config::Dirs;
use crate::witness::{self, Witness};

/// `harp witness ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print this witness's verifier key (made the first time), for `witness` lines of
    /// folders' policies.
    Key {
        /// The witness's name, as on its cosignatures (e.g. its host name).
        #[arg(long)]
        name: String,
        /// Where its key and state live (default: `witness/` in Harp's data directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the name and key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve `POST /add-checkpoint` until interrupted.
    Serve {
        /// The witness's name, as on its cosignatures.
        #[arg(long)]
        name: String,
        /// The verifier key of a bridge whose folder logs this witness follows (repeat);
        /// `harp-bridge status` and the bridge's capabilities show it.
        #[arg(long = "log", value_name = "VERIFIER_KEY", required = true)]
        logs: Vec<String>,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: std::net::SocketAddr,
        /// Where its key and state live (default: `witness/` in Harp's data directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn dir_of(dir: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.clone()),
        None => Ok(Dirs::from_env()?.witness()),
    }
}

/// Runs `harp witness ...`.
pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Key { name, dir, json } => {
            let w = Witness::open(&dir_of(dir)?, name, Vec::new())?;
            if *json {
                super::print_json(
                    &serde_json::json!({"name": name, "key": w.verifier_key().to_string()}),
                )?;
            } else {
                println!("{}", w.verifier_key());
            }
        }
        Command::Serve {
            name,
            logs,
            listen,
            dir,
        } => {
            let logs = logs
                .iter()
                .map(|k| VerifierKey::parse(k).with_context(|| format!("--log {k}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let w = Arc::new(Witness::open(&dir_of(dir)?, name, logs)?);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                println!(
                    "witness {} listening on http://{}/ (key {})",
                    name,
                    listener.local_addr()?,
                    w.verifier_key()
                );
                tokio::select! {
                    r = witness::serve(w, listener) => r,
                    r = tokio::signal::ctrl_c() => Ok(r?),
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
