//! The filesystem's end of the change feed. One thread takes the
//! connection's events in order and, for each, in this order: marks the
//! domain's values changed (a new generation), drops the kernel's cached
//! pages and names that the change made stale, wakes `poll()`ers, appends a
//! line to every open `events` file and answers `wait` commands. Nothing
//! here blocks on a back end except the one state check a `wait` needs.
//!
//! Every answer to a poll or a read of `events` comes from what is already in
//! memory; readers and waiters are parked replies, so none of them holds a
//! FUSE worker thread.

use super::names;
use super::tree::{DomFile, InodeTable, Node, ROOT_INO};
use crate::dispatch::Dispatcher;
use crate::events::Subscription;
use crate::model::{DomainRef, Event, EventKind, State, Uuid};
use crate::sync::lock;
use fuser::{Errno, INodeNo, Notifier, PollNotifier, ReplyData, ReplyWrite};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Lines an `events` reader may have waiting before it gets `overflow`.
pub const READER_QUEUE: usize = 1024;
/// Pollers remembered per domain (see `add_poller`).
const MAX_POLLERS: usize = 4096;
/// `wait` commands waiting at once.
pub const MAX_WAITERS: usize = 1024;
/// The longest `wait` a command may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(super::command::MAX_WAIT_SECS);
/// How often the feed looks at `wait` deadlines when no event comes.
const TICK: Duration = Duration::from_millis(100);
/// How long a write waits for the feed to take in the change it made.
const SETTLE: Duration = Duration::from_secs(1);

/// Whether a poller of `node` can ever be told of a change: these values
/// change only with an event; the others (`cpu_time`, `info`, `last_error`)
/// change without one and are always ready.
pub fn watchable(node: Node) -> bool {
    matches!(
        node,
        Node::File(
            _,
            DomFile::Xml
                | DomFile::InactiveXml
                | DomFile::State
                | DomFile::Control
                | DomFile::Id
                | DomFile::Uuid
                | DomFile::OsType
                | DomFile::Vcpus
                | DomFile::Memory
                | DomFile::MaxMemory
        )
    )
}

/// One open `events` file.
#[derive(Default)]
pub struct Reader {
    lines: VecDeque<String>,
    /// How much of the first line an earlier read took (bash's `read`
    /// takes one byte at a time from a file it cannot seek).
    taken: usize,
    overflow: bool,
    /// A read waiting for the next line, with the size it asked for.
    parked: Option<(ReplyData, usize)>,
    poller: Option<PollNotifier>,
}

/// A `wait STATE SECONDS` command waiting for its state.
struct Waiter {
    id: u64,
    uuid: Uuid,
    want: State,
    deadline: Instant,
    reply: ReplyWrite,
    written: u32,
}

#[derive(Default)]
pub struct Feed {
    /// Per domain, the generation of its values: bumped by every event.
    generations: Mutex<HashMap<Uuid, u64>>,
    next_generation: AtomicU64,
    /// Per domain, its pollers by the kernel's handle (one per open file),
    /// so a file polled again and again holds one place.
    pollers: Mutex<HashMap<Uuid, HashMap<u64, PollNotifier>>>,
    readers: Mutex<HashMap<u64, Reader>>,
    waiters: Mutex<Vec<Waiter>>,
    next_waiter: Mutex<u64>,
    notifier: Mutex<Option<Notifier>>,
    /// The sequence number of the last event taken in.
    processed: Mutex<u64>,
    settled: Condvar,
}

/// A line of the `events` file: UTC time, event, name (as its file name),
/// id (-1 when none), UUID and, for `stopped`, the reason.
pub fn line(e: &Event) -> String {
    let id = e.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
    format!(
        "{} {} {} {id} {}{}\n",
        humantime::format_rfc3339_micros(e.at),
        e.kind.as_str(),
        names::file_name(&e.name, e.uuid),
        e.uuid,
        match e.kind {
            EventKind::Stopped(r) => format!(" {}", r.as_str()),
            _ => String::new(),
        }
    )
}

fn overflow_line() -> String {
    format!(
        "{} overflow\n",
        humantime::format_rfc3339_micros(SystemTime::now())
    )
}

impl Feed {
    pub fn set_notifier(&self, n: Notifier) {
        *lock(&self.notifier) = Some(n);
    }

    /// Grows with every event taken in, whatever its domain: what was built
    /// from the whole host is current while this stays the same.
    pub fn epoch(&self) -> u64 {
        self.next_generation.load(Ordering::SeqCst)
    }

    /// The generation of a domain's values now (0 before any change).
    pub fn generation(&self, uuid: Uuid) -> u64 {
        lock(&self.generations).get(&uuid).copied().unwrap_or(0)
    }

    /// Waits (briefly) until every event published so far is taken in, so
    /// that a change made through a file is visible, cache and all, before
    /// the write that made it returns.
    pub fn settle(&self, published: u64) {
        let deadline = Instant::now() + SETTLE;
        let mut done = lock(&self.processed);
        while *done < published {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::debug!("feed: event {published} not taken in within {SETTLE:?}");
                return;
            }
            done = self
                .settled
                .wait_timeout(done, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Registers a poller of a domain's value; it is woken by the domain's
    /// next event. Past `MAX_POLLERS` for one domain (files opened, polled
    /// and closed without a change) all are woken and forgotten: a poller
    /// still waiting polls again, which a spurious wake-up allows.
    pub fn add_poller(&self, uuid: Uuid, ph: PollNotifier) {
        let mut pollers = lock(&self.pollers);
        let those = pollers.entry(uuid).or_default();
        if those.len() >= MAX_POLLERS {
            for (_, p) in those.drain() {
                let _ = p.notify();
            }
        }
        those.insert(ph.handle().0, ph);
    }

    pub fn open_reader(&self, fh: u64) {
        lock(&self.readers).insert(fh, Reader::default());
    }

    pub fn close_reader(&self, fh: u64) {
        if let Some(r) = lock(&self.readers).remove(&fh) {
            if let Some((reply, _)) = r.parked {
                reply.data(&[]);
            }
        }
    }

    /// Serves a read of `events`: waiting lines now, else the read waits for
    /// the next event.
    pub fn read_events(&self, fh: u64, size: usize, reply: ReplyData) {
        let mut readers = lock(&self.readers);
        let Some(r) = readers.get_mut(&fh) else {
            return reply.error(Errno::EBADF);
        };
        if r.parked.is_some() {
            // One read at a time per open file; a second is a misuse.
            return reply.error(Errno::EBUSY);
        }
        match take_lines(r, size) {
            Some(data) => reply.data(&data),
            None => r.parked = Some((reply, size)),
        }
    }

    /// Whether an `events` reader has something to read; if not, `ph` is
    /// woken when it does.
    pub fn poll_events(&self, fh: u64, ph: Option<PollNotifier>) -> bool {
        let mut readers = lock(&self.readers);
        let Some(r) = readers.get_mut(&fh) else {
            return true;
        };
        let ready = r.overflow || !r.lines.is_empty();
        if !ready {
            r.poller = ph;
        }
        ready
    }

    /// Parks a `wait` until the domain reaches `want` or `timeout` passes;
    /// returns the waiter's id so the caller can take it back if the state
    /// is already reached.
    /// At most `MAX_WAITERS` wait at once; the write past that is refused
    /// (EBUSY) and `None` returned.
    pub fn add_waiter(
        &self,
        uuid: Uuid,
        want: State,
        timeout: Duration,
        reply: ReplyWrite,
        written: u32,
    ) -> Option<u64> {
        if lock(&self.waiters).len() >= MAX_WAITERS {
            log::warn!("wait {want} for {uuid}: {MAX_WAITERS} waits already; refused");
            reply.error(Errno::EBUSY);
            return None;
        }
        let id = {
            let mut n = lock(&self.next_waiter);
            *n += 1;
            *n
        };
        lock(&self.waiters).push(Waiter {
            id,
            uuid,
            want,
            deadline: Instant::now() + timeout.min(MAX_WAIT),
            reply,
            written,
        });
        Some(id)
    }

    /// Answers the waiter `id` (done, or failed with an errno), if it is
    /// still waiting.
    pub fn end_waiter(&self, id: u64, result: Result<(), Errno>) {
        let w = {
            let mut waiters = lock(&self.waiters);
            let at = waiters.iter().position(|w| w.id == id);
            at.map(|i| waiters.swap_remove(i))
        };
        if let Some(w) = w {
            match result {
                Ok(()) => w.reply.written(w.written),
                Err(e) => w.reply.error(e),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        lock(&self.waiters).iter().map(|w| w.deadline).min()
    }

    fn expire_waiters(&self) {
        let now = Instant::now();
        let expired: Vec<Waiter> = {
            let mut waiters = lock(&self.waiters);
            let (gone, kept) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|w| w.deadline <= now);
            *waiters = kept;
            gone
        };
        for w in expired {
            log::warn!("wait {} for {}: timed out", w.want, w.uuid);
            w.reply.error(Errno::ETIMEDOUT);
        }
    }

    /// Takes in one event (see the module doc for the order).
    fn take(
        &self,
        seq: u64,
        e: &Event,
        overflowed: bool,
        inodes: &Mutex<InodeTable>,
        d: &Dispatcher,
    ) {
        let generation = self.next_generation.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.generations).insert(e.uuid, generation);
        // One lookup says whether the domain is still there and, for a
        // driver that knows no names (the hypervisor), what it is called.
        let found = d.lookup_by_uuid(e.uuid).ok();
        let named;
        let e = match &found {
            Some(r) if e.name.is_empty() => {
                named = Event {
                    name: r.name.0.clone(),
                    ..e.clone()
                };
                &named
            }
            None if e.name.is_empty() => {
                named = Event {
                    name: e.uuid.to_string(),
                    ..e.clone()
                };
                &named
            }
            _ => e,
        };
        self.invalidate(e, found.is_some(), inodes);
        for (_, ph) in lock(&self.pollers).remove(&e.uuid).unwrap_or_default() {
            let _ = ph.notify();
        }
        self.deliver(e, overflowed);
        self.answer_waiters(e.uuid, found.as_ref(), d);
        *lock(&self.processed) = seq;
        self.settled.notify_all();
    }

    /// Drops what the kernel holds that `e` made stale: the domain's cached
    /// values, its `by-id` link, and its names once it is gone.
    fn invalidate(&self, e: &Event, exists: bool, inodes: &Mutex<InodeTable>) {
        let notifier = lock(&self.notifier);
        let Some(n) = notifier.as_ref() else {
            return;
        };
        let (files, dirs) = {
            let t = lock(inodes);
            let files: Vec<u64> = DomFile::ALL
                .iter()
                .filter_map(|f| t.peek(Node::File(e.uuid, *f)))
                .collect();
            let dirs = (t.peek(Node::ById), t.peek(Node::ByUuid));
            (files, dirs)
        };
        for ino in files {
            let _ = n.inval_inode(INodeNo(ino), 0, 0);
        }
        let mut names: Vec<(u64, OsString)> = Vec::new();
        if let (Some(by_id), Some(id)) = (dirs.0, e.id) {
            names.push((by_id, id.to_string().into()));
        }
        if !exists {
            names.push((ROOT_INO, names::file_name(&e.name, e.uuid).into()));
            if let Some(by_uuid) = dirs.1 {
                names.push((by_uuid, e.uuid.to_string().into()));
            }
        }
        for (parent, name) in names {
            let _ = n.inval_entry(INodeNo(parent), &name);
        }
    }

    fn deliver(&self, e: &Event, overflowed: bool) {
        let text = line(e);
        let mut readers = lock(&self.readers);
        for r in readers.values_mut() {
            if overflowed {
                r.overflow = true;
            }
            if r.lines.len() >= READER_QUEUE {
                r.overflow = true;
            } else {
                r.lines.push_back(text.clone());
            }
            if let Some((reply, size)) = r.parked.take() {
                match take_lines(r, size) {
                    Some(data) => reply.data(&data),
                    None => r.parked = Some((reply, size)),
                }
            }
            if let Some(ph) = r.poller.take() {
                let _ = ph.notify();
            }
        }
    }

    /// `dom` is the domain as just looked up; None when it is gone.
    fn answer_waiters(&self, uuid: Uuid, dom: Option<&DomainRef>, d: &Dispatcher) {
        if !lock(&self.waiters).iter().any(|w| w.uuid == uuid) {
            return;
        }
        // A transient domain that stopped is gone: it is shut off for good.
        let Some(dom) = dom else {
            return self.answer(uuid, State::ShutOff);
        };
        let state = match d.domain_info(dom) {
            Ok(info) => info.state,
            Err(e) => {
                log::warn!("wait for {uuid}: {e}");
                return;
            }
        };
        self.answer(uuid, state);
    }

    /// Answers every waiter of `uuid` that wants `state`.
    fn answer(&self, uuid: Uuid, state: State) {
        let done: Vec<Waiter> = {
            let mut waiters = lock(&self.waiters);
            let (done, kept) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|w| w.uuid == uuid && w.want == state);
            *waiters = kept;
            done
        };
        for w in done {
            w.reply.written(w.written);
        }
    }
}

/// Up to `size` bytes of the waiting lines (an `overflow` line first when
/// events were lost), or None when there is nothing to read.
fn take_lines(r: &mut Reader, size: usize) -> Option<Vec<u8>> {
    if r.overflow && r.taken == 0 {
        r.overflow = false;
        r.lines.push_front(overflow_line());
    }
    let mut out = Vec::new();
    while out.len() < size {
        let Some(l) = r.lines.front() else { break };
        let rest = &l.as_bytes()[r.taken..];
        let n = rest.len().min(size - out.len());
        out.extend_from_slice(&rest[..n]);
        r.taken += n;
        if r.taken == l.len() {
            r.lines.pop_front();
            r.taken = 0;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The feed's thread: takes events until the connection goes.
pub fn run(feed: Arc<Feed>, inodes: Arc<Mutex<InodeTable>>, d: Arc<Dispatcher>, sub: Subscription) {
    loop {
        // A waiter added meanwhile is seen within a tick.
        let wait = feed.next_deadline().map_or(TICK, |t| {
            t.saturating_duration_since(Instant::now()).min(TICK)
        });
        match sub.rx.recv_timeout(wait) {
            Ok((seq, e)) => feed.take(seq, &e, sub.overflowed(), &inodes, &d),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
        feed.expire_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainId, StopReason};

    #[test]
    fn lines_name_time_event_domain_id_uuid_and_reason() {
        let mut e = Event::now(
            EventKind::Stopped(StopReason::Destroyed),
            "web 1",
            Some(DomainId(3)),
            Uuid([0x11; 16]),
        );
        e.at = std::time::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(
            line(&e),
            "2023-11-14T22:13:20.123456Z stopped web 1 3 11111111-1111-1111-1111-111111111111 destroyed\n"
        );
        e.kind = EventKind::Defined;
        e.id = None;
        assert!(line(&e).contains(" defined web 1 -1 1111"));
    }

    #[test]
    fn a_reader_gets_whole_lines_and_one_overflow_line() {
        let mut r = Reader::default();
        assert_eq!(take_lines(&mut r, 100), None);
        r.lines.push_back("a\n".into());
        r.lines.push_back("bb\n".into());
        assert_eq!(take_lines(&mut r, 3), Some(b"a\nb".to_vec()));
        assert_eq!(take_lines(&mut r, 1), Some(b"b".to_vec()));
        assert_eq!(take_lines(&mut r, 9), Some(b"\n".to_vec()));
        r.overflow = true;
        let got = String::from_utf8(take_lines(&mut r, 100).unwrap()).unwrap();
        assert!(got.ends_with(" overflow\n"), "{got}");
        assert_eq!(take_lines(&mut r, 100), None);
    }
}
