//! The xenstore driver's cost against the simulated host: reading a
//! domain's values takes the same number of requests with 2 domains as with
//! 40, and a lookup that missed does not rescan until a domain came or went.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod xen_common;

use domfs::driver::xenstore::XenstoreDriver;
use domfs::driver::Driver;
use domfs::error::ErrorKind;
use domfs::model::{DomainId, Uuid};
use std::time::Duration;
use xen_common::Sim;

fn sim_with(n: usize) -> Sim {
    let specs: Vec<String> = (0..n).map(|i| format!("g{i},memory=128")).collect();
    let mut args = vec!["--shutdown-delay", "100"];
    for s in &specs {
        args.push("--guest");
        args.push(s);
    }
    Sim::start(&args)
}

/// Requests one `cat` of each value costs: a lookup by UUID (the FUSE
/// layer's first step) then the value's own call.
fn cost_of_values(n: usize) -> Vec<u32> {
    let sim = sim_with(n);
    let d = XenstoreDriver::open(&sim.socket(), Duration::from_secs(5)).unwrap();
    let doms = d.list_active().unwrap();
    assert_eq!(doms.len(), n + 1, "every guest and dom0");
    let dom = doms.iter().find(|x| x.name.0 == "g1").unwrap().clone();
    let mut costs = Vec::new();
    let mut measure = |f: &dyn Fn()| {
        let before = d.requests_sent();
        f();
        costs.push(d.requests_sent() - before);
    };
    measure(&|| assert_eq!(d.lookup_by_uuid(dom.uuid).unwrap(), dom));
    measure(&|| assert_eq!(d.domain_info(&dom).unwrap().memory_kib, 131072));
    measure(&|| assert_eq!(d.domain_os_type(&dom).unwrap(), "linux"));
    measure(&|| assert_eq!(d.lookup_by_name("g1").unwrap(), dom));
    measure(&|| {
        assert_eq!(
            d.lookup_by_id(dom.id.unwrap()).unwrap(),
            dom,
            "lookup by id"
        )
    });
    measure(&|| {
        assert!(d
            .domain_xml(&dom)
            .unwrap()
            .to_xml()
            .contains("<name>g1</name>"))
    });
    costs
}

#[test]
fn value_reads_do_not_grow_with_the_number_of_domains() {
    let small = cost_of_values(2);
    let large = cost_of_values(40);
    assert_eq!(small, large);
    // One round trip of two READs for a lookup.
    assert_eq!(small[0], 2, "lookup by uuid");
}

#[test]
fn misses_rescan_only_after_domains_come_or_go() {
    let sim = sim_with(3);
    let d = XenstoreDriver::open(&sim.socket(), Duration::from_secs(5)).unwrap();
    let all = d.list_active().unwrap();
    let nobody = Uuid([7; 16]);
    let before = d.requests_sent();
    assert_eq!(
        d.lookup_by_uuid(nobody).unwrap_err().kind,
        ErrorKind::NoDomain
    );
    assert_eq!(
        d.lookup_by_name("nobody").unwrap_err().kind,
        ErrorKind::NoDomain
    );
    assert_eq!(d.requests_sent(), before, "nothing changed: no rescan");

    // A guest stops: @releaseDomain, and the next miss rescans and sees it.
    let g2 = all.iter().find(|x| x.name.0 == "g2").unwrap().clone();
    d.shutdown(&g2).unwrap();
    Sim::wait_for(10, "g2 to stop", || d.lookup_by_id(g2.id.unwrap()).is_err());
    Sim::wait_for(5, "the miss to rescan", || {
        let before = d.requests_sent();
        let gone = d.lookup_by_uuid(g2.uuid).unwrap_err().kind == ErrorKind::NoDomain;
        gone && d.requests_sent() > before
    });
    // Operations on it now say it is gone.
    assert_eq!(d.domain_info(&g2).unwrap_err().kind, ErrorKind::NoDomain);
    assert_eq!(d.shutdown(&g2).unwrap_err().kind, ErrorKind::NoDomain);
    assert_eq!(
        d.lookup_by_id(DomainId(99)).unwrap_err().kind,
        ErrorKind::NoDomain
    );
}

/// A host file chooses the starting guests: one spec a line, comments and
/// blank lines skipped; an HVM guest has no kernel in its image.
#[test]
fn a_host_file_chooses_the_guests() {
    let file = std::env::temp_dir().join(format!("domfs-sim-host-{}.txt", std::process::id()));
    std::fs::write(
        &file,
        "# two guests\nweb,memory=300,vcpus=3\n\nwin,type=hvm,memory=1024,uuid=0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let sim = Sim::start(&["--host", file.to_str().unwrap()]);
    let d = XenstoreDriver::open(&sim.socket(), Duration::from_secs(5)).unwrap();
    let names: Vec<String> = d
        .list_active()
        .unwrap()
        .into_iter()
        .map(|x| x.name.0)
        .collect();
    assert_eq!(names, ["Domain-0", "web", "win"]);
    let web = d.lookup_by_name("web").unwrap();
    let info = d.domain_info(&web).unwrap();
    assert_eq!((info.memory_kib, info.vcpus), (307200, 3));
    let win = d
        .lookup_by_uuid(Uuid::parse("0123456789abcdef0123456789abcdef").unwrap())
        .unwrap();
    assert_eq!(d.domain_os_type(&win).unwrap(), "hvm");
    let xml = d.domain_xml(&win).unwrap().to_xml();
    assert!(
        xml.contains("<type>hvm</type>") && !xml.contains("<kernel>"),
        "{xml}"
    );
    let _ = std::fs::remove_file(&file);
}

/// On a fresh boot dom0 has no memory keys: xenstore cannot give its info
/// and says so ("not supported", so another driver may answer), while the
/// rest of dom0 still reads.
#[test]
fn dom0_without_memory_keys_is_not_guessed() {
    let sim = Sim::start(&["--dom0-memory", "0", "--guest", "g"]);
    let d = XenstoreDriver::open(&sim.socket(), Duration::from_secs(5)).unwrap();
    let dom0 = d.lookup_by_id(DomainId(0)).unwrap();
    assert_eq!(dom0.name.0, "Domain-0");
    let e = d.domain_info(&dom0).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotSupported, "{e}");
    assert!(e.message.contains("memory/target"), "{e}");
    assert_eq!(d.domain_os_type(&dom0).unwrap(), "linux");
}
