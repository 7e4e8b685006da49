//! The install journal: which peer version each install put at which path, noted before its
//! rename.
//!
//! An install renames a peer's version into place, then records it in the index (small files
//! are recorded in batches, so a batch of renames can be ahead of the index). A kill -9 in
//! between leaves bytes on disk that the index does not describe; the restarted scan takes
//! them for this device's own work. [`super::recover`] tells the two apart, and this journal
//! is what it trusts: a local change is taken for a received version only if the journal says
//! this device installed that version of that file at that path. Without it, recovery would
//! have to guess from content alone, and would take a user's own file that happens to equal a
//! peer's version for that version (or miss a file whose author deleted it since).
//!
//! The journal is `<folder>/.harp/installs`, one line per install:
//! `<file id> <chain head> <seq> <unix ms> <path as a JSON string>`. Each line goes out in one
//! `write` on an append-only file before the rename, so a kill -9 leaves every line of a
//! rename that happened (a torn last line belongs to a rename that did not, and is skipped).
//! It is not fsynced: it guards against a process dying (kill -9, a crash), as the batches it
//! covers do. A power cut can lose lines of renames that survived it; those files then come
//! back as local changes (a conflict copy or a new id: nothing lost, but not recognised).
//!
//! An entry is settled once the index holds its version (the file's chain goes through it) or
//! this device has agreed on a version at least as late (the file's sync base): only then has
//! recovery done its work. The scanner's own records prove nothing here (after a kill it signs
//! the received bytes as a local edit, at the very seq of the received version). At the start
//! of each round settled entries are forgotten ([`InstallJournal::forget`]); at the end of
//! each completed round the journal keeps only this round's installs that did not reach the
//! index and the earlier entries still unsettled ([`InstallJournal::settle`]). Most rounds
//! leave it empty.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use harp_protocol::ids::{ChainHash, FileId};

use crate::scan::{Folder, MARKER_DIR};

/// The journal's file name in the folder's marker directory.
const FILE_NAME: &str = "installs";

/// An unsettled entry older than this is dropped: its install was cut short a week ago and
/// rounds have run since, so recovery has had its chance.
const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// One install: the version (`file_id` at `head`, `seq`) put at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file's id.
    pub file_id: FileId,
    /// The link the installed version is.
    pub head: ChainHash,
    /// Its position in the chain.
    pub seq: u64,
    /// Where it was put, relative to the folder root.
    pub path: String,
    /// When (unix ms).
    pub at_ms: i64,
}

impl Entry {
    fn line(&self) -> String {
        // A JSON string has no raw newline or space problem: escapes cover both.
        let path = serde_json::Value::String(self.path.clone()).to_string();
        format!(
            "{} {} {} {} {path}\n",
            self.file_id, self.head, self.seq, self.at_ms
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(5, ' ');
        let file_id = parts.next()?.parse().ok()?;
        let head = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let at_ms = parts.next()?.parse().ok()?;
        let path = serde_json::from_str::<String>(parts.next()?).ok()?;
        Some(Self {
            file_id,
            head,
            seq,
            path,
            at_ms,
        })
    }
}

/// A folder's install journal, open for one round.
#[derive(Debug)]
pub struct InstallJournal {
    path: PathBuf,
    /// Entries earlier rounds left unsettled, in the order they were written.
    earlier: Vec<Entry>,
    /// This round's entries, each with whether its install reached the index.
    this_round: Vec<(Entry, bool)>,
    /// The append handle, opened at the first note.
    file: Option<fs::File>,
    /// Whether the file holds anything (read at open, or written since).
    written: bool,
    /// Whether the file ends in a torn line (a kill mid-`write`): the next line starts on a
    /// fresh one, or it would be glued to the torn one and lost with it.
    torn: bool,
}

impl InstallJournal {
    /// Reads what earlier rounds left. Lines that do not parse (a torn last line) are skipped.
    pub fn open(folder: &Folder) -> std::io::Result<Self> {
        let path = folder.root.join(MARKER_DIR).join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let earlier = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(Entry::parse)
            .collect();
        Ok(Self {
            path,
            earlier,
            this_round: Vec::new(),
            file: None,
            written: !bytes.is_empty(),
            torn: bytes.last().is_some_and(|b| *b != b'\n'),
        })
    }

    /// What earlier rounds left unsettled: installs that may have been renamed into place
    /// without reaching the index.
    pub fn earlier(&self) -> &[Entry] {
        &self.earlier
    }

    /// Drops the earlier entries `settled` says the index has caught up with (it holds that
    /// version, or agreed on a later one): recovery must not act on them any more.
    pub fn forget(&mut self, mut settled: impl FnMut(&Entry) -> bool) {
        self.earlier.retain(|e| !settled(e));
    }

    /// Notes an install about to be renamed into place. Must return before the rename.
    pub fn note(
        &mut self,
        file_id: FileId,
        head: ChainHash,
        seq: u64,
        path: &str,
    ) -> std::io::Result<()> {
        let entry = Entry {
            file_id,
            head,
            seq,
            path: path.to_owned(),
            at_ms: now_ms(),
        };
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        let mut line = entry.line();
        if std::mem::take(&mut self.torn) {
            line.insert(0, '\n');
        }
        self.written = true;
        file.write_all(line.as_bytes())?;
        self.this_round.push((entry, false));
        Ok(())
    }

    /// The rename of the install noted last failed: nothing was put in place.
    pub fn cancel(&mut self) {
        self.this_round.pop();
    }

    /// The install noted last reached the index (or its open batch, which the round commits
    /// before it settles the journal).
    pub fn recorded(&mut self) {
        if let Some((_, done)) = self.this_round.last_mut() {
            *done = true;
        }
    }

    /// Ends the round: keeps this round's installs that did not reach the index, and the
    /// earlier entries for which `unsettled` says so and that are less than a week old.
    /// Called only after the round's index writes are committed. Returns how many entries it
    /// kept.
    pub fn settle(
        mut self,
        mut unsettled: impl FnMut(&Entry) -> Result<bool, crate::index::Error>,
    ) -> Result<usize, SettleError> {
        if self.earlier.is_empty() && self.this_round.iter().all(|(_, done)| *done) {
            if self.written {
                // Everything this round wrote reached the index, and nothing earlier is left.
                self.file = None;
                fs::File::create(&self.path)?;
            }
            return Ok(0);
        }
        let cutoff = now_ms() - MAX_AGE_MS;
        let mut kept = Vec::new();
        for e in std::mem::take(&mut self.earlier) {
            if e.at_ms >= cutoff && unsettled(&e)? {
                kept.push(e);
            }
        }
        kept.extend(
            std::mem::take(&mut self.this_round)
                .into_iter()
                .filter(|(_, done)| !done)
                .map(|(e, _)| e),
        );
        self.file = None;
        let tmp = self.path.with_extension("tmp");
        let mut out = String::new();
        for e in &kept {
            out.push_str(&e.line());
        }
        fs::write(&tmp, out)?;
        fs::rename(&tmp, &self.path)?;
        Ok(kept.len())
    }
}

/// Why the journal could not be settled (the round's work is done either way; the journal
/// keeps its entries and the next round tries again).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Reading the index failed.
    #[error(transparent)]
    Index(#[from] crate::index::Error),
    /// Writing the journal failed.
    #[error("the install journal: {0}")]
    Io(#[from] std::io::Error),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::ids::FolderId;
    use harp_protocol::keys::FolderKey;

    fn folder(dir: &std::path::Path) -> Folder {
        fs::create_dir_all(dir.join(MARKER_DIR)).unwrap();
        Folder::new(
            FolderId::from_bytes([1; 16]),
            dir.to_path_buf(),
            FolderKey::from_bytes([2; 32]).schedule(),
        )
    }

    fn id(n: u8) -> FileId {
        FileId::from_bytes([n; 16])
    }

    fn head(n: u8) -> ChainHash {
        ChainHash::from_bytes([n; 32])
    }

    #[test]
    fn entries_survive_a_reopen_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let mut j = InstallJournal::open(&f).unwrap();
        j.note(id(1), head(1), 3, "a b/new\nline \"q\".txt")
            .unwrap();
        j.note(id(2), head(2), 1, "x.txt").unwrap();
        drop(j); // a kill: no settle
        let path = dir.path().join(MARKER_DIR).join(FILE_NAME);
        let mut torn = fs::OpenOptions::new().append(true).open(&path).unwrap();
        torn.write_all(format!("{} {} 4 17 \"half", id(3), head(3)).as_bytes())
            .unwrap();
        let j = InstallJournal::open(&f).unwrap();
        let got: Vec<(FileId, ChainHash, u64, &str)> = j
            .earlier()
            .iter()
            .map(|e| (e.file_id, e.head, e.seq, e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (id(1), head(1), 3, "a b/new\nline \"q\".txt"),
                (id(2), head(2), 1, "x.txt"),
            ]
        );
    }

    #[test]
    fn a_note_after_a_torn_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let path = dir.path().join(MARKER_DIR).join(FILE_NAME);
        fs::write(&path, format!("{} {} 4 17 \"ha", id(3), head(3))).unwrap();
        let mut j = InstallJournal::open(&f).unwrap();
        assert!(j.earlier().is_empty());
        j.note(id(1), head(1), 2, "after.txt").unwrap();
        drop(j); // killed again before the round ended
        let j = InstallJournal::open(&f).unwrap();
        assert_eq!(j.earlier().len(), 1);
        assert_eq!(j.earlier()[0].path, "after.txt");
    }

    #[test]
    fn a_cancelled_note_and_forgotten_entries_leave_an_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let mut j = InstallJournal::open(&f).unwrap();
        j.note(id(1), head(1), 1, "kept until settled").unwrap();
        drop(j);
        let mut j = InstallJournal::open(&f).unwrap();
        j.forget(|e| e.path == "kept until settled");
        j.note(id(2), head(2), 1, "rename failed").unwrap();
        j.cancel();
        assert_eq!(j.settle(|_| unreachable!("nothing earlier")).unwrap(), 0);
        let len = fs::metadata(dir.path().join(MARKER_DIR).join(FILE_NAME))
            .unwrap()
            .len();
        assert_eq!(len, 0);
    }

    #[test]
    fn a_round_keeps_only_what_did_not_reach_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let mut j = InstallJournal::open(&f).unwrap();
        j.note(id(1), head(1), 1, "one").unwrap();
        j.recorded();
        j.note(id(2), head(2), 1, "two").unwrap();
        // (the install of "two" failed after its rename)
        assert_eq!(j.settle(|_| unreachable!("no earlier entries")).unwrap(), 1);
        let mut j = InstallJournal::open(&f).unwrap();
        assert_eq!(j.earlier().len(), 1);
        assert_eq!(j.earlier()[0].path, "two");
        j.note(id(3), head(3), 1, "three").unwrap();
        j.recorded();
        // The index holds "two" now.
        assert_eq!(
            j.settle(|e| {
                assert_eq!(e.path, "two");
                Ok(false)
            })
            .unwrap(),
            0
        );
        assert!(InstallJournal::open(&f).unwrap().earlier().is_empty());
        let len = fs::metadata(dir.path().join(MARKER_DIR).join(FILE_NAME))
            .unwrap()
            .len();
        assert_eq!(len, 0);
    }

    #[test]
    fn an_unsettled_entry_is_dropped_after_a_week() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path());
        let old = Entry {
            file_id: id(1),
            head: head(1),
            seq: 1,
            path: "old".into(),
            at_ms: now_ms() - MAX_AGE_MS - 1,
        };
        let recent = Entry {
            path: "recent".into(),
            at_ms: now_ms() - 1000,
            ..old.clone()
        };
        fs::write(
            dir.path().join(MARKER_DIR).join(FILE_NAME),
            old.line() + &recent.line(),
        )
        .unwrap();
        let j = InstallJournal::open(&f).unwrap();
        assert_eq!(j.earlier().len(), 2);
        assert_eq!(j.settle(|_| Ok(true)).unwrap(), 1);
        assert_eq!(InstallJournal::open(&f).unwrap().earlier(), &[recent]);
    }
}
