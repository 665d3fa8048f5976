//! The filesystem's end of the change feed. One thread takes the
//! connection's events in order and, for each, in this order: marks the
//! domain's values changed (a new generation), drops the kernel's cached
//! pages and names that the change made stale, wakes `poll()`ers, appends a
//! line to every open `events` file and answers reads of `wait` files.
//! Nothing here blocks on a back end except the one state check a `wait`
//! needs.
//!
//! Every answer to a poll or a read of `events` comes from what is already in
//! memory; readers and waiters are parked replies, so none of them holds a
//! FUSE worker thread. Each parked reply is registered with the interrupt
//! watcher (see `interrupt`), which ends it with EINTR when its caller is
//! signalled: the feed thread itself may be inside that state check.

use super::interrupt::{Ticket, Watcher};
use super::names;
use super::tree::{DomFile, InodeTable, Node, ROOT_INO};
use crate::dispatch::Dispatcher;
use crate::events::Subscription;
use crate::model::{DomainRef, Event, EventKind, State, Uuid};
use crate::sync::lock;
use fuser::{Errno, INodeNo, Notifier, PollNotifier, ReplyData};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Unread lines an `events` reader may have before it gets `overflow`.
pub const READER_QUEUE: usize = 1024;
/// Bytes of lines already read that an `events` reader keeps, so a reader
/// may seek back over its last read (`head`, bash's `read`); a FUSE read is
/// at most 128 KiB.
const RETAIN: u64 = 128 * 1024;
/// Pollers remembered per domain (see `add_poller`).
const MAX_POLLERS: usize = 4096;
/// Reads of `wait` files parked at once.
pub const MAX_WAITERS: usize = 1024;
/// How long a write waits for the feed to take in the change it made.
const SETTLE: Duration = Duration::from_secs(1);

/// Whether a poller of `node` can ever be told of a change: these values
/// change only with an event; the others (`cpu_time`, `info`, `last_error`)
/// change without one and are always ready.
pub fn watchable(node: Node) -> bool {
    watched_place(node).is_some()
}

/// How many domain files change with an event alone (see `watched_place`).
pub const WATCHABLE: usize = 10;

/// A watchable node's domain and its place among the `WATCHABLE` files.
pub fn watched_place(node: Node) -> Option<(Uuid, usize)> {
    let Node::File(u, f) = node else {
        return None;
    };
    let at = match f {
        DomFile::Xml => 0,
        DomFile::InactiveXml => 1,
        DomFile::State => 2,
        DomFile::Control => 3,
        DomFile::Id => 4,
        DomFile::Uuid => 5,
        DomFile::OsType => 6,
        DomFile::Vcpus => 7,
        DomFile::Memory => 8,
        DomFile::MaxMemory => 9,
        DomFile::CpuTime
        | DomFile::Info
        | DomFile::LastError
        | DomFile::MaxVcpus
        | DomFile::Autostart => return None,
    };
    Some((u, at))
}

/// One open `events` file. Offsets are its own: offset 0 is the first byte
/// published after the open, and its end (its `fstat` size) grows with every
/// line, so `tail -f` sees it grow and `head` may seek back over what it read.
#[derive(Default)]
pub struct Reader {
    /// The lines held, each with the offset of its first byte.
    lines: VecDeque<(u64, String)>,
    /// The bytes published to this open so far.
    end: u64,
    /// The furthest offset a read reached: the lines past it are unread.
    read_to: u64,
    /// Lines were dropped since the last one held (too many unread).
    overflow: bool,
    /// A read waiting for the next line.
    parked: Option<Parked>,
    poller: Option<PollNotifier>,
    /// The thread that opened it: a `stat` by that thread, which carries
    /// no handle (`tail -f` polls with `fstat`), is told this open's size.
    opener: u32,
    /// The open asked where its end is (`lseek(SEEK_END)`, as `tail` and
    /// `less` do): it is read as a growing file, whose reads at the end
    /// find the end of the file instead of waiting.
    as_file: bool,
}

/// A read of `events` or of a `wait` file waiting for its answer.
struct Parked {
    /// Tells this parked read from a later one of the same file.
    id: u64,
    reply: ReplyData,
    offset: u64,
    size: usize,
    ticket: Option<Ticket>,
}

impl Reader {
    fn start(&self) -> u64 {
        self.lines.front().map_or(self.end, |(at, _)| *at)
    }

    fn unread(&self) -> usize {
        self.lines
            .iter()
            .rev()
            .take_while(|(at, l)| at + l.len() as u64 > self.read_to)
            .count()
    }

    fn append(&mut self, text: String) {
        let len = text.len() as u64;
        self.lines.push_back((self.end, text));
        self.end += len;
    }

    /// Adds a line, or drops it (and owes an `overflow` line) when the
    /// reader has `READER_QUEUE` lines unread.
    fn push(&mut self, text: String) {
        if self.unread() >= READER_QUEUE {
            self.overflow = true;
            return;
        }
        if self.overflow {
            self.overflow = false;
            self.append(overflow_line());
        }
        self.append(text);
    }

    /// Up to `size` bytes from `offset`, or None when the read must wait
    /// for the next line. An offset no longer held (more than `RETAIN`
    /// bytes before the furthest read) is ESPIPE: those bytes are gone.
    fn read(&mut self, offset: u64, size: usize) -> Result<Option<Vec<u8>>, Errno> {
        if offset >= self.end {
            if !self.overflow || offset > self.end {
                return Ok(None);
            }
            // The lines lost are owed to a reader that caught up.
            self.overflow = false;
            self.append(overflow_line());
        }
        if offset < self.start() {
            return Err(Errno::ESPIPE);
        }
        let mut out = Vec::new();
        for (at, l) in &self.lines {
            let line_end = at + l.len() as u64;
            if line_end <= offset {
                continue;
            }
            if out.len() >= size {
                break;
            }
            let from = usize::try_from(offset.max(*at) - at).unwrap_or(0);
            let rest = &l.as_bytes()[from..];
            let n = rest.len().min(size - out.len());
            out.extend_from_slice(&rest[..n]);
        }
        self.read_to = self.read_to.max(offset + out.len() as u64);
        self.trim();
        Ok((!out.is_empty()).then_some(out))
    }

    /// Drops the lines that end more than `RETAIN` bytes before the
    /// furthest read.
    fn trim(&mut self) {
        while let Some((at, l)) = self.lines.front() {
            let line_end = at + l.len() as u64;
            if line_end > self.read_to || self.read_to - line_end < RETAIN {
                break;
            }
            self.lines.pop_front();
        }
    }

    fn ready(&self) -> bool {
        self.overflow || self.end > self.read_to
    }
}

/// A read of `<domain>/wait/<state>` waiting for the state.
struct Waiter {
    uuid: Uuid,
    want: State,
    read: Parked,
}

#[derive(Default)]
pub struct Feed {
    /// The last generation given out; each domain's is kept with its
    /// inodes (`InodeTable::generation`).
    next_generation: AtomicU64,
    /// Per domain, its pollers by the kernel's handle (one per open file),
    /// so a file polled again and again holds one place.
    pollers: Mutex<HashMap<Uuid, HashMap<u64, PollNotifier>>>,
    readers: Mutex<HashMap<u64, Reader>>,
    waiters: Mutex<Vec<Waiter>>,
    /// Ids of parked reads (see `Parked::id`).
    next_parked: AtomicU64,
    /// Ends parked reads and back-end calls whose caller is signalled.
    watcher: Watcher,
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

    /// The watcher of this filesystem's blocking requests.
    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }

    pub fn open_reader(&self, fh: u64, opener: u32) {
        let r = Reader {
            opener,
            ..Reader::default()
        };
        lock(&self.readers).insert(fh, r);
    }

    pub fn close_reader(&self, fh: u64) {
        if let Some(r) = lock(&self.readers).remove(&fh) {
            if let Some(p) = r.parked {
                self.watcher.unwatch(p.ticket);
                p.reply.data(&[]);
            }
        }
    }

    /// The bytes published to an open `events` file so far (its size).
    /// The kernel asks with the handle when the open seeks to its end, so
    /// from then on the open reads as a growing file (see `Reader::as_file`).
    pub fn events_size(&self, fh: u64) -> Option<u64> {
        lock(&self.readers).get_mut(&fh).map(|r| {
            r.as_file = true;
            r.end
        })
    }

    /// The size of the newest `events` open by thread `tid`: the kernel
    /// sends `fstat` without the file's handle, only the caller's id.
    pub fn events_size_for(&self, tid: u32) -> Option<u64> {
        lock(&self.readers)
            .iter()
            .filter(|(_, r)| r.opener == tid && tid != 0)
            .max_by_key(|(fh, _)| **fh)
            .map(|(_, r)| r.end)
    }

    /// Serves a read of `events` at `offset`: what is held there now, else
    /// (at the end) the read waits for the next line, or with `nonblocking`
    /// fails EAGAIN. The caller `tid` being signalled ends a waiting read
    /// with EINTR.
    pub fn read_events(
        self: &Arc<Self>,
        fh: u64,
        offset: u64,
        size: usize,
        nonblocking: bool,
        tid: u32,
        reply: ReplyData,
    ) {
        let mut readers = lock(&self.readers);
        let Some(r) = readers.get_mut(&fh) else {
            return reply.error(Errno::EBADF);
        };
        if r.parked.is_some() {
            // One read at a time per open file; a second is a misuse.
            return reply.error(Errno::EBUSY);
        }
        match r.read(offset, size) {
            Ok(Some(data)) => reply.data(&data),
            Err(e) => reply.error(e),
            Ok(None) if nonblocking => reply.error(Errno::EAGAIN),
            Ok(None) if r.as_file => reply.data(&[]),
            Ok(None) => {
                let id = self.next_parked.fetch_add(1, Ordering::Relaxed);
                let feed = Arc::downgrade(self);
                // Registered under the readers' lock, which the action
                // needs: it cannot run before the read is parked.
                let ticket = self.watcher.watch(tid, move || {
                    if let Some(f) = feed.upgrade() {
                        f.interrupt_reader(fh, id);
                    }
                });
                r.parked = Some(Parked {
                    id,
                    reply,
                    offset,
                    size,
                    ticket,
                });
            }
        }
    }

    fn interrupt_reader(&self, fh: u64, id: u64) {
        let mut readers = lock(&self.readers);
        let Some(r) = readers.get_mut(&fh) else {
            return;
        };
        if r.parked.as_ref().is_some_and(|p| p.id == id) {
            if let Some(p) = r.parked.take() {
                p.reply.error(Errno::EINTR);
            }
        }
    }

    /// Whether an `events` reader has something past its furthest read; if
    /// not, `ph` is woken when it does.
    pub fn poll_events(&self, fh: u64, ph: Option<PollNotifier>) -> bool {
        let mut readers = lock(&self.readers);
        let Some(r) = readers.get_mut(&fh) else {
            return true;
        };
        let ready = r.ready();
        if !ready {
            r.poller = ph;
        }
        ready
    }

    /// Parks a read of `wait/<want>` until the domain is in `want`, and
    /// returns its id so the caller can answer it at once if the state is
    /// already reached; registering first means no change is missed. At
    /// most `MAX_WAITERS` wait at once; the read past that fails EBUSY and
    /// None is returned.
    pub fn add_waiter(
        self: &Arc<Self>,
        uuid: Uuid,
        want: State,
        size: usize,
        tid: u32,
        reply: ReplyData,
    ) -> Option<u64> {
        let mut waiters = lock(&self.waiters);
        if waiters.len() >= MAX_WAITERS {
            drop(waiters);
            log::warn!("wait {want} for {uuid}: {MAX_WAITERS} waits already; refused");
            reply.error(Errno::EBUSY);
            return None;
        }
        let id = self.next_parked.fetch_add(1, Ordering::Relaxed);
        let feed = Arc::downgrade(self);
        let ticket = self.watcher.watch(tid, move || {
            if let Some(f) = feed.upgrade() {
                f.end_waiter(id, Err(Errno::EINTR));
            }
        });
        waiters.push(Waiter {
            uuid,
            want,
            read: Parked {
                id,
                reply,
                offset: 0,
                size,
                ticket,
            },
        });
        Some(id)
    }

    /// Answers the waiter `id` (its state reached, or an errno), if it is
    /// still waiting.
    pub fn end_waiter(&self, id: u64, result: Result<(), Errno>) {
        let w = {
            let mut waiters = lock(&self.waiters);
            let at = waiters.iter().position(|w| w.read.id == id);
            at.map(|i| waiters.swap_remove(i))
        };
        if let Some(w) = w {
            self.answer_one(w, result);
        }
    }

    fn answer_one(&self, w: Waiter, result: Result<(), Errno>) {
        self.watcher.unwatch(w.read.ticket);
        match result {
            Ok(()) => {
                let text = format!("{}\n", w.want);
                let n = text.len().min(w.read.size);
                w.read.reply.data(&text.as_bytes()[..n]);
            }
            Err(e) => w.read.reply.error(e),
        }
    }

    /// Parked `events` reads and waits now (each leaves when answered).
    pub fn parked(&self) -> usize {
        let readers = lock(&self.readers);
        let reads = readers.values().filter(|r| r.parked.is_some()).count();
        reads + lock(&self.waiters).len()
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
        lock(inodes).set_generation(e.uuid, generation);
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
            r.push(text.clone());
            if let Some(p) = r.parked.take() {
                match r.read(p.offset, p.size) {
                    Ok(None) => r.parked = Some(p),
                    done => {
                        self.watcher.unwatch(p.ticket);
                        match done {
                            Ok(data) => p.reply.data(&data.unwrap_or_default()),
                            Err(e) => p.reply.error(e),
                        }
                    }
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
        // A transient domain that stopped is gone: it is shut off for good,
        // and will never be in any other state.
        let Some(dom) = dom else {
            let gone: Vec<Waiter> = {
                let mut waiters = lock(&self.waiters);
                let (gone, kept) = std::mem::take(&mut *waiters)
                    .into_iter()
                    .partition(|w| w.uuid == uuid);
                *waiters = kept;
                gone
            };
            for w in gone {
                let result = if w.want == State::ShutOff {
                    Ok(())
                } else {
                    Err(Errno::ENODEV)
                };
                self.answer_one(w, result);
            }
            return;
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
            self.answer_one(w, Ok(()));
        }
    }
}

/// The feed's thread: takes events until the connection goes.
pub fn run(feed: Arc<Feed>, inodes: Arc<Mutex<InodeTable>>, d: Arc<Dispatcher>, sub: Subscription) {
    while let Ok((seq, e)) = sub.rx.recv() {
        feed.take(seq, &e, sub.overflowed(), &inodes, &d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DomainId, StopReason};

    #[test]
    fn each_watchable_file_has_a_place_of_its_own() {
        let u = Uuid([1; 16]);
        let places: Vec<usize> = DomFile::ALL
            .iter()
            .filter_map(|f| watched_place(Node::File(u, *f)).map(|(_, at)| at))
            .collect();
        let mut sorted = places.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..WATCHABLE).collect::<Vec<_>>(), "{places:?}");
        assert_eq!(watched_place(Node::Domain(u)), None);
    }

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
    fn a_reader_reads_by_offset_and_may_seek_back_over_its_last_read() {
        let mut r = Reader::default();
        assert_eq!(r.read(0, 100), Ok(None), "nothing yet: the read waits");
        r.push("a\n".into());
        r.push("bb\n".into());
        assert_eq!(r.end, 5);
        assert_eq!(r.read(0, 3), Ok(Some(b"a\nb".to_vec())));
        assert_eq!(r.read(3, 1), Ok(Some(b"b".to_vec())));
        // `head -n 1` read everything, then seeks back after its line.
        assert_eq!(r.read(2, 100), Ok(Some(b"bb\n".to_vec())));
        assert_eq!(r.read(5, 100), Ok(None));
        assert!(!r.ready());
        r.push("c\n".into());
        assert!(r.ready());
        assert_eq!(r.read(5, 100), Ok(Some(b"c\n".to_vec())));
    }

    #[test]
    fn a_reader_holds_bounded_lines_and_gets_one_overflow_line() {
        let mut r = Reader::default();
        for i in 0..READER_QUEUE + 10 {
            r.push(format!("{i:0>99}\n"));
        }
        assert_eq!(
            r.lines.len(),
            READER_QUEUE,
            "the lines past the queue are dropped"
        );
        let end = r.end;
        let mut at = 0;
        while at < end {
            let got = r.read(at, 128 * 1024).unwrap().unwrap();
            at += got.len() as u64;
        }
        let last = String::from_utf8(r.read(at, 100).unwrap().unwrap()).unwrap();
        assert!(last.ends_with(" overflow\n"), "{last}");
        assert_eq!(r.read(r.end, 100), Ok(None), "one overflow line only");
        // Read on past RETAIN bytes: the oldest lines go.
        assert_eq!(r.read(0, 100).map(|d| d.is_some()), Ok(true), "still held");
        for i in 0..400 {
            r.push(format!("{i:0>99}\n"));
            let got = r.read(r.end - 100, 100).unwrap().unwrap();
            assert_eq!(got.len(), 100);
        }
        assert!(r.lines.iter().map(|(_, l)| l.len() as u64).sum::<u64>() <= RETAIN + 200);
        assert_eq!(
            r.read(0, 100),
            Err(Errno::ESPIPE),
            "what was dropped is gone"
        );
        r.push("next\n".into());
        assert_eq!(r.read(r.end - 5, 100), Ok(Some(b"next\n".to_vec())));
    }
}
