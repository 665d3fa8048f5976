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

/// Fixes the sizes past which the C allocator maps a block of its own and
/// gives free memory at the heap's end back. By default both thresholds
/// rise with the largest mapped block freed: loading a host frees blocks
/// of many MiB, after which every block up to that size comes from the
/// heap. Then fuser's receive buffer per worker (16 MiB each, touched only
/// as far as requests reach) lies at the heap's end, so nothing under it
/// is ever given back, and a listing's entries or a growing map's old table,
/// once freed, stay resident as holes between live blocks.
pub fn fixed_thresholds() {
    // SAFETY: as in `one_arena`: two integers, the allocator's own settings.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Blocks this large and larger get a mapping of their own: fuser's
/// 16 MiB receive buffers do, while a buffer the size of a read (the
/// kernel's 128 KiB, plus a header) stays on the heap. At 128 KiB,
/// `state` reads ran at about 21,200/s in three `scripts/bench --quick`
/// runs against 22,300 to 25,800/s without fixed thresholds; at 256 KiB
/// they ran at 27,100/s, with RSS at 10,000 domains 17.4 MiB (16.7 at
/// 128 KiB, 19.1 at 1 MiB).
const MMAP_THRESHOLD: i32 = 256 * 1024;
/// Free memory past this at the heap's end is given back: twice the mmap
/// threshold, glibc's own rule, so buffers freed at the top do not shrink
/// and regrow the heap on every request.
const TRIM_THRESHOLD: i32 = 512 * 1024;
