//! Keeps one FUSE worker reading the device while requests finish quickly,
//! and lets more read only while requests block. fuser 0.18 starts a fixed
//! number of workers that all wait in `read(/dev/fuse)`, and the kernel
//! hands each request to the one that waited longest: with four workers a
//! reader pinned to a CPU meets a different thread on every request (a
//! switch each time, a quarter of the rate gone). So every request passes a
//! [`Turn`]: when it ends and another worker is already reading, this one
//! parks here, out of the kernel's rotation. A watchdog thread lets a parked
//! worker back to reading once no request has started for `STALL` and none
//! is reading (a back end that blocks), one at a time, up to the session's
//! worker count, so a frozen back end never stalls a reader of another
//! value. Parked workers cost a stack each and no CPU.
//!
//! A worker parked when the session ends (an unmount from outside) must
//! still get back to fuser's loop to see the end, or the process outlives
//! its mount (fuser joins every worker before it returns). A thread waits
//! for the mount table to change (`/proc/self/mountinfo` polls with
//! POLLPRI then) and lets every parked worker back to reading: after an
//! unmount they find the end there as soon as the kernel ends the
//! connection, and after any other change they park again after their
//! next request. The device itself is not asked then: until the kernel's
//! INIT is answered it polls as an error, like an ended one. The watchdog
//! also asks the device once a `CHECK` while any worker is parked, for an
//! end the mount table does not show (an abort through sysfs).
//!
//! It must not answer requests or know what they do.

use crate::sync::lock;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the requests under way may go without a new one starting
/// before another worker is let back to reading.
const STALL: Duration = Duration::from_millis(4);
/// How often the watchdog looks while requests run.
const TICK: Duration = Duration::from_millis(2);
/// How long after the last request the watchdog keeps looking; after that
/// it sleeps until the next request (one wake-up per quiet spell).
const QUIET: Duration = Duration::from_secs(1);
/// How often a watchdog with parked workers asks whether the session ended.
const CHECK: Duration = Duration::from_secs(1);
/// Polls with POLLPRI when a mount of this process's namespace comes or goes.
const MOUNT_TABLE: &str = "/proc/self/mountinfo";

/// Where the session's workers are.
#[derive(Debug)]
struct Places {
    /// Set once the watchdog runs: before that (unit tests, a session that
    /// never started) nobody parks.
    enabled: bool,
    /// Workers in fuser's loop, reading the device or about to.
    reading: usize,
    /// Workers inside a request.
    busy: usize,
    /// Workers parked here.
    parked: usize,
    /// Parked workers let go and not yet gone.
    released: usize,
    /// The session ended: nobody parks, every parked worker goes.
    closed: bool,
    /// When the latest request started.
    last_start: Instant,
    /// The watchdog waits for a request (see `QUIET`).
    watchdog_asleep: bool,
}

#[derive(Debug)]
struct Inner {
    places: Mutex<Places>,
    /// Parked workers wait on it.
    park: Condvar,
    /// The watchdog waits on it.
    watchdog: Condvar,
}

/// The session's workers (see the module doc).
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            inner: Arc::new(Inner {
                places: Mutex::new(Places {
                    enabled: false,
                    reading: 0,
                    busy: 0,
                    parked: 0,
                    released: 0,
                    closed: false,
                    last_start: Instant::now(),
                    watchdog_asleep: false,
                }),
                park: Condvar::new(),
                watchdog: Condvar::new(),
            }),
        }
    }
}

/// A request under way; dropping it (after the reply) may park the worker.
#[must_use]
pub struct Turn<'a> {
    pool: &'a Pool,
}

impl Pool {
    /// Starts parking for a session of `workers` threads, all reading at
    /// first; `device` (a duplicate of the session's descriptor) tells when
    /// the session ends. Without a watchdog nobody parks.
    pub fn start(&self, workers: usize, device: OwnedFd) -> std::io::Result<()> {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("pool".into())
            .spawn(move || watch(&inner, &device))?;
        match std::fs::File::open(MOUNT_TABLE) {
            Ok(mounts) => {
                let inner = self.inner.clone();
                std::thread::Builder::new()
                    .name("pool-end".into())
                    .spawn(move || watch_mounts(&inner, &mounts))?;
            }
            Err(e) => log::info!("{MOUNT_TABLE}: {e}; an unmount is seen within {CHECK:?}"),
        }
        let mut p = lock(&self.inner.places);
        p.enabled = true;
        p.reading = workers;
        Ok(())
    }

    /// Called as a request starts on a worker.
    pub fn turn(&self) -> Turn<'_> {
        let mut p = lock(&self.inner.places);
        p.reading = p.reading.saturating_sub(1);
        p.busy += 1;
        p.last_start = Instant::now();
        if p.watchdog_asleep {
            p.watchdog_asleep = false;
            self.inner.watchdog.notify_one();
        }
        Turn { pool: self }
    }

    fn end_turn(&self) {
        let mut p = lock(&self.inner.places);
        p.busy = p.busy.saturating_sub(1);
        if !p.enabled || p.closed || p.reading == 0 {
            p.reading += 1;
            return;
        }
        p.parked += 1;
        while p.released == 0 && !p.closed {
            p = self.inner.park.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.parked -= 1;
        if p.released > 0 {
            // Counted as reading by whoever let it go.
            p.released -= 1;
        } else {
            p.reading += 1;
        }
    }

    /// Workers parked now (for tests and the log).
    pub fn parked(&self) -> usize {
        lock(&self.inner.places).parked
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.pool.end_turn();
    }
}

/// Whether the session's connection has ended (unmounted or aborted): the
/// device then polls as an error (so does one whose INIT is not answered
/// yet). Asks with no wait, so it never sleeps on the device's queue (a
/// waiter there is woken by every request).
pub fn ended(device: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(device.as_fd(), PollFlags::empty())];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
        }),
        Err(_) => false,
    }
}

/// Ends the session's wait as soon as the device says it is over.
fn close(inner: &Inner) {
    let mut p = lock(&inner.places);
    p.closed = true;
    inner.park.notify_all();
    inner.watchdog.notify_one();
}

/// Waits for changes of the mount table and lets every parked worker
/// back to reading after each (see the module doc).
fn watch_mounts(inner: &Inner, mounts: &std::fs::File) {
    loop {
        let mut fds = [PollFd::new(mounts.as_fd(), PollFlags::POLLPRI)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                log::info!("{MOUNT_TABLE}: {e}; an unmount is seen within {CHECK:?}");
                return;
            }
        }
        let mut p = lock(&inner.places);
        let waiting = p.parked - p.released.min(p.parked);
        if waiting > 0 {
            p.released += waiting;
            p.reading += waiting;
            inner.park.notify_all();
        }
    }
}

/// The watchdog: lets a parked worker read when requests block, and every
/// parked worker go when the session ends.
fn watch(inner: &Inner, device: &OwnedFd) {
    let mut checked = Instant::now();
    let mut p = lock(&inner.places);
    loop {
        let now = Instant::now();
        if p.parked > 0 && now.duration_since(checked) >= CHECK {
            checked = now;
            drop(p);
            let gone = ended(device);
            p = lock(&inner.places);
            if gone {
                drop(p);
                close(inner);
                return;
            }
        }
        let waiting = p.parked - p.released.min(p.parked);
        if p.reading == 0 && p.busy > 0 && waiting > 0 && now.duration_since(p.last_start) >= STALL
        {
            p.reading += 1;
            p.released += 1;
            // Counts as a start: the next one is let go only if this one
            // blocks too.
            p.last_start = now;
            log::debug!("a worker is let go: {p:?}");
            inner.park.notify_one();
        }
        let wait = if p.busy == 0 && now.duration_since(p.last_start) >= QUIET {
            if p.parked == 0 {
                p.watchdog_asleep = true;
                p = inner.watchdog.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            CHECK
        } else {
            TICK
        };
        p = inner
            .watchdog
            .wait_timeout(p, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A descriptor that never reports an end (the read end of a pipe
    /// whose write end stays open).
    fn device() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe().expect("pipe")
    }

    #[test]
    fn nobody_parks_without_a_watchdog_or_as_the_last_reader() {
        let (r, _w) = device();
        let started = Pool::default();
        started.start(1, r).expect("watchdog");
        for pool in [Pool::default(), started] {
            for _ in 0..3 {
                drop(pool.turn());
            }
            assert_eq!(pool.parked(), 0);
        }
    }

    #[test]
    fn a_worker_parks_while_another_reads_and_goes_when_one_blocks() {
        let pool = Pool::default();
        let (r, w) = device();
        pool.start(2, r).expect("watchdog");
        // Worker A takes a request and ends it while B still reads: A parks.
        let (tx, rx) = mpsc::channel();
        let a = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                drop(pool.turn());
                tx.send(()).expect("send");
            })
        };
        let t = Instant::now();
        while pool.parked() == 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "A never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
        // B takes a request that blocks: A is let back to reading.
        let (end, ends) = mpsc::channel::<()>();
        let b = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let turn = pool.turn();
                let _ = ends.recv();
                drop(turn);
            })
        };
        rx.recv_timeout(Duration::from_secs(5))
            .expect("A was not let go while B blocked");
        a.join().expect("A");
        assert_eq!(pool.parked(), 0);
        // B's request ends while A reads, so B parks, until the session
        // ends.
        end.send(()).expect("send");
        let t = Instant::now();
        while pool.parked() == 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "B never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(w);
        b.join().expect("B");
        assert_eq!(pool.parked(), 0);
    }

    #[test]
    fn an_ended_device_is_seen() {
        let (r, w) = device();
        assert!(!ended(&r));
        drop(w);
        assert!(ended(&r), "a pipe with no writer polls as hung up");
    }
}
