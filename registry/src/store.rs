//! The store: opening (journal replay into the index), options, sessions, snapshots, stats,
//! verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use hivelog_index::Index;
use hivelog_index::KeyId;
use hivelog_log::vfs::{OsVfs, Vfs};
use hivelog_log::{
    Journal, JournalOptions, LogError, RecoveryReport, SEGMENT_SIZE_DEFAULT_BYTES, Seq, SyncPolicy,
};

use crate::attrs::{ClassNames, KeyAttrs};
use crate::checkpoint::{CheckpointInfo, CheckpointPolicy, CheckpointReport, Loaded};
use crate::descriptors::Descriptors;
use crate::error::{Error, Result};
use crate::grants::Grants;
use crate::key::Key;
use crate::layers::{Layer, Layers};
use crate::links::LinkTargets;
use crate::parameters::Parameters;
use crate::path::{ClassesPath, Hive, KeyPath};
use crate::replay::Replayer;
use crate::retention::Pinned;
use crate::security::{Access, Caller, Identity, SYSTEM, Sddl, SecurityDescriptor};
use crate::stored::{Stored, VolatileValues};
use crate::txn::{Intent, Transaction};
use crate::value::{Value, ValueType};
use crate::watch::{StopPump, WATCH_QUEUE_DEPTH_DEFAULT, WATCH_QUEUE_DEPTH_MAX, Watches};
use crate::{reader, security};

/// A checkpoint every this many commits, by default.
pub const CHECKPOINT_EVERY_COMMITS_DEFAULT: u64 = 1_000_000;
/// A checkpoint every time the journal grew this much, by default.
/// (A crash, which leaves no checkpoint at close, then costs a replay of at most this much
/// journal at the next open: about a second at the replay rate W5 measured.)
pub const CHECKPOINT_EVERY_BYTES_DEFAULT: u64 = 256 << 20;

/// Largest value_size_max_bytes a store accepts.
pub const VALUE_SIZE_LIMIT_BYTES: u32 = 64 << 20;
/// Default largest value.
pub const VALUE_SIZE_DEFAULT_MAX_BYTES: u32 = 1 << 20;
/// The system principal: what a store acts as unless a session names another caller.
pub const SYSTEM_PRINCIPAL: &str = SYSTEM;

/// How to open a store.
#[derive(Clone)]
pub struct Options {
    /// When commits reach the disk. Default: every commit, before it returns.
    pub sync: SyncPolicy,
    /// Size of each journal segment file: SEGMENT_SIZE_MIN_BYTES (64 KiB) to
    /// SEGMENT_SIZE_OPTION_MAX_BYTES (1 GiB). A transaction larger than that gets a segment of
    /// its own, up to SEGMENT_SIZE_MAX_BYTES.
    pub segment_size_bytes: u64,
    /// Largest value data accepted.
    pub value_size_max_bytes: u32,
    /// Open without writing; takes a shared lock, so several readers may open at once.
    pub read_only: bool,
    /// With `read_only`: take no lock, and follow the store's writer (another process),
    /// reading its commits as they land (every FOLLOW_INTERVAL); watches report them.
    pub follow: bool,
    /// On corruption, keep the valid prefix of the journal and move the rest aside.
    pub salvage: bool,
    /// Apply a restore staged by [`Store::stage_restore`] (a writable open only). Default:
    /// yes; an open to cancel or replace the staged restore says no.
    pub apply_staged_restore: bool,
    /// Who the store handle acts as: its access is checked, and its principal is recorded in
    /// every commit (`HKCU` means `Users\<principal>`). Default: the system principal with
    /// every privilege. [`Store::session`] makes handles for other callers.
    pub caller: Caller,
    /// Events a watch's queue holds before the watch overflows: 1 to WATCH_QUEUE_DEPTH_MAX.
    pub watch_queue_depth: usize,
    /// An in-memory store with a persistence hook flushes after this many commits (0:
    /// only when asked).
    pub flush_every_commits: u64,
    /// ... and this many milliseconds after a change (0: only when asked), up to
    /// FLUSH_INTERVAL_MAX_MS.
    pub flush_interval_ms: u64,
    /// Load the newest checkpoint at open and write new ones (a writable store on disk).
    /// Default: yes. Without, every open replays the whole journal.
    pub checkpoints: bool,
    /// Write a checkpoint after this many commits since the last (0: not by count), up to
    /// 4294967295.
    pub checkpoint_every_commits: u64,
    /// ... or once the journal grew this many bytes since the last (0: not by size), up to
    /// 4294967295.
    pub checkpoint_every_bytes: u64,
    /// Compact the history outside the retention window in the background (a writable store
    /// on disk). Default: yes. [`Store::compact`] compacts on demand either way.
    pub compaction: bool,
    /// The retention window: keep at least this many of the newest commits, up to
    /// 4294967295 ...
    pub history_keep_commits: u64,
    /// ... and every commit of this many seconds back (whichever keeps more), up to
    /// 4294967295.
    pub history_keep_seconds: u64,
    /// With archiving on, a compaction first copies the transactions it replaces, as sealed
    /// segment files (`Store::archive`'s), into this directory.
    pub archive_dir: Option<PathBuf>,
    /// The file system; tests substitute a simulated one.
    pub vfs: Arc<dyn Vfs>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sync: SyncPolicy::Always,
            segment_size_bytes: SEGMENT_SIZE_DEFAULT_BYTES,
            value_size_max_bytes: VALUE_SIZE_DEFAULT_MAX_BYTES,
            read_only: false,
            follow: false,
            salvage: false,
            apply_staged_restore: true,
            caller: Caller::system(),
            watch_queue_depth: WATCH_QUEUE_DEPTH_DEFAULT,
            flush_every_commits: 0,
            flush_interval_ms: 0,
            checkpoints: true,
            checkpoint_every_commits: CHECKPOINT_EVERY_COMMITS_DEFAULT,
            checkpoint_every_bytes: CHECKPOINT_EVERY_BYTES_DEFAULT,
            compaction: true,
            history_keep_commits: crate::compact::HISTORY_KEEP_COMMITS_DEFAULT,
            history_keep_seconds: crate::compact::HISTORY_KEEP_SECONDS_DEFAULT,
            archive_dir: None,
            vfs: Arc::new(OsVfs),
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let max = self.value_size_max_bytes;
        if max > VALUE_SIZE_LIMIT_BYTES {
            return Err(Error::InvalidOption {
                name: "value_size_max_bytes",
                value: u64::from(max),
                reason: "must be at most VALUE_SIZE_LIMIT_BYTES (64 MiB)",
            });
        }
        if !(1..=WATCH_QUEUE_DEPTH_MAX).contains(&self.watch_queue_depth) {
            return Err(Error::InvalidOption {
                name: "watch_queue_depth",
                value: self.watch_queue_depth as u64,
                reason: "must be 1 to WATCH_QUEUE_DEPTH_MAX (1,048,576)",
            });
        }
        if self.flush_every_commits > u64::from(u32::MAX) {
            return Err(Error::InvalidOption {
                name: "flush_every_commits",
                value: self.flush_every_commits,
                reason: "must be at most 4294967295",
            });
        }
        for (name, value) in [
            ("checkpoint_every_commits", self.checkpoint_every_commits),
            ("checkpoint_every_bytes", self.checkpoint_every_bytes),
            ("history_keep_commits", self.history_keep_commits),
            ("history_keep_seconds", self.history_keep_seconds),
        ] {
            if value > u64::from(u32::MAX) {
                return Err(Error::InvalidOption {
                    name,
                    value,
                    reason: "must be at most 4294967295",
                });
            }
        }
        if self.flush_interval_ms > crate::parameters::FLUSH_INTERVAL_MAX_MS {
            return Err(Error::InvalidOption {
                name: "flush_interval_ms",
                value: self.flush_interval_ms,
                reason: "must be at most FLUSH_INTERVAL_MAX_MS (a day)",
            });
        }
        if u64::from(max) > self.segment_size_bytes / 2 {
            return Err(Error::InvalidOption {
                name: "value_size_max_bytes",
                value: u64::from(max),
                reason: "must be at most half of segment_size_bytes",
            });
        }
        Ok(())
    }

    fn journal(&self) -> JournalOptions {
        JournalOptions {
            segment_size_bytes: self.segment_size_bytes,
            sync: self.sync,
            read_only: self.read_only,
            follow: self.follow,
            salvage: self.salvage,
            resume: None,
            vfs: self.vfs.clone(),
        }
    }
}

/// Everything readers and the writer share under one lock: the index, and the tables its
/// entries refer to by id. One lock, so a read takes one lock.
pub(crate) struct State {
    pub index: Index<Stored, KeyAttrs>,
    pub descriptors: Descriptors,
    pub classes: ClassNames,
    pub layers: Layers,
    /// The data of values of volatile keys, which the journal never sees.
    pub volatile: VolatileValues,
    /// Whether any link key exists or existed: until one does, reads skip link resolution.
    pub links: bool,
    pub link_targets: LinkTargets,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            index: Index::new(),
            descriptors: Descriptors::new(),
            classes: ClassNames::default(),
            layers: Layers::new(),
            volatile: VolatileValues::default(),
            links: false,
            link_targets: LinkTargets::default(),
        }
    }
}

/// Shared by a store and every handle, transaction and snapshot made from it.
pub(crate) struct Inner {
    pub journal: Journal,
    pub state: ShardedLock<State>,
    /// The newest sequence number readers may see: applied, and durable if the policy says so.
    pub visible: AtomicU64,
    pub next_key_id: AtomicU64,
    /// Volatile keys take ids from their own range (top bit set): they are never journaled,
    /// so after a reopen the journal's ids must not collide with ids they had.
    pub next_volatile_id: AtomicU64,
    /// The value size limit in force (a parameter: see `parameters.rs`).
    pub value_size_max_bytes: AtomicU32,
    pub read_only: bool,
    pub dir: PathBuf,
    pub parameters: Parameters,
    pub watches: Arc<Watches>,
    /// The journal is in memory (`Store::in_memory`).
    pub in_memory: bool,
    /// Where `flush` saves the registry (`Store::in_memory_with`).
    pub persistence: std::sync::OnceLock<crate::memory::Hook>,
    /// When a store with a persistence hook flushes by itself (parameters).
    pub flush_policy: crate::memory::FlushPolicy,
    /// When checkpoints are written, and the last one.
    pub checkpoints: Arc<CheckpointPolicy>,
    /// The oldest readable sequence number, and the readers of older ones.
    pub retention: Arc<crate::retention::Retention>,
    /// The retention window, and what the last compaction left to do.
    pub compaction: Arc<crate::compact::CompactionPolicy>,
    /// Held by a checkpoint and a compaction while they run: never both at once.
    pub maintenance: std::sync::Mutex<()>,
    /// Commits waiting for the state's write lock (see `yield_to_committers`).
    pub committers_waiting: std::sync::atomic::AtomicU32,
    /// What the open did with checkpoints.
    pub checkpoint_report: CheckpointReport,
    /// Whether the open's options asked for checkpoints.
    pub checkpoints_enabled: bool,
    /// Tells the watch pump to go when the store goes without `close` (or is dropped by the
    /// pump itself, holding the last handle).
    pub _stop_pump: StopPump,
    pub _stop_checkpointer: crate::checkpoint::StopCheckpointer,
}

/// The first id of a volatile key.
pub(crate) const VOLATILE_ID_BASE: u64 = 1 << 63;

impl Inner {
    /// Makes transaction `seq` (and everything before it) visible to readers.
    pub(crate) fn publish(&self, seq: Seq) {
        // fetch_max: committers publish out of order, but every transaction below `seq` was
        // applied before `seq` began (the writer lock orders them).
        self.visible.fetch_max(seq, Ordering::AcqRel);
        self.checkpoints.visible.fetch_max(seq, Ordering::Relaxed);
    }

    pub(crate) fn visible(&self) -> Seq {
        self.visible.load(Ordering::Acquire)
    }

    /// Called by background work (compaction, checkpoints) before each hold of the state's
    /// lock: waits, up to YIELD_MAX, while a commit waits for it. The lock is not fair: a
    /// background thread that takes it back right after letting it go can keep commits out
    /// for many holds in a row (measured: a checkpoint's export beside 4 durable writers let
    /// no commit through for 0.3 s). Bounded, so the background work still progresses
    /// under any load.
    pub(crate) fn yield_to_committers(&self) {
        const YIELD_MAX: std::time::Duration = std::time::Duration::from_millis(2);
        const STEP: std::time::Duration = std::time::Duration::from_micros(20);
        let start = std::time::Instant::now();
        while self.committers_waiting.load(Ordering::SeqCst) > 0 && start.elapsed() < YIELD_MAX {
            std::thread::sleep(STEP);
        }
    }

    /// Whether this open writes checkpoints.
    pub(crate) fn checkpoints_written(&self) -> bool {
        self.checkpoints_enabled && !self.read_only && !self.in_memory
    }
}

/// Opens the journal after the newest checkpoint that loads and that the journal still
/// matches; `None` if there is none (the caller replays the whole journal). A checkpoint
/// passed over is named in `report`.
type Resumed = (State, Journal, KeyId, Start);

/// Where the last checkpoint left the journal: its sequence number, its size, and the
/// journal's size at its sequence number.
#[derive(Default, Clone, Copy)]
struct Start {
    seq: Seq,
    checkpoint_bytes: u64,
    journal_bytes: u64,
}

fn open_from_checkpoint(
    dir: &Path,
    options: &Options,
    report: &mut CheckpointReport,
) -> Result<Option<Resumed>> {
    let vfs = &*options.vfs;
    for (_, path) in crate::checkpoint::list(vfs, dir).0 {
        let loaded = match crate::checkpoint::load(vfs, &path) {
            Ok(loaded) => loaded,
            Err(reason) => {
                report.ignored.push((path, reason));
                continue;
            }
        };
        let Loaded {
            mut state,
            resume,
            next_key_id,
            bytes: checkpoint_bytes,
        } = loaded;
        let seq = resume.point.seq;
        let journal_bytes =
            resume.sealed.iter().map(|sealed| sealed.end).sum::<u64>() + resume.point.end;
        let mut replayer = Replayer::new(&mut state);
        let journal_options = JournalOptions {
            resume: Some(resume),
            ..options.journal()
        };
        let opened = Journal::open(dir, journal_options, &mut |txn| replayer.replay(txn));
        let max_id = replayer.max_id;
        match opened {
            Ok(journal) => {
                report.loaded = Some((path, seq));
                let start = Start {
                    seq,
                    checkpoint_bytes,
                    journal_bytes,
                };
                return Ok(Some((state, journal, next_key_id.max(max_id + 1), start)));
            }
            // Not the checkpoint's doing: a full replay would fail the same way.
            Err(error @ (LogError::Locked { .. } | LogError::NotFound(_))) => {
                return Err(error.into());
            }
            Err(error) => report.ignored.push((path, error.to_string())),
        }
    }
    Ok(None)
}

/// Locks a mutex, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn read_state(state: &ShardedLock<State>) -> ShardedLockReadGuard<'_, State> {
    state
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn write_state(state: &ShardedLock<State>) -> ShardedLockWriteGuard<'_, State> {
    state
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Who a store handle acts as: the caller as stated, and its interned identity.
pub(crate) struct Session {
    pub caller: Caller,
    pub identity: Identity,
    /// What each descriptor grants this session, as far as it has asked.
    pub grants: Grants,
}

impl Session {
    pub(crate) fn new(inner: &Inner, caller: Caller) -> Result<Session> {
        caller.validate()?;
        let identity = write_state(&inner.state).descriptors.identity(&caller)?;
        Ok(Session {
            caller,
            identity,
            grants: Grants::new(),
        })
    }

    pub(crate) fn principal(&self) -> &str {
        &self.caller.principal
    }

    /// Fails unless the caller holds `privilege`, naming `what` needed it.
    pub(crate) fn require(&self, privilege: security::Privileges, what: &str) -> Result<()> {
        if self.caller.privileges.contains(privilege) {
            return Ok(());
        }
        Err(Error::PrivilegeRequired {
            principal: self.caller.principal.clone(),
            privilege: privilege.name(),
            what: what.to_string(),
        })
    }
}

/// A registry store, as one caller sees it. Cheap to clone; every clone is the same store
/// and the same caller. [`Store::session`] gives a handle acting as someone else.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    session: Arc<Session>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .field("principal", &self.principal())
            .field("seq", &self.seq())
            .finish()
    }
}

/// Counts and sizes, as `hivelog stats` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The last visible sequence number.
    pub seq: Seq,
    /// Keys that exist (hive roots included).
    pub keys: u64,
    /// Values that exist.
    pub values: u64,
    /// Value versions held, history included.
    pub versions: u64,
    /// Journal segments.
    pub segments: u64,
    /// Journal bytes written (headers and frames).
    pub journal_bytes: u64,
    /// Bytes the journal occupies on disk.
    pub disk_bytes: u64,
    /// Approximate memory the index holds.
    pub index_memory_bytes: u64,
}

impl Store {
    /// Opens the store in `dir`, creating it unless `options.read_only`. Every record of the
    /// journal is verified and replayed into the index before this returns. A new store gets
    /// its hives, with their default security descriptors, as its first transaction.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        Store::open_in(dir.as_ref(), options, false)
    }

    /// [`Store::open`]; `in_memory`: the journal is in `options.vfs`'s memory and nothing
    /// may touch the file system (a restore's stream is spooled in memory).
    pub(crate) fn open_in(dir: &Path, options: Options, in_memory: bool) -> Result<Store> {
        options.validate()?;
        let mut checkpoint_report = CheckpointReport::default();
        let resumed = if options.checkpoints && !in_memory {
            open_from_checkpoint(dir, &options, &mut checkpoint_report)?
        } else {
            None
        };
        let (state, journal, next_key_id, start) = match resumed {
            Some(opened) => opened,
            None => {
                let mut state = State::new();
                let mut replayer = Replayer::new(&mut state);
                let journal =
                    Journal::open(dir, options.journal(), &mut |txn| replayer.replay(txn))?;
                let next_key_id = replayer.max_id + 1;
                (state, journal, next_key_id, Start::default())
            }
        };
        let last = journal.last_seq();
        let segments = journal.segments();
        let journal_total: u64 = segments.iter().map(|s| s.used_bytes).sum();
        let base_bytes = segments
            .first()
            .filter(|_| journal.base_seq() > 0)
            .map_or(0, |base| base.capacity_bytes);
        let watches = Arc::new(Watches::new(options.watch_queue_depth));
        let checkpoints = Arc::new(CheckpointPolicy::new(
            journal.appended_bytes(),
            start.seq,
            start.checkpoint_bytes,
            journal_total.saturating_sub(start.journal_bytes),
        ));
        let retention = crate::retention::Retention::new(journal.base_seq());
        let inner = Arc::new(Inner {
            retention,
            compaction: Arc::new(crate::compact::CompactionPolicy::new(
                options.archive_dir.clone(),
                base_bytes,
                journal.appended_bytes(),
                journal_total.saturating_sub(base_bytes),
            )),
            maintenance: std::sync::Mutex::new(()),
            committers_waiting: std::sync::atomic::AtomicU32::new(0),
            journal,
            state: ShardedLock::new(state),
            visible: AtomicU64::new(last),
            next_key_id: AtomicU64::new(next_key_id),
            next_volatile_id: AtomicU64::new(VOLATILE_ID_BASE),
            value_size_max_bytes: AtomicU32::new(options.value_size_max_bytes),
            read_only: options.read_only,
            parameters: Parameters::new(&options),
            dir: dir.to_path_buf(),
            watches: watches.clone(),
            in_memory,
            persistence: std::sync::OnceLock::new(),
            flush_policy: crate::memory::FlushPolicy::default(),
            checkpoints: checkpoints.clone(),
            checkpoint_report,
            checkpoints_enabled: options.checkpoints,
            _stop_pump: StopPump(watches),
            _stop_checkpointer: crate::checkpoint::StopCheckpointer(checkpoints),
        });
        let session = Arc::new(Session::new(&inner, options.caller)?);
        let store = Store { inner, session };
        let missing: Vec<Intent> = {
            let state = read_state(&store.inner.state);
            Hive::ALL
                .iter()
                .filter(|&&hive| {
                    let root = KeyPath::hive_root(hive);
                    state.index.key_by_path(root.folded(), last).is_none()
                })
                .map(|&hive| Intent::CreateHive(hive))
                .collect()
        };
        // A new store's first transaction creates the hives; an open store already has them
        // and commits nothing (not even a journal rollover) just by being opened. The hives
        // are the store's own: created by the system principal, whoever opens it first.
        if !options.read_only && !missing.is_empty() {
            store.system()?.commit(&missing)?;
        }
        // A whole-registry restore staged by `stage_restore` takes effect now, before anyone
        // reads the store (a read-only open leaves it for the next writable one).
        if !options.read_only && options.apply_staged_restore {
            crate::staged::apply_staged(&store)?;
        }
        // The parameters the store holds replace the open's defaults (a rejected one was
        // audited when it was written).
        crate::parameters::reload(&store.inner, store.inner.visible(), false)?;
        if options.follow {
            crate::follow::start(&store.inner)?;
        }
        if (options.checkpoints || options.compaction) && !options.read_only && !in_memory {
            crate::checkpoint::start(&store.inner, options.checkpoints, options.compaction)?;
        }
        Ok(store)
    }

    /// The same store acting as `caller`: its access is checked against every key's security
    /// descriptor, and its commits carry its principal. The caller is trusted as stated (an
    /// embedding process knows who it serves); [`Store::caller_for`] derives a caller's
    /// groups and privileges from the store's own configuration instead.
    pub fn session(&self, caller: Caller) -> Result<Store> {
        Ok(Store {
            inner: self.inner.clone(),
            session: Arc::new(Session::new(&self.inner, caller)?),
        })
    }

    /// The same store acting as the system principal (for the store's own bookkeeping).
    pub(crate) fn system(&self) -> Result<Store> {
        self.session(Caller::system())
    }

    /// Who this handle acts as.
    pub fn caller(&self) -> &Caller {
        &self.session.caller
    }

    /// Every operational parameter: its default (this open's option), what
    /// [`PARAMETERS_KEY`](crate::PARAMETERS_KEY) holds, the value in force, and why the two
    /// differ if they do.
    pub fn parameters(&self) -> Vec<crate::ParameterReport> {
        crate::parameters::report(&self.inner)
    }

    /// The principal this handle's commits are attributed to.
    pub fn principal(&self) -> &str {
        self.session.principal()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The last committed (and, by policy, durable) sequence number: what readers see.
    pub fn seq(&self) -> Seq {
        self.inner.visible()
    }

    /// What the open did with checkpoints: the one it started from, and any it passed over
    /// (damaged, or not matching the journal) before replaying the journal instead.
    pub fn checkpoint_report(&self) -> &CheckpointReport {
        &self.inner.checkpoint_report
    }

    /// Writes a checkpoint of the newest committed state now (the journal is synced
    /// first), so the next open replays only what follows; `None` if the last checkpoint
    /// holds that state already. Writers go on meanwhile. A store in memory, read-only or
    /// opened without checkpoints writes none.
    pub fn checkpoint(&self) -> Result<Option<CheckpointInfo>> {
        if !self.inner.checkpoints_written() {
            return Err(Error::NotOnDisk {
                what: "writable store with checkpoints to write a checkpoint for",
            });
        }
        crate::checkpoint::write(&self.inner, false)
    }

    /// What recovery found when the store opened (a torn tail cut, a salvage).
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.inner.journal.recovery_report()
    }

    pub(crate) fn parse(&self, path: &str) -> Result<KeyPath> {
        KeyPath::parse(path, self.principal())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub(crate) fn session_ref(&self) -> &Arc<Session> {
        &self.session
    }

    /// Commits `intents` as this handle's caller.
    pub(crate) fn commit(&self, intents: &[Intent]) -> Result<Seq> {
        crate::resolver::commit(&self.inner, &self.session, intents)
    }

    /// Creates the key at `path` and any missing parents; opens it if it exists. The handle
    /// holds every right the caller has on the key.
    pub fn create_key(&self, path: &str) -> Result<Key> {
        self.create_key_with(path, &crate::CreateOptions::default())
    }

    /// Creates the key at `path` (and missing parents) as `options` say: volatile, a link,
    /// with an explicit security descriptor.
    pub fn create_key_with(&self, path: &str, options: &crate::CreateOptions) -> Result<Key> {
        let classes = self.classes(path)?;
        let target = match &classes {
            Some(classes) => crate::classes::target(&self.inner, classes, true)?,
            None => self.parse(path)?,
        };
        let path = Arc::new(target);
        self.commit(&[Intent::CreateKey {
            path: path.clone(),
            options: Arc::new(options.checked(&path)?),
        }])?;
        let open_link = options.link.is_some();
        if let Some(classes) = classes.filter(|_| !open_link) {
            return self.open_classes(&classes, Access::MAXIMUM_ALLOWED, None);
        }
        Key::open(
            self.inner.clone(),
            self.session.clone(),
            &path,
            Access::MAXIMUM_ALLOWED,
            None,
            open_link,
        )
    }

    /// Opens the key at `path` for reading (`KEY_READ`). Reads through the handle see the
    /// newest committed state.
    pub fn open_key(&self, path: &str) -> Result<Key> {
        self.open_key_with(path, Access::KEY_READ)
    }

    /// Opens the key at `path` asking for `access` (checked now, as Windows checks a key at
    /// open; `MAXIMUM_ALLOWED` asks for whatever the caller may have).
    pub fn open_key_with(&self, path: &str, access: Access) -> Result<Key> {
        self.open_key_at(path, access, None)
    }

    /// `path` as a `HKEY_CLASSES_ROOT` path, if it is one.
    fn classes(&self, path: &str) -> Result<Option<ClassesPath>> {
        ClassesPath::parse(path, self.principal())
    }

    fn open_classes(&self, path: &ClassesPath, access: Access, at: Option<Pinned>) -> Result<Key> {
        Key::open_classes(self.inner.clone(), self.session.clone(), path, access, at)
    }

    fn open_key_at(&self, path: &str, access: Access, at: Option<Pinned>) -> Result<Key> {
        if let Some(classes) = self.classes(path)? {
            return self.open_classes(&classes, access, at);
        }
        let path = self.parse(path)?;
        Key::open(
            self.inner.clone(),
            self.session.clone(),
            &path,
            access,
            at,
            false,
        )
    }

    /// A value read at `at`; `HKEY_CLASSES_ROOT` paths, which the point read does not fold,
    /// go through a handle on the merged view.
    fn read(&self, path: &str, name: &str, layer: Option<&str>, at: Seq) -> Result<Value> {
        match reader::get(&self.inner, &self.session, path, name, layer, at) {
            Err(Error::ClassesView { .. }) => {
                let pinned = self.inner.retention.pin(at)?;
                let key = self.open_key_at(path, Access::KEY_QUERY_VALUE, Some(pinned))?;
                match layer {
                    Some(layer) => key.get_raw_value_in(layer, name),
                    None => key.get_raw_value(name),
                }
            }
            result => result,
        }
    }

    /// Deletes the key at `path`, which must have no subkeys (`DELETE` on it).
    pub fn delete_key(&self, path: &str) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.delete_key(path)?;
        tx.commit()
    }

    /// Deletes the key at `path` and everything below it (`DELETE` on every key removed).
    pub fn delete_tree(&self, path: &str) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.delete_tree(path)?;
        tx.commit()
    }

    /// Reads the effective value `name` of the key at `path` (newest committed state).
    pub fn get_raw_value(&self, path: &str, name: &str) -> Result<Value> {
        self.read(path, name, None, self.inner.visible())
    }

    /// Reads value `name` of the key at `path` in layer `layer` only.
    pub fn get_raw_value_in(&self, layer: &str, path: &str, name: &str) -> Result<Value> {
        self.read(path, name, Some(layer), self.inner.visible())
    }

    /// Calls `read` with the type and bytes of the effective value `name` of the key at
    /// `path` (newest committed state) where they lie, without copying them; returns what
    /// `read` returns. `read` runs while the journal's segment table is locked for reading:
    /// it must not write to the store (a write that rolls the journal over would wait for it
    /// forever).
    pub fn with_value<R>(
        &self,
        path: &str,
        name: &str,
        read: impl FnOnce(ValueType, &[u8]) -> R,
    ) -> Result<R> {
        let at = self.inner.visible();
        let mut read = Some(read);
        let found = reader::reading(
            &self.inner,
            || reader::stored_by_path(&self.inner, &self.session, path, name, None, at),
            |stored| {
                // `visit_value` calls the visitor only when it returns the data.
                reader::visit_value(&self.inner, stored, |ty, data| {
                    read.take().expect("a value is visited once")(ty, data)
                })
            },
        );
        match found {
            Err(Error::ClassesView { .. }) => {
                let value = self.read(path, name, None, at)?;
                let read = read.take().expect("not visited on an error");
                Ok(read(value.ty, &value.data))
            }
            result => result,
        }
    }

    /// The security descriptor of the key at `path` (needs `READ_CONTROL`).
    pub fn security(&self, path: &str) -> Result<SecurityDescriptor> {
        self.open_key_with(path, Access::READ_CONTROL)?.security()
    }

    /// Changes the parts of the descriptor of the key at `path` that `change` names: the
    /// owner needs `WRITE_OWNER` (and making someone else the owner, SeRestorePrivilege), the
    /// group and DACL need `WRITE_DAC`. New subkeys inherit from the new DACL; existing ones
    /// keep theirs.
    pub fn set_security(&self, path: &str, change: &Sddl) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.set_security(path, change)?;
        tx.commit()
    }

    /// The layers that exist now, highest precedence first.
    pub fn layers(&self) -> Vec<Layer> {
        read_state(&self.inner.state)
            .layers
            .list_at(self.inner.visible())
    }

    /// Creates layer `name` with `precedence` (1 to 65534). Layers span the whole registry:
    /// this needs full control of `Machine`.
    pub fn create_layer(&self, name: &str, precedence: u16) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.create_layer(name, precedence)?;
        tx.commit()
    }

    /// Drops layer `name` and every value it holds, in every key, as one transaction (needs
    /// full control of `Machine`).
    pub fn drop_layer(&self, name: &str) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.drop_layer(name)?;
        tx.commit()
    }

    /// Starts a transaction.
    pub fn transaction(&self) -> Transaction {
        Transaction::new(self.inner.clone(), self.session.clone())
    }

    /// A read-only view of the newest committed state.
    pub fn snapshot(&self) -> Snapshot {
        let seq = self.inner.visible();
        Snapshot {
            store: self.clone(),
            pin: self
                .inner
                .retention
                .pin(seq)
                .expect("the newest state is never compacted away"),
        }
    }

    /// A read-only view of the store as it was right after transaction `seq` (0: before the
    /// first), for any `seq` from [`Store::oldest_seq`] on. Access is checked against the
    /// security descriptors in force at `seq`. While the view lives, a compaction keeps what
    /// it reads.
    pub fn snapshot_at(&self, seq: Seq) -> Result<Snapshot> {
        let last = self.inner.visible();
        if seq > last {
            return Err(Error::FutureSeq { seq, last });
        }
        Ok(Snapshot {
            store: self.clone(),
            pin: self.inner.retention.pin(seq)?,
        })
    }

    /// The oldest sequence number a snapshot can read: the cut of the last compaction (0
    /// before any).
    pub fn oldest_seq(&self) -> Seq {
        self.inner.retention.oldest()
    }

    /// Makes every commit durable now, whatever the sync policy; returns the last durable
    /// sequence number.
    pub fn sync(&self) -> Result<Seq> {
        Ok(self.inner.journal.sync()?)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        let seq = self.inner.visible();
        let index = read_state(&self.inner.state).index.stats(seq);
        let segments = self.inner.journal.segments();
        Stats {
            seq,
            keys: index.keys,
            values: index.values,
            versions: index.versions,
            segments: segments.len() as u64,
            journal_bytes: segments.iter().map(|s| s.used_bytes).sum(),
            disk_bytes: segments.iter().map(|s| s.disk_bytes).sum(),
            index_memory_bytes: index.memory_bytes,
        }
    }

    /// Closes the store: syncs, records how far the journal is durable, releases the lock.
    /// If other clones or handles are alive, the store closes when the last one is dropped;
    /// this still syncs (and the background checkpoints stop). A close writes a checkpoint
    /// when the journal grew by a megabyte or more since the last one, so the next open
    /// replays little; a store dropped without a close writes none.
    pub fn close(self) -> Result<()> {
        drop(self.session);
        // A background checkpoint holds a handle while it runs: it finishes first (the close
        // writes the last one if the journal grew since).
        self.inner.checkpoints.stop_and_wait();
        let watches = self.inner.watches.clone();
        // With the hub locked the watch pump holds no handle: if this one is the only one
        // left, the store closes.
        let held = watches.hold();
        let last = Arc::try_unwrap(self.inner);
        drop(held);
        match last {
            Ok(inner) => {
                watches.shutdown();
                // No reader is left: what a compaction left waiting for one goes now (else
                // the next open removes it).
                crate::compact::release(&inner)?;
                if inner.checkpoints_written() {
                    crate::checkpoint::at_close(&inner)?;
                }
                Ok(inner.journal.close()?)
            }
            Err(shared) => {
                if !shared.read_only {
                    shared.journal.sync()?;
                }
                Ok(())
            }
        }
    }
}

/// A read-only view of the store at one sequence number, for one caller. Writers never wait
/// for it and it never sees their later changes.
#[derive(Clone)]
pub struct Snapshot {
    store: Store,
    pin: Pinned,
}

impl Snapshot {
    /// The sequence number this view reads at.
    pub fn seq(&self) -> Seq {
        self.pin.seq
    }

    /// Opens the key at `path` as it was at this snapshot, for reading (`KEY_READ`).
    pub fn open_key(&self, path: &str) -> Result<Key> {
        self.open_key_with(path, Access::KEY_READ)
    }

    /// Opens the key at `path` as it was at this snapshot, asking for `access`.
    pub fn open_key_with(&self, path: &str, access: Access) -> Result<Key> {
        self.store.open_key_at(path, access, Some(self.pin.clone()))
    }

    /// Reads the effective value `name` of the key at `path` as it was at this snapshot.
    pub fn get_raw_value(&self, path: &str, name: &str) -> Result<Value> {
        self.store.read(path, name, None, self.pin.seq)
    }
}
