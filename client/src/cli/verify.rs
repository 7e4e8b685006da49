//! `harp verify PROOF`: checks a version proof offline.
//!
//! Exit status 0 means every check the proof and the policy allow passed; the line printed
//! says which (signatures and sequence always; the genesis link only with the folder key;
//! authors only with `--trust`). Exit status 1 means the proof does not hold, or could not be
//! read, and the line says what is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use harp_protocol::ids::DeviceId;
use harp_protocol::keys::FolderKey;
use harp_protocol::proof::{self, Policy, Summary};

/// Arguments of `harp verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proof file (as written by `harp proof`).
    pub proof: PathBuf,
    /// The folder key (64 hex digits), to check the chain's genesis against the folder's seed.
    /// Not needed when this device syncs the folder: its key is then used.
    #[arg(long, value_name = "HEX")]
    pub folder_key: Option<String>,
    /// A device allowed to author versions (repeat for each); when given, every author must be
    /// one of them.
    #[arg(long = "trust", value_name = "DEVICE_ID")]
    pub trusted: Vec<DeviceId>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_folder_key(hex: &str) -> Result<FolderKey, String> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| "the folder key must be 64 hex digits".to_owned())?;
    Ok(FolderKey::from_bytes(bytes))
}

fn describe(s: &Summary) -> String {
    let mut checked = vec!["signatures", "sequence"];
    if s.genesis_checked {
        checked.push("genesis");
    }
    if s.authors_checked {
        checked.push("trusted authors");
    }
    format!(
        "ok: version {} ({}) of file {} in folder {}, content {} ({} bytes) by {}; head {}; checked: {}",
        s.seq,
        s.op.name(),
        s.file,
        s.folder,
        s.content_root,
        s.size,
        s.author,
        s.head,
        checked.join(", ")
    )
}

fn json_line(s: &Summary) -> String {
    serde_json::json!({
        "ok": true,
        "seq": s.seq,
        "op": s.op.name(),
        "folder": s.folder.to_string(),
        "file": s.file.to_string(),
        "content_root": s.content_root.to_string(),
        "size": s.size,
        "author": s.author.to_string(),
        "timestamp_ms": s.timestamp_ms,
        "head": s.head.to_string(),
        "genesis_checked": s.genesis_checked,
        "authors_checked": s.authors_checked,
    })
    .to_string()
}

/// The keys of the proof's folder, if this device syncs it: then the genesis is checked
/// without the user passing the key.
fn local_folder_keys(proof_bytes: &[u8]) -> Option<harp_protocol::keys::FolderKeys> {
    let folder = proof::Proof::decode(proof_bytes).ok()?.folder;
    let node = crate::node::Node::open(crate::config::Dirs::from_env().ok()?).ok()?;
    let cfg = node.config.folders.iter().find(|f| f.id == folder)?;
    Some(node.open_folder(cfg).ok()?.keys)
}

fn check(args: &Args) -> Result<Summary, String> {
    let bytes = std::fs::read(&args.proof)
        .map_err(|e| format!("cannot read {}: {e}", args.proof.display()))?;
    let keys = match args.folder_key.as_deref() {
        Some(hex) => Some(parse_folder_key(hex)?.schedule()),
        None => local_folder_keys(&bytes),
    };
    let policy = Policy {
        chain_seed: keys.as_ref().map(|k| &k.chain_seed),
        trusted_devices: (!args.trusted.is_empty()).then_some(args.trusted.as_slice()),
    };
    proof::verify(&bytes, &policy).map_err(|e| format!("proof does not hold: {e} [{}]", e.code()))
}

/// Runs `harp verify`.
pub fn run(args: &Args) -> ExitCode {
    match check(args) {
        Ok(summary) => {
            if args.json {
                println!("{}", json_line(&summary));
            } else {
                println!("{}", describe(&summary));
            }
            ExitCode::SUCCESS
        }
        Err(line) => {
            if args.json {
                println!("{}", serde_json::json!({"ok": false, "error": line}));
            } else {
                eprintln!("harp verify: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
