//! Streams and blocking calls as shell users meet them, through the real
//! mount: a signal ends `cat events`, `cat NAME/wait/STATE` and a read stuck
//! on a frozen back end at once; `head -n 1` and `tail -f` work on
//! `events`; a wait blocks no other writer. Each test ends with the mount
//! still serving, no process of the test in state D, and a clean unmount.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::{assert_errno, is_mountpoint, Mount};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use xen_common::Sim;

/// A shell command started in the mount, its output collected.
fn spawn(m: &Mount, script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(m.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `limit` for `child` to end; its output and how long it took
/// from `since`. Fails (after killing it) if it is still running.
fn finish(mut child: Child, since: Instant, limit: Duration) -> (Output, Duration) {
    loop {
        if child.try_wait().unwrap().is_some() {
            let took = since.elapsed();
            return (child.wait_with_output().unwrap(), took);
        }
        if since.elapsed() > limit {
            let state = proc_state(child.id());
            let _ = child.kill();
            panic!(
                "still running after {limit:?} (state {state:?}): {:?}",
                child.wait_with_output().map(|o| o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The state letter of a process (`R`, `S`, `D`...), if it exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")?.1.chars().next()
}

/// No process working in the mount sits in state D: a caller the
/// filesystem never answered. (A caller waiting for its answer shows D too,
/// so this runs once the test's own readers have ended.)
fn assert_no_process_in_d(mount: &Path) {
    let mut stuck = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let here = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|cwd| cwd.starts_with(mount))
            .unwrap_or(false);
        if here && proc_state(pid) == Some('D') {
            stuck.push(pid);
        }
    }
    assert!(stuck.is_empty(), "processes in state D: {stuck:?}");
}

/// The end every test checks: the mount still serves, nobody is stuck in
/// the kernel, and it unmounts cleanly.
fn ends_clean(mut m: Mount, value: &str) {
    assert_no_process_in_d(m.path());
    let out = m.sh(&format!("timeout 2 cat {value}"));
    assert!(out.status.success(), "{value}: {out:?}\n{}", m.log_text());
    let status: ExitStatus = m.stop();
    assert!(status.success(), "unmount: {status}");
    assert!(!is_mountpoint(m.path()), "still mounted");
}

fn signal_ends(m: &Mount, what: &str, signal: &str) -> Duration {
    let t = Instant::now();
    let child = spawn(m, &format!("exec timeout -s {signal} 1 {what}"));
    let (out, took) = finish(child, t, Duration::from_secs(5));
    // timeout's status for a command it had to end; with KILL, timeout
    // signals its whole process group, itself included.
    let ended = out.status.code() == Some(124)
        || (signal == "KILL"
            && std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9));
    assert!(ended, "{what}: {out:?}");
    assert!(took < Duration::from_millis(1600), "{what}: took {took:?}");
    took
}

#[test]
fn a_signal_ends_a_reader_of_a_quiet_events_stream() {
    let m = Mount::new("test:///default");
    for signal in ["INT", "TERM", "KILL"] {
        signal_ends(&m, "cat events", signal);
    }
    signal_ends(&m, "head -n 1 events", "INT");
    signal_ends(&m, "tail -f events", "INT");
    // A caught signal: the read fails EINTR and the handler runs.
    let t = Instant::now();
    let child = spawn(
        &m,
        "exec python3 -c \"
import os, signal
def stop(*_): raise SystemExit(7)
signal.signal(signal.SIGALRM, stop)
signal.alarm(1)
os.read(os.open('events', os.O_RDONLY), 100)
\"",
    );
    let (out, took) = finish(child, t, Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(took < Duration::from_millis(1600), "took {took:?}");
    // Nothing is left parked: the next reader gets the next event.
    let reader = spawn(&m, "exec head -n 1 events");
    std::thread::sleep(Duration::from_millis(300));
    m.echo_ok("suspend", "test/control");
    let (out, _) = finish(reader, Instant::now(), Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains(" suspended test "));
    m.echo_ok("resume", "test/control");
    ends_clean(m, "test/state");
}

#[test]
fn head_prints_one_line_and_exits_zero() {
    let m = Mount::new("test:///default");
    let reader = spawn(&m, "exec head -n 1 events");
    std::thread::sleep(Duration::from_millis(300));
    // Two events in one go: head reads both, prints one, seeks back.
    m.sh_ok("echo suspend > test/control; echo resume > test/control");
    let (out, _) = finish(reader, Instant::now(), Duration::from_secs(5));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stderr, b"", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(" suspended test "), "{stdout}");
    ends_clean(m, "test/state");
}

#[test]
fn tail_f_shows_each_event_made_after_it_started() {
    let m = Mount::new("test:///default");
    // An event before tail starts is not shown.
    m.echo_ok("suspend", "test/control");
    let t = Instant::now();
    let tail = spawn(&m, "exec tail -f events");
    std::thread::sleep(Duration::from_millis(500));
    m.echo_ok("resume", "test/control");
    m.echo_ok("setmem 1G", "test/control");
    // tail looks once a second.
    std::thread::sleep(Duration::from_millis(2500));
    m.echo_ok("setvcpus 1", "test/control");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = tail.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let (out, _) = finish(tail, t, Duration::from_secs(15));
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["resumed", "memory-changed", "vcpus-changed"],
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each open has its own size: another process's stat does not grow.
    let size = m.sh_ok("stat -c %s events");
    assert_eq!(size.trim(), "0");
    ends_clean(m, "test/state");
}

#[test]
fn a_wait_is_a_read_that_blocks_no_writer() {
    let m = Mount::new("test:///default");
    // Already there: at once, one line, then the end of the file.
    assert_eq!(m.sh_ok("cat test/wait/running"), "running\n");
    let t = Instant::now();
    let waiter = spawn(&m, "exec cat test/wait/shutoff");
    std::thread::sleep(Duration::from_millis(400));
    // Commands go in through `>` as usual, at once, while it waits.
    let w = Instant::now();
    m.sh_ok("echo suspend > test/control; echo resume > test/control");
    assert!(w.elapsed() < Duration::from_secs(1), "{:?}", w.elapsed());
    m.echo_ok("destroy", "test/control");
    let (out, took) = finish(waiter, t, Duration::from_secs(5));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "shutoff\n");
    assert!(took >= Duration::from_millis(400));
    // A wait for a state that never comes ends with its caller.
    signal_ends(&m, "cat test/wait/paused", "INT");
    // The blocking command is gone, and says where waiting went.
    m.echo_fails("wait shutoff 5", "test/control", libc::EINVAL);
    assert!(m.cat("test/last_error").contains("wait/STATE"));
    m.sh_fails("cat test/wait/sleepy", libc::ENOENT);
    // An editor's temporary file cannot take the directory's name.
    let err =
        m.sh("python3 -c \"import os; os.open('test/wait', os.O_CREAT|os.O_EXCL|os.O_WRONLY)\"");
    assert!(!err.status.success());
    assert_errno(&String::from_utf8_lossy(&err.stderr), libc::EEXIST);
    m.echo_ok("start", "test/control");
    ends_clean(m, "test/state");
}

#[test]
fn a_signal_ends_a_read_stuck_on_a_frozen_back_end() {
    let sim = Sim::start(&["--guest", "guest1,memory=512,vcpus=1"]);
    let xend = format!("xend=unix:{}", sim.dir.join("xend-socket").display());
    let m = Mount::with_options("xen:///", &["-o", &xend]);
    assert_eq!(m.value("guest1/memory"), "524288");
    // SIGSTOP: xend takes connections but never answers (its timeout is
    // 10 s); the reader's signal ends its read at once.
    let pid = sim.pid().to_string();
    // A poll of a wait file asks the back end for the state: opened while
    // the back end answers, polled once it is frozen, it ends with its
    // caller too.
    let t = Instant::now();
    let poller = spawn(
        &m,
        "exec timeout -s INT 2 python3 -c \"import os, select, time; fd = os.open('guest1/wait/paused', os.O_RDONLY); time.sleep(1); p = select.poll(); p.register(fd); p.poll(8000)\"",
    );
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let (out, took) = finish(poller, t, Duration::from_secs(8));
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(took < Duration::from_millis(2600), "poll: took {took:?}");
    signal_ends(&m, "cat guest1/xml", "INT");
    signal_ends(&m, "cat guest1/info", "KILL");

    // What needs no back end answers meanwhile.
    let t = Instant::now();
    m.cat("last_error");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    Sim::wait_for(15, "guest1 answers again", || {
        m.sh("timeout 2 cat guest1/state").status.success()
    });
    ends_clean(m, "guest1/state");
}

#[test]
fn eight_readers_behind_a_frozen_back_end_stall_no_other_reader() {
    let guests: Vec<String> = (1..=8)
        .map(|i| format!("guest{i},memory=512,vcpus=1"))
        .collect();
    let args: Vec<&str> = guests
        .iter()
        .flat_map(|g| ["--guest", g.as_str()])
        .collect();
    let sim = Sim::start(&args);
    let xend = format!("xend=unix:{}", sim.dir.join("xend-socket").display());
    let m = Mount::with_options("xen:///", &["-o", &xend]);
    assert_eq!(m.value("guest1/memory"), "524288");
    let pid = sim.pid().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // Each holds a worker in a back-end call that will not end (xend's
    // timeout is 10 s) until its caller is signalled. Each reads another
    // domain: readers of one name would queue in the kernel behind one
    // lookup.
    let t = Instant::now();
    let readers: Vec<Child> = (1..=8)
        .map(|i| spawn(&m, &format!("exec timeout -s INT 4 cat guest{i}/info")))
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    for r in &readers {
        assert_eq!(
            proc_state(r.id()).map(|s| s != 'Z'),
            Some(true),
            "a reader ended early"
        );
    }
    // A value no back end makes answers meanwhile, more than once.
    for _ in 0..3 {
        let asked = Instant::now();
        m.cat("last_error");
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
    }
    for r in readers {
        let (out, _) = finish(r, t, Duration::from_secs(8));
        assert_eq!(out.status.code(), Some(124), "{out:?}");
    }
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    Sim::wait_for(15, "guest1 answers again", || {
        m.sh("timeout 2 cat guest1/state").status.success()
    });
    ends_clean(m, "guest1/state");
}
