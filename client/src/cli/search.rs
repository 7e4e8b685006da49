//! `harp search WORDS`: find files by name through the bridge's search index, in every folder
//! this device syncs (or one). In folders with an encrypted index the words travel as keyed
//! tokens: the bridge matches them without learning them.

use std::process::ExitCode;

use harp_protocol::keys::FolderKey;

/// Arguments of `harp search`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Words of the name (every word must match; case does not matter).
    #[arg(required = true)]
    pub words: Vec<String>,
    /// Only this folder (label, id or path).
    #[arg(long)]
    pub folder: Option<String>,
    /// Include deleted files.
    #[arg(long)]
    pub deleted: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp search`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let creds = crate::bridge::Credentials::load(&node.dirs)?
        .ok_or_else(|| anyhow::anyhow!("search uses the bridge's index: harp login URL first"))?;
    let client = crate::bridge::Client::new(&creds);
    let index = node.index()?;
    let folders: Vec<_> = match &args.folder {
        Some(f) => vec![node.config.folder(f)?.clone()],
        None => node.config.folders.clone(),
    };
    let query = args.words.join(" ");
    let mut found = Vec::new();
    for f in &folders {
        let Some(info) = client.folder(&f.id)? else {
            continue;
        };
        let hits = if info.plaintext_index {
            client.search(&f.id, Some(&query), &[])?
        } else {
            let key =
                FolderKey::from_bytes(crate::config::read_secret(&node.dirs.folder_key(&f.id))?);
            // Each file is indexed under the key epoch it was last written in: ask in each.
            let ring = crate::keyring::load(&node.dirs, &f.id, &key)?;
            let mut hits = Vec::new();
            for epoch in ring.keys() {
                let tokens = epoch.search_tokens(&query);
                if tokens.is_empty() {
                    anyhow::bail!("search for words of two letters or more");
                }
                for h in client.search(&f.id, None, &tokens)? {
                    if !hits
                        .iter()
                        .any(|x: &crate::bridge::IndexHit| x.file == h.file)
                    {
                        hits.push(h);
                    }
                }
            }
            hits
        };
        for h in hits.into_iter().filter(|h| args.deleted || !h.deleted) {
            // The bridge knows ids; the path comes from this device's own index.
            let path = index
                .file_by_id(&f.id, &h.file)?
                .map(|r| r.path)
                .or(h.name.clone());
            found.push((f, h, path));
        }
    }
    if args.json {
        let list: Vec<_> = found
            .iter()
            .map(|(f, h, path)| {
                serde_json::json!({
                    "folder": f.label, "file_id": h.file.to_string(), "path": path,
                    "full_path": path.as_ref().map(|p| f.path.join(p)),
                    "size": h.size, "mtime_ms": h.mtime_ms, "deleted": h.deleted,
                })
            })
            .collect();
        super::print_json(&list)?;
    } else if found.is_empty() {
        println!("Nothing found for {query:?}.");
    } else {
        for (f, h, path) in &found {
            match path {
                Some(p) => println!(
                    "{}{}",
                    f.path.join(p).display(),
                    if h.deleted { "  (deleted)" } else { "" }
                ),
                None => println!("{}: file {} (not on this device yet)", f.label, h.file),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
