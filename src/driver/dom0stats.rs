//! A Xen guest's block and interface counters as dom0 sees them: blkback's
//! `/sys/bus/xen-backend/devices/vbd-<domid>-<devid>/statistics/` and
//! netback's `vif<domid>.<n>` lines of `/proc/net/dev`, in the keys of
//! libvirt's `domblkstat` and `domifstat`.
//!
//! The parsers and the device-number rules are pure (text in, values
//! out); the two readers only open the files under a root they are given,
//! so tests run them on a directory of their own. Nothing here knows a
//! domain's configuration: which disks and interfaces a guest has comes
//! from xenstore (`/local/domain/0/backend/vbd/<domid>/<devid>`) or the
//! domain XML, in the driver that uses this.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where the kernel lists backend devices.
pub const XEN_BACKEND_DEVICES: &str = "/sys/bus/xen-backend/devices";
/// The kernel's interface counters.
pub const PROC_NET_DEV: &str = "/proc/net/dev";
/// blkback counts sectors of 512 bytes, whatever the disk's block size.
const SECTOR: u64 = 512;
/// The most read of one counter file (a u64 in decimal is 20 digits).
const MAX_COUNTER_FILE: usize = 64;
/// The most read of `/proc/net/dev` (about 200 bytes a line: thousands of
/// interfaces).
const MAX_NET_DEV: usize = 4 << 20;

/// Where dom0's kernel shows the counters: the real places by default,
/// another tree for tests (`-o backend_devices=`, `-o net_dev=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// blkback's device directories ([`XEN_BACKEND_DEVICES`]).
    pub backend_devices: PathBuf,
    /// The interface counters file ([`PROC_NET_DEV`]).
    pub net_dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots {
            backend_devices: PathBuf::from(XEN_BACKEND_DEVICES),
            net_dev: PathBuf::from(PROC_NET_DEV),
        }
    }
}

/// Reads a kernel text file of at most `max` bytes (a longer one is a
/// back-end error, not a truncated answer).
fn read_text(path: &Path, max: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(std::io::Error::other(format!("longer than {max} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// The device number of the disk whose backend says `dev = target`, given
/// each backend entry of the domain (`backend/vbd/<domid>/<devid>` and its
/// `dev` value, None where it has none). The toolstack may add `:disk` or
/// `:cdrom` to the name; the number is what blkback's directory is named by.
pub fn disk_devid(entries: &[(String, Option<String>)], target: &str) -> Option<u32> {
    entries.iter().find_map(|(devid, dev)| {
        let dev = dev.as_deref()?;
        let name = dev.split(':').next().unwrap_or(dev);
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        (name == target)
            .then(|| devid.parse::<u32>().ok())
            .flatten()
    })
}

/// The number of the interface named `name` (`vif<domid>.<n>`, the name
/// netback gives it, or its MAC address), given each backend entry of the
/// domain (`backend/vif/<domid>/<n>` and its `mac` value).
pub fn vif_devid(domid: u32, entries: &[(String, Option<String>)], name: &str) -> Option<u32> {
    if let Some(n) = name.strip_prefix(&format!("vif{domid}.")) {
        // netback's name: a decimal without leading zeros after the dot.
        let canonical = !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'));
        let n = canonical.then(|| n.parse::<u32>().ok()).flatten()?;
        return entries
            .iter()
            .filter_map(|(m, _)| m.parse::<u32>().ok())
            .find(|m| *m == n);
    }
    entries.iter().find_map(|(n, mac)| {
        mac.as_deref()
            .filter(|m| m.eq_ignore_ascii_case(name))
            .and_then(|_| n.parse::<u32>().ok())
    })
}

pub use crate::model::{BlockStats, InterfaceStats};

/// A disk letter run as libxl decodes it (`a`..`z`, then `aa`: base 26
/// with no zero digit), at most `max`.
fn disk_index(letters: &str, max: u32) -> Option<u32> {
    if letters.is_empty() {
        return None;
    }
    let mut index: u64 = 0;
    for b in letters.bytes() {
        if !b.is_ascii_lowercase() {
            return None;
        }
        index = index * 26 + u64::from(b - b'a') + 1;
        if index - 1 > u64::from(max) {
            return None;
        }
    }
    u32::try_from(index - 1).ok()
}

/// `<letters><partition>`: the partition is absent (0) or a decimal
/// without leading zeros, at most `max_part`.
fn disk_and_partition(rest: &str, max_disk: u32, max_part: u32) -> Option<(u32, u32)> {
    let split = rest
        .find(|c: char| !c.is_ascii_lowercase())
        .unwrap_or(rest.len());
    let (letters, digits) = rest.split_at(split);
    let disk = disk_index(letters, max_disk)?;
    let part = if digits.is_empty() {
        0
    } else if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    } else {
        digits.parse::<u32>().ok().filter(|p| *p <= max_part)?
    };
    Some((disk, part))
}

/// The Xen virtual device number of a disk target (`xvda`, `hdb1`, `sdc`,
/// `d0p1`, or the number itself), by Xen 4.17 libxl's rules
/// (`libxl__device_disk_dev_number`, after docs/misc/vbd-interface.txt):
/// the number blkback's `vbd-<domid>-<devid>` directory is named by.
pub fn vbd_devid(target: &str) -> Option<u32> {
    let target = target.strip_prefix("/dev/").unwrap_or(target);
    let xvd = |disk: u32, part: u32| {
        if disk <= 15 && part <= 15 {
            (202 << 8) | (disk << 4) | part
        } else {
            (1 << 28) | (disk << 8) | part
        }
    };
    if let Some(rest) = target.strip_prefix('d') {
        if let Some((d, p)) = rest.split_once('p') {
            let number = |s: &str| {
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<u32>().ok())
                    .flatten()
            };
            if let (Some(disk), Some(part)) = (number(d), number(p)) {
                if disk < (1 << 20) && part < 256 {
                    return Some(xvd(disk, part));
                }
            }
        }
    }
    if let Some(rest) = target.strip_prefix("xvd") {
        return disk_and_partition(rest, (1 << 20) - 1, 255).map(|(d, p)| xvd(d, p));
    }
    if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        return target.parse::<u32>().ok().filter(|n| *n <= i32::MAX as u32);
    }
    if let Some(rest) = target.strip_prefix("hd") {
        return disk_and_partition(rest, 3, 63)
            .map(|(d, p)| ((if d < 2 { 3 } else { 22 }) << 8) | ((d & 1) << 6) | p);
    }
    if let Some(rest) = target.strip_prefix("sd") {
        return disk_and_partition(rest, 15, 15).map(|(d, p)| (8 << 8) | (d << 4) | p);
    }
    None
}

/// The backend directory of a guest's disk: `vbd-<domid>-<devid>`.
pub fn vbd_dir(root: &Path, domid: u32, devid: u32) -> PathBuf {
    root.join(format!("vbd-{domid}-{devid}"))
}

/// One counter file: a decimal and a newline, as blkback prints them.
pub fn parse_counter(text: &str, what: &str) -> Result<u64> {
    text.trim_end_matches('\n')
        .parse::<u64>()
        .map_err(|_| Error::backend(format!("{what}: '{}' is not a counter", text.trim())))
}

/// The counters from blkback's `statistics` files, given each file's
/// text: `rd_sect` and `wr_sect` are sectors (scaled to bytes), `oo_req`
/// (requests that found the ring full) is what libvirt's Xen driver
/// reported as `errs`.
pub fn block_stats(mut file: impl FnMut(&str) -> Result<String>) -> Result<BlockStats> {
    let mut get = |name: &str| -> Result<u64> { parse_counter(&file(name)?, name) };
    let bytes = |sectors: u64, name: &str| {
        sectors
            .checked_mul(SECTOR)
            .ok_or_else(|| Error::backend(format!("{name}: {sectors} sectors overflow bytes")))
    };
    let rd_req = get("rd_req")?;
    let rd_bytes = bytes(get("rd_sect")?, "rd_sect")?;
    let wr_req = get("wr_req")?;
    let wr_bytes = bytes(get("wr_sect")?, "wr_sect")?;
    let errs = get("oo_req")?;
    Ok(BlockStats {
        rd_req,
        rd_bytes,
        wr_req,
        wr_bytes,
        errs,
    })
}

/// Reads a running guest's disk counters under `root` (normally
/// [`XEN_BACKEND_DEVICES`]). A missing directory means the guest has no
/// such disk in blkback (no domain error: the caller knows the domain).
pub fn read_block_stats(root: &Path, domid: u32, devid: u32) -> Result<BlockStats> {
    let dir = vbd_dir(root, domid, devid).join("statistics");
    block_stats(|name| {
        let path = dir.join(name);
        read_text(&path, MAX_COUNTER_FILE).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::invalid(format!(
                "domain {domid} has no blkback disk {devid} ({} is missing)",
                path.display()
            )),
            _ => Error::backend(format!("{}: {e}", path.display())),
        })
    })
}

/// netback's name for a guest's interface `n`.
pub fn vif_name(domid: u32, n: u32) -> String {
    format!("vif{domid}.{n}")
}

/// The counters of `ifname` in `/proc/net/dev`'s text, as the guest sees
/// them: dom0's receive side of a vif is what the guest sent, so the two
/// halves swap, as libvirt's libxl driver reports a bridged vif. None when
/// the interface is not listed; a listed line that does not parse is a
/// back-end error.
pub fn interface_stats(proc_net_dev: &str, ifname: &str) -> Result<Option<InterfaceStats>> {
    for line in proc_net_dev.lines() {
        // "  vif1.0: 123 4 ..." (the name may touch the colon's far side).
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != ifname {
            continue;
        }
        let v: Vec<u64> = counters
            .split_whitespace()
            .map(str::parse::<u64>)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::backend(format!("/proc/net/dev: bad line for {ifname}")))?;
        if v.len() != 16 {
            return Err(Error::backend(format!(
                "/proc/net/dev: {} counters for {ifname}, not 16",
                v.len()
            )));
        }
        // Host receive: bytes packets errs drop (then fifo frame compressed
        // multicast); host transmit from field 8.
        return Ok(Some(InterfaceStats {
            rx_bytes: v[8],
            rx_packets: v[9],
            rx_errs: v[10],
            rx_drop: v[11],
            tx_bytes: v[0],
            tx_packets: v[1],
            tx_errs: v[2],
            tx_drop: v[3],
        }));
    }
    Ok(None)
}

/// Reads the counters of a running guest's interface `n` from `path`
/// (normally [`PROC_NET_DEV`]).
pub fn read_interface_stats(path: &Path, domid: u32, n: u32) -> Result<InterfaceStats> {
    let text = read_text(path, MAX_NET_DEV)
        .map_err(|e| Error::backend(format!("{}: {e}", path.display())))?;
    let name = vif_name(domid, n);
    interface_stats(&text, &name)?.ok_or_else(|| {
        Error::invalid(format!(
            "domain {domid} has no interface {n} ({name} is not in {})",
            path.display()
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn disk_targets_number_as_libxl_numbers_them() {
        // xvd a-p with partitions up to 15: major 202.
        assert_eq!(vbd_devid("xvda"), Some(51712));
        assert_eq!(vbd_devid("xvdb"), Some(51728));
        assert_eq!(vbd_devid("xvda1"), Some(51713));
        assert_eq!(vbd_devid("/dev/xvdp15"), Some((202 << 8) | (15 << 4) | 15));
        // Past p, or a partition past 15: the extended form.
        assert_eq!(vbd_devid("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vbd_devid("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vbd_devid("xvda16"), Some((1 << 28) | 16));
        assert_eq!(vbd_devid("d0p1"), Some(51713));
        assert_eq!(vbd_devid("d16p0"), Some((1 << 28) | (16 << 8)));
        // hd a-d and sd a-p.
        assert_eq!(vbd_devid("hda"), Some(768));
        assert_eq!(vbd_devid("hdb1"), Some(768 + 64 + 1));
        assert_eq!(vbd_devid("hdc"), Some(22 << 8));
        assert_eq!(vbd_devid("sda"), Some(2048));
        assert_eq!(vbd_devid("sdb2"), Some(2048 + 16 + 2));
        // A bare number is the devid itself.
        assert_eq!(vbd_devid("51712"), Some(51712));
    }

    #[test]
    fn bad_disk_targets_have_no_number() {
        for bad in [
            "",
            "xvd",
            "xvdA",
            "xvda0",
            "xvda01",
            "xvda256",
            "hde",
            "hda64",
            "sdq",
            "sda16",
            "vda",
            "xvda-1",
            "d1p",
            "dxp1",
            "4294967295",
            "../xvda",
        ] {
            assert_eq!(vbd_devid(bad), None, "{bad}");
        }
    }

    #[test]
    fn block_counters_scale_sectors_and_name_bad_files() {
        let files = [
            ("rd_req", "12\n"),
            ("rd_sect", "96\n"),
            ("wr_req", "3\n"),
            ("wr_sect", "8\n"),
            ("oo_req", "1\n"),
        ];
        let read = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| Error::invalid(name.to_string()))
        };
        let s = block_stats(read).unwrap();
        assert_eq!(
            s,
            BlockStats {
                rd_req: 12,
                rd_bytes: 96 * 512,
                wr_req: 3,
                wr_bytes: 8 * 512,
                errs: 1
            }
        );
        assert_eq!(
            s.to_text(),
            "rd_req 12\nrd_bytes 49152\nwr_req 3\nwr_bytes 4096\nerrs 1\n"
        );
        let e = block_stats(|n| Ok(if n == "wr_req" { "x\n" } else { "0\n" }.into())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Backend);
        assert!(e.message.contains("wr_req"), "{e}");
        let huge = block_stats(|n| {
            Ok(if n == "rd_sect" {
                u64::MAX.to_string()
            } else {
                "0".into()
            })
        });
        assert!(huge.unwrap_err().message.contains("overflow"));
    }

    #[test]
    fn block_counters_are_read_from_the_backend_directory() {
        let root = std::env::temp_dir().join(format!("domfs-vbd-{}", std::process::id()));
        let dir = vbd_dir(&root, 3, 51712).join("statistics");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, v) in [
            ("rd_req", 5),
            ("rd_sect", 40),
            ("wr_req", 2),
            ("wr_sect", 16),
            ("oo_req", 0),
        ] {
            std::fs::write(dir.join(name), format!("{v}\n")).unwrap();
        }
        let s = read_block_stats(&root, 3, 51712).unwrap();
        assert_eq!((s.rd_req, s.rd_bytes, s.wr_bytes), (5, 40 * 512, 16 * 512));
        let e = read_block_stats(&root, 3, 51728).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("no blkback disk 51728"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn entries(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn disks_are_found_by_their_backends_name() {
        let e = entries(&[
            ("51712", Some("xvda")),
            ("51728", Some("xvdb:disk")),
            ("5632", Some("hdc:cdrom")),
            ("768", None),
            ("junk", Some("xvdz")),
        ]);
        assert_eq!(disk_devid(&e, "xvda"), Some(51712));
        assert_eq!(disk_devid(&e, "xvdb"), Some(51728));
        assert_eq!(disk_devid(&e, "hdc"), Some(5632));
        // A backend without `dev`, or a number that is not one, names nothing.
        assert_eq!(disk_devid(&e, "hda"), None);
        assert_eq!(disk_devid(&e, "xvdz"), None);
        assert_eq!(disk_devid(&e, "xvdc"), None);
        assert_eq!(disk_devid(&[], "xvda"), None);
    }

    #[test]
    fn interfaces_are_found_by_netback_name_or_mac() {
        let e = entries(&[
            ("0", Some("00:16:3e:00:00:01")),
            ("2", Some("00:16:3e:00:00:03")),
        ]);
        assert_eq!(vif_devid(7, &e, "vif7.0"), Some(0));
        assert_eq!(vif_devid(7, &e, "vif7.2"), Some(2));
        // Another domain's name, a number it lacks, odd spellings.
        assert_eq!(vif_devid(7, &e, "vif8.0"), None);
        assert_eq!(vif_devid(7, &e, "vif7.1"), None);
        assert_eq!(vif_devid(7, &e, "vif7.02"), None);
        assert_eq!(vif_devid(7, &e, "vif7."), None);
        assert_eq!(vif_devid(7, &e, "vif7.+2"), None);
        assert_eq!(vif_devid(7, &e, "00:16:3E:00:00:03"), Some(2));
        assert_eq!(vif_devid(7, &e, "00:16:3e:00:00:02"), None);
    }

    #[test]
    fn oversized_kernel_files_are_refused() {
        let path = std::env::temp_dir().join(format!("domfs-bigdev-{}", std::process::id()));
        std::fs::write(&path, "x".repeat(MAX_COUNTER_FILE + 1)).unwrap();
        assert!(read_text(&path, MAX_COUNTER_FILE).is_err());
        std::fs::write(&path, "12\n").unwrap();
        assert_eq!(read_text(&path, MAX_COUNTER_FILE).unwrap(), "12\n");
        std::fs::remove_file(&path).unwrap();
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
vif12.0:1000      10    1    2    0     0          0         0     5000      50    3    4    0     0       0          0
 vif1.0:       7       1    0    0    0     0          0         0        9       1    0    0    0     0       0          0
";

    #[test]
    fn interface_counters_are_the_guests_view() {
        let s = interface_stats(NET_DEV, &vif_name(12, 0)).unwrap().unwrap();
        // dom0 received 1000 bytes from the guest: the guest sent them.
        assert_eq!(
            (s.tx_bytes, s.tx_packets, s.tx_errs, s.tx_drop),
            (1000, 10, 1, 2)
        );
        assert_eq!(
            (s.rx_bytes, s.rx_packets, s.rx_errs, s.rx_drop),
            (5000, 50, 3, 4)
        );
        assert!(s.to_text().starts_with("rx_bytes 5000\nrx_packets 50\n"));
        assert_eq!(
            interface_stats(NET_DEV, "vif1.0")
                .unwrap()
                .unwrap()
                .rx_bytes,
            9
        );
        // vif1.0 is not vif12.0's prefix, nor the other way.
        assert_eq!(interface_stats(NET_DEV, "vif1.").unwrap(), None);
        assert_eq!(interface_stats(NET_DEV, "vif2.0").unwrap(), None);
        let short = "vif3.0: 1 2 3\n";
        assert_eq!(
            interface_stats(short, "vif3.0").unwrap_err().kind,
            ErrorKind::Backend
        );
        let bad = "vif3.0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n";
        assert!(interface_stats(bad, "vif3.0").is_err());
    }

    #[test]
    fn interface_counters_are_read_from_a_file() {
        let path = std::env::temp_dir().join(format!("domfs-netdev-{}", std::process::id()));
        std::fs::write(&path, NET_DEV).unwrap();
        assert_eq!(read_interface_stats(&path, 12, 0).unwrap().tx_bytes, 1000);
        let e = read_interface_stats(&path, 12, 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("vif12.1"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
