//! Ends a request early when its caller is signalled. fuser 0.18 answers the
//! kernel's FUSE_INTERRUPT with ENOSYS itself (after which the kernel sends
//! none again), and a killed caller whose request the daemon has read waits
//! in the kernel, uninterruptibly, until the daemon answers. So domfs looks
//! for itself: the request header's pid is the calling thread's id, and
//! `/proc/<tid>/status` shows its pending signals.
//!
//! A request that may block (a parked read, a back-end call in flight) is
//! registered here with that thread id and what to do on a signal; one
//! thread looks at the registered callers every `CHECK` while any is
//! registered, and sleeps otherwise. It never answers a request itself: the
//! registrant's action does, and removes what it parked.
//!
//! Pid 0 (a caller in another pid namespace) cannot be looked up, so such a
//! request is never ended early; it ends as it would have without this.

use crate::sync::lock;
use fuser::{
    Errno, ReplyAttr, ReplyCreate, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyPoll,
    ReplyWrite,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often registered callers are looked at: an interrupt is answered
/// within about this time.
const CHECK: Duration = Duration::from_millis(25);

/// SIGKILL's bit in the masks of `/proc/PID/status`.
const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);

/// Whether the signal masks of a thread's status say its system call is
/// being interrupted. A signal counts when it is pending (for the thread or
/// its process), not blocked, and either caught by a handler or fatal: the
/// kernel marks a fatal signal by adding SIGKILL to every thread's pending
/// set. Stop signals and signals whose default is to ignore them (SIGCHLD,
/// SIGWINCH) end nothing, as they would not end a read of a pipe.
pub fn interrupted_by(status: &str) -> bool {
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    pending & !mask("SigBlk:") & (mask("SigCgt:") | SIGKILL_BIT) != 0
}

/// Whether the thread `tid` is being interrupted; a thread that is gone is
/// (nobody waits for the answer). Pid 0 never is: see the module doc.
pub fn interrupted(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{tid}/status")) {
        Ok(status) => interrupted_by(&status),
        Err(_) => true,
    }
}

/// What to do when a registered caller is signalled.
type OnSignal = Box<dyn FnOnce() + Send>;

/// A registration; give it back with [`Watcher::unwatch`] once the request
/// is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

struct Caller {
    tid: u32,
    since: Instant,
    on_signal: OnSignal,
}

#[derive(Default)]
struct Callers {
    by_id: HashMap<u64, Caller>,
    /// The watching thread waits for a first caller: only then does a
    /// registration wake it (a wake-up is a system call, and requests that
    /// finish at once come tens of thousands a second).
    asleep: bool,
}

#[derive(Default)]
struct Inner {
    callers: Mutex<Callers>,
    woken: Condvar,
    started: OnceLock<bool>,
}

/// The registered callers and the thread that watches them (started with
/// the first registration).
#[derive(Default, Clone)]
pub struct Watcher {
    inner: Arc<Inner>,
    next: Arc<AtomicU64>,
}

impl Watcher {
    /// Registers caller `tid`; `on_signal` runs (on the watcher's thread,
    /// with no lock of the watcher held) if it is signalled before
    /// `unwatch`. None for pid 0, which cannot be watched.
    pub fn watch(&self, tid: u32, on_signal: impl FnOnce() + Send + 'static) -> Option<Ticket> {
        if tid == 0 || !self.start() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut callers = lock(&self.inner.callers);
        callers.by_id.insert(
            id,
            Caller {
                tid,
                since: Instant::now(),
                on_signal: Box::new(on_signal),
            },
        );
        let wake = std::mem::take(&mut callers.asleep);
        drop(callers);
        if wake {
            self.inner.woken.notify_one();
        }
        Some(Ticket(id))
    }

    /// Forgets a registration; false when its action already ran (or is
    /// running), i.e. the request was answered EINTR.
    pub fn unwatch(&self, t: Option<Ticket>) -> bool {
        t.is_none_or(|t| lock(&self.inner.callers).by_id.remove(&t.0).is_some())
    }

    /// Runs `work` for the request of caller `tid` and gives its result to
    /// `answer` with the reply, unless the caller is signalled first: then
    /// the reply is answered EINTR at once, and the result, when `work`
    /// ends (a back end's timeout bounds it), is dropped. A change `work`
    /// already sent may still take effect; the log says how it ended.
    pub fn guard<R: Interruptible, T>(
        &self,
        tid: u32,
        reply: R,
        work: impl FnOnce() -> T,
        answer: impl FnOnce(R, T),
    ) {
        let slot = Slot::new(reply);
        let other = slot.share();
        let ticket = self.watch(tid, move || {
            if let Some(r) = other.take() {
                r.interrupt();
            }
        });
        let out = work();
        self.unwatch(ticket);
        match slot.take() {
            Some(r) => answer(r, out),
            None => log::debug!("caller {tid} was signalled: its answer is dropped"),
        }
    }

    /// Registered callers now (for tests and the log).
    pub fn len(&self) -> usize {
        lock(&self.inner.callers).by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the watching thread once; false if it cannot run (then no
    /// request is ended early, as before this module).
    fn start(&self) -> bool {
        *self.inner.started.get_or_init(|| {
            let inner = self.inner.clone();
            match std::thread::Builder::new()
                .name("interrupts".into())
                .spawn(move || run(&inner))
            {
                Ok(_) => true,
                Err(e) => {
                    log::error!("cannot start the interrupt watcher: {e}; signals wait");
                    false
                }
            }
        })
    }
}

fn run(inner: &Inner) {
    loop {
        let tids: Vec<(u64, u32)> = {
            let mut callers = lock(&inner.callers);
            while callers.by_id.is_empty() {
                callers.asleep = true;
                callers = inner.woken.wait(callers).unwrap_or_else(|p| p.into_inner());
            }
            callers.asleep = false;
            // A request younger than one check is most likely about to be
            // answered: /proc is read only for those that take longer.
            let now = Instant::now();
            callers
                .by_id
                .iter()
                .filter(|(_, c)| now.duration_since(c.since) >= CHECK)
                .map(|(id, c)| (*id, c.tid))
                .collect()
        };
        // /proc is read with no lock held, so registering never waits on it.
        let signalled: Vec<u64> = tids
            .into_iter()
            .filter(|(_, tid)| interrupted(*tid))
            .map(|(id, _)| id)
            .collect();
        let actions: Vec<Caller> = {
            let mut callers = lock(&inner.callers);
            signalled
                .iter()
                .filter_map(|id| callers.by_id.remove(id))
                .collect()
        };
        for c in actions {
            log::debug!(
                "caller {} was signalled: its request ends with EINTR",
                c.tid
            );
            (c.on_signal)();
        }
        std::thread::sleep(CHECK);
    }
}

/// A reply that a worker and the watcher may both try to send; whoever
/// takes it first answers.
pub struct Slot<R>(Arc<Mutex<Option<R>>>);

impl<R> Slot<R> {
    pub fn new(reply: R) -> Slot<R> {
        Slot(Arc::new(Mutex::new(Some(reply))))
    }

    pub fn take(&self) -> Option<R> {
        lock(&self.0).take()
    }

    pub fn share(&self) -> Slot<R> {
        Slot(self.0.clone())
    }
}

/// A FUSE reply that can be ended with EINTR.
pub trait Interruptible: Send + 'static {
    fn interrupt(self);
}

macro_rules! interruptible {
    ($($reply:ty),*) => {$(
        impl Interruptible for $reply {
            fn interrupt(self) {
                self.error(Errno::EINTR);
            }
        }
    )*};
}

interruptible!(
    ReplyAttr,
    ReplyData,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyWrite,
    ReplyCreate,
    ReplyPoll
);

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pnd: u64, shd: u64, blk: u64, cgt: u64) -> String {
        format!(
            "Name:\tcat\nSigQ:\t1/100\nSigPnd:\t{pnd:016x}\nShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t0000000000000000\nSigCgt:\t{cgt:016x}\n"
        )
    }

    #[test]
    fn fatal_and_caught_signals_interrupt_others_do_not() {
        let bit = |s: i32| 1u64 << (s - 1);
        // Seen here: SIGTERM to a blocked cat shows SIGKILL in SigPnd.
        assert!(interrupted_by(&status(bit(9), bit(15), 0, 0)));
        // A caught SIGUSR1, pending for the process.
        assert!(interrupted_by(&status(0, bit(10), 0, bit(10))));
        // The same signal blocked: not yet.
        assert!(!interrupted_by(&status(0, bit(10), bit(10), bit(10))));
        // SIGCHLD (default: ignore) and SIGTSTP (stop) pending, not caught.
        assert!(!interrupted_by(&status(0, bit(17) | bit(20), 0, 0)));
        assert!(!interrupted_by(&status(0, 0, 0, 0)));
        assert!(!interrupted_by("garbage"));
    }

    #[test]
    fn this_thread_is_not_interrupted_and_pid_0_never_is() {
        assert!(!interrupted(std::process::id()));
        assert!(!interrupted(0));
        assert!(Watcher::default().watch(0, || {}).is_none());
    }

    #[test]
    fn a_gone_caller_is_answered_and_forgotten() {
        let w = Watcher::default();
        let (tx, rx) = std::sync::mpsc::channel();
        // No thread has this id (above the kernel's pid_max limit).
        let t = w.watch(u32::MAX - 1, move || tx.send(()).unwrap_or(()));
        assert!(rx.recv_timeout(Duration::from_secs(2)).is_ok());
        assert!(!w.unwatch(t), "the action ran, so the ticket is spent");
        assert!(w.is_empty());
        let t = w.watch(std::process::id(), || {});
        assert!(w.unwatch(t));
    }
}
