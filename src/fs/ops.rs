//! The kernel's requests: each FUSE operation answered from `DomFs`. Every
//! namespace change a user cannot make (mkdir, link, symlink, mknod, renames
//! other than an editor's save) answers EPERM.

use super::document::{DocError, Progress};
use super::feed;
use super::tree::{self, DomFile, Node};
use super::{errno, gone, lock, text, DomFs, Handle, Input, TTL, TTL_NONE};
use crate::error::Error;
use crate::model::{State, Uuid};
use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, PollEvents, PollFlags, PollNotifier,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyPoll, ReplyWrite, Request, WriteFlags,
};
use std::ffi::OsStr;
use std::time::SystemTime;

/// What one write to a generated file turned out to need.
enum Pending {
    Nothing,
    Command(Vec<u8>),
    Document(Vec<u8>),
}

impl DomFs {
    /// The scope and description of a failed write, and its errno.
    fn fail_write(&self, node: Node, data: &[u8], e: &Error) -> Errno {
        let (scope, what) = self.describe(node);
        self.fail(scope, &format!("{what} <- {}", text::quote(data)), e)
    }

    /// A complete document that was refused is dropped, so the writer may
    /// try again from offset 0 (as busybox's `cat` does after a failed
    /// write) and meet the same refusal, not an out-of-order one.
    fn forget_document(&self, fh: FileHandle) {
        if let Some(Handle::File {
            input: Input::Document(d),
            ..
        }) = lock(&self.handles).get_mut(&fh.0)
        {
            d.doc = super::document::Document::default();
        }
    }

    /// Applies what a write or a close completed.
    fn run_pending(&self, node: Node, pending: Pending) -> Result<(), Errno> {
        match pending {
            Pending::Nothing => Ok(()),
            Pending::Command(line) => self
                .apply_command(node, &line)
                .map_err(|e| self.fail_write(node, &line, &e)),
            Pending::Document(doc) => self.apply_document(node, &doc).map_err(|e| {
                let (scope, what) = self.describe(node);
                self.fail(scope, &format!("write {what}"), &e)
            }),
        }
    }

    /// A read of `wait/<want>`: answered with the state's name once the
    /// domain is in it. The waiter is registered before the state is
    /// checked, so a change between the two is never missed; a signal to
    /// the reader ends it (see `interrupt`).
    fn wait(&self, uuid: Uuid, want: State, size: usize, tid: u32, reply: ReplyData) {
        let Some(id) = self.feed.add_waiter(uuid, want, size, tid, reply) else {
            return;
        };
        let now = self
            .dispatch
            .lookup_by_uuid(uuid)
            .and_then(|d| self.dispatch.domain_info(&d));
        match now {
            Ok(info) if info.state == want => self.feed.end_waiter(id, Ok(())),
            Ok(_) => {}
            // A transient domain that stopped is gone for good.
            Err(e) if gone(&e) && want == State::ShutOff => self.feed.end_waiter(id, Ok(())),
            Err(e) => {
                let errno = self.fail(Some(uuid), &format!("wait {want}"), &e);
                self.feed.end_waiter(id, Err(errno));
            }
        }
    }

    /// Whether a `wait/<want>` file is readable at once: the domain is in
    /// the state, or the check failed (so a read answers without waiting).
    /// The poller is registered before the check.
    fn poll_wait(&self, uuid: Uuid, want: State, ph: Option<PollNotifier>) -> bool {
        if let Some(ph) = ph {
            self.feed.add_poller(uuid, ph);
        }
        match self
            .dispatch
            .lookup_by_uuid(uuid)
            .and_then(|d| self.dispatch.domain_info(&d))
        {
            Ok(info) => info.state == want,
            Err(_) => true,
        }
    }

    /// `rmdir NAME` in the root: undefines the shut-off domain.
    fn undefine_dir(&self, parent: INodeNo, name: &str) -> Result<(), Errno> {
        match self.node(parent).map(|p| (p, self.child(p, name))) {
            Some((Node::Root, Ok(Node::Domain(uuid)))) => {
                match self.domain(uuid).and_then(|d| self.dispatch.undefine(&d)) {
                    Ok(()) => {
                        log::info!("{name}: undefined");
                        self.settle();
                        lock(&self.errors).remove(&Some(uuid));
                        Ok(())
                    }
                    Err(e) => Err(self.fail(Some(uuid), &format!("rmdir {name}"), &e)),
                }
            }
            Some((_, Ok(_))) => Err(Errno::EPERM),
            _ => Err(Errno::ENOENT),
        }
    }

    /// Brings an open file's snapshot up to date when its domain changed
    /// since it was taken (a poller's re-read, or a read after a change the
    /// kernel was told of).
    fn refresh(&self, fh: u64) {
        let stale = match lock(&self.handles).get(&fh) {
            Some(Handle::File {
                node,
                generation,
                others,
                ..
            }) => node
                .domain()
                .map(|u| (*node, self.generation(u), *others))
                .filter(|(_, g, _)| g != generation),
            _ => None,
        };
        let Some((node, generation, others)) = stale else {
            return;
        };
        if let Ok(fresh) = self.snapshot(node, others) {
            if let Some(Handle::File {
                content,
                generation: g,
                ..
            }) = lock(&self.handles).get_mut(&fh)
            {
                *content = fresh.into_bytes();
                *g = generation;
            }
        }
    }

    /// Reports a document that ended before its root element closed; only
    /// its errno when that state was reported already.
    fn incomplete(&self, node: Node, len: usize, new: bool) -> Errno {
        if !new {
            return Errno::EINVAL;
        }
        let (scope, what) = self.describe(node);
        let e = Error::invalid(format!(
            "the document ended before its root element closed ({len} bytes); nothing was applied"
        ));
        self.fail(scope, &format!("write {what}"), &e)
    }

    /// Whether an owner or mode change asks for anything but what is.
    fn owner_change(
        &self,
        node: Node,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> bool {
        let mode_differs = match node {
            Node::Scratch(..) => false,
            _ => mode.is_some_and(|m| m & 0o7777 != u32::from(node.mode())),
        };
        mode_differs
            || uid.is_some_and(|u| u != self.settings.uid)
            || gid.is_some_and(|g| g != self.settings.gid)
    }

    /// An editor's save: a temporary file renamed over `xml` redefines the
    /// domain from its content, and the temporary file is gone.
    fn save_over_xml(
        &self,
        parent: u64,
        uuid: crate::model::Uuid,
        id: u64,
        from: &str,
    ) -> Result<(), Errno> {
        let data = match lock(&self.scratch).get(id) {
            Some(f) => f.data.clone(),
            None => return Err(Errno::ENOENT),
        };
        let xml = Node::File(uuid, DomFile::Xml);
        self.run_pending(xml, Pending::Document(data))?;
        lock(&self.scratch).remove(id);
        let ino = self.ino(Node::Scratch(uuid, id));
        lock(&self.inodes).alias(ino, xml);
        self.forget(parent, "xml");
        self.forget(parent, from);
        log::info!("{uuid}: xml replaced by an editor's temporary file '{from}'");
        Ok(())
    }
}

impl Filesystem for DomFs {
    /// Lookups in one directory may run at once: without this the kernel
    /// holds each directory's lock over a LOOKUP, so one name waiting on a
    /// frozen back end would hold every other name of its directory.
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS) {
            log::info!("the kernel runs no lookups in parallel ({missing:?}): one stuck name holds its directory");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.session_ended();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _turn = self.pool.turn();
        let Some(parent) = self.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || self.child(parent, name).and_then(|n| self.entry(n)),
            |reply, found| match found {
                Ok((ttl, attr)) => reply.entry(&ttl, &attr, Generation(0)),
                Err(e) if gone(&e) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(self.fail(None, &format!("lookup {name}"), &e)),
            },
        );
    }

    /// With an open file, the size is that of its snapshot, so a reader that
    /// trusts `fstat` (tar) reads exactly what the snapshot holds. An open
    /// `events` has its own size, which grows with every line published to
    /// it; the kernel keeps none of it, so `tail -f`'s `fstat` (which
    /// carries no handle: the caller's open is found by its thread) sees it
    /// grow.
    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let _turn = self.pool.turn();
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if node == Node::Events {
            let size = fh
                .and_then(|fh| self.feed.events_size(fh.0))
                .or_else(|| self.feed.events_size_for(req.pid()))
                .unwrap_or(0);
            return reply.attr(&TTL_NONE, &self.attr(ino.0, node, size));
        }
        self.watcher().guard(
            req.pid(),
            reply,
            || {
                if let Some(fh) = fh {
                    self.refresh(fh.0);
                    if let Some(Handle::File { content, .. }) = lock(&self.handles).get(&fh.0) {
                        return Ok(self.attr(ino.0, node, content.len() as u64));
                    }
                }
                self.stat(ino.0, node)
            },
            |reply, attr| match attr {
                Ok(attr) => reply.attr(&TTL, &attr),
                Err(e) if gone(&e) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(errno(&e)),
            },
        );
    }

    /// Accepts the truncate a shell's `>` sends and owner or mode changes
    /// that change nothing (editors copy them to their temporary file);
    /// temporary files take any size and mode.
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
        let _turn = self.pool.turn();
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if self.owner_change(node, mode, uid, gid) {
            return reply.error(Errno::EPERM);
        }
        if let Node::Scratch(_, id) = node {
            let mut scratch = lock(&self.scratch);
            if let (Some(m), Some(f)) = (mode, scratch.get_mut(id)) {
                f.mode = (m & 0o777) as u16;
            }
            if let Some(len) = size {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if let Err(e) = scratch.resize(id, len) {
                    return reply.error(Errno::from_i32(e));
                }
            }
        } else {
            match size {
                Some(0) if node.write_kind().is_some() => {}
                Some(0) => return reply.error(Errno::EACCES),
                Some(_) => return reply.error(Errno::EINVAL),
                None => {}
            }
        }
        match self.stat(ino.0, node) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _turn = self.pool.turn();
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || self.link_target(node),
            |reply, target| match target {
                Ok(t) => reply.data(t.as_bytes()),
                Err(_) => reply.error(Errno::ENOENT),
            },
        );
    }

    /// `rmdir NAME` undefines a shut-off domain.
    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _turn = self.pool.turn();
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || self.undefine_dir(parent, name),
            |reply, done| match done {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            },
        );
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
        let _turn = self.pool.turn();
        reply.error(Errno::EPERM);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let _turn = self.pool.turn();
        reply.error(Errno::EPERM);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let _turn = self.pool.turn();
        reply.error(Errno::EPERM);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _turn = self.pool.turn();
        reply.error(Errno::EPERM);
    }

    /// Only an exclusive create in a domain directory makes a file: an
    /// editor's temporary file (see `scratch`). Everything else is refused.
    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _turn = self.pool.turn();
        let (Some(Node::Domain(uuid)), Some(name)) = (self.node(parent), name.to_str()) else {
            return reply.error(Errno::EPERM);
        };
        if flags & libc::O_EXCL == 0 {
            return reply.error(Errno::EPERM);
        }
        if tree::reserved(name) {
            return reply.error(Errno::EEXIST);
        }
        if self.domain(uuid).is_err() {
            return reply.error(Errno::ENOENT);
        }
        let perm = (mode & !umask & 0o777) as u16;
        let id = match lock(&self.scratch).create(uuid, name, perm) {
            Ok(id) => id,
            Err(e) => return reply.error(Errno::from_i32(e)),
        };
        let node = Node::Scratch(uuid, id);
        let ino = self.ino(node);
        let fh = self.new_handle(Handle::Scratch(id));
        reply.created(
            &TTL,
            &self.attr(ino, node, 0),
            Generation(0),
            FileHandle(fh),
            FopenFlags::FOPEN_DIRECT_IO,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _turn = self.pool.turn();
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        match self.node(parent).map(|p| self.child(p, name)) {
            Some(Ok(Node::Scratch(_, id))) => {
                lock(&self.scratch).remove(id);
                reply.ok()
            }
            Some(Ok(_)) => reply.error(Errno::EPERM),
            _ => reply.error(Errno::ENOENT),
        }
    }

    /// An editor's temporary file may be renamed over `xml` (which applies
    /// it) or to another temporary name; nothing else moves.
    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _turn = self.pool.turn();
        let (Some(name), Some(newname)) = (name.to_str(), newname.to_str()) else {
            return reply.error(Errno::EPERM);
        };
        let from = self.node(parent).map(|p| self.child(p, name));
        let Some(Ok(Node::Scratch(uuid, id))) = from else {
            return reply.error(match from {
                Some(Ok(_)) => Errno::EPERM,
                _ => Errno::ENOENT,
            });
        };
        if parent != newparent || !flags.is_empty() {
            return reply.error(Errno::EPERM);
        }
        let result = if newname == DomFile::Xml.name() {
            self.save_over_xml(parent.0, uuid, id, name)
        } else if tree::reserved(newname) {
            Err(Errno::EPERM)
        } else {
            lock(&self.scratch)
                .rename(id, newname)
                .map_err(Errno::from_i32)
        };
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _turn = self.pool.turn();
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        if node.kind() == FileType::Directory {
            return reply.error(Errno::EISDIR);
        }
        let acc = flags.acc_mode();
        let writing = acc != OpenAccMode::O_RDONLY;
        let reading = acc != OpenAccMode::O_WRONLY;
        if writing && self.dispatch.is_read_only() {
            return reply.error(Errno::EROFS);
        }
        if let Node::Scratch(_, id) = node {
            if lock(&self.scratch).get(id).is_none() {
                return reply.error(Errno::ENOENT);
            }
            let fh = self.new_handle(Handle::Scratch(id));
            return reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
        }
        if writing && node.write_kind().is_none() {
            return reply.error(Errno::EACCES);
        }
        // Streams: seekable, with offsets of their own (see `feed::Reader`),
        // so `head` may seek back over what it read.
        match node {
            Node::Events => {
                let fh = self.new_handle(Handle::Events);
                self.feed.open_reader(fh, req.pid());
                let flags = FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH;
                return reply.opened(FileHandle(fh), flags);
            }
            Node::Wait(uuid, state) => {
                let fh = self.new_handle(Handle::Wait(uuid, state));
                let flags = FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH;
                return reply.opened(FileHandle(fh), flags);
            }
            _ => {}
        }
        let opener = req.pid();
        let others = req.uid() != 0 && req.uid() != self.settings.uid;
        self.watcher().guard(
            opener,
            reply,
            || {
                // Taken before the content: a change while it is built
                // shows as a newer generation, and the next read rebuilds it.
                let generation = node.domain().map_or(0, |u| self.generation(u));
                if !reading {
                    return Ok((Vec::new(), generation));
                }
                match self.snapshot(node, others) {
                    Ok(c) => Ok((c.into_bytes(), generation)),
                    Err(e) => {
                        let (scope, what) = self.describe(node);
                        Err(self.fail(scope, &format!("read {what}"), &e))
                    }
                }
            },
            |reply, built| {
                let (content, generation) = match built {
                    Ok(b) => b,
                    Err(e) => return reply.error(e),
                };
                let input = if writing {
                    Input::for_node(node)
                } else {
                    Input::None
                };
                let fh = self.new_handle(Handle::File {
                    node,
                    content,
                    generation,
                    input,
                    opener,
                    others,
                });
                // Reads bypass the page cache: a size the kernel took from
                // one stat and pages it took from a snapshot of another
                // moment could tear a value that changed in between (see the
                // README's speed notes). A read-only open has nothing to
                // flush, which saves a request. Writers of one file need not
                // queue behind each other in the kernel: a command may take
                // a back end's time.
                let flags = if writing {
                    FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
                } else {
                    FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NOFLUSH
                };
                reply.opened(FileHandle(fh), flags);
            },
        );
    }

    /// Streams park their read in the feed (the handles' lock released
    /// first); a snapshot's first read may rebuild it, guarded as any
    /// back-end call.
    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _turn = self.pool.turn();
        let stream = match lock(&self.handles).get(&fh.0) {
            Some(Handle::Events) => Some(None),
            Some(Handle::Wait(uuid, state)) => Some(Some((*uuid, *state))),
            _ => None,
        };
        let tid = req.pid();
        match stream {
            Some(None) => {
                let nonblocking = flags.0 & libc::O_NONBLOCK != 0;
                let size = size as usize;
                return self
                    .feed
                    .read_events(fh.0, offset, size, nonblocking, tid, reply);
            }
            // One answer, then the end of the file.
            Some(Some(_)) if offset > 0 => return reply.data(&[]),
            // Registered with the interrupt watcher by the feed.
            Some(Some((uuid, state))) => return self.wait(uuid, state, size as usize, tid, reply),
            None => {}
        }
        let slice = |bytes: &[u8]| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start.saturating_add(size as usize).min(bytes.len());
            bytes[start..end].to_vec()
        };
        self.watcher().guard(
            tid,
            reply,
            || {
                if offset == 0 {
                    self.refresh(fh.0);
                }
                match lock(&self.handles).get(&fh.0) {
                    Some(Handle::File { content, .. }) => Ok(slice(content)),
                    Some(Handle::Scratch(id)) => match lock(&self.scratch).get(*id) {
                        Some(f) => Ok(slice(&f.data)),
                        None => Err(Errno::ENOENT),
                    },
                    _ => Err(Errno::EBADF),
                }
            },
            |reply, data| match data {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(e),
            },
        );
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _turn = self.pool.turn();
        let (node, gathered) = {
            let mut handles = lock(&self.handles);
            match handles.get_mut(&fh.0) {
                Some(Handle::Scratch(id)) => {
                    return match lock(&self.scratch).write(*id, offset, data) {
                        Ok(n) => reply.written(n as u32),
                        Err(e) => reply.error(Errno::from_i32(e)),
                    };
                }
                Some(Handle::File { node, input, .. }) => {
                    let gathered = match input {
                        Input::Commands(buf) => buf
                            .write(data)
                            .map(|line| line.map_or(Pending::Nothing, Pending::Command))
                            .map_err(|m| (Error::invalid(m), false)),
                        Input::Document(d) => match d.doc.write(offset, data) {
                            Ok(Progress::Complete) => Ok(Pending::Document(d.doc.bytes().to_vec())),
                            Ok(Progress::Incomplete) => {
                                d.wrote(req.pid());
                                Ok(Pending::Nothing)
                            }
                            Ok(_) => Ok(Pending::Nothing),
                            Err(e) => Err((Error::invalid(e.to_string()), e == DocError::TooBig)),
                        },
                        Input::None => Err((Error::invalid("not open for writing"), false)),
                    };
                    (*node, gathered)
                }
                _ => return reply.error(Errno::EBADF),
            }
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || match gathered {
                Ok(pending) => {
                    let document = matches!(pending, Pending::Document(_));
                    let done = self.run_pending(node, pending);
                    if document && done.is_err() {
                        self.forget_document(fh);
                    }
                    done
                }
                Err((e, too_big)) => {
                    let errno = self.fail_write(node, data, &e);
                    Err(if too_big { Errno::EFBIG } else { errno })
                }
            },
            |reply, result| match result {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(e),
            },
        );
    }

    /// At each close: a last command written without its newline is applied
    /// now, and its failure is the close's. A document still incomplete when
    /// the process that opened the file, or one that wrote to it, closes it
    /// fails that close (`cp` of a truncated file; `cat part > define` under
    /// dash, where the shell opens and cat writes). A close by a process that
    /// only shares the file passes. Either way the document stays, so later
    /// writes may complete it (`{ cat a; cat b; } > define`, whose first cat
    /// hears that what it left was incomplete).
    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _turn = self.pool.turn();
        let pending = match lock(&self.handles).get_mut(&fh.0) {
            Some(Handle::File {
                node,
                input: Input::Commands(buf),
                ..
            }) => buf.finish().map(|line| (*node, Ok(line))),
            Some(Handle::File {
                node,
                input: Input::Document(d),
                opener,
                ..
            }) => d
                .close_by(req.pid(), *opener)
                .map(|(len, new)| (*node, Err((len, new)))),
            _ => None,
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || match pending {
                Some((node, Ok(line))) => self.run_pending(node, Pending::Command(line)),
                Some((node, Err((len, new)))) => Err(self.incomplete(node, len, new)),
                None => Ok(()),
            },
            |reply, result| match result {
                Err(e) => reply.error(e),
                Ok(()) => reply.ok(),
            },
        );
    }

    /// A document that never completed is reported when its last holder
    /// closes it: it may have been written by several processes in turn, so
    /// no earlier close can know it is over.
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
        let _turn = self.pool.turn();
        let handle = lock(&self.handles).remove(&fh.0);
        match handle {
            Some(Handle::File {
                node,
                input: Input::Document(d),
                ..
            }) => {
                if let Some(len) = d.unreported() {
                    self.incomplete(node, len, true);
                }
            }
            Some(Handle::Events) => self.feed.close_reader(fh.0),
            _ => {}
        }
        reply.ok();
    }

    /// Answered at once from memory, as sysfs does: a value file is ready
    /// (readable and POLLPRI) once its domain changed after it was read;
    /// `events` when a line waits; a file whose change is never seen is
    /// always ready, so it never blocks a poller.
    fn poll(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let _turn = self.pool.turn();
        let schedule = flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY);
        let changed = PollEvents::POLLIN | PollEvents::POLLPRI | PollEvents::POLLRDNORM;
        let wait = match lock(&self.handles).get(&fh.0) {
            Some(Handle::Wait(uuid, state)) => Some((*uuid, *state)),
            _ => None,
        };
        // Checked with the handles' lock released and guarded as any
        // back-end call: a frozen back end must not hold the poller.
        if let Some((uuid, state)) = wait {
            return self.watcher().guard(
                req.pid(),
                reply,
                || self.poll_wait(uuid, state, schedule.then_some(ph)),
                |reply, ready| {
                    reply.poll(if ready {
                        PollEvents::POLLIN | PollEvents::POLLRDNORM
                    } else {
                        PollEvents::empty()
                    })
                },
            );
        }
        let watched = match lock(&self.handles).get(&fh.0) {
            Some(Handle::Events) => None,
            Some(Handle::File {
                node, generation, ..
            }) if feed::watchable(*node) => node.domain().map(|u| (u, *generation)),
            Some(_) => return reply.poll(PollEvents::POLLIN | PollEvents::POLLRDNORM),
            None => return reply.error(Errno::EBADF),
        };
        let Some((uuid, seen)) = watched else {
            let ready = self.feed.poll_events(fh.0, schedule.then_some(ph));
            return reply.poll(if ready {
                PollEvents::POLLIN | PollEvents::POLLRDNORM
            } else {
                PollEvents::empty()
            });
        };
        // Registered before the check, so a change in between still wakes.
        if schedule {
            self.feed.add_poller(uuid, ph);
        }
        if self.generation(uuid) != seen {
            reply.poll(changed);
        } else {
            reply.poll(PollEvents::empty());
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _turn = self.pool.turn();
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        self.watcher().guard(
            req.pid(),
            reply,
            || self.list(node),
            |reply, listed| match listed {
                Ok(entries) => {
                    let fh = self.new_handle(Handle::Dir(entries));
                    reply.opened(FileHandle(fh), FopenFlags::empty());
                }
                Err(e) if gone(&e) => reply.error(Errno::ENOENT),
                Err(e) => reply.error(self.fail(None, "list", &e)),
            },
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _turn = self.pool.turn();
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
        let _turn = self.pool.turn();
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }
}
