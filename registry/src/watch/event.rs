//! Events: what a committed transaction did, key by key, and which watches want each.

use std::collections::HashSet;
use std::sync::Arc;

use hivelog_index::fold::fold;
use hivelog_log::{Rejected, Seq, TxnView};

use super::{Scope, WatchFilter};
use crate::history::path_of;
use crate::op::Op;
use crate::store::State;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchEventKind {
    /// The key was created.
    KeyCreated,
    /// The key was deleted, with its subtree if it had one.
    KeyDeleted,
    /// A value of the key was set in a layer.
    ValueSet {
        /// The layer.
        layer: Arc<str>,
        /// The value's name.
        name: Arc<str>,
    },
    /// A value of the key was deleted from a layer.
    ValueDeleted {
        /// The layer.
        layer: Arc<str>,
        /// The value's name.
        name: Arc<str>,
    },
    /// The key's security descriptor changed.
    SecurityChanged,
    /// The key's subtree was replaced by a restore: one event for the whole restore.
    SubtreeRestored,
    /// A layer was dropped with every value it held (the path is empty: any key may have
    /// lost values).
    LayerDropped {
        /// The layer.
        layer: Arc<str>,
    },
    /// The watch's queue could not take the events that followed `rescan_from`: they are
    /// lost to this watch, which has every event through `rescan_from`. Rescan the watched
    /// keys, or watch again from `rescan_from`. Nothing more is queued until the queue has
    /// been emptied.
    Overflow {
        /// The last sequence number whose events the watch has in full.
        rescan_from: Seq,
    },
}

/// One change, after commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    /// The transaction.
    pub seq: Seq,
    /// The key, named as it was at `seq` (`Machine\Software\App`); a deleted key as it was
    /// before. Empty for LayerDropped; the watched key for Overflow. Shared: every watch
    /// that reports an event holds the same text.
    pub path: Arc<str>,
    /// What changed.
    pub kind: WatchEventKind,
}

/// An event with its key's folded path, which scopes are matched against.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub event: WatchEvent,
    pub folded: String,
}

impl Change {
    pub(crate) fn new(event: WatchEvent) -> Change {
        let folded = fold(&event.path);
        Change { event, folded }
    }
}

/// Whether folded path `path` is `root` or below it.
pub(crate) fn is_within(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('\\'))
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('\\').map(|at| &path[..at])
}

impl Scope {
    /// Whether this watch reports `change`.
    pub(crate) fn matches(&self, change: &Change) -> bool {
        use WatchEventKind::*;
        let wanted = match change.event.kind {
            KeyCreated | KeyDeleted => WatchFilter::SUBKEYS,
            ValueSet { .. } | ValueDeleted { .. } | LayerDropped { .. } => WatchFilter::VALUES,
            SecurityChanged => WatchFilter::SECURITY,
            SubtreeRestored => WatchFilter(0),
            Overflow { .. } => unreachable!("the pump makes overflow events per watch"),
        };
        if !self.filter.contains(wanted) {
            return false;
        }
        let path = change.folded.as_str();
        match change.event.kind {
            LayerDropped { .. } => true,
            // The watched key went with a deletion or restore above it.
            KeyDeleted | SubtreeRestored if is_within(&self.root, path) => true,
            _ if self.subtree => is_within(path, &self.root),
            // A key alone: its own values and descriptor, and its subkeys' comings and
            // goings.
            KeyCreated | KeyDeleted => path == self.root || parent(path) == Some(&self.root),
            _ => path == self.root,
        }
    }
}

/// The changes of committed transaction `txn`'s records, in their order (see `settle`).
/// Keys are named as `hivelog log` names them; no value's data is read.
pub(crate) fn events_of(state: &State, txn: &TxnView<'_>) -> Result<Vec<Change>, Rejected> {
    let (seq, before) = (txn.seq, txn.seq.saturating_sub(1));
    let path = |id, at| path_of(state, id, at, seq);
    let layer = |id| -> Arc<str> { state.layers.name_at(id, seq).into() };
    let mut changes = Vec::new();
    for record in txn.ops {
        let op = Op::decode(record.payload).map_err(|short| Rejected(short.0.to_string()))?;
        let (path, kind) = match op {
            Op::CreateKey { id, .. } => (path(id, seq), WatchEventKind::KeyCreated),
            Op::DeleteKey { id } | Op::DeleteTree { id } => {
                (path(id, before), WatchEventKind::KeyDeleted)
            }
            Op::ClearSubtree { id } => (path(id, seq), WatchEventKind::SubtreeRestored),
            Op::SetValue {
                key,
                layer: id,
                name,
                ..
            } => (
                path(key, seq),
                WatchEventKind::ValueSet {
                    layer: layer(id),
                    name: name.into(),
                },
            ),
            Op::DeleteValue {
                key,
                layer: id,
                name,
            } => (
                path(key, seq),
                WatchEventKind::ValueDeleted {
                    layer: layer(id),
                    name: name.into(),
                },
            ),
            Op::SetSecurity { id, .. } => (path(id, seq), WatchEventKind::SecurityChanged),
            Op::DropLayer { id } => (
                String::new(),
                WatchEventKind::LayerDropped {
                    layer: state.layers.name_at(id, before).into(),
                },
            ),
            Op::SetKeyFlags { .. }
            | Op::SetKeyClass { .. }
            | Op::CreateLayer { .. }
            | Op::Audit { .. } => continue,
        };
        changes.push(Change::new(WatchEvent {
            seq,
            path: path.into(),
            kind,
        }));
    }
    Ok(changes)
}

/// One transaction's changes (journaled and volatile) as its watches see them: a key the
/// transaction created reports its creation only, not the descriptor it was created with;
/// a restore reports one SubtreeRestored for its key and nothing of what it wrote below it.
pub(crate) fn settle(changes: Vec<Change>) -> Vec<Change> {
    let mut created: HashSet<String> = HashSet::new();
    let mut restored: Vec<String> = Vec::new();
    let mut kept = Vec::with_capacity(changes.len());
    for change in changes {
        let folded = &change.folded;
        if restored.iter().any(|root| is_within(folded, root)) {
            continue;
        }
        match change.event.kind {
            WatchEventKind::KeyCreated => {
                created.insert(folded.clone());
            }
            WatchEventKind::SecurityChanged if created.contains(folded) => continue,
            WatchEventKind::SubtreeRestored => restored.push(folded.clone()),
            _ => {}
        }
        kept.push(change);
    }
    kept
}
