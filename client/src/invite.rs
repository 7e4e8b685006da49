//! Folder invitations: how a folder is shared with another device until the bridge exists.
//!
//! `harp folder share FOLDER --with DEVICE` makes the device a member and prints an
//! invitation; `harp folder join INVITATION PATH` on the other device adds the folder. The
//! invitation carries the folder key in clear: pass it the way you would pass a password
//! (the bridge replaces this with keys wrapped for each member device).
//!
//! `harp-invite-1:` then base32 (no padding) of
//! `folder id [16] | folder key [32] | sharing device [32] | label length u8 | label |
//! check [4]`, where `check` is the start of BLAKE3 over everything before it (a mistyped or
//! cut invitation is refused, not half-read).

use harp_protocol::ids::{DeviceId, FolderId};

const PREFIX: &str = "harp-invite-1:";

/// A decoded invitation.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The folder.
    pub folder: FolderId,
    /// Its key.
    pub key: [u8; 32],
    /// The device that shared it.
    pub from: DeviceId,
    /// Its label there.
    pub label: String,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("folder", &self.folder)
            .field("from", &self.from)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Invite {
    /// The invitation as text.
    pub fn encode(&self) -> String {
        let label = &self.label.as_bytes()[..self.label.len().min(255)];
        let mut b = Vec::with_capacity(16 + 32 + 32 + 1 + label.len() + 4);
        b.extend_from_slice(self.folder.as_bytes());
        b.extend_from_slice(&self.key);
        b.extend_from_slice(self.from.as_bytes());
        b.push(label.len() as u8);
        b.extend_from_slice(label);
        let check = blake3::hash(&b);
        b.extend_from_slice(&check.as_bytes()[..4]);
        format!("{PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&b))
    }

    /// Reads an invitation.
    pub fn decode(text: &str) -> Result<Self, String> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or("not a Harp invitation (it starts with harp-invite-1:)")?;
        let b = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| "the invitation is damaged (not base32)")?;
        if b.len() < 16 + 32 + 32 + 1 + 4 {
            return Err("the invitation is cut short".into());
        }
        let (payload, check) = b.split_at(b.len() - 4);
        if &blake3::hash(payload).as_bytes()[..4] != check {
            return Err("the invitation is damaged (its check does not match)".into());
        }
        let label_len = payload[80] as usize;
        if payload.len() != 81 + label_len {
            return Err("the invitation is damaged (bad length)".into());
        }
        let mut folder = [0u8; 16];
        folder.copy_from_slice(&payload[..16]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&payload[16..48]);
        let mut from = [0u8; 32];
        from.copy_from_slice(&payload[48..80]);
        let label = String::from_utf8(payload[81..].to_vec())
            .map_err(|_| "the invitation's label is not UTF-8")?;
        Ok(Self {
            folder: FolderId::from_bytes(folder),
            key,
            from: DeviceId::from_bytes(from),
            label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitations_round_trip_and_damage_is_caught() {
        let inv = Invite {
            folder: FolderId::from_bytes([1; 16]),
            key: [2; 32],
            from: DeviceId::from_bytes([3; 32]),
            label: "Photos ünï".into(),
        };
        let text = inv.encode();
        assert_eq!(Invite::decode(&text).unwrap(), inv);
        // Base32 read back in lower case too (some chat apps change case).
        assert_eq!(Invite::decode(&text.to_lowercase()).unwrap(), inv);
        let mut bad = text.clone().into_bytes();
        let n = bad.len() - 10;
        bad[n] = if bad[n] == b'A' { b'B' } else { b'A' };
        assert!(Invite::decode(std::str::from_utf8(&bad).unwrap()).is_err());
        assert!(Invite::decode(&text[..text.len() - 8]).is_err());
        assert!(Invite::decode("hello").is_err());
    }
}
