//! The change feed on `xen:///` over the simulated host: xenstore's watches
//! become lines of `events` and wake pollers, for changes made through domfs
//! and for changes made behind its back with Debian's xenstore-utils.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;

use common::Mount;
use std::io::Read;
use std::time::{Duration, Instant};
use xen_common::Sim;

/// Reads `events` on a thread until `want` lines arrived or time runs out.
fn collect(m: &Mount, want: usize) -> std::thread::JoinHandle<String> {
    let path = m.path().join("events");
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(path).unwrap();
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 4096];
        while text.lines().count() < want && Instant::now() < deadline {
            let n = f.read(&mut buf).unwrap();
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        text
    })
}

#[test]
fn watches_become_events() {
    if !common::have_tool("xenstore-write") {
        return;
    }
    let sim = Sim::start(&[
        "--shutdown-delay",
        "200",
        "--guest",
        "g1,memory=512,maxmem=1024",
    ]);
    let opt = format!("xenstore={}", sim.socket().display());
    let m = Mount::with_options("xen:///", &["-o", &opt]);
    let reader = collect(&m, 3);
    std::thread::sleep(Duration::from_millis(300));
    // Behind domfs's back, as a toolstack would.
    sim.xs(
        "xenstore-write",
        &["/local/domain/1/memory/target", "262144"],
    );
    // The two sources are independent; let the first line land first.
    std::thread::sleep(Duration::from_millis(300));
    // Through domfs: the request, then the guest going.
    m.echo_ok("shutdown", "g1/control");
    let text = reader.join().unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| l.split(' ').skip(1).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        kinds,
        [
            "memory-changed g1 1",
            "shutdown-requested g1 1",
            "stopped g1 1",
        ][..],
        "{text}"
    );
    Sim::wait_for(10, "g1's directory to go", || {
        !m.sh_ok("ls").lines().any(|l| l == "g1")
    });
}
