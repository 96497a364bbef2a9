//! Rebuilding the index from the journal: every committed transaction, in order.
//!
//! Replay trusts nothing: each op must decode and make sense against the state built so far
//! (its key exists, an id is new, a parent is alive), or the transaction is rejected and the
//! open fails as for any corruption, naming the record. The index's own assertions are never
//! the first line of defence against a damaged journal.

use std::sync::Arc;

use hivelog_index::fold::fold;
use hivelog_index::{KeyId, NodeId};
use hivelog_log::{Loc, Rejected, TxnView};

use crate::attrs::{KeyAttrs, KeyFlags};
use crate::links::{LINK_VALUE_NAME, parse_target};
use crate::op::{JOURNALED_KEY_FLAGS, Op, decode_descriptor, set_value_data_at};
use crate::path::{DEPTH_MAX, Hive};
use crate::store::State;
use crate::stored::Stored;
use crate::value::Value;

pub(crate) struct Replayer<'a> {
    state: &'a mut State,
    /// The largest key id seen; new keys get larger ones.
    pub max_id: KeyId,
    /// Op records replayed.
    pub ops: u64,
}

fn reject(loc: Loc, reason: impl std::fmt::Display) -> Rejected {
    Rejected(format!("op record at offset {}: {reason}", loc.offset))
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(state: &'a mut State) -> Replayer<'a> {
        Replayer {
            state,
            max_id: 0,
            ops: 0,
        }
    }

    /// Applies one committed transaction.
    pub(crate) fn replay(&mut self, txn: &TxnView<'_>) -> Result<(), Rejected> {
        self.state.index.begin(txn.seq);
        for op in txn.ops {
            let applied = Op::decode(op.payload)
                .map_err(|short| reject(op.loc, short.0))
                .and_then(|decoded| self.apply(decoded, op.loc, txn));
            if let Err(rejected) = applied {
                self.state.index.rollback();
                self.state.layers.rollback(txn.seq);
                return Err(rejected);
            }
        }
        self.state.index.commit();
        self.ops += txn.ops.len() as u64;
        Ok(())
    }

    fn alive(&self, id: KeyId, loc: Loc) -> Result<NodeId, Rejected> {
        self.state
            .index
            .node_of(id)
            .filter(|&node| self.state.index.alive_id(node) == Some(id))
            .ok_or_else(|| reject(loc, format!("key id {id} does not exist")))
    }

    fn not_hive_root(&self, node: NodeId, loc: Loc) -> Result<(), Rejected> {
        if node == self.state.index.root()
            || self.state.index.parent(node) == self.state.index.root()
        {
            return Err(reject(loc, "hive roots cannot be deleted"));
        }
        Ok(())
    }

    fn apply(&mut self, op: Op<'_>, loc: Loc, txn: &TxnView<'_>) -> Result<(), Rejected> {
        match op {
            Op::CreateKey { id, parent, name } => {
                self.create_key(id, parent, name, txn.commit.principal, loc)?;
            }
            Op::DeleteKey { id } => {
                let node = self.alive(id, loc)?;
                self.not_hive_root(node, loc)?;
                if self.state.index.has_alive_children(node) {
                    return Err(reject(loc, format!("key id {id} has subkeys")));
                }
                self.state.index.delete_key(node);
            }
            Op::DeleteTree { id } => {
                let node = self.alive(id, loc)?;
                self.not_hive_root(node, loc)?;
                self.state.index.delete_tree(node);
            }
            Op::ClearSubtree { id } => {
                let node = self.alive(id, loc)?;
                self.state.index.clear_subtree(node);
            }
            Op::SetValue {
                key,
                layer,
                ty,
                name,
                data,
            } => {
                let node = self.alive(key, loc)?;
                self.layer_exists(layer, txn, loc)?;
                let attrs = self.state.index.attrs_now(node);
                if attrs.is_link() && fold(name) == fold(LINK_VALUE_NAME) {
                    self.link_target(key, &Value::new(ty, data.to_vec()), loc)?;
                }
                let stored = Stored::new(loc, ty, data, set_value_data_at(name.len()));
                self.state.index.set_value(node, layer, &fold(name), stored);
            }
            Op::DeleteValue { key, layer, name } => {
                let node = self.alive(key, loc)?;
                self.layer_exists(layer, txn, loc)?;
                if !self.state.index.delete_value(node, layer, &fold(name)) {
                    return Err(reject(loc, format!("value {name:?} does not exist")));
                }
            }
            Op::SetSecurity { id, descriptor } => {
                let node = self.alive(id, loc)?;
                let descriptor =
                    decode_descriptor(descriptor).map_err(|short| reject(loc, short.0))?;
                let sd = self
                    .state
                    .descriptors
                    .intern(descriptor)
                    .map_err(|error| reject(loc, error))?;
                let attrs = self.state.index.attrs_now(node);
                self.state.index.set_attrs(node, KeyAttrs { sd, ..attrs });
            }
            Op::SetKeyFlags { id, flags } => {
                let node = self.alive(id, loc)?;
                let attrs = self.state.index.attrs_now(node);
                // The journaled flags are set whole (a restore clears a link flag this way).
                let flags = KeyFlags((attrs.flags.0 & !JOURNALED_KEY_FLAGS) | flags);
                if flags.contains(KeyFlags::LINK) {
                    if self.state.index.has_alive_children(node) {
                        return Err(reject(loc, format!("link key id {id} has subkeys")));
                    }
                    self.state.links = true;
                }
                self.state
                    .index
                    .set_attrs(node, KeyAttrs { flags, ..attrs });
            }
            Op::SetKeyClass { id, class } => {
                let node = self.alive(id, loc)?;
                let class = self
                    .state
                    .classes
                    .intern_or_none(class)
                    .map_err(|error| reject(loc, error))?;
                let attrs = self.state.index.attrs_now(node);
                self.state
                    .index
                    .set_attrs(node, KeyAttrs { class, ..attrs });
            }
            // The history's own record: nothing to rebuild.
            Op::Audit { .. } => {}
            Op::CreateLayer { id, name } => {
                self.state
                    .layers
                    .check_new(name, id, txn.seq)
                    .map_err(|error| reject(loc, error))?;
                self.state.layers.create(id, name, txn.seq);
            }
            Op::DropLayer { id } => {
                self.layer_exists(id, txn, loc)?;
                self.state
                    .layers
                    .check_drop(id, txn.seq)
                    .map_err(|error| reject(loc, error))?;
                self.state.index.delete_layer(id);
                self.state.layers.drop_layer(id, txn.seq);
            }
        }
        Ok(())
    }

    fn layer_exists(&self, layer: u16, txn: &TxnView<'_>, loc: Loc) -> Result<(), Rejected> {
        if self.state.layers.exists(layer, txn.seq) {
            return Ok(());
        }
        Err(reject(loc, format!("layer {layer} does not exist")))
    }

    /// Records the target of link `id` from its SymbolicLinkValue.
    fn link_target(&mut self, id: KeyId, value: &Value, loc: Loc) -> Result<(), Rejected> {
        let text = value
            .utf16_units()
            .and_then(|units| String::from_utf16(&units).ok())
            .ok_or_else(|| reject(loc, "link target is not UTF-16"))?;
        let target = parse_target(&format!("key id {id}"), &text).map_err(|e| reject(loc, e))?;
        self.state.link_targets.insert(id, Arc::new(target));
        Ok(())
    }

    fn create_key(
        &mut self,
        id: KeyId,
        parent: KeyId,
        name: &str,
        creator: &str,
        loc: Loc,
    ) -> Result<(), Rejected> {
        let parent_node = self.alive(parent, loc)?;
        if self.state.index.attrs_now(parent_node).is_link() {
            return Err(reject(loc, format!("key id {parent} is a link")));
        }
        if id == 0 || self.state.index.node_of(id).is_some() {
            return Err(reject(loc, format!("key id {id} is reused")));
        }
        let is_root = parent_node == self.state.index.root();
        if is_root && !Hive::ALL.iter().any(|hive| fold(hive.name()) == fold(name)) {
            return Err(reject(loc, format!("{name:?} is not a hive")));
        }
        let parent_path = self.state.index.folded_path(parent_node);
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
            .state
            .index
            .find(&path)
            .is_some_and(|node| self.state.index.is_alive(node))
        {
            return Err(reject(loc, format!("key {name:?} exists")));
        }
        // The descriptor a key is created with is its parent's inheritance (an explicit one
        // follows as a SetSecurity op), computed as the commit computed it.
        let parent_sd = self.state.index.attrs_now(parent_node).sd;
        let sd = self
            .state
            .descriptors
            .inherit(parent_sd, creator)
            .map_err(|error| reject(loc, error))?;
        let attrs = KeyAttrs {
            sd,
            ..KeyAttrs::default()
        };
        self.state.index.create_key(parent_node, name, id, attrs);
        self.max_id = self.max_id.max(id);
        Ok(())
    }
}
