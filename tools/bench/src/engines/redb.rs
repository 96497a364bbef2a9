//! redb: one table from the flat key to the flat value (see `flat`).
//!
//! Settings, as redb's documentation gives them for each durability:
//! - W1: `Durability::None` on each of the load's write transactions ("will not be persisted
//!   to disk unless followed by a commit with a higher durability level"), then one empty
//!   transaction committed with `Durability::Immediate`, which persists them all. redb warns
//!   that pages are freed only by the durable commits, so the file may grow during W1.
//! - W2 and after: `Durability::Immediate`, the default: "guaranteed to be persistent as soon
//!   as commit returns". No two-phase commit and no quick-repair (both off by default).
//! - Reads: one `ReadTransaction` and its table per reader thread, held for the whole run, so
//!   a get is a B-tree lookup and not a transaction start. The cache is redb's default
//!   (1 GiB, more than the 1 M-value store needs).

use std::path::Path;

use redb::{Database, Durability, ReadOnlyTable, TableDefinition};

use super::{Engine, Entry, Lookup, Mode, Reader, Subtree, flat};
use crate::error::Result;

pub const SETTINGS: &str = "W1 Durability::None per transaction + one Durability::Immediate commit at the end; W2 Durability::Immediate (default); one read transaction per reader; default 1 GiB cache";

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registry");

pub struct Redb {
    db: Database,
    durability: Durability,
}

impl Redb {
    pub fn open(dir: &Path, mode: Mode) -> Result<Redb> {
        let durability = match mode {
            Mode::Bulk => Durability::None,
            Mode::Durable => Durability::Immediate,
        };
        Ok(Redb {
            db: Database::create(dir.join("registry.redb"))?,
            durability,
        })
    }

    fn commit(&self, entries: &[Entry]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability);
        {
            // The first write transaction creates the table.
            let mut table = txn.open_table(TABLE)?;
            for entry in entries {
                table.insert(entry.key.as_slice(), entry.stored.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn load(&self, batch: &[Entry]) -> Result<()> {
        self.commit(batch)
    }

    fn sync(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.commit()?;
        Ok(())
    }

    fn put(&self, entry: &Entry) -> Result<()> {
        self.commit(std::slice::from_ref(entry))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let table = self.db.begin_read()?.open_table(TABLE)?;
        Ok(Box::new(TableReader { table }))
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}

/// The table keeps its read transaction alive.
struct TableReader {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader for TableReader {
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool> {
        let Some(stored) = self.table.get(at.key)? else {
            return Ok(false);
        };
        let (ty, data) = flat::split("redb", stored.value())?;
        seen(ty, data);
        Ok(true)
    }

    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for item in self.table.range(subtree.prefix.as_slice()..)? {
            let (key, stored) = item?;
            if !key.value().starts_with(&subtree.prefix) {
                break;
            }
            seen(key.value(), stored.value());
        }
        Ok(())
    }
}
