//! hivelog's journal: an append-only log of transactions in preallocated, memory-mapped
//! segment files.
//!
//! Every committed transaction gets the next sequence number. A transaction is a run of Op
//! records (payloads this crate does not interpret) closed by a Commit record; it exists only
//! if its Commit record is intact. Records are framed `len | crc32c | body` and verified on
//! every read back. FORMAT.md at the repository root documents every byte.
//!
//! Architecture invariant: this crate never sees a key path or a value. It stores opaque
//! payloads and hands them back by [`Loc`].

#![warn(missing_docs)]

pub mod archive;
mod base;
pub mod codec;
mod error;
mod frame;
mod group_commit;
mod heap;
mod journal;
pub mod mem;
mod pace;
mod record;
mod recovery;
mod scan;
mod segment;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stream;
#[cfg(test)]
mod tests;
mod txn;
pub mod vfs;

use std::sync::{Mutex, MutexGuard};

pub use base::{BaseLayout, BaseWriter, Cut, Installed, LiveSegments, op_frame_bytes};
pub use error::LogError;
pub use journal::{
    Journal, JournalOptions, Records, SEGMENT_SIZE_DEFAULT_BYTES, SEGMENT_SIZE_MAX_BYTES,
    SEGMENT_SIZE_MIN_BYTES, SEGMENT_SIZE_OPTION_MAX_BYTES, SEGMENTS_MAX, SYNC_INTERVAL_MAX_MS,
    SegmentInfo, SyncPolicy, TailCursor, check_segment_size, check_sync_policy,
};
pub use pace::{BACKGROUND_WRITE_BYTES_PER_S, Pace};
pub use record::{Commit, Kind, PRINCIPAL_MAX_BYTES};
pub use recovery::{RecoveryReport, SalvageReport, TornTail};
pub use scan::RECORDS_PER_TRANSACTION_MAX;
pub use segment::{FORMAT_VERSION, SEGMENT_MAGIC};
pub use txn::TxnBuilder;

/// A sequence number: the number of transactions committed up to and including this one.
pub type Seq = u64;

/// Where an Op record lives: segment number, offset of its frame, length of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    /// Number of the segment holding the record.
    pub segment: u32,
    /// Offset of the record's frame in that segment.
    pub offset: u32,
    /// Length of the record's body.
    pub len: u32,
}

/// An Op record read back: where it is and its payload.
#[derive(Debug, Clone, Copy)]
pub struct OpRef<'a> {
    /// Where the record is.
    pub loc: Loc,
    /// The payload, as the journal's user encoded it.
    pub payload: &'a [u8],
}

/// Where a committed transaction's Commit record sits. A checkpoint of the state after the
/// transaction names it, and an open resumes reading the journal right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    /// The transaction.
    pub seq: Seq,
    /// Number of the segment holding its Commit record.
    pub segment: u64,
    /// Offset of the Commit record's frame.
    pub commit_at: u64,
    /// Offset just past it: where the next record starts.
    pub end: u64,
    /// The Commit record's checksum, which covers its time: two journals with the same
    /// shape still differ here.
    pub crc: u32,
}

/// A sealed segment as a checkpoint remembers it, so an open that resumes after the
/// checkpoint can check the segment is still the one it was without reading it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedSegment {
    /// Position in the journal.
    pub number: u64,
    /// Sequence number of its first transaction.
    pub first_seq: Seq,
    /// Offset just past its Seal record.
    pub end: u64,
}

/// Where an open resumes reading the journal: right after a checkpoint's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The checkpoint's transaction.
    pub point: CommitPoint,
    /// Every segment before `point.segment`, oldest first.
    pub sealed: Vec<SealedSegment>,
}

/// A committed transaction read back.
#[derive(Debug)]
pub struct TxnView<'a> {
    /// The transaction's sequence number.
    pub seq: Seq,
    /// Where its Commit record is.
    pub point: CommitPoint,
    /// Its Commit record.
    pub commit: Commit<'a>,
    /// Its Op records, in order.
    pub ops: &'a [OpRef<'a>],
}

/// A journal user's refusal of a transaction it reads back (its payload does not decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

/// Nanoseconds since the Unix epoch, by the wall clock.
pub fn unix_nanos_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data consistent
/// or poisons the journal explicitly.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
