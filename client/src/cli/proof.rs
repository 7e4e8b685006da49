//! `harp proof PATH`: export a self-contained proof of a file's history.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use harp_protocol::chain::Chain;
use harp_protocol::proof::Proof;

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
    let proof = Proof::make(&chain, seq)?;
    let out = args.output.clone().unwrap_or_else(|| {
        let name = rel.rsplit('/').next().unwrap_or("file");
        PathBuf::from(format!("{name}.harpproof"))
    });
    std::fs::write(&out, proof.encode()).with_context(|| format!("writing {}", out.display()))?;
    let last = proof
        .entries
        .last()
        .context("a proof has at least one entry")?;
    println!(
        "Wrote {}: version {seq} ({}) of {rel}, {} entries; check it with `harp verify {}`",
        out.display(),
        last.op.name(),
        proof.entries.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
