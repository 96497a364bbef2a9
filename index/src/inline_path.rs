//! A folded path stored inside its key block when it is short, so that verifying a path-table
//! hit reads the block's own cache lines instead of chasing a pointer (one cache miss fewer per
//! point read; DESIGN.md counts them).

use std::ops::Deref;

/// Paths up to this many bytes live inline (registry paths are mostly 30–70 bytes).
const INLINE_BYTES: usize = 68;

pub(crate) struct InlinePath {
    len: u32,
    inline: [u8; INLINE_BYTES],
    heap: Option<Box<str>>,
}

impl InlinePath {
    pub(crate) fn new(path: &str) -> InlinePath {
        let mut inline = [0u8; INLINE_BYTES];
        let heap = match inline.get_mut(..path.len()) {
            Some(room) => {
                room.copy_from_slice(path.as_bytes());
                None
            }
            None => Some(path.into()),
        };
        InlinePath {
            len: u32::try_from(path.len()).expect("paths are far shorter than 4 GiB"),
            inline,
            heap,
        }
    }
}

impl InlinePath {
    /// Whether the path lives inside the struct (not on the heap).
    pub(crate) fn is_inline(&self) -> bool {
        self.heap.is_none()
    }
}

impl Deref for InlinePath {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        match &self.heap {
            Some(heap) => heap,
            // SAFETY: `inline[..len]` was copied whole from a `&str` in `new`, so it is valid
            // UTF-8, and nothing writes it afterwards.
            None => unsafe { std::str::from_utf8_unchecked(&self.inline[..self.len as usize]) },
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
            assert_eq!(&*InlinePath::new(&path), path);
        }
    }
}
