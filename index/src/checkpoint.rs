//! The index as of one sequence number, as an image a checkpoint stores (rkyv), and the index
//! built back from it.
//!
//! The image is flat: nodes in pre-order (a parent before its children, children in name
//! order), each with counts of its incarnations, attribute versions, tombstones and value
//! slots, which follow in arrays of their own in the same order. Flat arrays of small records
//! validate and load fast, and the pre-order lets the loader insert each child into its
//! parent's children in order.
//!
//! An export runs in steps ([`Index::export_step`]), so the caller can release the index's
//! lock between them and writers go on. That is sound because an export at C keeps only what
//! is at or before C, and nothing at or before C changes once committed: later transactions
//! add versions, incarnations and nodes after it, and a rollback removes only what its own
//! transaction added. (GC would break this; nothing collects while an export runs.)
//!
//! Loading trusts the checksum and rkyv's validation for the bytes, and checks every
//! structural rule the index relies on (parents first, counts within the arrays, versions in
//! order, ids unique), so a damaged image is an error, never a panic or a wrong index.

use std::ops::Bound;

use rkyv::{Archive, Archived, Serialize};

use crate::fold;
use crate::names::NameId;
use crate::trie::{ALIVE, ChildKey, Index, Life, Node, Slot};
use crate::version_chain::{Chain, Version};
use crate::{KeyId, LayerId, NodeId, Seq};

/// The index as of sequence number `at`. `V` and `A` are the caller's images of what a value
/// version and a key's attributes hold.
#[derive(Archive, Serialize)]
pub struct IndexImage<V, A> {
    /// The snapshot it holds.
    pub at: Seq,
    names: Vec<String>,
    nodes: Vec<NodeImage>,
    lives: Vec<LifeImage>,
    attrs: Vec<AttrsImage<A>>,
    tombstones: Vec<Seq>,
    slots: Vec<SlotImage>,
    versions: Vec<VersionImage<V>>,
}

#[derive(Archive, Serialize)]
struct NodeImage {
    /// Position of the parent in `nodes` (the root is its own parent).
    parent: u32,
    /// The folded last component of the path.
    name: String,
    lives: u32,
    attrs: u32,
    tombstones: u32,
    slots: u32,
}

#[derive(Archive, Serialize)]
struct LifeImage {
    created: Seq,
    deleted: Seq,
    id: KeyId,
    name: String,
}

#[derive(Archive, Serialize)]
struct AttrsImage<A> {
    seq: Seq,
    attrs: A,
}

#[derive(Archive, Serialize)]
struct SlotImage {
    name: u32,
    layer: LayerId,
    versions: u32,
}

#[derive(Archive, Serialize)]
struct VersionImage<V> {
    seq: Seq,
    value: Option<V>,
}

/// An image of an index: the part of an `IndexImage` a caller may read.
impl<V, A> ArchivedIndexImage<V, A>
where
    V: Archive,
    A: Archive,
{
    /// The snapshot it holds.
    pub fn at(&self) -> Seq {
        self.at.to_native()
    }
}

/// An export in progress: the image so far and where the walk stands.
pub struct Export<V, A> {
    image: IndexImage<V, A>,
    /// The nodes being walked, root first: node, its position in the image, the last child
    /// visited.
    stack: Vec<(NodeId, u32, Option<ChildKey>)>,
    started: bool,
}

impl<V, A> Export<V, A> {
    /// Starts an export of the index as of `at`.
    pub fn new(at: Seq) -> Export<V, A> {
        Export {
            image: IndexImage {
                at,
                names: Vec::new(),
                nodes: Vec::new(),
                lives: Vec::new(),
                attrs: Vec::new(),
                tombstones: Vec::new(),
                slots: Vec::new(),
                versions: Vec::new(),
            },
            stack: Vec::new(),
            started: false,
        }
    }

    /// Nodes exported so far.
    pub fn nodes(&self) -> usize {
        self.image.nodes.len()
    }

    /// Value versions exported so far.
    pub fn versions(&self) -> usize {
        self.image.versions.len()
    }
}

/// What an export keeps and how it images it: which incarnations (by key id), what each value
/// version and attribute version becomes (`None`: left out).
pub struct ExportRules<'a, V, A, VI, AI> {
    /// Whether the incarnation with this id belongs in the image.
    pub keep_key: &'a dyn Fn(KeyId) -> bool,
    /// The image of a value version, or `None` to leave it out.
    pub value: &'a dyn Fn(&V) -> Option<VI>,
    /// The image of a key's attributes, or `None` to leave the version out (attributes of
    /// an incarnation left out).
    pub attrs: &'a dyn Fn(&A) -> Option<AI>,
}

/// Why an image cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError(pub String);

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImageError {}

fn bad(reason: impl Into<String>) -> ImageError {
    ImageError(reason.into())
}

impl<V: Copy, A: Copy + Default> Index<V, A> {
    /// Exports up to `budget` more nodes into `export`; returns true when the export is
    /// complete (and its image ready for [`Export::finish`]).
    pub fn export_step<VI, AI>(
        &self,
        export: &mut Export<VI, AI>,
        budget: usize,
        rules: &ExportRules<'_, V, A, VI, AI>,
    ) -> bool {
        if !export.started {
            export.started = true;
            self.export_node(export, self.root(), 0, "", rules);
            export.stack.push((self.root(), 0, None));
        }
        let at = export.image.at;
        let mut left = budget;
        while left > 0 {
            let Some((node, position, last)) = export.stack.last_mut() else {
                return true;
            };
            let children = &self.node(*node).children;
            let after = match last {
                Some(key) => children.range((Bound::Excluded(&*key), Bound::Unbounded)),
                None => children.range::<ChildKey, _>(..),
            };
            let mut next = None;
            for (key, &child) in after {
                // A node with no incarnation by `at` has no descendants by then either: a
                // key is created under a parent that exists.
                if self.node(child).lives_by(at, rules.keep_key) {
                    next = Some((key.clone(), child));
                    break;
                }
                *last = Some(key.clone());
            }
            let parent = *position;
            match next {
                Some((key, child)) => {
                    if let Some((_, _, last)) = export.stack.last_mut() {
                        *last = Some(key.clone());
                    }
                    let position = export.image.nodes.len() as u32;
                    self.export_node(export, child, parent, &key.0, rules);
                    export.stack.push((child, position, None));
                    left -= 1;
                }
                None => {
                    export.stack.pop();
                }
            }
        }
        export.stack.is_empty()
    }

    fn export_node<VI, AI>(
        &self,
        export: &mut Export<VI, AI>,
        node: NodeId,
        parent: u32,
        name: &str,
        rules: &ExportRules<'_, V, A, VI, AI>,
    ) {
        let at = export.image.at;
        let image = &mut export.image;
        let n = self.node(node);
        let newest = n.newest();
        let mut lives = 0;
        for life in n.older_lives.iter().chain(std::iter::once(&newest)) {
            if life.created <= at && (rules.keep_key)(life.id) {
                image.lives.push(LifeImage {
                    created: life.created,
                    deleted: if life.deleted > at {
                        ALIVE
                    } else {
                        life.deleted
                    },
                    id: life.id,
                    name: life.name.to_string(),
                });
                lives += 1;
            }
        }
        let head = n.block.head();
        let mut attrs = 0;
        for (seq, a) in n
            .older_attrs
            .iter()
            .chain(std::iter::once(&(head.attrs_seq, head.attrs)))
        {
            if *seq <= at
                && let Some(a) = (rules.attrs)(a)
            {
                image.attrs.push(AttrsImage {
                    seq: *seq,
                    attrs: a,
                });
                attrs += 1;
            }
        }
        let tombstones_before = image.tombstones.len();
        image
            .tombstones
            .extend(n.tombstones.iter().copied().filter(|&seq| seq <= at));
        let mut slots = 0;
        for slot in n.values() {
            let first = image.versions.len();
            for version in slot.chain.iter().filter(|version| version.seq <= at) {
                let value = match &version.value {
                    None => None,
                    Some(value) => match (rules.value)(value) {
                        Some(image) => Some(image),
                        None => continue,
                    },
                };
                image.versions.push(VersionImage {
                    seq: version.seq,
                    value,
                });
            }
            let versions = image.versions.len() - first;
            if versions > 0 {
                image.slots.push(SlotImage {
                    name: slot.name.0,
                    layer: slot.layer,
                    versions: versions as u32,
                });
                slots += 1;
            }
        }
        image.nodes.push(NodeImage {
            parent,
            name: name.to_string(),
            lives,
            attrs,
            tombstones: (image.tombstones.len() - tombstones_before) as u32,
            slots,
        });
    }

    /// Completes `export` with the value names (which only grow, so the names of every slot
    /// exported are among them) and returns the image.
    pub fn finish_export<VI, AI>(&self, export: Export<VI, AI>) -> IndexImage<VI, AI> {
        debug_assert!(
            export.stack.is_empty(),
            "finish_export before the last step"
        );
        let mut image = export.image;
        image.names = self.names.all().map(str::to_string).collect();
        image
    }

    /// Builds the index an image holds. `value` and `attrs` turn the caller's images back
    /// into what the index stores (and may refuse one).
    pub fn from_image<VI: Archive, AI: Archive>(
        image: &ArchivedIndexImage<VI, AI>,
        value: impl Fn(&Archived<VI>) -> Result<V, ImageError>,
        attrs: impl Fn(&Archived<AI>) -> Result<A, ImageError>,
    ) -> Result<Index<V, A>, ImageError> {
        let at = image.at.to_native();
        let mut index = Index::new();
        for (i, name) in image.names.iter().enumerate() {
            if index.names.intern(name.as_str()) != NameId(i as u32) {
                return Err(bad(format!("value name {i} appears twice")));
            }
        }
        let node_count = image.nodes.len();
        if node_count == 0 || node_count > u32::MAX as usize {
            return Err(bad(format!("{node_count} nodes")));
        }
        // Only the root is in the table yet.
        let root_hash = index.hash_path("");
        index.paths.reserve(node_count, |_| root_hash);
        let mut built: Vec<NodeId> = Vec::with_capacity(node_count);
        let mut cursor = Cursor::default();
        let mut path = String::new();
        for (i, record) in image.nodes.iter().enumerate() {
            let parent = record.parent.to_native() as usize;
            let name = record.name.as_str();
            if i == 0 {
                if parent != 0 || !name.is_empty() {
                    return Err(bad("the first node is not the root"));
                }
            } else if parent >= i {
                return Err(bad(format!("node {i} comes before its parent")));
            } else if name.is_empty() || name.contains('\\') || !fold::is_folded(name) {
                return Err(bad(format!("node {i} has an invalid name {name:?}")));
            }
            let lives = take(
                &image.lives,
                &mut cursor.lives,
                record.lives.to_native(),
                i,
                "incarnations",
            )?;
            let mut lives: Vec<Life> = lives
                .iter()
                .map(|life| Life {
                    created: life.created.to_native(),
                    deleted: life.deleted.to_native(),
                    id: life.id.to_native(),
                    name: life.name.as_str().into(),
                })
                .collect();
            check_lives(&lives, at).map_err(|reason| bad(format!("node {i}: {reason}")))?;
            let attr_images = take(
                &image.attrs,
                &mut cursor.attrs,
                record.attrs.to_native(),
                i,
                "attribute versions",
            )?;
            let mut attr_versions = Vec::with_capacity(attr_images.len());
            for a in attr_images {
                attr_versions.push((a.seq.to_native(), attrs(&a.attrs)?));
            }
            if attr_versions.is_empty()
                || !attr_versions.is_sorted_by(|x, y| x.0 < y.0)
                || attr_versions.last().is_some_and(|(seq, _)| *seq > at)
            {
                return Err(bad(format!("node {i}: attribute versions out of order")));
            }
            let tombstones: Vec<Seq> = take(
                &image.tombstones,
                &mut cursor.tombstones,
                record.tombstones.to_native(),
                i,
                "tombstones",
            )?
            .iter()
            .map(|seq| seq.to_native())
            .collect();
            if !tombstones.is_sorted() || tombstones.last().is_some_and(|&seq| seq > at) {
                return Err(bad(format!("node {i}: tombstones out of order")));
            }
            let newest = lives.pop().expect("check_lives: at least one incarnation");
            let (attrs_seq, newest_attrs) = attr_versions.pop().expect("checked non-empty");
            let node = if i == 0 {
                let root = index.root();
                let n = index.node_mut(root);
                n.replace_newest(newest);
                n.block.head_mut().attrs = newest_attrs;
                root
            } else {
                let parent_node = built[parent];
                path.clear();
                path.push_str(index.node(parent_node).path());
                if parent != 0 {
                    path.push('\\');
                }
                path.push_str(name);
                let n = Node::new(&path, newest, parent_node, newest_attrs);
                let block = n.block.as_ptr() as usize;
                let node = index.nodes.insert(n);
                let hash = index.hash_path(&path);
                index.paths.insert(hash, node, block, |_| {
                    unreachable!("the table was sized for every node")
                });
                let replaced = index
                    .node_mut(parent_node)
                    .children
                    .insert(ChildKey(name.into()), node);
                if replaced.is_some() {
                    return Err(bad(format!(
                        "node {i}: its parent has two children {name:?}"
                    )));
                }
                node
            };
            let slot_images = take(
                &image.slots,
                &mut cursor.slots,
                record.slots.to_native(),
                i,
                "slots",
            )?;
            let n = index.node_mut(node);
            n.block.head_mut().attrs_seq = attrs_seq;
            n.older_attrs = attr_versions;
            n.tombstones = tombstones;
            let mut moved = n.block.reserve_exact(slot_images.len());
            for slot in slot_images {
                let name = slot.name.to_native();
                if name as usize >= image.names.len() {
                    return Err(bad(format!("node {i}: value name {name} does not exist")));
                }
                let layer = slot.layer.to_native();
                if n.slot(NameId(name), layer).is_some() {
                    return Err(bad(format!("node {i}: two slots for one value")));
                }
                let versions = take(
                    &image.versions,
                    &mut cursor.versions,
                    slot.versions.to_native(),
                    i,
                    "value versions",
                )?;
                let chain =
                    chain_of(versions, at, &value).map_err(|e| bad(format!("node {i}: {e}")))?;
                if layer != 0 {
                    n.block.head_mut().layered += 1;
                }
                moved |= n.block.push(Slot {
                    name: NameId(name),
                    layer,
                    chain,
                });
            }
            if moved || i == 0 {
                index.refresh_block(node);
            }
            let newest_id = index.node(node).id;
            for id in lives.iter().map(|life| life.id).chain([newest_id]) {
                // The root's id 0 is in the table from `Index::new`.
                if index.ids.insert(id, node).is_some() && !(i == 0 && id == 0) {
                    return Err(bad(format!("key id {id} appears twice")));
                }
            }
            index.node_mut(node).older_lives = lives;
            built.push(node);
        }
        cursor.finish(image)?;
        index.applied = at;
        Ok(index)
    }
}

/// The version chain of one slot's `versions` (ascending, at or before `at`).
fn chain_of<V: Copy, VI: Archive>(
    versions: &[ArchivedVersionImage<VI>],
    at: Seq,
    value: &impl Fn(&Archived<VI>) -> Result<V, ImageError>,
) -> Result<Chain<V>, ImageError> {
    let version = |v: &ArchivedVersionImage<VI>| -> Result<Version<V>, ImageError> {
        let seq = v.seq.to_native();
        if seq > at {
            return Err(bad("a value version after the image's snapshot"));
        }
        let value = match v.value.as_ref() {
            None => None,
            Some(v) => Some(value(v)?),
        };
        Ok(Version { seq, value })
    };
    // Most values have one version: no vector for them.
    let Some((newest, older)) = versions.split_last() else {
        return Err(bad("a slot without versions"));
    };
    let newest = version(newest)?;
    if older.is_empty() {
        return Ok(Chain::new(newest));
    }
    let mut all = Vec::with_capacity(versions.len());
    for v in older {
        all.push(version(v)?);
    }
    all.push(newest);
    if !all.is_sorted_by(|a, b| a.seq < b.seq) {
        return Err(bad("value versions out of order"));
    }
    Chain::from_versions(all).ok_or_else(|| bad("a slot without versions"))
}

impl<V, A> Node<V, A> {
    /// Whether an incarnation `keep` accepts was created by `at`.
    fn lives_by(&self, at: Seq, keep: &dyn Fn(KeyId) -> bool) -> bool {
        (self.block.head().created <= at && keep(self.id))
            || self
                .older_lives
                .iter()
                .any(|life| life.created <= at && keep(life.id))
    }
}

/// Incarnations must be in order, end before the next begins, and only the newest may be
/// alive.
fn check_lives(lives: &[Life], at: Seq) -> Result<(), String> {
    let Some(newest) = lives.last() else {
        return Err("no incarnation".into());
    };
    for pair in lives.windows(2) {
        if pair[0].deleted == ALIVE || pair[0].deleted > pair[1].created {
            return Err("incarnations overlap".into());
        }
    }
    for life in lives {
        if life.created > at
            || (life.deleted != ALIVE && (life.deleted < life.created || life.deleted > at))
        {
            return Err("an incarnation outside the image's snapshot".into());
        }
    }
    if newest.created > at {
        return Err("an incarnation after the image's snapshot".into());
    }
    Ok(())
}

/// How far the loader has read into each array of the image.
#[derive(Default)]
struct Cursor {
    lives: usize,
    attrs: usize,
    tombstones: usize,
    slots: usize,
    versions: usize,
}

impl Cursor {
    /// Every array must have been read to its end.
    fn finish<VI: Archive, AI: Archive>(
        &self,
        image: &ArchivedIndexImage<VI, AI>,
    ) -> Result<(), ImageError> {
        let used = [
            (self.lives, image.lives.len()),
            (self.attrs, image.attrs.len()),
            (self.tombstones, image.tombstones.len()),
            (self.slots, image.slots.len()),
            (self.versions, image.versions.len()),
        ];
        if used.iter().any(|(read, len)| read != len) {
            return Err(bad("records that belong to no node"));
        }
        Ok(())
    }
}

fn take<'a, T>(
    all: &'a rkyv::vec::ArchivedVec<T>,
    at: &mut usize,
    count: u32,
    node: usize,
    what: &str,
) -> Result<&'a [T], ImageError> {
    let end = at
        .checked_add(count as usize)
        .filter(|&end| end <= all.len())
        .ok_or_else(|| {
            bad(format!(
                "node {node} claims more {what} than the image holds"
            ))
        })?;
    let taken = &all.as_slice()[*at..end];
    *at = end;
    Ok(taken)
}
