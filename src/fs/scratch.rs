//! Temporary files editors make in a domain directory. `sed -i` and vim write
//! a new file beside the one they edit and rename it over the original; a
//! file made that way and renamed over `xml` redefines the domain, as
//! `virsh edit` does. They live in memory, are made only with `O_EXCL` (as
//! `mkstemp` and editors make them, so a plain `>` of a new name is still
//! refused), and are bounded in number and size.

use super::document::MAX_DOCUMENT;
use crate::model::Uuid;
use std::collections::HashMap;

pub const MAX_FILES: usize = 64;
/// All temporary files together.
pub const MAX_TOTAL: usize = 4 * MAX_DOCUMENT;

pub struct ScratchFile {
    pub domain: Uuid,
    pub name: String,
    pub data: Vec<u8>,
    pub mode: u16,
}

#[derive(Default)]
pub struct Scratch {
    files: HashMap<u64, ScratchFile>,
    next: u64,
    total: usize,
}

/// Why a change to a temporary file was refused, as an errno.
pub type Refusal = i32;

impl Scratch {
    pub fn create(&mut self, domain: Uuid, name: &str, mode: u16) -> Result<u64, Refusal> {
        if self.find(domain, name).is_some() {
            return Err(libc::EEXIST);
        }
        if self.files.len() >= MAX_FILES {
            return Err(libc::ENOSPC);
        }
        self.next += 1;
        self.files.insert(
            self.next,
            ScratchFile {
                domain,
                name: name.to_string(),
                data: Vec::new(),
                mode: mode & 0o777,
            },
        );
        Ok(self.next)
    }

    pub fn find(&self, domain: Uuid, name: &str) -> Option<u64> {
        self.files
            .iter()
            .find(|(_, f)| f.domain == domain && f.name == name)
            .map(|(id, _)| *id)
    }

    pub fn get(&self, id: u64) -> Option<&ScratchFile> {
        self.files.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut ScratchFile> {
        self.files.get_mut(&id)
    }

    /// The temporary files of one domain, by name.
    pub fn in_domain(&self, domain: Uuid) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = self
            .files
            .iter()
            .filter(|(_, f)| f.domain == domain)
            .map(|(id, f)| (*id, f.name.clone()))
            .collect();
        out.sort();
        out
    }

    /// Sets the length, growing with zeros as a regular file does.
    pub fn resize(&mut self, id: u64, len: usize) -> Result<(), Refusal> {
        let total = self.total;
        let f = self.files.get_mut(&id).ok_or(libc::ENOENT)?;
        if len > MAX_DOCUMENT {
            return Err(libc::EFBIG);
        }
        let new_total = total - f.data.len() + len;
        if new_total > MAX_TOTAL {
            return Err(libc::ENOSPC);
        }
        f.data.resize(len, 0);
        self.total = new_total;
        Ok(())
    }

    pub fn write(&mut self, id: u64, offset: u64, data: &[u8]) -> Result<usize, Refusal> {
        let end = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(data.len()))
            .ok_or(libc::EFBIG)?;
        let len = self.files.get(&id).ok_or(libc::ENOENT)?.data.len();
        if end > len {
            self.resize(id, end)?;
        }
        let f = self.files.get_mut(&id).ok_or(libc::ENOENT)?;
        f.data[end - data.len()..end].copy_from_slice(data);
        Ok(data.len())
    }

    pub fn rename(&mut self, id: u64, name: &str) -> Result<(), Refusal> {
        let domain = self.files.get(&id).ok_or(libc::ENOENT)?.domain;
        if let Some(other) = self.find(domain, name).filter(|o| *o != id) {
            self.remove(other);
        }
        if let Some(f) = self.files.get_mut(&id) {
            f.name = name.to_string();
        }
        Ok(())
    }

    pub fn remove(&mut self, id: u64) -> Option<ScratchFile> {
        let f = self.files.remove(&id)?;
        self.total -= f.data.len();
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_bounded_and_accounted() {
        let u = Uuid([3; 16]);
        let mut s = Scratch::default();
        let a = s.create(u, "sedX1", 0o600).unwrap();
        assert_eq!(s.create(u, "sedX1", 0o600), Err(libc::EEXIST));
        assert_eq!(s.write(a, 2, b"hi"), Ok(2));
        assert_eq!(s.get(a).unwrap().data, b"\0\0hi");
        assert_eq!(s.write(a, 1 << 44, b"x"), Err(libc::EFBIG));
        assert_eq!(s.resize(a, MAX_DOCUMENT + 1), Err(libc::EFBIG));
        let b = s.create(u, "b", 0o644).unwrap();
        s.rename(b, "sedX1").unwrap();
        assert!(s.get(a).is_none(), "the target was replaced");
        assert_eq!(s.in_domain(u), vec![(b, "sedX1".to_string())]);
        assert!(s.in_domain(Uuid([4; 16])).is_empty());
        for i in 0..MAX_FILES - 1 {
            s.create(u, &i.to_string(), 0o600).unwrap();
        }
        assert_eq!(s.create(u, "one-too-many", 0o600), Err(libc::ENOSPC));
        s.remove(b);
        assert_eq!(s.total, 0);
    }
}
