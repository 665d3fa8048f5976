//! Leaving the foreground as mount helpers must: `mount` runs domfs and
//! waits for it, so domfs forks, the parent waits on a pipe, and the child
//! reports over it once the filesystem is mounted and serving (exit 0), or
//! why it could not be (the reason on stderr, exit 1). With `-f` the same
//! readiness goes to systemd instead (`READY=1`, Type=notify).
//!
//! The fork happens before any thread exists; `sys::fork` checks it.

mod sys;

pub use sys::report_crashes;

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use sd_notify::NotifyState;
use std::fs::File;
use std::io::{Read, Write};

/// Longest message the parent reads from the child.
const MAX_MESSAGE: usize = 64 * 1024;
const READY: &[u8] = b"ready\n";

/// How this process says "mounted and serving" or "failed".
pub enum Ready {
    /// `-f`: tell systemd, when it started us (a no-op otherwise).
    Foreground,
    /// The daemonised child: the pipe the waiting parent reads; None once
    /// the parent has been answered.
    Pipe(Option<File>),
}

impl Ready {
    /// The filesystem is mounted and answers.
    pub fn serving(&mut self, status: &str) {
        match self {
            Ready::Foreground => {
                if let Err(e) =
                    sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
                {
                    log::warn!("telling systemd we are ready: {e}");
                }
            }
            Ready::Pipe(pipe) => {
                if let Some(mut f) = pipe.take() {
                    // The parent may have been killed; then nobody waits.
                    let _ = f.write_all(READY);
                }
            }
        }
    }

    /// A status line for systemctl status (foreground under systemd only).
    pub fn status(&self, status: &str) {
        if let Ready::Foreground = self {
            let _ = sd_notify::notify(&[NotifyState::Status(status)]);
        }
    }

    /// Unmounting on request.
    pub fn stopping(&self) {
        if let Ready::Foreground = self {
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
        }
    }

    /// domfs failed: before readiness the waiting command says why; after
    /// it, the log does.
    pub fn failed(&mut self, message: &str) {
        match self {
            Ready::Pipe(Some(f)) => {
                let _ = f.write_all(message.as_bytes());
            }
            Ready::Pipe(None) => log::error!("{message}"),
            Ready::Foreground => eprintln!("domfs: {message}"),
        }
    }
}

/// Forks. The parent waits for the child's report and exits with it; the
/// child returns, in a new session with its standard streams on /dev/null
/// and its log on syslog, holding the pipe to report on.
pub fn detach() -> Result<Ready, String> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    match sys::fork()? {
        ForkResult::Parent { child } => {
            drop(w);
            std::process::exit(wait_for(File::from(r), child))
        }
        ForkResult::Child => {
            drop(r);
            let mut ready = Ready::Pipe(Some(File::from(w)));
            if let Err(e) = into_background() {
                ready.failed(&e);
                std::process::exit(1);
            }
            Ok(ready)
        }
    }
}

/// The child's side: its own session (no terminal's signals reach it) and
/// standard streams that no longer hold the caller's pipes open (a caller
/// that reads our stderr to its end would otherwise wait for the unmount).
fn into_background() -> Result<(), String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    crate::logging::to_syslog();
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("dup2: {e}"))?;
    nix::unistd::dup2_stdout(&null).map_err(|e| format!("dup2: {e}"))?;
    nix::unistd::dup2_stderr(&null).map_err(|e| format!("dup2: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// The parent's side: the exit code for `mount`, having printed the reason
/// of a failure.
fn wait_for(mut pipe: File, child: Pid) -> i32 {
    let mut msg = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                msg.extend_from_slice(&chunk[..n]);
                if msg.starts_with(READY) {
                    return 0;
                }
                if msg.len() >= MAX_MESSAGE {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("domfs: waiting for the background process: {e}");
                return 1;
            }
        }
    }
    if !msg.is_empty() {
        eprintln!("domfs: {}", String::from_utf8_lossy(&msg).trim_end());
        return 1;
    }
    let why = match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {sig}"),
        Ok(other) => format!("ended ({other:?})"),
        Err(e) => format!("could not be waited for ({e})"),
    };
    eprintln!("domfs: the background process {why} before the filesystem was mounted");
    1
}
