//! Rebuilding the index from the journal: every committed transaction, in order.
//!
//! Replay trusts nothing: each op must decode and make sense against the state built so far
//! (its key exists, an id is new, a parent is alive), or the transaction is rejected and the
//! open fails as for any corruption, naming the record. The index's own assertions are never
//! the first line of defence against a damaged journal.

use hivelog_index::fold::fold;
use hivelog_index::{Index, KeyId, NodeId};
use hivelog_log::{Loc, Rejected, TxnView};

use crate::op::{Op, set_value_data_at};
use crate::path::{DEPTH_MAX, Hive};
use crate::stored::Stored;

pub(crate) struct Replayer<'a> {
    index: &'a mut Index<Stored>,
    /// The largest key id seen; new keys get larger ones.
    pub max_id: KeyId,
    /// Op records replayed.
    pub ops: u64,
}

fn reject(loc: Loc, reason: impl std::fmt::Display) -> Rejected {
    Rejected(format!("op record at offset {}: {reason}", loc.offset))
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(index: &'a mut Index<Stored>) -> Replayer<'a> {
        Replayer {
            index,
            max_id: 0,
            ops: 0,
        }
    }

    /// Applies one committed transaction.
    pub(crate) fn replay(&mut self, txn: &TxnView<'_>) -> Result<(), Rejected> {
        self.index.begin(txn.seq);
        for op in txn.ops {
            let applied = Op::decode(op.payload)
                .map_err(|short| reject(op.loc, short.0))
                .and_then(|decoded| self.apply(decoded, op.loc));
            if let Err(rejected) = applied {
                self.index.rollback();
                return Err(rejected);
            }
        }
        self.index.commit();
        self.ops += txn.ops.len() as u64;
        Ok(())
    }

    fn alive(&self, id: KeyId, loc: Loc) -> Result<NodeId, Rejected> {
        self.index
            .node_of(id)
            .filter(|&node| self.index.alive_id(node) == Some(id))
            .ok_or_else(|| reject(loc, format!("key id {id} does not exist")))
    }

    fn not_hive_root(&self, node: NodeId, loc: Loc) -> Result<(), Rejected> {
        if node == self.index.root() || self.index.parent(node) == self.index.root() {
            return Err(reject(loc, "hive roots cannot be deleted"));
        }
        Ok(())
    }

    fn apply(&mut self, op: Op<'_>, loc: Loc) -> Result<(), Rejected> {
        match op {
            Op::CreateKey { id, parent, name } => self.create_key(id, parent, name, loc)?,
            Op::DeleteKey { id } => {
                let node = self.alive(id, loc)?;
                self.not_hive_root(node, loc)?;
                if self.index.has_alive_children(node) {
                    return Err(reject(loc, format!("key id {id} has subkeys")));
                }
                self.index.delete_key(node);
            }
            Op::DeleteTree { id } => {
                let node = self.alive(id, loc)?;
                self.not_hive_root(node, loc)?;
                self.index.delete_tree(node);
            }
            Op::ClearSubtree { id } => {
                let node = self.alive(id, loc)?;
                self.index.clear_subtree(node);
            }
            Op::SetValue {
                key,
                layer,
                ty,
                name,
                data,
            } => {
                let node = self.alive(key, loc)?;
                let stored = Stored::new(loc, ty, data, set_value_data_at(name.len()));
                self.index.set_value(node, layer, &fold(name), stored);
            }
            Op::DeleteValue { key, layer, name } => {
                let node = self.alive(key, loc)?;
                if !self.index.delete_value(node, layer, &fold(name)) {
                    return Err(reject(loc, format!("value {name:?} does not exist")));
                }
            }
        }
        Ok(())
    }

    fn create_key(
        &mut self,
        id: KeyId,
        parent: KeyId,
        name: &str,
        loc: Loc,
    ) -> Result<(), Rejected> {
        let parent_node = self.alive(parent, loc)?;
        if id == 0 || self.index.node_of(id).is_some() {
            return Err(reject(loc, format!("key id {id} is reused")));
        }
        let is_root = parent_node == self.index.root();
        if is_root && !Hive::ALL.iter().any(|hive| fold(hive.name()) == fold(name)) {
            return Err(reject(loc, format!("{name:?} is not a hive")));
        }
        let parent_path = self.index.folded_path(parent_node);
        let depth = if is_root {
            1
        } else {
            parent_path.matches('\\').count() + 2
        };
        if depth > DEPTH_MAX {
            return Err(reject(loc, "key deeper than DEPTH_MAX"));
        }
        let mut path = parent_path.to_string();
        if !is_root {
            path.push('\\');
        }
        path.push_str(&fold(name));
        if self
            .index
            .find(&path)
            .is_some_and(|node| self.index.is_alive(node))
        {
            return Err(reject(loc, format!("key {name:?} exists")));
        }
        self.index.create_key(parent_node, name, id);
        self.max_id = self.max_id.max(id);
        Ok(())
    }
}
