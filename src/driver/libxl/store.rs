//! Persistent definitions for the libxl driver: libxl keeps none, so, as
//! libvirt's libxl driver does, each defined domain is its XML in a file of
//! its own (`DIR/NAME.xml`), and autostart is a link `DIR/autostart/NAME.xml`
//! to it. One file per domain means a change rewrites one small file, by
//! writing a temporary beside it, syncing it and renaming it over the old
//! one, so a crash leaves either definition whole, never half of one.
//!
//! Why not xl's `/etc/xen/*.cfg`: those are xl's input, written by people in
//! xl's own language, with no UUID kept and no notion of "defined"; domfs
//! would have to rewrite people's files in another format. domfs keeps its
//! own directory, as libvirt does, and leaves `/etc/xen` alone.

use crate::error::{Error, ErrorKind, Result};
use crate::model::DomainDef;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where definitions live unless `-o state_dir=` says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/domfs/xen";
/// The largest definition file read back (the XML reader's own limit).
const MAX_FILE: u64 = 10 << 20;

pub struct Store {
    dir: PathBuf,
}

fn io(what: String, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("{what}: {e}"))
}

impl Store {
    /// Opens (and makes, mode 0700, root's alone) the directory.
    pub fn open(dir: &Path) -> Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        let auto = dir.join("autostart");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&auto)
            .map_err(|e| io(format!("making {}", auto.display()), e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    fn link(&self, name: &str) -> PathBuf {
        self.dir.join("autostart").join(format!("{name}.xml"))
    }

    /// Every definition in the directory with its autostart flag. A file
    /// that does not parse, or whose name is not its domain's, is skipped
    /// with a warning: one bad file must not hide the others.
    pub fn load(&self) -> Vec<(DomainDef, bool)> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("libxl: reading {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".xml"))
            else {
                continue;
            };
            match read_def(&path) {
                Ok(def) if def.name == stem && def.uuid.is_some() => {
                    let auto = self.link(stem).exists();
                    out.push((def, auto));
                }
                Ok(def) => log::warn!(
                    "libxl: skipped {}: it defines '{}' (no UUID, or another name)",
                    path.display(),
                    def.name
                ),
                Err(e) => log::warn!("libxl: skipped {}: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    /// Writes a definition atomically (temporary file, fsync, rename, then
    /// the directory synced).
    pub fn save(&self, def: &DomainDef) -> Result<()> {
        let path = self.file(&def.name);
        let tmp = self.dir.join(format!(".{}.xml.tmp", def.name));
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(def.to_xml().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(format!("writing {}", path.display()), e)
        })
    }

    /// Removes a definition and its autostart link.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.set_autostart(name, false)?;
        match std::fs::remove_file(self.file(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", self.file(name).display()), e)),
        }
    }

    /// Makes or removes the autostart link (`autostart/NAME.xml ->
    /// ../NAME.xml`, relative, as libvirt makes it).
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        let link = self.link(name);
        let _ = std::fs::remove_file(&link);
        if on {
            std::os::unix::fs::symlink(format!("../{name}.xml"), &link)
                .map_err(|e| io(format!("linking {}", link.display()), e))?;
        }
        Ok(())
    }
}

fn read_def(path: &Path) -> std::result::Result<DomainDef, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    f.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("longer than {MAX_FILE} bytes"));
    }
    DomainDef::parse(&text).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn def(name: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='xen'><name>{name}</name>\
             <uuid>3f0c2a51-7d1e-4b6a-9c2e-51aa08d3e00{}</uuid><memory>65536</memory>\
             <os><type>linux</type><kernel>/k</kernel></os></domain>",
            name.len() % 10
        ))
        .unwrap()
    }

    #[test]
    fn definitions_and_autostart_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("domfs-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).unwrap();
        s.save(&def("web1")).unwrap();
        s.save(&def("db")).unwrap();
        s.set_autostart("web1", true).unwrap();
        std::fs::write(dir.join("junk.xml"), "<domain").unwrap();
        // Past the size limit: skipped without being read whole.
        let big = format!("<domain>{}</domain>", " ".repeat(MAX_FILE as usize));
        std::fs::write(dir.join("big.xml"), big).unwrap();
        assert!(read_def(&dir.join("big.xml"))
            .unwrap_err()
            .contains("longer than"));
        std::fs::write(dir.join("other.xml"), def("web1").to_xml()).unwrap();
        let got: Vec<(String, bool)> = Store::open(&dir)
            .unwrap()
            .load()
            .into_iter()
            .map(|(d, a)| (d.name.clone(), a))
            .collect();
        assert_eq!(got, [("db".to_string(), false), ("web1".to_string(), true)]);
        assert_eq!(
            std::fs::read_link(dir.join("autostart/web1.xml")).unwrap(),
            Path::new("../web1.xml")
        );
        s.remove("web1").unwrap();
        assert!(!dir.join("web1.xml").exists());
        assert!(!dir.join("autostart/web1.xml").exists());
        assert!(std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
