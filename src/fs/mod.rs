//! The FUSE layer: a connection's domains as directories of small text files.
//! It knows the dispatcher and the model, never which driver answered.
//!
//! Generated files are snapshots built at `open` and read with direct I/O, so
//! `cat` always sees a whole, current value whatever size `stat` shows. Each
//! `write()` to a command file is one command; documents (`xml`, `create`,
//! `define`) are gathered and applied when the file is closed, so `cp` and
//! `cat >` see a rejection from `close()`. A rejected write changes nothing
//! and leaves its reason in the nearest `last_error`.

pub mod command;
pub mod names;
pub mod tree;

use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::model::{DomainDef, DomainId, DomainRef, Uuid};
use command::Command;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tree::{DomFile, InodeTable, Node, WriteKind, ROOT_INO};

/// How long the kernel may keep names and attributes. Values are never
/// cached (direct I/O); a domain that vanishes outside domfs disappears from
/// listings within this time.
const TTL: Duration = Duration::from_secs(1);
/// `by-id` names change on every start, so the kernel keeps none of them.
const TTL_NONE: Duration = Duration::ZERO;
/// Size shown for generated files: reads are not bound by it (direct I/O).
const GENERATED_SIZE: u64 = 4096;

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
}

pub struct DomFs {
    dispatch: Dispatcher,
    settings: Settings,
    inodes: Mutex<InodeTable>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    /// The last failure's message per domain; `None` is the root's.
    errors: Mutex<HashMap<Option<Uuid>, String>>,
    invalidations: Mutex<Option<Sender<Invalidation>>>,
    mounted_at: SystemTime,
}

enum Handle {
    File {
        node: Node,
        content: Vec<u8>,
        /// Bytes written to a document, applied on flush.
        written: Vec<u8>,
        dirty: bool,
    },
    Dir(Vec<(u64, FileType, String)>),
}

/// Locks that a panic elsewhere cannot make unusable: every critical section
/// leaves the data consistent before it can panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A lookup that found nothing: the kernel hears ENOENT, nothing is logged.
fn gone(e: &Error) -> bool {
    e.kind == crate::error::ErrorKind::NoDomain
}

fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

impl DomFs {
    pub fn new(dispatch: Dispatcher, settings: Settings) -> DomFs {
        DomFs {
            dispatch,
            settings,
            inodes: Mutex::new(InodeTable::new()),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            errors: Mutex::new(HashMap::new()),
            invalidations: Mutex::new(None),
            mounted_at: SystemTime::now(),
        }
    }

    /// Where to send names the kernel must forget (see `Invalidation`).
    pub fn set_invalidations(&self, tx: Sender<Invalidation>) {
        *lock(&self.invalidations) = Some(tx);
    }

    fn ino(&self, node: Node) -> u64 {
        lock(&self.inodes).ino(node)
    }

    fn node(&self, ino: INodeNo) -> Option<Node> {
        lock(&self.inodes).node(ino.0)
    }

    /// Records a failure: one log line and the scope's `last_error`.
    fn fail(&self, scope: Option<Uuid>, what: &str, e: &Error) -> Errno {
        log::warn!("{what}: {e} (errno {})", e.errno());
        lock(&self.errors).insert(scope, format!("{what}: {e}"));
        errno(e)
    }

    fn domain(&self, uuid: Uuid) -> Result<DomainRef> {
        self.dispatch.lookup_by_uuid(uuid)
    }

    fn attr(&self, ino: u64, node: Node, link_len: u64) -> FileAttr {
        let size = match node {
            Node::IdLink(_) | Node::UuidLink(_) => link_len,
            n if n.kind() == FileType::Directory => 0,
            n if n.mode() & 0o444 == 0 => 0,
            _ => GENERATED_SIZE,
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
            perm: node.mode(),
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
        Ok(format!("../{}", names::escape(dom.name.as_str())))
    }

    /// Checks that `node` still exists and returns its attributes.
    fn stat(&self, ino: u64, node: Node) -> Result<FileAttr> {
        let link_len = match node {
            Node::IdLink(_) | Node::UuidLink(_) => self.link_target(node)?.len() as u64,
            _ => {
                if let Some(uuid) = node.domain() {
                    self.domain(uuid)?;
                }
                0
            }
        };
        Ok(self.attr(ino, node, link_len))
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
                let dom_name = names::unescape(name).ok_or_else(missing)?;
                Ok(Node::Domain(self.dispatch.lookup_by_name(&dom_name)?.uuid))
            }
            Node::NodeDir => Node::NODE_ENTRIES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, n)| *n)
                .ok_or_else(missing),
            Node::Domain(uuid) => DomFile::from_name(name)
                .map(|f| Node::File(uuid, f))
                .ok_or_else(missing),
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

    /// A directory's entries, taken once at opendir.
    fn list(&self, dir: Node) -> Result<Vec<(u64, FileType, String)>> {
        // Every directory hangs off the root, which is its own parent here.
        let mut out = vec![
            (self.ino(dir), FileType::Directory, ".".to_string()),
            (ROOT_INO, FileType::Directory, "..".to_string()),
        ];
        let mut push = |node: Node, name: String| {
            out.push((self.ino(node), node.kind(), name));
        };
        match dir {
            Node::Root => {
                for (name, node) in Node::ROOT_ENTRIES {
                    push(node, name.to_string());
                }
                for d in self.dispatch.list_domains()? {
                    push(Node::Domain(d.uuid), names::escape(d.name.as_str()));
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
        Ok(out)
    }

    /// The snapshot a read of `node` serves.
    fn content(&self, node: Node) -> Result<String> {
        Ok(match node {
            Node::NodeInfo => self.dispatch.node_info()?.to_text(),
            Node::NodeHypervisor => {
                let h = self.dispatch.hypervisor()?;
                format!("type {}\nversion {}\n", h.kind, h.version)
            }
            Node::RootLastError => self.last_error(None),
            Node::Create | Node::Define | Node::Restore => String::new(),
            Node::File(uuid, file) => self.domain_file(uuid, file)?,
            _ => return Err(Error::invalid("not a file")),
        })
    }

    fn last_error(&self, scope: Option<Uuid>) -> String {
        lock(&self.errors)
            .get(&scope)
            .map(|m| format!("{m}\n"))
            .unwrap_or_default()
    }

    fn domain_file(&self, uuid: Uuid, file: DomFile) -> Result<String> {
        let dom = self.domain(uuid)?;
        let id = dom.id.map_or_else(|| "-1".to_string(), |i| i.to_string());
        if let DomFile::Xml = file {
            return Ok(self.dispatch.domain_xml(&dom)?.to_xml());
        }
        match file {
            DomFile::Id => return Ok(format!("{id}\n")),
            DomFile::Uuid => return Ok(format!("{}\n", dom.uuid)),
            DomFile::LastError => return Ok(self.last_error(Some(uuid))),
            _ => {}
        }
        let info = self.dispatch.domain_info(&dom)?;
        Ok(match file {
            DomFile::State => format!("{}\n", info.state),
            DomFile::Control => info
                .state
                .valid_operations()
                .filter_map(Command::usage)
                .map(|c| format!("{c}\n"))
                .collect(),
            DomFile::OsType => format!("{}\n", self.dispatch.domain_os_type(&dom)?),
            DomFile::Vcpus => format!("{}\n", info.vcpus),
            DomFile::Memory => format!("{}\n", info.memory_kib),
            DomFile::MaxMemory => format!("{}\n", info.max_memory_kib),
            DomFile::CpuTime => format!("{}\n", info.cpu_time_ns),
            _ => format!(
                "state {}\nid {id}\nuuid {}\nos_type {}\nvcpus {}\nmemory {}\nmax_memory {}\ncpu_time {}\n",
                info.state,
                dom.uuid,
                self.dispatch.domain_os_type(&dom)?,
                info.vcpus,
                info.memory_kib,
                info.max_memory_kib,
                info.cpu_time_ns
            ),
        })
    }

    /// Applies one write to a command file.
    fn apply_command(&self, node: Node, data: &[u8]) -> Result<()> {
        let text = command::one_line(data).map_err(Error::invalid)?;
        let (uuid, file) = match node {
            Node::Restore => {
                self.dispatch.restore(&PathBuf::from(text))?;
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
            _ => return Err(Error::invalid("not writable")),
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
            Command::Save(path) => d.save(&dom, path),
            Command::SetMemory(kib) => d.set_memory(&dom, *kib),
            Command::SetMaxMemory(kib) => d.set_max_memory(&dom, *kib),
            Command::SetVcpus(n) => d.set_vcpus(&dom, *n),
        }?;
        log::info!("{}: {cmd}", dom.name);
        self.forget_if_gone(&dom);
        Ok(())
    }

    /// Applies a whole document written to `xml`, `create` or `define`.
    fn apply_document(&self, node: Node, data: &[u8]) -> Result<()> {
        let text =
            std::str::from_utf8(data).map_err(|_| Error::invalid("the XML is not UTF-8 text"))?;
        let dom = match node {
            Node::Create => self.dispatch.create_xml(text)?,
            Node::Define => self.dispatch.define_xml(text)?,
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
                self.dispatch.define(def)?
            }
            _ => return Err(Error::invalid("not a document")),
        };
        log::info!("{}: defined from written XML", dom.name);
        Ok(())
    }

    /// After a change, a domain that no longer exists (a transient domain
    /// that stopped) must leave the kernel's name cache.
    fn forget_if_gone(&self, dom: &DomainRef) {
        if self.domain(dom.uuid).is_ok() {
            return;
        }
        if let Some(tx) = lock(&self.invalidations).as_ref() {
            let _ = tx.send(Invalidation {
                parent: ROOT_INO,
                name: names::escape(dom.name.as_str()).into(),
            });
        }
    }

    /// What a failure is reported under: the file's path in the mount.
    fn describe(&self, node: Node) -> (Option<Uuid>, String) {
        let name_of = |uuid: Uuid| {
            self.domain(uuid)
                .map(|d| names::escape(d.name.as_str()))
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

impl Filesystem for DomFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(parent) = self.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        match self.child(parent, name).and_then(|n| self.entry(n)) {
            Ok((ttl, attr)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) if gone(&e) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(self.fail(None, &format!("lookup {name}"), &e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.stat(ino.0, node) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) if gone(&e) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(errno(&e)),
        }
    }

    /// Accepts the truncate a shell's `>` sends before writing; nothing else
    /// about a file can be changed.
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(Errno::EPERM);
        }
        match size {
            Some(0) if node.write_kind().is_some() => {}
            Some(0) => return reply.error(Errno::EACCES),
            Some(_) => return reply.error(Errno::EINVAL),
            None => {}
        }
        match self.stat(ino.0, node) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.link_target(node) {
            Ok(t) => reply.data(t.as_bytes()),
            Err(_) => reply.error(Errno::ENOENT),
        }
    }

    /// `rmdir NAME` undefines a shut-off domain.
    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        match self.node(parent).map(|p| (p, self.child(p, name))) {
            Some((Node::Root, Ok(Node::Domain(uuid)))) => {
                match self.domain(uuid).and_then(|d| self.dispatch.undefine(&d)) {
                    Ok(()) => {
                        log::info!("{name}: undefined");
                        lock(&self.errors).remove(&Some(uuid));
                        reply.ok()
                    }
                    Err(e) => reply.error(self.fail(Some(uuid), &format!("rmdir {name}"), &e)),
                }
            }
            Some((_, Ok(_))) => reply.error(Errno::EPERM),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if node.kind() == FileType::Directory {
            return reply.error(Errno::EISDIR);
        }
        let acc = flags.acc_mode();
        let writing = acc != OpenAccMode::O_RDONLY;
        let reading = acc != OpenAccMode::O_WRONLY;
        if writing {
            if node.write_kind().is_none() {
                return reply.error(Errno::EACCES);
            }
            if self.dispatch.is_read_only() {
                return reply.error(Errno::EROFS);
            }
        }
        let content = if reading {
            match self.content(node) {
                Ok(c) => c.into_bytes(),
                Err(e) => {
                    let (scope, what) = self.describe(node);
                    return reply.error(self.fail(scope, &format!("read {what}"), &e));
                }
            }
        } else {
            Vec::new()
        };
        let fh = self.new_handle(Handle::File {
            node,
            content,
            written: Vec::new(),
            dirty: false,
        });
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let handles = lock(&self.handles);
        match handles.get(&fh.0) {
            Some(Handle::File { content, .. }) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(content.len());
                let end = start.saturating_add(size as usize).min(content.len());
                reply.data(&content[start..end]);
            }
            _ => reply.error(Errno::EBADF),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let node = {
            let mut handles = lock(&self.handles);
            let Some(Handle::File {
                node,
                written,
                dirty,
                ..
            }) = handles.get_mut(&fh.0)
            else {
                return reply.error(Errno::EBADF);
            };
            if node.write_kind() == Some(WriteKind::Document) {
                let Ok(start) = usize::try_from(offset) else {
                    return reply.error(Errno::EFBIG);
                };
                let end = start.saturating_add(data.len());
                if written.len() < end {
                    written.resize(end, 0);
                }
                written[start..end].copy_from_slice(data);
                *dirty = true;
                return reply.written(data.len() as u32);
            }
            *node
        };
        match self.apply_command(node, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => {
                let (scope, what) = self.describe(node);
                let text = String::from_utf8_lossy(data);
                reply.error(self.fail(scope, &format!("{what} <- '{}'", text.trim()), &e))
            }
        }
    }

    /// Applies a written document. Only the first flush after a write does
    /// work, so a file closed through several descriptors applies it once.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let pending = {
            let mut handles = lock(&self.handles);
            match handles.get_mut(&fh.0) {
                Some(Handle::File {
                    node,
                    written,
                    dirty,
                    ..
                }) if *dirty => {
                    *dirty = false;
                    Some((*node, std::mem::take(written)))
                }
                _ => None,
            }
        };
        let Some((node, data)) = pending else {
            return reply.ok();
        };
        match self.apply_document(node, &data) {
            Ok(()) => reply.ok(),
            Err(e) => {
                let (scope, what) = self.describe(node);
                reply.error(self.fail(scope, &format!("write {what}"), &e))
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.list(node) {
            Ok(entries) => {
                let fh = self.new_handle(Handle::Dir(entries));
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) if gone(&e) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(self.fail(None, "list", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let handles = lock(&self.handles);
        let Some(Handle::Dir(entries)) = handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }
}
