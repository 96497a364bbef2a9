//! Building a transaction: frames accumulate in the writer's buffer, then one write at the
//! segment's tail.
//!
//! The builder holds the writer lock from `begin` to `commit`, so the location of every record
//! is known as it is pushed (the caller's index can point at it before the write). If the
//! transaction outgrows the active segment, the caller abandons what it pushed, calls
//! [`TxnBuilder::rollover`] and pushes again into a fresh segment: a transaction never spans
//! two segments.

use std::sync::MutexGuard;

use crate::error::LogError;
use crate::frame;
use crate::journal::{Journal, SEGMENT_SIZE_MAX_BYTES, SyncPolicy, Writer};
use crate::record::{Commit, Kind, PRINCIPAL_MAX_BYTES};
use crate::scan::RECORDS_PER_TRANSACTION_MAX;
use crate::segment::HEADER_BYTES;
use crate::{CommitPoint, Loc, Seq};

/// Space every segment keeps after its last transaction: the largest Commit frame, a Seal and
/// a Mark. Holding it back means a commit, a seal and a clean close always fit.
const TAIL_RESERVE_BYTES: u64 = COMMIT_FRAME_MAX_BYTES + 2 * 32;
const COMMIT_FRAME_MAX_BYTES: u64 = 8 + 9 + 22 + PRINCIPAL_MAX_BYTES as u64 + 8;
/// A segment made for one large transaction is sized to it, in steps of this (a multiple of
/// 8, as every segment size is).
const LARGE_SEGMENT_ROUNDING_BYTES: u64 = 1 << 20;
/// The most of the transaction buffer's capacity kept from one transaction to the next: a
/// restore's hundreds of megabytes are given back once it is written.
const BUFFER_KEPT_BYTES: usize = 4 << 20;

/// A transaction being built; see the module documentation.
pub struct TxnBuilder<'j> {
    journal: &'j Journal,
    writer: MutexGuard<'j, Writer>,
    ops: u32,
}

impl<'j> TxnBuilder<'j> {
    pub(crate) fn new(journal: &'j Journal, writer: MutexGuard<'j, Writer>) -> TxnBuilder<'j> {
        TxnBuilder {
            journal,
            writer,
            ops: 0,
        }
    }

    /// The sequence number this transaction will have.
    pub fn seq(&self) -> Seq {
        self.writer.next_seq
    }

    /// Appends an Op record whose payload `encode` writes; returns where it will be.
    pub fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<Loc, LogError> {
        if self.ops >= RECORDS_PER_TRANSACTION_MAX {
            return Err(LogError::TooManyRecords {
                max: RECORDS_PER_TRANSACTION_MAX,
            });
        }
        let writer = &mut *self.writer;
        let seq = writer.next_seq;
        let start = frame::begin(&mut writer.buf, seq, Kind::Op);
        encode(&mut writer.buf);
        let bytes = writer.buf.len() as u64 + frame::frame_bytes(0);
        if HEADER_BYTES + bytes + TAIL_RESERVE_BYTES > SEGMENT_SIZE_MAX_BYTES {
            writer.buf.truncate(start);
            return Err(LogError::TransactionTooLarge {
                bytes,
                max: SEGMENT_SIZE_MAX_BYTES,
            });
        }
        let len = frame::finish(&mut writer.buf, start);
        self.ops += 1;
        let active = writer
            .active
            .as_ref()
            .expect("a writable journal has an active segment");
        Ok(Loc {
            segment: active.number() as u32,
            // Out of range only when the transaction does not fit; the caller then rolls over
            // and pushes again, so such a location is never used.
            offset: u32::try_from(writer.tail + start as u64).unwrap_or(u32::MAX),
            len,
        })
    }

    /// The payload of an Op record pushed earlier in this transaction, by the location `push`
    /// returned; `None` if `loc` is not one of them.
    pub fn pushed(&self, loc: Loc) -> Option<&[u8]> {
        let writer = &*self.writer;
        let active = writer.active.as_ref()?;
        if u64::from(loc.segment) != active.number() {
            return None;
        }
        let start = u64::from(loc.offset).checked_sub(writer.tail)? as usize;
        let body = start + frame::HEADER_BYTES as usize;
        writer
            .buf
            .get(body + frame::BODY_PREFIX_BYTES..body + loc.len as usize)
    }

    /// Whether what was pushed fits in the active segment.
    pub fn fits(&self) -> bool {
        let writer = &*self.writer;
        let capacity = writer
            .active
            .as_ref()
            .map_or(self.journal.segment_size_bytes(), |active| {
                active.capacity()
            });
        writer.tail + writer.buf.len() as u64 + TAIL_RESERVE_BYTES <= capacity
    }

    /// Starts the transaction in a segment of its own, at least big enough for `bytes` of
    /// records: seals the active segment unless nothing is in it yet and it is big enough.
    /// Call before pushing anything (a restore: one self-contained, verifiable run of
    /// records, DESIGN.md). If the estimate was short, `fits` fails and `rollover` sizes the
    /// next segment to what was pushed.
    pub fn isolate(&mut self, bytes: u64) -> Result<(), LogError> {
        debug_assert!(self.writer.buf.is_empty() && self.ops == 0);
        let needed = (HEADER_BYTES + bytes + TAIL_RESERVE_BYTES).min(SEGMENT_SIZE_MAX_BYTES);
        let writer = &*self.writer;
        let fresh = writer.tail == HEADER_BYTES
            && writer
                .active
                .as_ref()
                .is_some_and(|active| active.capacity() >= needed);
        if !fresh {
            let capacity = self.capacity_for(needed);
            self.journal.roll_to(&mut self.writer, capacity)?;
        }
        // Grown once to the size announced, not by doublings that copy everything so far.
        let needed = usize::try_from(needed).unwrap_or(usize::MAX);
        self.writer.buf.reserve(needed);
        Ok(())
    }

    /// The size of a new segment for a transaction of `needed` bytes (header and tail
    /// included): the usual one, or one sized to the transaction.
    fn capacity_for(&self, needed: u64) -> u64 {
        let usual = self.journal.segment_size_bytes();
        if needed <= usual {
            usual
        } else {
            needed
                .next_multiple_of(LARGE_SEGMENT_ROUNDING_BYTES)
                .min(SEGMENT_SIZE_MAX_BYTES)
        }
    }

    /// Drops what was pushed, seals the active segment and starts a new one: of the usual
    /// size, or, for a transaction larger than that (a restore of a big subtree), of the size
    /// it needs, up to SEGMENT_SIZE_MAX_BYTES. A transaction still never spans segments.
    pub fn rollover(&mut self) -> Result<(), LogError> {
        let needed = HEADER_BYTES + self.writer.buf.len() as u64 + TAIL_RESERVE_BYTES;
        if needed > SEGMENT_SIZE_MAX_BYTES {
            return Err(LogError::TransactionTooLarge {
                bytes: needed,
                max: SEGMENT_SIZE_MAX_BYTES,
            });
        }
        let capacity = self.capacity_for(needed);
        self.journal.roll_to(&mut self.writer, capacity)?;
        self.writer.buf.clear();
        self.ops = 0;
        Ok(())
    }

    /// Closes the transaction with a Commit record and copies it into the journal. Under
    /// [`SyncPolicy::Always`] it returns once the commit is durable.
    ///
    /// The caller must have checked [`TxnBuilder::fits`]. If the write or the wait for
    /// durability fails, the journal is poisoned: it refuses every later write until reopened.
    pub fn commit(mut self, principal: &str, time_unix_nanos: i64) -> Result<Seq, LogError> {
        if principal.len() > PRINCIPAL_MAX_BYTES {
            return Err(LogError::PrincipalTooLong {
                len: principal.len(),
                max: PRINCIPAL_MAX_BYTES,
            });
        }
        assert!(
            self.fits(),
            "commit of a transaction that does not fit its segment"
        );
        let journal = self.journal;
        let writer = &mut *self.writer;
        let active = writer
            .active
            .clone()
            .expect("a writable journal has an active segment");
        let seq = writer.next_seq;
        let start = frame::begin(&mut writer.buf, seq, Kind::Commit);
        Commit {
            principal,
            time_unix_nanos,
            op_count: self.ops,
            synced_through: active.synced(),
        }
        .encode(&mut writer.buf);
        frame::finish(&mut writer.buf, start);
        if let Err(error) = active.write(writer.tail, &writer.buf) {
            // What reached the page cache is unknown: refuse every later write.
            let error = LogError::io("write", journal.dir().join(active.name()), error);
            journal.group.fail(error.to_string());
            return Err(error);
        }
        let end = writer.tail + writer.buf.len() as u64;
        let crc = u32::from_le_bytes(
            writer.buf[start + 4..start + 8]
                .try_into()
                .expect("a frame header holds its checksum"),
        );
        writer.last_commit = Some(CommitPoint {
            seq,
            segment: active.number(),
            commit_at: writer.tail + start as u64,
            end,
            crc,
        });
        // A large transaction's buffer is not kept for the small ones that follow.
        writer.buf.clear();
        writer.buf.shrink_to(BUFFER_KEPT_BYTES);
        active.publish(end);
        journal
            .appended
            .fetch_add(end - writer.tail, std::sync::atomic::Ordering::Relaxed);
        writer.tail = end;
        writer.next_seq += 1;
        journal.note_committed(writer);
        journal.group.note_written(seq, &active, end);
        drop(self.writer);
        if journal.sync_policy() == SyncPolicy::Always {
            journal.group.wait_durable(seq)?;
        }
        Ok(seq)
    }
}
