//! The blobs this device serves: chunks re-made from its files, manifest nodes from its index,
//! to the member devices of each folder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use harp_protocol::ids::{ChunkId, DeviceId, FolderId};

use super::chunks::BlobSource;
use crate::chunk;
use crate::early::Outbox;
use crate::index::Index;
use crate::members::Members;
use crate::scan::Folder;

/// Serves the folders of this device from its index and files.
#[derive(Debug)]
pub struct LocalSource {
    index: Mutex<Index>,
    folders: HashMap<FolderId, (Folder, Members)>,
    /// Blobs sealed by a scan and offered early ([`crate::early`]): served from there first.
    outbox: Option<Arc<Outbox>>,
}

impl LocalSource {
    /// A source over `index` (its own connection: lookups hold it only briefly; reading and
    /// sealing happen outside the lock) for `folders`, each with the devices allowed to read it.
    pub fn new(index: Index, folders: Vec<(Folder, Members)>) -> Self {
        Self {
            index: Mutex::new(index),
            folders: folders.into_iter().map(|(f, m)| (f.id, (f, m))).collect(),
            outbox: None,
        }
    }

    /// Serves blobs waiting in `outbox` before re-making them from files.
    pub fn with_outbox(mut self, outbox: Arc<Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }
}

impl BlobSource for LocalSource {
    fn is_member(&self, folder: &FolderId, device: &DeviceId) -> bool {
        self.folders
            .get(folder)
            .is_some_and(|(_, members)| members.contains(device))
    }

    fn read(&self, folder: &FolderId, id: &ChunkId) -> Option<Vec<u8>> {
        if let Some(blob) = self.outbox.as_ref().and_then(|o| o.take(folder, id)) {
            return Some(blob);
        }
        let (folder, _) = self.folders.get(folder)?;
        let location = {
            let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            chunk::locate_blob(&index, folder, id).ok()?
        };
        chunk::make_blob(folder, id, location)
    }
}
