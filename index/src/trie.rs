//! The trie of key nodes and every read of it.
//!
//! A node stands for one path (folded). It keeps the incarnations of the key at that path
//! (a key deleted and created again is a new incarnation with a new id), its value slots, one
//! per (layer, value name), each a version chain, and its children in name order. Point reads
//! go through the path table, never down the trie; the trie serves enumeration and subtree work.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::arena::Arena;
use crate::fold;
use crate::key_block::KeyBlock;
use crate::memory::prefetch;
use crate::names::{NameId, Names};
use crate::path_table::PathTable;
use crate::version_chain::{Chain, Version};
use crate::{KeyId, LayerId, NodeId, Seq};

/// `deleted` of an incarnation that is alive.
pub(crate) const ALIVE: Seq = Seq::MAX;

/// One incarnation of a key. The lifetime comes first: a read checks it before the rest.
#[derive(Debug, Clone)]
#[repr(C)]
pub(crate) struct Life {
    pub created: Seq,
    /// First sequence number at which it no longer exists; `ALIVE` while it does.
    pub deleted: Seq,
    pub id: KeyId,
    /// The name as written when it was created.
    pub name: Box<str>,
}

impl Life {
    #[inline]
    fn visible_at(&self, at: Seq) -> bool {
        self.created <= at && at < self.deleted
    }
}

pub(crate) struct Slot<V> {
    pub name: NameId,
    pub layer: LayerId,
    pub chain: Chain<V>,
}

/// A child's folded name, ordered as Windows orders names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildKey(pub Box<str>);

impl Ord for ChildKey {
    fn cmp(&self, other: &Self) -> Ordering {
        fold::cmp_utf16(&self.0, &other.0)
    }
}

impl PartialOrd for ChildKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One path's key: what a point read needs sits in the key block (the newest incarnation's
/// lifetime, the path, the value slots); the rest is for writers, enumeration and history.
pub(crate) struct Node<V, A> {
    pub block: KeyBlock<A, Slot<V>>,
    /// Attributes before the newest (which is in the block), oldest first.
    pub older_attrs: Vec<(Seq, A)>,
    /// The newest incarnation's id and name (its lifetime is in the block).
    pub id: KeyId,
    pub name: Box<str>,
    pub parent: NodeId,
    pub older_lives: Vec<Life>,
    pub children: BTreeMap<ChildKey, NodeId>,
    /// Subtree tombstones anchored here (sequence numbers of restores).
    pub tombstones: Vec<Seq>,
}

/// An incarnation as a read sees it.
pub(crate) struct LifeRef<'a> {
    pub id: KeyId,
    pub name: &'a str,
    pub created: Seq,
}

impl<V, A: Copy> Node<V, A> {
    pub(crate) fn new(path: &str, life: Life, parent: NodeId, attrs: A) -> Node<V, A> {
        Node {
            block: KeyBlock::new(path, life.created, life.deleted, attrs),
            older_attrs: Vec::new(),
            id: life.id,
            name: life.name,
            parent,
            older_lives: Vec::new(),
            children: BTreeMap::new(),
            tombstones: Vec::new(),
        }
    }

    /// The folded full path ("" for the root).
    pub(crate) fn path(&self) -> &str {
        &self.block.head().path
    }

    pub(crate) fn values(&self) -> &[Slot<V>] {
        self.block.slots()
    }

    pub(crate) fn values_mut(&mut self) -> &mut [Slot<V>] {
        self.block.slots_mut()
    }

    /// The newest incarnation, whole.
    pub(crate) fn newest(&self) -> Life {
        let head = self.block.head();
        Life {
            created: head.created,
            deleted: head.deleted,
            id: self.id,
            name: self.name.clone(),
        }
    }

    /// Makes `life` the newest incarnation; returns the one it replaces.
    pub(crate) fn replace_newest(&mut self, life: Life) -> Life {
        let before = self.newest();
        let head = self.block.head_mut();
        head.created = life.created;
        head.deleted = life.deleted;
        self.id = life.id;
        self.name = life.name;
        before
    }

    #[inline]
    pub(crate) fn life_at(&self, at: Seq) -> Option<LifeRef<'_>> {
        let head = self.block.head();
        if head.created <= at && at < head.deleted {
            return Some(LifeRef {
                id: self.id,
                name: &self.name,
                created: head.created,
            });
        }
        if at >= head.created {
            return None;
        }
        self.older_lives
            .iter()
            .rev()
            .find(|life| life.visible_at(at))
            .map(|life| LifeRef {
                id: life.id,
                name: &life.name,
                created: life.created,
            })
    }

    /// An incarnation that existed at some point inside transaction `at`: one visible at
    /// `at`, one the transaction ended (visible just before it), or one it began and ended.
    pub(crate) fn life_during(&self, at: Seq) -> Option<LifeRef<'_>> {
        if let Some(life) = self
            .life_at(at)
            .or_else(|| self.life_at(at.saturating_sub(1)))
        {
            return Some(life);
        }
        let head = self.block.head();
        if head.created == at && head.deleted == at {
            return Some(LifeRef {
                id: self.id,
                name: &self.name,
                created: head.created,
            });
        }
        self.older_lives
            .iter()
            .rev()
            .find(|life| life.created == at && life.deleted == at)
            .map(|life| LifeRef {
                id: life.id,
                name: &life.name,
                created: life.created,
            })
    }

    pub(crate) fn alive(&self) -> bool {
        self.block.head().deleted == ALIVE
    }

    /// The folded last component of the path.
    pub(crate) fn folded_name(&self) -> &str {
        self.path().rsplit('\\').next().unwrap_or("")
    }

    #[inline]
    pub(crate) fn slot(&self, name: NameId, layer: LayerId) -> Option<usize> {
        slot_in(self.values(), name, layer)
    }
}

/// The slot of value `name` in `layer` among `slots`.
#[inline]
fn slot_in<V>(slots: &[Slot<V>], name: NameId, layer: LayerId) -> Option<usize> {
    slots
        .iter()
        .position(|slot| slot.name == name && slot.layer == layer)
}

/// Value `name` as `sel` picks it among `slots` at `at`. `layered` counts the slots outside
/// the base layer: when there are none, the first slot of the name is the only one, and the
/// scan stops there (the common case: most keys never see a second layer).
#[inline]
fn pick<V: Copy>(
    slots: &[Slot<V>],
    layered: u32,
    name: NameId,
    sel: LayerSel,
    at: Seq,
) -> Option<V> {
    match sel {
        LayerSel::Only(layer) => {
            let slot = slot_in(slots, name, layer)?;
            slots[slot].chain.at(at)?.value
        }
        LayerSel::Effective if layered == 0 => {
            let slot = slots.iter().position(|slot| slot.name == name)?;
            slots[slot].chain.at(at)?.value
        }
        // The layer id is its precedence: the highest layer holding a value wins. A plain
        // loop: the name compare rejects most slots, and only a higher layer's version is
        // looked up.
        LayerSel::Effective => {
            let mut best: Option<(LayerId, V)> = None;
            for slot in slots {
                if slot.name != name || best.is_some_and(|(layer, _)| layer > slot.layer) {
                    continue;
                }
                if let Some(value) = slot.chain.at(at).and_then(|version| version.value) {
                    best = Some((slot.layer, value));
                }
            }
            best.map(|(_, value)| value)
        }
    }
}

/// Which layers a value read looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSel {
    /// The effective value: the one in the highest layer that holds the name (a layer's id is
    /// its precedence).
    Effective,
    /// One layer only.
    Only(LayerId),
}

/// What a point read found: the key as of the snapshot and, if it has one, the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointRead<V, A> {
    /// The key's node.
    pub node: NodeId,
    /// The key's attributes as of the snapshot.
    pub attrs: A,
    /// The value, if the key has it.
    pub value: Option<V>,
}

/// A key as it exists at some snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAt<'a> {
    /// Its node (stable while the index holds the path).
    pub node: NodeId,
    /// The incarnation's id.
    pub id: KeyId,
    /// Its name as created.
    pub name: &'a str,
    /// When it was created.
    pub created: Seq,
}

/// A value as it exists at some snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueAt<'a, V> {
    /// The folded value name.
    pub name: &'a str,
    /// The layer it lives in.
    pub layer: LayerId,
    /// The value (what the index's user stored: typically where the data is).
    pub value: V,
    /// The transaction that wrote it.
    pub seq: Seq,
}

/// Counts for `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Keys alive at the snapshot.
    pub keys: u64,
    /// Values (every layer) present at the snapshot.
    pub values: u64,
    /// Versions held, all history included.
    pub versions: u64,
    /// Nodes held (paths ever used and not collected).
    pub nodes: u64,
    /// Approximate bytes of memory the index holds.
    pub memory_bytes: u64,
}

/// The in-memory index of keys and versioned values. `V` is what a value version points to
/// (for the registry: where the value lives in the journal).
pub struct Index<V, A = ()> {
    pub(crate) nodes: Arena<Node<V, A>>,
    pub(crate) paths: PathTable,
    pub(crate) hasher: foldhash::fast::RandomState,
    pub(crate) names: Names,
    pub(crate) ids: HashMap<KeyId, NodeId, foldhash::fast::RandomState>,
    pub(crate) pending: crate::apply::Pending<V, A>,
    pub(crate) applied: Seq,
}

impl<V: Copy, A: Copy + Default> Default for Index<V, A> {
    fn default() -> Self {
        Index::new()
    }
}

impl<V: Copy, A: Copy + Default> Index<V, A> {
    /// An empty index: the root node (id 0, path "") alive since sequence number 0, with
    /// default attributes.
    pub fn new() -> Index<V, A> {
        let root = Node::new(
            "",
            Life {
                created: 0,
                deleted: ALIVE,
                id: 0,
                name: "".into(),
            },
            NodeId(0),
            A::default(),
        );
        let mut nodes = Arena::new();
        let root_id = nodes.insert(root);
        debug_assert_eq!(root_id, NodeId(0));
        let mut index = Index {
            nodes,
            paths: PathTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            names: Names::default(),
            ids: HashMap::default(),
            pending: crate::apply::Pending::default(),
            applied: 0,
        };
        let hash = index.hash_path("");
        let block = index.node(NodeId(0)).block.as_ptr() as usize;
        index.paths.insert(hash, NodeId(0), block, |_| hash);
        index.ids.insert(0, NodeId(0));
        index
    }

    /// The root node, parent of the hives.
    pub fn root(&self) -> NodeId {
        NodeId(0)
    }

    pub(crate) fn hash_path(&self, folded: &str) -> u64 {
        self.hasher.hash_one(folded)
    }

    #[inline]
    pub(crate) fn node(&self, node: NodeId) -> &Node<V, A> {
        self.nodes.get(node).expect("a NodeId names a live slot")
    }

    pub(crate) fn node_mut(&mut self, node: NodeId) -> &mut Node<V, A> {
        self.nodes
            .get_mut(node)
            .expect("a NodeId names a live slot")
    }

    /// The node for a folded path, whether or not a key exists there now.
    #[inline]
    pub fn find(&self, folded_path: &str) -> Option<NodeId> {
        let hash = self.hash_path(folded_path);
        self.paths
            .probe(hash, |_, block| self.block_path(block) == folded_path)
    }

    /// The path in the key block at `block`, an address from the path table.
    #[inline]
    fn block_path(&self, block: usize) -> &str {
        // SAFETY: a path-table entry holds the address of its node's key block (kept so by every
        // change that moves a block, under the index's write lock), and `&self` means no
        // writer holds that lock now.
        let (head, _) = unsafe { KeyBlock::<A, Slot<V>>::view(block as *const u8) };
        &head.path
    }

    /// The key at `node` as of snapshot `at`, if one exists then.
    #[inline]
    pub fn key_at(&self, node: NodeId, at: Seq) -> Option<KeyAt<'_>> {
        let n = self.node(node);
        n.life_at(at).map(|life| KeyAt {
            node,
            id: life.id,
            name: life.name,
            created: life.created,
        })
    }

    /// The key at a folded path as of `at`.
    #[inline]
    pub fn key_by_path(&self, folded_path: &str, at: Seq) -> Option<KeyAt<'_>> {
        self.key_at(self.find(folded_path)?, at)
    }

    /// The node that holds (or held) key `id`.
    pub fn node_of(&self, id: KeyId) -> Option<NodeId> {
        self.ids.get(&id).copied()
    }

    /// The node's parent (the root is its own parent).
    pub fn parent(&self, node: NodeId) -> NodeId {
        self.node(node).parent
    }

    /// The folded full path of a node.
    pub fn folded_path(&self, node: NodeId) -> &str {
        self.node(node).path()
    }

    /// The display path of the key at `node` as of `at`: each component as created.
    pub fn display_path(&self, node: NodeId, at: Seq) -> Option<String> {
        let mut parts = Vec::new();
        let mut current = node;
        while current != self.root() {
            parts.push(self.key_at(current, at)?.name);
            current = self.parent(current);
        }
        parts.reverse();
        Some(parts.join("\\"))
    }

    /// As [`display_path`](Index::display_path), naming too the keys that transaction `at`
    /// created and deleted itself (which exist at no snapshot): the path a change made inside
    /// that transaction had.
    pub fn display_path_during(&self, node: NodeId, at: Seq) -> Option<String> {
        let mut parts = Vec::new();
        let mut current = node;
        while current != self.root() {
            parts.push(self.node(current).life_during(at)?.name);
            current = self.parent(current);
        }
        parts.reverse();
        Some(parts.join("\\"))
    }

    /// Subkeys of `node` that exist at `at`, in name order.
    pub fn children_at(&self, node: NodeId, at: Seq) -> impl Iterator<Item = KeyAt<'_>> + '_ {
        self.node(node)
            .children
            .values()
            .filter_map(move |&child| self.key_at(child, at))
    }

    /// The value `folded_name` as `sel` picks it among the layers, as of `at`.
    #[inline]
    pub fn value_at(&self, node: NodeId, sel: LayerSel, folded_name: &str, at: Seq) -> Option<V> {
        let name = self.names.get(folded_name)?;
        let n = self.node(node);
        pick(n.values(), n.block.head().layered, name, sel, at)
    }

    /// The attributes of the key at `node` as of `at` (whichever incarnation held the path
    /// then: the caller checks that one existed).
    pub fn attrs_at(&self, node: NodeId, at: Seq) -> A {
        let n = self.node(node);
        let head = n.block.head();
        if head.attrs_seq <= at {
            return head.attrs;
        }
        let older = n.older_attrs.partition_point(|&(seq, _)| seq <= at);
        older
            .checked_sub(1)
            .and_then(|i| n.older_attrs.get(i))
            .map_or_else(A::default, |&(_, attrs)| attrs)
    }

    /// The attributes of the key at `node` at the newest state.
    pub fn attrs_now(&self, node: NodeId) -> A {
        self.node(node).block.head().attrs
    }

    /// The point read: the key at `folded_path` and its value `folded_name` as `sel` picks it,
    /// as of `at`. `None` if no key exists there then. The path-table slot is fetched while
    /// the value name is looked up; then the key block holds the key's lifetime, attributes
    /// and value slots, so the node itself is never touched when the newest incarnation and
    /// attributes are the ones visible.
    #[inline]
    pub fn value_by_path(
        &self,
        folded_path: &str,
        folded_name: &str,
        sel: LayerSel,
        at: Seq,
    ) -> Option<PointRead<V, A>> {
        let hash = self.hash_path(folded_path);
        self.paths.prefetch(hash);
        let name = self.names.get(folded_name);
        let mut found = 0;
        let node = self.paths.probe(hash, |_, block| {
            found = block;
            self.block_path(block) == folded_path
        })?;
        // SAFETY: as in `block_path`.
        let (head, slots) = unsafe { KeyBlock::<A, Slot<V>>::view(found as *const u8) };
        if !(head.created <= at && at < head.deleted && head.attrs_seq <= at) {
            // An older incarnation, or older attributes, may be the visible ones: ask the node.
            self.key_at(node, at)?;
            return Some(PointRead {
                node,
                attrs: self.attrs_at(node, at),
                value: self.value_at(node, sel, folded_name, at),
            });
        }
        Some(PointRead {
            node,
            attrs: head.attrs,
            value: name.and_then(|name| pick(slots, head.layered, name, sel, at)),
        })
    }

    /// Every value of `node` present at `at`, every layer, in no particular order (the order
    /// of its slots): for a reader that wants them all and no names (a backup).
    pub fn stored_values_at(&self, node: NodeId, at: Seq) -> impl Iterator<Item = V> + '_ {
        self.node(node)
            .values()
            .iter()
            .filter_map(move |slot| slot.chain.at(at)?.value)
    }

    /// Lets `relocate` change, in place, the value of every slot of `node` present at `at`
    /// (in the order [`Index::stored_values_at`] yields them). For compaction, which moves
    /// the records the values name: `relocate` must leave what a reader sees unchanged.
    pub fn relocate_values_at(&mut self, node: NodeId, at: Seq, mut relocate: impl FnMut(&mut V)) {
        for slot in self.node_mut(node).values_mut() {
            if let Some(value) = slot.chain.at_mut(at).and_then(|v| v.value.as_mut()) {
                relocate(value);
            }
        }
    }

    /// Starts loading the nodes of `node`'s subkeys into the cache, for a walk about to visit
    /// them all: their misses then overlap instead of coming one after another.
    pub fn prefetch_children(&self, node: NodeId) {
        for &child in self.node(node).children.values() {
            prefetch(self.node(child));
        }
    }

    /// Every value of `node` present at `at`, every layer, ordered by name then layer.
    pub fn values_at(&self, node: NodeId, at: Seq) -> Vec<ValueAt<'_, V>> {
        let mut values: Vec<ValueAt<'_, V>> = self
            .node(node)
            .values()
            .iter()
            .filter_map(|slot| {
                let version: &Version<V> = slot.chain.at(at)?;
                Some(ValueAt {
                    name: self.names.name(slot.name),
                    layer: slot.layer,
                    value: version.value?,
                    seq: version.seq,
                })
            })
            .collect();
        values.sort_by(|a, b| fold::cmp_utf16(a.name, b.name).then(a.layer.cmp(&b.layer)));
        values
    }

    /// Subtree tombstones anchored at `node` (sequence numbers), oldest first.
    pub fn tombstones(&self, node: NodeId) -> &[Seq] {
        &self.node(node).tombstones
    }

    /// Counts as of `at`, and memory held.
    pub fn stats(&self, at: Seq) -> IndexStats {
        let mut stats = IndexStats::default();
        let mut memory = self.paths.memory_bytes() + self.names.memory_bytes();
        memory += self.nodes.memory_bytes();
        memory += self.ids.capacity() * 24;
        for node in self.nodes.iter() {
            stats.nodes += 1;
            if node.life_at(at).is_some() && !node.path().is_empty() {
                stats.keys += 1;
            }
            memory += node.name.len() + node.block.memory_bytes();
            memory += node.older_lives.capacity() * std::mem::size_of::<Life>();
            memory += node.children.len() * (std::mem::size_of::<(ChildKey, NodeId)>() + 16);
            for slot in node.values() {
                stats.versions += slot.chain.len() as u64;
                if slot.chain.len() > 1 {
                    memory += 24 + (slot.chain.len() - 1) * std::mem::size_of::<Version<V>>();
                }
                if slot.chain.at(at).is_some_and(|v| v.value.is_some()) {
                    stats.values += 1;
                }
            }
        }
        stats.memory_bytes = memory as u64;
        stats
    }

    /// Keys below `node` that exist at the newest state, parents before children.
    pub fn live_subtree(&self, node: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![node];
        while let Some(current) = stack.pop() {
            for &child in self.node(current).children.values() {
                if self.node(child).alive() {
                    out.push(child);
                    stack.push(child);
                }
            }
        }
        out
    }
}
