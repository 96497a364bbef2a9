//! hivelog through its own API: a key per path, created in the load's transactions, and a
//! typed value per name; gets by path and name; the subtree scan walks the keys.
//!
//! Settings, as hivelog documents them (README "Durability", `SyncPolicy`):
//! - W1: `SyncPolicy::Never` ("only sealing a segment and closing the journal sync"), then
//!   `Store::sync` once at the end, which makes every commit durable whatever the policy.
//! - W2 and after: `SyncPolicy::Always`, the default: a commit returns once it is on disk
//!   (`fdatasync`), and concurrent committers share one sync.
//! - Gets: `Store::with_value`, which reads the newest committed state and visits the bytes
//!   where they lie in the mapped journal; the scan walks one `Snapshot` with `enum_values`
//!   and `enum_keys` (both copy), as `hivelog bench` W4 does. Everything else is
//!   `Options::default()`.

use std::path::Path;

use hivelog::{Error as HivelogError, Options, Store, SyncPolicy};

use super::{Engine, Entry, Lookup, Mode, Reader, Subtree};
use crate::error::Result;

pub const SETTINGS: &str = "W1 SyncPolicy::Never + Store::sync at the end; W2 SyncPolicy::Always (fdatasync per commit, shared by concurrent committers); gets Store::with_value, scan walks a Snapshot";

pub struct Hivelog {
    store: Store,
}

impl Hivelog {
    pub fn open(dir: &Path, mode: Mode) -> Result<Hivelog> {
        let sync = match mode {
            Mode::Bulk => SyncPolicy::Never,
            Mode::Durable => SyncPolicy::Always,
        };
        let options = Options {
            sync,
            ..Options::default()
        };
        Ok(Hivelog {
            store: Store::open(dir, options)?,
        })
    }
}

impl Engine for Hivelog {
    fn name(&self) -> &'static str {
        "hivelog"
    }

    fn load(&self, batch: &[Entry]) -> Result<()> {
        let mut tx = self.store.transaction();
        let mut created: Option<&str> = None;
        for entry in batch {
            if created != Some(entry.path.as_str()) {
                tx.create_key(&entry.path)?;
                created = Some(&entry.path);
            }
            tx.set_value(&entry.path, entry.name, &entry.value)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.store.sync()?;
        Ok(())
    }

    fn put(&self, entry: &Entry) -> Result<()> {
        let mut tx = self.store.transaction();
        tx.set_value(&entry.path, entry.name, &entry.value)?;
        tx.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(StoreReader(&self.store)))
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.store.close()?;
        Ok(())
    }
}

struct StoreReader<'a>(&'a Store);

impl Reader for StoreReader<'_> {
    fn get(&self, at: &Lookup<'_>, seen: &mut dyn FnMut(u32, &[u8])) -> Result<bool> {
        match self
            .0
            .with_value(at.path, at.name, |ty, data| seen(ty.0, data))
        {
            Ok(()) => Ok(true),
            Err(HivelogError::KeyNotFound { .. } | HivelogError::ValueNotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    fn scan(&self, subtree: &Subtree, seen: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let snapshot = self.0.snapshot();
        let mut stack = vec![snapshot.open_key(&subtree.path)?];
        while let Some(key) = stack.pop() {
            for (name, value) in key.enum_values()? {
                seen(name.as_bytes(), &value.data);
            }
            for sub in key.enum_keys()? {
                stack.push(key.open_subkey(&sub)?);
            }
        }
        Ok(())
    }
}
