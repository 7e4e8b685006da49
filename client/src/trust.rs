//! A folder's trust policy on this device: `folders/<id>.policy` in the config directory (the
//! format is `harp_protocol::policy`), with the bridge's log key, pinned at `harp login`,
//! filling in when the file names none.
//!
//! The daemon submits the folder log's checkpoints to the policy's witnesses that have a URL
//! and stores their cosignatures on the bridge; `harp proof` and `harp verify` use it as the
//! default policy of the folder's proofs.

use anyhow::Context as _;
use harp_protocol::ids::FolderId;
use harp_protocol::policy::TrustPolicy;
use harp_protocol::tlog::VerifierKey;

use crate::config::Dirs;

/// The policy file's text, if the folder has one.
fn read(dirs: &Dirs, id: &FolderId) -> anyhow::Result<Option<String>> {
    let path = dirs.folder_policy(id);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The folder's policy file as it is (an empty policy when there is none).
pub fn load_file(dirs: &Dirs, id: &FolderId) -> anyhow::Result<TrustPolicy> {
    Ok(match read(dirs, id)? {
        Some(text) => TrustPolicy::parse(&text)
            .with_context(|| format!("{}", dirs.folder_policy(id).display()))?,
        None => TrustPolicy::default(),
    })
}

/// Whether a proof must carry a log section under the folder's policy: only when the policy
/// file asks for it (a `log` line or a quorum). The key pinned at login alone checks the
/// checkpoint's signer when there is one, so a proof made offline still verifies (and says
/// it was not logged).
pub fn requires_log(file: &TrustPolicy) -> bool {
    file.log.is_some() || file.quorum > 0
}

/// The folder's policy: its file (or an empty policy), with the pinned bridge log key when the
/// file names no log.
pub fn load(dirs: &Dirs, id: &FolderId) -> anyhow::Result<TrustPolicy> {
    let mut policy = load_file(dirs, id)?;
    if policy.log.is_none()
        && let Some(key) = crate::bridge::Credentials::load(dirs)?.and_then(|c| c.log_key)
    {
        policy.log =
            Some(VerifierKey::parse(&key).context("the bridge log key pinned at `harp login`")?);
    }
    Ok(policy)
}

/// Replaces the folder's policy file (checked first).
pub fn save(dirs: &Dirs, id: &FolderId, text: &str) -> anyhow::Result<TrustPolicy> {
    let policy = TrustPolicy::parse(text)?;
    let path = dirs.folder_policy(id);
    crate::config::write_private(&path, policy.encode().as_bytes())?;
    Ok(policy)
}
