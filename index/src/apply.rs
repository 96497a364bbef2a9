//! Applying a transaction to the index, with an undo log.
//!
//! A writer applies operations one by one at the transaction's sequence number, so each later
//! operation of the same transaction sees the earlier ones (create a key, then set a value in
//! it). Readers never see any of it: they read at `visible_seq`, which is below the pending
//! sequence number until the transaction is committed and durable. If an operation turns out to
//! be invalid, or the journal cannot take the transaction, `rollback` undoes it all.
//!
//! Misuse (an operation on a dead key, deleting a key that has subkeys) is a bug in the caller,
//! who validates first; it is caught by assertions, because applying it would corrupt history.

use crate::fold;
use crate::names::NameId;
use crate::trie::{ALIVE, ChildKey, Index, Life, Node, Slot};
use crate::version_chain::{Chain, Pushed, Version};
use crate::{KeyId, LayerId, NodeId, Seq};

/// The transaction being applied: its sequence number and how to undo it. The undo log is
/// kept between transactions (cleared, not freed, up to UNDO_KEPT entries), so applying an
/// ordinary one allocates nothing for it.
pub(crate) struct Pending<V, A> {
    pub(crate) seq: Option<Seq>,
    undo: Vec<Undo<V, A>>,
}

impl<V, A> Default for Pending<V, A> {
    fn default() -> Self {
        Pending {
            seq: None,
            undo: Vec::new(),
        }
    }
}

/// The most undo entries whose room is kept from one transaction to the next: a restore's
/// millions are given back once it commits.
const UNDO_KEPT: usize = 1 << 16;

pub(crate) enum Undo<V, A> {
    /// A node was created with its first incarnation.
    NodeCreated(NodeId),
    /// A new incarnation was pushed onto an existing node.
    LifeAdded(NodeId),
    /// The newest incarnation was marked deleted.
    LifeEnded(NodeId),
    /// A value slot was appended (with its first version).
    SlotAdded(NodeId),
    /// A version was pushed onto slot `.1`.
    VersionPushed(NodeId, usize, Pushed<V>),
    /// A subtree tombstone was anchored.
    Tombstone(NodeId),
    /// The key's attributes were set; these were the newest before. `pushed`: they moved to
    /// the older versions (else this transaction had set them already and they were replaced).
    AttrsSet {
        node: NodeId,
        before: (Seq, A),
        pushed: bool,
    },
}

impl<V: Copy, A: Copy + Default> Index<V, A> {
    /// Whether a transaction is being applied (begun, not yet committed or rolled back).
    pub fn in_transaction(&self) -> bool {
        self.pending.seq.is_some()
    }

    /// Starts applying transaction `seq`.
    pub fn begin(&mut self, seq: Seq) {
        assert!(
            self.pending.seq.is_none(),
            "a transaction is already being applied"
        );
        assert!(seq > self.applied, "sequence numbers must rise");
        debug_assert!(self.pending.undo.is_empty());
        self.pending.seq = Some(seq);
    }

    fn record(&mut self, undo: Undo<V, A>) -> Seq {
        let seq = self.seq();
        self.pending.undo.push(undo);
        seq
    }

    fn seq(&self) -> Seq {
        self.pending.seq.expect("begin() before changing the index")
    }

    /// Whether the key at `node` exists at the newest state (pending changes included).
    pub fn is_alive(&self, node: NodeId) -> bool {
        self.node(node).alive()
    }

    /// The id of the key at `node` at the newest state, if it exists.
    pub fn alive_id(&self, node: NodeId) -> Option<KeyId> {
        let n = self.node(node);
        n.alive().then_some(n.id)
    }

    /// Whether `node` has a subkey at the newest state.
    pub fn has_alive_children(&self, node: NodeId) -> bool {
        self.node(node)
            .children
            .values()
            .any(|&child| self.node(child).alive())
    }

    /// The value in `layer` at the newest state.
    pub fn value_now(&self, node: NodeId, layer: LayerId, folded_name: &str) -> Option<V> {
        let name = self.names.get(folded_name)?;
        let n = self.node(node);
        n.values()[n.slot(name, layer)?].chain.head().value
    }

    /// Creates key `id` named `name` under `parent`, with attributes `attrs`; returns its node.
    pub fn create_key(&mut self, parent: NodeId, name: &str, id: KeyId, attrs: A) -> NodeId {
        assert!(self.is_alive(parent), "parent of a new key must exist");
        assert!(!self.ids.contains_key(&id), "key ids are never reused");
        let seq = self.seq();
        let mut path = String::with_capacity(self.node(parent).path().len() + name.len() + 1);
        path.push_str(self.node(parent).path());
        if parent != self.root() {
            path.push('\\');
        }
        fold::fold_into(name, &mut path);
        let life = Life {
            created: seq,
            deleted: ALIVE,
            id,
            name: name.into(),
        };
        let node = match self.find(&path) {
            Some(node) => {
                let n = self.node_mut(node);
                assert!(!n.alive(), "creating a key that exists");
                let before = n.replace_newest(life);
                n.older_lives.push(before);
                self.record(Undo::LifeAdded(node));
                self.set_attrs(node, attrs);
                node
            }
            None => {
                let node = self.insert_node(parent, path, life, attrs);
                self.record(Undo::NodeCreated(node));
                node
            }
        };
        self.ids.insert(id, node);
        node
    }

    fn insert_node(&mut self, parent: NodeId, path: String, life: Life, attrs: A) -> NodeId {
        let hash = self.hash_path(&path);
        let node = Node::new(&path, life, parent, attrs);
        let child_key = ChildKey(node.folded_name().into());
        let block = node.block.as_ptr() as usize;
        let id = self.nodes.insert(node);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.paths.insert(hash, id, block, |n| {
            use std::hash::BuildHasher;
            hasher.hash_one(nodes.get(n).expect("node in table").path())
        });
        self.node_mut(parent).children.insert(child_key, id);
        id
    }

    /// Points the path table at the node's key block again (after it moved). Readers
    /// dereference that address: it must be right whenever the write lock is released.
    pub(crate) fn refresh_block(&mut self, node: NodeId) {
        let n = self.node(node);
        let block = n.block.as_ptr() as usize;
        let hash = self.hash_path(n.path());
        self.paths.set_block(hash, node, block);
    }

    /// Sets the attributes of the key at `node`, which must exist.
    pub fn set_attrs(&mut self, node: NodeId, attrs: A) {
        assert!(
            self.is_alive(node),
            "attributes of a key that does not exist"
        );
        let seq = self.seq();
        let n = self.node_mut(node);
        let head = n.block.head_mut();
        let before = (head.attrs_seq, head.attrs);
        debug_assert!(before.0 <= seq, "attribute versions must stay sorted");
        head.attrs_seq = seq;
        head.attrs = attrs;
        let pushed = before.0 < seq;
        if pushed {
            n.older_attrs.push(before);
        }
        self.record(Undo::AttrsSet {
            node,
            before,
            pushed,
        });
    }

    /// Removes a node from the table, its parent and the arena. Used by rollback and GC.
    pub(crate) fn remove_node(&mut self, node: NodeId) {
        let n = self.nodes.take(node).expect("removing a live node slot");
        debug_assert!(n.children.is_empty(), "removing a node with children");
        let hash = self.hash_path(n.path());
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.paths.remove(hash, node, |other| {
            use std::hash::BuildHasher;
            hasher.hash_one(nodes.get(other).expect("node in table").path())
        });
        self.node_mut(n.parent)
            .children
            .remove(&ChildKey(n.folded_name().into()));
    }

    /// Deletes the key at `node`, which must exist and have no subkeys.
    pub fn delete_key(&mut self, node: NodeId) {
        assert!(node != self.root(), "the root cannot be deleted");
        assert!(self.is_alive(node), "deleting a key that does not exist");
        assert!(
            !self.has_alive_children(node),
            "deleting a key that has subkeys"
        );
        self.end_life(node);
    }

    /// Deletes the key at `node` and every key below it.
    pub fn delete_tree(&mut self, node: NodeId) {
        assert!(node != self.root(), "the root cannot be deleted");
        assert!(self.is_alive(node), "deleting a key that does not exist");
        for descendant in self.live_subtree(node) {
            self.end_life(descendant);
        }
        self.end_life(node);
    }

    /// Subtree tombstone at `node`: every key below it and every value of it, as they are now,
    /// are gone as of this transaction; `node` itself stays, with its id. A restore writes this
    /// and then the replacement subtree in the same transaction.
    pub fn clear_subtree(&mut self, node: NodeId) {
        let below = self.live_subtree(node);
        self.end_lives(&below);
        self.tombstone(node);
    }

    /// Ends, as of this transaction, the lives of `keys` (with their values): the first part
    /// of [`Index::clear_subtree`] for a caller that does it in steps, with the keys
    /// [`Index::live_subtree`] gave it, in any order, then calls [`Index::tombstone`].
    pub fn end_lives(&mut self, keys: &[NodeId]) {
        for &key in keys {
            self.end_life(key);
        }
    }

    /// The last part of [`Index::clear_subtree`], once every key below `node` is gone: its
    /// values go, and the tombstone is recorded on it.
    pub fn tombstone(&mut self, node: NodeId) {
        assert!(
            self.is_alive(node),
            "tombstone on a key that does not exist"
        );
        debug_assert!(
            self.live_subtree(node).is_empty(),
            "a tombstone leaves nothing alive below its key"
        );
        self.delete_all_values(node);
        let seq = self.seq();
        self.node_mut(node).tombstones.push(seq);
        self.record(Undo::Tombstone(node));
    }

    fn end_life(&mut self, node: NodeId) {
        let seq = self.seq();
        self.delete_all_values(node);
        let n = self.node_mut(node);
        debug_assert!(n.alive());
        n.block.head_mut().deleted = seq;
        self.record(Undo::LifeEnded(node));
    }

    fn delete_all_values(&mut self, node: NodeId) {
        let seq = self.seq();
        let live: Vec<usize> = self
            .node(node)
            .values()
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.chain.head().value.is_some())
            .map(|(i, _)| i)
            .collect();
        for slot in live {
            self.push_version(node, slot, Version { seq, value: None });
        }
    }

    fn push_version(&mut self, node: NodeId, slot: usize, version: Version<V>) {
        let pushed = self.node_mut(node).values_mut()[slot].chain.push(version);
        self.record(Undo::VersionPushed(node, slot, pushed));
    }

    /// Sets value `folded_name` of the key at `node` in `layer`.
    pub fn set_value(&mut self, node: NodeId, layer: LayerId, folded_name: &str, value: V) {
        assert!(
            self.is_alive(node),
            "setting a value of a key that does not exist"
        );
        let seq = self.seq();
        let version = Version {
            seq,
            value: Some(value),
        };
        let name: NameId = self.names.intern(folded_name);
        match self.node(node).slot(name, layer) {
            Some(slot) => self.push_version(node, slot, version),
            None => {
                let block = &mut self.node_mut(node).block;
                if layer != 0 {
                    block.head_mut().layered += 1;
                }
                let moved = block.push(Slot {
                    name,
                    layer,
                    chain: Chain::new(version),
                });
                if moved {
                    self.refresh_block(node);
                }
                self.record(Undo::SlotAdded(node));
            }
        }
    }

    /// Deletes value `folded_name` in `layer`; returns whether it existed.
    pub fn delete_value(&mut self, node: NodeId, layer: LayerId, folded_name: &str) -> bool {
        assert!(
            self.is_alive(node),
            "deleting a value of a key that does not exist"
        );
        let seq = self.seq();
        let Some(name) = self.names.get(folded_name) else {
            return false;
        };
        let Some(slot) = self.node(node).slot(name, layer) else {
            return false;
        };
        if self.node(node).values()[slot].chain.head().value.is_none() {
            return false;
        }
        self.push_version(node, slot, Version { seq, value: None });
        true
    }

    /// Deletes every value held in `layer`, in every key that exists (a layer dropped whole);
    /// returns how many values were deleted.
    pub fn delete_layer(&mut self, layer: LayerId) -> u64 {
        let seq = self.seq();
        let mut deleted = 0;
        let mut live = Vec::new();
        for node in self.live_subtree(self.root()) {
            live.clear();
            live.extend(
                self.node(node)
                    .values()
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| slot.layer == layer && slot.chain.head().value.is_some())
                    .map(|(i, _)| i),
            );
            for &slot in &live {
                self.push_version(node, slot, Version { seq, value: None });
            }
            deleted += live.len() as u64;
        }
        deleted
    }

    /// Makes the pending transaction part of the index for good.
    pub fn commit(&mut self) -> Seq {
        let seq = self.pending.seq.take().expect("commit() without begin()");
        assert!(seq > self.applied);
        self.pending.undo.clear();
        self.pending.undo.shrink_to(UNDO_KEPT);
        self.applied = seq;
        seq
    }

    /// Makes room for `additional` more changes in the pending transaction's undo log at once,
    /// for a caller that knows it is about to make many (a restore): growing it by doublings
    /// would copy it all each time, with the state locked.
    pub fn reserve_changes(&mut self, additional: usize) {
        self.pending.undo.reserve(additional);
    }

    /// Undoes everything the pending transaction changed.
    pub fn rollback(&mut self) {
        if self.pending.seq.take().is_none() {
            return;
        }
        let mut undo_log = std::mem::take(&mut self.pending.undo);
        for undo in undo_log.drain(..).rev() {
            match undo {
                Undo::NodeCreated(node) => {
                    let id = self.node(node).id;
                    self.ids.remove(&id);
                    self.remove_node(node);
                }
                Undo::LifeAdded(node) => {
                    let n = self.node_mut(node);
                    let before = n.older_lives.pop().expect("an earlier incarnation");
                    let id = n.replace_newest(before).id;
                    self.ids.remove(&id);
                }
                Undo::LifeEnded(node) => self.node_mut(node).block.head_mut().deleted = ALIVE,
                Undo::SlotAdded(node) => {
                    let block = &mut self.node_mut(node).block;
                    let slot = block.pop().expect("an added slot to remove");
                    if slot.layer != 0 {
                        block.head_mut().layered -= 1;
                    }
                }
                Undo::AttrsSet {
                    node,
                    before,
                    pushed,
                } => {
                    let n = self.node_mut(node);
                    if pushed {
                        n.older_attrs.pop();
                    }
                    let head = n.block.head_mut();
                    (head.attrs_seq, head.attrs) = before;
                }
                Undo::VersionPushed(node, slot, pushed) => {
                    let kept = self.node_mut(node).values_mut()[slot].chain.undo(pushed);
                    assert!(kept, "a pushed version has one before it");
                }
                Undo::Tombstone(node) => {
                    self.node_mut(node).tombstones.pop();
                }
            }
        }
        self.pending.undo = undo_log;
    }
}
