//! The store: opening (journal replay into the index), options, snapshots, stats, verify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use hivelog_index::Index;
use hivelog_log::vfs::{OsVfs, Vfs};
use hivelog_log::{
    Journal, JournalOptions, RecoveryReport, SEGMENT_SIZE_DEFAULT_BYTES, Seq, SyncPolicy,
};

use crate::error::{Error, Result};
use crate::key::Key;
use crate::path::{Hive, KeyPath};
use crate::reader;
use crate::replay::Replayer;
use crate::stored::Stored;
use crate::txn::{self, Intent, Transaction};
use crate::value::{Value, ValueType};

/// Largest value_size_max_bytes a store accepts.
pub const VALUE_SIZE_LIMIT_BYTES: u32 = 64 << 20;
/// Default largest value.
pub const VALUE_SIZE_DEFAULT_MAX_BYTES: u32 = 1 << 20;
/// The principal commits are attributed to unless the caller names one.
pub const SYSTEM_PRINCIPAL: &str = "S-1-5-18";

/// How to open a store.
#[derive(Clone)]
pub struct Options {
    /// When commits reach the disk. Default: every commit, before it returns.
    pub sync: SyncPolicy,
    /// Size of each journal segment file.
    pub segment_size_bytes: u64,
    /// Largest value data accepted.
    pub value_size_max_bytes: u32,
    /// Open without writing; takes a shared lock, so several readers may open at once.
    pub read_only: bool,
    /// On corruption, keep the valid prefix of the journal and move the rest aside.
    pub salvage: bool,
    /// Who commits through this handle (recorded in every Commit record; `HKCU` means
    /// `Users\<principal>`).
    pub principal: String,
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
            salvage: false,
            principal: SYSTEM_PRINCIPAL.to_string(),
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
        if u64::from(max) > self.segment_size_bytes / 2 {
            return Err(Error::InvalidOption {
                name: "value_size_max_bytes",
                value: u64::from(max),
                reason: "must be at most half of segment_size_bytes",
            });
        }
        crate::path::check_key_name(&self.principal)?;
        Ok(())
    }

    fn journal(&self) -> JournalOptions {
        JournalOptions {
            segment_size_bytes: self.segment_size_bytes,
            sync: self.sync,
            read_only: self.read_only,
            salvage: self.salvage,
            vfs: self.vfs.clone(),
        }
    }
}

/// Shared by a store and every handle, transaction and snapshot made from it.
pub(crate) struct Inner {
    pub journal: Journal,
    pub index: ShardedLock<Index<Stored>>,
    /// The newest sequence number readers may see: applied, and durable if the policy says so.
    pub visible: AtomicU64,
    pub next_key_id: AtomicU64,
    pub principal: String,
    pub value_size_max_bytes: u32,
    pub read_only: bool,
    pub dir: PathBuf,
}

impl Inner {
    /// Makes transaction `seq` (and everything before it) visible to readers.
    pub(crate) fn publish(&self, seq: Seq) {
        // fetch_max: committers publish out of order, but every transaction below `seq` was
        // applied before `seq` began (the writer lock orders them).
        self.visible.fetch_max(seq, Ordering::AcqRel);
    }

    pub(crate) fn visible(&self) -> Seq {
        self.visible.load(Ordering::Acquire)
    }
}

pub(crate) fn read_index(
    index: &ShardedLock<Index<Stored>>,
) -> ShardedLockReadGuard<'_, Index<Stored>> {
    index
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn write_index(
    index: &ShardedLock<Index<Stored>>,
) -> ShardedLockWriteGuard<'_, Index<Stored>> {
    index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A registry store. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
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

/// What `verify` checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Transactions read back and replayed.
    pub transactions: u64,
    /// Op records read back and replayed.
    pub ops: u64,
    /// Segments read.
    pub segments: u64,
    /// The last sequence number.
    pub last_seq: Seq,
}

impl Store {
    /// Opens the store in `dir`, creating it unless `options.read_only`. Every record of the
    /// journal is verified and replayed into the index before this returns.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store> {
        options.validate()?;
        let dir = dir.as_ref();
        let mut index = Index::new();
        let mut replayer = Replayer::new(&mut index);
        let journal = Journal::open(dir, options.journal(), &mut |txn| replayer.replay(txn))?;
        let next_key_id = replayer.max_id + 1;
        let last = journal.last_seq();
        let inner = Arc::new(Inner {
            journal,
            index: ShardedLock::new(index),
            visible: AtomicU64::new(last),
            next_key_id: AtomicU64::new(next_key_id),
            principal: options.principal,
            value_size_max_bytes: options.value_size_max_bytes,
            read_only: options.read_only,
            dir: dir.to_path_buf(),
        });
        let store = Store { inner };
        let missing: Vec<Intent> = {
            let index = read_index(&store.inner.index);
            Hive::ALL
                .iter()
                .filter(|&&hive| {
                    let root = KeyPath::hive_root(hive);
                    index.key_by_path(root.folded(), last).is_none()
                })
                .map(|&hive| Intent::CreateHive(hive))
                .collect()
        };
        // A new store's first transaction creates the hives; an open store already has them
        // and commits nothing (not even a journal rollover) just by being opened.
        if !options.read_only && !missing.is_empty() {
            txn::commit(&store.inner, &missing)?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The principal commits through this store are attributed to.
    pub fn principal(&self) -> &str {
        &self.inner.principal
    }

    /// The last committed (and, by policy, durable) sequence number: what readers see.
    pub fn seq(&self) -> Seq {
        self.inner.visible()
    }

    /// What recovery found when the store opened (a torn tail cut, a salvage).
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.inner.journal.recovery_report()
    }

    pub(crate) fn parse(&self, path: &str) -> Result<KeyPath> {
        KeyPath::parse(path, &self.inner.principal)
    }

    /// Creates the key at `path` and any missing parents; opens it if it exists.
    pub fn create_key(&self, path: &str) -> Result<Key> {
        let path = self.parse(path)?;
        txn::commit(&self.inner, &[Intent::CreateKey(Arc::new(path.clone()))])?;
        Key::open(self.inner.clone(), path, None)
    }

    /// Opens the key at `path`. Reads through the handle see the newest committed state.
    pub fn open_key(&self, path: &str) -> Result<Key> {
        Key::open(self.inner.clone(), self.parse(path)?, None)
    }

    /// Deletes the key at `path`, which must have no subkeys.
    pub fn delete_key(&self, path: &str) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.delete_key(path)?;
        tx.commit()
    }

    /// Deletes the key at `path` and everything below it.
    pub fn delete_tree(&self, path: &str) -> Result<Seq> {
        let mut tx = self.transaction();
        tx.delete_tree(path)?;
        tx.commit()
    }

    /// Reads value `name` of the key at `path`, as of the newest committed state.
    pub fn get_raw_value(&self, path: &str, name: &str) -> Result<Value> {
        let stored = reader::stored_by_path(&self.inner, path, name, self.inner.visible())?;
        reader::read_value(&self.inner, stored)
    }

    /// Calls `read` with the type and bytes of value `name` of the key at `path` (newest
    /// committed state) where they lie, without copying them; returns what `read` returns.
    /// `read` runs while the journal's segment table is locked for reading: it must not write
    /// to the store (a write that rolls the journal over would wait for it forever).
    pub fn with_value<R>(
        &self,
        path: &str,
        name: &str,
        read: impl FnOnce(ValueType, &[u8]) -> R,
    ) -> Result<R> {
        let stored = reader::stored_by_path(&self.inner, path, name, self.inner.visible())?;
        reader::visit_value(&self.inner, stored, read)
    }

    /// Starts a transaction.
    pub fn transaction(&self) -> Transaction {
        Transaction::new(self.inner.clone())
    }

    /// A read-only view of the newest committed state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            inner: self.inner.clone(),
            seq: self.inner.visible(),
        }
    }

    /// A read-only view of the store as it was right after transaction `seq` (0: before the
    /// first). All history is kept, so any committed sequence number can be read.
    pub fn snapshot_at(&self, seq: Seq) -> Result<Snapshot> {
        let last = self.inner.visible();
        if seq > last {
            return Err(Error::FutureSeq { seq, last });
        }
        Ok(Snapshot {
            inner: self.inner.clone(),
            seq,
        })
    }

    /// Makes every commit durable now, whatever the sync policy; returns the last durable
    /// sequence number.
    pub fn sync(&self) -> Result<Seq> {
        Ok(self.inner.journal.sync()?)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Stats {
        let seq = self.inner.visible();
        let index = read_index(&self.inner.index).stats(seq);
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

    /// Reads every record of the journal again, checks each checksum and structure, replays
    /// everything into a fresh index and checks it agrees with the live one.
    pub fn verify(&self) -> Result<VerifyReport> {
        let last = self.inner.visible();
        let mut fresh = Index::new();
        let mut replayer = Replayer::new(&mut fresh);
        let mut transactions = 0;
        self.inner.journal.for_each_txn(1, last, &mut |txn| {
            transactions += 1;
            replayer.replay(txn)
        })?;
        let ops = replayer.ops;
        let live = read_index(&self.inner.index).stats(last);
        let replayed = fresh.stats(last);
        if (live.keys, live.values, live.versions)
            != (replayed.keys, replayed.values, replayed.versions)
        {
            return Err(Error::Damaged {
                what: format!(
                    "the index (live: {} keys, {} values; replayed: {} keys, {} values)",
                    live.keys, live.values, replayed.keys, replayed.values
                ),
            });
        }
        Ok(VerifyReport {
            transactions,
            ops,
            segments: self.inner.journal.segments().len() as u64,
            last_seq: last,
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Closes the store: syncs, records how far the journal is durable, releases the lock.
    /// If other clones or handles are alive, the store closes when the last one is dropped;
    /// this still syncs.
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.journal.close()?),
            Err(shared) => {
                if !shared.read_only {
                    shared.journal.sync()?;
                }
                Ok(())
            }
        }
    }
}

/// A read-only view of the store at one sequence number. Writers never wait for it and it
/// never sees their later changes.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<Inner>,
    seq: Seq,
}

impl Snapshot {
    /// The sequence number this view reads at.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Opens the key at `path` as it was at this snapshot.
    pub fn open_key(&self, path: &str) -> Result<Key> {
        let path = KeyPath::parse(path, &self.inner.principal)?;
        Key::open(self.inner.clone(), path, Some(self.seq))
    }

    /// Reads value `name` of the key at `path` as it was at this snapshot.
    pub fn get_raw_value(&self, path: &str, name: &str) -> Result<Value> {
        let stored = reader::stored_by_path(&self.inner, path, name, self.seq)?;
        reader::read_value(&self.inner, stored)
    }
}
