//! Faults injected under a real mount of `xen:///` over domfs-sim: xend
//! answering slowly, with garbage, a truncated body, a wrong length or a
//! connection closed mid-reply (a proxy between domfs and the simulated
//! xend mangles the real replies); xenstored killed and restarted during
//! reads and writes; a domain vanishing between its lookup and a read;
//! watch events for paths gone by the time domfs reads them.
//!
//! Every operation must end within its back end's timeout, either with an
//! errno that names a back-end failure or with a right value (from a cache
//! or from the other back end), never with garbage; the other back end's
//! values keep coming meanwhile; and once the fault ends, the same mount
//! serves again without a remount. xenstore and xend come from two
//! simulated hosts that hold the same guest (same name, UUID and id), so one
//! can fail while the other serves.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xen_common::Sim;

const UUID1: &str = "11111111-2222-3333-4444-555555555501";
const UUID2: &str = "11111111-2222-3333-4444-555555555502";

/// What the proxy does to each xend reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    Pass,
    /// The reply comes 12 s late, past domfs's 10 s request deadline.
    Slow,
    /// Bytes that are not HTTP at all.
    Garbage,
    /// A well-framed reply whose body is not an S-expression.
    BadBody,
    /// Half the body, then the connection closes.
    Truncated,
    /// Content-Length says more than is sent.
    LongLength,
    /// Content-Length says less than is sent (a cut S-expression).
    ShortLength,
    /// The connection closes in the middle of the status line.
    CloseMid,
}

const FAULTS: [Fault; 7] = [
    Fault::Garbage,
    Fault::BadBody,
    Fault::Truncated,
    Fault::LongLength,
    Fault::ShortLength,
    Fault::CloseMid,
    Fault::Slow,
];

/// A unix-socket proxy in front of a simulated xend.
struct Proxy {
    path: PathBuf,
    fault: Arc<AtomicU8>,
    /// Replies the proxy mangled.
    mangled: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(dir: &Path, upstream: PathBuf) -> Proxy {
        let path = dir.join("xend-proxy");
        let listener = UnixListener::bind(&path).unwrap();
        let fault = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let mangled = Arc::new(AtomicUsize::new(0));
        let (f, n) = (fault.clone(), mangled.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, f, n) = (upstream.clone(), f.clone(), n.clone());
                std::thread::spawn(move || serve(conn, &up, &f, &n));
            }
        });
        Proxy {
            path,
            fault,
            mangled,
        }
    }

    fn set(&self, f: Fault) {
        self.fault.store(f as u8, Ordering::SeqCst);
    }
}

fn fault_of(v: u8) -> Fault {
    *FAULTS
        .iter()
        .find(|f| **f as u8 == v)
        .unwrap_or(&Fault::Pass)
}

/// One request: read it whole, pass it on, mangle the reply as set.
fn serve(mut c: UnixStream, upstream: &Path, fault: &AtomicU8, mangled: &AtomicUsize) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&req[..body_start]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while req.len() < body_start + len {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let Ok(mut up) = UnixStream::connect(upstream) else {
        return;
    };
    let mut reply = Vec::new();
    if up.write_all(&req).is_err() || up.read_to_end(&mut reply).is_err() {
        return;
    }
    let f = fault_of(fault.load(Ordering::SeqCst));
    if f != Fault::Pass {
        mangled.fetch_add(1, Ordering::SeqCst);
    }
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |p| p + 4);
    let (rhead, body) = reply.split_at(split);
    let with_length = |n: usize| {
        let text = String::from_utf8_lossy(rhead);
        let mut out: String = text
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("content-length:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        out.push_str(&format!("Content-Length: {n}\r\n\r\n"));
        out.into_bytes()
    };
    let out: Vec<u8> = match f {
        Fault::Pass => reply.clone(),
        Fault::Slow => {
            std::thread::sleep(Duration::from_secs(12));
            reply.clone()
        }
        Fault::Garbage => b"\x00\xff\xfe garbage (((( \n\n\x04".to_vec(),
        Fault::BadBody => {
            let bad = b"(domain (name ))))) 'unterminated";
            [with_length(bad.len()), bad.to_vec()].concat()
        }
        Fault::Truncated => [rhead, &body[..body.len() / 2]].concat(),
        Fault::LongLength => [with_length(body.len() + 100), body.to_vec()].concat(),
        Fault::ShortLength => [with_length(body.len() / 3), body.to_vec()].concat(),
        Fault::CloseMid => reply[..reply.len().min(7)].to_vec(),
    };
    let _ = c.write_all(&out);
}

/// The setup every test here shares.
struct Rig {
    xs: Sim,
    xend: Sim,
    proxy: Proxy,
    m: Mount,
    injected: usize,
    survived: usize,
}

fn guests() -> Vec<String> {
    vec![
        "--shutdown-delay".into(),
        "100".into(),
        "--guest".into(),
        format!("guest1,memory=512,vcpus=2,uuid={UUID1}"),
        "--guest".into(),
        format!("guest2,memory=256,uuid={UUID2}"),
    ]
}

impl Rig {
    fn new() -> Rig {
        let args = guests();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let xs = Sim::start(&args);
        let xend = Sim::start(&args);
        Sim::wait_for(10, "xend's socket", || xend.dir.join("xend-port").exists());
        let proxy = Proxy::start(&xend.dir, xend.dir.join("xend-socket"));
        let opts = format!(
            "xend=unix:{},xenstore={}",
            proxy.path.display(),
            xs.socket().display()
        );
        let m = Mount::with_options("xen:///", &["-o", &opts]);
        Rig {
            xs,
            xend,
            proxy,
            m,
            injected: 0,
            survived: 0,
        }
    }

    /// `cat REL` under a deadline: Ok(text), or Err(error text), and how long.
    fn read(&self, rel: &str) -> (Result<String, String>, Duration) {
        let t = Instant::now();
        let out = self.m.sh(&format!("timeout 30 cat {}", quote(rel)));
        let took = t.elapsed();
        if out.status.success() {
            (Ok(String::from_utf8_lossy(&out.stdout).into_owned()), took)
        } else {
            (Err(String::from_utf8_lossy(&out.stderr).into_owned()), took)
        }
    }

    /// Waits until `rel` reads as `want` again (recovery without remount).
    fn recovers(&self, rel: &str, want: &str, what: &str) {
        Sim::wait_for(15, what, || self.read(rel).0.as_deref() == Ok(want));
    }
}

/// An error a back-end failure may give: EIO, ENOTCONN, ETIMEDOUT, ENODEV.
fn backend_errno(err: &str) -> bool {
    [libc::EIO, libc::ENOTCONN, libc::ETIMEDOUT, libc::ENODEV]
        .iter()
        .any(|e| err.contains(&strerror(*e)))
}

#[test]
fn xend_faults_fail_cleanly_while_xenstore_serves_and_heal_without_remount() {
    let mut rig = Rig::new();
    let xml = rig.read("guest1/xml").0.unwrap();
    assert!(xml.contains(UUID1), "{xml}");
    let id = rig.m.value("guest1/id");
    for fault in FAULTS {
        rig.proxy.set(fault);
        rig.injected += 1;
        // A value only xend has: the right one (from a cache), or a
        // back-end errno, in time; never garbage.
        let limit = if fault == Fault::Slow { 12 } else { 4 };
        for file in ["guest1/xml", "guest2/max_memory", "node/info"] {
            let (got, took) = rig.read(file);
            assert!(
                took < Duration::from_secs(limit),
                "{fault:?}: {file} took {took:?}"
            );
            match got {
                // xend's definition from a cache, or xenstore's sketch of
                // the running domain (DomainXml asks xend, then xenstore).
                Ok(text) if file == "guest1/xml" => {
                    assert!(
                        text == xml
                            || (text.contains(UUID1) && text.contains("<name>guest1</name>")),
                        "{fault:?}: {text}"
                    );
                    assert!(domfs::model::DomainDef::parse(&text).is_ok(), "{text}");
                }
                Ok(text) => assert!(!text.contains("garbage"), "{fault:?}: {text}"),
                Err(e) => assert!(backend_errno(&e), "{fault:?}: {file}: {e}"),
            }
        }
        // What xenstore answers keeps coming.
        assert_eq!(rig.m.value("guest1/id"), id, "{fault:?}");
        assert!(rig.m.sh_ok("ls").contains("guest2\n"), "{fault:?}");
        let target = rig.xs.xs(
            "xenstore-read",
            &[&format!("/local/domain/{id}/memory/target")],
        );
        assert_eq!(target.trim(), "524288", "{fault:?}");
        rig.proxy.set(Fault::Pass);
        rig.recovers("guest1/xml", &xml, "xend to heal");
        rig.recovers("guest2/max_memory", "262144\n", "xend to heal");
        assert_eq!(rig.m.value("guest1/id"), id);
        rig.survived += 1;
    }
    assert!(rig.proxy.mangled.load(Ordering::SeqCst) >= FAULTS.len());
    println!(
        "xend faults: {} injected, {} survived, {} replies mangled",
        rig.injected,
        rig.survived,
        rig.proxy.mangled.load(Ordering::SeqCst)
    );
    assert_eq!(rig.injected, rig.survived);
}

#[test]
fn xenstored_killed_during_reads_and_writes_then_restarted() {
    let mut rig = Rig::new();
    let id = rig.m.value("guest1/id");
    let xml = rig.read("guest1/xml").0.unwrap();
    for round in 0..3 {
        // Readers and a writer running while the daemon dies under them.
        let busy = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "i=0; while [ $i -lt 40 ]; do cat guest1/id guest2/id >/dev/null 2>&1; \
                 /bin/echo {} > guest1/memory 2>/dev/null; i=$((i+1)); done",
                400_000 + round
            ))
            .current_dir(rig.m.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        rig.xs.kill();
        rig.injected += 1;
        let t = Instant::now();
        busy.wait_with_output().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "readers stuck {:?}",
            t.elapsed()
        );
        // While it is down: xenstore's answers fail in time with a back-end
        // errno; xend's keep coming.
        let t = Instant::now();
        let out = rig.m.sh("/bin/echo 300000 > guest1/memory");
        assert!(!out.status.success(), "a write reached a dead xenstored");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(backend_errno(&err), "{err}");
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
        assert_eq!(rig.read("guest1/xml").0.as_deref(), Ok(xml.as_str()));
        assert_eq!(rig.m.value("guest2/max_memory"), "262144");
        // Back, in the same mount.
        rig.xs.restart();
        rig.recovers("guest1/id", &format!("{id}\n"), "xenstore to heal");
        rig.m.echo_ok("300000", "guest1/memory");
        let target = rig.xs.xs(
            "xenstore-read",
            &[&format!("/local/domain/{id}/memory/target")],
        );
        assert_eq!(target.trim(), "300000");
        rig.survived += 1;
    }
    println!(
        "xenstored faults: {} injected, {} survived",
        rig.injected, rig.survived
    );
    assert_eq!(rig.injected, rig.survived);
    let _ = &rig.xend;
}

/// A domain shut down behind domfs's back (by the guest itself, through
/// xenstore, on a xenstore-only mount) after its directory was looked up:
/// reads from inside the gone directory end at once with ENOENT or a
/// back-end errno, and the rest of the mount goes on.
#[test]
fn a_domain_vanishing_between_lookup_and_read() {
    let args = guests();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&args);
    let opts = format!("xenstore={}", sim.socket().display());
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    let guest1 = m.value("guest1/state");
    let id = m.value("guest2/id");
    let guest = sim.guest_socket(id.parse().unwrap());
    let script = format!(
        "cd guest2 && XENSTORED_PATH={} xenstore-write control/shutdown poweroff && sleep 0.5 && \
         for f in state id memory info; do timeout 10 cat $f; done",
        quote(&guest.display().to_string())
    );
    let t = Instant::now();
    let out = m.sh(&script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(!out.status.success(), "the vanished domain still reads");
    assert!(
        err.contains(&strerror(libc::ENOENT)) || backend_errno(&err),
        "{err}"
    );
    assert!(!err.contains("Terminated"), "a read hung: {err}");
    Sim::wait_for(10, "guest2 to leave the listing", || {
        !m.sh_ok("ls").contains("guest2\n")
    });
    assert_eq!(m.value("guest1/state"), guest1);
    println!("vanishing domain: 1 injected, 1 survived");
}

/// Watch events for paths that are gone by the time domfs looks: keys
/// written and removed at once by dom0 under a domain that does not exist
/// (its `name` too, which makes domfs list the domains again), and a
/// guest's `control/shutdown` written and removed under a live domain. No
/// event is made up, nothing fails, and every value still reads.
#[test]
fn watch_events_for_paths_already_gone() {
    let rig = Rig::new();
    let id = rig.m.value("guest1/id");
    let events = rig.m.path().join("events");
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&events)
        .unwrap();
    let before: Vec<(String, String)> = ["guest1/state", "guest1/memory", "guest2/info"]
        .iter()
        .map(|f| (f.to_string(), rig.m.cat(f)))
        .collect();
    const ROUNDS: usize = 30;
    let script = format!(
        "set -e; i=0; while [ $i -lt {ROUNDS} ]; do \
         xenstore-write /local/domain/4242/memory/target 1 /local/domain/4242/name ghost; \
         xenstore-rm /local/domain/4242; \
         xenstore-write /local/domain/{id}/control/shutdown x; \
         xenstore-rm /local/domain/{id}/control/shutdown; \
         i=$((i+1)); done"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("XENSTORED_PATH", rig.xs.socket())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let injected = ROUNDS * 3;
    // Let the watch thread catch up, then nothing may have been reported.
    std::thread::sleep(Duration::from_millis(1500));
    let mut text = String::from_utf8_lossy(&drain(&mut reader)).into_owned();
    assert!(text.is_empty(), "events made up:\n{text}");
    for (f, v) in &before {
        // Values that move on their own (cpu_time in info) are compared by
        // their keys.
        let now = rig.m.cat(f);
        let keys = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(keys(&now), keys(v), "{f}");
    }
    assert_eq!(rig.m.value("guest1/state"), before[0].1.trim());
    assert!(!rig.m.sh_ok("ls").contains("ghost"));
    // The watch thread lived through it: a real change is still reported.
    rig.m.echo_ok("300000", "guest1/memory");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        text.push_str(&String::from_utf8_lossy(&drain(&mut reader)));
        if text.contains(" memory-changed guest1 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no memory-changed after the storm: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rig.m.assert_alive_at("guest2/state");
    assert!(
        !rig.m.log_text().contains("panicked"),
        "{}",
        rig.m.log_text()
    );
    println!("watch events for gone paths: {injected} injected, {injected} survived");
}
