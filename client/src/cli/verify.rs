//! `harp verify PROOF`: checks a version proof offline.
//!
//! Exit status 0 means every check the proof and the policy allow passed; the line printed
//! says which (signatures and sequence always; the genesis link only with the folder key;
//! authors only with `--trust` or `device` lines; the log inclusion when the proof carries
//! it; the checkpoint's signer with a log key; cosignatures with witnesses). Exit status 1
//! means the proof does not hold, or could not be read, and the line says what is wrong.
//!
//! The policy is `--policy FILE` (see `harp_protocol::policy`), or else, when this device
//! syncs the proof's folder, that folder's policy (`harp folder policy`).

use std::path::PathBuf;
use std::process::ExitCode;

use harp_protocol::ids::DeviceId;
use harp_protocol::keys::FolderKey;
use harp_protocol::policy::TrustPolicy;
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
    /// A trust policy file: the log key, witnesses and quorum, trusted devices (default: the
    /// folder's policy on this device, if it syncs the folder).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
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
    let log = match &s.log {
        None => String::new(),
        Some(l) => {
            let signer = if l.signer_checked {
                "signed by the bridge's log key"
            } else {
                "signer not checked: no log key in the policy"
            };
            let names: Vec<&str> = l.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
            let cosigned = if names.is_empty() {
                String::new()
            } else {
                format!(", cosigned by {}", names.join(", "))
            };
            format!(
                "; logged as leaf {} of {} ({signer}{cosigned})",
                l.index, l.size
            )
        }
    };
    format!(
        "ok: version {} ({}) of file {} in folder {}, content {} ({} bytes) by {}; head {}{log}; checked: {}",
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
        "log": s.log.as_ref().map(|l| serde_json::json!({
            "index": l.index,
            "size": l.size,
            "signer_checked": l.signer_checked,
            "cosigned_by": l.cosigned_by.iter()
                .map(|(n, t)| serde_json::json!({"witness": n, "timestamp": t}))
                .collect::<Vec<_>>(),
        })),
    })
    .to_string()
}

/// The keys and policy of the proof's folder, if this device syncs it: then the genesis is
/// checked without the user passing the key, and the folder's policy applies.
fn local_folder(
    proof_bytes: &[u8],
) -> Option<(harp_protocol::keys::FolderKeys, anyhow::Result<TrustPolicy>)> {
    let proof = proof::Proof::decode(proof_bytes).ok()?;
    let folder = proof.folder;
    let node = crate::node::Node::open(crate::config::Dirs::from_env().ok()?).ok()?;
    let cfg = node.config.folders.iter().find(|f| f.id == folder)?;
    let keys = node.open_folder(cfg).ok()?.keys;
    let policy = crate::trust::load_file(&node.dirs, &folder).and_then(|file| {
        if proof.log_proof().is_some() || crate::trust::requires_log(&file) {
            crate::trust::load(&node.dirs, &folder)
        } else {
            Ok(file)
        }
    });
    Some((keys, policy))
}

fn check(args: &Args) -> Result<Summary, String> {
    let bytes = std::fs::read(&args.proof)
        .map_err(|e| format!("cannot read {}: {e}", args.proof.display()))?;
    let local = local_folder(&bytes);
    let keys = match args.folder_key.as_deref() {
        Some(hex) => Some(parse_folder_key(hex)?.schedule()),
        None => local.as_ref().map(|(k, _)| k.clone()),
    };
    let trust = match (&args.policy, local) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            TrustPolicy::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?
        }
        (None, Some((_, folder_policy))) => {
            folder_policy.map_err(|e| format!("the folder's policy: {e:#}"))?
        }
        (None, None) => TrustPolicy::default(),
    };
    let mut trusted = trust.devices.clone();
    trusted.extend(args.trusted.iter().copied());
    let witnesses = trust.witness_keys();
    let policy = Policy {
        chain_seed: keys.as_ref().map(|k| &k.chain_seed),
        trusted_devices: (!trusted.is_empty()).then_some(trusted.as_slice()),
        log_key: trust.log.as_ref(),
        witnesses: &witnesses,
        quorum: trust.quorum,
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
