//! Reading frames back into transactions: one state machine shared by recovery, `verify` and
//! the transaction iterator, so every reader applies the same rules.
//!
//! Rules: a transaction is a run of Op records sharing one sequence number, closed by a Commit
//! record with the same number and the right op count; sequence numbers rise by exactly one per
//! transaction; a Seal ends a segment; a Mark sits between transactions. Anything else that
//! carries a valid checksum is corruption, never a torn write: a torn write leaves zeros or
//! stale-free garbage (recovery zeroes what it cuts), never a well-formed frame out of place.

use crate::frame::{self, Read};
use crate::record::{Commit, Kind, Mark, Seal};
use crate::segment::HEADER_BYTES;
use crate::{Loc, OpRef, Rejected, Seq, TxnView};

/// Most Op records one transaction may hold: a restore of a subtree of 30 million values
/// (replay holds a pending transaction's record locations, 32 bytes each, until its Commit).
pub const RECORDS_PER_TRANSACTION_MAX: u32 = 1 << 25;

/// Damage found at an offset of a segment.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub offset: u64,
    pub seq: Option<Seq>,
    pub reason: String,
    /// Where the transaction holding the damage starts: the valid prefix ends here.
    pub txn_start: u64,
}

/// How a segment's frames end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End {
    /// A Seal record at `data_end`; the segment is complete.
    Sealed { data_end: u64 },
    /// The frames stop at `at` (zeros or an invalid frame). `cut` is where the last complete
    /// transaction ends: at `at`, or earlier if uncommitted Op records precede it.
    Stopped {
        at: u64,
        cut: u64,
        invalid: Option<&'static str>,
        uncommitted: u32,
    },
}

/// Scans the frames of one segment from the header on, handing each committed transaction to
/// `on_txn`. `next_seq` is the sequence number the next transaction must carry; it advances.
pub(crate) fn scan_segment<'a>(
    number: u32,
    bytes: &'a [u8],
    next_seq: &mut Seq,
    on_txn: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<End, Fault> {
    scan_segment_to_end(number, bytes, HEADER_BYTES, next_seq, on_txn)
}

/// [`scan_segment`] from `start`, where a transaction (or a Mark or Seal record) starts.
pub(crate) fn scan_segment_to_end<'a>(
    number: u32,
    bytes: &'a [u8],
    start: u64,
    next_seq: &mut Seq,
    on_txn: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<End, Fault> {
    match scan_segment_from(number, bytes, start, Seq::MAX, next_seq, on_txn)? {
        Tail::End(end) => Ok(end),
        Tail::Reached { at } => unreachable!("a frame at {at} numbered past Seq::MAX"),
    }
}

/// Where [`scan_segment_from`] stopped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tail {
    /// Where the segment's frames end.
    End(End),
    /// A transaction numbered past the scan's last sequence number starts at `at`.
    Reached { at: u64 },
}

/// [`scan_segment`] from `start`, which must be where a transaction (or a Mark or Seal
/// record) starts, stopping before the first transaction numbered past `last_seq`.
pub(crate) fn scan_segment_from<'a>(
    number: u32,
    bytes: &'a [u8],
    start: u64,
    last_seq: Seq,
    next_seq: &mut Seq,
    on_txn: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<Tail, Fault> {
    debug_assert!(start >= HEADER_BYTES);
    let mut pending: Vec<OpRef<'a>> = Vec::new();
    let mut offset = start;
    let mut txn_start = offset;
    loop {
        let rest = bytes.get(offset as usize..).unwrap_or(&[]);
        let frame = match frame::read(rest) {
            Read::Frame(frame) if pending.is_empty() && frame.seq > last_seq => {
                // Mark and Seal records carry the last transaction's number, so a frame
                // numbered past `last_seq` here is the first of a later transaction.
                return Ok(Tail::Reached { at: offset });
            }
            Read::Frame(frame) => frame,
            stop => {
                let invalid = match stop {
                    Read::Invalid(reason) => Some(reason),
                    _ => None,
                };
                return Ok(Tail::End(End::Stopped {
                    at: offset,
                    cut: txn_start,
                    invalid,
                    uncommitted: pending.len() as u32,
                }));
            }
        };
        let fault = |reason: String| Fault {
            offset,
            seq: Some(frame.seq),
            reason,
            txn_start,
        };
        match frame.kind {
            Kind::Op => {
                if frame.seq != *next_seq {
                    return Err(fault(format!(
                        "op record carries sequence number {}, expected {}",
                        frame.seq, *next_seq
                    )));
                }
                if pending.len() as u32 >= RECORDS_PER_TRANSACTION_MAX {
                    return Err(fault(
                        "transaction exceeds RECORDS_PER_TRANSACTION_MAX".into(),
                    ));
                }
                pending.push(OpRef {
                    loc: Loc {
                        segment: number,
                        offset: offset as u32,
                        len: frame.body_len,
                    },
                    payload: frame.payload,
                });
            }
            Kind::Commit => {
                let commit = Commit::decode(frame.payload).map_err(|e| fault(e.0.into()))?;
                if frame.seq != *next_seq {
                    return Err(fault(format!(
                        "commit record carries sequence number {}, expected {}",
                        frame.seq, *next_seq
                    )));
                }
                if commit.op_count as usize != pending.len() {
                    return Err(fault(format!(
                        "commit record counts {} ops, the transaction has {}",
                        commit.op_count,
                        pending.len()
                    )));
                }
                if commit.synced_through > offset {
                    return Err(fault("commit record claims durability past itself".into()));
                }
                let txn = TxnView {
                    seq: frame.seq,
                    point: crate::CommitPoint {
                        seq: frame.seq,
                        segment: u64::from(number),
                        commit_at: offset,
                        end: offset + frame.total_bytes,
                        crc: frame.crc,
                    },
                    commit,
                    ops: &pending,
                };
                on_txn(&txn).map_err(|Rejected(reason)| fault(reason))?;
                *next_seq += 1;
                pending.clear();
                txn_start = offset + frame.total_bytes;
            }
            Kind::Seal => {
                let seal = Seal::decode(frame.payload).map_err(|e| fault(e.0.into()))?;
                if !pending.is_empty() || frame.seq + 1 != *next_seq || seal.data_end != offset {
                    return Err(fault("seal record out of place".into()));
                }
                return Ok(Tail::End(End::Sealed { data_end: offset }));
            }
            Kind::Mark => {
                let mark = Mark::decode(frame.payload).map_err(|e| fault(e.0.into()))?;
                if !pending.is_empty() || frame.seq + 1 != *next_seq || mark.synced_through > offset
                {
                    return Err(fault("mark record out of place".into()));
                }
                txn_start = offset + frame.total_bytes;
            }
        }
        offset += frame.total_bytes;
    }
}

/// The largest offset that a Commit or Mark record found in `bytes[from..]` says was durable
/// before it was written. Such a record past a damaged frame proves the damage hit data that had
/// been synced: that is corruption, not a torn write. Frames are looked for at aligned offsets
/// in `[from, until)` only (a frame starts with its non-zero length, so none starts at or past
/// the last non-zero byte); they may run on past `until`.
pub(crate) fn durable_claim_after(bytes: &[u8], from: u64, until: u64) -> u64 {
    let mut claim = 0;
    let mut offset = from;
    while offset < until.min(bytes.len() as u64) {
        if let Read::Frame(frame) = frame::read(&bytes[offset as usize..]) {
            let synced = match frame.kind {
                Kind::Commit => Commit::decode(frame.payload).map(|c| c.synced_through).ok(),
                Kind::Mark => Mark::decode(frame.payload).map(|m| m.synced_through).ok(),
                Kind::Op | Kind::Seal => None,
            };
            claim = claim.max(synced.unwrap_or(0));
        }
        offset += frame::ALIGN_BYTES;
    }
    claim
}

/// One past the last non-zero byte at or after `from`, or `from` if all are zero.
pub(crate) fn nonzero_end(bytes: &[u8], from: u64) -> u64 {
    const CHUNK_BYTES: usize = 4096;
    let tail = bytes.get(from as usize..).unwrap_or(&[]);
    let mut end = tail.len();
    for chunk in tail.rchunks(CHUNK_BYTES) {
        match chunk.iter().rposition(|&b| b != 0) {
            Some(last) => return from + (end - chunk.len() + last + 1) as u64,
            None => end -= chunk.len(),
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_end_finds_the_last_written_byte() {
        let mut bytes = vec![0u8; 10_000];
        assert_eq!(nonzero_end(&bytes, 100), 100);
        bytes[5000] = 1;
        assert_eq!(nonzero_end(&bytes, 100), 5001);
        assert_eq!(nonzero_end(&bytes, 6000), 6000);
        bytes[9999] = 1;
        assert_eq!(nonzero_end(&bytes, 0), 10_000);
        assert_eq!(nonzero_end(&bytes, 20_000), 20_000);
    }
}
