//! The mount point before mounting: free, already a live domfs (refused:
//! stacking a second one hides the first), or a dead FUSE mount left by an
//! instance that was killed ("Transport endpoint is not connected"), which is
//! detached so that the next start recovers by itself.
//!
//! Reads /proc/self/mountinfo; the parser is pure and tested beside it.

use domfs::uri::Uri;
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel's FUSE device.
pub const FUSE_DEVICE: &str = "/dev/fuse";

/// Waits up to `limit` for `device` to exist; true once it does. At boot a
/// `_netdev` line in fstab can be mounted before systemd's
/// modprobe@fuse.service has loaded the module and made /dev/fuse (seen in
/// the lab's systemd dom0: the mount started a second before the module
/// loaded), and `-o retry` promises a mount on a host still starting.
pub fn wait_for_device(device: &Path, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    let mut said = false;
    loop {
        if device.exists() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        if !said {
            log::warn!(
                "{} does not exist yet (the fuse module is not loaded); waiting up to {} s (-o retry)",
                device.display(),
                limit.as_secs()
            );
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// One line of /proc/self/mountinfo, the fields we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
/// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
fn parse_line(line: &str) -> Option<Entry> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let source = r.next().unwrap_or("");
    Some(Entry {
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype: unescape(fstype),
        source: unescape(source),
    })
}

/// The topmost mount at `path` (later lines are mounted over earlier ones).
pub fn find(mountinfo: &str, path: &Path) -> Option<Entry> {
    mountinfo
        .lines()
        .rev()
        .filter_map(parse_line)
        .find(|e| e.mount_point == path)
}

/// `path` made absolute with its parent's symlinks resolved, without
/// touching `path` itself (a dead mount cannot be stat'ed).
pub fn resolve(path: &Path) -> Result<PathBuf, String> {
    let abs =
        std::path::absolute(path).map_err(|e| format!("mount point {}: {e}", path.display()))?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = parent
                .canonicalize()
                .map_err(|e| format!("mount point {}: {e}", abs.display()))?;
            Ok(parent.join(name))
        }
        // "/" or a path ending in "..": nothing can be mounted dead there
        // that canonicalize would trip over.
        _ => abs
            .canonicalize()
            .map_err(|e| format!("mount point {}: {e}", abs.display())),
    }
}

/// Dead mounts stacked on one directory that `prepare` detaches at most.
const MAX_DEAD: usize = 16;

fn is_fuse(e: &Entry) -> bool {
    e.fstype == "fuse" || e.fstype.starts_with("fuse.")
}

/// How a mount is named in messages: a domfs mount is one of our subtype,
/// or a plain `fuse` one whose source is a connection URI (domfs's default
/// fsname).
fn describe(e: &Entry, subtype: &str) -> String {
    if e.fstype == format!("fuse.{subtype}")
        || e.fstype == "fuse.domfs"
        || (e.fstype == "fuse" && Uri::parse(&e.source).is_ok())
    {
        format!("domfs mount of {}", e.source)
    } else {
        format!("FUSE mount ({} of {})", e.fstype, e.source)
    }
}

/// Checks and clears the mount point; returns it resolved. Refuses a live
/// FUSE filesystem (domfs or another) mounted there, since stacking hides it;
/// detaches dead FUSE mounts.
pub fn prepare(path: &Path, subtype: &str) -> Result<PathBuf, String> {
    let path = resolve(path)?;
    for _ in 0..MAX_DEAD {
        if !clear_one(&path, subtype)? {
            return Ok(path);
        }
    }
    Err(format!(
        "{}: more than {MAX_DEAD} dead mounts stacked; clear them with: umount -l {}",
        path.display(),
        path.display()
    ))
}

/// One step of `prepare`: Ok(true) when a dead mount was detached (look
/// again: another may lie below), Ok(false) when the mount point is usable.
fn clear_one(path: &Path, subtype: &str) -> Result<bool, String> {
    let shown = path.display();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let top = find(&mountinfo, path);
    // statfs always reaches a FUSE server (stat may be answered from the
    // kernel's cache even when the server is dead).
    let alive = match nix::sys::statfs::statfs(path) {
        Err(nix::errno::Errno::ENOTCONN) => Err(std::io::Error::from_raw_os_error(libc::ENOTCONN)),
        _ => std::fs::metadata(path),
    };
    match alive {
        Ok(m) if !m.is_dir() => Err(format!("mount point {shown} is not a directory")),
        Ok(_) => match top {
            Some(e) if is_fuse(&e) => Err(format!(
                "{shown} is already a {}, served by a running process; a second mount \
                 would hide it. Unmount it first: umount {shown} (or fusermount3 -u {shown})",
                describe(&e, subtype)
            )),
            _ => Ok(false),
        },
        Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {
            let what = match &top {
                Some(e) if is_fuse(e) => format!("a dead {}", describe(e, subtype)),
                _ => {
                    return Err(format!(
                        "mount point {shown}: {err}, and it is not a FUSE mount domfs \
                         could clear; clear it with: umount -l {shown}"
                    ))
                }
            };
            detach(path).map_err(|e| {
                format!(
                    "{shown} is {what} (Transport endpoint is not connected: its server \
                     died without unmounting) and detaching it failed: {e}. Clear it \
                     with: fusermount3 -u -z {shown} (as root: umount -l {shown}), \
                     then mount again"
                )
            })?;
            log::warn!("{shown} was {what} (its server died without unmounting); detached it");
            Ok(true)
        }
        Err(e) if e.kind() == IoKind::NotFound => {
            Err(format!("mount point {shown} does not exist"))
        }
        Err(e) => Err(format!("mount point {shown}: {e}")),
    }
}

/// Lazily detaches the mount at `path`: umount2(MNT_DETACH) as root,
/// `fusermount3 -u -z` otherwise (it checks that the mount is ours).
fn detach(path: &Path) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        return nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("umount2: {e}"));
    }
    let out = Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(path)
        .output()
        .map_err(|e| format!("running fusermount3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A device that appears while domfs waits is found; one that never
    /// does ends the wait at its limit.
    #[test]
    fn waits_for_a_device_that_appears_late() {
        use std::time::{Duration, Instant};
        let dir = std::env::temp_dir().join(format!("domfs-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dev = dir.join("fuse");
        let _ = std::fs::remove_file(&dev);
        assert!(!wait_for_device(&dev, Duration::from_millis(250)));
        let late = dev.clone();
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(late, "").unwrap();
        });
        let start = Instant::now();
        assert!(wait_for_device(&dev, Duration::from_secs(20)));
        assert!(start.elapsed() >= Duration::from_millis(250));
        maker.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    const INFO: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
61 29 0:52 / /mnt/my\\040domains rw,nosuid,nodev,relatime shared:40 - fuse.domfs test:///default rw,user_id=0,group_id=0
62 29 0:53 / /srv rw,relatime - tmpfs tmpfs rw
63 62 0:54 / /srv rw,relatime - fuse.domfs xen:/// rw,user_id=0
";

    #[test]
    fn finds_the_topmost_mount_with_escapes_undone() {
        let e = find(INFO, Path::new("/mnt/my domains")).unwrap();
        assert_eq!(e.fstype, "fuse.domfs");
        assert_eq!(e.source, "test:///default");
        let e = find(INFO, Path::new("/srv")).unwrap();
        assert_eq!(
            (e.fstype.as_str(), e.source.as_str()),
            ("fuse.domfs", "xen:///")
        );
        assert_eq!(find(INFO, Path::new("/mnt")), None);
        assert_eq!(find(INFO, Path::new("/")).unwrap().fstype, "ext4");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for bad in [
            "",
            "1 2 3",
            "1 2 3 4 /x - ",
            "\\",
            "1 2 3 4 /a\\0 o - t s",
            "1 2 3 4 /a\\9999 o - t s",
        ] {
            let _ = find(bad, Path::new("/x"));
        }
        assert_eq!(unescape("a\\040b\\134"), "a b\\");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\777x"), "\\777x", "past 255 is not an escape");
    }

    #[test]
    fn domfs_mounts_are_recognised_by_type_or_source() {
        let e = |t: &str, s: &str| Entry {
            mount_point: PathBuf::from("/m"),
            fstype: t.into(),
            source: s.into(),
        };
        assert!(describe(&e("fuse", "xen:///"), "domfs").starts_with("domfs mount"));
        assert!(describe(&e("fuse.domfs", "anything"), "domfs").starts_with("domfs mount"));
        assert!(describe(&e("fuse.vms", "x"), "vms").starts_with("domfs mount"));
        assert_eq!(
            describe(&e("fuse.sshfs", "h:/"), "domfs"),
            "FUSE mount (fuse.sshfs of h:/)"
        );
        assert!(is_fuse(&e("fuse", "")) && is_fuse(&e("fuse.x", "")));
        assert!(!is_fuse(&e("fuseblk", "")) && !is_fuse(&e("tmpfs", "")));
    }

    #[test]
    fn resolve_keeps_the_last_component() {
        let p = resolve(Path::new("/tmp/../tmp/./no-such-dir-domfs")).unwrap();
        assert!(p.ends_with("no-such-dir-domfs"));
        assert!(p.is_absolute());
        assert_eq!(resolve(Path::new("/")).unwrap(), PathBuf::from("/"));
    }

    #[test]
    fn a_missing_mount_point_is_named() {
        let e = prepare(Path::new("/nonexistent-domfs-dir/sub"), "domfs").unwrap_err();
        assert!(e.contains("/nonexistent-domfs-dir"), "{e}");
    }
}
