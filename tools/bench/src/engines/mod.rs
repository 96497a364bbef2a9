//! The stores under test, each behind the same two traits: [`Engine`] for a store opened in
//! a directory, [`Reader`] for one reading thread. [`Kind`] names them and opens them.
//!
//! hivelog is driven through its own API (key paths, value names, typed values); the peers
//! are flat key-value stores and see the layout of [`flat`]. An [`Entry`] carries both forms,
//! built before any clock starts, so that neither pays for the other's encoding.

mod fjall;
pub mod flat;
mod hivelog;
mod lmdb;
mod redb;
mod sqlite;

use std::path::Path;

use crate::error::Result;

/// How the engine is asked to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// W1: no sync per transaction; [`Engine::sync`] makes everything durable at the end.
    Bulk,
    /// Every commit is durable when it returns (W2), and the read workloads after W5.
    Durable,
}

/// One value to write, in hivelog's form and in the peers' flat form.
pub struct Entry {
    /// The key's registry path (`Machine\software\...`).
    pub path: String,
    /// The value name in registry terms (empty for the default value).
    pub name: &'static str,
    /// Type and data, as hivelog takes them.
    pub value: ::hivelog::Value,
    /// [`flat::key`] of path and name.
    pub key: Vec<u8>,
    /// [`flat::value`] of type and data.
    pub stored: Vec<u8>,
}

/// One value to read, in both forms.
pub struct Lookup<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub key: &'a [u8],
}

/// A subtree to scan: hivelog's key path and the peers' [`flat::subtree_prefix`].
pub struct Subtree {
    pub path: String,
    pub prefix: Vec<u8>,
}

/// A store opened in its own directory. Shared by the writer threads of W2, hence `Sync`.
pub trait Engine: Sync {
    fn name(&self) -> &'static str;
    /// Commits one transaction of new keys and values; the entries of one key are adjacent.
    fn load(&self, batch: &[Entry]) -> Result<()>;
    /// Makes every commit so far durable (the one sync at the end of W1).
    fn sync(&self) -> Result<()>;
    /// Overwrites one value in a transaction of its own.
    fn put(&self, entry: &Entry) -> Result<()>;
    /// A reader for the calling thread: a read transaction, where the engine has them, held
    /// for as long as the reader lives (no writes happen meanwhile).
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;
    /// Closes the store and waits until its files are released.
    fn close(self: Box<Self>) -> Result<()>;
}

pub trait Reader {
    /// Calls `seen` with the type and data of the value, where the engine holds them if it
    /// can; returns false if there is no such value.
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool>;
    /// Calls `seen` with the name (hivelog) or key (peers) and the stored bytes of every
    /// value in the subtree.
    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()>;
}

/// The engines, in the order a run measures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Hivelog,
    Redb,
    Lmdb,
    Sqlite,
    Fjall,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hivelog => "hivelog",
            Kind::Redb => "redb",
            Kind::Lmdb => "lmdb",
            Kind::Sqlite => "sqlite",
            Kind::Fjall => "fjall",
        }
    }

    /// The crate measured, and the library inside it where that is another project.
    pub fn version(self) -> String {
        match self {
            Kind::Hivelog => format!("hivelog {}", env!("BENCH_VERSION_HIVELOG")),
            Kind::Redb => format!("redb {}", env!("BENCH_VERSION_REDB")),
            Kind::Lmdb => format!(
                "heed {} ({})",
                env!("BENCH_VERSION_HEED"),
                ::heed::lmdb_version().string
            ),
            Kind::Sqlite => format!(
                "rusqlite {} (SQLite {}, bundled)",
                env!("BENCH_VERSION_RUSQLITE"),
                ::rusqlite::version()
            ),
            Kind::Fjall => format!("fjall {}", env!("BENCH_VERSION_FJALL")),
        }
    }

    /// The settings the engine runs with, in one line; its module says why.
    pub fn settings(self) -> &'static str {
        match self {
            Kind::Hivelog => hivelog::SETTINGS,
            Kind::Redb => redb::SETTINGS,
            Kind::Lmdb => lmdb::SETTINGS,
            Kind::Sqlite => sqlite::SETTINGS,
            Kind::Fjall => fjall::SETTINGS,
        }
    }

    /// Opens (or creates) the engine's store in `dir`, which exists.
    pub fn open(self, dir: &Path, mode: Mode) -> Result<Box<dyn Engine>> {
        Ok(match self {
            Kind::Hivelog => Box::new(hivelog::Hivelog::open(dir, mode)?),
            Kind::Redb => Box::new(redb::Redb::open(dir, mode)?),
            Kind::Lmdb => Box::new(lmdb::Lmdb::open(dir, mode)?),
            Kind::Sqlite => Box::new(sqlite::Sqlite::open(dir, mode)?),
            Kind::Fjall => Box::new(fjall::Fjall::open(dir, mode)?),
        })
    }
}
