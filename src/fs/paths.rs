//! Paths that `save` and `restore` name, resolved before any driver touches
//! them. A path that leads into this very mount would have the filesystem
//! wait on itself, so it is refused; resolution therefore walks the path one
//! component at a time and never asks the kernel about anything at or below
//! the mount point (which would come back to this process).

use crate::error::{Error, ErrorKind};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The most symbolic links one resolution follows (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Whether `p` is the mount point or below it (both absolute, normalised).
fn inside(p: &Path, mount: &Path) -> bool {
    p.starts_with(mount)
}

/// Resolves the absolute `path` to one with no symbolic links and no `.` or
/// `..`, following links as the kernel would. Components that do not exist
/// (the file a save creates) are kept as written. Fails when the path is, or
/// leads through a link into, `mount` (canonical).
pub fn resolve_outside(path: &Path, mount: &Path) -> Result<PathBuf, Error> {
    if !path.is_absolute() {
        return Err(Error::invalid(format!(
            "'{}' is not an absolute path",
            path.display()
        )));
    }
    let refuse = || {
        Error::invalid(format!(
            "'{}' lies inside the domfs mount {}; save images elsewhere",
            path.display(),
            mount.display()
        ))
    };
    let io = |p: &Path, e: std::io::Error| Error::invalid(format!("'{}': {e}", p.display()));
    // Components still to walk, first at the end.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    let mut exists = true;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&c);
        if inside(&next, mount) {
            return Err(refuse());
        }
        if !exists {
            resolved = next;
            continue;
        }
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                use std::os::unix::fs::MetadataExt;
                let dir = std::fs::metadata(&resolved).map_err(|e| io(&resolved, e))?;
                if !crate::safefile::may_follow(m.uid(), dir.mode(), dir.uid()) {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "'{}' is a symbolic link of uid {} in the shared directory {}; \
                             domfs follows it no more than the kernel would \
                             (fs.protected_symlinks)",
                            next.display(),
                            m.uid(),
                            resolved.display()
                        ),
                    ));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::invalid(format!(
                        "'{}': too many levels of symbolic links",
                        path.display()
                    )));
                }
                let target = std::fs::read_link(&next).map_err(|e| io(&next, e))?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            }
            Ok(_) => resolved = next,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                exists = false;
                resolved = next;
            }
            Err(e) => return Err(io(&next, e)),
        }
    }
    if inside(&resolved, mount) {
        return Err(refuse());
    }
    Ok(resolved)
}

/// Queues `p`'s components so that the first is popped first.
fn push_components(pending: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("domfs-paths-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn links_are_followed_and_dots_removed() {
        let d = scratch("follow");
        std::fs::create_dir(d.join("real")).unwrap();
        symlink(d.join("real"), d.join("abs")).unwrap();
        symlink("real/../real", d.join("rel")).unwrap();
        let mount = Path::new("/nonexistent-mount");
        assert_eq!(
            resolve_outside(&d.join("abs/img"), mount).unwrap(),
            d.join("real/img")
        );
        assert_eq!(
            resolve_outside(&d.join("rel/./x/../img"), mount).unwrap(),
            d.join("real/img")
        );
        assert_eq!(
            resolve_outside(&d.join("missing/deeper/img"), mount).unwrap(),
            d.join("missing/deeper/img")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_mount_is_never_entered() {
        let d = scratch("mount");
        let mount = d.join("mnt");
        std::fs::create_dir(&mount).unwrap();
        symlink(&mount, d.join("into")).unwrap();
        symlink(d.join("loop"), d.join("loop")).unwrap();
        for p in [
            mount.join("by-id/1/img"),
            d.join("into/img"),
            d.join("x/../mnt/img"),
            mount.clone(),
        ] {
            let e = resolve_outside(&p, &mount).unwrap_err();
            assert!(
                e.message.contains("inside the domfs mount"),
                "{}: {e}",
                p.display()
            );
        }
        assert!(resolve_outside(&d.join("loop/img"), &mount)
            .unwrap_err()
            .message
            .contains("too many levels"));
        assert!(resolve_outside(Path::new("rel/img"), &mount).is_err());
        // A sibling whose name only starts like the mount is outside it.
        assert!(resolve_outside(&d.join("mnt2/img"), &mount).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
