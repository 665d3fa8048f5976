//! The rest of issue 26's files on `test:///default`, each compared with
//! `virsh -c test:///default` after the same steps: the scheduler
//! (`schedinfo`), `capabilities`, `dump`, block and interface statistics
//! (`domblkstat`, `domifstat`: virsh's keys, and the test driver's rule for
//! the values, which grow with the clock), and device attach and detach,
//! which libvirt 9's test driver does not support.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;

const URI: &str = "test:///default";

fn virsh_ok(script: &str) -> String {
    virsh(URI, &[script])
}

/// `virsh dump` watches its job in a loop of its own. Under load (a CI run
/// beside QEMU) it twice ran until its time limit, with nothing printed:
/// a hang in virsh, not here (alone it takes 20 ms). So each try has 20 s,
/// in a session of its own, and a try that timed out is made again, at
/// most three times; any other failure fails at once.
fn virsh_detached(script: &str) -> String {
    for _ in 0..3 {
        let out = std::process::Command::new("setsid")
            .args(["-w", "timeout", "20", "virsh", "-c", URI, script])
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        if out.status.code() == Some(124) {
            eprintln!("virsh {script}: timed out; trying again");
            continue;
        }
        assert!(
            out.status.success(),
            "virsh {script}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout).unwrap();
    }
    panic!("virsh {script}: timed out three times");
}

/// `virsh -c URI SCRIPT`, which must fail: its standard error.
fn virsh_err(script: &str) -> String {
    let out = std::process::Command::new("timeout")
        .args(["30", "virsh", "-c", URI, script])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(!out.status.success(), "virsh {script} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_scheduler_is_schedinfo_before_and_after_a_set() {
    let m = Mount::new(URI);
    let before = virsh_ok("schedinfo test");
    assert_eq!(
        m.value("test/sched/type"),
        virsh_field(&before, "Scheduler      :")
    );
    assert_eq!(
        m.value("test/sched/weight"),
        virsh_field(&before, "weight         :")
    );
    assert_eq!(m.sh_ok("ls test/sched"), "type\nweight\n");
    m.echo_ok("70", "test/sched/weight");
    let after = virsh_ok("schedinfo test --set weight=70; schedinfo test");
    let after = after.rsplit("Scheduler").next().unwrap();
    assert_eq!(
        m.value("test/sched/weight"),
        virsh_field(after, "weight         :")
    );
    // Bad values change nothing and fail as virsh's do.
    assert!(virsh_err("schedinfo test --set weight=abc").contains("unsigned int"));
    m.echo_fails("abc", "test/sched/weight", libc::EINVAL);
    m.echo_fails("4294967296", "test/sched/weight", libc::EINVAL);
    assert!(virsh_err("schedinfo test --set cap=3").contains("cap"));
    m.sh_fails("cat test/sched/cap", libc::ENOENT);
    m.echo_fails("1", "test/sched/type", libc::EACCES);
    assert_eq!(
        m.sh_ok("stat -c %a test/sched/weight test/sched/type"),
        "644\n444\n"
    );
}

#[test]
fn capabilities_are_virshs() {
    let m = Mount::new(URI);
    let ours = m.cat("node/capabilities");
    let theirs = virsh_ok("capabilities");
    assert_eq!(ours.trim_end(), theirs.trim_end());
}

#[test]
fn dump_writes_what_virsh_dump_writes_and_the_domain_goes_on() {
    let m = Mount::new(URI);
    let dir = TempDir::new("dump");
    let ours = dir.path().join("ours.core");
    let theirs = dir.path().join("theirs.core");
    m.echo_ok(&format!("dump {}", ours.display()), "test/control");
    let state = virsh_detached(&format!("dump test {}; domstate test", theirs.display()));
    assert_eq!(
        m.value("test/state"),
        state.lines().rev().find(|l| !l.is_empty()).unwrap()
    );
    assert_eq!(
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap()
    );
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&ours), mode(&theirs));
    assert!(m.cat("test/control").lines().any(|l| l == "dump PATH"));
    // A relative path, a path into the mount: EINVAL; shut off: EBUSY
    // (virsh: "domain is not running").
    m.echo_fails("dump relative.core", "test/control", libc::EINVAL);
    let inside = m.path().join("test").join("x.core");
    m.echo_fails(
        &format!("dump {}", inside.display()),
        "test/control",
        libc::EINVAL,
    );
    m.echo_ok("destroy", "test/control");
    // (virsh's own refusal, "domain is not running", was checked by hand:
    // a second virsh dump in one test hangs under load, see virsh_detached.)
    m.echo_fails(
        &format!("dump {}", ours.display()),
        "test/control",
        libc::EBUSY,
    );
    assert!(!m.cat("test/control").contains("dump"));
}

/// `virsh domblkstat`/`domifstat`'s `KEY VALUE` pairs.
fn virsh_stats(cmd: &str) -> Vec<(String, u64)> {
    virsh_ok(cmd)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[1].to_string(), f[2].parse().unwrap()))
        })
        .collect()
}

fn file_stats(text: &str) -> Vec<(String, u64)> {
    pairs(text)
        .into_iter()
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect()
}

/// Same keys in the same order, and each value between virsh's before and
/// after (the test driver's counters follow the clock).
fn between(before: &[(String, u64)], ours: &[(String, u64)], after: &[(String, u64)]) {
    let keys = |s: &[(String, u64)]| s.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(ours), keys(before));
    for ((k, b), ((_, o), (_, a))) in before.iter().zip(ours.iter().zip(after)) {
        assert!(b <= o && o <= a, "{k}: {b} <= {o} <= {a}");
    }
}

#[test]
fn statistics_have_virshs_keys_and_follow_the_clock() {
    let m = Mount::new(URI);
    assert_eq!(
        m.sh_ok("ls test/stats/block test/stats/net"),
        "test/stats/block:\nvda\n\ntest/stats/net:\ntestnet0\n"
    );
    let before = virsh_stats("domblkstat test vda");
    let ours = file_stats(&m.cat("test/stats/block/vda"));
    let after = virsh_stats("domblkstat test vda");
    between(&before, &ours, &after);
    let before = virsh_stats("domifstat test testnet0");
    let ours = file_stats(&m.cat("test/stats/net/testnet0"));
    let after = virsh_stats("domifstat test testnet0");
    between(&before, &ours, &after);
    // The metrics carry them, labelled by device.
    let text = m.cat("metrics");
    assert!(
        text.contains("domfs_domain_block_read_bytes_total{domain=\"test\","),
        "{text}"
    );
    assert!(text.contains(",interface=\"testnet0\"} "), "{text}");
    // Not running: no statistics, as virsh says.
    m.echo_ok("destroy", "test/control");
    assert!(virsh_err("destroy test; domblkstat test vda").contains("not running"));
    m.sh_fails("cat test/stats/block/vda", libc::EBUSY);
    m.sh_fails("cat test/stats/block/hda", libc::ENOENT);
}

#[test]
fn attach_and_detach_are_eopnotsupp_as_in_libvirts_test_driver() {
    let m = Mount::new(URI);
    let disk = "<disk type='file' device='disk'><source file='/var/lib/x.img'/><target dev='vdb' bus='virtio'/></disk>";
    let dir = TempDir::new("dev");
    let file = dir.path().join("disk.xml");
    std::fs::write(&file, disk).unwrap();
    assert!(virsh_err(&format!("attach-device test {}", file.display())).contains("not supported"));
    assert!(virsh_err(&format!("detach-device test {}", file.display())).contains("not supported"));
    m.echo_fails(disk, "test/devices/attach", libc::EOPNOTSUPP);
    assert!(m.cat("test/last_error").contains("attach device"));
    m.echo_fails(disk, "test/devices/detach", libc::EOPNOTSUPP);
    // Bad input is EINVAL before any driver is asked.
    m.echo_fails("not a device", "test/devices/attach", libc::EINVAL);
    m.echo_fails(
        "<memballoon model='none'/>",
        "test/devices/attach",
        libc::EINVAL,
    );
    assert_eq!(m.sh_ok("stat -c %a test/devices/attach"), "200\n");
    assert_eq!(m.value("test/state"), "running");
}
