//! End to end: `domfs xen:///` mounted over the simulated Xen host and driven
//! with cat, echo and ls, the xenstore tree checked with Debian's tools.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::Mount;
use std::process::Command;
use xen_common::Sim;

const UUID1: &str = "11111111-2222-3333-4444-555555555555";
const UUID2: &str = "66666666-7777-8888-9999-000000000000";

fn setup() -> (Sim, Mount) {
    let sim = Sim::start(&[
        "--shutdown-delay",
        "300",
        "--guest",
        &format!(
            "guest1,memory=512,maxmem=1024,vcpus=2,maxvcpus=4,uuid={UUID1},cmdline=root=/dev/xvda1"
        ),
        "--guest",
        &format!("guest2,memory=256,uuid={UUID2}"),
    ]);
    let opt = format!("xenstore={}", sim.socket().display());
    let m = Mount::with_options("xen:///", &["-o", &opt]);
    (sim, m)
}

#[test]
fn guests_appear_with_their_values() {
    let (sim, m) = setup();
    let ls = m.sh_ok("ls");
    for name in ["Domain-0", "guest1", "guest2"] {
        assert!(ls.lines().any(|l| l == name), "{name} missing from {ls}");
    }
    assert_eq!(m.value("guest1/id"), "1");
    assert_eq!(m.value("guest1/uuid"), UUID1);
    assert_eq!(m.value("guest1/memory"), "524288");
    assert_eq!(m.value("guest1/max_memory"), "1048576");
    assert_eq!(m.value("guest1/vcpus"), "2");
    assert_eq!(m.value("guest1/os_type"), "linux");
    assert_eq!(m.value("guest2/memory"), "262144");
    assert_eq!(m.value("Domain-0/id"), "0");
    assert_eq!(m.value("Domain-0/memory"), "1048576");
    // xenstore cannot tell running from paused: the state is unknown.
    assert_eq!(m.value("guest1/state"), "nostate");
    assert_eq!(
        m.sh_ok("readlink by-id/1").trim(),
        "../guest1",
        "by-id link"
    );
    assert_eq!(m.sh_ok(&format!("cat by-uuid/{UUID2}/id")).trim(), "2");
    let xml = m.cat("guest1/xml");
    for part in [
        "<domain type='xen' id='1'>",
        "<name>guest1</name>",
        &format!("<uuid>{UUID1}</uuid>"),
        "<memory>1048576</memory>",
        "<currentMemory>524288</currentMemory>",
        "<vcpu current='2'>4</vcpu>",
        "<type>linux</type>",
        "<kernel>/boot/vmlinuz-6.1.0-13-amd64</kernel>",
        "<cmdline>root=/dev/xvda1</cmdline>",
    ] {
        assert!(xml.contains(part), "{part} missing from:\n{xml}");
    }
    // What xenstore cannot know is left out, not invented.
    assert!(!xml.contains("<devices>"), "{xml}");
    drop(sim);
}

#[test]
fn memory_writes_land_in_memory_target() {
    if !common::have_tool("xenstore-read") {
        return;
    }
    let (sim, m) = setup();
    m.echo_ok("256M", "guest1/memory");
    assert_eq!(
        sim.xs("xenstore-read", &["/local/domain/1/memory/target"])
            .trim(),
        "262144"
    );
    assert_eq!(m.value("guest1/memory"), "262144");
    m.echo_ok("setmem 300000", "guest1/control");
    assert_eq!(
        sim.xs("xenstore-read", &["/local/domain/1/memory/target"])
            .trim(),
        "300000"
    );
    // Above static-max and below the floor are refused, nothing written.
    m.echo_fails("2G", "guest1/memory", libc::EINVAL);
    m.echo_fails("1000K", "guest1/memory", libc::EINVAL);
    assert_eq!(m.value("guest1/memory"), "300000");
}

#[test]
fn shutdown_reaches_the_guest_and_its_directory_goes() {
    if !common::have_tool("xenstore-read") {
        return;
    }
    let (sim, m) = setup();
    // The simulated guest logs the command it read from control/shutdown
    // (it then acknowledges by emptying the key, as Linux does).
    m.echo_ok("shutdown", "guest2/control");
    Sim::wait_for(10, "the guest to receive poweroff", || {
        sim.log_text().contains("domain 2: guest received poweroff")
    });
    Sim::wait_for(10, "guest2's directory to go", || {
        !m.sh_ok("ls").lines().any(|l| l == "guest2")
    });
    let out = Sim::tool(&sim.socket(), "xenstore-exists", &["/local/domain/2"]);
    assert!(!out.status.success(), "guest2's keys are still there");
    assert_eq!(m.value("guest1/id"), "1", "the other guest is untouched");
}

#[test]
fn reboot_restarts_the_guest_with_a_new_id() {
    let (sim, m) = setup();
    m.echo_ok("reboot", "guest1/control");
    Sim::wait_for(10, "the guest to reboot", || {
        sim.log_text().contains("guest guest1 started as domain 3")
    });
    Sim::wait_for(10, "guest1 under its new id", || {
        m.sh("cat guest1/id").stdout == b"3\n"
    });
    assert_eq!(m.value("guest1/uuid"), UUID1);
}

/// `control` lists what this connection can carry out now, and nothing
/// else: xenstore alone can ask a guest to shut down or reboot and set its
/// memory target, not destroy it or change its vCPUs.
#[test]
fn control_lists_only_what_the_connection_can_do() {
    let (_sim, m) = setup();
    assert_eq!(m.cat("guest1/control"), "shutdown\nreboot\nsetmem SIZE\n");
    m.echo_ok("setmem 400M", "guest1/control");
    assert_eq!(m.value("guest1/memory"), "409600");
}

#[test]
fn what_xenstore_cannot_do_is_not_supported_and_named() {
    let (_sim, m) = setup();
    for (cmd, op) in [
        ("setvcpus 1", "setvcpus"),
        ("suspend", "suspend"),
        ("destroy", "destroy"),
        ("setmaxmem 600M", "setmaxmem"),
    ] {
        m.echo_fails(cmd, "guest1/control", libc::EOPNOTSUPP);
        let err = m.cat("guest1/last_error");
        assert!(
            err.contains(&format!("{op}: operation not supported")),
            "{err}"
        );
    }
    m.sh_fails("cat node/info", libc::EOPNOTSUPP);
    assert!(
        m.cat("last_error").contains("node info"),
        "{}",
        m.cat("last_error")
    );
}

#[test]
fn unreachable_back_ends_fail_the_mount_naming_each() {
    let dir = common::TempDir::new("xen-mnt");
    let out = Command::new("timeout")
        .args(["20", env!("CARGO_BIN_EXE_domfs")])
        .args([
            "-o",
            "xenstore=/nonexistent/xenstored/socket,privcmd=none,xend=http://localhost:1",
            "xen:///",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "/nonexistent/xenstored/socket",
        "xend (http://localhost:1)",
        "privcmd=none",
    ] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
    assert!(!common::is_mountpoint(dir.path()));
}

#[test]
fn xend_and_privcmd_options_are_accepted_and_skipped() {
    let sim = Sim::start(&["--guest", "solo"]);
    let opt = format!(
        "xenstore={},xend=unix:/var/run/xend/xend-socket,privcmd=/dev/xen/privcmd",
        sim.socket().display()
    );
    let m = Mount::with_options("xen:///", &["-o", &opt]);
    assert_eq!(m.value("solo/id"), "1");
    // A xend that does not answer is skipped; xenstore serves alone.
    let log = m.log_text();
    assert!(
        log.contains("xend (unix:/var/run/xend/xend-socket)"),
        "{log}"
    );
}

/// A domain renamed behind domfs's back, as `xl rename` does (one write of
/// `/local/domain/N/name`; no domain comes or goes), is found by its new
/// name and no longer by its old one, with no listing in between to
/// refresh the lookup cache; and back again.
#[test]
fn a_domain_renamed_behind_domfs_is_found_by_its_new_name() {
    let (sim, m) = setup();
    assert_eq!(m.value("guest1/id"), "1");
    for (old, new) in [("guest1", "renamed1"), ("renamed1", "guest1")] {
        sim.xs("xenstore-write", &["/local/domain/1/name", new]);
        // A miss of the new name must not be answered from the old scan.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let out = m.sh(&format!("cat {new}/uuid"));
            if out.status.success() {
                assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{UUID1}\n"));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{new} not found: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(m.value(&format!("{new}/id")), "1");
        let out = m.sh(&format!("cat {old}/id"));
        assert!(!out.status.success(), "{old} still reads after the rename");
    }
}
