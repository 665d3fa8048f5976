//! The one unsafe call of the command: fork, wrapped so that it happens only
//! while the process has a single thread.

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
