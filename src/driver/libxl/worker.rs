//! The one thread that calls libxl. Every call of the driver is a job sent
//! here and answered on a channel the caller waits on with a timeout, so a
//! libxl call never runs under a lock a FUSE reader needs, a hung one
//! costs its caller ETIMEDOUT and nobody else more than their own wait, and
//! libxl's event machinery is entered by one thread only.
//!
//! Between jobs the thread runs libxl's application poll loop
//! (`libxl_osevent_beforepoll`, poll(2), `libxl_osevent_afterpoll`), the
//! interface libxl offers to a program with its own loop, and takes the
//! events it makes (`libxl_event_check`): the domain-death and shutdown
//! events the driver asked for. An earlier design waited for them with
//! `libxl_event_wait` on a second thread while other threads ran
//! synchronous calls, and the daemon died of heap corruption in one boot of
//! three; one thread removes the question.

use super::sys::{self, Ctx, DeathWatch};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Mutex;
use std::time::Duration;

/// What a job and the event handler get: the context and the death
/// watches, which only this thread touches.
pub struct Thread {
    pub ctx: Ctx,
    watches: HashMap<u32, DeathWatch>,
}

impl Thread {
    /// Asks for the shutdown and death events of `domid` (once).
    pub fn watch(&mut self, domid: u32) {
        if self.watches.contains_key(&domid) {
            return;
        }
        match self.ctx.watch_death(domid) {
            Ok(w) => {
                self.watches.insert(domid, w);
            }
            Err(c) => log::warn!("libxl: cannot watch domain {domid}: {c}"),
        }
    }

    pub fn unwatch(&mut self, domid: u32) {
        if let Some(w) = self.watches.remove(&domid) {
            self.ctx.stop_watching(w);
        }
    }
}

/// A domain event libxl reported, from its JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LxEvent {
    /// The guest shut itself down; `reason` is Xen's `SHUTDOWN_*` code.
    Shutdown { domid: u32, reason: u8 },
    /// The domain no longer exists.
    Death { domid: u32 },
}

/// Xen's shutdown reasons (`SHUTDOWN_*` in xen/sched.h).
pub const SHUTDOWN_POWEROFF: u8 = 0;
pub const SHUTDOWN_REBOOT: u8 = 1;
pub const SHUTDOWN_SUSPEND: u8 = 2;
pub const SHUTDOWN_CRASH: u8 = 3;
pub const SHUTDOWN_WATCHDOG: u8 = 4;

/// Reads `libxl_event_to_json`'s output. libxl's JSON printer writes a
/// keyed union's member under `"type.MEMBER"` (its parser reads the same
/// key) and leaves out every field at its initial value, so domain 0 has
/// no `domid` and a poweroff (reason 0) no `shutdown_reason`:
/// `{"domid": 3, "type.domain_shutdown": {"shutdown_reason": 1}, ...}`.
/// Other events are None.
pub fn parse_event(json: &str) -> Option<LxEvent> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let map = v.as_object()?;
    let domid = match map.get("domid") {
        Some(d) => u32::try_from(d.as_u64()?).ok()?,
        None => 0,
    };
    let (kind, body) = map
        .iter()
        .find_map(|(k, b)| Some((k.strip_prefix("type.")?, b)))?;
    match kind {
        "domain_shutdown" => {
            let reason = match body.get("shutdown_reason") {
                Some(r) => u8::try_from(r.as_u64()?).ok()?,
                None => SHUTDOWN_POWEROFF,
            };
            Some(LxEvent::Shutdown { domid, reason })
        }
        "domain_death" => Some(LxEvent::Death { domid }),
        _ => None,
    }
}

type Job = Box<dyn FnOnce(&mut Thread) + Send>;
pub type Handler = Box<dyn FnMut(&mut Thread, LxEvent) + Send>;

/// The caller's end: sends jobs and waits for their answers.
pub struct Worker {
    jobs: Mutex<Sender<Job>>,
    wake: OwnedFd,
}

impl Worker {
    /// Starts the thread, which owns `ctx` from now on.
    pub fn start(ctx: Ctx, handler: Handler) -> Result<Worker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (rd, wr) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| Error::backend(format!("libxl: a wake-up pipe: {e}")))?;
        let t = Thread {
            ctx,
            watches: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("libxl".into())
            .spawn(move || run(t, rx, rd, handler))
            .map_err(|e| Error::backend(format!("libxl: starting its thread: {e}")))?;
        Ok(Worker {
            jobs: Mutex::new(tx),
            wake: wr,
        })
    }

    /// Runs `f` on the libxl thread and waits at most `limit` for it. Past
    /// the limit the caller gets ETIMEDOUT; the job still runs to its end
    /// (libxl calls cannot be cancelled), and later jobs wait behind it.
    pub fn call<T: Send + 'static>(
        &self,
        what: &str,
        limit: Duration,
        f: impl FnOnce(&mut Thread) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |t| {
            let _ = tx.send(f(t));
        });
        lock(&self.jobs)
            .send(job)
            .map_err(|_| Error::backend("libxl's thread has ended"))?;
        let _ = nix::unistd::write(&self.wake, &[1]);
        match rx.recv_timeout(limit) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "libxl did not finish {what} within {} s (it may still take effect)",
                    limit.as_secs()
                ),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::backend(format!(
                "libxl's thread ended during {what}"
            ))),
        }
    }

    /// Queues `f` without waiting for it (starting autostart domains).
    pub fn spawn(&self, f: impl FnOnce(&mut Thread) + Send + 'static) {
        if lock(&self.jobs).send(Box::new(f)).is_ok() {
            let _ = nix::unistd::write(&self.wake, &[1]);
        }
    }
}

/// The longest poll between looks at the job queue, should a wake-up byte
/// be lost.
const IDLE_MS: i32 = 1000;

fn run(mut t: Thread, rx: Receiver<Job>, wake: OwnedFd, mut handler: Handler) {
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(16);
    loop {
        loop {
            match rx.try_recv() {
                Ok(job) => {
                    let done =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut t)));
                    if done.is_err() {
                        log::error!("libxl: a job panicked; the thread goes on");
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        loop {
            match t.ctx.check_event() {
                Ok(Some(json)) => {
                    log::info!(
                        "libxl: event {}",
                        json.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                    if let Some(ev) = parse_event(&json) {
                        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            handler(&mut t, ev)
                        }));
                        if done.is_err() {
                            log::error!("libxl: handling {json} panicked");
                        }
                    }
                }
                Ok(None) => break,
                Err(c) => {
                    log::warn!("libxl: taking an event: {c}");
                    break;
                }
            }
        }
        if let Some(d) = t.ctx.disaster() {
            log::error!("libxl: no events after its disaster ({d}); jobs still run");
        }
        let mut timeout = IDLE_MS;
        if let Err(c) = t.ctx.before_poll(&mut fds, &mut timeout) {
            log::warn!("libxl: before poll: {c}");
            fds.clear();
        }
        let timeout = if timeout < 0 {
            IDLE_MS
        } else {
            timeout.min(IDLE_MS)
        };
        fds.push(libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if let Err(e) = sys::poll(&mut fds, timeout) {
            if e.raw_os_error() != Some(libc::EINTR) {
                log::warn!("libxl: poll: {e}");
            }
        }
        let woken = fds.pop().is_some_and(|w| w.revents != 0);
        t.ctx.after_poll(&fds);
        if woken {
            let mut buf = [0u8; 64];
            while matches!(nix::unistd::read(&wake, &mut buf), Ok(n) if n > 0) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libxls_event_json_is_read() {
        assert_eq!(
            parse_event(
                r#"{
    "domid": 3,
    "domuuid": "3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e001",
    "for_user": 3,
    "type.domain_shutdown": {
        "shutdown_reason": 1
    }
}"#
            ),
            Some(LxEvent::Shutdown {
                domid: 3,
                reason: SHUTDOWN_REBOOT
            })
        );
        assert_eq!(
            parse_event(r#"{"domid": 5, "type.domain_shutdown": {}}"#),
            Some(LxEvent::Shutdown {
                domid: 5,
                reason: SHUTDOWN_POWEROFF
            }),
            "a reason at its initial value is left out"
        );
        assert_eq!(
            parse_event(r#"{"domid": 4, "for_user": 4, "type.domain_death": {}}"#),
            Some(LxEvent::Death { domid: 4 })
        );
        for other in [
            r#"{"domid": 4, "type.disk_eject": {"vdev": "xvdc"}}"#,
            r#"{"domid": -1, "type.domain_death": {}}"#,
            r#"{"domid": 4, "type.domain_shutdown": {"shutdown_reason": 300}}"#,
            r#"{"domid": 4}"#,
            "not json",
        ] {
            assert_eq!(parse_event(other), None, "{other}");
        }
    }
}
