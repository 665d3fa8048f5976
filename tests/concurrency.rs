//! 16 processes at once on one `test:///default` mount, each checked
//! against a model of what it did.
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
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let m = Mount::new("test:///default");
    let files = TempDir::new("workers");
    let script = WORKER
        .replace("ROUNDS", &ROUNDS.to_string())
        .replace("WORKERS", &WORKERS.to_string());
    let t = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .arg("worker")
                .arg(i.to_string())
                .arg(files.path())
                .current_dir(m.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut suspends, mut resumes, mut problems) = (0, 0, Vec::new());
    for (i, w) in workers.into_iter().enumerate() {
        let out = w.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        suspends += text.lines().filter(|l| *l == "S").count();
        resumes += text.lines().filter(|l| *l == "R").count();
        problems.extend(
            text.lines()
                .filter(|l| l.starts_with("FAIL") || l.starts_with("MISMATCH"))
                .map(|l| format!("worker {i}: {l}")),
        );
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
    let left: Vec<String> = m
        .sh_ok("ls")
        .lines()
        .filter(|n| n.starts_with('w') || n.starts_with('t'))
        .map(str::to_string)
        .collect();
    assert_eq!(left, ["test"]);
    m.assert_alive();
    println!(
        "{WORKERS} workers x {ROUNDS} rounds: {} own commands, {} values checked against \
         the models, {suspends} suspends and {resumes} resumes of test raced, in {took:?}",
        WORKERS * ROUNDS * 9,
        WORKERS * ROUNDS * 11
    );
}
