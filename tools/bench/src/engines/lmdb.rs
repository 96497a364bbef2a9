//! LMDB through heed: the unnamed database, flat key to flat value (see `flat`).
//!
//! Settings, as LMDB's documentation (lmdb.h) gives them for each durability:
//! - W1: the environment opened with `MDB_NOSYNC` ("don't flush system buffers to disk when
//!   committing a transaction"; the database stays intact, the last commits may be lost),
//!   then `mdb_env_sync(force)` once at the end (`Env::force_sync`).
//! - W2 and after: no flags: every commit flushes the data and meta pages (fdatasync) before
//!   it returns. Write transactions are serialized by LMDB's own writer lock.
//! - Reads: one read transaction per reader thread, held for the whole run (heed's default
//!   thread-local reader slots). The map is sized far above the data (LMDB reserves address
//!   space, not disk); LMDB reads straight from its memory map, so it has no cache to size.

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use super::{Engine, Entry, Lookup, Mode, Reader, Subtree, flat};
use crate::error::{Error, Result};

pub const SETTINGS: &str = "W1 MDB_NOSYNC + Env::force_sync at the end; W2 default flags (sync per commit); one read transaction per reader; 64 GiB map";

/// Address space reserved for the map; it bounds the store's size (10 M values need ~2 GiB).
const MAP_SIZE_BYTES: usize = 64 << 30;

pub struct Lmdb {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
}

impl Lmdb {
    pub fn open(dir: &Path, mode: Mode) -> Result<Lmdb> {
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE_BYTES);
        if mode == Mode::Bulk {
            // SAFETY: NO_SYNC only weakens durability (LMDB keeps the database intact); the
            // bulk load makes itself durable with force_sync.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: the environment is on a local file system, opened once at a time in this
        // process (each engine is closed before it is opened again) and by no other process.
        let env = unsafe { options.open(dir)? };
        // LMDB's unnamed database always exists; opening it in a read transaction that
        // commits makes the handle usable in every later transaction.
        let opened = env.open_databases_and_commit(env.read_txn()?, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })?;
        let CommitOrAbort::Commit(Some(db)) = opened else {
            return Err(Error::Engine {
                engine: "lmdb",
                what: "the unnamed database did not open".into(),
            });
        };
        Ok(Lmdb { env, db })
    }

    fn commit(&self, entries: &[Entry]) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for entry in entries {
            self.db.put(&mut wtxn, &entry.key, &entry.stored)?;
        }
        wtxn.commit()?;
        Ok(())
    }
}

impl Engine for Lmdb {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn load(&self, batch: &[Entry]) -> Result<()> {
        self.commit(batch)
    }

    fn sync(&self) -> Result<()> {
        self.env.force_sync()?;
        Ok(())
    }

    fn put(&self, entry: &Entry) -> Result<()> {
        self.commit(std::slice::from_ref(entry))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(TxnReader {
            txn: self.env.read_txn()?,
            db: self.db,
        }))
    }

    fn close(self: Box<Self>) -> Result<()> {
        // The environment closes when its last handle goes; wait for that, so that the next
        // open of the same directory gets a fresh one with its own flags.
        let Lmdb { env, .. } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

struct TxnReader<'e> {
    txn: RoTxn<'e, WithTls>,
    db: Database<'static, Bytes, Bytes>,
}

impl Reader for TxnReader<'_> {
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool> {
        let Some(stored) = self.db.get(&self.txn, at.key)? else {
            return Ok(false);
        };
        let (ty, data) = flat::split("lmdb", stored)?;
        seen(ty, data);
        Ok(true)
    }

    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for item in self.db.prefix_iter(&self.txn, &subtree.prefix)? {
            let (key, stored) = item?;
            seen(key, stored);
        }
        Ok(())
    }
}
