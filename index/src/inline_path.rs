//! A folded path stored inside its key block when it is short, so that verifying a path-table
//! hit reads the block's own cache lines instead of chasing a pointer (one cache miss fewer per
//! point read; DESIGN.md counts them).
//!
//! A longer path lives on the heap, and its address takes the place of the inline bytes: the
//! struct is its length and one buffer, so the key block's head stays small enough that the
//! first value slot shares a cache line with the end of the path (measured with W3: a head
//! 24 bytes longer cost 15% of the point reads).

use std::ops::Deref;

/// Paths up to this many bytes live inline (registry paths are mostly 30–70 bytes).
const INLINE_BYTES: usize = 68;
const ADDRESS_BYTES: usize = std::mem::size_of::<usize>();
const _: () = assert!(INLINE_BYTES >= ADDRESS_BYTES);

pub(crate) struct InlinePath {
    len: u32,
    /// The path's bytes, or (when it is longer than INLINE_BYTES) in the first
    /// ADDRESS_BYTES the address of its heap copy, a leaked `Box<[u8]>` of `len` bytes.
    bytes: [u8; INLINE_BYTES],
}

// SAFETY: the heap copy is owned by the struct alone, like a Box.
unsafe impl Send for InlinePath {}
// SAFETY: shared access only reads.
unsafe impl Sync for InlinePath {}

impl InlinePath {
    pub(crate) fn new(path: &str) -> InlinePath {
        let len = u32::try_from(path.len()).expect("paths are far shorter than 4 GiB");
        let mut bytes = [0u8; INLINE_BYTES];
        match bytes.get_mut(..path.len()) {
            Some(room) => room.copy_from_slice(path.as_bytes()),
            None => {
                let heap: Box<[u8]> = path.as_bytes().into();
                let address = Box::into_raw(heap).cast::<u8>() as usize;
                bytes[..ADDRESS_BYTES].copy_from_slice(&address.to_ne_bytes());
            }
        }
        InlinePath { len, bytes }
    }

    /// Whether the path lives inside the struct (not on the heap).
    pub(crate) fn is_inline(&self) -> bool {
        self.len as usize <= INLINE_BYTES
    }

    /// The heap copy's address (only for a path that is not inline).
    fn heap(&self) -> *mut u8 {
        debug_assert!(!self.is_inline());
        let mut address = [0u8; ADDRESS_BYTES];
        address.copy_from_slice(&self.bytes[..ADDRESS_BYTES]);
        usize::from_ne_bytes(address) as *mut u8
    }
}

impl Deref for InlinePath {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        let len = self.len as usize;
        let bytes = if self.is_inline() {
            &self.bytes[..len]
        } else {
            // SAFETY: a path longer than INLINE_BYTES was copied into a leaked `Box<[u8]>` of
            // `len` bytes whose address `new` stored; it is freed only by `drop`.
            unsafe { std::slice::from_raw_parts(self.heap(), len) }
        };
        // SAFETY: the bytes were copied whole from a `&str` in `new`, so they are valid UTF-8,
        // and nothing writes them afterwards.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl Drop for InlinePath {
    fn drop(&mut self) {
        if !self.is_inline() {
            let slice = std::ptr::slice_from_raw_parts_mut(self.heap(), self.len as usize);
            // SAFETY: the address and length are those of the Box `new` leaked, and this is
            // the only place that frees it.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_paths_read_back() {
        for len in [
            0,
            1,
            40,
            INLINE_BYTES - 1,
            INLINE_BYTES,
            INLINE_BYTES + 1,
            500,
        ] {
            let path: String = "É".repeat(len / 2) + &"A".repeat(len % 2);
            let inline = InlinePath::new(&path);
            assert_eq!(&*inline, path);
            assert_eq!(inline.is_inline(), path.len() <= INLINE_BYTES);
        }
        assert_eq!(std::mem::size_of::<InlinePath>(), 4 + INLINE_BYTES);
    }
}
