//! The journal: a directory of segments, one writer, any number of readers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::sync::ShardedLock;

use crate::error::LogError;
use crate::frame;
use crate::group_commit::GroupCommit;
use crate::record::{Kind, Mark, Seal};
use crate::recovery::{self, RecoveryReport};
use crate::scan::{self, End};
use crate::segment::{HEADER_BYTES, Header, Segment};
use crate::txn::TxnBuilder;
use crate::vfs::{LockGuard, OsVfs, Vfs};
use crate::{
    CommitPoint, Loc, Rejected, Resume, SealedSegment, Seq, TxnView, lock, unix_nanos_now,
};

/// Smallest segment the journal accepts.
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 64 * 1024;
/// Largest `segment_size_bytes` a journal may be configured with.
pub const SEGMENT_SIZE_OPTION_MAX_BYTES: u64 = 1 << 30;
/// Largest segment, which only a segment sized to one large transaction (the restore of a big
/// subtree) reaches: offsets inside a segment are 32-bit, so it ends below 4 GiB.
pub const SEGMENT_SIZE_MAX_BYTES: u64 = (4 << 30) - (1 << 20);
/// Default segment size.
pub const SEGMENT_SIZE_DEFAULT_BYTES: u64 = 64 << 20;
/// Highest segment number: a record's location names its segment in 32 bits.
pub const SEGMENTS_MAX: u32 = (crate::segment::BASE_NUMBER_FLAG - 1) as u32;
/// Longest interval between syncs under [`SyncPolicy::Interval`].
pub const SYNC_INTERVAL_MAX_MS: u64 = 60_000;

const JOURNAL_DIR: &str = "journal";
const LOCK_FILE: &str = "lock";

/// When commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every commit is durable before it returns; concurrent committers share one sync.
    Always,
    /// A background thread syncs every `ms` milliseconds; a power failure loses at most that.
    Interval {
        /// Milliseconds between syncs.
        ms: u64,
    },
    /// Only sealing a segment and closing the journal sync. Fastest; a power failure can lose
    /// any commit since the last seal.
    Never,
}

/// How to open a journal.
#[derive(Clone)]
pub struct JournalOptions {
    /// Capacity of each segment file.
    pub segment_size_bytes: u64,
    /// When commits reach the disk.
    pub sync: SyncPolicy,
    /// Open without writing anything; takes a shared lock.
    pub read_only: bool,
    /// With `read_only`: take no lock at all, and follow the transactions the store's writer
    /// (another process) commits, through [`Journal::follow`].
    pub follow: bool,
    /// On corruption keep the valid prefix and move the rest aside instead of failing.
    pub salvage: bool,
    /// Resume after a checkpoint's transaction: the records up to it are not read back (the
    /// caller has their state) and only checked where the checkpoint says they end. If the
    /// journal does not match, the open fails with [`LogError::ResumeRejected`] having
    /// written nothing.
    pub resume: Option<crate::Resume>,
    /// The file system (the real one unless a test substitutes a simulated one).
    pub vfs: Arc<dyn Vfs>,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_size_bytes: SEGMENT_SIZE_DEFAULT_BYTES,
            sync: SyncPolicy::Always,
            read_only: false,
            follow: false,
            salvage: false,
            resume: None,
            vfs: Arc::new(OsVfs),
        }
    }
}

/// Checks a segment size: what `segment_size_bytes` may be set to.
pub fn check_segment_size(size: u64) -> Result<(), LogError> {
    if !(SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_OPTION_MAX_BYTES).contains(&size) {
        return Err(LogError::InvalidOption {
            name: "segment_size_bytes",
            value: size,
            reason: "must be between 64 KiB and 1 GiB",
        });
    }
    if !size.is_multiple_of(frame::ALIGN_BYTES) {
        return Err(LogError::InvalidOption {
            name: "segment_size_bytes",
            value: size,
            reason: "must be a multiple of 8",
        });
    }
    Ok(())
}

/// Checks a sync policy (an interval's length).
pub fn check_sync_policy(policy: SyncPolicy) -> Result<(), LogError> {
    if let SyncPolicy::Interval { ms } = policy
        && (ms == 0 || ms > SYNC_INTERVAL_MAX_MS)
    {
        return Err(LogError::InvalidOption {
            name: "sync_interval_ms",
            value: ms,
            reason: "must be between 1 and 60000",
        });
    }
    Ok(())
}

impl SyncPolicy {
    /// As one word, for an atomic: 0 never, u64::MAX always, else the interval.
    fn encode(self) -> u64 {
        match self {
            SyncPolicy::Never => 0,
            SyncPolicy::Always => u64::MAX,
            SyncPolicy::Interval { ms } => {
                debug_assert!((1..=SYNC_INTERVAL_MAX_MS).contains(&ms));
                ms
            }
        }
    }

    fn decode(word: u64) -> SyncPolicy {
        match word {
            0 => SyncPolicy::Never,
            u64::MAX => SyncPolicy::Always,
            ms => SyncPolicy::Interval { ms },
        }
    }
}

impl JournalOptions {
    fn validate(&self) -> Result<(), LogError> {
        check_segment_size(self.segment_size_bytes)?;
        check_sync_policy(self.sync)?;
        if self.follow && !self.read_only {
            return Err(LogError::InvalidOption {
                name: "follow",
                value: 1,
                reason: "a follower reads only: it needs read_only",
            });
        }
        if self.salvage && self.read_only {
            return Err(LogError::InvalidOption {
                name: "salvage",
                value: 1,
                reason: "salvage rewrites the journal and needs a writable open",
            });
        }
        Ok(())
    }
}

/// The writer's state; the mutex around it is the writer lock.
pub(crate) struct Writer {
    pub active: Option<Arc<Segment>>,
    pub active_sealed: bool,
    /// Where the next frame goes in the active segment.
    pub tail: u64,
    pub next_seq: Seq,
    /// The transaction being built, framed, ready to write at the tail.
    pub buf: Vec<u8>,
    /// The last committed transaction's Commit record.
    pub last_commit: Option<CommitPoint>,
    wrote_since_mark: bool,
    closed: bool,
}

struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// The interval, which `set_sync_policy` may change while it runs.
    interval_ms: Arc<AtomicU64>,
    handle: JoinHandle<()>,
}

/// An append-only, memory-mapped journal of transactions.
pub struct Journal {
    pub(crate) dir: PathBuf,
    pub(crate) vfs: Arc<dyn Vfs>,
    /// The capacity of a new ordinary segment; may change while the journal is open.
    segment_size_bytes: AtomicU64,
    /// The sync policy, encoded (`SyncPolicy::encode`); may change while the journal is open.
    sync: AtomicU64,
    pub(crate) read_only: bool,
    pub(crate) writer: Mutex<Writer>,
    /// The journal in order: the base it starts from (if any), then ordinary segments.
    pub(crate) segments: ShardedLock<Vec<Arc<Segment>>>,
    /// What installed bases replaced: still read by snapshots older than the base, and on
    /// disk, until `remove_replaced`.
    pub(crate) replaced: ShardedLock<Vec<Arc<Segment>>>,
    /// Held by a base's install and by `remove_replaced`, so the two never interleave.
    pub(crate) compaction: Mutex<()>,
    /// Counts `remove_replaced` calls (see [`Journal::generation`]).
    pub(crate) generation: AtomicU64,
    pub(crate) group: Arc<GroupCommit>,
    syncer: Mutex<Option<Syncer>>,
    /// Bytes of transactions appended since the open.
    pub(crate) appended: Arc<AtomicU64>,
    report: RecoveryReport,
    _lock: Box<dyn LockGuard>,
}

/// A segment as `stats` and `verify` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File name.
    pub name: String,
    /// Position in the journal.
    pub number: u64,
    /// Sequence number of its first transaction.
    pub first_seq: Seq,
    /// Bytes of frames (and header) in use.
    pub used_bytes: u64,
    /// File size.
    pub capacity_bytes: u64,
    /// Allocated on disk.
    pub disk_bytes: u64,
}

impl Journal {
    /// Opens (or, unless read-only, creates) the journal of the store in `store_dir`, verifying
    /// every record and handing each committed transaction, in order, to `replay`.
    ///
    /// `replay` may reject a transaction (its payload does not decode); the open then fails as
    /// for any other corruption, naming the record.
    pub fn open(
        store_dir: &Path,
        options: JournalOptions,
        replay: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
    ) -> Result<Journal, LogError> {
        options.validate()?;
        let vfs = options.vfs.clone();
        let dir = store_dir.join(JOURNAL_DIR);
        if options.read_only {
            if vfs.list_dir(&dir).is_err() {
                return Err(LogError::NotFound(store_dir.to_path_buf()));
            }
        } else {
            vfs.create_dir_all(&dir)
                .map_err(|e| LogError::io("create", &dir, e))?;
        }
        let lock_path = store_dir.join(LOCK_FILE);
        // A follower takes no lock: the writer it follows holds the store's.
        let store_lock: Box<dyn LockGuard> = if options.follow {
            Box::new(NoLock)
        } else {
            vfs.try_lock(&lock_path, !options.read_only)
                .map_err(|e| LogError::io("lock", &lock_path, e))?
                .ok_or_else(|| LogError::Locked {
                    path: store_dir.to_path_buf(),
                    lock: lock_path.clone(),
                })?
        };
        let recovered = recovery::recover(
            &recovery::Context {
                vfs: &*vfs,
                dir: &dir,
                writable: !options.read_only,
                salvage: options.salvage,
                follow: options.follow,
                resume: options.resume.as_ref(),
            },
            replay,
        )?;
        let segments: Vec<Arc<Segment>> = recovered.segments.into_iter().map(Arc::new).collect();
        let last_seq = recovered.next_seq - 1;
        let group = Arc::new(GroupCommit::new(last_seq));
        let journal = Journal {
            dir,
            vfs,
            segment_size_bytes: AtomicU64::new(options.segment_size_bytes),
            sync: AtomicU64::new(options.sync.encode()),
            read_only: options.read_only,
            writer: Mutex::new(Writer {
                active: segments.last().cloned(),
                active_sealed: recovered.last_sealed,
                tail: recovered.tail,
                next_seq: recovered.next_seq,
                buf: Vec::new(),
                last_commit: recovered.last_commit,
                wrote_since_mark: false,
                closed: false,
            }),
            segments: ShardedLock::new(segments),
            replaced: ShardedLock::new(Vec::new()),
            compaction: Mutex::new(()),
            generation: AtomicU64::new(0),
            group,
            syncer: Mutex::new(None),
            appended: Arc::new(AtomicU64::new(0)),
            report: recovered.report,
            _lock: store_lock,
        };
        if !journal.read_only {
            let mut writer = lock(&journal.writer);
            if writer.active.is_none() {
                journal.roll(&mut writer)?;
            }
            drop(writer);
            journal.set_sync_policy(options.sync)?;
        }
        Ok(journal)
    }

    /// For a journal opened with `follow`: reads what the store's writer has committed since
    /// the open (or the last call), verifying every record and handing each transaction to
    /// `replay`, and returns the last sequence number read. A transaction still being
    /// written, or a segment still being created, is left for a later call.
    pub fn follow(
        &self,
        replay: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
    ) -> Result<Seq, LogError> {
        assert!(self.read_only, "only a read-only journal follows a writer");
        let mut writer = lock(&self.writer);
        loop {
            let last = read_lock(&self.segments)
                .last()
                .cloned()
                .expect("an open journal has a segment");
            let corrupt = |offset, seq, reason| LogError::Corrupt {
                segment: last.name().to_string(),
                offset,
                seq,
                reason,
            };
            let bytes = last.mapping();
            let start = last.published().max(HEADER_BYTES);
            let mut next = writer.next_seq;
            let number = last.number() as u32;
            let tail = scan::scan_segment_from(number, bytes, start, Seq::MAX, &mut next, replay)
                .map_err(|fault| corrupt(fault.offset, fault.seq, fault.reason))?;
            writer.next_seq = next;
            match tail {
                scan::Tail::End(End::Stopped { cut, .. }) => {
                    last.publish(cut);
                    return Ok(next - 1);
                }
                scan::Tail::End(End::Sealed { data_end }) => {
                    last.publish(data_end + frame::frame_bytes(recovery::seal_body_bytes()));
                    let Some(successor) = self.successor(&last, next)? else {
                        return Ok(next - 1);
                    };
                    write_lock(&self.segments).push(Arc::new(successor));
                }
                scan::Tail::Reached { .. } => unreachable!("no sequence number exceeds Seq::MAX"),
            }
        }
    }

    /// The segment after `last` if its writer has created it (header written), for `follow`.
    fn successor(&self, last: &Segment, first_seq: Seq) -> Result<Option<Segment>, LogError> {
        let name = crate::segment::file_name(first_seq);
        let path = self.dir.join(&name);
        let mut segment = match Segment::open(&*self.vfs, &self.dir, &name, false) {
            Ok(segment) => segment,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(LogError::io("open", &path, error)),
        };
        // Still being created: its header (written after the file is sized) is not there yet.
        let Ok(header) = Header::decode(segment.contents()) else {
            return Ok(None);
        };
        if header.number != crate::segment::next_number(last.number())
            || header.first_seq != first_seq
        {
            return Err(LogError::Corrupt {
                segment: name,
                offset: 0,
                seq: Some(first_seq),
                reason: "the segment that follows a sealed one does not continue it".into(),
            });
        }
        segment.set_recovered(header, HEADER_BYTES);
        Ok(Some(segment))
    }

    /// The capacity of a new ordinary segment (a transaction larger than that gets one sized
    /// to it).
    pub fn segment_size_bytes(&self) -> u64 {
        self.segment_size_bytes.load(Ordering::Relaxed)
    }

    /// Changes the capacity of segments created from now on (checked as the option is).
    pub fn set_segment_size_bytes(&self, size: u64) -> Result<(), LogError> {
        check_segment_size(size)?;
        self.segment_size_bytes.store(size, Ordering::Relaxed);
        Ok(())
    }

    /// The sync policy in force.
    pub fn sync_policy(&self) -> SyncPolicy {
        SyncPolicy::decode(self.sync.load(Ordering::Acquire))
    }

    /// Changes the sync policy: commits that start from now on follow it (one already
    /// committing finishes under the old one). An interval policy runs a syncer thread; a
    /// change of interval takes effect at its next turn.
    pub fn set_sync_policy(&self, policy: SyncPolicy) -> Result<(), LogError> {
        check_sync_policy(policy)?;
        if self.read_only {
            self.sync.store(policy.encode(), Ordering::Release);
            return Ok(());
        }
        let mut syncer = lock(&self.syncer);
        match (policy, syncer.as_ref()) {
            (SyncPolicy::Interval { ms }, Some(running)) => {
                running.interval_ms.store(ms, Ordering::Relaxed);
                running.stop.1.notify_all();
            }
            (SyncPolicy::Interval { ms }, None) => {
                let started = start_syncer(self.group.clone(), ms)
                    .map_err(|e| LogError::io("start syncer thread for", &self.dir, e))?;
                *syncer = Some(started);
            }
            (SyncPolicy::Always | SyncPolicy::Never, _) => {
                if let Some(running) = syncer.take() {
                    stop_syncer(running);
                }
            }
        }
        // Stored last: from Always to Never, a committer that still sees Always syncs,
        // which is no harm.
        self.sync.store(policy.encode(), Ordering::Release);
        Ok(())
    }

    /// Starts a transaction. The returned builder holds the writer lock until it commits or
    /// is dropped (which abandons the transaction: nothing reaches the journal).
    pub fn begin(&self) -> Result<TxnBuilder<'_>, LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly);
        }
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| LogError::Poisoned("a writer panicked".into()))?;
        if let Some(why) = self.group.failure() {
            return Err(LogError::Poisoned(why));
        }
        if writer.closed {
            return Err(LogError::Poisoned("the journal is closed".into()));
        }
        if writer.active_sealed {
            self.roll(&mut writer)?;
        }
        writer.buf.clear();
        Ok(TxnBuilder::new(self, writer))
    }

    /// Seals the active segment (if any) and starts the next one. A failure leaves the disk in
    /// an unknown state, so it poisons the journal.
    pub(crate) fn roll(&self, writer: &mut MutexGuard<'_, Writer>) -> Result<(), LogError> {
        self.roll_to(writer, self.segment_size_bytes())
    }

    /// As `roll`, with a new segment of `capacity` bytes (larger than `segment_size_bytes`
    /// for a transaction that needs it).
    pub(crate) fn roll_to(
        &self,
        writer: &mut MutexGuard<'_, Writer>,
        capacity: u64,
    ) -> Result<(), LogError> {
        let result = self.roll_unpoisoned(writer, capacity);
        if let Err(error) = &result {
            self.group.fail(error.to_string());
        }
        result
    }

    fn roll_unpoisoned(&self, writer: &mut Writer, capacity: u64) -> Result<(), LogError> {
        debug_assert!((SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES).contains(&capacity));
        let previous = writer.active.clone();
        if let Some(active) = &previous
            && !writer.active_sealed
        {
            self.seal(writer, active)?;
        }
        let number = previous
            .as_ref()
            .map_or(0, |p| crate::segment::next_number(p.number()));
        if number > u64::from(SEGMENTS_MAX) {
            // Locations name a segment in 32 bits.
            return Err(LogError::TooManySegments { max: SEGMENTS_MAX });
        }
        let header = Header {
            number,
            first_seq: writer.next_seq,
            capacity,
            created_unix_nanos: unix_nanos_now(),
        };
        let path = self.dir.join(crate::segment::file_name(header.first_seq));
        let segment = Segment::create(&*self.vfs, &self.dir, header)
            .map_err(|e| LogError::io("create", &path, e))?;
        // A new file exists only once its directory entry is durable.
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("sync directory", &self.dir, e))?;
        let segment = Arc::new(segment);
        write_lock(&self.segments).push(segment.clone());
        writer.active = Some(segment);
        writer.active_sealed = false;
        writer.tail = HEADER_BYTES;
        Ok(())
    }

    /// Writes a Seal record after the last transaction and syncs the segment: from here on it
    /// is complete, and everything in it is durable.
    fn seal(&self, writer: &mut Writer, active: &Segment) -> Result<(), LogError> {
        let data_end = writer.tail;
        self.append_synced(writer, active, Kind::Seal, |buf| {
            Seal { data_end }.encode(buf)
        })?;
        writer.active_sealed = true;
        self.group.note_durable(writer.next_seq - 1);
        Ok(())
    }

    /// Appends one Seal or Mark record (carrying the last committed sequence number) at the
    /// tail, publishes it and syncs the segment through it. The space is always there: every
    /// commit leaves room for both (see txn.rs).
    fn append_synced(
        &self,
        writer: &mut Writer,
        active: &Segment,
        kind: Kind,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), LogError> {
        let mut record = Vec::new();
        let start = frame::begin(&mut record, writer.next_seq - 1, kind);
        encode(&mut record);
        frame::finish(&mut record, start);
        let path = self.dir.join(active.name());
        active
            .write(writer.tail, &record)
            .map_err(|e| LogError::io("write", &path, e))?;
        let end = writer.tail + record.len() as u64;
        active.publish(end);
        writer.tail = end;
        active.sync(end).map_err(|e| LogError::io("sync", &path, e))
    }

    /// Calls `read` with the payload of the Op record at `loc`; `None` if `loc` names no
    /// published record.
    pub fn with_op<R>(&self, loc: Loc, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if let Some(payload) = op_payload(&read_lock(&self.segments), loc) {
            return Some(read(payload));
        }
        replaced_payload(&read_lock(&self.replaced), loc).map(read)
    }

    /// The segments as they are now, for a reader about to read many records (a backup):
    /// reading through them takes no lock per record. Records published later, in a segment
    /// created since, are not in them.
    pub fn records(&self) -> Records {
        Records {
            segments: read_lock(&self.segments).clone(),
            replaced: read_lock(&self.replaced).clone(),
        }
    }

    /// Hands every committed transaction with a sequence number in `[from, to]` to `visit`,
    /// verifying each record again as it goes. A journal that starts from a base hands its
    /// transaction over as the first (the whole state at the base's sequence number).
    pub fn for_each_txn(
        &self,
        from: Seq,
        to: Seq,
        visit: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
    ) -> Result<(), LogError> {
        let segments: Vec<Arc<Segment>> = read_lock(&self.segments).clone();
        let start = segments
            .iter()
            .rposition(|segment| segment.first_seq() <= from.max(1))
            .unwrap_or(0);
        for (i, segment) in segments.iter().enumerate().skip(start) {
            if segment.first_seq() > to {
                break;
            }
            let Some(bytes) = segment.bytes(0, segment.published()) else {
                continue;
            };
            let mut next_seq = segment.first_seq();
            let number = segment.number() as u32;
            let mut in_range = |txn: &TxnView<'_>| {
                if (from..=to).contains(&txn.seq) {
                    visit(txn)
                } else {
                    Ok(())
                }
            };
            let corrupt = |offset, seq, reason| LogError::Corrupt {
                segment: segment.name().to_string(),
                offset,
                seq,
                reason,
            };
            match scan::scan_segment(number, bytes, &mut next_seq, &mut in_range) {
                Err(fault) => return Err(corrupt(fault.offset, fault.seq, fault.reason)),
                Ok(End::Stopped { at, invalid, .. }) if i + 1 < segments.len() => {
                    let reason = format!(
                        "segment ends without a seal record ({})",
                        invalid.unwrap_or("zeros")
                    );
                    return Err(corrupt(at, Some(next_seq), reason));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// A cursor at transaction `next_seq`, for [`read_tail`](Journal::read_tail): the
    /// segment that holds it is scanned (and verified) up to it. `next_seq` may be one past
    /// the last committed transaction (a cursor at the end).
    pub fn tail_cursor(&self, next_seq: Seq) -> Result<TailCursor, LogError> {
        let base = self.base_seq();
        if base > 0 && next_seq <= base {
            return Err(LogError::Compacted {
                seq: next_seq,
                oldest: base + 1,
            });
        }
        let first = {
            let segments = read_lock(&self.segments);
            let segment = segments
                .iter()
                .rev()
                .find(|segment| segment.first_seq() <= next_seq.max(1))
                .or(segments.first())
                .expect("a journal has a segment");
            TailCursor {
                next_seq: segment.first_seq(),
                segment: segment.number(),
                offset: HEADER_BYTES,
            }
        };
        let mut cursor = first;
        self.read_tail(&mut cursor, next_seq.saturating_sub(1), &mut |_| Ok(()))?;
        Ok(cursor)
    }

    /// Hands the committed transactions from `cursor` through `last` to `visit`, in order,
    /// verifying every record, and moves the cursor past them. Reads only what is already
    /// in the map: a reader that follows the journal calls it again as transactions commit,
    /// and each call starts where the last stopped. On an error the cursor is unchanged.
    pub fn read_tail(
        &self,
        cursor: &mut TailCursor,
        last: Seq,
        visit: &mut dyn FnMut(&TxnView<'_>) -> Result<(), Rejected>,
    ) -> Result<(), LogError> {
        let segments: Vec<Arc<Segment>> = read_lock(&self.segments).clone();
        let Some(mut i) = segments
            .iter()
            .position(|segment| segment.number() == cursor.segment)
        else {
            return Err(LogError::Corrupt {
                segment: format!("segment number {}", cursor.segment),
                offset: cursor.offset,
                seq: Some(cursor.next_seq),
                reason: "the segment a reader was in is no longer in the journal".into(),
            });
        };
        let mut at = *cursor;
        loop {
            let segment = &segments[i];
            let corrupt = |offset, seq, reason| LogError::Corrupt {
                segment: segment.name().to_string(),
                offset,
                seq,
                reason,
            };
            let bytes = segment.bytes(0, segment.published()).unwrap_or(&[]);
            let number = segment.number() as u32;
            let tail =
                scan::scan_segment_from(number, bytes, at.offset, last, &mut at.next_seq, visit)
                    .map_err(|fault| corrupt(fault.offset, fault.seq, fault.reason))?;
            match tail {
                scan::Tail::Reached { at: offset } => {
                    at.offset = offset;
                    break;
                }
                scan::Tail::End(End::Sealed { data_end }) if i + 1 < segments.len() => {
                    debug_assert!(data_end <= segment.published());
                    i += 1;
                    at.segment = segments[i].number();
                    at.offset = HEADER_BYTES;
                }
                // The newest segment, sealed before its successor joined the list: the next
                // call finds the successor.
                scan::Tail::End(End::Sealed { data_end }) => {
                    at.offset = data_end;
                    break;
                }
                scan::Tail::End(End::Stopped { cut, .. }) if i + 1 == segments.len() => {
                    at.offset = cut;
                    break;
                }
                scan::Tail::End(End::Stopped {
                    at: offset,
                    invalid,
                    ..
                }) => {
                    let reason = format!(
                        "segment ends without a seal record ({})",
                        invalid.unwrap_or("zeros")
                    );
                    return Err(corrupt(offset, Some(at.next_seq), reason));
                }
            }
        }
        *cursor = at;
        Ok(())
    }

    /// Where an open could resume after the last committed transaction (`None` before the
    /// first): its Commit record and the sealed segments before the one holding it. The
    /// transaction need not be durable yet: a checkpoint syncs the journal before it is
    /// written.
    pub fn resume_point(&self) -> Option<Resume> {
        let writer = lock(&self.writer);
        let point = writer.last_commit?;
        let sealed = read_lock(&self.segments)
            .iter()
            .take_while(|segment| segment.number() != point.segment)
            .map(|segment| SealedSegment {
                number: segment.number(),
                first_seq: segment.first_seq(),
                end: segment.published(),
            })
            .collect();
        Some(Resume { point, sealed })
    }

    /// Changes whenever segments a base replaced are removed. A reader that copied a
    /// location out of its index, and then finds no record there, reads the index again if
    /// the generation changed meanwhile: the record moved to the base.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The last committed sequence number (0 for an empty journal).
    pub fn last_seq(&self) -> Seq {
        lock(&self.writer).next_seq - 1
    }

    /// The last sequence number known durable.
    pub fn durable_seq(&self) -> Seq {
        self.group.durable()
    }

    /// What the open's recovery found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The count of bytes of transactions appended since the open, shared: a thread that
    /// watches the journal's growth reads it without holding the journal.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    /// The file system the journal lives on (a checkpoint is written beside it).
    pub fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One entry per segment, in order.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        read_lock(&self.segments)
            .iter()
            .map(|segment| SegmentInfo {
                name: segment.name().to_string(),
                number: segment.number(),
                first_seq: segment.first_seq(),
                used_bytes: segment.published(),
                capacity_bytes: segment.capacity(),
                disk_bytes: self
                    .vfs
                    .disk_usage(&self.dir.join(segment.name()))
                    .unwrap_or(0),
            })
            .collect()
    }

    /// Makes every committed transaction durable (whatever the policy) and returns the last.
    pub fn sync(&self) -> Result<Seq, LogError> {
        self.group.sync_now()
    }

    /// Syncs everything, records how far the journal is durable, and releases the store.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        if let Some(syncer) = lock(&self.syncer).take() {
            stop_syncer(syncer);
        }
        if self.read_only {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        if writer.closed {
            return Ok(());
        }
        writer.closed = true;
        if let Some(why) = self.group.failure() {
            return Err(LogError::Poisoned(why));
        }
        self.group.sync_now()?;
        let Some(active) = writer.active.clone() else {
            return Ok(());
        };
        if !writer.wrote_since_mark || writer.active_sealed {
            return Ok(());
        }
        let synced_through = active.synced();
        self.append_synced(&mut writer, &active, Kind::Mark, |buf| {
            Mark { synced_through }.encode(buf)
        })
    }

    pub(crate) fn note_committed(&self, writer: &mut Writer) {
        writer.wrote_since_mark = true;
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Best effort: a caller that needs to know calls close().
        let _ = self.shutdown();
    }
}

fn stop_syncer(syncer: Syncer) {
    let (stop, wake) = &*syncer.stop;
    *lock(stop) = true;
    wake.notify_all();
    let _ = syncer.handle.join();
}

fn start_syncer(group: Arc<GroupCommit>, interval_ms: u64) -> std::io::Result<Syncer> {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let interval = Arc::new(AtomicU64::new(interval_ms));
    let thread_stop = stop.clone();
    let thread_interval = interval.clone();
    let handle = std::thread::Builder::new()
        .name("hivelog-syncer".into())
        .spawn(move || {
            let (stopped, wake) = &*thread_stop;
            let mut guard = lock(stopped);
            while !*guard {
                let ms = thread_interval.load(Ordering::Relaxed);
                guard = wake
                    .wait_timeout(guard, Duration::from_millis(ms))
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                if *guard {
                    break;
                }
                drop(guard);
                // A failure poisons the group; committers see it on their next commit.
                let _ = group.sync_now();
                guard = lock(stopped);
            }
        })?;
    Ok(Syncer {
        stop,
        interval_ms: interval,
        handle,
    })
}

/// A reader's place in the journal, between two transactions (see
/// [`Journal::read_tail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailCursor {
    /// The next transaction's sequence number.
    pub next_seq: Seq,
    /// The number of the segment the reader is in, and the offset in it where the next
    /// frame starts.
    segment: u64,
    offset: u64,
}

/// What a follower holds in place of the store lock.
struct NoLock;

impl LockGuard for NoLock {}

pub(crate) fn read_lock<T>(
    lock: &ShardedLock<T>,
) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn write_lock<T>(
    lock: &ShardedLock<T>,
) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The payload of the Op record at `loc` among `segments` (the journal in order), if they
/// hold a published one.
fn op_payload(segments: &[Arc<Segment>], loc: Loc) -> Option<&[u8]> {
    let number = u64::from(loc.segment);
    let ordinary = match segments.split_first()? {
        (base, _) if base.number() == number => return base.op_payload(loc.offset, loc.len),
        (base, rest) if crate::segment::is_base(base.number()) => rest,
        _ => segments,
    };
    let index = number.checked_sub(ordinary.first()?.number())?;
    let segment = ordinary.get(usize::try_from(index).ok()?)?;
    segment.op_payload(loc.offset, loc.len)
}

/// As [`op_payload`], among segments a base replaced (in no particular order).
fn replaced_payload(replaced: &[Arc<Segment>], loc: Loc) -> Option<&[u8]> {
    replaced
        .iter()
        .find(|segment| segment.number() == u64::from(loc.segment))?
        .op_payload(loc.offset, loc.len)
}

/// The journal's segments at one moment ([`Journal::records`]).
pub struct Records {
    segments: Vec<Arc<Segment>>,
    replaced: Vec<Arc<Segment>>,
}

impl Records {
    /// The payload of the Op record at `loc`; `None` if `loc` names no record published when
    /// these were taken.
    pub fn op(&self, loc: Loc) -> Option<&[u8]> {
        op_payload(&self.segments, loc).or_else(|| replaced_payload(&self.replaced, loc))
    }
}
