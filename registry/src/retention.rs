//! Retention: which sequence numbers can still be read, and the readers of old ones.
//!
//! A compaction (compact.rs) replaces the journal up to a cut C with a base holding the
//! state at C; from then on no read before C can start. A reader that started earlier (a
//! [`Snapshot`](crate::Snapshot), a key handle opened from one, a backup being written at
//! its cut) holds a pin on its sequence number: while a pin older than C is held, the
//! segments the base replaced stay mapped and on disk, and the versions only they hold stay
//! in the index, so that reader sees exactly what it saw before.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::store::lock;

/// Distinct sequence numbers pinned at once (each by any number of readers).
pub const PINNED_SEQS_MAX: usize = 1 << 20;

/// The oldest readable sequence number and the pins on older ones.
pub(crate) struct Retention {
    pins: Mutex<Pins>,
}

struct Pins {
    /// No read may start before this.
    oldest: Seq,
    /// Readers per pinned sequence number.
    counts: BTreeMap<Seq, usize>,
}

/// A reader's hold on its sequence number; released when the last clone goes.
struct Pin {
    retention: Arc<Retention>,
    seq: Seq,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = lock(&self.retention.pins);
        let count = pins
            .counts
            .get_mut(&self.seq)
            .expect("a pin is counted until it is dropped");
        *count -= 1;
        if *count == 0 {
            pins.counts.remove(&self.seq);
        }
    }
}

/// A sequence number a reader holds pinned.
#[derive(Clone)]
pub(crate) struct Pinned {
    pub seq: Seq,
    _pin: Arc<Pin>,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.seq)
    }
}

impl Retention {
    /// A store whose oldest readable sequence number is `oldest` (its base's, or 0).
    pub(crate) fn new(oldest: Seq) -> Arc<Retention> {
        Arc::new(Retention {
            pins: Mutex::new(Pins {
                oldest,
                counts: BTreeMap::new(),
            }),
        })
    }

    /// Pins `seq` for a reader; refused if it was compacted away.
    pub(crate) fn pin(self: &Arc<Retention>, seq: Seq) -> Result<Pinned> {
        let mut pins = lock(&self.pins);
        if seq < pins.oldest {
            return Err(Error::Compacted {
                seq,
                oldest: pins.oldest,
            });
        }
        if !pins.counts.contains_key(&seq) && pins.counts.len() >= PINNED_SEQS_MAX {
            return Err(Error::TooManySnapshots {
                max: PINNED_SEQS_MAX,
            });
        }
        *pins.counts.entry(seq).or_insert(0) += 1;
        drop(pins);
        Ok(Pinned {
            seq,
            _pin: Arc::new(Pin {
                retention: self.clone(),
                seq,
            }),
        })
    }

    /// The oldest sequence number a read may start at.
    pub(crate) fn oldest(&self) -> Seq {
        lock(&self.pins).oldest
    }

    /// Refuses `seq` if it was compacted away.
    pub(crate) fn check(&self, seq: Seq) -> Result<()> {
        let oldest = self.oldest();
        if seq < oldest {
            return Err(Error::Compacted { seq, oldest });
        }
        Ok(())
    }

    /// From now on no read starts before `oldest`. Returns the oldest sequence number still
    /// pinned, if any (a reader that started before).
    pub(crate) fn advance(&self, oldest: Seq) -> Option<Seq> {
        let mut pins = lock(&self.pins);
        assert!(oldest >= pins.oldest, "the oldest readable never goes back");
        pins.oldest = oldest;
        pins.counts.keys().next().copied()
    }

    /// The oldest pinned sequence number, if any.
    pub(crate) fn oldest_pinned(&self) -> Option<Seq> {
        lock(&self.pins).counts.keys().next().copied()
    }
}
