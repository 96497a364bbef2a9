//! The full-path table: hash of a folded key path → node.
//!
//! A point read must not walk the trie (DESIGN.md, "Index"): one probe here finds the key.
//! Open addressing with linear probing; a slot is 16 bytes: 32 bits of the hash as a tag, the
//! node, and the address of the node's key block (`key_block.rs`), so a read goes from the
//! slot straight to the block. That address is dereferenced by readers: whoever moves a
//! block updates it (`set_block`) before releasing the index's write lock. The tag only
//! filters: the caller verifies the full path. Deletion shifts later entries back, so there
//! are no tombstones to skip.

use crate::NodeId;

const EMPTY: u32 = u32::MAX;
/// The table doubles when more than 1/2 of it is used: short probes matter more than memory.
const LOAD_NUM: usize = 1;
const LOAD_DEN: usize = 2;
const CAPACITY_MIN: usize = 64;

#[derive(Clone, Copy)]
struct Slot {
    tag: u32,
    node: u32,
    block: usize,
}

const VACANT: Slot = Slot {
    tag: 0,
    node: EMPTY,
    block: 0,
};

pub(crate) struct PathTable {
    slots: Vec<Slot>,
    len: usize,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl PathTable {
    pub(crate) fn new() -> PathTable {
        PathTable {
            slots: huge_vec(CAPACITY_MIN),
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Starts fetching the slot `hash` probes first, so the caller can do other work while it
    /// arrives.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        let slot = &self.slots[hash as usize & self.mask()];
        crate::memory::prefetch(slot as *const Slot);
    }

    /// The first node stored under `hash` that `matches` accepts (the caller compares paths
    /// through each candidate's key block address).
    #[inline]
    pub(crate) fn probe(
        &self,
        hash: u64,
        mut matches: impl FnMut(NodeId, usize) -> bool,
    ) -> Option<NodeId> {
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.node == EMPTY {
                return None;
            }
            if slot.tag == tag && matches(NodeId(slot.node), slot.block) {
                return Some(NodeId(slot.node));
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `node` under `hash`. `rehash` gives the hash of any node already in the table
    /// (needed when the table grows).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        node: NodeId,
        block: usize,
        rehash: impl Fn(NodeId) -> u64,
    ) {
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow(&rehash);
        }
        self.place(
            Slot {
                tag: tag_of(hash),
                node: node.0,
                block,
            },
            hash,
        );
        self.len += 1;
    }

    fn place(&mut self, slot: Slot, hash: u64) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].node != EMPTY {
            debug_assert_ne!(self.slots[i].node, slot.node, "node inserted twice");
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    fn grow(&mut self, rehash: &impl Fn(NodeId) -> u64) {
        let doubled = huge_vec(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old.into_iter().filter(|slot| slot.node != EMPTY) {
            self.place(slot, rehash(NodeId(slot.node)));
        }
    }

    /// Makes room for `additional` more entries, so inserting them never grows the table.
    pub(crate) fn reserve(&mut self, additional: usize, rehash: impl Fn(NodeId) -> u64) {
        let needed = (self.len + additional) * LOAD_DEN / LOAD_NUM + 1;
        while self.slots.len() < needed {
            self.grow(&rehash);
        }
    }

    /// Updates the key block address of `node`, stored under `hash` (after the block moved).
    pub(crate) fn set_block(&mut self, hash: u64, node: NodeId, block: usize) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].node != EMPTY {
            if self.slots[i].node == node.0 {
                self.slots[i].block = block;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes `node`, stored under `hash`. `rehash` as for insert.
    pub(crate) fn remove(&mut self, hash: u64, node: NodeId, rehash: impl Fn(NodeId) -> u64) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].node != node.0 {
            assert_ne!(
                self.slots[i].node, EMPTY,
                "removing a node that is not in the table"
            );
            i = (i + 1) & mask;
        }
        self.slots[i] = VACANT;
        self.len -= 1;
        // Backward shift: move later entries of the cluster into the hole when their home
        // slot lies at or before it, so every entry stays reachable from its home.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.slots[j].node != EMPTY {
            let home = rehash(NodeId(self.slots[j].node)) as usize & mask;
            let distance_to_j = j.wrapping_sub(home) & mask;
            let distance_to_hole = hole.wrapping_sub(home) & mask;
            if distance_to_hole <= distance_to_j {
                self.slots[hole] = self.slots[j];
                self.slots[j] = VACANT;
                hole = j;
            }
            j = (j + 1) & mask;
        }
    }
}

/// A table of `len` vacant slots, in memory the kernel may back with huge pages: a random
/// probe of a large table then costs a cache miss without a TLB miss on top.
fn huge_vec(len: usize) -> Vec<Slot> {
    let slots = vec![VACANT; len];
    crate::memory::advise_huge_pages(slots.as_ptr(), slots.capacity());
    slots
}

impl PathTable {
    /// Bytes the table holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A deliberately poor hash so clusters and wrap-around happen.
    fn hash_of(n: u32) -> u64 {
        let low = u64::from(n % 7) * 9;
        (u64::from(n) << 32) | low
    }

    #[test]
    fn insert_find_remove_against_a_model() {
        let mut table = PathTable::new();
        let mut model: HashSet<u32> = HashSet::new();
        let mut state = 12345u64;
        for step in 0..20_000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (state >> 40) as u32 % 500;
            if model.contains(&n) && step % 3 == 0 {
                table.remove(hash_of(n), NodeId(n), |node| hash_of(node.0));
                model.remove(&n);
            } else if model.insert(n) {
                table.insert(hash_of(n), NodeId(n), n as usize, |node| hash_of(node.0));
            }
            assert_eq!(table.len(), model.len());
        }
        for n in 0..500u32 {
            let found = table
                .probe(hash_of(n), |node, block| node.0 == n && block == n as usize)
                .is_some();
            assert_eq!(found, model.contains(&n), "node {n}");
        }
    }
}
