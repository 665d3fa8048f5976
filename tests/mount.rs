//! The mount as a whole: concurrent writers and a clean unmount on SIGTERM
//! (read-only mounts and other users: tests/security.rs).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn sigterm_unmounts_cleanly() {
    let mut m = Mount::new("test:///default");
    assert!(is_mountpoint(m.path()));
    let status = m.stop();
    assert!(status.success(), "exit status {status}");
    assert!(!is_mountpoint(m.path()));
    // The directory is usable again.
    std::fs::write(m.path().join("probe"), b"x").unwrap();
    std::fs::remove_file(m.path().join("probe")).unwrap();
    assert!(m.log_text().contains("unmounting"));
}

#[test]
fn sigint_unmounts_cleanly_too() {
    let mut m = Mount::new("test:///default");
    let child = m.child.take().unwrap();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!is_mountpoint(m.path()));
}

/// 8 processes x 200 commands on one domain: every command either applies
/// whole or fails cleanly, and the counts of applied suspends and resumes
/// explain the final state exactly.
#[test]
fn concurrent_writers_leave_a_consistent_state() {
    let m = Mount::new("test:///default");
    let script = r#"
        i=0
        while [ $i -lt 100 ]; do
            if echo suspend > test/control 2>/dev/null; then echo S; fi
            if echo resume > test/control 2>/dev/null; then echo R; fi
            i=$((i+1))
        done"#;
    let mut writers = Vec::new();
    for w in 0..8 {
        // Half of the writers also set memory between lifecycle commands.
        let script = if w % 2 == 0 {
            script.replace(
                "i=$((i+1))",
                "echo setmem $((100000 + i)) > test/control || echo M; i=$((i+1))",
            )
        } else {
            script.to_string()
        };
        writers.push(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(m.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let (mut suspends, mut resumes) = (0, 0);
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains('M'),
            "a setmem failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        suspends += text.matches('S').count();
        resumes += text.matches('R').count();
    }
    let state = m.value("test/state");
    let paused = usize::from(state == "paused");
    assert!(state == "paused" || state == "running", "{state}");
    assert_eq!(
        suspends,
        resumes + paused,
        "{suspends} suspends, {resumes} resumes, now {state}"
    );
    assert!(suspends > 0 && resumes > 0);
    let memory: u64 = m.value("test/memory").parse().unwrap();
    assert!((100000..100100).contains(&memory), "memory {memory}");
    let info = pairs(&m.cat("test/info"));
    assert_eq!(info[0], ("state".to_string(), state));
    assert_eq!(info[5], ("memory".to_string(), memory.to_string()));
    assert_eq!(m.value("test/id"), "1");
}
