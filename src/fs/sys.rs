//! The one call into the C library the FUSE layer makes.

/// Gives the C allocator's free pages back to the system. Loading a large
/// host parses every definition at once and keeps only their compact forms;
/// the freed memory lies between live blocks, where the allocator never
/// returns it by itself, and would stay in the resident set for good.
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointer and only walks the allocator's
    // own lists under its locks; any pad value is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}
