//! The tree an offline hive holds: keys in an arena, each key's subkeys and values in maps
//! ordered as Windows orders names, descriptors shared by every key that has the same one.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use hivelog_index::LayerId;
use hivelog_index::fold::{cmp_utf16, fold};

use crate::error::{Error, Result, clip};
use crate::path::{DEPTH_MAX, check_key_name};
use crate::security::SecurityDescriptor;
use crate::value::Value;

/// A name case-folded, ordered by UTF-16 code units: the store's enumeration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Folded(Box<str>);

impl Folded {
    pub(super) fn of(name: &str) -> Folded {
        Folded(fold(name).into_boxed_str())
    }
}

impl Ord for Folded {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_utf16(&self.0, &other.0)
    }
}

impl PartialOrd for Folded {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One layer's value of one name: the name as first written (case-preserving), and the value.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub name: String,
    pub value: Value,
}

/// The values of a key, by folded name then layer: the versions of one name sit side by
/// side, lowest precedence first, so the effective one is the last.
pub(super) type Values = BTreeMap<(Folded, LayerId), Entry>;

/// The entries of one name, lowest precedence first.
pub(super) fn versions<'v>(
    values: &'v Values,
    folded: &Folded,
) -> impl DoubleEndedIterator<Item = (LayerId, &'v Entry)> + 'v {
    let low = (folded.clone(), LayerId::MIN);
    let high = (folded.clone(), LayerId::MAX);
    values
        .range((Bound::Included(low), Bound::Included(high)))
        .map(|((_, layer), entry)| (*layer, entry))
}

/// Every name's effective entry (its highest layer's), in name order.
pub(super) fn effective(values: &Values) -> impl Iterator<Item = &Entry> + '_ {
    let mut iter = values.iter().peekable();
    std::iter::from_fn(move || {
        loop {
            let ((name, _), entry) = iter.next()?;
            match iter.peek() {
                Some(((next, _), _)) if next == name => continue,
                _ => return Some(entry),
            }
        }
    })
}

/// A key's place in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct NodeIx(pub u32);

/// The root's place: it is created first and never deleted.
pub(super) const ROOT: NodeIx = NodeIx(0);

#[derive(Debug, Clone)]
pub(super) struct Node {
    /// As written when it was created ("" for the root).
    pub name: String,
    /// `None` for the root.
    pub parent: Option<NodeIx>,
    pub class: Option<String>,
    pub link: bool,
    pub descriptor: Arc<SecurityDescriptor>,
    pub values: Values,
    pub subkeys: BTreeMap<Folded, NodeIx>,
}

impl Node {
    pub(super) fn new(name: &str, parent: Option<NodeIx>, sd: Arc<SecurityDescriptor>) -> Node {
        Node {
            name: name.to_string(),
            parent,
            class: None,
            link: false,
            descriptor: sd,
            values: Values::new(),
            subkeys: BTreeMap::new(),
        }
    }
}

/// The keys, in an arena whose freed places are reused; the root at [`ROOT`].
#[derive(Debug, Clone)]
pub(super) struct Tree {
    nodes: Vec<Option<Node>>,
    free: Vec<NodeIx>,
    /// Live keys, the root included.
    keys: usize,
    /// Values of every layer.
    pub values: usize,
    /// Every descriptor a key was given, once. It only grows while the hive is open: a
    /// descriptor no key holds any longer is one small allocation.
    descriptors: HashSet<Arc<SecurityDescriptor>>,
}

impl Tree {
    pub(super) fn new(root: SecurityDescriptor) -> Tree {
        let mut tree = Tree {
            nodes: Vec::new(),
            free: Vec::new(),
            keys: 1,
            values: 0,
            descriptors: HashSet::new(),
        };
        let sd = tree.intern(root);
        tree.nodes.push(Some(Node::new("", None, sd)));
        tree
    }

    pub(super) fn keys(&self) -> usize {
        self.keys
    }

    /// The shared copy of `descriptor`.
    pub(super) fn intern(&mut self, descriptor: SecurityDescriptor) -> Arc<SecurityDescriptor> {
        if let Some(shared) = self.descriptors.get(&descriptor) {
            return shared.clone();
        }
        let shared = Arc::new(descriptor);
        self.descriptors.insert(shared.clone());
        shared
    }

    pub(super) fn node(&self, ix: NodeIx) -> &Node {
        self.nodes
            .get(ix.0 as usize)
            .and_then(Option::as_ref)
            .expect("a node index names a live key")
    }

    pub(super) fn node_mut(&mut self, ix: NodeIx) -> &mut Node {
        self.nodes
            .get_mut(ix.0 as usize)
            .and_then(Option::as_mut)
            .expect("a node index names a live key")
    }

    /// The subkey `name` of `parent`.
    pub(super) fn child(&self, parent: NodeIx, name: &str) -> Option<NodeIx> {
        self.node(parent).subkeys.get(&Folded::of(name)).copied()
    }

    /// The key at `names` below the root, or the deepest key that exists on the way and how
    /// many of the names lead to it.
    pub(super) fn walk(&self, names: &[&str]) -> (NodeIx, usize) {
        let mut at = ROOT;
        for (found, name) in names.iter().enumerate() {
            match self.child(at, name) {
                Some(child) => at = child,
                None => return (at, found),
            }
        }
        (at, names.len())
    }

    /// Adds key `name` under `parent`, which has no subkey of that name. The caller checks
    /// the limits first.
    pub(super) fn add(
        &mut self,
        parent: NodeIx,
        name: &str,
        sd: Arc<SecurityDescriptor>,
    ) -> NodeIx {
        let folded = Folded::of(name);
        assert!(
            !self.node(parent).subkeys.contains_key(&folded),
            "a key is added once"
        );
        let node = Node::new(name, Some(parent), sd);
        let ix = match self.free.pop() {
            Some(ix) => {
                self.nodes[ix.0 as usize] = Some(node);
                ix
            }
            None => {
                let ix =
                    NodeIx(u32::try_from(self.nodes.len()).expect("OFFLINE_KEYS_MAX fits u32"));
                self.nodes.push(Some(node));
                ix
            }
        };
        self.node_mut(parent).subkeys.insert(folded, ix);
        self.keys += 1;
        ix
    }

    /// Removes `ix` and everything below it.
    pub(super) fn remove_tree(&mut self, ix: NodeIx) {
        assert_ne!(ix, ROOT, "the root is never removed");
        let node = self.node(ix);
        let parent = node.parent.expect("only the root has no parent");
        let folded = Folded::of(&node.name);
        self.node_mut(parent).subkeys.remove(&folded);
        let mut stack = vec![ix];
        while let Some(ix) = stack.pop() {
            let node = self.nodes[ix.0 as usize]
                .take()
                .expect("a subtree's keys are live");
            stack.extend(node.subkeys.values());
            self.values -= node.values.len();
            self.keys -= 1;
            self.free.push(ix);
        }
    }

    /// The keys in the order a backup writes them: parents first, subkeys in name order,
    /// each key's whole subtree before its next sibling.
    pub(super) fn preorder(&self) -> impl Iterator<Item = NodeIx> + '_ {
        let mut stack = vec![ROOT];
        std::iter::from_fn(move || {
            let ix = stack.pop()?;
            // Reversed, so the stack hands them out in name order.
            stack.extend(self.node(ix).subkeys.values().rev());
            Some(ix)
        })
    }

    /// The names from the root down to `ix` ("" for the root), as written.
    pub(super) fn path_of(&self, ix: NodeIx) -> String {
        let mut names = Vec::new();
        let mut at = ix;
        while let Some(parent) = self.node(at).parent {
            names.push(self.node(at).name.as_str());
            at = parent;
        }
        names.reverse();
        names.join("\\")
    }
}

/// The names of a path relative to the root (`""` the root, `A\B`, one trailing backslash
/// allowed as `reg` allows it), each checked, within DEPTH_MAX (the root counts as one level,
/// as a hive root does).
pub(super) fn parse(path: &str) -> Result<Vec<&str>> {
    // `\` is the root, as errors show it.
    let trimmed = path.strip_prefix('\\').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('\\').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = trimmed.split('\\').collect();
    for name in &names {
        if name.is_empty() {
            return Err(Error::EmptyKeyName { path: clip(path) });
        }
        check_key_name(name)?;
    }
    if 1 + names.len() > DEPTH_MAX {
        return Err(Error::TooDeep {
            path: clip(path),
            depth: 1 + names.len(),
            max: DEPTH_MAX,
        });
    }
    Ok(names)
}

/// A path as errors show it: from the root, which is `\`.
pub(super) fn shown(names: &[&str]) -> String {
    shown_path(&names.join("\\"))
}

/// As [`shown`], of a path of names joined (`A\B`, "" for the root).
pub(super) fn shown_path(path: &str) -> String {
    format!("\\{path}")
}
