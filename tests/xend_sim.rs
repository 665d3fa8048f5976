//! The xend driver against its peer here, the simulated host's xend API
//! (`domfs-sim`; real xend left Xen in 4.5): first through the library,
//! then end to end through a real mount of `xen:///` driven with cat, echo,
//! cp and rmdir, checking the host's xenstore with Debian's `xenstore-ls`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::*;
use domfs::driver::xend::XendDriver;
use domfs::driver::Driver;
use domfs::model::{DomainId, State};
use domfs::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UUID1: &str = "11111111-2222-3333-4444-555555555501";

/// A running `domfs-sim DIR`, killed on drop.
struct Sim {
    child: Option<Child>,
    dir: TempDir,
}

impl Sim {
    fn start() -> Sim {
        Sim::start_in(TempDir::new("sim"))
    }

    fn start_in(dir: TempDir) -> Sim {
        let _ = std::fs::remove_file(dir.path().join("xend-port"));
        let child = Command::new(env!("CARGO_BIN_EXE_domfs-sim"))
            .args(["--shutdown-delay", "100", "--guest"])
            .arg(format!("guest1,memory=512,vcpus=2,uuid={UUID1}"))
            .args(["--guest", "guest2,memory=256,vcpus=1,maxvcpus=2"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start domfs-sim");
        let sim = Sim {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sim.dir.path().join("xend-port").exists() {
            assert!(Instant::now() < deadline, "domfs-sim did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn unix(&self) -> String {
        format!("unix:{}", self.path().join("xend-socket").display())
    }

    fn http(&self) -> String {
        let port = std::fs::read_to_string(self.path().join("xend-port")).unwrap();
        format!("http://127.0.0.1:{}", port.trim())
    }

    fn xenstore(&self) -> PathBuf {
        self.path().join("xenstored/socket")
    }

    /// `xenstore-ls -f PATH` against the sim's store, or None without the tool.
    fn xenstore_ls(&self, path: &str) -> Option<String> {
        if !have_tool("xenstore-ls") {
            return None;
        }
        let out = Command::new("xenstore-ls")
            .arg("-f")
            .arg(path)
            .env("XENSTORED_PATH", self.xenstore())
            .output()
            .unwrap();
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kills the sim and gives its directory back (to start again there).
    fn kill(mut self) -> TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let tmp = TempDir::new("sim-old");
        std::mem::replace(&mut self.dir, tmp)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pv_xml(name: &str, uuid: &str, mem_kib: u64) -> String {
    let name = name.replace('\'', "&apos;");
    format!(
        "<domain type='xen'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory>{mem_kib}</memory>\n  <currentMemory>{mem_kib}</currentMemory>\n  <vcpu>2</vcpu>\n  \
         <os>\n    <type>linux</type>\n    <kernel>/boot/vmlinuz-xen</kernel>\n    \
         <cmdline>root=/dev/xvda1 ro</cmdline>\n  </os>\n  <devices>\n    \
         <disk type='file' device='disk'>\n      <source file='/srv/img/{name} (copy).img'/>\n      \
         <target dev='xvda'/>\n    </disk>\n    <interface type='bridge'>\n      \
         <source bridge='xenbr0'/>\n      <mac address='00:16:3e:00:00:01'/>\n    </interface>\n  \
         </devices>\n</domain>\n"
    )
}

#[test]
fn driver_calls_over_the_unix_socket_and_tcp() {
    let sim = Sim::start();
    for url in [sim.unix(), sim.http()] {
        let d = XendDriver::from_url(&url).unwrap();
        let names: Vec<String> = d
            .list_active()
            .unwrap()
            .into_iter()
            .map(|r| r.name.0)
            .collect();
        assert_eq!(names, ["Domain-0", "guest1", "guest2"], "{url}");
        assert!(d.list_defined().unwrap().is_empty());
        let g1 = d.lookup_by_name("guest1").unwrap();
        assert_eq!(g1.uuid.to_string(), UUID1);
        assert_eq!(d.lookup_by_id(g1.id.unwrap()).unwrap(), g1);
        assert_eq!(d.lookup_by_uuid(g1.uuid).unwrap(), g1);
        let e = d.lookup_by_name("nosuch").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoDomain, "{e}");
        assert_eq!(
            d.lookup_by_id(DomainId(999)).unwrap_err().kind,
            ErrorKind::NoDomain
        );
        let info = d.domain_info(&g1).unwrap();
        assert_eq!((info.memory_kib, info.vcpus), (524288, 2));
        assert_eq!(d.domain_os_type(&g1).unwrap(), "linux");
        let xml = d.domain_xml(&g1).unwrap();
        assert_eq!((xml.name.as_str(), xml.memory_kib), ("guest1", 524288));
        let node = d.node_info().unwrap();
        assert_eq!((node.cpus, node.cores, node.threads), (8, 4, 2));
        assert_eq!(d.hypervisor().unwrap().version.to_string(), "4.17.7");
    }
    let d = XendDriver::from_url(&sim.unix()).unwrap();
    let g1 = d.lookup_by_name("guest1").unwrap();
    d.suspend(&g1).unwrap();
    assert_eq!(d.domain_info(&g1).unwrap().state, State::Paused);
    let e = d.suspend(&g1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{e}");
    d.resume(&g1).unwrap();
    assert_eq!(d.domain_info(&g1).unwrap().state, State::Blocked);
    d.set_memory(&g1, 262144).unwrap();
    d.set_vcpus(&g1, 1).unwrap();
    let info = d.domain_info(&g1).unwrap();
    assert_eq!((info.memory_kib, info.vcpus), (262144, 1));
    if let Some(ls) = sim.xenstore_ls("/local/domain/1") {
        assert!(
            ls.contains("/local/domain/1/memory/target = \"262144\""),
            "{ls}"
        );
        assert!(
            ls.contains("/local/domain/1/cpu/1/availability = \"offline\""),
            "{ls}"
        );
    }
    // A name holding quotes, spaces and parentheses reaches xend as one
    // atom: the simulated xend (like xend 3.0) refuses such names, and its
    // refusal quotes the whole name back.
    let mut def = domfs::model::DomainDef::parse(&pv_xml(
        "we'ird (x)",
        "11111111-2222-3333-4444-555555555599",
        131072,
    ))
    .unwrap();
    let e = d.create_xml(def.clone()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Backend, "{e}");
    assert!(e.message.contains("\"we'ird (x),memory=128"), "{e}");
    assert_eq!(d.list_active().unwrap().len(), 3);
    def.set_name("transient1").unwrap();
    let created = d.create_xml(def.clone()).unwrap();
    assert_eq!(d.domain_info(&created).unwrap().state, State::Blocked);
    let xml = d.domain_xml(&created).unwrap().to_xml();
    assert!(
        xml.contains("<source file='/srv/img/we&apos;ird (x) (copy).img'/>"),
        "{xml}"
    );
    d.destroy(&created).unwrap();
    assert_eq!(
        d.lookup_by_name("transient1").unwrap_err().kind,
        ErrorKind::NoDomain
    );
    def.set_name("managed1").unwrap();
    let m = d.define_xml(def).unwrap();
    assert_eq!(d.list_defined().unwrap(), vec![m.clone()]);
    assert_eq!(d.resume(&m).unwrap_err().kind, ErrorKind::InvalidState);
    d.start(&m).unwrap();
    let m = d.lookup_by_name("managed1").unwrap();
    assert!(m.id.is_some());
    assert_eq!(d.undefine(&m).unwrap_err().kind, ErrorKind::InvalidState);
    d.destroy(&m).unwrap();
    d.undefine(&m).unwrap();
    assert!(d.list_defined().unwrap().is_empty());
}

/// The protocol doc's minimal HVM example, defined, started and read back.
#[test]
fn hvm_domain_defined_started_and_read_back() {
    let sim = Sim::start();
    let d = XendDriver::from_url(&sim.unix()).unwrap();
    let xml = "<domain type='xen'>\n  <name>hvm1</name>\n  <memory>524288</memory>\n  <vcpu>2</vcpu>\n  \
        <os><type>hvm</type><loader>/usr/lib/xen/boot/hvmloader</loader><boot dev='cdrom'/></os>\n  \
        <features><pae/><acpi/><apic/></features>\n  <clock offset='localtime'/>\n  <devices>\n    \
        <emulator>/usr/lib/xen/bin/qemu-dm</emulator>\n    \
        <disk type='block' device='disk'><source dev='/dev/vg0/hvm1'/><target dev='hda'/></disk>\n    \
        <disk type='file' device='cdrom'><source file='/srv/iso/install.iso'/><target dev='hdc'/><readonly/></disk>\n    \
        <interface type='bridge'><source bridge='xenbr0'/><mac address='00:16:3e:00:00:02'/></interface>\n    \
        <input type='tablet' bus='usb'/>\n    <graphics type='vnc' port='-1' autoport='yes' keymap='en-us'/>\n    \
        <serial type='pty'><target port='0'/></serial>\n    <sound model='es1370'/>\n  </devices>\n</domain>\n";
    let def = domfs::model::DomainDef::parse(xml).unwrap();
    let dom = d.define_xml(def).unwrap();
    assert_eq!(d.domain_info(&dom).unwrap().state, State::ShutOff);
    d.start(&dom).unwrap();
    let dom = d.lookup_by_name("hvm1").unwrap();
    assert_eq!(d.domain_os_type(&dom).unwrap(), "hvm");
    let back = d.domain_xml(&dom).unwrap().to_xml();
    for want in [
        "<loader type='rom'>/usr/lib/xen/boot/hvmloader</loader>",
        "<boot dev='cdrom'/>",
        "<acpi/>",
        "<clock offset='variable' adjustment='0' basis='localtime'/>",
        "<source dev='/dev/vg0/hvm1'/>",
        "<target dev='hdc' bus='ide'/>",
        "<input type='tablet' bus='usb'/>",
        "<graphics type='vnc' port='-1' autoport='yes' keymap='en-us'>",
        "<sound model='es1370'/>",
        "<serial type='pty'>",
    ] {
        assert!(back.contains(want), "{want} not in\n{back}");
    }
    if let Some(ls) = sim.xenstore_ls("/libxl") {
        assert!(ls.contains("/type = \"hvm\""), "{ls}");
    }
    d.destroy(&dom).unwrap();
    d.undefine(&d.lookup_by_name("hvm1").unwrap()).unwrap();
}

#[test]
fn a_dead_xend_fails_fast_and_recovery_needs_no_remount() {
    let sim = Sim::start();
    let m = Mount::with_options("xen:///", &["-o", &format!("xend={}", sim.unix())]);
    assert_eq!(m.value("guest1/memory"), "524288");
    let dir = sim.kill();
    let t = Instant::now();
    let out = m.sh("cat guest1/state");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&strerror(libc::ENOTCONN)) || err.contains(&strerror(libc::EIO)),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let _sim = Sim::start_in(dir);
    wait_for("guest1 back", || m.sh("cat guest1/state").status.success());
    assert_eq!(m.value("guest1/memory"), "524288");
}

#[test]
fn remote_xend_over_tcp_loopback() {
    let sim = Sim::start();
    let m = Mount::with_options("xen:///", &["-o", &format!("xend={}", sim.http())]);
    let ls = m.sh_ok("ls");
    assert!(ls.contains("guest1\n") && ls.contains("guest2\n"), "{ls}");
    m.echo_ok("suspend", "guest2/control");
    assert_eq!(m.value("guest2/state"), "paused");
    m.echo_ok("resume", "guest2/control");
}

#[test]
fn lifecycle_end_to_end_through_the_files_and_xenstore() {
    let sim = Sim::start();
    let opts = format!("xend={},xenstore={}", sim.unix(), sim.xenstore().display());
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    let files = TempDir::new("xml");
    let uuid = "11111111-2222-3333-4444-5555555555a1";
    let f = files.path().join("web1.xml");
    std::fs::write(&f, pv_xml("web1", uuid, 262144)).unwrap();
    let name_in_store = |present: bool| {
        if let Some(ls) = sim.xenstore_ls("/local/domain") {
            let found = ls.lines().any(|l| l.ends_with("/name = \"web1\""));
            assert_eq!(found, present, "{ls}");
        }
    };

    // Create: a transient domain, running, with the keys libxl writes.
    m.sh_ok(&format!("cat {} > create", f.display()));
    assert!(m.sh_ok("ls").contains("web1\n"));
    assert_eq!(m.value("web1/state"), "blocked");
    name_in_store(true);
    let id = m.value("web1/id");
    if let Some(ls) = sim.xenstore_ls(&format!("/local/domain/{id}")) {
        assert!(ls.contains("memory/target = \"262144\""), "{ls}");
    }
    assert!(m.cat("web1/xml").contains("(copy).img"));

    // Pause and resume.
    m.echo_ok("suspend", "web1/control");
    assert_eq!(m.value("web1/state"), "paused");
    m.echo_fails("suspend", "web1/control", libc::EBUSY);
    m.echo_ok("resume", "web1/control");
    assert_eq!(m.value("web1/state"), "blocked");

    // Save and restore.
    let img = files.path().join("web1.save");
    m.echo_ok(&format!("save {}", img.display()), "web1/control");
    wait_for("web1 to stop after save", || {
        !m.sh_ok("ls").contains("web1\n")
    });
    name_in_store(false);
    m.echo_ok(&img.display().to_string(), "restore");
    assert_eq!(m.value("web1/state"), "blocked");
    name_in_store(true);

    // Shutdown: the guest acknowledges in xenstore and stops.
    m.echo_ok("shutdown", "web1/control");
    wait_for("web1 to shut down", || !m.sh_ok("ls").contains("web1\n"));
    name_in_store(false);

    // Define, start, destroy, redefine through xml, undefine with rmdir.
    m.sh_ok(&format!("cp {} define", f.display()));
    assert_eq!(m.value("web1/state"), "shutoff");
    m.echo_ok("start", "web1/control");
    assert_eq!(m.value("web1/state"), "blocked");
    name_in_store(true);
    m.sh_fails("rmdir web1", libc::EBUSY);
    m.echo_ok("destroy", "web1/control");
    assert_eq!(m.value("web1/state"), "shutoff");
    name_in_store(false);
    let v2 = files.path().join("v2.xml");
    std::fs::write(&v2, pv_xml("web1", uuid, 524288)).unwrap();
    m.sh_ok(&format!("cp {} web1/xml", v2.display()));
    assert!(m
        .cat("web1/xml")
        .contains("<memory unit='KiB'>524288</memory>"));
    assert_eq!(m.value("web1/max_memory"), "524288");
    m.sh_ok("rmdir web1");
    assert!(!m.sh_ok("ls").contains("web1\n"));
}

impl Sim {
    /// What the simulated host has served so far: (xenstore, xend) requests.
    fn requests(&self) -> (u64, u64) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.path().join("xend-socket"))
            .expect("connect to the simulated xend");
        s.write_all(b"GET /domfs-sim/requests HTTP/1.0\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let count = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} count in {text}"))
        };
        (count("xenstore "), count("xend "))
    }
}

/// A warm `cat state` on xen:/// costs one back-end request, the value's:
/// the domain's reference is kept until an event about it (or one TTL).
#[test]
fn a_warm_read_costs_one_back_end_request() {
    let sim = Sim::start();
    let opts = format!("xend={},xenstore={}", sim.unix(), sim.xenstore().display());
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    assert_eq!(m.value("guest1/state"), "blocked");
    // Five quick reads in one shell: each within the kernel's name TTL and
    // the reference's, so each is warm.
    let before = sim.requests();
    let out = m.sh_ok("for i in 1 2 3 4 5; do cat guest1/state; done");
    let after = sim.requests();
    assert_eq!(out.lines().filter(|l| *l == "blocked").count(), 5, "{out}");
    let spent = (after.0 - before.0) + (after.1 - before.1);
    assert_eq!(
        spent,
        5,
        "five warm reads, one request each: xenstore {} xend {}",
        after.0 - before.0,
        after.1 - before.1
    );
    // An event about the domain ends its cached reference: the next read
    // sees the change at once.
    m.echo_ok("suspend", "guest1/control");
    assert_eq!(m.value("guest1/state"), "paused");
    m.echo_ok("resume", "guest1/control");
    assert_eq!(m.value("guest1/state"), "blocked");
}

/// `dump PATH` is xend 3.x's `op=dump`: the image is written, the guest
/// goes on, and a shut-off guest has nothing to dump.
#[test]
fn dump_through_control_is_xends_op_dump() {
    let sim = Sim::start();
    let m = Mount::with_options("xen:///", &["-o", &format!("xend={}", sim.unix())]);
    let dir = TempDir::new("dump");
    let core = dir.path().join("guest1.core");
    assert!(m.cat("guest1/control").lines().any(|l| l == "dump PATH"));
    m.echo_ok(&format!("dump {}", core.display()), "guest1/control");
    let text = std::fs::read_to_string(&core).unwrap();
    assert!(
        text.starts_with("(simulated core dump of domain "),
        "{text}"
    );
    assert!(text.contains("(name guest1)"), "{text}");
    assert_ne!(m.value("guest1/state"), "shutoff");
    m.echo_fails("dump relative.core", "guest1/control", libc::EINVAL);
    // A defined guest that is shut off has nothing to dump.
    let f = dir.path().join("web2.xml");
    std::fs::write(
        &f,
        pv_xml("web2", "11111111-2222-3333-4444-5555555555b2", 262144),
    )
    .unwrap();
    m.sh_ok(&format!("cat {} > define", f.display()));
    assert_eq!(m.value("web2/state"), "shutoff");
    assert!(!m.cat("web2/control").contains("dump"));
    m.echo_fails(
        &format!("dump {}", core.display()),
        "web2/control",
        libc::EBUSY,
    );
}

/// xend reports no event for a definition or its removal, so a listing
/// taken just before must not be reused just after: `ls` right after a
/// `define` or an `rmdir` through the mount shows the change (the root's
/// listing was kept until the next event or a TTL, and 16 concurrent
/// workers saw a domain they had just removed).
#[test]
fn a_listing_right_after_define_and_rmdir_shows_them() {
    let sim = Sim::start();
    let m = Mount::with_options("xen:///", &["-o", &format!("xend={}", sim.unix())]);
    let files = TempDir::new("listing");
    let f = files.path().join("l1.xml");
    std::fs::write(
        &f,
        pv_xml("l1", "11111111-2222-3333-4444-5555555555a1", 262144),
    )
    .unwrap();
    let define = format!("cp {} define", quote(&f.display().to_string()));
    for round in 0..3 {
        let listed = |ls: &str| ls.lines().any(|l| l == "l1");
        let out = m.sh_ok(&format!("ls >/dev/null; {define}; ls"));
        assert!(
            listed(&out),
            "round {round}: l1 not listed after define: {out}"
        );
        let out = m.sh_ok("ls >/dev/null; rmdir l1; ls");
        assert!(!listed(&out), "round {round}: l1 listed after rmdir: {out}");
    }
}
