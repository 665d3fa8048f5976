//! The client against a hostile daemon: a scripted socket peer (a test
//! double, named as such) that sends what no real daemon sends, to prove the
//! client fails cleanly. Agreement with real tools and the simulated host is
//! tested in tests/xenstore_clients.rs.
use super::*;
use std::os::unix::net::UnixListener;
use std::time::Instant;

struct Peer {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Listens on a fresh socket; `script` gets each accepted connection.
fn peer(tag: &str, script: impl Fn(UnixStream) + Send + 'static) -> Peer {
    let dir = std::env::temp_dir().join(format!("domfs-xsclient-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("socket");
    let l = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            script(s);
        }
    });
    Peer { dir, path }
}

/// Reads one request header and payload.
fn read_request(s: &mut UnixStream) -> Option<Message> {
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

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

#[test]
fn oversized_reply_header_drops_the_connection() {
    let p = peer("oversized", |mut s| {
        if let Some(m) = read_request(&mut s) {
            let h = wire::Header {
                ty: MsgType::Read.code(),
                req_id: m.req_id,
                tx_id: 0,
                len: u32::MAX,
            };
            let _ = s.write_all(&h.encode());
            std::thread::sleep(Duration::from_secs(3));
        }
    });
    let c = Client::connect(&p.path, Duration::from_secs(2)).unwrap();
    let (r, took) = timed(|| c.read(0, "/a"));
    assert!(matches!(r, Err(ClientError::NotConnected(_))), "{r:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn truncated_reply_then_close_is_an_error() {
    let p = peer("truncated", |mut s| {
        if let Some(m) = read_request(&mut s) {
            let mut b = Message::new(MsgType::Read, m.req_id, 0, b"value".to_vec()).to_bytes();
            b.truncate(18);
            let _ = s.write_all(&b);
        }
    });
    let c = Client::connect(&p.path, Duration::from_secs(2)).unwrap();
    let r = c.read(0, "/a");
    assert!(matches!(r, Err(ClientError::NotConnected(_))), "{r:?}");
}

#[test]
fn a_silent_daemon_times_out() {
    let p = peer("silent", |mut s| {
        let _ = read_request(&mut s);
        std::thread::sleep(Duration::from_secs(3));
    });
    let c = Client::connect(&p.path, Duration::from_millis(300)).unwrap();
    let (r, took) = timed(|| c.read(0, "/a"));
    assert_eq!(r, Err(ClientError::TimedOut));
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A batch shares one deadline.
    let reqs: Vec<Request> = (0..5).map(|i| Request::Read(format!("/k{i}"))).collect();
    let (r, took) = timed(|| c.pipeline(0, &reqs));
    assert!(r.iter().all(|x| *x == Err(ClientError::TimedOut)), "{r:?}");
    assert!(took < Duration::from_millis(900), "{took:?}");
}

#[test]
fn garbage_and_bad_replies_give_errors() {
    let p = peer("garbage", |mut s| {
        // First request: an ERROR with an unknown name; second: a GET_PERMS
        // reply that is not a permission list; third: pure garbage.
        if let Some(m) = read_request(&mut s) {
            let e = Message::new(MsgType::Error, m.req_id, 0, b"EWHATEVER\0".to_vec());
            let _ = s.write_all(&e.to_bytes());
        }
        if let Some(m) = read_request(&mut s) {
            let e = Message::new(MsgType::GetPerms, m.req_id, 0, b"zz\0".to_vec());
            let _ = s.write_all(&e.to_bytes());
        }
        if read_request(&mut s).is_some() {
            let _ = s.write_all(&[0xff; 64]);
        }
    });
    let c = Client::connect(&p.path, Duration::from_secs(2)).unwrap();
    let r = c.read(0, "/a");
    assert_eq!(
        r,
        Err(ClientError::Daemon(XsErr::Unknown("EWHATEVER".into())))
    );
    assert!(matches!(
        c.get_perms(0, "/a"),
        Err(ClientError::Protocol(_))
    ));
    let r = c.read(0, "/a");
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn big_socket_replies_are_accepted_and_ids_route_replies() {
    // oxenstored sends replies above 4096 bytes on a socket; and replies may
    // come back in any order.
    let p = peer("big", |mut s| {
        let a = read_request(&mut s);
        let b = read_request(&mut s);
        if let (Some(a), Some(b)) = (a, b) {
            let rb = Message::new(MsgType::Read, b.req_id, 0, b"second".to_vec());
            let ra = Message::new(MsgType::Read, a.req_id, 0, vec![b'x'; 10_000]);
            let ev = Message::new(MsgType::WatchEvent, 0, 0, b"/w\0tok\0".to_vec());
            let _ = s.write_all(&rb.to_bytes());
            let _ = s.write_all(&ev.to_bytes());
            let _ = s.write_all(&ra.to_bytes());
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let c = Client::connect(&p.path, Duration::from_secs(2)).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    c.on_event(move |e| e2.lock().unwrap().push(e));
    let r = c.pipeline(0, &[Request::Read("/a".into()), Request::Read("/b".into())]);
    assert_eq!(r[0].as_ref().unwrap().len(), 10_000);
    assert_eq!(r[1].as_ref().unwrap(), b"second");
    assert_eq!(
        *events.lock().unwrap(),
        [Event::Watch {
            path: "/w".into(),
            token: "tok".into()
        }]
    );
}

#[test]
fn a_missing_endpoint_says_why() {
    let e = Client::connect(Path::new("/nonexistent/xs/socket"), DEFAULT_TIMEOUT)
        .err()
        .unwrap();
    assert!(e.to_string().contains("/nonexistent/xs/socket"), "{e}");
    assert_eq!(e.errno(), libc::ENOTCONN);
}
