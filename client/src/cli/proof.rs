//! `harp proof PATH`: export a self-contained proof of a file's history.
//!
//! When this device is logged in to a bridge that has logged the version, the proof also
//! carries its place in the folder's transparency log: a C2SP tlog-proof with the inclusion
//! hashes and the newest checkpoint with its witness cosignatures. The section is checked
//! against the folder's policy before the file is written (a bridge that answers with a bad
//! proof is named, and the proof is written without the section).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use harp_protocol::chain::Chain;
use harp_protocol::ids::{ChainHash, FileId, FolderId};
use harp_protocol::proof::{Policy, Proof};
use harp_protocol::tlog;

/// Arguments of `harp proof`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file inside a Harp folder (scanned at least once).
    pub path: PathBuf,
    /// Which version to prove (default: the newest).
    #[arg(long)]
    pub version: Option<u64>,
    /// Where to write the proof (default: `<file name>.harpproof` in the current directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp proof`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let (cfg, rel) = node.locate(&args.path)?;
    let folder = node.open_folder(cfg)?;
    let index = node.index()?;
    let row = index.file(&cfg.id, &rel)?.with_context(|| {
        format!(
            "{rel} is not in the index: run `harp scan {}` first",
            cfg.label
        )
    })?;
    let entries = index.chain(&cfg.id, &row.file_id)?;
    let chain = Chain::from_entries(cfg.id, row.file_id, &folder.keys.chain_seed, entries)
        .with_context(|| format!("the stored chain of {rel} does not verify"))?;
    let seq = args.version.unwrap_or(chain.entries().len() as u64);
    let mut proof = Proof::make(&chain, seq)?;
    let head = proof.verify(&Policy::default())?.head;
    let policy = crate::trust::load(&node.dirs, &cfg.id)?;
    match log_section(&node, &cfg.id, &row.file_id, seq, &head) {
        Ok(Some(lp)) => {
            let with = proof.clone().with_log_proof(&lp);
            let p = Policy {
                log_key: policy.log.as_ref(),
                ..Policy::default()
            };
            match with.verify(&p) {
                Ok(_) => proof = with,
                Err(e) => eprintln!(
                    "harp proof: the bridge's log proof does not hold ({e} [{}]); writing the proof without it",
                    e.code()
                ),
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("harp proof: {e:#}; writing the proof without a log section"),
    }
    let out = args.output.clone().unwrap_or_else(|| {
        let name = rel.rsplit('/').next().unwrap_or("file");
        PathBuf::from(format!("{name}.harpproof"))
    });
    std::fs::write(&out, proof.encode()).with_context(|| format!("writing {}", out.display()))?;
    let last = proof
        .entries
        .last()
        .context("a proof has at least one entry")?;
    if policy.quorum > 0 || proof.log_proof().is_some() {
        let witnesses = policy.witness_keys();
        let full = Policy {
            chain_seed: Some(&folder.keys.chain_seed),
            log_key: policy.log.as_ref(),
            witnesses: &witnesses,
            quorum: policy.quorum,
            ..Policy::default()
        };
        if let Err(e) = proof.verify(&full) {
            eprintln!(
                "harp proof: under the folder's policy this proof does not hold yet: {e} [{}] \
                 (the bridge or the witnesses may not have caught up: make it again later)",
                e.code()
            );
        }
    }
    let log = proof.log_proof().and_then(Result::ok).map(|lp| {
        let cosignatures = tlog::Note::parse(&lp.checkpoint)
            .map(|n| n.signatures.len().saturating_sub(1))
            .unwrap_or(0);
        (lp.index, cosignatures)
    });
    if args.json {
        super::print_json(&serde_json::json!({
            "output": out,
            "path": rel,
            "version": seq,
            "op": last.op.name(),
            "entries": proof.entries.len(),
            "log_index": log.map(|(i, _)| i),
            "cosignatures": log.map(|(_, c)| c),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let logged = match log {
        Some((index, cosigs)) => {
            format!(", logged as leaf {index} with {cosigs} cosignature(s)")
        }
        None => String::new(),
    };
    println!(
        "Wrote {}: version {seq} ({}) of {rel}, {} entries{logged}; check it with `harp verify {}`",
        out.display(),
        last.op.name(),
        proof.entries.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The version's place in the folder's log, from the bridge (`None`: not logged in, or the
/// bridge has not logged it yet, which is said).
fn log_section(
    node: &crate::node::Node,
    folder: &FolderId,
    file: &FileId,
    seq: u64,
    head: &ChainHash,
) -> anyhow::Result<Option<tlog::LogProof>> {
    let Some(creds) = crate::bridge::Credentials::load(&node.dirs)? else {
        return Ok(None);
    };
    let client = crate::bridge::Client::new(&creds);
    let Some(index) = client.log_index(folder, file, seq, head)? else {
        eprintln!(
            "harp proof: the bridge has not logged version {seq} yet (is the daemon running?); \
             the proof has no log section"
        );
        return Ok(None);
    };
    let (size, note) = client.checkpoint(folder)?;
    if index >= size {
        eprintln!("harp proof: the bridge's newest checkpoint does not cover version {seq} yet");
        return Ok(None);
    }
    Ok(Some(tlog::LogProof {
        index,
        hashes: client.inclusion(folder, index, size)?,
        checkpoint: note,
    }))
}
