//! A key block: everything a point read needs, in one allocation.
//!
//! `[BlockHead | slot 0 | slot 1 | ...]`: the newest incarnation's lifetime, the key's newest
//! attributes (for the registry: its security descriptor, which every read checks), the folded
//! path (inline when short), and the value slots. The path table points at the block itself, so a
//! get costs one cache miss for the table slot and one (plus the adjacent lines the hardware
//! fetches along) for the block: the node, with what only writers and enumeration need, is
//! never touched (DESIGN.md: "slot, key node with its small values, the value bytes").
//!
//! It is a vector with a header, written by hand because the header must share the
//! allocation. Invariants: `head.len <= head.cap`; slots `[0, len)` are initialized; the
//! allocation has the layout `layout(cap)`. A block moves only when `push` grows it, and
//! `push` reports that so the owner can update the path table.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::Seq;
use crate::inline_path::InlinePath;

/// The fixed part of a block.
#[repr(C)]
pub(crate) struct BlockHead<A> {
    /// When the newest incarnation of the key was created.
    pub created: Seq,
    /// When it was deleted (`ALIVE` while it exists).
    pub deleted: Seq,
    /// When the newest attributes were set; older versions are in the node.
    pub attrs_seq: Seq,
    /// The newest attributes.
    pub attrs: A,
    len: u32,
    cap: u32,
    /// How many slots are outside the base layer (layer 0): reads of a key with none stop at
    /// the first slot of a name.
    pub layered: u32,
    /// The folded full path.
    pub path: InlinePath,
}

pub(crate) struct KeyBlock<A, T> {
    ptr: NonNull<BlockHead<A>>,
    owns: PhantomData<(A, T)>,
}

// SAFETY: a KeyBlock owns its head and slots like a Box and a Vec would.
unsafe impl<A: Send, T: Send> Send for KeyBlock<A, T> {}
// SAFETY: shared access only hands out shared references.
unsafe impl<A: Sync, T: Sync> Sync for KeyBlock<A, T> {}

/// Most slots a block holds (a key's values, every layer).
const SLOTS_MAX: usize = u32::MAX as usize;

impl<A, T> KeyBlock<A, T> {
    /// The layout of a block with room for `cap` slots, and where the slots start.
    fn layout(cap: usize) -> (Layout, usize) {
        let slots = Layout::array::<T>(cap).expect("a key's slots fit in memory");
        let (layout, offset) = Layout::new::<BlockHead<A>>()
            .extend(slots)
            .expect("a key's slots fit in memory");
        (layout.pad_to_align(), offset)
    }

    /// An empty block for a key at `path` with attributes `attrs` since `created`.
    pub(crate) fn new(path: &str, created: Seq, deleted: Seq, attrs: A) -> KeyBlock<A, T> {
        let (layout, _) = Self::layout(0);
        // SAFETY: the layout has a non-zero size (the head).
        let raw = unsafe { alloc::alloc(layout) }.cast::<BlockHead<A>>();
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        let head = BlockHead {
            created,
            deleted,
            attrs_seq: created,
            attrs,
            len: 0,
            cap: 0,
            layered: 0,
            path: InlinePath::new(path),
        };
        // SAFETY: fresh allocation, aligned for BlockHead.
        unsafe { ptr.as_ptr().write(head) };
        KeyBlock {
            ptr,
            owns: PhantomData,
        }
    }

    /// The block's address: what the path table points at.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr().cast::<u8>().cast_const()
    }

    pub(crate) fn head(&self) -> &BlockHead<A> {
        // SAFETY: the head is initialized for the block's whole life.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn head_mut(&mut self) -> &mut BlockHead<A> {
        // SAFETY: as for `head`, and `&mut self` is exclusive.
        unsafe { self.ptr.as_mut() }
    }

    fn slots_ptr(&self) -> *mut T {
        let (_, offset) = Self::layout(0);
        // SAFETY: the slots start `offset` bytes into the allocation.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(offset).cast::<T>() }
    }

    pub(crate) fn slots(&self) -> &[T] {
        // SAFETY: slots [0, len) are initialized (the invariant).
        unsafe { std::slice::from_raw_parts(self.slots_ptr(), self.head().len as usize) }
    }

    pub(crate) fn slots_mut(&mut self) -> &mut [T] {
        let len = self.head().len as usize;
        // SAFETY: as for `slots`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.slots_ptr(), len) }
    }

    /// The head and slots of the block at `ptr`.
    ///
    /// # Safety
    /// `ptr` is `as_ptr()` of a live block that nobody mutates for `'a`.
    #[inline]
    pub(crate) unsafe fn view<'a>(ptr: *const u8) -> (&'a BlockHead<A>, &'a [T]) {
        let (_, offset) = Self::layout(0);
        // SAFETY: the caller's contract; then as for `head` and `slots`.
        unsafe {
            let head = &*ptr.cast::<BlockHead<A>>();
            let slots = std::slice::from_raw_parts(ptr.add(offset).cast::<T>(), head.len as usize);
            (head, slots)
        }
    }

    /// Bytes the block holds (head, path spilled to the heap, room for slots).
    pub(crate) fn memory_bytes(&self) -> usize {
        let path = &self.head().path;
        let spilled = if path.is_inline() { 0 } else { path.len() };
        Self::layout(self.head().cap as usize).0.size() + spilled
    }

    /// Appends a slot. Returns true if the block moved (its address changed).
    pub(crate) fn push(&mut self, slot: T) -> bool {
        let (len, cap) = (self.head().len as usize, self.head().cap as usize);
        let moved = len == cap;
        if moved {
            // Grow by a quarter (at least four): a key's values are written once and kept,
            // so the slack of doubling would be memory held for good.
            self.grow(cap + (cap / 4).max(4));
        }
        // SAFETY: len < cap after growing; slot `len` is uninitialized memory of the block.
        unsafe { self.slots_ptr().add(len).write(slot) };
        self.head_mut().len += 1;
        moved
    }

    /// Makes room for exactly `total` slots (a block loaded whole): returns true if it moved.
    pub(crate) fn reserve_exact(&mut self, total: usize) -> bool {
        if total <= self.head().cap as usize {
            return false;
        }
        self.grow(total);
        true
    }

    fn grow(&mut self, new_cap: usize) {
        assert!(
            new_cap <= SLOTS_MAX,
            "a key holds at most 2^32 - 1 value slots"
        );
        let (old, _) = Self::layout(self.head().cap as usize);
        let (new, _) = Self::layout(new_cap);
        // SAFETY: `ptr` was allocated with `old` (the invariant); same alignment, and the new
        // size is non-zero.
        let raw = unsafe { alloc::realloc(self.ptr.as_ptr().cast::<u8>(), old, new.size()) };
        let Some(ptr) = NonNull::new(raw.cast::<BlockHead<A>>()) else {
            alloc::handle_alloc_error(new)
        };
        self.ptr = ptr;
        self.head_mut().cap = new_cap as u32;
    }

    /// Removes and returns the last slot.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let len = self.head().len as usize;
        let last = len.checked_sub(1)?;
        self.head_mut().len -= 1;
        // SAFETY: slot `last` was initialized and is now outside [0, len): read it out once.
        Some(unsafe { self.slots_ptr().add(last).read() })
    }

    /// Keeps the slots `keep` accepts, in order; the block does not move.
    pub(crate) fn retain_mut(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        let len = self.head().len as usize;
        let base = self.slots_ptr();
        // Shrink first, so a panic in `keep` leaks slots instead of dropping one twice.
        self.head_mut().len = 0;
        let mut kept = 0;
        for i in 0..len {
            // SAFETY: slots [i, len) are still initialized and owned here.
            unsafe {
                let slot = &mut *base.add(i);
                if keep(slot) {
                    if i != kept {
                        ptr::copy_nonoverlapping(base.add(i), base.add(kept), 1);
                    }
                    kept += 1;
                } else {
                    ptr::drop_in_place(base.add(i));
                }
            }
        }
        self.head_mut().len = kept as u32;
    }
}

impl<A, T> Drop for KeyBlock<A, T> {
    fn drop(&mut self) {
        let (layout, _) = Self::layout(self.head().cap as usize);
        // SAFETY: slots [0, len) and the head are initialized; nothing uses them after this,
        // and the allocation has `layout` (the invariant).
        unsafe {
            ptr::drop_in_place(self.slots_mut());
            ptr::drop_in_place(self.ptr.as_ptr());
            alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vector_with_a_header() {
        let mut block: KeyBlock<u8, String> = KeyBlock::new("MACHINE\\SOFTWARE", 3, u64::MAX, 7);
        let mut model: Vec<String> = Vec::new();
        let mut moves = 0;
        for i in 0..100 {
            let before = block.as_ptr();
            let moved = block.push(format!("slot {i}"));
            if block.as_ptr() != before {
                assert!(moved, "push reports every move");
            }
            moves += usize::from(moved);
            model.push(format!("slot {i}"));
            assert_eq!(block.slots(), &model[..]);
        }
        assert!(moves < 20, "growth is geometric ({moves} moves)");
        assert_eq!(block.pop(), model.pop());
        block.retain_mut(|slot| !slot.ends_with('7'));
        model.retain(|slot| !slot.ends_with('7'));
        assert_eq!(block.slots(), &model[..]);
        block.slots_mut()[0].push('!');
        model[0].push('!');
        // SAFETY: the block is alive and not mutated while viewed.
        let (head, slots) = unsafe { KeyBlock::<u8, String>::view(block.as_ptr()) };
        assert_eq!(slots, &model[..]);
        assert_eq!(&*head.path, "MACHINE\\SOFTWARE");
        assert_eq!((head.created, head.deleted), (3, u64::MAX));
        assert_eq!((head.attrs_seq, head.attrs), (3, 7));
        block.head_mut().deleted = 9;
        assert_eq!(block.head().deleted, 9);
        while block.pop().is_some() {}
        assert!(block.slots().is_empty());
    }
}
