//! Bandwidth limits (`max_send_kib_per_sec`, `max_recv_kib_per_sec`): one token bucket per
//! direction for the whole node, taken from before each chunk blob is sent and after each is
//! received. A receiver that waits stops reading, so QUIC's flow control slows the sender:
//! limiting what is read limits what arrives.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket in bytes per second (0: unlimited). Taking more than is there is allowed
/// and paid back by waiting, so one large blob never stalls for ever.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket refilled at `bytes_per_sec` (0: unlimited), holding at most one second's worth
    /// (and at least 1 MiB, the largest blob).
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec as f64;
        let burst = rate.max(f64::from(1u32 << 20));
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Whether it limits anything.
    pub fn is_limited(&self) -> bool {
        self.rate > 0.0
    }

    /// How long to wait before `n` bytes may go: zero while the bucket holds them.
    fn debit(&self, n: u64) -> Duration {
        if !self.is_limited() {
            return Duration::ZERO;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate)
        }
    }

    /// Takes `n` bytes, waiting as long as the rate asks.
    pub async fn take(&self, n: u64) {
        let wait = self.debit(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The node's limits, one bucket per direction.
#[derive(Debug)]
pub struct Limits {
    /// Chunk bytes this node sends.
    pub send: Bucket,
    /// Chunk bytes this node receives.
    pub recv: Bucket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits_and_a_limit_is_paid_back_in_time() {
        let free = Bucket::new(0);
        assert_eq!(free.debit(u64::MAX / 2), Duration::ZERO);
        // 1 MiB/s: the first MiB is in the bucket, the next three are owed.
        let b = Bucket::new(1 << 20);
        assert_eq!(b.debit(1 << 20), Duration::ZERO);
        let owed: f64 = (0..3).map(|_| b.debit(1 << 20).as_secs_f64()).sum();
        // Each debit waits for what is owed so far: about 1 + 2 + 3 seconds.
        assert!(owed > 5.9 && owed < 6.1, "{owed}");
        // 10 MiB/s: a 1 MiB blob costs 0.1 s once the burst is spent.
        let fast = Bucket::new(10 << 20);
        assert_eq!(fast.debit(10 << 20), Duration::ZERO);
        let w = fast.debit(1 << 20).as_secs_f64();
        assert!(w > 0.09 && w < 0.11, "{w}");
    }
}
