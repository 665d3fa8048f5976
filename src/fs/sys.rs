//! The calls into the C library's allocator the FUSE layer makes.

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

/// Makes every thread allocate from one arena. By default the C allocator
/// gives each thread that allocates an arena of its own (up to sixteen on
/// this kind of machine), and each arena keeps its own free memory: values
/// built by one worker and dropped by another leave holes in several
/// arenas. Workers seldom allocate at once (one reads while requests finish
/// quickly, see `pool`), so sharing one costs little: 10,000 domains after
/// a read of each value and an `ls -l`: 40 MiB with many arenas, 27 with
/// one.
pub fn one_arena() {
    // SAFETY: mallopt takes two integers and only sets the allocator's own
    // parameters; a value it does not take is refused with 0.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
