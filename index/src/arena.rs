//! The node arena: slots in fixed-size chunks that never move.
//!
//! A `Vec` of nodes doubles and copies itself as it grows; for a few hundred thousand 256-byte
//! nodes that is a copy of tens of megabytes, and fresh pages the kernel zeroes, at every
//! doubling (measured: a quarter of a bulk load's time). Chunks are allocated once and kept;
//! an id costs one more (cached) lookup in the small chunk table.

use crate::NodeId;

/// Slots per chunk; a power of two so an id splits with a shift and a mask.
const CHUNK_SLOTS: usize = 4096;
const CHUNK_SHIFT: u32 = CHUNK_SLOTS.trailing_zeros();

pub(crate) struct Arena<T> {
    chunks: Vec<Box<[Option<T>]>>,
    /// Slots handed out so far (the next new id).
    len: usize,
    /// Slots emptied by `take`, reused before new ones.
    free: Vec<NodeId>,
}

impl<T> Arena<T> {
    pub(crate) fn new() -> Arena<T> {
        Arena {
            chunks: Vec::new(),
            len: 0,
            free: Vec::new(),
        }
    }

    #[inline]
    fn split(id: NodeId) -> (usize, usize) {
        let index = id.0 as usize;
        (index >> CHUNK_SHIFT, index & (CHUNK_SLOTS - 1))
    }

    #[inline]
    pub(crate) fn get(&self, id: NodeId) -> Option<&T> {
        let (chunk, slot) = Self::split(id);
        self.chunks.get(chunk)?[slot].as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: NodeId) -> Option<&mut T> {
        let (chunk, slot) = Self::split(id);
        self.chunks.get_mut(chunk)?[slot].as_mut()
    }

    /// Stores `value` in a free slot (a reused one first) and returns its id.
    pub(crate) fn insert(&mut self, value: T) -> NodeId {
        if let Some(id) = self.free.pop() {
            let (chunk, slot) = Self::split(id);
            debug_assert!(self.chunks[chunk][slot].is_none());
            self.chunks[chunk][slot] = Some(value);
            return id;
        }
        let id = NodeId(u32::try_from(self.len).expect("fewer than 2^32 nodes"));
        let (chunk, slot) = Self::split(id);
        if chunk == self.chunks.len() {
            let fresh: Box<[Option<T>]> = (0..CHUNK_SLOTS).map(|_| None).collect();
            crate::memory::advise_huge_pages(fresh.as_ptr(), fresh.len());
            self.chunks.push(fresh);
        }
        self.chunks[chunk][slot] = Some(value);
        self.len += 1;
        id
    }

    /// Empties slot `id` and returns what it held.
    pub(crate) fn take(&mut self, id: NodeId) -> Option<T> {
        let (chunk, slot) = Self::split(id);
        let value = self.chunks.get_mut(chunk)?[slot].take()?;
        self.free.push(id);
        Some(value)
    }

    /// Slots ever used: every id is below this.
    pub(crate) fn slots(&self) -> u32 {
        u32::try_from(self.len).expect("fewer than 2^32 nodes")
    }

    /// Every occupied slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter().flatten())
    }

    /// Bytes the arena holds (its slots, not what they point to).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.chunks.len() * CHUNK_SLOTS * std::mem::size_of::<Option<T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_reused_after_take() {
        let mut arena = Arena::new();
        let ids: Vec<NodeId> = (0..10_000u32).map(|i| arena.insert(i)).collect();
        assert_eq!(arena.get(ids[9_999]), Some(&9_999));
        assert_eq!(arena.take(ids[5]), Some(5));
        assert_eq!(arena.get(ids[5]), None);
        assert_eq!(arena.take(ids[5]), None);
        let reused = arena.insert(77);
        assert_eq!(reused, ids[5]);
        assert_eq!(arena.get(reused), Some(&77));
        assert_eq!(arena.iter().count(), 10_000);
        assert_eq!(arena.get(NodeId(1 << 30)), None);
    }
}
