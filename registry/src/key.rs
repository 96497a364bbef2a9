//! Key handles: reads and writes of one key, as `winreg`'s `RegKey` offers them.

use std::sync::Arc;

use hivelog_index::{Index, KeyId, NodeId};
use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::path::{KeyPath, check_value_name};
use crate::reader::{read_record, read_value, value_at};
use crate::store::{Inner, read_index};
use crate::stored::Stored;
use crate::txn::{self, BASE, Intent, Target, set_value_intent};
use crate::value::{FromRegValue, ToRegValue, Value};

/// An open key.
///
/// A handle names one key: if that key is deleted, operations through the handle fail with
/// [`Error::KeyDeleted`], even if a new key is later created at the same path. A handle from
/// [`crate::Store::open_key`] reads the newest committed state at each call; one from a
/// [`crate::Snapshot`] reads that snapshot and refuses writes.
#[derive(Clone)]
pub struct Key {
    inner: Arc<Inner>,
    path: Arc<KeyPath>,
    id: KeyId,
    node: NodeId,
    at: Option<Seq>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("path", &self.path.to_string())
            .field("id", &self.id)
            .field("at", &self.at)
            .finish()
    }
}

impl Key {
    pub(crate) fn open(inner: Arc<Inner>, path: KeyPath, at: Option<Seq>) -> Result<Key> {
        let seq = at.unwrap_or_else(|| inner.visible());
        let (id, node) = {
            let index = read_index(&inner.index);
            let key = index
                .key_by_path(path.folded(), seq)
                .ok_or_else(|| Error::KeyNotFound {
                    path: path.to_string(),
                })?;
            (key.id, key.node)
        };
        Ok(Key {
            inner,
            path: Arc::new(path),
            id,
            node,
            at,
        })
    }

    /// The path this key was opened by.
    pub fn path(&self) -> &KeyPath {
        &self.path
    }

    /// The key's stable id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The snapshot this handle reads, or `None` for a live handle.
    pub fn snapshot_seq(&self) -> Option<Seq> {
        self.at
    }

    fn seq(&self) -> Seq {
        self.at.unwrap_or_else(|| self.inner.visible())
    }

    fn check(&self, index: &Index<Stored>, seq: Seq) -> Result<()> {
        match index.key_at(self.node, seq) {
            Some(key) if key.id == self.id => Ok(()),
            _ => Err(Error::KeyDeleted {
                path: self.path.to_string(),
            }),
        }
    }

    fn target(&self) -> Target {
        Target::Id {
            id: self.id,
            path: self.path.clone(),
        }
    }

    fn writable(&self) -> Result<()> {
        if self.at.is_some() {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// Value `name` (empty: the default value), converted to `T`.
    pub fn get_value<T: FromRegValue>(&self, name: &str) -> Result<T> {
        T::from_reg_value(&self.get_raw_value(name)?, name)
    }

    /// Value `name` with its type and bytes as stored.
    pub fn get_raw_value(&self, name: &str) -> Result<Value> {
        let seq = self.seq();
        let stored = {
            let index = read_index(&self.inner.index);
            self.check(&index, seq)?;
            value_at(&index, self.node, name, seq)?
        };
        let stored = stored.ok_or_else(|| Error::ValueNotFound {
            path: self.path.to_string(),
            name: name.to_string(),
        })?;
        read_value(&self.inner, stored)
    }

    /// Names of the subkeys, in case-insensitive order, as created.
    pub fn enum_keys(&self) -> Result<Vec<String>> {
        let seq = self.seq();
        let index = read_index(&self.inner.index);
        self.check(&index, seq)?;
        Ok(index
            .children_at(self.node, seq)
            .map(|key| key.name.to_string())
            .collect())
    }

    /// Every value, in case-insensitive name order, with its name as written.
    pub fn enum_values(&self) -> Result<Vec<(String, Value)>> {
        let seq = self.seq();
        let stored: Vec<Stored> = {
            let index = read_index(&self.inner.index);
            self.check(&index, seq)?;
            index
                .values_at(self.node, seq)
                .iter()
                .filter(|value| value.layer == BASE)
                .map(|value| value.value)
                .collect()
        };
        stored
            .into_iter()
            .map(|stored| read_record(&self.inner, stored))
            .collect()
    }

    /// Opens a key below this one (`relative` may hold several names: `a\b`).
    pub fn open_subkey(&self, relative: &str) -> Result<Key> {
        let path = self.path.join(relative)?;
        {
            let index = read_index(&self.inner.index);
            self.check(&index, self.seq())?;
        }
        Key::open(self.inner.clone(), path, self.at)
    }

    /// Creates a key below this one (and missing keys between); opens it if it exists.
    pub fn create_subkey(&self, relative: &str) -> Result<Key> {
        let path = self.change_below(relative, Intent::CreateKey)?.1;
        Key::open(self.inner.clone(), Arc::unwrap_or_clone(path), None)
    }

    /// Commits `change` to the key at `relative` below this one, in the same transaction as a
    /// check that this key still exists. Returns the sequence number and the path.
    fn change_below(
        &self,
        relative: &str,
        change: impl FnOnce(Arc<KeyPath>) -> Intent,
    ) -> Result<(Seq, Arc<KeyPath>)> {
        self.writable()?;
        let path = Arc::new(self.path.join(relative)?);
        let seq = txn::commit(
            &self.inner,
            &[Intent::Require(self.target()), change(path.clone())],
        )?;
        Ok((seq, path))
    }

    /// Sets value `name` (empty: the default value) from a Rust value.
    pub fn set_value<T: ToRegValue + ?Sized>(&self, name: &str, value: &T) -> Result<Seq> {
        self.set_raw_value(name, &value.to_reg_value())
    }

    /// Sets value `name` to a type and bytes as given.
    pub fn set_raw_value(&self, name: &str, value: &Value) -> Result<Seq> {
        self.writable()?;
        let intent = set_value_intent(&self.inner, self.target(), name, value.clone())?;
        txn::commit(&self.inner, &[intent])
    }

    /// Deletes value `name`; fails if it does not exist.
    pub fn delete_value(&self, name: &str) -> Result<Seq> {
        self.writable()?;
        check_value_name(name)?;
        txn::commit(
            &self.inner,
            &[Intent::DeleteValue {
                target: self.target(),
                name: name.to_string(),
            }],
        )
    }

    /// Deletes a subkey that has no subkeys of its own.
    pub fn delete_subkey(&self, relative: &str) -> Result<Seq> {
        let change = |path| Intent::DeleteKey(Target::Path(path));
        Ok(self.change_below(relative, change)?.0)
    }

    /// Deletes a subkey and everything below it.
    pub fn delete_subkey_all(&self, relative: &str) -> Result<Seq> {
        let change = |path| Intent::DeleteTree(Target::Path(path));
        Ok(self.change_below(relative, change)?.0)
    }
}
