//! A witness (`harp witness serve`): cosigns a log's checkpoint only when it extends the last
//! checkpoint of that log it cosigned, so a bridge that shows two histories to two clients
//! cannot get both cosigned by the same witness.
//!
//! It speaks C2SP tlog-witness: `POST /add-checkpoint` with
//!
//! ```text
//! old <size the submitter believes the witness last cosigned>
//! <consistency proof from that size to the checkpoint's, one base64 hash per line>
//!
//! <the checkpoint's signed note>
//! ```
//!
//! and answers 200 with its cosignature line, 409 (`text/x.tlog.size`: its latest size) when
//! `old` is not what it last cosigned, 422 when the proof does not show the checkpoint extends
//! that one, 404 for an origin of no log it follows, 403 when no key it trusts signed the
//! note, 400 for anything malformed. A witness follows every `harp/<folder id>` log whose
//! checkpoints are signed by one of its trusted bridge keys (one bridge signs all its
//! folders' logs). What it last cosigned per log is in a SQLite file, updated with a compare
//! and swap, so a crash never makes it cosign two histories.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use harp_protocol::tlog::{self, Checkpoint, Hash, Note, VerifierKey};
use rusqlite::{OptionalExtension, params};

/// The largest request body (a note is at most 1 MiB; proofs are small).
pub const MAX_REQUEST: usize = 1 << 20;

/// Why a checkpoint is not cosigned; each maps to the status C2SP tlog-witness gives it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 400.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 403.
    #[error("the checkpoint is not signed by a log key this witness trusts")]
    Untrusted,
    /// 404.
    #[error("this witness follows no log {0}")]
    UnknownLog(String),
    /// 409: the witness's latest size for that log.
    #[error("old size {old} is not the size this witness last cosigned ({latest})")]
    Conflict {
        /// The size the submitter gave.
        old: u64,
        /// What the witness has.
        latest: u64,
    },
    /// 422.
    #[error("the checkpoint does not extend the one cosigned at size {old}: {why}")]
    Inconsistent {
        /// The size last cosigned.
        old: u64,
        /// What failed.
        why: String,
    },
    /// 500.
    #[error("witness state: {0}")]
    State(String),
}

impl Refusal {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::Untrusted => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::Inconsistent { .. } => 422,
            Refusal::State(_) => 500,
        }
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Refusal::State(e.to_string())
    }
}

/// A witness: its key, the log keys it trusts and its state.
pub struct Witness {
    name: String,
    key: SigningKey,
    logs: Vec<VerifierKey>,
    db: Mutex<rusqlite::Connection>,
}

/// The key file and state database of a witness in `dir`.
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("witness.key"), dir.join("witness.sqlite3"))
}

/// Loads the witness key in `dir`, creating it (mode 0600) the first time.
pub fn load_or_create_key(dir: &Path) -> anyhow::Result<SigningKey> {
    let (key_path, _) = paths(dir);
    match std::fs::read(&key_path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", key_path.display()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            crate::config::write_private(&key_path, &seed)?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", key_path.display())),
    }
}

fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), Refusal> {
    let bad = |why: &str| Refusal::Malformed(why.to_owned());
    let (first, mut rest) = body.split_once('\n').ok_or_else(|| bad("no old line"))?;
    let old = first
        .strip_prefix("old ")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("the first line is not `old N`"))?;
    let mut proof = Vec::new();
    loop {
        let (line, r) = rest
            .split_once('\n')
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        rest = r;
        if line.is_empty() {
            break;
        }
        if proof.len() == 64 {
            return Err(bad("over 64 proof hashes"));
        }
        proof.push(
            data_encoding::BASE64
                .decode(line.as_bytes())
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| bad("a proof line is not a base64 hash"))?,
        );
    }
    Ok((old, proof, rest))
}

impl Witness {
    /// Opens the witness in `dir` (key and state), trusting checkpoints signed by `logs`.
    pub fn open(dir: &Path, name: &str, logs: Vec<VerifierKey>) -> anyhow::Result<Self> {
        let key = load_or_create_key(dir)?;
        // The name must be a valid key name.
        tlog::cosign("x\n", name, &key, 0).context("the witness name")?;
        let (_, db_path) = paths(dir);
        let db = rusqlite::Connection::open(&db_path)
            .with_context(|| format!("opening {}", db_path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS cosigned (
                 origin TEXT PRIMARY KEY,   -- the log
                 size   INTEGER NOT NULL,   -- the size of the last checkpoint cosigned
                 root   BLOB NOT NULL       -- its root hash
             ) STRICT;",
        )?;
        Ok(Self {
            name: name.to_owned(),
            key,
            logs,
            db: Mutex::new(db),
        })
    }

    /// This witness's verifier key (cosignature type), for folders' policies.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey::witness(&self.name, &self.key.verifying_key())
    }

    /// Handles an `add-checkpoint` request body: the cosignature line, or why not.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refusal> {
        let (old, proof, note_text) = parse_request(body)?;
        let note = Note::parse(note_text).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse(&note.body).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let follows = checkpoint
            .origin
            .strip_prefix("harp/")
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if !follows {
            return Err(Refusal::UnknownLog(checkpoint.origin));
        }
        if !self
            .logs
            .iter()
            .any(|k| note.verified_by(&k.name, &k.key).is_ok())
        {
            return Err(Refusal::Untrusted);
        }
        if old > checkpoint.size {
            return Err(Refusal::Malformed(format!(
                "old size {old} is past the checkpoint's {}",
                checkpoint.size
            )));
        }
        let mut db = self
            .db
            .lock()
            .map_err(|_| Refusal::State("poisoned".into()))?;
        let tx = db.transaction()?;
        let latest: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT size, root FROM cosigned WHERE origin = ?1",
                params![checkpoint.origin],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (latest, latest_root) = match latest {
            Some((s, r)) => (
                u64::try_from(s).map_err(|_| Refusal::State("negative size".into()))?,
                Hash::try_from(r).map_err(|_| Refusal::State("bad root".into()))?,
            ),
            None => (0, tlog::empty_root()),
        };
        if old != latest {
            return Err(Refusal::Conflict { old, latest });
        }
        let consistent = if old == 0 {
            if proof.is_empty() {
                Ok(())
            } else {
                Err("a proof from size 0 is empty".to_owned())
            }
        } else {
            tlog::verify_consistency(old, checkpoint.size, &proof, &latest_root, &checkpoint.root)
                .map_err(|e| e.to_string())
        };
        if let Err(why) = consistent {
            return Err(Refusal::Inconsistent { old, why });
        }
        let size = i64::try_from(checkpoint.size)
            .map_err(|_| Refusal::Malformed("a size over 2^63".into()))?;
        tx.execute(
            "INSERT INTO cosigned (origin, size, root) VALUES (?1, ?2, ?3)
             ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root",
            params![checkpoint.origin, size, &checkpoint.root[..]],
        )?;
        tx.commit()?;
        tracing::info!(
            origin = checkpoint.origin,
            size = checkpoint.size,
            "cosigned"
        );
        tlog::cosign(&note.body, &self.name, &self.key, now)
            .map_err(|e| Refusal::State(e.to_string()))
    }
}

/// A witness's answer to a submitted checkpoint.
#[derive(Debug)]
pub enum Submitted {
    /// 200: its cosignature line.
    Cosigned(String),
    /// 409: the size it last cosigned (the `old` to give).
    Conflict(u64),
    /// Any other status, with the body.
    Refused(u16, String),
}

/// Submits a checkpoint to the witness at `url` (its base; `add-checkpoint` is appended),
/// claiming it last cosigned `old` leaves, with the consistency proof from there.
pub fn submit(url: &str, old: u64, proof: &[Hash], note: &str) -> Result<Submitted, String> {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&data_encoding::BASE64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    let target = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .post(&target)
        .content_type("text/plain; charset=utf-8")
        .send(body.as_bytes())
        .map_err(|e| format!("POST {target}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map_err(|e| format!("POST {target}: {e}"))?;
    Ok(match status {
        200 => Submitted::Cosigned(text),
        409 => match text.trim().parse() {
            Ok(size) => Submitted::Conflict(size),
            Err(_) => Submitted::Refused(409, text),
        },
        other => Submitted::Refused(other, text),
    })
}

/// Serves `POST /add-checkpoint` on `listener` until the task is dropped.
pub async fn serve(witness: Arc<Witness>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let app = axum::Router::new()
        .route(
            "/add-checkpoint",
            axum::routing::post(move |body: axum::body::Bytes| {
                let witness = witness.clone();
                async move {
                    let Ok(text) = std::str::from_utf8(&body) else {
                        return (
                            StatusCode::BAD_REQUEST,
                            "the body is not UTF-8\n".to_owned(),
                        )
                            .into_response();
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let result = tokio::task::spawn_blocking({
                        let text = text.to_owned();
                        move || witness.add_checkpoint(&text, now)
                    })
                    .await
                    .unwrap_or_else(|e| Err(Refusal::State(e.to_string())));
                    match result {
                        Ok(line) => (StatusCode::OK, line).into_response(),
                        Err(Refusal::Conflict { latest, .. }) => (
                            StatusCode::CONFLICT,
                            [(header::CONTENT_TYPE, "text/x.tlog.size")],
                            format!("{latest}\n"),
                        )
                            .into_response(),
                        Err(e) => {
                            tracing::warn!("refused a checkpoint: {e}");
                            (
                                StatusCode::from_u16(e.status())
                                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                                format!("{e}\n"),
                            )
                                .into_response()
                        }
                    }
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST));
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn origin() -> String {
        format!("harp/{}", "ab".repeat(16))
    }

    fn note(tree: &tlog::Tree, size: u64) -> String {
        let body = Checkpoint {
            origin: origin(),
            size,
            root: tree.root(size).unwrap(),
        }
        .body();
        tlog::sign_note(&body, "bridge", &log_key()).unwrap()
    }

    fn request(tree: &tlog::Tree, old: u64, new: u64) -> String {
        let mut s = format!("old {old}\n");
        if old > 0 {
            for h in tree.consistency(old, new).unwrap() {
                s.push_str(&data_encoding::BASE64.encode(&h));
                s.push('\n');
            }
        }
        s.push('\n');
        s + &note(tree, new)
    }

    #[test]
    fn cosigns_only_extensions_of_what_it_cosigned_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let logs = vec![VerifierKey::log("bridge", &log_key().verifying_key())];
        let w = Witness::open(dir.path(), "w.example", logs.clone()).unwrap();
        let mut tree = tlog::Tree::new();
        for i in 0..10u8 {
            tree.push(tlog::leaf_hash(&[i]));
        }
        let line = w.add_checkpoint(&request(&tree, 0, 4), 100).unwrap();
        let cosigned = Note::parse(&(note(&tree, 4) + &line)).unwrap();
        let t = cosigned
            .cosigned_by("w.example", &w.verifier_key().key)
            .unwrap();
        assert_eq!(t, 100);
        // The submitter's idea of the witness's size is stale: 409 with the real one.
        let e = w.add_checkpoint(&request(&tree, 0, 10), 101).unwrap_err();
        assert_eq!((e.status(), e.to_string().contains("(4)")), (409, true));
        w.add_checkpoint(&request(&tree, 4, 10), 102).unwrap();
        drop(w);

        // Another history of 12 leaves that shares only the first 3 is refused, even after
        // a restart.
        let w = Witness::open(dir.path(), "w.example", logs).unwrap();
        let mut fork = tlog::Tree::new();
        for i in 0..12u8 {
            fork.push(tlog::leaf_hash(&[if i < 3 { i } else { i + 100 }]));
        }
        let mut forged = "old 10\n".to_owned();
        for h in fork.consistency(10, 12).unwrap() {
            forged.push_str(&data_encoding::BASE64.encode(&h));
            forged.push('\n');
        }
        forged.push('\n');
        forged.push_str(&note(&fork, 12));
        assert_eq!(w.add_checkpoint(&forged, 103).unwrap_err().status(), 422);
        // The same size with another root is refused too.
        let same_size = format!("old 10\n\n{}", note(&fork, 10));
        assert_eq!(w.add_checkpoint(&same_size, 104).unwrap_err().status(), 422);
    }

    #[test]
    fn untrusted_unknown_and_malformed_requests_are_refused_with_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let logs = vec![VerifierKey::log("bridge", &log_key().verifying_key())];
        let w = Witness::open(dir.path(), "w.example", logs).unwrap();
        let mut tree = tlog::Tree::new();
        tree.push(tlog::leaf_hash(b"a"));
        let other = SigningKey::from_bytes(&[8; 32]);
        let body = Checkpoint {
            origin: origin(),
            size: 1,
            root: tree.root(1).unwrap(),
        }
        .body();
        let by_other = tlog::sign_note(&body, "bridge", &other).unwrap();
        assert_eq!(
            w.add_checkpoint(&format!("old 0\n\n{by_other}"), 1)
                .unwrap_err()
                .status(),
            403
        );
        let body = Checkpoint {
            origin: "example.com/log".into(),
            size: 1,
            root: tree.root(1).unwrap(),
        }
        .body();
        let elsewhere = tlog::sign_note(&body, "bridge", &log_key());
        assert_eq!(
            w.add_checkpoint(&format!("old 0\n\n{}", elsewhere.unwrap()), 1)
                .unwrap_err()
                .status(),
            404
        );
        for bad in ["", "old\n\n", "old 0\nnot base64\n\n", "old 0\n\nno note"] {
            assert_eq!(w.add_checkpoint(bad, 1).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(
            w.add_checkpoint(&format!("old 5\n\n{}", note(&tree, 1)), 1)
                .unwrap_err()
                .status(),
            400
        );
    }
}
