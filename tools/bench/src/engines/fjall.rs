//! fjall: one keyspace, flat key to flat value (see `flat`).
//!
//! Settings, as fjall's documentation gives them for each durability:
//! - W1: write batches with no persist mode of their own (the default: each batch is
//!   written to the journal and handed to the OS, "not guaranteed to be persisted in case of
//!   a power loss"), then `Database::persist(PersistMode::SyncAll)` once at the end.
//! - W2 and after: each batch committed with `durability(Some(PersistMode::SyncAll))`, which
//!   fsyncs the journal before `commit` returns. (`SyncData`, an fdatasync as hivelog's, is
//!   the lighter documented option; SyncAll is what fjall's examples use for durability.)
//! - Reads: `Keyspace::get` and `Keyspace::prefix` on the newest state. The block cache is
//!   1 GiB rather than the default 32 MiB: fjall's builder documentation says to give it more
//!   than 20–25% of memory "if the data set fully fits into memory", as this one does.
//!   Compaction and flushes run on fjall's default worker threads.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, Entry, Lookup, Mode, Reader, Subtree, flat};
use crate::error::Result;

pub const SETTINGS: &str = "W1 batches without persist + persist(SyncAll) at the end; W2 batch durability Some(SyncAll) (fsync per commit); 1 GiB block cache";

const CACHE_BYTES: u64 = 1 << 30;

pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
    durability: Option<PersistMode>,
}

impl Fjall {
    pub fn open(dir: &Path, mode: Mode) -> Result<Fjall> {
        let db = Database::builder(dir).cache_size(CACHE_BYTES).open()?;
        let keyspace = db.keyspace("registry", KeyspaceCreateOptions::default)?;
        let durability = match mode {
            Mode::Bulk => None,
            Mode::Durable => Some(PersistMode::SyncAll),
        };
        Ok(Fjall {
            db,
            keyspace,
            durability,
        })
    }

    fn commit(&self, entries: &[Entry]) -> Result<()> {
        let mut batch = self.db.batch().durability(self.durability);
        for entry in entries {
            batch.insert(
                &self.keyspace,
                entry.key.as_slice(),
                entry.stored.as_slice(),
            );
        }
        batch.commit()?;
        Ok(())
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn load(&self, batch: &[Entry]) -> Result<()> {
        self.commit(batch)
    }

    fn sync(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn put(&self, entry: &Entry) -> Result<()> {
        self.commit(std::slice::from_ref(entry))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(KeyspaceReader(&self.keyspace)))
    }

    fn close(self: Box<Self>) -> Result<()> {
        // Dropping the last handle stops fjall's workers and persists the journal.
        drop(self);
        Ok(())
    }
}

struct KeyspaceReader<'a>(&'a Keyspace);

impl Reader for KeyspaceReader<'_> {
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool> {
        let Some(stored) = self.0.get(at.key)? else {
            return Ok(false);
        };
        let (ty, data) = flat::split("fjall", &stored)?;
        seen(ty, data);
        Ok(true)
    }

    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for guard in self.0.prefix(&subtree.prefix) {
            let (key, stored) = guard.into_inner()?;
            seen(&key, &stored);
        }
        Ok(())
    }
}
