//! The FUSE layer: a connection's domains as directories of small text files.
//! It knows the dispatcher and the model, never which driver answered.
//!
//! Generated files are snapshots built at `open` and read with direct I/O, so
//! `cat` always sees a whole, current value; `stat` shows the value's length
//! (the open file's snapshot, or the value now). Command files take one
//! command a line, applied when the line is complete (or at close). Documents
//! (`xml`, `create`, `define`) are gathered and applied by the write that
//! closes their root element, so even a shell redirect sees a rejection. A
//! rejected write changes nothing and leaves its reason in the nearest
//! `last_error`. This file holds the state; `content` says what files
//! say, `apply` what writes do, and `ops` answers the kernel.

mod apply;
pub mod command;
mod content;
pub mod document;
pub mod feed;
pub mod interrupt;
mod metrics;
pub mod names;
mod ops;
pub mod paths;
pub mod pool;
pub mod scratch;
mod sys;
pub mod text;
pub mod tree;

use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::model::{DomainRef, State, Uuid};
use crate::sync::lock;
use command::CommandBuf;
use document::{Document, Progress};
use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tree::{InodeTable, Node, WriteKind};

/// How long the kernel may keep names and attributes. Values are never
/// cached (direct I/O); a domain that vanishes outside domfs disappears from
/// listings within this time.
const TTL: Duration = Duration::from_secs(1);
/// `by-id` names change on every start, so the kernel keeps none of them.
const TTL_NONE: Duration = Duration::ZERO;

/// A request to forget a name the kernel may still hold, carried out by a
/// thread that serves no request (invalidating from inside a request can
/// deadlock on the directory the request holds).
pub struct Invalidation {
    pub parent: u64,
    pub name: OsString,
}

pub struct Settings {
    pub uid: u32,
    pub gid: u32,
    /// Where the filesystem is mounted (canonical): images are never saved
    /// or restored inside it.
    pub mountpoint: PathBuf,
}

pub struct DomFs {
    dispatch: Arc<Dispatcher>,
    settings: Settings,
    inodes: Arc<Mutex<InodeTable>>,
    feed: Arc<feed::Feed>,
    handles: Mutex<HashMap<u64, Handle>>,
    scratch: Mutex<scratch::Scratch>,
    next_fh: AtomicU64,
    /// The last failure's message per domain; `None` is the root's.
    errors: Mutex<HashMap<Option<Uuid>, String>>,
    invalidations: Mutex<Option<Sender<Invalidation>>>,
    /// Called once the session has ended (see `on_session_end`).
    session_end: Mutex<Option<SessionEnd>>,
    mounted_at: SystemTime,
    /// The root's entries, kept until the next event or for one TTL,
    /// whichever ends first: building them costs a dispatcher call and an
    /// inode lookup per domain, most of a repeated `ls -l` of a large host.
    root_listing: Mutex<Option<Listing>>,
    /// Changes made through this mount's files, counted (see `settle`).
    changes: AtomicU64,
    /// What is remembered of each domain, by its inode block (see `Memo`).
    memo: Mutex<Vec<Memo>>,
    /// The length `metrics` had when last built (see `metrics_size`).
    metrics_len: Mutex<Option<BuiltLength>>,
    /// Which session workers read the device (see `pool`).
    pool: pool::Pool,
}

/// See `DomFs::on_session_end`.
pub type SessionEnd = Box<dyn FnOnce() + Send>;

/// What the layer remembers of one domain between requests, kept in a list
/// by the domain's inode block (`InodeTable::block`), so 10,000 domains
/// cost 10,000 records of 120 bytes and no keys: two maps by UUID (the
/// reference, the lengths) took 2.5 MiB there, their tables a third empty.
#[derive(Default)]
struct Memo {
    /// So a warm read costs the one request for its value, not a lookup as
    /// well (see `domain`).
    dom: Option<CachedRef>,
    /// So a `stat` (the kernel's lookup before each `cat`) answers while no
    /// event came, instead of building the value.
    lengths: Lengths,
}

/// The lengths of one domain's watchable values as last built, all at one
/// generation of the domain: a newer one forgets them.
struct Lengths {
    generation: u64,
    /// By place (`feed::watched_place`); [`Lengths::UNKNOWN`] for a value not
    /// built at this generation.
    len: [u32; feed::WATCHABLE],
}

impl Default for Lengths {
    fn default() -> Lengths {
        Lengths::new(0)
    }
}

impl Lengths {
    const UNKNOWN: u32 = u32::MAX;

    fn new(generation: u64) -> Lengths {
        Lengths {
            generation,
            len: [Lengths::UNKNOWN; feed::WATCHABLE],
        }
    }
}

/// The length of a value built from the whole host, with the feed's epoch
/// and the time it was built at.
struct BuiltLength {
    epoch: u64,
    at: Instant,
    len: u64,
}

/// A domain reference as a lookup gave it, valid while the domain's
/// generation stays the same (every event about it ends it) and for at
/// most one TTL, for changes no event reports.
struct CachedRef {
    generation: u64,
    at: Instant,
    dom: DomainRef,
}

/// Directory entries: inode, type and name.
pub(crate) type Entries = Arc<Vec<(u64, FileType, String)>>;

struct Listing {
    /// The feed's epoch and the mount's count of changes when it began to
    /// be built (see [`feed::Feed::epoch`] and `settle`).
    epoch: u64,
    changes: u64,
    built: Instant,
    entries: Entries,
}

enum Handle {
    /// A generated file: the snapshot reads serve, and what is being written.
    File {
        node: Node,
        content: Vec<u8>,
        /// The domain's generation when `content` was taken (see `feed`).
        generation: u64,
        input: Input,
        /// The process that opened the file: when it closes an incomplete
        /// document, the close fails (see `flush`), as does a writer's.
        opener: u32,
        /// Opened by a user other than root and the mount's owner: secrets
        /// are left out of what it reads (see `content::for_others`).
        others: bool,
    },
    /// A temporary file: reads and writes go to the scratch store.
    Scratch(u64),
    /// An open `events` file (its queue lives in the feed).
    Events,
    /// An open `wait/<state>` file (its reads park in the feed).
    Wait(Uuid, State),
    Dir(Entries),
}

/// What writes to an open file are gathering.
enum Input {
    None,
    Commands(CommandBuf),
    Document(DocInput),
}

/// A document being gathered, and who must hear that it is incomplete.
#[derive(Default)]
struct DocInput {
    doc: Document,
    /// Processes that wrote to this open file and have not closed it since.
    /// Each one's close fails while the document is incomplete: a shell that
    /// opens a redirect itself and forks the writer (dash, for
    /// `cat f > x`) closes the file last with `dup2`, whose close error the
    /// kernel drops, so only the writer's own close can carry it.
    writers: Vec<u32>,
    /// The document's length when it was last reported incomplete: one state
    /// is logged once, however many closes fail with it.
    reported: Option<usize>,
}

/// Writers remembered per open file at most (each close forgets its own).
const MAX_WRITERS: usize = 64;

impl DocInput {
    /// Remembers `pid` as a writer whose close must hear of an incomplete
    /// document.
    fn wrote(&mut self, pid: u32) {
        if !self.writers.contains(&pid) && self.writers.len() < MAX_WRITERS {
            self.writers.push(pid);
        }
    }

    /// At a close by `pid`: the length of the incomplete document it must
    /// fail with, and whether that state is new to the log. The opener and
    /// every process that wrote hear it; others sharing the file (a shell
    /// that never wrote) may still be followed by more.
    fn close_by(&mut self, pid: u32, opener: u32) -> Option<(usize, bool)> {
        let wrote = match self.writers.iter().position(|&p| p == pid) {
            Some(i) => {
                self.writers.swap_remove(i);
                true
            }
            None => false,
        };
        if !(wrote || pid == opener) || self.doc.progress() != Progress::Incomplete {
            return None;
        }
        let len = self.doc.bytes().len();
        Some((len, self.reported.replace(len) != Some(len)))
    }

    /// At the last close: the length of a document left incomplete that no
    /// close has reported yet.
    fn unreported(&self) -> Option<usize> {
        let len = self.doc.bytes().len();
        (self.doc.progress() == Progress::Incomplete && self.reported != Some(len)).then_some(len)
    }
}

impl Input {
    fn for_node(node: Node) -> Input {
        match node.write_kind() {
            Some(WriteKind::Command) => Input::Commands(CommandBuf::default()),
            Some(WriteKind::Document) => Input::Document(DocInput::default()),
            None => Input::None,
        }
    }
}

/// A lookup that found nothing: the kernel hears ENOENT, nothing is logged.
fn gone(e: &Error) -> bool {
    e.kind == crate::error::ErrorKind::NoDomain
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

impl DomFs {
    /// Also starts the thread that takes in the connection's events.
    pub fn new(dispatch: Arc<Dispatcher>, settings: Settings) -> DomFs {
        let inodes = Arc::new(Mutex::new(InodeTable::new()));
        let feed = Arc::new(feed::Feed::default());
        let sub = dispatch.events().subscribe();
        let (f, i, d) = (feed.clone(), inodes.clone(), dispatch.clone());
        if let Err(e) = std::thread::Builder::new()
            .name("feed".into())
            .spawn(move || feed::run(f, i, d, sub))
        {
            log::error!("cannot start the event thread: {e}; poll and events stay silent");
        }
        // What connecting loaded and let go (a host's whole document).
        sys::release_free_memory();
        sys::one_arena();
        sys::fixed_thresholds();
        DomFs {
            dispatch,
            settings,
            inodes,
            feed,
            handles: Mutex::new(HashMap::new()),
            scratch: Mutex::new(scratch::Scratch::default()),
            next_fh: AtomicU64::new(1),
            errors: Mutex::new(HashMap::new()),
            invalidations: Mutex::new(None),
            session_end: Mutex::new(None),
            mounted_at: SystemTime::now(),
            root_listing: Mutex::new(None),
            changes: AtomicU64::new(0),
            memo: Mutex::new(Vec::new()),
            metrics_len: Mutex::new(None),
            pool: pool::Pool::default(),
        }
    }

    /// The session's workers, which need the device once it is mounted.
    pub fn pool(&self) -> pool::Pool {
        self.pool.clone()
    }

    /// The feed, which needs the session's notifier once it exists.
    pub fn feed(&self) -> Arc<feed::Feed> {
        self.feed.clone()
    }

    /// After a change made through a file: returns once the feed has taken
    /// in its event, so the next read anywhere sees it. Counted, so that
    /// no root listing begun before the change is reused after it: not
    /// every back end reports every change (xend sends no event for a
    /// definition or its removal).
    fn settle(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.feed.settle(self.dispatch.events().published());
    }

    /// What to do once the session has ended, whoever ended it (fuser's
    /// last call, after every worker is gone).
    pub fn on_session_end(&self, f: SessionEnd) {
        *lock(&self.session_end) = Some(f);
    }

    /// Runs what `on_session_end` asked, once.
    fn session_ended(&self) {
        let end = lock(&self.session_end).take();
        if let Some(f) = end {
            f();
        }
    }

    /// Where to send names the kernel must forget (see `Invalidation`).
    pub fn set_invalidations(&self, tx: Sender<Invalidation>) {
        *lock(&self.invalidations) = Some(tx);
    }

    fn forget(&self, parent: u64, name: impl Into<OsString>) {
        if let Some(tx) = lock(&self.invalidations).as_ref() {
            let _ = tx.send(Invalidation {
                parent,
                name: name.into(),
            });
        }
    }

    fn ino(&self, node: Node) -> u64 {
        lock(&self.inodes).ino(node)
    }

    fn node(&self, ino: INodeNo) -> Option<Node> {
        lock(&self.inodes).node(ino.0)
    }

    /// Records a failure: one log line and the scope's `last_error`, both a
    /// single readable line whatever the failure echoes.
    fn fail(&self, scope: Option<Uuid>, what: &str, e: &Error) -> Errno {
        let line = text::one_line(&format!("{what}: {e}"));
        log::warn!("{line} (errno {})", e.errno());
        lock(&self.errors).insert(scope, line);
        errno(e)
    }

    /// The domain's reference: from the cache while no event about the
    /// domain came since the lookup (and for at most a TTL), else one lookup.
    /// Drops the cached reference to a domain this mount just changed: its
    /// back end's event (a xenstore watch, a poll) may come after the write
    /// returns, and until then the old reference (an id of -1 after a
    /// start) would send reads to the wrong driver.
    fn forget_ref(&self, uuid: Uuid) {
        self.with_memo(uuid, |m, _| m.dom = None);
    }

    /// The generation of a domain's values now: bumped by every event about
    /// it (0 before any, or before the kernel knew it).
    fn generation(&self, uuid: Uuid) -> u64 {
        lock(&self.inodes).generation(uuid)
    }

    /// `f` on the domain's record, with the domain's generation (one look
    /// at the inode table for both); None for a domain with no inodes yet
    /// (nothing of it is remembered before the kernel knows it).
    fn with_memo<T>(&self, uuid: Uuid, f: impl FnOnce(&mut Memo, u64) -> T) -> Option<T> {
        let (block, generation) = {
            let t = lock(&self.inodes);
            (t.block(uuid)?, t.generation(uuid))
        };
        let mut memo = lock(&self.memo);
        if memo.len() <= block {
            memo.resize_with(block + 1, Memo::default);
        }
        memo.get_mut(block).map(|m| f(m, generation))
    }

    /// Keeps a reference a lookup by name gave, so the `stat` that follows
    /// in the same request (and the reads after it) need no lookup by
    /// UUID: half the back-end calls of a first `ls -l`. Only if no event
    /// came since `epoch`, taken before the lookup.
    fn remember(&self, dom: &DomainRef, epoch: u64) {
        self.ino(Node::Domain(dom.uuid));
        self.with_memo(dom.uuid, |m, generation| {
            // Checked after the generation was read: an event taken in
            // before then shows here, one after makes the entry stale.
            if self.feed.epoch() == epoch {
                m.dom = Some(CachedRef {
                    generation,
                    at: Instant::now(),
                    dom: dom.clone(),
                });
            }
        });
    }

    fn domain(&self, uuid: Uuid) -> Result<DomainRef> {
        let looked = self.with_memo(uuid, |m, generation| {
            let dom = m
                .dom
                .as_ref()
                .filter(|c| c.generation == generation && c.at.elapsed() < TTL)
                .map(|c| c.dom.clone());
            (generation, dom)
        });
        let generation = match looked {
            Some((_, Some(dom))) => return Ok(dom),
            Some((generation, None)) => generation,
            None => 0,
        };
        let found = self.dispatch.lookup_by_uuid(uuid);
        self.with_memo(uuid, |m, _| {
            m.dom = found.as_ref().ok().map(|dom| CachedRef {
                generation,
                at: Instant::now(),
                dom: dom.clone(),
            })
        });
        found
    }

    fn attr(&self, ino: u64, node: Node, size: u64) -> FileAttr {
        let perm = match node {
            Node::Scratch(_, id) => lock(&self.scratch).get(id).map_or(0o600, |f| f.mode),
            _ => node.mode(),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind: node.kind(),
            perm,
            nlink: if node.kind() == FileType::Directory {
                2
            } else {
                1
            },
            uid: self.settings.uid,
            gid: self.settings.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The name a domain's directory has in the root.
    fn dir_name(dom: &DomainRef) -> String {
        names::file_name(dom.name.as_str(), dom.uuid)
    }

    /// What a failure is reported under: the file's path in the mount.
    fn describe(&self, node: Node) -> (Option<Uuid>, String) {
        let name_of = |uuid: Uuid| {
            self.domain(uuid)
                .map(|d| Self::dir_name(&d))
                .unwrap_or_else(|_| uuid.to_string())
        };
        match node {
            Node::File(uuid, f) => (Some(uuid), format!("{}/{}", name_of(uuid), f.name())),
            Node::VcpuFile(uuid, n, f) => (
                Some(uuid),
                format!("{}/{}/{n}/{}", name_of(uuid), tree::VCPU_DIR, f.name()),
            ),
            Node::Sched(uuid, k) => (
                Some(uuid),
                format!("{}/{}/{}", name_of(uuid), tree::SCHED_DIR, k.name()),
            ),
            Node::Attach(uuid) => (
                Some(uuid),
                format!("{}/{}/attach", name_of(uuid), tree::DEVICES_DIR),
            ),
            Node::Detach(uuid) => (
                Some(uuid),
                format!("{}/{}/detach", name_of(uuid), tree::DEVICES_DIR),
            ),
            Node::Wait(uuid, state) => (
                Some(uuid),
                format!("{}/{}/{state}", name_of(uuid), tree::WAIT_DIR),
            ),
            Node::Create => (None, "create".into()),
            Node::Define => (None, "define".into()),
            Node::Restore => (None, "restore".into()),
            other => (other.domain(), format!("{other:?}")),
        }
    }

    /// Ends requests whose caller is signalled (see `interrupt`).
    fn watcher(&self) -> &interrupt::Watcher {
        self.feed.watcher()
    }

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }
}
