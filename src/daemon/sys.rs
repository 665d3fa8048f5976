//! The unsafe calls of the command: fork, wrapped so that it happens only
//! while the process has a single thread, and the crash report's signal
//! handler, which makes only async-signal-safe calls.

use nix::unistd::ForkResult;

/// The threads of this process, from /proc/self/task.
fn threads() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// fork(2), refused unless this process has exactly one thread.
pub fn fork() -> Result<ForkResult, String> {
    match threads() {
        Ok(1) => {}
        Ok(n) => {
            return Err(format!(
                "cannot leave the foreground with {n} threads running"
            ))
        }
        Err(e) => return Err(format!("counting threads in /proc/self/task: {e}")),
    }
    // SAFETY: the process has one thread (checked just above, and nothing
    // between the check and here starts one), so no lock or allocator state
    // can be held by a thread that the child would lack; the child is an
    // ordinary single-threaded process that goes on running safe Rust.
    unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))
}

/// glibc's stack walker, async-signal-safe once primed (its first call may
/// load libgcc_s, which `report_crashes` does before any crash).
mod walker {
    use std::ffi::{c_int, c_void};
    extern "C" {
        pub fn backtrace(buffer: *mut *mut c_void, size: c_int) -> c_int;
        pub fn backtrace_symbols_fd(buffer: *const *mut c_void, size: c_int, fd: c_int);
    }
}

/// The signals a crash raises, and the actions they had before (Rust's own
/// stack-overflow report for SIGSEGV and SIGBUS), which the report hands
/// back to.
const FATAL: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];
static PREVIOUS: std::sync::OnceLock<[libc::sigaction; 4]> = std::sync::OnceLock::new();

/// Writes `n` in hexadecimal into `out` without allocating; its length.
fn hex(mut n: usize, out: &mut [u8; 18]) -> usize {
    let digits = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = 0;
    loop {
        tmp[i] = digits[n & 15];
        n >>= 4;
        i += 1;
        if n == 0 || i == 16 {
            break;
        }
    }
    out[0] = b'0';
    out[1] = b'x';
    for k in 0..i {
        out[2 + k] = tmp[i - 1 - k];
    }
    i + 2
}

extern "C" fn on_fatal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let mut addr = [0u8; 18];
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let fault = unsafe { (*info).si_addr() } as usize;
    let len = hex(fault, &mut addr);
    let name: &[u8] = match sig {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        libc::SIGILL => b"SIGILL",
        _ => b"SIGFPE",
    };
    let mut frames = [std::ptr::null_mut(); 64];
    // SAFETY: only async-signal-safe calls: write(2) of buffers on this
    // stack, glibc's backtrace (primed at install) into a local array of
    // the size given, backtrace_symbols_fd (no allocation) to stderr.
    unsafe {
        let _ = libc::write(2, b"domfs: crashed with ".as_ptr().cast(), 20);
        let _ = libc::write(2, name.as_ptr().cast(), name.len());
        let _ = libc::write(2, b" at address ".as_ptr().cast(), 12);
        let _ = libc::write(2, addr.as_ptr().cast(), len);
        let _ = libc::write(2, b"; stack:\n".as_ptr().cast(), 9);
        let n = walker::backtrace(frames.as_mut_ptr(), frames.len() as libc::c_int);
        walker::backtrace_symbols_fd(frames.as_ptr(), n, 2);
    }
    // Hand the signal back to the action it had: returning re-runs the
    // faulting instruction, which now meets that action (Rust's overflow
    // report, or death with a core dump).
    match (PREVIOUS.get(), FATAL.iter().position(|s| *s == sig)) {
        // SAFETY: restores an action the kernel gave us for this signal.
        (Some(prev), Some(i)) => unsafe {
            libc::sigaction(sig, &prev[i], std::ptr::null_mut());
        },
        // SAFETY: the default action, always valid.
        _ => unsafe {
            libc::signal(sig, libc::SIG_DFL);
        },
    }
}

/// Makes a crash (a fault in domfs or in a C library it loaded, such as
/// libxenlight) leave its signal, address and stack on stderr (the journal
/// under systemd) before the process dies as it would have.
pub fn report_crashes() {
    let mut frames = [std::ptr::null_mut(); 4];
    // SAFETY: primes glibc's walker (it may load libgcc_s now, not in a
    // handler) into a local array of the size given.
    unsafe { walker::backtrace(frames.as_mut_ptr(), frames.len() as libc::c_int) };
    // SAFETY: reads each signal's current action into a zeroed struct.
    let previous = FATAL.map(|sig| unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old
    });
    // Kept before the handler exists, so a handler always finds them.
    let _ = PREVIOUS.set(previous);
    for sig in FATAL {
        // SAFETY: sigaction with a zeroed struct filled field by field (a
        // valid sigaction), an SA_SIGINFO handler of the matching
        // signature, run on the alternate stack Rust gives every thread.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_fatal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}
