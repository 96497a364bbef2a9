//! Pacing of background writes: a base or a checkpoint written beside a busy journal goes out
//! at a bounded rate, so the device keeps room for the journal's syncs (a compaction written
//! at full speed measured a 1-second window of W2 at a third of its rate, and commits waiting
//! 300 ms).

use std::time::{Duration, Instant};

/// The rate background writes are held to.
pub const BACKGROUND_WRITE_BYTES_PER_S: u64 = 64 << 20;

/// Holds a writer to a rate: after each write, [`Pace::wrote`] sleeps until the bytes so
/// far are due.
#[derive(Debug)]
pub struct Pace {
    bytes_per_s: u64,
    started: Instant,
    bytes: u64,
}

impl Pace {
    /// A pace of `bytes_per_s` from now.
    pub fn new(bytes_per_s: u64) -> Pace {
        assert!(
            bytes_per_s > 0,
            "a pace of zero bytes per second never ends"
        );
        Pace {
            bytes_per_s,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// `bytes` more were written: waits until they are due.
    pub fn wrote(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_s as f64);
        if let Some(early) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(early);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_holds_writes_to_its_rate() {
        let mut pace = Pace::new(10 << 20);
        let start = Instant::now();
        for _ in 0..4 {
            pace.wrote(256 << 10);
        }
        // 1 MiB at 10 MiB/s: 100 ms at least.
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
