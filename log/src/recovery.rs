//! Recovery: read every segment back, verify every record, and find where the journal ends.
//!
//! - A sealed segment must verify completely; any bad byte in it is corruption.
//! - The last segment may end in a torn tail: records of a transaction whose Commit never became
//!   durable, or a partly written frame. That tail was never acknowledged; it is cut off (and,
//!   in a writable open, zeroed so no stale frame can ever be read as a new one).
//! - An invalid frame in the last segment is corruption, not a torn tail, when a later Commit or
//!   Mark record says the segment had been synced past it: those bytes had been acknowledged.
//! - A last segment whose header is not valid and that holds nothing after its header is a
//!   rollover interrupted while the header was written; it is removed.
//!
//! Anything else fails the open with an error naming segment, offset and sequence number, unless
//! the caller asked to salvage: then the valid prefix is kept, the rest is moved aside (never
//! deleted), and the report says what was dropped.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::base;
use crate::error::LogError;
use crate::frame;
use crate::record::{Commit, Kind, Seal};
use crate::scan::{self, End, Fault};
use crate::segment::{self, FileKind, HEADER_BYTES, Header, Segment};
use crate::vfs::Vfs;
use crate::{CommitPoint, Rejected, Resume, Seq, TxnView, unix_nanos_now};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the journal after recovery.
    pub segments: usize,
    /// Committed transactions read back.
    pub transactions: u64,
    /// The last committed sequence number.
    pub last_seq: Seq,
    /// A torn tail that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
    /// A segment whose creation was interrupted, removed (or ignored, read-only).
    pub torn_segment: Option<String>,
    /// What salvage dropped, if the open salvaged.
    pub salvage: Option<SalvageReport>,
    /// The open resumed after this transaction (a checkpoint's): the records up to it were
    /// not read back.
    pub resumed_after: Option<Seq>,
    /// Files an interrupted compaction left behind (segments and bases the newest base
    /// replaced, an unfinished base), removed (or, read-only, passed over).
    pub compaction_leftovers: Vec<String>,
}

/// Unacknowledged bytes cut from the end of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file name.
    pub segment: String,
    /// Where the cut starts.
    pub offset: u64,
    /// Bytes cut.
    pub bytes: u64,
    /// Op records of the transaction that had no Commit.
    pub uncommitted_records: u32,
}

/// What a salvaging open dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// Segment holding the damage.
    pub segment: String,
    /// Offset of the damage.
    pub offset: u64,
    /// The transaction holding it, when known.
    pub seq: Option<Seq>,
    /// What is wrong there.
    pub reason: String,
    /// The last transaction kept.
    pub kept_through: Seq,
    /// Later segments moved aside whole.
    pub dropped_segments: Vec<String>,
    /// Where the damaged originals were put.
    pub moved_to: PathBuf,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cut a torn tail of {} bytes at segment {}, offset {} ({} uncommitted records)",
            self.bytes, self.segment, self.offset, self.uncommitted_records
        )
    }
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "salvaged: kept transactions through sequence number {}; dropped everything from \
             segment {} offset {} ({}) and {} later segment(s); originals moved to {}",
            self.kept_through,
            self.segment,
            self.offset,
            self.reason,
            self.dropped_segments.len(),
            self.moved_to.display()
        )
    }
}

/// The journal as recovery leaves it.
pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    /// Sequence number of the next transaction.
    pub next_seq: Seq,
    /// Where the next frame goes in the last segment.
    pub tail: u64,
    /// The last segment ends with a Seal: the next append rolls over.
    pub last_sealed: bool,
    /// The last committed transaction's Commit record.
    pub last_commit: Option<CommitPoint>,
    pub report: RecoveryReport,
}

pub(crate) struct Context<'a> {
    pub vfs: &'a dyn Vfs,
    pub dir: &'a Path,
    pub writable: bool,
    pub salvage: bool,
    /// A follower, reading while the store's writer writes: past the last complete
    /// transaction is one being written, which proves no damage.
    pub follow: bool,
    /// Resume after a checkpoint's transaction instead of reading everything back.
    pub resume: Option<&'a Resume>,
}

/// Where a segment sits, as its inspection needs to know.
#[derive(Clone, Copy)]
enum Place {
    /// The first segment: it sets the first sequence number.
    First,
    /// After another: it must be segment `number` and continue its sequence numbers.
    After { number: u64 },
    /// The segment of a checkpoint's transaction: its frames are read from `at` on.
    Resume { at: u64 },
}

/// How one segment came out of the scan.
enum Outcome {
    /// Complete, sealed; `end` is past the Seal frame.
    Sealed { end: u64 },
    /// The last segment, ending at `tail`; `[tail, dirty_end)` is to be zeroed.
    Open {
        tail: u64,
        dirty_end: u64,
        torn: Option<TornTail>,
    },
    /// The last segment's creation never completed.
    TornCreation,
}

pub(crate) fn recover(
    ctx: &Context<'_>,
    on_txn: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<Recovered, LogError> {
    let (mut segments, leftovers) = open_segments(ctx)?;
    let mut report = RecoveryReport {
        compaction_leftovers: leftovers,
        ..RecoveryReport::default()
    };
    let mut next_seq: Option<Seq> = None;
    let mut tail = HEADER_BYTES;
    let mut last_sealed = false;
    let mut i = 0;
    let mut start = None;
    let mut last_commit = None;
    if let Some(resume) = ctx.resume {
        i = check_resume(&mut segments, resume)
            .map_err(|reason| LogError::ResumeRejected { reason })?;
        start = Some(resume.point.end);
        next_seq = Some(resume.point.seq + 1);
        last_commit = Some(resume.point);
        report.resumed_after = Some(resume.point.seq);
    }
    let mut on_txn = |txn: &TxnView<'_>| {
        on_txn(txn)?;
        last_commit = Some(txn.point);
        Ok(())
    };
    while i < segments.len() {
        let is_last = i + 1 == segments.len();
        let place = match (start.take(), i.checked_sub(1)) {
            (Some(at), _) => Place::Resume { at },
            (None, None) => Place::First,
            (None, Some(previous)) => Place::After {
                number: segment::next_number(segments[previous].number()),
            },
        };
        let mut seq = next_seq.unwrap_or(1);
        let outcome = inspect(
            &mut segments[i],
            is_last && !ctx.follow,
            is_last,
            place,
            &mut seq,
            &mut on_txn,
        );
        match outcome {
            Ok(Outcome::Sealed { end }) => {
                tail = end;
                last_sealed = true;
            }
            Ok(Outcome::Open {
                tail: end,
                dirty_end,
                torn,
            }) => {
                if ctx.writable && dirty_end > end {
                    let path = ctx.dir.join(segments[i].name());
                    segments[i]
                        .zero(end, dirty_end)
                        .map_err(|e| LogError::io("write", &path, e))?;
                    segments[i]
                        .sync(dirty_end)
                        .map_err(|e| LogError::io("sync", &path, e))?;
                }
                report.torn_tail = torn;
                tail = end;
                last_sealed = false;
            }
            Ok(Outcome::TornCreation) => {
                let torn = segments.remove(i);
                if ctx.writable {
                    let path = ctx.dir.join(torn.name());
                    ctx.vfs
                        .remove_file(&path)
                        .map_err(|e| LogError::io("remove", path, e))?;
                    sync_dir(ctx, ctx.dir)?;
                }
                report.torn_segment = Some(torn.name().to_string());
                break;
            }
            Err(fault) => {
                let name = segments[i].name().to_string();
                if !ctx.salvage {
                    return Err(LogError::Corrupt {
                        segment: name,
                        offset: fault.offset,
                        seq: fault.seq,
                        reason: fault.reason,
                    });
                }
                let (end, sealed) = salvage(ctx, &mut segments, i, &fault, seq - 1, &mut report)?;
                next_seq = Some(seq);
                tail = end;
                last_sealed = sealed;
                break;
            }
        }
        next_seq = Some(seq);
        i += 1;
    }
    let next_seq = next_seq.unwrap_or(1);
    if let Some(last) = segments.last()
        && ctx.writable
        && !last_sealed
    {
        // Whatever survived may sit only in the page cache (the process was killed, not the
        // machine): sync it, so new commits can truthfully claim it durable.
        last.sync(tail)
            .map_err(|e| LogError::io("sync", ctx.dir.join(last.name()), e))?;
    }
    report.segments = segments.len();
    report.last_seq = next_seq - 1;
    report.transactions = next_seq - segments.first().map_or(next_seq, Segment::first_seq);
    Ok(Recovered {
        segments,
        next_seq,
        tail,
        last_sealed,
        last_commit,
        report,
    })
}

/// Checks that the journal still holds what `resume` remembers (the same sealed segments
/// before the checkpoint's, and its Commit record where it was) and takes the sealed ones as
/// they are, without reading their records. Returns the position of the checkpoint's segment.
/// Writes nothing: a refusal leaves the journal for a full recovery.
fn check_resume(segments: &mut [Segment], resume: &Resume) -> Result<usize, String> {
    let point = resume.point;
    let at = resume.sealed.len();
    if segments.len() <= at {
        return Err(format!(
            "the journal has {} segment(s); the checkpoint's transaction is in its segment {}",
            segments.len(),
            at
        ));
    }
    let seal_bytes = frame::frame_bytes(seal_body_bytes());
    let mut first_seq = None;
    for (segment, sealed) in segments.iter_mut().zip(&resume.sealed) {
        let header = Header::decode(segment.contents()).map_err(|short| short.0.to_string())?;
        if (header.number, header.first_seq) != (sealed.number, sealed.first_seq)
            || first_seq.is_some_and(|expected| expected != header.first_seq)
        {
            return Err(format!(
                "segment {} is not the one the checkpoint saw",
                segment.name()
            ));
        }
        let seal_at = sealed.end.saturating_sub(seal_bytes);
        let seal = read_at(segment, seal_at, Kind::Seal)?;
        let seal = (seal.0, seal.1);
        match Seal::decode(seal.1) {
            Ok(decoded) if decoded.data_end == seal_at && seal.0 >= header.first_seq => {}
            _ => {
                return Err(format!(
                    "segment {} has no seal where it had",
                    segment.name()
                ));
            }
        }
        first_seq = Some(seal.0 + 1);
        segment.set_recovered(header, sealed.end);
    }
    let segment = &mut segments[at];
    let header = Header::decode(segment.contents()).map_err(|short| short.0.to_string())?;
    if header.number != point.segment
        || first_seq.is_some_and(|expected| expected != header.first_seq)
        || point.seq < header.first_seq
    {
        return Err(format!(
            "segment {} is not the one the checkpoint saw",
            segment.name()
        ));
    }
    let (seq, payload, total, crc) = read_at(segment, point.commit_at, Kind::Commit)?;
    if seq != point.seq
        || point.commit_at + total != point.end
        || crc != point.crc
        || Commit::decode(payload).is_err()
    {
        return Err(format!(
            "segment {} offset {} holds no Commit record of sequence number {}",
            segment.name(),
            point.commit_at,
            point.seq
        ));
    }
    Ok(at)
}

/// The frame of `kind` at `offset` of `segment`: its sequence number, payload, size and
/// checksum.
fn read_at(
    segment: &mut Segment,
    offset: u64,
    kind: Kind,
) -> Result<(Seq, &[u8], u64, u32), String> {
    let name = segment.name().to_string();
    let bytes = segment.contents();
    let rest = usize::try_from(offset)
        .ok()
        .and_then(|offset| bytes.get(offset..))
        .unwrap_or(&[]);
    match frame::read(rest) {
        frame::Read::Frame(frame) if frame.kind == kind => {
            Ok((frame.seq, frame.payload, frame.total_bytes, frame.crc))
        }
        _ => Err(format!(
            "segment {name} offset {offset} holds no {kind:?} record"
        )),
    }
}

fn open_segments(ctx: &Context<'_>) -> Result<(Vec<Segment>, Vec<String>), LogError> {
    let names = ctx
        .vfs
        .list_dir(ctx.dir)
        .map_err(|e| LogError::io("list", ctx.dir, e))?;
    let mut files: Vec<(Seq, FileKind, String)> = Vec::new();
    let mut unfinished = Vec::new();
    for name in names {
        if let Some((seq, kind)) = segment::parse_name(&name) {
            files.push((seq, kind, name));
        } else if name.ends_with(base::UNFINISHED_SUFFIX) {
            unfinished.push(name);
        }
    }
    files.sort();
    // The journal starts at the newest base, if any: it holds the whole state at its sequence
    // number, and whatever it replaced (older bases, segments up to it) is what an
    // interrupted compaction had not removed yet.
    let start = files
        .iter()
        .rposition(|(_, kind, _)| *kind == FileKind::Base)
        .unwrap_or(0);
    let base_seq = files
        .get(start)
        .filter(|(_, kind, _)| *kind == FileKind::Base)
        .map(|(seq, ..)| *seq);
    let mut leftovers: Vec<String> = unfinished;
    let mut kept = Vec::new();
    for (i, (seq, _, name)) in files.into_iter().enumerate() {
        let replaced = base_seq.is_some_and(|base| i < start || (i > start && seq <= base));
        if replaced {
            leftovers.push(name);
        } else {
            kept.push(name);
        }
    }
    if ctx.writable && !leftovers.is_empty() {
        for name in &leftovers {
            let path = ctx.dir.join(name);
            ctx.vfs
                .remove_file(&path)
                .map_err(|e| LogError::io("remove", path, e))?;
        }
        sync_dir(ctx, ctx.dir)?;
    }
    let segments = kept
        .iter()
        .map(|name| {
            Segment::open(ctx.vfs, ctx.dir, name, ctx.writable)
                .map_err(|e| LogError::io("open", ctx.dir.join(name), e))
        })
        .collect::<Result<_, _>>()?;
    Ok((segments, leftovers))
}

/// Verifies one segment: header, continuity with the previous one, every frame.
fn inspect(
    segment: &mut Segment,
    damage_shows: bool,
    is_last: bool,
    place: Place,
    next_seq: &mut Seq,
    on_txn: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
) -> Result<Outcome, Fault> {
    let name = segment.name().to_string();
    let named = segment::parse_name(&name);
    let bytes = segment.contents();
    let whole = |reason: String| Fault {
        offset: 0,
        seq: None,
        reason,
        txn_start: 0,
    };
    let header = match Header::decode(bytes) {
        Ok(header) => header,
        // A rollover killed before its header was complete (on disk or in the page cache):
        // nothing was ever written after the header, so nothing was acknowledged there.
        Err(_) if is_last && scan::nonzero_end(bytes, HEADER_BYTES) == HEADER_BYTES => {
            return Ok(Outcome::TornCreation);
        }
        Err(short) => return Err(whole(short.0.to_string())),
    };
    let Some((name_seq, kind)) = named else {
        unreachable!("recovery opens only files named as segments");
    };
    if name_seq != header.first_seq {
        return Err(whole(
            "file name differs from the first sequence number in its header".into(),
        ));
    }
    let is_base = kind == FileKind::Base;
    if is_base != segment::is_base(header.number) {
        return Err(whole(
            "file name and segment number disagree on whether it is a base".into(),
        ));
    }
    // First, or where a checkpoint taken right after a compaction resumes.
    if is_base && matches!(place, Place::After { .. }) {
        return Err(whole(
            "a base segment that is not the journal's first".into(),
        ));
    }
    match place {
        // `check_resume` checked the header against the segments before.
        Place::Resume { .. } => {}
        Place::First => *next_seq = header.first_seq,
        Place::After { number } if header.number != number => {
            return Err(whole(format!(
                "segment number {} follows segment number {}",
                header.number,
                number - 1
            )));
        }
        Place::After { .. } if header.first_seq != *next_seq => {
            return Err(whole(format!(
                "gap in sequence numbers: segment starts at {}, the previous one ended at {}",
                header.first_seq,
                *next_seq - 1
            )));
        }
        Place::After { .. } => {}
    }
    let number =
        u32::try_from(header.number).map_err(|_| whole("segment number too large".into()))?;
    let end = match place {
        Place::Resume { at } => scan::scan_segment_to_end(number, bytes, at, next_seq, on_txn)?,
        Place::First | Place::After { .. } => scan::scan_segment(number, bytes, next_seq, on_txn)?,
    };
    // A base holds one transaction, at its first sequence number, and is sealed.
    if is_base && (!matches!(end, End::Sealed { .. }) || *next_seq != header.first_seq + 1) {
        return Err(whole(
            "a base segment must hold exactly one transaction and be sealed".into(),
        ));
    }
    let outcome = match end {
        End::Sealed { data_end } => Outcome::Sealed {
            end: data_end + frame::frame_bytes(seal_body_bytes()),
        },
        End::Stopped {
            at, cut, invalid, ..
        } if !is_last => {
            return Err(Fault {
                offset: at,
                seq: Some(*next_seq),
                reason: format!(
                    "segment ends without a seal record ({}), but later segments exist",
                    invalid.unwrap_or("zeros")
                ),
                txn_start: cut,
            });
        }
        stopped @ End::Stopped { .. } => {
            tail_of_last(&name, bytes, stopped, *next_seq, damage_shows)?
        }
    };
    let data_end = match outcome {
        Outcome::Sealed { end } => end,
        Outcome::Open { tail, .. } => tail,
        Outcome::TornCreation => 0,
    };
    segment.set_recovered(header, data_end);
    Ok(outcome)
}

/// Decides whether the frames of the last segment end cleanly, in a torn tail, or in damage.
/// `stopped` is how its frames stopped (`End::Stopped`); `damage_shows`: a later record
/// that claims durability past the stop proves damage (not for a follower, which reads
/// while the writer writes).
fn tail_of_last(
    name: &str,
    bytes: &[u8],
    stopped: End,
    next_seq: Seq,
    damage_shows: bool,
) -> Result<Outcome, Fault> {
    let End::Stopped {
        at,
        cut,
        invalid,
        uncommitted,
    } = stopped
    else {
        unreachable!("only a segment whose frames stopped has a tail");
    };
    let dirty_end = scan::nonzero_end(bytes, at).max(at);
    if damage_shows && dirty_end > at {
        let claim = scan::durable_claim_after(bytes, at + frame::ALIGN_BYTES, dirty_end);
        if claim > at {
            return Err(Fault {
                offset: at,
                seq: Some(next_seq),
                reason: format!(
                    "{}, but a later record shows the segment had been synced through offset {claim}",
                    invalid.unwrap_or("record missing")
                ),
                txn_start: cut,
            });
        }
    }
    let torn = (dirty_end > cut).then(|| TornTail {
        segment: name.to_string(),
        offset: cut,
        bytes: dirty_end - cut,
        uncommitted_records: uncommitted,
    });
    Ok(Outcome::Open {
        tail: cut,
        dirty_end,
        torn,
    })
}

pub(crate) fn seal_body_bytes() -> u64 {
    frame::BODY_PREFIX_BYTES as u64 + 8
}

/// Keeps the valid prefix before `fault` in segment `i`, moves the damaged original and every
/// later segment aside. Returns the new tail and whether the last kept segment is sealed.
fn salvage(
    ctx: &Context<'_>,
    segments: &mut Vec<Segment>,
    i: usize,
    fault: &Fault,
    kept_through: Seq,
    report: &mut RecoveryReport,
) -> Result<(u64, bool), LogError> {
    if !ctx.writable {
        return Err(LogError::ReadOnly);
    }
    let aside = ctx.dir.join(format!("salvaged-{}", unix_nanos_now()));
    ctx.vfs
        .create_dir_all(&aside)
        .map_err(|e| LogError::io("create", &aside, e))?;
    let damaged_name = segments[i].name().to_string();
    let whole_segment = fault.txn_start < HEADER_BYTES;
    let first_dropped = if whole_segment { i } else { i + 1 };
    if !whole_segment {
        copy_aside(ctx, &mut segments[i], &aside)?;
        let bytes = segments[i].contents();
        let dirty_end = scan::nonzero_end(bytes, fault.txn_start);
        let path = ctx.dir.join(&damaged_name);
        segments[i]
            .zero(fault.txn_start, dirty_end)
            .map_err(|e| LogError::io("write", &path, e))?;
        segments[i]
            .sync(dirty_end)
            .map_err(|e| LogError::io("sync", &path, e))?;
    }
    let mut dropped = Vec::new();
    for segment in segments.drain(first_dropped..) {
        let from = ctx.dir.join(segment.name());
        let to = aside.join(segment.name());
        ctx.vfs
            .rename(&from, &to)
            .map_err(|e| LogError::io("rename", from, e))?;
        dropped.push(segment.name().to_string());
    }
    sync_dir(ctx, &aside)?;
    sync_dir(ctx, ctx.dir)?;
    report.salvage = Some(SalvageReport {
        segment: damaged_name,
        offset: fault.offset,
        seq: fault.seq,
        reason: fault.reason.clone(),
        kept_through,
        dropped_segments: dropped,
        moved_to: aside,
    });
    match segments.last_mut() {
        None => Ok((HEADER_BYTES, false)),
        Some(last) if whole_segment => Ok((last.published(), true)),
        Some(last) => {
            let tail = fault.txn_start;
            let header = Header::decode(last.contents()).map_err(|short| LogError::Corrupt {
                segment: last.name().to_string(),
                offset: 0,
                seq: None,
                reason: short.0.to_string(),
            })?;
            last.set_recovered(header, tail);
            Ok((tail, false))
        }
    }
}

/// Copies a segment, as it is, into the salvage directory.
fn copy_aside(ctx: &Context<'_>, segment: &mut Segment, aside: &Path) -> Result<(), LogError> {
    let to = aside.join(segment.name());
    let bytes = segment.contents();
    let copy = ctx
        .vfs
        .create_mapped(&to, bytes.len() as u64)
        .map_err(|e| LogError::io("create", &to, e))?;
    copy.write_at(0, bytes)
        .map_err(|e| LogError::io("write", &to, e))?;
    copy.sync(bytes.len() as u64)
        .map_err(|e| LogError::io("sync", &to, e))
}

fn sync_dir(ctx: &Context<'_>, dir: &Path) -> Result<(), LogError> {
    ctx.vfs
        .sync_dir(dir)
        .map_err(|e| LogError::io("sync directory", dir, e))
}
