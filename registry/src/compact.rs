//! Compaction (DESIGN.md, "Retention and compaction"): the history older than the retention
//! window is replaced by a base segment holding the whole state at a cut C (log/src/base.rs),
//! online, while writers commit and readers read.
//!
//! A compaction goes in four steps, each made of short holds of the state's lock, so a commit
//! waits at most one hold:
//! 1. **Size**: the registry at C walked as a backup walks it, counting the bytes of its
//!    records (the base is preallocated to exactly that).
//! 2. **Write**: the same walk into the base, which is then installed (synced, renamed): from
//!    here on an open starts from it, and no read before C can start. With archiving on,
//!    the transactions it replaces are first copied to the archive.
//! 3. **Relocate**: the same walk once more, computing where each value's record landed in the
//!    base (the walk is deterministic, and nothing at or before C changes), pointing the
//!    index's version visible at C there: 256 keys per hold of the write lock, every record
//!    compared byte for byte with the one it replaces.
//! 4. **Release**, once no reader holds a snapshot older than C: the versions nothing can read
//!    any more are collected (in steps), and the replaced segments removed. Until then both
//!    stay, and an old snapshot reads exactly what it read before.
//!
//! Checkpoints name journal locations: the ones taken before the compaction are removed at 2,
//! and a new one is written after 4. A crash anywhere leaves the journal before the
//! compaction or after it (log/src/base.rs); the state is the same either way.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hivelog_index::{GcStats, NodeId, Seq};
use hivelog_log::{BaseLayout, BaseWriter, Cut, Loc, LogError, op_frame_bytes, unix_nanos_now};

use crate::backup::{Sink, layers_at, walk};
use crate::error::{Error, Result};
use crate::store::{Inner, Store, lock, read_state, write_state};
use crate::stored::Stored;

/// Default history window: the last million commits ...
pub const HISTORY_KEEP_COMMITS_DEFAULT: u64 = 1_000_000;
/// ... and the last week, whichever keeps more.
pub const HISTORY_KEEP_SECONDS_DEFAULT: u64 = 7 * 86_400;
/// Keys relocated per hold of the state's write lock.
const RELOCATE_STEP_KEYS: usize = 128;
/// Node slots collected at a time, in turns of at most GC_TURN at the state's write lock.
const GC_STEP_SLOTS: u32 = 64;
const GC_TURN: Duration = Duration::from_millis(1);
/// The pause between two holds of the state's write lock: about twice a hold, so a
/// compaction takes at most a third of the lock's time (and of a core: on the 2-core
/// development machine, holds 500 us apart still cut W2 to 35-45% while they lasted).
const PAUSE: Duration = Duration::from_millis(2);
/// A compaction by policy waits until what it would replace is at least this many segments...
const MIN_SEGMENTS: u64 = 4;
/// ... and this many times the size of the last base (writing the base then costs at most
/// half a byte per byte it frees).
const MIN_GAIN_OVER_BASE: u64 = 2;
/// Who the base's Commit record names.
const PRINCIPAL: &str = "SYSTEM";

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// The cut: the base holds the state right after it; it is now the oldest readable
    /// sequence number.
    pub seq: Seq,
    /// The base's size.
    pub base_bytes: u64,
    /// Keys and values the base holds.
    pub keys: u64,
    /// Values, every layer's.
    pub values: u64,
    /// Journal files the base replaced.
    pub replaced_files: Vec<String>,
    /// Bytes freed on disk (0 while `waiting_for_readers`).
    pub freed_bytes: u64,
    /// A reader holds a snapshot older than the cut: the replaced files stay until it is
    /// gone (a later compaction, the background compactor or the close removes them).
    pub waiting_for_readers: bool,
    /// Value versions and keys the index no longer needs, dropped.
    pub collected_versions: u64,
    /// The longest the compaction held the state's write lock at once (relocating a batch
    /// of keys, collecting a step): the longest a commit waited for it.
    pub longest_lock_hold: Duration,
    /// Time taken.
    pub elapsed: Duration,
}

/// Longest time between two looks at whether a compaction is due (a cut can leave the window
/// by time alone).
const LOOK_EVERY: Duration = Duration::from_secs(10);

/// The retention window and what a compaction left to do. Shared with the background thread,
/// which looks at the journal (holding a handle to the store) only when [`worth_a_look`]
/// says so.
///
/// [`worth_a_look`]: CompactionPolicy::worth_a_look
pub(crate) struct CompactionPolicy {
    /// Keep at least this many of the newest commits...
    pub keep_commits: AtomicU64,
    /// ... and every commit of this many seconds back.
    pub keep_seconds: AtomicU64,
    /// Where the transactions a compaction replaces go first, if archiving is on.
    pub archive_dir: Option<PathBuf>,
    /// The size of the base the journal starts from (0: none).
    base_bytes: AtomicU64,
    /// The newest cut whose replaced segments (its own and those of earlier compactions)
    /// wait for readers of older snapshots.
    waiting: Mutex<Option<Seq>>,
    /// The journal's count of bytes appended since the open.
    appended: Arc<AtomicU64>,
    /// `appended` and the time at the last look, and the growth that calls for the next.
    looked: Mutex<Look>,
}

struct Look {
    appended: u64,
    at: Instant,
    growth: u64,
}

impl CompactionPolicy {
    /// The policy of an open whose journal holds `history_bytes` after its base (of
    /// `base_bytes`), appending `appended`.
    pub(crate) fn new(
        archive_dir: Option<PathBuf>,
        base_bytes: u64,
        appended: Arc<AtomicU64>,
        history_bytes: u64,
    ) -> CompactionPolicy {
        CompactionPolicy {
            keep_commits: AtomicU64::new(HISTORY_KEEP_COMMITS_DEFAULT),
            keep_seconds: AtomicU64::new(HISTORY_KEEP_SECONDS_DEFAULT),
            archive_dir,
            base_bytes: AtomicU64::new(base_bytes),
            waiting: Mutex::new(None),
            appended,
            looked: Mutex::new(Look {
                // As if the history since the base had been appended since a look at 0
                // bytes: an open of a long journal looks at once.
                appended: 0u64.wrapping_sub(history_bytes),
                at: Instant::now(),
                growth: 0,
            }),
        }
    }

    /// Whether the journal may hold something to compact: it grew enough since the last
    /// look, a while passed, or a compaction waits for readers.
    pub(crate) fn worth_a_look(&self) -> bool {
        let look = lock(&self.looked);
        let grown = self
            .appended
            .load(Ordering::Relaxed)
            .wrapping_sub(look.appended);
        grown >= look.growth || look.at.elapsed() >= LOOK_EVERY || lock(&self.waiting).is_some()
    }

    /// A look happened; the next one is worth it after `growth` more bytes.
    fn looked(&self, growth: u64) {
        *lock(&self.looked) = Look {
            appended: self.appended.load(Ordering::Relaxed),
            at: Instant::now(),
            growth,
        };
    }
}

/// The newest cut outside a window of `keep_commits` commits and `keep_seconds` seconds.
fn cut_outside(inner: &Inner, keep_commits: u64, keep_seconds: u64) -> Option<Cut> {
    // Not past what readers see: a transaction committed but not yet visible (its sync
    // outstanding) must not become the oldest readable state.
    let last = inner.visible();
    let now = unix_nanos_now();
    let keep_nanos = i64::try_from(keep_seconds.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
    inner
        .journal
        .compaction_cuts()
        .into_iter()
        .rev()
        .find(|cut| {
            cut.seq.saturating_add(keep_commits) <= last
                && cut.closed_unix_nanos.saturating_add(keep_nanos) <= now
        })
}

/// The cut the policy compacts at now, if any: outside the window, and worth its base.
fn due(inner: &Inner) -> Option<Cut> {
    let policy = &inner.compaction;
    policy.looked(next_look_growth(inner));
    let cut = cut_outside(
        inner,
        policy.keep_commits.load(Ordering::Relaxed),
        policy.keep_seconds.load(Ordering::Relaxed),
    )?;
    let base = policy.base_bytes.load(Ordering::Relaxed);
    let segment = inner.journal.segment_size_bytes();
    (cut.replaced_bytes >= (MIN_GAIN_OVER_BASE * base).max(MIN_SEGMENTS * segment)).then_some(cut)
}

/// What the journal must grow by before the policy looks again.
fn next_look_growth(inner: &Inner) -> u64 {
    let base = inner.compaction.base_bytes.load(Ordering::Relaxed);
    (MIN_GAIN_OVER_BASE * base).max(MIN_SEGMENTS * inner.journal.segment_size_bytes()) / 4
}

impl Store {
    /// Compacts the history outside the retention window (the parameters
    /// `HistoryKeepCommits` and `HistoryKeepSeconds`) now, whatever its size; `None` if no
    /// sealed segment lies wholly outside it. Writers and readers go on meanwhile.
    pub fn compact(&self) -> Result<Option<CompactReport>> {
        let (commits, seconds) = self.retention_window();
        self.compact_keeping(commits, seconds)
    }

    /// The retention window in force: (commits, seconds) of history kept.
    pub fn retention_window(&self) -> (u64, u64) {
        let policy = &self.inner().compaction;
        (
            policy.keep_commits.load(Ordering::Relaxed),
            policy.keep_seconds.load(Ordering::Relaxed),
        )
    }

    /// As [`Store::compact`], keeping `keep_commits` commits and `keep_seconds` seconds of
    /// history instead of the window in force (0 and 0: no history at all; the active
    /// segment is sealed so that everything up to the newest commit goes).
    pub fn compact_keeping(
        &self,
        keep_commits: u64,
        keep_seconds: u64,
    ) -> Result<Option<CompactReport>> {
        let inner = self.inner();
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        if (keep_commits, keep_seconds) == (0, 0) {
            // No history is kept: the active segment's commits may go too.
            inner.journal.seal_active()?;
        }
        let Some(cut) = cut_outside(inner, keep_commits, keep_seconds) else {
            // Nothing new to cut, but an earlier compaction's files may be free to go.
            release(inner)?;
            return Ok(None);
        };
        compact(inner, cut).map(Some)
    }
}

/// Runs a compaction at `cut`, then writes a checkpoint of the result.
pub(crate) fn compact(inner: &Inner, cut: Cut) -> Result<CompactReport> {
    let report = {
        let _turn = lock(&inner.maintenance);
        let started = Instant::now();
        // What an earlier compaction left waiting goes first, if its readers are gone; if
        // not, it waits on with this one's (a reader older than both keeps both).
        release_in_turn(inner)?;
        let state = read_state(&inner.state);
        let (layers, root) = (layers_at(&state, cut.seq), state.index.root());
        drop(state);
        let (mut report, layout) = write_base(inner, cut, root, &layers)?;
        crate::checkpoint::remove_all(inner);
        report.longest_lock_hold = relocate(inner, cut.seq, root, &layers, layout)?;
        *lock(&inner.compaction.waiting) = Some(cut.seq);
        let released = release_in_turn(inner)?;
        report.waiting_for_readers = released.is_none();
        if let Some(released) = released {
            report.freed_bytes = released.freed_bytes;
            report.collected_versions = released.collected.versions;
            report.longest_lock_hold = report.longest_lock_hold.max(released.longest_hold);
        }
        report.elapsed = started.elapsed();
        report
    };
    if inner.checkpoints_written() {
        crate::checkpoint::write(inner, true)?;
    }
    Ok(report)
}

/// Steps 1 and 2: sizes, writes and installs the base; afterwards no read before the cut
/// starts.
fn write_base(
    inner: &Inner,
    cut: Cut,
    root: NodeId,
    layers: &[(u16, String)],
) -> Result<(CompactReport, BaseLayout)> {
    let sized = walk(inner, root, 0, cut.seq, layers, Size::default())?;
    if let Some(dir) = &inner.compaction.archive_dir {
        let from = inner.journal.base_seq();
        if from < cut.seq {
            hivelog_log::archive::archive(&inner.journal, from, cut.seq, dir)?;
        }
    }
    let base = inner.journal.begin_base(cut, sized.sink.bytes, PRINCIPAL)?;
    let written = walk(
        inner,
        root,
        0,
        cut.seq,
        layers,
        Base {
            base,
            scratch: Vec::new(),
        },
    )?;
    assert_eq!(
        (written.keys, written.values),
        (sized.keys, sized.values),
        "two walks of one snapshot differ"
    );
    let installed = written.sink.base.install(PRINCIPAL)?;
    inner.retention.advance(cut.seq);
    inner
        .compaction
        .base_bytes
        .store(installed.bytes, Ordering::Relaxed);
    let report = CompactReport {
        seq: cut.seq,
        base_bytes: installed.bytes,
        keys: written.keys,
        values: written.values,
        replaced_files: installed.replaced,
        freed_bytes: 0,
        waiting_for_readers: false,
        collected_versions: 0,
        longest_lock_hold: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    Ok((report, installed.layout))
}

/// Step 3: points every version visible at the cut at its record in the base. Returns the
/// longest hold of the write lock.
fn relocate(
    inner: &Inner,
    at: Seq,
    root: NodeId,
    layers: &[(u16, String)],
    layout: BaseLayout,
) -> Result<Duration> {
    let sink = Relocate {
        inner,
        layout,
        at,
        scratch: Vec::new(),
        key: Vec::new(),
        batch: Vec::new(),
        moved: 0,
        longest_hold: Duration::ZERO,
    };
    let mut walked = walk(inner, root, 0, at, layers, sink)?;
    walked.sink.apply()?;
    if walked.sink.moved != walked.values {
        return Err(Error::Log(LogError::Compaction {
            reason: format!(
                "{} of the {} values at the cut were relocated",
                walked.sink.moved, walked.values
            ),
        }));
    }
    Ok(walked.sink.longest_hold)
}

/// What a release did.
pub(crate) struct Released {
    freed_bytes: u64,
    collected: GcStats,
    longest_hold: Duration,
}

/// Step 4, if no reader holds a snapshot older than the waiting cut: collects what nothing
/// reads any more and removes the replaced segments. `None` while readers hold them. Never
/// beside a compaction (its turn is the maintenance lock): one that is relocating still has
/// readers looking in the segments its base replaced.
pub(crate) fn release(inner: &Inner) -> Result<Option<Released>> {
    let _turn = lock(&inner.maintenance);
    release_in_turn(inner)
}

/// [`release`], by the holder of the maintenance lock.
fn release_in_turn(inner: &Inner) -> Result<Option<Released>> {
    let mut waiting = lock(&inner.compaction.waiting);
    let Some(cut) = *waiting else {
        return Ok(Some(Released {
            freed_bytes: 0,
            collected: GcStats::default(),
            longest_hold: Duration::ZERO,
        }));
    };
    if inner
        .retention
        .oldest_pinned()
        .is_some_and(|pinned| pinned < cut)
    {
        return Ok(None);
    }
    let (collected, longest_hold) = collect(inner, cut);
    let freed_bytes = inner.journal.remove_replaced()?;
    *waiting = None;
    Ok(Some(Released {
        freed_bytes,
        collected,
        longest_hold,
    }))
}

/// Drops, in steps between transactions, the versions no read at or after `horizon` sees.
/// Returns what went, and the longest hold of the write lock.
fn collect(inner: &Inner, horizon: Seq) -> (GcStats, Duration) {
    let (mut cursor, mut stats) = (None, GcStats::default());
    let mut longest = Duration::ZERO;
    loop {
        inner.yield_to_committers();
        let mut state = write_state(&inner.state);
        let held = Instant::now();
        // A restore lets the lock go between its steps: collect only between transactions.
        // A turn ends after GC_TURN: a slot's cost grows with its history (after ten
        // overwrites of every value, 1,024 slots took 28 ms).
        let mut done = false;
        while !done && !state.index.in_transaction() && held.elapsed() < GC_TURN {
            done =
                state
                    .index
                    .collect_garbage_step(horizon, &mut cursor, GC_STEP_SLOTS, &mut stats);
        }
        drop(state);
        longest = longest.max(held.elapsed());
        if done {
            return (stats, longest);
        }
        let_writers_in();
    }
}

/// Is a compaction due by the policy? Run it (from the background thread), or finish what
/// one left waiting for readers.
pub(crate) fn background_turn(inner: &Inner) {
    // A failure (a full disk) is retried at the next turn; the journal holds everything.
    if let Some(cut) = due(inner) {
        let _ = compact(inner, cut);
    } else if lock(&inner.compaction.waiting).is_some() {
        let _ = release(inner);
    }
}

/// Between two holds of the state's write lock: the lock is not fair, and a thread that
/// takes it again at once can keep waiting committers out for many holds in a row.
fn let_writers_in() {
    std::thread::sleep(PAUSE);
}

/// Counts the bytes of the records.
#[derive(Default)]
struct Size {
    bytes: u64,
    scratch: Vec<u8>,
}

impl Sink for Size {
    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        self.scratch.clear();
        encode(&mut self.scratch);
        self.bytes += op_frame_bytes(self.scratch.len());
        Ok(())
    }

    fn value(&mut self, _stored: Stored, payload: &[u8]) -> Result<()> {
        self.bytes += op_frame_bytes(payload.len());
        Ok(())
    }
}

/// Writes the records into the base.
struct Base<'j> {
    base: BaseWriter<'j>,
    scratch: Vec<u8>,
}

impl Sink for Base<'_> {
    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        self.scratch.clear();
        encode(&mut self.scratch);
        self.base.push(&self.scratch)?;
        Ok(())
    }

    fn value(&mut self, _stored: Stored, payload: &[u8]) -> Result<()> {
        self.base.push(payload)?;
        Ok(())
    }
}

/// Where each value's record is in the base; applied to the index a batch of keys at a time.
struct Relocate<'a> {
    inner: &'a Inner,
    layout: BaseLayout,
    at: Seq,
    scratch: Vec<u8>,
    /// The current key's values: (where the record was, where it is in the base).
    key: Vec<(Loc, Loc)>,
    batch: Vec<(NodeId, Vec<(Loc, Loc)>)>,
    moved: u64,
    longest_hold: Duration,
}

impl Relocate<'_> {
    fn apply(&mut self) -> Result<()> {
        self.inner.yield_to_committers();
        let mut state = write_state(&self.inner.state);
        let held = Instant::now();
        for (node, moves) in self.batch.drain(..) {
            let mut found = 0;
            state
                .index
                .relocate_values_at(node, self.at, |stored: &mut Stored| {
                    if let Some(&(_, to)) = moves.iter().find(|(from, _)| *from == stored.loc) {
                        stored.loc = to;
                        found += 1;
                    }
                });
            self.moved += found;
        }
        drop(state);
        self.longest_hold = self.longest_hold.max(held.elapsed());
        Ok(())
    }
}

impl Sink for Relocate<'_> {
    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        self.scratch.clear();
        encode(&mut self.scratch);
        self.layout.push(self.scratch.len())?;
        Ok(())
    }

    fn value(&mut self, stored: Stored, payload: &[u8]) -> Result<()> {
        let to = self.layout.push(payload.len())?;
        // The base must hold this very record there: a walk that came out differently would
        // point readers at other bytes.
        let same = self
            .inner
            .journal
            .with_op(to, |written| written == payload)
            .unwrap_or(false);
        if !same {
            return Err(Error::Log(LogError::Compaction {
                reason: format!(
                    "the base's record at offset {} is not the value it replaces",
                    to.offset
                ),
            }));
        }
        self.key.push((stored.loc, to));
        Ok(())
    }

    fn key_done(&mut self, node: NodeId) -> Result<()> {
        if !self.key.is_empty() {
            self.batch.push((node, std::mem::take(&mut self.key)));
        }
        if self.batch.len() >= RELOCATE_STEP_KEYS {
            self.apply()?;
            let_writers_in();
        }
        Ok(())
    }
}
