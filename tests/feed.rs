//! The change feed through the real mount: `poll(2)` on value files, the
//! `events` stream read by a shell, its overflow line, and reads that are
//! never stale after a change (`wait` and the stream idioms: `streams.rs`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::Mount;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn python(m: &Mount, code: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .current_dir(m.path())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_text()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `test/state` while `command` is written from another thread; prints
/// whether poll woke, the value before and the value re-read after a seek.
const POLL_ONE: &str = r#"
import os, select, sys, threading, time
cmd = sys.argv[1]
fd = os.open('test/state', os.O_RDONLY)
before = os.read(fd, 100).decode().strip()
p = select.poll()
p.register(fd, select.POLLPRI | select.POLLIN)
quiet = p.poll(200)
def change():
    time.sleep(0.2)
    c = os.open('test/control', os.O_WRONLY)
    os.write(c, (cmd + '\n').encode())
    os.close(c)
threading.Thread(target=change).start()
woke = p.poll(5000)
os.lseek(fd, 0, 0)
after = os.read(fd, 100).decode().strip()
ev = woke[0][1] if woke else 0
print(len(quiet), bool(ev & select.POLLPRI), bool(ev & select.POLLIN), before, after)
"#;

#[test]
fn poll_wakes_on_every_transition_and_not_before() {
    let m = Mount::new("test:///default");
    for (cmd, before, after) in [
        ("suspend", "running", "paused"),
        ("resume", "paused", "running"),
        ("destroy", "running", "shutoff"),
        ("start", "shutoff", "running"),
        ("shutdown", "running", "shutoff"),
        ("start", "shutoff", "running"),
        ("save /tmp/domfs-feed-test.img", "running", "shutoff"),
    ] {
        let out = Command::new("python3")
            .arg("-c")
            .arg(POLL_ONE)
            .arg(cmd)
            .current_dir(m.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            format!("0 True True {before} {after}"),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    m.echo_ok("/tmp/domfs-feed-test.img", "restore");
    assert_eq!(m.value("test/state"), "running");
    let _ = std::fs::remove_file("/tmp/domfs-feed-test.img");
    // A file whose changes are not events never blocks a poller.
    let ready = python(
        &m,
        "import os, select\nfd=os.open('test/cpu_time', os.O_RDONLY)\np=select.poll()\np.register(fd, select.POLLIN)\nprint(len(p.poll(2000)))",
    );
    assert_eq!(ready.trim(), "1");
}

#[test]
fn a_shell_reads_the_events_stream_line_by_line() {
    let m = Mount::new("test:///default");
    let out = m.path().join("../events.out");
    let out = std::fs::canonicalize(out.parent().unwrap())
        .unwrap()
        .join(format!("events-{}.out", std::process::id()));
    let mut reader = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "n=0; while read -r line; do echo \"$line\" >> {}; n=$((n+1)); [ $n -ge 8 ] && break; done < events",
            out.display()
        ))
        .current_dir(m.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    m.echo_ok("suspend", "test/control");
    m.echo_ok("resume", "test/control");
    m.echo_ok("setmem 1G", "test/control");
    m.echo_ok("setvcpus 1", "test/control");
    m.echo_ok("destroy", "test/control");
    m.echo_ok("start", "test/control");
    m.sh_ok("printf \"<domain type='test'><name>ev1</name><memory>65536</memory><os><type>hvm</type></os></domain>\" > define");
    m.sh_ok("rmdir ev1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the reader did not get 8 lines");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
    let got: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert!(f[0].ends_with('Z') && f[0].contains('T'), "{l}");
            assert_eq!(f[4].len(), 36, "{l}");
            if f[2] == "test" {
                assert_eq!(f[4], uuid);
            }
            let mut kept = f[1..4].to_vec();
            kept.extend(&f[5..]);
            kept.join(" ")
        })
        .collect();
    assert_eq!(
        got,
        [
            "suspended test 1",
            "resumed test 1",
            "memory-changed test 1",
            "vcpus-changed test 1",
            "stopped test 1 destroyed",
            "started test 2",
            "defined ev1 -1",
            "undefined ev1 -1",
        ],
        "{text}"
    );
}

#[test]
fn a_reader_that_falls_behind_gets_one_overflow_line() {
    let m = Mount::new("test:///default");
    let got = python(
        &m,
        "import os\nev=os.open('events', os.O_RDONLY)\nc=os.open('test/control', os.O_WRONLY)\nfor i in range(700):\n  os.write(c, b'suspend\\n'); os.write(c, b'resume\\n')\ndata=b''\nwhile data.count(b'\\n') < 1025:\n  data += os.read(ev, 65536)\nlines=data.decode().splitlines()\nprint(lines[-1].split(' ')[1], len(lines), sum(1 for l in lines if ' overflow' in l))",
    );
    assert_eq!(got.trim(), "overflow 1025 1");
    m.assert_alive();
}

#[test]
fn no_read_is_stale_after_a_change_or_torn() {
    let m = Mount::new("test:///default");
    // Readers hammer the file meanwhile; every value they see is whole.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            Command::new("sh")
                .arg("-c")
                .arg("for i in $(seq 1500); do cat test/state; done")
                .current_dir(m.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let got = python(
        &m,
        "import os\nc=os.open('test/control', os.O_WRONLY)\nbad=0\nfor i in range(2000):\n  cmd, want = (b'suspend\\n', 'paused') if i % 2 == 0 else (b'resume\\n', 'running')\n  os.write(c, cmd)\n  fd=os.open('test/state', os.O_RDONLY)\n  v=os.read(fd, 100).decode()\n  os.close(fd)\n  if v != want + '\\n': bad += 1\nprint(bad)",
    );
    assert_eq!(got.trim(), "0", "stale reads after a change");
    for r in readers {
        let out = r.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let odd: Vec<&str> = text
            .lines()
            .filter(|l| *l != "running" && *l != "paused")
            .collect();
        assert!(odd.is_empty(), "torn reads: {odd:?}");
        assert_eq!(text.lines().count(), 1500);
    }
}
