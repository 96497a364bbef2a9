//! Memory hints: prefetches for point reads, huge pages for the index's large arrays.

/// Asks the CPU to start loading `ptr`'s cache line; a hint that never faults.
#[inline(always)]
pub fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing and cannot fault, whatever the
    // address (a dangling empty-Vec pointer included).
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Asks the kernel to back `[ptr, ptr + len)` with transparent huge pages where it can (only
/// whole, aligned 2 MiB extents inside the range qualify). With 4 KiB pages a random probe of a
/// table of many megabytes pays a TLB miss and a page walk on top of the cache miss; with huge
/// pages it mostly does not. Advice only: failure (or a kernel without THP) changes nothing.
pub(crate) fn advise_huge_pages<T>(ptr: *const T, len: usize) {
    const HUGE_PAGE_BYTES: usize = 2 << 20;
    let bytes = len * std::mem::size_of::<T>();
    if bytes < HUGE_PAGE_BYTES {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE_BYTES);
    let end = (ptr as usize + bytes) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: madvise changes no memory contents and the range lies inside a live allocation;
    // MADV_HUGEPAGE is advice the kernel may ignore.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}
