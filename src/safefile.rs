//! The files `save`, `dump` and `restore` name, opened so that a symbolic
//! link cannot steer the daemon, which usually runs as root, to write or
//! read a file its owner never meant: a link another user planted in a
//! shared directory (`/tmp/web1.img` pointing at `/etc/shadow`) is not
//! followed, and a link swapped in while domfs works is never followed.
//!
//! Links are followed as the kernel follows them with
//! `fs.protected_symlinks` ([`may_follow`]), which domfs must apply itself
//! because it resolves paths in user space (`fs::paths`). Then the directory
//! holding the file is opened once and everything after is relative to it
//! with `O_NOFOLLOW` (fstatat, openat, renameat), so what was checked is
//! what is written, whatever is renamed meanwhile. Every driver that writes
//! or reads a save or dump image goes through [`read`] and [`write`]. No
//! unsafe here; the system calls are nix's.

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, geteuid, unlinkat, Gid, Uid, UnlinkatFlags};
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Links followed at the last component before giving up (ELOOP).
pub const MAX_LINKS: usize = 8;

/// Why an image file was not read or written.
#[derive(Debug)]
pub enum ImageFileError {
    /// The system refused (ENOENT, EACCES, ELOOP, ...).
    Io(std::io::Error),
    /// A device, FIFO, directory or socket: never read or written as an image.
    NotRegular,
    /// Longer than the caller's limit.
    TooLarge(usize),
    /// Another user's symbolic link in a sticky, world-writable directory.
    ForeignLink { owner: u32 },
    /// The path ends in `/`, `.` or `..`.
    NoName,
}

impl fmt::Display for ImageFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageFileError::Io(e) => write!(f, "{e}"),
            ImageFileError::NotRegular => f.write_str("not a regular file"),
            ImageFileError::TooLarge(max) => write!(f, "larger than {max} bytes"),
            ImageFileError::ForeignLink { owner } => write!(
                f,
                "a symbolic link owned by uid {owner} in a sticky, world-writable directory; \
                 domfs follows it no more than the kernel would (fs.protected_symlinks)"
            ),
            ImageFileError::NoName => f.write_str("the path names no file"),
        }
    }
}

impl From<Errno> for ImageFileError {
    fn from(e: Errno) -> ImageFileError {
        ImageFileError::Io(std::io::Error::from(e))
    }
}

impl From<std::io::Error> for ImageFileError {
    fn from(e: std::io::Error) -> ImageFileError {
        ImageFileError::Io(e)
    }
}

/// The kernel's `fs.protected_symlinks` rule: in a directory that is sticky
/// and world-writable (`/tmp`), a link is followed only when its owner is the
/// follower or the directory's owner. Anywhere else the directory's owner
/// could put any file there anyway, so the link is followed.
pub fn may_follow(link_uid: u32, dir_mode: u32, dir_uid: u32) -> bool {
    let shared = dir_mode & 0o1002 == 0o1002;
    !shared || link_uid == geteuid().as_raw() || link_uid == dir_uid
}

/// A file name inside an open directory.
struct Located {
    dir: OwnedFd,
    name: OsString,
}

fn split(path: &Path) -> Result<(PathBuf, OsString), ImageFileError> {
    let name = path.file_name().ok_or(ImageFileError::NoName)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_os_string()))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Opens the directory of `path`, following links at the last component
/// as [`may_follow`] allows.
fn locate(path: &Path) -> Result<Located, ImageFileError> {
    let mut path = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let (parent, name) = split(&path)?;
        let dir = openat(
            AT_FDCWD,
            &parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = match fstatat(
            &dir,
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(Located { dir, name }),
            Err(e) => return Err(e.into()),
        };
        if kind(&st) != SFlag::S_IFLNK {
            return Ok(Located { dir, name });
        }
        let dir_st = nix::sys::stat::fstat(&dir)?;
        if !may_follow(st.st_uid, dir_st.st_mode, dir_st.st_uid) {
            return Err(ImageFileError::ForeignLink { owner: st.st_uid });
        }
        let target = PathBuf::from(readlinkat(&dir, name.as_os_str())?);
        path = if target.is_absolute() {
            target
        } else {
            parent.join(target)
        };
    }
    Err(Errno::ELOOP.into())
}

/// Reads a regular file of at most `max` bytes. Opened without blocking, so
/// a FIFO swapped in cannot hang the caller.
pub fn read(path: &Path, max: usize) -> Result<Vec<u8>, ImageFileError> {
    let at = locate(path)?;
    let fd = openat(
        &at.dir,
        at.name.as_os_str(),
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(ImageFileError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(ImageFileError::TooLarge(max));
    }
    Ok(bytes)
}

/// Writes `bytes` as the file at `path`, atomically: a temporary file beside
/// it, renamed over it. A regular file that was there keeps its mode and (when
/// the daemon may give it away) its owner; a new file is made 0600. Nothing
/// but a regular file or nothing at all is ever replaced.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), ImageFileError> {
    let at = locate(path)?;
    let old = match fstatat(
        &at.dir,
        at.name.as_os_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if kind(&st) == SFlag::S_IFREG => Some(st),
        Ok(_) => return Err(ImageFileError::NotRegular),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(e.into()),
    };
    let mut tmp = OsString::from(".");
    tmp.push(&at.name);
    tmp.push(format!(".domfs-{}", std::process::id()));
    let tmp = tmp.as_os_str();
    let fd = openat(
        &at.dir,
        tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let result = fill(File::from(fd), bytes, old.as_ref(), path)
        .and_then(|()| Ok(renameat(&at.dir, tmp, &at.dir, at.name.as_os_str())?));
    if result.is_err() {
        let _ = unlinkat(&at.dir, tmp, UnlinkatFlags::NoRemoveDir);
    }
    result
}

fn fill(
    mut f: File,
    bytes: &[u8],
    old: Option<&FileStat>,
    shown: &Path,
) -> Result<(), ImageFileError> {
    f.write_all(bytes)?;
    if let Some(st) = old {
        fchmod(&f, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
        // Only root may give a file away; anyone else keeps their own.
        if let Err(e) = fchown(
            &f,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        ) {
            log::info!("{}: keeping the new owner: {e}", shown.display());
        }
    }
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("domfs-imagefile-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_and_reads_back_a_regular_file() {
        let d = tmpdir("rw");
        let p = d.join("img");
        write(&p, b"one").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert_eq!(read(&p, 3).unwrap(), b"two");
        assert!(matches!(read(&p, 2), Err(ImageFileError::TooLarge(2))));
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn own_links_are_followed_and_loops_end() {
        let d = tmpdir("links");
        let img = d.join("img");
        symlink("img", d.join("link")).unwrap();
        write(&d.join("link"), b"x").unwrap();
        assert!(std::fs::symlink_metadata(d.join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&img).unwrap(), b"x");
        symlink("loop", d.join("loop")).unwrap();
        match write(&d.join("loop"), b"x") {
            Err(ImageFileError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ELOOP)),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_users_link_in_a_sticky_directory_is_refused() {
        if !geteuid().is_root() {
            return; // giving the link away needs root
        }
        let d = tmpdir("sticky");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let target = d.join("target");
        std::fs::write(&target, b"keep").unwrap();
        symlink(&target, d.join("link")).unwrap();
        std::os::unix::fs::lchown(d.join("link"), Some(65534), Some(65534)).unwrap();
        for result in [
            write(&d.join("link"), b"x").map(|_| ()),
            read(&d.join("link"), 10).map(|_| ()),
        ] {
            match result {
                Err(ImageFileError::ForeignLink { owner: 65534 }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        // Outside a shared directory the same link is followed.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(&d.join("link"), b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn special_files_and_nameless_paths_are_refused() {
        let d = tmpdir("special");
        assert!(matches!(write(&d, b"x"), Err(ImageFileError::NotRegular)));
        assert!(matches!(read(&d, 10), Err(ImageFileError::NotRegular)));
        assert!(matches!(
            write(Path::new("/"), b"x"),
            Err(ImageFileError::NoName)
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
