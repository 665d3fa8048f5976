//! A xenstore client over xenstored's unix socket or the kernel's xenbus
//! device: one reader thread per connection routes replies by request id and
//! hands watch events to a callback while requests go on; every request has a
//! timeout; transactions retry on EAGAIN; after the daemon restarts the client
//! reconnects and registers its watches again.
//!
//! It knows the protocol (through `wire`) but not what the tree means: that
//! is the driver's business.

use super::wire::{self, ErrName, Message, MsgType, Perm, Request, XsErr};
use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a request may wait for its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a lost connection is tried again while watches wait for it.
const RECONNECT_EVERY: Duration = Duration::from_millis(200);
/// How many times a transaction is retried after EAGAIN.
const TRANSACTION_TRIES: usize = 16;

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The daemon answered ERROR with this name.
    Daemon(XsErr),
    /// No connection (the daemon is gone or never answered the connect).
    NotConnected(String),
    /// No reply within the timeout.
    TimedOut,
    /// The daemon sent something that does not follow the protocol.
    Protocol(String),
    /// The request could not be encoded (a bad path, too large a value).
    Invalid(String),
}

impl ClientError {
    pub fn is(&self, name: ErrName) -> bool {
        matches!(self, ClientError::Daemon(e) if e.is(name))
    }

    pub fn errno(&self) -> i32 {
        match self {
            ClientError::Daemon(e) => e.errno(),
            ClientError::NotConnected(_) => libc::ENOTCONN,
            ClientError::TimedOut => libc::ETIMEDOUT,
            ClientError::Protocol(_) => libc::EIO,
            ClientError::Invalid(_) => libc::EINVAL,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Daemon(e) => write!(f, "xenstored answered {e}"),
            ClientError::NotConnected(m) => write!(f, "not connected to xenstored: {m}"),
            ClientError::TimedOut => f.write_str("xenstored did not answer in time"),
            ClientError::Protocol(m) => write!(f, "xenstore protocol error: {m}"),
            ClientError::Invalid(m) => write!(f, "invalid xenstore request: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

pub type XsResult<T> = std::result::Result<T, ClientError>;

/// What the event callback receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A watch fired: the path that changed and the watch's token.
    Watch { path: String, token: String },
    /// The connection came back after a loss; events may have been missed.
    Reconnected,
}

type Callback = Box<dyn Fn(Event) + Send + Sync>;

/// The two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Socket,
    /// `/dev/xen/xenbus`: the kernel forwards over its own ring, so payloads
    /// are limited to 4080 bytes and replies to 4096.
    Device,
}

impl Transport {
    fn request_max(self) -> usize {
        match self {
            Transport::Socket => wire::PAYLOAD_MAX,
            Transport::Device => wire::PAYLOAD_MAX - wire::HEADER_LEN,
        }
    }
    fn reply_max(self) -> usize {
        match self {
            Transport::Socket => wire::SOCKET_REPLY_MAX,
            Transport::Device => wire::PAYLOAD_MAX,
        }
    }
}

enum Stream {
    Socket(UnixStream),
    Device(File),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Socket(s) => Stream::Socket(s.try_clone()?),
            Stream::Device(f) => Stream::Device(f.try_clone()?),
        })
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Socket(s) => s.write_all(b),
            Stream::Device(f) => f.write_all(b),
        }
    }
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Socket(s) => s.read(b),
            Stream::Device(f) => f.read(b),
        }
    }
    fn shutdown(&self) {
        if let Stream::Socket(s) = self {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct Conn {
    writer: Stream,
    /// Counts connections, so a reader that lost an old one does not tear
    /// down its successor.
    serial: u64,
}

struct Inner {
    path: PathBuf,
    transport: Transport,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
    serial: AtomicU32,
    pending: Mutex<HashMap<u32, SyncSender<Message>>>,
    next_id: AtomicU32,
    watches: Mutex<Vec<(String, String)>>,
    callback: Mutex<Option<Arc<Callback>>>,
    closed: AtomicBool,
    reconnecting: AtomicBool,
    /// Held for a whole request on the xenbus device (see `pipeline`).
    one_at_a_time: Mutex<()>,
}

/// A connection to xenstored; cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to `path`: a unix socket, or else a device such as
    /// `/dev/xen/xenbus`, as libxenstore decides by `stat`.
    pub fn connect(path: &Path, timeout: Duration) -> XsResult<Client> {
        let meta = std::fs::metadata(path)
            .map_err(|e| ClientError::NotConnected(format!("{}: {e}", path.display())))?;
        let transport = if meta.file_type().is_socket() {
            Transport::Socket
        } else {
            Transport::Device
        };
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            transport,
            timeout,
            conn: Mutex::new(None),
            serial: AtomicU32::new(0),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            watches: Mutex::new(Vec::new()),
            callback: Mutex::new(None),
            closed: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            one_at_a_time: Mutex::new(()),
        });
        Inner::open(&inner)?;
        Ok(Client { inner })
    }

    /// How many requests this client has sent (ids are handed out in order).
    pub fn requests_sent(&self) -> u32 {
        self.inner.next_id.load(Ordering::Relaxed).saturating_sub(1)
    }

    pub fn transport(&self) -> Transport {
        self.inner.transport
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sets the function watch events go to. It runs on the reader thread, so
    /// it must be quick and must not make requests itself.
    pub fn on_event(&self, f: impl Fn(Event) + Send + Sync + 'static) {
        *lock(&self.inner.callback) = Some(Arc::new(Box::new(f)));
    }

    /// Sends one request and waits for its reply payload.
    pub fn request(&self, tx: u32, req: &Request) -> XsResult<Vec<u8>> {
        self.pipeline(tx, std::slice::from_ref(req))
            .pop()
            .unwrap_or(Err(ClientError::Protocol("no reply".into())))
    }

    /// Sends several requests at once and waits for all replies: one round
    /// trip's latency for many values.
    ///
    /// Through the xenbus device there is one request at a time: on a real
    /// 4.17 host, several outstanding requests on one open device broke the
    /// kernel's connection and took xenstored down, while libxenstore (one
    /// request at a time per handle) was fine.
    pub fn pipeline(&self, tx: u32, reqs: &[Request]) -> Vec<XsResult<Vec<u8>>> {
        if self.inner.transport == Transport::Device {
            return reqs
                .iter()
                .map(|r| {
                    let _one = lock(&self.inner.one_at_a_time);
                    self.exchange(tx, std::slice::from_ref(r))
                        .pop()
                        .unwrap_or(Err(ClientError::Protocol("no reply".into())))
                })
                .collect();
        }
        self.exchange(tx, reqs)
    }

    /// Sends `reqs` and waits for every reply.
    fn exchange(&self, tx: u32, reqs: &[Request]) -> Vec<XsResult<Vec<u8>>> {
        let inner = &self.inner;
        let mut waits = Vec::with_capacity(reqs.len());
        for req in reqs {
            waits.push(Inner::send(inner, tx, req));
        }
        // One deadline for the whole batch: a dead daemon costs one timeout,
        // not one per request.
        let deadline = std::time::Instant::now() + inner.timeout;
        waits
            .into_iter()
            .map(|w| {
                let (id, rx) = w?;
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let reply = match rx.recv_timeout(left) {
                    Ok(m) => Ok(m),
                    Err(RecvTimeoutError::Timeout) => Err(ClientError::TimedOut),
                    Err(RecvTimeoutError::Disconnected) => Err(ClientError::NotConnected(
                        "the connection closed before the reply".into(),
                    )),
                };
                lock(&inner.pending).remove(&id);
                let m = reply?;
                match m.kind() {
                    Some(MsgType::Error) => Err(ClientError::Daemon(wire::parse_error(&m.payload))),
                    _ => Ok(m.payload),
                }
            })
            .collect()
    }

    pub fn read(&self, tx: u32, path: &str) -> XsResult<Vec<u8>> {
        self.request(tx, &Request::Read(path.into()))
    }

    /// A value as text (lossy: xenstore values are bytes).
    pub fn read_string(&self, tx: u32, path: &str) -> XsResult<String> {
        Ok(String::from_utf8_lossy(&self.read(tx, path)?).into_owned())
    }

    pub fn write(&self, tx: u32, path: &str, value: &[u8]) -> XsResult<()> {
        let r = self.request(
            tx,
            &Request::Write {
                path: path.into(),
                value: value.to_vec(),
            },
        )?;
        ok(&r)
    }

    pub fn mkdir(&self, tx: u32, path: &str) -> XsResult<()> {
        ok(&self.request(tx, &Request::Mkdir(path.into()))?)
    }

    pub fn rm(&self, tx: u32, path: &str) -> XsResult<()> {
        ok(&self.request(tx, &Request::Rm(path.into()))?)
    }

    /// Children of `path`. Falls back to DIRECTORY_PART when C xenstored
    /// says the list is too big; oxenstored never needs it (it sends big
    /// replies whole on a socket) and answers it with ENOSYS.
    pub fn directory(&self, tx: u32, path: &str) -> XsResult<Vec<String>> {
        match self.request(tx, &Request::Directory(path.into())) {
            Ok(p) => wire::parse_directory(&p).map_err(protocol),
            Err(e) if e.is(ErrName::E2big) => self.directory_part(tx, path),
            Err(e) => Err(e),
        }
    }

    fn directory_part(&self, tx: u32, path: &str) -> XsResult<Vec<String>> {
        'again: for _ in 0..TRANSACTION_TRIES {
            let mut out: Vec<String> = Vec::new();
            let mut offset = 0u64;
            let mut first_gen = None;
            loop {
                let p = self
                    .request(
                        tx,
                        &Request::DirectoryPart {
                            path: path.into(),
                            offset,
                        },
                    )
                    .map_err(|e| {
                        if e.is(ErrName::Enosys) {
                            ClientError::Daemon(XsErr::Known(ErrName::E2big))
                        } else {
                            e
                        }
                    })?;
                let (gen, chunk, done) = wire::parse_directory_part(&p).map_err(protocol)?;
                if *first_gen.get_or_insert(gen) != gen {
                    continue 'again;
                }
                for c in chunk {
                    offset += c.len() as u64 + 1;
                    out.push(c);
                }
                if offset > wire::SOCKET_REPLY_MAX as u64 {
                    return Err(ClientError::Protocol("directory listing too large".into()));
                }
                if done {
                    return Ok(out);
                }
            }
        }
        Err(ClientError::Daemon(XsErr::Known(ErrName::Eagain)))
    }

    pub fn get_perms(&self, tx: u32, path: &str) -> XsResult<Vec<Perm>> {
        wire::parse_perms(&self.request(tx, &Request::GetPerms(path.into()))?).map_err(protocol)
    }

    pub fn set_perms(&self, tx: u32, path: &str, perms: &[Perm]) -> XsResult<()> {
        ok(&self.request(
            tx,
            &Request::SetPerms {
                path: path.into(),
                perms: perms.to_vec(),
            },
        )?)
    }

    pub fn get_domain_path(&self, domid: u32) -> XsResult<String> {
        wire::parse_string(&self.request(0, &Request::GetDomainPath(domid))?).map_err(protocol)
    }

    /// Registers a watch; it is registered again after a reconnect.
    pub fn watch(&self, path: &str, token: &str) -> XsResult<()> {
        ok(&self.request(
            0,
            &Request::Watch {
                path: path.into(),
                token: token.into(),
            },
        )?)?;
        lock(&self.inner.watches).push((path.into(), token.into()));
        Ok(())
    }

    pub fn unwatch(&self, path: &str, token: &str) -> XsResult<()> {
        lock(&self.inner.watches).retain(|(p, t)| !(p == path && t == token));
        ok(&self.request(
            0,
            &Request::Unwatch {
                path: path.into(),
                token: token.into(),
            },
        )?)
    }

    /// Runs `body` in a transaction and commits it, starting again from
    /// scratch when the commit finds a conflict (EAGAIN). `body` gets the
    /// transaction id to pass to every request.
    pub fn transaction<T>(&self, mut body: impl FnMut(u32) -> XsResult<T>) -> XsResult<T> {
        for _ in 0..TRANSACTION_TRIES {
            let tx =
                wire::parse_u32(&self.request(0, &Request::TransactionStart)?).map_err(protocol)?;
            let value = match body(tx) {
                Ok(v) => v,
                Err(e) => {
                    let _ = self.request(tx, &Request::TransactionEnd { commit: false });
                    return Err(e);
                }
            };
            match self.request(tx, &Request::TransactionEnd { commit: true }) {
                Ok(r) => {
                    ok(&r)?;
                    return Ok(value);
                }
                Err(e) if e.is(ErrName::Eagain) => {
                    log::debug!("xenstore transaction conflict, retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Daemon(XsErr::Known(ErrName::Eagain)))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The last user gone: stop the reader and the reconnect loop.
        if Arc::strong_count(&self.inner) == 1 {
            self.inner.closed.store(true, Ordering::SeqCst);
            if let Some(c) = lock(&self.inner.conn).take() {
                c.writer.shutdown();
            }
        }
    }
}

fn ok(payload: &[u8]) -> XsResult<()> {
    wire::parse_ok(payload).map_err(protocol)
}

fn protocol(e: wire::WireError) -> ClientError {
    ClientError::Protocol(e.to_string())
}

impl Inner {
    fn open_stream(&self) -> XsResult<Stream> {
        let fail =
            |e: std::io::Error| ClientError::NotConnected(format!("{}: {e}", self.path.display()));
        match self.transport {
            Transport::Socket => {
                let s = UnixStream::connect(&self.path).map_err(fail)?;
                s.set_write_timeout(Some(self.timeout)).map_err(fail)?;
                Ok(Stream::Socket(s))
            }
            Transport::Device => Ok(Stream::Device(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .map_err(fail)?,
            )),
        }
    }

    /// Opens a connection and starts its reader.
    fn open(this: &Arc<Inner>) -> XsResult<()> {
        let stream = this.open_stream()?;
        let reader = stream
            .try_clone()
            .map_err(|e| ClientError::NotConnected(e.to_string()))?;
        let serial = u64::from(this.serial.fetch_add(1, Ordering::SeqCst)) + 1;
        *lock(&this.conn) = Some(Conn {
            writer: stream,
            serial,
        });
        let weak = Arc::downgrade(this);
        let max = this.transport.reply_max();
        std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || reader_loop(weak, reader, serial, max))
            .map_err(|e| ClientError::NotConnected(format!("reader thread: {e}")))?;
        Ok(())
    }

    /// Writes one request; returns its id and where its reply will arrive.
    #[allow(clippy::type_complexity)]
    fn send(
        this: &Arc<Inner>,
        tx: u32,
        req: &Request,
    ) -> XsResult<(u32, std::sync::mpsc::Receiver<Message>)> {
        let payload = req
            .encode(this.transport.request_max())
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        // Ids are never 0 (that is what a socket watch event carries).
        let mut id = this.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = this.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let msg = Message::new(req.msg_type(), id, tx, payload);
        let (stx, srx) = sync_channel(1);
        lock(&this.pending).insert(id, stx);
        let mut conn = lock(&this.conn);
        if conn.is_none() && !this.closed.load(Ordering::SeqCst) {
            drop(conn);
            let reopened = Inner::open(this);
            conn = lock(&this.conn);
            if let Err(e) = reopened {
                lock(&this.pending).remove(&id);
                return Err(e);
            }
        }
        let result = match conn.as_mut() {
            None => Err(ClientError::NotConnected("connection closed".into())),
            Some(c) => c.writer.write_all(&msg.to_bytes()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                {
                    ClientError::TimedOut
                } else {
                    ClientError::NotConnected(e.to_string())
                }
            }),
        };
        if result.is_err() {
            lock(&this.pending).remove(&id);
        }
        result.map(|()| (id, srx))
    }

    fn deliver(&self, event: Event) {
        let cb = lock(&self.callback).clone();
        if let Some(cb) = cb {
            cb(event);
        }
    }

    /// After the connection is lost: forget it, fail every waiting request,
    /// and if watches are registered keep trying to come back.
    fn lost(this: &Arc<Inner>, serial: u64) {
        {
            let mut conn = lock(&this.conn);
            if conn.as_ref().map(|c| c.serial) == Some(serial) {
                *conn = None;
            }
        }
        // Dropping the senders wakes every waiter with "disconnected".
        lock(&this.pending).clear();
        if this.closed.load(Ordering::SeqCst) || lock(&this.watches).is_empty() {
            return;
        }
        if this.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(this);
        let _ = std::thread::Builder::new()
            .name("xenstore-reconnect".into())
            .spawn(move || reconnect_loop(weak));
    }
}

fn reconnect_loop(weak: Weak<Inner>) {
    loop {
        std::thread::sleep(RECONNECT_EVERY);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let connected = lock(&inner.conn).is_some() || Inner::open(&inner).is_ok();
        if !connected {
            continue;
        }
        inner.reconnecting.store(false, Ordering::SeqCst);
        let watches = lock(&inner.watches).clone();
        for (path, token) in watches {
            let _one = lock(&inner.one_at_a_time);
            let sent = Inner::send(&inner, 0, &Request::Watch { path, token });
            if let Ok((id, rx)) = sent {
                let _ = rx.recv_timeout(inner.timeout);
                lock(&inner.pending).remove(&id);
            }
        }
        log::info!(
            "xenstore: reconnected to {} and registered the watches again",
            inner.path.display()
        );
        inner.deliver(Event::Reconnected);
        return;
    }
}

fn reader_loop(weak: Weak<Inner>, mut stream: Stream, serial: u64, max: usize) {
    let mut decoder = wire::Decoder::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                log::info!("xenstore: the daemon closed the connection");
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("xenstore: read failed: {e}");
                break;
            }
        };
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let msgs = match decoder.push(&buf[..n]) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("xenstore: dropping the connection: {e}");
                stream.shutdown();
                Inner::lost(&inner, serial);
                return;
            }
        };
        for m in msgs {
            if m.kind() == Some(MsgType::WatchEvent) {
                match wire::parse_watch_event(&m.payload) {
                    Ok((path, token)) => inner.deliver(Event::Watch { path, token }),
                    Err(e) => log::warn!("xenstore: bad watch event: {e}"),
                }
                continue;
            }
            let waiter = lock(&inner.pending).remove(&m.req_id);
            match waiter {
                Some(w) => {
                    let _ = w.try_send(m);
                }
                None => log::debug!("xenstore: reply to unknown request {}", m.req_id),
            }
        }
    }
    if let Some(inner) = weak.upgrade() {
        Inner::lost(&inner, serial);
    }
}

#[cfg(test)]
mod tests;
