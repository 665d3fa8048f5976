//! Devices of Xen guests through a real mount of `xen:///` over the
//! simulated host (`domfs-sim`: xenstored and xend), driven with cat, echo
//! and ls: disk and interface counters read from dom0's files (here a fake
//! tree the test writes, standing where sysfs and `/proc/net/dev` stand).
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
