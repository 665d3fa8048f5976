//! 16 processes at once on one `test:///default` mount, and on one
//! `xen:///` mount over the simulated host (domfs-sim's xend and xenstore),
//! each checked against a model of what it did.
//!
//! Each process owns a persistent domain `wN` and a transient one `tN`:
//! only it changes them, so after each of its own successful commands the
//! model says exactly what `state` and `max_memory` must read. It defines,
//! starts, suspends, resumes, destroys, redefines through `xml`, undefines
//! with rmdir, creates and destroys, while also reading the others' domains
//! (which may vanish under it) and racing every other process on the shared
//! domain `test` with suspend and resume: those are counted, and the counts
//! must explain `test`'s final state. Any command of its own that fails, or
//! any value that differs from the model, is printed and fails the test.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;
use common::*;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xen_common::Sim;

const WORKERS: usize = 16;
const ROUNDS: usize = 3;

/// One worker's script; `$1` is its number, `$2` a directory for its files.
const WORKER: &str = r#"
i=$1; tmp=$2; d=w$i; t=t$i; x=$tmp/$d.xml
dom() { printf "<domain type='test'><name>%s</name><memory>%s</memory><os><type>hvm</type></os></domain>\n" "$1" "$2"; }
must() { "$@" 2>/dev/null || echo "FAIL $*"; }
run() { must sh -c "/bin/echo $1 > $2/control"; }
expect() { got=$(cat "$1" 2>&1); [ "$got" = "$2" ] || echo "MISMATCH $1: '$got', model '$2'"; }
gone() { ls | grep -qx "$1" && echo "MISMATCH $1 still listed"; true; }
r=0
while [ $r -lt ROUNDS ]; do
    dom $d 65536 > $x; must cp $x define
    expect $d/state shutoff; expect $d/max_memory 65536
    run start $d; expect $d/state running
    run suspend $d; expect $d/state paused
    run resume $d; expect $d/state running
    run destroy $d; expect $d/state shutoff
    dom $d 131072 > $x; must cp $x $d/xml
    expect $d/max_memory 131072; expect $d/state shutoff
    must rmdir $d; gone $d
    dom $t 65536 > $tmp/$t.xml; must cp $tmp/$t.xml create
    expect $t/state running
    run destroy $t; gone $t
    if /bin/echo suspend > test/control 2>/dev/null; then echo S; fi
    if /bin/echo resume > test/control 2>/dev/null; then echo R; fi
    cat w$(( (i + 1) % WORKERS ))/state w$(( (i + 5) % WORKERS ))/xml >/dev/null 2>&1
    must ls
    r=$((r + 1))
done
"#;

#[test]
fn sixteen_processes_agree_with_their_models() {
    let _alone = alone();
    let m = Mount::new("test:///default");
    let files = TempDir::new("workers");
    let script = WORKER
        .replace("ROUNDS", &ROUNDS.to_string())
        .replace("WORKERS", &WORKERS.to_string());
    let t = Instant::now();
    let outputs = run_workers(&m, &script, &files);
    let (mut suspends, mut resumes, mut problems) = (0, 0, Vec::new());
    for (i, text) in outputs.iter().enumerate() {
        suspends += text.lines().filter(|l| *l == "S").count();
        resumes += text.lines().filter(|l| *l == "R").count();
        problems.extend(problems_of(i, text));
    }
    let took = t.elapsed();
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        m.log_text()
    );
    assert!(took < Duration::from_secs(300), "took {took:?}");
    let state = m.value("test/state");
    let paused = usize::from(state == "paused");
    assert_eq!(
        suspends,
        resumes + paused,
        "{suspends} suspends, {resumes} resumes, now {state}"
    );
    assert!(suspends > 0);
    // Every worker undefined and destroyed its own: only `test` is left.
    assert_eq!(listed_starting(&m, &["w", "t"]), ["test"]);
    m.assert_alive();
    println!(
        "{WORKERS} workers x {ROUNDS} rounds: {} own commands, {} values checked against \
         the models, {suspends} suspends and {resumes} resumes of test raced, in {took:?}",
        WORKERS * ROUNDS * 9,
        WORKERS * ROUNDS * 11
    );
}

/// How long a worker may take before it counts as stuck (a deadlock).
const WORKER_LIMIT_S: u32 = 120;

/// The two tests here each run 16 workers on 2 cores: one at a time, so
/// neither's figures (time, RSS) carry the other's load.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `script` as `WORKERS` processes in the mount, each under a deadline
/// (`timeout` kills a stuck one, whose output then says so); their outputs.
fn run_workers(m: &Mount, script: &str, files: &TempDir) -> Vec<String> {
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new("timeout")
                .arg(WORKER_LIMIT_S.to_string())
                .args(["sh", "-c", script, "worker"])
                .arg(i.to_string())
                .arg(files.path())
                .current_dir(m.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    workers
        .into_iter()
        .map(|w| {
            let out = w.wait_with_output().unwrap();
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.code() == Some(124) {
                text.push_str(&format!("FAIL stuck past {WORKER_LIMIT_S} s\n"));
            }
            text
        })
        .collect()
}

/// The root's entries that start with one of `prefixes`.
fn listed_starting(m: &Mount, prefixes: &[&str]) -> Vec<String> {
    m.sh_ok("ls")
        .lines()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// A worker's lines that fail the test.
fn problems_of(i: usize, text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("MISMATCH"))
        .map(|l| format!("worker {i}: {l}"))
        .collect()
}

/// One xen:/// worker; `$1` is its number, `$2` a directory for its files.
/// Its own domains are `xwN` (defined) and `xtN` (created); on the shared
/// `s0` it races the others with start, destroy and redefinitions, and
/// prints `S`, `D` and `X BEGIN END MEMORY` (nanosecond times around the
/// write) for each of those that succeeded. `OK` counts its own commands.
/// A running guest that is idle reads `blocked` (xend's `-b----`).
const XEN_WORKER: &str = r#"
i=$1; tmp=$2; d=xw$i; t=xt$i; x=$tmp/$d.xml
uw=$(printf '22222222-0000-4000-8000-%012d' $i); ut=$(printf '33333333-0000-4000-8000-%012d' $i)
dom() { printf "<domain type='xen'><name>%s</name><uuid>%s</uuid><memory>%s</memory><currentMemory>%s</currentMemory><vcpu>1</vcpu><os><type>linux</type><kernel>/boot/vmlinuz-xen</kernel></os></domain>\n" "$1" "$2" "$3" "$3"; }
must() { if "$@" 2>$tmp/err$i; then echo OK; else echo "FAIL $* $(cat $tmp/err$i)"; fi; }
run() { must sh -c "/bin/echo $1 > $2/control"; }
expect() { got=$(cat "$1" 2>&1); [ "$got" = "$2" ] || echo "MISMATCH $1: '$got', model '$2'"; echo V; }
gone() { ls | grep -qx "$1" && echo "MISMATCH $1 still listed"; echo V; }
r=0
while [ $r -lt ROUNDS ]; do
    dom $d $uw 262144 > $x; must cp $x define
    expect $d/state shutoff; expect $d/max_memory 262144
    run start $d; expect $d/state blocked
    run suspend $d; expect $d/state paused
    run resume $d; expect $d/state blocked
    run destroy $d; expect $d/state shutoff
    dom $d $uw 524288 > $x; must cp $x $d/xml
    expect $d/max_memory 524288; expect $d/state shutoff
    must rmdir $d; gone $d
    dom $t $ut 262144 > $tmp/$t.xml; must cp $tmp/$t.xml create
    expect $t/state blocked
    run destroy $t; gone $t
    if /bin/echo start > s0/control 2>/dev/null; then echo S; fi
    mem=$(( 262144 + 65536 * (i * ROUNDS + r + 1) ))
    dom s0 S0UUID $mem > $tmp/s0-$i.xml
    b=$(date +%s%N)
    if cp $tmp/s0-$i.xml s0/xml 2>/dev/null; then echo "X $b $(date +%s%N) $mem"; fi
    if /bin/echo destroy > s0/control 2>/dev/null; then echo D; fi
    cat xw$(( (i + 1) % WORKERS ))/state xw$(( (i + 5) % WORKERS ))/xml guest1/state >/dev/null 2>&1
    must ls
    r=$((r + 1))
done
"#;

const XEN_ROUNDS: usize = 2;
const S0_UUID: &str = "44444444-0000-4000-8000-000000000000";

/// Collects what `events` says, from its open until `stop`.
struct EventLog {
    text: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventLog {
    fn open(m: &Mount) -> EventLog {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(m.path().join("events"))
            .unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (text.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::SeqCst) {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => t
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("reading events: {e}"),
                }
            }
        });
        EventLog {
            text,
            stop,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Running domains (name -> id) as the mount lists them.
fn running(m: &Mount) -> std::collections::BTreeMap<String, String> {
    m.sh_ok("for d in */; do d=${d%/}; [ -f \"$d/id\" ] && echo \"$d $(cat \"$d/id\")\"; done")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, id)| *id != "-1")
        .map(|(n, id)| (n.to_string(), id.to_string()))
        .collect()
}

/// `start` replayed: the running domains after `events` lines, from `before`.
/// Each line: time, event, name, id, UUID[, reason]. A start of a domain the
/// replay has running, or a stop of one it has not, is a line that cannot be
/// (an event lost or made up): Err.
fn replay(
    before: &std::collections::BTreeMap<String, String>,
    events: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut now = before.clone();
    for line in events.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(kind), Some(name), Some(id)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        match *kind {
            "started" => {
                if let Some(old) = now.insert(name.to_string(), id.to_string()) {
                    return Err(format!("{line}: {name} was running already (id {old})"));
                }
            }
            "stopped" => {
                now.remove(*name)
                    .ok_or_else(|| format!("{line}: {name} was not running"))?;
            }
            _ => {}
        }
    }
    Ok(now)
}

/// What one run of the xen:/// workers did, from their outputs.
#[derive(Default)]
struct XenRun {
    own: usize,
    checked: usize,
    starts: usize,
    destroys: usize,
    /// Successful redefinitions of s0: (begin ns, end ns, memory KiB).
    xml: Vec<(u128, u128, u64)>,
    problems: Vec<String>,
    took: Duration,
}

fn xen_run(m: &Mount, files: &TempDir) -> XenRun {
    let script = XEN_WORKER
        .replace("ROUNDS", &XEN_ROUNDS.to_string())
        .replace("WORKERS", &WORKERS.to_string())
        .replace("S0UUID", S0_UUID);
    let t = Instant::now();
    let outputs = run_workers(m, &script, files);
    let mut r = XenRun {
        took: t.elapsed(),
        ..XenRun::default()
    };
    for (i, text) in outputs.iter().enumerate() {
        r.problems.extend(problems_of(i, text));
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            match f[..] {
                ["OK"] => r.own += 1,
                ["V"] => r.checked += 1,
                ["S"] => r.starts += 1,
                ["D"] => r.destroys += 1,
                ["X", b, e, mem] => {
                    r.xml
                        .push((b.parse().unwrap(), e.parse().unwrap(), mem.parse().unwrap()))
                }
                _ => {}
            }
        }
    }
    r
}

/// The `<memory>` of a domain's XML.
fn memory_of(xml: &str) -> u64 {
    let from = xml.find("<memory").unwrap();
    let v = &xml[from..];
    let v = &v[v.find('>').unwrap() + 1..];
    v[..v.find('<').unwrap()].trim().parse().unwrap()
}

/// 16 processes on `xen:///` over domfs-sim (xend and xenstore), twice: a
/// warm-up run, then the measured one. Each worker's own domains must read
/// as its model says after each of its own commands; the shared `s0` is
/// raced. Afterwards: no worker stuck, no panic in the log; the `events`
/// lines read during the run, replayed from the domains running before it,
/// give exactly the domains (and ids) running after it, and s0's lines are
/// exactly its successful starts and destroys, even a pair quicker than
/// xenstore's listings (xend reports what it did); those alternate, so their
/// counts give its final state; its final definition is one of the redefinitions that could have been last
/// (none began after it ended); and the daemon's RSS after the measured run
/// is within 10% of its RSS after the warm-up.
#[test]
fn sixteen_processes_on_xen_agree_with_their_models_and_the_feed() {
    let _alone = alone();
    let sim = Sim::start(&["--shutdown-delay", "100", "--guest", "guest1,memory=512"]);
    Sim::wait_for(10, "xend's socket", || sim.dir.join("xend-port").exists());
    let opts = format!(
        "xend=unix:{},xenstore={}",
        sim.dir.join("xend-socket").display(),
        sim.socket().display()
    );
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    let files = TempDir::new("xen-workers");
    let s0 = files.path().join("s0.xml");
    std::fs::write(
        &s0,
        format!(
            "<domain type='xen'><name>s0</name><uuid>{S0_UUID}</uuid><memory>262144</memory>\
             <currentMemory>262144</currentMemory><vcpu>1</vcpu><os><type>linux</type>\
             <kernel>/boot/vmlinuz-xen</kernel></os></domain>\n"
        ),
    )
    .unwrap();
    m.sh_ok(&format!("cp {} define", quote(&s0.display().to_string())));
    let pid = m.child.as_ref().unwrap().id();
    let mut rss = Vec::new();
    let (mut ops, mut values, mut starts, mut destroys) = (0, 0, 0, 0);
    let mut took = Duration::ZERO;
    for run in ["warm-up", "measured"] {
        let before = running(&m);
        let s0_was_running = before.contains_key("s0");
        assert!(!s0_was_running, "{run}: s0 was left running");
        let s0_xml = m.cat("s0/xml");
        let events = EventLog::open(&m);
        let r = xen_run(&m, &files);
        assert!(
            r.problems.is_empty(),
            "{run}: {}\n{}",
            r.problems.join("\n"),
            m.log_text()
        );
        // s0: successes alternate, so the counts say whether it runs.
        let s0_running = m.value("s0/state") != "shutoff";
        assert_eq!(
            r.starts + usize::from(s0_was_running),
            r.destroys + usize::from(s0_running),
            "{run}: s0 {} starts, {} destroys, running before {s0_was_running}, now {s0_running}",
            r.starts,
            r.destroys
        );
        assert!(r.starts > 0 && r.destroys > 0, "{run}: s0 was never raced");
        // The feed, replayed, gives the running domains: wait for the last
        // lines to land (the xenstore watch thread lists after each change).
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = running(&m);
        loop {
            let text = events.text();
            match replay(&before, &text) {
                Ok(now) if now == after => break,
                Ok(now) if Instant::now() > deadline => panic!(
                    "{run}: the events replayed give {now:?}, the mount shows {after:?}:\n{text}"
                ),
                Err(e) => panic!("{run}: {e}\n{text}"),
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let text = events.text();
        // Each successful start and destroy of s0 is one line, in order,
        // though xenstore's listings and xend both see it.
        let s0_lines = |kind: &str| {
            text.lines()
                .filter(|l| l.split(' ').nth(1) == Some(kind) && l.split(' ').nth(2) == Some("s0"))
                .count()
        };
        let (started, stopped) = (s0_lines("started"), s0_lines("stopped"));
        assert!(
            started == r.starts && stopped == r.destroys,
            "{run}: s0 has {started} started and {stopped} stopped lines for {} starts and {} \
             destroys:\n{text}",
            r.starts,
            r.destroys
        );
        drop(events);
        // s0's definition: one of the redefinitions that may have been last
        // (xend shows it once s0 is shut off).
        if s0_running {
            m.echo_ok("destroy", "s0/control");
        }
        let last_begin = r.xml.iter().map(|w| w.0).max();
        let final_memory = memory_of(&m.cat("s0/xml"));
        let allowed: Vec<u64> = match last_begin {
            Some(b) => r.xml.iter().filter(|w| w.1 >= b).map(|w| w.2).collect(),
            None => vec![memory_of(&s0_xml)],
        };
        assert!(
            allowed.contains(&final_memory),
            "{run}: s0 has memory {final_memory}, a last write gave one of {allowed:?}"
        );
        let left = listed_starting(&m, &["xw", "xt"]);
        assert!(left.is_empty(), "{run}: left behind {left:?}");
        m.assert_alive_at("guest1/state");
        assert!(!m.log_text().contains("panicked"), "{}", m.log_text());
        rss.push(rss_kib(pid));
        ops += r.own + r.starts + r.destroys + r.xml.len();
        values += r.checked;
        starts += r.starts;
        destroys += r.destroys;
        took += r.took;
        println!(
            "{run}: {} own commands, {} values checked, s0: {} starts, {} destroys, {} \
             redefinitions, {} event lines replayed, in {:?}; daemon RSS {} KiB",
            r.own,
            r.checked,
            r.starts,
            r.destroys,
            r.xml.len(),
            text.lines().count(),
            r.took,
            rss.last().unwrap()
        );
    }
    let (warm, measured) = (rss[0], rss[1]);
    assert!(
        measured * 10 <= warm * 11,
        "RSS grew from {warm} KiB after the warm-up to {measured} KiB"
    );
    println!(
        "{WORKERS} workers x {XEN_ROUNDS} rounds x 2 runs: {ops} operations completed, {values} \
         values checked, s0 {starts} starts / {destroys} destroys raced, each one line of events, \
         in {took:?}; RSS {warm} -> {measured} KiB"
    );
    drop(sim);
}
