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
//! `last_error`. This file holds the state and what files say; `ops` answers
//! the kernel.

pub mod command;
pub mod document;
pub mod feed;
pub mod names;
mod ops;
pub mod paths;
pub mod scratch;
pub mod text;
pub mod tree;

use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::model::{DomainDef, DomainId, DomainRef, Operation, Uuid};
use crate::sync::lock;
use command::{Command, CommandBuf};
use document::Document;
use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tree::{DomFile, InodeTable, Node, WriteKind, ROOT_INO};

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
    mounted_at: SystemTime,
    /// The root's entries, kept until the next event or for one TTL,
    /// whichever ends first: building them costs a dispatcher call and an
    /// inode lookup per domain, most of a repeated `ls -l` of a large host.
    root_listing: Mutex<Option<Listing>>,
    /// Domain references by UUID, so a warm read costs the one request
    /// for its value, not a lookup as well (see `domain`).
    refs: Mutex<HashMap<Uuid, CachedRef>>,
    /// The length each value file had when last built, with the domain's
    /// generation then: a `stat` (the kernel's lookup before each `cat`)
    /// answers from it while no event came, instead of building the value.
    sizes: Mutex<HashMap<Node, (u64, u64)>>,
}

/// A domain reference as a lookup gave it, valid while the domain's
/// generation stays the same (every event about it ends it) and for at
/// most one TTL, for changes no event reports.
struct CachedRef {
    generation: u64,
    at: Instant,
    dom: DomainRef,
}

/// References kept at most; past that the cache starts again.
const MAX_REFS: usize = 65_536;

/// Directory entries: inode, type and name.
pub(crate) type Entries = Arc<Vec<(u64, FileType, String)>>;

struct Listing {
    /// The feed's epoch when it was built (see [`feed::Feed::epoch`]).
    epoch: u64,
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
        /// document, the close fails (see `flush`).
        opener: u32,
    },
    /// A temporary file: reads and writes go to the scratch store.
    Scratch(u64),
    /// An open `events` file (its queue lives in the feed).
    Events,
    Dir(Entries),
}

/// What writes to an open file are gathering.
enum Input {
    None,
    Commands(CommandBuf),
    Document(Document),
}

impl Input {
    fn for_node(node: Node) -> Input {
        match node.write_kind() {
            Some(WriteKind::Command) => Input::Commands(CommandBuf::default()),
            Some(WriteKind::Document) => Input::Document(Document::default()),
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
            mounted_at: SystemTime::now(),
            root_listing: Mutex::new(None),
            refs: Mutex::new(HashMap::new()),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// The feed, which needs the session's notifier once it exists.
    pub fn feed(&self) -> Arc<feed::Feed> {
        self.feed.clone()
    }

    /// After a change made through a file: returns once the feed has taken
    /// in its event, so the next read anywhere sees it.
    fn settle(&self) {
        self.feed.settle(self.dispatch.events().published());
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
    fn domain(&self, uuid: Uuid) -> Result<DomainRef> {
        let generation = self.feed.generation(uuid);
        if let Some(c) = lock(&self.refs).get(&uuid) {
            if c.generation == generation && c.at.elapsed() < TTL {
                return Ok(c.dom.clone());
            }
        }
        let found = self.dispatch.lookup_by_uuid(uuid);
        let mut refs = lock(&self.refs);
        match &found {
            Ok(dom) => {
                if refs.len() >= MAX_REFS {
                    refs.clear();
                }
                refs.insert(
                    uuid,
                    CachedRef {
                        generation,
                        at: Instant::now(),
                        dom: dom.clone(),
                    },
                );
            }
            Err(_) => {
                refs.remove(&uuid);
            }
        }
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

    /// Where a symlink points.
    fn link_target(&self, node: Node) -> Result<String> {
        let uuid = node.domain().ok_or_else(|| Error::invalid("not a link"))?;
        let dom = self.domain(uuid)?;
        if matches!(node, Node::IdLink(_)) && dom.id.is_none() {
            return Err(Error::no_domain(format!(
                "domain '{}' is not running",
                dom.name
            )));
        }
        Ok(format!("../{}", Self::dir_name(&dom)))
    }

    /// Checks that `node` still exists and returns its attributes. The size
    /// is the value's length now (tools such as `tail` and `tar` trust it).
    fn stat(&self, ino: u64, node: Node) -> Result<FileAttr> {
        let size = match node {
            Node::IdLink(_) | Node::UuidLink(_) => self.link_target(node)?.len() as u64,
            Node::Scratch(uuid, id) => {
                self.domain(uuid)?;
                let scratch = lock(&self.scratch);
                let f = scratch
                    .get(id)
                    .ok_or_else(|| Error::no_domain("the temporary file is gone"))?;
                f.data.len() as u64
            }
            Node::Events => 0,
            // Directories and write-only files have no value to measure.
            n if n.kind() == FileType::Directory || n.mode() & 0o444 == 0 => {
                if let Some(uuid) = n.domain() {
                    self.domain(uuid)?;
                }
                0
            }
            n => match self.known_size(n)? {
                Some(len) => len,
                None => self.content(n)?.len() as u64,
            },
        };
        Ok(self.attr(ino, node, size))
    }

    fn entry(&self, node: Node) -> Result<(Duration, FileAttr)> {
        let ino = self.ino(node);
        let ttl = if matches!(node, Node::IdLink(_)) {
            TTL_NONE
        } else {
            TTL
        };
        Ok((ttl, self.stat(ino, node)?))
    }

    fn child(&self, parent: Node, name: &str) -> Result<Node> {
        let missing = || Error::no_domain(format!("no entry '{name}'"));
        match parent {
            Node::Root => {
                if let Some((_, n)) = Node::ROOT_ENTRIES.iter().find(|(n, _)| *n == name) {
                    return Ok(*n);
                }
                let dom = match names::parse_file_name(name).ok_or_else(missing)? {
                    names::Named::Name(n) => self.dispatch.lookup_by_name(&n)?,
                    names::Named::Shortened(uuid) => self.domain(uuid)?,
                };
                // Each domain answers to exactly one file name.
                if Self::dir_name(&dom) != name {
                    return Err(missing());
                }
                Ok(Node::Domain(dom.uuid))
            }
            Node::NodeDir => Node::NODE_ENTRIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, n)| *n)
                .ok_or_else(missing),
            Node::Domain(uuid) => {
                if let Some(f) = DomFile::from_name(name) {
                    return Ok(Node::File(uuid, f));
                }
                lock(&self.scratch)
                    .find(uuid, name)
                    .map(|id| Node::Scratch(uuid, id))
                    .ok_or_else(missing)
            }
            Node::ById => {
                let id: DomainId = name.parse().map_err(|_| missing())?;
                Ok(Node::IdLink(self.dispatch.lookup_by_id(id)?.uuid))
            }
            Node::ByUuid => {
                let uuid = Uuid::parse(name).map_err(|_| missing())?;
                Ok(Node::UuidLink(self.dispatch.lookup_by_uuid(uuid)?.uuid))
            }
            _ => Err(missing()),
        }
    }

    /// A directory's entries, taken once at opendir. The root's are reused
    /// while no event came; its changes that no event reports (a back end
    /// without watches) show within the TTL the kernel keeps names for anyway.
    fn list(&self, dir: Node) -> Result<Entries> {
        if dir != Node::Root {
            return self.build_list(dir).map(Arc::new);
        }
        let epoch = self.feed.epoch();
        if let Some(l) = lock(&self.root_listing).as_ref() {
            if l.epoch == epoch && l.built.elapsed() < TTL {
                return Ok(l.entries.clone());
            }
        }
        let entries = Arc::new(self.build_list(dir)?);
        *lock(&self.root_listing) = Some(Listing {
            epoch,
            built: Instant::now(),
            entries: entries.clone(),
        });
        Ok(entries)
    }

    fn build_list(&self, dir: Node) -> Result<Vec<(u64, FileType, String)>> {
        let mut nodes = Vec::new();
        let mut push = |node: Node, name: String| nodes.push((node, name));
        match dir {
            Node::Root => {
                for (name, node) in Node::ROOT_ENTRIES {
                    push(node, name.to_string());
                }
                for d in self.dispatch.list_domains()? {
                    push(Node::Domain(d.uuid), Self::dir_name(&d));
                }
            }
            Node::NodeDir => {
                for (name, node) in Node::NODE_ENTRIES {
                    push(node, name.to_string());
                }
            }
            Node::Domain(uuid) => {
                self.domain(uuid)?;
                for f in DomFile::ALL {
                    push(Node::File(uuid, f), f.name().to_string());
                }
                for (id, name) in lock(&self.scratch).in_domain(uuid) {
                    push(Node::Scratch(uuid, id), name);
                }
            }
            Node::ById => {
                for d in self.dispatch.list_active()? {
                    if let Some(id) = d.id {
                        push(Node::IdLink(d.uuid), id.to_string());
                    }
                }
            }
            Node::ByUuid => {
                for d in self.dispatch.list_domains()? {
                    push(Node::UuidLink(d.uuid), d.uuid.to_string());
                }
            }
            _ => return Err(Error::invalid("not a directory")),
        }
        // One lock of the inode table for the whole directory.
        let mut inodes = lock(&self.inodes);
        // Every directory hangs off the root, which is its own parent here.
        let mut out = Vec::with_capacity(nodes.len() + 2);
        out.push((inodes.ino(dir), FileType::Directory, ".".to_string()));
        out.push((ROOT_INO, FileType::Directory, "..".to_string()));
        out.extend(
            nodes
                .into_iter()
                .map(|(node, name)| (inodes.ino(node), node.kind(), name)),
        );
        Ok(out)
    }

    /// The length of `node`'s value as last built, if no event about its
    /// domain came since (and the domain is still there). Only for values
    /// that change with an event alone (`feed::watchable`).
    fn known_size(&self, node: Node) -> Result<Option<u64>> {
        let Some(uuid) = node.domain().filter(|_| feed::watchable(node)) else {
            return Ok(None);
        };
        let generation = self.feed.generation(uuid);
        let known = lock(&self.sizes)
            .get(&node)
            .filter(|(g, _)| *g == generation)
            .map(|(_, len)| *len);
        if known.is_some() {
            self.domain(uuid)?;
        }
        Ok(known)
    }

    /// The snapshot a read of `node` serves; its length is remembered for
    /// `stat` (see `known_size`).
    fn content(&self, node: Node) -> Result<String> {
        let generation = node.domain().map(|u| self.feed.generation(u));
        let text = self.build(node)?;
        if let Some(g) = generation.filter(|_| feed::watchable(node)) {
            let mut sizes = lock(&self.sizes);
            if sizes.len() >= MAX_REFS {
                sizes.clear();
            }
            sizes.insert(node, (g, text.len() as u64));
        }
        Ok(text)
    }

    /// What `node` says now.
    fn build(&self, node: Node) -> Result<String> {
        Ok(match node {
            Node::NodeInfo => self.dispatch.node_info()?.to_text(),
            Node::NodeHypervisor => {
                let h = self.dispatch.hypervisor()?;
                format!("type {}\nversion {}\n", h.kind, h.version)
            }
            Node::RootLastError => self.last_error(None),
            Node::Create | Node::Define | Node::Restore | Node::Events => String::new(),
            Node::File(uuid, file) => self.domain_file(uuid, file)?,
            Node::Root
            | Node::ById
            | Node::ByUuid
            | Node::NodeDir
            | Node::Domain(_)
            | Node::IdLink(_)
            | Node::UuidLink(_)
            | Node::Scratch(..) => return Err(Error::invalid("not a file")),
        })
    }

    fn last_error(&self, scope: Option<Uuid>) -> String {
        lock(&self.errors)
            .get(&scope)
            .map(|m| format!("{m}\n"))
            .unwrap_or_default()
    }

    /// What a domain's file says. Each file asks only for what it shows:
    /// the domain reference (cached), then at most the one value.
    fn domain_file(&self, uuid: Uuid, file: DomFile) -> Result<String> {
        let dom = self.domain(uuid)?;
        let id = dom.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
        let d = &self.dispatch;
        Ok(match file {
            DomFile::Xml => d.domain_xml(&dom)?.to_xml(),
            DomFile::InactiveXml => d.domain_xml_inactive(&dom)?.to_xml(),
            DomFile::Id => format!("{id}\n"),
            DomFile::Uuid => format!("{}\n", dom.uuid),
            DomFile::LastError => self.last_error(Some(uuid)),
            DomFile::OsType => format!("{}\n", d.domain_os_type(&dom)?),
            DomFile::State => format!("{}\n", d.domain_info(&dom)?.state),
            DomFile::Control => {
                let state = d.domain_info(&dom)?.state;
                Operation::commands()
                    .filter(|op| op.valid_in(state) && d.supports(*op))
                    .filter_map(Operation::usage)
                    .map(|c| format!("{c}\n"))
                    .collect()
            }
            DomFile::Vcpus => format!("{}\n", d.domain_info(&dom)?.vcpus),
            DomFile::Memory => format!("{}\n", d.domain_info(&dom)?.memory_kib),
            DomFile::MaxMemory => format!("{}\n", d.domain_info(&dom)?.max_memory_kib),
            DomFile::CpuTime => format!("{}\n", d.domain_info(&dom)?.cpu_time_ns),
            DomFile::Info => {
                let info = d.domain_info(&dom)?;
                format!(
                    "state {}\nid {id}\nuuid {}\nos_type {}\nvcpus {}\nmemory {}\nmax_memory {}\ncpu_time {}\n",
                    info.state,
                    dom.uuid,
                    d.domain_os_type(&dom)?,
                    info.vcpus,
                    info.memory_kib,
                    info.max_memory_kib,
                    info.cpu_time_ns
                )
            }
        })
    }

    /// A save or restore path, resolved outside this mount (see `paths`).
    fn image_path(&self, path: &Path) -> Result<PathBuf> {
        paths::resolve_outside(path, &self.settings.mountpoint).map_err(Error::invalid)
    }

    /// Applies one complete command line written to a command file.
    fn apply_command(&self, node: Node, line: &[u8]) -> Result<()> {
        let text = command::one_line(line).map_err(Error::invalid)?;
        let (uuid, file) = match node {
            Node::Restore => {
                let path = self.image_path(Path::new(text))?;
                let dom = self.dispatch.restore(&path)?;
                log::info!("{}: restored from {}", dom.name, path.display());
                self.settle();
                return Ok(());
            }
            Node::File(uuid, file) => (uuid, file),
            _ => return Err(Error::invalid("not writable")),
        };
        let cmd = match file {
            DomFile::Control => text.parse::<Command>(),
            DomFile::Memory => command::parse_size(text).map(Command::SetMemory),
            DomFile::MaxMemory => command::parse_size(text).map(Command::SetMaxMemory),
            DomFile::Vcpus => command::parse_count(text).map(Command::SetVcpus),
            DomFile::Xml
            | DomFile::InactiveXml
            | DomFile::State
            | DomFile::Id
            | DomFile::Uuid
            | DomFile::OsType
            | DomFile::CpuTime
            | DomFile::Info
            | DomFile::LastError => return Err(Error::invalid("not writable")),
        }
        .map_err(Error::invalid)?;
        let dom = self.domain(uuid)?;
        let d = &self.dispatch;
        match &cmd {
            Command::Start => d.start(&dom),
            Command::Shutdown => d.shutdown(&dom),
            Command::Reboot => d.reboot(&dom),
            Command::Destroy => d.destroy(&dom),
            Command::Suspend => d.suspend(&dom),
            Command::Resume => d.resume(&dom),
            Command::Save(path) => d.save(&dom, &self.image_path(path)?),
            Command::SetMemory(kib) => d.set_memory(&dom, *kib),
            Command::SetMaxMemory(kib) => d.set_max_memory(&dom, *kib),
            Command::SetVcpus(n) => d.set_vcpus(&dom, *n),
            Command::Wait(..) => Err(Error::invalid(
                "end 'wait' with a newline: it waits in the write that carries it",
            )),
        }?;
        log::info!("{}: {cmd}", dom.name);
        self.settle();
        self.forget_if_gone(&dom);
        Ok(())
    }

    /// Applies a whole document written to `xml`, `create` or `define`.
    fn apply_document(&self, node: Node, data: &[u8]) -> Result<()> {
        let text =
            std::str::from_utf8(data).map_err(|_| Error::invalid("the XML is not UTF-8 text"))?;
        let dom = match node {
            Node::Create => self.dispatch.create_xml_text(text)?,
            Node::Define => self.dispatch.define_xml_text(text)?,
            Node::File(uuid, DomFile::Xml) => {
                let current = self.domain(uuid)?;
                let mut def = DomainDef::parse(text)?;
                if def.name != current.name.as_str() {
                    return Err(Error::invalid(format!(
                        "the XML names domain '{}', not '{}'; write to define to add a domain",
                        def.name, current.name
                    )));
                }
                match def.uuid {
                    Some(u) if u != uuid => {
                        return Err(Error::invalid(format!(
                            "the XML has uuid {u}, but domain '{}' has uuid {uuid}",
                            current.name
                        )))
                    }
                    Some(_) => {}
                    None => def.set_uuid(Some(uuid)),
                }
                self.dispatch.define_xml(def)?
            }
            _ => return Err(Error::invalid("not a document")),
        };
        log::info!("{}: defined from written XML", dom.name);
        self.settle();
        Ok(())
    }

    /// After a change, a domain that no longer exists (a transient domain
    /// that stopped) must leave the kernel's name cache.
    fn forget_if_gone(&self, dom: &DomainRef) {
        if self.domain(dom.uuid).is_err() {
            self.forget(ROOT_INO, Self::dir_name(dom));
        }
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
            Node::Create => (None, "create".into()),
            Node::Define => (None, "define".into()),
            Node::Restore => (None, "restore".into()),
            other => (other.domain(), format!("{other:?}")),
        }
    }

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, h);
        fh
    }
}
