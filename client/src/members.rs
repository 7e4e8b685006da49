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

    /// Makes `set` the members; returns the devices added and those removed.
    pub fn replace(&self, set: HashSet<DeviceId>) -> (Vec<DeviceId>, Vec<DeviceId>) {
        let mut now = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let added = set.difference(&now).copied().collect();
        let removed = now.difference(&set).copied().collect();
        *now = set;
        (added, removed)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::of_signing_key(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))
    }

    #[test]
    fn every_clone_sees_a_replaced_set() {
        let m = Members::new([dev(1), dev(2)].into());
        let seen_by_server = m.clone();
        let (added, removed) = m.replace([dev(1), dev(3)].into());
        assert_eq!((added, removed), (vec![dev(3)], vec![dev(2)]));
        assert!(seen_by_server.contains(&dev(3)) && !seen_by_server.contains(&dev(2)));
        assert_eq!(m.extend([dev(3), dev(4)]), vec![dev(4)]);
        assert_eq!(seen_by_server.snapshot().len(), 3);
    }
}
