//! Who may read and write a folder: a set of devices that can change while the daemon runs
//! (the bridge adds a member's new device, or drops a revoked one).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use harp_protocol::ids::DeviceId;

/// A folder's member devices, shared by everything that checks membership.
#[derive(Debug, Clone, Default)]
pub struct Members(Arc<RwLock<HashSet<DeviceId>>>);

impl Members {
    /// Members from a set.
    pub fn new(set: HashSet<DeviceId>) -> Self {
        Self(Arc::new(RwLock::new(set)))
    }

    /// Whether `device` is a member.
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(device)
    }

    /// The members now.
    pub fn snapshot(&self) -> HashSet<DeviceId> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adds the devices not yet members; returns those that were new.
    pub fn extend(&self, devices: impl IntoIterator<Item = DeviceId>) -> Vec<DeviceId> {
        let mut set = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        devices.into_iter().filter(|d| set.insert(*d)).collect()
    }
}

impl FromIterator<DeviceId> for Members {
    fn from_iter<I: IntoIterator<Item = DeviceId>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}
