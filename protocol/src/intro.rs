//! Introductions: a device's signed word that it trusts another device, or no longer does.
//!
//! With manual device approval (`device_approval = "manual"`), each device trusts only the
//! devices approved on it. Approving every new device on every other device is what Syncthing's
//! *introducers* spare its users; here an introduction is a signed statement, so a bridge that
//! carries it cannot forge or alter it: a device approved on this one **as an introducer**
//! vouches for the devices it approves itself, and withdraws them when it forgets them.
//!
//! ```text
//! "HIN1" ‖ introducer [32] ‖ device [32] ‖ trusted u8 (0 | 1) ‖ at_ms u64 ‖ signature [64]
//! signature = Ed25519(introducer, "harp introduction v1" 0x00 ‖ introducer ‖ device ‖ trusted ‖ at_ms)
//! ```
//!
//! Of several statements by one introducer about one device, the latest (`at_ms`) counts, so a
//! replayed older one changes nothing. A bridge can still withhold a statement (a withdrawal
//! that never arrives): the introducer's own devices stop trusting at once, the others when it
//! arrives.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::DeviceId;
use crate::wrap::WrapError;

/// First bytes of an introduction.
pub const MAGIC: &[u8; 4] = b"HIN1";

/// One introducer's statement about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introduction {
    /// The device that vouches.
    pub introducer: DeviceId,
    /// The device it vouches for (or no longer does).
    pub device: DeviceId,
    /// Trusted, or withdrawn.
    pub trusted: bool,
    /// When, in ms since the Unix epoch (by the introducer's clock).
    pub at_ms: u64,
    /// The introducer's signature.
    pub signature: [u8; 64],
}

impl Introduction {
    /// `introducer`'s statement that it trusts `device` (or, `trusted = false`, no longer).
    pub fn make(introducer: &SigningKey, device: DeviceId, trusted: bool, at_ms: u64) -> Self {
        let mut s = Self {
            introducer: DeviceId::of_signing_key(introducer),
            device,
            trusted,
            at_ms,
            signature: [0; 64],
        };
        s.signature = introducer.sign(&s.message()).to_bytes();
        s
    }

    fn fields(&self, w: &mut Writer) {
        w.raw(self.introducer.as_bytes())
            .raw(self.device.as_bytes())
            .u8(u8::from(self.trusted))
            .u64(self.at_ms);
    }

    fn message(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        w.raw(b"harp introduction v1\0");
        self.fields(&mut w);
        w.into_vec()
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + 32 + 32 + 1 + 8 + 64);
        w.raw(MAGIC);
        self.fields(&mut w);
        w.raw(&self.signature);
        w.into_vec()
    }

    /// Whether `bytes` are an introduction.
    pub fn is_introduction(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    /// Decodes and checks the signature: only a statement its introducer signed comes out.
    pub fn decode(bytes: &[u8]) -> Result<Self, IntroError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("introduction magic")? != *MAGIC {
            return Err(DecodeError::Invalid {
                what: "introduction",
                reason: "not an introduction",
            }
            .into());
        }
        let introducer = DeviceId::from_bytes(r.array("introducer")?);
        let device = DeviceId::from_bytes(r.array("device")?);
        let trusted = match r.u8("trusted")? {
            0 => false,
            1 => true,
            _ => {
                return Err(DecodeError::Invalid {
                    what: "introduction",
                    reason: "trusted is not 0 or 1",
                }
                .into());
            }
        };
        let at_ms = r.u64("time")?;
        let signature = r.array("signature")?;
        r.finish("introduction")?;
        let s = Self {
            introducer,
            device,
            trusted,
            at_ms,
            signature,
        };
        let key =
            VerifyingKey::from_bytes(introducer.as_bytes()).map_err(|_| WrapError::BadSignature)?;
        key.verify_strict(&s.message(), &Signature::from_bytes(&signature))
            .map_err(|_| WrapError::BadSignature)?;
        Ok(s)
    }
}

/// Why an introduction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntroError {
    /// It does not decode.
    #[error("malformed introduction: {0}")]
    Malformed(#[from] DecodeError),
    /// Its signature does not verify.
    #[error(transparent)]
    Signature(#[from] WrapError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_introduction_is_only_what_its_introducer_signed() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let bob = DeviceId::of_signing_key(&SigningKey::from_bytes(&[2; 32]));
        let s = Introduction::make(&alice, bob, true, 1_763_700_000_000);
        let bytes = s.encode();
        assert!(Introduction::is_introduction(&bytes));
        assert_eq!(Introduction::decode(&bytes).unwrap(), s);
        assert_eq!(s.introducer, DeviceId::of_signing_key(&alice));
        // Turning a withdrawal into a vouch, or any other byte: the signature fails.
        for at in 4..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(Introduction::decode(&b).is_err(), "byte {at}");
        }
        for cut in 0..bytes.len() {
            assert!(Introduction::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(Introduction::decode(&longer).is_err());
    }
}
