//! Transactions: several changes committed atomically under one sequence number.
//!
//! A transaction collects intents (validated for names and limits as they are added), then
//! `commit` resolves them against the newest state under the journal's writer lock: paths
//! become key ids, each change is checked (the key exists, has no subkeys, ...), journaled and
//! applied to the index in order, so later intents see earlier ones. Any failure undoes the
//! index changes and writes nothing; the store is as it was.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hivelog_index::fold::{fold, fold_into};
use hivelog_index::{Index, KeyId, LayerId, NodeId};
use hivelog_log::{Seq, TxnBuilder, unix_nanos_now};

use crate::error::{Error, Result};
use crate::op::{Op, set_value_data_at};
use crate::path::{Hive, KeyPath, check_value_name};
use crate::store::{Inner, write_index};
use crate::stored::Stored;
use crate::value::{ToRegValue, Value};

/// The layer every write goes to until layers are configured.
pub(crate) const BASE: LayerId = 0;

/// Which key an intent acts on.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Whatever key is at the path when the transaction commits.
    Path(Arc<KeyPath>),
    /// One particular key (a handle's): if it was deleted, the intent fails.
    Id { id: KeyId, path: Arc<KeyPath> },
}

impl Target {
    fn path(&self) -> &KeyPath {
        match self {
            Target::Path(path) | Target::Id { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Intent {
    /// The key must exist (a handle's key, before acting below it).
    Require(Target),
    /// Create the key and any missing parents.
    CreateKey(Arc<KeyPath>),
    /// Create a hive root (only when a store is created).
    CreateHive(Hive),
    DeleteKey(Target),
    DeleteTree(Target),
    SetValue {
        target: Target,
        name: String,
        value: Value,
    },
    DeleteValue {
        target: Target,
        name: String,
    },
}

/// Several changes committed atomically: all of them under one sequence number, or none.
///
/// ```no_run
/// # fn main() -> hivelog::Result<()> {
/// let store = hivelog::Store::open("/tmp/store", hivelog::Options::default())?;
/// let mut tx = store.transaction();
/// tx.set_value(r"HKLM\Software\A", "Enabled", &1u32)?;
/// tx.delete_tree(r"HKLM\Software\Old")?;
/// let seq = tx.commit()?;
/// # Ok(()) }
/// ```
pub struct Transaction {
    inner: Arc<Inner>,
    intents: Vec<Intent>,
    /// The last path parsed: consecutive changes to one key parse it once.
    last_path: Option<(String, Arc<KeyPath>)>,
}

impl Transaction {
    pub(crate) fn new(inner: Arc<Inner>) -> Transaction {
        Transaction {
            inner,
            intents: Vec::new(),
            last_path: None,
        }
    }

    fn path(&mut self, path: &str) -> Result<Arc<KeyPath>> {
        if let Some((text, parsed)) = &self.last_path
            && text == path
        {
            return Ok(parsed.clone());
        }
        let parsed = Arc::new(KeyPath::parse(path, &self.inner.principal)?);
        self.last_path = Some((path.to_string(), parsed.clone()));
        Ok(parsed)
    }

    /// Creates the key at `path` and any missing parents (nothing if it exists).
    pub fn create_key(&mut self, path: &str) -> Result<&mut Transaction> {
        let path = self.path(path)?;
        self.intents.push(Intent::CreateKey(path));
        Ok(self)
    }

    /// Sets value `name` (empty: the default value) of the key at `path`, which must exist
    /// when the transaction commits (create it earlier in the same transaction if need be).
    pub fn set_value<T: ToRegValue + ?Sized>(
        &mut self,
        path: &str,
        name: &str,
        value: &T,
    ) -> Result<&mut Transaction> {
        let path = self.path(path)?;
        let intent = set_value_intent(&self.inner, Target::Path(path), name, value.to_reg_value())?;
        self.intents.push(intent);
        Ok(self)
    }

    /// Deletes value `name` of the key at `path`; the commit fails if it does not exist.
    pub fn delete_value(&mut self, path: &str, name: &str) -> Result<&mut Transaction> {
        check_value_name(name)?;
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteValue {
            target,
            name: name.to_string(),
        });
        Ok(self)
    }

    /// Deletes the key at `path`; the commit fails if it has subkeys.
    pub fn delete_key(&mut self, path: &str) -> Result<&mut Transaction> {
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteKey(target));
        Ok(self)
    }

    /// Deletes the key at `path` and everything below it.
    pub fn delete_tree(&mut self, path: &str) -> Result<&mut Transaction> {
        let target = Target::Path(self.path(path)?);
        self.intents.push(Intent::DeleteTree(target));
        Ok(self)
    }

    /// Number of changes added so far.
    pub fn len(&self) -> usize {
        self.intents.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }

    /// Commits every change atomically and returns the transaction's sequence number. If no
    /// change was needed (every key already existed, say), nothing is written and the last
    /// committed sequence number is returned.
    pub fn commit(self) -> Result<Seq> {
        commit(&self.inner, &self.intents)
    }
}

/// Validates a value write before it joins a transaction.
pub(crate) fn set_value_intent(
    inner: &Inner,
    target: Target,
    name: &str,
    value: Value,
) -> Result<Intent> {
    check_value_name(name)?;
    if value.data.len() > inner.value_size_max_bytes as usize {
        return Err(Error::ValueTooLarge {
            name: crate::error::clip(name),
            len: value.data.len(),
            max: inner.value_size_max_bytes,
        });
    }
    Ok(Intent::SetValue {
        target,
        name: name.to_string(),
        value,
    })
}

/// Resolves, journals, applies and commits `intents` as one transaction.
pub(crate) fn commit(inner: &Inner, intents: &[Intent]) -> Result<Seq> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    let mut builder = inner.journal.begin()?;
    let seq = builder.seq();
    loop {
        let mut index = write_index(&inner.index);
        index.begin(seq);
        let mut resolver = Resolver {
            inner,
            index: &mut index,
            builder: &mut builder,
            next_id: inner.next_key_id.load(Ordering::Relaxed),
            ops: 0,
            last_target: None,
            folded_name: String::new(),
        };
        let resolved = intents.iter().try_for_each(|intent| resolver.apply(intent));
        let (ops, next_id) = (resolver.ops, resolver.next_id);
        match resolved {
            Err(error) => {
                index.rollback();
                return Err(error);
            }
            Ok(()) if ops == 0 => {
                index.rollback();
                return Ok(inner.visible.load(Ordering::Acquire));
            }
            Ok(()) if builder.fits() => {
                index.commit();
                inner.next_key_id.store(next_id, Ordering::Relaxed);
                break;
            }
            Ok(()) => {
                // The transaction outgrew the active segment: undo, start a new segment, and
                // resolve again (locations change; a transaction never spans segments).
                index.rollback();
                drop(index);
                builder.rollover()?;
            }
        }
    }
    // The index lock is released: readers go on at the old snapshot while the journal write
    // (and, by policy, the sync) happens. The transaction becomes visible only after.
    let committed = builder.commit(&inner.principal, unix_nanos_now())?;
    debug_assert_eq!(committed, seq);
    inner.publish(committed);
    Ok(committed)
}

struct Resolver<'a, 'j> {
    inner: &'a Inner,
    index: &'a mut Index<Stored>,
    builder: &'a mut TxnBuilder<'j>,
    next_id: KeyId,
    ops: u32,
    /// The last path target resolved: consecutive changes to one key resolve it once.
    last_target: Option<(Arc<KeyPath>, NodeId)>,
    /// Scratch space for folding value names.
    folded_name: String,
}

impl Resolver<'_, '_> {
    fn push(&mut self, op: Op<'_>) -> Result<hivelog_log::Loc> {
        let loc = self.builder.push(|buf| op.encode(buf))?;
        self.ops += 1;
        Ok(loc)
    }

    fn resolve(&mut self, target: &Target) -> Result<NodeId> {
        match target {
            Target::Path(path) => {
                if let Some((last, node)) = &self.last_target
                    && Arc::ptr_eq(last, path)
                    && self.index.is_alive(*node)
                {
                    return Ok(*node);
                }
                let node = self
                    .index
                    .find(path.folded())
                    .filter(|&node| self.index.is_alive(node))
                    .ok_or_else(|| Error::KeyNotFound {
                        path: path.to_string(),
                    })?;
                self.last_target = Some((path.clone(), node));
                Ok(node)
            }
            Target::Id { id, path } => self
                .index
                .node_of(*id)
                .filter(|&node| self.index.alive_id(node) == Some(*id))
                .ok_or_else(|| Error::KeyDeleted {
                    path: path.to_string(),
                }),
        }
    }

    fn alive_id(&self, node: NodeId) -> KeyId {
        self.index
            .alive_id(node)
            .expect("a resolved key is alive in this transaction")
    }

    fn not_hive_root(&self, target: &Target) -> Result<()> {
        if target.path().is_hive_root() {
            return Err(Error::HiveRoot {
                path: target.path().to_string(),
            });
        }
        Ok(())
    }

    fn apply(&mut self, intent: &Intent) -> Result<()> {
        match intent {
            Intent::Require(target) => self.resolve(target).map(drop),
            Intent::CreateKey(path) => self.create_key(path),
            Intent::CreateHive(hive) => self.create_hive(*hive),
            Intent::DeleteKey(target) => {
                self.not_hive_root(target)?;
                let node = self.resolve(target)?;
                if self.index.has_alive_children(node) {
                    return Err(Error::HasSubkeys {
                        path: target.path().to_string(),
                    });
                }
                self.push(Op::DeleteKey {
                    id: self.alive_id(node),
                })?;
                self.index.delete_key(node);
                Ok(())
            }
            Intent::DeleteTree(target) => {
                self.not_hive_root(target)?;
                let node = self.resolve(target)?;
                self.push(Op::DeleteTree {
                    id: self.alive_id(node),
                })?;
                self.index.delete_tree(node);
                Ok(())
            }
            Intent::SetValue {
                target,
                name,
                value,
            } => self.set_value(target, name, value),
            Intent::DeleteValue { target, name } => self.delete_value(target, name),
        }
    }

    fn create_hive(&mut self, hive: Hive) -> Result<()> {
        let root = self.index.root();
        let existing = self.index.find(KeyPath::hive_root(hive).folded());
        if existing.is_some_and(|node| self.index.is_alive(node)) {
            return Ok(());
        }
        let id = self.new_id();
        self.push(Op::CreateKey {
            id,
            parent: 0,
            name: hive.name(),
        })?;
        self.index.create_key(root, hive.name(), id);
        Ok(())
    }

    fn new_id(&mut self) -> KeyId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn create_key(&mut self, path: &KeyPath) -> Result<()> {
        let hive = KeyPath::hive_root(path.hive());
        let mut folded = hive.folded().to_string();
        let mut node = self
            .index
            .find(&folded)
            .filter(|&node| self.index.is_alive(node))
            .ok_or_else(|| Error::Damaged {
                what: format!("hive {}", path.hive().name()),
            })?;
        for name in path.names() {
            folded.push('\\');
            fold_into(name, &mut folded);
            match self.index.find(&folded) {
                Some(existing) if self.index.is_alive(existing) => node = existing,
                _ => {
                    let id = self.new_id();
                    let parent = self.alive_id(node);
                    self.push(Op::CreateKey { id, parent, name })?;
                    node = self.index.create_key(node, name, id);
                }
            }
        }
        Ok(())
    }

    fn set_value(&mut self, target: &Target, name: &str, value: &Value) -> Result<()> {
        let node = self.resolve(target)?;
        let mut folded = std::mem::take(&mut self.folded_name);
        folded.clear();
        fold_into(name, &mut folded);
        // An existing value keeps the name as first written (case-preserving, as Windows).
        let existing = self.index.value_now(node, BASE, &folded);
        let written: Cow<'_, str> = match existing {
            Some(stored) => Cow::Owned(self.written_name(stored, &folded)?),
            None => Cow::Borrowed(name),
        };
        let key = self.alive_id(node);
        let loc = self.push(Op::SetValue {
            key,
            layer: BASE,
            ty: value.ty,
            name: &written,
            data: &value.data,
        })?;
        let data_at = set_value_data_at(written.len());
        self.index.set_value(
            node,
            BASE,
            &folded,
            Stored::new(loc, value.ty, &value.data, data_at),
        );
        self.folded_name = folded;
        Ok(())
    }

    /// The name as written in the record of an existing value: one pushed earlier in this
    /// transaction, or one already in the journal.
    fn written_name(&self, stored: Stored, folded: &str) -> Result<String> {
        let decode = |payload: &[u8]| match Op::decode(payload) {
            Ok(Op::SetValue { name, .. }) => Some(name.to_string()),
            _ => None,
        };
        let name = match self.builder.pushed(stored.loc) {
            Some(payload) => decode(payload),
            None => self.inner.journal.with_op(stored.loc, decode).flatten(),
        };
        name.ok_or_else(|| Error::Damaged {
            what: format!("the record of value {folded:?}"),
        })
    }

    fn delete_value(&mut self, target: &Target, name: &str) -> Result<()> {
        let node = self.resolve(target)?;
        let folded = fold(name);
        let Some(existing) = self.index.value_now(node, BASE, &folded) else {
            return Err(Error::ValueNotFound {
                path: target.path().to_string(),
                name: name.to_string(),
            });
        };
        // History names the value as it was written, whatever case the delete used.
        let written = self.written_name(existing, &folded)?;
        let key = self.alive_id(node);
        self.push(Op::DeleteValue {
            key,
            layer: BASE,
            name: &written,
        })?;
        self.index.delete_value(node, BASE, &folded);
        Ok(())
    }
}
