//! The canonical byte encoding every Harp format is written in.
//!
//! All integers are big-endian and of fixed width; variable-length fields carry an explicit
//! length prefix and a per-field maximum that is checked **before** anything is allocated, so a
//! hostile length field costs the decoder nothing. There is exactly one encoding of each value:
//! decoders reject trailing bytes, unknown versions and unknown tags, which is what makes hashes
//! and signatures over these bytes meaningful.

use thiserror::Error;

/// Why a byte string could not be decoded. Every decoder in this crate returns it (directly or
/// inside its own error), and none of them panics on any input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before `what` was complete.
    #[error("truncated input: {what} needs {needed} more bytes")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A length or count field is larger than the format allows.
    #[error("{what} is too large: {len} > {max}")]
    TooLarge {
        /// The field being read.
        what: &'static str,
        /// The declared length or count.
        len: u64,
        /// The largest value the format allows.
        max: u64,
    },
    /// Bytes were left over after a complete value.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The value that was complete.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A format version this implementation does not know.
    #[error("unsupported {what} version {version}")]
    UnknownVersion {
        /// The format.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A tag (enum discriminant, message type) this implementation does not know.
    #[error("unknown {what} tag {tag:#04x}")]
    UnknownTag {
        /// The field being read.
        what: &'static str,
        /// The tag found.
        tag: u8,
    },
    /// A field is well-formed but its value breaks a rule of the format.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The field being read.
        what: &'static str,
        /// The rule that was broken.
        reason: &'static str,
    },
}

impl DecodeError {
    /// A stable, machine-readable name for the error, used by the golden test vectors so that
    /// other implementations (the PHP app) can check they fail in the same way.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::UnknownVersion { .. } => "unknown_version",
            DecodeError::UnknownTag { .. } => "unknown_tag",
            DecodeError::Invalid { .. } => "invalid",
        }
    }
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian two's complement `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends bytes as they are (a fixed-size field).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a `u32` length prefix and the bytes.
    ///
    /// Callers keep `v` within the field's maximum, which is far below `u32::MAX`.
    pub fn bytes_u32(&mut self, v: &[u8]) -> &mut Self {
        // Every variable field in Harp is bounded well below 4 GiB; saturate rather than wrap
        // so that an impossible value fails to decode instead of aliasing a shorter one.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.raw(v)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The finished encoding.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical encodings from a byte slice, never past its end and never allocating more
/// than a field's declared maximum.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `i64`.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Reads a `u32` length prefix, checks it against `max`, and takes that many bytes.
    pub fn bytes_u32(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLarge {
                what,
                len: len as u64,
                max: max as u64,
            });
        }
        self.take(len, what)
    }

    /// Reads a count of `u32`, checks it against `max` and against the bytes left given that
    /// each item takes at least `min_item_len` bytes. Call before allocating a vector of items.
    pub fn count_u32(
        &mut self,
        max: usize,
        min_item_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        self.check_count(n, max, min_item_len, what)
    }

    /// Like [`Reader::count_u32`] for a one-byte count.
    pub fn count_u8(
        &mut self,
        max: usize,
        min_item_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let n = self.u8(what)? as usize;
        self.check_count(n, max, min_item_len, what)
    }

    fn check_count(
        &self,
        n: usize,
        max: usize,
        min_item_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        if n > max {
            return Err(DecodeError::TooLarge {
                what,
                len: n as u64,
                max: max as u64,
            });
        }
        let needed = n.saturating_mul(min_item_len);
        if needed > self.buf.len() {
            return Err(DecodeError::Truncated {
                what,
                needed: needed - self.buf.len(),
            });
        }
        Ok(n)
    }

    /// Checks that the whole input was consumed.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = Writer::default();
        w.u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .u64(0x08090a0b0c0d0e0f)
            .i64(-1);
        assert_eq!(
            w.as_slice(),
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff
            ]
        );
        let bytes = w.into_vec();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u32("c").unwrap(), 0x0405_0607);
        assert_eq!(r.u64("d").unwrap(), 0x08090a0b0c0d0e0f);
        assert_eq!(r.i64("e").unwrap(), -1);
        r.finish("all").unwrap();
    }

    #[test]
    fn hostile_lengths_fail_before_allocating() {
        // A count of 4 billion items with 3 bytes behind it must fail on the count, at once.
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let mut r = Reader::new(&bytes);
        assert!(matches!(
            r.count_u32(usize::MAX, 32, "items"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&bytes);
        assert!(matches!(
            r.bytes_u32(1024, "blob"),
            Err(DecodeError::TooLarge {
                len: 0xffff_ffff,
                max: 1024,
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut r = Reader::new(&[1, 2]);
        r.u8("x").unwrap();
        assert_eq!(
            r.finish("value"),
            Err(DecodeError::TrailingBytes {
                what: "value",
                count: 1
            })
        );
    }
}
