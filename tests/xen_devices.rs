//! Devices of Xen guests through a real mount of `xen:///` over the
//! simulated host (`domfs-sim`: xenstored and xend), driven with cat, echo
//! and ls: disk and interface counters read from dom0's files (here a fake
//! tree the test writes, standing where sysfs and `/proc/net/dev` stand),
//! attach and detach through xend, autostart and core dumps.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod xen_common;
use common::*;
use std::path::{Path, PathBuf};
use xen_common::Sim;

fn pv_xml(name: &str, uuid: &str) -> String {
    format!(
        "<domain type='xen'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory>262144</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type>linux</type>\n    <kernel>/boot/vmlinuz-xen</kernel>\n  </os>\n  \
         <devices>\n    <disk type='file' device='disk'>\n      \
         <source file='/srv/img/{name}.img'/>\n      <target dev='xvda'/>\n    </disk>\n    \
         <interface type='bridge'>\n      <source bridge='xenbr0'/>\n      \
         <mac address='00:16:3e:00:00:01'/>\n    </interface>\n  </devices>\n</domain>\n"
    )
}

/// A fake dom0 counter tree made by the test: blkback's device
/// directories and a `/proc/net/dev` of its own.
struct FakeDom0 {
    dir: TempDir,
}

impl FakeDom0 {
    fn new() -> FakeDom0 {
        let dir = TempDir::new("fake-dom0-counters");
        std::fs::create_dir_all(dir.path().join("xen-backend")).unwrap();
        let f = FakeDom0 { dir };
        f.set_net_dev("");
        f
    }

    fn backends(&self) -> PathBuf {
        self.dir.path().join("xen-backend")
    }

    fn net_dev(&self) -> PathBuf {
        self.dir.path().join("net_dev")
    }

    /// blkback's `statistics` of disk `devid` of domain `domid`.
    fn set_disk(&self, domid: &str, devid: u32, rd: u64, rd_sect: u64, wr: u64, wr_sect: u64) {
        let stats = self
            .backends()
            .join(format!("vbd-{domid}-{devid}"))
            .join("statistics");
        std::fs::create_dir_all(&stats).unwrap();
        for (k, v) in [
            ("rd_req", rd),
            ("rd_sect", rd_sect),
            ("wr_req", wr),
            ("wr_sect", wr_sect),
            ("oo_req", 1),
            ("f_req", 0),
        ] {
            std::fs::write(stats.join(k), format!("{v}\n")).unwrap();
        }
    }

    /// `/proc/net/dev` with the loopback and the given vif lines.
    fn set_net_dev(&self, lines: &str) {
        let text = format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    \
             packets errs drop fifo colls carrier compressed\n    \
             lo:  100 2 0 0 0 0 0 0  100 2 0 0 0 0 0 0\n{lines}"
        );
        std::fs::write(self.net_dev(), text).unwrap();
    }
}

fn mount(sim: &Sim, fake: Option<&FakeDom0>) -> Mount {
    let mut opts = format!(
        "xend=unix:{},xenstore={},privcmd=none,libxl=none",
        sim.dir.join("xend-socket").display(),
        sim.socket().display()
    );
    if let Some(f) = fake {
        opts.push_str(&format!(
            ",backend_devices={},net_dev={}",
            f.backends().display(),
            f.net_dev().display()
        ));
    }
    Mount::with_options("xen:///", &["-o", &opts])
}

fn create(m: &Mount, files: &Path, name: &str, uuid: &str) -> String {
    let f = files.join(format!("{name}.xml"));
    std::fs::write(&f, pv_xml(name, uuid)).unwrap();
    m.sh_ok(&format!("cat {} > create", f.display()));
    m.value(&format!("{name}/id"))
}

/// `stats/block/<target>` and `stats/net/<name>` on xen:/// are dom0's
/// blkback and netback counters, the device found through the guest's
/// backend entries in xenstore; `metrics` carries them too.
#[test]
fn counters_come_from_dom0_through_the_guests_backends() {
    let sim = Sim::start(&["--shutdown-delay", "100"]);
    let fake = FakeDom0::new();
    let m = mount(&sim, Some(&fake));
    let files = TempDir::new("xml");
    let id = create(
        &m,
        files.path(),
        "web1",
        "11111111-2222-3333-4444-5555555555c1",
    );
    let vif = format!("vif{id}.0");
    assert_eq!(m.sh_ok("ls web1/stats/block"), "xvda\n");
    assert_eq!(m.sh_ok("ls web1/stats/net"), format!("{vif}\n"));

    // xvda is device 51712 (202:0), the number blkback names it by.
    fake.set_disk(&id, 51712, 5, 40, 2, 16);
    fake.set_net_dev(&format!("{vif}: 1000 10 1 2 0 0 0 0 5000 50 3 4 0 0 0 0\n"));
    assert_eq!(
        m.cat("web1/stats/block/xvda"),
        "rd_req 5\nrd_bytes 20480\nwr_req 2\nwr_bytes 8192\nerrs 1\n"
    );
    // dom0 received what the guest sent: the halves swap.
    assert_eq!(
        m.cat(&format!("web1/stats/net/{vif}")),
        "rx_bytes 5000\nrx_packets 50\nrx_errs 3\nrx_drop 4\n\
         tx_bytes 1000\ntx_packets 10\ntx_errs 1\ntx_drop 2\n"
    );
    // Each read is the kernel's value now.
    fake.set_disk(&id, 51712, 6, 48, 2, 16);
    assert!(m
        .cat("web1/stats/block/xvda")
        .starts_with("rd_req 6\nrd_bytes 24576\n"));

    let metrics = m.cat("metrics");
    let has = |family: &str, label: &str, value: &str| {
        metrics.lines().any(|l| {
            l.starts_with(family)
                && l.contains("domain=\"web1\"")
                && l.contains(label)
                && l.ends_with(&format!(" {value}"))
        })
    };
    assert!(
        has(
            "domfs_domain_block_read_requests_total",
            "device=\"xvda\"",
            "6"
        ),
        "{metrics}"
    );
    assert!(
        has(
            "domfs_domain_net_transmit_bytes_total",
            &format!("interface=\"{vif}\""),
            "1000"
        ),
        "{metrics}"
    );

    // A disk blkback does not show (gone from dom0, or never connected)
    // fails the read with EINVAL; a name the domain lacks is no file.
    std::fs::remove_dir_all(fake.backends().join(format!("vbd-{id}-51712"))).unwrap();
    m.sh_fails("cat web1/stats/block/xvda", libc::EINVAL);
    fake.set_net_dev("");
    m.sh_fails(&format!("cat web1/stats/net/{vif}"), libc::EINVAL);
    m.sh_fails("cat web1/stats/block/xvdz", libc::ENOENT);
    // A guest without devices has none to count.
    assert_eq!(
        m.sh_ok("ls guest1/stats/block guest1/stats/net"),
        "guest1/stats/block:\n\nguest1/stats/net:\n"
    );
}

/// Without xenstore no back end knows the devices' numbers: the counters
/// are not supported, and say so, rather than made up.
#[test]
fn counters_without_xenstore_are_not_supported() {
    let sim = Sim::start(&["--shutdown-delay", "100"]);
    let opts = format!(
        "xend=unix:{},privcmd=none,libxl=none",
        sim.dir.join("xend-socket").display()
    );
    let m = Mount::with_options("xen:///", &["-o", &opts]);
    let files = TempDir::new("xml");
    create(
        &m,
        files.path(),
        "web1",
        "11111111-2222-3333-4444-5555555555c2",
    );
    m.sh_fails("cat web1/stats/block/xvda", libc::EOPNOTSUPP);
}

fn disk_xml(target: &str) -> String {
    format!(
        "<disk type='file' device='disk'><source file='/srv/img/extra-{target}.img'/>\
         <target dev='{target}'/></disk>"
    )
}

/// Writes `text` to a file in `dir` and copies it into `rel` with cat, as a
/// user would (under dash, the shell opens the file and cat writes it).
fn write_doc(m: &Mount, dir: &Path, rel: &str, text: &str) -> std::process::Output {
    let f = dir.join("doc.xml");
    std::fs::write(&f, text).unwrap();
    m.sh(&format!("cat {} > {rel}", f.display()))
}

/// attach and detach through xend's `device_create` and `device_destroy`:
/// the device shows in the domain's XML, in xenstore (its counters are
/// found through it) and in the stats listing; bad fragments and missing
/// devices fail with EINVAL and change nothing.
#[test]
fn attach_and_detach_through_xend() {
    let sim = Sim::start(&["--shutdown-delay", "100"]);
    let fake = FakeDom0::new();
    let m = mount(&sim, Some(&fake));
    let files = TempDir::new("xml");
    let dir = files.path();
    let id = create(&m, dir, "web1", "11111111-2222-3333-4444-5555555555c3");
    let before = m.cat("web1/xml");
    assert!(!before.contains("xvdb"), "{before}");

    let ok = |rel: &str, text: &str| {
        let out = write_doc(&m, dir, rel, text);
        assert!(
            out.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fails = |rel: &str, text: &str, errno: i32| {
        let out = write_doc(&m, dir, rel, text);
        assert!(!out.status.success(), "{rel} accepted {text}");
        assert_errno(&String::from_utf8_lossy(&out.stderr), errno);
    };

    ok("web1/devices/attach", &disk_xml("xvdb"));
    let xml = m.cat("web1/xml");
    assert!(xml.contains("<target dev='xvdb'"), "{xml}");
    assert!(xml.contains("extra-xvdb.img"), "{xml}");
    assert_eq!(m.sh_ok("ls web1/stats/block"), "xvda\nxvdb\n");
    // xvdb is device 51728: found through its new backend in xenstore.
    fake.set_disk(&id, 51728, 7, 8, 0, 0);
    assert!(m.cat("web1/stats/block/xvdb").starts_with("rd_req 7\n"));
    if have_tool("xenstore-read") {
        let dev = sim.xs(
            "xenstore-read",
            &[&format!("/local/domain/0/backend/vbd/{id}/51728/dev")],
        );
        assert_eq!(dev.trim(), "xvdb");
    }

    // Refused, and nothing changed: the same target again, XML that does
    // not parse, a disk without a target, a device xend does not attach.
    let now = m.cat("web1/xml");
    fails("web1/devices/attach", &disk_xml("xvdb"), libc::EINVAL);
    fails(
        "web1/devices/attach",
        "<disk type='file'><target dev='xvdc'/>",
        libc::EINVAL,
    );
    fails(
        "web1/devices/attach",
        "<disk type='file'><source file='/x.img'/></disk>",
        libc::EINVAL,
    );
    fails(
        "web1/devices/attach",
        "<controller type='usb'/>",
        libc::EINVAL,
    );
    assert_eq!(m.cat("web1/xml"), now);

    // An interface too.
    ok(
        "web1/devices/attach",
        "<interface type='bridge'><source bridge='xenbr0'/>\
         <mac address='00:16:3e:00:00:02'/></interface>",
    );
    assert!(m.cat("web1/xml").contains("00:16:3e:00:00:02"));
    assert_eq!(
        m.sh_ok("ls web1/stats/net"),
        format!("vif{id}.0\nvif{id}.1\n")
    );

    // Detach both; then the domain is as it was.
    ok("web1/devices/detach", &disk_xml("xvdb"));
    ok(
        "web1/devices/detach",
        "<interface type='bridge'><mac address='00:16:3E:00:00:02'/></interface>",
    );
    assert_eq!(m.cat("web1/xml"), before);
    assert_eq!(m.sh_ok("ls web1/stats/block"), "xvda\n");
    if have_tool("xenstore-ls") {
        let out = Sim::tool(
            &sim.socket(),
            "xenstore-ls",
            &[&format!("/local/domain/0/backend/vbd/{id}/51728")],
        );
        assert!(!out.status.success(), "the backend is still there");
    }

    // Detaching what the domain lacks is refused and changes nothing.
    fails("web1/devices/detach", &disk_xml("xvdb"), libc::EINVAL);
    fails(
        "web1/devices/detach",
        "<interface type='bridge'><mac address='00:16:3e:00:00:09'/></interface>",
        libc::EINVAL,
    );
    fails("web1/devices/detach", "<disk", libc::EINVAL);
    assert_eq!(m.cat("web1/xml"), before);
}

/// `autostart` is xend's `on_xend_start` (`start` or `ignore`), set as
/// libvirt set it: the record sent back with `op=new`.
#[test]
fn autostart_is_on_xend_start() {
    let sim = Sim::start(&["--shutdown-delay", "100"]);
    let m = mount(&sim, None);
    let files = TempDir::new("xml");
    let f = files.path().join("web2.xml");
    std::fs::write(&f, pv_xml("web2", "11111111-2222-3333-4444-5555555555c4")).unwrap();
    m.sh_ok(&format!("cat {} > define", f.display()));
    assert_eq!(m.value("web2/state"), "shutoff");
    let xml = m.cat("web2/xml");
    assert_eq!(m.value("web2/autostart"), "0");
    m.echo_ok("1", "web2/autostart");
    assert_eq!(m.value("web2/autostart"), "1");
    // Sending the record back kept the definition whole.
    assert_eq!(m.cat("web2/xml"), xml);
    m.echo_fails("2", "web2/autostart", libc::EINVAL);
    assert_eq!(m.value("web2/autostart"), "1");
    m.echo_ok("0", "web2/autostart");
    assert_eq!(m.value("web2/autostart"), "0");
    // It starts with its autostart set, and a running guest takes it too.
    m.echo_ok("1", "web2/autostart");
    m.echo_ok("start", "web2/control");
    assert_eq!(m.value("web2/autostart"), "1");
    assert_ne!(m.value("web2/state"), "shutoff");
    assert_eq!(m.value("guest1/autostart"), "0");
    m.echo_ok("1", "guest1/autostart");
    assert_eq!(m.value("guest1/autostart"), "1");
    assert_ne!(m.value("guest1/state"), "shutoff");
}

/// `dump PATH` goes to xend's `op=dump`; a path inside the mount is
/// refused before xend is asked, and no file appears.
#[test]
fn dump_paths_into_the_mount_are_refused() {
    let sim = Sim::start(&["--shutdown-delay", "100"]);
    let m = mount(&sim, None);
    let out = TempDir::new("dump");
    let core = out.path().join("guest1.core");
    m.echo_ok(&format!("dump {}", core.display()), "guest1/control");
    assert!(std::fs::read_to_string(&core)
        .unwrap()
        .contains("(name guest1)"));
    let inside = m.path().join("guest1.core");
    m.echo_fails(
        &format!("dump {}", inside.display()),
        "guest1/control",
        libc::EINVAL,
    );
    m.echo_fails(
        &format!("dump {}/guest1/core", m.path().display()),
        "guest1/control",
        libc::EINVAL,
    );
    assert!(!m.sh_ok("ls").contains("core"));
    assert_ne!(m.value("guest1/state"), "shutoff");
}
