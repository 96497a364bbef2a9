//! Compaction's base segment: the whole state at a cut C, as one transaction numbered C, in a
//! segment that replaces every segment before the cut.
//!
//! To every reader a base is a segment like the others (a header, frames, one transaction, a
//! Seal), with three differences:
//! - its file is `{C:020}.base`, so it never shares a name with the segment it replaces;
//! - its number is `BASE_NUMBER_FLAG | k`, k the last ordinary segment it replaces, so while old
//!   snapshots still read the replaced segments no location in the base names one of them,
//!   and the segment after it is number k + 1 as before;
//! - recovery starts from the newest base and removes whatever it replaced.
//!
//! A compaction goes through these steps on disk; a crash anywhere leaves either the journal
//! as it was (no base yet) or the base and leftovers that the next open removes:
//! 1. the base is written to `{C:020}.base.unfinished` and synced;
//! 2. renamed to `{C:020}.base`, and the directory synced: from here an open starts from it;
//! 3. once nothing reads them, the replaced segments and the previous base are removed, and
//!    the directory synced.
//!
//! The caller (the registry) writes the base's records and knows what they are; this module
//! knows only their framing and the journal's shape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::LogError;
use crate::frame;
use crate::journal::{Journal, read_lock, write_lock};
use crate::pace::{BACKGROUND_WRITE_BYTES_PER_S, Pace};
use crate::record::{Commit, Kind, PRINCIPAL_MAX_BYTES, Seal};
use crate::recovery::seal_body_bytes;
use crate::segment::{self, BASE_NUMBER_FLAG, HEADER_BYTES, Header, Segment};
use crate::{CommitPoint, Loc, Seq, lock, unix_nanos_now};

/// The suffix of a base still being written; an open removes such a file.
pub(crate) const UNFINISHED_SUFFIX: &str = ".base.unfinished";
/// Bytes of records a base writer gathers before it writes them (and writes back, at the
/// background pace).
const BATCH_BYTES: usize = 1 << 20;

/// Where a compaction may cut the journal: the end of a sealed ordinary segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// The last sequence number at or before the cut: the base holds the state right after it.
    pub seq: Seq,
    /// The number of the last segment the base replaces.
    pub segment: u64,
    /// Bytes on disk of what the base replaces (segments up to the cut, the previous base).
    pub replaced_bytes: u64,
    /// When the segment after the cut was created: every transaction up to the cut had
    /// committed by then.
    pub closed_unix_nanos: i64,
}

/// Bytes an Op frame with a payload of `payload_len` bytes takes in a segment.
pub fn op_frame_bytes(payload_len: usize) -> u64 {
    frame::frame_bytes((frame::BODY_PREFIX_BYTES + payload_len) as u64)
}

fn commit_frame_bytes(principal: &str) -> u64 {
    let body = frame::BODY_PREFIX_BYTES + 4 + 8 + 8 + 2 + principal.len();
    frame::frame_bytes(body as u64)
}

/// Where the records of a base go, computed without writing them: what
/// [`BaseWriter::push`] returns for the same records in the same order. Compaction writes a
/// base, then walks the same records again to point the index at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseLayout {
    number: u32,
    next: u64,
}

impl BaseLayout {
    /// The layout of the base for `cut`.
    pub fn new(cut: Cut) -> BaseLayout {
        let number = BASE_NUMBER_FLAG | cut.segment;
        debug_assert!(number <= u64::from(u32::MAX));
        BaseLayout {
            number: number as u32,
            next: HEADER_BYTES,
        }
    }

    /// The location of the next Op record, whose payload is `payload_len` bytes.
    pub fn push(&mut self, payload_len: usize) -> Result<Loc, LogError> {
        let body = frame::BODY_PREFIX_BYTES + payload_len;
        let loc = Loc {
            segment: self.number,
            offset: u32::try_from(self.next).map_err(|_| LogError::Compaction {
                reason: "the base is larger than 4 GiB".into(),
            })?,
            len: u32::try_from(body).map_err(|_| LogError::Compaction {
                reason: "a record larger than 4 GiB".into(),
            })?,
        };
        self.next += frame::frame_bytes(body as u64);
        Ok(loc)
    }
}

/// The segments a journal holds at one moment ([`Journal::live_segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSegments {
    base: Option<u64>,
    first_ordinary: u64,
}

impl LiveSegments {
    /// Whether `loc` lies in one of them.
    pub fn holds(&self, loc: Loc) -> bool {
        let number = u64::from(loc.segment);
        if segment::is_base(number) {
            self.base == Some(number)
        } else {
            number >= self.first_ordinary
        }
    }
}

/// What an installed base replaced, still mapped for readers of older snapshots until
/// [`Journal::remove_replaced`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The base's sequence number.
    pub seq: Seq,
    /// Where its records are.
    pub layout: BaseLayout,
    /// Its file name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// The files it replaced.
    pub replaced: Vec<String>,
}

impl Journal {
    /// The sequence number of the base the journal starts from (0 if it starts from nothing).
    pub fn base_seq(&self) -> Seq {
        let segments = read_lock(&self.segments);
        match segments.first() {
            Some(first) if segment::is_base(first.number()) => first.first_seq(),
            _ => 0,
        }
    }

    /// Seals the active segment if it holds a transaction, so that the end of the newest
    /// commit is a place a compaction may cut (a compaction that keeps no history).
    pub fn seal_active(&self) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly);
        }
        let mut writer = lock(&self.writer);
        let holds_a_txn = writer
            .active
            .as_ref()
            .is_some_and(|active| active.first_seq() < writer.next_seq);
        if holds_a_txn && !writer.active_sealed {
            self.roll(&mut writer)?;
        }
        Ok(())
    }

    /// The places where a compaction may cut: the end of every sealed ordinary segment after
    /// the base, oldest first.
    pub fn compaction_cuts(&self) -> Vec<Cut> {
        let segments = read_lock(&self.segments);
        let mut replaced_bytes = 0;
        let mut cuts = Vec::new();
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            replaced_bytes += segment.capacity();
            if segment::is_base(segment.number()) {
                continue;
            }
            cuts.push(Cut {
                seq: next.first_seq() - 1,
                segment: segment.number(),
                replaced_bytes,
                closed_unix_nanos: next.created_unix_nanos(),
            });
        }
        cuts
    }

    /// Starts writing the base for `cut`: `ops_frame_bytes` of Op frames (the sum of
    /// [`op_frame_bytes`] over the records to come) and a Commit by `principal`.
    pub fn begin_base(
        &self,
        cut: Cut,
        ops_frame_bytes: u64,
        principal: &str,
    ) -> Result<BaseWriter<'_>, LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly);
        }
        if principal.len() > PRINCIPAL_MAX_BYTES {
            return Err(LogError::PrincipalTooLong {
                len: principal.len(),
                max: PRINCIPAL_MAX_BYTES,
            });
        }
        self.check_cut(cut)?;
        let capacity = HEADER_BYTES
            + ops_frame_bytes
            + commit_frame_bytes(principal)
            + frame::frame_bytes(seal_body_bytes());
        let header = Header {
            number: BASE_NUMBER_FLAG | cut.segment,
            first_seq: cut.seq,
            capacity,
            created_unix_nanos: unix_nanos_now(),
        };
        let name = format!("{:020}{UNFINISHED_SUFFIX}", cut.seq);
        let path = self.dir.join(&name);
        // An earlier attempt that failed may have left one.
        let _ = self.vfs.remove_file(&path);
        let segment = Segment::create_named(&*self.vfs, &self.dir, name, header)
            .map_err(|e| LogError::io("create", &path, e))?;
        Ok(BaseWriter {
            journal: self,
            segment,
            cut,
            layout: BaseLayout::new(cut),
            tail: HEADER_BYTES,
            buf: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
            ops: 0,
            pace: Pace::new(BACKGROUND_WRITE_BYTES_PER_S),
        })
    }

    /// `cut` is still the end of a sealed ordinary segment after the base.
    fn check_cut(&self, cut: Cut) -> Result<(), LogError> {
        if self
            .compaction_cuts()
            .iter()
            .any(|c| c.seq == cut.seq && c.segment == cut.segment)
        {
            Ok(())
        } else {
            Err(LogError::Compaction {
                reason: format!(
                    "sequence number {} is no longer the end of a sealed segment after the base",
                    cut.seq
                ),
            })
        }
    }

    /// The segments the journal holds now, to tell a location in them from one in a
    /// segment a base replaced (which the next open will not have).
    pub fn live_segments(&self) -> LiveSegments {
        let segments = read_lock(&self.segments);
        let base = segments
            .first()
            .filter(|first| segment::is_base(first.number()))
            .map(|base| base.number());
        let first_ordinary = segments
            .iter()
            .find(|segment| !segment::is_base(segment.number()))
            .map_or(u64::MAX, |segment| segment.number());
        LiveSegments {
            base,
            first_ordinary,
        }
    }

    /// Files the last compaction replaced that are still on disk, waiting for
    /// [`Journal::remove_replaced`].
    pub fn replaced(&self) -> Vec<String> {
        read_lock(&self.replaced)
            .iter()
            .map(|segment| segment.name().to_string())
            .collect()
    }

    /// Removes the files the installed bases replaced, and syncs the directory. The caller
    /// makes sure nothing reads them any more (no snapshot before the base); a reader that
    /// still has them mapped keeps its map.
    pub fn remove_replaced(&self) -> Result<u64, LogError> {
        let _compaction = lock(&self.compaction);
        // Before the maps go: a reader that then misses a record sees the change.
        self.generation.fetch_add(1, Ordering::SeqCst);
        let replaced: Vec<Arc<Segment>> = std::mem::take(&mut *write_lock(&self.replaced));
        let mut freed = 0;
        for segment in &replaced {
            let path = self.dir.join(segment.name());
            freed += self.vfs.disk_usage(&path).unwrap_or(0);
            self.vfs
                .remove_file(&path)
                .map_err(|e| LogError::io("remove", &path, e))?;
        }
        if !replaced.is_empty() {
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("sync directory", &self.dir, e))?;
        }
        Ok(freed)
    }
}

/// A base being written ([`Journal::begin_base`]): Op records, one at a time, then
/// [`BaseWriter::install`]. Dropped unfinished, it leaves a file the next attempt or open
/// removes, and the journal as it was.
pub struct BaseWriter<'j> {
    journal: &'j Journal,
    segment: Segment,
    cut: Cut,
    layout: BaseLayout,
    /// Where `buf` goes in the file.
    tail: u64,
    buf: Vec<u8>,
    ops: u32,
    pace: Pace,
}

impl BaseWriter<'_> {
    /// Appends an Op record; returns where it is in the base.
    pub fn push(&mut self, payload: &[u8]) -> Result<Loc, LogError> {
        let loc = self.layout.push(payload.len())?;
        let start = frame::begin(&mut self.buf, self.cut.seq, Kind::Op);
        self.buf.extend_from_slice(payload);
        let len = frame::finish(&mut self.buf, start);
        debug_assert_eq!(
            (loc.offset as u64, loc.len),
            (self.tail + start as u64, len)
        );
        if u64::from(loc.offset) + frame::frame_bytes(u64::from(len)) > self.segment.capacity() {
            return Err(self.misjudged());
        }
        self.ops += 1;
        if self.buf.len() >= BATCH_BYTES {
            self.write_buf()?;
        }
        Ok(loc)
    }

    fn misjudged(&self) -> LogError {
        LogError::Compaction {
            reason: format!(
                "the base came out another size than its {} bytes",
                self.segment.capacity()
            ),
        }
    }

    fn write_buf(&mut self) -> Result<(), LogError> {
        let path = self.journal.dir.join(self.segment.name());
        let end = self.tail + self.buf.len() as u64;
        self.segment
            .write(self.tail, &self.buf)
            .map_err(|e| LogError::io("write", &path, e))?;
        // Out to the device a batch at a time, so the sync at the install is short and the
        // journal's commits never queue behind a whole base.
        self.segment
            .write_back(self.tail, end)
            .map_err(|e| LogError::io("write", &path, e))?;
        self.pace.wrote(end - self.tail);
        self.tail = end;
        self.buf.clear();
        Ok(())
    }

    /// Closes the base (a Commit by `principal`, a Seal), makes it durable and puts it in
    /// place of everything up to its cut: from here on an open starts from it, and readers
    /// find the records it holds. The replaced segments stay mapped (for snapshots older than
    /// the base) and on disk until [`Journal::remove_replaced`].
    pub fn install(mut self, principal: &str) -> Result<Installed, LogError> {
        let journal = self.journal;
        let _compaction = lock(&journal.compaction);
        journal.check_cut(self.cut)?;
        let start = frame::begin(&mut self.buf, self.cut.seq, Kind::Commit);
        Commit {
            principal,
            time_unix_nanos: unix_nanos_now(),
            op_count: self.ops,
            synced_through: 0,
        }
        .encode(&mut self.buf);
        frame::finish(&mut self.buf, start);
        let data_end = self.tail + self.buf.len() as u64;
        let commit = CommitPoint {
            seq: self.cut.seq,
            segment: self.segment.number(),
            commit_at: self.tail + start as u64,
            end: data_end,
            crc: u32::from_le_bytes(
                self.buf[start + 4..start + 8]
                    .try_into()
                    .expect("a frame header holds its CRC"),
            ),
        };
        let start = frame::begin(&mut self.buf, self.cut.seq, Kind::Seal);
        Seal { data_end }.encode(&mut self.buf);
        frame::finish(&mut self.buf, start);
        if self.tail + self.buf.len() as u64 != self.segment.capacity() {
            return Err(self.misjudged());
        }
        self.write_buf()?;
        let unfinished = journal.dir.join(self.segment.name());
        self.segment
            .sync(self.tail)
            .map_err(|e| LogError::io("sync", &unfinished, e))?;
        let name = segment::base_file_name(self.cut.seq);
        let path = journal.dir.join(&name);
        journal
            .vfs
            .rename(&unfinished, &path)
            .map_err(|e| LogError::io("rename", &unfinished, e))?;
        journal
            .vfs
            .sync_dir(&journal.dir)
            .map_err(|e| LogError::io("sync directory", &journal.dir, e))?;
        self.segment.set_name(name.clone());
        self.segment.publish(self.tail);
        let bytes = self.segment.capacity();
        let base = Arc::new(self.segment);
        let cut = self.cut.segment;
        let replaced_by_base =
            |segment: &Arc<Segment>| segment::is_base(segment.number()) || segment.number() <= cut;
        // Into `replaced` before out of `segments`: a reader looks in `segments` first and
        // `replaced` after, so it finds a record in one or the other at every moment.
        let gone: Vec<Arc<Segment>> = read_lock(&journal.segments)
            .iter()
            .filter(|segment| replaced_by_base(segment))
            .cloned()
            .collect();
        write_lock(&journal.replaced).extend(gone.iter().cloned());
        let mut segments = write_lock(&journal.segments);
        segments.retain(|segment| !replaced_by_base(segment));
        segments.insert(0, base);
        drop(segments);
        // A cut at the newest commit: its Commit record in the journal is now the base's,
        // where a checkpoint taken next resumes.
        let mut writer = lock(&journal.writer);
        if writer
            .last_commit
            .is_some_and(|last| last.seq == commit.seq)
        {
            writer.last_commit = Some(commit);
        }
        drop(writer);
        let replaced = gone.iter().map(|s| s.name().to_string()).collect();
        Ok(Installed {
            seq: self.cut.seq,
            layout: BaseLayout::new(self.cut),
            name,
            bytes,
            replaced,
        })
    }
}
