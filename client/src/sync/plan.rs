//! The planner: a pure function from (this device's files, the folder document) to actions.
//!
//! For every file id it compares three states, like a three-way merge:
//!
//! - **local**: what the index says is on this device's disk (as a [`Record`]);
//! - **base**: the digest of the record this device and the document last agreed on;
//! - **remote**: the document's values for the file. Several values mean devices changed the
//!   file concurrently; the **winner** is the same on every device: a live value beats a
//!   delete (an edit survives a concurrent delete), then the later timestamp, then the larger
//!   author id, then the larger digest.
//!
//! | local vs base | remote vs base | action |
//! |---|---|---|
//! | same | same | nothing |
//! | same | moved | install the winner (if one of this device's own values lost, keep the local content as a conflict copy first) |
//! | moved | same (or no record yet) | publish local |
//! | moved | moved | a local delete yields to a remote edit, a local edit beats a remote delete; two edits: the published one wins and the local one becomes a conflict copy |
//! | moved or this device's value lost | moved | when one side only moved the file and the other only changed its content since their chains forked: [`Merge`] (the file ends at the new path with the new content) |
//!
//! Then paths: two live files (different ids) that want one path are a collision. The smaller
//! file id keeps the path; every device that holds the other one there (its author, or a device
//! that received it before the collision was known) moves it aside under a conflict name that
//! names the author's device (or, when both have the same content, simply lets it go), and
//! nobody installs the loser at the contested path meanwhile.

use std::collections::{BTreeMap, HashMap};

use harp_protocol::ids::{DeviceId, FileId};
use harp_protocol::manifest::EntryKind;
use harp_protocol::record::{Digest, Record};

pub use crate::config::Direction;

/// One value of a file in the document, with who wrote it (from its chain entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The record.
    pub record: Record,
    /// The author of its last chain entry (None when the entry is not in the document yet).
    pub author: Option<DeviceId>,
    /// The entry's timestamp (0 when unknown).
    pub timestamp_ms: u64,
}

/// What the planner knows of one file id.
#[derive(Debug, Clone, Default)]
pub struct FileState {
    /// The file as the index has it on this device.
    pub local: Option<Record>,
    /// The record this device and the document last agreed on.
    pub base: Option<Digest>,
    /// The document's values (empty: the document does not know the file).
    pub remote: Vec<Candidate>,
    /// The local change is a version the winner's chain went through after this device's
    /// last link: received here, not made here (an install a kill -9 left unrecorded, see
    /// [`super::recover`]). It counts as unchanged, so the winner is installed over it.
    pub local_passed: bool,
    /// The local version and the winner changed different things since their last common
    /// version (found from the chains by `apply::settle_by_chains`): they merge instead of one
    /// becoming a conflict copy.
    pub merge: Option<Merge>,
}

/// Concurrent changes of one file that touch different things since the last version both
/// sides share: one side only moved the file, the other only changed its content. The file
/// ends at the mover's path with the editor's content, and no conflict copy is made: nothing
/// either side did is lost. The device whose value lost the ranking makes the merge and
/// publishes it; it is newer than both, so every device takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// This device moved the file, the winner changed its content: install the winner, then
    /// move it where this device had put it.
    KeepLocalPath,
    /// This device changed the content, the winner moved the file: move the local file to
    /// the winner's path.
    TakeWinnerPath,
    /// The local version is that merge already (a round was cut short after moving the file,
    /// and the restarted scan signed the move): publish it.
    Made,
}

/// What to do about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Put the local record into the document; it becomes the base.
    Publish {
        /// The file.
        id: FileId,
        /// Its local record.
        record: Record,
    },
    /// The document already says what is on disk: just record the base.
    Adopt {
        /// The file.
        id: FileId,
        /// The agreed record's digest.
        digest: Digest,
    },
    /// Make the disk match `record` (fetch, write, rename, delete), then record the base.
    Install {
        /// The file.
        id: FileId,
        /// The record to install.
        record: Record,
        /// Re-put the record into the document afterwards: this device wrote a value that
        /// lost, and settles the conflict for everyone.
        resolve: bool,
    },
    /// Copy the local content aside under a conflict name (it lost to `winner`); the winner is
    /// installed afterwards.
    KeepConflict {
        /// The file.
        id: FileId,
        /// The losing local record (its content is on disk at its path).
        local: Record,
        /// The winning record.
        winner: Record,
        /// Re-put the winner afterwards (this device's value lost in the document).
        resolve: bool,
    },
    /// Another device's file whose name this folder's file system cannot hold beside the
    /// file that keeps it (they differ only by case, on a case-insensitive file system): not
    /// installed here, and said so; the devices that can hold both keep both.
    Refuse {
        /// The file.
        id: FileId,
        /// Its path.
        path: String,
        /// The path that keeps the name here.
        kept: String,
    },
    /// Merge a local change and the winner that changed different things (see [`Merge`]),
    /// then publish the result.
    Merge {
        /// The file.
        id: FileId,
        /// Its local record.
        local: Record,
        /// The winning record.
        winner: Record,
        /// Which side's path the file keeps.
        how: Merge,
    },
    /// This device's file takes a path another file won: move it aside (different content)
    /// or give it up (same content: the other file is the same thing).
    Yield {
        /// The losing file (held here at the contested path).
        id: FileId,
        /// Its local record.
        local: Record,
        /// The file that keeps the path, with the record it will have, when it has the same
        /// kind and content: this device's file then *is* that file, and takes its id.
        same_as: Option<(FileId, Record)>,
        /// The device whose version of the loser this is (its conflict name says so): this
        /// device when it authored it, else the author of the document's value.
        version_of: DeviceId,
    },
    /// Remove a file only this device has, never sent (a `receive_only` folder's local
    /// addition, when the folder is reverted): it goes to the versions store.
    Discard {
        /// The file.
        id: FileId,
        /// Its local record.
        local: Record,
    },
    /// Make this device's version the newest everywhere (a `send_only` folder overriding
    /// other devices' changes): a link signed on top of the winner's chain that says what
    /// is on disk here (the local record; a delete when the file is not here).
    Override {
        /// The file.
        id: FileId,
        /// What is here (`None`: nothing, so the file is deleted everywhere).
        local: Option<Record>,
        /// The document's winner the new link follows.
        winner: Record,
    },
}

/// A one-off round that settles a one-way folder's differences with the other devices
/// (Syncthing's "Revert Local Changes" and "Override Changes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// `receive_only`: every change made here and not sent is undone: each file becomes the
    /// document's winner again, files only this device has go (to the versions store, as
    /// everything an install replaces).
    Revert,
    /// `send_only`: every file where the document's winner is not what this device has
    /// gets a new version saying what this device has.
    Override,
}

/// What a round is to do, and what it holds back because of the folder's direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The actions.
    pub actions: Vec<Action>,
    /// Paths of the changes the direction holds back: made here and not sent
    /// (`receive_only`), or made elsewhere and not applied here (`send_only`).
    pub held_back: Vec<String>,
}

/// The value every device takes as the file's current one.
pub(crate) fn winner(values: &[Candidate]) -> Option<&Candidate> {
    values.iter().max_by(|a, b| {
        (
            !a.record.deleted,
            a.timestamp_ms,
            a.author.map(|d| *d.as_bytes()),
            a.record.digest(),
        )
            .cmp(&(
                !b.record.deleted,
                b.timestamp_ms,
                b.author.map(|d| *d.as_bytes()),
                b.record.digest(),
            ))
    })
}

/// How the folder's file system compares names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Names {
    /// `a.txt` and `A.txt` are two files (Linux file systems, usually).
    #[default]
    CaseSensitive,
    /// `a.txt` and `A.txt` are one file (FAT, exFAT, NTFS, APFS by default, ext4 casefold):
    /// two records whose paths differ only by case collide like two records on one path.
    CaseInsensitive,
}

/// Plans the actions for a folder that sends and receives. `me` is this device.
pub fn plan(me: &DeviceId, files: &BTreeMap<FileId, FileState>, names: Names) -> Vec<Action> {
    plan_both_ways(me, files, names, false)
}

/// Plans the actions for a folder of any direction, or a forced round ([`Force`]).
///
/// A one-way folder plans as a two-way one, then holds back what its direction does not
/// allow (`one_way`), with one difference: in a `receive_only` folder a file made or moved
/// here and not sent never keeps a path against another device's file (no other device
/// knows of it), so it is moved aside here instead.
pub fn plan_for(
    me: &DeviceId,
    files: &BTreeMap<FileId, FileState>,
    names: Names,
    direction: Direction,
    force: Option<Force>,
) -> Plan {
    match force {
        Some(Force::Revert) => Plan {
            actions: revert(files),
            held_back: Vec::new(),
        },
        Some(Force::Override) => Plan {
            actions: override_all(files),
            held_back: Vec::new(),
        },
        None => {
            let actions = plan_both_ways(me, files, names, direction == Direction::ReceiveOnly);
            one_way(direction, files, actions)
        }
    }
}

/// Whether `local` is a version this device has not sent (no value in the document is it).
fn unsent(f: &FileState, local: &Record) -> bool {
    let digest = local.digest();
    !f.remote.iter().any(|c| c.record.digest() == digest)
}

/// Holds back what the direction does not allow: a `receive_only` folder publishes nothing
/// (a local change that another device's change meets is kept as a conflict copy, here only,
/// and the other change installed; a merge becomes the same); a `send_only` folder installs
/// nothing (a local change that meets another device's is published, so the others settle
/// the conflict). Its files that lose a path to another file still move aside, as in a
/// two-way folder: nobody else can move them, and the path would wait for good.
fn one_way(
    direction: Direction,
    files: &BTreeMap<FileId, FileState>,
    actions: Vec<Action>,
) -> Plan {
    let mut held_back = Vec::new();
    let mut kept = Vec::with_capacity(actions.len());
    for a in actions {
        let a = match (direction, a) {
            (Direction::SendReceive, a) => Some(a),
            (Direction::ReceiveOnly, Action::Publish { record, .. }) => {
                held_back.push(record.path);
                None
            }
            // A merge would publish: the local version is kept as a local conflict copy,
            // as any local change that meets a remote one, and the winner installed.
            (
                Direction::ReceiveOnly,
                Action::Merge {
                    id, local, winner, ..
                },
            ) => {
                held_back.push(local.path.clone());
                Some(Action::KeepConflict {
                    id,
                    local,
                    winner,
                    resolve: false,
                })
            }
            (Direction::ReceiveOnly, a) => Some(a),
            (Direction::SendOnly, Action::Install { record, .. }) => {
                held_back.push(record.path);
                None
            }
            (
                Direction::SendOnly,
                Action::KeepConflict {
                    id, local, winner, ..
                }
                | Action::Merge {
                    id,
                    local,
                    winner,
                    how: Merge::KeepLocalPath | Merge::TakeWinnerPath,
                },
            ) => {
                held_back.push(winner.path);
                files
                    .get(&id)
                    .is_some_and(|f| unsent(f, &local))
                    .then_some(Action::Publish { id, record: local })
            }
            // A file of this device's that lost its path still gives it up (it gives its id
            // up to an equal file, or moves aside under a conflict name, and publishes that):
            // the other devices install the file that keeps the path only once the loser is
            // gone from it, and only its holders can move it.
            (Direction::SendOnly, a) => Some(a),
        };
        kept.extend(a);
    }
    held_back.sort();
    held_back.dedup();
    Plan {
        actions: kept,
        held_back,
    }
}

/// The actions that undo every change made here and not sent.
fn revert(files: &BTreeMap<FileId, FileState>) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, f) in files {
        match (&f.local, winner(&f.remote)) {
            (Some(local), None) if !local.deleted => actions.push(Action::Discard {
                id: *id,
                local: local.clone(),
            }),
            (Some(local), Some(w)) if local.digest() != w.record.digest() => {
                actions.push(Action::Install {
                    id: *id,
                    record: w.record.clone(),
                    resolve: false,
                })
            }
            (None, Some(w)) if !w.record.deleted => actions.push(Action::Install {
                id: *id,
                record: w.record.clone(),
                resolve: false,
            }),
            _ => {}
        }
    }
    actions
}

/// The actions that make this device's version of every file the newest everywhere.
fn override_all(files: &BTreeMap<FileId, FileState>) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, f) in files {
        let local = f.local.as_ref();
        match winner(&f.remote) {
            Some(w) if local.map(Record::digest) != Some(w.record.digest()) => {
                if local.is_none() && w.record.deleted {
                    continue;
                }
                actions.push(Action::Override {
                    id: *id,
                    local: local.cloned(),
                    winner: w.record.clone(),
                })
            }
            Some(_) => {}
            // Never sent: an ordinary publish.
            None => {
                if let Some(l) = local.filter(|l| !l.deleted) {
                    actions.push(Action::Publish {
                        id: *id,
                        record: l.clone(),
                    })
                }
            }
        }
    }
    actions
}

fn plan_both_ways(
    me: &DeviceId,
    files: &BTreeMap<FileId, FileState>,
    names: Names,
    unsent_yields: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    // The record each file will have once the actions ran: for the path check below.
    let mut outcome: BTreeMap<FileId, (Record, bool)> = BTreeMap::new();
    for (id, f) in files {
        let local_digest = f.local.as_ref().map(Record::digest);
        let w = winner(&f.remote);
        let w_digest = w.map(|c| c.record.digest());
        let local_changed = local_digest.is_some() && local_digest != f.base && !f.local_passed;
        let remote_changed = w_digest.is_some() && w_digest != f.base;
        let mine_lost = |local: &Record| {
            f.remote.len() > 1
                && f.remote.iter().any(|c| {
                    c.author.as_ref() == Some(me)
                        && c.record.digest() == local.digest()
                        && Some(&c.record) != w.map(|w| &w.record)
                })
        };
        match (&f.local, w) {
            (None, None) => {}
            (Some(local), None) => {
                if !local.deleted {
                    actions.push(Action::Publish {
                        id: *id,
                        record: local.clone(),
                    });
                    outcome.insert(*id, (local.clone(), true));
                }
            }
            (None, Some(_)) if f.base == w_digest => {}
            (None, Some(w)) => {
                actions.push(Action::Install {
                    id: *id,
                    record: w.record.clone(),
                    resolve: false,
                });
                outcome.insert(*id, (w.record.clone(), false));
            }
            (Some(local), Some(_)) if f.merge == Some(Merge::Made) => {
                actions.push(Action::Publish {
                    id: *id,
                    record: local.clone(),
                });
                outcome.insert(*id, (local.clone(), true));
            }
            (Some(local), Some(w)) if f.merge.is_some() && local_digest != w_digest => {
                let how = f.merge.unwrap_or(Merge::TakeWinnerPath);
                let merged = match how {
                    Merge::Made => local.clone(),
                    Merge::KeepLocalPath => Record {
                        path: local.path.clone(),
                        ..w.record.clone()
                    },
                    Merge::TakeWinnerPath => Record {
                        path: w.record.path.clone(),
                        ..local.clone()
                    },
                };
                actions.push(Action::Merge {
                    id: *id,
                    local: local.clone(),
                    winner: w.record.clone(),
                    how,
                });
                outcome.insert(*id, (merged, true));
            }
            (Some(local), Some(w)) => {
                if local_digest == w_digest {
                    if f.base != w_digest {
                        actions.push(Action::Adopt {
                            id: *id,
                            digest: w.record.digest(),
                        });
                    }
                    outcome.insert(*id, (local.clone(), true));
                } else if !local_changed && remote_changed {
                    // This device's value lost: its content is kept aside, unless the winner
                    // holds that content too (two renames of one file, say): then nothing is
                    // lost by taking the winner, and a copy would only duplicate it.
                    let same_content = local.kind == w.record.kind
                        && local.content_root == w.record.content_root
                        && local.deleted == w.record.deleted;
                    if mine_lost(local) && !local.deleted && !same_content {
                        actions.push(Action::KeepConflict {
                            id: *id,
                            local: local.clone(),
                            winner: w.record.clone(),
                            resolve: true,
                        });
                    } else {
                        actions.push(Action::Install {
                            id: *id,
                            record: w.record.clone(),
                            resolve: mine_lost(local),
                        });
                    }
                    outcome.insert(*id, (w.record.clone(), false));
                } else if local_changed && !remote_changed {
                    actions.push(Action::Publish {
                        id: *id,
                        record: local.clone(),
                    });
                    outcome.insert(*id, (local.clone(), true));
                } else {
                    // Both moved since they last agreed.
                    let same_content = local.kind == w.record.kind
                        && local.content_root == w.record.content_root
                        && local.deleted == w.record.deleted;
                    if same_content || (local.deleted && !w.record.deleted) {
                        // Nothing is lost by taking the document's version.
                        actions.push(Action::Install {
                            id: *id,
                            record: w.record.clone(),
                            resolve: false,
                        });
                        outcome.insert(*id, (w.record.clone(), false));
                    } else if w.record.deleted {
                        // An edit beats a delete.
                        actions.push(Action::Publish {
                            id: *id,
                            record: local.clone(),
                        });
                        outcome.insert(*id, (local.clone(), true));
                    } else {
                        actions.push(Action::KeepConflict {
                            id: *id,
                            local: local.clone(),
                            winner: w.record.clone(),
                            resolve: false,
                        });
                        outcome.insert(*id, (w.record.clone(), false));
                    }
                }
            }
        }
    }
    keep_directories_of_live_files(&mut actions, &outcome);
    resolve_paths(me, files, &mut actions, &outcome, names, unsent_yields);
    actions
}

/// Drops the install of another device's directory delete while a file below it stays live
/// here (it outlives the delete, as an edit outlives a concurrent delete): the directory
/// could not be removed anyway, and would wait for good when the device that deleted it never
/// installs that file (a `send_only` one). A two-way device that deleted it installs the file
/// and so makes the directory again, which its next scan publishes.
fn keep_directories_of_live_files(
    actions: &mut Vec<Action>,
    outcome: &BTreeMap<FileId, (Record, bool)>,
) {
    let live: std::collections::BTreeSet<&str> = outcome
        .values()
        .filter(|(r, _)| !r.deleted)
        .map(|(r, _)| r.path.as_str())
        .collect();
    actions.retain(|a| match a {
        Action::Install { record, .. } if record.deleted && record.kind == EntryKind::Directory => {
            let prefix = format!("{}/", record.path);
            !live
                .range(prefix.as_str()..)
                .next()
                .is_some_and(|p| p.starts_with(&prefix))
        }
        _ => true,
    });
}

/// Finds live files that would share a path, and settles who keeps it.
fn resolve_paths(
    me: &DeviceId,
    files: &BTreeMap<FileId, FileState>,
    actions: &mut Vec<Action>,
    outcome: &BTreeMap<FileId, (Record, bool)>,
    names: Names,
    unsent_yields: bool,
) {
    let mut by_path: HashMap<String, Vec<FileId>> = HashMap::new();
    for (id, (rec, _)) in outcome {
        if !rec.deleted {
            let key = match names {
                Names::CaseSensitive => rec.path.clone(),
                Names::CaseInsensitive => rec.path.to_lowercase(),
            };
            by_path.entry(key).or_default().push(*id);
        }
    }
    for ids in by_path.values() {
        if ids.len() < 2 {
            continue;
        }
        // BTreeMap order: ids are sorted, the first keeps the path (with `unsent_yields`,
        // the first that some other device knows in that version).
        let known = |id: &FileId| {
            let (rec, is_local) = &outcome[id];
            !*is_local || !unsent(&files[id], rec)
        };
        let keeper = match unsent_yields {
            true => ids.iter().copied().find(known).unwrap_or(ids[0]),
            false => ids[0],
        };
        let (keeper_rec, _) = &outcome[&keeper];
        for loser in ids.iter().filter(|id| **id != keeper) {
            let (rec, is_local) = &outcome[loser];
            // Nobody installs a loser at the contested path.
            actions.retain(|a| !matches!(a, Action::Install { id, .. } if id == loser));
            let f = &files[loser];
            let authored_here = f.local.is_some()
                && (f.remote.is_empty()
                    || f.remote
                        .iter()
                        .any(|c| c.author.as_ref() == Some(me) && &c.record == rec));
            // This device holds the loser's content there, perhaps with another mode or
            // mtime than the document's (a touch published elsewhere, or here before a
            // kill): it is the file, waiting only for metadata.
            let holds_it = f.local.as_ref().filter(|l| {
                !l.deleted
                    && l.path == rec.path
                    && l.kind == rec.kind
                    && l.content_root == rec.content_root
            });
            // Whoever holds the loser at the very path the keeper takes moves it aside, the
            // author or not: a device that got the loser from its author must not wait for
            // that author, who may never come back (the path would wait with it). If the
            // author moves it too, the two moves are concurrent renames of one file and
            // merge like any others. (Paths that only this file system takes for one are
            // left to their author: the devices that can hold both keep both.)
            let holds_it_there = holds_it.is_some() && rec.path == keeper_rec.path;
            if (authored_here && (*is_local || holds_it.is_some())) || holds_it_there {
                actions.retain(|a| !matches!(a, Action::Publish { id, .. } if id == loser));
                let version_of = if authored_here {
                    *me
                } else {
                    winner(&f.remote).and_then(|c| c.author).unwrap_or(*me)
                };
                actions.push(Action::Yield {
                    id: *loser,
                    local: holds_it.filter(|_| !*is_local).unwrap_or(rec).clone(),
                    same_as: (rec.kind == keeper_rec.kind
                        && rec.content_root == keeper_rec.content_root)
                        .then(|| (keeper, keeper_rec.clone())),
                    version_of,
                });
            } else if let Some(local) = f.local.as_ref().filter(|l| {
                !l.deleted
                    && l.path == rec.path
                    && l.kind == keeper_rec.kind
                    && l.content_root == keeper_rec.content_root
            }) {
                // Another device authored the loser, but this device holds it there with the
                // keeper's bytes: it gives the loser's id up too. Waiting for the author is not
                // enough: the author may see its value as a remote one to install, and then
                // nobody yields.
                actions.retain(|a| !matches!(a, Action::Publish { id, .. } if id == loser));
                actions.push(Action::Yield {
                    id: *loser,
                    local: local.clone(),
                    same_as: Some((keeper, keeper_rec.clone())),
                    version_of: *me,
                });
            } else if !*is_local && rec.path != keeper_rec.path {
                // Two paths only this file system takes for one: its author sees no clash and
                // will not move it, so say why it is not here.
                actions.push(Action::Refuse {
                    id: *loser,
                    path: rec.path.clone(),
                    kept: keeper_rec.path.clone(),
                });
            }
        }
        // The keeper is installed only once the path is free: the applier checks the disk.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harp_protocol::ids::{ChainHash, ContentRoot};
    use harp_protocol::manifest::EntryKind;

    fn rec(path: &str, content: u8, seq: u64) -> Record {
        Record {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: 1,
            size: 1,
            content_root: ContentRoot::from_bytes([content; 32]),
            deleted: false,
            seq,
            chain_head: ChainHash::from_bytes([content ^ seq as u8; 32]),
        }
    }

    fn dev(n: u8) -> DeviceId {
        DeviceId::of_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))
    }

    fn cand(r: &Record, author: u8, ts: u64) -> Candidate {
        Candidate {
            record: r.clone(),
            author: Some(dev(author)),
            timestamp_ms: ts,
        }
    }

    fn one(id: u8, f: FileState) -> BTreeMap<FileId, FileState> {
        [(FileId::from_bytes([id; 16]), f)].into()
    }

    #[test]
    fn the_three_way_table() {
        let me = dev(1);
        let id = FileId::from_bytes([5; 16]);
        let v1 = rec("a", 1, 1);
        let v2 = rec("a", 2, 2);
        // In sync: nothing.
        let f = FileState {
            local: Some(v1.clone()),
            base: Some(v1.digest()),
            remote: vec![cand(&v1, 1, 1)],
            local_passed: false,
            merge: None,
        };
        assert!(plan(&me, &one(5, f), Names::CaseSensitive).is_empty());
        // Remote moved: install.
        let f = FileState {
            local: Some(v1.clone()),
            base: Some(v1.digest()),
            remote: vec![cand(&v2, 2, 2)],
            local_passed: false,
            merge: None,
        };
        assert_eq!(
            plan(&me, &one(5, f), Names::CaseSensitive),
            vec![Action::Install {
                id,
                record: v2.clone(),
                resolve: false
            }]
        );
        // Local moved: publish.
        let f = FileState {
            local: Some(v2.clone()),
            base: Some(v1.digest()),
            remote: vec![cand(&v1, 1, 1)],
            local_passed: false,
            merge: None,
        };
        assert_eq!(
            plan(&me, &one(5, f), Names::CaseSensitive),
            vec![Action::Publish {
                id,
                record: v2.clone()
            }]
        );
        // Never synced, unknown to the document: publish.
        let f = FileState {
            local: Some(v1.clone()),
            base: None,
            remote: vec![],
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&me, &one(5, f), Names::CaseSensitive)[..],
            [Action::Publish { .. }]
        ));
        // Known only to the document: install.
        let f = FileState {
            local: None,
            base: None,
            remote: vec![cand(&v1, 2, 1)],
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&me, &one(5, f), Names::CaseSensitive)[..],
            [Action::Install { .. }]
        ));
        // Same on both sides after a crash between writing and recording: adopt.
        let f = FileState {
            local: Some(v2.clone()),
            base: Some(v1.digest()),
            remote: vec![cand(&v2, 2, 2)],
            local_passed: false,
            merge: None,
        };
        assert_eq!(
            plan(&me, &one(5, f), Names::CaseSensitive),
            vec![Action::Adopt {
                id,
                digest: v2.digest()
            }]
        );
    }

    #[test]
    fn concurrent_edits_keep_both_and_every_device_picks_the_same_winner() {
        let (a, b) = (dev(1), dev(2));
        let base = rec("a", 1, 1);
        let va = rec("a", 2, 2);
        let vb = rec("a", 3, 2);
        let remote = vec![cand(&va, 1, 100), cand(&vb, 2, 200)];
        // A published va, B published vb; both see the conflict; vb is later and wins.
        let at_a = FileState {
            local: Some(va.clone()),
            base: Some(va.digest()),
            remote: remote.clone(),
            local_passed: false,
            merge: None,
        };
        let at_b = FileState {
            local: Some(vb.clone()),
            base: Some(vb.digest()),
            remote: remote.iter().rev().cloned().collect(),
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&a, &one(5, at_a), Names::CaseSensitive)[..],
            [Action::KeepConflict { winner, resolve: true, .. }] if *winner == vb
        ));
        assert!(plan(&b, &one(5, at_b), Names::CaseSensitive).is_empty());
        // A third device with the old base just installs the winner.
        let at_c = FileState {
            local: Some(base.clone()),
            base: Some(base.digest()),
            remote,
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&dev(3), &one(5, at_c), Names::CaseSensitive)[..],
            [Action::Install { record, resolve: false, .. }] if *record == vb
        ));
    }

    #[test]
    fn an_edit_survives_a_delete_either_way() {
        let me = dev(1);
        let base = rec("a", 1, 1);
        let edited = rec("a", 2, 2);
        let deleted = Record {
            deleted: true,
            ..rec("a", 0, 2)
        };
        // Local edit, remote delete: publish the edit.
        let f = FileState {
            local: Some(edited.clone()),
            base: Some(base.digest()),
            remote: vec![cand(&deleted, 2, 500)],
            local_passed: false,
            merge: None,
        };
        assert!(
            matches!(&plan(&me, &one(5, f), Names::CaseSensitive)[..], [Action::Publish { record, .. }] if *record == edited)
        );
        // Local delete, remote edit: install the edit.
        let f = FileState {
            local: Some(deleted.clone()),
            base: Some(base.digest()),
            remote: vec![cand(&edited, 2, 1)],
            local_passed: false,
            merge: None,
        };
        assert!(
            matches!(&plan(&me, &one(5, f), Names::CaseSensitive)[..], [Action::Install { record, .. }] if *record == edited)
        );
        // Both published concurrently: the live value wins even though the delete is later.
        let f = FileState {
            local: Some(deleted.clone()),
            base: Some(deleted.digest()),
            remote: vec![cand(&deleted, 1, 900), cand(&edited, 2, 1)],
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&me, &one(5, f), Names::CaseSensitive)[..],
            [Action::Install { record, resolve: true, .. }] if *record == edited
        ));
    }

    #[test]
    fn unpublished_local_edit_against_a_remote_edit_is_kept_as_a_conflict() {
        let me = dev(1);
        let base = rec("a", 1, 1);
        let f = FileState {
            local: Some(rec("a", 2, 2)),
            base: Some(base.digest()),
            remote: vec![cand(&rec("a", 3, 2), 2, 1)],
            local_passed: false,
            merge: None,
        };
        assert!(matches!(
            &plan(&me, &one(5, f), Names::CaseSensitive)[..],
            [Action::KeepConflict { resolve: false, .. }]
        ));
    }

    #[test]
    fn names_that_differ_only_by_case_collide_on_a_case_insensitive_folder() {
        let me = dev(1);
        let theirs = rec("README.md", 2, 1);
        let mine = rec("Readme.md", 1, 1);
        let files: BTreeMap<FileId, FileState> = [
            (
                FileId::from_bytes([1; 16]),
                FileState {
                    local: None,
                    base: None,
                    remote: vec![cand(&theirs, 2, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
            (
                FileId::from_bytes([9; 16]),
                FileState {
                    local: Some(mine.clone()),
                    base: Some(mine.digest()),
                    remote: vec![cand(&mine, 1, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
        ]
        .into();
        let yields = |names| {
            plan(&me, &files, names)
                .iter()
                .any(|a| matches!(a, Action::Yield { .. }))
        };
        assert!(!yields(Names::CaseSensitive));
        assert!(yields(Names::CaseInsensitive));
    }

    /// Two of another device's files whose names differ only by case: both installed where
    /// names keep case apart; on a case-insensitive file system one is installed and the
    /// other refused, never installed over it.
    #[test]
    fn names_only_case_tells_apart_are_refused_where_case_is_folded() {
        let me = dev(1);
        let files: BTreeMap<FileId, FileState> = [("Readme.txt", 1u8), ("README.txt", 2u8)]
            .into_iter()
            .map(|(path, n)| {
                let r = rec(path, n, 1);
                (
                    FileId::from_bytes([n; 16]),
                    FileState {
                        local: None,
                        base: None,
                        remote: vec![cand(&r, 2, 1)],
                        local_passed: false,
                        merge: None,
                    },
                )
            })
            .collect();
        let installs = |names| {
            let actions = plan(&me, &files, names);
            let installed: Vec<String> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Install { record, .. } => Some(record.path.clone()),
                    _ => None,
                })
                .collect();
            let refused: Vec<(String, String)> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Refuse { path, kept, .. } => Some((path.clone(), kept.clone())),
                    _ => None,
                })
                .collect();
            (installed, refused)
        };
        let (installed, refused) = installs(Names::CaseSensitive);
        assert_eq!(installed.len(), 2);
        assert!(refused.is_empty());
        let (installed, refused) = installs(Names::CaseInsensitive);
        assert_eq!(installed, vec!["Readme.txt".to_owned()]);
        assert_eq!(
            refused,
            vec![("README.txt".to_owned(), "Readme.txt".to_owned())]
        );
    }

    #[test]
    fn two_new_files_on_one_path_the_smaller_id_keeps_it() {
        let (a, b) = (dev(1), dev(2));
        let mine = rec("same.txt", 1, 1);
        let theirs = rec("same.txt", 2, 1);
        let files_at_a: BTreeMap<FileId, FileState> = [
            (
                FileId::from_bytes([1; 16]),
                FileState {
                    local: None,
                    base: None,
                    remote: vec![cand(&theirs, 2, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
            (
                FileId::from_bytes([9; 16]),
                FileState {
                    local: Some(mine.clone()),
                    base: Some(mine.digest()),
                    remote: vec![cand(&mine, 1, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
        ]
        .into();
        let actions = plan(&a, &files_at_a, Names::CaseSensitive);
        assert!(
            actions
                .iter()
                .any(|x| matches!(x, Action::Yield { id, same_as: None, .. } if *id == FileId::from_bytes([9; 16])))
        );
        assert!(actions.iter().any(
            |x| matches!(x, Action::Install { id, .. } if *id == FileId::from_bytes([1; 16]))
        ));
        // B, which keeps the path, does nothing and never installs A's file over its own.
        let files_at_b: BTreeMap<FileId, FileState> = [
            (
                FileId::from_bytes([1; 16]),
                FileState {
                    local: Some(theirs.clone()),
                    base: Some(theirs.digest()),
                    remote: vec![cand(&theirs, 2, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
            (
                FileId::from_bytes([9; 16]),
                FileState {
                    local: None,
                    base: None,
                    remote: vec![cand(&mine, 1, 1)],
                    local_passed: false,
                    merge: None,
                },
            ),
        ]
        .into();
        assert!(plan(&b, &files_at_b, Names::CaseSensitive).is_empty());
    }

    #[test]
    fn a_device_holding_another_s_file_that_lost_its_path_moves_it_aside_under_its_author_s_name() {
        // Device 3 received device 1's file (id 9) before device 2's (id 1) took the path.
        let (keeper, loser) = (rec("same.txt", 2, 1), rec("same.txt", 1, 1));
        let at_3 = |loser: &Record, keeper: &Record| -> BTreeMap<FileId, FileState> {
            [
                (
                    FileId::from_bytes([1; 16]),
                    FileState {
                        remote: vec![cand(keeper, 2, 1)],
                        ..FileState::default()
                    },
                ),
                (
                    FileId::from_bytes([9; 16]),
                    FileState {
                        local: Some(loser.clone()),
                        base: Some(loser.digest()),
                        remote: vec![cand(loser, 1, 1)],
                        local_passed: false,
                        merge: None,
                    },
                ),
            ]
            .into()
        };
        let actions = plan(&dev(3), &at_3(&loser, &keeper), Names::CaseSensitive);
        assert!(
            actions.iter().any(|x| matches!(x,
                Action::Yield { id, same_as: None, version_of, .. }
                    if *id == FileId::from_bytes([9; 16]) && *version_of == dev(1))),
            "{actions:?}"
        );
        // Names that only a case-insensitive file system takes for one stay their author's
        // to move: the devices that can hold both keep both.
        let keeper = rec("Same.txt", 2, 1);
        let actions = plan(&dev(3), &at_3(&loser, &keeper), Names::CaseInsensitive);
        assert!(
            !actions.iter().any(|x| matches!(x, Action::Yield { .. })),
            "{actions:?}"
        );
    }
}
