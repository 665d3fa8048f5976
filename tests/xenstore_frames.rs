//! Hostile input to the simulated xenstored: truncated, oversized and
//! garbage frames give ERROR replies or a closed connection, never a crash, a
//! hang of other connections, or unbounded memory. And the client survives
//! a daemon restart: requests fail fast while it is down, and its watches
//! come back with it.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::rss_kib;
use domfs::driver::xenstore::client::{Client, ClientError, Event};
use domfs::driver::xenstore::wire::{self, Message, MsgType};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xen_common::Sim;

fn connect(sim: &Sim) -> UnixStream {
    let s = UnixStream::connect(sim.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The reply to one raw frame, or None when the server closed.
fn reply(s: &mut UnixStream) -> Option<Message> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).ok()?;
    let h = wire::Header::parse(&h);
    let mut p = vec![0u8; h.len as usize];
    s.read_exact(&mut p).ok()?;
    Some(Message {
        ty: h.ty,
        req_id: h.req_id,
        tx_id: h.tx_id,
        payload: p,
    })
}

fn error_name(m: &Message) -> String {
    assert_eq!(m.kind(), Some(MsgType::Error), "{m:?}");
    wire::parse_error(&m.payload).to_string()
}

/// The simulator still answers a normal client.
fn alive(sim: &Sim) {
    let c = Client::connect(&sim.socket(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        c.read_string(0, "/local/domain/0/name").unwrap(),
        "Domain-0"
    );
}

#[test]
fn malformed_requests_get_errors() {
    let sim = Sim::start(&["--guest", "g"]);
    let mut s = connect(&sim);
    let cases: &[(u32, &[u8], &str)] = &[
        (23, b"/a\0", "ENOSYS"),
        (20, b"\0", "ENOSYS"),
        (0xffff, b"", "ENOSYS"),
        (2, b"/a", "EINVAL"),
        (2, b"/a\0/b\0", "EINVAL"),
        (2, b"", "EINVAL"),
        (2, b"/a b\0", "EINVAL"),
        (2, b"/a//b\0", "EINVAL"),
        (4, b"/a\0tok\0depth\0", "EINVAL"),
        (7, b"X\0", "EINVAL"),
        (14, b"/a\0q7\0", "EINVAL"),
        (15, b"/a\0t\0", "EINVAL"),
        (2, &[0xff, 0xfe, 0], "EINVAL"),
        (2, b"@introduceDomain\0", "EINVAL"),
        (11, b"@x\0v", "EINVAL"),
        (3, b"@other\0", "EINVAL"),
    ];
    for (i, (ty, payload, want)) in cases.iter().enumerate() {
        let m = Message {
            ty: *ty,
            req_id: i as u32 + 100,
            tx_id: 0,
            payload: payload.to_vec(),
        };
        s.write_all(&m.to_bytes()).unwrap();
        let r = reply(&mut s).expect("a reply, not a closed connection");
        assert_eq!(r.req_id, i as u32 + 100);
        assert_eq!(error_name(&r), *want, "type {ty} payload {payload:?}");
    }
    // The special watch paths carry permissions (n0 until dom0 changes them).
    let m = Message::new(MsgType::GetPerms, 9, 0, b"@releaseDomain\0".to_vec());
    s.write_all(&m.to_bytes()).unwrap();
    assert_eq!(reply(&mut s).unwrap().payload, b"n0\0");
    // A transaction id nobody opened.
    let m = Message::new(MsgType::Read, 1, 77, b"/local\0".to_vec());
    s.write_all(&m.to_bytes()).unwrap();
    assert_eq!(error_name(&reply(&mut s).unwrap()), "ENOENT");
    alive(&sim);
}

#[test]
fn oversized_and_truncated_frames_close_only_their_connection() {
    let sim = Sim::start(&["--guest", "g"]);
    // Oversized: the connection is closed at once (C xenstored's rule).
    let mut s = connect(&sim);
    let h = wire::Header {
        ty: 2,
        req_id: 1,
        tx_id: 0,
        len: u32::MAX,
    };
    s.write_all(&h.encode()).unwrap();
    let t = Instant::now();
    assert!(reply(&mut s).is_none());
    assert!(t.elapsed() < Duration::from_secs(2));
    // 4097 bytes is one too many.
    let mut s = connect(&sim);
    let big = Message::new(MsgType::Write, 1, 0, vec![b'a'; wire::PAYLOAD_MAX + 1]);
    let _ = s.write_all(&big.to_bytes());
    assert!(reply(&mut s).is_none());
    // Truncated: half a header, then half a payload, then a stall; other
    // connections go on meanwhile.
    let mut half = connect(&sim);
    half.write_all(&[2, 0, 0]).unwrap();
    let mut stalled = connect(&sim);
    let m = Message::new(MsgType::Read, 1, 0, b"/local/domain\0".to_vec()).to_bytes();
    stalled.write_all(&m[..20]).unwrap();
    alive(&sim);
    drop(half);
    drop(stalled);
    alive(&sim);
}

#[test]
fn garbage_never_crashes_and_memory_stays_bounded() {
    let sim = Sim::start(&["--guest", "g"]);
    alive(&sim);
    let before = rss_kib(sim.pid());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for round in 0..80 {
        let mut s = connect(&sim);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut junk = Vec::with_capacity(600);
        for _ in 0..600 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        // Every other round, a header with a plausible length so the junk
        // reaches the request decoder rather than the size check.
        if round % 2 == 0 {
            let h = wire::Header {
                ty: (x % 24) as u32,
                req_id: round,
                tx_id: 0,
                len: 584,
            };
            junk[..16].copy_from_slice(&h.encode());
        }
        let _ = s.write_all(&junk);
        let mut sink = [0u8; 8192];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    }
    // Many maximal requests that each announce the whole payload limit.
    for _ in 0..50 {
        let mut s = connect(&sim);
        let h = wire::Header {
            ty: 11,
            req_id: 1,
            tx_id: 0,
            len: 4096,
        };
        let _ = s.write_all(&h.encode());
        let _ = s.write_all(&[b'x'; 2000]);
    }
    alive(&sim);
    let after = rss_kib(sim.pid());
    assert!(
        after < before + 32 * 1024,
        "the simulator grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn the_client_comes_back_after_a_daemon_restart() {
    let mut sim = Sim::start(&["--guest", "g"]);
    let c = Client::connect(&sim.socket(), Duration::from_secs(2)).unwrap();
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let e2 = events.clone();
    c.on_event(move |e| e2.lock().unwrap().push(e));
    c.watch("/local/domain/1/data", "w").unwrap();
    sim.kill();
    // Down: requests fail at once rather than hang.
    let t = Instant::now();
    let r = c.read(0, "/local/domain/0/name");
    assert!(matches!(r, Err(ClientError::NotConnected(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    sim.restart();
    Sim::wait_for(10, "the reconnect", || {
        events.lock().unwrap().contains(&Event::Reconnected)
    });
    assert_eq!(
        c.read_string(0, "/local/domain/0/name").unwrap(),
        "Domain-0"
    );
    events.lock().unwrap().clear();
    let writer = Client::connect(&sim.socket(), Duration::from_secs(2)).unwrap();
    writer.write(0, "/local/domain/1/data/x", b"1").unwrap();
    Sim::wait_for(5, "the event of the re-registered watch", || {
        events.lock().unwrap().contains(&Event::Watch {
            path: "/local/domain/1/data/x".into(),
            token: "w".into(),
        })
    });
}
