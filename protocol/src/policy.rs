//! Trust policies: whom a verifier of a version proof trusts, as a small text file.
//!
//! ```text
//! # comments and blank lines are ignored
//! log      <verifier key of the bridge's log>           (type 0x01; at most one)
//! witness  <verifier key of a witness> [URL]             (type 0x04; any number)
//! quorum   <k>                                           (default: every witness)
//! device   <device id>                                   (authors allowed; any number)
//! ```
//!
//! A folder's policy is what its devices hold the bridge to: the daemon submits each new
//! checkpoint to the witnesses that have a URL and stores their cosignatures on the bridge,
//! and `harp verify --policy FILE` refuses a proof whose checkpoint is not signed by the log
//! key or carries fewer than `quorum` valid cosignatures of the named witnesses. The format
//! follows the shape of Sigsum's policy files, so the file reads the same to people who run
//! witnesses for other logs.

use thiserror::Error;

use crate::ids::DeviceId;
use crate::tlog::{KEY_COSIGNATURE, KEY_ED25519, VerifierKey};

/// The most witnesses a policy names (a checkpoint carries at most 16 cosignatures).
pub const MAX_WITNESSES: usize = 16;
/// The largest policy file.
pub const MAX_POLICY_LEN: usize = 64 * 1024;

/// A witness named by a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// Its cosignature verifier key.
    pub key: VerifierKey,
    /// Where its C2SP tlog-witness endpoint is (`add-checkpoint` is appended), if known.
    pub url: Option<String>,
}

/// Whom a verifier trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// The key that signs the log's checkpoints.
    pub log: Option<VerifierKey>,
    /// The witnesses.
    pub witnesses: Vec<Witness>,
    /// How many distinct witnesses must have cosigned a checkpoint.
    pub quorum: usize,
    /// The devices allowed to author versions (empty: any device).
    pub devices: Vec<DeviceId>,
}

/// Why a policy file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("policy line {line}: {why}")]
pub struct PolicyError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

fn err(line: usize, why: impl Into<String>) -> PolicyError {
    PolicyError {
        line,
        why: why.into(),
    }
}

impl TrustPolicy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_LEN {
            return Err(err(0, "the file is over 64 KiB"));
        }
        let mut policy = Self::default();
        let mut quorum = None;
        for (n, raw) in text.lines().enumerate() {
            let n = n + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                [] => {}
                ["log", key] => {
                    if policy.log.is_some() {
                        return Err(err(n, "a second log key"));
                    }
                    let key = VerifierKey::parse(key).map_err(|e| err(n, e.to_string()))?;
                    if key.kind != KEY_ED25519 {
                        return Err(err(n, "a log key has type 0x01 (Ed25519 note signatures)"));
                    }
                    policy.log = Some(key);
                }
                ["witness", key, ref url @ ..] if url.len() <= 1 => {
                    let key = VerifierKey::parse(key).map_err(|e| err(n, e.to_string()))?;
                    if key.kind != KEY_COSIGNATURE {
                        return Err(err(n, "a witness key has type 0x04 (cosignatures)"));
                    }
                    if policy.witnesses.iter().any(|w| w.key.name == key.name) {
                        return Err(err(n, format!("witness {} is named twice", key.name)));
                    }
                    if policy.witnesses.len() == MAX_WITNESSES {
                        return Err(err(n, "more than 16 witnesses"));
                    }
                    let url = match url.first() {
                        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                            Some((*u).to_owned())
                        }
                        Some(_) => return Err(err(n, "a witness URL starts with http(s)://")),
                        None => None,
                    };
                    policy.witnesses.push(Witness { key, url });
                }
                ["quorum", k] => {
                    if quorum.is_some() {
                        return Err(err(n, "a second quorum"));
                    }
                    quorum = Some(
                        k.parse::<usize>()
                            .map_err(|_| err(n, "the quorum is a number"))?,
                    );
                }
                ["device", id] => {
                    let id: DeviceId = id
                        .parse()
                        .map_err(|_| err(n, format!("{id} is not a device id")))?;
                    policy.devices.push(id);
                }
                [word, ..] => {
                    return Err(err(
                        n,
                        format!("`{word}`: expected log, witness, quorum or device with its value"),
                    ));
                }
            }
        }
        policy.quorum = quorum.unwrap_or(policy.witnesses.len());
        if policy.quorum > policy.witnesses.len() {
            return Err(err(
                0,
                format!(
                    "a quorum of {} with {} witnesses can never be met",
                    policy.quorum,
                    policy.witnesses.len()
                ),
            ));
        }
        Ok(policy)
    }

    /// The file form ([`TrustPolicy::parse`] reads it back).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if let Some(log) = &self.log {
            s.push_str(&format!("log {log}\n"));
        }
        for w in &self.witnesses {
            match &w.url {
                Some(u) => s.push_str(&format!("witness {} {u}\n", w.key)),
                None => s.push_str(&format!("witness {}\n", w.key)),
            }
        }
        if !self.witnesses.is_empty() {
            s.push_str(&format!("quorum {}\n", self.quorum));
        }
        for d in &self.devices {
            s.push_str(&format!("device {d}\n"));
        }
        s
    }

    /// The witnesses' keys.
    pub fn witness_keys(&self) -> Vec<VerifierKey> {
        self.witnesses.iter().map(|w| w.key.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> ed25519_dalek::VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    #[test]
    fn a_policy_round_trips_and_defaults_its_quorum_to_every_witness() {
        let text = format!(
            "# the bridge\nlog {}\n\nwitness {} https://w1.example/\nwitness {}\n",
            VerifierKey::log("bridge.example", &key(1)),
            VerifierKey::witness("w1.example", &key(2)),
            VerifierKey::witness("w2.example", &key(3)),
        );
        let p = TrustPolicy::parse(&text).unwrap();
        assert_eq!(p.quorum, 2);
        assert_eq!(p.witnesses[0].url.as_deref(), Some("https://w1.example/"));
        assert_eq!(p.witnesses[1].url, None);
        assert_eq!(TrustPolicy::parse(&p.encode()).unwrap(), p);
    }

    #[test]
    fn bad_policies_name_their_line() {
        let log = VerifierKey::log("l", &key(1)).to_string();
        let wit = VerifierKey::witness("w", &key(2)).to_string();
        let cases = [
            (format!("log {wit}"), 1, "type 0x01"),
            (format!("witness {log}"), 1, "type 0x04"),
            (format!("witness {wit}\nwitness {wit}"), 2, "named twice"),
            (format!("witness {wit}\nquorum 2"), 0, "never be met"),
            (format!("witness {wit} ftp://x"), 1, "http"),
            ("quorum x".to_owned(), 1, "number"),
            ("colour blue".to_owned(), 1, "expected log"),
            ("log abc+00000000+AAAA".to_owned(), 1, "verifier key"),
            (format!("log {log}\nlog {log}"), 2, "second log"),
        ];
        for (text, line, why) in cases {
            let e = TrustPolicy::parse(&text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }
}
