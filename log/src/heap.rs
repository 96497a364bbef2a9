//! A file's bytes on the heap, written through raw pointers as a mapping is: what the
//! in-memory and the simulated file systems hold a file in.

use std::io;

/// A zeroed heap allocation of a file's length, aligned as a mapping's pages.
pub(crate) struct HeapBytes {
    memory: *mut u8,
    len: usize,
    layout: std::alloc::Layout,
}

// SAFETY: `memory` is a heap allocation owned by this value; concurrent access follows the
// journal's segment discipline (segment.rs), as it does for a real mapping.
unsafe impl Send for HeapBytes {}
// SAFETY: as for Send.
unsafe impl Sync for HeapBytes {}

impl HeapBytes {
    /// `len` zero bytes (the allocator takes large ones from the OS as untouched pages).
    pub(crate) fn zeroed(len: usize) -> io::Result<HeapBytes> {
        let layout =
            std::alloc::Layout::from_size_align(len.max(1), 4096).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let memory = unsafe { std::alloc::alloc_zeroed(layout) };
        if memory.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "no memory for a file held in memory",
            ));
        }
        Ok(HeapBytes {
            memory,
            len,
            layout,
        })
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.memory
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `data` in at `offset`, within the file's length.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = usize::try_from(offset)
            .ok()
            .and_then(|start| start.checked_add(data.len()))
            .filter(|&end| end <= self.len)
            .ok_or_else(|| io::Error::other("write past the end of a file held in memory"))?;
        // SAFETY: in bounds (checked); the journal writes only bytes no one reads yet.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.memory.add(end - data.len()),
                data.len(),
            )
        };
        Ok(())
    }

    /// The first `end` bytes (at most the length). Only sound while no one writes them.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn prefix(&self, end: usize) -> &[u8] {
        // SAFETY: `memory` holds `len` initialized (zeroed or written) bytes; the caller
        // guarantees no writer of the range.
        unsafe { std::slice::from_raw_parts(self.memory, end.min(self.len)) }
    }
}

impl Drop for HeapBytes {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.memory, self.layout) };
    }
}
