//! The simulated xenstored's protocol front: accepts connections on unix
//! sockets, reads requests with the lib's wire codec, applies them to the
//! store, and writes replies and watch events.
//!
//! The dom0 socket is privileged, as a real socket connection is. A guest
//! socket (`domain-N` beside it) stands in for guest N's ring connection:
//! unprivileged, relative paths under `/local/domain/N`, quotas and the ring's
//! 4096-byte reply limit apply. It knows nothing of guests beyond that number.

use crate::store::{Caller, EventQueue, Flavour, Sink, Store};
use domfs::driver::xenstore::wire::{self, ErrName, Message, MsgType, Request};
pub use domfs::sync::lock;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
/// Events queued for one connection before further ones are dropped.
const EVENT_QUEUE: usize = 1024;
/// A client that does not read its replies for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until `stop` is set, each connection speaking for
/// `domid` (0 = privileged dom0). When stopped (the guest is destroyed) its
/// connections are closed, as a destroyed domain's ring goes away.
pub fn serve(listener: UnixListener, store: Arc<Mutex<Store>>, domid: u32, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        // Only a guest's socket is ever stopped; dom0's blocks in accept.
        if let Err(e) = listener.set_nonblocking(domid != 0) {
            log::warn!("listener: {e}");
            return;
        }
        let mut open: Vec<UnixStream> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(false).is_err() {
                        continue;
                    }
                    if let Ok(c) = s.try_clone() {
                        open.push(c);
                    }
                    let store = store.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || connection(s, store, domid, stop));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    log::warn!("accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        for s in open {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    });
}

fn connection(stream: UnixStream, store: Arc<Mutex<Store>>, domid: u32, stop: Arc<AtomicBool>) {
    let caller = Caller {
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        domid,
    };
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let _ = write_half.set_write_timeout(Some(WRITE_TIMEOUT));
    let writer = Arc::new(Mutex::new(write_half));
    let queue = Arc::new(EventQueue::new(EVENT_QUEUE));
    let (ev_writer, ev_queue) = (writer.clone(), queue.clone());
    // Sends events that arrive while the connection is idle.
    std::thread::spawn(move || {
        while !ev_queue.closed.load(Ordering::SeqCst) {
            ev_queue.wait(Duration::from_millis(500));
            if flush(&mut lock(&ev_writer), &ev_queue).is_err() {
                return;
            }
        }
    });
    let mut reader = stream;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut h = [0u8; wire::HEADER_LEN];
        if reader.read_exact(&mut h).is_err() {
            break;
        }
        let header = wire::Header::parse(&h);
        if header.len as usize > wire::PAYLOAD_MAX {
            // C xenstored drops a connection that announces too much.
            log::warn!(
                "connection {}: request of {} bytes, closing",
                caller.conn,
                header.len
            );
            break;
        }
        let mut payload = vec![0u8; header.len as usize];
        if reader.read_exact(&mut payload).is_err() {
            break;
        }
        // Hold the writer while handling, so events this request causes
        // follow its reply (oxenstored's order) and never overtake it.
        let mut w = lock(&writer);
        if flush(&mut w, &queue).is_err() {
            break;
        }
        let reply = handle(&store, caller, &header, &payload, Sink::Conn(queue.clone()));
        if w.write_all(&reply.to_bytes()).is_err() || flush(&mut w, &queue).is_err() {
            break;
        }
    }
    queue.closed.store(true, Ordering::SeqCst);
    lock(&store).forget(caller.conn);
    let _ = lock(&writer).shutdown(std::net::Shutdown::Both);
}

/// Writes every queued event.
fn flush(w: &mut UnixStream, queue: &EventQueue) -> std::io::Result<()> {
    for (path, token) in queue.take_all() {
        let m = Message::new(
            MsgType::WatchEvent,
            0,
            0,
            wire::encode_watch_event(&path, &token),
        );
        w.write_all(&m.to_bytes())?;
    }
    Ok(())
}

fn error(h: &wire::Header, e: ErrName) -> Message {
    Message::new(MsgType::Error, h.req_id, h.tx_id, wire::encode_error(e))
}

/// One request in, one reply out.
fn handle(
    store: &Mutex<Store>,
    caller: Caller,
    h: &wire::Header,
    payload: &[u8],
    sink: Sink,
) -> Message {
    crate::XENSTORE_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let req = match Request::decode(h.ty, payload) {
        Ok(r) => r,
        Err(None) => return error(h, ErrName::Enosys),
        Err(Some(e)) => {
            log::debug!("connection {}: {e}", caller.conn);
            return error(h, ErrName::Einval);
        }
    };
    let ring = !caller.privileged();
    let mut s = lock(store);
    let flavour = s.flavour;
    let ok = || wire::OK.to_vec();
    let tx = h.tx_id;
    let result: Result<Vec<u8>, ErrName> = (|| {
        let privileged = || {
            if caller.privileged() {
                Ok(())
            } else {
                Err(ErrName::Eacces)
            }
        };
        // `@` names are watch paths, and permission targets for the two
        // special ones; as node paths they are invalid.
        let node_path = match &req {
            Request::Read(p)
            | Request::Directory(p)
            | Request::Mkdir(p)
            | Request::Rm(p)
            | Request::Write { path: p, .. }
            | Request::DirectoryPart { path: p, .. } => Some(p.as_str()),
            Request::GetPerms(p) | Request::SetPerms { path: p, .. }
                if p != crate::store::INTRODUCE && p != crate::store::RELEASE =>
            {
                Some(p.as_str())
            }
            _ => None,
        };
        if node_path.is_some_and(|p| p.starts_with('@')) {
            return Err(ErrName::Einval);
        }
        Ok(match req {
            Request::Read(p) => s.read(caller, tx, &p)?,
            Request::Directory(p) => wire::encode_directory(&s.directory(caller, tx, &p)?.1),
            Request::DirectoryPart { path, offset } => {
                if flavour == Flavour::Ocaml {
                    return Err(ErrName::Enosys);
                }
                let (gen, children) = s.directory(caller, tx, &path)?;
                directory_part(gen, &children, offset)
            }
            Request::GetPerms(p) => wire::encode_perms(&s.get_perms(caller, tx, &p)?),
            Request::Write { path, value } => {
                s.write(caller, tx, &path, &value)?;
                ok()
            }
            Request::Mkdir(p) => {
                s.mkdir(caller, tx, &p)?;
                ok()
            }
            Request::Rm(p) => {
                s.rm(caller, tx, &p)?;
                ok()
            }
            Request::SetPerms { path, perms } => {
                s.set_perms(caller, tx, &path, &perms)?;
                ok()
            }
            Request::Watch { path, token } => {
                s.watch(caller, &path, &token, sink)?;
                ok()
            }
            Request::Unwatch { path, token } => {
                s.unwatch(caller, &path, &token)?;
                ok()
            }
            Request::TransactionStart => {
                if tx != 0 {
                    return Err(ErrName::Ebusy);
                }
                format!("{}\0", s.transaction_start(caller)?).into_bytes()
            }
            Request::TransactionEnd { commit } => {
                s.transaction_end(caller, tx, commit)?;
                ok()
            }
            Request::GetDomainPath(d) => format!("/local/domain/{d}\0").into_bytes(),
            Request::Introduce { domid, .. } => {
                privileged()?;
                if domid == 0 {
                    return Err(ErrName::Einval);
                }
                s.fire_special(crate::store::INTRODUCE);
                ok()
            }
            Request::Release(domid) => {
                privileged()?;
                if domid == 0 {
                    return Err(ErrName::Einval);
                }
                s.fire_special(crate::store::RELEASE);
                ok()
            }
            Request::IsDomainIntroduced(d) => {
                privileged()?;
                let known = d == 0 || s.exists(&format!("/local/domain/{d}"));
                if known {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                }
            }
            Request::Resume(d) => {
                privileged()?;
                if !s.exists(&format!("/local/domain/{d}")) {
                    return Err(ErrName::Enoent);
                }
                ok()
            }
            Request::SetTarget { domid, target } => {
                privileged()?;
                s.set_target(domid, target);
                ok()
            }
            Request::ResetWatches => {
                s.forget(caller.conn);
                ok()
            }
            Request::Control(args) => {
                privileged()?;
                match args.first().map(String::as_str) {
                    Some("print") => {
                        log::info!("xenstore-control print: {}", args[1..].join(" "));
                        ok()
                    }
                    _ => return Err(ErrName::Einval),
                }
            }
        })
    })();
    drop(s);
    match result {
        Ok(p) if p.len() > wire::PAYLOAD_MAX && (ring || flavour == Flavour::C) => {
            error(h, ErrName::E2big)
        }
        Ok(p) => Message {
            ty: h.ty,
            req_id: h.req_id,
            tx_id: h.tx_id,
            payload: p,
        },
        Err(e) => error(h, e),
    }
}

/// C xenstored's DIRECTORY_PART reply: the generation, then whole children
/// from `offset` that fit, then an empty string when the list is done.
fn directory_part(gen: u64, children: &[String], offset: u64) -> Vec<u8> {
    let mut out = format!("{gen}\0").into_bytes();
    let all = wire::encode_directory(children);
    let start = (offset as usize).min(all.len());
    let room = wire::PAYLOAD_MAX - out.len() - 1;
    let mut end = start;
    for piece in all[start..].split_inclusive(|b| *b == 0) {
        if end - start + piece.len() > room {
            break;
        }
        end += piece.len();
    }
    out.extend_from_slice(&all[start..end]);
    if end == all.len() {
        out.push(0);
    }
    out
}
