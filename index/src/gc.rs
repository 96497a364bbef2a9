//! Garbage collection: drop what no snapshot at or after a horizon can see.
//!
//! The caller picks the horizon: the oldest sequence number any live snapshot or the retained
//! history still needs. After collection, every read at a snapshot at or after the horizon
//! returns exactly what it returned before (tests/model checks this); reads before it are the
//! caller's to refuse.

use crate::trie::Index;
use crate::{NodeId, Seq};

/// What a collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Value versions dropped.
    pub versions: u64,
    /// Key incarnations dropped.
    pub lives: u64,
    /// Nodes (paths) dropped.
    pub nodes: u64,
}

impl<V: Copy, A: Copy + Default> Index<V, A> {
    /// Drops versions, incarnations and nodes invisible at every snapshot `>= horizon`.
    pub fn collect_garbage(&mut self, horizon: Seq) -> GcStats {
        assert!(self.pending.seq.is_none(), "collect between transactions");
        let mut stats = GcStats::default();
        // Children before parents, so a parent emptied by its children can go too.
        let mut order = vec![self.root()];
        order.extend(self.all_descendants(self.root()));
        for &node in order.iter().rev() {
            self.collect_node(node, horizon, &mut stats);
        }
        stats
    }

    /// One step of a collection for `horizon` that runs between transactions: up to
    /// `budget` node slots, downward from `cursor` (which starts at `None` and ends at
    /// `Some(0)`, when the collection is done and this returns `true`). Sound in steps
    /// because it keeps everything visible at or after the horizon, whatever changed
    /// between steps; a node emptied only by a later step's removal of its children stays
    /// (empty) until the next collection.
    pub fn collect_garbage_step(
        &mut self,
        horizon: Seq,
        cursor: &mut Option<u32>,
        budget: u32,
        stats: &mut GcStats,
    ) -> bool {
        assert!(self.pending.seq.is_none(), "collect between transactions");
        let end = cursor.unwrap_or_else(|| self.nodes.slots());
        let start = end.saturating_sub(budget);
        for slot in (start..end).rev() {
            let node = NodeId(slot);
            if self.nodes.get(node).is_some() {
                self.collect_node(node, horizon, stats);
            }
        }
        *cursor = Some(start);
        start == 0
    }

    fn all_descendants(&self, node: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![node];
        while let Some(current) = stack.pop() {
            for &child in self.node(current).children.values() {
                out.push(child);
                stack.push(child);
            }
        }
        out
    }

    fn collect_node(&mut self, node: NodeId, horizon: Seq, stats: &mut GcStats) {
        let is_root = node == self.root();
        let n = self.node_mut(node);
        let before: usize = n.values().iter().map(|slot| slot.chain.len()).sum();
        n.block.retain_mut(|slot| slot.chain.collect(horizon));
        let after: usize = n.values().iter().map(|slot| slot.chain.len()).sum();
        let layered = n.values().iter().filter(|slot| slot.layer != 0).count();
        n.block.head_mut().layered = layered as u32;
        // Attributes: keep those after the horizon and the one visible at it.
        let keep_from = if n.block.head().attrs_seq <= horizon {
            n.older_attrs.len()
        } else {
            let visible = n.older_attrs.partition_point(|&(seq, _)| seq <= horizon);
            visible.saturating_sub(1)
        };
        n.older_attrs.drain(..keep_from);
        stats.versions += (before - after) as u64;
        n.tombstones.retain(|&seq| seq > horizon);
        let mut dead_ids = Vec::new();
        n.older_lives.retain(|life| {
            let seen = life.deleted > horizon;
            if !seen {
                dead_ids.push(life.id);
            }
            seen
        });
        // `deleted <= horizon` also means not alive (alive is Seq::MAX).
        let gone = !is_root
            && n.block.head().deleted <= horizon
            && n.older_lives.is_empty()
            && n.values().is_empty()
            && n.children.is_empty();
        if gone {
            dead_ids.push(n.id);
        }
        stats.lives += dead_ids.len() as u64;
        for id in dead_ids {
            self.ids.remove(&id);
        }
        if gone {
            self.remove_node(node);
            stats.nodes += 1;
        }
    }
}
