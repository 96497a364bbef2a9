//! SQLite through rusqlite (the bundled library): one `WITHOUT ROWID` table from the flat
//! key to the flat value (see `flat`), so that the table is the key's B-tree.
//!
//! Settings, as SQLite's documentation (pragma.html, wal.html) gives them for each durability:
//! - Always `journal_mode=WAL`.
//! - W1: explicit transactions of 1,000 rows with `synchronous=NORMAL`, which in WAL mode
//!   "might roll back following a power loss" but keeps the database consistent (what the
//!   other engines' bulk settings promise), then `PRAGMA wal_checkpoint(TRUNCATE)` once at the
//!   end: under NORMAL the WAL is synced before a checkpoint and the database file after it,
//!   so everything loaded is durable in the database file when it returns. The automatic
//!   checkpoints during the load (every 1,000 WAL pages, the default) sync in the same way.
//! - W2 and after: `synchronous=FULL`, with which the WAL is synced at every commit; each put
//!   is one autocommit statement. The writers share one connection behind a mutex: SQLite
//!   admits one writer at a time, and separate connections would wait for one another in
//!   SQLite's sleeping busy handler instead.
//! - Reads: a connection per reader thread, inside one read transaction held for the whole
//!   run (like the other engines' readers), statements from the prepared-statement cache.
//!   `mmap_size` is 1 GiB so that reads come from the page cache shared by all connections,
//!   as LMDB's do, rather than from a 2 MiB page cache per connection.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::{Engine, Entry, Lookup, Mode, Reader, Subtree, flat};
use crate::error::{Error, Result};

pub const SETTINGS: &str = "WAL; W1 transactions of 1,000 rows at synchronous=NORMAL + wal_checkpoint(TRUNCATE) at the end; W2 synchronous=FULL, one autocommit upsert per commit on one shared connection; readers in one read transaction each; mmap_size 1 GiB";

const MMAP_SIZE_BYTES: i64 = 1 << 30;
/// Only a checkpoint can hold up a reader or the writer (WAL mode); wait for it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS registry (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID";
const PUT: &str =
    "INSERT INTO registry (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v";
const GET: &str = "SELECT v FROM registry WHERE k = ?1";
const SCAN: &str = "SELECT k, v FROM registry WHERE k >= ?1 ORDER BY k";

pub struct Sqlite {
    file: PathBuf,
    writer: Mutex<Connection>,
}

impl Sqlite {
    pub fn open(dir: &Path, mode: Mode) -> Result<Sqlite> {
        let file = dir.join("registry.sqlite");
        let synchronous = match mode {
            Mode::Bulk => "NORMAL",
            Mode::Durable => "FULL",
        };
        let conn = connect(&file, synchronous)?;
        // A no-op on an existing store, so it writes (and syncs) nothing at reopen.
        conn.execute_batch(CREATE)?;
        Ok(Sqlite {
            file,
            writer: Mutex::new(conn),
        })
    }
}

fn connect(file: &Path, synchronous: &str) -> Result<Connection> {
    let conn = Connection::open(file)?;
    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(Error::Engine {
            engine: "sqlite",
            what: format!("journal_mode stayed {journal}, not WAL"),
        });
    }
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.query_row(&format!("PRAGMA mmap_size = {MMAP_SIZE_BYTES}"), [], |_| {
        Ok(())
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn load(&self, batch: &[Entry]) -> Result<()> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(PUT)?;
            for entry in batch {
                put.execute((&entry.key, &entry.stored))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy != 0 {
            return Err(Error::Engine {
                engine: "sqlite",
                what: "the final checkpoint could not complete".into(),
            });
        }
        Ok(())
    }

    fn put(&self, entry: &Entry) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.prepare_cached(PUT)?
            .execute((&entry.key, &entry.stored))?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        // Reads never commit, so the reader's synchronous setting does not matter.
        let conn = connect(&self.file, "FULL")?;
        // Deferred: the read transaction starts at the first SELECT and lasts until the
        // connection closes (which ends it).
        conn.execute_batch("BEGIN")?;
        Ok(Box::new(ConnectionReader(conn)))
    }

    fn close(self: Box<Self>) -> Result<()> {
        let Sqlite { writer, .. } = *self;
        let conn = writer.into_inner().unwrap_or_else(PoisonError::into_inner);
        conn.close().map_err(|(_, error)| error)?;
        Ok(())
    }
}

struct ConnectionReader(Connection);

impl Reader for ConnectionReader {
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool> {
        let mut get = self.0.prepare_cached(GET)?;
        let mut rows = get.query([at.key])?;
        let Some(row) = rows.next()? else {
            return Ok(false);
        };
        let (ty, data) = flat::split("sqlite", blob(row.get_ref(0)?))?;
        seen(ty, data);
        Ok(true)
    }

    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let mut scan = self.0.prepare_cached(SCAN)?;
        let mut rows = scan.query([&subtree.prefix])?;
        while let Some(row) = rows.next()? {
            let key = blob(row.get_ref(0)?);
            if !key.starts_with(&subtree.prefix) {
                break;
            }
            seen(key, blob(row.get_ref(1)?));
        }
        Ok(())
    }
}

/// Every column of the table is a blob; anything else reads as empty and fails the check.
fn blob(value: ValueRef<'_>) -> &[u8] {
    match value {
        ValueRef::Blob(bytes) => bytes,
        _ => &[],
    }
}
